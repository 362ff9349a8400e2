"""The REST API: records end to end, authentication, and bad requests answered with a 4xx
in the one error shape — never a 500."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

Headers = Callable[[str], dict[str, str]]
ErrorOf = Callable[[Any], dict[str, Any]]


def test_records_end_to_end(client: FlaskClient, token: Headers) -> None:
    h = token("root")
    created = client.post(
        "/api/v1/records/account", headers=h,
        json={"name": "Acme 株式会社", "grade": "A", "cost": "1200.50",
              "lines": [{"item": "Licence"}, {"item": "Support"}]},
    )  # fmt: skip
    assert created.status_code == 201
    record = created.json["data"]
    assert record["cost"] == "1200.50"  # exact decimal as a string
    assert dt.datetime.fromisoformat(record["created_at"]).tzinfo is not None
    assert [line["item"] for line in record["lines"]] == ["Licence", "Support"]
    path = f"/api/v1/records/account/{record['id']}"
    got = client.get(path, headers=h).json["data"]
    assert got["name"] == "Acme 株式会社" and got["version"] == 1
    changed = client.patch(path, headers=h, json={"grade": "C", "version": 1})
    assert changed.status_code == 200 and changed.json["data"]["version"] == 2
    listed = client.get("/api/v1/records/account?grade=C&sort=-name", headers=h).json
    assert [row["id"] for row in listed["data"]] == [record["id"]]
    assert listed["count"] == 1 and listed["count_estimated"] is False
    assert listed["next_cursor"] is None
    history = client.get(f"{path}/history", headers=h).json["data"]
    assert [entry["action"] for entry in history] == ["create", "update"]
    assert history[1]["changes"]["grade"] == ["A", "C"]
    assert client.delete(f"{path}?version=2", headers=h).status_code == 204
    assert client.get(path, headers=h).status_code == 404


def test_meta_endpoints(client: FlaskClient, token: Headers) -> None:
    listed = client.get("/api/v1/meta/entities", headers=token("ann")).json["data"]
    assert {e["name"] for e in listed} == {"account", "account_line", "note"}
    account = next(e for e in listed if e["name"] == "account")
    assert account["label"] == {"en": "Account", "zh": "客户", "ja": "顧客"}
    assert account["actions"] == ["read", "create", "update", "delete"]
    meta = client.get("/api/v1/meta/entities/account", headers=token("root")).json["data"]
    grade = next(f for f in meta["fields"] if f["name"] == "grade")
    assert grade["type"] == "choice" and [o["value"] for o in grade["options"]] == ["A", "B", "C"]
    assert client.get("/api/v1/meta/entities/nothing", headers=token("root")).status_code == 404


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "log in first"),
        ("Bearer", "send the token as: Authorization: Bearer <token>"),
        ("Basic dXNlcjpwdw==", "send the token as"),
        ("Bearer hdl_not_a_real_token", "unknown, expired or revoked"),
        ("Bearer " + "x" * 500, "unknown, expired or revoked"),
    ],
)
def test_bad_credentials_are_401(
    client: FlaskClient, error_of: ErrorOf, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/records/account", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = error_of(response)
    assert error["code"] == "unauthorized" and message in error["message"]


def test_wrong_passwords_and_missing_fields(client: FlaskClient, error_of: ErrorOf) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "ann", "password": "nope"})
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    response = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "nope"})
    assert response.status_code == 401
    response = client.post("/api/v1/auth/token", json={"username": "ann"})
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"password": ["Missing data for required field."]}


def test_expired_and_revoked_tokens(
    app: Flask, client: FlaskClient, token: Headers, error_of: ErrorOf, password: str
) -> None:
    headers = token("ann")
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200
    runtime = app.extensions["heddle"]
    tokens = runtime.accounts.tokens
    with runtime.engine.begin() as conn:
        conn.execute(
            tokens.update().values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert client.get("/api/v1/records/account", headers=headers).status_code == 401
    fresh = client.post("/api/v1/auth/token", json={"username": "ann", "password": password}).json
    headers = {"Authorization": f"Bearer {fresh['token']}"}
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    response = client.get("/api/v1/records/account", headers=headers)
    assert response.status_code == 401 and "revoked" in error_of(response)["message"]
    with runtime.engine.connect() as conn:
        stored = conn.scalars(sa.select(tokens.c.token_hash)).all()
    assert fresh["token"] not in stored  # only the digest is kept


def test_deactivated_users_lose_access(
    app: Flask, client: FlaskClient, token: Headers, password: str
) -> None:
    headers = token("bob")
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        users = runtime.accounts.users
        conn.execute(users.update().where(users.c.username == "bob").values(active=False))
    assert client.get("/api/v1/records/account", headers=headers).status_code == 401
    response = client.post("/api/v1/auth/token", json={"username": "bob", "password": password})
    assert response.status_code == 401


def test_sessions_need_the_csrf_token_to_write(
    client: FlaskClient, error_of: ErrorOf, password: str
) -> None:
    login = client.post("/api/v1/auth/session", json={"username": "ann", "password": password})
    assert login.status_code == 200
    csrf = login.json["data"]["csrf_token"]
    assert client.get("/api/v1/records/account").status_code == 200  # the cookie is enough to read
    response = client.post("/api/v1/records/account", json={"name": "No token"})
    assert response.status_code == 400 and error_of(response)["code"] == "csrf_failed"
    response = client.post(
        "/api/v1/records/account", json={"name": "With token"}, headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 201
    assert client.delete("/api/v1/auth/session", headers={"X-CSRFToken": csrf}).status_code == 204
    assert client.get("/api/v1/records/account").status_code == 401


def test_token_requests_carry_no_session(
    app: Flask, client: FlaskClient, token: Headers, password: str
) -> None:
    response = client.get("/api/v1/records/account", headers=token("ann"))
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    # nothing read the session: the answer does not vary with a cookie (heddle.app)
    created = client.post("/api/v1/records/account", headers=token("ann"), json={"name": "T"})
    assert created.status_code == 201
    assert "Vary" not in response.headers and "Vary" not in created.headers
    # a forged or stale session cookie is no session at all
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "not-signed")
    assert client.get("/api/v1/records/account").status_code == 401
    login = client.post("/api/v1/auth/session", json={"username": "ann", "password": password})
    assert login.status_code == 200 and client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    listed = client.get("/api/v1/records/account")
    assert listed.status_code == 200 and "Cookie" in listed.headers["Vary"]


def _make(client: FlaskClient, h: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/records/account", headers=h, json={"name": "Base"})
    assert response.status_code == 201
    return dict(response.json["data"])


def test_stale_and_missing_versions(client: FlaskClient, token: Headers, error_of: ErrorOf) -> None:
    h = token("root")
    record = _make(client, h)
    path = f"/api/v1/records/account/{record['id']}"
    response = client.patch(path, headers=h, json={"name": "x", "version": 7})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "stale_version" and error["details"] == {"current_version": 1}
    response = client.patch(path, headers=h, json={"name": "x"})
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"version": ["Missing data for required field."]}
    for bad in ("abc", "", "1.5"):
        response = client.delete(f"{path}?version={bad}", headers=h)
        assert response.status_code == 400, bad
    assert client.delete(f"{path}?version=99", headers=h).status_code == 409
    assert client.get(path, headers=h).json["data"]["version"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=red", "colour"),
        ("name__like=x", "name"),  # reported under the parameter: name__like
        ("grade=Z", "grade"),
        ("rating__gte=many", "rating"),
        ("sort=-colour", "sort"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_bad_queries_are_400_with_the_field(
    client: FlaskClient, token: Headers, error_of: ErrorOf, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/records/account?{query}", headers=token("root"))
    assert response.status_code == 400, response.json
    error = error_of(response)
    assert error["code"] == "bad_request", error
    assert any(key.split("__")[0] == field for key in error.get("fields", {})), error


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('"text"', "application/json", 400),
        ("null", "application/json", 400),
        ("name=x", "application/x-www-form-urlencoded", 415),
        ("", "application/json", 400),
    ],
)
def test_malformed_bodies(
    client: FlaskClient,
    token: Headers,
    error_of: ErrorOf,
    body: str,
    content_type: str,
    status: int,
) -> None:
    response = client.post(
        "/api/v1/records/account", headers=token("root"), data=body, content_type=content_type
    )
    assert response.status_code == status
    code = "bad_request" if status == 400 else "unsupported_media_type"
    assert error_of(response)["code"] == code


def test_invalid_records_are_422_with_field_messages(
    client: FlaskClient, token: Headers, error_of: ErrorOf
) -> None:
    response = client.post(
        "/api/v1/records/account", headers=token("root"),
        json={"grade": "Z", "rating": 9, "cost": "abc", "colour": "red", "id": 5, "lines": "x"},
    )  # fmt: skip
    assert response.status_code == 422
    assert error_of(response)["fields"] == {
        "name": ["Missing data for required field."],
        "grade": ["Must be one of: A, B, C."],
        "rating": ["Must be greater than or equal to 1 and less than or equal to 5."],
        "cost": ["Not a valid number: write it like 1250.50."],
        "colour": ["Unknown field."],
        "id": ["Set by the system."],
        "lines": ["Must be a list of objects."],
    }


def test_oversized_bodies_are_413(
    app: Flask, client: FlaskClient, token: Headers, error_of: ErrorOf
) -> None:
    big = json.dumps({"name": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)})
    response = client.post(
        "/api/v1/records/account", headers=token("root"), data=big, content_type="application/json"
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_entity_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/records/nothing", 404),
        ("get", "/api/v1/records/account/abc", 404),
        ("get", "/api/v1/records/account/999999", 404),
        ("put", "/api/v1/records/account/1", 405),
        ("get", "/api/v1/no/such/route", 404),
        ("delete", "/api/v1/records/account/999999?version=1", 404),
    ],
)
def test_unknown_things_are_4xx_json(
    client: FlaskClient, token: Headers, error_of: ErrorOf, method: str, path: str, status: int
) -> None:
    response = getattr(client, method)(path, headers=token("root"))
    assert response.status_code == status
    error_of(response)


def test_deleting_what_others_refer_to_is_a_conflict(
    app: Flask, client: FlaskClient, token: Headers, error_of: ErrorOf
) -> None:
    # note.account cascades, so add a restricting reference through a second overlay-free check:
    h = token("root")
    record = _make(client, h)
    note = client.post(
        "/api/v1/records/note", headers=h, json={"text": "t", "account": record["id"]}
    )
    assert note.status_code == 201
    assert (
        client.delete(f"/api/v1/records/account/{record['id']}?version=1", headers=h).status_code
        == 204
    )
    assert (
        client.get(f"/api/v1/records/note/{note.json['data']['id']}", headers=h).status_code == 404
    )


def test_login_is_rate_limited(
    app: Flask, client: FlaskClient, error_of: ErrorOf, password: str
) -> None:
    app.config["LOGIN_LIMIT"] = "3 per minute"
    for _ in range(3):
        client.post("/api/v1/auth/token", json={"username": "ann", "password": "wrong"})
    response = client.post("/api/v1/auth/token", json={"username": "ann", "password": password})
    assert response.status_code == 429
    assert error_of(response)["code"] == "too_many_requests"


def test_failed_logins_are_logged(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    logger = logging.getLogger("heddle")
    logger.propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="heddle.api"):
            client.post("/api/v1/auth/token", json={"username": "ann", "password": "wrong"})
    finally:
        logger.propagate = False
    assert any("failed login for 'ann'" in r.getMessage() for r in caplog.records)


def test_health_and_readiness(app: Flask, client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 503  # tables exist, but no migration was recorded
    assert response.json["checks"]["model"].startswith("not migrated")


def test_checked_tokens_are_trusted_for_a_few_seconds(
    app: Flask, client: FlaskClient, password: str
) -> None:
    """The cache saves a query per request; a revocation elsewhere lands within its time."""
    runtime = app.extensions["heddle"]
    runtime.accounts.cache.seconds = 60
    fresh = client.post("/api/v1/auth/token", json={"username": "ann", "password": password}).json
    headers = {"Authorization": f"Bearer {fresh['token']}"}
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200
    tokens = runtime.accounts.tokens
    with runtime.engine.begin() as conn:  # another process revokes it
        conn.execute(tokens.update().values(revoked_at=dt.datetime.now(dt.UTC)))
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200
    runtime.accounts.cache.clear()  # … and once the cached entry is gone:
    assert client.get("/api/v1/records/account", headers=headers).status_code == 401


def test_ready_once_migrated(app: Flask, client: FlaskClient) -> None:
    from engine import migrate

    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok", "model": "ok"}}


def test_readiness_checks_redis_when_configured(
    app: Flask, client: FlaskClient, redis_url: str
) -> None:
    from engine import migrate

    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    runtime.config["REDIS_URL"] = redis_url
    assert client.get("/readyz").json["checks"]["redis"] == "ok"
    runtime.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["redis"].startswith(
        "unreachable"
    )


def test_json_log_lines() -> None:
    import logging

    from heddle.logs import JsonLines

    record = logging.LogRecord(
        "heddle.api", logging.WARNING, __file__, 1, "failed login for %r", ("ann",), None
    )
    record.remote_addr = "10.0.0.7"
    line = json.loads(JsonLines().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "heddle.api"
    assert line["message"] == "failed login for 'ann'" and line["remote_addr"] == "10.0.0.7"
    assert dt.datetime.fromisoformat(line["time"]).tzinfo is not None
