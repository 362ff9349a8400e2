"""A page issues a fixed number of SQL statements whatever the data (issue 12): the list
page with 10 and with 50 rows, a record page with its related lists empty and full (and
its child rows), the kanban and a dashboard, and the quote's edit form with two and with
twelve lines. Counted with SQLAlchemy's cursor events on the app's engine, on SQLite and
PostgreSQL; the first request of each page warms the caches, the second is counted.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_support import actor_of, crm_app, logged_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from statement_support import statements

HTML = {"Accept": "text/html"}


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    made = crm_app(db_url, tmp_path, [("root", ["admin"], "HQ", None)])
    made.extensions["heddle"].check_seconds = 3600  # no definitions check mid-count
    made.extensions["heddle"].records.pools.ttl = 3600  # nor a reading of the pools
    yield made
    made.extensions["heddle"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return logged_in(app, "root")


def counted(app: Flask, client: FlaskClient, url: str) -> list[str]:
    """The statements the second GET of ``url`` runs (the first fills the caches)."""
    assert client.get(url, headers=HTML).status_code == 200
    answers: list[Any] = []
    seen = statements(app, lambda: answers.append(client.get(url, headers=HTML)))
    assert answers[0].status_code == 200, url
    return seen


def same_count(
    app: Flask, client: FlaskClient, url: Callable[[], str], grow: Callable[[], None]
) -> tuple[list[str], list[str]]:
    before = counted(app, client, url())
    grow()
    return before, counted(app, client, url())


def assert_same(before: list[str], after: list[str]) -> None:
    """The same statements, with the difference shown when not."""
    changed = "\n".join(difflib.unified_diff(before, after, "few rows", "many rows", lineterm=""))
    assert len(before) == len(after), changed


def make(app: Flask, entity: str, count: int, **values: Any) -> list[int]:
    records = app.extensions["heddle"].records
    actor = actor_of(app, "root")
    return [
        records.create(actor, entity, {k: v(i) if callable(v) else v for k, v in values.items()})[
            "id"
        ]
        for i in range(count)
    ]


def test_the_list_page(app: Flask, client: FlaskClient) -> None:
    make(app, "account", 10, name=lambda i: f"Account {i}", grade="A")
    few, many = same_count(
        app,
        client,
        lambda: "/app/account",
        lambda: make(app, "account", 40, name=lambda i: f"More {i}", grade="B"),
    )
    assert_same(few, many)


def test_a_record_page_with_related_lists_and_child_rows(app: Flask, client: FlaskClient) -> None:
    """Empty related lists skip the look-up of their rows' owners and assignees, so a
    page with none costs a few statements less; from one row on the count stays."""
    (account,) = make(app, "account", 1, name="Acme")
    (deal,) = make(app, "opportunity", 1, name="ERP", account=account)
    (product,) = make(app, "product", 1, name="Tea", code="TEA", list_price="10")
    (quote,) = make(
        app,
        "quote",
        1,
        account=account,
        opportunity=deal,
        lines=[{"product": product, "quantity": "1", "unit_price": "10"}],
    )
    today = dt.date.today().isoformat()
    urls = [
        f"/app/opportunity/{deal}",
        f"/app/account/{account}",
        f"/app/quote/{quote}",
        f"/app/quote/{quote}/edit",
    ]

    def grow(count: int) -> None:
        user = actor_of(app, "root").user_id
        make(app, "quote", count, account=account, opportunity=deal)
        make(app, "activity", count, subject=lambda i: f"Call {i}", opportunity=deal,
             account=account)  # fmt: skip
        make(app, "task", count, subject=lambda i: f"Do {i}", opportunity=deal, due=today,
             assignee=user)  # fmt: skip
        make(app, "contact", count, name=lambda i: f"Contact {i}", account=account, wechat="w")
        records = app.extensions["heddle"].records
        row = records.get(actor_of(app, "root"), "quote", quote)
        lines = [{"product": product, "quantity": str(i), "unit_price": "10"} for i in range(1, 9)]
        records.update(
            actor_of(app, "root"), "quote", quote, {"lines": lines}, version=row["version"]
        )

    empty = [counted(app, client, u) for u in urls]
    grow(1)
    one = [counted(app, client, u) for u in urls]
    grow(8)
    many = [counted(app, client, u) for u in urls]
    for none, first, more in zip(empty, one, many, strict=True):
        assert len(none) <= len(first)
        assert_same(first, more)


def test_the_kanban_and_a_dashboard(app: Flask, client: FlaskClient) -> None:
    """A kanban column shows its first cards and counts the others when it has more: from
    a full column on, more cards cost nothing."""
    (account,) = make(app, "account", 1, name="Acme")
    make(app, "opportunity", 30, name=lambda i: f"Deal {i}", account=account, amount="1000")
    urls = ["/app/opportunity/kanban", "/dashboards/sales_cockpit"]
    before = [counted(app, client, u) for u in urls]
    make(app, "opportunity", 30, name=lambda i: f"More {i}", account=account, amount="500")
    after = [counted(app, client, u) for u in urls]
    for one, other in zip(before, after, strict=True):
        assert_same(one, other)
