"""The low-code apps served by a live server (`straightline serve --apps DIR`): an example app used in headless
Chromium (fill the form, the video plays), an app made with `straightline app new` served as it is, files
edited, broken and removed while the server runs, access rules and daily budgets with API keys."""

import base64
import io
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_FLAGS
from PIL import Image

from straightline.cli import main
from straightline.service import JobStore, Settings
from straightline.service.server import ThreadServer, build, shutdown

EXAMPLES = Path(__file__).parent.parent / "apps"


@contextmanager
def serving(tmp_path, model_dir, pipe, apps, db=None, **overrides):
    settings = Settings(db=db or f"sqlite:///{tmp_path}/jobs.db", model=str(model_dir), poll_after_ms=50, lease_s=3,
                        upload_dir=tmp_path / "uploads", apps_dir=apps, feed_embedder="hashing", **overrides)
    app = build(settings, pipeline=pipe)
    try:
        with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield url, client, app.state.store
    finally:
        shutdown(app)


def wait_done(client: httpx.Client, path: str, timeout=60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        video = client.get(path).json()
        if video["status"] in ("completed", "failed"):
            return video
        time.sleep(0.05)
    raise AssertionError(f"{path} did not finish: {video}")


def test_an_example_app_in_the_browser_and_an_app_new_app_with_no_code(tmp_path, model_dir, pipe):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (.ci/run installs it)")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's)")
    apps = tmp_path / "apps"
    shutil.copytree(EXAMPLES, apps)
    with serving(tmp_path, model_dir, pipe, apps) as (url, client, store), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)

        # the index lists the three examples; the physics playground's form makes a video that plays
        page.goto(url + "/apps")
        assert page.locator("#apps li").count() == 3
        page.click("text=Physics playground")
        page.select_option("#color", "blue")
        page.select_option("#shape", "star")
        page.fill("#seconds", "1")
        page.click("button[type=submit]")
        page.wait_for_function("(() => { const v = document.getElementById('video');"
                               " return !v.hidden && v.readyState >= 2 && v.videoWidth === 64; })()")
        assert page.inner_text("#status") == "Done."
        (job,), _ = store.page("local", limit=1)
        assert job["prompt"] == "a medium blue star bouncing on a wooden floor" and job["summary"]["frames"] == 9

        # `straightline app new` while the server runs: its page and API work with no code and no restart
        assert main(["app", "new", "party", "--dir", str(apps)]) == 0
        page.goto(url + "/apps/party")
        assert page.inner_text("h1") == "Party"
        page.select_option("#color", "green")
        page.click("button[type=submit]")
        page.wait_for_function("document.getElementById('video').readyState >= 2")
        made = client.post("/apps/party/api", json={"shape": "star", "place": "at night"})
        assert made.status_code == 200, made.text
        assert made.json()["prompt"] == "a red star bouncing at night"
        assert wait_done(client, f"/apps/party/videos/{made.json()['id']}")["status"] == "completed"
        schema = client.get("/openapi.json").json()["paths"]["/apps/party/api"]["post"]
        body = schema["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["properties"]) == {"shape", "color", "motion", "place"} and body["required"] == []
        browser.close()


def test_files_edited_broken_and_removed_while_serving(tmp_path, model_dir, pipe):
    apps = tmp_path / "apps"
    apps.mkdir()
    shutil.copy(EXAMPLES / "physics-playground.toml", apps)
    shutil.copy(EXAMPLES / "loop-maker.toml", apps)
    main(["app", "new", "party", "--dir", str(apps)])
    with serving(tmp_path, model_dir, pipe, apps, workers=0) as (_url, client, store):
        # a file broken from the start: its routes name file, field and reason; the others still work
        (apps / "broken.toml").write_text('title = "Broken"\nprompt = "a {colour} ball"\n[inputs.color]\n'
                                          'type = "choice"\nchoices = ["red"]\n')
        r = client.post("/apps/broken/api", json={})
        assert r.status_code == 503
        assert r.json()["error"]["message"].endswith("apps/broken.toml: prompt: {colour} is not an input "
                                                     "(inputs: color)")
        assert r.json()["error"]["param"] == "prompt"
        assert client.get("/apps/broken").status_code == 503 and "{colour}" in client.get("/apps/broken").text
        assert client.post("/apps/party/api", json={}).status_code == 200
        assert client.post("/apps/physics-playground/api", json={"color": "blue"}).status_code == 200
        listed = client.get("/v1/apps").json()
        assert [a["name"] for a in listed["data"]] == ["loop-maker", "party", "physics-playground"]
        assert [(e["name"], e["field"], e["serving"]) for e in listed["errors"]] == [("broken", "prompt", False)]
        assert "{colour} is not an input" in client.get("/apps").text

        # an edit takes effect on the next request
        party = apps / "party.toml"
        party.write_text(party.read_text().replace('title = "Party"', 'title = "Party time"')
                         .replace('default = "red"', 'default = "blue"'))
        assert "<h1>Party time</h1>" in client.get("/apps/party").text
        assert client.post("/apps/party/api", json={}).json()["prompt"].startswith("a blue ball")

        # an edit that breaks a served app: the last good version keeps serving, and says why
        good = party.read_text()
        party.write_text(good.replace('aspect = "16:9"', 'aspect = "9:1"'))
        page = client.get("/apps/party").text
        assert "<h1>Party time</h1>" in page and "last good version" in page and "generation.aspect" in page
        assert client.post("/apps/party/api", json={}).status_code == 200
        assert [(e["name"], e["serving"]) for e in client.get("/v1/apps").json()["errors"]] == \
            [("broken", False), ("party", True)]
        party.write_text(good)
        assert "last good version" not in client.get("/apps/party").text

        # a picture, uploaded as the form sends it or as base64 in JSON
        picture = io.BytesIO()
        Image.new("RGB", (48, 40), (30, 90, 200)).save(picture, format="PNG")
        r = client.post("/apps/loop-maker/api", files={"picture": ("p.png", picture.getvalue(), "image/png")},
                        data={"motion": "the ball spins"})
        assert r.status_code == 200 and (r.json()["mode"], r.json()["prompt"]) == ("loop", "the ball spins")
        job = store.get(r.json()["id"])
        assert store.blob(job["id"], "input:image") is not None and job["summary"]["width"] == job["summary"]["height"]
        r = client.post("/apps/loop-maker/api", json={"picture": base64.b64encode(picture.getvalue()).decode()})
        assert r.status_code == 200
        r = client.post("/apps/loop-maker/api", files={"picture": ("p.png", b"not a picture", "image/png")})
        assert (r.status_code, r.json()["error"]["param"]) == (400, "picture")
        assert r.json()["error"]["message"].startswith("picture: cannot be read")
        r = client.post("/apps/loop-maker/api", data={"motion": "spins"})
        assert (r.status_code, r.json()["error"]["param"]) == (400, "picture")

        # bad input names the input; a removed file is gone
        r = client.post("/apps/physics-playground/api", json={"seconds": 9})
        assert (r.status_code, r.json()["error"]["param"]) == (400, "seconds")
        assert "from 1 to 4" in r.json()["error"]["message"]
        party.unlink()
        r = client.get("/apps/party/api")
        assert r.status_code == 404 and "apps: loop-maker, physics-playground" in r.json()["error"]["message"]
        assert "/apps/party/api" not in client.get("/openapi.json").json()["paths"]
        assert store.queue_length() == 6         # every accepted request is a job on the queue


RULES = '''title = "{title}"
prompt = "a red ball bouncing"
access = {access}
{limit}
[generation]
seconds = 0.5
'''


def test_access_rules_and_daily_budgets_with_api_keys(db_url, tmp_path, model_dir, pipe):
    apps = tmp_path / "apps"
    apps.mkdir()
    for name, access, limit in [("open", '"public"', "daily_videos = 1"), ("members", '"signed-in"', ""),
                                ("club", '["alice"]', ""), ("tight", '"public"', "daily_budget_s = 1e-9")]:
        (apps / f"{name}.toml").write_text(RULES.format(title=name.capitalize(), access=access, limit=limit))
    keys = JobStore(db_url)
    alice, bob = keys.add_key("alice")[1], keys.add_key("bob")[1]
    keys.close()
    as_alice, as_bob = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    with serving(tmp_path, model_dir, pipe, apps, db_url, workers=0, require_keys=True) as (_url, client, store):
        # public: anyone, one video a day each (anonymous visitors by address)
        first = client.post("/apps/open/api", json={})
        assert first.status_code == 200
        again = client.post("/apps/open/api", json={})
        assert again.status_code == 429 and again.json()["error"]["code"] == "app_daily_videos"
        assert "1 video per user per day" in again.json()["error"]["message"] and "retry-after" in again.headers
        assert client.post("/apps/open/api", json={}, headers=as_alice).status_code == 200
        # the anonymous visitor's video is theirs: readable through the app, not by alice
        video_id = first.json()["id"]
        assert client.get(f"/apps/open/videos/{video_id}").json()["status"] == "queued"
        assert client.get(f"/apps/open/videos/{video_id}", headers=as_alice).status_code == 404
        assert client.get("/apps/open/api", headers=as_alice).json()["usage"]["videos"] == 1

        # signed-in: a key; a list: the names on it
        r = client.post("/apps/members/api", json={})
        assert r.status_code == 401 and "for signed-in users" in r.json()["error"]["message"]
        assert client.post("/apps/members/api", json={}, headers=as_bob).status_code == 200
        r = client.post("/apps/club/api", json={}, headers=as_bob)
        assert r.status_code == 403 and "not open to 'bob'" in r.json()["error"]["message"]
        assert client.post("/apps/club/api", json={}, headers=as_alice).status_code == 200
        assert client.post("/apps/club/api", json={}, headers={"Authorization": "Bearer sk-sl-wrong"}).status_code \
            == 401

        # device-seconds: the quote is refused before it is queued
        r = client.post("/apps/tight/api", json={}, headers=as_alice)
        assert r.status_code == 429 and r.json()["error"]["code"] == "app_daily_budget"
        assert "device-seconds" in r.json()["error"]["message"]
        assert store.queue_length() == 4
