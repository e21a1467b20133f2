"""The job store and its workers under failure, on SQLite and a real PostgreSQL (STRAIGHTLINE_TEST_POSTGRES, set
by .ci/run; skipped without it): claims never overlap, a dead worker's job is requeued and completed by another
exactly once, a worker that lost its claim cannot complete the job, the queue survives restarts."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager

import pytest

from straightline.model import load_info
from straightline.service.spec import expand, validate
from straightline.service.store import JobStore

SLOW = {"size": "256x128", "frames": 17, "steps": 60}    # many heartbeats long, even on a fast machine


def add(store: JobStore, shape: str = "a", **fields) -> dict:
    job, created = store.create(owner="local", model="m", prompt="p", fields=fields, shape=shape, summary={},
                                fingerprint=uuid.uuid4().hex, inputs={})
    assert created
    return job


# --- claims, leases, requeues ------------------------------------------------------------------------------

def test_a_claim_takes_the_oldest_job_and_others_of_its_shape(db_url):
    store = JobStore(db_url)
    jobs = [add(store, s) for s in "abaa"]
    first = store.claim("w1", limit=3)
    assert [c.id for c in first] == [jobs[0]["id"], jobs[2]["id"], jobs[3]["id"]]
    assert len({c.token for c in first}) == 1
    assert [c.id for c in store.claim("w2", limit=3)] == [jobs[1]["id"]]
    assert store.claim("w3") == []
    assert {store.get(j["id"])["status"] for j in jobs} == {"in_progress"}


def test_concurrent_claims_never_hand_out_a_job_twice(db_url):
    seqs = {add(JobStore(db_url), "ab"[i % 2])["seq"] for i in range(30)}
    claimed, errors = [], []

    def worker(name):
        store = JobStore(db_url)          # its own engine and connections, like another process
        try:
            while batch := store.claim(name, limit=3):
                claimed.extend(c.seq for c in batch)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(claimed) == sorted(seqs)


def test_a_dead_workers_job_is_requeued_and_only_the_new_claim_completes(db_url):
    store = JobStore(db_url, lease_s=0.3)
    job = add(store)
    [old] = store.claim("dead")
    time.sleep(0.4)                                   # no heartbeat: the lease runs out
    assert store.requeue_expired() == 1 and store.get(job["id"])["status"] == "queued"
    [new] = store.claim("alive")
    assert new.id == job["id"] and new.token != old.token
    assert store.heartbeat(old.token) == {}            # the old claim is gone ...
    assert not store.complete(old.token, old.seq, result={"by": "dead"}, outputs={"video": ("video/mp4", b"old")},
                              device_s=1, price=1, batch_size=1)                       # ... and cannot complete
    assert store.complete(new.token, new.seq, result={"by": "alive"}, outputs={"video": ("video/mp4", b"new")},
                          device_s=1, price=1, batch_size=1)
    assert not store.complete(new.token, new.seq, result={}, outputs={}, device_s=1, price=1, batch_size=1)
    done = store.get(job["id"])
    assert (done["status"], done["attempts"], done["worker"], done["result"]) == ("completed", 2, "alive",
                                                                                  {"by": "alive"})
    assert store.blob(job["id"], "video") == ("video/mp4", b"new")


def test_a_heartbeat_keeps_the_lease(db_url):
    store = JobStore(db_url, lease_s=0.4)
    job = add(store)
    [claim] = store.claim("w")
    for _ in range(5):
        time.sleep(0.15)
        assert store.heartbeat(claim.token, progress=50) == {claim.seq: False}
        assert store.requeue_expired() == 0
    assert store.get(job["id"])["progress"] == 50


def test_a_job_that_keeps_losing_its_worker_fails_as_worker_lost(db_url):
    store = JobStore(db_url, lease_s=0.1, max_attempts=2)
    job = add(store)
    for _ in range(2):
        store.claim("doomed")
        time.sleep(0.15)
        store.requeue_expired()
    failed = store.get(job["id"])
    assert (failed["status"], failed["error_code"], failed["attempts"]) == ("failed", "worker_lost", 2)


def test_cancel_and_delete_by_state(db_url):
    store = JobStore(db_url, lease_s=0.2)
    queued, running = add(store), add(store, "b")
    [claim] = store.claim("w", limit=1)
    assert claim.id == queued["id"]
    assert store.cancel(queued["id"]) == "requested"
    assert store.heartbeat(claim.token) == {claim.seq: True}       # the worker sees it at its next heartbeat
    assert store.cancel(running["id"]) == "cancelled" and store.get(running["id"])["status"] == "failed"
    assert store.cancel("video_missing") == "missing"
    assert store.delete(queued["id"]) and store.get(queued["id"]) is None and not store.delete(queued["id"])
    time.sleep(0.3)
    store.requeue_expired()                                          # a cancelled job is not requeued
    assert store.claim("w2") == []


def test_the_queue_survives_a_restart(db_url):
    store = JobStore(db_url)
    ids = [add(store)["id"] for _ in range(3)]
    store.close()
    again = JobStore(db_url)
    assert [c.id for c in again.claim("w", limit=5)] == ids


# --- real worker processes ------------------------------------------------------------------------------------


def submit(store: JobStore, model_dir, **body) -> str:
    """Queue a job as the API does (validated, seed drawn), without the HTTP around it."""
    spec = validate({"prompt": "a red ball bouncing", **body}, {}, load_info(model_dir))
    job, _ = store.create(owner="local", model="straightline", prompt="a red ball bouncing",
                          fields={**spec.fields, "inputs": {}}, shape=spec.shape, summary=spec.summary,
                          fingerprint=uuid.uuid4().hex, inputs={})
    return job["id"]


def start_worker(db_url, model_dir, name, log_dir):
    """`straightline worker` as an operator runs it, in its own process."""
    with open(log_dir / f"{name}.log", "w") as log:      # the child keeps its own copy of the file
        return subprocess.Popen([sys.executable, "-m", "straightline", "worker", "--db", db_url, "--model",
                                 str(model_dir), "--device", "cpu", "--lease", "2", "--name", name],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_until(store, job_id, until, timeout=180.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = store.get(job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"timed out: {job}")


@contextmanager
def workers(*procs):
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_replaced_and_the_job_completed_exactly_once(postgres_url, model_dir, tmp_path):
    store = JobStore(postgres_url, lease_s=2)
    procs = {name: start_worker(postgres_url, model_dir, name, tmp_path) for name in "AB"}
    with workers(*procs.values()):
        job_id = submit(store, model_dir, **SLOW)
        running = wait_until(store, job_id, lambda j: j["status"] == "in_progress" and j["progress"] > 0)
        victim = running["worker"]
        survivor = "B" if victim == "A" else "A"
        procs[victim].send_signal(signal.SIGKILL)         # mid-job: no goodbye, no cleanup
        procs[victim].wait()
        done = wait_until(store, job_id, lambda j: j["status"] in ("completed", "failed"))
        procs[survivor].send_signal(signal.SIGTERM)
        assert procs[survivor].wait(timeout=60) == 0      # SIGTERM: it finishes what it holds and exits cleanly
    assert (done["status"], done["attempts"], done["worker"], done["progress"]) == ("completed", 2, survivor, 100)
    assert done["result"]["worker"] == survivor and done["result"]["frames"] == 17
    assert store.blob(job_id, "video")[0] == "video/mp4"
    assert store.get(job_id)["completed_at"] == done["completed_at"]    # nothing completed it again


@pytest.mark.slow
def test_a_paused_worker_that_lost_its_job_cannot_complete_it(postgres_url, model_dir, tmp_path):
    """A worker frozen past its lease (SIGSTOP: a long GC pause, a partition) wakes up after another worker has
    completed its job: it must notice and not complete the job a second time."""
    store = JobStore(postgres_url, lease_s=2)
    procs = {name: start_worker(postgres_url, model_dir, name, tmp_path) for name in "AB"}
    with workers(*procs.values()):
        job_id = submit(store, model_dir, **SLOW)
        running = wait_until(store, job_id, lambda j: j["status"] == "in_progress" and j["progress"] > 0)
        paused = procs[running["worker"]]
        paused.send_signal(signal.SIGSTOP)
        done = wait_until(store, job_id, lambda j: j["status"] == "completed")
        assert done["worker"] != running["worker"] and done["attempts"] == 2
        paused.send_signal(signal.SIGCONT)                # it carries on where it was frozen ...
        time.sleep(3)                                     # ... and its heartbeat or its complete() finds the new claim
        after = store.get(job_id)
        assert (after["worker"], after["completed_at"], after["attempts"]) == (done["worker"], done["completed_at"], 2)
        assert paused.poll() is None                      # alive and well: it just let go of the job


def test_the_api_expands_a_prompt_for_the_aspect_and_seconds_the_client_set():
    info = load_info("default")
    request = {"prompt": "a red ball bouncing fast in the lower left", "seed": 1}
    _, plain = expand(request, info)
    _, portrait = expand({**request, "aspect": "9:16", "seconds": "8"}, info)
    _, sized = expand({**request, "size": "144x256", "seconds": "8"}, info)
    assert portrait != plain and sized == portrait      # the caption tells the events of the clip asked for
