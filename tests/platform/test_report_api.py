"""The CRM's reports through ``/api/v1/reports``: numbers checked by hand, as an admin and
as a sales rep (who sees only their own records and no product cost), on SQLite and
PostgreSQL; bad parameters and ad-hoc reports are 400s naming what is wrong."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from sqlalchemy.engine import Engine

from engine import SYSTEM

PASSWORD = "correct horse battery"  # the conftest's: its token fixture logs in with it
PEOPLE = [  # username, roles, team
    ("root", ["admin"], "HQ"),
    ("ann", ["sales_rep"], "East"),
    ("bob", ["sales_rep"], "East"),
    ("fay", ["finance"], "HQ"),
]
TODAY = dt.datetime.now(dt.UTC).date()
THIS_MONTH = TODAY.replace(day=1)


@pytest.fixture
def crm(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    """The CRM on a throw-away database, with a small sales year in it."""
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TOKEN_CACHE_SECONDS": 0,
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        ids = {
            name: runtime.accounts.create_user(conn, name, PASSWORD, roles, team=team).id
            for name, roles, team in PEOPLE
        }
    _sales_year(runtime.records, ids)
    yield app
    runtime.engine.dispose()


def _sales_year(records: Any, ids: dict[str, int]) -> None:
    ann, bob = ids["ann"], ids["bob"]

    def make(entity: str, **values: Any) -> int:
        record = records.create(SYSTEM, entity, values, trusted=True)
        return int(record["id"])

    accounts = [
        make("account", name="Acme", grade="A", industry="retail", region="east_china",
             owner_id=ann, deal_status="won"),
        make("account", name="Bolt", grade="A", industry="retail", region="east_china",
             owner_id=bob),
        make("account", name="Cobalt", grade="B", industry="finance", region="japan",
             owner_id=ann),
    ]  # fmt: skip
    a, b, c = accounts
    # name, account, owner, stage, amount, probability, closed, lost reason, lost at
    deals = [
        ("d1", a, ann, "initial", None, 10, None, None, None),
        ("d2", a, ann, "proposal", "1000.00", 50, None, None, None),
        ("d3", c, ann, "proposal", "3000.00", 50, None, None, None),
        ("d4", b, bob, "negotiation", "2000.00", 70, None, None, None),
        ("d5", a, ann, "won", "5000.00", 100, THIS_MONTH, None, None),
        ("d6", c, ann, "lost", "4000.00", 0, THIS_MONTH, "price", "proposal"),
        ("d7", b, bob, "won", "6000.00", 100, THIS_MONTH, None, None),
        ("d8", b, bob, "lost", "1500.00", 0, THIS_MONTH, "price", "negotiation"),
        ("d9", b, bob, "lost", "500.00", 0, THIS_MONTH, "timing", "proposal"),
    ]
    for name, account, owner, stage, amount, probability, closed, reason, lost_at in deals:
        make("opportunity", name=name, account=account, owner_id=owner, stage=stage,
             amount=amount, probability=probability, closed_date=closed, lost_reason=reason,
             stage_lost_at=lost_at)  # fmt: skip
    contract = make("contract", title="C1", account=a, amount="10000.00", status="active",
                    owner_id=ann)  # fmt: skip
    draft = make("contract", title="C2", account=b, amount="900.00", status="draft", owner_id=bob)
    plans = [  # contract, period, due in days from today, amount, voided
        (contract, 1, 5, "1000.00", False),  # not yet due
        (contract, 2, -10, "2000.00", False),  # 0-30
        (contract, 3, -45, "3000.00", False),  # 31-60
        (contract, 4, -100, "4000.00", False),  # 90+
        (contract, 5, -100, "700.00", True),  # void: left out
        (draft, 1, -100, "900.00", False),  # contract not approved: left out
    ]
    for contract_id, period, days, amount, voided in plans:
        owner, account = (ann, a) if contract_id == contract else (bob, b)
        make("receivable_plan", contract=contract_id, account=account, period=period, amount=amount,
             due_date=TODAY + dt.timedelta(days=days), voided=voided, owner_id=owner)  # fmt: skip
    chair = make("product", name="Chair", code="CH", list_price="100.00", cost="60.00")
    desk = make("product", name="Desk", code="DK", list_price="300.00", cost="200.00")
    for owner, status, lines in [
        (ann, "confirmed", [(chair, "2", "100.00", 0), (desk, "1", "300.00", 10)]),
        (bob, "shipped", [(chair, "5", "100.00", 20)]),
        (bob, "draft", [(desk, "9", "300.00", 0)]),  # a draft does not count
    ]:
        make("sales_order", account=a, date=THIS_MONTH, status=status, owner_id=owner,
             lines=[{"product": p, "quantity": q, "unit_price": u, "discount": d}
                    for p, q, u, d in lines])  # fmt: skip


@pytest.fixture
def client(crm: Flask) -> FlaskClient:
    return crm.test_client()


def _run(client: FlaskClient, headers: dict[str, str], url: str) -> dict[str, Any]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    assert set(body) == {"columns", "rows", "totals", "chart", "params"}
    return body


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows if not row.get("_others")}


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def test_sales_funnel(client: FlaskClient, token: Callable[[str], dict[str, str]]) -> None:
    body = _run(client, token("root"), "/api/v1/reports/sales_funnel")
    rows = _by(body["rows"], "stage")
    # stages in their pipeline order, every stage with deals
    assert [r["stage"] for r in body["rows"]] == [
        "initial", "proposal", "negotiation", "won", "lost",
    ]  # fmt: skip
    assert rows["proposal"]["deals"] == 2
    assert _d(rows["proposal"]["amount"]) == Decimal("4000.00")
    assert _d(rows["proposal"]["weighted"]) == Decimal("2000.00")  # 50% of 4000
    assert _d(rows["negotiation"]["weighted"]) == Decimal("1400.00")
    assert rows["lost"]["deals"] == 3 and _d(rows["lost"]["amount"]) == Decimal("6000.00")
    assert body["totals"]["deals"] == 9
    assert _d(body["totals"]["amount"]) == Decimal("23000.00")
    assert body["chart"] == {"type": "funnel", "x": "stage", "y": ["amount"]}
    stage = body["columns"][0]
    assert stage["role"] == "dimension" and stage["label"] == "Stage"
    assert [o["value"] for o in stage["options"]][:2] == ["initial", "needs_analysis"]

    # a rep sees only their own deals, in rows and totals alike
    mine = _run(client, token("ann"), "/api/v1/reports/sales_funnel")
    assert mine["totals"]["deals"] == 5
    assert _by(mine["rows"], "stage")["proposal"]["deals"] == 2
    assert "negotiation" not in _by(mine["rows"], "stage")

    # parameters: an owner, and a period of expected close dates nobody has
    only_bob = _run(client, token("root"), "/api/v1/reports/sales_funnel?owner=3")  # bob
    assert only_bob["totals"]["deals"] == 4
    empty = _run(
        client, token("root"), "/api/v1/reports/sales_funnel?close_period=2001-01-01..2001-12-31"
    )
    assert empty["rows"] == [] and empty["totals"]["deals"] == 0
    assert empty["params"]["close_period"] == {"start": "2001-01-01", "end": "2001-12-31"}


def test_win_rate_by_owner(client: FlaskClient, token: Callable[[str], dict[str, str]]) -> None:
    body = _run(client, token("root"), "/api/v1/reports/win_rate_by_owner")
    assert {r["owner_id__title"] for r in body["rows"]} == {"ann", "bob"}
    ann = next(r for r in body["rows"] if r["closed"] == 2)
    bob = next(r for r in body["rows"] if r["closed"] == 3)
    assert (ann["won"], ann["lost"], _d(ann["win_rate"])) == (1, 1, Decimal("0.5"))
    assert (bob["won"], bob["lost"]) == (1, 2)
    assert abs(_d(bob["win_rate"]) - Decimal(1) / 3) < Decimal("0.000001")
    assert body["rows"][0] is not bob and body["rows"][0]["closed"] == 2  # sorted by rate
    assert _d(body["totals"]["won_amount"]) == Decimal("11000.00")
    assert _d(body["totals"]["win_rate"]) == Decimal("0.4")  # 2 won of 5 closed
    mine = _run(client, token("ann"), "/api/v1/reports/win_rate_by_owner")
    assert len(mine["rows"]) == 1 and mine["totals"]["closed"] == 2
    last_year = _run(client, token("root"), "/api/v1/reports/win_rate_by_owner?period=last_year")
    assert last_year["rows"] == [] and last_year["totals"]["closed"] == 0


def test_lost_reasons(client: FlaskClient, token: Callable[[str], dict[str, str]]) -> None:
    body = _run(client, token("root"), "/api/v1/reports/lost_reasons")
    rows = {(r["lost_reason"], r["stage_lost_at"]): r for r in body["rows"]}
    assert set(rows) == {("price", "proposal"), ("price", "negotiation"), ("timing", "proposal")}
    assert _d(rows[("price", "proposal")]["amount"]) == Decimal("4000.00")
    assert body["totals"]["lost"] == 3
    assert body["chart"]["series"] == "stage_lost_at"


def test_receivables_aging(client: FlaskClient, token: Callable[[str], dict[str, str]]) -> None:
    body = _run(client, token("fay"), "/api/v1/reports/receivables_aging")
    # every bucket is shown, in order, empty ones as zero
    assert [r["days_overdue"] for r in body["rows"]] == ["not_due", "0-30", "31-60", "61-90", "90+"]
    rows = _by(body["rows"], "days_overdue")
    assert _d(rows["not_due"]["outstanding"]) == Decimal("1000.00")
    assert _d(rows["0-30"]["outstanding"]) == Decimal("2000.00")
    assert _d(rows["31-60"]["outstanding"]) == Decimal("3000.00")
    assert rows["61-90"]["plans"] == 0 and _d(rows["61-90"]["outstanding"]) == 0
    assert _d(rows["90+"]["outstanding"]) == Decimal("4000.00")
    assert body["totals"]["plans"] == 4 and body["totals"]["accounts"] == 1
    labels = [o["label"] for o in body["columns"][0]["options"]]
    assert labels[0] == "Not yet due"
    zh = {**token("fay"), "Accept-Language": "zh"}
    assert _run(client, zh, "/api/v1/reports/receivables_aging")["totals"]["plans"] == 4
    # bob's receivables are all on a draft contract
    assert _run(client, token("bob"), "/api/v1/reports/receivables_aging")["totals"]["plans"] == 0


def test_customer_distribution_and_growth(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    body = _run(client, token("root"), "/api/v1/reports/customer_distribution")
    rows = {(r["grade"], r["industry"], r["region"]): r for r in body["rows"]}
    assert rows[("A", "retail", "east_china")]["accounts"] == 2
    assert rows[("A", "retail", "east_china")]["customers"] == 1
    assert rows[("B", "finance", "japan")]["accounts"] == 1
    assert body["totals"]["accounts"] == 3
    growth = _run(client, token("root"), "/api/v1/reports/account_growth")
    assert growth["rows"] == [{"month": THIS_MONTH.isoformat(), "new": 3, "in_pool": 0, "won": 1}]
    assert growth["columns"][0]["bucket"] == "month"
    assert _run(client, token("bob"), "/api/v1/reports/account_growth")["totals"]["new"] == 1


def test_product_sales_and_the_hidden_cost(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    body = _run(client, token("root"), "/api/v1/reports/product_sales")
    rows = {r["product__title"]: r for r in body["rows"]}
    # chair: 2 at 100 (ann) + 5 at 100 less 20% (bob); desk: 1 at 300 less 10%
    assert _d(rows["Chair"]["quantity"]) == 7
    assert _d(rows["Chair"]["revenue"]) == Decimal("600.00")
    assert _d(rows["Chair"]["cost"]) == Decimal("420.00")
    assert _d(rows["Chair"]["margin"]) == Decimal("180.00")
    assert _d(rows["Desk"]["revenue"]) == Decimal("270.00")
    assert rows["Desk"]["month"] == THIS_MONTH.isoformat()
    assert _d(body["totals"]["margin"]) == Decimal("250.00")  # 870 - 620
    # a rep: their own orders, and neither cost nor margin (cost is hidden from reps)
    mine = _run(client, token("ann"), "/api/v1/reports/product_sales")
    assert {c["name"] for c in mine["columns"]} == {"product", "month", "quantity", "revenue"}
    assert _d(mine["totals"]["revenue"]) == Decimal("470.00")
    assert "cost" not in mine["totals"] and "margin" not in mine["rows"][0]


def test_bad_parameters_are_400s_naming_them(
    client: FlaskClient,
    token: Callable[[str], dict[str, str]],
    error_of: Callable[[Any], dict[str, Any]],
) -> None:
    headers = token("root")
    response = client.get(
        "/api/v1/reports/win_rate_by_owner?period=someday&colour=red", headers=headers
    )
    assert response.status_code == 400
    fields = error_of(response)["fields"]
    assert set(fields) == {"period", "colour"}
    assert "this_month" in fields["period"][0]
    response = client.get("/api/v1/reports/sales_funnel?owner=abc", headers=headers)
    assert response.status_code == 400 and "owner" in error_of(response)["fields"]
    response = client.get("/api/v1/reports/no_such_report", headers=headers)
    assert response.status_code == 404
    assert client.get("/api/v1/reports/sales_funnel").status_code == 401
    # a role that may not read the entity
    response = client.get("/api/v1/reports/product_sales", headers=token("fay"))
    assert response.status_code in (200, 403)


def test_ad_hoc_reports(
    client: FlaskClient,
    token: Callable[[str], dict[str, str]],
    error_of: Callable[[Any], dict[str, Any]],
) -> None:
    query = {
        "entity": "opportunity",
        "filter": "stage not in ['won', 'lost']",
        "group_by": ["account.grade"],
        "measures": [
            {"name": "deals", "aggregate": "count"},
            {"name": "pipeline", "aggregate": "sum", "field": "amount"},
        ],
        "sort": "-pipeline",
    }
    response = client.post("/api/v1/reports/query", json=query, headers=token("root"))
    assert response.status_code == 200, response.json
    rows = _by(response.json["rows"], "account.grade")
    assert rows["A"]["deals"] == 3 and _d(rows["A"]["pipeline"]) == Decimal("3000.00")
    assert _d(rows["B"]["pipeline"]) == Decimal("3000.00")
    # the same for a rep: only theirs
    response = client.post("/api/v1/reports/query", json=query, headers=token("bob"))
    assert response.json["totals"]["deals"] == 1
    # a field hidden from the rep is refused, in a measure as in a dimension
    hidden = {
        "entity": "order_line",
        "group_by": ["product.cost"],
        "measures": [{"name": "n", "aggregate": "count"}],
    }
    response = client.post("/api/v1/reports/query", json=hidden, headers=token("ann"))
    assert response.status_code == 400
    assert "group_by[0]" in error_of(response)["fields"]
    measured = {
        "entity": "order_line",
        "measures": [{"name": "cost", "aggregate": "sum", "field": "product.cost"}],
    }
    response = client.post("/api/v1/reports/query", json=measured, headers=token("ann"))
    assert response.status_code == 400 and "measures[0]" in error_of(response)["fields"]
    # mistakes are located, never a 500
    bad = {"entity": "opportunity", "group_by": ["stge"], "measures": [{"name": "n"}]}
    response = client.post("/api/v1/reports/query", json=bad, headers=token("root"))
    assert response.status_code == 400
    fields = error_of(response)["fields"]
    assert "group_by[0]" in fields and "measures[0]" in fields
    for body in ([], {"entity": 5}, {"entity": "opportunity", "limit": -1}):
        response = client.post("/api/v1/reports/query", json=body, headers=token("root"))
        assert response.status_code == 400, body


def test_the_report_list_and_openapi(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    response = client.get("/api/v1/reports", headers=token("ann"))
    names = {r["name"] for r in response.json["data"]}
    assert {"sales_funnel", "win_rate_by_owner", "product_sales"} <= names
    document = client.get("/api/v1/openapi.json").json
    assert {"/reports", "/reports/query", "/reports/sales_funnel"} <= set(document["paths"])
    funnel = document["paths"]["/reports/sales_funnel"]["get"]
    assert [p["name"] for p in funnel["parameters"]] == ["close_period", "owner"]


def test_every_crm_report_runs_for_every_user(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    names = list(client.application.extensions["heddle"].model.reports)
    assert len(names) >= 10
    for username, _, _ in PEOPLE:
        listed = {
            r["name"] for r in client.get("/api/v1/reports", headers=token(username)).json["data"]
        }
        for name in names:
            response = client.get(f"/api/v1/reports/{name}", headers=token(username))
            assert response.status_code == (200 if name in listed else 403), (username, name)


def test_dashboards_answer_every_widget_at_once(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    listed = client.get("/api/v1/dashboards", headers=token("ann")).json["data"]
    assert {d["name"]: d["mine"] for d in listed} == {
        "sales_cockpit": False,
        "my_day": True,
        "finance_cockpit": False,
    }
    assert [d["name"] for d in listed if d["default"]] == ["my_day"]
    response = client.get("/api/v1/dashboards/sales_cockpit", headers=token("root"))
    assert response.status_code == 200, response.json
    widgets = {w["name"]: w for w in response.json["widgets"]}
    assert len(widgets) == 11 and response.json["label"] == "Sales cockpit"
    assert not [w["name"] for w in widgets.values() if "error" in w]
    assert [p["name"] for p in response.json["params"]] == ["period", "team", "owner"]
    assert widgets["funnel"]["data"]["totals"]["deals"] == 9
    assert set(widgets["won_this_year"]["data"]) == {"totals", "columns"}
    assert widgets["receivables"]["data"]["totals"]["plans"] == 4
    # shared parameters reach the reports that take them
    last_year = client.get(
        "/api/v1/dashboards/sales_cockpit?period=last_year", headers=token("root")
    )
    assert {w["name"]: w for w in last_year.json["widgets"]}["win_rate"]["data"]["totals"][
        "closed"
    ] == 0
    mine = client.get("/api/v1/dashboards/my_day", headers=token("ann")).json["widgets"]
    by_name = {w["name"]: w for w in mine}
    assert by_name["tasks"]["data"]["rows"] == []
    assert by_name["pipeline"]["data"]["totals"]["deals"] == 5
    # a widget the user may not see says so; the others still answer
    fay = client.get("/api/v1/dashboards/my_day", headers=token("fay")).json["widgets"]
    assert {w["name"]: "error" in w for w in fay} == {
        "tasks": True,
        "follow_ups": False,
        "won": False,
        "forecast": False,
        "pipeline": False,
    }
    assert client.get("/api/v1/dashboards/nothing", headers=token("root")).status_code == 404


def test_csv_export_follows_the_export_permission(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    response = client.get("/api/v1/reports/sales_funnel/csv", headers=token("ann"))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "Stage,Deals,Amount,Weighted amount"
    assert lines[1] == "Initial contact,1,0.00,0.00"
    assert lines[2] == "Proposal,2,4000.00,2000.00"
    assert lines[-1].startswith("Total,5,")
    # finance may read opportunities but not export them
    assert client.get("/api/v1/reports/sales_funnel/csv", headers=token("fay")).status_code == 403


def test_paths_reach_only_what_the_user_may_read(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    runtime = client.application.extensions["heddle"]
    bolt = 2  # bob's account; ann may read only her own
    runtime.records.create(
        SYSTEM,
        "opportunity",
        {"name": "d10", "account": bolt, "owner_id": 2, "stage": "initial"},
        trusted=True,
    )
    query = {
        "entity": "opportunity",
        "filter": "name == 'd10'",
        "group_by": ["account.grade"],
        "measures": [{"name": "n", "aggregate": "count"}],
    }
    mine = client.post("/api/v1/reports/query", json=query, headers=token("ann")).json
    assert mine["rows"] == [{"account.grade": None, "n": 1}]  # Bolt's grade stays unseen
    theirs = client.post("/api/v1/reports/query", json=query, headers=token("root")).json
    assert theirs["rows"] == [{"account.grade": "A", "n": 1}]


def _add(client: FlaskClient, entity: str, **values: Any) -> int:
    records = client.application.extensions["heddle"].records
    return int(records.create(SYSTEM, entity, values, trusted=True)["id"])


def _ids(client: FlaskClient) -> dict[str, int]:
    runtime = client.application.extensions["heddle"]
    with runtime.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT username, id FROM heddle_user").all()
    return {name: user_id for name, user_id in rows}


def test_the_cockpit_reports_give_the_numbers_by_hand(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    _ids(client)
    root, ann = token("root"), token("ann")
    # the funnel: who reached each step (lost deals count up to the stage they were lost at)
    body = _run(client, root, "/api/v1/reports/pipeline_conversion")
    reached = {r["stage"]: r["deals"] for r in body["rows"]}
    assert reached == {"initial": 9, "needs_analysis": 8, "proposal": 8, "negotiation": 4, "won": 2}
    steps = _by(body["rows"], "stage")
    assert _d(steps["negotiation"]["conversion"]) == Decimal("0.5")
    assert _d(body["totals"]["overall_conversion"]) == (Decimal(2) / 9).quantize(Decimal("1e-6"))
    assert body["chart"]["type"] == "funnel"
    mine = _run(client, ann, "/api/v1/reports/pipeline_conversion")
    assert [r["deals"] for r in mine["rows"]] == [5, 4, 4, 1, 1]
    # the open pipeline, owners by stages
    pivot = client.get("/api/v1/reports/pipeline_by_owner", headers=root).json
    values = [v["value"] for v in pivot["pivot"]["values"]]
    assert values == ["initial", "proposal", "negotiation"]
    rows = {r["owner_id__title"]: r for r in pivot["rows"]}
    assert list(rows) == ["ann", "bob"]  # by amount
    assert _d(rows["ann"]["amount__1"]) == Decimal("4000.00")
    assert _d(rows["ann"]["amount__2"]) == 0 and _d(rows["bob"]["amount__2"]) == Decimal("2000.00")
    assert _d(rows["ann"]["weighted"]) == Decimal("2000.00")
    assert _d(pivot["totals"]["amount"]) == Decimal("6000.00")
    assert pivot["chart"]["series"] == "stage"
    only_ann = client.get("/api/v1/reports/pipeline_by_owner", headers=ann).json
    assert [r["owner_id__title"] for r in only_ann["rows"]] == ["ann"]
    # the ranking of this month's won amounts
    ranking = _run(client, root, "/api/v1/reports/sales_ranking")
    ranked = [r for r in ranking["rows"] if not r.get("_others")]
    assert [(r["owner_id__title"], _d(r["won_amount"])) for r in ranked] == [
        ("bob", Decimal("6000.00")),
        ("ann", Decimal("5000.00")),
    ]
    assert _d(ranking["rows"][0]["share"]) == (Decimal(6) / 11).quantize(Decimal("1e-6"))
    # the forecast: won this month, nothing open has an expected close date
    forecast = _run(client, root, "/api/v1/reports/sales_forecast")
    month = _by(forecast["rows"], "month")[THIS_MONTH.isoformat()]
    assert _d(month["won"]) == Decimal("11000.00") and _d(month["forecast"]) == Decimal("11000")


def test_targets_customers_campaigns_and_cycle_time(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    ids = _ids(client)
    root, ann = token("root"), token("ann")
    months = {f"m{i:02}": "1000.00" for i in range(1, 13)}
    _add(client, "sales_target", name="Ann", year=TODAY.year, scope="user", user=ids["ann"],
         metric="won_amount", level="target", **months)  # fmt: skip
    _add(client, "payment", contract=1, date=THIS_MONTH.isoformat(), amount="2000.00", method="bank_transfer",
         status="confirmed", owner_id=ids["ann"])  # fmt: skip
    body = _run(client, root, "/api/v1/reports/target_achievement")
    key = f"{THIS_MONTH.month:02}"
    rows = {(r["owner"], r["month"]): r for r in body["rows"]}
    assert len([r for r in body["rows"] if r["owner"] == ids["ann"]]) == 12  # every month
    mine = rows[(ids["ann"], key)]
    assert (_d(mine["won"]), _d(mine["target"]), _d(mine["received"])) == (
        Decimal("5000.00"),
        Decimal("1000.00"),
        Decimal("2000.00"),
    )
    assert _d(mine["achieved"]) == Decimal(5)
    assert rows[(ids["bob"], key)]["achieved"] is None  # no target: no rate
    assert _d(body["totals"]["target"]) == Decimal("12000.00")
    assert _run(client, ann, "/api/v1/reports/target_achievement")["totals"]["won"] == "5000.00"
    # accounts: three new this month, one lost to the pool
    runtime = client.application.extensions["heddle"]
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE account SET pooled_at = created_at WHERE name = 'Cobalt'")
    growth = _run(client, root, "/api/v1/reports/new_vs_lost_customers")
    this = _by(growth["rows"], "month")[THIS_MONTH.isoformat()]
    assert (this["new"], this["lost"], this["net"]) == (3, 1, 2)
    # a campaign's cost against what its deals won
    fair = _add(client, "campaign", name="Fair", type="trade_show", status="completed",
                start_date=TODAY.isoformat(), actual_cost="1000.00")  # fmt: skip
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE opportunity SET campaign = {fair} WHERE name = 'd7'")
    roi = _by(_run(client, root, "/api/v1/reports/campaign_roi")["rows"], "type")["trade_show"]
    assert (_d(roi["cost"]), _d(roi["won"]), _d(roi["roi"])) == (
        Decimal("1000.00"),
        Decimal("6000.00"),
        Decimal(5),
    )
    # the time each stage took, from the stage history
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    for days, stage in ((0, "initial"), (2, "proposal"), (5, "won")):
        _add(client, "stage_history", opportunity=5, to_stage=stage,
             changed_at=(start + dt.timedelta(days=days)).isoformat())  # fmt: skip
    cycle = _by(_run(client, root, "/api/v1/reports/stage_cycle_time")["rows"], "to_stage")
    assert _d(cycle["initial"]["average_days"]) == Decimal(2)
    assert _d(cycle["proposal"]["median_days"]) == Decimal(3)
    assert _d(cycle["won"]["days_to_win"]) == Decimal(5)
    assert cycle["won"]["stints"] == 0


LEAD_SOURCES = """
SELECT coalesce(l.source, c.source) AS source, coalesce(l.leads, 0) AS leads,
       coalesce(l.converted, 0) AS converted, coalesce(l.won, 0) AS won,
       coalesce(c.cost, 0) AS cost
FROM (SELECT lead.source, count(*) AS leads, count(CASE WHEN lead.converted THEN 1 END)
             AS converted, coalesce(sum(CASE WHEN o.stage = 'won' THEN o.amount END), 0) AS won
      FROM lead LEFT JOIN opportunity o ON o.id = lead.converted_opportunity
      WHERE lead.created_at >= :start AND lead.created_at < :after {mine}
      GROUP BY lead.source) AS l
FULL OUTER JOIN (SELECT source, coalesce(sum(actual_cost), 0) AS cost FROM campaign
                 WHERE start_date >= :start AND start_date <= :end GROUP BY source) AS c
  ON coalesce(l.source, '') = coalesce(c.source, '')  -- no source meets no source
"""


def test_lead_source_roi_against_sql(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    """Leads, conversions and won amount by source beside what the campaigns buying each
    source cost: each side grouped on its own, so three leads of one source and two
    campaigns of it are neither 6 leads nor twice the cost."""
    ids = _ids(client)
    start, end = TODAY - dt.timedelta(days=60), TODAY
    old = TODAY - dt.timedelta(days=700)
    for name, kind, source, day, cost in (
        ("Fair", "trade_show", "trade_show", TODAY, "1000.00"),
        ("Fair 2", "trade_show", "trade_show", TODAY, "250.00"),
        ("Ads", "online_ad", "advertisement", TODAY, "500.00"),  # no lead came
        ("Rewards", "other", "referral", TODAY, "300.00"),
        ("Old fair", "trade_show", "trade_show", old, "9999.00"),  # before the period
        ("Planned", "seminar", "campaign", TODAY, None),  # nothing spent yet
    ):
        _add(client, "campaign", name=name, type=kind, source=source, status="completed",
             start_date=day.isoformat(), actual_cost=cost)  # fmt: skip
    runtime = client.application.extensions["heddle"]
    with runtime.engine.connect() as conn:
        deal = dict(conn.exec_driver_sql("SELECT name, id FROM opportunity").all())
    ann, bob = ids["ann"], ids["bob"]
    for n, (source, owner, won_by) in enumerate(
        [
            ("trade_show", ann, "d5"),  # won 5000
            ("trade_show", ann, "d6"),  # lost
            ("trade_show", ann, None),
            ("referral", bob, "d7"),  # won 6000
            ("website", ann, None),  # no cost
            (None, ann, None),
        ]
    ):
        _add(client, "lead", name=f"L{n}", phone=f"1380000000{n}", source=source,
             owner_id=owner, converted=won_by is not None,
             converted_opportunity=deal[won_by] if won_by else None)  # fmt: skip
    period = f"{start.isoformat()}..{end.isoformat()}"
    bounds = {"start": start, "end": end, "after": end + dt.timedelta(days=1)}
    with runtime.engine.connect() as conn:
        expected = [
            dict(r) for r in conn.execute(sa.text(LEAD_SOURCES.format(mine="")), bounds).mappings()
        ]
        ann_leads = (
            conn.execute(sa.text(LEAD_SOURCES.format(mine=f"AND lead.owner_id = {ann}")), bounds)
            .mappings()
            .all()
        )
    body = _run(client, token("root"), f"/api/v1/reports/lead_source_roi?period={period}")
    rows = {r["source"]: r for r in body["rows"]}
    assert set(rows) == {r["source"] for r in expected}
    assert {"trade_show", "advertisement", "referral", "website", None} <= set(rows)
    for theirs in expected:
        mine = rows[theirs["source"]]
        cost, won = _d(theirs["cost"]), _d(theirs["won"])
        assert (mine["leads"], mine["converted"]) == (theirs["leads"], theirs["converted"])
        assert (_d(mine["won_amount"]), _d(mine["cost"])) == (won, cost)
        leads = theirs["leads"]
        per_lead = (cost / leads).quantize(Decimal("1e-6")) if leads else None
        assert (None if mine["cost_per_lead"] is None else _d(mine["cost_per_lead"])) == per_lead
        roi = ((won - cost) / cost).quantize(Decimal("1e-6")) if cost else None
        assert (None if mine["roi"] is None else _d(mine["roi"])) == roi
    assert (rows["trade_show"]["leads"], _d(rows["trade_show"]["cost"])) == (3, Decimal("1250.00"))
    assert _d(rows["referral"]["roi"]) == Decimal(19)  # (6000 - 300) / 300
    assert body["totals"]["leads"] == 6 and _d(body["totals"]["cost"]) == Decimal("2050.00")
    assert [c["name"] for c in body["columns"]] == [
        "source", "leads", "converted", "won_amount", "cost", "conversion_rate",
        "cost_per_lead", "roi",
    ]  # fmt: skip
    # a rep counts their own leads against every campaign's cost
    theirs = _run(client, token("ann"), f"/api/v1/reports/lead_source_roi?period={period}")
    assert theirs["totals"]["leads"] == sum(r["leads"] for r in ann_leads) == 5
    assert _d(theirs["totals"]["cost"]) == Decimal("2050.00")
    report = runtime.model.reports["lead_source_roi"]
    for measure in (*report.measures, *report.parts[0].measures):  # labelled in zh and ja
        assert {"en", "zh", "ja"} <= set(measure.label.texts), measure.name


def test_xlsx_downloads_keep_numbers_and_dates(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    import io

    from openpyxl import load_workbook

    response = client.get("/api/v1/reports/sales_forecast/xlsx", headers=token("root"))
    assert response.status_code == 200, response.data[:200]
    assert response.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Month", "Won", "Open pipeline", "Weighted pipeline", "Forecast")
    month = next(r for r in rows[1:-1] if r[0] is not None and r[0].date() == THIS_MONTH)
    assert month[1] == 11000 and isinstance(month[1], float | int)
    assert rows[-1][0] == "Total"
    zh = client.get(
        "/api/v1/reports/sales_funnel/xlsx", headers={**token("root"), "Accept-Language": "zh"}
    )
    assert zh.status_code == 200
    # finance may read opportunities but not export them
    assert client.get("/api/v1/reports/sales_funnel/xlsx", headers=token("fay")).status_code == 403


def test_saved_reports_are_private_or_shared_with_a_role(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    runtime = client.application.extensions["heddle"]
    with runtime.engine.begin() as conn:
        conn.execute(runtime.tables.metadata.tables["heddle_user"].insert(), [
            {"username": "cy", "name": "cy", "roles": ["sales_rep"], "created_at": dt.datetime.now(dt.UTC)}
        ])  # fmt: skip
    document = {
        "entity": "opportunity",
        "group_by": ["stage"],
        "measures": [{"name": "deals", "aggregate": "count"}],
    }
    ann, bob, root = token("ann"), token("bob"), token("root")
    private = client.post(
        "/api/v1/reports/saved", json={"label": "Mine", "report": document}, headers=ann
    )
    assert private.status_code == 201, private.json
    shared = client.post(
        "/api/v1/reports/saved",
        json={"label": "Team", "role": "sales_rep", "report": document},
        headers=ann,
    ).json
    mine = private.json["id"]
    assert {r["label"] for r in client.get("/api/v1/reports/saved", headers=ann).json["data"]} == {
        "Mine",
        "Team",
    }
    assert [r["label"] for r in client.get("/api/v1/reports/saved", headers=bob).json["data"]] == [
        "Team"
    ]
    assert client.get(f"/api/v1/reports/saved/{mine}", headers=bob).status_code == 404
    # each runner's own scope applies
    assert client.get(f"/api/v1/reports/saved/{mine}/run", headers=ann).json["totals"]["deals"] == 5
    run = client.get(f"/api/v1/reports/saved/{shared['id']}/run", headers=bob)
    assert run.status_code == 200 and run.json["totals"]["deals"] == 4
    assert client.get(f"/api/v1/reports/saved/{shared['id']}/xlsx", headers=bob).status_code == 200
    # only the owner (or an admin) deletes; a field the owner may not read is refused
    assert client.delete(f"/api/v1/reports/saved/{shared['id']}", headers=bob).status_code == 403
    hidden = {
        "entity": "product",
        "measures": [{"name": "cost", "aggregate": "sum", "field": "cost"}],
    }
    refused = client.post(
        "/api/v1/reports/saved", json={"label": "Cost", "report": hidden}, headers=ann
    )
    assert refused.status_code == 400
    bad = client.post("/api/v1/reports/saved", json={"label": "", "report": {}}, headers=ann)
    assert bad.status_code == 400 and "label" in bad.json["error"]["fields"]
    # an admin's report shared with reps reads the cost: refused for a rep who runs it
    costly = client.post(
        "/api/v1/reports/saved",
        json={"label": "Cost", "role": "sales_rep", "report": hidden},
        headers=root,
    ).json
    assert client.get(f"/api/v1/reports/saved/{costly['id']}/run", headers=ann).status_code == 403
    assert client.get(f"/api/v1/reports/saved/{costly['id']}/run", headers=root).status_code == 200
    assert client.delete(f"/api/v1/reports/saved/{mine}", headers=ann).status_code == 204
    assert client.get(f"/api/v1/reports/saved/{mine}", headers=ann).status_code == 404
    paths = client.get("/api/v1/openapi.json", headers=root).json["paths"]
    assert {"/reports/saved", "/reports/saved/{id}", "/reports/saved/{id}/run"} <= set(paths)
    assert "/reports/sales_funnel/xlsx" in paths


def test_the_default_dashboard_and_shared_parameters(
    client: FlaskClient, token: Callable[[str], dict[str, str]]
) -> None:
    assert client.get("/api/v1/dashboards/default", headers=token("ann")).json["name"] == "my_day"
    fay = client.get("/api/v1/dashboards/default", headers=token("fay")).json
    assert fay["name"] == "finance_cockpit"
    assert not [w["name"] for w in fay["widgets"] if "error" in w]
    ids = _ids(client)
    cockpit = client.get(
        f"/api/v1/dashboards/sales_cockpit?owner={ids['bob']}", headers=token("root")
    ).json
    widgets = {w["name"]: w for w in cockpit["widgets"]}
    assert widgets["funnel"]["data"]["totals"]["deals"] == 4  # bob's deals only
    assert [r["owner_id__title"] for r in widgets["pipeline"]["data"]["rows"]] == ["bob"]
    assert {p["name"]: p["value"] for p in cockpit["params"]}["owner"] == str(ids["bob"])
