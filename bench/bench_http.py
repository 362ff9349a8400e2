"""Benchmark: Heddle's REST API over HTTP against a hand-written Flask endpoint.

Both servers run under gunicorn with 2 workers on the same PostgreSQL table of accounts
(the CRM package's ``account``), in the same run, and are loaded by ``wrk`` (Debian's
``wrk`` package) with the same connections and duration:

- ``get``: ``GET /…/<id>`` for random ids;
- ``list``: 50 accounts of grade A, newest first, with the total count.

Heddle's side has everything on: token authentication, permissions (as the CRM's
``viewer`` role, which reads every account: its grants are evaluated as for any user, and
the rows are the baseline's), formulas and the JSON error handling. The baseline is Flask + SQLAlchemy Core reading the
same rows and returning the same JSON. The ratio is Heddle's requests per second over the
baseline's (DESIGN.md's goal: 0.85 or more).

    .venv/bin/python bench/bench_http.py --rows 1000000 --duration 10 --rounds 3

Each side is measured --rounds times, alternating which goes first; the median round of
each is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

BASELINE = """
import os
import sqlalchemy as sa
from flask import Flask, jsonify, request
from decimal import Decimal

engine = sa.create_engine(os.environ["BENCH_URL"], pool_size=5)
account = sa.Table("account", sa.MetaData(), autoload_with=engine)
app = Flask("baseline")


def row(r):
    return {k: (str(v) if isinstance(v, Decimal) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in r.items()}


@app.get("/accounts/<int:pk>")
def get(pk):
    with engine.connect() as conn:
        r = conn.execute(sa.select(account).where(account.c.id == pk)).mappings().first()
    if r is None:
        return jsonify(error={"code": "not_found"}), 404
    return jsonify(data=row(r))


@app.get("/accounts")
def listing():
    grade = request.args.get("grade", "A")
    limit = min(int(request.args.get("limit", 50)), 500)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(account).where(account.c.grade == grade)
            .order_by(account.c.created_at.desc(), account.c.id.desc()).limit(limit)
        ).mappings().all()
        count = conn.scalar(
            sa.select(sa.func.count()).select_from(
                sa.select(account.c.id).where(account.c.grade == grade).limit(10001).subquery()
            )
        )
    return jsonify(data=[row(r) for r in rows], next_cursor=None, count=count,
                   count_estimated=False)
"""

LUA_RANDOM_ID = """
math.randomseed(42)
request = function()
  local path = string.format("%s%d", wrk.path, math.random(1, {rows}))
  return wrk.format("GET", path, {{["Authorization"] = "{auth}"}})
end
"""


def _wait(url: str, headers: dict[str, str], seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def _gunicorn(
    app: str, port: int, env: dict[str, str], cwd: Path, workers: int = 2, threads: int = 4
) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--worker-class",
        "gthread", "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        app,
    ]  # fmt: skip
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd, start_new_session=True)


def _wrk(
    url: str, duration: int, connections: int, script: Path | None, auth: str
) -> dict[str, float]:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    else:
        command += ["-H", f"Authorization: {auth}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {}
    for pct in ("50%", "99%"):
        value, unit = re.search(rf"\s{re.escape(pct)}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        latency[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {
        "rps": rps,
        "p50": latency["50%"],
        "p99": latency["99%"],
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median requests per second (its latencies with it)."""
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="measured runs of each side")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    from heddle.accounts import Accounts

    from engine import build_tables
    from metamodel import load_packages

    server = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    name = f"heddle_bench_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(args.pg).set(database=name).render_as_string(hide_password=False)
    processes: list[subprocess.Popen[bytes]] = []
    work = Path(tempfile.mkdtemp())
    try:
        model = load_packages([ROOT / "apps" / "crm_definitions"])
        tables = build_tables(model)
        engine = sa.create_engine(url)
        tables.metadata.create_all(engine)
        print(f"filling {args.rows:,} accounts…", flush=True)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO account (name, code, grade, type, created_at, updated_at, version) "
                "SELECT 'Account ' || g, 'AC-' || lpad(g::text, 7, '0'), "
                "(ARRAY['A','B','C','D'])[1 + g % 4], 'customer', "
                "now() - (g || ' seconds')::interval, now(), 1 "
                f"FROM generate_series(1, {args.rows}) g"
            ))  # fmt: skip
            conn.execute(
                sa.text(
                    "CREATE INDEX bench_grade_created ON account (grade, created_at DESC, id DESC)"
                )
            )
            accounts = Accounts(tables)
            # the CRM's viewer (reads everything): permissions are really evaluated, not
            # skipped as for an admin, and the rows are the ones the baseline serves
            user = accounts.create_user(conn, "bench", "bench-password", ["viewer"])
            token, _ = accounts.issue_token(conn, user, days=1)
            history = tables.metadata.tables["heddle_schema_history"]
            conn.execute(history.insert().values(
                hash=model.hash, model=model.to_json(), operations=[], actor="bench",
                applied_at=sa.func.now(),
            ))  # fmt: skip
        # Settle the table first, or autovacuum's pass over a million fresh rows lands in
        # the middle of whichever side is being measured.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE account"))
        engine.dispose()
        auth = f"Bearer {token}"
        (work / "baseline.py").write_text(BASELINE, encoding="utf-8")
        heddle_env = {
            "HEDDLE_DATABASE_URL": url, "HEDDLE_SECRET_KEY": "bench",
            "HEDDLE_INSTANCE_PATH": str(work / "instance"), "HEDDLE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT / "platform"),
        }  # fmt: skip
        size = {"workers": args.workers, "threads": args.threads}
        processes.append(_gunicorn("heddle.wsgi:app", 18101, heddle_env, ROOT, **size))
        processes.append(_gunicorn("baseline:app", 18102, {"BENCH_URL": url}, work, **size))
        _wait("http://127.0.0.1:18101/api/v1/records/account/1", {"Authorization": auth})
        _wait("http://127.0.0.1:18102/accounts/1", {})
        script = work / "random_id.lua"
        script.write_text(LUA_RANDOM_ID.format(rows=args.rows, auth=auth), encoding="utf-8")
        rows = []
        for title, heddle_url, baseline_url, use_script in (
            ("get one account", "http://127.0.0.1:18101/api/v1/records/account/",
             "http://127.0.0.1:18102/accounts/", True),
            ("list 50 accounts", "http://127.0.0.1:18101/api/v1/records/account?grade=A&sort=-created_at&limit=50",
             "http://127.0.0.1:18102/accounts?grade=A&limit=50", False),
        ):  # fmt: skip
            lua = script if use_script else None
            # one short warm-up each, then rounds that alternate which side goes first, so
            # neither always gets the quieter half of the run; the median round counts
            _wrk(heddle_url, 2, args.connections, lua, auth)
            _wrk(baseline_url, 2, args.connections, lua, auth)
            heddles, bases = [], []
            for round_ in range(args.rounds):
                order = ((heddles, heddle_url), (bases, baseline_url))
                for runs, url_ in order if round_ % 2 == 0 else order[::-1]:
                    runs.append(_wrk(url_, args.duration, args.connections, lua, auth))
            rows.append((title, _median(heddles), _median(bases)))
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "duration_s": args.duration,
                    "connections": args.connections,
                    "rounds": args.rounds,
                }
            )
        )
        print()
        print(
            "| request | Heddle req/s | p50 ms | p99 ms | hand-written req/s | p50 ms | p99 ms | ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for title, heddle, base in rows:
            print(
                f"| {title} | {heddle['rps']:.0f} | {heddle['p50']:.1f} | {heddle['p99']:.1f} | "
                f"{base['rps']:.0f} | {base['p50']:.1f} | {base['p99']:.1f} | {heddle['rps'] / base['rps']:.2f} |"
            )
            if heddle["errors"] or base["errors"]:
                print(
                    f"  (non-2xx responses: Heddle {heddle['errors']:.0f}, baseline {base['errors']:.0f})"
                )
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
