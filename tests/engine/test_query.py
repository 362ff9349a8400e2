"""The query layer: filters, relative dates, paths, sort, cursors, search, expand, counts.

Every test runs on SQLite and PostgreSQL (``db_engine``); expectations are computed in
Python from the rows inserted, so both databases must agree with the same meaning.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.context import Actor
from engine.errors import BadRequest
from engine.query import (
    Filter,
    ListQuery,
    Page,
    RelativeDate,
    compile_filter,
    parse_params,
    parse_where,
    run,
)
from engine.search import ensure_search_indexes
from engine.tables import TEAM_TABLE, USER_TABLE, Tables, build_tables
from metamodel import Model, load_packages
from metamodel.model import SortKey

PACKAGE = """\
kind: package
name: qt
---
kind: entity
name: region
title_field: name
fields:
  name: {type: string}
---
kind: entity
name: account
ownable: true
title_field: name
search_fields: [name, notes]
fields:
  name: {type: string}
  notes: {type: text}
  grade: {type: choice, options: [c, a, b]}
  region: {type: reference, to: region, on_delete: set_null}
  revenue: {type: money}
  employees: {type: integer}
  active: {type: boolean}
  founded: {type: date}
  last_contact: {type: datetime}
  tags: {type: multichoice, options: [vip, partner, prospect]}
  watchers: {type: user, multiple: true}
  manager: {type: user}
  sales_team: {type: team}
  logo: {type: file}
  size: {type: formula, returns: integer, expression: "employees * 2"}
  lines: {type: children, entity: account_line}
---
kind: entity
name: account_line
child: true
fields:
  account: {type: reference, to: account, on_delete: cascade}
  text: {type: string}
---
kind: entity
name: tally
fields:
  value: {type: integer}
---
kind: entity
name: contact
title_field: full_name
fields:
  first_name: {type: string}
  last_name: {type: string}
  full_name: {type: formula, returns: string, expression: "concat(first_name, ' ', last_name)"}
---
kind: entity
name: opportunity
ownable: true
search_fields: [name]
default_sort: -amount
fields:
  name: {type: string}
  account: {type: reference, to: account, on_delete: set_null}
  contact: {type: reference, to: contact, on_delete: set_null}
  amount: {type: money}
  probability: {type: percent}
  stage: {type: choice, options: [initial, proposal, won, lost]}
  close_date: {type: date}
  weighted: {type: formula, returns: money, expression: "amount * probability / 100"}
  region_name: {type: formula, returns: string, expression: "account.region.name"}
"""

TODAY = dt.date(2024, 5, 15)  # a Wednesday
ANN = Actor(user_id=1, team_id=1, roles=frozenset({"admin"}), today=TODAY)
NOW = dt.datetime(2024, 5, 15, 12, 0, tzinfo=dt.UTC)


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


ACCOUNTS: list[dict[str, Any]] = [
    dict(id=1, name="Acme Corp", notes="Key customer 重要客户", grade="a", region=1, revenue=Decimal("1000.50"), employees=10, active=True, founded=dt.date(2024, 5, 15), last_contact=_at("2024-05-15T10:00:00"), tags=["vip", "partner"], watchers=[1, 2], manager=1, sales_team=1, logo=1, owner_id=1),
    dict(id=2, name="Beta 株式会社", notes="日本の顧客", grade="b", region=2, revenue=Decimal("250.00"), employees=200, active=False, founded=dt.date(2024, 5, 14), last_contact=_at("2024-05-14T23:59:59"), tags=["partner"], watchers=[2], manager=2, sales_team=None, logo=None, owner_id=2),
    dict(id=3, name="gamma 50%_off", notes=None, grade="c", region=None, revenue=None, employees=None, active=None, founded=None, last_contact=None, tags=None, watchers=None, manager=None, sales_team=None, logo=None, owner_id=1),
    dict(id=4, name="客户 Delta", notes="", grade=None, region=1, revenue=Decimal("0"), employees=0, active=True, founded=dt.date(2024, 4, 30), last_contact=_at("2024-05-13T00:00:00"), tags=[], watchers=[], manager=None, sales_team=1, logo=None, owner_id=2),
    dict(id=5, name="Epsilon", notes="acme partner", grade="a", region=2, revenue=Decimal("99999.99"), employees=5000, active=True, founded=dt.date(2023, 12, 31), last_contact=_at("2024-05-20T00:00:00"), tags=["prospect"], watchers=[1], manager=1, sales_team=None, logo=None, owner_id=1),
    dict(id=6, name="ZETA", notes="big, slow", grade="b", region=None, revenue=Decimal("-5"), employees=1, active=False, founded=dt.date(2024, 2, 1), last_contact=_at("2024-06-01T00:00:00"), tags=["vip"], watchers=None, manager=2, sales_team=1, logo=None, owner_id=2),
    dict(id=7, name="eta", notes="Acme subsidiary", grade="a", region=1, revenue=Decimal("1000.50"), employees=10, active=True, founded=dt.date(2024, 5, 16), last_contact=_at("2024-04-16T12:00:00"), tags=["vip", "prospect"], watchers=[2, 1], manager=None, sales_team=None, logo=None, owner_id=1),
    dict(id=8, name="Theta", notes=None, grade="c", region=2, revenue=Decimal("12.34"), employees=33, active=None, founded=dt.date(2024, 4, 15), last_contact=_at("2024-05-09T08:00:00"), tags=["partner", "vip", "prospect"], watchers=None, manager=None, sales_team=None, logo=None, owner_id=None),
    dict(id=9, name="Iota", notes="under_score", grade="b", region=None, revenue=Decimal("75"), employees=75, active=True, founded=dt.date(2024, 6, 13), last_contact=_at("2024-03-31T23:59:59"), tags=None, watchers=None, manager=None, sales_team=None, logo=None, owner_id=None),
    dict(id=10, name="Kappa", notes="ＡＣＭＥ wide", grade="a", region=1, revenue=Decimal("75"), employees=None, active=False, founded=dt.date(2025, 1, 1), last_contact=_at("2024-01-01T00:00:00"), tags=["vip"], watchers=None, manager=None, sales_team=None, logo=None, owner_id=None),
]  # fmt: skip

OPPORTUNITIES: list[dict[str, Any]] = [
    dict(id=1, name="Big deal", account=1, contact=1, amount=Decimal("5000"), probability=Decimal("50"), stage="proposal", close_date=dt.date(2024, 5, 31), owner_id=1),
    dict(id=2, name="Small deal", account=2, contact=2, amount=Decimal("100"), probability=Decimal("10"), stage="initial", close_date=None, owner_id=2),
    dict(id=3, name="No account", account=None, contact=None, amount=None, probability=None, stage=None, close_date=None, owner_id=1),
    dict(id=4, name="Won deal", account=5, contact=1, amount=Decimal("2000"), probability=Decimal("100"), stage="won", close_date=dt.date(2024, 4, 2), owner_id=2),
    dict(id=5, name="Lost deal", account=3, contact=None, amount=Decimal("700"), probability=Decimal("0"), stage="lost", close_date=dt.date(2024, 1, 10), owner_id=1),
]  # fmt: skip

REGIONS = [{"id": 1, "name": "North"}, {"id": 2, "name": "South"}]
CONTACTS = [
    {"id": 1, "first_name": "Ada", "last_name": "Lovelace"},
    {"id": 2, "first_name": "Grace", "last_name": "Hopper"},
]


@pytest.fixture
def model(tmp_path: Path) -> Model:
    path = tmp_path / "qt.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    return load_packages([path])


@pytest.fixture
def tables(db_engine: Engine, model: Model) -> Tables:
    """The package's tables with users Ann and Bob, team East, and the rows above."""
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(),
            [{"id": 1, "name": "East", "created_at": NOW}],
        )
        users = tables.metadata.tables[USER_TABLE]
        conn.execute(users.insert(), [
            {"id": 1, "username": "ann", "name": "Ann", "roles": [], "created_at": NOW},
            {"id": 2, "username": "bob", "name": "Bob", "roles": [], "created_at": NOW},
        ])  # fmt: skip
        _insert(conn, tables, "region", REGIONS)
        _insert(conn, tables, "contact", CONTACTS)
        _insert(conn, tables, "account", ACCOUNTS)
        _insert(conn, tables, "opportunity", OPPORTUNITIES)
        _fix_sequences(conn, tables)
    return tables


def _insert(conn: sa.Connection, tables: Tables, entity: str, rows: list[dict[str, Any]]) -> None:
    stamped = [{"created_at": NOW, "updated_at": NOW, **row} for row in rows]
    conn.execute(tables.table(entity).insert(), stamped)


def _fix_sequences(conn: sa.Connection, tables: Tables) -> None:
    """Rows were inserted with explicit ids; let PostgreSQL's sequences continue after them."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables.by_entity.values():
        conn.execute(sa.text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
            f" coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
        ))  # fmt: skip


def _list(engine: Engine, tables: Tables, entity: str, params: dict[str, Any], **kw: Any) -> Page:
    query = parse_params(tables.model, entity, params)
    with engine.connect() as conn:
        return run(conn, tables, entity, query, kw.pop("actor", ANN), **kw)


def _ids(engine: Engine, tables: Tables, entity: str, params: dict[str, Any]) -> set[int]:
    return {row["id"] for row in _list(engine, tables, entity, {"limit": "500", **params}).rows}


def _bad(model: Model, entity: str, params: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(BadRequest) as caught:
        parse_params(model, entity, params)
    return caught.value.fields


# --- every operator ------------------------------------------------------------------------

Row = dict[str, Any]


def _has(name: str, test: Callable[[Any], bool]) -> Callable[[Row], bool]:
    return lambda row: row[name] is not None and test(row[name])


def _empty(name: str) -> Callable[[Row], bool]:
    return lambda row: row[name] in (None, "", [])


D = Decimal
day = dt.date
CAPITALISED = "1,2,5,6,8,9,10"

OPERATOR_CASES: list[tuple[dict[str, str], Callable[[Row], bool]]] = [
    # text
    ({"name": "Acme Corp"}, lambda r: r["name"] == "Acme Corp"),
    ({"name__eq": "acme corp"}, lambda r: False),  # eq is exact
    ({"name__ne": "Acme Corp"}, lambda r: r["name"] != "Acme Corp"),
    ({"notes__ne": "日本の顧客"}, lambda r: r["notes"] != "日本の顧客"),  # keeps empty notes
    # (text order depends on the database's collation: compare capitalised ASCII names only)
    ({"name__lt": "Beta", "id__in": CAPITALISED}, lambda r: r["id"] == 1),
    ({"name__gte": "Theta", "id__in": CAPITALISED}, lambda r: r["id"] in (6, 8)),
    ({"name__lte": "Iota", "id__in": CAPITALISED}, lambda r: r["id"] in (1, 2, 5, 9)),
    ({"name__gt": "Iota", "id__in": CAPITALISED}, lambda r: r["id"] in (6, 8, 10)),
    ({"name__between": "B,F", "id__in": CAPITALISED}, lambda r: r["id"] in (2, 5)),
    ({"name__in": "ZETA,eta,nope"}, lambda r: r["name"] in ("ZETA", "eta")),
    ({"name__not_in": "ZETA,eta"}, lambda r: r["name"] not in ("ZETA", "eta")),
    ({"notes__not_in": "日本の顧客"}, lambda r: r["notes"] != "日本の顧客"),
    ({"notes__in": "big\\, slow,x"}, lambda r: r["notes"] == "big, slow"),  # \, escapes a comma
    ({"notes__contains": "cme"}, _has("notes", lambda v: "cme" in v)),  # case-sensitive
    ({"notes__contains": "Acme"}, _has("notes", lambda v: "Acme" in v)),
    ({"notes__icontains": "ACME"}, _has("notes", lambda v: "acme" in v.lower())),
    ({"notes__icontains": "重要"}, _has("notes", lambda v: "重要" in v)),
    ({"name__contains": "%_"}, _has("name", lambda v: "%_" in v)),  # wildcards are literal
    ({"notes__icontains": "_"}, _has("notes", lambda v: "_" in v)),
    ({"name__startswith": "Ac"}, _has("name", lambda v: v.startswith("Ac"))),
    ({"name__startswith": "ac"}, _has("name", lambda v: v.startswith("ac"))),  # case-sensitive
    ({"name__startswith": "客户"}, _has("name", lambda v: v.startswith("客户"))),
    ({"notes__isnull": "true"}, _empty("notes")),
    ({"notes__isnull": "false"}, lambda r: r["notes"] not in (None, "")),
    # choice
    ({"grade": "a"}, lambda r: r["grade"] == "a"),
    ({"grade__ne": "a"}, lambda r: r["grade"] != "a"),
    ({"grade__in": "a,b"}, lambda r: r["grade"] in ("a", "b")),
    ({"grade__not_in": "a,b"}, lambda r: r["grade"] not in ("a", "b")),
    ({"grade__isnull": "1"}, lambda r: r["grade"] is None),
    # numbers: integer and money
    ({"employees": "10"}, lambda r: r["employees"] == 10),
    ({"employees__ne": "10"}, lambda r: r["employees"] != 10),
    ({"employees__lt": "33"}, _has("employees", lambda v: v < 33)),
    ({"employees__lte": "33"}, _has("employees", lambda v: v <= 33)),
    ({"employees__gt": "33"}, _has("employees", lambda v: v > 33)),
    ({"employees__gte": "+33"}, _has("employees", lambda v: v >= 33)),
    ({"employees__between": "1,75"}, _has("employees", lambda v: 1 <= v <= 75)),
    ({"employees__in": "0,1,200"}, lambda r: r["employees"] in (0, 1, 200)),
    ({"employees__not_in": "0,1,200"}, lambda r: r["employees"] not in (0, 1, 200)),
    ({"employees__isnull": "true"}, lambda r: r["employees"] is None),
    ({"revenue": "1000.5"}, lambda r: r["revenue"] == D("1000.5")),
    ({"revenue__gt": "-1"}, _has("revenue", lambda v: v > -1)),
    ({"revenue__lte": "12.34"}, _has("revenue", lambda v: v <= D("12.34"))),
    ({"revenue__gte": ".5"}, _has("revenue", lambda v: v >= D("0.5"))),
    ({"revenue__between": "0,100"}, _has("revenue", lambda v: 0 <= v <= 100)),
    ({"revenue__in": "75,250"}, lambda r: r["revenue"] in (D(75), D(250))),
    ({"revenue__not_in": "75"}, lambda r: r["revenue"] != D(75)),
    ({"revenue__ne": "75"}, lambda r: r["revenue"] != D(75)),
    # boolean
    ({"active": "true"}, lambda r: r["active"] is True),
    ({"active": "0"}, lambda r: r["active"] is False),
    ({"active__ne": "true"}, lambda r: r["active"] is not True),
    ({"active__isnull": "true"}, lambda r: r["active"] is None),
    # dates (plain)
    ({"founded": "2024-05-15"}, lambda r: r["founded"] == day(2024, 5, 15)),
    ({"founded__ne": "2024-05-15"}, lambda r: r["founded"] != day(2024, 5, 15)),
    ({"founded__lt": "2024-05-15"}, _has("founded", lambda v: v < day(2024, 5, 15))),
    ({"founded__lte": "2024-05-15"}, _has("founded", lambda v: v <= day(2024, 5, 15))),
    ({"founded__gt": "2024-05-15"}, _has("founded", lambda v: v > day(2024, 5, 15))),
    ({"founded__gte": "2024-05-15"}, _has("founded", lambda v: v >= day(2024, 5, 15))),
    ({"founded__between": "2024-02-01,2024-05-14"}, _has("founded", lambda v: day(2024, 2, 1) <= v <= day(2024, 5, 14))),
    ({"founded__in": "2024-05-14,2025-01-01"}, lambda r: r["founded"] in (day(2024, 5, 14), day(2025, 1, 1))),
    ({"founded__not_in": "2024-05-14"}, lambda r: r["founded"] != day(2024, 5, 14)),
    ({"founded__isnull": "true"}, lambda r: r["founded"] is None),
    # datetimes: instants, and days as periods
    ({"last_contact": "2024-05-15T10:00:00Z"}, lambda r: r["last_contact"] == _at("2024-05-15T10:00:00")),
    ({"last_contact": "2024-05-15T12:00:00+02:00"}, lambda r: r["last_contact"] == _at("2024-05-15T10:00:00")),
    ({"last_contact__gt": "2024-05-15T10:00:00"}, _has("last_contact", lambda v: v > _at("2024-05-15T10:00:00"))),
    ({"last_contact__lte": "2024-05-15T10:00:00"}, _has("last_contact", lambda v: v <= _at("2024-05-15T10:00:00"))),
    ({"last_contact": "2024-05-14"}, _has("last_contact", lambda v: v.date() == day(2024, 5, 14))),
    ({"last_contact__lte": "2024-05-14"}, _has("last_contact", lambda v: v.date() <= day(2024, 5, 14))),
    ({"last_contact__gt": "2024-05-14"}, _has("last_contact", lambda v: v.date() > day(2024, 5, 14))),
    ({"last_contact__lt": "2024-05-14"}, _has("last_contact", lambda v: v.date() < day(2024, 5, 14))),
    ({"last_contact__ne": "2024-05-14"}, lambda r: r["last_contact"] is None or r["last_contact"].date() != day(2024, 5, 14)),
    ({"last_contact__between": "2024-05-09,2024-05-14"}, _has("last_contact", lambda v: day(2024, 5, 9) <= v.date() <= day(2024, 5, 14))),
    ({"last_contact__between": "2024-05-09T08:00:00Z,2024-05-14T23:59:59Z"}, _has("last_contact", lambda v: _at("2024-05-09T08:00:00") <= v <= _at("2024-05-14T23:59:59"))),
    ({"last_contact__in": "2024-05-14,2024-05-20"}, _has("last_contact", lambda v: v.date() in (day(2024, 5, 14), day(2024, 5, 20)))),
    ({"last_contact__not_in": "2024-05-14,2024-05-20"}, lambda r: r["last_contact"] is None or r["last_contact"].date() not in (day(2024, 5, 14), day(2024, 5, 20))),
    ({"last_contact__isnull": "false"}, lambda r: r["last_contact"] is not None),
    # references, users, teams, system columns
    ({"region": "1"}, lambda r: r["region"] == 1),
    ({"region__ne": "1"}, lambda r: r["region"] != 1),
    ({"region__in": "1,2"}, lambda r: r["region"] in (1, 2)),
    ({"region__not_in": "2"}, lambda r: r["region"] != 2),
    ({"region__isnull": "true"}, lambda r: r["region"] is None),
    ({"manager": "1"}, lambda r: r["manager"] == 1),
    ({"sales_team__isnull": "false"}, lambda r: r["sales_team"] is not None),
    ({"owner_id__in": "2"}, lambda r: r["owner_id"] == 2),
    ({"owner_id__isnull": "true"}, lambda r: r["owner_id"] is None),
    ({"id__gt": "7"}, lambda r: r["id"] > 7),
    ({"id__in": "1,3,99"}, lambda r: r["id"] in (1, 3)),
    ({"created_at__lt": "2024-05-16"}, lambda r: True),
    ({"created_at": "today"}, lambda r: True),
    ({"version": "1"}, lambda r: True),
    # multichoice: JSON arrays
    ({"tags": "vip"}, lambda r: r["tags"] == ["vip"]),
    ({"tags": "partner,vip"}, lambda r: sorted(r["tags"] or []) == ["partner", "vip"]),
    ({"tags__ne": "vip"}, lambda r: r["tags"] != ["vip"]),
    ({"tags__contains": "vip"}, lambda r: "vip" in (r["tags"] or [])),
    ({"tags__contains": "vip,prospect"}, lambda r: {"vip", "prospect"} <= set(r["tags"] or [])),
    ({"tags__in": "partner,prospect"}, lambda r: bool({"partner", "prospect"} & set(r["tags"] or []))),
    ({"tags__not_in": "vip,partner"}, lambda r: not {"vip", "partner"} & set(r["tags"] or [])),
    ({"tags__isnull": "true"}, _empty("tags")),
    ({"tags__isnull": "false"}, lambda r: bool(r["tags"])),
    # multiple users: JSON arrays of ids
    ({"watchers__contains": "1"}, lambda r: 1 in (r["watchers"] or [])),
    ({"watchers__contains": "1,2"}, lambda r: {1, 2} <= set(r["watchers"] or [])),
    ({"watchers__in": "2"}, lambda r: 2 in (r["watchers"] or [])),
    ({"watchers": "1,2"}, lambda r: sorted(r["watchers"] or []) == [1, 2]),
    ({"watchers__not_in": "1"}, lambda r: 1 not in (r["watchers"] or [])),
    ({"watchers__isnull": "true"}, _empty("watchers")),
    # file
    ({"logo__isnull": "false"}, lambda r: r["logo"] is not None),
    # formula (integer): compiled to SQL
    ({"size__gte": "20"}, _has("employees", lambda v: v * 2 >= 20)),
    ({"size": "20"}, lambda r: r["employees"] == 10),
    ({"size__isnull": "true"}, lambda r: r["employees"] is None),
    # several filters AND together; a repeated key too
    ({"grade": "a", "employees__lt": "100"}, lambda r: r["grade"] == "a" and r["employees"] is not None and r["employees"] < 100),
    ({"revenue__gte": ["0", "1000"]}, _has("revenue", lambda v: v >= 1000)),
]  # fmt: skip


def test_every_operator_on_every_field_type(db_engine: Engine, tables: Tables) -> None:
    wrong = []
    for params, predicate in OPERATOR_CASES:
        expected = {row["id"] for row in ACCOUNTS if predicate(row)}
        found = _ids(db_engine, tables, "account", params)
        if found != expected:
            wrong.append(f"{params}: expected {sorted(expected)}, got {sorted(found)}")
    assert wrong == []


# --- relative dates -------------------------------------------------------------------------------

# Today is Wednesday 2024-05-15: the week runs Monday 13 to Sunday 19, the quarter April to June.
RELATIVE = {
    "today": (day(2024, 5, 15), day(2024, 5, 16)),
    "yesterday": (day(2024, 5, 14), day(2024, 5, 15)),
    "tomorrow": (day(2024, 5, 16), day(2024, 5, 17)),
    "this_week": (day(2024, 5, 13), day(2024, 5, 20)),
    "last_week": (day(2024, 5, 6), day(2024, 5, 13)),
    "next_week": (day(2024, 5, 20), day(2024, 5, 27)),
    "this_month": (day(2024, 5, 1), day(2024, 6, 1)),
    "last_month": (day(2024, 4, 1), day(2024, 5, 1)),
    "next_month": (day(2024, 6, 1), day(2024, 7, 1)),
    "this_quarter": (day(2024, 4, 1), day(2024, 7, 1)),
    "last_quarter": (day(2024, 1, 1), day(2024, 4, 1)),
    "this_year": (day(2024, 1, 1), day(2025, 1, 1)),
    "last_year": (day(2023, 1, 1), day(2024, 1, 1)),
    "last_7_days": (day(2024, 5, 9), day(2024, 5, 16)),
    "last_30_days": (day(2024, 4, 16), day(2024, 5, 16)),
    "next_30_days": (day(2024, 5, 15), day(2024, 6, 14)),
}
RELATIVE_OPS: dict[str, Callable[[dt.date, dt.date, dt.date], bool]] = {
    "eq": lambda v, start, end: start <= v < end,
    "gte": lambda v, start, end: v >= start,
    "lt": lambda v, start, end: v < start,
    "lte": lambda v, start, end: v < end,
    "gt": lambda v, start, end: v >= end,
}


def _day(value: Any) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


def test_relative_dates_follow_the_actors_today(db_engine: Engine, tables: Tables) -> None:
    wrong = []
    for name, (start, end) in RELATIVE.items():
        for op, test in RELATIVE_OPS.items():
            for field in ("founded", "last_contact"):
                days = {r["id"]: _day(r[field]) for r in ACCOUNTS}
                expected = {i for i, v in days.items() if v is not None and test(v, start, end)}
                found = _ids(db_engine, tables, "account", {f"{field}__{op}": name})
                if found != expected:
                    wrong.append(
                        f"{field}__{op}={name}: expected {sorted(expected)}, got {sorted(found)}"
                    )
    assert wrong == []


def test_relative_dates_in_lists_and_between(db_engine: Engine, tables: Tables) -> None:
    assert _ids(db_engine, tables, "account", {"founded__in": "today,yesterday"}) == {1, 2}
    assert _ids(db_engine, tables, "account", {"founded__not_in": "today,yesterday"}) == {
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
    }
    assert _ids(db_engine, tables, "account", {"founded__between": "last_month,today"}) == {
        1,
        2,
        4,
        8,
    }
    assert _ids(db_engine, tables, "account", {"founded__ne": "this_month"}) == {
        3,
        4,
        5,
        6,
        8,
        9,
        10,
    }


def test_another_actor_has_another_today(db_engine: Engine, tables: Tables) -> None:
    later = Actor(user_id=2, today=dt.date(2024, 6, 13))
    assert _list(db_engine, tables, "account", {"founded": "today"}, actor=later).count == 1
    assert _ids(db_engine, tables, "account", {"founded": "today"}) == {1}


# --- paths, formulas and list-view expressions ---------------------------------------------------------


def test_filters_through_references(db_engine: Engine, tables: Tables) -> None:
    assert _ids(db_engine, tables, "opportunity", {"account.grade": "a"}) == {1, 4}
    assert _ids(db_engine, tables, "opportunity", {"account.grade__in": "b,c"}) == {2, 5}
    assert _ids(db_engine, tables, "opportunity", {"account.grade__ne": "a"}) == {2, 3, 5}
    assert _ids(db_engine, tables, "opportunity", {"account.region.name": "North"}) == {1}
    assert _ids(db_engine, tables, "opportunity", {"account.region.name__isnull": "true"}) == {3, 5}
    assert _ids(
        db_engine, tables, "opportunity", {"account.revenue__gte": "1000", "account.region": "2"}
    ) == {4}
    assert _ids(db_engine, tables, "opportunity", {"account.tags__contains": "vip"}) == {1}
    assert _ids(db_engine, tables, "opportunity", {"contact.full_name": "Ada Lovelace"}) == {1, 4}


def test_formula_filters_and_formulas_through_references(db_engine: Engine, tables: Tables) -> None:
    # weighted = amount * probability / 100: 2500, 10, -, 2000, 0
    assert _ids(db_engine, tables, "opportunity", {"weighted__gte": "1000"}) == {1, 4}
    assert _ids(db_engine, tables, "opportunity", {"weighted__lt": "10.5"}) == {2, 5}
    assert _ids(db_engine, tables, "opportunity", {"weighted__isnull": "true"}) == {3}
    assert _ids(db_engine, tables, "opportunity", {"region_name": "South"}) == {2, 4}
    assert _ids(db_engine, tables, "opportunity", {"account.size__gt": "100"}) == {2, 4}


def test_list_view_expressions_and_permission_scopes(db_engine: Engine, tables: Tables) -> None:
    where = parse_where(
        tables.model, "opportunity", "owner_id == current_user() and account.grade != 'b'"
    )
    table = tables.table("opportunity")
    with db_engine.connect() as conn:
        page = run(conn, tables, "opportunity", ListQuery(where=where), ANN)
        assert {r["id"] for r in page.rows} == {1, 3, 5}
        scoped = run(
            conn, tables, "opportunity", ListQuery(where=where), ANN, scope=table.c.amount > 500
        )
        assert {r["id"] for r in scoped.rows} == {1, 5}
        assert scoped.count == 2
    with pytest.raises(BadRequest) as caught:
        parse_where(tables.model, "opportunity", "account.grade == 'z'")
    assert "where" in caught.value.fields


def test_compile_filter_stands_alone(db_engine: Engine, tables: Tables) -> None:
    table = tables.table("opportunity")
    clause = compile_filter(
        tables, "opportunity", ("account", "region", "name"), "eq", "South", db_engine.dialect.name
    )
    weighted = compile_filter(
        tables, "opportunity", ("weighted",), "gt", Decimal(5), db_engine.dialect.name
    )
    with db_engine.connect() as conn:
        assert set(conn.scalars(sa.select(table.c.id).where(clause))) == {2, 4}
        assert set(conn.scalars(sa.select(table.c.id).where(clause, weighted))) == {2, 4}
        isnull = compile_filter(
            tables, "opportunity", ("account", "grade"), "isnull", True, db_engine.dialect.name
        )
        assert set(conn.scalars(sa.select(table.c.id).where(isnull))) == {3}


# --- sort -------------------------------------------------------------------------------------------------


def _sorted_ids(rows: list[Row], key: str, descending: bool) -> list[int]:
    """NULL after every value: last ascending, first descending; ties by id the same way."""
    present = sorted(
        (r for r in rows if r[key] is not None), key=lambda r: (r[key], r["id"]), reverse=descending
    )
    missing = sorted((r for r in rows if r[key] is None), key=lambda r: r["id"], reverse=descending)
    ordered = missing + present if descending else present + missing
    return [r["id"] for r in ordered]


@pytest.mark.parametrize("key", ["revenue", "employees", "founded", "last_contact", "active"])
def test_sort_puts_nulls_last_ascending_and_first_descending(
    db_engine: Engine, tables: Tables, key: str
) -> None:
    for descending in (False, True):
        sort = f"-{key}" if descending else key
        page = _list(db_engine, tables, "account", {"sort": sort})
        assert [r["id"] for r in page.rows] == _sorted_ids(ACCOUNTS, key, descending), sort


def test_multi_field_sort_choice_order_and_defaults(db_engine: Engine, tables: Tables) -> None:
    def order(params: dict[str, str], entity: str = "account") -> list[int]:
        return [r["id"] for r in _list(db_engine, tables, entity, params).rows]

    # revenue descending (NULL first), then employees ascending (NULL last), then id descending
    assert order({"sort": "-revenue,employees"}) == [3, 5, 1, 7, 2, 9, 10, 8, 4, 6]
    # choices sort in the order of their options: c, a, b, then no grade
    assert order({"sort": "grade"}) == [3, 8, 1, 5, 7, 10, 2, 6, 9, 4]
    assert order({"sort": "-size"}) == [10, 3, 5, 2, 9, 8, 7, 1, 6, 4]
    # the entity's default sort (-amount), else -id
    assert order({}, "opportunity") == [3, 1, 4, 5, 2]
    assert order({}, "region") == [2, 1]
    # paths and formulas through references
    assert order({"sort": "account.region.name,-id"}, "opportunity") == [1, 4, 2, 5, 3]
    assert order({"sort": "-weighted"}, "opportunity") == [3, 1, 4, 2, 5]
    # a formula through a missing reference still runs: concat() makes ' ', before 'Ada'
    assert order({"sort": "contact.full_name,name"}, "opportunity") == [5, 3, 1, 4, 2]


# --- cursors ----------------------------------------------------------------------------------------------


def _walk(
    engine: Engine,
    tables: Tables,
    entity: str,
    params: dict[str, str],
    between: Callable[[], None] | None = None,
) -> list[int]:
    seen: list[int] = []
    cursor = None
    for _ in range(1000):
        page = _list(engine, tables, entity, {**params, **({"cursor": cursor} if cursor else {})})
        seen += [r["id"] for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            return seen
        if between:
            between()
    raise AssertionError("pagination did not end")


def _many(conn: sa.Connection, tables: Tables, start: int, count: int) -> None:
    """Rows with many ties and NULLs, deterministic."""
    accounts = []
    opportunities = []
    for i in range(start, start + count):
        accounts.append(dict(
            id=i, name=f"Acct {i % 7}", grade=[None, "a", "b", "c"][i % 4],
            revenue=None if i % 5 == 0 else D(i % 3) + D("0.25"),
            employees=None if i % 6 == 0 else i % 4, founded=None if i % 3 == 0 else day(2024, 1, 1 + i % 5),
            last_contact=None if i % 4 == 1 else _at("2024-05-01T00:00:00") + dt.timedelta(microseconds=i % 3),
            active=None if i % 7 == 0 else bool(i % 2), region=1 + i % 2 if i % 3 else None,
        ))  # fmt: skip
        opportunities.append(dict(
            id=i, name=f"Opp {i % 5}", account=i, amount=None if i % 9 == 0 else D("33.33") * (i % 4),
            probability=D(i % 7) * D("11.1"), stage=["won", "lost", None][i % 3],
        ))  # fmt: skip
    _insert(conn, tables, "account", accounts)
    _insert(conn, tables, "opportunity", opportunities)


SORTS = [
    ("account", "-revenue"),
    ("account", "revenue"),
    ("account", "revenue,-employees"),
    ("account", "-founded,name"),
    ("account", "grade,-revenue"),
    ("account", "active,employees"),
    ("account", "last_contact"),
    ("account", "-last_contact,-revenue"),
    ("account", "-size,region.name"),
    ("account", "id"),
    ("account", "-created_at"),
    ("opportunity", "-weighted"),
    ("opportunity", "weighted,account.grade"),
    ("opportunity", "account.revenue,-account.region.name"),
    ("opportunity", "stage,-probability"),
]


def test_cursor_walk_equals_one_sorted_query(db_engine: Engine, tables: Tables) -> None:
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 60)
    for entity, sort in SORTS:
        whole = [
            r["id"] for r in _list(db_engine, tables, entity, {"sort": sort, "limit": "500"}).rows
        ]
        for limit in ("1", "7", "13"):
            walked = _walk(db_engine, tables, entity, {"sort": sort, "limit": limit})
            assert walked == whole, f"{entity} sort={sort} limit={limit}"


def test_cursor_walk_with_filters_and_search(db_engine: Engine, tables: Tables) -> None:
    _walk_filtered_search(db_engine, tables)


def _walk_filtered_search(db_engine: Engine, tables: Tables) -> None:
    """Walking a filtered, searched list page by page gives the one query's rows."""
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 60)
    params = {"sort": "-revenue,name", "q": "acct", "grade__in": "a,b"}
    whole = [r["id"] for r in _list(db_engine, tables, "account", {**params, "limit": "500"}).rows]
    assert len(whole) == 30
    assert _walk(db_engine, tables, "account", {**params, "limit": "4"}) == whole


def test_cursor_is_stable_under_concurrent_inserts(db_engine: Engine, tables: Tables) -> None:
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 60)
    original = {r["id"] for r in ACCOUNTS} | set(range(100, 160))
    next_id = iter(range(1000, 2000))

    def insert_some() -> None:
        with db_engine.begin() as conn:
            new = next(next_id)
            _many(
                conn, tables, new * 10, 3
            )  # values across the whole range: some before the cursor

    for sort in ("-revenue,employees", "founded", "-id", "grade,name"):
        walked = _walk(
            db_engine, tables, "account", {"sort": sort, "limit": "9"}, between=insert_some
        )
        assert len(walked) == len(set(walked)), f"duplicates with sort={sort}"
        assert original <= set(walked), f"skipped {sorted(original - set(walked))} with sort={sort}"
        final = [
            r["id"]
            for r in _list(db_engine, tables, "account", {"sort": sort, "limit": "500"}).rows
        ]
        assert [i for i in final if i in set(walked)] == walked, f"order with sort={sort}"


def test_tampered_cursors_are_refused(db_engine: Engine, tables: Tables) -> None:
    page = _list(db_engine, tables, "account", {"sort": "-revenue", "limit": "3"})
    cursor = page.next_cursor
    assert cursor is not None
    body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    body["v"][-1] += 1
    edited = base64.urlsafe_b64encode(json.dumps(body).encode()).decode()
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    for bad in ("nonsense", "e30", "!!!", flipped, edited, cursor[:-4], "x" * 5000):
        fields = _bad(tables.model, "account", {"sort": "-revenue", "cursor": bad})
        assert list(fields) == ["cursor"], bad
        assert "start again" in fields["cursor"][0]
    # a cursor belongs to its sort
    assert "cursor" in _bad(tables.model, "account", {"sort": "revenue", "cursor": cursor})
    # run() refuses it too, when the ListQuery was built in code
    with db_engine.connect() as conn, pytest.raises(BadRequest) as caught:
        run(
            conn, tables, "account", ListQuery(cursor=edited, sort=(SortKey("revenue", True),)), ANN
        )
    assert "cursor" in caught.value.fields


# --- bad parameters ----------------------------------------------------------------------------------------

BAD_PARAMS = [
    ({"nmae": "x"}, "nmae", "did you mean 'name'"),
    ({"name__like": "x"}, "name__like", "unknown operator 'like'"),
    ({"grade__contains": "a"}, "grade__contains", "does not apply to choice field 'grade'"),
    ({"tags__lt": "vip"}, "tags__lt", "use: eq, ne, contains, in, not_in, isnull"),
    ({"employees": "ten"}, "employees", "'ten' is not a whole number"),
    ({"employees": "1.5"}, "employees", "not a whole number"),
    ({"employees": "99999999999999999999999"}, "employees", "not a whole number"),
    ({"revenue__gt": "1e5"}, "revenue__gt", "is not a number"),
    ({"revenue__gt": "NaN"}, "revenue__gt", "is not a number"),
    ({"active": "maybe"}, "active", "not true or false"),
    ({"founded": "2024-02-30"}, "founded", "is not a date"),
    ({"founded": "next_decade"}, "founded", "this_quarter"),
    ({"last_contact": "yesterday-ish"}, "last_contact", "is not a date and time"),
    ({"grade": "z"}, "grade", "options: c, a, b"),
    ({"tags__contains": "vip,gold"}, "tags__contains", "'gold' is not an option"),
    ({"region": "north"}, "region", "not a whole number"),
    ({"employees__in": ""}, "employees__in", "at least one value"),
    ({"employees__between": "1"}, "employees__between", "two values"),
    ({"employees__isnull": "maybe"}, "employees__isnull", "true or false"),
    ({"employees": ""}, "employees", "employees__isnull"),
    ({"name": "a\x00b"}, "name", "NUL"),
    ({"lines": "1"}, "lines", "child rows"),
    ({"logo": "x.png"}, "logo", "does not apply to file field"),
    ({"region.nmae": "x"}, "region.nmae", "did you mean 'name'"),
    ({"name.grade": "x"}, "name.grade", "is not a reference"),
    ({"region.name.x.y": "x"}, "region.name.x.y", "at most 2"),
    ({"limit": "0"}, "limit", "from 1 to 500"),
    ({"limit": "501"}, "limit", "from 1 to 500"),
    ({"limit": "ten"}, "limit", "from 1 to 500"),
    ({"limit": ["5", "6"]}, "limit", "once"),
    ({"sort": "-revenu"}, "sort", "did you mean 'revenue'"),
    ({"sort": "tags"}, "sort", "cannot sort by multi field 'tags'"),
    ({"fields": "name,nope"}, "fields", "unknown field 'nope'"),
    ({"expand": "name"}, "expand", "only reference, user and team fields"),
    ({"q": "x" * 201}, "q", "longer than 200"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "key", "message"), BAD_PARAMS)
def test_bad_params_are_field_errors(
    model: Model, params: dict[str, Any], key: str, message: str
) -> None:
    fields = _bad(model, "account", params)
    assert key in fields, fields
    assert any(message in m for m in fields[key]), fields[key]


def test_every_problem_is_reported_at_once(model: Model) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_params(model, "account", {"nmae": "x", "limit": "0", "grade": "z", "sort": "nope"})
    error = caught.value
    assert set(error.fields) == {"nmae", "limit", "grade", "sort"}
    assert error.status == 400
    assert error.message.startswith("Invalid list query: nmae: unknown field 'nmae'")
    assert error.to_dict()["error"]["fields"] == error.fields


def test_search_needs_search_fields(model: Model) -> None:
    assert "q" in _bad(model, "tally", {"q": "x"})
    assert parse_params(model, "region", {"q": "nor"}).search == "nor"  # the title field serves


# --- search ------------------------------------------------------------------------------------------------

SEARCHES = {
    "acme": {1, 5, 7},  # name or notes, any case
    "ACME": {1, 5, 7},
    "客户": {1, 4},  # Chinese: a substring of the notes, and of a name
    "株式会社": {2},  # Japanese, inside a name
    "顧客": {2},
    "ＡＣＭＥ": {10},  # full-width letters are other characters
    "acme partner": {5},  # every word, in any search field
    "Delta 客户": {4},
    "50%": {3},  # LIKE wildcards are plain characters
    "_": {3, 9},
    "zzz": set(),
}


def test_search_is_case_insensitive_and_finds_cjk_substrings(
    db_engine: Engine, tables: Tables
) -> None:
    for text, expected in SEARCHES.items():
        assert _ids(db_engine, tables, "account", {"q": text}) == expected, text
    assert _ids(db_engine, tables, "account", {"q": "acme", "grade": "a"}) == {1, 5, 7}
    assert _ids(db_engine, tables, "account", {"q": "  "}) == {r["id"] for r in ACCOUNTS}


def test_search_finds_the_same_through_the_search_indexes(
    db_engine: Engine, tables: Tables
) -> None:
    """Trigram GIN indexes on PostgreSQL, FTS5 tables on SQLite (indexing the rows already
    there, and those written after): the same results as the scans above."""
    with db_engine.begin() as conn:
        names = ensure_search_indexes(conn, tables)
    expected_names = {"sqlite": "account__fts", "postgresql": "ix_account_notes_trgm"}
    assert expected_names[db_engine.dialect.name] in names
    for text, expected in SEARCHES.items():
        assert _ids(db_engine, tables, "account", {"q": text}) == expected, text
    _walk_filtered_search(db_engine, tables)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: test_search_sqlite
def test_search_uses_trigram_indexes_on_postgresql(db_engine: Engine, tables: Tables) -> None:
    with db_engine.begin() as conn:
        names = ensure_search_indexes(conn, tables)
        assert ensure_search_indexes(conn, tables) == names  # idempotent
    assert "ix_account_name_trgm" in names and "ix_account_notes_trgm" in names
    with db_engine.connect() as conn:
        indexes = set(
            conn.scalars(
                sa.text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'")
            )
        )
        assert set(names) <= indexes
        conn.execute(sa.text("SET enable_seqscan = off"))
        query = parse_params(tables.model, "account", {"q": "acme"})
        assert {r["id"] for r in run(conn, tables, "account", query, ANN).rows} == {1, 5, 7}
        plan = "\n".join(
            conn.scalars(sa.text("EXPLAIN SELECT id FROM account WHERE name ILIKE '%acme%'"))
        )
        assert "ix_account_name_trgm" in plan
    for text, expected in SEARCHES.items():
        assert _ids(db_engine, tables, "account", {"q": text}) == expected, text


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no extensions
def test_search_indexes_degrade_without_the_extension(db_engine: Engine, tables: Tables) -> None:
    role = f"heddle_no_ext_{secrets.token_hex(4)}"
    with db_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
        database = conn.scalar(sa.text("SELECT current_database()"))
        conn.execute(sa.text(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC, "{role}"'))
    try:
        with db_engine.begin() as conn:
            conn.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
            assert ensure_search_indexes(conn, tables) == []
            conn.execute(sa.text("RESET ROLE"))
            assert (
                conn.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"))
                == 0
            )
        assert _ids(db_engine, tables, "account", {"q": "客户"}) == {1, 4}
    finally:
        with db_engine.begin() as conn:
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


# --- field selection, expand --------------------------------------------------------------------------------


def test_all_stored_fields_by_default_and_a_selection_on_request(
    db_engine: Engine, tables: Tables
) -> None:
    row = _list(db_engine, tables, "account", {"id": "1"}).rows[0]
    assert set(row) == {c.name for c in tables.table("account").c}
    assert row["revenue"] == D("1000.50") and row["tags"] == ["vip", "partner"]
    assert row["last_contact"] == _at("2024-05-15T10:00:00")
    rows = _list(
        db_engine, tables, "opportunity", {"fields": "name,weighted,region_name", "sort": "id"}
    ).rows
    assert [set(r) for r in rows] == [{"id", "version", "name", "weighted", "region_name"}] * 5
    assert [r["weighted"] for r in rows] == [D(2500), D(10), None, D(2000), D(0)]
    assert [r["region_name"] for r in rows] == ["North", "South", None, "South", None]


def test_expand_reads_titles_for_the_whole_page(db_engine: Engine, tables: Tables) -> None:
    rows = _list(
        db_engine,
        tables,
        "opportunity",
        {"expand": "account,contact,owner_id", "fields": "name", "sort": "id"},
    ).rows
    assert [(r["account"], r["account__title"]) for r in rows] == [
        (1, "Acme Corp"), (2, "Beta 株式会社"), (None, None), (5, "Epsilon"), (3, "gamma 50%_off"),
    ]  # fmt: skip
    assert [r["contact__title"] for r in rows] == [
        "Ada Lovelace",
        "Grace Hopper",
        None,
        "Ada Lovelace",
        None,
    ]
    assert [r["owner_id__title"] for r in rows] == ["Ann", "Bob", "Ann", "Bob", "Ann"]
    rows = _list(
        db_engine, tables, "account", {"expand": "watchers,sales_team,region", "id__in": "1,3,4"}
    ).rows
    by_id = {r["id"]: r for r in rows}
    assert by_id[1]["watchers__title"] == ["Ann", "Bob"]
    assert by_id[4]["watchers__title"] == [] and by_id[3]["watchers__title"] == []
    assert by_id[1]["sales_team__title"] == "East" and by_id[3]["sales_team__title"] is None
    assert by_id[4]["region__title"] == "North"


def test_a_page_costs_the_same_statements_whatever_its_size(
    db_engine: Engine, tables: Tables
) -> None:
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 80)
        conn.execute(tables.table("opportunity").update().values(contact=1, owner_id=2))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    params = {
        "expand": "account,contact,owner_id",
        "account.grade__in": "a,b,c",
        "sort": "-weighted",
    }
    used = {}
    _list(db_engine, tables, "opportunity", params)  # PostgreSQL: the table's size, kept a minute
    sa.event.listen(db_engine, "before_cursor_execute", count)
    try:
        for limit in ("5", "50"):
            statements.clear()
            page = _list(db_engine, tables, "opportunity", {**params, "limit": limit})
            assert len(page.rows) == int(limit) and page.next_cursor
            assert all(
                r["account__title"] and r["contact__title"] and r["owner_id__title"]
                for r in page.rows
            )
            used[limit] = len(statements)
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", count)
    assert used["5"] == used["50"] == 5  # page, count, one per expanded field


# --- counts --------------------------------------------------------------------------------------------------


def test_counts_are_exact_when_small_and_estimated_when_large(
    db_engine: Engine, tables: Tables
) -> None:
    everything = _list(db_engine, tables, "account", {})
    assert (everything.count, everything.count_estimated, everything.next_cursor) == (
        10,
        False,
        None,
    )
    page = _list(db_engine, tables, "account", {"limit": "2", "grade": "a"})
    assert (page.count, page.count_estimated) == (4, False)
    second = _list(
        db_engine, tables, "account", {"limit": "2", "grade": "a", "cursor": page.next_cursor}
    )
    assert (len(second.rows), second.count, second.count_estimated) == (2, 4, False)
    assert (
        _list(db_engine, tables, "account", {"limit": "2", "grade": "a"}, exact_count_up_to=4).count
        == 4
    )
    big = _list(db_engine, tables, "account", {"limit": "2"}, exact_count_up_to=3)
    assert big.count_estimated is True
    if db_engine.dialect.name == "postgresql":
        assert big.count >= 4  # the planner's estimate, never below what was seen
    else:
        assert big.count == 3  # "3 or more"
    none = _list(db_engine, tables, "account", {"name": "nobody"})
    assert (none.rows, none.count, none.count_estimated, none.next_cursor) == ([], 0, False, None)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_estimates_come_from_the_planner(db_engine: Engine, tables: Tables) -> None:
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 900)
        conn.execute(sa.text("ANALYZE account"))
    page = _list(db_engine, tables, "account", {"limit": "5"}, exact_count_up_to=100)
    assert page.count_estimated is True
    assert 800 <= page.count <= 1000

    # the EXPLAIN is compiled once per query shape, like every other statement, and run
    # once a minute per query and values: the second 'a' reuses the first one's estimate
    explains: list[tuple[str, Any]] = []

    @sa.event.listens_for(db_engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        if statement.startswith("EXPLAIN"):
            explains.append((statement, context.cache_hit))

    try:
        for grade in ("a", "b", "a"):
            again = _list(db_engine, tables, "account", {"grade": grade}, exact_count_up_to=10)
            assert again.count_estimated is True
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", seen)
    assert len(explains) == 2 and len({text for text, _ in explains}) == 1
    assert [hit.name for _, hit in explains[1:]] == ["CACHE_HIT"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_big_tables_ask_the_planner_before_counting(db_engine: Engine, tables: Tables) -> None:
    """A count reads at most one row past the limit, but finding them can read many (a
    filter no index serves): on a table of more than 10 × the limit, a query the planner
    expects to match more than the limit is not counted at all."""
    with db_engine.begin() as conn:
        _many(conn, tables, 100, 900)
        conn.execute(sa.text("ANALYZE account"))
    statements: list[str] = []

    @sa.event.listens_for(db_engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        statements.append(statement)

    try:
        many = _list(
            db_engine, tables, "account", {"grade": "a", "limit": "5"}, exact_count_up_to=50
        )
        assert many.count_estimated is True and 150 <= many.count <= 300  # 225 rows are 'a'
        assert not [s for s in statements if "count(*)" in s]
        statements.clear()
        few = _list(
            db_engine, tables, "account", {"id__lt": "130", "limit": "5"}, exact_count_up_to=50
        )
        exact = sum(1 for i in [*range(1, 11), *range(100, 130)] if i < 130)
        assert (few.count, few.count_estimated) == (exact, False)  # few expected: counted
        assert [s for s in statements if "count(*)" in s]
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", seen)
    # a table of at most 10 × the limit is counted exactly, whatever the planner thinks
    small = _list(db_engine, tables, "account", {"grade": "a", "limit": "5"}, exact_count_up_to=100)
    assert small.count_estimated is True and small.count >= 101  # counted past 100, then planned


# --- queries built in code -----------------------------------------------------------------------------------


def test_run_checks_queries_built_in_code(db_engine: Engine, tables: Tables) -> None:
    with db_engine.connect() as conn:
        for query, key in [
            (ListQuery(limit=0), "limit"),
            (ListQuery(filters=(Filter(("grade",), "gt", "a"),)), "grade__gt"),
            (ListQuery(filters=(Filter(("nope",), "eq", 1),)), "nope"),
            (ListQuery(sort=(SortKey("tags"),)), "sort"),
            (ListQuery(fields=("nope",)), "fields"),
            (ListQuery(expand=("grade",)), "expand"),
            (ListQuery(filters=(Filter(("tags",), "in", ()),)), "tags__in"),
            (ListQuery(filters=(Filter(("employees",), "between", (1,)),)), "employees__between"),
        ]:
            with pytest.raises(BadRequest) as caught:
                run(conn, tables, "account", query, ANN)
            assert key in caught.value.fields, query
        page = run(
            conn,
            tables,
            "account",
            ListQuery(filters=(Filter(("founded",), "eq", RelativeDate("this_month")),)),
            ANN,
        )
        assert {r["id"] for r in page.rows} == {1, 2, 7}
        assert run(conn, tables, "account", ListQuery(search="   "), ANN).count == 10
        with pytest.raises(BadRequest) as caught:
            run(conn, tables, "tally", ListQuery(search="x"), ANN)
        assert "q" in caught.value.fields
