"""A record's comments (API and screen), the activities on its timeline, the quick "Log
activity" form, and the path of states and workflow diagram above it — on the CRM.

Comments follow the record's sight: a rep may read and add them on their own deal, a
viewer (who reads everything) may too, another rep gets a 404 as for the record. An
activity logged from a deal names the deal and its account. The record page costs the
same statements with 21 comments and activities as with 45 of each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from crm_support import crm_fixture
from flask import Flask
from flask.testing import FlaskClient
from screens_package import csrf_of, log_in
from sqlalchemy.engine import Engine
from statement_support import statements

from engine.comments import MAX_LENGTH, Comments

PEOPLE = [
    ("ann", ["sales_rep"], "East", None),
    ("bob", ["sales_rep"], "East", None),
    ("vic", ["viewer"], "East", None),
    ("root", ["admin"], "HQ", None),
]
PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    """The CRM with two reps and a viewer (conftest's ``token`` and ``client`` use it)."""
    yield from crm_fixture(db_url, tmp_path, PEOPLE)


def _actor(app: Flask, username: str) -> object:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        return runtime.accounts.by_username(conn, username).actor()


def _deal(app: Flask) -> tuple[int, int]:
    """ann's account and a deal on it."""
    runtime = app.extensions["heddle"]
    ann = _actor(app, "ann")
    account = runtime.records.create(ann, "account", {"name": "Lotus Tea House"})
    deal = runtime.records.create(
        ann, "opportunity", {"name": "Tea for 40 shops", "account": account["id"]}
    )
    return int(account["id"]), int(deal["id"])


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    log_in(client, username)
    return client


def _comments(app: Flask) -> tuple[FlaskClient, str]:
    """A client of the API, and the comments' URL of a new deal of ann's."""
    _account, deal = _deal(app)
    return app.test_client(), f"/api/v1/records/opportunity/{deal}/comments"


def test_the_comments_api_follows_the_records_sight(
    app: Flask, token: Callable[[str], dict[str, str]]
) -> None:
    api, url = _comments(app)
    deal = int(url.split("/")[-2])
    ann, bob, vic = (token(u) for u in ("ann", "bob", "vic"))
    assert api.get(url, headers=ann).json == {"data": []}
    made = api.post(url, headers=ann, json={"body": "  They want a tasting first  "})
    assert made.status_code == 201
    assert made.json["data"]["body"] == "They want a tasting first"
    assert api.post(url, headers=vic, json={"body": "Ask about the oolong"}).status_code == 201
    found = api.get(url, headers=ann).json["data"]
    assert [c["body"] for c in found] == ["Ask about the oolong", "They want a tasting first"]
    assert [c["author"] for c in found] == ["vic", "ann"]
    assert api.get(f"{url}?limit=1", headers=ann).json["data"][0]["author"] == "vic"

    assert api.get(url, headers=bob).status_code == 404  # not his deal: as if absent
    assert api.post(url, headers=bob, json={"body": "hi"}).status_code == 404
    assert (
        api.get(f"/api/v1/records/opportunity/{deal + 99}/comments", headers=ann).status_code == 404
    )
    assert api.get("/api/v1/records/nothing/1/comments", headers=ann).status_code == 404

    empty = api.post(url, headers=ann, json={"body": "   "})
    assert empty.status_code == 422 and empty.json["error"]["fields"] == {
        "body": ["Write a comment."]
    }
    long = api.post(url, headers=ann, json={"body": "x" * (MAX_LENGTH + 1)})
    assert long.status_code == 422 and "body" in long.json["error"]["fields"]
    assert api.post(url, headers=ann, json={"body": 5}).status_code == 422
    extra = api.post(url, headers=ann, json={"body": "x", "author_id": 1})
    assert extra.status_code == 400 and "author_id" in extra.json["error"]["fields"]
    assert api.post(url, headers=ann, data="body=x").status_code == 415
    assert api.get(f"{url}?limit=0", headers=ann).status_code == 400
    assert api.get(f"{url}?limit=x", headers=ann).status_code == 400

    paths = api.get("/api/v1/openapi.json", headers=ann).json["paths"]
    operations = paths["/records/opportunity/{id}/comments"]
    assert set(operations) >= {"get", "post"}
    assert "422" in operations["post"]["responses"]


def _deal_page(app: Flask) -> tuple[int, int, FlaskClient, str, str]:
    """ann's account and deal, ann's browser, and the deal's page (URL, HTML)."""
    account, deal = _deal(app)
    ann = _client(app, "ann")
    url = f"/app/opportunity/{deal}"
    return account, deal, ann, url, ann.get(url).get_data(as_text=True)


def test_a_comment_on_the_record_page_is_text(app: Flask) -> None:
    _account, deal, ann, url, page = _deal_page(app)
    assert f'action="/app/opportunity/{deal}/comments"' in page
    assert ann.post(f"{url}/comments", data={"body": "no token"}).status_code == 400
    done = ann.post(f"{url}/comments", data={"body": f"Hi {PAYLOAD}", "csrf_token": csrf_of(page)})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"{url}#timeline")
    page = ann.get(url).get_data(as_text=True)
    timeline = page[page.index('id="timeline-title"') :]
    assert "Your comment is added." in page
    assert "ann</strong>" in timeline and "commented" in timeline
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in timeline and PAYLOAD not in page
    refused = ann.post(f"{url}/comments", data={"body": " ", "csrf_token": csrf_of(page)})
    assert refused.status_code == 302
    assert "The comment was not added" in ann.get(url).get_data(as_text=True)

    bob = _client(app, "bob")
    token = csrf_of(bob.get("/").get_data(as_text=True))
    assert bob.post(f"{url}/comments", data={"body": "x", "csrf_token": token}).status_code == 404


def test_logging_an_activity_from_a_deal_names_the_deal_and_its_account(app: Flask) -> None:
    account, deal, ann, url, page = _deal_page(app)
    assert f'action="{url}/log/activity"' in page
    assert re.search(r'name="kind" id="log-activity-call" value="call" checked', page)
    done = ann.post(
        f"{url}/log/activity",
        data={
            "csrf_token": csrf_of(page),
            "kind": "visit",
            "subject": "Visited the Hangzhou shop",
            "notes": "Samples of the oolong",
        },
    )
    assert done.status_code == 302
    runtime = app.extensions["heddle"]
    table = runtime.tables.table("activity")
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(table)).mappings().one()
    assert (row["opportunity"], row["account"], row["kind"]) == (deal, account, "visit")
    page = ann.get(url).get_data(as_text=True)
    entry = page[page.index("h-event-activity") :]
    assert "Visited the Hangzhou shop" in entry and "Samples of the oolong" in entry
    assert f'href="/app/activity/{row["id"]}"' in entry and ">Visit</span>" in entry
    assert "Logged: Activity." in page
    # the account's page shows it too (the activity names the account)
    assert "Visited the Hangzhou shop" in ann.get(f"/app/account/{account}").get_data(as_text=True)

    refused = ann.post(f"{url}/log/activity", data={"csrf_token": csrf_of(page), "kind": "call"})
    assert refused.status_code == 302
    assert "It was not logged: Subject: Missing data for required field." in ann.get(url).get_data(
        as_text=True
    )
    token = csrf_of(page)
    assert ann.post(f"{url}/log/task", data={"csrf_token": token}).status_code == 404
    assert ann.post(f"{url}/log/nothing", data={"csrf_token": token}).status_code == 404

    vic = _client(app, "vic")  # reads activities, creates none: no form, a 403 when posted
    seen = vic.get(url).get_data(as_text=True)
    assert "Visited the Hangzhou shop" in seen and "/log/activity" not in seen
    posted = vic.post(f"{url}/log/activity", data={"csrf_token": csrf_of(seen), "subject": "x"})
    assert posted.status_code == 302
    assert "It was not logged" in vic.get(url).get_data(as_text=True)


def test_the_path_and_the_diagram_of_a_deal(app: Flask) -> None:
    account, _deal_id, ann, _url, page = _deal_page(app)
    path = page[page.index('<nav class="h-path') : page.index("</nav>")]
    assert re.search(r'h-step-current" aria-current="step">\s*<span>Initial contact', path)
    assert path.count("h-step-todo") == 3 and "h-step-done" not in path
    assert re.findall(r"<span>(\w+)</span>", path[path.index("h-path-finals") :]) == [
        "Won",
        "Lost",
    ]
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg and svg.count("<rect") == 6
    assert "h-node-current" in svg and ">Reopen<" in svg
    assert "Initial contact → Needs analysis: Analyze needs" in page  # the text alternative
    assert "h-path" not in ann.get(f"/app/account/{account}").get_data(as_text=True)


def test_the_record_page_costs_the_same_statements_with_more_on_its_timeline(
    app: Flask,
) -> None:
    account, deal = _deal(app)
    runtime = app.extensions["heddle"]
    ann_actor = _actor(app, "ann")
    ann = _client(app, "ann")
    comments = Comments(runtime.records)

    def add(count: int) -> None:
        for i in range(count):
            comments.add(ann_actor, "opportunity", deal, f"note {i}")
            runtime.records.create(
                ann_actor,
                "activity",
                {"subject": f"call {i}", "opportunity": deal, "account": account},
            )

    def page() -> None:
        assert ann.get(f"/app/opportunity/{deal}").status_code == 200

    # past the first page of each list (the related list's 10, the timeline's 20), whose
    # counts are a statement each: then nothing more, whatever the number
    add(21)
    runtime.records.pools.ttl = 3600  # the pools not read again mid-count, however slow
    page()  # the caches filled (the public pools a rep reads, among them)
    few = statements(app, page)
    add(24)
    assert statements(app, page) == few


def test_a_mention_tells_who_may_read_the_record(
    app: Flask, token: Callable[[str], dict[str, str]]
) -> None:
    api, url = _comments(app)
    deal = int(url.split("/")[-2])
    text = "@vic @bob @ann @nobody, see ann@example.com: price ok?"
    made = api.post(url, headers=token("ann"), json={"body": text})
    assert made.status_code == 201
    # vic reads every deal; bob may not see ann's, ann wrote it, nobody does not exist,
    # and an email address is not a mention
    assert made.json["data"]["mentioned"] == ["vic"]
    vic = _client(app, "vic")
    inbox = vic.get("/notifications").get_data(as_text=True)
    assert "ann mentioned you on Opportunity “Tea for 40 shops”" in inbox
    assert f'href="/app/opportunity/{deal}"' in inbox and 'data-count="1"' in inbox
    assert "mentioned you" not in _client(app, "bob").get("/notifications").get_data(as_text=True)

    page = vic.get(f"/app/opportunity/{deal}").get_data(as_text=True)  # the screen's form too
    vic.post(
        f"/app/opportunity/{deal}/comments",
        data={"body": "@ann looks fine", "csrf_token": csrf_of(page)},
    )
    ann = _client(app, "ann")
    assert "vic mentioned you on Opportunity" in ann.get("/notifications").get_data(as_text=True)


def test_a_comment_is_edited_by_its_author_and_deleted_by_its_author_or_an_admin(
    app: Flask, token: Callable[[str], dict[str, str]]
) -> None:
    api, url = _comments(app)
    ann, bob, vic, root = (token(u) for u in ("ann", "bob", "vic", "root"))
    mine = api.post(url, headers=ann, json={"body": "Price ok, @vic?"}).json["data"]
    assert mine["edited_at"] is None
    theirs = api.post(url, headers=vic, json={"body": "Looks fine"}).json["data"]
    one = f"{url}/{mine['id']}"

    # only the author edits; the record out of sight is absent, as for the record
    refused = api.patch(one, headers=vic, json={"body": "changed by vic"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert api.patch(one, headers=root, json={"body": "x"}).status_code == 403
    assert api.patch(one, headers=bob, json={"body": "x"}).status_code == 404
    edited = api.patch(one, headers=ann, json={"body": " Price ok, @vic? Ask @root too "})
    assert edited.status_code == 200, edited.json
    data = edited.json["data"]
    assert data["body"] == "Price ok, @vic? Ask @root too" and data["edited_at"]
    assert data["mentioned"] == ["root"]  # vic was told when it was written
    listed = {c["id"]: c for c in api.get(url, headers=ann).json["data"]}
    assert listed[mine["id"]]["body"] == data["body"] and listed[mine["id"]]["edited_at"]
    assert listed[theirs["id"]]["edited_at"] is None

    # bad input changes nothing
    empty = api.patch(one, headers=ann, json={"body": "  "})
    assert empty.status_code == 422 and empty.json["error"]["fields"] == {
        "body": ["Write a comment."]
    }
    assert api.patch(one, headers=ann, json={"body": "x", "author_id": 9}).status_code == 400
    assert api.patch(one, headers=ann, data="body=x").status_code == 415
    assert api.patch(f"{url}/{mine['id'] + 999}", headers=ann, json={"body": "x"}).status_code == 404
    runtime = app.extensions["heddle"]
    account = runtime.records.get(_actor(app, "ann"), "opportunity", int(url.split("/")[-2]))
    other = runtime.records.create(
        _actor(app, "ann"), "opportunity", {"name": "Cups", "account": account["account"]}
    )
    elsewhere = f"/api/v1/records/opportunity/{other['id']}/comments/{mine['id']}"
    assert api.patch(elsewhere, headers=ann, json={"body": "x"}).status_code == 404
    assert api.get(url, headers=ann).json["data"][1]["body"] == data["body"]

    # the author deletes theirs, an admin anyone's; no one else
    assert api.delete(f"{url}/{theirs['id']}", headers=ann).status_code == 403
    assert api.delete(f"{url}/{theirs['id']}", headers=root).status_code == 204
    assert api.delete(one, headers=ann).status_code == 204
    assert api.delete(one, headers=ann).status_code == 404
    assert api.get(url, headers=ann).json == {"data": []}

    paths = api.get("/api/v1/openapi.json", headers=ann).json["paths"]
    operations = paths["/records/opportunity/{id}/comments/{comment_id}"]
    assert set(operations) >= {"patch", "delete"}
    assert "403" in operations["patch"]["responses"] and "204" in operations["delete"]["responses"]


def test_the_record_page_edits_and_deletes_ones_own_comments(app: Flask) -> None:
    _account, _deal_id, ann, url, page = _deal_page(app)
    ann.post(f"{url}/comments", data={"body": "Frist offer sent", "csrf_token": csrf_of(page)})
    vic = _client(app, "vic")
    page = vic.get(url).get_data(as_text=True)
    vic.post(f"{url}/comments", data={"body": "Noted", "csrf_token": csrf_of(page)})
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        table = runtime.tables.metadata.tables["heddle_comment"]
        ids = {row.body: row.id for row in conn.execute(sa.select(table.c.body, table.c.id))}
    first, noted = ids["Frist offer sent"], ids["Noted"]

    page = ann.get(url).get_data(as_text=True)
    assert f'action="{url}/comments/{first}/edit"' in page  # hers: edit and delete
    assert f'action="{url}/comments/{first}/delete"' in page
    assert f"/comments/{noted}/" not in page  # vic's: neither
    assert ann.post(f"{url}/comments/{first}/edit", data={"body": "x"}).status_code == 400
    done = ann.post(
        f"{url}/comments/{first}/edit", data={"body": "First offer sent", "csrf_token": csrf_of(page)}
    )
    assert done.status_code == 302 and done.headers["Location"].endswith(f"{url}#timeline")
    page = ann.get(url).get_data(as_text=True)
    timeline = page[page.index('id="timeline-title"') :]
    assert "Your comment is changed." in page
    assert "First offer sent" in timeline and "Frist" not in timeline and "edited" in timeline
    # vic may not change hers: told why, nothing changed
    vic_page = vic.get(url).get_data(as_text=True)
    vic.post(f"{url}/comments/{first}/edit", data={"body": "mine now", "csrf_token": csrf_of(vic_page)})
    assert "The comment was not changed" in vic.get(url).get_data(as_text=True)
    ann.post(f"{url}/comments/{first}/delete", data={"csrf_token": csrf_of(page)})
    page = ann.get(url).get_data(as_text=True)
    assert "The comment is deleted." in page and "First offer sent" not in page
    # an admin sees a delete button on anyone's comment
    root = _client(app, "root")
    shown = root.get(url).get_data(as_text=True)
    assert f'action="{url}/comments/{noted}/delete"' in shown
    assert f'action="{url}/comments/{noted}/edit"' not in shown
