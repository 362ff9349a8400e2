"""Benchmark: importing accounts through ``engine.imports`` (reading the CSV, mapping by
label, converting cells, the in-file duplicate rules, the record service's validation,
defaults, autonumbers, audit, permissions and the duplicate rules against the key table,
new records written a batch at a time by ``Records.create_many``, batches of the import's
own size with their checkpoint) against a plain bulk insert of the same rows in the same
run — ``COPY`` on PostgreSQL, ``executemany`` on SQLite — as rows per second and their
ratio (the issue's goal: 0.25 or more).

    .venv/bin/python bench/bench_import.py [--url postgresql+psycopg://postgres@127.0.0.1/postgres]
                                           [--rows 2000] [--batch-size N] [--workers N]

On PostgreSQL a large import is written by a process per core (``--workers`` sets how many;
1 for one): the CPU shown for the import is this process's and its processes', and all of
PostgreSQL's processes' (the import's connections come and go with its processes).

On PostgreSQL the benchmark creates its own database (dropped afterwards); with a
``sqlite:///`` URL it uses a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import resource
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
sys.path.insert(0, str(ROOT / "apps"))

import crm_definitions  # noqa: E402

from engine import SYSTEM, Records  # noqa: E402
from engine.database import connect  # noqa: E402
from engine.imports import ImportOptions, Imports  # noqa: E402
from engine.imports._options import BATCH_SIZE  # noqa: E402
from engine.tables import USER_TABLE, build_tables  # noqa: E402
from metamodel import load_packages  # noqa: E402

GRADES = ["A类（重点客户）", "B", "C类（普通客户）", "D"]
CITIES = ["上海", "北京", "深圳", "杭州", "成都"]


def rows(count: int) -> list[list[str]]:
    header = ["客户名称", "外部编号", "客户等级", "城市", "电话", "年营业额"]
    body = [
        [f"测试客户{n:07d}科技有限公司", f"B-{n:07d}", GRADES[n % 4], CITIES[n % 5],
         f"021-{n:08d}", f"{(n % 997) * 1000 + 0.5:,.2f}"]
        for n in range(count)
    ]  # fmt: skip
    return [header, *body]


def as_csv(table: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    return out.getvalue().encode("utf-8")


def bulk(engine: sa.Engine, records: Records, table: list[list[str]]) -> float:
    """The same rows, already typed, written the plainest way the database offers."""
    accounts = records.tables.table("account")
    now = dt.datetime.now(dt.UTC)
    values = [
        {"name": r[0], "external_id": "X" + r[1], "grade": r[2][:1], "city": r[3], "phone": r[4],
         "annual_revenue": r[5].replace(",", ""), "created_at": now, "updated_at": now,
         "version": 1, "owner_id": 1, "code": f"X{n}"}
        for n, r in enumerate(table[1:])
    ]  # fmt: skip
    columns = list(values[0])
    start = time.perf_counter()
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            names = ", ".join(columns)
            with cursor.copy(f"COPY {accounts.name} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for value in values:
                    copy.write_row([value[c] for c in columns])
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            conn.execute(accounts.insert(), values)
    return time.perf_counter() - start


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command's name (state first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def server_cpu(engine: sa.Engine) -> float | None:
    """CPU seconds PostgreSQL has used — all its processes: the backends alive now, those
    that have ended (their time is their parent's, the postmaster's), the background ones
    — from ``/proc`` (the server must run on this machine), or None on SQLite or elsewhere.
    The import's processes come and go with their own backends: all of them count."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        backend = conn.scalar(sa.text("SELECT pg_backend_pid()"))
    try:
        postmaster = _stat(backend)[1]  # its parent
        fields = _stat(postmaster)
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, ended children's
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    child = _stat(entry.name)
                except OSError:
                    continue  # gone meanwhile
                if child[1] == postmaster:
                    ticks += int(child[11]) + int(child[12])
    except OSError:
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def python_cpu() -> float:
    """CPU seconds of this process and of the ended processes it waited for (an import's)."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)  # fmt: skip
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _spent(before: float | None, after: float | None) -> str:
    return f"{after - before:6.2f} s" if before is not None and after is not None else "     —"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="records per transaction (default: the import's own)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="processes writing the import (default: the import's own "
                             "choice, one per core up to four)")  # fmt: skip
    args = parser.parse_args()
    server = make_url(args.url)
    temporary = None
    if server.get_backend_name() == "postgresql":
        name = f"heddle_bench_import_{secrets.token_hex(4)}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
    else:
        temporary = tempfile.TemporaryDirectory()
        url = f"sqlite:///{temporary.name}/bench.db"
    try:
        engine = connect(url)
        model = load_packages([crm_definitions.PATH])
        tables = build_tables(model)
        tables.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(tables.metadata.tables[USER_TABLE].insert(), [{
                "username": "root", "name": "Root", "roles": ["admin"],
                "created_at": dt.datetime.now(dt.UTC)}])  # fmt: skip
        records = Records(engine, model, tables=tables)
        table = rows(args.rows)
        content = as_csv(table)
        before = server_cpu(engine)
        start, python = time.perf_counter(), python_cpu()
        run = Imports(records).run(SYSTEM, "account", content, "bench.csv",
                                   ImportOptions(batch_size=args.batch_size,
                                                 workers=args.workers))  # fmt: skip
        imported, python = time.perf_counter() - start, python_cpu() - python
        workers = run["report"]["workers"]
        import_server = _spent(before, server_cpu(engine))
        counts = run["report"]["counts"]
        assert counts["created"] == args.rows, counts
        before = server_cpu(engine)
        copied = bulk(engine, records, table)
        copy_server = _spent(before, server_cpu(engine))
        engine.dispose()
    finally:
        if temporary is None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        else:
            temporary.cleanup()
    kind = server.get_backend_name()
    plain = "COPY" if kind == "postgresql" else "executemany"
    print(f"{args.rows} accounts on {kind}, batches of {args.batch_size}, {workers} "
          f"process(es) writing; CPU: Python (this process and the import's), PostgreSQL "
          "(all its processes)")  # fmt: skip
    print(f"  import:      {imported:7.2f} s  {args.rows / imported:9.0f} rows/s"
          f"   CPU {python:6.2f} s, {import_server}")  # fmt: skip
    print(f"  {plain:<12} {copied:7.2f} s  {args.rows / copied:9.0f} rows/s"
          f"   CPU      —, {copy_server}")  # fmt: skip
    print(f"  ratio:       {copied / imported:7.3f}  (import rows/s ÷ {plain} rows/s)")


if __name__ == "__main__":
    main()
