"""The personalised feed in the service: feed.Feed wired to the job queue and kept in the service's database.

    GET  /feed                              the vertical feed page (feed.feed_html)
    GET  /v1/feed/next                      the next video for this user: 200 {video_id, prompt, reason, ...},
                                            204 while there is nothing to show yet (its first videos are queued)
    POST /v1/feed/events                    {"event": view_start|watch|like|skip, "video_id", "fraction"}
    GET  /v1/feed/me                        this user's views, likes, budget and taste (the model's weights)
    GET  /v1/feed/videos/{id}/content       a video of the feed's library (?variant=thumbnail|spritesheet)

An app with `feed = true` has the same routes under /apps/NAME/feed (its page, /next, /events, /me,
/videos/...; apps.py mounts them), with the app's generation fields and budget.

Every /next first collects the feed's finished jobs (Feed.fulfil, or Feed.cancel for a failed one), then asks
Feed.next, then queues what Feed.plan orders — videos decided `horizon` views ahead, within the user's budget —
as ordinary jobs (owner "feed", or "feed:NAME" for an app's) through the same create path as /v1/videos. The
workers that run them may be other processes: the job store is the only link. The feed's state (library,
users' taste models and queues, events, the feature basis) is in the service's database (SQLFeedStore, the
FeedStore interface over SQLAlchemy), so a restarted server continues where it stopped. One API process owns a
feed: run several API processes against one database only without feeds (Settings.feed = False).

Who is a user: the API key's name, "local" in local mode, and for an app open to the public an anonymous
visitor is "anon:IP". Feed videos are shared by everyone who uses that feed (the library is common to all its
users), so their content URLs need no key: a browser's <video> cannot send one, and ids are unguessable.
"""

import json
import logging
import threading
import time
from dataclasses import asdict

import numpy as np
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidRequest
from ..feed import (
    ATTRIBUTES,
    VALUES,
    Concept,
    CostModel,
    Embedder,
    Feed,
    FeedConfig,
    Video,
    feed_html,
    hashing_embedder,
)
from ..pipeline import validate_request
from .spec import APIError, to_api

log = logging.getLogger("straightline.feed")

# --- the feed's state in the service's database ---------------------------------------------------------------

feed_metadata = MetaData()
feed_videos = Table(
    "feed_videos", feed_metadata,
    Column("feed", String(80), primary_key=True),      # "feed" (/feed) or "app:NAME"
    Column("id", String(64), primary_key=True),        # the job id
    Column("prompt", Text, nullable=False),
    Column("concept", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("cost_s", Float, nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32, little-endian
    Column("views", Float, nullable=False),
    Column("enjoyment", Float, nullable=False),
    Column("likes", Float, nullable=False),
    Column("created", Float, nullable=False),
)
feed_users = Table(
    "feed_users", feed_metadata,
    Column("feed", String(80), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("state", Text, nullable=False),             # UserState.to_dict() as JSON: taste model, queue, budget
    Column("updated", Float, nullable=False),
)
feed_events = Table(
    "feed_events", feed_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("feed", String(80), nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("video", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("fraction", Float),
)
feed_meta = Table(
    "feed_meta", feed_metadata,
    Column("feed", String(80), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class SQLFeedStore:
    """feed.FeedStore's interface over the job store's database (SQLite or PostgreSQL): one feed's rows,
    told apart from other feeds' by `feed`."""

    def __init__(self, engine, feed: str):
        self.engine, self.feed = engine, feed
        feed_metadata.create_all(engine)

    def _upsert(self, table, keys: dict, values: dict) -> None:
        with self.engine.begin() as c:
            where = [table.c[k] == v for k, v in keys.items()]
            if c.execute(update(table).where(*where).values(**values)).rowcount == 0:
                c.execute(insert(table).values(**keys, **values))

    def put_video(self, video: Video, embedding: np.ndarray, stats) -> None:
        values = {"prompt": video.prompt, "concept": json.dumps(video.concept.to_dict()), "source": video.source,
                  "cost_s": video.cost_s, "embedding": np.asarray(embedding, "<f4").tobytes(),
                  "views": stats[0], "enjoyment": stats[1], "likes": stats[2], "created": time.time()}
        self._upsert(feed_videos, {"feed": self.feed, "id": video.id}, values)

    def put_stats(self, video_id: str, stats) -> None:
        with self.engine.begin() as c:
            c.execute(update(feed_videos).where(feed_videos.c.feed == self.feed, feed_videos.c.id == video_id)
                      .values(views=stats[0], enjoyment=stats[1], likes=stats[2]))

    def videos(self):
        t = feed_videos
        with self.engine.connect() as c:
            rows = c.execute(select(t).where(t.c.feed == self.feed).order_by(t.c.created)).mappings().all()
        for r in rows:
            video = Video(r["id"], r["prompt"], Concept.from_dict(json.loads(r["concept"])), r["source"], r["cost_s"])
            yield video, np.frombuffer(bytes(r["embedding"]), "<f4"), (r["views"], r["enjoyment"], r["likes"])

    def put_user(self, user: str, state: dict) -> None:
        self._upsert(feed_users, {"feed": self.feed, "id": user}, {"state": json.dumps(state), "updated": time.time()})

    def users(self):
        with self.engine.connect() as c:
            rows = c.execute(select(feed_users.c.id, feed_users.c.state).where(feed_users.c.feed == self.feed)).all()
        for user, state in rows:
            yield user, json.loads(state)

    def log(self, user: str, video: str, event: str, fraction: float | None) -> None:
        with self.engine.begin() as c:
            c.execute(insert(feed_events).values(feed=self.feed, ts=time.time(), user_name=user, video=video,
                                                 type=event, fraction=fraction))

    def events(self, user: str | None = None) -> list[tuple]:
        t = feed_events
        where = [t.c.feed == self.feed] + ([t.c.user_name == user] if user is not None else [])
        with self.engine.connect() as c:
            return [tuple(r) for r in c.execute(select(t.c.ts, t.c.user_name, t.c.video, t.c.type, t.c.fraction)
                                                .where(*where).order_by(t.c.seq)).all()]

    def put_meta(self, key: str, value: dict) -> None:
        self._upsert(feed_meta, {"feed": self.feed, "key": key}, {"value": json.dumps(value)})

    def get_meta(self, key: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(feed_meta.c.value).where(feed_meta.c.feed == self.feed,
                                                            feed_meta.c.key == key)).first()
        return json.loads(row[0]) if row else None

    def forget(self) -> None:
        """Delete this feed's rows (tests; an app that is gone)."""
        with self.engine.begin() as c:
            for table in (feed_videos, feed_users, feed_events, feed_meta):
                c.execute(delete(table).where(table.c.feed == self.feed))

    def close(self) -> None:
        pass      # the job store owns the engine


# --- a feed whose orders are jobs ------------------------------------------------------------------------------

def make_embedder(kind: str) -> Embedder:
    if kind == "minilm":
        return Embedder()
    if kind == "hashing":
        return Embedder(hashing_embedder())
    raise InvalidRequest("feed_embedder", kind, "minilm (the text encoder's sentence embedding) or hashing")


def feed_config(settings, **fixed) -> FeedConfig:
    """Settings.feed_config with `fixed` fields on top (an app's request and budget), checked by name."""
    try:
        return FeedConfig.from_dict({**settings.feed_config, **fixed})
    except TypeError as err:       # a field of the right name with a value of the wrong kind
        raise InvalidRequest("feed_config", settings.feed_config, f"FeedConfig fields ({err})") from None


class QueuedFeed:
    """A feed.Feed in the service: its Orders become jobs on the queue, their results come back from the job
    store, its state lives in the service's database.

    Args:
        ctx: the API's Context (job store, create path, model info).
        name: the feed's key in the database ("feed", "app:NAME").
        owner: the owner of the jobs it makes.
        config: its FeedConfig.
        embedder: shared by the service's feeds (a cache of prompt embeddings).
        app: the app's name (its jobs are tagged with it, and its form's videos join the library), or None.
        charge: user -> a charge(estimated_device_s) check that may refuse an order (an app's daily budget).
    """

    def __init__(self, ctx, name: str, owner: str, config: FeedConfig, embedder: Embedder,
                 app: str | None = None, charge=None):
        settings = ctx.settings
        self.ctx, self.name, self.owner, self.app, self.charge = ctx, name, owner, app, charge
        rate = settings.prices.flops_per_second.get(settings.prices.device_kind(settings.device), 1e11)
        self.lock = threading.Lock()
        self.feed = Feed(store=SQLFeedStore(ctx.store.engine, name), embedder=embedder,
                         cost=CostModel.from_model(settings.model, flops_per_second=rate), config=config,
                         info=ctx.info)
        self._probe = validate_request("a ball", seed=0, info=ctx.info, **config.request)   # what it prices
        self._library_after = 0.0
        with self.lock:
            self._collect(None, startup=True)

    # -- the job store -> the feed --

    def _collect(self, user: str | None, startup: bool = False) -> None:
        """Finished jobs of open orders -> fulfil (or cancel when failed); an app's new form videos -> the
        library. At start-up, orders that never became jobs (the server stopped in between) are cancelled."""
        feed = self.feed
        open_ = [o.ticket for u, st in feed.users.items() if user is None or u == user
                 for o in st.queue if not o.video_id]
        jobs = self.ctx.store.tickets(open_)
        for ticket in open_:
            job = jobs.get(ticket)
            if job is None:
                if startup:
                    feed.cancel(ticket)
            elif job["status"] == "completed" and not job["deleted"]:
                feed.fulfil(ticket, job["id"], device_s=job["device_s"])
                if job["device_s"]:     # keep the estimates honest: the measured time moves the FLOP rate
                    feed.cost.observe(self._probe, job["device_s"])
                    feed.request_cost_s = feed.cost.device_seconds(self._probe)
            elif job["status"] == "failed" or job["deleted"]:
                feed.cancel(ticket)
        if self.app is not None:
            for job in self.ctx.store.app_videos(self.app, self._library_after):
                feed.add_video(job["id"], job["fields"].get("prompt") or job["prompt"])
                self._library_after = max(self._library_after, job["completed_at"])

    def _submit(self, orders: list, user: str) -> None:
        for i, order in enumerate(orders):
            body, files = to_api(order.fields)
            body["expand_prompt"] = False       # the feed writes its prompts in the model's own grammar
            try:
                self.ctx.create_job({}, self.owner, None, body, files, dedupe=False,
                                    charge=self.charge(user) if self.charge else None,
                                    tag={"app": self.app, "user_name": user, "ticket": order.ticket})
            except APIError as err:          # over the app's budget, or refused: the estimate goes back
                log.info("feed %s: order for %s not queued: %s", self.name, user, err.message)
                for rest in orders[i:]:
                    self.feed.cancel(rest.ticket)
                return

    # -- what the routes call --

    def next(self, user: str) -> dict | None:
        with self.lock:
            self._collect(user)
            show = None
            for _ in range(8):            # a video deleted since it joined the library is passed over
                show = self.feed.next(user)
                if show is None or self.ctx.store.get(show.video_id) is not None:
                    break
                show = None
            self._submit(self.feed.plan(user), user)
            if show is None:
                return None
            concept = self.feed.videos[show.video_id].concept
            return {"object": "feed.item", **asdict(show), "concept": concept.to_dict()}

    def record(self, user: str, body) -> dict:
        if not isinstance(body, dict):
            raise APIError(400, "the body must be a JSON object {\"event\", \"video_id\", \"fraction\"}", None,
                           "invalid_json")
        for name in body:
            if name not in ("event", "video_id", "fraction"):
                raise APIError(400, f"Unknown parameter: '{name}'. Known: event, video_id, fraction", name,
                               "unknown_parameter")
        fraction = body.get("fraction")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, type(None))):
            raise APIError(400, f"fraction={fraction!r} is not allowed: a number from 0 to 1 (the part of the "
                           "video watched)", "fraction", "invalid_value")
        with self.lock:
            try:
                self.feed.record(user, body.get("event"), body.get("video_id"), fraction)
            except InvalidRequest as err:
                raise APIError(400, str(err), err.field, "invalid_value") from None
            st = self.feed.users[user]
            return {"object": "feed.event", "event": body["event"], "video_id": body["video_id"],
                    "views": st.views, "likes": st.likes}

    def me(self, user: str) -> dict:
        """The user's state, and their taste: the enjoyment each attribute value adds under their model's
        posterior mean (which starts at the population's)."""
        with self.lock:
            self._collect(user)
            feed = self.feed
            budget = feed.budget(user)
            st = feed.users[user]
            weights = st.model.mean(feed.population.mean())
            column = 1 + len(feed.features.components)
            taste = {}
            for attribute in ATTRIBUTES:
                values = VALUES[attribute]
                part = weights[column:column + len(values)] * feed.features.scene_weight
                taste[attribute] = {v: round(float(x), 4) for v, x in zip(values, part)}
                column += len(values)
            return {"object": "feed.user", "user": user, "views": st.views, "likes": st.likes,
                    "seen": len(st.seen), "library": len(feed.videos), "budget": budget, "taste": taste}

    def content(self, video_id: str, variant: str) -> Response:
        job = self.ctx.store.get(video_id) if video_id in self.feed.videos else None
        if job is None:
            raise APIError(404, f"No video '{video_id}' in this feed.", "video_id", "video_not_found")
        return self.ctx.content(job, variant)


class LazyFeed:
    """Builds its QueuedFeed on first use (fitting the feature basis embeds 2,048 prompts the first time), and
    again when what it was built from changes (an app file's generation fields or budget)."""

    def __init__(self, build):
        self.build, self.lock = build, threading.Lock()
        self.key, self.value = None, None

    def get(self, key=None) -> QueuedFeed:
        with self.lock:
            if self.value is None or key != self.key:
                self.value, self.key = self.build(), key
            return self.value


# --- routes -------------------------------------------------------------------------------------------------------

def add_feed_routes(app, page: str, api: str, feed_of, user_of, title) -> None:
    """The page at `page` and the JSON routes under `api` ("/v1/feed", "/apps/{name}/feed"). `feed_of(request)`
    -> the QueuedFeed (or the APIError: 404, 503); `user_of(request)` -> the user (or the APIError: 401, 403);
    `title(request)` -> the page's title."""
    def resolve(request: Request):
        feed = feed_of(request)
        return feed, user_of(request)

    def urls(request: Request) -> str:
        return api.format(**request.path_params)

    # the handlers read {name} (an app's feed) from request.path_params: declare it for /openapi.json
    names = [n for n in ("name",) if "{" + n + "}" in api]
    extra = {"openapi_extra": {"parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                              for n in names]}} if names else {}

    @app.get(page, response_class=HTMLResponse, include_in_schema=False)
    def feed_page(request: Request):
        base = urls(request)
        return feed_html(title(request), api_url=base, videos_url=base + "/videos")

    @app.get(api + "/next", tags=["feed"], summary="The next video for this user (204: none yet, ask again)",
             **extra)
    def feed_next(request: Request):
        feed, user = resolve(request)
        item = feed.next(user)
        if item is None:
            return Response(status_code=204)
        return {**item, "content_url": f"{urls(request)}/videos/{item['video_id']}/content"}

    @app.post(api + "/events", tags=["feed"], summary="Record a view_start, watch, like or skip", **extra)
    async def feed_event(request: Request):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as err:
            raise APIError(400, f"the body is not valid JSON: {err}", None, "invalid_json") from None
        feed, user = await run_in_threadpool(resolve, request)
        return await run_in_threadpool(feed.record, user, body)

    @app.get(api + "/me", tags=["feed"], summary="This user's views, likes, budget and taste", **extra)
    def feed_me(request: Request):
        feed, user = resolve(request)
        return feed.me(user)

    @app.get(api + "/videos/{video_id}/content", tags=["feed"], summary="A video of the feed's library", **extra)
    def feed_content(video_id: str, request: Request):
        return feed_of(request).content(video_id, request.query_params.get("variant", "video"))


def mount_feed(app, ctx) -> None:
    """/feed and /v1/feed/...: the service's own feed (Settings.feed_config), for signed-in users (everyone in
    local mode)."""
    settings = ctx.settings
    config = feed_config(settings)
    validate_request("a ball", seed=0, info=ctx.info, **config.request)     # a bad request is named at start
    embedder = make_embedder(settings.feed_embedder)
    app.state.feed_embedder = embedder
    app.state.feed = LazyFeed(lambda: QueuedFeed(ctx, "feed", "feed", config, embedder))

    add_feed_routes(app, "/feed", "/v1/feed", lambda request: app.state.feed.get(),
                    lambda request: ctx.identify(request).budget_user, lambda request: "straightline")


__all__ = ["LazyFeed", "QueuedFeed", "SQLFeedStore", "add_feed_routes", "feed_config", "make_embedder",
           "mount_feed"]
