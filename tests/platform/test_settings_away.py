"""Settings, "While you are away": a user hands their approvals to a colleague for some
days and clears it; the colleague sees it; bad dates are refused beside their fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from crm_support import crm_fixture, csrf_token, logged_in
from flask import Flask
from sqlalchemy.engine import Engine

from engine.approval_tables import DELEGATION_TABLE

USERS = [
    ("mia", ["sales_manager"], "East", None),
    ("ann", ["sales_rep"], "East", "mia"),
    ("bob", ["sales_rep"], "East", "mia"),
]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    yield from crm_fixture(db_url, tmp_path, USERS)


def _delegations(app: Flask) -> list[tuple[str, str, dt.date, dt.date]]:
    runtime = app.extensions["heddle"]
    d = runtime.tables.metadata.tables[DELEGATION_TABLE]
    users = runtime.tables.metadata.tables["heddle_user"]
    giver, taker = users.alias("giver"), users.alias("taker")
    query = (
        sa.select(giver.c.username, taker.c.username, d.c.starts_on, d.c.ends_on)
        .join(giver, giver.c.id == d.c.user_id)
        .join(taker, taker.c.id == d.c.delegate_id)
    )
    with runtime.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def _user_id(app: Flask, username: str) -> int:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        return int(runtime.accounts.by_username(conn, username).id)


def test_a_user_hands_their_approvals_over_and_clears_it(app: Flask) -> None:
    mia = logged_in(app, "mia")
    page = mia.get("/settings").get_data(as_text=True)
    assert 'id="away"' in page and "Who decides for you" in page
    today = dt.date.today()
    start, end = today + dt.timedelta(days=1), today + dt.timedelta(days=10)
    done = mia.post("/settings/away", data={
        "csrf_token": csrf_token(page), "delegate_id": str(_user_id(app, "ann")),
        "starts_on": start.isoformat(), "ends_on": end.isoformat(), "note": "年假"})  # fmt: skip
    assert done.status_code == 302 and done.headers["Location"].endswith("#away")
    assert _delegations(app) == [("mia", "ann", start, end)]
    page = mia.get("/settings").get_data(as_text=True)
    assert "decides your approvals while you are away" in page  # the flash message
    assert "Ann Lee decides for you" in page or "ann decides for you" in page.lower()
    assert "年假" in page
    ann = logged_in(app, "ann")
    seen = ann.get("/settings").get_data(as_text=True)
    assert "You decide for" in seen and "/clear" not in seen  # hers to use, not to clear
    clear = next(part.split('"')[0] for part in page.split('action="')[1:]
                 if part.startswith("/settings/away/"))  # fmt: skip
    assert ann.post(clear, data={"csrf_token": csrf_token(seen)}).status_code in (403, 404)
    assert len(_delegations(app)) == 1
    assert mia.post(clear, data={"csrf_token": csrf_token(page)}).status_code == 302
    assert _delegations(app) == []


def test_bad_handovers_are_refused_beside_their_fields(app: Flask) -> None:
    mia = logged_in(app, "mia")
    page = mia.get("/settings").get_data(as_text=True)
    token = csrf_token(page)
    nobody = mia.post("/settings/away", data={"csrf_token": token, "delegate_id": "",
                                              "starts_on": "2027-01-05", "ends_on": "2027-01-09"})  # fmt: skip
    assert nobody.status_code == 422
    assert 'id="away-delegate_id-error"' in nobody.get_data(as_text=True)
    backwards = mia.post("/settings/away", data={
        "csrf_token": token, "delegate_id": str(_user_id(app, "ann")),
        "starts_on": "2027-01-09", "ends_on": "2027-01-05"})  # fmt: skip
    body = backwards.get_data(as_text=True)
    assert backwards.status_code == 422 and "The end cannot be before the start." in body
    assert 'value="2027-01-09"' in body  # what was typed, kept
    mia.post("/language", data={"locale": "zh", "csrf_token": token})
    undated = mia.post("/settings/away", data={"csrf_token": token,
                                               "delegate_id": str(_user_id(app, "ann")),
                                               "starts_on": "next week", "ends_on": ""})  # fmt: skip
    assert undated.status_code == 422
    assert "不是有效的日期" in undated.get_data(as_text=True)
    to_self = mia.post("/settings/away", data={
        "csrf_token": token, "delegate_id": str(_user_id(app, "mia")),
        "starts_on": "2027-01-05", "ends_on": "2027-01-09"})  # fmt: skip
    assert to_self.status_code == 422
    assert _delegations(app) == []
