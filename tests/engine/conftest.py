"""Engine test helpers: a small package and a database with its tables."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine.context import Actor
from engine.records import Records
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import Model, load_packages

SALES = """\
kind: package
name: sales
---
kind: role
name: sales_rep
permissions:
  "*": {read: all, create: all, update: all, delete: all}
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true, max_length: 100}
  code: {type: autonumber, format: "AC-{seq:04}"}
  grade: {type: choice, options: [A, B, C], default: B}
  email: {type: email, unique: true}
  parent_account: {type: reference, to: account, on_delete: set_null}
  lifetime_value: {type: rollup, of: contract, via: account, aggregate: sum, field: received}
  contracts: {type: rollup, of: contract, via: account, aggregate: count}
  tags: {type: multichoice, options: [vip, new, cold]}
  vip_note: {type: text, required_when: "'vip' in tags"}
---
kind: entity
name: contact
fields:
  name: {type: string, required: true}
  account: {type: reference, to: account, required: true, on_delete: cascade}
  owner: {type: user, default: "=current_user()"}
---
kind: entity
name: contract
ownable: true
fields:
  number: {type: autonumber, format: "CT-{YYYY}-{seq:05}"}
  title: {type: string, required: true}
  account: {type: reference, to: account, required: true, on_delete: restrict}
  amount: {type: money, required: true, min: 0}
  start_date: {type: date, default: "=today()"}
  end_date: {type: date}
  received: {type: rollup, of: payment, via: contract, aggregate: sum, field: amount, filter: "status == 'confirmed'"}
  outstanding: {type: formula, returns: money, expression: "amount - received"}
  grade_of_account: {type: formula, returns: string, expression: "account.grade"}
  signed_by: {type: string, readonly_when: "amount >= 1000"}
validations:
  - name: ends_after_start
    rule: "is_empty(end_date) or end_date >= start_date"
    message: {en: The end date is before the start date, zh: 结束日期早于开始日期}
    fields: [end_date]
---
kind: entity
name: payment
fields:
  contract: {type: reference, to: contract, required: true, on_delete: cascade}
  amount: {type: money, required: true}
  status: {type: choice, options: [pending, confirmed], default: pending}
---
kind: entity
name: quote
fields:
  title: {type: string}
  lines: {type: children, entity: quote_line, required: true}
  subtotal: {type: rollup, of: quote_line, via: quote, aggregate: sum, field: amount}
---
kind: entity
name: quote_line
child: true
fields:
  quote: {type: reference, to: quote, on_delete: cascade}
  product: {type: string, required: true}
  quantity: {type: integer, default: 1, min: 1}
  price: {type: money, required: true}
  amount: {type: formula, returns: money, expression: "quantity * price"}
"""


@pytest.fixture
def sales_model(tmp_path: Path) -> Model:
    path = tmp_path / "sales.yaml"
    path.write_text(textwrap.dedent(SALES), encoding="utf-8")
    return load_packages([path])


@pytest.fixture
def records(db_engine: Engine, sales_model: Model) -> Records:
    tables = build_tables(sales_model)
    tables.metadata.create_all(db_engine)
    now = dt.datetime.now(dt.UTC)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "East", "created_at": now}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {
                    "username": "ann",
                    "name": "Ann",
                    "roles": ["sales_rep"],
                    "team_id": 1,
                    "created_at": now,
                },
                {
                    "username": "bob",
                    "name": "Bob",
                    "roles": ["sales_rep"],
                    "team_id": 1,
                    "created_at": now,
                },
            ],
        )
    return Records(db_engine, sales_model, tables=tables)


@pytest.fixture
def ann() -> Actor:
    return Actor(user_id=1, team_id=1, roles=frozenset({"sales_rep"}))
