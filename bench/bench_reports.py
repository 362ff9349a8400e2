"""Benchmark: a grouped, filtered report through ``engine.reports`` against the same
hand-written SQL, on PostgreSQL, in the same run (DESIGN.md's goal: a ratio of 1.1 or less).

The report groups accounts by grade and by the name of their region (a join through a
reference), keeps those above a revenue given as a parameter, and computes a count, a
sum, an average and a filtered count. The engine's side includes everything a request
does below HTTP: binding the parameter, the permission scope (an admin's: none), building
and compiling the statement, and shaping the rows. Two variants: without totals, and
with totals (the hand-written side then adds the same totals with ``UNION ALL``). Then a
dashboard of six widgets (``run_dashboard``: a grouped report, a path through a reference,
value ranges, a top 5 with "others", a pivot with row and column totals, a number card)
against the six hand-written queries that give the same numbers, in the same run. The
reports with totals and the dashboard are compared twice: with SQL written the plain way
(the totals a second ``UNION ALL`` pass, "others" with ``NOT IN``, the pivot grouped four
times) and with SQL that reads the table once as the engine does (the totals, "others" and
the pivot's totals added up from the grouped rows of a CTE).

    .venv/bin/python bench/bench_reports.py [--url postgresql+psycopg://postgres@127.0.0.1/postgres]
                                            [--rows 1000000] [--repeat 30]

The benchmark creates its own database (dropped afterwards), fills it with
``generate_series`` and runs ``VACUUM ANALYZE``; the two sides alternate, and the median
of each is reported.
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
from engine.records import Records  # noqa: E402
from engine.reports import Reports  # noqa: E402
from engine.reports.dashboards import run_dashboard  # noqa: E402
from engine.tables import USER_TABLE, build_tables  # noqa: E402
from metamodel import load_packages, report_from_value  # noqa: E402

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
fields:
  name: {type: string, required: true}
  grade: {type: choice, options: [a, b, c, d]}
  revenue: {type: money}
  employees: {type: integer}
  region: {type: reference, to: region, on_delete: set_null}
---
kind: report
name: by_grade
entity: account
group_by: [grade]
measures: [{name: accounts, aggregate: count}, {name: revenue, aggregate: sum, field: revenue}]
---
kind: report
name: by_region
entity: account
group_by: [region.name]
measures: [{name: accounts, aggregate: count}, {name: average, aggregate: avg, field: revenue}]
---
kind: report
name: by_size
entity: account
group_by:
  - name: size
    field: employees
    ranges: [{value: small, to: 99}, {value: medium, to: 999}, {value: large}]
measures: [{name: accounts, aggregate: count}]
---
kind: report
name: top_regions
entity: account
group_by: [region]
measures: [{name: revenue, aggregate: sum, field: revenue}]
sort: -revenue
limit: 5
others: true
totals: false
---
kind: report
name: grade_by_region
entity: account
group_by: [region, grade]
pivot: grade
measures: [{name: accounts, aggregate: count}]
---
kind: report
name: overall
entity: account
measures: [{name: accounts, aggregate: count}, {name: revenue, aggregate: sum, field: revenue}]
---
kind: dashboard
name: cockpit
widgets:
  - {name: grade, type: report, report: by_grade}
  - {name: region, type: report, report: by_region}
  - {name: size, type: report, report: by_size}
  - {name: top, type: report, report: top_regions}
  - {name: pivot, type: report, report: grade_by_region}
  - {name: overall, type: metric, report: overall}
"""

DASHBOARD_HAND = [
    """SELECT grade, count(*), coalesce(sum(revenue), 0) FROM account GROUP BY grade
       UNION ALL SELECT NULL, count(*), coalesce(sum(revenue), 0) FROM account""",
    """SELECT r.name, count(*), avg(a.revenue) FROM account a
       LEFT JOIN region r ON r.id = a.region GROUP BY r.name
       UNION ALL SELECT NULL, count(*), avg(revenue) FROM account""",
    """SELECT CASE WHEN employees IS NULL THEN NULL WHEN employees <= 99 THEN 'small'
                   WHEN employees <= 999 THEN 'medium' ELSE 'large' END, count(*)
       FROM account GROUP BY 1 UNION ALL SELECT NULL, count(*) FROM account""",
    # with the region's name, as the engine gives each reference's title
    """WITH g AS (SELECT a.region, r.name, coalesce(sum(a.revenue), 0) AS revenue
                FROM account a LEFT JOIN region r ON r.id = a.region
                GROUP BY a.region, r.name ORDER BY revenue DESC LIMIT 5)
       SELECT region, name, revenue FROM g
       UNION ALL SELECT NULL, NULL, coalesce(sum(revenue), 0) FROM account
       WHERE region IS NULL OR region NOT IN (SELECT region FROM g WHERE region IS NOT NULL)""",
    """SELECT a.region, r.name, a.grade, count(*) FROM account a
       LEFT JOIN region r ON r.id = a.region GROUP BY a.region, r.name, a.grade
       UNION ALL SELECT a.region, r.name, NULL, count(*) FROM account a
       LEFT JOIN region r ON r.id = a.region GROUP BY a.region, r.name
       UNION ALL SELECT NULL, NULL, grade, count(*) FROM account GROUP BY grade
       UNION ALL SELECT NULL, NULL, NULL, count(*) FROM account""",
    "SELECT count(*), coalesce(sum(revenue), 0) FROM account",
]

# The same six answers, each read in one pass as the engine now does: the totals,
# "others" and the pivot's totals added up from the grouped rows (the best SQL a person
# would write), so that the ratio does not flatter the engine for reading the table once.
DASHBOARD_FOLDED = [
    """WITH g AS (SELECT grade, count(*) AS n, coalesce(sum(revenue), 0) AS s
                FROM account GROUP BY grade)
       SELECT grade, n, s FROM g UNION ALL SELECT NULL, sum(n), sum(s) FROM g""",
    """WITH g AS (SELECT r.name, count(*) AS n, sum(a.revenue) AS s, count(a.revenue) AS c
                FROM account a LEFT JOIN region r ON r.id = a.region GROUP BY r.name)
       SELECT name, n, s / nullif(c, 0) FROM g
       UNION ALL SELECT NULL, sum(n), sum(s) / nullif(sum(c), 0) FROM g""",
    """WITH g AS (SELECT CASE WHEN employees IS NULL THEN NULL WHEN employees <= 99 THEN 'small'
                            WHEN employees <= 999 THEN 'medium' ELSE 'large' END AS size,
                       count(*) AS n FROM account GROUP BY 1)
       SELECT size, n FROM g UNION ALL SELECT NULL, sum(n) FROM g""",
    """WITH g AS (SELECT a.region, r.name, coalesce(sum(a.revenue), 0) AS revenue,
                       row_number() OVER (ORDER BY coalesce(sum(a.revenue), 0) DESC) AS rn
                FROM account a LEFT JOIN region r ON r.id = a.region GROUP BY a.region, r.name)
       SELECT region, name, revenue FROM g WHERE rn <= 5
       UNION ALL SELECT NULL, NULL, coalesce(sum(revenue), 0) FROM g WHERE rn > 5""",
    """WITH g AS (SELECT a.region, r.name, a.grade, count(*) AS n FROM account a
                LEFT JOIN region r ON r.id = a.region GROUP BY a.region, r.name, a.grade)
       SELECT region, name, grade, n FROM g
       UNION ALL SELECT region, name, NULL, sum(n) FROM g GROUP BY region, name
       UNION ALL SELECT NULL, NULL, grade, sum(n) FROM g GROUP BY grade
       UNION ALL SELECT NULL, NULL, NULL, sum(n) FROM g""",
    "SELECT count(*), coalesce(sum(revenue), 0) FROM account",
]

REPORT: dict[str, Any] = {
    "entity": "account",
    "params": [{"name": "min_revenue", "type": "money", "default": 0}],
    "filter": "revenue >= params.min_revenue",
    "group_by": ["grade", "region.name"],
    "measures": [
        {"name": "accounts", "aggregate": "count"},
        {"name": "revenue", "aggregate": "sum", "field": "revenue"},
        {"name": "average", "aggregate": "avg", "field": "revenue"},
        {"name": "large", "aggregate": "count", "filter": "employees >= 1000"},
    ],
}

HAND = """
SELECT a.grade, r.name, count(*) AS accounts, coalesce(sum(a.revenue), 0) AS revenue,
       avg(a.revenue) AS average, count(CASE WHEN a.employees >= 1000 THEN 1 END) AS large
FROM account a LEFT JOIN region r ON r.id = a.region
WHERE a.revenue >= :min_revenue
GROUP BY a.grade, r.name
"""
HAND_TOTALS = (
    HAND
    + """
UNION ALL
SELECT NULL, NULL, count(*), coalesce(sum(a.revenue), 0), avg(a.revenue),
       count(CASE WHEN a.employees >= 1000 THEN 1 END)
FROM account a WHERE a.revenue >= :min_revenue
"""
)
HAND_TOTALS_FOLDED = """
WITH g AS (
  SELECT a.grade, r.name, count(*) AS accounts, coalesce(sum(a.revenue), 0) AS revenue,
         sum(a.revenue) AS revenue_s, count(a.revenue) AS revenue_n,
         count(CASE WHEN a.employees >= 1000 THEN 1 END) AS large
  FROM account a LEFT JOIN region r ON r.id = a.region
  WHERE a.revenue >= :min_revenue
  GROUP BY a.grade, r.name)
SELECT grade, name, accounts, revenue, revenue_s / revenue_n AS average, large FROM g
UNION ALL
SELECT NULL, NULL, sum(accounts), sum(revenue), sum(revenue_s) / sum(revenue_n), sum(large)
FROM g
"""

ADMIN = Actor(user_id=1, roles=frozenset({"admin"}), today=dt.date(2024, 5, 15))


def fill(conn: sa.Connection, rows: int) -> None:
    conn.execute(
        sa.text(
            f"INSERT INTO {USER_TABLE} (username, name, roles, created_at) "
            "VALUES ('u', 'U', '[]', now())"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO region (name, created_at, updated_at, version) "
            "SELECT 'Region ' || g, now(), now(), 1 FROM generate_series(1, 10) g"
        )
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO account (name, grade, revenue, employees, region, owner_id,
                                 created_at, updated_at, version)
            SELECT 'Account ' || g, (ARRAY['a', 'b', 'c', 'd'])[1 + g % 4],
                   CASE WHEN g % 50 = 0 THEN NULL
                        ELSE ((g::bigint * 7919) % 1000000) / 100.0 END,
                   (g * 31) % 5000, CASE WHEN g % 11 = 0 THEN NULL ELSE 1 + g % 10 END,
                   1, now(), now(), 1
            FROM generate_series(1, :rows) AS g
            """
        ),
        {"rows": rows},
    )


def side_by_side(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Median milliseconds of each, the two interleaved (alternating which goes first)."""
    for _ in range(3):
        ours()
        theirs()
    mine, hand = [], []
    for i in range(repeat):
        for call, times in ((ours, mine), (theirs, hand))[:: 1 if i % 2 else -1]:
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(mine), statistics.median(hand)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    name = f"heddle_bench_reports_{secrets.token_hex(4)}"
    server = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.url).set(database=name)
    engine = sa.create_engine(url, pool_size=2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.yaml"
            path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
            model = load_packages([path])
        tables = build_tables(model)
        tables.metadata.create_all(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            fill(conn, args.rows)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        print(f"filled {args.rows:,} accounts in {time.perf_counter() - started:.1f} s")
        reports = Reports(Records(engine, model, tables=tables))
        params = {"min_revenue": "2500"}
        for label, totals, hand_sql in (
            ("grouped, filtered", False, HAND),
            ("… with totals", True, HAND_TOTALS),
            ("… vs one-pass SQL", True, HAND_TOTALS_FOLDED),
        ):
            report = report_from_value(model, {**REPORT, "totals": totals})

            def ours(report: Any = report) -> Any:
                return reports.run(ADMIN, report, params, adhoc=True).rows

            def theirs(hand_sql: str = hand_sql) -> Any:
                with engine.connect() as conn:
                    result = conn.execute(sa.text(hand_sql), {"min_revenue": 2500})
                    return [dict(row) for row in result.mappings()]

            assert len(ours()) == len([r for r in theirs() if r["grade"] is not None])
            mine, hand = side_by_side(ours, theirs, args.repeat)
            print(
                f"{label:20} engine {mine:8.1f} ms   hand-written {hand:8.1f} ms   "
                f"ratio {mine / hand:.3f} (goal ≤ 1.1)"
            )

        def dashboard() -> Any:
            found = run_dashboard(reports, ADMIN, "cockpit", {})
            assert not [w for w in found["widgets"] if "error" in w], found
            return found

        def six_queries(texts: list[str]) -> Any:
            answers = []
            for text in texts:
                with engine.connect() as conn:
                    answers.append(conn.execute(sa.text(text)).all())
            return answers

        overall = dashboard()["widgets"][-1]["data"]["totals"]["accounts"]
        for label, texts in (
            ("dashboard, 6 widgets", DASHBOARD_HAND),
            ("… vs one-pass SQL", DASHBOARD_FOLDED),
        ):
            answers = six_queries(texts)
            assert overall == answers[-1][0][0] == args.rows
            top = dashboard()["widgets"][3]["data"]["rows"]
            assert sorted(r["revenue"] for r in top) == sorted(row[-1] for row in answers[3])

            def theirs(texts: list[str] = texts) -> Any:
                return six_queries(texts)

            mine, hand = side_by_side(dashboard, theirs, args.repeat)
            print(
                f"{label:20} engine {mine:8.1f} ms   hand-written {hand:8.1f} ms   "
                f"ratio {mine / hand:.3f}"
            )
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


if __name__ == "__main__":
    main()
