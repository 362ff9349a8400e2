"""Permissions in the record service: scopes, field rules, several roles, child entities."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine.context import Actor
from engine.errors import Forbidden, NotFound, ValidationFailed
from engine.permissions import Permissions
from engine.records import Records
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import load_packages

PACKAGE = """\
kind: package
name: perms
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true}
  cost: {type: money}
  rating: {type: integer}
---
kind: entity
name: quote
ownable: true
fields:
  title: {type: string}
  lines: {type: children, entity: quote_line}
---
kind: entity
name: quote_line
child: true
fields:
  quote: {type: reference, to: quote, on_delete: cascade}
  product: {type: string}
  margin: {type: money}
---
kind: entity
name: note
fields:
  text: {type: string}
---
kind: role
name: rep
permissions:
  account:
    read: own
    create: own
    update: own
    fields: {cost: hidden, rating: readonly}
  quote: {read: own, create: own, update: own, delete: own}
  quote_line:
    fields: {margin: hidden}
  note: {read: team, create: own, update: own}
---
kind: role
name: manager
permissions:
  account: {read: team_and_below, create: team, update: team, delete: team}
  quote: {read: team_and_below}
---
kind: role
name: viewer
permissions:
  account:
    read: all
    fields: {cost: hidden}
  "*": {read: all}
"""

# Teams: East (1) over East-North (2); West (3).
ANN = Actor(user_id=1, team_id=2, roles=frozenset({"rep"}))
BOB = Actor(user_id=2, team_id=3, roles=frozenset({"rep"}))
MIA = Actor(user_id=3, team_id=1, roles=frozenset({"manager"}))
VIC = Actor(user_id=4, team_id=None, roles=frozenset({"viewer"}))
BOTH = Actor(user_id=5, team_id=3, roles=frozenset({"rep", "viewer"}))
ADMIN = Actor(user_id=6, roles=frozenset({"admin"}))


@pytest.fixture
def records(db_engine: Engine, tmp_path: Path) -> Records:
    path = tmp_path / "perms.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    model = load_packages([path])
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    now = dt.datetime.now(dt.UTC)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(),
            [
                {"id": 1, "name": "East", "parent_id": None, "created_at": now},
                {"id": 2, "name": "East-North", "parent_id": 1, "created_at": now},
                {"id": 3, "name": "West", "parent_id": None, "created_at": now},
            ],
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {"id": n, "username": name, "roles": [], "team_id": team, "created_at": now}
                for n, name, team in [
                    (1, "ann", 2),
                    (2, "bob", 3),
                    (3, "mia", 1),
                    (4, "vic", None),
                    (5, "zoe", 3),
                    (6, "root", None),
                ]
            ],
        )
    return Records(db_engine, model, tables=tables)


def test_reps_see_and_change_only_their_own(records: Records) -> None:
    mine = records.create(ANN, "account", {"name": "Ann's"})
    assert mine["owner_id"] == 1 and mine["team_id"] == 2
    assert "cost" not in mine and "rating" in mine
    bobs = records.create(BOB, "account", {"name": "Bob's"})
    with pytest.raises(NotFound):
        records.get(ANN, "account", bobs["id"])
    with pytest.raises(NotFound):
        records.update(ANN, "account", bobs["id"], {"name": "x"}, version=1)
    with pytest.raises(Forbidden):
        records.delete(ANN, "account", mine["id"], version=1)  # reps may not delete accounts
    with pytest.raises(ValidationFailed) as caught:
        records.update(ANN, "account", mine["id"], {"owner_id": 2}, version=1)
    assert caught.value.fields == {"owner_id": ["Outside what you may manage (own)."]}
    assert records.get(ADMIN, "account", mine["id"])["owner_id"] == 1  # nothing changed


def test_a_record_belongs_to_its_owners_team(records: Records) -> None:
    given = records.create(ADMIN, "account", {"name": "For Ann", "owner_id": 1})
    assert given["team_id"] == 2  # Ann's team, not the giver's (root has none)
    handed = records.update(ADMIN, "account", given["id"], {"owner_id": 2}, version=1)
    assert handed["team_id"] == 3  # handed over to Bob: Bob's team
    kept = records.update(ADMIN, "account", given["id"], {"name": "Renamed"}, version=2)
    assert kept["team_id"] == 3
    chosen = records.create(ADMIN, "account", {"name": "X", "owner_id": 1, "team_id": 1})
    assert chosen["team_id"] == 1  # a team sent is kept
    nobody = records.create(ADMIN, "account", {"name": "Y", "owner_id": 4})
    assert nobody["team_id"] is None  # Vic has no team
    # a manager (create: team, East) may not place a record in West by giving it to Bob
    with pytest.raises(ValidationFailed) as caught:
        records.create(MIA, "account", {"name": "Z", "owner_id": 2})
    assert caught.value.fields == {"owner_id": ["Outside what you may manage (team)."]}


def test_hidden_and_read_only_fields(records: Records) -> None:
    with pytest.raises(ValidationFailed) as caught:
        records.create(ANN, "account", {"name": "A", "cost": "10", "rating": 5})
    assert caught.value.fields == {"cost": ["Unknown field."], "rating": ["Read-only field."]}
    account = records.create(
        ADMIN, "account", {"name": "A", "cost": "10", "rating": 5, "owner_id": 1}
    )
    assert account["cost"] == 10
    seen = records.get(ANN, "account", account["id"])
    assert "cost" not in seen and seen["rating"] == 5
    records.update(ADMIN, "account", account["id"], {"cost": "12"}, version=1)
    history = records.history(ANN, "account", account["id"])
    assert all("cost" not in entry["changes"] for entry in history)
    assert "cost" in records.history(ADMIN, "account", account["id"])[0]["changes"]
    past = records.as_of(ANN, "account", account["id"], dt.datetime.now(dt.UTC))
    assert past is not None and "cost" not in past


def test_managers_read_their_team_and_below_but_change_only_their_team(records: Records) -> None:
    anns = records.create(ANN, "account", {"name": "Ann's"})  # team East-North, under East
    bobs = records.create(BOB, "account", {"name": "Bob's"})  # team West
    assert records.get(MIA, "account", anns["id"])["name"] == "Ann's"
    assert records.get(MIA, "account", anns["id"])["cost"] is None  # not hidden for managers
    with pytest.raises(NotFound):
        records.get(MIA, "account", bobs["id"])
    with pytest.raises(Forbidden):  # update scope is the manager's own team only
        records.update(MIA, "account", anns["id"], {"name": "x"}, version=1)
    east = records.create(MIA, "account", {"name": "East deal"})
    assert records.update(MIA, "account", east["id"], {"name": "East"}, version=1)["version"] == 2
    records.delete(MIA, "account", east["id"], version=2)


def test_viewers_read_everything_and_write_nothing(records: Records) -> None:
    account = records.create(ANN, "account", {"name": "A"})
    assert records.get(VIC, "account", account["id"])["name"] == "A"
    assert "cost" not in records.get(VIC, "account", account["id"])
    with pytest.raises(Forbidden, match="you may not create"):
        records.create(VIC, "account", {"name": "B"})
    with pytest.raises(Forbidden):
        records.update(VIC, "account", account["id"], {"name": "B"}, version=1)


def test_several_roles_grant_the_widest_scope_and_hide_only_what_all_hide(
    records: Records,
) -> None:
    account = records.create(ADMIN, "account", {"name": "A", "cost": "3", "owner_id": 1})
    both = records.get(BOTH, "account", account["id"])  # viewer reads all, rep only own
    assert "cost" not in both  # hidden for rep and for viewer
    note = records.create(ANN, "note", {"text": "hello"})
    assert records.get(BOTH, "note", note["id"])["text"] == "hello"  # viewer's '*' read all
    with pytest.raises(NotFound):
        records.get(BOB, "note", note["id"])  # rep reads notes of the team only


def test_team_scope_on_unowned_entities_follows_the_author(records: Records) -> None:
    note = records.create(ANN, "note", {"text": "for the team"})
    zoe_team_mate = Actor(user_id=5, team_id=3, roles=frozenset({"rep"}))
    with pytest.raises(NotFound):
        records.get(zoe_team_mate, "note", note["id"])
    west_note = records.create(BOB, "note", {"text": "west"})
    assert records.get(zoe_team_mate, "note", west_note["id"])["text"] == "west"


def test_child_rows_follow_their_parent(records: Records) -> None:
    quote = records.create(ANN, "quote", {"title": "Q", "lines": [{"product": "Licence"}]})
    assert quote["lines"][0]["product"] == "Licence" and "margin" not in quote["lines"][0]
    with pytest.raises(ValidationFailed) as caught:
        records.update(
            ANN, "quote", quote["id"], {"lines": [{"product": "X", "margin": "5"}]}, version=1
        )
    assert caught.value.fields == {"lines[0].margin": ["Unknown field."]}
    line_id = quote["lines"][0]["id"]
    assert records.get(ANN, "quote_line", line_id)["product"] == "Licence"
    with pytest.raises(NotFound):
        records.get(BOB, "quote_line", line_id)
    assert records.get(MIA, "quote_line", line_id)["margin"] is None


def test_scope_conditions_are_sql(records: Records) -> None:
    permissions = Permissions(records.tables)
    account = records.model.entity("account")
    grant = permissions.grant(MIA, account, "read")
    condition = permissions.where(MIA, account, grant, records.tables.table("account"))
    sql = str(condition.compile(records.engine))
    assert "WITH RECURSIVE" in sql and "owner_id" in sql  # the teams below, recursively
    assert (
        permissions.where(ADMIN, account, permissions.grant(ADMIN, account, "read"), None) is None
    )
