"""Migrations on SQLite and PostgreSQL: plans, data checks, archives, renames, rollback,
locking. Rows are written and read with SQLAlchemy Core on the built tables."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
import sqlalchemy as sa
from alembic.ddl.impl import DefaultImpl
from sqlalchemy.engine import Engine

from engine import MigrationRefused, applied_model, migrate, plan
from engine.audit import Audit
from engine.database import connect
from engine.migrations import LOCK_KEY, restore
from engine.tables import (
    ARCHIVE_TABLE,
    AUDIT_TABLE,
    HISTORY_TABLE,
    TEAM_TABLE,
    USER_TABLE,
    build_tables,
)
from metamodel import Model, load_packages

NOW = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
_counter = itertools.count()


def package(tmp_path: Path, body: str) -> Model:
    """A one-file package ``t`` with these documents (each call its own file)."""
    path = tmp_path / f"package_{next(_counter)}.yaml"
    path.write_text("kind: package\nname: t\n---\n" + body, encoding="utf-8")
    return load_packages([path])


def insert(engine: Engine, model: Model, entity: str, rows: Sequence[Mapping[str, Any]]) -> None:
    table = build_tables(model).table(entity)
    with engine.begin() as conn:
        for row in rows:
            conn.execute(table.insert().values({"created_at": NOW, "updated_at": NOW, **row}))


def rows(engine: Engine, model: Model, entity: str, *columns: str) -> list[tuple[Any, ...]]:
    table = build_tables(model).table(entity)
    with engine.connect() as conn:
        query = sa.select(table.c.id, *(table.c[c] for c in columns)).order_by(table.c.id)
        return [tuple(row) for row in conn.execute(query)]


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def btree_indexes(engine: Engine, table: str) -> set[str]:
    """Index names, without the trigram search indexes engine.query adds on PostgreSQL."""
    return {
        str(ix["name"])
        for ix in sa.inspect(engine).get_indexes(table)
        if not str(ix["name"]).endswith("_trgm")
    }


def history_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(f"SELECT count(*) FROM {HISTORY_TABLE}")) or 0)


def archive(engine: Engine, model: Model) -> list[tuple[Any, ...]]:
    table = build_tables(model).metadata.tables[ARCHIVE_TABLE]
    with engine.connect() as conn:
        query = sa.select(
            table.c.source_table, table.c.source_column, table.c.record_id, table.c.data
        ).order_by(table.c.id)
        return [tuple(row) for row in conn.execute(query)]


def kinds(result: Any) -> list[tuple[str, str, str | None]]:
    return [(op.kind, op.table, op.column) for op in result.operations]


def refused(engine: Engine, model: Model, **options: Any) -> str:
    with pytest.raises(MigrationRefused) as caught:
        migrate(engine, model, **options)
    return caught.value.message


# --- a new database --------------------------------------------------------------------

SMALL = """\
kind: entity
name: account
fields:
  name: {type: string, max_length: 40}
  code: {type: string, max_length: 40}
---
kind: entity
name: contact
fields:
  name: {type: string}
  account: {type: reference, to: account, on_delete: cascade}
"""


def test_a_new_database_gets_system_tables_first(db_engine: Engine, tmp_path: Path) -> None:
    model = package(tmp_path, SMALL)
    result = plan(db_engine, model)
    assert result.previous_hash is None and not result.destructive and not result.empty
    tables = [op.table for op in result.operations]
    assert all(op.kind == "create_table" for op in result.operations)
    assert tables[-2:] == ["account", "contact"]
    assert set(tables[:-2]) >= {HISTORY_TABLE, ARCHIVE_TABLE, USER_TABLE, TEAM_TABLE}
    assert any("CREATE TABLE account" in sql for op in result.operations for sql in op.sql)

    applied = migrate(db_engine, model, actor="ann")
    assert applied.operations == result.operations
    assert {"account", "contact", HISTORY_TABLE} <= set(sa.inspect(db_engine).get_table_names())
    again = applied_model(db_engine)
    assert again is not None and again.hash == model.hash
    with db_engine.connect() as conn:
        history = build_tables(model).metadata.tables[HISTORY_TABLE]
        row = conn.execute(sa.select(history)).one()
    assert row.hash == model.hash and row.actor == "ann"
    assert json.loads(row.model)["hash"] == model.hash
    assert [op["kind"] for op in row.operations] == [op.kind for op in result.operations]


def test_migrating_twice_is_a_no_op(db_engine: Engine, tmp_path: Path) -> None:
    model = package(tmp_path, SMALL)
    migrate(db_engine, model)
    second = plan(db_engine, model)
    assert second.empty and second.operations == () and second.previous_hash == model.hash
    assert str(second) == f"Nothing to do: the database is at model {model.hash[:12]}."
    assert migrate(db_engine, model).empty
    assert history_count(db_engine) == 1


def test_a_label_change_is_recorded_without_operations(db_engine: Engine, tmp_path: Path) -> None:
    model = package(tmp_path, SMALL)
    migrate(db_engine, model)
    relabelled = package(
        tmp_path, SMALL.replace("name: {type: string}", "name: {type: string, label: Full name}")
    )
    result = plan(db_engine, relabelled)
    assert result.operations == () and not result.empty
    assert "no table changes" in str(result)
    migrate(db_engine, relabelled)
    assert history_count(db_engine) == 2
    assert plan(db_engine, relabelled).empty


def test_tables_made_by_create_all_need_nothing(db_engine: Engine) -> None:
    """Reflected types, indexes and constraints compare equal to the built ones."""
    model = load_packages([crm_definitions.PATH])
    build_tables(model).metadata.create_all(db_engine)
    result = plan(db_engine, model)
    assert result.operations == () and result.refusals == ()


def test_the_crm_package_migrates_from_empty(db_engine: Engine) -> None:
    model = load_packages([crm_definitions.PATH])
    result = migrate(db_engine, model)
    assert len(result.operations) >= len(model.entities)
    live = set(sa.inspect(db_engine).get_table_names())
    assert {entity.table for entity in model} <= live
    assert plan(db_engine, model).empty


# --- every field type, with data, through its life ----------------------------------

EVERY_TYPE = """\
kind: entity
name: other
fields:
  label: {type: string}
---
kind: entity
name: part
child: true
fields:
  thing: {type: reference, to: thing, on_delete: cascade}
  qty: {type: integer}
---
kind: entity
name: thing
ownable: true
fields:
  title: {type: string, max_length: 40}
  notes: {type: text}
  count: {type: integer}
  ratio: {type: decimal, precision: 12, scale: 3}
  amount: {type: money}
  rate: {type: percent}
  active: {type: boolean}
  day: {type: date}
  moment: {type: datetime}
  grade: {type: choice, options: [a, b]}
  tags: {type: multichoice, options: [x, y, z]}
  other: {type: reference, to: other, on_delete: set_null}
  mail: {type: email}
  tel: {type: phone}
  link: {type: url}
  doc: {type: file}
  docs: {type: file, multiple: true}
  number: {type: autonumber, format: "T-{seq:04}"}
  assignee: {type: user}
  crew: {type: team}
  watchers: {type: user, multiple: true}
  total: {type: rollup, of: part, via: thing, aggregate: sum, field: qty}
  doubled: {type: formula, returns: decimal, expression: "count * 2"}
  parts: {type: children, entity: part}
"""

VALUES: dict[str, Any] = {
    "title": "Acme",
    "notes": "A long note\nover two lines",
    "count": 42,
    "ratio": Decimal("1.234"),
    "amount": Decimal("1999.99"),
    "rate": Decimal("12.50"),
    "active": True,
    "day": dt.date(2024, 1, 5),
    "moment": dt.datetime(2024, 1, 5, 9, 30, tzinfo=dt.UTC),
    "grade": "a",
    "tags": ["x", "z"],
    "other": 1,
    "mail": "ann@example.com",
    "tel": "+86 10 1234 5678",
    "link": "https://example.com",
    "doc": 7,  # attachment ids
    "docs": [7, 8],
    "number": "T-0001",
    "assignee": 1,
    "crew": 1,
    "watchers": [1],
    "total": Decimal("5.00"),
}
STORED = list(VALUES)
CHANGED = (  # labels, options, longer strings, wider numbers, phone → text
    EVERY_TYPE.replace(
        "title: {type: string, max_length: 40}",
        "title: {type: string, max_length: 80, label: Name}",
    )
    .replace("options: [a, b]", "options: [a, b, c]")
    .replace("options: [x, y, z]", "options: [x, y, z, w]")
    .replace("tel: {type: phone}", "tel: {type: text}")
    .replace("count: {type: integer}", "count: {type: decimal, precision: 14, scale: 2}")
    .replace("scale: 3}", "scale: 5}")
)


def _fill_every_type(engine: Engine, model: Model) -> None:
    tables = build_tables(model)
    with engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "East", "created_at": NOW}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [{"username": "ann", "roles": ["admin"], "team_id": 1, "created_at": NOW}],
        )
    insert(engine, model, "other", [{"label": "O"}])
    insert(engine, model, "thing", [VALUES, {"title": "Empty"}])
    insert(engine, model, "part", [{"thing": 1, "qty": 2}, {"thing": 1, "qty": 3}])


def test_every_field_type_created_filled_changed_renamed_dropped(
    db_engine: Engine, tmp_path: Path
) -> None:
    # created and filled
    first = package(tmp_path, EVERY_TYPE)
    migrate(db_engine, first)
    assert "doubled" not in columns(db_engine, "thing") and "parts" not in columns(
        db_engine, "thing"
    )
    _fill_every_type(db_engine, first)
    assert rows(db_engine, first, "thing", *STORED)[0] == (1, *VALUES.values())

    # changed: labels, options, longer strings, wider numbers, string → text
    changed = package(tmp_path, CHANGED)
    result = plan(db_engine, changed)
    assert result.refusals == () and not result.destructive
    altered = {op.column for op in result.operations if op.kind == "alter_type"}
    assert altered == {"title", "tel", "count", "ratio"}
    migrate(db_engine, changed)
    assert rows(db_engine, changed, "thing", *STORED)[0] == (1, *VALUES.values())
    assert plan(db_engine, changed).empty

    # renamed: every stored field gets a new name, data kept
    renamed_body = CHANGED.replace('"count * 2"', '"count_2 * 2"')
    for name in STORED:
        renamed_body = renamed_body.replace(
            f"\n  {name}: {{", f"\n  {name}_2: {{renamed_from: {name}, "
        )
    renamed = package(tmp_path, renamed_body)
    result = plan(db_engine, renamed)
    assert {op.column for op in result.operations if op.kind == "rename_column"} == {
        f"{n}_2" for n in STORED
    }
    assert not result.destructive and result.refusals == ()
    migrate(db_engine, renamed)
    assert rows(db_engine, renamed, "thing", *(f"{n}_2" for n in STORED))[0] == (
        1,
        *VALUES.values(),
    )
    assert not set(STORED) & columns(db_engine, "thing")
    assert plan(db_engine, renamed).empty

    # dropped: refused without allow_destructive, then archived
    dropped = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  title_2: {type: string, max_length: 80}\n"
        "---\nkind: entity\nname: other\nfields:\n  label: {type: string}\n",
    )
    result = plan(db_engine, dropped)
    assert result.destructive
    assert ("drop_table", "part", None) in kinds(result)
    message = refused(db_engine, dropped)
    assert "would drop data" in message and "drop column thing.notes_2" in message
    assert "--allow-destructive" in message
    assert columns(db_engine, "thing") >= {f"{n}_2" for n in STORED}  # nothing changed
    migrate(db_engine, dropped, allow_destructive=True)
    assert columns(db_engine, "thing") == {
        "id",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "version",
        "title_2",
    }
    assert "part" not in sa.inspect(db_engine).get_table_names()
    assert rows(db_engine, dropped, "thing", "title_2") == [(1, "Acme"), (2, "Empty")]

    saved = archive(db_engine, dropped)
    by_column: dict[str | None, list[tuple[Any, Any]]] = {}
    for table, column, record, data in saved:
        if table == "thing":
            by_column.setdefault(column, []).append((record, data))
    assert set(by_column) == {f"{n}_2" for n in STORED if n != "title"}
    for name in STORED:
        if name not in ("title", "total"):  # the rollup's column defaults to 0 in every row
            assert [(record, list(data)) for record, data in by_column[f"{name}_2"]] == [
                (1, [f"{name}_2"])
            ]
    assert by_column["tags_2"][0][1] == {"tags_2": ["x", "z"]}
    assert by_column["count_2"][0][1]["count_2"] == 42
    assert by_column["notes_2"][0][1] == {"notes_2": VALUES["notes"]}
    assert by_column["active_2"][0][1]["active_2"] in (True, 1)
    assert str(by_column["day_2"][0][1]["day_2"]).startswith("2024-01-05")
    assert [(r, d["total_2"]) for r, d in by_column["total_2"]] == [(1, 5), (2, 0)]
    parts = [(record, data) for table, column, record, data in saved if table == "part"]
    assert [record for record, _ in parts] == [1, 2]
    assert parts[1][1]["qty"] == 3 and parts[1][1]["thing"] == 1
    assert {table for table, *_ in saved} == {"thing", "part"}


# --- archives and restoring -----------------------------------------------------------

ARCHIVED = """\
kind: entity
name: account
fields:
  name: {type: string}
  fax: {type: string}
  since: {type: date}
  limit: {type: money}
  tags: {type: multichoice, options: [vip, new]}
---
kind: entity
name: visit
fields:
  account: {type: reference, to: account, on_delete: cascade}
  note: {type: text}
  at: {type: datetime}
"""


def test_a_dropped_column_and_table_can_be_restored(db_engine: Engine, tmp_path: Path) -> None:
    full = package(tmp_path, ARCHIVED)
    migrate(db_engine, full)
    insert(
        db_engine,
        full,
        "account",
        [
            {
                "name": "A",
                "fax": "010-1",
                "since": dt.date(2020, 2, 29),
                "limit": Decimal("10.50"),
                "tags": ["vip"],
            },
            {"name": "B"},
            {"name": "C", "fax": "010-3", "limit": Decimal("0.01")},
        ],
    )
    insert(db_engine, full, "visit", [{"account": 1, "note": "hi", "at": NOW}, {"account": 3}])
    slim = package(tmp_path, "kind: entity\nname: account\nfields:\n  name: {type: string}\n")
    result = migrate(db_engine, slim, allow_destructive=True)
    drops = [op.description for op in result.operations if op.destructive]
    assert "drop column account.fax (2 values archived first)" in drops
    assert "drop table visit (2 rows archived first)" in drops
    saved = archive(db_engine, slim)
    assert [(t, c, r) for t, c, r, _ in saved if c == "fax"] == [
        ("account", "fax", 1),
        ("account", "fax", 3),
    ]
    with db_engine.connect() as conn:
        hashes = set(conn.scalars(sa.text(f"SELECT DISTINCT model_hash FROM {ARCHIVE_TABLE}")))
    assert hashes == {full.hash}  # the model the data belonged to

    # the fields and the entity come back: migrate, then restore from the archive
    migrate(db_engine, full)
    assert rows(db_engine, full, "account", "fax") == [(1, None), (2, None), (3, None)]
    for column in ("fax", "since", "limit", "tags"):
        restore(db_engine, full, "account", column)
    assert restore(db_engine, full, "visit") == 2
    assert rows(db_engine, full, "account", "fax", "since", "limit", "tags") == [
        (1, "010-1", dt.date(2020, 2, 29), Decimal("10.50"), ["vip"]),
        (2, None, None, None, None),
        (3, "010-3", None, Decimal("0.01"), None),
    ]
    assert rows(db_engine, full, "visit", "account", "note", "at") == [
        (1, 1, "hi", NOW),
        (2, 3, None, None),
    ]
    insert(db_engine, full, "visit", [{"account": 2}])  # ids continue after the restored ones
    assert [r[0] for r in rows(db_engine, full, "visit")] == [1, 2, 3]


def test_archived_times_are_iso_8601_with_the_zone(db_engine: Engine, tmp_path: Path) -> None:
    full = package(tmp_path, ARCHIVED)
    migrate(db_engine, full)
    insert(db_engine, full, "account", [{"name": "A"}])
    insert(db_engine, full, "visit", [{"account": 1, "at": NOW}])
    slim = package(tmp_path, "kind: entity\nname: account\nfields:\n  name: {type: string}\n")
    migrate(db_engine, slim, allow_destructive=True)
    (data,) = [d for t, _, _, d in archive(db_engine, slim) if t == "visit"]
    data = json.loads(data) if isinstance(data, str) else data
    for name in ("at", "created_at", "updated_at"):
        assert dt.datetime.fromisoformat(data[name]) == NOW, name
        assert data[name].startswith("2024-03-01T09:30:00") and data[name].endswith("+00:00")


# --- renames --------------------------------------------------------------------------

RENAMED = ARCHIVED.replace(
    "  fax: {type: string}\n", "  fax_number: {type: string, renamed_from: fx}\n"
)


def test_renamed_from_naming_no_column_is_refused(db_engine: Engine, tmp_path: Path) -> None:
    migrate(db_engine, package(tmp_path, ARCHIVED))
    typo = package(tmp_path, RENAMED)
    result = plan(db_engine, typo)
    expected = (
        "account.fax_number: renamed_from 'fx' names no column of table account"
        " (did you mean 'fax'?); correct renamed_from, or remove it to add fax_number empty"
    )
    assert result.refusals == (expected,)
    with pytest.raises(MigrationRefused, match="did you mean 'fax'"):
        migrate(db_engine, typo, allow_destructive=True)
    assert "fax" in columns(db_engine, "account")
    fixed = package(tmp_path, RENAMED.replace("renamed_from: fx", "renamed_from: fax"))
    assert kinds(plan(db_engine, fixed)) == [("rename_column", "account", "fax_number")]


def test_renamed_from_a_field_this_database_never_had_adds_it(
    db_engine: Engine, tmp_path: Path
) -> None:
    migrate(db_engine, package(tmp_path, ARCHIVED))
    grown = package(
        tmp_path,
        ARCHIVED.replace(
            "  fax: {type: string}\n",
            "  fax: {type: string}\n  mobile: {type: phone, renamed_from: cell}\n",
        ),
    )
    result = plan(db_engine, grown)
    assert kinds(result) == [("add_column", "account", "mobile")] and not result.refusals
    assert result.notes == (
        "account.mobile: renamed_from 'cell' names no column of table account;"
        " mobile is added as a new column",
    )


def test_audit_history_follows_a_renamed_field(db_engine: Engine, tmp_path: Path) -> None:
    old = package(tmp_path, ARCHIVED)
    migrate(db_engine, old)
    insert(db_engine, old, "account", [{"name": "A", "fax": "2"}])
    audit = build_tables(old).metadata.tables[AUDIT_TABLE]
    with db_engine.begin() as conn:
        for version, changes in enumerate(
            [{"name": [None, "A"], "fax": [None, "1"]}, {"fax": ["1", "2"]}], start=1
        ):
            conn.execute(
                audit.insert().values(
                    entity="account", record_id=1, action="create" if version == 1 else "update",
                    at=NOW + dt.timedelta(minutes=version), version=version, changes=changes,
                )
            )  # fmt: skip
        conn.execute(
            audit.insert().values(
                entity="visit", record_id=1, action="update", at=NOW, version=2,
                changes={"fax": ["x", "y"]},
            )
        )  # fmt: skip
    new = package(tmp_path, RENAMED.replace("renamed_from: fx", "renamed_from: fax"))
    result = migrate(db_engine, new)
    assert result.operations[0].description == (
        "rename column account.fax to fax_number (renamed_from keeps its data;"
        " its audit history follows)"
    )
    history = Audit(build_tables(new))
    with db_engine.connect() as conn:
        changes = [e["changes"] for e in history.history(conn, "account", 1)]
        assert changes == [{"name": [None, "A"], "fax_number": [None, "1"]},
                           {"fax_number": ["1", "2"]}]  # fmt: skip
        assert history.history(conn, "visit", 1)[0]["changes"] == {"fax": ["x", "y"]}
        at = NOW + dt.timedelta(minutes=1, seconds=30)
        state = history.as_of(conn, new.entity("account"), 1, at)
    assert state is not None and state["fax_number"] == "1"


# --- refused and accepted type changes -------------------------------------------------

REFUSED = [
    pytest.param(
        "{type: string, max_length: 40}",
        "{type: string, max_length: 5}",
        ["short", "much too long", None, "also too long"],
        "thing.f: 2 rows are longer than 5 characters (ids 2, 4)",
        id="shorter-string",
    ),
    pytest.param(
        "{type: text}",
        "{type: integer}",
        ["12", " 7 ", "twelve", "1.5"],
        "thing.f: 2 rows do not hold a whole number in range (ids 3, 4)",
        id="text-to-integer",
    ),
    pytest.param(
        "{type: text}",
        "{type: date}",
        ["2024-01-05", "05/01/2024"],
        "thing.f: 1 row does not hold a date written YYYY-MM-DD (id 2)",
        id="text-to-date",
    ),
    pytest.param(
        "{type: decimal, precision: 12, scale: 3}",
        "{type: decimal, precision: 12, scale: 1}",
        [Decimal("1.5"), Decimal("1.25"), Decimal("2.125"), Decimal("3")],
        "thing.f: 2 rows have more than 1 decimal and would be rounded (ids 2, 3)",
        id="decimal-scale",
    ),
    pytest.param(
        "{type: decimal, precision: 12, scale: 2}",
        "{type: decimal, precision: 5, scale: 2}",
        [Decimal("999.99"), Decimal("1000.00")],
        "thing.f: 1 row is too large for decimal(5,2) (id 2)",
        id="decimal-precision",
    ),
    pytest.param(
        "{type: decimal, precision: 12, scale: 2}",
        "{type: integer}",
        [Decimal("3.00"), Decimal("3.50")],
        "thing.f: 1 row has decimals that would be lost (id 2)",
        id="decimal-to-integer",
    ),
    pytest.param(
        "{type: datetime}",
        "{type: date}",
        [dt.datetime(2024, 1, 5, tzinfo=dt.UTC), dt.datetime(2024, 1, 5, 10, tzinfo=dt.UTC)],
        "thing.f: 1 row has a time of day that would be lost (id 2)",
        id="datetime-to-date",
    ),
    pytest.param(
        "{type: choice, options: [a, b, c]}",
        "{type: choice, options: [a]}",
        ["a", "b", "c", "b"],
        "thing.f: 3 rows use options 'b', 'c', which the definitions remove (ids 2, 3, 4)",
        id="choice-option-removed",
    ),
    pytest.param(
        "{type: multichoice, options: [a, b]}",
        "{type: multichoice, options: [a]}",
        [["a"], ["a", "b"]],
        "thing.f: 1 row uses option 'b', which the definitions remove (id 2)",
        id="multichoice-option-removed",
    ),
    pytest.param(
        "{type: string}",
        "{type: choice, options: [lead, won]}",
        ["lead", "maybe"],
        "thing.f: 1 row holds values that are not options ('maybe') (id 2)",
        id="string-to-choice",
    ),
    pytest.param(
        "{type: boolean}",
        "{type: date}",
        [True],
        "thing.f: cannot change boolean to date in place",
        id="unsupported",
    ),
]


@pytest.mark.parametrize(("before", "after", "values", "message"), REFUSED)
def test_a_change_that_would_break_data_is_refused(
    db_engine: Engine, tmp_path: Path, before: str, after: str, values: list[Any], message: str
) -> None:
    old = package(tmp_path, f"kind: entity\nname: thing\nfields:\n  f: {before}\n")
    migrate(db_engine, old)
    insert(db_engine, old, "thing", [{"f": v} for v in values])
    new = package(tmp_path, f"kind: entity\nname: thing\nfields:\n  f: {after}\n")
    result = plan(db_engine, new)
    assert len(result.refusals) == 1 and result.refusals[0].startswith(message)
    assert message in str(result)
    assert message in refused(db_engine, new)
    assert rows(db_engine, old, "thing", "f") == [(i, v) for i, v in enumerate(values, 1)]
    assert history_count(db_engine) == 1


ACCEPTED = [
    pytest.param(
        "{type: text}", "{type: integer}", [" 12", "-7", None], [12, -7, None], id="text-to-integer"
    ),
    pytest.param(
        "{type: string}",
        "{type: decimal, precision: 10, scale: 2}",
        ["1.5", "20"],
        [Decimal("1.50"), Decimal("20.00")],
        id="string-to-decimal",
    ),
    pytest.param(
        "{type: string}",
        "{type: date}",
        ["2024-02-29"],
        [dt.date(2024, 2, 29)],
        id="string-to-date",
    ),
    pytest.param(
        "{type: date}",
        "{type: datetime}",
        [dt.date(2024, 2, 29)],
        [dt.datetime(2024, 2, 29, tzinfo=dt.UTC)],
        id="date-to-datetime",
    ),
    pytest.param(
        "{type: datetime}",
        "{type: date}",
        [dt.datetime(2024, 2, 29, tzinfo=dt.UTC)],
        [dt.date(2024, 2, 29)],
        id="datetime-to-date",
    ),
    pytest.param(
        "{type: integer}",
        "{type: money}",
        [12, -3],
        [Decimal("12.00"), Decimal("-3.00")],
        id="integer-to-money",
    ),
    pytest.param(
        "{type: integer}",
        "{type: string, max_length: 3}",
        [12, 345],
        ["12", "345"],
        id="integer-to-string",
    ),
    pytest.param(
        "{type: decimal, precision: 12, scale: 2}",
        "{type: integer}",
        [Decimal("3.00")],
        [3],
        id="decimal-to-integer",
    ),
    pytest.param(
        "{type: string, max_length: 10}",
        "{type: string, max_length: 4}",
        ["abcd", None],
        ["abcd", None],
        id="shorter-string-that-fits",
    ),
    pytest.param(
        "{type: choice, options: [a, b]}", "{type: string}", ["a"], ["a"], id="choice-to-string"
    ),
    pytest.param(
        "{type: date}", "{type: text}", [dt.date(2024, 2, 29)], ["2024-02-29"], id="date-to-text"
    ),
]


@pytest.mark.parametrize(("before", "after", "values", "expected"), ACCEPTED)
def test_a_type_change_converts_the_data(
    db_engine: Engine,
    tmp_path: Path,
    before: str,
    after: str,
    values: list[Any],
    expected: list[Any],
) -> None:
    old = package(
        tmp_path, f"kind: entity\nname: thing\nfields:\n  f: {before}\n  g: {{type: string}}\n"
    )
    migrate(db_engine, old)
    insert(db_engine, old, "thing", [{"f": v, "g": "kept"} for v in values])
    new = package(
        tmp_path, f"kind: entity\nname: thing\nfields:\n  f: {after}\n  g: {{type: string}}\n"
    )
    result = migrate(db_engine, new)
    assert ("alter_type", "thing", "f") in kinds(result)
    assert rows(db_engine, new, "thing", "f", "g") == [
        (i, v, "kept") for i, v in enumerate(expected, 1)
    ]
    assert plan(db_engine, new).empty


# --- required, unique, references --------------------------------------------------------


def test_required_is_checked_against_the_rows(db_engine: Engine, tmp_path: Path) -> None:
    old = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  vat: {type: string}\n  tags: {type: multichoice, options: [a]}\n",
    )
    migrate(db_engine, old)
    insert(
        db_engine,
        old,
        "thing",
        [{"vat": "V1", "tags": ["a"]}, {"vat": "", "tags": []}, {"vat": None}],
    )
    new = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  vat: {type: string, required: true}\n  tags: {type: multichoice, options: [a], required: true}\n",
    )
    assert plan(db_engine, new).refusals == (
        "thing.vat: 2 rows have no value (ids 2, 3); fill them in before making the field required",
        "thing.tags: 2 rows have no value (ids 2, 3); fill them in before making the field required",
    )
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE thing SET vat = 'V' WHERE id > 1"))
        conn.execute(sa.text("DELETE FROM thing WHERE id > 1"))
    result = migrate(db_engine, new)
    assert [(op.kind, op.column, op.sql) for op in result.operations] == [
        ("set_required", "vat", ()),
        ("set_required", "tags", ()),
    ]


def test_unique_is_checked_against_the_rows(db_engine: Engine, tmp_path: Path) -> None:
    old = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  email: {type: email}\n  year: {type: integer}\n  month: {type: integer}\n",
    )
    migrate(db_engine, old)
    insert(
        db_engine,
        old,
        "thing",
        [
            {"email": "a@x.cn", "year": 2024, "month": 1},
            {"email": "b@x.cn", "year": 2024, "month": 1},
            {"email": "a@x.cn", "year": 2024, "month": 2},
            {"email": None, "year": None, "month": 1},
            {"email": None, "year": None, "month": 1},
        ],
    )
    new = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  email: {type: email, unique: true}\n  year: {type: integer}\n  month: {type: integer}\n"
        "indexes:\n  - {name: one_per_month, fields: [year, month], unique: true}\n",
    )
    assert set(plan(db_engine, new).refusals) == {
        "thing.email: 2 rows share a value with another row ('a@x.cn') (ids 1, 3); make them unique before adding the constraint",
        "thing (year, month): 2 rows share a value with another row ((2024, 1)) (ids 1, 2); make them unique before adding the constraint",
    }
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE thing SET email = 'c@x.cn', month = 3 WHERE id = 3"))
        conn.execute(sa.text("UPDATE thing SET month = 2 WHERE id = 2"))
    result = migrate(db_engine, new)
    assert {op.kind for op in result.operations} == {"add_unique"}
    insert(db_engine, new, "thing", [{"email": None}])  # NULLs stay allowed
    with pytest.raises(sa.exc.IntegrityError):
        insert(db_engine, new, "thing", [{"email": "a@x.cn"}])
    assert plan(db_engine, new).empty
    # and back: dropping the constraints loses nothing
    result = migrate(db_engine, old)
    assert {op.kind for op in result.operations} == {"drop_unique"} and not result.destructive
    insert(db_engine, old, "thing", [{"email": "a@x.cn", "year": 2024, "month": 1}])


def test_a_unique_constraint_made_with_its_table_can_be_dropped(
    db_engine: Engine, tmp_path: Path
) -> None:
    """CREATE TABLE declares unique fields as constraints; SQLite drops one by rebuilding."""
    body = "kind: entity\nname: thing\nfields:\n  code: {type: string%s}\n  name: {type: string}\n"
    old = package(tmp_path, body % ", unique: true")
    migrate(db_engine, old)
    insert(db_engine, old, "thing", [{"code": "A", "name": "a"}])
    new = package(tmp_path, body % "")
    result = migrate(db_engine, new)
    assert ("drop_unique", "thing", "code") in kinds(result)
    insert(db_engine, new, "thing", [{"code": "A", "name": "b"}])
    assert rows(db_engine, new, "thing", "code", "name") == [(1, "A", "a"), (2, "A", "b")]
    assert plan(db_engine, new).empty


def test_a_new_required_field_on_a_table_with_rows(db_engine: Engine, tmp_path: Path) -> None:
    old = package(tmp_path, "kind: entity\nname: thing\nfields:\n  name: {type: string}\n")
    migrate(db_engine, old)
    insert(db_engine, old, "thing", [{"name": "a"}, {"name": "b"}])
    bare = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  name: {type: string}\n  vat: {type: string, required: true}\n",
    )
    assert (
        plan(db_engine, bare)
        .refusals[0]
        .startswith(
            "thing.vat: required, but 2 rows have no value for it (ids 1, 2); give the field a constant default"
        )
    )
    with_default = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  name: {type: string}\n  vat: {type: string, required: true, default: none}\n"
        "  grade: {type: choice, options: [a, b], default: b}\n  tags: {type: multichoice, options: [x, y], default: [y]}\n"
        "  since: {type: date, default: 2024-01-01}\n  score: {type: decimal, default: 1.5}\n  flag: {type: boolean, default: true}\n",
    )
    result = migrate(db_engine, with_default)
    assert "add column thing.grade (choice; existing rows get 'b')" in str(result)
    assert rows(
        db_engine, with_default, "thing", "vat", "grade", "tags", "since", "score", "flag"
    ) == [(i, "none", "b", ["y"], dt.date(2024, 1, 1), Decimal("1.5"), True) for i in (1, 2)]
    insert(db_engine, with_default, "thing", [{"name": "c"}])  # the database itself sets no default
    assert rows(db_engine, with_default, "thing", "vat", "grade")[-1] == (3, None, None)
    assert plan(db_engine, with_default).empty


def test_references_check_their_targets(db_engine: Engine, tmp_path: Path) -> None:
    body = "kind: entity\nname: account\nfields:\n  name: {type: string}\n---\nkind: entity\nname: contact\nfields:\n  account: %s\n"
    old = package(tmp_path, body % "{type: integer}")
    migrate(db_engine, old)
    insert(db_engine, old, "account", [{"name": "A"}])
    insert(db_engine, old, "contact", [{"account": 1}, {"account": 7}, {"account": None}])
    linked = package(tmp_path, body % "{type: reference, to: account, on_delete: cascade}")
    assert plan(db_engine, linked).refusals == (
        "contact.account: 1 row points to account records that do not exist (id 2); clear or fix them first",
    )
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE contact SET account = NULL WHERE id = 2"))
    result = migrate(db_engine, linked)
    assert {"add_foreign_key", "add_index"} <= {op.kind for op in result.operations}
    assert plan(db_engine, linked).empty
    # on_delete changes: the foreign key is replaced, rows kept
    nulling = package(tmp_path, body % "{type: reference, to: account, on_delete: set_null}")
    result = migrate(db_engine, nulling)
    assert {"drop_foreign_key", "add_foreign_key"} <= {op.kind for op in result.operations}
    assert plan(db_engine, nulling).empty
    assert rows(db_engine, nulling, "contact", "account") == [(1, 1), (2, None), (3, None)]


def test_rebuilding_a_table_keeps_the_rows_that_refer_to_it(tmp_path: Path) -> None:
    """SQLite rebuilds a table to drop a column; with foreign keys enforced, dropping the
    old table would cascade to the contacts if the migration did not turn them off."""
    engine = connect(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        old = package(tmp_path, ARCHIVED)
        migrate(engine, old)
        insert(engine, old, "account", [{"name": "A", "fax": "1"}])
        insert(engine, old, "visit", [{"account": 1, "note": "kept"}])
        new = package(tmp_path, ARCHIVED.replace("  fax: {type: string}\n", ""))
        result = migrate(engine, new, allow_destructive=True)
        assert "rebuild_table" in {op.kind for op in result.operations}
        assert rows(engine, new, "visit", "account", "note") == [(1, 1, "kept")]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_indexes_follow_the_definitions(db_engine: Engine, tmp_path: Path) -> None:
    old = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  code: {type: string}\n  kind: {type: string}\n",
    )
    migrate(db_engine, old)
    indexed = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  code: {type: string}\n  kind: {type: string, index: true}\n"
        "indexes:\n  - {name: code_kind, fields: [code, kind]}\n",
    )
    result = migrate(db_engine, indexed)
    assert sorted(op.description for op in result.operations) == [
        "add index ix_thing_code_kind on thing (code, kind)",
        "add index ix_thing_kind on thing (kind)",
    ]
    assert btree_indexes(db_engine, "thing") == {"ix_thing_kind", "ix_thing_code_kind"}
    result = migrate(db_engine, old)
    assert {op.kind for op in result.operations} == {"drop_index"}
    assert btree_indexes(db_engine, "thing") == set()


def test_an_index_a_declared_one_starts_with_is_not_made_twice(
    db_engine: Engine, tmp_path: Path
) -> None:
    """A reference, the owner and an ``index: true`` field each get an index of their own
    — unless an index the entity declares starts with that field: it serves the same
    look-ups, and a second one only costs every write. A database made before loses the
    one it no longer needs on migrate."""
    body = (
        "kind: entity\nname: thing\nownable: true\n"
        "fields:\n  code: {type: string, index: true}\n  kind: {type: string}\n"
        "  parent: {type: reference, to: thing, on_delete: set_null}\n"
    )
    old = package(tmp_path, body)
    migrate(db_engine, old)
    alone = {"ix_thing_code", "ix_thing_parent", "ix_thing_owner_id", "ix_thing_team_id"}
    assert btree_indexes(db_engine, "thing") == alone
    declared = package(
        tmp_path,
        body + "indexes:\n  - {name: code_kind, fields: [code, kind]}\n"
        "  - {name: by_parent, fields: [parent]}\n  - {name: owner_kind, fields: [owner_id, kind]}\n"
        "  - {name: kind_team, fields: [kind, team_id]}\n",
    )
    result = migrate(db_engine, declared)
    assert sorted(op.description for op in result.operations) == [
        "add index ix_thing_code_kind on thing (code, kind)",
        "add index ix_thing_kind_team on thing (kind, team_id)",
        "add index ix_thing_owner_kind on thing (owner_id, kind)",
        "drop index ix_thing_code of thing (code)",
        "drop index ix_thing_owner_id of thing (owner_id)",
    ], [op.description for op in result.operations]
    assert btree_indexes(db_engine, "thing") == {
        "ix_thing_code_kind", "ix_thing_kind_team", "ix_thing_owner_kind",
        "ix_thing_team_id",  # team_id is not first in kind_team
        "ix_thing_parent",  # the one index on parent: the declared by_parent's columns
    }  # fmt: skip
    assert plan(db_engine, declared).empty
    insert(db_engine, declared, "thing", [{"code": "a", "parent": None}])
    insert(db_engine, declared, "thing", [{"code": "b", "parent": 1}])  # the reference holds
    assert rows(db_engine, declared, "thing", "parent") == [(1, None), (2, 1)]
    migrate(db_engine, old)  # declared indexes gone: each field has its own again
    assert btree_indexes(db_engine, "thing") == alone


def test_a_renamed_table_keeps_its_rows(db_engine: Engine, tmp_path: Path) -> None:
    body = "kind: entity\nname: visit\n%sfields:\n  note: {type: string, index: true%s}\n  follows: {type: reference, to: visit, on_delete: set_null}\n"
    old = package(tmp_path, body % ("", ""))
    migrate(db_engine, old)
    insert(db_engine, old, "visit", [{"note": "n"}])
    new = package(tmp_path, body % ("table: field_visit\n", ", max_length: 20"))
    result = migrate(db_engine, new)
    assert kinds(result)[0] == ("rename_table", "field_visit", None) and not result.destructive
    assert ("alter_type", "field_visit", "note") in kinds(result)
    assert rows(db_engine, new, "visit", "note") == [(1, "n")]
    assert "visit" not in sa.inspect(db_engine).get_table_names()
    assert plan(db_engine, new).empty
    insert(db_engine, new, "visit", [{"note": "m", "follows": 1}])  # the self-reference works
    assert rows(db_engine, new, "visit", "follows") == [(1, None), (2, 1)]
    fks = sa.inspect(db_engine).get_foreign_keys("field_visit")
    assert [fk["referred_table"] for fk in fks if fk["constrained_columns"] == ["follows"]] == [
        "field_visit"
    ]


def test_columns_the_definitions_do_not_know_are_left_alone(
    db_engine: Engine, tmp_path: Path
) -> None:
    model = package(tmp_path, SMALL)
    migrate(db_engine, model)
    with db_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE account ADD COLUMN legacy_code VARCHAR(10)"))
    result = plan(db_engine, model)
    assert result.empty  # nothing to do; a note says what was seen
    assert result.notes == ("columns the definitions do not know, left alone: account.legacy_code",)


# --- rollback and locking ----------------------------------------------------------------


def _state(engine: Engine) -> dict[str, Any]:
    state: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in sorted(inspector.get_table_names()):
            state[table] = (
                sorted((c["name"], str(c["type"])) for c in inspector.get_columns(table)),
                sorted(str(ix["name"]) for ix in inspector.get_indexes(table)),
                sorted(map(str, conn.execute(sa.text(f'SELECT * FROM "{table}"')).all())),
            )
    return state


@pytest.mark.parametrize("fail_at", [1, 3, 6])
def test_an_interrupted_migration_leaves_the_database_as_it_was(
    db_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    old = package(tmp_path, ARCHIVED)
    migrate(db_engine, old)
    insert(db_engine, old, "account", [{"name": "A", "fax": "1", "tags": ["vip"]}, {"name": "B"}])
    insert(db_engine, old, "visit", [{"account": 1, "note": "n"}])
    new = package(
        tmp_path,
        ARCHIVED.replace("  fax: {type: string}\n", "  phone: {type: string, renamed_from: fax}\n")
        .replace(
            "  since: {type: date}\n",
            "  since: {type: datetime}\n  wechat: {type: string, index: true}\n",
        )
        .replace("  note: {type: text}\n", ""),
    )
    before = _state(db_engine)
    calls = itertools.count(1)
    original = DefaultImpl._exec

    def failing(self: DefaultImpl, construct: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.as_sql and next(calls) == fail_at:
            raise RuntimeError("power cut")
        return original(self, construct, *args, **kwargs)

    monkeypatch.setattr(DefaultImpl, "_exec", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        migrate(db_engine, new, allow_destructive=True)
    assert _state(db_engine) == before
    monkeypatch.undo()
    migrate(db_engine, new, allow_destructive=True)
    assert rows(db_engine, new, "account", "phone") == [(1, "1"), (2, None)]


def test_an_interrupted_migration_on_a_tuned_sqlite_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine.database.connect's SQLite (BEGIN IMMEDIATE, foreign keys on) rolls back too."""
    engine = connect(f"sqlite:///{tmp_path / 'tuned.db'}")
    try:
        old = package(tmp_path, ARCHIVED)
        migrate(engine, old)
        insert(engine, old, "account", [{"name": "A", "fax": "1"}])
        insert(engine, old, "visit", [{"account": 1, "note": "n"}])
        new = package(
            tmp_path, ARCHIVED.replace("  fax: {type: string}\n", "  wechat: {type: string}\n")
        )
        before = _state(engine)
        original = DefaultImpl._exec
        calls = itertools.count(1)

        def failing(self: DefaultImpl, construct: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.as_sql and next(calls) == 4:  # inside the table rebuild
                raise RuntimeError("disk full")
            return original(self, construct, *args, **kwargs)

        monkeypatch.setattr(DefaultImpl, "_exec", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            migrate(engine, new, allow_destructive=True)
        assert _state(engine) == before
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_an_unreadable_snapshot_plans_from_the_live_database(
    db_engine: Engine, tmp_path: Path
) -> None:
    old = package(tmp_path, ARCHIVED)
    migrate(db_engine, old)
    with db_engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {HISTORY_TABLE} SET hash = 'broken', model = '{{}}'"))
    new = package(
        tmp_path, ARCHIVED.replace("  fax: {type: string}\n", "  wechat: {type: string}\n")
    )
    result = plan(db_engine, new)
    assert kinds(result) == [("add_column", "account", "wechat")]  # fax is not dropped
    assert result.notes[0].startswith("the last applied model (broken) cannot be read")
    assert "nothing is dropped" in result.notes[0]
    migrate(db_engine, new)
    assert plan(db_engine, new).empty


def test_search_indexes_follow_a_renamed_column(pg_engine: Engine, tmp_path: Path) -> None:
    old = package(tmp_path, "kind: entity\nname: thing\nfields:\n  name: {type: string}\n")
    migrate(pg_engine, old)
    assert "ix_thing_name_trgm" in {ix["name"] for ix in sa.inspect(pg_engine).get_indexes("thing")}
    new = package(
        tmp_path,
        "kind: entity\nname: thing\nfields:\n  title: {type: string, renamed_from: name}\n",
    )
    result = migrate(pg_engine, new)
    assert [op.kind for op in result.operations] == ["rename_column", "drop_index"]
    names = {ix["name"] for ix in sa.inspect(pg_engine).get_indexes("thing")}
    assert "ix_thing_title_trgm" in names and "ix_thing_name_trgm" not in names
    assert plan(pg_engine, new).empty


def test_concurrent_migrations_take_turns(pg_engine: Engine, tmp_path: Path) -> None:
    model = package(tmp_path, SMALL)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(pg_engine, model))
        except BaseException as exc:
            errors.append(exc)

    waiting = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    with pg_engine.connect() as holder:
        with holder.begin():
            holder.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
            threads = [threading.Thread(target=run) for _ in range(2)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            with pg_engine.connect() as probe:
                while probe.scalar(waiting) != 2 and time.monotonic() < deadline:
                    time.sleep(0.02)
                    probe.rollback()
                assert probe.scalar(waiting) == 2  # both wait for the lock
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sorted(r.empty for r in results) == [False, True]
    assert history_count(pg_engine) == 1


# --- printing ----------------------------------------------------------------------------


def test_a_plan_prints_numbered_operations_with_destructive_ones_marked(
    db_engine: Engine, tmp_path: Path
) -> None:
    old = package(tmp_path, ARCHIVED)
    migrate(db_engine, old)
    insert(db_engine, old, "account", [{"name": "A", "fax": "1"}])
    new = package(
        tmp_path, ARCHIVED.replace("  fax: {type: string}\n", "  wechat: {type: string}\n")
    )
    result = plan(db_engine, new)
    text = str(result).splitlines()
    assert (
        text[0]
        == f"Plan for model {new.hash[:12]} (database at {old.hash[:12]}): {len(result.operations)} operations, 1 destructive (marked !)"
    )
    assert "   add column account.wechat (string)" in "\n".join(text)
    assert any(line.endswith("! drop column account.fax (1 value archived first)") for line in text)
    numbers = [line.split(".")[0].strip() for line in text[1:]]
    assert numbers == [str(n) for n in range(1, len(result.operations) + 1)]
    with_sql = result.render(sql=True)
    assert "ALTER TABLE account ADD COLUMN wechat VARCHAR(255)" in with_sql
    assert "INSERT INTO heddle_archive" in with_sql


ROLLUP_BASE = """\
kind: package
name: rolls
---
kind: entity
name: contract
fields:
  title: {type: string}
---
kind: entity
name: payment
fields:
  contract: {type: reference, to: contract, on_delete: cascade}
  amount: {type: money}
  status: {type: choice, options: [pending, confirmed]}
"""

ROLLUP_ADDED = ROLLUP_BASE.replace(
    "  title: {type: string}\n",
    """  title: {type: string}
  received:
    type: rollup
    of: payment
    via: contract
    aggregate: sum
    field: amount
    filter: "status == 'confirmed'"
""",
)


def test_a_new_or_changed_rollup_is_computed_for_existing_rows(
    db_engine: Engine, tmp_path: Path
) -> None:
    def load(text: str, name: str) -> Model:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return load_packages([path])

    base = load(ROLLUP_BASE, "base.yaml")
    migrate(db_engine, base)
    tables = build_tables(base)
    now = dt.datetime.now(dt.UTC)
    system = {"created_at": now, "updated_at": now, "version": 1}
    with db_engine.begin() as conn:
        conn.execute(tables.table("contract").insert(), [{"id": 1, "title": "A", **system}])
        conn.execute(tables.table("payment").insert(), [
            {"contract": 1, "amount": Decimal("100"), "status": "confirmed", **system},
            {"contract": 1, "amount": Decimal("50"), "status": "pending", **system},
        ])  # fmt: skip
    added = load(ROLLUP_ADDED, "added.yaml")
    result = migrate(db_engine, added)
    assert any("computed for the rows already there" in note for note in result.notes)
    table = build_tables(added).table("contract")
    with db_engine.connect() as conn:
        assert conn.scalar(sa.select(table.c.received)) == Decimal("100")
    changed = load(
        ROLLUP_ADDED.replace("status == 'confirmed'", "status == 'pending'"), "changed.yaml"
    )
    migrate(db_engine, changed)
    with db_engine.connect() as conn:
        assert conn.scalar(sa.select(table.c.received)) == Decimal("50")
