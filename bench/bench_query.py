"""Benchmark: the query layer on PostgreSQL, against hand-written SQLAlchemy Core.

(1) A fifty-row list (filtered, sorted, with its count) and a get-by-id through
    ``engine.query`` (``parse_params`` + ``run``), next to the same work written by hand
    with SQLAlchemy Core on the same table in the same run: a ratio, goal ≤ 1.2.
(2) One page of a filtered, sorted list with its count on 1,000,000 rows: p50 and p95,
    goal p95 < 20 ms — first pages, a page twenty pages deep (cursor), a text search
    (trigram index) and a filter through a reference with expanded titles.

The benchmark creates its own database on the server (and drops it afterwards), fills it
with ``INSERT … SELECT generate_series``, builds the indexes after the fill, and runs
``VACUUM ANALYZE``::

    .venv/bin/python bench/bench_query.py [--url postgresql+psycopg://postgres@127.0.0.1/postgres]
                                          [--rows 1000000] [--repeat 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.context import Actor  # noqa: E402
from engine.query import EXACT_COUNT_UP_TO as EXACT  # noqa: E402
from engine.query import parse_params, run  # noqa: E402
from engine.search import ensure_search_indexes  # noqa: E402
from engine.tables import USER_TABLE, Tables, build_tables  # noqa: E402
from metamodel import load_packages  # noqa: E402

PACKAGE = """\
kind: package
name: bench
---
kind: entity
name: region
fields:
  name: {type: string}
---
kind: entity
name: account
ownable: true
search_fields: [name]
fields:
  name: {type: string, required: true}
  grade: {type: choice, options: [a, b, c, d]}
  revenue: {type: money}
  employees: {type: integer}
  founded: {type: date}
  region: {type: reference, to: region, on_delete: set_null}
  notes: {type: text}
indexes:
  - {name: grade_revenue, fields: [grade, revenue, id]}
"""

ACTOR = Actor(user_id=1, roles=frozenset({"admin"}), today=dt.date(2024, 5, 15))


def fill(conn: sa.Connection, tables: Tables, rows: int) -> None:
    """Ten regions, five users, ``rows`` accounts; values spread deterministically."""
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        tables.metadata.tables[USER_TABLE].insert(),
        [
            {"username": f"user{i}", "name": f"User {i}", "roles": [], "created_at": now}
            for i in range(1, 6)
        ],
    )
    conn.execute(
        tables.table("region").insert(),
        [{"name": f"Region {i}", "created_at": now, "updated_at": now} for i in range(1, 11)],
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO account (name, grade, revenue, employees, founded, region, notes,
                                 owner_id, created_at, updated_at, version)
            SELECT 'Account ' || g || CASE g % 3 WHEN 0 THEN ' 株式会社' WHEN 1 THEN ' 客户'
                                                 ELSE ' Ltd' END,
                   (ARRAY['a', 'b', 'c', 'd'])[1 + g % 4],
                   CASE WHEN g % 50 = 0 THEN NULL ELSE ((g::bigint * 7919) % 1000000) / 100.0 END,
                   (g * 31) % 5000,
                   DATE '2000-01-01' + (g * 13) % 9000,
                   1 + g % 10,
                   CASE WHEN g % 7 = 0 THEN 'key account' END,
                   1 + g % 5,
                   now() - g * INTERVAL '1 second',
                   now() - g * INTERVAL '1 second',
                   1
            FROM generate_series(1, :rows) AS g
            """
        ),
        {"rows": rows},
    )


def timed(func: Callable[[], Any], repeat: int) -> list[float]:
    for _ in range(min(20, repeat)):
        func()  # warm: statement caches, buffers
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def side_by_side(
    engine_call: Callable[[], Any], hand_call: Callable[[], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Both calls, interleaved so that drift of the machine hits them alike."""
    for _ in range(min(50, repeat)):
        engine_call()
        hand_call()
    ours, theirs = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        engine_call()
        middle = time.perf_counter()
        hand_call()
        end = time.perf_counter()
        ours.append((middle - start) * 1000)
        theirs.append((end - middle) * 1000)
    return ours, theirs


def part_one(conn: sa.Connection, tables: Tables, repeat: int, rows: int) -> list[str]:
    """Engine vs hand-written Core: a 50-row filtered, sorted list with count; get by id."""
    table = tables.table("account")
    params = {"grade": "a", "revenue__between": "5000,5100", "sort": "-revenue", "limit": "50"}

    def engine_list() -> Any:
        query = parse_params(tables.model, "account", params)
        return run(conn, tables, "account", query, ACTOR)

    def hand_list() -> Any:
        where = (table.c.grade == "a", table.c.revenue.between(5000, 5100))
        page = conn.execute(
            sa.select(table)
            .where(*where)
            .order_by(table.c.revenue.desc().nulls_first(), table.c.id.desc())
            .limit(51)
        ).mappings()
        data = [dict(row) for row in page][:50]
        capped = sa.select(sa.literal(1)).where(*where).limit(10_001).subquery()
        count = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
        return data, count

    ids = iter(range(1, 10**9))

    def next_id() -> int:
        return 1 + (next(ids) * 7919) % rows

    def engine_get() -> Any:
        query = parse_params(tables.model, "account", {"id": str(next_id()), "limit": "1"})
        return run(conn, tables, "account", query, ACTOR).rows[0]

    def hand_get() -> Any:
        row = conn.execute(sa.select(table).where(table.c.id == next_id())).mappings().one()
        return dict(row)

    engine_page, (hand_page, hand_count) = engine_list(), hand_list()
    assert [r["id"] for r in engine_page.rows] == [r["id"] for r in hand_page]
    assert engine_page.count == hand_count and not engine_page.count_estimated
    lines = [
        "| call | engine median ms | hand-written median ms | ratio (medians) |",
        "|---|---|---|---|",
    ]
    for title, ours_call, hand_call in (
        (f"list: 50 of {hand_count:,} rows, filtered, sorted, counted", engine_list, hand_list),
        ("get by id", engine_get, hand_get),
    ):
        ours, theirs = side_by_side(ours_call, hand_call, repeat)
        a, b = statistics.median(ours), statistics.median(theirs)
        lines.append(f"| {title} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    return lines


def part_two(conn: sa.Connection, tables: Tables, repeat: int) -> list[str]:
    """p50/p95 of whole list calls (parse + page + count) on the big table."""
    base = {"grade": "a", "revenue__gte": "1000", "sort": "-revenue", "limit": "50"}
    cursor = None
    for _ in range(20):
        params = {**base, "cursor": cursor} if cursor else base
        query = parse_params(tables.model, "account", params)
        cursor = run(conn, tables, "account", query, ACTOR).next_cursor
    assert cursor is not None
    grades = iter(["a", "b", "c", "d"] * 10**6)

    def search() -> dict[str, str]:
        return {"q": "12345", "sort": "-revenue"}

    def unindexed() -> dict[str, str]:
        return {"grade": next(grades), "employees__lte": "2500", "sort": "-revenue,name"}

    cases: list[tuple[str, Callable[[], dict[str, str]], int]] = [
        ("grade=a & revenue≥1000, sort -revenue (first page)", lambda: base, EXACT),
        ("the same, page 21 (cursor)", lambda: {**base, "cursor": cursor}, EXACT),
        ("grade=<a…d> & employees≤2500 (not indexed), sort -revenue,name", unindexed, EXACT),
        ("the same, exact counts only up to 1,000", unindexed, 1_000),
        ("search q=12345 (trigram), sort -revenue", search, EXACT),
        (
            "region.name='Region 3' (join), sort -id, expand region & owner",
            lambda: {"region.name": "Region 3", "sort": "-id", "expand": "region,owner_id"},
            EXACT,
        ),
    ]
    lines = [
        "| query | rows on page | count | estimated | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for title, make, exact in cases:
        last: list[Any] = []

        def call(
            make: Callable[[], dict[str, str]] = make, last: list[Any] = last, exact: int = exact
        ) -> None:
            query = parse_params(tables.model, "account", make())
            last[:] = [run(conn, tables, "account", query, ACTOR, exact_count_up_to=exact)]

        times = timed(call, repeat)
        page = last[0]
        lines.append(
            f"| {title} | {len(page.rows)} | {page.count:,} | {page.count_estimated} "
            f"| {statistics.median(times):.2f} | {p95(times):.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server; its database is only used to create and drop the bench's",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()

    server = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"heddle_bench_query_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.url).set(database=name)
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
            model = load_packages([path])
        tables = build_tables(model)
        started = time.perf_counter()
        with engine.begin() as conn:
            tables.metadata.create_all(conn)
            indexes = [i for t in tables.by_entity.values() for i in t.indexes]
            for index in indexes:  # build them once, after the fill
                index.drop(conn)
            fill(conn, tables, args.rows)
            for index in indexes:
                index.create(conn)
            search = ensure_search_indexes(conn, tables)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        print(
            f"{args.rows:,} accounts filled and indexed in {time.perf_counter() - started:.0f} s;"
            f" indexes: {', '.join(sorted(i.name or '' for i in indexes) + search)}"
        )
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            print(f"PostgreSQL {version}, Python {sys.version.split()[0]}, {args.repeat} runs each")
            print()
            print("(1) engine vs hand-written SQLAlchemy Core, same table, same run")
            print()
            print("\n".join(part_one(conn, tables, args.repeat, args.rows)))
            print()
            print(f"(2) one page with its count, {args.rows:,} rows")
            print()
            print("\n".join(part_two(conn, tables, args.repeat)))
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


if __name__ == "__main__":
    main()
