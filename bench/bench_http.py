"""Benchmark: Heddle's REST API over HTTP against a hand-written Flask + SQLAlchemy server.

The workload of issue 14, every side in one run on one PostgreSQL table:

- the CRM package's ``account`` table, migrated by ``engine.migrate`` as a deployment
  does (its indexes, the trigram search indexes), filled with ``--rows`` accounts whose
  fields hold realistic values (27 of 29: no public pools), plus an index on
  ``(grade, annual_revenue, id)``, then ``VACUUM ANALYZE``;
- servers, each under gunicorn with 2 workers: Heddle with lean settings (sync workers, no
  access log: ``lean``), Heddle with ``platform/gunicorn.conf.py`` (``shipped``), other
  gunicorn configurations for comparison (``--configs``, see ``CONFIGS``), and the
  hand-written server ``bench/http/baseline.py`` (Flask 3 + SQLAlchemy 2 Core, sync
  workers, no auth, one statement per request, no count: ``hand``); a configuration's name
  ending in ``+nodup`` serves a copy of the database migrated without the account's
  duplicate rules (``bench/crm_no_duplicate_rules.yaml``), which tells what the duplicate
  check costs a create;
- callers: Heddle with a bearer token as ``admin`` and as ``rep``, a sales rep who reads
  the accounts of their team and their own (``--rep-scope team``, the CRM's sales_rep with
  ``bench/crm_team_rep.yaml``) or only their own (``--rep-scope own``, the CRM as shipped);
  the hand-written server's ``/rep/`` URLs apply the same WHERE, so both return the same
  rows (checked before measuring). The fill hands the rows to 200 reps in 20 teams by id, so
  the rep owns 0.5 % of the accounts and their team 5 %;
- ``wrk`` (Debian's ``wrk``) with 2 threads and 16 connections and the Lua scripts in
  ``bench/http/``: ``get`` (one account by a random id the caller may read), ``list`` (50
  accounts of grade A, ``sort=-annual_revenue``), ``create`` (POST a new account).

Each endpoint is measured ``--rounds`` times; a round runs every server and caller once,
the order reversed every other round. Reported: the median round's requests per second
and latencies, every round's ratio (Heddle / hand-written, same caller, same round), CPU
per request of the gunicorn workers (``/proc`` ticks of the workers, the master and the
workers it reaped) and of PostgreSQL's backends serving that server (told apart by
``application_name``). Then, with ``log_statement = 'all'`` on the benchmark's database
only (``ALTER DATABASE``), each server is started again alone and loaded for a few seconds
to count the statements per request in PostgreSQL's log, and the statements of one
request of each kind are listed in order.

    .venv/bin/python bench/bench_http.py --quick                       # 20,000 rows, 3 s runs
    .venv/bin/python bench/bench_http.py --rows 1000000 --duration 10 --rounds 3
    .venv/bin/python bench/bench_http.py --quick --configs lean,shipped,shipped-sync \\
        --endpoints get --callers admin                                # what a setting costs
    .venv/bin/python bench/bench_http.py --configs lean,lean+nodup --endpoints create

The benchmark creates its own database (dropped afterwards, ``--keep`` keeps it; one
given with ``--database`` is never dropped; the copies of ``+nodup`` always are) on
``--pg``'s server and sends load to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "http"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
REPS, TEAMS = 200, 20  # the fill hands account id g to rep g % REPS, of team rep // 10
REP_INDEX = 10  # the measured rep: the first of team 1 (so no id 0 among their rows)
# gunicorn 27's control socket has one default path: several masters would share it
QUIET = ["--log-level", "warning", "--no-control-socket"]
PG_LOG = Path("/var/log/postgresql/postgresql-15-main.log")

# Heddle's gunicorn configurations: None is the lean command line (sync workers, gunicorn's
# defaults: no access log, no recycling); a dict runs platform/gunicorn.conf.py with those
# settings overridden afterwards. "main" is the file as shipped before issue 14.
CONFIGS: dict[str, dict[str, Any] | None] = {
    "lean": None,
    "shipped": {},
    "main": {
        "worker_class": "gthread",
        "threads": 4,
        "accesslog": "-",
        "max_requests": 2000,
        "max_requests_jitter": 200,
    },
    # gunicorn runs gthread whenever threads > 1, whatever worker_class says
    "shipped-sync": {"worker_class": "sync", "threads": 1},
    "shipped-gthread": {"worker_class": "gthread", "threads": 4},
    "shipped-nolog": {"accesslog": None},
    "shipped-log": {"accesslog": "-"},
    "shipped-norecycle": {"max_requests": 0},
    "shipped-recycle": {"max_requests": 2000, "max_requests_jitter": 200},
    # the lean command line plus one setting (a config file of those settings only)
    "lean-preload": {"bare": True, "preload_app": True},
    "lean-gthread": {"bare": True, "worker_class": "gthread", "threads": 4},
    "lean-gthread1": {"bare": True, "worker_class": "gthread", "threads": 1},
    "lean-log": {"bare": True, "accesslog": "-"},
}
# A configuration's name may end in one of these to serve the CRM with an overlay more:
# "lean+nodup" is the lean set-up serving the account without its duplicate rules.
VARIANTS: dict[str, Path] = {"nodup": ROOT / "bench" / "crm_no_duplicate_rules.yaml"}


def _app_name(server: str) -> str:
    """PostgreSQL's ``application_name`` of a server's connections (in a URL, ``+`` would
    be a space)."""
    return "bench-" + server.replace("+", "-")


def _config(name: str) -> tuple[dict[str, Any] | None, list[Path]]:
    """The gunicorn overrides of a ``--configs`` name, and the overlays its variant adds."""
    base, _, variant = name.partition("+")
    return CONFIGS[base], [VARIANTS[variant]] if variant else []


def _known_config(name: str) -> bool:
    base, _, variant = name.partition("+")
    return base in CONFIGS and (not variant or variant in VARIANTS)


FILL = """
INSERT INTO account (
    id, created_at, updated_at, created_by, updated_by, version, owner_id, team_id,
    name, code, type, industry, source, grade, heat, region, province, city, address,
    phone, website, size, annual_revenue, credit_rating, tags, locked, deal_status,
    parent_account, previous_owner, claimed_at, last_activity_at, next_follow_up_at,
    description, lifetime_value, opportunity_count)
SELECT g, c, c + (random() * interval '200 days'), r.user_id, r.user_id, 1 + (g % 7 = 0)::int,
    r.user_id, r.team_id,
    (ARRAY['Shanghai','Beijing','Shenzhen','Hangzhou','Chengdu','Wuhan','Nanjing','Suzhou',
           'Tianjin','Xiamen','Osaka','Nagoya'])[1 + g % 12] || ' ' ||
    (ARRAY['Huaxin','Tianlong','Hengtai','Jinxin','Dongfang','Zhongke','Ruifeng','Kaida',
           'Yuanhang','Boyuan','Minghui','Sanxing','Taihe','Guanghua','Xinhe','Fuyuan'])[1 + (g / 12) % 16]
    || ' ' || (ARRAY['Technology Co., Ltd.','Trading Co., Ltd.','Group','Manufacturing Co.',
                     'Logistics','Medical Devices','Software','Holdings'])[1 + (g / 192) % 8]
    || ' ' || g,
    -- the format AC-{seq:06}: lpad would cut 1000000 to 100000
    'AC-' || CASE WHEN g < 1000000 THEN lpad(g::text, 6, '0') ELSE g::text END,
    (ARRAY['customer','customer','customer','prospect','prospect','partner','supplier','distributor'])[1 + g % 8],
    (ARRAY['manufacturing','it_software','finance','retail','healthcare','education','government',
           'real_estate','energy','logistics','telecom','media','professional_services','other'])[1 + (g / 3) % 14],
    CASE WHEN g % 10 = 0 THEN NULL ELSE
    (ARRAY['website','referral','campaign','trade_show','cold_call','advertisement','partner',
           'social_media','other'])[1 + (g / 5) % 9] END,
    -- A 10 %, B 25 %, C 40 %, D 25 %
    (ARRAY['A','B','B','C','C','C','C','D','D','B'])[1 + (g * 7 + g / 10) % 10],
    (ARRAY['hot','warm','cold', NULL])[1 + (g / 7) % 4],
    (ARRAY['north_china','northeast_china','east_china','central_china','south_china',
           'southwest_china','northwest_china','hk_macao_taiwan','japan','overseas'])[1 + g % 10],
    (ARRAY['Shanghai','Beijing','Guangdong','Zhejiang','Sichuan','Hubei','Jiangsu','Osaka'])[1 + g % 8],
    (ARRAY['Shanghai','Beijing','Shenzhen','Hangzhou','Chengdu','Wuhan','Nanjing','Osaka'])[1 + g % 8],
    CASE WHEN g % 4 = 0 THEN NULL ELSE 'No. ' || (g % 999 + 1) || ' ' ||
    (ARRAY['Century Avenue','Jianguo Road','Shennan Boulevard','Wensan Road','Tianfu Avenue'])[1 + g % 5]
    || ', Building ' || (g % 30 + 1) END,
    '+86 ' || (ARRAY['21','10','755','571','28'])[1 + g % 5] || ' ' || lpad(((g::bigint * 7919) % 100000000)::text, 8, '0'),
    CASE WHEN g % 3 = 0 THEN NULL ELSE 'https://www.company' || g || '.com.cn' END,
    (ARRAY['micro','small','small','medium','medium','large','enterprise'])[1 + (g / 11) % 7],
    round((exp(random() * 10) * 100000)::numeric, 2),
    (ARRAY['AAA','AA','A','A','B','B','C', NULL])[1 + (g / 13) % 8],
    (ARRAY['[]','[]','["vip"]','["smb"]','["strategic","listed_company"]','["state_owned"]',
           '["foreign_invested"]','["renewal_due","smb"]'])[1 + g % 8]::jsonb,
    g % 20 = 0,
    CASE WHEN g % 3 = 0 THEN 'won' ELSE 'not_won' END,
    CASE WHEN g % 50 = 0 AND g > 1000 THEN g - 977 END,
    CASE WHEN g % 9 = 0 THEN r.user_id END,
    CASE WHEN g % 9 = 0 THEN c + interval '30 days' END,
    CASE WHEN g % 5 = 0 THEN NULL ELSE c + (random() * interval '300 days') END,
    CASE WHEN g % 2 = 0 THEN now() + (random() * interval '60 days') END,
    CASE WHEN g % 3 = 0 THEN 'Met at the ' || g % 17 || 'th trade show; interested in the '
         || (ARRAY['standard','premium','enterprise'])[1 + g % 3] || ' plan.' END,
    CASE WHEN g % 3 = 0 THEN round((random() * 2000000)::numeric, 2) ELSE 0 END,
    g % 6
FROM (SELECT g, now() - (random() * interval '1500 days') AS c
      FROM generate_series(1, :rows) g) s
JOIN bench_rep r ON r.idx = s.g % :reps
"""


@dataclass
class Server:
    name: str  # hand, lean, shipped, …
    port: int
    command: list[str]
    env: dict[str, str]
    cwd: Path
    stdout: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    database: str = ""  # the one it serves

    @property
    def heddle(self) -> bool:
        return self.name != "hand"

    @property
    def app_name(self) -> str:
        return _app_name(self.name)

    def url(self, endpoint: str, caller: str) -> str:
        base = f"http://127.0.0.1:{self.port}"
        if self.heddle:
            path = {"get": "/api/v1/records/account/", "create": "/api/v1/records/account"}
            list_path = "/api/v1/records/account?grade=A&sort=-annual_revenue&limit=50"
            return base + path.get(endpoint, list_path)
        path = {"get": f"/{caller}/accounts/", "create": f"/{caller}/accounts"}
        return base + path.get(endpoint, f"/{caller}/accounts?grade=A&limit=50")

    def start(self) -> None:
        out = open(self.stdout, "ab") if self.stdout else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, env={**os.environ, **self.env}, cwd=self.cwd, stdout=out,
            stderr=subprocess.STDOUT if self.stdout else None, start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def ticks(self) -> dict[int, int]:
        """CPU ticks of the master (its own and its reaped workers') and of each worker."""
        assert self.process is not None
        master = self.process.pid
        found = {-master: _stat_ticks(master, children=True)}
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            children = []
        for pid in map(int, children):
            found[pid] = _stat_ticks(pid)
        return found


@dataclass
class Run:
    requests: int
    rps: float
    p50: float
    p99: float
    errors: int
    worker_ms: float  # CPU per request
    pg_ms: float
    load: float  # 1-minute load average when the run ended

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Result:
    runs: dict[tuple[str, str, str], list[Run]] = field(
        default_factory=dict
    )  # (endpoint, caller, server)


def _stat_ticks(pid: int, children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # after the name: state is field 3 (index 0 here); utime, stime, cutime, cstime 14–17
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if children else 0)


def _delta(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks spent between two readings by the processes alive at the second (a backend
    that ended in between takes its ticks with it)."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def _backend_ticks(conn: sa.Connection, app_name: str) -> dict[int, int]:
    pids = conn.execute(
        sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": app_name}
    ).scalars()
    return {pid: _stat_ticks(pid) for pid in pids}


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def say(label: str, round_: int, run: Run) -> None:
    """One run's line of the progress report."""
    print(
        f"  {label} round {round_ + 1}: {run.rps:7.0f} req/s, p50 {run.p50:6.1f} ms, worker "
        f"{run.worker_ms:.2f} ms/req, PG {run.pg_ms:.2f} ms/req, load {run.load:.2f}"
        + (f", {run.errors} ERRORS" if run.errors else ""),
        flush=True,
    )


def _wrk(
    url: str, script: str, env: dict[str, str], duration: float, connections: int
) -> dict[str, float]:
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s",
        "-s", str(HERE / f"{script}.lua"), url,
    ]  # fmt: skip
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    out = done.stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else 0.0

    latency = {}
    for pct in ("50%", "99%"):
        found = re.search(rf"\s{re.escape(pct)}\s+([\d.]+)(us|ms|s)\b", out)
        assert found, out
        latency[pct] = float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": number(r"(\d+) requests in"),
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": latency["50%"],
        "p99": latency["99%"],
        "errors": number(r"Non-2xx or 3xx responses: (\d+)")
        + (sum(int(n) for n in socket.groups()) if socket else 0),
    }


def _request(url: str, auth: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": auth} if auth else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(url: str, auth: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            _request(url, auth)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench_http_"))
        self.db = f"heddle_bench_{secrets.token_hex(4)}"
        admin_url = sa.engine.make_url(args.pg)
        self.server_engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.url = admin_url.set(database=self.db)
        self.auth: dict[str, str] = {}
        self.ids: dict[str, tuple[int, int]] = {}  # caller: (user id, team id)
        self.servers: list[Server] = []
        self.copies: list[str] = []  # databases of the variants (VARIANTS), dropped at the end

    # -- the database ---------------------------------------------------------------------

    def packages(self) -> list[Path]:
        crm = ROOT / "apps" / "crm_definitions"
        return (
            [crm, ROOT / "bench" / "crm_team_rep.yaml"] if self.args.rep_scope == "team" else [crm]
        )

    def create_database(self) -> None:
        from heddle.accounts import Accounts

        from engine import build_tables
        from engine.dedupe import RuleSet, rebuild
        from engine.migrations import migrate
        from metamodel import load_packages

        with self.server_engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.db}"'))
        engine = sa.create_engine(self.url)
        model = load_packages(self.packages())
        started = time.perf_counter()
        migrate(engine, model, actor="bench")
        schema = build_tables(model)
        accounts = Accounts(schema)
        rows = self.args.rows
        with engine.begin() as conn:
            admin = accounts.create_user(
                conn, "bench_admin", "bench-password", ["admin"], team="HQ"
            )
            rep = accounts.create_user(
                conn,
                "bench_rep",
                "bench-password",
                ["sales_rep"],
                team=f"Sales {REP_INDEX // 10:02d}",
            )
            teams = [accounts.team_id(conn, f"Sales {t:02d}") for t in range(TEAMS)]
            users = schema.metadata.tables["heddle_user"]
            others = [
                {"username": f"rep{i:03d}", "name": f"Rep {i:03d}", "team_id": teams[i // 10],
                 "roles": ["sales_rep"], "created_at": dt.datetime.now(dt.UTC)}
                for i in range(REPS) if i != REP_INDEX
            ]  # fmt: skip
            conn.execute(users.insert(), others)
            ids = dict(conn.execute(sa.select(users.c.username, users.c.id)).all())
            conn.execute(
                sa.text(
                    "CREATE TABLE bench_rep (idx int PRIMARY KEY, user_id bigint, team_id bigint)"
                )
            )
            conn.execute(
                sa.text("INSERT INTO bench_rep VALUES (:idx, :user_id, :team_id)"),
                [
                    {"idx": i, "team_id": teams[i // 10],
                     "user_id": rep.id if i == REP_INDEX else ids[f"rep{i:03d}"]}
                    for i in range(REPS)
                ],
            )  # fmt: skip
            for caller, user in (("admin", admin), ("rep", rep)):
                token, _ = accounts.issue_token(conn, user, days=1)
                self.auth[caller] = f"Bearer {token}"
                self.ids[caller] = (user.id, user.team_id or 0)
            # the indexes other than constraints are built after the fill, like a restore
            indexes = conn.execute(sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'account' AND "
                "indexname NOT IN (SELECT conname FROM pg_constraint)"
            )).all()  # fmt: skip
            for name, _ in indexes:
                conn.execute(sa.text(f'DROP INDEX "{name}"'))
            conn.execute(sa.text("SELECT setseed(0.14)"))
            conn.execute(sa.text(FILL), {"rows": rows, "reps": REPS})
            for _, definition in indexes:
                conn.execute(sa.text(definition))
            conn.execute(sa.text(
                "CREATE INDEX bench_grade_revenue ON account (grade, annual_revenue, id)"
            ))  # fmt: skip
            # the duplicate rules' keys of every account, as a deployment's migrate keeps
            # them: a create's check then probes a key table of the table's size (without
            # them it grew from empty, with the statistics of an empty table, and the
            # planner's choice for the lookup drifted as it filled)
            for rule in RuleSet(model):
                if rule.entity == "account":
                    rebuild(conn, schema, rule)
            conn.execute(sa.text(f"SELECT setval('account_id_seq', {rows})"))
            sequences = schema.metadata.tables["heddle_sequence"]
            conn.execute(sequences.insert().values(name="account.code:AC-{seq:06}", value=rows))
            conn.execute(sa.text("CREATE SEQUENCE bench_hw_code"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            size = conn.scalar(sa.text("SELECT pg_size_pretty(pg_total_relation_size('account'))"))
        engine.dispose()
        print(
            f"{rows:,} accounts filled and indexed in {time.perf_counter() - started:.0f} s "
            f"(account with its indexes: {size})",
            flush=True,
        )

    def reuse_database(self, name: str) -> None:
        """Take a database a run with --keep filled: new tokens for its two callers."""
        from heddle.accounts import Accounts

        from engine import build_tables
        from metamodel import load_packages

        self.db = name
        self.url = self.url.set(database=name)
        engine = sa.create_engine(self.url)
        accounts = Accounts(build_tables(load_packages(self.packages())))
        with engine.begin() as conn:
            for caller in ("admin", "rep"):
                user = accounts.by_username(conn, f"bench_{caller}")
                assert user is not None, f"{name} was not filled by bench_http.py"
                token, _ = accounts.issue_token(conn, user, days=1)
                self.auth[caller] = f"Bearer {token}"
                self.ids[caller] = (user.id, user.team_id or 0)
        engine.dispose()

    def drop_database(self) -> None:
        with self.server_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))

    def variant_database(self, variant: str) -> str:
        """A copy of the database migrated with the variant's overlay: a server serves the
        model its database was migrated to, not the files it is given."""
        from engine.migrations import migrate
        from metamodel import load_packages

        name = f"{self.db}_{variant}"
        if name in self.copies:
            return name
        started = time.perf_counter()
        with self.server_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.db}"'))
        self.copies.append(name)
        engine = sa.create_engine(self.url.set(database=name))
        migrate(engine, load_packages([*self.packages(), VARIANTS[variant]]), actor="bench")
        engine.dispose()
        print(f"{name}: copied and migrated in {time.perf_counter() - started:.0f} s", flush=True)
        return name

    def drop_copies(self) -> None:
        with self.server_engine.connect() as conn:
            for name in self.copies:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    # -- the servers ----------------------------------------------------------------------

    def make_servers(self) -> None:
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        for name in ["hand", *self.args.configs]:
            # a free port of the OS's choosing: another run on the machine keeps its own
            port = _free_port()
            variant = name.partition("+")[2]
            database = self.variant_database(variant) if variant else self.db
            url = self.url.set(database=database).render_as_string(hide_password=False)
            app_url = f"{url}?application_name={_app_name(name)}"
            if name == "hand":
                env = {
                    "BENCH_URL": app_url, "BENCH_REP_WHERE": self.args.rep_scope,
                    "BENCH_ADMIN_ID": str(self.ids["admin"][0]), "BENCH_ADMIN_TEAM": str(self.ids["admin"][1]),
                    "BENCH_REP_ID": str(self.ids["rep"][0]), "BENCH_REP_TEAM": str(self.ids["rep"][1]),
                }  # fmt: skip
                command = [gunicorn, "--workers", "2", "--worker-class", "sync",
                           "--bind", f"127.0.0.1:{port}", *QUIET, "baseline:app"]  # fmt: skip
                self.servers.append(
                    Server(
                        name, port, command, env, HERE, self.work / "hand.stdout", database=database
                    )
                )
                continue
            overrides, overlays = _config(name)
            env = {
                "HEDDLE_DATABASE_URL": app_url, "HEDDLE_SECRET_KEY": "bench",
                "HEDDLE_PACKAGES": ",".join(map(str, self.packages() + overlays)),
                "HEDDLE_INSTANCE_PATH": str(self.work / "instance"), "HEDDLE_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT / "platform"), "HEDDLE_BIND": f"127.0.0.1:{port}",
                "HEDDLE_WORKERS": "2",
            }  # fmt: skip
            if overrides is None:
                command = [gunicorn, "--workers", "2", "--worker-class", "sync",
                           "--bind", f"127.0.0.1:{port}", *QUIET, "heddle.wsgi:app"]  # fmt: skip
            else:
                conf = self.work / f"gunicorn_{name}.conf.py"
                shipped = ROOT / "platform" / "gunicorn.conf.py"
                if overrides.get("bare"):
                    lines = [f"bind = '127.0.0.1:{port}'", "workers = 2", "loglevel = 'warning'"]
                else:
                    lines = [
                        f"exec(compile(open({str(shipped)!r}).read(), {str(shipped)!r}, 'exec'))"
                    ]
                lines += [f"{key} = {value!r}" for key, value in overrides.items() if key != "bare"]
                conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
                command = [gunicorn, "-c", str(conf), "--no-control-socket", "heddle.wsgi:app"]
            # the access log goes to a file, as a container runtime would collect stdout
            log = self.work / f"{name}.stdout"
            self.servers.append(Server(name, port, command, env, ROOT, log, database=database))

    @contextmanager
    def running(self, servers: list[Server]) -> Iterator[None]:
        try:
            for server in servers:
                server.start()
            for server in servers:
                _wait(server.url("get", "admin") + "1", self.auth["admin"] if server.heddle else "")
                # what answered is this server, not someone else's on a port it failed to bind
                assert server.process is not None and server.process.poll() is None, (
                    f"{server.name} exited: see {server.stdout}"
                )
            yield
        finally:
            for server in servers:
                server.stop()

    def check_same_rows(self) -> None:
        """Every server answers every request, and the lists hold the same accounts."""
        ids: dict[tuple[str, str], list[int]] = {}
        first = {"admin": 1, "rep": REP_INDEX}
        for server in self.servers:
            for caller in self.args.callers:
                auth = self.auth[caller] if server.heddle else ""
                status, body = _request(server.url("get", caller) + str(first[caller]), auth)
                assert status == 200, (server.name, caller, status, body)
                status, body = _request(server.url("list", caller), auth)
                assert status == 200 and len(body["data"]) == 50, (
                    server.name,
                    caller,
                    status,
                    body,
                )
                ids[(server.name, caller)] = [row["id"] for row in body["data"]]
                if caller == "rep":
                    # the rep may not read another team's account
                    status, _ = _request(server.url("get", caller) + str(first[caller] + 10), auth)
                    assert status == 404, (server.name, status)
        for caller in self.args.callers:
            pages = {tuple(ids[(s.name, caller)]) for s in self.servers}
            assert len(pages) == 1, f"the servers list different {caller} pages: {pages}"

    # -- measuring ------------------------------------------------------------------------

    def lua_env(self, server: Server, endpoint: str, caller: str) -> dict[str, str]:
        env = {
            "BENCH_AUTH": self.auth[caller] if server.heddle else "",
            "BENCH_ROWS": str(self.args.rows),
        }
        if caller == "rep":
            span = 10 if self.args.rep_scope == "team" else 1
            start = REP_INDEX - REP_INDEX % 10 if span == 10 else REP_INDEX
            env.update(BENCH_STRIDE=str(REPS), BENCH_OFFSET=str(start), BENCH_SPAN=str(span))
        return env

    def measure(
        self, monitor: sa.Connection, server: Server, endpoint: str, caller: str, duration: float
    ) -> Run:
        url, env = server.url(endpoint, caller), self.lua_env(server, endpoint, caller)
        return self.measure_url(monitor, server, url, endpoint, env, duration)

    def measure_url(
        self, monitor: sa.Connection, server: Server, url: str, script: str,
        env: dict[str, str], duration: float,
    ) -> Run:  # fmt: skip
        """One ``wrk`` run of ``script`` (``bench/http/<script>.lua``) against ``url``,
        with the CPU its workers and PostgreSQL backends spent per request."""
        workers, backends = server.ticks(), _backend_ticks(monitor, server.app_name)
        out = _wrk(url, script, env, duration, self.args.connections)
        workers_after, backends_after = server.ticks(), _backend_ticks(monitor, server.app_name)
        requests = max(out["requests"], 1)
        return Run(
            requests=int(out["requests"]), rps=out["rps"], p50=out["p50"], p99=out["p99"],
            errors=int(out["errors"]),
            # a recycled worker's ticks move into its master's cutime: compare totals
            worker_ms=(sum(workers_after.values()) - sum(workers.values())) * TICK_MS / requests,
            pg_ms=_delta(backends, backends_after) * TICK_MS / requests,
            load=_loadavg(),
        )  # fmt: skip

    def rounds(self) -> Result:
        result = Result()
        monitor_engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with self.running(self.servers), monitor_engine.connect() as monitor:
            self.check_same_rows()
            for endpoint in self.args.endpoints:
                pairs = [(c, s) for c in self.args.callers for s in self.servers]
                for caller, server in pairs:  # warm-up: caches, connections, JIT of the plans
                    self.measure(monitor, server, endpoint, caller, min(2, self.args.duration))
                for round_ in range(self.args.rounds):
                    for caller, server in pairs if round_ % 2 == 0 else pairs[::-1]:
                        run = self.measure(monitor, server, endpoint, caller, self.args.duration)
                        result.runs.setdefault((endpoint, caller, server.name), []).append(run)
                        say(f"{endpoint:6} {caller:5} {server.name:17}", round_, run)
        monitor_engine.dispose()
        return result

    # -- counting statements ---------------------------------------------------------------

    def count_statements(self) -> dict[str, Any]:
        """Statements per request from PostgreSQL's log, each server alone, and the
        statements of one request of each kind in order."""
        if not os.access(PG_LOG, os.R_OK):
            print(f"cannot read {PG_LOG}: statements not counted", flush=True)
            return {}
        with self.server_engine.connect() as conn:
            for name in (self.db, *self.copies):
                conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'"))
        counts: dict[str, Any] = {"per_request": {}, "samples": {}}
        try:
            for server in self.servers:
                with self.running([server]):  # started after the ALTER: its sessions log
                    for endpoint in self.args.endpoints:
                        for caller in self.args.callers:
                            key = f"{endpoint} {caller} {server.name}"
                            self._client(server, endpoint, caller, 5)  # tokens, connections
                            time.sleep(0.3)
                            start = PG_LOG.stat().st_size
                            sent = self._client(server, endpoint, caller, self.args.count_requests)
                            time.sleep(0.5)
                            statements = self._logged(start, server.database)
                            counts["per_request"][key] = len(statements) / sent
                            if server.name in ("hand", "lean"):
                                counts["samples"][key] = self._sample(server, endpoint, caller)
        finally:
            with self.server_engine.connect() as conn:
                for name in (self.db, *self.copies):
                    conn.execute(sa.text(f'ALTER DATABASE "{name}" RESET log_statement'))
        return counts

    def _logged(self, start: int, database: str) -> list[str]:
        with open(PG_LOG, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
        # an entry starts with log_line_prefix's timestamp; a statement's further lines
        # follow without one
        entries = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
        pattern = re.compile(
            rf"@{re.escape(database)} LOG:  (?:statement|execute [^:]*): (.*)", re.DOTALL
        )
        found = []
        for entry in entries:
            match = pattern.search(entry)
            if match:
                found.append(" ".join(match.group(1).split()))
        return found

    def _client(self, server: Server, endpoint: str, caller: str, count: int) -> int:
        """Send ``count`` requests like the Lua scripts' one after another; an exact count,
        where wrk's leaves out the requests still in flight when it stops."""
        auth = self.auth[caller] if server.heddle else ""
        env = self.lua_env(server, endpoint, caller)
        stride, offset, span = (
            int(env.get(k, "1")) for k in ("BENCH_STRIDE", "BENCH_OFFSET", "BENCH_SPAN")
        )
        for _ in range(count):
            url, body = server.url(endpoint, caller), None
            if endpoint == "get":
                k = random.randrange(self.args.rows // stride)
                url += str(k * stride + offset + random.randrange(span))
            elif endpoint == "create":
                body = _account_body(next(_CREATED))
            status, answer = _request(url, auth, body)
            assert status in (200, 201), (server.name, endpoint, caller, status, answer)
        return count

    def _sample(self, server: Server, endpoint: str, caller: str) -> list[str]:
        """The statements of one request, in order, the caller's token already checked."""
        start = PG_LOG.stat().st_size
        self._client(server, endpoint, caller, 1)
        time.sleep(0.5)
        return [_short(s) for s in self._logged(start, server.database)]


#: numbers the accounts the harness creates itself: names and phones never repeat (the
#: CRM's duplicate rules would refuse a second one)
_CREATED = itertools.count(1)


def _account_body(number: int) -> dict[str, Any]:
    """A new account like bench/http/create.lua's."""
    n = random.randint(1, 999_999)
    return {
        "name": f"Bench {os.getpid()}-{number} Trading Co., Ltd.", "type": "customer",
        "grade": random.choice("ABBCCCDD"), "industry": "retail", "source": "website",
        "region": "east_china", "city": "Shanghai",
        "phone": f"+86 3{os.getpid() % 10} {int(time.time()) % 10000:04d}{number % 10000:04d}",
        "website": f"https://www.bench{n}.example.com", "size": "small",
        "annual_revenue": f"{random.randint(100_000, 500_000_000)}.00", "tags": ["smb"],
        "description": "Created by the HTTP benchmark.",
    }  # fmt: skip


def _short(statement: str) -> str:
    """A logged statement without its long column list."""
    statement = re.sub(
        r"^SELECT (\w+\.id, \w+\.created_at, .*?) FROM", "SELECT <all columns> FROM", statement
    )
    statement = re.sub(
        r"RETURNING (\w+\.id, \w+\.created_at, .*)$", "RETURNING <all columns>", statement
    )
    return statement if len(statement) <= 600 else statement[:600] + " …"


def _report(args: argparse.Namespace, result: Result, counts: dict[str, Any]) -> dict[str, Any]:
    servers = ["hand", *args.configs]
    table: list[dict[str, Any]] = []
    print()
    print(
        "| endpoint | caller | server | median req/s | p50 ms | p99 ms | rounds req/s | "
        "ratio per round | median ratio | worker CPU ms/req | PG CPU ms/req | statements/req |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for endpoint in args.endpoints:
        for caller in args.callers:
            base = result.runs[(endpoint, caller, "hand")]
            for name in servers:
                runs = result.runs[(endpoint, caller, name)]
                median = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
                ratios = [run.rps / b.rps for run, b in zip(runs, base, strict=True)]
                per = counts.get("per_request", {}).get(f"{endpoint} {caller} {name}")
                row = {
                    "endpoint": endpoint, "caller": caller, "server": name,
                    "median_rps": median.rps, "p50": median.p50, "p99": median.p99,
                    "rounds_rps": [r.rps for r in runs], "ratios": ratios,
                    "median_ratio": statistics.median(ratios),
                    "worker_ms": statistics.median(r.worker_ms for r in runs),
                    "pg_ms": statistics.median(r.pg_ms for r in runs),
                    "statements": per, "errors": sum(r.errors for r in runs),
                    "runs": [r.to_dict() for r in runs],
                }  # fmt: skip
                table.append(row)
                ratio_text = "—" if name == "hand" else ", ".join(f"{r:.2f}" for r in ratios)
                median_ratio = "—" if name == "hand" else f"{row['median_ratio']:.2f}"
                print(
                    f"| {endpoint} | {caller} | {name} | {median.rps:.0f} | {median.p50:.1f} | "
                    f"{median.p99:.1f} | {' / '.join(f'{r.rps:.0f}' for r in runs)} | {ratio_text} | "
                    f"{median_ratio} | {row['worker_ms']:.2f} | {row['pg_ms']:.2f} | "
                    f"{'—' if per is None else f'{per:.2f}'} |"
                    + (f" {row['errors']} errors" if row["errors"] else "")
                )
    for key, statements in counts.get("samples", {}).items():
        print(f"\nstatements of one request, {key}:")
        for number, statement in enumerate(statements, start=1):
            print(f"  {number:2}. {statement}")
    return {"results": table, "samples": counts.get("samples", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--quick", action="store_true", help="20,000 rows, 3 s runs: check the harness"
    )
    parser.add_argument(
        "--configs",
        default="lean,shipped",
        help=f"Heddle's gunicorn set-ups, of: {', '.join(CONFIGS)} (+nodup: the account "
        "without its duplicate rules)",
    )
    parser.add_argument("--endpoints", default="get,list,create")
    parser.add_argument("--callers", default="admin,rep")
    parser.add_argument("--rep-scope", choices=["team", "own"], default="team")
    parser.add_argument("--no-count", action="store_true", help="skip counting statements")
    parser.add_argument(
        "--count-requests", type=int, default=200, help="requests per statement count"
    )
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database (and print its name)"
    )
    parser.add_argument(
        "--database", help="reuse a database a run with --keep filled (same --rows and --rep-scope)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.duration = 20_000, 3
    args.configs = [c for c in args.configs.split(",") if c]
    args.endpoints = args.endpoints.split(",")
    args.callers = args.callers.split(",")
    unknown = [c for c in args.configs if not _known_config(c)]
    if unknown:
        parser.error(
            f"unknown configuration {unknown}: choose from {', '.join(CONFIGS)}, each "
            f"optionally with +{', +'.join(VARIANTS)}"
        )
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    bench = Bench(args)
    started = dt.datetime.now(dt.UTC)
    load_before = Path("/proc/loadavg").read_text().strip()
    try:
        if args.database:
            bench.reuse_database(args.database)
        else:
            bench.create_database()
        bench.make_servers()
        result = bench.rounds()
        counts = {} if args.no_count else bench.count_statements()
    finally:
        for server in bench.servers:
            server.stop()
        if args.keep or args.database:  # a database given is the caller's to drop
            print(f"database kept: {bench.db}")
        else:
            bench.drop_database()
        bench.drop_copies()
        shutil.rmtree(bench.work, ignore_errors=True)
    meta = {
        "started": started.isoformat(timespec="seconds"), "rows": args.rows,
        "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
        "rep_scope": args.rep_scope, "load_before": load_before,
        "load_after": Path("/proc/loadavg").read_text().strip(), "cpus": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(meta))
    report = _report(args, result, counts)
    if args.json:
        args.json.write_text(
            json.dumps({**meta, **report}, indent=1, default=str), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
