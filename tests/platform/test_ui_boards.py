"""The kanban, calendar, report and dashboard screens through Flask's test client, on
SQLite and PostgreSQL: what each page shows to whom (a rep sees only their records, a
hidden field never shows), moves fired through the workflow and refused with a reason,
htmx partials, parameters and their errors, and the navigation."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from screens_more_package import BACKENDS, actor_of, client_of, module_app, text_of
from screens_package import csrf_of

from workflows import StateMachines

HTML = {"Accept": "text/html"}
MOVE = {"X-Heddle-Move": "1"}
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """One app per database for the whole module, with ann's and bob's records."""
    yield from module_app(request, tmp_path_factory, seed)


def seed(app: Flask) -> None:
    runtime = app.extensions["heddle"]
    ann, bob = actor_of(app, "ann"), actor_of(app, "bob")
    records = runtime.records
    records.create(
        ann, "opportunity", {"name": "Big deal", "amount": "1000", "close_date": TODAY.isoformat()}
    )
    records.create(ann, "opportunity", {"name": "Small deal", "amount": "250.5"})
    records.create(bob, "opportunity", {"name": "Bob's deal", "amount": "7000"})
    noon = dt.datetime.combine(TODAY, dt.time(9, 30), dt.UTC).isoformat()
    records.create(ann, "task", {"subject": "Call Acme", "due": noon, "priority": "high"})
    records.create(bob, "task", {"subject": "Bob's call", "due": noon})


def new_deal(app: Flask, owner: str = "ann", **values: Any) -> dict[str, Any]:
    found: dict[str, Any] = app.extensions["heddle"].records.create(
        actor_of(app, owner), "opportunity", {"name": "Deal", **values}
    )
    return found


def move(client: FlaskClient, entity: str, record: dict[str, Any], to: str, **extra: Any) -> Any:
    token = csrf_of(text_of(client.get(f"/app/{entity}/kanban")))
    data = {"to": to, "version": str(record["version"]), "csrf_token": token, **extra}
    return client.post(f"/app/{entity}/{record['id']}/move", data=data, headers=MOVE)


def switch_back(client: FlaskClient) -> None:
    """English again: the switch saves the language on ann's account, which the module's
    other tests share."""
    token = csrf_of(text_of(client.get("/")))
    client.post("/language", data={"locale": "en", "csrf_token": token})


def columns_of(page: str) -> dict[str, list[str]]:
    """Column value -> the card titles in it."""
    found = {}
    for value, body in re.findall(r'data-value="(\w+)"[^>]*>(.*?)</ul>', page, re.S):
        found[value] = re.findall(r'class="fw-medium d-block mb-1" href="[^"]+">([^<]+)<', body)
    return found


# --- kanban -----------------------------------------------------------------------------------


def test_the_kanban_shows_my_cards_by_stage_with_counts_and_sums(site: Flask) -> None:
    page = text_of(client_of(site, "ann").get("/app/opportunity/kanban"))
    cards = columns_of(page)
    assert list(cards) == ["new", "proposal", "won", "lost"]
    assert "Big deal" in cards["new"] and "Small deal" in cards["new"]
    assert "Bob&#39;s deal" not in page and "Bob's deal" not in page
    new = page[page.index('id="col-new"') : page.index('data-value="new"')]
    assert re.search(r'h-count"[^>]*>\d+</span>', new)
    assert "Amount:" in new and "CN¥1,250.50" in new  # the sum of every card in the column
    assert "Margin" not in page  # hidden from reps: not a card field, not a sum
    assert 'aria-label="Kanban by Stage"' in page
    assert 'for="move-' in page  # the keyboard's way: a labelled "Move to" select


def test_a_viewer_sees_every_card_but_no_way_to_move_them(site: Flask) -> None:
    page = text_of(client_of(site, "vic").get("/app/opportunity/kanban"))
    assert "Big deal" in page and "Bob&#39;s deal" in page
    assert 'data-movable="false"' in page and "h-move" not in page


def test_the_kanban_filters_as_the_list_does_and_answers_htmx_with_the_board(site: Flask) -> None:
    client = client_of(site, "ann")
    page = text_of(client.get("/app/opportunity/kanban?q=big"))
    assert "Big deal" in page and "Small deal" not in page
    narrowed = text_of(client.get("/app/opportunity/kanban?amount__gte=500"))
    assert 'name="amount__gte" value="500"' in narrowed  # the list's from–to control
    assert "Big deal" in narrowed and "Small deal" not in narrowed
    assert 'Amount: <span class="h-number">CN¥1,000.00' in narrowed  # the sum follows the filter
    partial = client.get(
        "/app/opportunity/kanban?q=big", headers={"HX-Request": "true", "HX-Target": "kanban-board"}
    )
    body = text_of(partial)
    assert body.lstrip().startswith('<div id="kanban-board"') and "<html" not in body
    assert client.get("/app/opportunity/kanban?amount__gte=lots", headers=HTML).status_code == 400


def test_a_drop_fires_the_transition_that_leads_to_the_column(site: Flask) -> None:
    deal = new_deal(site, amount="10")
    client = client_of(site, "ann")
    response = move(client, "opportunity", deal, "proposal")
    assert response.status_code == 200 and response.json["ok"] is True
    assert response.json["message"] == "Moved to “Proposal”."
    runtime = site.extensions["heddle"]
    history = StateMachines(runtime.records).history(
        actor_of(site, "ann"), "opportunity", deal["id"]
    )
    assert [(h["transition"], h["from_state"], h["to_state"]) for h in history] == [
        ("propose", "new", "proposal")
    ]
    assert "Deal" in columns_of(text_of(client.get("/app/opportunity/kanban")))["proposal"]


@pytest.mark.parametrize(
    ("values", "path", "to", "status", "message"),
    [
        (
            {"amount": "0"},
            ["proposal"],
            "won",
            409,
            "“Mark won” is not possible now: amount > 0 does not hold.",
        ),
        (
            {},
            [],
            "lost",
            422,
            "“Mark lost” needs Lost reason: open the record, fill it in and try again.",
        ),
        ({}, [], "won", 409, "There is no step from “New” to “Won”."),
        ({}, [], "nowhere", 400, "There is no column “nowhere”."),
    ],
)
def test_a_refused_move_says_why_and_changes_nothing(
    site: Flask, values: dict[str, Any], path: list[str], to: str, status: int, message: str
) -> None:
    deal = new_deal(site, **values)
    runtime = site.extensions["heddle"]
    ann = actor_of(site, "ann")
    for step in path:
        deal = StateMachines(runtime.records).fire(
            ann, "opportunity", deal["id"], "propose", version=deal["version"]
        )
        assert deal["stage"] == step
    response = move(client_of(site, "ann"), "opportunity", deal, to)
    assert response.status_code == status
    assert response.json == {"ok": False, "message": message}
    assert runtime.records.get(ann, "opportunity", deal["id"])["version"] == deal["version"]


def test_a_stale_card_is_refused_and_the_plain_form_comes_back_with_the_message(
    site: Flask,
) -> None:
    deal = new_deal(site)
    runtime = site.extensions["heddle"]
    runtime.records.update(
        actor_of(site, "ann"), "opportunity", deal["id"], {"amount": "5"}, version=deal["version"]
    )
    client = client_of(site, "ann")
    assert move(client, "opportunity", deal, "proposal").json["message"] == (
        "Someone else changed it meanwhile: reload the board."
    )
    token = csrf_of(text_of(client.get("/app/opportunity/kanban")))
    plain = client.post(
        f"/app/opportunity/{deal['id']}/move",
        data={
            "to": "proposal",
            "version": str(deal["version"] + 1),
            "csrf_token": token,
            "next": "/app/opportunity/kanban?q=deal",
        },
    )
    assert (
        plain.status_code == 302 and plain.headers["Location"] == "/app/opportunity/kanban?q=deal"
    )
    assert "Moved to “Proposal”." in text_of(client.get(plain.headers["Location"]))


def test_moving_needs_the_token_and_a_record_in_sight(site: Flask) -> None:
    deal = new_deal(site, owner="bob")
    client = client_of(site, "ann")
    mine = new_deal(site)
    no_token = client.post(
        f"/app/opportunity/{mine['id']}/move", data={"to": "proposal"}, headers=MOVE
    )
    assert no_token.status_code == 400
    assert move(client, "opportunity", deal, "proposal").status_code == 404
    assert client.get("/app/account/kanban", headers=HTML).status_code == 404  # no kanban


def test_a_choice_kanban_moves_by_updating_the_field(site: Flask) -> None:
    task = site.extensions["heddle"].records.create(
        actor_of(site, "ann"), "task", {"subject": "Write"}
    )
    client = client_of(site, "ann")
    response = move(client, "task", task, "doing")
    assert response.json == {
        "ok": True,
        "message": "Moved to “Doing”.",
        "version": task["version"] + 1,
    }
    assert "Write" in columns_of(text_of(client.get("/app/task/kanban")))["doing"]


def test_the_kanban_in_chinese(site: Flask) -> None:
    client = client_of(site, "ann")
    client.post("/language", data={"locale": "zh", "csrf_token": csrf_of(text_of(client.get("/")))})
    page = text_of(client.get("/app/opportunity/kanban"))
    assert "新建" in page and "方案" in page and ">移动<" in page and "按阶段看板" in page
    switch_back(client)


# --- calendar --------------------------------------------------------------------------------


def test_the_calendar_shows_my_records_on_their_days(site: Flask) -> None:
    client = client_of(site, "ann")
    page = text_of(client.get("/app/task/calendar"))
    assert "Call Acme" in page and "Bob&#39;s call" not in page
    assert 'aria-current="date"' in page and "09:30" in page
    assert "bg-red-lt" in page  # the priority's colour
    assert re.search(r'<th scope="col"[^>]*>Mon</th>', page)
    following = (TODAY.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    assert f"date={following.isoformat()}" in page
    assert re.search(r'<select[^>]*id="filter-priority"', page)  # the list's filter bar
    assert "Call Acme" not in text_of(client.get("/app/task/calendar?priority=low"))


def test_the_calendar_changes_month_with_an_htmx_partial_and_a_week_view(site: Flask) -> None:
    client = client_of(site, "ann")
    month = (TODAY.replace(day=1) + dt.timedelta(days=70)).replace(day=1)
    partial = text_of(
        client.get(
            f"/app/task/calendar?date={month.isoformat()}",
            headers={"HX-Request": "true", "HX-Target": "calendar"},
        )
    )
    assert partial.lstrip().startswith('<div id="calendar"') and "Call Acme" not in partial
    assert month.strftime("%B") in partial
    week = text_of(client.get(f"/app/task/calendar?mode=week&date={TODAY.isoformat()}"))
    assert "Call Acme" in week and "h-calendar-week" in week
    assert week.count('<td class="h-day') == 7
    assert client.get("/app/task/calendar?date=someday", headers=HTML).status_code == 400
    assert client.get("/app/account/calendar", headers=HTML).status_code == 404


# --- reports and dashboards --------------------------------------------------------------------


def chart_of(page: str) -> dict[str, Any]:
    found = re.search(r'data-chart="([^"]+)"', page)
    assert found, "no chart on the page"
    data: dict[str, Any] = json.loads(unescape(found.group(1)))
    return data


def test_a_report_draws_its_chart_over_my_records_without_hidden_measures(site: Flask) -> None:
    page = text_of(client_of(site, "ann").get("/reports/deals_by_stage"))
    chart = chart_of(page)
    assert chart["type"] == "bar" and "New" in chart["categories"]
    assert [s["name"] for s in chart["series"]] == ["Amount"]  # margin is hidden from reps
    assert "Margin" not in page and "7,000" not in page  # bob's deal is not in sight
    assert 'href="/api/v1/reports/deals_by_stage/csv"' in page
    assert 'href="/api/v1/reports/deals_by_stage/xlsx"' in page
    assert '<option value="this_quarter">This quarter</option>' in page
    assert re.search(r'<select[^>]*name="owner"', page)  # the owner parameter is a user select
    assert "<tfoot>" in page and "Total" in page
    admin = chart_of(text_of(client_of(site, "root").get("/reports/deals_by_stage")))
    assert [s["name"] for s in admin["series"]] == ["Amount", "Margin"]


def test_report_parameters_narrow_the_result_and_a_bad_one_is_named(site: Flask) -> None:
    client = client_of(site, "ann")
    start = TODAY.isoformat()
    page = text_of(
        client.get(f"/reports/deals_by_stage?period=custom&period__from={start}&period__to={start}")
    )
    chart = chart_of(page)
    assert chart["series"][0]["data"][chart["categories"].index("New")] == 1000.0  # only Big deal
    assert f'value="{start}"' in page
    bad = client.get("/reports/deals_by_stage?period=someday", headers=HTML)
    assert bad.status_code == 400 and "Some parameters are not valid: Closing." in text_of(bad)
    assert client.get("/reports/nope", headers=HTML).status_code == 404


def test_a_funnel_in_japanese(site: Flask) -> None:
    client = client_of(site, "ann")
    client.post("/language", data={"locale": "ja", "csrf_token": csrf_of(text_of(client.get("/")))})
    page = text_of(client.get("/reports/deal_funnel"))
    chart = chart_of(page)
    assert chart["type"] == "funnel" and "新規" in chart["categories"]
    assert "langJA" in page and "商談ファネル" in page
    switch_back(client)


def test_the_home_page_is_the_roles_dashboard(site: Flask) -> None:
    page = text_of(client_of(site, "ann").get("/"))
    assert "Rep desk" in page and "Pipeline total" in page and "Open tasks" in page
    assert "Call Acme" in page and "Bob&#39;s call" not in page
    assert 'class="h-metric"' in page and "data-chart=" in page
    viewer = text_of(client_of(site, "vic").get("/"))
    assert "Rep desk" not in viewer and "Welcome, vic" in viewer


def test_dashboards_and_reports_in_the_navigation_follow_the_roles(site: Flask) -> None:
    ann = text_of(client_of(site, "ann").get("/reports"))
    assert 'href="/dashboards/rep_desk"' in ann and 'href="/reports/deal_funnel"' in ann
    vic = client_of(site, "vic")
    assert 'href="/dashboards/rep_desk"' not in text_of(vic.get("/reports"))
    assert vic.get("/dashboards/rep_desk", headers=HTML).status_code == 404
    shared = text_of(client_of(site, "ann").get("/dashboards/rep_desk?period=this_year"))
    assert '<option value="this_year" selected>' in shared


def test_the_new_pages_carry_no_inline_script_or_style(site: Flask) -> None:
    client = client_of(site, "ann")
    for url in (
        "/app/opportunity/kanban",
        "/app/task/calendar",
        "/reports/deals_by_stage",
        "/dashboards/rep_desk",
        "/reports",
        "/",
    ):
        response = client.get(url)
        page = text_of(response)
        assert response.status_code == 200, url
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert not re.search(r"<script(?![^>]*\ssrc=)", page), url
        assert " style=" not in page and " onclick=" not in page, url


def test_a_script_in_a_title_is_text_on_the_kanban_calendar_and_report(
    site: Flask, tmp_path: Path
) -> None:
    new_deal(site, name="<script>alert(1)</script>")
    page = text_of(client_of(site, "ann").get("/app/opportunity/kanban"))
    assert (
        "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    )
