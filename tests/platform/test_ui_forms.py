"""Live forms through Flask's test client, on the CRM package, SQLite and PostgreSQL: a
quote's lines saved with it in one request (row errors beside their cells, rows changed
and removed), the form's live state (``/preview``), the server dropping what
``visible_when`` hides, and the user and team pickers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm_support import actor_of, crm_app, csrf_token, logged_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from engine import SYSTEM

HTML = {"Accept": "text/html"}
TODAY = dt.date.today().isoformat()


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    made = crm_app(
        db_url,
        tmp_path,
        [("root", ["admin"], "HQ", None), ("ann", ["sales_manager"], "East Sales", None)],
    )
    yield made
    made.extensions["heddle"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return logged_in(app, "root")


def create(app: Flask, entity: str, **values: Any) -> int:
    made: int = app.extensions["heddle"].records.create(actor_of(app, "root"), entity, values)["id"]
    return made


def form_token(client: FlaskClient, url: str) -> tuple[str, str]:
    page = client.get(url, headers=HTML)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html, csrf_token(html)


def test_a_quote_and_its_lines_are_saved_in_one_request(app: Flask, client: FlaskClient) -> None:
    account = create(app, "account", name="Acme")
    tea = create(app, "product", name="Tea", code="TEA", list_price="12.5")
    cups = create(app, "product", name="Cups", code="CUP", list_price="3")
    html, token = form_token(client, "/app/quote/new")
    assert 'data-h-children="lines"' in html and "<template data-h-blank>" in html
    assert 'name="lines-__i__-quantity"' in html  # the blank row new ones are copied from
    form = {
        "csrf_token": token, "account": str(account), "date": TODAY, "status": "draft",
        "lines-rows": "1",
        "lines-0-product": str(tea), "lines-0-quantity": "2", "lines-0-unit_price": "100",
        "lines-0-discount": "10",
        # rows keep their order, whatever their numbers; a new row's empty price is the
        # product's list price (the child's default)
        "lines-7-product": str(cups), "lines-7-quantity": "-1", "lines-7-unit_price": "",
    }  # fmt: skip
    refused = client.post("/app/quote/new", data=form, headers=HTML)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    error = re.search(r'id="f-lines-1-quantity-error"[^>]*>([^<]*)<', html)
    assert error is not None and "greater than or equal to 0" in error.group(1)
    assert 'name="lines-0-unit_price" value="100"' in html  # what was typed stays
    assert f'<option value="{cups}" selected>Cups</option>' in html
    form["lines-7-quantity"] = "4"
    saved = client.post("/app/quote/new", data=form, headers=HTML)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    quote = int(saved.headers["Location"].rsplit("/", 1)[1])
    records = app.extensions["heddle"].records
    row = records.get(actor_of(app, "root"), "quote", quote)
    lines = sorted(row["lines"], key=lambda r: r["id"])
    assert [(r["product"], r["quantity"], r["unit_price"]) for r in lines] == [
        (tea, Decimal(2), Decimal(100)),
        (cups, Decimal(4), Decimal(3)),
    ]
    assert row["subtotal"] == Decimal("192.00")  # 180 + 12

    html, token = form_token(client, f"/app/quote/{quote}/edit")
    assert f'name="lines-0-id" value="{lines[0]["id"]}"' in html
    assert 'name="lines-0-quantity" value="2"' in html  # 2, not 2.000000
    changed = {
        "csrf_token": token, "account": str(account), "date": TODAY, "status": "draft",
        "version": str(row["version"]), "lines-rows": "1",
        "lines-0-id": str(lines[0]["id"]), "lines-0-product": str(tea),
        "lines-0-quantity": "3", "lines-0-unit_price": "100", "lines-0-discount": "10",
    }  # fmt: skip
    answer = client.post(f"/app/quote/{quote}/edit", data=changed, headers=HTML)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    row = records.get(actor_of(app, "root"), "quote", quote)
    assert [(r["id"], r["quantity"]) for r in row["lines"]] == [(lines[0]["id"], Decimal(3))]
    assert row["subtotal"] == Decimal("270.00")


def test_the_live_state_of_a_form(app: Flask, client: FlaskClient) -> None:
    account = create(app, "account", name="Acme")
    tea = create(app, "product", name="Tea", code="TEA", list_price="10")
    _html, token = form_token(client, "/app/quote/new")
    form = {
        "csrf_token": token, "account": str(account), "discount": "10", "lines-rows": "1",
        "lines-0-product": str(tea), "lines-0-quantity": "2", "lines-0-unit_price": "100",
        "lines-0-discount": "10",
        "lines-1-product": str(tea), "lines-1-quantity": "3", "lines-1-unit_price": "",
    }  # fmt: skip
    answer = client.post("/app/quote/preview", data=form)
    assert answer.status_code == 200 and answer.json is not None
    amounts = [row["amount"] for row in answer.json["children"]["lines"]]
    assert "180.00" in amounts[0] and "30.00" in amounts[1]  # 3 × the list price
    assert "210" in answer.json["values"]["subtotal"]
    assert "189.00" in answer.json["values"]["total"]  # 210 less 10 %

    _html, token = form_token(client, "/app/sales_target/new")
    for scope, shown in (("team", "team"), ("user", "user")):
        state = client.post(
            "/app/sales_target/preview", data={"csrf_token": token, "scope": scope}
        ).json
        assert state is not None
        hidden = "user" if shown == "team" else "team"
        assert state["fields"][shown] == {"visible": True, "required": True, "readonly": False}
        assert state["fields"][hidden]["visible"] is False
    assert client.post("/app/sales_target/preview", data={"scope": "team"}).status_code == 400


def test_the_server_drops_what_visible_when_hides(app: Flask, client: FlaskClient) -> None:
    html, token = form_token(client, "/app/sales_target/new")
    assert re.search(r'id="f-team-field" hidden', html)  # scope "user" by default
    users = re.search(r'<select[^>]*id="f-user".*?</select>', html, re.S)
    teams = re.search(r'<select[^>]*id="f-team".*?</select>', html, re.S)
    assert users is not None and "ann" in users.group(0)
    assert teams is not None and "East Sales" in teams.group(0)
    ann = int(re.findall(r'<option value="(\d+)">ann</option>', users.group(0))[0])
    east = int(re.findall(r'<option value="(\d+)">East Sales</option>', teams.group(0))[0])
    form = {
        "csrf_token": token, "name": "Ann 2027", "year": "2027", "scope": "user",
        "user": str(ann), "team": str(east), "metric": "contract_amount", "level": "target",
    }  # fmt: skip
    saved = client.post("/app/sales_target/new", data=form, headers=HTML)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    target = int(saved.headers["Location"].rsplit("/", 1)[1])
    row = app.extensions["heddle"].records.get(actor_of(app, "root"), "sales_target", target)
    assert (row["user"], row["team"]) == (ann, None)


def test_user_and_team_pickers_search(client: FlaskClient) -> None:
    teams = client.get("/app/_people/options?kind=team&_q=east").get_data(as_text=True)
    assert "East Sales" in teams and "HQ" not in teams
    users = client.get("/app/_people/options?kind=user&_q=AN&selected=1").get_data(as_text=True)
    assert ">ann</option>" in users and ">root</option>" not in users
    odd = client.get("/app/_people/options?kind=user&_q=%25_").get_data(as_text=True)
    assert '<option value="">' in odd and "ann" not in odd  # % and _ are text


def test_the_preview_shows_nothing_of_records_out_of_sight(app: Flask) -> None:
    """A formula reading through a reference (the relation's title: both accounts'
    names) is worked out only from records the user may read, as a save refuses others."""
    secret = create(app, "account", name="Secret Holdings")  # root's, in HQ
    ann = logged_in(app, "ann")  # a sales manager of East Sales: she cannot read it
    mine = app.extensions["heddle"].records.create(
        actor_of(app, "ann"), "account", {"name": "East Trading"}
    )["id"]
    _html, token = form_token(ann, "/app/account_relation/new")
    form = {"csrf_token": token, "from_account": str(mine), "to_account": str(secret)}
    state = ann.post("/app/account_relation/preview", data=form).json
    assert state is not None
    title = next(v for v in state["values"].values() if "East Trading" in v)
    assert "Secret Holdings" not in title


def test_a_sections_visible_when_hides_it_until_it_holds(app: Flask, client: FlaskClient) -> None:
    """The lead's "Conversion" section (``visible_when: converted``): left out of the record
    page and hidden on the form until the lead is converted; the form's live state says."""
    lead = create(app, "lead", name="Zhao Lei", company="Lotus", mobile="13800000000")
    page = client.get(f"/app/lead/{lead}", headers=HTML).get_data(as_text=True)
    assert 'data-h-section="conversion"' not in page and 'data-h-section="basic"' in page
    html, token = form_token(client, f"/app/lead/{lead}/edit")
    assert re.search(r'data-h-section="conversion"[^>]*\shidden', html)
    state = client.post(f"/app/lead/{lead}/preview", data={"csrf_token": token}).json
    assert state is not None and state["sections"] == {"conversion": False}

    records = app.extensions["heddle"].records
    records.update(SYSTEM, "lead", lead, {"converted": True}, version=None, trusted=True)
    page = client.get(f"/app/lead/{lead}", headers=HTML).get_data(as_text=True)
    assert 'data-h-section="conversion"' in page
    html, token = form_token(client, f"/app/lead/{lead}/edit")
    assert not re.search(r'data-h-section="conversion"[^>]*\shidden', html)
    state = client.post(f"/app/lead/{lead}/preview", data={"csrf_token": token}).json
    assert state is not None and state["sections"] == {"conversion": True}
