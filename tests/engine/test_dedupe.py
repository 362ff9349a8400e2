"""Duplicate rules enforced by the record service (engine.dedupe), on SQLite and PostgreSQL:
block, warn and claim; candidates with their owner or pool, even out of the writer's
sight; keys kept through updates and deletes, rebuilt by migrate; fuzzy rules through the
trigram index."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import Actor, BadRequest, DuplicateFound, NotFound, Records, migrate, plan
from engine.dedupe import MAX_KEY, stored_key
from engine.tables import (
    AUDIT_TABLE,
    DUPLICATE_KEY_TABLE,
    DUPLICATE_RULE_TABLE,
    TEAM_TABLE,
    USER_TABLE,
)
from metamodel import Model, load_packages

DUP = """\
kind: package
name: dup
---
kind: role
name: rep
permissions:
  "*": {read: own, create: all, update: own, delete: own}
---
kind: entity
name: pool
title_field: name
fields:
  name: {type: string, required: true}
---
kind: entity
name: customer
ownable: true
title_field: name
fields:
  name: {type: string, required: true, max_length: 1000}
  phone: {type: phone}
  mobile: {type: phone}
  tax_id: {type: string}
  note: {type: text}
  pool: {type: reference, to: pool, on_delete: set_null, readonly: true}
duplicate_rules:
  - name: same_name
    label: {en: Same customer name, zh: 客户名称重复}
    fields: [name]
    normalize: [case, space, width, company_suffix, region_prefix, punctuation]
    action: claim
    pool: pool
    also_check: [prospect]
  - name: same_tax_id
    fields: [tax_id]
    action: block
  - name: same_phone
    fields: [phone, mobile]
    match: any
    normalize: [phone]
    action: warn
  - name: similar_name
    fields: [name]
    normalize: [case, space, width, company_suffix, punctuation]
    fuzzy: 0.9
    action: warn
---
kind: entity
name: prospect
ownable: true
title_field: person
fields:
  person: {type: string}
  company: {type: string}
duplicate_rules:
  - name: same_company
    fields: [company]
    normalize: [case, space, width, company_suffix, region_prefix, punctuation]
    action: warn
    also_check: [customer]
"""

NOW = dt.datetime.now(dt.UTC)
ADMIN = Actor(user_id=1, team_id=1, roles=frozenset({"admin"}))
ANN = Actor(user_id=2, team_id=1, roles=frozenset({"rep"}))
BOB = Actor(user_id=3, team_id=1, roles=frozenset({"rep"}))


def load(tmp_path: Path, text: str = DUP, name: str = "dup.yaml") -> Model:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_packages([path])


def people(engine: Engine, records: Records) -> None:
    tables = records.tables.metadata.tables
    with engine.begin() as conn:
        conn.execute(tables[TEAM_TABLE].insert(), [{"name": "East", "created_at": NOW}])
        conn.execute(
            tables[USER_TABLE].insert(),
            [
                {"username": u, "name": n, "roles": r, "team_id": 1, "created_at": NOW}
                for u, n, r in (
                    ("root", "Root", ["admin"]),
                    ("ann", "Ann Lee", ["rep"]),
                    ("bob", "Bob Wu", ["rep"]),
                )
            ],
        )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return load(tmp_path_factory.mktemp("dup"))


@pytest.fixture(scope="module")
def database(module_db_url: str, model: Model) -> Iterator[Records]:
    """The package migrated once per module and database, with its people."""
    engine = sa.create_engine(module_db_url)
    migrate(engine, model)
    made = Records(engine, model)
    people(engine, made)
    yield made
    engine.dispose()


@pytest.fixture
def records(database: Records) -> Records:
    """The module's database, without the records of the tests before."""
    emptied = [database.tables.table(n) for n in ("customer", "prospect", "pool")]
    system = database.tables.metadata.tables
    with database.engine.begin() as conn:
        for table in [*emptied, system[DUPLICATE_KEY_TABLE], system[AUDIT_TABLE]]:
            conn.execute(table.delete())
    return database


def keys(engine: Engine, entity: str | None = None) -> list[tuple[Any, ...]]:
    t = sa.table(
        DUPLICATE_KEY_TABLE, *(sa.column(c) for c in ("key", "entity", "record_id", "rule"))
    )
    query = sa.select(t.c.rule, t.c.key, t.c.entity, t.c.record_id).order_by(
        t.c.entity, t.c.record_id, t.c.rule, t.c.key
    )
    if entity is not None:
        query = query.where(t.c.entity == entity)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def refusal(call: Any) -> DuplicateFound:
    with pytest.raises(DuplicateFound) as caught:
        call()
    assert caught.value.status == 409 and caught.value.code == "duplicate"
    return caught.value


# --- the three actions -------------------------------------------------------------------


def test_block_refuses_and_cannot_be_confirmed(records: Records) -> None:
    first = records.create(ADMIN, "customer", {"name": "Acme", "tax_id": "91310000X"})
    found = refusal(
        lambda: records.create(
            ADMIN,
            "customer",
            {"name": "Beta", "tax_id": "91310000X"},
            confirm_duplicates=["same_tax_id"],
        )
    )
    details = found.details
    assert (details["rule"], details["action"], details["confirmable"]) == (
        "same_tax_id",
        "block",
        False,
    )
    assert details["candidates"] == [
        {
            "id": first["id"],
            "entity": "customer",
            "title": "Acme",
            "owner": {"id": 1, "name": "Root"},
            "pool": None,
            "score": 1.0,
        }
    ]
    assert [r["rule"] for r in details["rules"]] == ["same_tax_id"]
    assert "Beta" not in found.message and "'Acme' (owned by Root)" in found.message


def test_claim_refuses_a_record_of_the_entity_and_shows_its_pool(records: Records) -> None:
    pool = records.create(ADMIN, "pool", {"name": "East China pool"})
    pooled = records.create(ADMIN, "customer", {"name": "北京字节跳动科技有限公司"})
    customers = records.tables.table("customer")
    with records.engine.begin() as conn:  # the pool's recycling: no owner, in a pool
        conn.execute(
            customers.update()
            .where(customers.c.id == pooled["id"])
            .values(owner_id=None, pool=pool["id"])
        )
    found = refusal(
        lambda: records.create(
            ANN, "customer", {"name": "字节跳动科技"}, confirm_duplicates=["same_name"]
        )
    )
    assert found.details["rule"] == "same_name"
    assert found.details["action"] == "claim"
    assert found.details["confirmable"] is False
    (candidate,) = found.details["candidates"]
    assert candidate["owner"] is None
    assert candidate["pool"] == {"id": pool["id"], "name": "East China pool"}
    assert "in the pool East China pool" in found.message and "claim it" in found.message


def test_claim_only_warns_about_the_also_check_entity(records: Records) -> None:
    lead = records.create(BOB, "prospect", {"person": "Wang", "company": "Acme Co., Ltd."})
    found = refusal(lambda: records.create(ANN, "customer", {"name": "ACME  corporation"}))
    assert found.details["confirmable"] is True
    assert found.details["candidates"][0] == {
        "id": lead["id"],
        "entity": "prospect",
        "title": "Wang",
        "owner": {"id": 3, "name": "Bob Wu"},
        "pool": None,
        "score": 1.0,
    }
    made = records.create(
        ANN, "customer", {"name": "ACME  corporation"}, confirm_duplicates=["same_name"]
    )
    # and the other way round: a prospect of that company now warns about the customer
    again = refusal(lambda: records.create(BOB, "prospect", {"company": "acme inc."}))
    assert {(c["entity"], c["id"]) for c in again.details["candidates"]} == {
        ("prospect", lead["id"]),
        ("customer", made["id"]),
    }


def test_warn_is_saved_once_confirmed(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "Acme", "phone": "+86 138-0013-8000"})
    found = refusal(
        lambda: records.create(ADMIN, "customer", {"name": "Beta", "mobile": "13800138000"})
    )
    assert (found.details["rule"], found.details["confirmable"]) == ("same_phone", True)
    assert "confirm the rule same_phone" in found.message
    made = records.create(
        ADMIN,
        "customer",
        {"name": "Beta", "mobile": "13800138000"},
        confirm_duplicates=["same_phone"],
    )
    assert made["mobile"] == "13800138000"


def test_a_create_the_rules_let_through_writes_its_keys_and_audit(records: Records) -> None:
    """On PostgreSQL a create's lookup travels in the record's own statement, which writes
    only when the lookup finds nothing (prospects' rules are exact, so theirs does). One
    that finds a key it may pass — a warning confirmed — is written by a second statement,
    with its keys and its audit row; one refused writes nothing."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("WITH"):
            statements.append(statement.split()[1])

    first = records.create(ADMIN, "prospect", {"person": "Li", "company": "Acme"})
    sa.event.listen(records.engine, "before_cursor_execute", seen)
    try:
        found = refusal(
            lambda: records.create(ADMIN, "prospect", {"person": "Wu", "company": "ACME"})
        )
        assert [c["id"] for c in found.details["candidates"]] == [first["id"]]
        assert [k[3] for k in keys(records.engine, "prospect")] == [first["id"]]
        statements.clear()
        made = records.create(
            ADMIN, "prospect", {"person": "Wu", "company": "ACME"},
            confirm_duplicates=["same_company"],
        )  # fmt: skip
    finally:
        sa.event.remove(records.engine, "before_cursor_execute", seen)
    if records.engine.dialect.name == "postgresql":
        assert statements == ["found", "created"]  # found, so written without the lookup
    stored = keys(records.engine, "prospect")
    assert [k[3] for k in stored] == [first["id"], made["id"]]
    assert stored[0][1] == stored[1][1] == "acme"
    audit = records.tables.metadata.tables[AUDIT_TABLE]
    with records.engine.connect() as conn:
        actions = conn.execute(
            sa.select(audit.c.action).where(
                audit.c.entity == "prospect", audit.c.record_id == made["id"]
            )
        ).scalars()
        assert list(actions) == ["create"]
    assert made["company"] == "ACME" and made["id"] > first["id"]


def test_every_refusing_rule_is_listed_the_hardest_first(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "Acme", "tax_id": "T1", "phone": "021-5555"})
    found = refusal(
        lambda: records.create(
            ADMIN, "customer", {"name": "ACME Inc.", "tax_id": "T1", "phone": "0215555"}
        )
    )
    assert [(r["rule"], r["action"]) for r in found.details["rules"]] == [
        ("same_tax_id", "block"),
        ("same_name", "claim"),
        ("same_phone", "warn"),
        ("similar_name", "warn"),
    ]
    assert found.details["rule"] == "same_tax_id"


def test_confirmations_name_rules_of_the_entity(records: Records) -> None:
    for wrong in (["same_nam"], "same_name", [3], {"same_name": True}):
        with pytest.raises(BadRequest) as caught:
            records.create(ADMIN, "customer", {"name": "A"}, confirm_duplicates=wrong)
        assert "confirm_duplicates" in caught.value.fields
    with pytest.raises(BadRequest, match="names rules"):
        records.create(ADMIN, "pool", {"name": "P"}, confirm_duplicates=["same_name"])


def test_candidates_out_of_sight_show_title_and_owner_only(records: Records) -> None:
    theirs = records.create(BOB, "customer", {"name": "Globex", "note": "secret terms"})
    with pytest.raises(NotFound):
        records.get(ANN, "customer", theirs["id"])
    found = refusal(lambda: records.create(ANN, "customer", {"name": "GLOBEX"}))
    (candidate,) = found.details["candidates"]
    assert candidate == {
        "id": theirs["id"],
        "entity": "customer",
        "title": "Globex",
        "owner": {"id": 3, "name": "Bob Wu"},
        "pool": None,
        "score": 1.0,
    }
    assert "secret" not in str(found.details)


def test_match_any_compares_every_field_with_every_field(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "A", "phone": "0086 139 0000 1111"})
    found = refusal(
        lambda: records.create(ADMIN, "customer", {"name": "B", "mobile": "13900001111"})
    )
    assert found.details["rule"] == "same_phone"


def test_made_from_is_no_duplicate(records: Records) -> None:
    lead = records.create(ADMIN, "prospect", {"company": "Initech"})
    made = records.create(
        ADMIN, "customer", {"name": "Initech Inc."}, made_from=("prospect", lead["id"])
    )
    assert made["name"] == "Initech Inc."


# --- keys kept -----------------------------------------------------------------------------


def test_keys_follow_creates_updates_and_deletes(records: Records) -> None:
    made = records.create(ADMIN, "customer", {"name": "Acme Corp.", "phone": "+86 21 5555 0000"})
    rid = made["id"]
    assert keys(records.engine, "customer") == [
        ("same_name", "acme", "customer", rid),
        ("same_phone", "02155550000", "customer", rid),
        ("similar_name", "acme", "customer", rid),
    ]
    changed = records.update(
        ADMIN,
        "customer",
        rid,
        {"name": "Acme Trading", "mobile": "13800138000"},
        version=made["version"],
    )
    assert keys(records.engine, "customer") == [
        ("same_name", "acme trading", "customer", rid),
        ("same_phone", "02155550000", "customer", rid),
        ("same_phone", "13800138000", "customer", rid),
        ("similar_name", "acme trading", "customer", rid),
    ]
    records.delete(ADMIN, "customer", rid, version=changed["version"])
    assert keys(records.engine) == []


def test_an_update_checks_only_the_keys_it_adds(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "Acme", "phone": "0215555"})
    twin = records.create(
        ADMIN, "customer", {"name": "Beta", "phone": "021-5555"}, confirm_duplicates=["same_phone"]
    )
    # the accepted warning is not repeated for a change elsewhere, or for the same number
    twin = records.update(ADMIN, "customer", twin["id"], {"note": "x"}, version=twin["version"])
    twin = records.update(
        ADMIN, "customer", twin["id"], {"phone": "(021) 5555"}, version=twin["version"]
    )
    # a new number that is someone else's is
    found = refusal(
        lambda: records.update(
            ADMIN, "customer", twin["id"], {"name": "acme"}, version=twin["version"]
        )
    )
    assert found.details["rule"] == "same_name"
    assert all(c["id"] != twin["id"] for c in found.details["candidates"])


def test_a_refused_update_changes_nothing(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "Acme"})
    other = records.create(ADMIN, "customer", {"name": "Beta"})
    before = keys(records.engine)
    refusal(
        lambda: records.update(
            ADMIN, "customer", other["id"], {"name": "acme"}, version=other["version"]
        )
    )
    assert records.get(ADMIN, "customer", other["id"])["name"] == "Beta"
    assert keys(records.engine) == before


def test_long_keys_are_stored_as_digests(records: Records) -> None:
    name = "Acme " + "x" * (MAX_KEY + 10)
    records.create(ADMIN, "customer", {"name": name})
    stored = {key for rule, key, *_ in keys(records.engine) if rule == "same_name"}
    assert stored == {stored_key(name.lower())}
    assert next(iter(stored)).startswith("\x1f#") and len(next(iter(stored))) == 66
    found = refusal(lambda: records.create(ADMIN, "customer", {"name": name.upper()}))
    assert found.details["rule"] == "same_name"


# --- fuzzy rules ---------------------------------------------------------------------------


def test_fuzzy_rules_find_near_misses_through_trigrams(records: Records) -> None:
    near = records.create(ADMIN, "customer", {"name": "Acme International Trading"})
    records.create(ADMIN, "customer", {"name": "Umbrella Pharmaceuticals"})
    found = refusal(
        lambda: records.create(ADMIN, "customer", {"name": "ACME Internatonal Trading Ltd."})
    )
    assert found.details["rule"] == "similar_name"
    (candidate,) = found.details["candidates"]
    assert candidate["id"] == near["id"] and 0.9 <= candidate["score"] < 1
    made = records.create(
        ADMIN,
        "customer",
        {"name": "ACME Internatonal Trading Ltd."},
        confirm_duplicates=["similar_name"],
    )
    assert made["id"]


def test_fuzzy_keys_shorter_than_a_trigram_match_exactly(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "京东"})
    records.create(ADMIN, "customer", {"name": "京"})  # a single character: not similar
    found = refusal(lambda: records.create(ADMIN, "customer", {"name": "京东 Inc."}))
    assert {r["rule"] for r in found.details["rules"]} == {"same_name", "similar_name"}


def test_fuzzy_rules_use_the_trigram_index(records: Records) -> None:
    """The candidates come from the index: pg_trgm's GIN index, or SQLite's FTS5 table."""
    records.create(ADMIN, "customer", {"name": "Acme International Trading"})
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(records.engine, "before_cursor_execute", seen)
    try:
        refusal(lambda: records.create(ADMIN, "customer", {"name": "Acme Internatonal Trading"}))
    finally:
        sa.event.remove(records.engine, "before_cursor_execute", seen)
    marker = "%" if records.engine.dialect.name == "postgresql" else "__fts"
    assert any(marker in s and DUPLICATE_KEY_TABLE in s for s in statements), statements
    with records.engine.connect() as conn:
        if records.engine.dialect.name == "postgresql":
            assert conn.scalar(
                sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
                {"n": "ix_heddle_duplicate_key_key_trgm"},
            )
        else:
            assert conn.scalar(
                sa.text("SELECT count(*) FROM sqlite_master WHERE name = :n"),
                {"n": f"{DUPLICATE_KEY_TABLE}__fts"},
            )


# --- rebuilt by migrate --------------------------------------------------------------------

PLAIN = DUP.replace(
    """  - name: same_tax_id
    fields: [tax_id]
    action: block
""",
    "",
)


def fresh(engine: Engine, model: Model) -> Records:
    """``model`` migrated on a database of the test's own (``db_engine``)."""
    migrate(engine, model)
    made = Records(engine, model)
    people(engine, made)
    return made


def test_migrate_builds_the_keys_of_a_new_rule(db_engine: Engine, tmp_path: Path) -> None:
    before = load(tmp_path, PLAIN, "before.yaml")
    records = fresh(db_engine, before)
    for n in range(5):
        records.create(
            ADMIN,
            "customer",
            {"name": f"C{n}", "tax_id": f"T{n % 3}"},
            confirm_duplicates=["similar_name"],
        )
    assert not [k for k in keys(db_engine) if k[0] == "same_tax_id"]
    after = load(tmp_path)
    planned = plan(db_engine, after)
    assert [(op.kind, op.description) for op in planned.operations] == [
        (
            "build_duplicate_keys",
            "build the duplicate keys of customer.same_tax_id: a new rule (5 records)",
        )
    ]
    assert "DELETE FROM heddle_duplicate_key" in planned.operations[0].sql[0]
    migrate(db_engine, after)
    assert [k[1] for k in keys(db_engine) if k[0] == "same_tax_id"] == [
        "T0",
        "T1",
        "T2",
        "T0",
        "T1",
    ]
    assert plan(db_engine, after).empty
    found = refusal(
        lambda: Records(db_engine, after).create(ADMIN, "customer", {"name": "X", "tax_id": "T2"})
    )
    assert found.details["rule"] == "same_tax_id"


def test_migrate_rebuilds_a_changed_rule_and_drops_a_removed_one(
    db_engine: Engine, model: Model, tmp_path: Path
) -> None:
    records = fresh(db_engine, model)
    records.create(ADMIN, "customer", {"name": "Acme (Shanghai) Co., Ltd."})
    changed = load(
        tmp_path,
        DUP.replace(
            "normalize: [case, space, width, company_suffix, punctuation]\n    fuzzy: 0.9",
            "normalize: [case, punctuation]\n    fuzzy: 0.9",
        ).replace(
            """  - name: same_tax_id
    fields: [tax_id]
    action: block
""",
            "",
        ),
        "changed.yaml",
    )
    planned = plan(db_engine, changed)
    kinds = sorted((op.kind, op.description.split(":")[0]) for op in planned.operations)
    assert kinds == [
        ("rebuild_duplicate_keys", "rebuild the duplicate keys of customer.similar_name"),
    ]  # same_tax_id stored no key (no customer has a tax id): nothing to drop
    migrate(db_engine, changed)
    assert [k[1] for k in keys(db_engine) if k[0] == "similar_name"] == ["acme shanghai co ltd"]
    with db_engine.connect() as conn:
        rules = conn.execute(
            sa.text(f"SELECT entity, rule FROM {DUPLICATE_RULE_TABLE} ORDER BY entity, rule")
        ).all()
    assert [tuple(r) for r in rules] == [
        ("customer", "same_name"),
        ("customer", "same_phone"),
        ("customer", "similar_name"),
        ("prospect", "same_company"),
    ]


def test_a_new_normalizer_version_rebuilds_its_rules(
    db_engine: Engine, model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = fresh(db_engine, model)
    from engine.duplicates import _registry

    records.create(ADMIN, "customer", {"name": "Acme", "phone": "021 5555"})
    assert plan(db_engine, model).empty
    monkeypatch.setitem(_registry._VERSIONS, "phone", _registry._VERSIONS["phone"] + 1)
    planned = plan(db_engine, model)
    assert [op.description for op in planned.operations] == [
        "rebuild the duplicate keys of customer.same_phone: its fields or normalizers "
        "changed (1 records)"
    ]
    migrate(db_engine, model)
    assert plan(db_engine, model).empty


# --- races ---------------------------------------------------------------------------------


def _at_once(records: Records, first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Create both records from two threads released together; what each got."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def write(values: dict[str, Any]) -> None:
        barrier.wait()
        try:
            records.create(ADMIN, "customer", values, confirm_duplicates=["similar_name"])
            outcomes.append("created")
        except DuplicateFound as exc:
            outcomes.append(exc.details["rule"])

    threads = [threading.Thread(target=write, args=(v,)) for v in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_writers_of_one_key_at_once_one_succeeds(pg_engine: Engine, model: Model) -> None:
    """Two sessions create the same key under a block (or claim) rule at the same moment:
    the advisory lock makes the second wait for the first, then find its key."""
    records = fresh(pg_engine, model)
    for n in range(4):  # block: only the tax id is shared
        outcomes = _at_once(
            records, {"name": f"A{n}", "tax_id": f"T{n}"}, {"name": f"B{n}", "tax_id": f"T{n}"}
        )
        assert outcomes == ["created", "same_tax_id"]
    for n in range(4):  # claim, against a record of the entity itself
        outcomes = _at_once(records, {"name": f"Acme {n}"}, {"name": f"ACME  {n} Inc."})
        assert outcomes == ["created", "same_name"]
    customers = records.tables.table("customer")
    with pg_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(customers)) == 8


def _advisory_locks(engine: Engine, pid: int) -> tuple[int, int]:
    """The advisory locks backend ``pid`` holds, and those other backends wait for."""
    with engine.connect() as conn:
        held = conn.scalar(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = :pid"), {"pid": pid})  # fmt: skip
        waiting = conn.scalar(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
    return int(held), int(waiting)  # fmt: skip


def _wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_transaction_holding_a_key_space_takes_no_lock_per_key(
    pg_engine: Engine, model: Model
) -> None:
    """A transaction of many writes (an import all or nothing) holds its key spaces whole:
    one lock per key space, however many keys — not one per key to its end, which ran
    PostgreSQL's shared lock table out at 20,000 accounts."""
    records = fresh(pg_engine, model)
    with pg_engine.connect() as conn, conn.begin():
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        records.dedupe.hold(conn, "customer")
        for n in range(30):
            records.create(ADMIN, "customer", {"name": f"Held {n}", "tax_id": f"H{n}"},
                           conn=conn, confirm_duplicates=["similar_name"])  # fmt: skip
        spaces = {rule.key_space for rule in records.dedupe.of("customer") if rule.locks}
        assert _advisory_locks(pg_engine, pid) == (len(spaces), 0)
    with pg_engine.connect() as conn, conn.begin():  # the next transaction locks its keys
        assert records.dedupe.held(conn) == frozenset()
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        records.create(ADMIN, "customer", {"name": "Unheld", "tax_id": "U1"}, conn=conn,
                       confirm_duplicates=["similar_name"])
        # its two key spaces shared, and its name's and tax id's keys alone
        assert _advisory_locks(pg_engine, pid) == (4, 0)


def test_a_writer_waits_for_a_transaction_holding_its_key_space(
    pg_engine: Engine, model: Model
) -> None:
    """A writer of a key in a key space another transaction holds waits until it commits,
    then sees its keys; a writer of rules that do not lock (a warning) does not wait."""
    records = fresh(pg_engine, model)
    outcome: list[str] = []

    def write() -> None:
        try:
            records.create(ADMIN, "customer", {"name": "ACME  Trading Inc."})
            outcome.append("created")
        except DuplicateFound as exc:
            outcome.append(exc.details["rule"])

    with pg_engine.connect() as conn, conn.begin():
        records.dedupe.hold(conn, "customer")
        records.create(ADMIN, "customer", {"name": "Acme Trading"}, conn=conn)
        writer = threading.Thread(target=write)
        writer.start()
        _wait_for(lambda: _advisory_locks(pg_engine, 0)[1] > 0)  # it waits
        records.create(ADMIN, "prospect", {"company": "Beta Trading"})  # a warning's: no wait
        assert outcome == []
    writer.join(10)
    assert outcome == ["same_name"]  # it saw the name once the holder committed


def test_a_dry_run_holds_its_key_spaces_without_locking(pg_engine: Engine, model: Model) -> None:
    """A transaction rolled back anyway (a dry run) takes no lock at all: no writer waits."""
    records = fresh(pg_engine, model)
    with pg_engine.connect() as conn:
        outer = conn.begin()
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        records.dedupe.hold(conn, "customer", lock=False)
        records.create(ADMIN, "customer", {"name": "Dry Trading", "tax_id": "D1"}, conn=conn)
        assert _advisory_locks(pg_engine, pid) == (0, 0)
        records.create(ADMIN, "customer", {"name": "Dry Trading Two", "tax_id": "D1x"},
                       confirm_duplicates=["similar_name"])
        outer.rollback()


def test_the_lookup_is_an_index_probe(pg_engine: Engine, model: Model) -> None:
    """Checking a name against 100,000 stored keys reads the lookup index, never the table."""
    records = fresh(pg_engine, model)
    _many_keys(pg_engine, records)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and DUPLICATE_KEY_TABLE in statement:
            statements.append((statement, parameters))

    sa.event.listen(pg_engine, "before_cursor_execute", seen)
    try:
        records.create(ADMIN, "customer", {"name": "Company 7 Ltd."})  # no customer row 7
    except DuplicateFound:
        pass
    finally:
        sa.event.remove(pg_engine, "before_cursor_execute", seen)
    # the exact lookup: the new keys joined to the key table (the fuzzy one has its %%)
    exact = [s for s in statements if "FROM unnest(" in s[0] and "%%" not in s[0]]
    assert exact, statements
    with pg_engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + exact[0][0], exact[0][1])
            explained = cursor.fetchone()[0]
    nodes = list(_nodes(explained[0]["Plan"]))
    scans = [(n["Node Type"], n.get("Index Name"), n.get("Relation Name")) for n in nodes]
    assert any(index == "ix_heddle_duplicate_key_lookup" for _, index, _ in scans), scans
    assert not any(
        kind == "Seq Scan" and relation == DUPLICATE_KEY_TABLE for kind, _, relation in scans
    ), scans


def _many_keys(engine: Engine, records: Records) -> None:
    """100,000 stored keys of customers' names, the table analyzed."""
    space = records.dedupe.rules.get("customer", "same_name")
    assert space is not None
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {DUPLICATE_KEY_TABLE} (key_space, key, entity, record_id, rule)"
                " SELECT :space, 'company ' || n, 'customer', n, 'same_name'"
                " FROM generate_series(1, 100000) AS n"
            ),
            {"space": space.key_space},
        )
        conn.execute(sa.text(f"ANALYZE {DUPLICATE_KEY_TABLE}"))


def test_the_lookup_is_planned_once(pg_engine: Engine, model: Model) -> None:
    """PostgreSQL keeps one plan for the prepared lookup rather than planning it again at
    every create (the key arrays are read through sub-selects: ``LOOKUP``)."""
    records = fresh(pg_engine, model)
    _many_keys(pg_engine, records)
    # psycopg prepares it at its 5th execution; PostgreSQL tries 5 custom plans first
    names = "Acme Borealis Cygnet Dorado Ember Fjord Gantry Helix Ionic Juniper Kestrel"
    for name in [*names.split(), "Lumen", "Mosaic", "Nimbus"]:
        records.create(ADMIN, "customer", {"name": name})
    with pg_engine.connect() as conn:  # the pool's one connection: the creates' own
        plans = conn.execute(
            sa.text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE :lookup"
            ),
            {"lookup": f"%AS w(key_space, key)%{DUPLICATE_KEY_TABLE}%"},
        ).all()
    assert len(plans) == 1 and plans[0].generic_plans >= 3, plans


def _nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def test_the_check_needs_no_lock_for_warnings(pg_engine: Engine, model: Model) -> None:
    """Only block and claim rules take advisory locks: a warning is advice."""
    records = fresh(pg_engine, model)
    statements: list[str] = []
    sa.event.listen(pg_engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    records.create(ADMIN, "prospect", {"company": "Acme"})
    assert not any("pg_advisory_xact_lock" in s for s in statements)
    records.create(ADMIN, "customer", {"name": "Beta"})
    assert any("pg_advisory_xact_lock" in s for s in statements)


def test_records_made_without_migrate_still_get_keys(db_engine: Engine, model: Model) -> None:
    """Tables made by create_all (as many tests do) have the key table too."""
    records = Records(db_engine, model)
    records.tables.metadata.create_all(db_engine)
    people(db_engine, records)
    records.create(ADMIN, "customer", {"name": "Acme"})
    found = refusal(lambda: records.create(ADMIN, "customer", {"name": "acme"}))
    assert found.details["rule"] == "same_name"


def test_the_rule_is_labelled_in_the_writers_language(records: Records) -> None:
    records.create(ADMIN, "customer", {"name": "Acme"})
    zh = dataclasses.replace(ADMIN, locale="zh")
    found = refusal(lambda: records.create(zh, "customer", {"name": "ＡＣＭＥ"}))
    assert found.details["label"] == "客户名称重复"
    assert found.message.startswith("客户名称重复: customer 'Acme'")


def test_a_key_shared_by_many_records_hides_no_other(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.dedupe import _index

    monkeypatch.setattr(_index, "MAX_HITS", 2)
    for n in range(3):  # one switchboard number for many customers
        records.create(
            ADMIN,
            "customer",
            {"name": f"Branch {n}", "phone": "400-800-8888"},
            confirm_duplicates=["same_phone", "similar_name"],
        )
    records.create(ADMIN, "customer", {"name": "Initech"})
    found = refusal(
        lambda: records.create(
            ADMIN,
            "customer",
            {"name": "INITECH", "phone": "4008008888"},
            confirm_duplicates=["same_phone", "similar_name"],
        )
    )
    assert found.details["rule"] == "same_name"
