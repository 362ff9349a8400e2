"""Imports written by several processes (engine.imports._parallel) on PostgreSQL: the same
report and the same records as one process writes, rows of the file that repeat each other
across processes included; a process that dies, and a lease that ends, lose and double
nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import crm_definitions
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from engine import Actor, BadRequest, Records
from engine.database import connect
from engine.imports import ImportOptions, Imports
from engine.imports._parallel import _Processes, ties
from engine.imports._run import Report, Runner
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import Model, load_packages

ANN = Actor(user_id=1, team_id=1, roles=frozenset({"sales_rep"}), locale="en", label="ann")
HEADER = ["Account name", "External ID", "Phone", "Grade"]


@pytest.fixture(scope="module")
def crm() -> Model:
    return load_packages([crm_definitions.PATH])


@pytest.fixture(scope="module")
def fresh(request: pytest.FixtureRequest, crm: Model) -> Iterator[Callable[..., Records]]:
    """The CRM on a new PostgreSQL database (``fresh(1)`` another), with the rep ann: made
    once for the module (a dropped database costs a checkpoint); each test writes its own
    series of accounts (:func:`accounts`)."""
    server = sa.create_engine(make_url(request.getfixturevalue("pg_url")).set(
        database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)  # fmt: skip
    made: dict[int, tuple[str, Records]] = {}

    def make(index: int = 0) -> Records:
        if index in made:
            return made[index][1]
        name = f"heddle_test_processes_{secrets.token_hex(4)}"
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(request.getfixturevalue("pg_url")).set(database=name)
        records = crm_on(connect(url.render_as_string(hide_password=False)), crm)
        made[index] = (name, records)
        return records

    yield make
    for name, records in made.values():
        records.engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def crm_on(engine: sa.Engine, crm: Model) -> Records:
    """The CRM's tables on ``engine``, with the team East and its rep ann."""
    tables = build_tables(crm)
    tables.metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(tables.metadata.tables[TEAM_TABLE].insert(),
                     [{"name": "East", "created_at": now}])  # fmt: skip
        conn.execute(tables.metadata.tables[USER_TABLE].insert(), [
            {"username": "ann", "name": "Ann Lee", "roles": ["sales_rep"], "team_id": 1,
             "created_at": now}])  # fmt: skip
    return Records(engine, crm, tables=tables)


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def accounts(count: int, series: int = 1) -> list[list[str]]:
    """``count`` accounts of a series (its own in the database), each with its own name,
    key and phone."""
    return [[f"Series{series} Co {n}", f"S{series}-{n}", f"02{series}-5550{n:04d}", "B"]
            for n in range(count)]  # fmt: skip


def tangled(series: int) -> list[list[str]]:
    """40 rows that a split into processes cuts through: repeats of one another far apart
    in the file (a name, a phone, a key, a chain of them), and broken rows."""
    rows = accounts(40, series)
    rows[35][0] = f"SERIES{series}  CO 5 有限公司"  # repeats row 5's name (another process's run)
    rows[20][2] = rows[8][2]  # repeats row 8's phone
    rows[30][1] = rows[12][1]  # row 12's external id, which is unique
    rows[22][0], rows[38][2] = rows[2][0], rows[22][2]  # a chain: name to 2, phone to 22
    rows[15][3] = "Z"  # no such grade
    rows[25][0] = ""  # no name
    rows[9][0] = rows[10][0]  # repeats within one process's run
    return [HEADER, *rows]


def outcome(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What became of each row, without the ids (two databases number them apart)."""
    found = []
    for row in report["rows"]:
        duplicate = {k: v for k, v in (row.get("duplicate") or {}).items() if k != "id"}
        candidates = duplicate.pop("candidates", None)
        errors = [(e.get("column"), e["message"]) for e in row.get("errors", [])]
        found.append((row["row"], row["status"], errors, sorted(duplicate.items()),
                      len(candidates or [])))  # fmt: skip
    return found


def stored(records: Records, series: int) -> list[tuple[Any, ...]]:
    table = records.tables.table("account")
    query = sa.select(table.c.name, table.c.external_id, table.c.phone, table.c.grade).where(
        table.c.external_id.startswith(f"S{series}-"))  # fmt: skip
    with records.engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


@pytest.mark.postgres
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"duplicates": {"same_name": "skip"}}, id="insert"),
        pytest.param(
            {"mode": "upsert", "key": "external_id", "duplicates": {"*": "merge"}}, id="upsert"
        ),
    ],
)
def test_several_processes_write_what_one_writes(
    fresh: Callable[..., Records], options: dict[str, Any]
) -> None:
    assert threading.current_thread() is threading.main_thread()  # else it would not fork
    series = 2 if "mode" in options else 1
    content = csv_bytes(tangled(series))
    reports = []
    for database, workers in enumerate((1, 3)):  # the same file in two databases
        records = fresh(database)
        opts = ImportOptions.from_json({**options, "batch_size": 4, "workers": workers})
        run = Imports(records).run(ANN, "account", content, "tangled.csv", opts)
        assert run["status"] == "done", run
        reports.append((run["report"], stored(records, series)))
    (one, one_stored), (three, three_stored) = reports
    assert (one["workers"], three["workers"]) == (1, 3)
    assert three["counts"] == one["counts"] and three["done"] == one["done"] == 40
    assert three["ranges"] == one["ranges"] == [[0, 40]]
    assert outcome(three) == outcome(one)
    assert three_stored == one_stored
    statuses = {row["row"]: row["status"] for row in one["rows"]}
    assert statuses[17] == "error" and statuses[27] == "error"  # the grade, the name
    if "mode" not in options:
        assert statuses[37] == "skipped"  # the data's row 35 repeats its row 5 (row 7)
        assert statuses[32] == "error"  # row 12's external id again


@pytest.mark.postgres
def test_a_process_that_dies_loses_and_doubles_nothing(
    fresh: Callable[..., Records], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = fresh()
    imports = Imports(records, stale_seconds=0)
    content = csv_bytes([HEADER, *accounts(40, 3)])
    real = Runner.write_batch
    parent = os.getpid()

    def dying(self: Runner, places: Any, *args: Any, **kwargs: Any) -> Report:
        if os.getpid() != parent and places[0] >= 20:
            os._exit(3)  # the second process is killed before its first commit
        return real(self, places, *args, **kwargs)

    monkeypatch.setattr(Runner, "write_batch", dying)
    options = ImportOptions(batch_size=4, workers=2)
    run_id = imports.create(ANN, "account", content, "die.csv", options)
    assert imports.execute(run_id) is True
    failed = imports.status(ANN, run_id)
    assert failed["status"] == "failed" and "without a word" in failed["error"]
    assert failed["progress"]["done"] < 40
    monkeypatch.setattr(Runner, "write_batch", real)
    imports.resume(run_id)
    done = imports.status(ANN, run_id)
    assert done["status"] == "done" and done["report"]["counts"]["created"] == 40, done
    assert done["report"]["ranges"] == [[0, 40]]
    assert [name for name, *_ in stored(records, 3)] == sorted(f"Series3 Co {n}" for n in range(40))


@pytest.mark.postgres
def test_a_lease_that_ends_stops_every_process(
    fresh: Callable[..., Records], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = fresh()
    imports = Imports(records)
    content = csv_bytes([HEADER, *accounts(60, 4)])
    real = Runner.write_batch

    def slow(self: Runner, *args: Any, **kwargs: Any) -> Report:
        time.sleep(0.05)  # a batch takes a while: the stop comes before the file's end
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "write_batch", slow)
    run_id = imports.create(ANN, "account", content, "lease.csv",
                            ImportOptions(batch_size=5, workers=2))  # fmt: skip
    turns, done = 1, 0
    while not imports.execute(run_id, seconds=0):  # each turn: a batch, then its time is up
        paused = imports.status(ANN, run_id)
        assert paused["status"] == "queued" and paused["progress"]["done"] > done
        done = paused["progress"]["done"]
        turns += 1
        if turns == 2:  # each process stopped after its batch: not the whole file
            assert done < 60 and paused["report"]["workers"] == 2
    assert turns > 2
    done = imports.status(ANN, run_id)
    assert done["status"] == "done" and done["report"]["counts"]["created"] == 60
    assert len(stored(records, 4)) == len(set(stored(records, 4))) == 60


def test_a_stop_for_a_process_that_has_ended_is_no_error() -> None:
    """When the run's time is up, the starting process asks each process still followed to
    stop; one may have ended meanwhile, its "done" not read yet (its end of the pipe
    closed): the run pauses, as for the others, rather than failing on a broken pipe."""

    class Up(Exception):
        pass

    def time_is_up(done: int) -> None:
        raise Up

    report = Report([], 20, dry_run=False, all_or_nothing=False)
    batch = report.part()
    batch.mark([0, 1])
    ended, ended_far = multiprocessing.Pipe()
    going, going_far = multiprocessing.Pipe()
    ended_far.send(batch.to_dict())
    ended_far.send("done")
    ended_far.close()  # that process is gone
    going_far.send("done")  # (it would read the stop, and end)
    processes = _Processes(None, report, [], None, None, time_is_up)  # type: ignore[arg-type]
    with pytest.raises(Up):
        processes._follow([ended, going])
    assert going_far.recv() == "stop" and report.done == 2


@pytest.mark.postgres
def test_small_files_and_sqlite_keep_one_process(
    fresh: Callable[..., Records], tmp_path: Any, crm: Model
) -> None:
    records = fresh()
    content = csv_bytes([HEADER, *accounts(7, 6)])
    run = Imports(records).run(ANN, "account", content, "small.csv",
                               ImportOptions(batch_size=4, workers=4))  # fmt: skip
    assert run["report"]["workers"] == 1  # one batch for each would be fewer than two
    found: list[dict[str, Any]] = []  # a web server's background thread: one process
    content = csv_bytes([HEADER, *[[f"Thread Co {n}", f"TC-{n}", "", "B"] for n in range(20)]])
    thread = threading.Thread(target=lambda: found.append(Imports(records).run(
        ANN, "account", content, "thread.csv", ImportOptions(batch_size=4, workers=4))))  # fmt: skip
    thread.start()
    thread.join()
    assert found[0]["report"]["workers"] == 1 and found[0]["report"]["counts"]["created"] == 20
    lite = crm_on(connect(f"sqlite:///{tmp_path / 'one.db'}"), crm)
    try:
        content = csv_bytes([HEADER, *accounts(20)])
        run = Imports(lite).run(ANN, "account", content, "lite.csv",
                                ImportOptions(batch_size=4, workers=4))  # fmt: skip
        assert run["report"]["workers"] == 1 and run["report"]["counts"]["created"] == 20
    finally:
        lite.engine.dispose()


@pytest.mark.postgres
def test_a_deployment_caps_the_processes(fresh: Callable[..., Records]) -> None:
    """``Imports(max_workers=…)`` (``HEDDLE_IMPORT_WORKERS``) caps what an import's options
    ask for, and what the machine's cores would give."""
    records = fresh()
    for series, cap, asked, written in ((7, 2, 4, 2), (8, 1, None, 1)):
        content = csv_bytes([HEADER, *accounts(20, series)])
        run = Imports(records, max_workers=cap).run(
            ANN, "account", content, f"capped{series}.csv",
            ImportOptions(batch_size=4, workers=asked),
        )  # fmt: skip
        assert run["report"]["workers"] == written, (cap, asked)
        assert run["report"]["counts"]["created"] == 20


def test_workers_must_be_a_sensible_number() -> None:
    for bad in (0, 9, "2", True, 1.5):
        with pytest.raises(BadRequest, match="workers"):
            ImportOptions.from_json({"workers": bad})
    assert ImportOptions.from_json({"workers": None}).workers is None
    assert ImportOptions.from_json({"workers": 3}).workers == 3


def test_groups_tied_across_processes_are_left_to_one() -> None:
    marks = [
        [(0, [("rule", "name", "a")]), (1, [("rule", "name", "b")]), (2, [])],
        [(3, [("rule", "name", "a")]), (4, [("rule", "phone", "1")])],
        [(5, [("rule", "phone", "1"), ("key", "K")]), (6, [("key", "K")]),
         (7, [("rule", "name", "b")])],
    ]  # fmt: skip
    # 0-3 share a name; 4-5-6 a phone then a key; 1-7 a name: each across processes
    tied, linked = ties(marks)
    assert tied == linked == {0, 3, 4, 5, 6, 1, 7}
    alone = [[(0, [("rule", "name", "a")]), (1, [("rule", "name", "a")])], [(2, [("key", 1)])]]
    assert ties(alone) == (set(), {0, 1})  # a repeat within one process stays there


def test_a_report_knows_which_groups_are_written() -> None:
    report = Report([], 10, False, False)
    assert report.pending() == list(range(10))
    part = report.part()
    part.mark([4, 5, 7])
    report.merge(part)
    other = report.part()
    other.mark([6, 0])
    report.merge(other)
    assert report.ranges == [[0, 1], [4, 8]] and report.done == 5
    assert report.pending() == [1, 2, 3, 8, 9]
    again = Report.from_dict(report.to_dict())
    assert again.pending() == [1, 2, 3, 8, 9]
    legacy = Report.from_dict({"total": 5, "done": 3})  # stored before the ranges
    assert legacy.pending() == [3, 4]


@pytest.mark.postgres
def test_processes_write_the_audit_a_create_writes(fresh: Callable[..., Records]) -> None:
    """Each imported record's audit row holds what one create's would: every value set,
    as JSON (decimals as text, times in ISO form), at the batch's moment."""
    records = fresh()
    rows = [[*row[:3], "A"] for row in accounts(12, 5)]
    rows[3] = [*rows[3][:3], "C"]
    content = csv_bytes([[*HEADER, "Annual revenue"], *[[*r, f"{n},000.5"] for n, r in
                                                         enumerate(rows)]])  # fmt: skip
    run = Imports(records).run(ANN, "account", content, "audit.csv",
                               ImportOptions(batch_size=3, workers=2))  # fmt: skip
    assert run["report"]["workers"] == 2 and run["report"]["counts"]["created"] == 12
    table, audit = records.tables.table("account"), records.audit
    with records.engine.connect() as conn:
        query = sa.select(table).where(table.c.external_id.startswith("S5-"))
        stored = {r["id"]: dict(r) for r in conn.execute(query).mappings()}
        entries = conn.execute(sa.select(audit.table).where(
            audit.table.c.entity == "account", audit.table.c.record_id.in_(stored)
        )).mappings().all()  # fmt: skip
    assert len(entries) == 12
    account = records.model.entity("account")
    for entry in entries:
        row = stored[entry["record_id"]]
        assert entry["changes"] == audit.changes(account, None, row)
        assert entry["changes"]["annual_revenue"][1].endswith(".50")  # the column's places
        assert (entry["action"], entry["version"], entry["actor_id"]) == ("create", 1, 1)
        assert entry["at"] == row["created_at"]
