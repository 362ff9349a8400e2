"""The record page's transitions and timeline, on the CRM's sales pipeline.

A rep moves an opportunity with a button, loses it through the transition's form (the
lost reason it requires refused when missing, beside its field), and reads it all back
in the timeline; a stale version, a viewer and a manager's reopen with its comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from screens_package import csrf_of
from sqlalchemy.engine import Engine

from engine import migrate

PASSWORD = "a long enough password"
PEOPLE = [
    ("ann", "sales_rep", "en"),
    ("mia", "sales_manager", "en"),
    ("vic", "viewer", "en"),
    ("li", "sales_rep", "zh"),
]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    with runtime.engine.begin() as conn:
        for username, role, language in PEOPLE:
            runtime.accounts.create_user(
                conn,
                username,
                PASSWORD,
                [role],
                team="East",
                locale=language,
                name=username.title(),
            )
    yield app
    runtime.engine.dispose()


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    done = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 302
    return client


def _deal(app: Flask, owner: str) -> int:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        user = runtime.accounts.by_username(conn, owner)
    actor = user.actor()
    account = runtime.records.create(actor, "account", {"name": f"Acme of {owner}"})
    deal = runtime.records.create(
        actor, "opportunity", {"name": "ERP rollout", "account": account["id"], "amount": "5000.00"}
    )
    return int(deal["id"])


def _post(client: FlaskClient, url: str, page: str, **form: str) -> object:
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version, "no version on the page"
    data = {"csrf_token": csrf_of(page), "version": version.group(1), **form}
    return client.post(url, data=data)


def _moves(page: str) -> str:
    """The page's title bar with its transitions' buttons (the path and the diagram
    after it name every state and transition)."""
    return page[: page.index('<nav class="h-path')]


def test_a_rep_moves_a_deal_and_reads_its_timeline(app: Flask) -> None:
    deal = _deal(app, "ann")
    ann = _client(app, "ann")
    url = f"/app/opportunity/{deal}"
    page = ann.get(url).get_data(as_text=True)
    assert "Analyze needs" in page and "Mark lost…" in page  # a button, and a form's link
    assert "Reopen" not in _moves(page)  # not from this state (and only managers)
    assert "created this record" in page

    moved = _post(ann, f"{url}/transitions/analyze_needs", page)
    assert moved.status_code == 302 and moved.headers["Location"].endswith(url)  # type: ignore[attr-defined]
    page = ann.get(url).get_data(as_text=True)
    assert "Done: Analyze needs." in page
    history = page[page.index('id="timeline-title"') :]
    assert "moved it:" in history and "Needs analysis" in history
    assert "Probability" in history  # the field the state's on_enter set, before → after

    form_url = f"{url}/transitions/lose"
    form = ann.get(form_url)
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'name="lost_reason"' in html and 'name="comment"' in html
    refused = _post(ann, form_url, html, comment="lost on price")
    assert refused.status_code == 422  # type: ignore[attr-defined]
    body = refused.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "is-invalid" in body and "lost on price" in body  # kept what was typed
    done = _post(ann, form_url, html, lost_reason="price", comment="lost on price")
    assert done.status_code == 302  # type: ignore[attr-defined]
    page = ann.get(url).get_data(as_text=True)
    history = page[page.index('id="timeline-title"') :]
    assert "lost on price" in history and "Mark lost" in history
    assert history.index("Mark lost") < history.index("Analyze needs")  # newest first
    assert "Analyze needs" not in _moves(page)  # no way on

    stale = ann.post(
        f"{url}/transitions/reopen",
        data={"csrf_token": csrf_of(page), "version": "1", "comment": "x"},
    )
    assert stale.status_code in (302, 403)  # a rep may not reopen, stale or not


def test_a_stale_version_a_viewer_and_a_managers_reopen(app: Flask) -> None:
    deal = _deal(app, "ann")
    url = f"/app/opportunity/{deal}"
    ann = _client(app, "ann")
    page = ann.get(url).get_data(as_text=True)
    assert _post(ann, f"{url}/transitions/analyze_needs", page).status_code == 302  # type: ignore[attr-defined]
    again = _post(ann, f"{url}/transitions/propose", page)  # the page read before the move
    assert again.status_code == 302  # type: ignore[attr-defined]
    assert "Someone else changed this record" in ann.get(url).get_data(as_text=True)

    vic = _client(app, "vic")
    seen = vic.get(url).get_data(as_text=True)
    bar = seen[: seen.index('id="timeline-title"')]
    assert "transitions/" not in bar  # reads, moves nothing
    assert "moved it:" in seen  # but reads the history
    refused = vic.post(
        f"{url}/transitions/propose", data={"csrf_token": csrf_of(seen), "version": "2"}
    )
    assert refused.status_code == 403  # type: ignore[attr-defined]

    page = ann.get(url).get_data(as_text=True)
    lose = ann.get(f"{url}/transitions/lose").get_data(as_text=True)
    assert _post(ann, f"{url}/transitions/lose", lose, lost_reason="price").status_code == 302  # type: ignore[attr-defined]
    mia = _client(app, "mia")
    page = mia.get(url).get_data(as_text=True)
    assert "Reopen…" in page  # the comment is required: a form
    reopen = mia.get(f"{url}/transitions/reopen").get_data(as_text=True)
    assert 'aria-required="true"' in reopen
    assert _post(mia, f"{url}/transitions/reopen", reopen).status_code == 422  # type: ignore[attr-defined]
    done = _post(mia, f"{url}/transitions/reopen", reopen, comment="they came back")
    assert done.status_code == 302  # type: ignore[attr-defined]
    page = mia.get(url).get_data(as_text=True)
    assert "they came back" in page and "Mia" in page


def test_the_timeline_in_chinese_and_an_unknown_transition(app: Flask) -> None:
    deal = _deal(app, "li")
    li = _client(app, "li")
    url = f"/app/opportunity/{deal}"
    page = li.get(url).get_data(as_text=True)
    assert "进入需求分析" in page
    _post(li, f"{url}/transitions/analyze_needs", page)
    page = li.get(url).get_data(as_text=True)
    history = page[page.index('id="timeline-title"') :]
    assert "动态" in history and "推进了阶段" in history and "需求分析" in history
    assert li.get(f"{url}/transitions/fly").status_code == 404
    assert _client(app, "ann").get(url).status_code == 404  # another rep's deal
