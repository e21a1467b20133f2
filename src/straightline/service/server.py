"""`straightline serve` (the API, with worker threads by default) and `straightline worker` (a worker process)."""

import logging
import signal
import socket
import threading
import time

from ..errors import InvalidRequest
from .api import create_app
from .settings import Settings
from .store import JobStore
from .worker import Worker, start_in_process

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def open_store(settings: Settings) -> JobStore:
    return JobStore(settings.db, lease_s=settings.lease_s, max_attempts=settings.max_attempts)


def build(settings: Settings, store: JobStore | None = None, pipeline=None):
    """The app with settings.workers worker threads; shutdown(app) stops them."""
    store = store or open_store(settings)
    stop = threading.Event()
    workers = [start_in_process(store, stop, model=settings.model, device=settings.device,
                                batch_size=settings.batch_size, prices=settings.prices, pipeline=pipeline)
               for _ in range(settings.workers)]
    app = create_app(settings, store, wake=lambda: [w.wake() for w, _ in workers])
    app.state.stop, app.state.workers = stop, workers
    return app


def shutdown(app, timeout: float = 60.0) -> None:
    """Stop the app's worker threads (each finishes or stops its batch) and close the store."""
    app.state.stop.set()
    for worker, thread in app.state.workers:
        worker.wake()
        thread.join(timeout)
    app.state.store.close()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API until interrupted. Without API keys the service is local and binds to localhost only."""
    import uvicorn
    store = open_store(settings)
    settings.require_keys = settings.require_keys or store.has_keys()
    if not settings.require_keys and host not in LOCAL_HOSTS:
        raise InvalidRequest("host", host, "127.0.0.1, localhost or ::1 while no API key exists (local mode); "
                             "create one with `straightline serve --create-key NAME` to serve a network")
    app = build(settings, store)
    if settings.feed:      # the feed's first start embeds 2,048 prompts for its feature basis: now, not at /feed
        threading.Thread(target=app.state.feed.get, daemon=True, name="feed-start").start()
    keys = "API keys required" if settings.require_keys else "local mode, no keys"
    print(f"straightline: serving {settings.model_name} ({settings.model} on {settings.device}) at "
          f"http://{host}:{port}/v1 — {keys}; jobs in {settings.db}; {settings.workers} worker thread(s)")
    if settings.feed:
        print(f"  feed: http://{host}:{port}/feed")
    if settings.apps_dir is not None:
        apps = app.state.apps
        print(f"  apps: http://{host}:{port}/apps — {len(apps.apps())} from {settings.apps_dir}"
              + "".join(f"\n  app file error: {err}" for err in apps.errors.values()))
    try:
        # keep-alive longer than a polling client's pause (uvicorn's 5 s closes connections that clients are about
        # to reuse when the server is busy, and they see resets); a larger backlog for bursts of connections
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=75, backlog=4096)
    finally:
        shutdown(app)


def work(settings: Settings, name: str | None = None, max_batches: int | None = None) -> None:
    """One worker process until SIGTERM/SIGINT (the batch in hand is finished first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store, stop = open_store(settings), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = Worker(store, model=settings.model, device=settings.device, batch_size=settings.batch_size,
                    prices=settings.prices, name=name)
    print(f"straightline: worker {worker.name} on {settings.db} ({settings.model} on {settings.device})",
          flush=True)
    try:
        worker.run(stop, max_batches=max_batches)
    finally:
        store.close()


class ThreadServer:
    """The app served by uvicorn on a thread, on a free loopback port (tests and benchmarks).

        with ThreadServer(app) as base_url: ...      # "http://127.0.0.1:PORT"
    """

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    timeout_keep_alive=75, backlog=4096))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
