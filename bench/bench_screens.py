"""Benchmark: the screens served as HTML against the JSON API for the same data (issue 12).

On bench_http.py's workload (its fill of ``--rows`` CRM accounts on PostgreSQL, Heddle
under gunicorn with 2 sync workers, ``wrk`` with 2 threads and 16 connections), as the
admin, in one run:

- ``list``: the 50-row account list page (``/app/account?grade=A&sort=-annual_revenue``,
  its count, filters and navigation) against ``GET /api/v1/records/account`` for the same
  50 rows (with its count);
- ``record``: an account's record page with three related lists (contacts, opportunities
  and activities: ``bench/crm_three_related.yaml`` trims the CRM's ten), each account of
  the first ``--related`` holding 5 of each, against the JSON calls that fetch the same
  data: the account (``GET /api/v1/records/account/<id>``) and its three related lists
  (``GET /api/v1/records/<entity>?account=<id>&limit=10``), each measured alone; their
  combined rate is that of a client making the four calls in turn (1 / Σ 1/rate).

Rounds alternate the order. The ratios (HTML / JSON) are of the same round's runs; the
machine's load is printed with every run.

    .venv/bin/python bench/bench_screens.py --rows 100000 --duration 5 --rounds 3
    .venv/bin/python bench/bench_screens.py --rows 1000000 --keep      # keeps the database
    .venv/bin/python bench/bench_screens.py --rows 1000000 --database heddle_bench_…
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_http as H  # the harness: fill, servers, wrk, CPU readings

RELATED = ("contact", "opportunity", "activity")
PER_ACCOUNT = 5

FILL_RELATED = {
    "contact": """
INSERT INTO contact (created_at, updated_at, created_by, updated_by, version, owner_id,
                     team_id, name, account, wechat, title)
SELECT now(), now(), a.owner_id, a.owner_id, 1, a.owner_id, a.team_id,
       'Contact ' || k || ' of ' || a.id, a.id, 'wx' || a.id || '_' || k, 'Buyer'
FROM account a CROSS JOIN generate_series(1, :per) k WHERE a.id <= :accounts""",
    "opportunity": """
INSERT INTO opportunity (created_at, updated_at, created_by, updated_by, version, owner_id,
                         team_id, name, account, amount, stage, probability)
SELECT now(), now(), a.owner_id, a.owner_id, 1, a.owner_id, a.team_id,
       'Deal ' || k || ' with ' || a.id, a.id, 10000 * k, 'initial', 10
FROM account a CROSS JOIN generate_series(1, :per) k WHERE a.id <= :accounts""",
    "activity": """
INSERT INTO activity (created_at, updated_at, created_by, updated_by, version, owner_id,
                      team_id, subject, account, kind, occurred_at)
SELECT now() - k * interval '1 day', now(), a.owner_id, a.owner_id, 1, a.owner_id, a.team_id,
       'Call ' || k || ' with ' || a.id, a.id, 'call', now() - k * interval '1 day'
FROM account a CROSS JOIN generate_series(1, :per) k WHERE a.id <= :accounts""",
}


class ScreensBench(H.Bench):
    def packages(self) -> list[Path]:
        return [*super().packages(), H.ROOT / "bench" / "crm_three_related.yaml"]

    def fill_related(self) -> None:
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            found = conn.scalar(sa.text("SELECT count(*) FROM contact"))
            if not found:
                for statement in FILL_RELATED.values():
                    conn.execute(
                        sa.text(statement), {"per": PER_ACCOUNT, "accounts": self.args.related}
                    )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE contact, opportunity, activity"))
        engine.dispose()

    def session_cookie(self, server: H.Server) -> str:
        """Log in as the admin through the login form; the session's Cookie header."""
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{server.port}"
        page = opener.open(f"{base}/login").read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        form = {"username": "bench_admin", "password": "bench-password", "csrf_token": token[1]}
        opener.open(f"{base}/login", urllib.parse.urlencode(form).encode()).read()
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        assert "session" in cookie, "the login did not start a session"
        return cookie

    def fresh_token(self) -> None:
        """A new API token for the admin: logging in through the form (which may rehash
        the password) ends the tokens issued before."""
        from heddle.accounts import Accounts

        from engine import build_tables
        from metamodel import load_packages

        engine = sa.create_engine(self.url)
        accounts = Accounts(build_tables(load_packages(self.packages())))
        with engine.begin() as conn:
            user = accounts.by_username(conn, "bench_admin")
            assert user is not None
            token, _ = accounts.issue_token(conn, user, days=1)
        engine.dispose()
        self.auth["admin"] = f"Bearer {token}"

    def targets(self, cookie: str) -> dict[str, tuple[str, dict[str, str]]]:
        """name: (path, the Lua script's environment)."""
        html = {"BENCH_COOKIE": cookie, "BENCH_ACCEPT": "text/html"}
        api = {"BENCH_AUTH": self.auth["admin"]}
        ids = {"BENCH_ROWS": str(self.args.related)}
        order = "grade=A&sort=-annual_revenue"
        found = {
            "html_list": (f"/app/account?view=all&{order}", html),
            "api_list": (f"/api/v1/records/account?{order}&limit=50", api),
            "html_record": ("/app/account/", {**html, **ids}),
            "api_account": ("/api/v1/records/account/", {**api, **ids}),
        }
        for entity in RELATED:
            found[f"api_{entity}"] = (
                f"/api/v1/records/{entity}?limit=10&expand=owner_id&account=",
                {**api, **ids},
            )
        return found

    def check(self, server: H.Server, targets: dict[str, tuple[str, dict[str, str]]]) -> None:
        """Every target answers 200; the list page shows 50 rows, a record page its three
        related lists with their rows."""
        base = f"http://127.0.0.1:{server.port}"
        for name, (path, env) in targets.items():
            url = base + path + ("1" if "BENCH_ROWS" in env else "")
            headers = {"Accept": env.get("BENCH_ACCEPT", "application/json")}
            if env.get("BENCH_AUTH"):
                headers["Authorization"] = env["BENCH_AUTH"]
            if env.get("BENCH_COOKIE"):
                headers["Cookie"] = env["BENCH_COOKIE"]
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
                    body = answer.read().decode()
            except urllib.error.HTTPError as error:
                raise SystemExit(f"{name}: {url} answered {error.code}") from None
            if name == "html_list":
                assert body.count('name="ids"') == 50, "the list page does not show 50 rows"
            elif name == "html_record":
                for entity in RELATED:
                    assert f"/app/{entity}/" in body, f"no {entity} rows on the record page"
            elif name.startswith("api_") and name not in ("api_account",):
                count = len(json.loads(body)["data"])
                assert count == (50 if name == "api_list" else PER_ACCOUNT), (name, count)

    def run(self) -> dict[str, list[H.Run]]:
        (server,) = [s for s in self.servers if s.name == "lean"]
        runs: dict[str, list[H.Run]] = {}
        monitor_engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with self.running([server]), monitor_engine.connect() as monitor:
            cookie = self.session_cookie(server)
            self.fresh_token()
            targets = self.targets(cookie)
            self.check(server, targets)
            names = list(targets)
            for name in names:  # warm-up
                self.measure_one(monitor, server, targets[name], min(2, self.args.duration))
            for round_ in range(self.args.rounds):
                for name in names if round_ % 2 == 0 else names[::-1]:
                    run = self.measure_one(monitor, server, targets[name], self.args.duration)
                    runs.setdefault(name, []).append(run)
                    H.say(f"{name:16}", round_, run)
        monitor_engine.dispose()
        return runs

    def measure_one(
        self, monitor: sa.Connection, server: H.Server, target: tuple[str, dict[str, str]],
        duration: float,
    ) -> H.Run:  # fmt: skip
        path, env = target
        # get.lua appends a random id in [1, BENCH_ROWS]; list.lua asks the path as it is
        script = "get" if "BENCH_ROWS" in env else "list"
        url = f"http://127.0.0.1:{server.port}{path}"
        return self.measure_url(monitor, server, url, script, env, duration)


def report(runs: dict[str, list[H.Run]], rounds: int) -> dict[str, Any]:
    """Median rates and, per round, the ratios HTML / JSON."""
    median = {name: statistics.median(r.rps for r in found) for name, found in runs.items()}
    ratios: dict[str, list[float]] = {"list": [], "record_vs_get": [], "record_vs_calls": []}
    for i in range(rounds):
        at = {name: found[i].rps for name, found in runs.items()}
        if not all(at.values()):
            print(f"round {i + 1}: a run completed no request (too short for this load?)")
            continue
        ratios["list"].append(at["html_list"] / at["api_list"])
        ratios["record_vs_get"].append(at["html_record"] / at["api_account"])
        calls = ["api_account", *(f"api_{e}" for e in RELATED)]
        combined = 1 / sum(1 / at[c] for c in calls)
        ratios["record_vs_calls"].append(at["html_record"] / combined)
    print("\nmedian requests per second:")
    for name, rate in median.items():
        found = runs[name]
        print(
            f"  {name:16} {rate:7.0f}  p50 {statistics.median(r.p50 for r in found):6.1f} ms  "
            f"worker {statistics.median(r.worker_ms for r in found):.2f} ms/req  "
            f"PG {statistics.median(r.pg_ms for r in found):.2f} ms/req"
        )
    print("\nHTML / JSON, each round (median):")
    for name, values in ratios.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        if values:
            print(f"  {name:16} {shown}  ({statistics.median(values):.2f})")
    return {"median_rps": median, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--related", type=int, default=1000, help="accounts with related rows")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="reuse a database a run with --keep filled")
    args = parser.parse_args()
    # what bench_http's Bench reads: Heddle's lean gunicorn only, the admin, no rep overlay
    args.configs, args.callers, args.rep_scope = ["lean"], ["admin"], "own"
    bench = ScreensBench(args)
    load_before = Path("/proc/loadavg").read_text().strip()
    started = time.time()
    try:
        if args.database:
            bench.reuse_database(args.database)
        else:
            bench.create_database()
        bench.fill_related()
        bench.make_servers()
        runs = bench.run()
    finally:
        for server in bench.servers:
            server.stop()
        if args.keep or args.database:
            print(f"database kept: {bench.db}")
        else:
            bench.drop_database()
    meta = {
        "rows": args.rows, "related_accounts": args.related, "duration_s": args.duration,
        "rounds": args.rounds, "load_before": load_before,
        "load_after": Path("/proc/loadavg").read_text().strip(),
        "seconds": round(time.time() - started),
    }  # fmt: skip
    print(json.dumps(meta))
    figures = report(runs, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({**meta, **figures}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
