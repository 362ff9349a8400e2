"""Benchmark: workflow transitions against plain updates, and the delay from a commit to
its job's start with a real RQ worker (PostgreSQL and Redis).

1. **Transitions per second**: ``StateMachines.fire`` moves each of N deals from ``open``
   to ``review`` (row lock, version check, roles, guard, an ``on_enter`` action, the
   record service's update with validation and audit, the history row, one transaction
   each); as the baseline in the same run, a plain SQLAlchemy ``UPDATE deal SET stage=…,
   version=version+1`` of the same rows, one transaction each. Rounds alternate.
2. **Commit → job start**: J transactions each write one outbox job and commit; the web
   side's flush relays it to RQ at once; a ``heddle worker`` process (started by the
   bench) claims it. The delay is the row's ``started_at`` minus the time taken right
   after the commit: p50 and p95.

    .venv/bin/python bench/bench_jobs.py [--rows 500] [--jobs 200] [--url URL] [--redis URL]

The bench creates its own database on the server at --url and drops it at the end; it
flushes the Redis database it is given.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis as redis_py
import sqlalchemy as sa
from rq import Worker
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import heddle_bench_jobs  # noqa: E402,F401  (the no-op job the worker runs)

from engine import SYSTEM, Records, build_tables, connect  # noqa: E402
from engine.tables import OUTBOX_TABLE  # noqa: E402
from metamodel import load_packages  # noqa: E402
from workflows import JobQueue, StateMachines, attach  # noqa: E402
from workflows.outbox import add  # noqa: E402

PACKAGE = """\
kind: package
name: bench
---
kind: entity
name: deal
ownable: true
fields:
  name: {type: string, required: true, max_length: 200}
  amount: {type: money}
  stage: {type: choice, options: [open, review], default: open}
  reviews: {type: integer, default: 0}
---
kind: workflow
name: deal_flow
entity: deal
field: stage
states:
  - {name: open, initial: true}
  - name: review
    on_enter: [{type: set, values: {reviews: =reviews + 1}}]
transitions:
  - {name: review, from: open, to: review, guard: "amount >= 0"}
  - {name: reopen, from: review, to: open}
"""


def _database(url: str) -> tuple[str, sa.Engine]:
    server = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"heddle_bench_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return make_url(url).set(database=name).render_as_string(hide_password=False), server


def _transitions(records: Records, rows: int, rounds: int) -> tuple[float, float]:
    machines = StateMachines(records)
    table = records.tables.table("deal")
    with records.transaction() as conn:
        ids = [
            records.create(SYSTEM, "deal", {"name": f"D{i}", "amount": "100"}, conn=conn)["id"]
            for i in range(rows)
        ]
    fired: list[float] = []
    plain: list[float] = []
    for r in range(rounds):
        name, stage = ("review", "review") if r % 2 == 0 else ("reopen", "open")
        start = time.perf_counter()
        for record_id in ids:
            machines.fire(SYSTEM, "deal", record_id, name, version=None)
        fired.append(rows / (time.perf_counter() - start))
        start = time.perf_counter()
        for record_id in ids:
            with records.engine.begin() as conn:
                conn.execute(
                    table.update()
                    .where(table.c.id == record_id)
                    .values(stage=stage, version=table.c.version + 1)
                )
        plain.append(rows / (time.perf_counter() - start))
    return statistics.median(fired), statistics.median(plain)


def _latency(records: Records, queue: JobQueue, count: int) -> list[float]:
    table = records.tables.metadata.tables[OUTBOX_TABLE]
    committed: dict[str, float] = {}
    for i in range(count):
        key = f"bench:{i}"
        with records.transaction() as conn:
            add(conn, records.tables, "bench_noop", {}, key=key)
        committed[key] = time.time()
        queue.flush()
        _wait_done(records, table, key)  # one job at a time: the delay, not a queue's depth
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with records.engine.connect() as conn:
            done = conn.scalar(sa.select(sa.func.count()).where(table.c.status == "done"))
        if done == count:
            break
        time.sleep(0.2)
    with records.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.key, table.c.started_at)).all()
    return sorted((row.started_at.timestamp() - committed[row.key]) * 1000 for row in rows)


def _wait_done(records: Records, table: sa.Table, key: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with records.engine.connect() as conn:
            if conn.scalar(sa.select(table.c.status).where(table.c.key == key)) == "done":
                return
        time.sleep(0.005)
    raise SystemExit(f"job {key} did not run within 30 s: is the worker running?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/4")
    args = parser.parse_args()

    url, server = _database(args.url)
    redis_py.Redis.from_url(args.redis).flushdb()
    worker = None
    try:
        folder = Path(tempfile.mkdtemp())
        package = folder / "bench.yaml"
        package.write_text(PACKAGE, encoding="utf-8")
        model = load_packages([package])
        engine = connect(url)
        tables = build_tables(model)
        tables.metadata.create_all(engine)
        records = Records(engine, model, tables=tables)
        attach(records.events)

        fired, plain = _transitions(records, args.rows, args.rounds)
        print(
            f"transitions: {fired:.0f}/s, plain UPDATE: {plain:.0f}/s, "
            f"ratio {fired / plain:.2f} ({args.rows} rows, {args.rounds} rounds, median)"
        )

        env = {
            **os.environ,
            "HEDDLE_DATABASE_URL": url,
            "HEDDLE_PACKAGES": str(package),
            "HEDDLE_REDIS_URL": args.redis,
            "HEDDLE_PLUGINS": "heddle_bench_jobs",
            "HEDDLE_INSTANCE_PATH": str(folder / "instance"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "heddle", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_py.Redis.from_url(args.redis)
        deadline = time.monotonic() + 60
        while not Worker.count(connection=client) and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker starts
        time.sleep(0.5)
        queue = JobQueue(engine, lambda: records, redis_url=args.redis)
        delays = _latency(records, queue, args.jobs)
        p50 = statistics.median(delays)
        p95 = delays[int(len(delays) * 0.95) - 1]
        print(
            f"commit → job start: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {delays[-1]:.1f} ms "
            f"({len(delays)} jobs, one worker)"
        )
        engine.dispose()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(10)
        with server.connect() as conn:
            conn.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
            )
        server.dispose()


if __name__ == "__main__":
    main()
