"""Comments on records (engine.comments) on SQLite and PostgreSQL: the record's sight
decides who reads and adds them, bad text is refused as a field error, and a merge hands
the loser's comments to the survivor."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine import Actor, NotFound, Records, ValidationFailed, migrate
from engine.comments import MAX_LENGTH, Comments
from engine.tables import TEAM_TABLE, USER_TABLE
from metamodel import load_packages
from workflows import attach

SHOP = """\
kind: package
name: shop
---
kind: role
name: rep
permissions:
  customer: {read: own, create: own, update: own}
---
kind: entity
name: customer
ownable: true
fields:
  name: {type: string, required: true}
"""
NOW = dt.datetime.now(dt.UTC)
ADMIN = Actor(user_id=1, team_id=1, roles=frozenset({"admin"}))
ANN = Actor(user_id=2, team_id=1, roles=frozenset({"rep"}))
BOB = Actor(user_id=3, team_id=1, roles=frozenset({"rep"}))


@pytest.fixture
def records(db_engine: Engine, tmp_path: Path) -> Iterator[Records]:
    path = tmp_path / "shop.yaml"
    path.write_text(textwrap.dedent(SHOP), encoding="utf-8")
    model = load_packages([path])
    engine = db_engine
    migrate(engine, model)
    made = Records(engine, model)
    attach(made.events)
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


def test_who_may_read_a_record_reads_and_adds_its_comments(records: Records) -> None:
    comments = Comments(records)
    mine = records.create(ANN, "customer", {"name": "Acme"})["id"]
    made = comments.add(ANN, "customer", mine, "  Wants a quote\nby Friday  ")
    assert made["body"] == "Wants a quote\nby Friday" and made["author_id"] == 2
    comments.add(ADMIN, "customer", mine, "Offer 5 % at most")
    found = comments.list(ANN, "customer", mine)
    assert [(c["author"], c["body"]) for c in found] == [
        ("Root", "Offer 5 % at most"),
        ("Ann", "Wants a quote\nby Friday"),
    ]
    assert [c["body"] for c in comments.list(ANN, "customer", mine, limit=1)] == [
        "Offer 5 % at most"
    ]
    with pytest.raises(NotFound):  # Bob may not read Ann's customer: nor its comments
        comments.list(BOB, "customer", mine)
    with pytest.raises(NotFound):
        comments.add(BOB, "customer", mine, "hello")
    with pytest.raises(NotFound):
        comments.add(ADMIN, "customer", mine + 100, "nobody there")
    with pytest.raises(NotFound):
        comments.list(ADMIN, "supplier", mine)


@pytest.mark.parametrize("body", ["", "   \n", None, 42, "x" * (MAX_LENGTH + 1)])
def test_empty_long_or_non_text_comments_are_refused(records: Records, body: object) -> None:
    mine = records.create(ANN, "customer", {"name": "Acme"})["id"]
    with pytest.raises(ValidationFailed) as refused:
        Comments(records).add(ANN, "customer", mine, body)
    assert list(refused.value.fields) == ["body"]
    assert Comments(records).list(ANN, "customer", mine) == []


def test_a_merge_hands_the_losers_comments_to_the_survivor(records: Records) -> None:
    comments = Comments(records)
    survivor = records.create(ADMIN, "customer", {"name": "Acme"})
    loser = records.create(ADMIN, "customer", {"name": "Acme Inc."})
    comments.add(ADMIN, "customer", survivor["id"], "first")
    comments.add(ADMIN, "customer", loser["id"], "second")
    records.merge(
        ADMIN,
        "customer",
        survivor["id"],
        loser["id"],
        version=survivor["version"],
        loser_version=loser["version"],
    )
    bodies = [c["body"] for c in comments.list(ADMIN, "customer", survivor["id"])]
    assert bodies == ["second", "first"]
