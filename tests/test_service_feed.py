"""The feed served by a live server: the vertical page in headless Chromium (a video plays; like and skip are
recorded through the API and the next video comes up), events moving the user's taste model, videos
generated ahead of time as jobs on the queue, the state surviving a restart, and an app's own feed."""

import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_FLAGS

from straightline.feed import ATTRIBUTES
from straightline.service import Settings
from straightline.service.server import ThreadServer, build, shutdown

EXAMPLES = Path(__file__).parent.parent / "apps"
# small videos, no budget limit: every decision may generate (the tiny model's videos cost next to nothing)
FEED = {"request": {"aspect": "9:16", "seconds": 0.5, "steps": 2}, "daily_budget_s": None}


@contextmanager
def serving(tmp_path, model_dir, pipe, db=None, **overrides):
    settings = Settings(db=db or f"sqlite:///{tmp_path}/jobs.db", model=str(model_dir), poll_after_ms=50, lease_s=3,
                        upload_dir=tmp_path / "uploads", feed_embedder="hashing", feed_config=FEED, **overrides)
    app = build(settings, pipeline=pipe)
    try:
        with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield url, client, app
    finally:
        shutdown(app)


def next_video(client: httpx.Client, path="/v1/feed/next", timeout=60.0) -> dict:
    """Ask until there is one (204: its videos are still being made)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(path)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 204, r.text
        time.sleep(0.1)
    raise AssertionError("the feed had nothing to show")


def test_the_feed_page_plays_likes_and_skips_in_the_browser(tmp_path, model_dir, pipe):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (.ci/run installs it)")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's)")
    with serving(tmp_path, model_dir, pipe) as (url, client, app), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 360, "height": 640})
        page.set_default_timeout(60_000)
        page.goto(url + "/feed")
        playing = ("(() => {{ const v = document.querySelectorAll('.item video')[{}];"
                   " return v && v.readyState >= 2 && !v.paused && v.videoHeight > v.videoWidth; }})()")
        page.wait_for_function(playing.format(0))          # a vertical video plays by itself
        first = page.get_attribute(".item >> nth=0", "data-id")
        events = app.state.feed.get().feed.store.events

        page.click(".item >> nth=0 >> .like")
        page.wait_for_function("document.querySelector('.item .like').classList.contains('liked')")
        page.wait_for_function("document.querySelectorAll('.item').length >= 2")
        page.click(".item >> nth=0 >> .skip")
        page.wait_for_function(playing.format(1))          # the next video comes up and plays
        second = page.get_attribute(".item >> nth=1", "data-id")
        deadline = time.time() + 30
        while ("view_start", second) not in [(e[3], e[2]) for e in events("local")] and time.time() < deadline:
            time.sleep(0.05)
        log = [(e[3], e[2]) for e in events("local")]
        assert log[:1] == [("view_start", first)] and ("like", first) in log and ("skip", first) in log
        assert log.index(("skip", first)) < log.index(("view_start", second)) and first != second
        me = client.get("/v1/feed/me").json()
        assert (me["views"], me["likes"]) == (1, 1)
        browser.close()


def test_events_move_the_taste_model_and_the_feed_survives_a_restart(db_url, tmp_path, model_dir, pipe):
    with serving(tmp_path, model_dir, pipe, db_url) as (_url, client, app):
        first = client.get("/v1/feed/next")
        assert first.status_code == 204                      # nothing yet: its first videos are queued, ahead
        made = app.state.store.page("feed", limit=10)[0]
        horizon = app.state.feed.get().feed.config.horizon
        assert len(made) == horizon and all(j["summary"]["height"] > j["summary"]["width"] for j in made)
        liked, skipped = next_video(client), next_video(client)
        assert liked["reason"] == "generated for you" and liked["video_id"] != skipped["video_id"]
        video = client.get(liked["content_url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"

        before = client.get("/v1/feed/me").json()["taste"]
        for body in [{"event": "view_start", "video_id": liked["video_id"]},
                     {"event": "watch", "video_id": liked["video_id"], "fraction": 1.0},
                     {"event": "like", "video_id": liked["video_id"]},
                     {"event": "view_start", "video_id": skipped["video_id"]},
                     {"event": "skip", "video_id": skipped["video_id"], "fraction": 0.05}]:
            assert client.post("/v1/feed/events", json=body).status_code == 200
        after = client.get("/v1/feed/me").json()
        assert (after["views"], after["likes"]) == (2, 1)
        # what the model returns moved: toward the liked video's attributes, away from the skipped one's
        differ = [a for a in ATTRIBUTES if liked["concept"][a] != skipped["concept"][a]]
        assert differ
        for a in differ:
            up, down = liked["concept"][a], skipped["concept"][a]
            assert after["taste"][a][up] > before[a][up], (a, up)
            assert after["taste"][a][down] < before[a][down], (a, down)

        bad = client.post("/v1/feed/events", json={"event": "love", "video_id": liked["video_id"]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "event"
        bad = client.post("/v1/feed/events", json={"event": "watch", "video_id": "nope", "fraction": 0.5})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "video_id"

    with serving(tmp_path, model_dir, pipe, db_url) as (_url, client, app):       # the same database, a new server
        again = client.get("/v1/feed/me").json()
        assert (again["views"], again["likes"], again["library"]) == (2, 1, after["library"])
        assert again["taste"] == after["taste"]
        shown = next_video(client)
        assert shown["video_id"] not in (liked["video_id"], skipped["video_id"])


def test_an_apps_feed_shows_the_apps_videos(tmp_path, model_dir, pipe):
    apps = tmp_path / "apps"
    apps.mkdir()
    shorts = (EXAMPLES / "vertical-shorts.toml").read_text()
    (apps / "shorts.toml").write_text(shorts.replace("resolution = 128", "resolution = 32")
                                      .replace("steps = 20", "steps = 2"))
    (apps / "plain.toml").write_text(shorts.replace("feed = true", "feed = false"))
    with serving(tmp_path, model_dir, pipe, apps_dir=apps, feed=False) as (_url, client, app):
        assert client.get("/v1/feed/next").status_code == 404           # Settings.feed = False: no /feed
        assert client.get("/apps/plain/feed/next").status_code == 404
        made = client.post("/apps/shorts/api", json={"idea": "a pink star spinning at night"}).json()
        page = client.get("/apps/shorts")
        assert 'href="/apps/shorts/feed"' in page.text
        assert "<title>Vertical shorts</title>" in client.get("/apps/shorts/feed").text
        deadline = time.time() + 60
        while client.get(f"/apps/shorts/videos/{made['id']}").json()["status"] != "completed":
            assert time.time() < deadline
            time.sleep(0.05)
        me = client.get("/apps/shorts/feed/me").json()
        assert me["library"] >= 1                               # the form's video is in the app's feed
        shown = next_video(client, "/apps/shorts/feed/next")
        assert client.get(shown["content_url"]).headers["content-type"] == "video/mp4"
        feed_jobs = app.state.store.page("feed:shorts", limit=10)[0]
        assert feed_jobs and all((j["summary"]["width"], j["summary"]["height"]) == (32, 64) for j in feed_jobs)
        # what the feed makes counts against the app's budget for the user, with the form's videos
        assert client.get("/apps/shorts/api").json()["usage"]["videos"] == 1 + len(feed_jobs)
