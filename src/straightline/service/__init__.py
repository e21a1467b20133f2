"""The service: an OpenAI-compatible video API over a job queue, with workers and cost metering.

    api.py       the FastAPI app (create_app): OpenAI's Video API routes and our extensions
    spec.py      API fields -> validate_request (the CLI's one check) -> a job to store
    store.py     the SQLAlchemy job store (SQLite or PostgreSQL): claims, leases, heartbeats, requeues
    worker.py    the worker loop: claim a batch, generate, store outputs and cost
    cost.py      FLOPs, device seconds and prices
    settings.py  what a deployment is configured with
    server.py    `straightline serve` and `straightline worker`

See docs/service.md.
"""

from .api import create_app
from .settings import Settings
from .store import JobStore
from .worker import Worker

__all__ = ["JobStore", "Settings", "Worker", "create_app"]
