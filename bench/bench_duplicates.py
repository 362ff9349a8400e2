"""Benchmark: the duplicate check on PostgreSQL is an index lookup, not a scan.

On the CRM's ``account`` table filled with ``--rows`` accounts (default 100,000; the
issue's 1,000,000 takes the same probe, only a deeper index), their keys built by
:func:`engine.dedupe.rebuild` (as ``migrate`` does for a new rule; its speed is reported
too), each of ``--repeat`` new names is checked three ways, in one run:

- ``engine``: :meth:`engine.dedupe.DuplicateIndex.check` as a create runs it — keys
  computed under the account's two rules, the advisory lock of the claim rule, one lookup
  statement for both rules and their ``also_check`` entity — for a name nobody has (the
  common case) and for one that exists (a refusal, with its candidate read and described);
- ``hand``: the same lookup written by hand, the key computed in Python beforehand:
  ``SELECT record_id FROM heddle_duplicate_key WHERE key_space = … AND key = …``;
- ``scan``: what a check without stored keys costs: ``lower(name) = …`` over the table
  (a sequential scan; it is still only ``lower``, not the rule's normalizers).

Each check runs in its own transaction (rolled back), on one connection. Reported: the
median and p95 in microseconds, and the ratio engine / hand::

    .venv/bin/python bench/bench_duplicates.py [--url postgresql+psycopg://postgres@127.0.0.1/postgres]
                                               [--rows 100000] [--repeat 300]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import SYSTEM, DuplicateFound, Records, migrate  # noqa: E402
from engine.dedupe import rebuild  # noqa: E402
from engine.tables import DUPLICATE_KEY_TABLE  # noqa: E402
from metamodel import load_packages  # noqa: E402

CRM = ROOT / "apps" / "crm_definitions"
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]


def timed(work: Callable[[], object], repeat: int) -> list[float]:
    found = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        found.append((time.perf_counter() - start) * 1e6)
    return found


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    server = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"bench_dup_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(make_url(args.url).set(database=name))
    try:
        run(engine, args.rows, args.repeat)
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def run(engine: sa.Engine, rows: int, repeat: int) -> None:
    model = load_packages([CRM])
    migrate(engine, model)
    records = Records(engine, model)
    account = model.entity("account")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (created_at, updated_at, version, name, phone, code)"
                " SELECT :now, :now, 1,"
                " (ARRAY['北京','上海','']::text[])[n % 3 + 1] || 'Company ' || n"
                "   || (ARRAY[' Co., Ltd.',' Inc.','有限公司']::text[])[n % 3 + 1],"
                " '+86 138 ' || lpad(n::text, 8, '0'), 'AC-' || n"
                " FROM generate_series(1, :rows) AS n"
            ),
            {"now": now, "rows": rows},
        )
    started = time.perf_counter()
    with engine.begin() as conn:
        for rule in records.dedupe.of("account"):
            rebuild(conn, records.tables, rule)
    built = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(sa.text(f"ANALYZE {DUPLICATE_KEY_TABLE}"))
        conn.execute(sa.text("ANALYZE account"))
        stored = conn.scalar(sa.text(f"SELECT count(*) FROM {DUPLICATE_KEY_TABLE}"))
    print(
        f"{rows:,} accounts, {stored:,} keys built in {built:.1f} s "
        f"({rows / built:,.0f} accounts/s, two rules)"
    )

    space = records.dedupe.rules.get("account", "same_name")
    assert space is not None
    conn = engine.connect()
    names = iter(f"{WORDS[n % len(WORDS)]} Newco {n} Trading Co., Ltd." for n in range(10**6))
    existing = iter(f"Company {n} Inc." for n in range(1, rows, max(rows // (repeat + 1), 1)))

    def engine_new() -> None:
        with conn.begin() as tx:
            records.dedupe.check(conn, SYSTEM, account, {"name": next(names)}, None)
            tx.rollback()

    def engine_found() -> None:
        with conn.begin() as tx:
            with contextlib.suppress(DuplicateFound):  # the refusal is what is timed
                records.dedupe.check(conn, SYSTEM, account, {"name": next(existing)}, None)
            tx.rollback()

    lookup = sa.text(
        f"SELECT record_id FROM {DUPLICATE_KEY_TABLE} WHERE key_space = :space AND key = :key"
    )
    keys = iter(space.keys({"name": f"Hand Newco {n} Trading"})[0] for n in range(10**6))

    def hand() -> None:
        with conn.begin() as tx:
            conn.execute(lookup, {"space": space.key_space, "key": next(keys)}).all()
            tx.rollback()

    scan_query = sa.text("SELECT id FROM account WHERE lower(name) = :name")

    def scan() -> None:
        with conn.begin() as tx:
            conn.execute(scan_query, {"name": "nobody's company"}).all()
            tx.rollback()

    for work in (engine_new, hand):  # warm up
        timed(work, 20)
    results = {
        "engine, new name": timed(engine_new, repeat),
        "engine, existing name (refused)": timed(engine_found, min(repeat, 100)),
        "hand-written lookup": timed(hand, repeat),
        "scan (lower(name) = …)": timed(scan, max(repeat // 20, 5)),
    }
    conn.close()
    hand_median = summary(results["hand-written lookup"])[0]
    print(f"\n| check ({rows:,} accounts) | median µs | p95 µs | / hand |")
    print("|---|---|---|---|")
    for label, samples in results.items():
        median, p95 = summary(samples)
        print(f"| {label} | {median:,.0f} | {p95:,.0f} | {median / hand_median:.2f} |")


if __name__ == "__main__":
    main()
