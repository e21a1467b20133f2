"""The studio page end to end in headless Chromium (Debian's chromium, driven by Playwright): submit -> live
progress -> the video plays; cancel works; an invalid request shows the error naming the field. Skipped
without Playwright or a Chromium (.ci/run installs both)."""

from contextlib import contextmanager

import pytest
from conftest import CHROMIUM, CHROMIUM_FLAGS

from straightline.pipeline import Pipeline
from straightline.service import Settings
from straightline.service.server import ThreadServer, build, shutdown

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (.ci/run installs it)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's)")


@contextmanager
def studio(model_dir, tmp_path):
    settings = Settings(db=f"sqlite:///{tmp_path}/jobs.db", model=str(model_dir), poll_after_ms=50, lease_s=3,
                        upload_dir=tmp_path / "uploads")
    app = build(settings, pipeline=Pipeline(model_dir))
    try:
        with ThreadServer(app) as url, sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            yield page, app.state.store
            browser.close()
    finally:
        shutdown(app)


def test_studio_submit_progress_play_cancel_and_errors(model_dir, tmp_path):
    with studio(model_dir, tmp_path) as (page, store):
        # the prompt, expanded as you type, with a quote
        page.fill("#prompt", "a red ball bouncing")
        page.wait_for_function("document.getElementById('expanded').textContent.startsWith('→')")
        page.wait_for_function("document.getElementById('quote').textContent.includes('USD')")
        page.fill("#seconds", "1")
        page.click("#submit")
        # the result plays in the gallery
        page.wait_for_selector("#gallery .card video[src^='blob:']")
        page.wait_for_function("(() => { const v = document.querySelector('#gallery video');"
                               " return v.readyState >= 2 && v.videoWidth === 64 && v.currentTime > 0; })()")
        assert "USD" in page.inner_text("#gallery .card .meta")

        # a slow one: live progress in the queue, then cancel
        page.click("#aspects button[data-aspect='9:16']")
        page.select_option("#resolution", "128")
        page.fill("#seconds", "2")
        page.fill("#steps", "200")
        page.click("#submit")
        page.wait_for_function("(() => { const p = document.querySelector('#queue li[data-id] progress');"
                               " return p && p.value > 0; })()")
        job_id = page.get_attribute("#queue li[data-id]", "data-id")
        assert store.get(job_id)["summary"]["width"] == 128                 # 9:16 at 128: 128x224
        page.click(f"#queue li[data-id='{job_id}'] .cancel")
        page.wait_for_selector("#queue li.failed:has-text('cancelled')")
        job = store.get(job_id)
        assert (job["status"], job["error_code"]) == ("failed", "cancelled") and job["progress"] < 100

        # an invalid request: the error names the field, nothing is queued
        before = store.queue_length()
        page.fill("#steps", "2")
        page.fill("#seconds", "99")
        page.click("#submit")
        page.wait_for_function("document.getElementById('error').textContent.startsWith('seconds:')")
        assert "60 seconds" in page.inner_text("#error") and store.queue_length() == before

        # remix from the gallery: a second card appears and plays
        page.fill("#seconds", "")
        page.fill("#prompt", "a blue ball bouncing")
        page.click("#gallery .card button.remix")
        page.wait_for_function("document.querySelectorAll('#gallery .card video[src^=\"blob:\"]').length === 2")
