"""The transactional outbox and the jobs it runs.

A job is a row of ``heddle_outbox`` written with :func:`add` on the connection of the
change that causes it, so it exists exactly when the change commits: a rolled-back change
enqueues nothing. After the commit, :meth:`JobQueue.flush` hands the due rows to RQ (the
*relay*) — or, with no Redis configured, runs them in this process. While Redis is down
the rows wait; every ``heddle worker`` relays what is due between two jobs, so they go
out when Redis is back.

Running a job (:meth:`JobQueue.execute`) claims its row, then runs the job's code and
marks the row done **in one transaction**: a worker killed half-way leaves nothing of the
job in the database, and the row, whose lease runs out, is relayed again. A job with
effects outside the database (an email, a webhook) is at least once; it gets the row's
``key`` to pass on as an idempotency key. A job that raises is retried with growing
delays (``retry_seconds`` × 4ⁿ), then kept as ``failed`` for ``heddle jobs`` to show and
retry.

>>> add(conn, tables, "webhook", {"url": ..., "body": ...}, key="deal-7-won")
>>> queue = JobQueue(engine, lambda: records, redis_url="redis://localhost/0")
>>> queue.flush()  # after the commit

A plugin registers a job like the built-ins::

    JOBS.register(Job("reindex", lambda run, args: ...))
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import redis as redis_py
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine import Records, Tables
from engine.tables import OUTBOX_TABLE
from metamodel import Registry

log = logging.getLogger("heddle.jobs")

QUEUE = "heddle"
PENDING, QUEUED, RUNNING, DONE, FAILED = "pending", "queued", "running", "done", "failed"
#: set by :func:`add` in the context (thread, request) that wrote outbox rows: the
#: platform flushes after such a request (:func:`take_written`)
_WROTE: ContextVar[bool] = ContextVar("heddle_outbox_wrote", default=False)
MAX_DELAY = 6 * 3600.0
RELAY_BATCH = 500


@dataclass(frozen=True)
class Mailer:
    """Where emails go: an SMTP server (``host`` empty: no email is sent)."""

    host: str = ""
    port: int = 25
    sender: str = "heddle@localhost"
    username: str = ""
    password: str = ""
    starttls: bool = False


@dataclass
class JobRun:
    """One run of a job, as its code sees it. Database writes go through ``conn``: they
    commit with the row's done mark, or not at all."""

    queue: JobQueue
    records: Records
    #: the job's transaction (an ``atomic`` job); None for a job that opens its own
    conn: sa.Connection | None
    key: str
    attempt: int

    @property
    def db(self) -> sa.Connection:
        if self.conn is None:
            raise RuntimeError("this job is not atomic: open a connection on queue.engine")
        return self.conn


@dataclass(frozen=True)
class Job:
    """A job type: its name (what :func:`add` and ``enqueue`` actions name) and code."""

    name: str
    run: Callable[[JobRun, Mapping[str, Any]], None]
    description: str = ""
    max_attempts: int = 5
    #: True: the job's writes commit with its done mark (exactly once). False: the job
    #: talks to the outside (SMTP, HTTP) or opens its own transactions, and is run
    #: without holding one — at least once, with the row's key to deduplicate.
    atomic: bool = True


JOBS: Registry[Job] = Registry("job")


@dataclass(frozen=True)
class Tick:
    """Work the scheduler starts every minute: ``run(queue, now)`` writes the jobs due
    now (keyed, so a tick run twice starts them once) and says how many. The scheduled
    automations are one; a plugin (approval escalations, say) registers its own."""

    name: str
    run: Callable[[JobQueue, dt.datetime], int]


TICKS: Registry[Tick] = Registry("tick")


def run_ticks(queue: JobQueue, now: dt.datetime) -> int:
    """Every registered tick, for the minute of ``now``; how many jobs they started."""
    return sum(tick.run(queue, now) for tick in TICKS.values())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def outbox_table(tables: Tables) -> sa.Table:
    return tables.metadata.tables[OUTBOX_TABLE]


def add(
    conn: sa.Connection,
    tables: Tables,
    job: str,
    args: Mapping[str, Any],
    *,
    key: str | None = None,
    delay: float = 0,
    max_attempts: int | None = None,
) -> bool:
    """Write a job to the outbox in ``conn``'s transaction. A ``key`` already in the
    outbox adds nothing (False): the job was asked for before. Unknown job names are
    refused here, where the change can still be stopped."""
    found = JOBS.get(job)
    if found is None:
        known = ", ".join(JOBS) or "none"
        raise LookupError(f"no job named '{job}' is registered (the jobs: {known})")
    now = _now()
    row = {
        "job": job,
        "args": dict(args),
        "key": key or f"{job}:{uuid.uuid4().hex}",
        "status": PENDING,
        "attempts": 0,
        "max_attempts": max_attempts or found.max_attempts,
        "run_after": now + dt.timedelta(seconds=delay),
        "created_at": now,
    }
    table = outbox_table(tables)
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
    statement = insert.values(row).on_conflict_do_nothing(index_elements=["key"])
    inserted = conn.execute(statement.returning(table.c.id)).first() is not None
    _WROTE.set(True)
    return inserted


def take_written() -> bool:
    """Whether this context wrote outbox rows since the last call (then flush, once its
    transaction has committed)."""
    wrote = _WROTE.get()
    if wrote:
        _WROTE.set(False)
    return wrote


def perform(outbox_id: int) -> str:
    """What RQ runs: the outbox row ``outbox_id``, by the queue this worker serves."""
    return serving().execute(outbox_id)


_SERVING: JobQueue | None = None


def serving() -> JobQueue:
    """The queue this worker process serves (:meth:`JobQueue.serve`)."""
    if _SERVING is None:  # pragma: no cover - only `heddle worker` runs what calls this
        raise RuntimeError("no JobQueue is served in this process: start it with heddle worker")
    return _SERVING


@dataclass
class JobQueue:
    """The outbox of one database, relayed to RQ at ``redis_url`` (or run in-process)."""

    engine: sa.Engine
    records: Callable[[], Records]
    redis_url: str = ""
    queue_name: str = QUEUE
    #: how long a claimed or relayed job may go without finishing before it is sent again
    lease_seconds: float = 300.0
    retry_seconds: float = 10.0
    mailer: Mailer = field(default_factory=Mailer)
    #: settings for the jobs' code (the reminder schedule, …)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> sa.Table:
        return outbox_table(self.records().tables)

    def serve(self) -> None:
        """Make :func:`perform` (the function RQ calls) run jobs with this queue."""
        global _SERVING
        _SERVING = self

    def redis(self) -> redis_py.Redis:
        return redis_py.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=10)

    # handing jobs over ---------------------------------------------------------------------

    def flush(self) -> int:
        """After a commit: relay the due jobs to RQ, or run them here without Redis.
        Never raises: what could not go out stays in the outbox."""
        try:
            return self.relay() if self.redis_url else self.run_due()
        except Exception:  # the change is committed; the outbox keeps the job
            log.exception("the outbox could not be flushed; its jobs wait for the next try")
            return 0

    def _due(self, now: dt.datetime) -> sa.ColumnElement[bool]:
        t = self.table
        stale = now - dt.timedelta(seconds=self.lease_seconds)
        return sa.or_(
            sa.and_(t.c.status == PENDING, t.c.run_after <= now),
            sa.and_(t.c.status == QUEUED, t.c.enqueued_at < stale),
            sa.and_(t.c.status == RUNNING, t.c.started_at < stale),
        )

    def relay(self) -> int:
        """Send the due rows to RQ (one pipeline); how many. While Redis does not answer
        they stay due, and a later relay sends them."""
        from rq import Queue  # imported on use: the embedded mode needs no RQ

        t = self.table
        now = _now()
        with self.engine.begin() as conn:
            query = sa.select(t.c.id).where(self._due(now)).order_by(t.c.id).limit(RELAY_BATCH)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.scalars(query))
            if not ids:
                return 0
            client = self.redis()
            try:
                queue = Queue(self.queue_name, connection=client)
                with client.pipeline() as pipe:
                    for outbox_id in ids:
                        queue.enqueue(
                            perform,
                            outbox_id,
                            job_id=f"heddle-outbox-{outbox_id}",
                            job_timeout=int(self.lease_seconds),
                            result_ttl=3600,
                            failure_ttl=7 * 86400,
                            pipeline=pipe,
                        )
                    pipe.execute()
            except redis_py.RedisError as exc:
                log.warning("Redis is unreachable (%s): %d jobs wait in the outbox", exc, len(ids))
                return 0
            finally:
                client.close()
            conn.execute(t.update().where(t.c.id.in_(ids)).values(status=QUEUED, enqueued_at=now))
        return len(ids)

    def run_due(self, limit: int = 1000) -> int:
        """Run the due jobs in this process, oldest first (the embedded mode); how many
        ran. Jobs the jobs add run too, up to ``limit``."""
        t = self.table
        ran = 0
        while ran < limit:
            with self.engine.connect() as conn:
                ids = list(
                    conn.scalars(
                        sa.select(t.c.id).where(self._due(_now())).order_by(t.c.id).limit(100)
                    )
                )
            if not ids:
                break
            for outbox_id in ids:
                self.execute(outbox_id)
                ran += 1
        return ran

    # running one job ----------------------------------------------------------------------

    def _claim(self, outbox_id: int) -> tuple[str, dict[str, Any]] | None:
        t = self.table
        now = _now()
        stale = now - dt.timedelta(seconds=self.lease_seconds)
        claim = uuid.uuid4().hex
        free = sa.or_(
            t.c.status.in_((PENDING, QUEUED)),
            sa.and_(t.c.status == RUNNING, t.c.started_at < stale),
        )
        with self.engine.begin() as conn:
            taken = conn.execute(
                t.update()
                .where(t.c.id == outbox_id, free)
                .values(status=RUNNING, started_at=now, claim=claim, attempts=t.c.attempts + 1)
            ).rowcount
            if not taken:
                return None
            row = conn.execute(sa.select(t).where(t.c.id == outbox_id)).mappings().one()
        return claim, dict(row)

    def execute(self, outbox_id: int) -> str:
        """Run outbox row ``outbox_id`` once: its effects and its done mark commit together.
        Returns what became of it: done, retry, failed or skipped (done already, or run by
        another worker now)."""
        claimed = self._claim(outbox_id)
        if claimed is None:
            return "skipped"
        claim, row = claimed
        t = self.table
        job = JOBS.get(row["job"])
        try:
            if job is None:
                raise LookupError(
                    f"no job named '{row['job']}' is registered in this worker "
                    "(a plugin not loaded? see HEDDLE_PLUGINS)"
                )
            if not job.atomic:
                job.run(
                    JobRun(self, self.records(), None, row["key"], row["attempts"]), row["args"]
                )
            with self.engine.begin() as conn:
                if job.atomic:
                    job.run(
                        JobRun(self, self.records(), conn, row["key"], row["attempts"]), row["args"]
                    )
                done = conn.execute(
                    t.update()
                    .where(t.c.id == outbox_id, t.c.claim == claim, t.c.status == RUNNING)
                    .values(status=DONE, finished_at=_now(), error=None)
                ).rowcount
                if not done:  # another worker took the job over: its run counts, not ours
                    raise _Superseded
        except _Superseded:
            return "skipped"
        except Exception as exc:
            return self._failed(outbox_id, claim, row, exc, final=job is None)
        return DONE

    def _failed(
        self, outbox_id: int, claim: str, row: Mapping[str, Any], exc: Exception, *, final: bool
    ) -> str:
        t = self.table
        last = final or row["attempts"] >= row["max_attempts"]
        delay = min(self.retry_seconds * 4 ** (row["attempts"] - 1), MAX_DELAY)
        text = "".join(traceback.format_exception_only(exc)).strip()
        log.warning(
            "job %s (%s) failed, attempt %d of %d: %s",
            outbox_id,
            row["job"],
            row["attempts"],
            row["max_attempts"],
            text,
        )
        with self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == outbox_id, t.c.claim == claim)
                .values(
                    status=FAILED if last else PENDING,
                    run_after=_now() + dt.timedelta(seconds=delay),
                    finished_at=_now() if last else None,
                    error=text[:4000],
                )
            )
        return FAILED if last else "retry"

    # looking and retrying -----------------------------------------------------------------

    def listing(self, status: str | None = FAILED, limit: int = 100) -> list[dict[str, Any]]:
        """Outbox rows, newest first; ``status`` None: every status."""
        t = self.table
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def counts(self) -> dict[str, int]:
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {str(status): int(n) for status, n in rows}

    def retry(self, ids: list[int] | None = None) -> int:
        """Give failed jobs (all, or those of ``ids``) a fresh set of attempts; how many."""
        t = self.table
        query = t.update().where(t.c.status == FAILED)
        if ids is not None:
            query = query.where(t.c.id.in_(ids))
        with self.engine.begin() as conn:
            count = conn.execute(
                query.values(status=PENDING, attempts=0, run_after=_now(), error=None)
            ).rowcount
        return int(count)


class _Superseded(Exception):
    """The job's lease ran out and another worker runs it: this run must leave nothing."""
