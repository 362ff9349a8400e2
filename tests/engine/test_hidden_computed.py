"""A computed field that reads a hidden field is hidden too: its value would give the
hidden one away (``margin = price - cost`` tells a rep the cost)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from engine.context import SYSTEM, Actor
from engine.errors import BadRequest
from engine.permissions import Permissions
from engine.query import parse_params
from engine.records import Records
from engine.tables import build_tables
from metamodel import load_packages

PACKAGE = """\
kind: package
name: margins
---
kind: entity
name: product
fields:
  name: {type: string, required: true}
  price: {type: money}
  cost: {type: money}
  margin: {type: formula, returns: money, expression: "coalesce(price, 0) - coalesce(cost, 0)"}
  margin_rate: {type: formula, returns: decimal, expression: "margin / price"}
  list_twice: {type: formula, returns: money, expression: "coalesce(price, 0) * 2"}
  sold: {type: rollup, of: sale, via: product, aggregate: sum, field: quantity}
  sold_cost: {type: rollup, of: sale, via: product, aggregate: sum, field: unit_cost}
  cheap_sales: {type: rollup, of: sale, via: product, aggregate: count, filter: "unit_cost < 10"}
  big_sales: {type: rollup, of: sale, via: product, aggregate: count, filter: "quantity > 10"}
---
kind: entity
name: sale
fields:
  product: {type: reference, to: product, required: true}
  quantity: {type: integer}
  unit_cost: {type: money}
  product_cost: {type: formula, returns: money, expression: "product.cost"}
  product_margin: {type: formula, returns: money, expression: "product.margin"}
  product_price: {type: formula, returns: money, expression: "product.price"}
---
kind: role
name: rep
permissions:
  product:
    read: all
    fields: {cost: hidden}
  sale:
    read: all
    create: all
    fields: {unit_cost: hidden}
---
kind: role
name: buyer
permissions:
  product: {read: all}
  sale: {read: all}
"""

REP = Actor(user_id=None, roles=frozenset({"rep"}))
BUYER = Actor(user_id=None, roles=frozenset({"buyer"}))
BOTH = Actor(user_id=None, roles=frozenset({"rep", "buyer"}))

HIDDEN_FROM_REP = {
    "product": {"cost", "margin", "margin_rate", "sold_cost", "cheap_sales"},
    "sale": {"unit_cost", "product_cost", "product_margin"},
}


@pytest.fixture
def records(db_engine: Engine, tmp_path: Path) -> Records:
    path = tmp_path / "margins.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    tables = build_tables(load_packages([path]))
    tables.metadata.create_all(db_engine)
    return Records(db_engine, tables.model, tables=tables)


@pytest.fixture
def product(records: Records) -> dict[str, Any]:
    made = records.create(SYSTEM, "product", {"name": "Pump", "price": "100", "cost": "63"})
    for quantity, unit_cost in ((5, "8"), (20, "12")):
        records.create(
            SYSTEM, "sale", {"product": made["id"], "quantity": quantity, "unit_cost": unit_cost}
        )
    return records.get(SYSTEM, "product", made["id"])


@pytest.mark.parametrize("entity", ["product", "sale"])
def test_what_reads_a_hidden_field_is_hidden(records: Records, entity: str) -> None:
    permissions = Permissions(records.tables)
    ent = records.model.entity(entity)
    assert permissions.grant(REP, ent, "read").hidden == HIDDEN_FROM_REP[entity]
    assert permissions.grant(BUYER, ent, "read").hidden == frozenset()
    # a field is hidden only if every role hides it, and so are the fields computed from it
    assert permissions.grant(BOTH, ent, "read").hidden == frozenset()
    assert HIDDEN_FROM_REP[entity] <= permissions.grant(REP, ent, "read").readonly


def test_hidden_formulas_and_rollups_never_leave_the_engine(
    records: Records, product: dict[str, Any]
) -> None:
    assert product["margin"] == 37 and product["sold_cost"] == 20  # the admin sees them
    seen = records.get(REP, "product", product["id"])
    assert HIDDEN_FROM_REP["product"].isdisjoint(seen)
    assert seen["list_twice"] == 200 and seen["sold"] == 25 and seen["big_sales"] == 1

    page = records.query(REP, "sale", parse_params(records.model, "sale", {}))
    assert page.rows and all(HIDDEN_FROM_REP["sale"].isdisjoint(row) for row in page.rows)
    assert {row["product_price"] for row in page.rows} == {100}

    created = records.create(REP, "sale", {"product": product["id"], "quantity": 1})
    assert HIDDEN_FROM_REP["sale"].isdisjoint(created)
    assert HIDDEN_FROM_REP["product"].isdisjoint(records.get(REP, "product", product["id"]))


@pytest.mark.parametrize(
    ("entity", "params", "where"),
    [
        ("product", {"margin__gte": "37"}, "margin__gte"),
        ("product", {"margin_rate__gt": "0.3"}, "margin_rate__gt"),
        ("product", {"cheap_sales": "1"}, "cheap_sales"),
        ("product", {"sort": "-sold_cost"}, "sort"),
        ("product", {"fields": "name,margin"}, "fields"),
        ("sale", {"product_cost__lt": "70"}, "product_cost__lt"),
        ("sale", {"product.margin__gte": "37"}, "product.margin__gte"),
    ],
)
def test_filters_and_sorts_cannot_probe_hidden_computed_fields(
    records: Records, product: dict[str, Any], entity: str, params: dict[str, str], where: str
) -> None:
    query = parse_params(records.model, entity, params)
    with pytest.raises(BadRequest) as refused:
        records.query(REP, entity, query)
    assert where in refused.value.fields
    # the same query is fine for a role that hides nothing
    assert records.query(BUYER, entity, query).count >= 0
