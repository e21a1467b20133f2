"""The job store: one SQLAlchemy table of jobs is the source of truth; SQLite or PostgreSQL.

A job's life, and who moves it (every move is one conditional UPDATE, so two processes never both win):

    queued ──claim──▶ in_progress ──complete──▶ completed
       ▲                  │ │
       └──requeue─────────┘ └──fail / cancel──▶ failed   (error.code "cancelled" for a cancel)
         (lease expired:
          the worker died)

Claiming takes the oldest queued job and up to `limit - 1` more queued jobs of the same shape (one batch on
the worker), `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers on several machines never wait on
each other's rows; SQLite has one writer at a time (every write transaction is BEGIN IMMEDIATE), and the
`status = 'queued'` guard on the UPDATE makes a claim exclusive on both.

A claim gives the worker a fresh `claim_token` and a lease (`lease_until`). The worker's heartbeat extends
the lease while it works; when a worker dies its lease runs out, and any other worker's requeue_expired()
puts the job back in the queue (after `max_attempts` claims it fails as "worker_lost" instead, so a job
that kills every worker does not go round forever). Completing needs the current token: a worker that lost
its lease (killed, paused, partitioned) cannot complete a job that another worker has since claimed, so a
job is completed exactly once. The outputs are written in the same transaction as the completion.

Outputs and uploaded inputs are rows of `blobs`, so the database is the only thing workers on several
machines share. Times are Unix seconds from each process's clock: keep clocks synchronised (NTP) to well
under the lease.
"""

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),   # creation order: queue order and cursor
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(64), nullable=False, index=True),        # an API key's id, or "local"
    Column("status", String(16), nullable=False, index=True),
    Column("model", String(128), nullable=False),                  # as the client named it
    Column("prompt", Text, nullable=False),                        # as the client wrote it
    Column("fields", JSON, nullable=False),      # validate_request's fields, seed drawn; inputs are blob names
    Column("shape", String(256), nullable=False),                  # jobs of one shape run as one batch
    Column("summary", JSON, nullable=False),     # what the validated request will make: size, frames, fps, ...
    Column("remixed_from", String(64)),
    Column("progress", Integer, nullable=False, default=0),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),                 # first claim
    Column("completed_at", Float),               # completed or failed
    Column("worker", String(128)),
    Column("claim_token", String(64), index=True),
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(256)),
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("result", JSON),                      # frames, fps, width, height, note of what was made
    Column("queue_wait_s", Float),
    Column("device_s", Float),
    Column("flops", Float, nullable=False, default=0.0),
    Column("estimated_price", Float, nullable=False, default=0.0),
    Column("price", Float),
    Column("batch_size", Integer),
    UniqueConstraint("owner", "idempotency_key", name="one_job_per_idempotency_key"),
)

blobs = Table(
    "blobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("name", String(32), primary_key=True),      # "input:image", "video", "thumbnail", "spritesheet"
    Column("content_type", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

keys = Table(
    "api_keys", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),   # sha256 of the key; the key itself is not kept
    Column("daily_budget", Float),                # money per UTC day; None = no limit
    Column("daily_device_s", Float),              # device seconds per UTC day; None = no limit
    Column("rate_per_minute", Integer),           # creates per minute; None = no limit
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# jobs made by an app's form or by a feed: whose budget they count against, and the feed order they fulfil
app_jobs = Table(
    "app_jobs", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False, unique=True),
    Column("app", String(64), index=True),          # the app's name; None: the service's own feed (/feed)
    Column("user_name", String(128), nullable=False, index=True),   # the user charged for it
    Column("ticket", String(64), unique=True),      # the feed.Order it makes; None: made by the app's form
    Column("estimated_device_s", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
)

ACTIVE = ("queued", "in_progress")
FINISHED = ("completed", "failed")


def new_id() -> str:
    return "video_" + secrets.token_hex(16)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Claimed:
    """A job a worker holds: enough to rebuild its request and to prove the claim."""
    seq: int
    id: str
    fields: dict
    shape: str
    token: str
    created_at: float
    started_at: float
    flops: float
    estimated_price: float


def _engine(url: str, *, writer: bool = True, **kwargs):
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")   # psycopg 3, not psycopg2
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, **kwargs)
    # SQLite: one connection per use (NullPool) so threads never share one; WAL lets readers run beside the
    # one writer; a write transaction takes the write lock at BEGIN (IMMEDIATE), otherwise two readers that
    # both try to write would deadlock and one would fail at once instead of waiting busy_timeout
    engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None      # SQLAlchemy's "begin" below issues BEGIN itself
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class JobStore:
    """Jobs, their inputs and outputs, and API keys, in one database.

    Args:
        url: a SQLAlchemy URL: "sqlite:///path/jobs.db" or "postgresql://user@host/db" (psycopg 3).
        lease_s: how long a claim lasts without a heartbeat.
        max_attempts: claims after which a job whose worker keeps dying fails ("worker_lost").
    """

    def __init__(self, url: str, *, lease_s: float = 30.0, max_attempts: int = 3):
        self.url, self.lease_s, self.max_attempts = url, lease_s, max_attempts
        self.engine = _engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # reads that never write: on SQLite a deferred transaction, so polls run beside the one writer
        self.reader = self.engine if self.is_postgres else _engine(url, writer=False)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # --- the API side ----------------------------------------------------------------------------------

    def create(self, *, owner: str, model: str, prompt: str, fields: dict, shape: str, summary: dict,
               fingerprint: str, inputs: dict[str, tuple[str, bytes]], idempotency_key: str | None = None,
               dedupe_after: float | None = None, remixed_from: str | None = None, flops: float = 0.0,
               estimated_price: float = 0.0, tag: dict | None = None) -> tuple[dict, bool]:
        """Insert a queued job with its input blobs -> (job row, created). An existing job is returned instead
        (created False) when `idempotency_key` was used before by this owner, or, without a key, when this
        owner sent the same request (`fingerprint`) at or after `dedupe_after`. `tag` (app, user_name, ticket,
        estimated_device_s) is written with it when it is an app's or a feed's job."""
        job_id, now = new_id(), time.time()
        try:
            with self.engine.begin() as c:
                # the check and the insert in one transaction, serialised per request: SQLite has one writer at a
                # time; on PostgreSQL a transaction-scoped advisory lock on the fingerprint stops two concurrent
                # copies of one request both finding nothing and both inserting
                if self.is_postgres:
                    c.execute(select(func.pg_advisory_xact_lock(int(fingerprint[:15], 16))))
                existing = self._duplicate(c, owner, fingerprint, idempotency_key, dedupe_after)
                if existing is not None:
                    return existing, False
                c.execute(insert(jobs).values(
                    id=job_id, owner=owner, status="queued", model=model, prompt=prompt, fields=fields,
                    shape=shape, summary=summary, remixed_from=remixed_from, progress=0, created_at=now,
                    attempts=0, cancel_requested=False, deleted=False, idempotency_key=idempotency_key,
                    fingerprint=fingerprint, flops=flops, estimated_price=estimated_price))
                for name, (content_type, data) in inputs.items():
                    c.execute(insert(blobs).values(job_id=job_id, name=name, content_type=content_type, data=data))
                if tag is not None:
                    c.execute(insert(app_jobs).values(job_id=job_id, created_at=now, **tag))
        except IntegrityError:
            # the same idempotency key in a concurrent request that committed first
            existing = self.find_duplicate(owner, fingerprint, idempotency_key, None)
            if existing is None:
                raise
            return existing, False
        return self.get(job_id), True

    def find_duplicate(self, owner: str, fingerprint: str, idempotency_key: str | None,
                       dedupe_after: float | None) -> dict | None:
        with self.reader.connect() as c:
            return self._duplicate(c, owner, fingerprint, idempotency_key, dedupe_after)

    @staticmethod
    def _duplicate(c, owner, fingerprint, idempotency_key, dedupe_after) -> dict | None:
        if idempotency_key is not None:
            where = [jobs.c.owner == owner, jobs.c.idempotency_key == idempotency_key]
        elif dedupe_after is not None:
            where = [jobs.c.owner == owner, jobs.c.fingerprint == fingerprint, jobs.c.idempotency_key.is_(None),
                     jobs.c.created_at >= dedupe_after, jobs.c.deleted.is_(False)]
        else:
            return None
        row = c.execute(select(jobs).where(*where).order_by(jobs.c.seq.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def get(self, job_id: str, owner: str | None = None) -> dict | None:
        """A job that is not deleted (and belongs to `owner`, when given), or None."""
        where = [jobs.c.id == job_id, jobs.c.deleted.is_(False)]
        if owner is not None:
            where.append(jobs.c.owner == owner)
        with self.reader.connect() as c:
            row = c.execute(select(jobs).where(*where)).mappings().first()
        return dict(row) if row else None

    def page(self, owner: str | None, *, after: str | None = None, limit: int = 20,
             order: str = "desc") -> tuple[list[dict], bool] | None:
        """A page of jobs in creation order -> (jobs, has_more); None when `after` names no job of this owner."""
        where = [jobs.c.deleted.is_(False)]
        if owner is not None:
            where.append(jobs.c.owner == owner)
        with self.reader.connect() as c:
            if after is not None:
                cursor = c.execute(select(jobs.c.seq).where(jobs.c.id == after, *where)).scalar()
                if cursor is None:
                    return None
                where.append(jobs.c.seq < cursor if order == "desc" else jobs.c.seq > cursor)
            ordering = jobs.c.seq.desc() if order == "desc" else jobs.c.seq.asc()
            rows = c.execute(select(jobs).where(*where).order_by(ordering).limit(limit + 1)).mappings().all()
        return [dict(r) for r in rows[:limit]], len(rows) > limit

    def queue_position(self, seq: int) -> int:
        """1 for the next job a worker will claim."""
        with self.reader.connect() as c:
            return 1 + c.execute(select(func.count()).select_from(jobs).where(
                jobs.c.status == "queued", jobs.c.deleted.is_(False), jobs.c.seq < seq)).scalar()

    def queue_length(self) -> int:
        with self.reader.connect() as c:
            return c.execute(select(func.count()).select_from(jobs).where(
                jobs.c.status == "queued", jobs.c.deleted.is_(False))).scalar()

    def blob(self, job_id: str, name: str) -> tuple[str, bytes] | None:
        with self.reader.connect() as c:
            row = c.execute(select(blobs.c.content_type, blobs.c.data).where(
                blobs.c.job_id == job_id, blobs.c.name == name)).first()
        return (row[0], bytes(row[1])) if row else None

    def cancel(self, job_id: str) -> str:
        """Cancel a job -> what happened: "cancelled" (it was queued: failed at once), "requested" (a worker
        has it: it stops between sampler steps), "finished" (too late) or "missing"."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued",
                                                jobs.c.deleted.is_(False))
                             .values(status="failed", error_code="cancelled", error_message="cancelled by the "
                                     "client before it started", completed_at=now, cancel_requested=True))
            if done.rowcount:
                return "cancelled"
            asked = c.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "in_progress",
                                                 jobs.c.deleted.is_(False)).values(cancel_requested=True))
            if asked.rowcount:
                return "requested"
            exists = c.execute(select(jobs.c.seq).where(jobs.c.id == job_id, jobs.c.deleted.is_(False))).first()
        return "finished" if exists else "missing"

    def delete(self, job_id: str) -> bool:
        """Hide a job and drop its blobs; a running job is cancelled too. The row stays, for usage."""
        with self.engine.begin() as c:
            row = c.execute(select(jobs.c.status).where(jobs.c.id == job_id, jobs.c.deleted.is_(False))).first()
            if row is None:
                return False
            values = {"deleted": True, "cancel_requested": True}
            if row.status == "queued":
                values.update(status="failed", error_code="cancelled", error_message="deleted before it started",
                              completed_at=time.time())
            c.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
            c.execute(delete(blobs).where(blobs.c.job_id == job_id))
        return True

    # --- the worker side -------------------------------------------------------------------------------

    def claim(self, worker: str, limit: int = 1) -> list[Claimed]:
        """Take the oldest queued job and up to limit - 1 more of its shape; [] when the queue is empty."""
        now = time.time()
        token = secrets.token_hex(16)
        queued = [jobs.c.status == "queued", jobs.c.deleted.is_(False)]
        with self.engine.begin() as c:
            first = c.execute(select(jobs.c.seq, jobs.c.shape).where(*queued).order_by(jobs.c.seq).limit(1)
                              .with_for_update(skip_locked=True)).first()
            if first is None:
                return []
            more = c.execute(select(jobs.c.seq).where(*queued, jobs.c.shape == first.shape, jobs.c.seq != first.seq)
                             .order_by(jobs.c.seq).limit(limit - 1).with_for_update(skip_locked=True)).scalars().all()
            c.execute(update(jobs).where(jobs.c.seq.in_([first.seq, *more]), *queued).values(
                status="in_progress", worker=worker, claim_token=token, lease_until=now + self.lease_s,
                attempts=jobs.c.attempts + 1, started_at=func.coalesce(jobs.c.started_at, now), progress=0,
                cancel_requested=False))
            rows = c.execute(select(jobs).where(jobs.c.claim_token == token).order_by(jobs.c.seq)).mappings().all()
        return [Claimed(r["seq"], r["id"], r["fields"], r["shape"], token, r["created_at"], r["started_at"],
                        r["flops"], r["estimated_price"]) for r in rows]

    def heartbeat(self, token: str, progress: int | None = None) -> dict[int, bool]:
        """Extend the lease of the jobs held with `token` (and set their progress) -> {seq: cancel asked} of
        those still held; a job missing from it was lost (its lease ran out and it was requeued)."""
        values = {"lease_until": time.time() + self.lease_s}
        if progress is not None:
            values["progress"] = progress
        held = [jobs.c.claim_token == token, jobs.c.status == "in_progress"]
        with self.engine.begin() as c:
            c.execute(update(jobs).where(*held).values(**values))
            rows = c.execute(select(jobs.c.seq, jobs.c.cancel_requested).where(*held)).all()
        return {r.seq: bool(r.cancel_requested) for r in rows}

    def complete(self, token: str, seq: int, *, result: dict, outputs: dict[str, tuple[str, bytes]],
                 device_s: float, price: float, batch_size: int) -> bool:
        """Mark a held job completed with its outputs, in one transaction -> False (nothing written) when the
        claim was lost or the job was deleted meanwhile."""
        now = time.time()
        with self.engine.begin() as c:
            row = c.execute(select(jobs.c.id, jobs.c.created_at, jobs.c.started_at).where(
                jobs.c.seq == seq, jobs.c.claim_token == token, jobs.c.status == "in_progress",
                jobs.c.deleted.is_(False)).with_for_update()).first()
            if row is None:
                return False
            done = c.execute(update(jobs).where(jobs.c.seq == seq, jobs.c.claim_token == token,
                                                jobs.c.status == "in_progress").values(
                status="completed", progress=100, completed_at=now, result=result, lease_until=None,
                queue_wait_s=row.started_at - row.created_at, device_s=device_s, price=price, batch_size=batch_size))
            if done.rowcount != 1:    # cannot happen under the row lock above; nothing was written
                return False
            c.execute(delete(blobs).where(blobs.c.job_id == row.id, blobs.c.name.in_(list(outputs))))
            for name, (content_type, data) in outputs.items():
                c.execute(insert(blobs).values(job_id=row.id, name=name, content_type=content_type, data=data))
        return True

    def fail(self, token: str, seq: int, code: str, message: str, *, device_s: float | None = None,
             price: float | None = None) -> bool:
        """Mark a held job failed -> False when the claim was lost."""
        now = time.time()
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(jobs.c.seq == seq, jobs.c.claim_token == token,
                                                jobs.c.status == "in_progress").values(
                status="failed", error_code=code, error_message=message, completed_at=now, lease_until=None,
                queue_wait_s=jobs.c.started_at - jobs.c.created_at, device_s=device_s, price=price))
        return done.rowcount == 1

    def release(self, token: str, seqs: list[int]) -> None:
        """Put held jobs back in the queue without counting the attempt (their batch was stopped for another
        job's cancel)."""
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.seq.in_(seqs), jobs.c.claim_token == token,
                                         jobs.c.status == "in_progress").values(
                status="queued", worker=None, claim_token=None, lease_until=None, progress=0,
                attempts=jobs.c.attempts - 1))

    def requeue_expired(self) -> int:
        """Jobs whose lease ran out (their worker died) back to the queue, or failed after max_attempts;
        a cancelled one is failed as cancelled. -> how many were requeued."""
        now = time.time()
        expired = [jobs.c.status == "in_progress", jobs.c.lease_until < now]
        with self.engine.begin() as c:
            c.execute(update(jobs).where(*expired, or_(jobs.c.cancel_requested.is_(True), jobs.c.deleted.is_(True)))
                      .values(status="failed", error_code="cancelled", error_message="cancelled by the client",
                              completed_at=now, claim_token=None, lease_until=None))
            c.execute(update(jobs).where(*expired, jobs.c.attempts >= self.max_attempts).values(
                status="failed", error_code="worker_lost", completed_at=now, claim_token=None, lease_until=None,
                error_message=f"the worker stopped responding {self.max_attempts} times while making this video"))
            requeued = c.execute(update(jobs).where(*expired).values(
                status="queued", worker=None, claim_token=None, lease_until=None, progress=0))
        return requeued.rowcount

    # --- usage and keys --------------------------------------------------------------------------------

    def usage(self, owner: str | None, since: float = 0.0) -> dict:
        """Totals over the owner's jobs created since `since` (deleted ones included: they were made)."""
        where = [jobs.c.created_at >= since]
        if owner is not None:
            where.append(jobs.c.owner == owner)
        with self.reader.connect() as c:
            # committed: what finished jobs cost, and what queued or running ones are quoted at
            committed = func.coalesce(jobs.c.price, case((jobs.c.status.in_(ACTIVE), jobs.c.estimated_price),
                                                         else_=0.0))
            row = c.execute(select(func.count(), func.sum(jobs.c.device_s), func.sum(jobs.c.flops),
                                   func.sum(committed), func.sum(func.coalesce(jobs.c.price, 0.0)))
                .where(*where)).first()
            by_status = dict(c.execute(select(jobs.c.status, func.count()).where(*where)
                                       .group_by(jobs.c.status)).all())
        return {"videos": row[0], "device_s": row[1] or 0.0, "flops": row[2] or 0.0,
                "committed_price": row[3] or 0.0, "price": row[4] or 0.0, "by_status": by_status}

    def app_usage(self, app: str | None, user: str, since: float) -> dict:
        """An app's (None: the feed's) jobs charged to `user` since `since`: {"videos", "device_s"}, device
        seconds as measured for finished jobs and as estimated for queued or running ones (deleted ones count:
        they were made; failed ones count what they used)."""
        where = [app_jobs.c.user_name == user, app_jobs.c.created_at >= since,
                 app_jobs.c.app == app if app is not None else app_jobs.c.app.is_(None)]
        committed = func.coalesce(jobs.c.device_s, case((jobs.c.status.in_(ACTIVE), app_jobs.c.estimated_device_s),
                                                        else_=0.0))
        with self.reader.connect() as c:
            row = c.execute(select(func.count(), func.sum(committed)).select_from(
                app_jobs.join(jobs, jobs.c.id == app_jobs.c.job_id)).where(*where)).first()
        return {"videos": row[0], "device_s": row[1] or 0.0}

    def tickets(self, tickets: list[str]) -> dict[str, dict]:
        """The jobs made for these feed orders: ticket -> the job row (deleted ones too)."""
        if not tickets:
            return {}
        with self.reader.connect() as c:
            rows = c.execute(select(app_jobs.c.ticket, jobs).join(jobs, jobs.c.id == app_jobs.c.job_id)
                             .where(app_jobs.c.ticket.in_(list(tickets)))).mappings().all()
        return {r["ticket"]: dict(r) for r in rows}

    def app_videos(self, app: str, completed_after: float = 0.0) -> list[dict]:
        """Completed videos an app's form made (not its feed's), completed at or after `completed_after`,
        oldest first."""
        with self.reader.connect() as c:
            rows = c.execute(select(jobs).join(app_jobs, jobs.c.id == app_jobs.c.job_id).where(
                app_jobs.c.app == app, app_jobs.c.ticket.is_(None), jobs.c.status == "completed",
                jobs.c.deleted.is_(False), jobs.c.completed_at >= completed_after)
                .order_by(jobs.c.completed_at)).mappings().all()
        return [dict(r) for r in rows]

    def add_key(self, name: str, *, daily_budget=None, daily_device_s=None, rate_per_minute=None) -> tuple[str, str]:
        """A new API key -> (key id, the key). Only the key's hash is stored: the key is shown once."""
        key = "sk-sl-" + secrets.token_urlsafe(24)
        key_id = "key_" + secrets.token_hex(8)
        with self.engine.begin() as c:
            c.execute(insert(keys).values(id=key_id, name=name, hash=key_hash(key), daily_budget=daily_budget,
                                          daily_device_s=daily_device_s, rate_per_minute=rate_per_minute,
                                          created_at=time.time(), revoked=False))
        return key_id, key

    def has_keys(self) -> bool:
        with self.reader.connect() as c:
            return c.execute(select(func.count()).select_from(keys).where(keys.c.revoked.is_(False))).scalar() > 0

    def find_key(self, key: str) -> dict | None:
        with self.reader.connect() as c:
            row = c.execute(select(keys).where(keys.c.hash == key_hash(key))).mappings().first()
        return dict(row) if row else None

    def created_since(self, owner: str, since: float) -> int:
        with self.reader.connect() as c:
            return c.execute(select(func.count()).select_from(jobs).where(
                jobs.c.owner == owner, jobs.c.created_at >= since)).scalar()


def fingerprint(owner: str, fields: dict, files: dict[str, bytes]) -> str:
    """The identity of a create request: its fields and the bytes of its uploads."""
    digest = hashlib.sha256(json.dumps([owner, fields], sort_keys=True, default=str).encode())
    for name in sorted(files):
        digest.update(name.encode() + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()
