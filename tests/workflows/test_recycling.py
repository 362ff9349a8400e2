"""The public pools' recycle rules (workflows.recycling) through the scheduler's tick with
the clock moved, on SQLite and PostgreSQL: a rule per grade, each kind, the warning day,
locked and won records exempt, owners in no pool untouched, the first pool of an owner's,
a second run the same day changing nothing, and the dry run."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from org_support import EAST, WEST, seed_people
from sqlalchemy.engine import Engine

from engine import Actor
from engine.records import Records
from engine.tables import NOTIFICATION_TABLE, POOL_LOG_TABLE, build_tables
from metamodel import Model, load_packages
from workflows import JobQueue, recycling
from workflows.outbox import TICKS

PACKAGE = """\
kind: package
name: recycled
---
kind: entity
name: pool
fields:
  name: {type: string, required: true}
  active: {type: boolean, default: true}
  members: {type: user, multiple: true}
  member_teams: {type: team, multiple: true}
  keep_won: {type: boolean, default: true}
  rules: {type: children, entity: pool_rule}
---
kind: entity
name: pool_rule
child: true
fields:
  pool: {type: reference, to: pool, on_delete: cascade, required: true}
  condition:
    type: choice
    required: true
    options:
      - {value: no_follow_up, label: {en: No follow-up for N days, zh: N天未跟进, ja: N日間フォローなし}}
      - {value: no_opportunity, label: {en: No opportunity, zh: 无商机, ja: 商談なし}}
      - not_won
  grade: {type: choice, options: [A, B]}
  days: {type: integer, required: true, min: 1}
  warn_days: {type: integer, min: 0}
  active: {type: boolean, default: true}
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true}
  grade: {type: choice, options: [A, B]}
  locked: {type: boolean, default: false}
  status: {type: choice, options: [open, won], default: open}
  opportunities: {type: integer, default: 0}
  last_activity_at: {type: datetime}
  claimed_at: {type: datetime, readonly: true}
  pool: {type: reference, to: pool, on_delete: set_null, readonly: true}
  pooled_at: {type: datetime, readonly: true}
  previous_owner: {type: user, readonly: true}
public_pool:
  field: pool
  pooled_at: pooled_at
  previous_owner: previous_owner
  claimed_at: claimed_at
  won: status == 'won'
  exempt: locked
  settings: {active: active, members: members, member_teams: member_teams, exempt_won: keep_won}
  recycle:
    rules: rules
    kind: condition
    days: days
    warn_days: warn_days
    active: active
    match: [grade]
    kinds:
      no_follow_up: {since: "coalesce(max(last_activity_at, claimed_at), created_at)"}
      no_opportunity: {since: "coalesce(claimed_at, created_at)", unless: "opportunities > 0"}
      not_won: {since: "coalesce(claimed_at, created_at)", unless: "status == 'won'"}
"""

# teams: 1 Sales, 2 East (under Sales), 3 West; users: 1 ann (East), 2 bob (East), 3 carl (West)
ANN, BOB, CARL = 1, 2, 3
ADMIN = Actor(user_id=None, roles=frozenset({"admin"}), label="system")
START = dt.date(2030, 3, 1)


def _at(days: int, hour: int = 6) -> dt.datetime:
    """The moment ``days`` after START, at ``hour`` local time (the cron's clock)."""
    return dt.datetime.combine(START + dt.timedelta(days=days), dt.time(hour, 0, 5)).astimezone()


@pytest.fixture
def records(db_engine: Engine, tmp_path: Path) -> Records:
    return _records(db_engine, tmp_path, PACKAGE)


def _records(db_engine: Engine, tmp_path: Path, package: str) -> Records:
    path = tmp_path / "recycled.yaml"
    path.write_text(textwrap.dedent(package), encoding="utf-8")
    model: Model = load_packages([path])
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    seed_people(db_engine, tables, [("ann", EAST, "en"), ("bob", EAST, "zh"), ("carl", WEST, "en")])
    return Records(db_engine, model, tables=tables)


@pytest.fixture
def queue(records: Records) -> JobQueue:
    return JobQueue(records.engine, lambda: records)  # no Redis: jobs run in-process


def _pool(records: Records, rules: list[dict[str, Any]], **values: Any) -> int:
    data = {"name": "East pool", "member_teams": [1], **values}
    pool = records.create(ADMIN, "pool", data)["id"]
    for rule in rules:
        records.create(ADMIN, "pool_rule", {"pool": pool, **rule})
    return int(pool)


def _account(records: Records, name: str, owner: int = ANN, **values: Any) -> int:
    with time_machine.travel(_at(0, 5), tick=False):
        data = {"name": name, "owner_id": owner, **values}
        return int(records.create(ADMIN, "account", data)["id"])


def _touch(records: Records, account: int, days: int) -> None:
    """A follow-up ``days`` after START."""
    moment = _at(days, 10).isoformat()
    records.update(ADMIN, "account", account, {"last_activity_at": moment}, version=None,
                   trusted=True)  # fmt: skip


def _tick(queue: JobQueue, days: int, hour: int = 6) -> int:
    """The scheduler's minute, ``days`` after START: the pool_recycle tick, as registered."""
    tick = TICKS.get("pool_recycle")
    assert tick is not None
    with time_machine.travel(_at(days, hour), tick=False):
        return tick.run(queue, dt.datetime.now(dt.UTC))


def _owner(records: Records, account: int) -> Any:
    return records.get(ADMIN, "account", account)["owner_id"]


def _notes(records: Records, user: int) -> list[str]:
    table = records.tables.metadata.tables[NOTIFICATION_TABLE]
    with records.engine.connect() as conn:
        query = sa.select(table.c.subject).where(table.c.user_id == user).order_by(table.c.id)
        return list(conn.scalars(query))


def _log(records: Records) -> list[dict[str, Any]]:
    table = records.tables.metadata.tables[POOL_LOG_TABLE]
    with records.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_each_rule_returns_its_records_on_its_day(records: Records, queue: JobQueue) -> None:
    east = _pool(records, [
        {"condition": "no_follow_up", "grade": "A", "days": 30, "warn_days": 3},
        {"condition": "no_follow_up", "grade": "B", "days": 10, "warn_days": 0},
        {"condition": "no_opportunity", "days": 20},
        {"condition": "not_won", "days": 40},
        {"condition": "no_follow_up", "days": 1, "active": False},  # switched off
    ])  # fmt: skip
    alpha = _account(records, "Alpha", grade="A", opportunities=1)
    beta = _account(records, "Beta", grade="B", opportunities=1)
    gamma = _account(records, "Gamma", grade="A")  # no opportunity
    delta = _account(records, "Delta", grade="A", opportunities=1)
    locked = _account(records, "Locked", grade="B", locked=True)
    won = _account(records, "Won", grade="B", status="won", opportunities=1)
    west = _account(records, "West Ltd", owner=CARL, grade="B")  # carl is in no pool
    _touch(records, gamma, 15)
    _touch(records, delta, 25)

    assert _tick(queue, 9, 7) == 0  # not the schedule's minute
    assert _tick(queue, 9) == 1  # the job runs; nothing is due on day 9
    assert {_owner(records, a) for a in (alpha, beta, gamma, delta)} == {ANN}
    assert _tick(queue, 10) == 1
    assert _owner(records, beta) is None
    returned = records.get(ADMIN, "account", beta)
    assert returned["pool"] == east and returned["previous_owner"] == ANN
    assert returned["pooled_at"] is not None
    (entry,) = _log(records)
    assert entry["action"] == "return" and entry["record_id"] == beta and entry["user_id"] == ANN
    assert entry["note"].startswith("No follow-up for 10 days (recycle rule ")
    assert _notes(records, ANN) == [
        "Account “Beta” returned to the public pool East pool: No follow-up for 10 days"
    ]

    # day 20: Gamma, followed up on day 15 but without an opportunity since its creation
    _tick(queue, 20)
    assert _owner(records, gamma) is None and _owner(records, alpha) == ANN
    # day 27: Alpha's owner is warned, once, three days before
    _tick(queue, 27)
    _tick(queue, 27, 7)
    warning = "Account “Alpha” returns to the public pool East pool on 2030-03-31: "
    assert _notes(records, ANN)[-1] == warning + "No follow-up for 30 days"
    assert len(_notes(records, ANN)) == 3
    # day 30: Alpha returns; a second run the same day changes nothing
    _tick(queue, 30)
    assert _owner(records, alpha) is None
    again = recycling.run(records, at=_at(30, 18))
    assert again["account"].to_json() == {"at": _at(30, 18).isoformat(), "returned": 0,
                                          "warned": 0, "failed": 0}  # fmt: skip
    assert len(_log(records)) == 3
    # day 40: Delta, followed up on day 25, is not won 40 days after its creation
    _tick(queue, 40)
    assert _owner(records, delta) is None
    # locked, won (the pool keeps won accounts) and carl's in no pool stay
    assert [_owner(records, a) for a in (locked, won, west)] == [ANN, ANN, CARL]
    assert [e["record_id"] for e in _log(records)] == [beta, gamma, alpha, delta]


def test_won_records_return_unless_the_pool_keeps_them(records: Records) -> None:
    _pool(records, [{"condition": "no_follow_up", "days": 5}], keep_won=False)
    won = _account(records, "Won", status="won")
    locked = _account(records, "Locked", status="won", locked=True)
    outcome = recycling.run(records, at=_at(5))
    assert outcome["account"].returned == 1
    assert _owner(records, won) is None and _owner(records, locked) == ANN


def test_an_owner_follows_their_first_active_pool(records: Records) -> None:
    closed = _pool(records, [{"condition": "no_follow_up", "days": 1}], name="Closed",
                   members=[BOB], active=False)  # fmt: skip
    first = _pool(records, [{"condition": "no_follow_up", "days": 50}], name="First",
                  members=[ANN], member_teams=[])  # fmt: skip
    second = _pool(records, [{"condition": "no_follow_up", "days": 5, "warn_days": 2}],
                   name="Second")  # ann and bob through their team  # fmt: skip
    anns = _account(records, "Ann's")
    bobs = _account(records, "Bob's", owner=BOB)
    outcome = recycling.run(records, at=_at(3))
    assert outcome["account"].warned == 1  # bob's, by the second pool's rule
    # in bob's language (the entity has no Chinese label), the kind's N as the rule's days
    assert _notes(records, BOB) == ["Account“Bob's”将于2030-03-06回收到公海Second：5天未跟进"]
    recycling.run(records, at=_at(5))
    assert _owner(records, anns) == ANN  # the first pool's 50 days, not the second's 5
    found = records.get(ADMIN, "account", bobs)
    assert found["owner_id"] is None and found["pool"] == second  # the closed pool's 1 day: no
    assert closed != first
    recycling.run(records, at=_at(50))
    assert records.get(ADMIN, "account", anns)["pool"] == first


def test_the_preview_says_who_returns_and_why(records: Records) -> None:
    _pool(records, [{"condition": "no_follow_up", "grade": "A", "days": 30},
                    {"condition": "no_opportunity", "days": 60}])  # fmt: skip
    alpha = _account(records, "Alpha", grade="A", opportunities=2)
    _account(records, "Beta", grade="B", opportunities=2)
    assert recycling.preview(records, at=_at(29)).total == 0
    found = recycling.preview(records, at=_at(30))
    (due,) = found.by_pool[("account", 1)]
    assert (due.id, due.title, due.rule.kind, due.rule.days) == (alpha, "Alpha", "no_follow_up", 30)
    lines = list(found.lines(records))
    assert (
        lines[0] == f"1 account returns to the pool East pool at {_at(30):%Y-%m-%d %H:%M}, and why:"
    )
    assert lines[1].startswith(
        f"  {alpha}\tAlpha\tNo follow-up for 30 days (rule 1, grade = A): since "
    )
    assert lines[1].endswith(", 30 days")
    assert _owner(records, alpha) == ANN  # a dry run
    assert list(recycling.preview(records, at=_at(1)).lines(records)) == [
        f"no records return to a public pool at {_at(1):%Y-%m-%d %H:%M}"
    ]


def test_a_date_since_counts_whole_days(db_engine: Engine, tmp_path: Path) -> None:
    package = PACKAGE.replace(
        'not_won: {since: "coalesce(claimed_at, created_at)"', 'not_won: {since: "signed_on"'
    ).replace("  last_activity_at: {type: datetime}\n", "  last_activity_at: {type: datetime}\n"
              "  signed_on: {type: date}\n")  # fmt: skip
    records = _records(db_engine, tmp_path, package)
    spec = records.model.entity("account").public_pool
    assert spec is not None and spec.recycle is not None
    assert spec.recycle.kinds["not_won"].since.type == "date"
    _pool(records, [{"condition": "not_won", "days": 10, "warn_days": 2}])
    signed = _account(records, "Signed", signed_on=str(START))
    _account(records, "Unsigned")  # no date: never due
    assert recycling.run(records, at=_at(7))["account"].to_json()["warned"] == 0
    assert recycling.run(records, at=_at(8))["account"].warned == 1
    assert _notes(records, ANN) == [
        "Account “Signed” returns to the public pool East pool on 2030-03-11: not_won (10 days)"
    ]
    assert recycling.run(records, at=_at(9, 23))["account"].returned == 0
    outcome = recycling.run(records, at=_at(10, 0))
    assert outcome["account"].returned == 1 and _owner(records, signed) is None
