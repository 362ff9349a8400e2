"""Records.merge on SQLite and PostgreSQL: survivorship per field, every reference moved,
the loser archived and deleted with its history handed over, keys recomputed, and the
permissions a merge needs."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from engine import (
    Actor,
    BadRequest,
    DuplicateFound,
    Forbidden,
    NotFound,
    Records,
    StaleVersion,
    ValidationFailed,
    migrate,
)
from engine.comments import Comments
from engine.migrations import restore
from engine.tables import (
    ARCHIVE_TABLE,
    AUDIT_TABLE,
    DUPLICATE_KEY_TABLE,
    TEAM_TABLE,
    TRANSITION_TABLE,
    USER_TABLE,
)
from metamodel import Model, load_packages
from workflows import attach

SHOP = """\
kind: package
name: shop
---
kind: role
name: rep
permissions:
  "*": {read: all, create: all, update: own, delete: none}
  customer: {read: all, create: all, update: all, delete: own, fields: {rating: readonly}}
---
kind: entity
name: customer
ownable: true
title_field: name
fields:
  name: {type: string, required: true}
  code: {type: autonumber, format: "C-{seq:03}"}
  email: {type: email, unique: true}
  phone: {type: phone}
  city: {type: string}
  rating: {type: integer}
  tags: {type: multichoice, options: [vip, new]}
  parent: {type: reference, to: customer, on_delete: set_null}
  deal_total: {type: rollup, of: deal, via: customer, aggregate: sum, field: amount}
  deals: {type: rollup, of: deal, via: customer, aggregate: count}
  addresses: {type: children, entity: address}
validations:
  - name: not_own_parent
    rule: is_empty(parent) or parent != id
    message: {en: A customer cannot be its own parent}
    fields: [parent]
duplicate_rules:
  - name: same_name
    fields: [name]
    normalize: [case, space, company_suffix]
    action: warn
  - name: same_phone
    fields: [phone]
    normalize: [phone]
    action: block
---
kind: entity
name: address
child: true
fields:
  customer: {type: reference, to: customer, on_delete: cascade}
  line: {type: string, required: true}
---
kind: entity
name: deal
ownable: true
fields:
  title: {type: string, required: true}
  customer: {type: reference, to: customer, required: true, on_delete: restrict}
  amount: {type: money, required: true}
---
kind: entity
name: relation
fields:
  a: {type: reference, to: customer, required: true, on_delete: cascade}
  b: {type: reference, to: customer, required: true, on_delete: cascade}
validations:
  - name: two_parties
    rule: a != b
    message: {en: A customer cannot be related to itself}
    fields: [b]
"""

NOW = dt.datetime.now(dt.UTC)
ADMIN = Actor(user_id=1, team_id=1, roles=frozenset({"admin"}))
ANN = Actor(user_id=2, team_id=1, roles=frozenset({"rep"}))
BOB = Actor(user_id=3, team_id=1, roles=frozenset({"rep"}))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = tmp_path_factory.mktemp("shop") / "shop.yaml"
    path.write_text(textwrap.dedent(SHOP), encoding="utf-8")
    return load_packages([path])


@pytest.fixture(scope="module")
def database(module_db_url: str, model: Model) -> Iterator[Records]:
    """The package migrated once per module and database, with its people."""
    engine = sa.create_engine(module_db_url)
    migrate(engine, model)
    made = Records(engine, model)
    tables = made.tables.metadata.tables
    with engine.begin() as conn:
        conn.execute(tables[TEAM_TABLE].insert(), [{"name": "East", "created_at": NOW}])
        conn.execute(
            tables[USER_TABLE].insert(),
            [
                {"username": u, "name": u.title(), "roles": r, "team_id": 1, "created_at": NOW}
                for u, r in (("root", ["admin"]), ("ann", ["rep"]), ("bob", ["rep"]))
            ],
        )
    yield made
    engine.dispose()


@pytest.fixture
def records(database: Records) -> Records:
    """The module's database, without the records of the tests before."""
    tables = database.tables
    system = tables.metadata.tables
    emptied = [tables.table(n) for n in ("relation", "deal", "address", "customer")] + [
        system[n] for n in (DUPLICATE_KEY_TABLE, AUDIT_TABLE, ARCHIVE_TABLE, TRANSITION_TABLE)
    ]
    with database.engine.begin() as conn:
        for table in emptied:
            conn.execute(table.delete())
    return database


def two(records: Records, **both: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer, and its duplicate with more filled in (made by the admin)."""
    survivor = records.create(
        ADMIN, "customer", {"name": "Acme", "city": None, "rating": 3, "tags": ["vip"], **both}
    )
    other = records.create(
        ADMIN,
        "customer",
        {
            "name": "ACME Inc.",
            "email": "sales@acme.example",
            "phone": "021-5555",
            "city": "Shanghai",
            "rating": 5,
            "addresses": [{"line": "1 Bund"}],
            **both,
        },
        confirm_duplicates=["same_name"],
    )
    return survivor, other


def merge(
    records: Records,
    survivor: dict[str, Any],
    loser: dict[str, Any],
    actor: Actor = ADMIN,
    **kwargs: Any,
) -> dict[str, Any]:
    return records.merge(
        actor,
        "customer",
        survivor["id"],
        loser["id"],
        version=survivor["version"],
        loser_version=loser["version"],
        **kwargs,
    )


def test_survivorship_fills_blanks_and_follows_choices(records: Records) -> None:
    survivor, loser = two(records)
    merged = merge(records, survivor, loser, fields={"rating": "loser", "tags": {"value": []}})
    assert merged["id"] == survivor["id"]
    assert merged["name"] == "Acme"  # the survivor's, not named
    assert merged["code"] == survivor["code"]  # autonumbers are the survivor's own
    assert merged["email"] == "sales@acme.example"  # a blank filled from the loser
    assert merged["city"] == "Shanghai"
    assert merged["rating"] == 5  # chosen
    assert merged["tags"] == []  # given
    assert merged["version"] == survivor["version"] + 1
    with pytest.raises(NotFound):
        records.get(ADMIN, "customer", loser["id"])


def test_references_and_child_rows_move_to_the_survivor(records: Records) -> None:
    survivor, loser = two(records)
    records.create(ADMIN, "deal", {"title": "S", "customer": survivor["id"], "amount": "100"})
    moved = records.create(ADMIN, "deal", {"title": "L", "customer": loser["id"], "amount": "50"})
    child = records.create(ADMIN, "customer", {"name": "Acme Beijing", "parent": loser["id"]})
    merged = merge(records, survivor, loser)
    assert records.get(ADMIN, "deal", moved["id"])["customer"] == survivor["id"]
    assert records.get(ADMIN, "customer", child["id"])["parent"] == survivor["id"]
    assert [a["line"] for a in merged["addresses"]] == ["1 Bund"]
    assert (merged["deals"], str(merged["deal_total"])) == (2, "150.00")
    history = records.history(ADMIN, "deal", moved["id"])
    assert history[-1]["changes"] == {"customer": [loser["id"], survivor["id"]]}


def test_the_losers_comments_move_to_the_survivor(records: Records) -> None:
    attach(records.events)  # the workflows layer moves comments after a merge (once a bus)
    comments = Comments(records)
    survivor, loser = two(records)
    comments.add(ADMIN, "customer", survivor["id"], "first")
    comments.add(ANN, "customer", loser["id"], "  second\n")
    with pytest.raises(ValidationFailed) as refused:
        comments.add(ANN, "customer", loser["id"], " ")
    assert list(refused.value.fields) == ["body"]
    merge(records, survivor, loser)
    found = comments.list(BOB, "customer", survivor["id"])
    assert [(c["body"], c["author"]) for c in found] == [("second", "Ann"), ("first", "Root")]
    with pytest.raises(NotFound):
        comments.list(ADMIN, "customer", loser["id"])


def test_a_reference_between_the_two_is_cleared(records: Records) -> None:
    survivor = records.create(ADMIN, "customer", {"name": "Parent Co"})
    loser = records.create(ADMIN, "customer", {"name": "Child Co", "parent": survivor["id"]})
    survivor = records.update(
        ADMIN, "customer", survivor["id"], {"parent": loser["id"]}, version=survivor["version"]
    )
    merged = merge(records, survivor, loser)
    assert merged["parent"] is None


def test_a_row_whose_rules_refuse_the_move_stops_the_merge(records: Records) -> None:
    survivor, loser = two(records)
    relation = records.create(ADMIN, "relation", {"a": survivor["id"], "b": loser["id"]})
    with pytest.raises(ValidationFailed) as caught:
        merge(records, survivor, loser)
    assert caught.value.fields == {
        f"relation[{relation['id']}].b": ["A customer cannot be related to itself"]
    }
    assert "change or delete them first" in caught.value.message
    # nothing happened
    assert records.get(ADMIN, "customer", loser["id"])["version"] == loser["version"]
    assert records.get(ADMIN, "relation", relation["id"])["b"] == loser["id"]


def test_the_loser_is_archived_and_can_be_restored(records: Records, model: Model) -> None:
    survivor, loser = two(records)
    merge(records, survivor, loser)
    archive = records.tables.metadata.tables[ARCHIVE_TABLE]
    with records.engine.connect() as conn:
        row = conn.execute(sa.select(archive).where(archive.c.record_id == loser["id"])).one()
    assert (row.source_table, row.source_column) == ("customer", None)
    assert row.data["email"] == "sales@acme.example" and row.data["rating"] == 5
    assert row.model_hash == model.hash
    # the archive's way back, as after a dropped table (the merge's own changes stay)
    with records.engine.begin() as conn:  # its email is the survivor's now: free it to restore
        conn.execute(sa.text("UPDATE customer SET email = NULL"))
    assert restore(records.engine, model, "customer") == 1
    assert records.get(ADMIN, "customer", loser["id"])["name"] == "ACME Inc."


def test_the_losers_history_is_the_survivors(records: Records) -> None:
    survivor, loser = two(records)
    loser = records.update(
        ADMIN, "customer", loser["id"], {"city": "Suzhou"}, version=loser["version"]
    )
    transitions = records.tables.metadata.tables[TRANSITION_TABLE]
    with records.engine.begin() as conn:
        conn.execute(
            transitions.insert().values(
                entity="customer",
                record_id=loser["id"],
                workflow="w",
                transition="t",
                from_state="a",
                to_state="b",
                at=NOW,
                version=2,
            )
        )
    before = records.as_of(ADMIN, "customer", survivor["id"], dt.datetime.now(dt.UTC))
    merge(records, survivor, loser, fields={"city": "survivor"})
    history = records.history(ADMIN, "customer", survivor["id"])
    assert [(e["action"], e.get("merged_from")) for e in history] == [
        ("create", None),
        ("create", loser["id"]),
        ("update", loser["id"]),
        ("delete", loser["id"]),
        ("merge", None),
    ]
    assert history[-1]["changes"]["id"] == [loser["id"], survivor["id"]]
    assert history[-1]["changes"]["email"] == [None, "sales@acme.example"]
    audit = records.tables.metadata.tables[AUDIT_TABLE]
    with records.engine.connect() as conn:
        left = conn.scalar(
            sa.select(sa.func.count()).where(
                audit.c.entity == "customer", audit.c.record_id == loser["id"]
            )
        )
        moved = conn.scalar(sa.select(transitions.c.record_id).where(transitions.c.workflow == "w"))
    assert (left, moved) == (0, survivor["id"])
    # as_of replays the survivor's own states: the loser's entries are not its states
    assert before is not None
    now = records.as_of(ADMIN, "customer", survivor["id"], dt.datetime.now(dt.UTC))
    assert now is not None
    assert (before["name"], before["city"]) == (now["name"], now["city"]) == ("Acme", None)
    assert now["email"] == "sales@acme.example"
    assert now["version"] == survivor["version"] + 1


def test_keys_follow_the_merge(records: Records) -> None:
    survivor, loser = two(records)
    merge(records, survivor, loser, fields={"name": "loser"})
    t = sa.table(DUPLICATE_KEY_TABLE, sa.column("key"), sa.column("record_id"), sa.column("rule"))
    with records.engine.connect() as conn:
        stored = sorted(conn.execute(sa.select(t.c.rule, t.c.key, t.c.record_id)).all())
    assert [tuple(r) for r in stored] == [
        ("same_name", "acme", survivor["id"]),
        ("same_phone", "0215555", survivor["id"]),
    ]
    # the loser's phone is the survivor's now: a new record with it is refused
    with pytest.raises(DuplicateFound) as caught:
        records.create(ADMIN, "customer", {"name": "Zeta", "phone": "0215555"})
    assert caught.value.details["candidates"][0]["id"] == survivor["id"]


def test_a_merge_that_makes_another_duplicate_is_checked(records: Records) -> None:
    survivor, loser = two(records)
    records.create(ADMIN, "customer", {"name": "Beta Trading"})
    with pytest.raises(DuplicateFound):
        merge(records, survivor, loser, fields={"name": {"value": "BETA trading"}})
    merged = merge(
        records,
        survivor,
        loser,
        fields={"name": {"value": "BETA trading"}},
        confirm_duplicates=["same_name"],
    )
    assert merged["name"] == "BETA trading"


def test_stale_versions_are_refused(records: Records) -> None:
    survivor, loser = two(records)
    with pytest.raises(StaleVersion):
        records.merge(
            ADMIN,
            "customer",
            survivor["id"],
            loser["id"],
            version=survivor["version"],
            loser_version=loser["version"] + 1,
        )
    with pytest.raises(StaleVersion):
        records.merge(
            ADMIN,
            "customer",
            survivor["id"],
            loser["id"],
            version=survivor["version"] + 1,
            loser_version=loser["version"],
        )


def test_bad_requests(records: Records) -> None:
    survivor, loser = two(records)
    with pytest.raises(BadRequest, match="into itself"):
        records.merge(ADMIN, "customer", survivor["id"], survivor["id"], version=1, loser_version=1)
    with pytest.raises(BadRequest) as caught:
        merge(
            records,
            survivor,
            loser,
            fields={"nme": "loser", "deals": "loser", "addresses": "loser", "city": "theirs"},
        )
    assert caught.value.fields == {
        "fields.nme": ["Unknown field."],
        "fields.deals": ["Not a field to choose: it is computed or set by the system."],
        "fields.addresses": ["Not a field to choose: the child rows of both records are kept."],
        "fields.city": ["Must be 'survivor', 'loser' or {\"value\": …}."],
    }
    with pytest.raises(BadRequest, match="rows of a customer"):
        records.merge(ADMIN, "address", 1, 2, version=1, loser_version=1)
    with pytest.raises(NotFound):
        records.merge(ADMIN, "customer", survivor["id"], 999, version=1, loser_version=1)


def test_the_user_must_update_the_survivor_and_delete_the_loser(records: Records) -> None:
    mine, theirs = two(records, owner_id=2)  # both Ann's
    bobs = records.create(
        ADMIN, "customer", {"name": "Acme Co", "owner_id": 3}, confirm_duplicates=["same_name"]
    )
    # Ann may update any customer, but delete only her own
    with pytest.raises(Forbidden, match="delete"):
        merge(records, mine, bobs, actor=ANN)
    with pytest.raises(BadRequest) as caught:
        merge(records, mine, theirs, actor=ANN, fields={"rating": "loser"})
    assert caught.value.fields == {"fields.rating": ["Read-only field."]}
    merged = merge(records, bobs, theirs, actor=ANN)
    # a field read-only to her is not filled in from the loser either
    assert merged["rating"] is None and merged["email"] == "sales@acme.example"


def test_a_merge_in_a_callers_transaction_leaves_it_usable(records: Records) -> None:
    survivor, loser = two(records)
    records.create(ADMIN, "relation", {"a": survivor["id"], "b": loser["id"]})
    with records.transaction() as conn:
        with pytest.raises(ValidationFailed):
            merge(records, survivor, loser, conn=conn)
        made = records.create(ADMIN, "customer", {"name": "After"}, conn=conn)
    assert records.get(ADMIN, "customer", made["id"])["name"] == "After"
    assert records.get(ADMIN, "customer", loser["id"])["name"] == "ACME Inc."


def test_after_merge_is_emitted(records: Records) -> None:
    seen: list[tuple[int | None, Any]] = []
    records.events.subscribe(
        "after_merge", lambda e: seen.append((e.record_id, (e.previous or {})["id"])), "customer"
    )
    survivor, loser = two(records)
    merge(records, survivor, loser)
    assert seen == [(survivor["id"], loser["id"])]
