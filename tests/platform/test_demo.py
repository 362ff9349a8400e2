"""The demo company (``heddle demo``): deterministic, valid as the engine would have stored
it, and telling a story every report of the CRM can show — on SQLite and PostgreSQL.

One small company (100 accounts) is loaded per database for the whole module."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from heddle import cli_demo
from heddle.accounts import Accounts
from heddle.app import create_app
from heddle.cli import main
from heddle.demo import DEMO_PASSWORD, PEOPLE, load_demo

from engine import SYSTEM, Tables, ValidationFailed, build_tables, connect, migrate
from engine.duplicates import match_key
from engine.fieldtypes import stored
from metamodel import Model, load_packages

SCALE = 0.1  # 100 accounts
OWN_ALWAYS = ("sales_funnel", "customer_distribution", "account_growth")
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
MODEL = load_packages([crm_definitions.PATH])


def _load(url: str, seed: int = 7, scale: float = SCALE) -> Tables:
    engine = connect(url)
    try:
        migrate(engine, MODEL)
        tables = build_tables(MODEL)
        load_demo(engine, tables, Accounts(tables), scale=scale, seed=seed, now=NOW)
    finally:
        engine.dispose()
    return tables


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def demo_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database with the demo company in it, once SQLite and once PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'heddle.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    _load(url)
    yield url
    if request.param == "postgresql":
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()


@pytest.fixture(scope="module")
def app(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    flask_app = create_app(
        {
            "DATABASE_URL": demo_url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TOKEN_CACHE_SECONDS": 0,
            "TESTING": True,
        }
    )
    yield flask_app
    flask_app.extensions["heddle"].engine.dispose()


@pytest.fixture(scope="module")
def headers(app: Flask) -> Any:
    client = app.test_client()
    cache: dict[str, dict[str, str]] = {}

    def login(username: str) -> dict[str, str]:
        if username not in cache:
            response = client.post(
                "/api/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD}
            )
            assert response.status_code == 201, response.json
            cache[username] = {"Authorization": f"Bearer {response.json['token']}"}
        return cache[username]

    return login


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _report(client: FlaskClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/reports/{name}", headers=headers)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def _d(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def _scalar(app: Flask, sql: str, **params: Any) -> Any:
    with app.extensions["heddle"].engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


# --- the same seed, the same company ------------------------------------------------------------


def _dump(url: str, tables: Tables) -> dict[str, list[tuple[Any, ...]]]:
    engine = connect(url)
    dumped: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for name, table in tables.metadata.tables.items():
                if name in (
                    "heddle_user",
                    "heddle_team",
                    "heddle_token",
                    "heddle_schema_history",
                    "heddle_duplicate_rule",  # when each rule's keys were built
                ):
                    continue
                key = table.c.id if "id" in table.c else table.c[next(iter(table.c.keys()))]
                rows = conn.execute(sa.select(table).order_by(key)).all()
                dumped[name] = [tuple(_plain(v) for v in row) for row in rows]
    finally:
        engine.dispose()
    return dumped


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, str(_plain(v))) for k, v in value.items()))
    return value


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """The company loaded again, with the same seed and clock, on SQLite: its rows."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'again.db'}"
    return _dump(url, _load(url))


def test_same_seed_same_data(demo_url: str, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    """The module's company — on SQLite, and on PostgreSQL — is the reference load, row
    for row. (First in the module: the tests after it add to the company.)"""
    loaded = _dump(demo_url, build_tables(MODEL))
    assert [name for name in reference if loaded[name] != reference[name]] == []


def test_another_seed_another_company(
    tmp_path: Path, reference: dict[str, list[tuple[Any, ...]]]
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    tables = _load(other, seed=8, scale=0.01)
    at = list(tables.table("account").c.keys()).index("name")
    names = [row[at] for row in _dump(other, tables)["account"]]
    assert names != [row[at] for row in reference["account"][: len(names)]]


# --- the story shows in every report --------------------------------------------------------


@pytest.fixture(scope="module")
def admin(app: Flask, client: FlaskClient) -> dict[str, str]:
    """The local administrator's token (as `./dev start` creates them; no demo user is one)."""
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "admin", "admin-heddle", ["admin"])
    response = client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "admin-heddle"}
    )
    return {"Authorization": f"Bearer {response.json['token']}"}


def test_every_report_has_rows(client: FlaskClient, admin: dict[str, str], headers: Any) -> None:
    """As the admin, and as each demo user: every report they may read has rows (a
    manager's reports join scoped entities: they once failed to compile)."""
    for name in MODEL.reports:
        assert _report(client, admin, name)["rows"], f"report {name} is empty over the demo data"
    sample = (
        "wang.fang",
        "li.wei",
        "tanaka.ken",
        "emma.clark",
        "zhou.min",
        "mori.aya",
        "david.miller",
    )  # a manager, reps, and every other role
    for person in (p for p in PEOPLE if p.username in sample):
        for name in MODEL.reports:
            response = client.get(f"/api/v1/reports/{name}", headers=headers(person.username))
            assert response.status_code in (200, 403), (person.username, name, response.json)
            # a seller's own slice of a small company may miss a report's period: their
            # pipeline and customers are never empty; whoever sees everything sees it all
            sees_all = person.territory is None
            if response.status_code == 200 and (sees_all or name in OWN_ALWAYS):
                assert response.json["rows"], f"{name} is empty for {person.username}"


def test_the_numbers_make_sense(client: FlaskClient, admin: dict[str, str]) -> None:
    funnel = {r["stage"]: r for r in _report(client, admin, "sales_funnel")["rows"]}
    assert {"initial", "won", "lost"} <= set(funnel)
    assert _d(funnel["won"]["amount"]) > 0 and _d(funnel["won"]["weighted"]) == _d(
        funnel["won"]["amount"]
    )  # won is 100%
    assert _d(funnel["lost"]["weighted"]) == 0
    win = _report(client, admin, "win_rate_by_owner")
    assert _d(win["totals"]["won_amount"]) > 0
    assert 0.15 < float(win["totals"]["win_rate"]) < 0.6
    assert len(win["rows"]) >= 5  # every seller closes deals
    lost = _report(client, admin, "lost_reasons")
    assert len({r["lost_reason"] for r in lost["rows"]}) >= 3
    assert all(r["stage_lost_at"] for r in lost["rows"])
    aging = {r["days_overdue"]: r for r in _report(client, admin, "receivables_aging")["rows"]}
    overdue = [b for b in ("0-30", "31-60", "61-90", "90+") if b in aging]
    assert overdue and sum(_d(aging[b]["outstanding"]) for b in overdue) > 0
    growth = _report(client, admin, "account_growth")["rows"]
    assert len([r for r in growth if r["new"]]) >= 10  # new accounts nearly every month
    distribution = _report(client, admin, "customer_distribution")
    assert {r["grade"] for r in distribution["rows"]} == {"A", "B", "C", "D"}
    assert _d(distribution["totals"]["lifetime_value"]) > 0
    sources = _report(client, admin, "lead_source_roi")
    assert sources["totals"]["converted"] > 0 and _d(sources["totals"]["won_amount"]) > 0
    by_source = {r["source"]: r for r in sources["rows"]}
    for channel in ("website", "referral", "cold_call", "partner"):  # each quarter's spend
        row = by_source[channel]
        assert _d(row["cost"]) > 0 and row["leads"] > 0, row
        assert _d(row["cost_per_lead"]) == (_d(row["cost"]) / row["leads"]).quantize(
            Decimal("1e-6")
        )
        assert row["roi"] is not None
    cases = _report(client, admin, "case_analysis")
    satisfaction = [float(r["satisfaction"]) for r in cases["rows"] if r["satisfaction"]]
    assert satisfaction and all(1 <= s <= 5 for s in satisfaction)
    products = _report(client, admin, "product_sales")
    assert _d(products["totals"]["revenue"]) > 0 and _d(products["totals"]["margin"]) > 0
    assert _d(_report(client, admin, "expense_by_team")["totals"]["total"]) > 0


def test_dashboards_for_their_roles(client: FlaskClient, headers: Any) -> None:
    # over the last 12 months: a rep of this small company may have won nothing in the
    # first days of the month the test runs in
    for dashboard, user in (("sales_cockpit", "wang.fang"), ("my_day", "li.wei")):
        response = client.get(
            f"/api/v1/dashboards/{dashboard}?period=last_12_months", headers=headers(user)
        )
        assert response.status_code == 200, response.json
        for widget in response.json["widgets"]:
            data = widget["data"]
            if widget["type"] == "metric":  # a number card: the report's totals
                assert any(_d(v) for v in data["totals"].values()), widget["name"]
            else:  # a report, chart, list or tasks: rows
                assert data["rows"], f"{dashboard} as {user}: {widget['name']} is empty"


def test_the_funnel_narrows(app: Flask) -> None:
    """Each stage is reached by fewer deals than the one before (from the stage history)."""
    reached = [
        _scalar(app, "SELECT count(*) FROM opportunity")
        if stage == "initial"
        else _scalar(
            app,
            "SELECT count(DISTINCT opportunity) FROM stage_history WHERE to_stage = :s",
            s=stage,
        )
        for stage in ("initial", "needs_analysis", "proposal", "negotiation", "won")
    ]
    assert reached == sorted(reached, reverse=True) and reached[-1] > 0, reached


def test_a_rep_sees_only_their_records(app: Flask, client: FlaskClient, headers: Any) -> None:
    rep = next(p for p in PEOPLE if p.role == "sales_rep")
    rep_id = _scalar(app, "SELECT id FROM heddle_user WHERE username = :u", u=rep.username)
    mine = _report(client, headers(rep.username), "sales_funnel")
    owned = _scalar(app, "SELECT count(*) FROM opportunity WHERE owner_id = :o", o=rep_id)
    everyone = _scalar(app, "SELECT count(*) FROM opportunity")
    assert 0 < mine["totals"]["deals"] == owned < everyone
    win = _report(client, headers(rep.username), "win_rate_by_owner")
    assert {r["owner_id"] for r in win["rows"]} == {rep_id}
    listed = client.get("/api/v1/records/account?limit=200", headers=headers(rep.username))
    assert listed.status_code == 200
    # their own accounts, and those waiting in their team's public pool — without the
    # phone, which the demo's pools hide
    owned = [a for a in listed.json["data"] if a["owner_id"] is not None]
    pooled = [a for a in listed.json["data"] if a["owner_id"] is None]
    assert owned and {a["owner_id"] for a in owned} == {rep_id}
    assert pooled and all(a["pool"] is not None and a["phone"] is None for a in pooled)
    pools = {a["pool"] for a in pooled}
    team = _scalar(app, "SELECT team_id FROM heddle_user WHERE id = :u", u=rep_id)
    for pool_id, users, teams in _rows(app, "SELECT id, members, member_teams FROM pool"):
        if pool_id in pools:
            users, teams = (json.loads(v) if isinstance(v, str) else v for v in (users, teams))
            assert rep_id in users or team in teams


# --- stored as the engine would have stored it --------------------------------------------------


def test_records_read_back_and_save_again(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    """A sample of every entity: 200 through the API, and saving it again through the
    record service passes every field rule and validation of the definitions."""
    runtime = app.extensions["heddle"]
    model: Model = runtime.model
    for ent in model:
        ids = [r for (r,) in _rows(app, f'SELECT id FROM "{ent.table}" ORDER BY id')]
        if not ids:
            continue
        for record_id in {ids[0], ids[len(ids) // 2], ids[-1]}:
            response = client.get(f"/api/v1/records/{ent.name}/{record_id}", headers=admin)
            assert response.status_code == 200, (ent.name, response.json)
            record = response.json["data"]
            data = {
                name: record[name]
                for name, field in ent.fields.items()
                if stored(field) and not field.computed and name in record
            }
            try:
                saved = runtime.records.update(
                    SYSTEM, ent.name, record_id, data, version=record["version"], trusted=True
                )
            except ValidationFailed as exc:
                raise AssertionError(f"{ent.name} {record_id}: {exc.fields}") from None
            assert saved["version"] == record["version"]  # nothing differed from the input


def _rows(app: Flask, sql: str) -> list[Any]:
    with app.extensions["heddle"].engine.connect() as conn:
        return list(conn.execute(sa.text(sql)).all())


def test_history_replays_to_the_record(app: Flask) -> None:
    """The audit rows of a deal that moved stage by stage rebuild it as it is."""
    runtime = app.extensions["heddle"]
    (deal_id,) = _rows(app, "SELECT id FROM opportunity WHERE stage = 'won' ORDER BY id")[0]
    record = runtime.records.get(SYSTEM, "opportunity", deal_id)
    history = runtime.records.history(SYSTEM, "opportunity", deal_id)
    assert next(h["action"] for h in history) == "create" and len(history) == record["version"]
    state = runtime.records.as_of(SYSTEM, "opportunity", deal_id, NOW)
    for name in ("stage", "probability", "amount", "closed_date", "owner_id", "team_id"):
        assert state[name] == record[name], name
    moves = _rows(
        app,
        f"SELECT count(*) FROM heddle_transition WHERE record_id = {deal_id}"
        " AND entity = 'opportunity'",
    )[0][0]
    assert (
        moves
        == _rows(app, f"SELECT count(*) FROM stage_history WHERE opportunity = {deal_id}")[0][0]
    )


def test_new_records_after_the_demo(app: Flask, client: FlaskClient, headers: Any) -> None:
    """Ids and autonumber counters continue after the demo's: a rep adds an account and a
    deal, moves it with a transition, and the team scoping holds."""
    rep = headers("li.wei")
    created = client.post(
        "/api/v1/records/account", json={"name": "Brand-new Prospect Ltd."}, headers=rep
    )
    assert created.status_code == 201, created.json
    account = created.json["data"]
    codes = [c for (c,) in _rows(app, "SELECT code FROM account")]
    assert len(set(codes)) == len(codes) and account["code"] == max(codes)
    deal = client.post(
        "/api/v1/records/opportunity",
        headers=rep,
        json={"name": "First deal", "account": account["id"], "amount": "1000.00"},
    )
    assert deal.status_code == 201, deal.json
    moved = client.post(
        f"/api/v1/records/opportunity/{deal.json['data']['id']}/transitions/analyze_needs",
        headers=rep,
        json={"version": deal.json["data"]["version"]},
    )
    assert moved.status_code == 200, moved.json


def test_company_names_are_distinct_for_the_duplicate_rule(app: Flask) -> None:
    rule = next(r for r in MODEL.entity("account").duplicate_rules if r.name == "same_name")
    names = [n for (n,) in _rows(app, "SELECT name FROM account")]
    keys = [match_key(n, rule.normalize) for n in names]
    assert len(set(keys)) == len(keys)
    assert any("有限公司" in n for n in names) and any(
        "株式会社" in n or "(株)" in n for n in names
    )


def test_the_demo_accounts_are_found_by_the_duplicate_rules(
    app: Flask, client: FlaskClient, headers: Any
) -> None:
    """The demo writes beside the record service, then builds the rules' keys: a rep
    entering a demo company again is stopped, whoever owns it."""
    (name,) = next(iter(_rows(app, "SELECT name FROM account ORDER BY id DESC LIMIT 1")))
    again = client.post(
        "/api/v1/records/account",
        json={"name": f"  {str(name).upper()} "},
        headers=headers("li.wei"),
    )
    assert again.status_code == 409, again.json
    assert again.json["error"]["code"] == "duplicate"
    assert again.json["error"]["details"]["candidates"][0]["title"] == name


# --- the command ------------------------------------------------------------------------------


def test_cli_loads_refuses_and_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the definitions as compiled once for the module: each command would load them again
    monkeypatch.setattr(cli_demo, "load_packages", lambda paths: MODEL)
    runner = CliRunner()
    env = {
        "HEDDLE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "HEDDLE_INSTANCE_PATH": str(tmp_path),
    }
    unmigrated = runner.invoke(main, ["demo", "--scale", "0.02"], env=env)
    assert unmigrated.exit_code == 1 and "heddle migrate" in unmigrated.output
    engine = connect(env["HEDDLE_DATABASE_URL"])
    migrate(engine, MODEL)
    loaded = runner.invoke(main, ["demo", "--scale", "0.02", "--seed", "3"], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "20 accounts" in loaded.output and "Demo log-ins (password for each: demo-heddle)" in (
        loaded.output
    )
    assert all(p.username in loaded.output for p in PEOPLE)
    refused = runner.invoke(main, ["demo"], env=env)
    assert refused.exit_code == 1 and "--append" in refused.output
    skipped = runner.invoke(main, ["demo", "--if-empty"], env=env)
    assert skipped.exit_code == 0 and "nothing loaded" in skipped.output
    appended = runner.invoke(main, ["demo", "--scale", "0.02", "--seed", "3", "--append"], env=env)
    assert appended.exit_code == 0, appended.output
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM account")).scalars().all()
        users = conn.execute(sa.text("SELECT count(*) FROM heddle_user")).scalar()
    engine.dispose()
    rule = MODEL.entity("account").duplicate_rules[0]
    assert len(names) == 40 and len({match_key(n, rule.normalize) for n in names}) == 40
    assert users == len(PEOPLE)  # the demo users were reused
