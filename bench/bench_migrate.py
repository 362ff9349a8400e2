"""Benchmark: add a field to a 1,000,000-row table with ``engine.migrate`` (PostgreSQL).

Each run adds one new field to ``account`` through ``migrate`` — plan under the advisory
lock (reflect the database, load the last snapshot, compare), ALTER TABLE, the search
indexes, the history row, commit — and, as the baseline in the same run, adds the same
column to an identical table (``CREATE TABLE … (LIKE account INCLUDING ALL)`` with the same
rows) with a plain ``ALTER TABLE … ADD COLUMN`` through SQLAlchemy. Two cases: a field
without a default, and one with a constant default that existing rows get (PostgreSQL
stores it without rewriting the table). A reader thread fetches single rows by id all
along; its slowest read during each call shows whether the table stopped answering.
Goal (DESIGN.md): under a second, with no downtime.

    .venv/bin/python bench/bench_migrate.py [--rows 1000000] [--repeat 5] [--url URL]

The bench creates its own database on the server at --url and drops it at the end.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import migrate, plan  # noqa: E402
from engine.search import ensure_search_indexes  # noqa: E402
from engine.tables import build_tables  # noqa: E402
from metamodel import Model, load_packages  # noqa: E402

PACKAGE = """\
kind: package
name: bench
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true, max_length: 200}
  code: {type: string, max_length: 32, unique: true}
  grade: {type: choice, options: [a, b, c, d], index: true}
  revenue: {type: money}
  employees: {type: integer}
  founded: {type: date}
  notes: {type: text}
"""


def model_with(extra: list[str], folder: Path) -> Model:
    path = folder / f"bench_{len(extra)}.yaml"
    path.write_text(PACKAGE + "".join(f"  {line}\n" for line in extra), encoding="utf-8")
    return load_packages([path])


def fill(engine: Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO account (name, code, grade, revenue, employees, founded, notes,
                                     created_at, updated_at, version)
                SELECT 'Account ' || g, 'AC-' || g, (ARRAY['a', 'b', 'c', 'd'])[1 + g % 4],
                       ((g::bigint * 7919) % 1000000) / 100.0, (g * 31) % 5000,
                       DATE '2000-01-01' + (g * 13) % 9000,
                       CASE WHEN g % 7 = 0 THEN 'key account' END,
                       now(), now(), 1
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"rows": rows},
        )
        conn.execute(sa.text("CREATE TABLE baseline (LIKE account INCLUDING ALL)"))
        conn.execute(sa.text("INSERT INTO baseline SELECT * FROM account"))
        ensure_search_indexes(conn, build_tables(model_with([], Path(tempfile.mkdtemp()))))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


class Reader:
    """Reads one row by id, again and again; remembers the slowest read in a window."""

    def __init__(self, engine: Engine, table: str, rows: int) -> None:
        self.engine, self.rows = engine, rows
        self.query = sa.text(f"SELECT * FROM {table} WHERE id = :id")
        self.slowest = 0.0
        self.reads = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                start = time.perf_counter()
                conn.execute(self.query, {"id": random.randint(1, self.rows)}).all()
                conn.rollback()
                self.slowest = max(self.slowest, time.perf_counter() - start)
                self.reads += 1

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.slowest, self.reads = 0.0, 0
        time.sleep(0.05)
        self.slowest = 0.0
        yield
        time.sleep(0.05)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


#: (title, the baseline's column SQL, the field's definition, field name prefix)
CASES = [
    ("no default", "VARCHAR(255)", "{type: string}", "extra"),
    ("constant default", "VARCHAR(63) DEFAULT 'a'", "{type: choice, options: [a, b], default: a}",
     "flag"),
]  # fmt: skip


class Bench:
    def __init__(self, engine: Engine, folder: Path, rows: int, repeat: int) -> None:
        self.engine, self.folder, self.repeat = engine, folder, repeat
        self.extra: list[str] = []
        self.plan_ms: list[float] = []
        self.readers = {t: Reader(engine, t, rows) for t in ("account", "baseline")}

    def alter(self, field: str, column_sql: str) -> None:
        """The baseline: a plain ALTER TABLE through SQLAlchemy."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE baseline ADD COLUMN {field} {column_sql}"))
            if "DEFAULT" in column_sql:
                conn.execute(sa.text(f"ALTER TABLE baseline ALTER COLUMN {field} DROP DEFAULT"))

    def case(self, title: str, column_sql: str, spec: str, prefix: str) -> str:
        ours: list[float] = []
        theirs: list[float] = []
        blocked_ours = blocked_theirs = 0.0
        for run in range(self.repeat):
            field = f"{prefix}_{run}"
            self.extra.append(f"{field}: {spec}")
            model = model_with(self.extra, self.folder)
            self.plan_ms.append(timed(partial(plan, self.engine, model)))
            with self.readers["baseline"].watching():
                theirs.append(timed(partial(self.alter, field, column_sql)))
            blocked_theirs = max(blocked_theirs, self.readers["baseline"].slowest)
            with self.readers["account"].watching():
                ours.append(timed(partial(migrate, self.engine, model, actor="bench")))
            blocked_ours = max(blocked_ours, self.readers["account"].slowest)
        median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
        return (
            f"| {title} | {median_ours:.1f} | {max(ours):.1f} | {median_theirs:.1f} "
            f"| {median_ours / median_theirs:.1f}× "
            f"| {blocked_ours * 1000:.1f} / {blocked_theirs * 1000:.1f} |"
        )

    def run(self) -> list[str]:
        for reader in self.readers.values():
            reader.thread.start()
        lines = [
            "| new field | migrate median ms | max ms | plain ALTER median ms | ratio (medians)"
            " | slowest concurrent read during migrate / ALTER, ms |",
            "|---|---|---|---|---|---|",
        ]
        try:
            lines += [self.case(*case) for case in CASES]
        finally:
            for reader in self.readers.values():
                reader.stop.set()
                reader.thread.join()
        with self.engine.connect() as conn:
            kept = conn.scalar(sa.text("SELECT count(*) FROM account WHERE flag_0 = 'a'"))
        lines += [
            "",
            f"plan() alone (reflect, snapshot, compare; read-only): median"
            f" {statistics.median(self.plan_ms):.1f} ms; rows given the default: {kept:,}",
        ]
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server; its database is only used to create and drop the bench's",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="fields added per case")
    args = parser.parse_args()

    server = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"heddle_bench_migrate_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(make_url(args.url).set(database=name), pool_size=4)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            started = time.perf_counter()
            migrate(engine, model_with([], folder), actor="bench")
            fill(engine, args.rows)
            seconds = time.perf_counter() - started
            print(f"{args.rows:,} accounts (and the baseline copy) in {seconds:.0f} s")
            with engine.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            print(f"PostgreSQL {version}, Python {sys.version.split()[0]},", end=" ")
            print(f"{args.repeat} fields added per case")
            print()
            print("\n".join(Bench(engine, folder, args.rows, args.repeat).run()))
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


if __name__ == "__main__":
    main()
