"""The HTTP API: OpenAI's Video API, wire-compatible, plus our extensions.

    POST   /v1/videos                        create (multipart form or JSON) -> video object
    GET    /v1/videos/{id}                   retrieve; the openai-poll-after-ms header says when to ask again
    GET    /v1/videos?after=&limit=&order=   list, cursor pagination
    DELETE /v1/videos/{id}                   delete (a running job is cancelled)
    GET    /v1/videos/{id}/content?variant=video|thumbnail|spritesheet
    POST   /v1/videos/{id}/remix             the video remade with a new prompt (SDEdit of the source)
    POST   /v1/videos/extensions             a video (upload or {"id"}) continued by `seconds` (mode extend)
    POST   /v1/videos/edits                  a video (upload or {"id"}) remade with the prompt (mode edit)
  extensions:
    POST   /v1/videos/{id}/cancel            stop between sampler steps
    POST   /v1/videos/quote                  FLOPs, device seconds and price before submitting
    GET    /v1/videos/{id}/events            server-sent events: the video at each change, until it finishes
    GET    /v1/usage                         this key's videos, device seconds, FLOPs and spend
    GET    /                                 the studio (studio.py): a web page over these routes

Statuses are queued -> in_progress -> completed | failed; a cancelled job is failed with error.code
"cancelled" (the SDK's poll loop knows only these four). Errors are {"error": {message, type, param, code}}
with the request field in `param`; the message is the one the CLI prints for the same mistake.

Retries: the SDK retries a create on timeouts, 408, 409, 429 and 5xx, without an idempotency key. A create
with an Idempotency-Key header is made once per key; without one, the same request (fields and uploaded
bytes) from the same owner within Settings.dedupe_window_s (retry_window_s when the SDK's
x-stainless-retry-count header says it is a retry) returns the first job. Send a new Idempotency-Key (or a
seed) to make the same request twice on purpose.
"""

import asyncio
import base64
import binascii
import datetime
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..model import load_info
from ..pipeline import DEFAULT_STRENGTH
from .cost import estimate_flops, flops_per_token
from .settings import Settings
from .spec import FILE_FIELDS, MODES, APIError, boolean, check_types, expand, validate
from .store import JobStore, fingerprint
from .studio import STUDIO_HTML

log = logging.getLogger("straightline.api")

VARIANTS = ("video", "thumbnail", "spritesheet")
CHUNK = 1 << 20


def create_app(settings: Settings | None = None, store: JobStore | None = None, wake=None) -> FastAPI:
    """The API over a job store. `wake()` is called after a job is queued (an in-process worker's wake)."""
    settings = settings or Settings()
    store = store or JobStore(settings.db, lease_s=settings.lease_s, max_attempts=settings.max_attempts)
    app = FastAPI(title="straightline", summary="OpenAI-compatible video generation", version="0.1.0")
    app.state.settings, app.state.store = settings, store
    info = load_info(settings.model)
    flops_per_token(settings.model)    # builds the DiT on the meta device once, now rather than in the first create
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    wake = wake or (lambda: None)

    # --- errors, as OpenAI writes them -----------------------------------------------------------------

    @app.exception_handler(APIError)
    async def api_error(request, err: APIError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err: StarletteHTTPException):
        if err.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}"
        elif err.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(err.detail)
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(err.status_code)
        return JSONResponse(APIError(err.status_code, message, None, code).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def server_error(request, err: Exception):
        log.exception("%s %s", request.method, request.url.path)
        return JSONResponse(APIError(500, f"internal error: {type(err).__name__}", None, "server_error",
                                     "server_error").body(), status_code=500)

    # --- who is asking ---------------------------------------------------------------------------------

    def owner_of(request: Request) -> tuple[str, dict | None]:
        """-> (owner, key row); 401 for a missing or unknown key when keys are required."""
        caller = identify(request)
        return caller.owner, caller.key

    def identify(request: Request, anonymous: bool = False) -> Caller:
        """Who is asking. Local mode (no keys): the one user "local". With keys: the key's owner and name; 401 for
        a missing key unless `anonymous` (public apps), and for an unknown or revoked key always."""
        if not settings.require_keys:
            return Caller("local", "local", None, local=True)
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not key:
            if anonymous:
                return Caller(f"anon:{request.client.host if request.client else 'unknown'}", None, None)
            raise APIError(401, "Missing API key: send it as 'Authorization: Bearer sk-sl-…'", None,
                           "missing_api_key", "authentication_error")
        row = store.find_key(key)
        if row is None or row["revoked"]:
            raise APIError(401, f"Incorrect API key provided: {key[:8]}…", None, "invalid_api_key",
                           "authentication_error")
        return Caller(row["id"], row["name"], row)

    def video(job: dict) -> dict:
        return video_object(job, store, settings)

    def find(job_id: str, owner: str) -> dict:
        job = store.get(job_id, owner)
        if job is None:     # another key's video reads as missing too: ids do not leak across keys
            raise APIError(404, f"No video found with id '{job_id}'.", "video_id", "video_not_found")
        return job

    def poll_headers(job: dict) -> dict:
        return {"openai-poll-after-ms": str(settings.poll_after_ms)} if job["status"] in ("queued", "in_progress") \
            else {}

    # --- create ----------------------------------------------------------------------------------------

    async def submit(request: Request, body: dict, files: dict[str, Path], *, remix_of: dict | None = None,
                     quote_only: bool = False):
        owner, key = await run_in_threadpool(owner_of, request)
        try:
            made = await run_in_threadpool(create_job, request.headers, owner, key, body, files, remix_of=remix_of,
                                           quote_only=quote_only)
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)
        return made if quote_only else respond(*made)

    def respond(job: dict, created: bool) -> JSONResponse:
        """The video object of a new job, or of the earlier job a repeated request gets back."""
        headers = poll_headers(job) | ({} if created else {"x-straightline-deduplicated": "true"})
        return JSONResponse(video(job), headers=headers)

    def create_job(headers, owner: str, key: dict | None, body: dict, files: dict[str, Path], *,
                   remix_of: dict | None = None, quote_only: bool = False, dedupe: bool = True, charge=None,
                   tag: dict | None = None):
        """The one create path (/v1/videos, the apps, the feeds): API fields and uploaded files -> (job, created),
        or the quote. `dedupe=False` makes a repeated request a new job (only an Idempotency-Key dedupes);
        `charge(estimated_device_s)` may refuse it (an app's budget) before it is queued; `tag` (app,
        user_name, ticket) is stored with it."""
        check_types(body)
        model = body.pop("model", None) or settings.model_name
        if not settings.accepts(model):
            raise APIError(400, f"model={model!r} is not allowed: {settings.model_name} (or an OpenAI model name "
                           f"such as sora-2, which gets it)", "model", "invalid_value")
        # like `straightline generate`: text goes through intent unless the client says expand_prompt=false
        mode = body.get("mode") or "generate"
        asked = body.pop("expand_prompt", None)
        expanded = boolean("expand_prompt", asked) if asked is not None else mode in ("generate", "image")
        expanded = expanded and bool(str(body.get("prompt") or "").strip())
        source_id = body.pop("source_video_id", None)
        if mode not in MODES:
            raise APIError(400, f"mode={mode!r} is not allowed: {' | '.join(MODES)}", "mode", "invalid_value")
        idempotency_key = headers.get("idempotency-key") or None
        sums = {name: _sha256(path) for name, path in files.items()}
        fp = fingerprint(owner, {**body, "model": model, "expand": asked, "source": source_id,
                                 "remix": remix_of and remix_of["id"]}, {k: v.encode() for k, v in sums.items()})
        retry = headers.get("x-stainless-retry-count", "0")
        window = settings.retry_window_s if retry.isdigit() and int(retry) > 0 else settings.dedupe_window_s
        dedupe_after = time.time() - window if dedupe else None
        if not quote_only:
            duplicate = store.find_duplicate(owner, fp, idempotency_key, dedupe_after)
            if duplicate is not None:
                return _same_request(duplicate, fp, idempotency_key)

        # inputs: uploads, or a finished video of this owner's
        inputs: dict[str, object] = {}
        routes = {"input_reference": _input_field(mode, "input_reference"),
                  "end_reference": _input_field(mode, "end_reference")}
        for name, path in files.items():
            if routes[name] is None:
                raise APIError(400, f"{name} is not used by mode {mode!r}", name, "invalid_value")
            inputs[routes[name]] = path
        source = remix_of
        if source_id is not None:
            if "input_reference" in files:
                raise APIError(400, "give input_reference or source_video_id, not both", "source_video_id",
                               "invalid_value")
            source = find(source_id, owner)
            made = {**source["summary"], **(source["result"] or {})}
            if all(body.get(k) in (None, "") for k in ("size", "aspect", "resolution")):
                body["size"] = f"{made['width']}x{made['height']}"     # a video of yours keeps its size ...
            if body.get("fps") in (None, ""):
                body["fps"] = made["fps"]                                # ... and its frame rate
        if source is not None:
            blob = _finished_video(store, source)
            field = routes["input_reference"] if remix_of is None else "video"
            if field is None:
                raise APIError(400, f"source_video_id is not used by mode {mode!r}", "source_video_id",
                               "invalid_value")
            inputs[field] = blob
        expanded_prompt, prompt = None, body.get("prompt") or ""
        if expanded:
            try:
                body, expanded_prompt = expand(body, info)
            except APIError:
                if asked is not None:     # asked for: its error, as the CLI gives it
                    raise
                # by default: a prompt intent cannot read is generated as written, as OpenAI's API would

        spec = validate(body, inputs, info)
        flops = estimate_flops(spec.request, settings.model)
        device_s = settings.prices.estimate_device_s(flops, settings.device)
        price = settings.prices.price(flops, device_s, settings.device)
        if quote_only:
            return _quote(spec, model, flops, device_s, price, expanded_prompt)
        if charge is not None:
            charge(device_s)
        _check_limits(store, settings, key, price)

        blobs = {}
        for field, value in inputs.items():
            data = value if isinstance(value, bytes) else Path(value).read_bytes()
            blobs[f"input:{field}"] = ("application/octet-stream", data)
        fields = {**spec.fields, "inputs": {field: f"input:{field}" for field in inputs}}
        summary = {**spec.summary, "expanded_prompt": expanded_prompt}
        job, created = store.create(
            owner=owner, model=model, prompt=prompt, fields=fields,
            shape=spec.shape, summary=summary, fingerprint=fp, inputs=blobs, idempotency_key=idempotency_key,
            dedupe_after=dedupe_after, remixed_from=remix_of["id"] if remix_of else None, flops=flops,
            estimated_price=price, tag=tag and {**tag, "estimated_device_s": device_s})
        if not created:
            return _same_request(job, fp, idempotency_key)
        wake()
        return job, True

    def _same_request(job: dict, fp: str, idempotency_key: str | None):
        if idempotency_key is not None and job["fingerprint"] != fp:
            raise APIError(400, f"Idempotency-Key {idempotency_key!r} was already used with another request "
                           f"(video {job['id']}); use a new key for a new request", "Idempotency-Key",
                           "idempotency_key_reused")
        return job, False

    def _quote(spec, model, flops, device_s, price, expanded_prompt):
        s = spec.summary
        return {"object": "video.quote", "model": model, "size": f"{s['width']}x{s['height']}",
                "seconds": _seconds_text(s["seconds"]), "frames": s["frames"], "fps": s["fps"], "steps": s["steps"],
                "flops": flops, "device": settings.device, "estimated_device_s": round(device_s, 3),
                "price": price, "currency": settings.prices.currency, "queued": store.queue_length(),
                "prompt": spec.fields["prompt"], "expanded_prompt": expanded_prompt}

    @app.post("/v1/videos")
    async def create(request: Request):
        body, files = await read_body(request, settings)
        return await submit(request, body, files)

    @app.post("/v1/videos/quote")
    async def quote(request: Request):
        body, files = await read_body(request, settings)
        return await submit(request, body, files, quote_only=True)

    @app.post("/v1/videos/{video_id}/remix")
    async def remix(video_id: str, request: Request):
        body, files = await read_body(request, settings)
        if files:
            raise APIError(400, "a remix takes no files: it remakes the video it names", next(iter(files)),
                           "invalid_value")
        owner, _ = await run_in_threadpool(owner_of, request)
        source = await run_in_threadpool(find, video_id, owner)
        for name in ("mode", "input_reference", "source_video_id", "size", "aspect", "resolution", "seconds",
                     "frames", "fps"):
            if name in body:
                raise APIError(400, f"a remix keeps its source's {name}: leave it out", name, "invalid_value")
        s = source["summary"]
        defaults = {"model": source["model"], "size": f"{s['width']}x{s['height']}", "fps": s["fps"],
                    "seed": s["seed"], "steps": s["steps"], "cfg": s["cfg"], "sampler": s["sampler"],
                    "strength": DEFAULT_STRENGTH} | ({"cfg_interval": s["cfg_interval"]} if "cfg_interval" in s else {})
        body = {"mode": "edit", **defaults, **body}
        return await submit(request, body, {}, remix_of=source)

    async def from_video(request: Request, mode: str):
        """The SDK's videos.edit / videos.extend: `video` is an upload or {"id": a finished video}."""
        body, files = await read_body(request, settings, file_fields=("video",))
        video = body.pop("video", None)
        if "video" in files:
            files["input_reference"] = files.pop("video")
        elif isinstance(video, dict) and isinstance(video.get("id"), str):
            body["source_video_id"] = video["id"]
        else:
            for path in files.values():
                path.unlink(missing_ok=True)
            raise APIError(400, "video is required: a video file, or {\"id\": \"video_…\"} of a finished video",
                           "video", "invalid_value")
        if "mode" in body:
            raise APIError(400, f"this route's mode is {mode}: leave mode out", "mode", "invalid_value")
        return await submit(request, {**body, "mode": mode}, files)

    @app.post("/v1/videos/extensions")
    async def extend(request: Request):
        return await from_video(request, "extend")

    @app.post("/v1/videos/edits")
    async def edit(request: Request):
        return await from_video(request, "edit")

    # --- read, list, delete, cancel --------------------------------------------------------------------

    @app.get("/v1/videos/{video_id}")
    def retrieve(video_id: str, request: Request):
        owner, _ = owner_of(request)
        job = find(video_id, owner)
        return JSONResponse(video(job), headers=poll_headers(job))

    @app.get("/v1/videos")
    def list_videos(request: Request):
        owner, _ = owner_of(request)
        query = request.query_params
        for name in query:
            if name not in ("after", "limit", "order"):
                raise APIError(400, f"Unknown parameter: '{name}'. Known: after, limit, order", name,
                               "unknown_parameter")
        limit = query.get("limit", "20")
        if not re.fullmatch(r"\d+", limit) or not 1 <= int(limit) <= 100:
            raise APIError(400, f"limit={limit!r} is not allowed: a whole number from 1 to 100", "limit",
                           "invalid_value")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise APIError(400, f"order={order!r} is not allowed: asc or desc", "order", "invalid_value")
        after = query.get("after") or None
        page = store.page(owner, after=after, limit=int(limit), order=order)
        if page is None:
            raise APIError(400, f"after={after!r} is not allowed: the id of one of your videos", "after",
                           "invalid_value")
        rows, has_more = page
        data = [video(job) for job in rows]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}

    @app.delete("/v1/videos/{video_id}")
    def delete(video_id: str, request: Request):
        owner, _ = owner_of(request)
        find(video_id, owner)
        store.delete(video_id)
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @app.post("/v1/videos/{video_id}/cancel")
    def cancel(video_id: str, request: Request):
        owner, _ = owner_of(request)
        job = find(video_id, owner)
        if store.cancel(video_id) == "finished" and job["error_code"] != "cancelled":
            raise APIError(400, f"video {video_id} has already {job['status']}; only queued and in_progress "
                           "videos can be cancelled", "video_id", "video_finished")
        job = find(video_id, owner)
        return JSONResponse(video(job), headers=poll_headers(job))

    @app.get("/v1/videos/{video_id}/content")
    def content(video_id: str, request: Request):
        owner, _ = owner_of(request)
        variant = request.query_params.get("variant", "video")
        if variant not in VARIANTS:
            raise APIError(400, f"variant={variant!r} is not allowed: {' | '.join(VARIANTS)}", "variant",
                           "invalid_value")
        return content_response(find(video_id, owner), variant)

    def content_response(job: dict, variant: str = "video") -> Response:
        if variant not in VARIANTS:
            raise APIError(400, f"variant={variant!r} is not allowed: {' | '.join(VARIANTS)}", "variant",
                           "invalid_value")
        if job["status"] != "completed":
            raise APIError(400, _not_ready(job), "video_id", "video_not_ready")
        blob = store.blob(job["id"], variant)
        if blob is None:
            raise APIError(404, f"video {job['id']} has no {variant}", "variant", "content_not_found")
        content_type, data = blob
        suffix = {"video": "mp4", "thumbnail": "webp", "spritesheet": "jpg"}[variant]
        return Response(data, media_type=content_type,
                        headers={"content-disposition": f'attachment; filename="{job["id"]}.{suffix}"'})

    @app.get("/v1/videos/{video_id}/events")
    async def events(video_id: str, request: Request):
        """Server-sent events: the video object each time its status or progress changes, until it finishes."""
        owner, _ = await run_in_threadpool(owner_of, request)
        job = await run_in_threadpool(find, video_id, owner)

        async def stream():
            last = None
            current = job
            while True:
                state = (current["status"], current["progress"], current["cancel_requested"])
                if state != last:
                    last = state
                    yield f"event: video\ndata: {json.dumps(video(current))}\n\n"
                if current["status"] in ("completed", "failed") or await request.is_disconnected():
                    return
                await asyncio.sleep(settings.poll_after_ms / 4000)
                current = await run_in_threadpool(store.get, video_id, owner)
                if current is None:     # deleted meanwhile
                    yield f"event: deleted\ndata: {json.dumps({'id': video_id})}\n\n"
                    return

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    # --- usage -----------------------------------------------------------------------------------------

    @app.get("/v1/usage")
    def usage(request: Request):
        owner, key = owner_of(request)
        today = store.usage(owner, since=_utc_midnight())
        limits = {}
        if key is not None:
            for name, used in (("daily_budget", today["committed_price"]), ("daily_device_s", today["device_s"])):
                if key[name] is not None:
                    limits[name] = {"limit": key[name], "used": used, "remaining": max(0.0, key[name] - used)}
            if key["rate_per_minute"] is not None:
                limits["rate_per_minute"] = {"limit": key["rate_per_minute"]}
        return {"object": "usage", "owner": owner, "currency": settings.prices.currency, "today": today,
                "total": store.usage(owner), "limits": limits}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def studio():
        return STUDIO_HTML

    @app.get("/healthz")
    def health():
        return {"ok": True, "queued": store.queue_length(), "model": settings.model_name}

    # --- the apps and the feeds (apps.py, feeds.py): their jobs go through create_job above ---------------

    ctx = Context(settings, store, info, identify, create_job, respond, find, video, content_response)
    if settings.feed:
        from .feeds import mount_feed
        mount_feed(app, ctx)
    if settings.apps_dir is not None:
        from .apps import mount_apps
        mount_apps(app, ctx)
    return app


@dataclass
class Caller:
    """Who sent a request: `owner` owns the jobs it makes (a key's id, "local", or "anon:IP" for a public app
    without a key); `user` is the name access lists and budgets go by (the key's name; None: anonymous)."""
    owner: str
    user: str | None
    key: dict | None
    local: bool = False

    @property
    def budget_user(self) -> str:
        return self.user or self.owner


@dataclass
class Context:
    """What the apps' and the feeds' routes share with the video API."""
    settings: Settings
    store: JobStore
    info: object
    identify: Callable      # (request, anonymous=False) -> Caller
    create_job: Callable    # (headers, owner, key, body, files, **options) -> (job, created)
    respond: Callable       # (job, created) -> the video object response
    find: Callable          # (job_id, owner) -> job, or a 404 naming it
    video: Callable         # job -> the video object
    content: Callable       # (job_id, variant) -> the file response


# --- helpers -----------------------------------------------------------------------------------------------

def video_object(job: dict, store: JobStore, settings: Settings) -> dict:
    """A job as OpenAI's Video object, with our extensions after the standard fields."""
    s, r = job["summary"], job["result"] or {}
    width, height = r.get("width", s["width"]), r.get("height", s["height"])
    seconds = r.get("seconds", s["seconds"])
    error = None
    if job["error_code"]:
        error = {"code": job["error_code"], "message": job["error_message"] or job["error_code"]}
    finished = job["status"] in ("completed", "failed")
    expires = None
    if settings.expires_after_s and job["completed_at"]:
        expires = int(job["completed_at"] + settings.expires_after_s)
    return {
        "id": job["id"], "object": "video", "created_at": int(job["created_at"]),
        "completed_at": int(job["completed_at"]) if finished and job["completed_at"] else None,
        "expires_at": expires, "model": job["model"], "progress": int(job["progress"]), "prompt": job["prompt"],
        "remixed_from_video_id": job["remixed_from"], "seconds": _seconds_text(seconds),
        "size": f"{width}x{height}", "status": job["status"], "error": error,
        # extensions
        "mode": s["mode"], "fps": s["fps"], "frames": r.get("frames", s["frames"]),
        "requested_frames": s["requested_frames"] or s["frames"], "seed": s["seed"], "steps": s["steps"],
        "cfg": s["cfg"], "cfg_interval": s.get("cfg_interval"), "sampler": s["sampler"],
        "negative_prompt": s["negative_prompt"],
        "expanded_prompt": s.get("expanded_prompt"), "note": r.get("note", s["note"]),
        "queue_position": store.queue_position(job["seq"]) if job["status"] == "queued" else None,
        "cancel_requested": bool(job["cancel_requested"]), "attempts": job["attempts"],
        "cost": {"currency": settings.prices.currency, "estimated_price": job["estimated_price"],
                 "price": job["price"], "flops": job["flops"], "queue_wait_s": _round(job["queue_wait_s"]),
                 "device_s": _round(job["device_s"]), "batch_size": job["batch_size"]},
    }


def _round(x):
    return None if x is None else round(x, 4)


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _not_ready(job: dict) -> str:
    if job["status"] == "failed":
        return f"video {job['id']} failed ({job['error_code']}): it has no content"
    return f"video {job['id']} is {job['status']} ({job['progress']}%): its content is ready when it is completed"


def _input_field(mode: str, name: str) -> str | None:
    from .spec import END_FIELD, INPUT_FIELD
    return (INPUT_FIELD if name == "input_reference" else END_FIELD).get(mode)


def _finished_video(store: JobStore, job: dict) -> bytes:
    if job["status"] != "completed":
        raise APIError(400, _not_ready(job), "video_id", "video_not_ready")
    blob = store.blob(job["id"], "video")
    if blob is None:
        raise APIError(400, f"video {job['id']} has no content", "video_id", "video_not_ready")
    return blob[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _utc_midnight() -> float:
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _check_limits(store: JobStore, settings: Settings, key: dict | None, price: float) -> None:
    """A key's rate limit (429, with Retry-After) and daily budgets (403)."""
    if key is None:
        return
    if key["rate_per_minute"] is not None:
        made = store.created_since(key["id"], time.time() - 60)
        if made >= key["rate_per_minute"]:
            raise APIError(429, f"Rate limit reached: {key['rate_per_minute']} videos per minute for this key",
                           None, "rate_limit_exceeded", "rate_limit_error", headers={"retry-after": "60"})
    today = store.usage(key["id"], since=_utc_midnight())
    if key["daily_budget"] is not None and today["committed_price"] + price > key["daily_budget"]:
        raise APIError(403, f"Budget exceeded: this video is quoted at {price:.6f} {settings.prices.currency} and "
                       f"{today['committed_price']:.6f} of today's {key['daily_budget']} is spent or committed",
                       None, "budget_exceeded", "insufficient_quota")
    if key["daily_device_s"] is not None and today["device_s"] >= key["daily_device_s"]:
        raise APIError(403, f"Budget exceeded: {today['device_s']:.1f} of today's {key['daily_device_s']} device "
                       "seconds are spent", None, "budget_exceeded", "insufficient_quota")


# --- request bodies --------------------------------------------------------------------------------------

async def read_body(request: Request, settings: Settings,
                    file_fields: tuple[str, ...] = FILE_FIELDS) -> tuple[dict, dict[str, Path]]:
    """A form (multipart or urlencoded) or a JSON object -> (fields, uploaded files on disk). Bodies are
    size-limited while they stream in; files are written to Settings.upload_dir. Form keys "a[b]" (the SDK's
    encoding of an object in a form, e.g. input_reference[image_url] or video[id]) become {"a": {"b": …}}."""
    limit = 2 * settings.max_upload_bytes + (1 << 20)      # two files and the fields
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise APIError(413, f"request body of {int(length)} bytes is larger than the {limit} allowed "
                       f"(each uploaded file at most {settings.max_upload_bytes} bytes)", "input_reference",
                       "file_too_large")
    request = Request(request.scope, _limited(request, limit, settings))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=len(file_fields), max_fields=64)
        body, files = {}, {}
        try:
            for name, value in form.multi_items():
                if name in body or name in files:
                    raise APIError(400, f"{name} is given twice", name, "invalid_value")
                if isinstance(value, UploadFile):
                    if name not in file_fields:
                        raise APIError(400, f"{name} is not a file field (files: {', '.join(file_fields)})", name,
                                       "invalid_value")
                    files[name] = await _save_upload(value, name, settings)
                elif nested := re.fullmatch(r"(\w+)\[(\w+)\]", name):
                    outer = body.setdefault(nested.group(1), {})
                    if not isinstance(outer, dict):
                        raise APIError(400, f"{nested.group(1)} is given twice", nested.group(1), "invalid_value")
                    outer[nested.group(2)] = value
                else:
                    body[name] = value
            for name in FILE_FIELDS:
                if isinstance(body.get(name), dict):
                    files[name] = _save_reference(body.pop(name), name, settings)
        except BaseException:
            for path in files.values():
                path.unlink(missing_ok=True)
            raise
        finally:
            await form.close()
        return body, files
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as err:
            raise APIError(400, f"the body is not valid JSON: {err}", None, "invalid_json") from None
        if not isinstance(body, dict):
            raise APIError(400, "the body must be a JSON object", None, "invalid_json")
        files = {}
        for name in FILE_FIELDS:
            if body.get(name) is not None:
                files[name] = _save_reference(body.pop(name), name, settings)
        return body, files
    raise APIError(415, f"Content-Type {content_type!r} is not supported: multipart/form-data or application/json",
                   None, "unsupported_media_type")


def _limited(request: Request, limit: int, settings: Settings):
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise APIError(413, f"request body larger than the {limit} bytes allowed (each uploaded file at "
                               f"most {settings.max_upload_bytes} bytes)", "input_reference", "file_too_large")
        return message
    return receive


async def _save_upload(upload: UploadFile, name: str, settings: Settings) -> Path:
    """An uploaded file (already spooled to disk by the form parser beyond 1 MB) -> a file of ours."""
    path = settings.upload_dir / f"{secrets.token_hex(12)}.upload"
    size = 0
    with open(path, "wb") as out:  # noqa: ASYNC230 - a local file: writes do not block for long
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise APIError(413, f"{name} is larger than the {settings.max_upload_bytes} bytes allowed", name,
                               "file_too_large")
            out.write(chunk)
    if size == 0:
        path.unlink(missing_ok=True)
        raise APIError(400, f"{name} is empty (0 bytes)", name, "invalid_media")
    return path


def _save_reference(value, name: str, settings: Settings) -> Path:
    """JSON's input_reference: {"image_url": "data:…;base64,…"} (file_id and web URLs are not supported: the
    service does not fetch from the network)."""
    if not isinstance(value, dict):
        raise APIError(400, f"{name} in JSON must be an object {{\"image_url\": \"data:image/png;base64,…\"}}; "
                       "upload a file with multipart/form-data instead", name, "invalid_type")
    if "file_id" in value:
        raise APIError(400, f"{name}.file_id is not supported: upload the file with multipart/form-data or send a "
                       "data URL as image_url", f"{name}.file_id", "unsupported_value")
    url = value.get("image_url")
    match = re.fullmatch(r"data:[\w/+.-]*(;[\w=-]+)*;base64,(.*)", url or "", flags=re.DOTALL)
    if not match:
        raise APIError(400, f"{name}.image_url must be a data URL (data:image/png;base64,…); the service does not "
                       "fetch URLs", f"{name}.image_url", "unsupported_value")
    encoded = match.group(2)
    if len(encoded) > math.ceil(settings.max_upload_bytes * 4 / 3) + 4:
        raise APIError(413, f"{name} is larger than the {settings.max_upload_bytes} bytes allowed", name,
                       "file_too_large")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{name}.image_url is not valid base64", f"{name}.image_url", "invalid_media") from None
    if not data:
        raise APIError(400, f"{name} is empty (0 bytes)", name, "invalid_media")
    path = settings.upload_dir / f"{secrets.token_hex(12)}.upload"
    path.write_bytes(data)
    return path
