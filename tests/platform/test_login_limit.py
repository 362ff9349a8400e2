"""Logging in is rate-limited per client address, in Redis across processes when configured;
other requests are never counted."""

from __future__ import annotations

import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from heddle.ratelimit import LoginLimit


def test_both_login_endpoints_share_one_count(
    app: Flask, client: FlaskClient, password: str
) -> None:
    app.config["LOGIN_LIMIT"] = "3 per minute"
    wrong = {"username": "ann", "password": "wrong"}
    assert client.post("/api/v1/auth/token", json=wrong).status_code == 401
    assert client.post("/api/v1/auth/session", json=wrong).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "ann"}).status_code == 400
    refused = client.post("/api/v1/auth/session", json={"username": "ann", "password": password})
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_requests"
    assert "at most 3 per minute" in refused.json["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # another address has its own count
    other = client.post(
        "/api/v1/auth/token",
        json={"username": "ann", "password": password},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert other.status_code == 201


def test_other_requests_are_not_counted(app: Flask, client: FlaskClient, password: str) -> None:
    app.config["LOGIN_LIMIT"] = "1 per minute"
    for _ in range(5):
        assert client.get("/api/v1/meta/entities").status_code == 401
        assert client.get("/healthz").status_code == 200
    login = client.post("/api/v1/auth/token", json={"username": "ann", "password": password})
    assert login.status_code == 201


def test_processes_share_the_count_in_redis(
    app: Flask, redis: redis_py.Redis, redis_url: str, password: str
) -> None:
    config = {**app.config, "REDIS_URL": redis_url, "LOGIN_LIMIT": "2 per minute"}
    apps = [create_app(config), create_app(config)]  # as two processes would be
    try:
        first, second = (each.test_client() for each in apps)
        wrong = {"username": "ann", "password": "wrong"}
        assert first.post("/api/v1/auth/token", json=wrong).status_code == 401
        assert second.post("/api/v1/auth/token", json=wrong).status_code == 401
        right = {"username": "ann", "password": password}
        assert first.post("/api/v1/auth/token", json=right).status_code == 429
        assert second.post("/api/v1/auth/token", json=right).status_code == 429
    finally:
        for each in apps:
            each.extensions["heddle"].engine.dispose()
    assert any(key.startswith(b"LIMITS:") for key in redis.keys("*heddle-login*"))


def test_an_unreachable_counter_lets_logins_through(caplog: pytest.LogCaptureFixture) -> None:
    limit = LoginLimit("redis://127.0.0.1:1/0")  # nothing listens there
    for _ in range(3):
        limit.hit("1 per minute", "127.0.0.1")
    assert any("could not be counted" in r.getMessage() for r in caplog.records)
