"""``/settings`` through Flask's test client, on SQLite and PostgreSQL: the profile and its
checks, the language kept on the account (and the language switch saving it), the
password change that ends the other sessions and the tokens, and the user's API tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.accounts import UserInfo
from screens_more_package import BACKENDS, module_app, text_of
from screens_package import PASSWORD, csrf_of

# each test acts as its own user, so their changes never meet
USERS = ("pia", "leo", "max", "tia", "ken")


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    yield from module_app(request, tmp_path_factory, seed)


def seed(app: Flask) -> None:
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        for username in USERS:
            runtime.accounts.create_user(conn, username, PASSWORD, ["rep"], name=username.title())


def log_in(app: Flask, username: str, password: str = PASSWORD) -> tuple[FlaskClient, int]:
    client = app.test_client()
    token = csrf_of(text_of(client.get("/login")))
    done = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return client, done.status_code


def client_of(app: Flask, username: str) -> FlaskClient:
    client, status = log_in(app, username)
    assert status == 302
    return client


def post(client: FlaskClient, path: str, **data: str) -> tuple[int, str]:
    token = csrf_of(text_of(client.get("/settings")))
    response = client.post(path, data={"csrf_token": token, **data})
    return response.status_code, unescape(text_of(response))


def error_of(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error" role="alert">([^<]*)<', page)
    return found.group(1) if found else ""


def user(app: Flask, username: str) -> UserInfo:
    """The user as the database has them now."""
    accounts = app.extensions["heddle"].accounts
    with app.extensions["heddle"].engine.connect() as conn:
        found = accounts.by_username(conn, username)
        info: UserInfo = accounts.list_users(conn, user_id=found.id)[0]
    return info


def api_token(app: Flask, username: str, password: str = PASSWORD) -> dict[str, str]:
    client = app.test_client()
    done = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert done.status_code == 201
    return {"Authorization": f"Bearer {done.json['token']}"}


def test_the_page_and_its_link_in_the_top_bar(site: Flask) -> None:
    client = client_of(site, "pia")
    page = text_of(client.get("/settings"))
    assert 'href="/settings"' in text_of(client.get("/"))
    assert 'aria-current="page"' in page
    for title in ("Profile", "Language", "Password", "API tokens"):
        assert f">{title}</h2>" in page
    assert page.count('name="csrf_token"') >= 5
    assert 'value="Pia"' in page
    assert 'id="away"' not in page  # a Model without approvals: nothing to hand over
    zh = client_of(site, "pia")
    post(zh, "/language", locale="zh", next="/settings")
    assert "设置" in text_of(zh.get("/settings"))
    post(zh, "/language", locale="en", next="/settings")


def test_the_profile_is_saved_and_a_bad_email_refused_beside_its_field(site: Flask) -> None:
    client = client_of(site, "pia")
    status, page = post(client, "/settings/profile", name="Pia Lund", email="pia@example.com")
    assert status == 302
    page = text_of(client.get("/settings"))
    assert "Your profile was saved." in page and 'value="Pia Lund"' in page
    info = user(site, "pia")
    assert (info.name, info.email) == ("Pia Lund", "pia@example.com")

    status, page = post(client, "/settings/profile", name="Pia", email="not an email")
    assert status == 422
    assert error_of(page, "profile-email") == "Enter an email address such as name@example.com."
    assert 'value="not an email"' in page and 'aria-invalid="true"' in page
    status, page = post(client, "/settings/profile", name=" ", email="")
    assert status == 422 and error_of(page, "profile-name") == "Enter your name."
    assert user(site, "pia").email == "pia@example.com"


def test_the_api_refuses_the_same_bad_email(site: Flask) -> None:
    root = api_token(site, "root")
    pia = user(site, "pia").id
    done = site.test_client().patch(
        f"/api/v1/users/{pia}", headers=root, json={"email": "not an email"}
    )
    assert done.status_code == 422 and "email" in done.json["error"]["fields"]


def test_the_language_is_kept_on_the_account(site: Flask) -> None:
    client = client_of(site, "leo")
    status, _page = post(client, "/settings/language", locale="ja")
    assert status == 302
    assert "言語を保存しました" in text_of(client.get("/settings"))
    assert user(site, "leo").locale == "ja"
    fresh = client_of(site, "leo")  # another browser: no language in its session
    assert '<html lang="ja">' in text_of(fresh.get("/settings"))
    # the language switch of the top bar saves it too
    post(fresh, "/language", locale="zh", next="/settings")
    assert user(site, "leo").locale == "zh"
    assert '<html lang="zh">' in text_of(client_of(site, "leo").get("/"))
    status, page = post(fresh, "/settings/language", locale="xx")
    assert status == 422 and error_of(page, "language-locale")
    assert user(site, "leo").locale == "zh"


def test_a_wrong_current_password_or_differing_new_ones_change_nothing(site: Flask) -> None:
    client = client_of(site, "max")
    status, page = post(
        client, "/settings/password", current_password="wrong one!",
        new_password="a new long password", confirm_password="a new long password",
    )  # fmt: skip
    assert status == 422
    assert error_of(page, "password-current_password") == "That is not your current password."
    status, page = post(
        client, "/settings/password", current_password=PASSWORD,
        new_password="a new long password", confirm_password="another long password",
    )  # fmt: skip
    assert status == 422
    assert error_of(page, "password-confirm_password") == "The two new passwords differ."
    status, page = post(
        client, "/settings/password", current_password=PASSWORD,
        new_password="short", confirm_password="short",
    )  # fmt: skip
    assert status == 422
    assert error_of(page, "password-new_password") == "A password needs at least 8 characters."
    assert log_in(site, "max")[1] == 302  # the old password still works


def test_a_new_password_ends_the_other_sessions_and_the_tokens(site: Flask) -> None:
    client, other = client_of(site, "tia"), client_of(site, "tia")
    headers = api_token(site, "tia")
    assert site.test_client().get("/api/v1/records/deal", headers=headers).status_code == 200
    status, _page = post(
        client, "/settings/password", current_password=PASSWORD,
        new_password="a brand new password", confirm_password="a brand new password",
    )  # fmt: skip
    assert status == 302
    page = text_of(client.get("/settings"))  # this session goes on
    assert "Your password was changed." in page
    assert other.get("/settings").status_code == 302  # the other one is logged out
    assert site.test_client().get("/api/v1/records/deal", headers=headers).status_code == 401
    assert log_in(site, "tia")[1] == 401
    assert log_in(site, "tia", "a brand new password")[1] == 302


def test_tokens_are_created_once_listed_and_revoked(site: Flask) -> None:
    client = client_of(site, "ken")
    status, page = post(client, "/settings/tokens", name="Excel sync", days="30")
    assert status == 201
    value = re.search(r'id="new-token" value="(hdl_[^"]+)"', page)
    assert value, "the new token is shown"
    headers = {"Authorization": f"Bearer {value.group(1)}"}
    assert site.test_client().get("/api/v1/records/deal", headers=headers).status_code == 200
    listed = text_of(client.get("/settings"))
    assert value.group(1) not in listed  # shown once
    row = re.search(r"<td>Excel sync</td>(.*?)</tr>", listed, re.S)
    assert row and "Active" in row.group(1) and "Never" not in row.group(1)  # used just now
    action = re.search(r'action="(/settings/tokens/\d+/revoke)"', row.group(1))
    assert action

    status, page = post(client, "/settings/tokens", name="", days="1000")
    assert status == 422
    assert error_of(page, "tokens-name") and error_of(page, "tokens-days")

    other = client_of(site, "pia")  # someone else's token is not theirs to revoke
    assert post(other, action.group(1))[0] == 404
    status, _page = post(client, action.group(1))
    assert status == 302
    listed = unescape(text_of(client.get("/settings")))
    assert "The token “Excel sync” was revoked." in listed and "Revoked" in listed
    assert site.test_client().get("/api/v1/records/deal", headers=headers).status_code == 401


def test_every_form_needs_the_csrf_token(site: Flask) -> None:
    client = client_of(site, "pia")
    for path in ("/settings/profile", "/settings/language", "/settings/password",
                 "/settings/tokens", "/settings/tokens/1/revoke"):  # fmt: skip
        assert client.post(path, data={"name": "x", "locale": "zh"}).status_code == 400
    assert user(site, "pia").locale == "en"


def test_settings_need_a_login(site: Flask) -> None:
    response = site.test_client().get("/settings")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
