"""The Flask application factory.

>>> app = create_app({"DATABASE_URL": "sqlite:///instance/heddle.db"})

Configuration: every setting of :mod:`heddle.settings` at its default, then the
``HEDDLE_*`` environment variables, then ``config`` (tests use it).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, Request, Response, jsonify, request
from flask.globals import request_ctx
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.typing import ResponseReturnValue

from engine.tables import HISTORY_TABLE

from . import (
    admin_api,
    api,
    approval_api,
    attachment_api,
    comments_api,  # noqa: F401  (its routes join heddle.api's blueprint)
    errors,
    jobs,
    logs,
    merge_api,
    openapi,
    pool_api,
    report_api,
    security,
    ui,
    workflow_api,
)
from .accounts import session_user_id
from .data_api import init_app as init_data_api
from .extensions import csrf, login_manager
from .jsonio import JSONProvider
from .ratelimit import LoginLimit
from .runtime import Runtime
from .settings import SETTINGS, apply_time_zone, resolve_database_url

log = logging.getLogger("heddle.app")


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, building nothing for a request that sends no session
    cookie (an API call with a token): Flask makes the cookie's signer on every request,
    a tenth of a single-record GET."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to do for a session no one read, changed or sent (Flask works out the
        cookie's settings first, then finds nothing to write)."""
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)


def _remember_only_for_sessions(app: Flask) -> None:
    """Flask-Login's after-request hook (its remember-me cookie) reads the session, which
    then costs every response its cookie settings and a ``Vary: Cookie``. Heddle never
    issues that cookie; the hook still runs, as Flask-Login means it to, for a request
    that sent a session cookie or changed its session (a login, a logout)."""
    hooks = app.after_request_funcs[None]
    remember = login_manager._update_remember_cookie
    at = hooks.index(remember)

    def update_remember_cookie(response: Response) -> Response:
        # the session as it is, not through flask.session, which marks it read (Flask
        # 3.1.3 keeps it as _session; earlier releases as session)
        state = vars(request_ctx._get_current_object())  # type: ignore[attr-defined]
        opened = state.get("_session", state.get("session"))
        changed = opened is not None and opened.modified
        if changed or app.config["SESSION_COOKIE_NAME"] in request.cookies:
            response = remember(response)
        return response

    hooks[at] = update_remember_cookie


def _settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    values.update({s.name: os.environ[s.env] for s in SETTINGS if s.env in os.environ})
    values.update(config or {})
    values["DATABASE_URL"] = resolve_database_url(
        str(values["DATABASE_URL"] or ""), str(values["INSTANCE_PATH"])
    )
    return values


def _secret(instance: Path, configured: str) -> str:
    """The configured secret, or one kept in the instance folder (development)."""
    if configured:
        return configured
    path = instance / "secret_key"
    try:  # created readable by its owner only, never for a moment by anyone else
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = _settings(config)
    apply_time_zone(str(settings["TIME_ZONE"] or ""))
    instance = Path(str(settings["INSTANCE_PATH"])).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    app = Flask("heddle", instance_path=str(instance))
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)
    app.session_interface = CookieSessions()
    app.config.update(settings)
    app.config["SECRET_KEY"] = _secret(instance, str(settings["SECRET_KEY"]))
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_CONTENT_LENGTH"])
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked where a session writes
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    logs.configure(str(settings["LOG_LEVEL"]), str(settings["LOG_FORMAT"]))
    if not settings["SECRET_KEY"] and not str(app.config["DATABASE_URL"]).startswith("sqlite"):
        log.warning(
            "HEDDLE_SECRET_KEY is not set: sessions are signed with a key kept in %s, "
            "which processes on other machines do not share; set one secret for all of them",
            instance / "secret_key",
        )

    runtime = Runtime(app.config)  # invalid definitions stop the start, with their errors
    app.extensions["heddle"] = runtime

    @app.before_request
    def follow_definitions() -> None:
        """Serve the Model migrated last, even by another process; the request keeps the
        state it starts with (app-level hooks run before the blueprints' ones)."""
        runtime.pin()

    csrf.init_app(app)
    login_manager.init_app(app)
    _remember_only_for_sessions(app)
    app.extensions["heddle_login_limit"] = LoginLimit(str(settings["REDIS_URL"]))

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(session_id: str) -> Any:
        """The session's user while active and with the password it logged in with."""
        found = session_user_id(session_id)
        if found is None:
            return None
        with runtime.engine.connect() as conn:
            user = runtime.accounts.by_id(conn, found[0])
        if user is None or not user.active or not hmac.compare_digest(user.stamp, found[1]):
            return None
        return user

    api.init_app(app)
    report_api.init_app(app)
    admin_api.init_app(app)
    ui.init_app(app)
    workflow_api.init_app(app)
    init_data_api(app)
    approval_api.init_app(app)
    jobs.init_app(app)  # the outbox flushed after requests; notifications, automations
    merge_api.init_app(app)
    pool_api.init_app(app)
    attachment_api.init_app(app)
    openapi.init_app(app)
    errors.init_app(app)
    security.init_app(app)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        """The process is up."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        """The database (and Redis, when configured) answer and the Model is migrated."""
        return _readiness(runtime)

    return app


def _readiness(runtime: Runtime) -> ResponseReturnValue:
    checks: dict[str, str] = {}
    ready = True
    try:
        with runtime.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            history = runtime.tables.metadata.tables[HISTORY_TABLE]
            applied = conn.scalar(sa.select(history.c.hash).order_by(history.c.id.desc()).limit(1))
        checks["database"] = "ok"
        if applied == runtime.model.hash:
            checks["model"] = "ok"
        else:
            ready = False
            checks["model"] = "not migrated: run heddle migrate"
    except sa.exc.SQLAlchemyError as exc:
        ready = False
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    redis_url = str(runtime.config.get("REDIS_URL") or "")
    if redis_url:
        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            ready = False
            checks["redis"] = f"unreachable: {exc.__class__.__name__}"
    body = jsonify(status="ready" if ready else "not ready", checks=checks)
    return body, 200 if ready else 503
