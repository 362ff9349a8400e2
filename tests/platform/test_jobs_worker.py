"""The outbox with real Redis and real ``heddle worker`` processes: a job written while
Redis is unreachable waits in the outbox and is delivered once Redis answers (SQLite and
PostgreSQL); a worker killed with SIGKILL in the middle of a job leaves nothing of it, and
the job, sent again when its lease runs out, has its effect exactly once (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import heddle_test_jobs  # noqa: F401  (registers the bump job)
import pytest
import sqlalchemy as sa
from flask import Flask
from jobs_package import PACKAGE, PEOPLE
from worker_process import spawn_worker, stop_worker

from engine.tables import NOTIFICATION_TABLE, OUTBOX_TABLE

HERE = Path(__file__).resolve().parent
LEASE = 3  # seconds: how soon a killed worker's job is sent again


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def app(app_factory: Callable[..., Flask], redis: Any) -> Flask:
    made = app_factory(PACKAGE, PEOPLE)
    # Redis is down: nothing listens on this port
    made.extensions["heddle_jobs"].redis_url = f"redis://127.0.0.1:{_closed_port()}/4"
    return made


@pytest.fixture
def start_worker(
    app: Flask, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> subprocess.Popen[bytes]:
        process = spawn_worker(
            app, redis_url, tmp_path / f"worker{len(started)}.log",
            HEDDLE_PLUGINS="heddle_test_jobs", HEDDLE_JOB_LEASE_SECONDS=str(LEASE),
            PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]), **env,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        stop_worker(process)


def _wait(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds}s for {what}")


def _hits(app: Flask, record_id: int) -> int:
    runtime = app.extensions["heddle"]
    table = runtime.tables.table("contract")
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(table.c.hits).where(table.c.id == record_id)) or 0)


def _job(app: Flask, record_id: int, job: str = "bump") -> dict[str, Any]:
    """The outbox row of ``job`` for the contract (``count_new``'s async ``automation``
    job runs first, and its ``enqueue`` action writes the ``bump`` job)."""
    runtime = app.extensions["heddle"]
    t = runtime.tables.metadata.tables[OUTBOX_TABLE]
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.job == job)).mappings().all()
    found = [dict(r) for r in rows if r["args"]["record_id"] == record_id]
    return found[0] if found else {"status": None}


def test_jobs_survive_redis_down_and_a_killed_worker(
    app: Flask, call: Callable[..., tuple[int, Any]], start_worker: Any, tmp_path: Path
) -> None:
    # Redis is unreachable: the change commits, its job waits in the outbox
    status, body = call("ann", "POST", "/records/contract", {"title": "Written while down"})
    assert status == 201, body
    first = body["data"]["id"]
    assert _job(app, first, "automation")["status"] == "pending" and _hits(app, first) == 0

    # Redis answers (the worker has the right address): the worker relays and runs it
    slow = tmp_path / "slow"
    worker = start_worker(HEDDLE_TEST_SLOW=str(slow))
    _wait(lambda: _job(app, first)["status"] == "done", "the job written while Redis was down")
    assert _hits(app, first) == 1
    if app.extensions["heddle"].engine.dialect.name == "sqlite":
        return  # below, the test would read while the killed job holds SQLite's write lock

    # a job the worker is killed in the middle of
    slow.write_text("sleep", encoding="utf-8")
    status, body = call("ann", "POST", "/records/contract", {"title": "Interrupted"})
    second = body["data"]["id"]
    _wait(lambda: Path(f"{slow}.started").exists(), "the slow job to start")
    assert _job(app, second)["status"] == "running"
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    slow.unlink()
    assert _hits(app, second) == 0  # the killed transaction left nothing

    start_worker(HEDDLE_REMINDER_CRON="* * * * *")  # the lease runs out: sent again, done once
    _wait(lambda: _job(app, second)["status"] == "done", "the interrupted job", LEASE + 30)
    assert _hits(app, second) == 1
    assert _job(app, second)["attempts"] == 2
    assert _hits(app, first) == 1  # and nothing ran twice


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the path is the same on both
def test_the_scheduler_ticks_through_the_worker(
    app: Flask, call: Callable[..., tuple[int, Any]], start_worker: Any, redis_url: str
) -> None:
    """``heddle scheduler`` is RQ's cron scheduler with one entry, the every-minute tick;
    the tick, run by a worker, writes and runs the due reminders (here every minute)."""
    from workflows import JobQueue
    from workflows.worker import scheduler, tick

    runtime = app.extensions["heddle"]
    end = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    status, body = call("ann", "POST", "/records/contract", {"title": "Renewal", "end_date": end})
    assert status == 201, body
    version = call("ann", "GET", f"/records/contract/{body['data']['id']}")[1]["data"]["version"]
    status, body = call(
        "ann",
        "PATCH",
        f"/records/contract/{body['data']['id']}",
        {"version": version, "status": "active"},
    )
    assert status == 200, body
    queue = JobQueue(runtime.engine, lambda: runtime.records, redis_url=redis_url)
    (entry,) = scheduler(queue).get_jobs()
    assert entry.cron == "* * * * *" and entry.func is tick
    start_worker(HEDDLE_REMINDER_CRON="* * * * *")
    client = queue.redis()
    entry.enqueue(client)  # what the scheduler does at the top of each minute
    client.close()
    notes = runtime.tables.metadata.tables[NOTIFICATION_TABLE]

    def reminded() -> list[str]:
        query = sa.select(notes.c.subject).where(notes.c.source == "expiry")
        with runtime.engine.connect() as conn:
            return list(conn.scalars(query))

    assert _wait(reminded, "the expiry reminder") == ["Contract expires in 30 days"]
