"""The service as clients use it: the official `openai` SDK and raw HTTP against a live server on loopback,
with its job store in SQLite and in a real PostgreSQL server (STRAIGHTLINE_TEST_POSTGRES, which .ci/run sets;
those cases are skipped without it). A tiny untrained model and the real text encoder make real videos."""

import base64
import io
import time
from contextlib import contextmanager

import httpx
import httpx2  # the openai SDK's HTTP client
import openai
import pytest
from conftest import SERVICE_DEFAULTS
from PIL import Image

from straightline.model import ModelInfo
from straightline.pipeline import validate_request
from straightline.service import Settings
from straightline.service.server import ThreadServer, build, shutdown
from straightline.video_io import read_video

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
SLOW = {"size": "256x128", "frames": 17, "steps": 150}   # many heartbeats long, even on a fast machine


@contextmanager
def running(db_url, model_dir, pipe, tmp_path, workers=1, **overrides):
    """A live server -> (base URL, its JobStore)."""
    settings = Settings(db=db_url, model=str(model_dir), workers=workers, poll_after_ms=50, lease_s=3,
                        upload_dir=tmp_path / "uploads", **overrides)
    app = build(settings, pipeline=pipe)
    try:
        with ThreadServer(app) as url:
            yield url, app.state.store
    finally:
        shutdown(app)


def sdk(url, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="local", **kwargs)


def wait_for(client: httpx.Client, video_id: str, until, timeout=120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = client.get(f"/v1/videos/{video_id}").json()
        if until(v):
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {video_id}: {v}")


def png_bytes(width=64, height=32, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


# --- the official SDK ---------------------------------------------------------------------------------------

def test_sdk_create_poll_and_download_every_variant(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path) as (url, _):
        client = sdk(url)
        video = client.videos.create(prompt="a red ball bouncing on a wooden floor", model="sora-2", seconds="1",
                                     size="64x32")
        assert video.object == "video" and video.status in ("queued", "in_progress") and video.id.startswith("video_")
        assert (video.model, video.size, video.seconds, video.prompt) == ("sora-2", "64x32", "1",
                                                                          "a red ball bouncing on a wooden floor")
        done = client.videos.poll(video.id)
        assert (done.status, done.progress, done.error) == ("completed", 100, None)
        assert done.completed_at >= done.created_at

        mp4 = tmp_path / "out.mp4"
        client.videos.download_content(video.id).write_to_file(mp4)
        clip = read_video(mp4)
        assert clip.frames.shape == (9, 32, 64, 3)           # 1 s at the model's 8 fps: 9 frames (1 + 4k)
        assert client.videos.download_content(video.id, variant="thumbnail").content[8:12] == b"WEBP"
        assert client.videos.download_content(video.id, variant="spritesheet").content[:2] == b"\xff\xd8"

        # our extensions ride along as extra fields: the seed, frames, and what it cost
        extra = done.model_extra
        assert extra["frames"] == 9 and extra["fps"] == 8 and isinstance(extra["seed"], int)
        cost = extra["cost"]
        assert cost["flops"] > 0 and cost["device_s"] > 0 and cost["queue_wait_s"] >= 0 and cost["price"] > 0

        # create_and_poll in one call, with the model's defaults for everything left out
        again = client.videos.create_and_poll(prompt="a small blue star slides left")
        assert (again.status, again.size, again.seconds) == ("completed", "64x32", "0.5")


def test_sdk_list_paginates_with_cursors(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path, workers=0) as (url, _):
        client = sdk(url)
        ids = [client.videos.create(prompt=f"a red ball, take {i}").id for i in range(5)]
        first = client.videos.list(limit=2)
        assert [v.id for v in first.data] == ids[::-1][:2] and first.has_more and first.last_id == ids[3]
        assert [v.id for v in client.videos.list(limit=2)] == ids[::-1]          # the SDK follows last_id
        assert [v.id for v in client.videos.list(limit=2, order="asc")] == ids
        page = client.videos.list(after=ids[1], order="asc", limit=10)
        assert [v.id for v in page.data] == ids[2:] and not page.has_more
        assert all(v.status == "queued" for v in page.data)
        assert [v.model_extra["queue_position"] for v in client.videos.list(order="asc")] == [1, 2, 3, 4, 5]


def test_sdk_delete_then_not_found(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path) as (url, _):
        client = sdk(url)
        video = client.videos.create_and_poll(prompt="a green square falls")
        deleted = client.videos.delete(video.id)
        assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
        with pytest.raises(openai.NotFoundError) as err:
            client.videos.retrieve(video.id)
        assert err.value.code == "video_not_found" and video.id in err.value.message
        with pytest.raises(openai.NotFoundError):
            client.videos.download_content(video.id)
        assert video.id not in [v.id for v in client.videos.list()]
        with pytest.raises(openai.NotFoundError):
            client.videos.delete(video.id)


def test_sdk_remix_remakes_a_finished_video(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path) as (url, _):
        client = sdk(url)
        source = client.videos.create_and_poll(prompt="a red ball bouncing", seconds="1")
        remix = client.videos.remix(source.id, prompt="a blue ball bouncing")
        assert remix.remixed_from_video_id == source.id and remix.prompt == "a blue ball bouncing"
        done = client.videos.poll(remix.id)
        assert (done.status, done.size, done.seconds) == ("completed", source.size, source.seconds)
        extra = done.model_extra
        assert extra["mode"] == "edit" and extra["seed"] == source.model_extra["seed"]
        assert "edited at strength" in extra["note"]
        assert len(client.videos.download_content(done.id).content) > 0


def test_sdk_errors_name_the_field_as_the_cli_does(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path, workers=0) as (url, _):
        client = sdk(url, max_retries=0)
        cases = [({"size": "720x1280"}, "size"), ({"seconds": "99"}, "seconds"), ({"prompt": ""}, "prompt"),
                 ({"size": "70x40"}, "size"), ({"model": "dall-e-3"}, "model")]
        for fields, param in cases:
            with pytest.raises(openai.BadRequestError) as err:
                client.videos.create(**{"prompt": "a red ball", **fields})
            assert err.value.param == param and err.value.type == "invalid_request_error", fields
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.create(prompt="a red ball", size="720x1280")
        info = ModelInfo(defaults=SERVICE_DEFAULTS)
        with pytest.raises(ValueError) as cli:
            validate_request("a red ball", size="720x1280", info=info)
        assert err.value.body["message"] == str(cli.value)     # the CLI prints the same sentence
        queued = client.videos.create(prompt="a red ball")
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.download_content(queued.id)
        assert err.value.code == "video_not_ready"
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.remix(queued.id, prompt="a blue ball")
        assert err.value.code == "video_not_ready"


class _LoseFirstCreate(httpx2.HTTPTransport):
    """The server makes the video but the answer is lost on the way (a proxy answers 502): the SDK retries."""

    def __init__(self):
        super().__init__()
        self.lost = 0

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/videos" and not self.lost:
            self.lost += 1
            response.read()
            response.close()
            return httpx2.Response(502, json={"error": {"message": "bad gateway"}})
        return response


def test_sdk_retry_after_a_lost_answer_makes_one_video(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path, workers=0) as (url, _):
        transport = _LoseFirstCreate()
        client = sdk(url, max_retries=2, http_client=openai.DefaultHttpxClient(transport=transport))
        video = client.videos.create(prompt="a red ball bouncing")
        assert transport.lost == 1
        page = client.videos.list()
        assert [v.id for v in page.data] == [video.id]     # the retry found the first attempt's job


# --- raw HTTP: extensions and error paths ---------------------------------------------------------------

def test_json_create_with_extension_fields(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path) as (url, _), httpx.Client(base_url=url) as http:
        body = {"prompt": "a red ball bouncing", "seconds": 1, "fps": 6, "size": "64x32", "seed": 7, "steps": 3,
                "cfg": 2, "cfg_interval": [0.1, 0.75], "negative_prompt": "blurry", "sampler": "heun"}
        r = http.post("/v1/videos", json=body)
        assert r.status_code == 200 and r.headers["openai-poll-after-ms"] == "50"
        v = r.json()
        # 1 s at 6 fps asks 7 frames; the VAE makes 1 + 4k: 9, and the response says both
        assert (v["fps"], v["seed"], v["steps"], v["cfg"], v["sampler"]) == (6, 7, 3, 2, "heun")
        assert v["cfg_interval"] == [0.1, 0.75]
        bad = http.post("/v1/videos", json=body | {"cfg_interval": "0.9,0.1"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "cfg_interval"
        assert (v["frames"], v["requested_frames"], v["negative_prompt"]) == (9, 7, "blurry")
        done = wait_for(http, v["id"], lambda v: v["status"] == "completed")
        assert done["seconds"] == "1.333" and "openai-poll-after-ms" not in http.get(f"/v1/videos/{v['id']}").headers


def test_a_preset_sets_steps_and_a_wrong_one_is_named(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        fast = http.post("/v1/videos", data={"prompt": "a red ball", "size": "64x32", "preset": "fast"}).json()
        assert fast["steps"] == 8
        r = http.post("/v1/videos", json={"prompt": "a red ball", "preset": "turbo"})
        error = r.json()["error"]
        assert r.status_code == 400 and error["param"] == "preset" and "fast" in error["message"]


def test_quote_before_submitting_equals_the_job_estimate(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        body = {"prompt": "a red ball", "size": "64x32", "seconds": "1", "steps": "4"}
        quote = http.post("/v1/videos/quote", data=body).json()
        assert quote["object"] == "video.quote" and quote["frames"] == 9 and quote["price"] > 0
        double = http.post("/v1/videos/quote", data={**body, "steps": "8"}).json()
        assert double["flops"] == pytest.approx(2 * quote["flops"])
        v = http.post("/v1/videos", data=body).json()
        assert v["cost"]["flops"] == quote["flops"] and v["cost"]["estimated_price"] == quote["price"]
        assert http.get("/v1/videos").json()["data"][0]["id"] == v["id"]   # a quote stores nothing
        assert len(http.get("/v1/videos").json()["data"]) == 1


def test_cancel_stops_a_running_job_between_steps_and_frees_the_worker(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path) as (url, _), httpx.Client(base_url=url) as http:
        slow = http.post("/v1/videos", json={"prompt": "a red ball", **SLOW}).json()
        wait_for(http, slow["id"], lambda v: v["status"] == "in_progress" and v["progress"] > 0)
        asked = http.post(f"/v1/videos/{slow['id']}/cancel").json()
        assert asked["cancel_requested"] and asked["status"] in ("in_progress", "failed")
        next_job = http.post("/v1/videos", json={"prompt": "a blue star"}).json()
        cancelled = wait_for(http, slow["id"], lambda v: v["status"] == "failed")
        assert cancelled["error"]["code"] == "cancelled" and cancelled["progress"] < 90
        assert cancelled["cost"]["device_s"] > 0          # the time it ran is recorded
        assert wait_for(http, next_job["id"], lambda v: v["status"] == "completed")["progress"] == 100
        r = http.post(f"/v1/videos/{next_job['id']}/cancel")
        assert r.status_code == 400 and r.json()["error"]["code"] == "video_finished"


def test_cancel_a_queued_job_fails_it_at_once(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        v = http.post("/v1/videos", data={"prompt": "a red ball"}).json()
        done = http.post(f"/v1/videos/{v['id']}/cancel").json()
        assert done["status"] == "failed" and done["error"]["code"] == "cancelled"
        assert http.post(f"/v1/videos/{v['id']}/cancel").status_code == 200      # again: the same answer


def test_idempotency_key_and_identical_retries(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        body = {"prompt": "a red ball bouncing", "seconds": "1"}
        first = http.post("/v1/videos", data=body, headers={"Idempotency-Key": "k1"})
        again = http.post("/v1/videos", data=body, headers={"Idempotency-Key": "k1"})
        assert first.json()["id"] == again.json()["id"] and again.headers["x-straightline-deduplicated"] == "true"
        other = http.post("/v1/videos", data={**body, "prompt": "a blue ball"}, headers={"Idempotency-Key": "k1"})
        assert other.status_code == 400 and other.json()["error"]["code"] == "idempotency_key_reused"
        new_key = http.post("/v1/videos", data=body, headers={"Idempotency-Key": "k2"}).json()
        assert new_key["id"] != first.json()["id"]                 # a new key is a new video, on purpose
        # without a key: the same request again within the window is a retry of the first
        plain = http.post("/v1/videos", data={"prompt": "a green square"}).json()
        assert http.post("/v1/videos", data={"prompt": "a green square"}).json()["id"] == plain["id"]
        assert http.post("/v1/videos", data={"prompt": "a green square", "seed": "3"}).json()["id"] != plain["id"]
        assert len(http.get("/v1/videos").json()["data"]) == 4


def test_uploads_image_reference_by_form_sdk_and_data_url(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path) as (url, _), httpx.Client(base_url=url) as http:
        client = sdk(url)
        video = client.videos.create(prompt="the ball rolls away", input_reference=("first.png", png_bytes(),
                                                                                     "image/png"))
        done = client.videos.poll(video.id)
        assert done.status == "completed" and "first image" in done.model_extra["note"]
        data_url = "data:image/png;base64," + base64.b64encode(png_bytes(color=(0, 0, 255))).decode()
        v = http.post("/v1/videos", json={"prompt": "a ball", "input_reference": {"image_url": data_url}}).json()
        assert wait_for(http, v["id"], lambda v: v["status"] != "queued" and v["progress"] > 0 or
                        v["status"] == "completed")["status"] in ("in_progress", "completed")
        # a video upload for the modes that take one: extend what was just made
        mp4 = client.videos.download_content(video.id).content
        ext = http.post("/v1/videos", data={"prompt": "", "mode": "extend", "seconds": "0.5"},
                        files={"input_reference": ("in.mp4", mp4, "video/mp4")}).json()
        done = wait_for(http, ext["id"], lambda v: v["status"] == "completed")
        assert done["frames"] == done["requested_frames"] == 5 + 4 and "input frames" in done["note"]   # 0.5 s more


@pytest.mark.parametrize("request_args, status, param, code", [
    ({"json": {"prompt": "a ball", "colour": "red"}}, 400, "colour", "unknown_parameter"),
    ({"json": {"prompt": 5}}, 400, "prompt", "invalid_type"),
    ({"json": {"prompt": "a ball", "seconds": [1]}}, 400, "seconds", "invalid_type"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, None, "invalid_json"),
    ({"json": ["a ball"]}, 400, None, "invalid_json"),
    ({"data": {"prompt": "a ball", "steps": "lots"}}, 400, "steps", "invalid_value"),
    ({"data": {"prompt": "a ball", "mode": "dream"}}, 400, "mode", "invalid_value"),
    ({"data": {"prompt": "a ball", "mode": "dream"}, "files": {"input_reference": ("x.png", png_bytes(), "image/png")}},
     400, "mode", "invalid_value"),
    ({"data": {"prompt": "a ball", "mode": "extend"}, "files": {"end_reference": ("x.png", png_bytes(), "image/png")}},
     400, "end_reference", "invalid_value"),
    ({"data": {"prompt": "a ball", "fps": "1000"}}, 400, "fps", "invalid_value"),
    ({"data": {"prompt": "a ball", "seed": "-1"}}, 400, "seed", "invalid_value"),
    ({"data": {"prompt": "a ball", "mode": "image", "seconds": "2"}}, 400, "seconds", "invalid_value"),
    ({"data": {"prompt": "a ball", "expand_prompt": "maybe"}}, 400, "expand_prompt", "invalid_value"),
    ({"data": {"prompt": "x", "mode": "extend"}}, 400, "input_reference", "invalid_value"),
    ({"data": {"prompt": "a ball"}, "files": {"input_reference": ("x.png", b"not an image", "image/png")}},
     400, "input_reference", "invalid_media"),
    ({"data": {"prompt": "a ball"}, "files": {"input_reference": ("x.png", b"", "image/png")}},
     400, "input_reference", "invalid_media"),
    ({"data": {"prompt": "a ball"}, "files": {"input_reference": ("x.png", b"\0" * 300_000, "image/png")}},
     413, "input_reference", "file_too_large"),
    ({"data": {"prompt": "a ball"}, "files": {"picture": ("x.png", b"abc", "image/png")}},
     400, "picture", "invalid_value"),
    ({"json": {"prompt": "a ball", "input_reference": {"image_url": "https://example.com/a.png"}}},
     400, "input_reference.image_url", "unsupported_value"),
    ({"json": {"prompt": "a ball", "input_reference": {"file_id": "file_1"}}},
     400, "input_reference.file_id", "unsupported_value"),
    ({"content": b"prompt", "headers": {"content-type": "text/plain"}}, 415, None, "unsupported_media_type"),
])
def test_malformed_creates_get_a_4xx_naming_the_field(sqlite_url, model_dir, pipe, tmp_path, request_args, status,
                                                      param, code):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0, max_upload_bytes=100_000) as (url, store), \
            httpx.Client(base_url=url) as http:
        r = http.post("/v1/videos", **request_args)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
        assert error["message"]
        assert store.queue_length() == 0                  # nothing reached the queue
        assert not list((tmp_path / "uploads").iterdir())  # and no upload was left behind


def test_other_routes_answer_errors_in_openai_shape(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        v = http.post("/v1/videos", data={"prompt": "a ball"}).json()
        for path, param in [("/v1/videos?limit=0", "limit"), ("/v1/videos?limit=abc", "limit"),
                            ("/v1/videos?order=up", "order"), ("/v1/videos?after=video_nope", "after"),
                            ("/v1/videos?page=2", "page"), (f"/v1/videos/{v['id']}/content?variant=gif", "variant")]:
            r = http.get(path)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, path
        r = http.get("/v1/videos/video_nope")
        assert r.status_code == 404 and r.json()["error"]["param"] == "video_id"
        r = http.get("/v1/sounds")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
        r = http.put("/v1/videos")
        assert r.status_code == 405 and "error" in r.json()


def test_restart_keeps_the_queue(db_url, model_dir, pipe, tmp_path):
    with running(db_url, model_dir, pipe, tmp_path, workers=0) as (url, _):
        ids = [sdk(url).videos.create(prompt=f"a red ball {i}").id for i in range(2)]
    with running(db_url, model_dir, pipe, tmp_path) as (url, _):
        client = sdk(url)
        assert [client.videos.poll(i).status for i in ids] == ["completed", "completed"]


def test_queued_jobs_of_one_shape_run_as_one_batch(db_url, model_dir, pipe, tmp_path):
    from straightline.service.worker import Worker
    with running(db_url, model_dir, pipe, tmp_path, workers=0) as (url, store), httpx.Client(base_url=url) as http:
        same = [http.post("/v1/videos", data={"prompt": f"a ball {i}"}).json()["id"] for i in range(3)]
        other = http.post("/v1/videos", data={"prompt": "a star", "steps": "3"}).json()["id"]
        same.append(http.post("/v1/videos", data={"prompt": "a cube"}).json()["id"])
        worker = Worker(store, model=str(model_dir), pipeline=pipe, batch_size=8)
        assert worker.run_once() == 4 and worker.run_once() == 1 and worker.run_once() == 0
        batches = {i: http.get(f"/v1/videos/{i}").json()["cost"]["batch_size"] for i in [*same, other]}
        assert batches == {**dict.fromkeys(same, 4), other: 1}


def test_prompts_are_expanded_as_the_cli_does_unless_turned_off(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0) as (url, _), httpx.Client(base_url=url) as http:
        v = http.post("/v1/videos", data={"prompt": "a red ball bouncing", "seed": "1"}).json()
        assert v["prompt"] == "a red ball bouncing"        # as the client wrote it; the model gets the caption
        assert v["expanded_prompt"] and v["expanded_prompt"] != v["prompt"] and "red" in v["expanded_prompt"].lower()
        # the words' parameters fill what the request left out ("vertical", "3 seconds"); fields given win
        v = http.post("/v1/videos", data={"prompt": "a red ball bouncing, vertical, 3 seconds", "seed": "1"}).json()
        assert (v["size"], v["seconds"]) == ("32x64", "3")
        v = http.post("/v1/videos", data={"prompt": "a red ball bouncing, vertical", "size": "64x32"}).json()
        assert v["size"] == "64x32"
        plain = http.post("/v1/videos", data={"prompt": "a red ball bouncing", "expand_prompt": "false"}).json()
        assert plain["expanded_prompt"] is None
        # a prompt intent cannot read is generated as written by default, and refused when expansion was asked for
        odd = {"prompt": "five red balls"}         # more objects than ToyWorld holds
        assert http.post("/v1/videos", data=odd).json()["expanded_prompt"] is None
        r = http.post("/v1/videos", data={**odd, "expand_prompt": "true"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        quote = http.post("/v1/videos/quote", data={"prompt": "a red ball bouncing", "seed": "1"}).json()
        assert quote["expanded_prompt"] and quote["prompt"] == quote["expanded_prompt"]


def test_api_keys_budgets_rate_limits_and_isolation(sqlite_url, model_dir, pipe, tmp_path):
    from straightline.service.store import JobStore
    store = JobStore(sqlite_url)
    _, alice = store.add_key("alice", rate_per_minute=2)
    _, bob = store.add_key("bob", daily_budget=1e-12)         # less than any video costs
    store.close()
    with running(sqlite_url, model_dir, pipe, tmp_path, workers=0, require_keys=True) as (url, store), \
            httpx.Client(base_url=url) as http:
        assert store.find_key(alice)["hash"] != alice            # only the hash is kept
        r = http.post("/v1/videos", data={"prompt": "a ball"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        with pytest.raises(openai.AuthenticationError) as err:
            sdk(url, max_retries=0).with_options(api_key="sk-sl-wrong").videos.list()
        assert err.value.code == "invalid_api_key"

        as_alice = openai.OpenAI(base_url=url + "/v1", api_key=alice, max_retries=0)
        as_bob = openai.OpenAI(base_url=url + "/v1", api_key=bob, max_retries=0)
        mine = [as_alice.videos.create(prompt=f"a ball {i}").id for i in range(2)]
        with pytest.raises(openai.RateLimitError) as err:
            as_alice.videos.create(prompt="a third ball")
        assert err.value.code == "rate_limit_exceeded" and err.value.response.headers["retry-after"] == "60"
        assert as_alice.videos.create(prompt="a ball 1").id == mine[1]       # a retry is not a new video

        with pytest.raises(openai.PermissionDeniedError) as err:
            as_bob.videos.create(prompt="a ball")
        assert err.value.code == "budget_exceeded"
        with pytest.raises(openai.NotFoundError):                           # a key never sees another's videos
            as_bob.videos.retrieve(mine[0])
        with pytest.raises(openai.NotFoundError):
            as_bob.videos.delete(mine[0])
        assert as_bob.videos.list().data == []

        usage = http.get("/v1/usage", headers={"authorization": f"Bearer {alice}"}).json()
        assert usage["today"]["videos"] == 2 and usage["today"]["committed_price"] > 0
        assert usage["limits"]["rate_per_minute"] == {"limit": 2}
        bob_usage = http.get("/v1/usage", headers={"authorization": f"Bearer {bob}"}).json()
        assert bob_usage["today"]["videos"] == 0 and bob_usage["limits"]["daily_budget"]["remaining"] == 1e-12


def test_events_stream_each_change_until_the_video_finishes(sqlite_url, model_dir, pipe, tmp_path):
    import json
    with running(sqlite_url, model_dir, pipe, tmp_path) as (url, _), httpx.Client(base_url=url, timeout=120) as http:
        v = http.post("/v1/videos", json={"prompt": "a red ball", **SLOW, "steps": 40}).json()   # several heartbeats
        with http.stream("GET", f"/v1/videos/{v['id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            seen = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")]
        assert seen[-1]["status"] == "completed" and seen[-1]["progress"] == 100
        progress = [e["progress"] for e in seen]
        assert progress == sorted(progress) and len(seen) >= 3     # queued or started, some progress, done


def test_serve_is_local_without_keys_and_creates_keys(sqlite_url, model_dir, capsys):
    from straightline.cli import main
    from straightline.service.store import JobStore
    args = ["--db", sqlite_url, "--model", str(model_dir)]
    assert main(["serve", "--host", "0.0.0.0", *args]) == 2
    assert "localhost" in capsys.readouterr().err
    assert main(["serve", "--create-key", "alice", "--daily-budget", "2.5", *args]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    row = JobStore(sqlite_url).find_key(key)
    assert key.startswith("sk-sl-") and (row["name"], row["daily_budget"]) == ("alice", 2.5)


def test_sdk_extend_and_edit_a_finished_or_uploaded_video(sqlite_url, model_dir, pipe, tmp_path):
    with running(sqlite_url, model_dir, pipe, tmp_path) as (url, _), httpx.Client(base_url=url) as http:
        client = sdk(url)
        source = client.videos.create_and_poll(prompt="a red ball bouncing", size="64x48")      # 5 frames
        mp4 = client.videos.download_content(source.id).content
        longer = client.videos.poll(client.videos.extend(prompt="it keeps bouncing", seconds="1",
                                                         video=("in.mp4", mp4, "video/mp4")).id)
        assert (longer.status, longer.model_extra["frames"]) == ("completed", 5 + 8)   # the stitched total
        edited = client.videos.poll(client.videos.edit(prompt="a blue ball bouncing",
                                                       video=("in.mp4", mp4, "video/mp4")).id)
        assert edited.status == "completed" and edited.model_extra["mode"] == "edit"
        # a finished video by id (the form encoding of {"id": ...}): it keeps its size and frame rate
        by_id = http.post("/v1/videos/extensions", data={"prompt": "", "seconds": "1", "video[id]": source.id}).json()
        done = wait_for(http, by_id["id"], lambda v: v["status"] == "completed")
        assert (done["size"], done["fps"], done["frames"]) == ("64x48", 8, 13)
        r = http.post("/v1/videos/edits", data={"prompt": "a ball", "video[id]": "video_missing"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "video_id"
        r = http.post("/v1/videos/edits", data={"prompt": "a ball"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "video"
        # input_reference {"image_url": a data URL} in a form, as OpenAI's form encoding writes an object
        data_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
        from_url = http.post("/v1/videos", data={"prompt": "a ball", "input_reference[image_url]": data_url}).json()
        assert "first image" in client.videos.poll(from_url["id"]).model_extra["note"]
