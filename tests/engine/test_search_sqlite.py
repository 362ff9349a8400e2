"""Search served by an index: FTS5 trigram tables on SQLite (kept by triggers, remade by
the migrator), trigram GIN indexes on PostgreSQL — with the meaning of the LIKE scan.

Tests that need no SQLite internals run on both databases: the migrations below must
leave search right and writes working on each. Expectations come from Python: every
word of ``q`` is a substring, ASCII case ignored, of one of the searched fields.
"""

from __future__ import annotations

import functools
import itertools
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import SYSTEM, Actor, Records, build_tables, migrate, plan
from engine.query import ListQuery, run
from engine.search import _sqlite as fts
from engine.search import ensure_search_indexes, search_condition
from engine.tables import Tables
from metamodel import Model, load_packages

_counter = itertools.count()

BASE = """\
kind: role
name: viewer
permissions:
  "*": {read: all}
  account:
    read: all
    fields: {notes: hidden}
---
kind: entity
name: account
title_field: name
search_fields: [name, notes]
fields:
  name: {type: string, max_length: 100}
  notes: {type: text}
  city: {type: string}
---
kind: entity
name: visit
fields:
  account: {type: reference, to: account, on_delete: cascade}
  subject: {type: string, searchable: true}
"""

ACCOUNTS: list[dict[str, Any]] = [
    {"name": "Acme Corp", "notes": "Key customer in Berlin", "city": "Tokyo"},
    {"name": "ACME GmbH", "notes": "重要客户 北京", "city": "Berlin"},
    {"name": "acme-widgets", "notes": None, "city": None},
    {"name": "张三贸易", "notes": "客户 张三", "city": "上海"},
    {"name": "佐藤商事", "notes": "日本の顧客 佐藤", "city": "東京"},
    {"name": "Beta Ltd", "notes": 'partner; 50% off_ say "hi" key:value (x)', "city": ""},
    {"name": "Nothing And Handel", "notes": "", "city": "Near"},
    {"name": "Delta 株式会社", "notes": "ZH 客户 Delta", "city": "Osaka"},
    {"name": "x", "notes": "ab", "city": "abc"},
]
VISITS: list[dict[str, Any]] = [
    {"account": 1, "subject": "Call Acme about 客户"},
    {"account": 2, "subject": "ab"},
    {"account": 4, "subject": None},
]

QUERIES = [
    *["acme", "ACME", "aCmE corp", "corp acme", "cust", "berlin acme", "  acme   berlin  "],
    *["客户", "张三", "张", "佐藤", "藤商", "株式会社", "顧客", "delta 客户", "lta 株式", "客户 Delta"],
    *["ab", "x", "a", "de", "zh", "50%", "off_", "_", "%", '"hi"', 'hi"', "y:v", "(x)", "{"],
    *["and", "NOT", "near", "NEAR", "OR", "*", "acme zzz", "zzz", "tokyo", "osaka", "call 客户"],
]  # fmt: skip


def package(tmp_path: Path, body: str) -> Model:
    path = tmp_path / f"package_{next(_counter)}.yaml"
    path.write_text("kind: package\nname: t\n---\n" + textwrap.dedent(body), encoding="utf-8")
    return load_packages([path])


@functools.cache
def tables_of(model: Model) -> Tables:
    """The tables of ``model``, built once (building them costs more than a search)."""
    return build_tables(model)


def fold(text: str) -> str:
    """Lower case for ASCII letters only, as SQLite's LIKE folds."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def expected(rows: dict[int, dict[str, Any]], fields: Sequence[str], text: str) -> set[int]:
    words = text.split()[:10]
    return {
        key
        for key, row in rows.items()
        if all(any(fold(w) in fold(row.get(f) or "") for f in fields) for w in words)
    }


def search(
    engine: Engine, model: Model, entity: str, text: str, *, within: Sequence[str] | None = None
) -> set[int]:
    query = ListQuery(search=text, limit=500, search_in=None if within is None else tuple(within))
    with engine.connect() as conn:
        return {r["id"] for r in run(conn, tables_of(model), entity, query, SYSTEM).rows}


def stored(engine: Engine, model: Model, entity: str) -> dict[int, dict[str, Any]]:
    table = tables_of(model).table(entity)
    with engine.connect() as conn:
        return {row["id"]: dict(row) for row in conn.execute(sa.select(table)).mappings()}


def objects(engine: Engine) -> set[tuple[str, str, str]]:
    """The FTS5 tables and triggers there are (not the shadow tables): (type, name, on)."""
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT type, name, tbl_name FROM sqlite_master"
            " WHERE name LIKE '%\\_\\_fts%' ESCAPE '\\'"
        ).all()
    return {(t, n, on) for t, n, on in found if t == "trigger" or n.endswith("__fts")}


def searched(model: Model) -> dict[str, tuple[str, ...]]:
    """Table → search fields, for the entities that have some."""
    tables = tables_of(model)
    return {tables.table(e.name).name: e.search_fields for e in model if e.search_fields}


def wanted_objects(model: Model) -> set[tuple[str, str, str]]:
    tables = tables_of(model)
    found = set()
    for entity in model:
        if entity.search_fields:
            table = tables.table(entity.name).name
            found.add(("table", fts.fts_name(table), fts.fts_name(table)))
            found |= {("trigger", fts.trigger_name(table, e), table) for e in fts.TRIGGERS}
    return found


def in_step(engine: Engine, table: str) -> None:
    """FTS5's integrity check, against the table's rows (rank 1): raises if they differ."""
    name = fts.fts_name(table)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'INSERT INTO "{name}"("{name}", rank) VALUES (\'integrity-check\', 1)'
        )


def assert_search_right(engine: Engine, model: Model) -> None:
    """Every query finds what the LIKE meaning finds, on every entity; on SQLite through
    the FTS5 tables, which match the table's rows exactly."""
    tables = tables_of(model)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        assert objects(engine) == wanted_objects(model)
        with engine.connect() as conn:
            usable = fts.usable(conn, model.hash, lambda: searched(model))
    for entity in model:
        fields = entity.search_fields
        if not fields:
            continue
        table = tables.table(entity.name).name
        if sqlite:
            assert usable[table].columns == fields
            in_step(engine, table)
        rows = stored(engine, model, entity.name)
        for text in QUERIES:
            assert search(engine, model, entity.name, text) == expected(rows, fields, text), text


def write_some(engine: Engine, model: Model) -> None:
    """Creates, updates and deletes through the record service and through raw SQL."""
    records = Records(engine, model, tables=tables_of(model))
    made = records.create(SYSTEM, "account", {"name": "Gamma Acme 客户", "city": "Rome"})
    records.update(
        SYSTEM, "account", made["id"], {"name": "Gamma Omega 客户"}, version=made["version"]
    )
    gone = records.create(SYSTEM, "account", {"name": "Short lived acme"})
    records.delete(SYSTEM, "account", gone["id"], version=gone["version"])
    table = tables_of(model).table("account")
    with engine.begin() as conn:
        conn.execute(
            table.insert().values(
                name="raw Acme insert", created_at=sa.func.now(), updated_at=sa.func.now()
            )
        )
        conn.execute(table.update().where(table.c.id == 3).values(name="acme-gadgets"))
        conn.execute(table.update().where(table.c.id == 2).values(city="Paris"))  # not searched


@pytest.fixture
def base(db_engine: Engine, tmp_path: Path) -> Model:
    """The BASE package migrated, with its accounts and visits."""
    model = package(tmp_path, BASE)
    migrate(db_engine, model)
    records = Records(db_engine, model)
    for row in ACCOUNTS:
        records.create(SYSTEM, "account", row)
    for row in VISITS:
        records.create(SYSTEM, "visit", row)
    return model


# --- meaning ---------------------------------------------------------------------------


def test_search_finds_what_the_like_scan_finds(db_engine: Engine, base: Model) -> None:
    assert_search_right(db_engine, base)
    rows = stored(db_engine, base, "account")
    for text in QUERIES:  # narrowed, as for a role that may not see the notes
        got = search(db_engine, base, "account", text, within=["name"])
        assert got == expected(rows, ["name"], text), text
    if db_engine.dialect.name == "sqlite":  # and the LIKE conditions agree, on these rows
        table = tables_of(base).table("account")
        with db_engine.connect() as conn:
            for text in QUERIES:
                like = search_condition([table.c.name, table.c.notes], text, "sqlite")
                assert set(conn.scalars(sa.select(table.c.id).where(like))) == search(
                    db_engine, base, "account", text
                ), text


HIDDEN_CASES = [  # q, found by an admin, found by a viewer (who may not see the notes)
    ("acme", {1, 2, 3}, {1, 2, 3}),
    ("berlin", {1}, set()),  # account 2's city is Berlin: not a search field
    ("客户", {2, 4, 8}, set()),
    ("zh delta", {8}, set()),  # a short word (a LIKE) and an indexed one
]


@pytest.mark.parametrize(("text", "admin", "viewer"), HIDDEN_CASES)
def test_a_hidden_field_is_never_searched(
    db_engine: Engine, base: Model, text: str, admin: set[int], viewer: set[int]
) -> None:
    records = Records(db_engine, base)
    reader = Actor(user_id=None, roles=frozenset({"viewer"}))
    for actor, ids in ((SYSTEM, admin), (reader, viewer)):
        page = records.query(actor, "account", ListQuery(search=text))
        assert {row["id"] for row in page.rows} == ids, actor.roles


def test_letters_beyond_ascii_ignore_case_in_words_of_three_characters(
    db_engine: Engine, tmp_path: Path
) -> None:
    model = package(tmp_path, BASE)
    migrate(db_engine, model)
    records = Records(db_engine, model)
    for name in ("ÄPFEL Handel", "müller KG", "Ölmühle ÉCOLE"):
        records.create(SYSTEM, "account", {"name": name})
    for text, ids in [
        ("äpfel", {1}),
        ("MÜLLER", {2}),
        ("ölm", {3}),
        ("école", {3}),
        ("APFEL", set()),  # accents count, as on PostgreSQL
        ("ecole", set()),
    ]:
        assert search(db_engine, model, "account", text) == ids, text
    # Shorter words are LIKE scans: SQLite's LIKE folds ASCII letters only.
    short = search(db_engine, model, "account", "äp")
    assert short == (set() if db_engine.dialect.name == "sqlite" else {1})
    assert search(db_engine, model, "account", "ÄP") == {1}


# --- the SQLite index ------------------------------------------------------------------


@pytest.fixture
def sqlite_base(sqlite_engine: Engine, tmp_path: Path) -> Model:
    model = package(tmp_path, BASE)
    migrate(sqlite_engine, model)
    Records(sqlite_engine, model).create(SYSTEM, "account", ACCOUNTS[0])
    return model


@pytest.fixture
def statements(sqlite_engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine runs from now on, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(sqlite_engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sqlite_engine, "before_cursor_execute", record)


def _query_plan(engine: Engine, model: Model, text: str, seen: list[tuple[str, Any]]) -> str:
    seen.clear()
    search(engine, model, "account", text)
    statement, parameters = next((s, p) for s, p in seen if "FROM account" in s)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_words_of_three_characters_use_the_fts5_table(
    sqlite_engine: Engine, sqlite_base: Model, statements: list[tuple[str, Any]]
) -> None:
    used = _query_plan(sqlite_engine, sqlite_base, "acme", statements)
    assert "account__fts VIRTUAL TABLE" in used
    assert "SCAN account" not in used.replace("SCAN account__fts", "")  # no scan of the table
    assert "VIRTUAL TABLE" in _query_plan(sqlite_engine, sqlite_base, "ab acme", statements)
    assert "VIRTUAL TABLE" not in _query_plan(sqlite_engine, sqlite_base, "ab", statements)
    assert "VIRTUAL TABLE" not in _query_plan(sqlite_engine, sqlite_base, "张三", statements)


def test_what_is_indexed_is_read_once_not_per_search(
    sqlite_engine: Engine, sqlite_base: Model, statements: list[tuple[str, Any]]
) -> None:
    for text in ("acme", "berlin", "客户"):
        search(sqlite_engine, sqlite_base, "account", text)
    assert sum("sqlite_master" in s for s, _ in statements) <= 1
    # the record service's reader shares the pool, and so what was read
    statements.clear()
    Records(sqlite_engine, sqlite_base).query(SYSTEM, "account", ListQuery(search="acme"))
    assert not any("sqlite_master" in s for s, _ in statements)


def test_making_the_indexes_again_changes_nothing(
    sqlite_engine: Engine, sqlite_base: Model, statements: list[tuple[str, Any]]
) -> None:
    tables = tables_of(sqlite_base)
    with sqlite_engine.begin() as conn:
        assert ensure_search_indexes(conn, tables) == ["account__fts", "visit__fts"]
    assert not [s for s, _ in statements if s.startswith(("CREATE", "DROP", "INSERT"))]


def test_a_missing_trigger_is_not_trusted_and_is_made_again(
    sqlite_engine: Engine, sqlite_base: Model
) -> None:
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql('DROP TRIGGER "account__fts_insert"')
        conn.exec_driver_sql(
            "INSERT INTO account (name, created_at, updated_at) VALUES ('Acme unseen', '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
        )
    fts.forget(sqlite_engine)
    with sqlite_engine.connect() as conn:  # the index misses a row: search scans instead
        assert "account" not in fts.usable(conn, sqlite_base.hash, lambda: searched(sqlite_base))
    assert search(sqlite_engine, sqlite_base, "account", "acme") == {1, 2}
    with sqlite_engine.begin() as conn:
        ensure_search_indexes(conn, tables_of(sqlite_base))
    in_step(sqlite_engine, "account")
    assert_search_right(sqlite_engine, sqlite_base)


def test_without_the_migrator_search_scans(sqlite_engine: Engine, tmp_path: Path) -> None:
    model = package(tmp_path, BASE)
    tables: Tables = tables_of(model)
    tables.metadata.create_all(sqlite_engine)
    Records(sqlite_engine, model).create(SYSTEM, "account", {"name": "Acme"})
    with sqlite_engine.connect() as conn:
        assert fts.usable(conn, model.hash, lambda: searched(model)) == {}
    assert search(sqlite_engine, model, "account", "acme") == {1}


def test_a_search_field_fts5_reserves_is_searched_by_a_scan(
    db_engine: Engine, tmp_path: Path
) -> None:
    body = """\
        kind: entity
        name: player
        search_fields: [rank, name]
        fields:
          rank: {type: string}
          name: {type: string}
    """
    model = package(tmp_path, body)
    migrate(db_engine, model)  # FTS5 would refuse a column named rank: no index, no error
    Records(db_engine, model).create(SYSTEM, "player", {"rank": "Grandmaster", "name": "Ann"})
    assert search(db_engine, model, "player", "grandmaster ann") == {1}
    if db_engine.dialect.name == "sqlite":
        assert objects(db_engine) == set()


@pytest.mark.parametrize(
    ("version", "modules", "supported"),
    [
        ("3.40.1", ["fts5", "rtree"], True),
        ("3.34.0", ["fts5"], True),
        ("3.33.9", ["fts5"], False),  # before the trigram tokenizer
        ("3.45.0", ["fts4", "rtree"], False),  # built without FTS5
        ("unknown", ["fts5"], False),
    ],
)
def test_fts5_with_trigrams_is_needed(version: str, modules: list[str], supported: bool) -> None:
    assert fts.supports_trigram(version, modules) is supported


# --- writes ------------------------------------------------------------------------------


def test_writes_keep_the_index_in_step(db_engine: Engine, base: Model) -> None:
    write_some(db_engine, base)
    with db_engine.begin() as conn:  # a new id moves the row in the index too
        conn.execute(sa.text("UPDATE account SET id = 100 WHERE id = 6"))
        conn.execute(sa.text("DELETE FROM account WHERE id = 5"))
    assert_search_right(db_engine, base)
    assert search(db_engine, base, "account", "gamma") == {10}
    assert search(db_engine, base, "account", "omega 客户") == {10}
    assert search(db_engine, base, "account", "short lived") == set()
    assert search(db_engine, base, "account", "partner") == {100}
    assert search(db_engine, base, "account", "佐藤") == set()


# --- migrations -------------------------------------------------------------------------

VISIT = BASE[BASE.index("---\nkind: entity\nname: visit") :]

#: Each change: the replacements that make it from BASE (or from the change before it).
CHANGES: dict[str, list[tuple[str, str]]] = {
    "a field joins the search fields": [("search_fields: [name, notes]", "search_fields: [name, notes, city]")],
    "a new searchable field": [("  city: {type: string}\n", "  city: {type: string}\n  code: {type: string, searchable: true}\n")],
    "a search field changes type (SQLite rebuilds the table)": [("name: {type: string, max_length: 100}", "name: {type: string, max_length: 200}")],
    "a search field is renamed": [
        ("  notes: {type: text}\n", "  memo: {type: text, renamed_from: notes}\n"),
        ("search_fields: [name, notes", "search_fields: [name, memo"),
        ("fields: {notes: hidden}", "fields: {memo: hidden}"),
    ],
    "the table is renamed": [("name: account\n", "name: account\ntable: customer\n")],
    "a field leaves the search fields": [("search_fields: [name, notes]", "search_fields: [name]")],
    "a search field is dropped": [
        ("  notes: {type: text}\n", ""),
        ("search_fields: [name, notes]", "search_fields: [name]"),
        ("    fields: {notes: hidden}\n", ""),
    ],
    "an entity with search fields is dropped": [(VISIT, "")],
}  # fmt: skip


def changed(body: str, change: str) -> str | None:
    """``body`` with ``change`` made, or None when it does not apply to it."""
    for old, new in CHANGES[change]:
        if old not in body:
            return None
        body = body.replace(old, new)
    return body


def search_tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {n for n in sa.inspect(conn).get_table_names() if fts.is_search_table(n)}


def wanted_tables(model: Model) -> set[str]:
    """An FTS5 table and its four shadow tables per table with search fields."""
    return {
        fts.fts_name(table) + shadow
        for table in searched(model)
        for shadow in ("", "_data", "_idx", "_docsize", "_config")
    }


def check_migrated(engine: Engine, model: Model) -> None:
    """Nothing stale is left, search is right, and writes work and keep it right."""
    assert plan(engine, model).empty
    if engine.dialect.name == "sqlite":
        assert search_tables(engine) == wanted_tables(model)
    assert_search_right(engine, model)
    write_some(engine, model)
    records = Records(engine, model, tables=tables_of(model))
    records.create(SYSTEM, "account", {})  # every search field empty
    if "visit" in model.entities:
        records.create(SYSTEM, "visit", {"account": 3, "subject": "new acme"})
    assert_search_right(engine, model)


@pytest.mark.parametrize("change", list(CHANGES))
def test_after_a_migration_writes_work_and_search_is_right(
    db_engine: Engine, base: Model, tmp_path: Path, change: str
) -> None:
    body = changed(BASE, change)
    assert body is not None
    new = package(tmp_path, body)
    result = migrate(db_engine, new, allow_destructive=True)
    assert not any("fts" in op.description for op in result.operations)  # not in the plan
    if "rebuilds" in change and db_engine.dialect.name == "sqlite":
        assert "rebuild_table" in {op.kind for op in result.operations}
    check_migrated(db_engine, new)


def test_migrations_one_after_another(db_engine: Engine, base: Model, tmp_path: Path) -> None:
    """Each change on top of the ones before: renames, rebuilds and drops compound."""
    body, made = BASE, []
    for change in CHANGES:
        after = changed(body, change)
        if after is None:
            continue
        body = after
        made.append(change)
        model = package(tmp_path, body)
        migrate(db_engine, model, allow_destructive=True)
        check_migrated(db_engine, model)
    assert len(made) >= 6, made


def test_a_database_from_before_the_search_tables_gets_them_at_its_next_migrate(
    sqlite_engine: Engine, sqlite_base: Model
) -> None:
    with sqlite_engine.begin() as conn:
        for _, name, _ in sorted(wanted_objects(sqlite_base), reverse=True):  # triggers first
            kind = "TABLE" if name.endswith("__fts") else "TRIGGER"
            conn.exec_driver_sql(f'DROP {kind} "{name}"')
    assert objects(sqlite_engine) == set()
    result = migrate(sqlite_engine, sqlite_base)
    assert result.empty  # nothing in the plan, nothing in the history
    assert_search_right(sqlite_engine, sqlite_base)
