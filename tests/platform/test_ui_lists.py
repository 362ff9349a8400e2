"""The list screen's filter bar, bulk actions and saved views, and the global search,
through Flask's test client on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from screens_more_package import BACKENDS, actor_of, client_of, module_app, text_of
from screens_package import csrf_of

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    yield from module_app(request, tmp_path_factory, seed)


def seed(app: Flask) -> None:
    records = app.extensions["heddle"].records
    ann, bob = actor_of(app, "ann"), actor_of(app, "bob")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    records.create(ann, "opportunity", {"name": "Alpha", "amount": "100", "close_date": today})
    records.create(ann, "opportunity", {"name": "Beta", "amount": "900"})
    records.create(bob, "opportunity", {"name": "Bob's alpha", "amount": "500"})
    records.create(ann, "account", {"name": "Alpha Corp", "grade": "A"})


def ids_of(app: Flask, username: str, entity: str, **params: str) -> dict[str, int]:
    from engine.query import parse_params

    runtime = app.extensions["heddle"]
    rows = runtime.records.query(
        actor_of(app, username), entity, parse_params(runtime.model, entity, params or {})
    ).rows
    return {r.get("name") or r.get("title"): r["id"] for r in rows}


def titles(page: str) -> list[str]:
    return re.findall(r'<a class="fw-medium" href="/app/\w+/\d+">([^<]+)</a>', page)


def test_the_filter_bar_has_a_control_per_field_type(site: Flask) -> None:
    client = client_of(site, "ann")
    page = text_of(client.get("/app/opportunity"))
    assert re.search(r'<select[^>]*id="filter-stage"', page)  # a choice
    assert 'name="amount__gte"' in page and 'name="amount__lte"' in page  # a number: from–to
    assert '<option value="this_quarter">This quarter</option>' in page  # a date: periods
    me = actor_of(site, "ann").user_id
    assert f'<option value="{me}">Me</option>' in page  # the owner
    narrowed = text_of(client.get("/app/opportunity?amount__gte=500"))
    assert titles(narrowed) == ["Beta"] and 'value="500"' in narrowed
    assert "h-chip" not in narrowed  # the inputs show the filter, not a chip
    dated = text_of(client.get("/app/opportunity?close_date=this_month"))
    assert titles(dated) == ["Alpha"]


def test_bulk_actions_change_each_ticked_record_and_count_refusals(site: Flask) -> None:
    client = client_of(site, "ann")
    page = text_of(client.get("/app/opportunity"))
    assert 'form="bulk-form"' in page and 'aria-label="Select Alpha"' in page
    token = csrf_of(page)
    mine = ids_of(site, "ann", "opportunity")
    done = client.post(
        "/app/opportunity/bulk",
        data={
            "action": "transition",
            "transition": "propose",
            "ids": [mine["Alpha"], mine["Beta"]],
            "csrf_token": token,
            "next": "/app/opportunity?sort=name",
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == "/app/opportunity?sort=name"
    after = text_of(client.get(done.headers["Location"]))
    assert "2 records changed." in after
    refused = client.post(
        "/app/opportunity/bulk",
        data={
            "action": "transition",
            "transition": "propose",
            "ids": [mine["Alpha"]],
            "csrf_token": token,
        },
    )
    assert "1 refused:" in text_of(client.get(refused.headers["Location"]))
    assert (
        client.post(
            "/app/opportunity/bulk", data={"action": "delete", "ids": [mine["Alpha"]]}
        ).status_code
        == 400
    )


def test_bulk_assign_export_and_what_a_role_may_not_do(site: Flask) -> None:
    client = client_of(site, "ann")
    token = csrf_of(text_of(client.get("/app/opportunity")))
    mine = ids_of(site, "ann", "opportunity")
    bob = actor_of(site, "bob").user_id
    export = client.post(
        "/app/opportunity/bulk",
        data={"action": "export", "ids": [mine["Beta"], mine["Alpha"]], "csrf_token": token},
    )
    assert export.status_code == 403  # reps may not export in this package
    root = client_of(site, "root")
    token_root = csrf_of(text_of(root.get("/app/opportunity")))
    csv_answer = root.post(
        "/app/opportunity/bulk",
        data={"action": "export", "ids": [mine["Beta"], mine["Alpha"]], "csrf_token": token_root},
    )
    assert csv_answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(csv_answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["id", "Opportunity name", "Stage"]
    assert sorted(r[1] for r in rows[1:]) == ["Alpha", "Beta"]
    refused = client.post(
        "/app/opportunity/bulk",
        data={"action": "assign", "owner": str(bob), "ids": [mine["Beta"]], "csrf_token": token},
    )
    assert "1 refused: Owner: Outside what you may manage (own)." in text_of(
        client.get(refused.headers["Location"])
    )  # a rep may not hand a deal to someone else
    handed = root.post(
        "/app/opportunity/bulk",
        data={
            "action": "assign",
            "owner": str(bob),
            "ids": [mine["Beta"]],
            "csrf_token": token_root,
        },
    )
    assert "1 record changed." in text_of(root.get(handed.headers["Location"]))
    assert "Beta" in ids_of(site, "bob", "opportunity")
    assert "Beta" not in ids_of(site, "ann", "opportunity")  # now bob's, out of ann's sight
    out_of_sight = client.post(
        "/app/opportunity/bulk",
        data={
            "action": "transition",
            "transition": "propose",
            "ids": [mine["Beta"]],
            "csrf_token": token,
        },
    )
    assert "1 refused:" in text_of(client.get(out_of_sight.headers["Location"]))


def test_saved_views_private_and_shared_with_a_role(site: Flask) -> None:
    ann = client_of(site, "ann")
    page = text_of(ann.get("/app/opportunity?q=alpha&sort=-amount"))
    assert 'name="p:q" value="alpha"' in page and 'name="p:sort" value="-amount"' in page
    token = csrf_of(page)
    saved = ann.post(
        "/app/opportunity/views",
        data={"name": "My alphas", "p:q": "alpha", "p:sort": "-amount", "csrf_token": token},
    )
    assert saved.status_code == 302
    location = saved.headers["Location"]
    assert "q=alpha" in location and "saved=" in location
    shown = text_of(ann.get(location))
    assert "View “My alphas” saved." in shown and 'aria-current="page"' in shown
    assert titles(shown) == ["Alpha"]
    shared = ann.post(
        "/app/opportunity/views",
        data={"name": "Big ones", "role": "rep", "p:amount__gte": "400", "csrf_token": token},
    )
    assert shared.status_code == 302
    assert (
        ann.post(
            "/app/opportunity/views", data={"name": "x", "role": "admin", "csrf_token": token}
        ).status_code
        == 403
    )
    bob_page = text_of(client_of(site, "bob").get("/app/opportunity"))
    assert "Big ones" in bob_page and "My alphas" not in bob_page  # shared with reps only
    assert "Big ones" not in text_of(client_of(site, "vic").get("/app/opportunity"))
    view_id = re.search(r"saved=(\d+)", location).group(1)  # type: ignore[union-attr]
    bob = client_of(site, "bob")
    bob_token = csrf_of(text_of(bob.get("/app/opportunity")))
    assert (
        bob.post(
            f"/app/opportunity/views/{view_id}/delete", data={"csrf_token": bob_token}
        ).status_code
        == 403
    )
    gone = ann.post(f"/app/opportunity/views/{view_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 302 and "My alphas" not in text_of(ann.get("/app/opportunity"))
    assert (
        ann.post("/app/opportunity/views", data={"name": "", "csrf_token": token}).status_code
        == 400
    )


def test_the_global_search_finds_what_i_may_read(site: Flask) -> None:
    client = client_of(site, "ann")
    page = text_of(client.get("/search?q=alpha"))
    assert "Alpha Corp" in page and ">Alpha<" in page and "Bob&#39;s alpha" not in page
    dropdown = text_of(
        client.get("/search?q=alpha", headers={"HX-Request": "true", "HX-Target": "global-results"})
    )
    assert dropdown.lstrip().startswith('<div class="dropdown-menu') and "<html" not in dropdown
    assert "Nothing found for “zzz”." in text_of(client.get("/search?q=zzz"))
    assert 'id="global-q"' in text_of(client.get("/app/account"))
