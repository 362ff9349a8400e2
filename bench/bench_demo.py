"""Benchmark: how long ``heddle demo`` takes to load the demo company.

Loads ``--scale`` (1: about 1,000 accounts and 24,500 records) into a new SQLite file and
a new PostgreSQL database on the server (created and dropped here), each migrated to the
CRM first, and prints the seconds, the records written and records per second. Goal:
scale 1 under a minute on either database::

    .venv/bin/python bench/bench_demo.py [--scale 1] [--url postgresql+psycopg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT / "apps"))

import crm_definitions  # noqa: E402
from heddle.accounts import Accounts  # noqa: E402
from heddle.demo import load_demo  # noqa: E402

from engine import build_tables, connect, migrate  # noqa: E402
from metamodel import load_packages  # noqa: E402


def measure(url: str, scale: float, label: str) -> None:
    model = load_packages([crm_definitions.PATH])
    engine = connect(url)
    try:
        migrate(engine, model)
        tables = build_tables(model)
        started = time.perf_counter()
        result = load_demo(engine, tables, Accounts(tables), scale=scale, seed=1)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    rows = sum(result.counts.values())
    print(
        f"{label:<10} scale {scale:g}: {result.accounts:,} accounts, {rows:,} records"
        f" in {seconds:.1f} s ({rows / seconds:,.0f} records/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{Path(folder) / 'demo.db'}", args.scale, "SQLite")
    if args.skip_postgres:
        return
    server = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"heddle_bench_demo_{secrets.token_hex(4)}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
        measure(url, args.scale, "PostgreSQL")
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


if __name__ == "__main__":
    main()
