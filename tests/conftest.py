"""Shared test helpers: a tiny model folder, and what the service's tests share (PostgreSQL, Chromium)."""

import os
import shutil
import uuid
from contextlib import contextmanager

import pytest
import torch

from straightline import dit as dit_module
from straightline import vae as vae_module
from straightline.model import ModelInfo, save_model


def tiny_model_folder(path, defaults: dict):
    """A tiny model folder at `path` with these generation defaults. The DiT is untrained but nudged off its zero
    init (adaLN-zero and the zero output layer would make the velocity exactly 0, so text, seeds, guidance and
    batching could not change anything). Seeded: every call gives the same weights."""
    torch.manual_seed(0)
    dit = dit_module.DiT(dit_module.PRESETS["tiny"])
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(path, dit, vae_module.VideoVAE(vae_module.PRESETS["tiny"]), ModelInfo(defaults=defaults))
    return path


# --- the service's tests -----------------------------------------------------------------------------------

# generation defaults of the tiny model the service tests serve: a 64x32, 5-frame clip in 2 steps
SERVICE_DEFAULTS = {"max_tokens": 1024, "resolution": 32, "fps": 8, "seconds": 0.5, "steps": 2}
POSTGRES = os.environ.get("STRAIGHTLINE_TEST_POSTGRES")   # a server URL: .ci/run starts one and sets it
NO_POSTGRES = "STRAIGHTLINE_TEST_POSTGRES is not set (.ci/run starts a PostgreSQL server and sets it)"
CHROMIUM = os.environ.get("STRAIGHTLINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# headless, as root in CI, and no calls out of a machine without a network
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The service tests' model (a test module that needs another defines its own model_dir)."""
    return tiny_model_folder(tmp_path_factory.mktemp("model"), SERVICE_DEFAULTS)


@pytest.fixture(scope="module")
def pipe(model_dir):
    """A pipeline on `model_dir`: the test module's own when it defines one, else the service tests'."""
    from straightline.pipeline import Pipeline
    return Pipeline(model_dir)


@contextmanager
def postgres_database():
    """A fresh database on the test server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url
    name = "sl_" + uuid.uuid4().hex[:12]
    admin = make_url(POSTGRES)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Each test that takes it runs twice: on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/jobs.db"
        return
    if not POSTGRES:
        pytest.skip(NO_POSTGRES)
    with postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def postgres_url():
    if not POSTGRES:
        pytest.skip(NO_POSTGRES)
    with postgres_database() as url:
        yield url
