"""Benchmark: the worker's CPU per API create, in-process.

CRM ``account`` creates (13 fields, a token the cache trusts, duplicate rules, audit,
autonumber) posted through Flask's test client to the app, on a database ``bench_http.py
--keep`` left (its accounts, keys and ``bench_admin``), in rounds; per round the
process's CPU per create (``time.process_time``) and PostgreSQL's (``/proc`` ticks of the
database's backends). No HTTP server and no load generator: what is measured is the
app's own work (and the test client's, the same in every run), so two versions of the
code compare on a shared machine better than over HTTP — still, compare medians of
alternating runs.

    .venv/bin/python bench/bench_create_cpu.py --database heddle_bench_95d576e4 --rounds 3
    .venv/bin/python bench/bench_create_cpu.py --database … --profile /tmp/create.prof

``--callgrind LIB`` counts instructions instead of time, run under valgrind — a figure
the machine's other work does not move. ``LIB`` is a shared library with Callgrind's
client requests around the measured creates, built once::

    printf '#include <valgrind/callgrind.h>\\n
    void cg_start(void){CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT;}\\n
    void cg_stop(void){CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT("measured"); CALLGRIND_STOP_INSTRUMENTATION;}\\n' \\
        > /tmp/cgctl.c && gcc -O2 -shared -fPIC -o /tmp/libcgctl.so /tmp/cgctl.c
    valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no \\
        --callgrind-out-file=/tmp/cg.out .venv/bin/python bench/bench_create_cpu.py \\
        --database … --creates 200 --rounds 1 --callgrind /tmp/libcgctl.so
    grep '^summary:' /tmp/cg.out.1     # instructions for the 200 creates
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform"), str(ROOT / "bench")]

import crm_definitions  # noqa: E402
from bench_http import _account_body  # noqa: E402
from heddle.app import create_app  # noqa: E402

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _ticks(monitor: sa.Connection) -> int:
    """CPU ticks of the database's backends but the monitor's own."""
    pids = monitor.execute(
        sa.text(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ).scalars()
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", required=True, help="a database bench_http.py kept")
    parser.add_argument("--user", default="bench_admin", help="who creates (bench_rep…)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=2000, help="creates per round")
    parser.add_argument("--warm", type=int, default=200, help="creates before the first round")
    parser.add_argument("--profile", help="write a cProfile of the measured creates here")
    parser.add_argument("--callgrind", help="Callgrind's client requests (see above)")
    parser.add_argument(
        "--server", choices=["heddle", "hand"], default="heddle",
        help="hand: the hand-written server (bench/http/baseline.py) makes the same creates",
    )  # fmt: skip
    args = parser.parse_args()
    url = sa.make_url(args.pg).set(database=args.database)
    app, path, headers = (_hand if args.server == "hand" else _heddle)(url, args.user)
    client = app.test_client()
    number = 0

    def bodies(count: int) -> list[bytes]:
        nonlocal number
        number += count
        return [json.dumps(_account_body(n)).encode() for n in range(number - count, number)]

    def post(body: bytes) -> None:
        sent = client.post(path, data=body, headers=headers, content_type="application/json")
        assert sent.status_code == 201, sent.json

    for body in bodies(args.warm):  # connections, prepared statements, caches
        post(body)
    control = ctypes.CDLL(args.callgrind) if args.callgrind else None
    profile = cProfile.Profile() if args.profile else None
    figures: list[tuple[float, float]] = []
    monitor_engine = sa.create_engine(url)
    with monitor_engine.connect() as monitor:
        for round_ in range(args.rounds):
            sent = bodies(args.creates)
            pg, cpu, start = _ticks(monitor), time.process_time(), os.times()
            if control is not None:
                control.cg_start()
            if profile is not None:
                profile.enable()
            for body in sent:
                post(body)
            if profile is not None:
                profile.disable()
            if control is not None:
                control.cg_stop()
            app_ms = (time.process_time() - cpu) * 1000 / args.creates
            pg_ms = (_ticks(monitor) - pg) * TICK_MS / args.creates
            end = os.times()
            kernel_ms = (end.system - start.system) * 1000 / args.creates
            figures.append((app_ms, pg_ms))
            print(f"round {round_ + 1}: worker {app_ms:.3f} ms/create ({kernel_ms:.3f} in the "
                  f"kernel), PostgreSQL {pg_ms:.3f} ms/create", flush=True)  # fmt: skip
    monitor_engine.dispose()
    if profile is not None:
        profile.dump_stats(args.profile)
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"median: worker {statistics.median(f[0] for f in figures):.3f} ms/create, "
          f"PostgreSQL {statistics.median(f[1] for f in figures):.3f} ms/create")  # fmt: skip


def _heddle(url: sa.URL, username: str) -> tuple[Any, str, dict[str, str]]:
    """Heddle's app, its create URL and a token of ``username`` as the header."""
    packages = [crm_definitions.PATH, ROOT / "bench" / "crm_team_rep.yaml"]
    app = create_app(
        {
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "PACKAGES": ",".join(map(str, packages)),
            "INSTANCE_PATH": tempfile.mkdtemp(),
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "WARNING",
        }
    )
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        user = runtime.accounts.by_username(conn, username)
        assert user is not None, f"no user {username}: a database bench_http.py kept?"
        token, _ = runtime.accounts.issue_token(conn, user, days=1)
    return app, "/api/v1/records/account", {"Authorization": f"Bearer {token}"}


def _hand(url: sa.URL, username: str) -> tuple[Any, str, dict[str, str]]:
    """The hand-written server, set up as ``bench_http.py`` starts it."""
    with sa.create_engine(url).connect() as conn:
        ids = {
            who: conn.execute(
                sa.text("SELECT id, team_id FROM heddle_user WHERE username = :u"),
                {"u": f"bench_{who}"},
            ).one()
            for who in ("admin", "rep")
        }
    os.environ.update(
        BENCH_URL=url.render_as_string(hide_password=False),
        BENCH_ADMIN_ID=str(ids["admin"][0]), BENCH_ADMIN_TEAM=str(ids["admin"][1]),
        BENCH_REP_ID=str(ids["rep"][0]), BENCH_REP_TEAM=str(ids["rep"][1]),
    )  # fmt: skip
    sys.path.insert(0, str(ROOT / "bench" / "http"))
    import baseline

    return baseline.app, f"/{username.removeprefix('bench_')}/accounts", {}


if __name__ == "__main__":
    main()
