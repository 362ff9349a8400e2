"""Values at and beyond the edges of their columns are refused with a 4xx, never a 500
(regressions of what the schemathesis run found)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

Headers = Callable[[str], dict[str, str]]
ErrorOf = Callable[[Any], dict[str, Any]]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "rating": 2**40}, "rating", "Too large: at most 2147483647."),
        ({"name": "x", "owner_id": 2**70}, "owner_id", "Too large: at most 9223372036854775807."),
        (
            {"name": "x", "cost": "123456789012345678901"},
            "cost",
            "Too large: at most 16 digits before the point.",
        ),
        ({"name": "x", "cost": 1e30}, "cost", "Too large: at most 16 digits before the point."),
        ({"name": "a\u0000b"}, "name", "Must not contain NUL characters."),
    ],
)
def test_values_beyond_their_columns_are_422(
    client: FlaskClient,
    token: Headers,
    error_of: ErrorOf,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = client.post("/api/v1/records/account", headers=token("root"), json=body)
    assert response.status_code == 422, response.json
    assert error_of(response)["fields"][field] == [message]


@pytest.mark.parametrize(
    "query",
    [
        "rating=1099511627776",
        "version__gt=4294967296",
        "id=99999999999999999999",
        "created_at__gt=9999-12-31",
        "created_at=0001-01-01T00:00:00%2B14:00",
        "created_at__lte=9999-12-31T23:59:59-14:00",
        "name=a%00b",
    ],
)
def test_filters_beyond_their_columns_are_400(
    client: FlaskClient, token: Headers, error_of: ErrorOf, query: str
) -> None:
    response = client.get(f"/api/v1/records/account?{query}", headers=token("root"))
    assert response.status_code == 400, response.json
    assert error_of(response)["code"] == "bad_request"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/records/account/{id}"),
        ("GET", "/records/account/{id}/history"),
        ("GET", "/reports/saved/{id}"),
        ("GET", "/reports/saved/{id}/run"),
        ("GET", "/reports/saved/{id}/csv"),
        ("DELETE", "/reports/saved/{id}"),
        ("GET", "/approvals/{id}"),
        ("GET", "/imports/{id}"),
        ("GET", "/exports/{id}"),
        ("GET", "/import-templates/{id}"),
        ("GET", "/users/{id}"),
        ("POST", "/notifications/{id}/read"),
    ],
)
def test_ids_beyond_64_bits_name_nothing(
    client: FlaskClient, token: Headers, error_of: ErrorOf, method: str, path: str
) -> None:
    """Every blueprint of the API checks its ids (a saved report's was a 500 once)."""
    url = "/api/v1" + path.format(id=866844950630381706604038848512)
    response = client.open(url, method=method, headers=token("root"))
    assert response.status_code == 404, response.json
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("version", [1.5, "1", True, -1, 2**40, "x"])
def test_versions_are_positive_whole_numbers(
    client: FlaskClient, token: Headers, error_of: ErrorOf, version: Any
) -> None:
    created = client.post("/api/v1/records/account", headers=token("root"), json={"name": "V"})
    path = f"/api/v1/records/account/{created.json['data']['id']}"
    response = client.patch(path, headers=token("root"), json={"name": "W", "version": version})
    if version == "1":  # a numeric string is read as the number
        assert response.status_code == 200
    else:
        assert response.status_code == 400, version
        assert error_of(response)["fields"] == {"version": ["Not a valid integer."]}


def test_decimals_are_never_written_in_scientific_notation(app: Flask) -> None:
    with app.app_context():
        text = app.json.dumps({"a": Decimal("0E-8"), "b": Decimal("1E+3"), "c": Decimal("-12.50")})
    assert json.loads(text) == {"a": "0.00000000", "b": "1000", "c": "-12.50"}


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/auth/session"])
@pytest.mark.parametrize("username", ["\x00root", "ro\x00ot", "root\x00"])
def test_a_nul_in_a_username_is_no_such_user(
    client: FlaskClient, error_of: ErrorOf, password: str, path: str, username: str
) -> None:
    answer = client.post(path, json={"username": username, "password": password})
    assert answer.status_code == 401 and error_of(answer)["code"] == "unauthorized"
