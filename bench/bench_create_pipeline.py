"""Benchmark: PostgreSQL's CPU per create, the first statements pipelined or not.

A CRM ``account`` create through the API (Flask's test client, a token the cache trusts,
duplicate rules, audit, autonumber) on a database of its own, in rounds that alternate:

- ``pipeline``: the code as it is — ``BEGIN``, the token's check, the duplicate rules'
  lock and lookup and the autonumber's counter sent together (``engine.pipeline``);
- ``plain``: the same create with ``Batch.run`` executing its statements one by one and
  the transaction begun by ``engine.begin()`` (psycopg's own ``BEGIN``): what a create
  did before, statement for statement.

Reported per round: PostgreSQL's CPU per create (``/proc`` ticks of the backends the app
opened, told apart by ``application_name``) and the app's own CPU per create.

    .venv/bin/python bench/bench_create_pipeline.py --rounds 6 --creates 150
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform"), str(ROOT / "bench")]

import crm_definitions  # noqa: E402
from bench_http import _account_body  # noqa: E402
from heddle.app import create_app  # noqa: E402

import engine.pipeline as pipeline  # noqa: E402
import engine.records as records  # noqa: E402
from engine import migrate  # noqa: E402

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
APP = "bench-create-pipeline"


def _ticks(monitor: sa.Connection) -> int:
    pids = monitor.execute(
        sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": APP}
    ).scalars()
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def _plain_run(self: pipeline.Batch) -> None:
    queued, self._queued = self._queued, []
    for statement, params, pending in queued:
        result = self.conn.execute(statement, dict(params))
        pending._rows = [tuple(r) for r in result] if result.returns_rows else []
        pending._columns = list(result.keys()) if result.returns_rows else []


@contextlib.contextmanager
def _plain_transaction(engine: Any) -> Iterator[sa.Connection]:
    with engine.begin() as conn:
        yield conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--creates", type=int, default=150, help="creates per mode and round")
    args = parser.parse_args()
    server = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    db = f"heddle_bench_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = server.url.set(database=db, query={"application_name": APP})
    modes = {
        "pipeline": (pipeline.Batch.run, records.write_transaction),
        "plain": (_plain_run, _plain_transaction),
    }
    figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    try:
        app = create_app(
            {
                "DATABASE_URL": url.render_as_string(hide_password=False),
                "PACKAGES": str(crm_definitions.PATH),
                "INSTANCE_PATH": tempfile.mkdtemp(),
                "SECRET_KEY": "bench",
                "LOGIN_LIMIT": "1000 per minute",
                "MODEL_CHECK_SECONDS": 3600,
                "TOKEN_CACHE_SECONDS": 3600,
            }
        )
        runtime = app.extensions["heddle"]
        migrate(runtime.engine, runtime.model, actor="bench")
        with runtime.engine.begin() as conn:
            runtime.accounts.create_user(conn, "bench", "a long password", ["admin"], team="HQ")
        client = app.test_client()
        login = {"username": "bench", "password": "a long password"}
        token = client.post("/api/v1/auth/token", json=login).json["token"]  # type: ignore[index]
        headers = {"Authorization": f"Bearer {token}"}
        number = 0

        def create() -> None:
            nonlocal number
            number += 1
            sent = client.post(
                "/api/v1/records/account", headers=headers, json=_account_body(number)
            )
            assert sent.status_code == 201, sent.json

        with server.connect() as monitor:
            for round_ in range(args.rounds):
                order = list(modes) if round_ % 2 == 0 else list(modes)[::-1]
                for mode in order:
                    pipeline.Batch.run, records.write_transaction = modes[mode]  # type: ignore[method-assign]
                    for _ in range(10):  # warm: connections, prepared statements
                        create()
                    pg, cpu = _ticks(monitor), time.process_time()
                    for _ in range(args.creates):
                        create()
                    pg_ms = (_ticks(monitor) - pg) * TICK_MS / args.creates
                    app_ms = (time.process_time() - cpu) * 1000 / args.creates
                    figures[mode].append((pg_ms, app_ms))
                    print(f"round {round_ + 1} {mode:8}: PostgreSQL {pg_ms:.2f} ms/create, "
                          f"app {app_ms:.2f} ms/create", flush=True)  # fmt: skip
        runtime.engine.dispose()
    finally:
        pipeline.Batch.run, records.write_transaction = modes["pipeline"]  # type: ignore[method-assign]
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    for mode, rows in figures.items():
        pg = statistics.median(r[0] for r in rows)
        app_ms = statistics.median(r[1] for r in rows)
        print(f"{mode:8}: median PostgreSQL {pg:.2f} ms/create, app {app_ms:.2f} ms/create")


if __name__ == "__main__":
    main()
