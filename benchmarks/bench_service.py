"""The service under load: concurrent creates and polls, and jobs per minute through 1 and 2 workers.

    python benchmarks/bench_service.py --db postgresql://postgres@/postgres?host=/tmp/pg --clients 500 --jobs 16

1. Load. `straightline serve --workers 0` (the API alone, in its own process) on a fresh database; --clients
   concurrent clients on loopback each create a video (a multipart form, as the SDK sends it, with its own
   Idempotency-Key), a fifth of them send the create again as a retry would, then each polls the video's status
   --polls times. Reported: creates accepted, distinct videos, retries answered with the first video, videos
   lost (accepted but missing from the list), create and poll latency p50/p95, polls per second.
2. Throughput. --jobs jobs of one shape queued, then `straightline worker` processes (1 or 2, batch size 1 or 4)
   run them; jobs/min is counted from the first claim to the last completion (the job records' own times, so
   the workers' start-up is not in it). On a CPU, 2 workers share the cores that 1 worker has to itself.

--db sqlite (a fresh file) or a PostgreSQL URL (a fresh database is created on that server and dropped).
The model is --model, or by default a DiT of the "default" preset with random weights and the shipped VAE:
its speed is the trained model's. Prints Markdown tables with the hardware.
"""

import argparse
import asyncio
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch

from straightline import dit as dit_module
from straightline.eval.report import hardware
from straightline.model import DEFAULT_PATH, ModelInfo, save_model
from straightline.service.store import JobStore
from straightline.vae import VideoVAE


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


@contextmanager
def fresh_database(db: str, workdir: Path):
    if db == "sqlite":
        yield f"sqlite:///{workdir}/bench-{uuid.uuid4().hex[:8]}.db"
        return
    import psycopg
    from sqlalchemy.engine import make_url
    name = "bench_" + uuid.uuid4().hex[:10]
    admin = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(db).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench_model(workdir: Path) -> Path:
    """The default DiT preset with random weights and the shipped VAE."""
    torch.manual_seed(0)
    path = workdir / "model"
    save_model(path, dit_module.DiT(dit_module.PRESETS["default"]), VideoVAE.load(DEFAULT_PATH / "vae"), ModelInfo())
    return path


def straightline(*args, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "straightline", *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


def start_server(db_url: str, model: Path, port: int, workdir: Path) -> subprocess.Popen:
    server = straightline("serve", "--workers", "0", "--db", db_url, "--model", str(model), "--port", str(port),
                          "--poll-after-ms", "500", log=workdir / f"serve-{port}.log")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not start: {(workdir / f'serve-{port}.log').read_text()[-2000:]}")


# --- 1. load -------------------------------------------------------------------------------------------------

async def one_client(http: httpx.AsyncClient, i: int, polls: int, retry: bool, stats: dict) -> None:
    try:
        await _one_client(http, i, polls, retry, stats)
    except httpx.TransportError as err:
        stats["errors"].append(f"client {i}: {type(err).__name__} {err}")


async def _one_client(http: httpx.AsyncClient, i: int, polls: int, retry: bool, stats: dict) -> None:
    form = {"prompt": "a red ball bouncing on a wooden floor", "seconds": "1", "seed": str(i)}
    headers = {"Idempotency-Key": f"bench-{i}"}
    start = time.perf_counter()
    r = await http.post("/v1/videos", data=form, headers=headers)
    stats["create_s"].append(time.perf_counter() - start)
    if r.status_code != 200:
        stats["errors"].append(f"create {r.status_code}: {r.text[:200]}")
        return
    video_id = r.json()["id"]
    stats["ids"].append(video_id)
    if retry:
        again = await http.post("/v1/videos", data=form, headers=headers)
        stats["retries"] += 1
        stats["retries_same"] += again.status_code == 200 and again.json()["id"] == video_id
    for _ in range(polls):
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        r = await http.get(f"/v1/videos/{video_id}")
        stats["poll_s"].append(time.perf_counter() - start)
        if r.status_code != 200:
            stats["errors"].append(f"poll {r.status_code}: {r.text[:200]}")


async def load(url: str, clients: int, polls: int) -> dict:
    stats = {"create_s": [], "poll_s": [], "ids": [], "errors": [], "retries": 0, "retries_same": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(http, i, polls, i % 5 == 0, stats) for i in range(clients)))
        stats["wall_s"] = time.perf_counter() - start
        listed, after = [], None
        while True:
            page = (await http.get("/v1/videos", params={"limit": 100, **({"after": after} if after else {})})).json()
            listed += [v["id"] for v in page["data"]]
            if not page["has_more"]:
                break
            after = page["last_id"]
    stats["listed"] = listed
    return stats


def run_load(args, model: Path, workdir: Path) -> list[str]:
    rows = []
    with fresh_database(args.db, workdir) as db_url:
        server = start_server(db_url, model, args.port, workdir)
        try:
            s = asyncio.run(load(f"http://127.0.0.1:{args.port}", args.clients, args.polls))
        finally:
            server.terminate()
            server.wait()
        accepted, distinct = len(s["ids"]), len(set(s["ids"]))
        lost = len(set(s["ids"]) - set(s["listed"]))
        rows.append(f"| {args.clients} | {args.polls} | {accepted} | {distinct} | {len(s['listed'])} | "
                    f"{s['retries_same']}/{s['retries']} | {lost} | {len(s['errors'])} | "
                    f"{1000 * percentile(s['create_s'], 0.5):.0f} / {1000 * percentile(s['create_s'], 0.95):.0f} | "
                    f"{1000 * percentile(s['poll_s'], 0.5):.0f} / {1000 * percentile(s['poll_s'], 0.95):.0f} | "
                    f"{len(s['poll_s']) / s['wall_s']:.0f} |")
        for e in s["errors"][:5]:
            print("error:", e, file=sys.stderr)
    return rows


# --- 2. throughput ---------------------------------------------------------------------------------------------

def run_throughput(args, model: Path, workdir: Path, workers: int, batch: int) -> str:
    with fresh_database(args.db, workdir) as db_url:
        server = start_server(db_url, model, args.port + 1, workdir)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port + 1}", timeout=60) as http:
                for i in range(args.jobs):
                    form = {"prompt": "a red ball bouncing on a wooden floor", "size": args.size,
                            "seconds": args.seconds, "steps": str(args.steps), "seed": str(i)}
                    r = http.post("/v1/videos", data=form)
                    r.raise_for_status()
        finally:
            server.terminate()
            server.wait()
        procs = [straightline("worker", "--db", db_url, "--model", str(model), "--device", args.device,
                              "--batch-size", str(batch), "--name", f"w{k}", log=workdir / f"worker{k}.log")
                 for k in range(workers)]
        store = JobStore(db_url)
        try:
            deadline = time.time() + args.timeout
            while time.time() < deadline:
                page, _ = store.page(None, limit=args.jobs, order="asc")
                if all(j["status"] in ("completed", "failed") for j in page):
                    break
                time.sleep(0.5)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
        page, _ = store.page(None, limit=args.jobs, order="asc")
        store.close()
    done = [j for j in page if j["status"] == "completed"]
    if not done:
        return f"| {workers} | {batch} | 0/{args.jobs} completed | | | |"
    span = max(j["completed_at"] for j in done) - min(j["started_at"] for j in done)
    device = statistics.mean(j["device_s"] for j in done)
    by_worker = sorted({j["worker"] for j in done})
    return (f"| {workers} | {batch} | {len(done)}/{args.jobs} | {60 * len(done) / span:.1f} | {device:.2f} | "
            f"{', '.join(by_worker)} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL (a fresh database is made on it)")
    p.add_argument("--model", help="a model folder (default: the default DiT preset, random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--polls", type=int, default=5)
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--size", default="128x64")
    p.add_argument("--seconds", default="1")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--configs", default="1x1,1x4,2x1,2x4", help="WORKERSxBATCH, comma-separated")
    p.add_argument("--port", type=int, default=8731)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        workdir = Path(tmp)
        model = Path(args.model) if args.model else bench_model(workdir)
        db = "SQLite" if args.db == "sqlite" else "PostgreSQL"
        print(f"# bench_service  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {db}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}; {hardware()}\n")
        if not args.skip_load:
            print(f"## Load: {args.clients} concurrent clients (create, a fifth retry it, {args.polls} polls each), "
                  f"API process only\n")
            print("| clients | polls each | creates accepted | distinct videos | listed | retries → same video | "
                  "lost | errors | create ms p50 / p95 | poll ms p50 / p95 | polls/s |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for row in run_load(args, model, workdir):
                print(row, flush=True)
            print()
        if not args.skip_throughput:
            print(f"## Throughput: {args.jobs} jobs of {args.size}, {args.seconds} s, {args.steps} steps "
                  f"(model: {args.model or 'default preset, random weights'}; device {args.device})\n")
            print("| workers | batch size | completed | jobs/min | device s per job | by |")
            print("|---|---|---|---|---|---|")
            for config in args.configs.split(","):
                workers, batch = (int(x) for x in config.split("x"))
                print(run_throughput(args, model, workdir, workers, batch), flush=True)


if __name__ == "__main__":
    main()
