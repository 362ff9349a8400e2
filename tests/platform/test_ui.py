"""The screens through Flask's test client: every page, the permissions of the API, the
error pages (404, 403, 400 for CSRF, 422 for validation, 409 for a stale version), the
languages and the security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from screens_package import app_fixture, csrf_of, log_in
from sqlalchemy.engine import Engine

from engine import Actor

HTML = {"Accept": "text/html"}


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    yield from app_fixture(db_url, db_engine, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def actor_of(app: Flask, username: str) -> Actor:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        user = runtime.accounts.by_username(conn, username)
    assert user is not None
    return user.actor()


def create(app: Flask, username: str, entity: str, **values: Any) -> dict[str, Any]:
    record: dict[str, Any] = app.extensions["heddle"].records.create(
        actor_of(app, username), entity, values
    )
    return record


def text_of(response: Any) -> str:
    return str(response.get_data(as_text=True))


def as_user(client: FlaskClient, username: str) -> FlaskClient:
    log_in(client, username)
    return client


# --- logging in ---------------------------------------------------------------------------


def test_a_visitor_is_sent_to_the_login_page_and_back(client: FlaskClient) -> None:
    response = client.get("/app/account?grade=A")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/app/account?grade%3DA"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert 'name="next" value="/app/account?grade=A"' in text_of(page)
    token = csrf_of(text_of(page))
    done = client.post(
        "/login",
        data={
            "username": "ann",
            "password": "correct horse battery",
            "csrf_token": token,
            "next": "/app/account?grade=A",
        },
    )
    assert done.status_code == 302
    assert done.headers["Location"] == "/app/account?grade=A"


def test_home_is_the_login_page_for_a_visitor(client: FlaskClient) -> None:
    assert client.get("/").headers["Location"].startswith("/login")


def test_a_wrong_password_says_so_on_the_login_page(client: FlaskClient) -> None:
    token = csrf_of(text_of(client.get("/login")))
    response = client.post(
        "/login", data={"username": "ann", "password": "nope", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "Wrong username or password." in text_of(response)
    assert client.get("/app/account").status_code == 302  # still a visitor


def test_logging_in_needs_the_csrf_token(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "ann", "password": "correct horse battery"})
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert "The form expired or was sent from another site" in text_of(response)


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example", "/\\evil", "javascript:x"]
)
def test_login_never_redirects_to_another_site(client: FlaskClient, target: str) -> None:
    token = csrf_of(text_of(client.get("/login")))
    response = client.post(
        "/login",
        data={
            "username": "ann",
            "password": "correct horse battery",
            "csrf_token": token,
            "next": target,
        },
    )
    assert response.headers["Location"] == "/"


def test_logging_out_is_a_post_with_the_token(client: FlaskClient) -> None:
    as_user(client, "ann")
    page = client.get("/logout")
    assert page.status_code == 200 and "Log out?" in text_of(page)
    assert client.post("/logout").status_code == 400  # no token
    response = client.post("/logout", data={"csrf_token": csrf_of(text_of(page))})
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


# --- home and navigation ------------------------------------------------------------------------


def test_home_greets_the_user_and_lists_what_they_may_read(client: FlaskClient) -> None:
    page = text_of(as_user(client, "ann").get("/"))
    assert "Welcome, ann" in page
    assert 'href="/app/account"' in page and 'href="/app/deal"' in page


# --- lists --------------------------------------------------------------------------------------


def test_a_list_shows_the_default_views_columns_and_only_my_records(
    app: Flask, client: FlaskClient
) -> None:
    create(app, "ann", "account", name="Acme", grade="A", revenue="1250.5")
    create(app, "bob", "account", name="Bobco", grade="B")
    page = text_of(as_user(client, "ann").get("/app/account"))
    for header in ("Account name", "Grade", "Revenue", "Owner"):
        assert f">{header}</a>" in page
    assert "Acme" in page and "Bobco" not in page
    assert "CN¥1,250.50" in page
    assert "1 record" in page
    assert "All accounts" in page and "Key accounts" in page  # the view switch


def test_search_filters_sort_and_views_live_in_the_query_string(
    app: Flask, client: FlaskClient
) -> None:
    for name, grade, revenue in [("Acme", "A", "10"), ("Apex", "B", "30"), ("Zeta", "A", "20")]:
        create(app, "root", "account", name=name, grade=grade, revenue=revenue)
    as_user(client, "root")

    def names(url: str) -> list[str]:
        page = text_of(client.get(url))
        return re.findall(r'class="fw-medium" href="/app/account/\d+">([^<]+)</a>', page)

    assert names("/app/account") == ["Acme", "Apex", "Zeta"]  # the view's sort: name
    assert names("/app/account?sort=-revenue") == ["Apex", "Zeta", "Acme"]
    assert names("/app/account?q=ap") == ["Apex"]
    assert names("/app/account?grade=A") == ["Acme", "Zeta"]
    assert names("/app/account?grade=&q=") == ["Acme", "Apex", "Zeta"]  # an empty filter is none
    assert names("/app/account?revenue__gte=20") == ["Apex", "Zeta"]
    assert names("/app/account?view=key") == ["Zeta", "Acme"]  # newest first
    page = text_of(client.get("/app/account?revenue__gte=20"))
    assert 'name="revenue__gte" value="20"' in page  # a number's from–to inputs show it
    page = text_of(client.get("/app/account?cost__gte=20"))
    assert "Cost (gte): 20" in page  # a filter without a control shows as a chip
    assert 'aria-sort="ascending"' in text_of(client.get("/app/account"))


def test_a_list_pages_with_a_cursor(app: Flask, client: FlaskClient) -> None:
    for n in range(5):
        create(app, "root", "account", name=f"Co {n}")
    as_user(client, "root")
    first = text_of(client.get("/app/account?limit=2"))
    assert "5 records" in first and "Co 0" in first and "Co 2" not in first
    next_url = re.search(r'rel="next" href="([^"]+)"', first)
    assert next_url
    second = text_of(client.get(next_url.group(1).replace("&amp;", "&")))
    assert "Co 2" in second and "Co 0" not in second and "First page" in second


def test_htmx_gets_only_the_results(app: Flask, client: FlaskClient) -> None:
    create(app, "root", "account", name="Acme")
    response = as_user(client, "root").get(
        "/app/account?q=acm", headers={"HX-Request": "true", "HX-Target": "list-results"}
    )
    page = text_of(response)
    assert page.lstrip().startswith('<div id="list-results"') and "Acme" in page
    assert "<html" not in page


def test_a_bad_filter_is_a_400_page_naming_it(client: FlaskClient) -> None:
    response = as_user(client, "root").get("/app/account?revenue__gte=lots")
    assert response.status_code == 400
    assert "text/html" in response.content_type and "revenue__gte" in text_of(response)


@pytest.mark.parametrize(
    "url",
    [
        "/app/nothing",
        "/app/nothing/1",
        "/app/account/abc",
        "/app/account/99999999999999999999",
        "/app/account/12345",
    ],
)
def test_what_does_not_exist_is_a_404_page(client: FlaskClient, url: str) -> None:
    response = as_user(client, "ann").get(url)
    assert response.status_code == 404
    assert "Page not found" in text_of(response)
    assert "Welcome" not in text_of(response) and 'href="/app/account"' in text_of(response)


def test_other_paths_answer_browsers_with_a_page_and_the_api_with_json(client: FlaskClient) -> None:
    assert "Page not found" in text_of(client.get("/nowhere", headers=HTML))
    assert client.get("/nowhere").json["error"]["code"] == "not_found"
    assert client.get("/api/v1/nowhere", headers=HTML).json["error"]["code"] == "not_found"


# --- record pages ------------------------------------------------------------------------------


def test_a_record_page_follows_the_form_layout(app: Flask, client: FlaskClient) -> None:
    acme = create(
        app,
        "ann",
        "account",
        name="Acme",
        grade="A",
        revenue="99",
        notes="Line 1\nLine 2",
        website="https://acme.example",
    )
    create(app, "ann", "deal", title="ERP", account=acme["id"], amount="5000")
    page = text_of(as_user(client, "ann").get(f"/app/account/{acme['id']}"))
    assert '<h1 class="page-title">Acme</h1>' in page
    assert "Basics" in page and ">More</a>" in page and "Remarks" in page  # section, tab, section
    assert 'badge bg-red-lt">Key</span>' in page
    assert '<a href="https://acme.example" rel="noopener noreferrer"' in page
    assert "Deals" in page and "ERP" in page and "CN¥5,000.00" in page  # the related list
    assert "Cost" not in page  # hidden from reps
    assert f'href="/app/account/{acme["id"]}/edit"' in page
    assert f'href="/app/deal/new?account={acme["id"]}"' in page


def test_a_rep_cannot_open_another_reps_record(app: Flask, client: FlaskClient) -> None:
    bobs = create(app, "bob", "account", name="Bobco")
    as_user(client, "ann")
    for url in (f"/app/account/{bobs['id']}", f"/app/account/{bobs['id']}/edit"):
        response = client.get(url)
        assert response.status_code == 404 and "Bobco" not in text_of(response)


def test_a_viewer_reads_but_may_not_edit_or_create(app: Flask, client: FlaskClient) -> None:
    acme = create(app, "ann", "account", name="Acme")
    as_user(client, "vic")
    page = text_of(client.get(f"/app/account/{acme['id']}"))
    assert "Acme" in page and "/edit" not in page
    assert "New Account" not in text_of(client.get("/app/account"))
    for url in (f"/app/account/{acme['id']}/edit", "/app/account/new"):
        response = client.get(url)
        assert response.status_code == 403 and "You may not do that" in text_of(response)


def test_script_in_a_text_field_shows_as_text(app: Flask, client: FlaskClient) -> None:
    evil = create(app, "ann", "account", name="<script>alert(1)</script>", notes="<b>bold</b>")
    as_user(client, "ann")
    for url in ("/app/account", f"/app/account/{evil['id']}", f"/app/account/{evil['id']}/edit"):
        page = text_of(client.get(url))
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
        assert 'href="javascript:' not in page


# --- forms --------------------------------------------------------------------------------------


def test_creating_with_an_error_then_without(client: FlaskClient) -> None:
    form = text_of(as_user(client, "ann").get("/app/account/new"))
    assert 'for="f-name"' in form and 'name="cost"' not in form  # hidden fields are not on it
    assert 'name="active" value="true" checked' in form  # the definition's default
    token = csrf_of(form)
    refused = client.post(
        "/app/account/new", data={"csrf_token": token, "name": "", "revenue": "-5"}
    )
    assert refused.status_code == 422
    page = text_of(refused)
    assert re.search(r'id="f-name-error"[^>]*>Missing data for required field.<', page)
    assert 'id="f-revenue-error"' in page and 'value="-5"' in page  # what was typed stays
    done = client.post(
        "/app/account/new",
        data={
            "csrf_token": token,
            "name": "Acme",
            "grade": "A",
            "revenue": "12.5",
            "since": "2026-01-31",
        },
    )
    assert done.status_code == 302
    shown = text_of(client.get(done.headers["Location"]))
    assert "Acme created." in shown and "CN¥12.50" in shown and "Jan 31, 2026" in shown


def test_a_new_record_from_a_related_list_is_prefilled(app: Flask, client: FlaskClient) -> None:
    acme = create(app, "ann", "account", name="Acme")
    form = text_of(as_user(client, "ann").get(f"/app/deal/new?account={acme['id']}"))
    assert f'<option value="{acme["id"]}" selected>Acme</option>' in form
    done = client.post(
        "/app/deal/new",
        data={"csrf_token": csrf_of(form), "title": "ERP", "account": str(acme["id"])},
    )
    assert done.status_code == 302
    assert "ERP" in text_of(client.get(f"/app/account/{acme['id']}"))


def test_editing_saves_and_a_stale_version_keeps_what_was_typed(
    app: Flask, client: FlaskClient
) -> None:
    acme = create(app, "ann", "account", name="Acme", active=True)
    form = text_of(as_user(client, "ann").get(f"/app/account/{acme['id']}/edit"))
    token = csrf_of(form)
    assert 'name="version" value="1"' in form
    saved = client.post(
        f"/app/account/{acme['id']}/edit",
        data={"csrf_token": token, "version": "1", "name": "Acme Ltd"},
    )
    assert saved.status_code == 302
    page = text_of(client.get(saved.headers["Location"]))
    assert "Saved." in page and "Acme Ltd" in page
    assert ">No</span>" in page  # the unchecked box cleared "active"
    stale = client.post(
        f"/app/account/{acme['id']}/edit",
        data={"csrf_token": token, "version": "1", "name": "Mine"},
    )
    assert stale.status_code == 409
    assert "Someone else changed this record" in text_of(stale) and 'value="Mine"' in text_of(stale)
    assert 'name="version" value="2"' in text_of(stale)  # saving again keeps what was typed
    again = client.post(
        f"/app/account/{acme['id']}/edit",
        data={"csrf_token": token, "version": "2", "name": "Mine"},
    )
    assert again.status_code == 302 and "Mine" in text_of(client.get(again.headers["Location"]))


def test_form_posts_need_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    acme = create(app, "ann", "account", name="Acme")
    as_user(client, "ann")
    response = client.post(f"/app/account/{acme['id']}/edit", data={"version": "1", "name": "X"})
    assert response.status_code == 400 and "The form expired" in text_of(response)
    assert client.post("/app/account/new", data={"name": "X"}).status_code == 400
    assert client.post("/language", data={"locale": "zh"}).status_code == 400


def test_a_reference_select_searches(app: Flask, client: FlaskClient) -> None:
    create(app, "ann", "account", name="Acme")
    create(app, "ann", "account", name="Zeta")
    page = text_of(as_user(client, "ann").get("/app/account/options?_q=zet"))
    assert ">Zeta</option>" in page and "Acme" not in page


# --- languages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "texts"),
    [
        ("zh", ["首页", "客户名称", "全部客户", "新建客户", "退出", "1 条记录"]),
        ("ja", ["ホーム", "顧客名", "すべての顧客", "顧客を新規作成", "ログアウト", "1 件"]),
    ],
)
def test_the_language_switch(
    app: Flask, client: FlaskClient, locale: str, texts: list[str]
) -> None:
    create(app, "ann", "account", name="Acme", revenue="1234.5")
    home = text_of(as_user(client, "ann").get("/"))
    switched = client.post(
        "/language", data={"locale": locale, "next": "/app/account", "csrf_token": csrf_of(home)}
    )
    assert switched.headers["Location"] == "/app/account"
    page = text_of(client.get("/app/account"))
    assert f'<html lang="{locale}">' in page
    for text in texts:
        assert text in page, text


def test_the_browsers_language_is_the_default(client: FlaskClient) -> None:
    page = text_of(client.get("/login", headers={"Accept-Language": "ja,en;q=0.5"}))
    assert "アカウントにログイン" in page


def test_engine_messages_are_translated_at_the_field(client: FlaskClient) -> None:
    home = text_of(as_user(client, "ann").get("/"))
    client.post("/language", data={"locale": "zh", "csrf_token": csrf_of(home)})
    refused = client.post("/app/account/new", data={"csrf_token": csrf_of(home), "name": ""})
    assert "此字段为必填项。" in text_of(refused)


# --- security headers -------------------------------------------------------------------------------


def test_pages_forbid_inline_scripts_and_styles(app: Flask, client: FlaskClient) -> None:
    acme = create(app, "ann", "account", name="Acme")
    pages = [client.get("/login")]
    as_user(client, "ann")
    pages += [
        client.get(u)
        for u in (
            "/",
            "/app/account",
            f"/app/account/{acme['id']}",
            f"/app/account/{acme['id']}/edit",
            "/app/account/new",
            "/app/nothing",
        )
    ]
    for response in pages:
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
        assert "script-src" not in policy and "style-src" not in policy  # 'self' only
        html = text_of(response)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
        assert not re.search(r"\sstyle=|<style", html), "an inline style"
        assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
