"""The worker: claims queued jobs, generates them in batches, stores the outputs and what they cost.

    loop:  requeue jobs whose worker died -> claim the oldest job and others of its shape -> rebuild each
           request with validate_request -> Pipeline.generate (a heartbeat thread keeps the lease, writes the
           progress and notices cancels) -> mp4, thumbnail and spritesheet -> complete (only while the claim
           is still ours)

Cancel is cooperative: the heartbeat sees the flag and the next sampler step raises, which frees the worker
at once. The other jobs of a stopped batch go back to the queue. Anything a job does wrong fails that job
with its reason; the worker itself carries on (a lost database connection is retried).
"""

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from ..errors import InvalidRequest, MediaError
from ..video_io import spritesheet, thumbnail, write_image, write_video
from .cost import PriceTable
from .spec import rebuild
from .store import Claimed, JobStore

log = logging.getLogger("straightline.worker")

OUTPUTS = {"video": ("video.mp4", "video/mp4"), "thumbnail": ("thumbnail.webp", "image/webp"),
           "spritesheet": ("spritesheet.jpg", "image/jpeg")}


class _Stopped(Exception):
    """Raised from the sampler's step callback: a job of the batch was cancelled, or the claim was lost."""


class _Heartbeat(threading.Thread):
    """Keeps a claim's lease, writes its progress, and sets `stop` when a job is cancelled or the claim lost."""

    def __init__(self, store: JobStore, token: str, seqs: list[int], interval: float):
        super().__init__(daemon=True, name="heartbeat")
        self.store, self.token, self.seqs, self.interval = store, token, seqs, interval
        self.progress, self.stop, self.done = 0, threading.Event(), threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            try:
                held = self.store.heartbeat(self.token, self.progress)
            except Exception as err:  # noqa: BLE001 - the database is away: keep trying until the lease runs out
                log.warning("heartbeat failed: %s", err)
                continue
            if any(seq not in held or held[seq] for seq in self.seqs):
                self.stop.set()


class Worker:
    """Runs jobs from a JobStore on one device.

    Args:
        store: the job store.
        model, device: the model folder (or "default") and where it runs; loaded on the first job.
        batch_size: at most this many queued jobs of one shape run as one batch.
        poll_s: how long to wait when the queue is empty.
        prices: the price table; pipeline: an already loaded Pipeline (tests).
    """

    def __init__(self, store: JobStore, *, model="default", device="cpu", batch_size: int = 4,
                 poll_s: float = 0.5, prices: PriceTable | None = None, pipeline=None, name: str | None = None):
        self.store, self.model, self.device = store, model, device
        self.batch_size, self.poll_s = batch_size, poll_s
        self.prices = prices or PriceTable()
        self._pipeline = pipeline
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"
        self.heartbeat_s = min(1.0, store.lease_s / 4)
        self.wake_event = threading.Event()
        self.last_requeue = 0.0

    @property
    def pipeline(self):
        if self._pipeline is None:     # its own copy: worker threads of one process must not share one
            from ..pipeline import Pipeline
            self._pipeline = Pipeline(self.model, self.device)
        return self._pipeline

    def wake(self) -> None:
        """A job was queued: look now instead of after poll_s."""
        self.wake_event.set()

    def run(self, stop: threading.Event | None = None, max_batches: int | None = None) -> None:
        """Work until `stop` is set (or after `max_batches` batches)."""
        stop = stop or threading.Event()
        log.info("worker %s: model %s on %s", self.name, self.model, self.device)
        batches = 0
        while not stop.is_set() and (max_batches is None or batches < max_batches):
            try:
                handled = self.run_once()
            except Exception as err:  # noqa: BLE001 - the database is away, most likely: wait and try again
                log.warning("worker %s: %s", self.name, err)
                handled = 0
                stop.wait(self.poll_s)
            if handled:
                batches += 1
            else:
                self.wake_event.wait(self.poll_s)
                self.wake_event.clear()

    def run_once(self) -> int:
        """Requeue expired jobs (every lease/4), then claim and run one batch -> how many jobs it held."""
        if time.time() - self.last_requeue > self.store.lease_s / 4:
            self.last_requeue = time.time()
            if requeued := self.store.requeue_expired():
                log.info("requeued %d jobs whose worker stopped", requeued)
        _ = self.pipeline      # load the model before claiming: a worker that cannot load holds no job
        batch = self.store.claim(self.name, self.batch_size)
        if batch:
            self.process(batch)
        return len(batch)

    def process(self, batch: list[Claimed]) -> None:
        token, pipeline = batch[0].token, self.pipeline
        jobs, requests = [], []
        for job in batch:
            fields = dict(job.fields)
            inputs = {name: self.store.blob(job.id, blob) for name, blob in fields.pop("inputs", {}).items()}
            if None in inputs.values():                      # deleted since it was claimed
                self.store.fail(token, job.seq, "cancelled", "deleted by the client")
                continue
            try:
                requests.append(rebuild(fields, {k: data for k, (_, data) in inputs.items()}, pipeline.info))
                jobs.append(job)
            except (InvalidRequest, MediaError) as err:     # e.g. the model changed since it was queued
                self.store.fail(token, job.seq, "invalid_request", str(err))
        if not jobs:
            return
        beat = _Heartbeat(self.store, token, [j.seq for j in jobs], self.heartbeat_s)
        beat.start()

        def on_step(done, total):
            beat.progress = 1 + int(94 * done / max(total, 1))      # 95..100 is writing the files
            if beat.stop.is_set():
                raise _Stopped

        try:
            self._generate(token, jobs, requests, beat, on_step)
        finally:
            beat.done.set()

    def _generate(self, token: str, jobs: list[Claimed], requests: list, beat: _Heartbeat, on_step) -> None:
        start = time.perf_counter()
        try:
            results = self.pipeline.generate(requests, on_step=on_step)
        except _Stopped:
            self._stopped(token, jobs, time.perf_counter() - start, beat.progress)
            return
        except Exception as err:    # a bug or a device error fails these jobs with the reason, not the worker
            log.exception("batch of %d failed", len(jobs))
            for job in jobs:
                self.store.fail(token, job.seq, "generation_error", f"{type(err).__name__}: {err}")
            return
        device_s = (time.perf_counter() - start) / len(jobs)       # a batch's time, shared by its jobs
        beat.progress = 95
        for job, result in zip(jobs, results):
            outputs = encode_outputs(result.frames, result.fps)
            info = {"width": result.frames.shape[2], "height": result.frames.shape[1],
                    "frames": result.frames.shape[0], "fps": result.fps,
                    "seconds": round((result.frames.shape[0] - 1) / result.fps, 3),
                    "requested_frames": result.requested_frames, "note": result.note,
                    "timings": {k: round(v, 4) for k, v in result.timings.items()}, "worker": self.name}
            price = self.prices.price(job.flops, device_s, self.device)
            if not self.store.complete(token, job.seq, result=info, outputs=outputs, device_s=device_s,
                                       price=price, batch_size=len(jobs)):
                log.warning("job %s: claim lost before completing; another worker has it", job.id)

    def _stopped(self, token: str, jobs: list[Claimed], seconds: float, progress: int) -> None:
        """A batch stopped between steps: cancelled jobs fail as cancelled (charged for the time used), the
        others go back to the queue; jobs whose claim was lost are left to their new worker."""
        held = self.store.heartbeat(token)
        device_s = seconds / len(jobs)
        for job in jobs:
            if held.get(job.seq):
                price = self.prices.price(job.flops * progress / 100, device_s, self.device)
                self.store.fail(token, job.seq, "cancelled", f"cancelled by the client at {progress}%",
                                device_s=device_s, price=price)
        self.store.release(token, [j.seq for j in jobs if j.seq in held and not held[j.seq]])


def encode_outputs(frames, fps: float) -> dict[str, tuple[str, bytes]]:
    """uint8 (T, H, W, 3) -> the content variants: H.264 mp4, a webp thumbnail, a jpg spritesheet."""
    with tempfile.TemporaryDirectory(prefix="straightline-") as tmp:
        tmp = Path(tmp)
        write_video(tmp / OUTPUTS["video"][0], frames, fps)
        write_image(tmp / OUTPUTS["thumbnail"][0], thumbnail(frames, width=min(320, frames.shape[2])))
        write_image(tmp / OUTPUTS["spritesheet"][0], spritesheet(frames))
        return {name: (content_type, (tmp / file).read_bytes()) for name, (file, content_type) in OUTPUTS.items()}


def start_in_process(store: JobStore, stop: threading.Event, **worker_args) -> tuple[Worker, threading.Thread]:
    """A worker on a thread of this process (`straightline serve`), until `stop` is set."""
    worker = Worker(store, **worker_args)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True, name="worker")
    thread.start()
    return worker, thread
