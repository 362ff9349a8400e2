"""Public pools (公海): who sees pooled records and what of them, claiming within a pool's
limits, assigning from it and returning to it — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from org_support import EAST, WEST, seed_people
from sqlalchemy.engine import Engine

from engine import Actor, BadRequest, Forbidden, NotFound, PoolRefused, ValidationFailed
from engine.records import Records
from engine.tables import POOL_LOG_TABLE, build_tables
from metamodel import Model, load_packages

PACKAGE = """\
kind: package
name: pooled
---
kind: role
name: rep
permissions:
  account: {read: own, create: own, update: own}
  contact: {read: own, create: own, update: own}
  pool: {read: all}
---
kind: entity
name: pool
fields:
  name: {type: string, required: true}
  active: {type: boolean, default: true}
  members: {type: user, multiple: true}
  member_teams: {type: team, multiple: true}
  admins: {type: user, multiple: true}
  daily_limit: {type: integer}
  cooldown: {type: integer}
  cap: {type: integer}
  count_won: {type: boolean, default: false}
  hide: {type: multichoice, options: [phone, revenue]}
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true}
  phone: {type: string}
  revenue: {type: integer}
  status: {type: choice, options: [open, won], default: open}
  pool: {type: reference, to: pool, on_delete: set_null, readonly: true}
  pooled_at: {type: datetime, readonly: true}
  previous_owner: {type: user, readonly: true}
  claimed_at: {type: datetime, readonly: true}
public_pool:
  field: pool
  pooled_at: pooled_at
  previous_owner: previous_owner
  claimed_at: claimed_at
  won: status == 'won'
  carry: [contact]
  settings:
    active: active
    members: members
    member_teams: member_teams
    admins: admins
    daily_claim_limit: daily_limit
    reclaim_cooldown_days: cooldown
    max_owned: cap
    count_won: count_won
    hidden_fields: hide
---
kind: entity
name: contact
ownable: true
fields:
  name: {type: string, required: true}
  account: {type: reference, to: account, on_delete: cascade}
"""

# teams: 1 Sales, 2 East (under Sales), 3 West
# users: 1 ann (East), 2 bob (East), 3 carl (West), 4 dana (no team), 5 mia (pool admin, West)
ANN, BOB, CARL, DANA, MIA = (Actor(user_id=i, team_id=t, roles=frozenset({"rep"}))
                             for i, t in ((1, 2), (2, 2), (3, 3), (4, None), (5, 3)))  # fmt: skip
ADMIN = Actor(user_id=None, roles=frozenset({"admin"}), label="system")


@pytest.fixture
def model(tmp_path: Path) -> Model:
    path = tmp_path / "pooled.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    return load_packages([path])


@pytest.fixture
def records(db_engine: Engine, model: Model) -> Records:
    return _fresh(db_engine, model)


def _pool(records: Records, **values: Any) -> int:
    data = {"name": "East pool", "member_teams": [1], "admins": [5], "hide": ["phone"]}
    return int(records.create(ADMIN, "pool", {**data, **values})["id"])


def _pooled(records: Records, pool: int, name: str = "Acme", **values: Any) -> int:
    """An account that waits in ``pool``, with a contact."""
    account = records.create(ADMIN, "account", {"name": name, "phone": "555-0100",
                                                "revenue": 900, "owner_id": DANA.user_id})  # fmt: skip
    records.create(ADMIN, "contact", {"name": f"{name} buyer", "account": account["id"],
                                      "owner_id": DANA.user_id})  # fmt: skip
    records.return_to_pool(ADMIN, "account", account["id"], pool=pool)
    if values:
        records.update(ADMIN, "account", account["id"], values, version=None, trusted=True)
    return int(account["id"])


def _log(records: Records) -> list[dict[str, Any]]:
    table = records.tables.metadata.tables[POOL_LOG_TABLE]
    with records.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.id)).mappings()
        return [dict(r) for r in rows]


def _ids(page: Any) -> list[int]:
    return sorted(row["id"] for row in page.rows)


def test_members_see_the_pool_and_only_admins_its_hidden_fields(records: Records) -> None:
    east = _pool(records)
    west = _pool(records, name="West pool", member_teams=[3], admins=[])
    acme = _pooled(records, east, "Acme")
    wayne = _pooled(records, west, "Wayne")
    own = records.create(ANN, "account", {"name": "Mine", "phone": "1"})["id"]
    everything = records.parse(ANN, "account", {})

    # ann is in East, under Sales: a member of the East pool through the team above hers
    assert _ids(records.query(ANN, "account", everything)) == sorted([acme, own])
    seen = records.get(ANN, "account", acme)
    assert seen["name"] == "Acme" and seen["phone"] is None and seen["revenue"] == 900
    assert records.get(ANN, "account", own)["phone"] == "1"  # her own: nothing hidden
    with pytest.raises(NotFound):
        records.get(ANN, "account", wayne)
    # carl (West) sees the West pool only; mia administers East: sees it, phone and all
    assert _ids(records.query(CARL, "account", everything)) == [wayne]
    assert records.get(MIA, "account", acme)["phone"] == "555-0100"
    assert records.get(CARL, "account", wayne)["phone"] is None
    # dana is in no team and no pool: the accounts she owned went to the pools
    assert _ids(records.query(DANA, "account", everything)) == []
    # nor does a list of chosen fields that leaves the pool out
    chosen = records.query(ANN, "account", records.parse(ANN, "account", {"fields": "name,phone"}))
    by_id = {row["id"]: row for row in chosen.rows}
    assert by_id[acme]["phone"] is None and by_id[own]["phone"] == "1"
    assert "pool" not in by_id[acme]
    # the history does not give the hidden field away either
    changes = [e["changes"] for e in records.history(ANN, "account", acme)]
    assert changes and all("phone" not in c for c in changes)
    # seeing is not updating
    with pytest.raises(Forbidden):
        records.update(ANN, "account", acme, {"name": "Mine now"}, version=seen["version"])


def test_a_closed_pool_is_out_of_its_members_sight(records: Records) -> None:
    east = _pool(records)
    acme = _pooled(records, east)
    records.get(ANN, "account", acme)
    records.update(ADMIN, "account", acme, {}, version=None, trusted=True)
    pool = records.get(ADMIN, "pool", east)
    records.update(ADMIN, "pool", east, {"active": False}, version=pool["version"])
    with pytest.raises(NotFound):  # the write forgot the pools this process kept
        records.get(ANN, "account", acme)
    assert records.get(MIA, "account", acme)["name"] == "Acme"  # its admin still does


def test_a_claim_takes_the_record_and_its_contacts(records: Records) -> None:
    east = _pool(records)
    acme = _pooled(records, east)
    claimed = records.claim(ANN, "account", acme)
    assert claimed["owner_id"] == ANN.user_id and claimed["team_id"] == ANN.team_id
    assert claimed["pool"] is None and claimed["claimed_at"] is not None
    assert claimed["previous_owner"] == DANA.user_id and claimed["phone"] == "555-0100"
    contacts = records.query(ANN, "contact", records.parse(ANN, "contact", {}))
    assert [c["name"] for c in contacts.rows] == ["Acme buyer"]
    assert [(e["action"], e["user_id"], e["actor_id"]) for e in _log(records)] == [
        ("return", DANA.user_id, None),
        ("claim", ANN.user_id, ANN.user_id),
    ]
    # the change is audited in the user's name
    last = records.history(ANN, "account", acme)[-1]
    assert last["actor_id"] == ANN.user_id and last["changes"]["owner_id"] == [None, 1]
    # a second claim, by her or anyone, finds it no longer pooled
    with pytest.raises(PoolRefused) as mine:
        records.claim(ANN, "account", acme)
    assert mine.value.details["reason"] == "not_pooled"
    with pytest.raises(NotFound):  # bob may not read it any more: it is ann's
        records.claim(BOB, "account", acme)


def test_who_may_claim(records: Records) -> None:
    east = _pool(records)
    acme = _pooled(records, east)
    with pytest.raises(NotFound):  # carl is in no pool holding it: it is out of his sight
        records.claim(CARL, "account", acme)
    mine = records.create(ANN, "account", {"name": "Mine"})["id"]
    with pytest.raises(PoolRefused) as own:
        records.claim(ANN, "account", mine)
    assert own.value.details["reason"] == "not_pooled" and "already" in own.value.message
    pool = records.get(ADMIN, "pool", east)
    records.update(ADMIN, "pool", east, {"active": False}, version=pool["version"])
    with pytest.raises(PoolRefused) as closed:
        records.claim(MIA, "account", acme)  # its admin still sees it, but cannot claim
    assert closed.value.details["reason"] == "inactive"


def test_the_daily_limit(records: Records) -> None:
    east = _pool(records, daily_limit=2)
    accounts = [_pooled(records, east, f"Co {i}") for i in range(3)]
    records.claim(ANN, "account", accounts[0])
    records.claim(ANN, "account", accounts[1])
    assert records.pool_standing(ANN, "account")[0]["claims_left_today"] == 0
    with pytest.raises(PoolRefused) as refused:
        records.claim(ANN, "account", accounts[2])
    assert refused.value.details == {
        "reason": "daily_limit",
        "claimed_today": 2,
        "daily_claim_limit": 2,
        "pool": {"id": east, "name": "East pool"},
    }
    records.claim(BOB, "account", accounts[2])  # the limit is each user's
    # yesterday's claims do not count
    table = records.tables.metadata.tables[POOL_LOG_TABLE]
    with records.engine.begin() as conn:
        conn.execute(table.update().values(at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    records.return_to_pool(BOB, "account", accounts[2])
    records.claim(ANN, "account", accounts[2])



def test_the_daily_limit_counts_the_deployments_day(records: Records, off_utc: str) -> None:
    """A claim a minute before the deployment's midnight was yesterday's, one a minute
    after is today's — whichever day it is in UTC."""
    east = _pool(records, daily_limit=2)
    accounts = [_pooled(records, east, f"Co {i}") for i in range(2)]
    for account in accounts:
        records.claim(ANN, "account", account)
    zone = ZoneInfo(off_utc)
    midnight = dt.datetime.combine(dt.datetime.now(zone).date(), dt.time(), zone)
    table = records.tables.metadata.tables[POOL_LOG_TABLE]
    with records.engine.begin() as conn:
        ids = [r.id for r in conn.execute(sa.select(table.c.id).order_by(table.c.id))][-2:]
        for at, log_id in zip((-1, 1), ids, strict=True):
            moment = midnight + dt.timedelta(minutes=at)
            conn.execute(table.update().where(table.c.id == log_id).values(at=moment))
    assert records.pool_standing(ANN, "account")[0]["claims_left_today"] == 1


def test_the_cooldown_of_a_previous_owner(records: Records) -> None:
    _pool(records, cooldown=30)
    acme = records.create(ANN, "account", {"name": "Acme"})["id"]
    records.return_to_pool(ANN, "account", acme, note="no budget this year")
    assert _log(records)[-1]["note"] == "no budget this year"
    with pytest.raises(PoolRefused) as refused:
        records.claim(ANN, "account", acme)
    details = refused.value.details
    assert details["reason"] == "cooldown" and details["cooldown_days"] == 30
    available = dt.datetime.fromisoformat(details["available_at"])
    assert dt.timedelta(days=29) < available - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    records.claim(BOB, "account", acme)  # anyone else may
    records.return_to_pool(BOB, "account", acme)
    with pytest.raises(PoolRefused):
        records.claim(BOB, "account", acme)
    # 31 days on, the previous owner may claim it again
    table = records.tables.table("account")
    with records.engine.begin() as conn:
        conn.execute(
            table.update().values(pooled_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
        )
    assert records.claim(BOB, "account", acme)["owner_id"] == BOB.user_id


def test_the_cap_on_owned_records_and_won_ones(records: Records) -> None:
    east = _pool(records, cap=2)
    records.create(ANN, "account", {"name": "Won deal", "status": "won"})
    records.create(ANN, "account", {"name": "Open deal"})
    first, second = _pooled(records, east, "One"), _pooled(records, east, "Two")
    records.claim(ANN, "account", first)  # owns 2, one of them won: 1 counts
    with pytest.raises(PoolRefused) as refused:
        records.claim(ANN, "account", second)
    assert refused.value.details["reason"] == "cap"
    assert (refused.value.details["owned"], refused.value.details["max_owned"]) == (2, 2)
    pool = records.get(ADMIN, "pool", east)
    records.update(ADMIN, "pool", east, {"cap": 4, "count_won": True}, version=pool["version"])
    records.claim(ANN, "account", second)  # 3 owned, won counted: under 4
    assert records.pool_standing(ANN, "account")[0]["owned"] == 4


def test_a_pool_admin_assigns_to_members(records: Records) -> None:
    east = _pool(records, daily_limit=0, cap=1)
    acme, wayne = _pooled(records, east, "Acme"), _pooled(records, east, "Wayne")
    with pytest.raises(Forbidden):
        records.assign_from_pool(ANN, "account", acme, BOB.user_id)
    with pytest.raises(ValidationFailed) as outsider:
        records.assign_from_pool(MIA, "account", acme, CARL.user_id)
    assert outsider.value.fields == {"owner_id": ["Not a member of this pool."]}
    with pytest.raises(ValidationFailed):
        records.assign_from_pool(MIA, "account", acme, 99)
    for bad in (0, -1, 2**63, True, "7"):  # never a number the database cannot hold
        with pytest.raises(BadRequest):
            records.assign_from_pool(MIA, "account", acme, bad)
        with pytest.raises(BadRequest):
            records.return_to_pool(ANN, "account", acme, pool=bad)
    # the daily limit (0) is for claims; the cap holds
    assigned = records.assign_from_pool(MIA, "account", acme, BOB.user_id)
    assert assigned["owner_id"] == BOB.user_id and assigned["pool"] is None
    assert records.get(BOB, "account", acme)["phone"] == "555-0100"
    with pytest.raises(PoolRefused) as capped:
        records.assign_from_pool(MIA, "account", wayne, BOB.user_id)
    assert capped.value.details["reason"] == "cap"
    assert _log(records)[-1]["action"] == "assign"


def test_returning_chooses_the_owners_pool(records: Records) -> None:
    east = _pool(records)
    west = _pool(records, name="West pool", member_teams=[3], admins=[])
    carls = records.create(CARL, "account", {"name": "Carl's"})["id"]
    back = records.return_to_pool(CARL, "account", carls)
    assert back["pool"] == west and back["previous_owner"] == CARL.user_id
    assert back["owner_id"] is None and back["pooled_at"] is not None
    assert back["phone"] is None  # returned, it hides what its pool hides from him
    with pytest.raises(PoolRefused) as again:
        records.return_to_pool(ADMIN, "account", carls)
    assert again.value.details["reason"] == "pooled"
    anns = records.create(ANN, "account", {"name": "Ann's"})["id"]
    with pytest.raises(ValidationFailed):  # ann belongs to no West pool
        records.return_to_pool(ANN, "account", anns, pool=west)
    assert records.return_to_pool(ANN, "account", anns, pool=east)["pool"] == east
    danas = records.create(DANA, "account", {"name": "Dana's"})["id"]
    with pytest.raises(PoolRefused) as nowhere:  # dana belongs to no pool
        records.return_to_pool(DANA, "account", danas)
    assert nowhere.value.details["reason"] == "no_pool"
    with pytest.raises(NotFound):  # nor may one return what one cannot see
        records.return_to_pool(ANN, "account", danas)


@pytest.mark.postgres
def test_concurrent_claims_of_one_record_and_past_the_daily_limit(
    pg_engine: Engine, model: Model
) -> None:
    records = _fresh(pg_engine, model)
    east = _pool(records, daily_limit=3)
    acme = _pooled(records, east)
    outcomes = _race(lambda who: records.claim(who, "account", acme), [ANN, MIA] * 4)
    assert sum(1 for o in outcomes if isinstance(o, dict)) == 1
    assert all(
        isinstance(o, dict | NotFound)
        or (isinstance(o, PoolRefused) and o.details["reason"] == "not_pooled")
        for o in outcomes
    ), outcomes
    # one user, ten claims at once of ten records: three get through
    many = [_pooled(records, east, f"Co {i}") for i in range(10)]
    outcomes = _race(lambda i: records.claim(BOB, "account", many[i]), list(range(10)))
    assert sum(1 for o in outcomes if isinstance(o, dict)) == 3, outcomes
    assert {o.details["reason"] for o in outcomes if isinstance(o, PoolRefused)} == {"daily_limit"}


def _fresh(engine: Engine, model: Model) -> Records:
    tables = build_tables(model)
    tables.metadata.create_all(engine)
    seed_people(engine, tables, [(n, t, "en") for n, t in (("ann", EAST), ("bob", EAST),
                ("carl", WEST), ("dana", None), ("mia", WEST))])  # fmt: skip
    return Records(engine, model, tables=tables)


def _race(work: Any, inputs: list[Any]) -> list[Any]:
    """Run ``work`` on each input in its own thread, all released at once."""
    start = threading.Barrier(len(inputs))
    outcomes: list[Any] = [None] * len(inputs)

    def run(index: int, value: Any) -> None:
        start.wait()
        try:
            outcomes[index] = work(value)
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate(inputs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
