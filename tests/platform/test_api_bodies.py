"""Request bodies that are not a JSON object get a 4xx that says what to send, never a 500
(issue 9: a 5,000-level body was a ``RecursionError``; issue 15: a token name with NUL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from heddle.jsonio import MAX_DEPTH

Headers = Callable[[str], dict[str, str]]
ErrorOf = Callable[[Any], dict[str, Any]]

JSON = {"Content-Type": "application/json"}


def _nested(levels: int) -> str:
    return '{"name": "x", "lines": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


@pytest.mark.parametrize("levels", [5_000, MAX_DEPTH + 1])
def test_deeply_nested_bodies_are_400(
    client: FlaskClient, token: Headers, error_of: ErrorOf, levels: int
) -> None:
    response = client.post(
        "/api/v1/records/account", headers=token("root") | JSON, data=_nested(levels)
    )
    assert response.status_code == 400, response.json
    error = error_of(response)
    assert error["code"] == "bad_request"
    assert f"more than {MAX_DEPTH} levels deep" in error["message"]


def test_nesting_up_to_the_limit_is_read(client: FlaskClient, token: Headers) -> None:
    # MAX_DEPTH levels parse; the record service then refuses the odd value with a 422
    response = client.post(
        "/api/v1/records/account", headers=token("root") | JSON, data=_nested(MAX_DEPTH)
    )
    assert response.status_code == 422, response.json


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_bodies_not_sent_as_json_are_415(
    client: FlaskClient, token: Headers, error_of: ErrorOf, content_type: str | None
) -> None:
    headers = token("root") | ({"Content-Type": content_type} if content_type else {})
    response = client.post("/api/v1/records/account", headers=headers, data='{"name": "x"}')
    assert response.status_code == 415, response.json
    error = error_of(response)
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("null", "the body must be a JSON object, not null"),
        ("[1]", "the body must be a JSON object, not an array"),
        ('"x"', "the body must be a JSON object, not a string"),
        ("1.5", "the body must be a JSON object, not a number"),
        ("{", "the body is not valid JSON"),
        ("", "the body is not valid JSON"),
        ("NaN", "the body must be a JSON object, not a number"),
    ],
)
def test_bodies_that_are_not_objects_are_400(
    client: FlaskClient, token: Headers, error_of: ErrorOf, body: str, message: str
) -> None:
    response = client.post("/api/v1/records/account", headers=token("root") | JSON, data=body)
    assert response.status_code == 400, response.json
    assert error_of(response)["message"] == message


def test_invalid_utf8_is_400(client: FlaskClient, token: Headers, error_of: ErrorOf) -> None:
    response = client.post(
        "/api/v1/records/account", headers=token("root") | JSON, data=b'{"name": "\xff"}'
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "the body is not valid JSON"


def test_the_login_body_is_checked_alike(client: FlaskClient, error_of: ErrorOf) -> None:
    response = client.post("/api/v1/auth/token", data="null", headers=JSON)
    assert response.status_code == 400
    assert error_of(response)["message"] == "the body must be a JSON object, not null"
    response = client.post("/api/v1/auth/token", data="username=root", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a\x00b", "a token's name cannot contain control characters"),
        ("n" * 201, "a token's name has at most 200 characters"),
        (7, "Not a valid string."),
    ],
)
def test_bad_token_names_are_field_errors(
    client: FlaskClient, error_of: ErrorOf, password: str, name: Any, message: str
) -> None:
    body = {"username": "ann", "password": password, "name": name}
    response = client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 400, response.json
    assert error_of(response)["fields"] == {"name": [message]}


def test_a_token_name_of_200_characters_is_kept(client: FlaskClient, password: str) -> None:
    body = {"username": "ann", "password": password, "name": "n" * 200}
    assert client.post("/api/v1/auth/token", json=body).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        '{"username": "ann", "password": "\\ud800"}',
        '{"username": "\\udfff", "password": "whatever it is"}',
        '{"username": "ann", "password": "correct horse battery", "name": "\\ud800"}',
    ],
)
def test_unpaired_surrogates_in_a_login_are_4xx(client: FlaskClient, body: str) -> None:
    response = client.post("/api/v1/auth/token", data=body, headers=JSON)
    assert response.status_code in (400, 401), response.json
