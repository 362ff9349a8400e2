"""The REST API, ``/api/v1``: tokens, metadata and records.

Authentication is ``Authorization: Bearer <token>`` or the browser session (then unsafe
methods need the CSRF token in ``X-CSRFToken``). Every endpoint goes through the engine's
record service, so permissions, validation and audit apply the same as everywhere else.
Responses: one record is ``{"data": {…}}``; a list is ``{"data": […], "next_cursor",
"count", "count_estimated"}``; errors are ``{"error": {"code", "message", "fields"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from engine import Actor, BadRequest, EngineError, NotFound
from engine.pipeline import Batch, Guard
from metamodel import Entity, Field, Label

from . import jsonio
from .accounts import User, token_name_problem
from .errors import Unauthorized, UnsupportedMediaType
from .extensions import csrf, runtime
from .ratelimit import LoginLimit

log = logging.getLogger("heddle.api")

api = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(api)


def init_app(app: Flask) -> None:
    """The REST API under ``/api/v1``."""
    app.register_blueprint(api)


MAX_VERSION = 2**31 - 1
MAX_ID = 2**63 - 1
#: what an id in a URL names, where its parameter's name does not say it
ID_NAMES = {"saved_id": "saved report", "run_id": "import or export run"}
PUBLIC = frozenset({"api.token", "api.session_login"})
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def actor() -> Actor:
    user: User = g.user
    return user.actor()


@api.url_value_preprocessor
def check_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Ids are 64-bit: a larger number in a URL (``record_id``, ``saved_id``…) names
    nothing (rather than overflowing SQL). Every blueprint of the API uses it."""
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, int) and value > MAX_ID:
            what = ID_NAMES.get(name, name.removesuffix("_id").replace("_", " "))
            raise NotFound(f"no {what} with id {value}")


@api.before_request
def authenticate() -> None:
    g.user = None
    req = request._get_current_object()  # type: ignore[attr-defined]  # (read often below)
    header = req.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send the token as: Authorization: Bearer <token>")
        heddle = runtime()
        accounts = heddle.accounts
        fresh = req.method not in SAFE  # a write: is the user still active, and who?
        # a create checks a token its cache trusts inside its own transaction (no round
        # trip of its own: _token_guard); other writes ask the database first
        deferred = fresh and req.endpoint == "api.create_record"
        user = None if fresh and not deferred else accounts.cached_user(token)
        g.token_guard = _token_guard(token, user) if deferred and user is not None else None
        if user is None:
            with heddle.records.reader.connect() as conn:
                user = accounts.user_for_token(conn, token, fresh=fresh)
        if user is None:
            raise Unauthorized("the token is unknown, expired or revoked")
        g.user = user
        g.token = token
    elif current_user.is_authenticated:
        g.user = current_user._get_current_object()
        if request.method not in SAFE:
            csrf.protect()
    if g.user is None and request.endpoint not in PUBLIC:
        raise Unauthorized("log in first: POST /api/v1/auth/token with a username and password")


def _body() -> dict[str, Any]:
    """The JSON object sent: 415 for a body not sent as JSON, 400 for anything else."""
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON object with Content-Type: application/json")
    try:
        data = jsonio.loads(request.get_data(cache=True))
    except jsonio.TooDeep as exc:
        raise BadRequest(f"the body is too deeply nested: {exc}") from None
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, not {jsonio.kind(data)}")
    return data


# tokens -------------------------------------------------------------------------------


def _count_attempt() -> None:
    """One login attempt by this client; 429 past ``HEDDLE_LOGIN_LIMIT``."""
    limit: LoginLimit = current_app.extensions["heddle_login_limit"]
    limit.hit(str(current_app.config["LOGIN_LIMIT"]), request.remote_addr or "unknown")


def _login(data: Mapping[str, Any], conn: Any) -> User:
    """The user a username and password name; logs and refuses a failed attempt."""
    username, password = data.get("username"), data.get("password")
    problems = {
        name: ["Missing data for required field."]
        for name, value in (("username", username), ("password", password))
        if not isinstance(value, str) or not value
    }
    if problems:
        raise BadRequest("a username and a password are needed", problems)
    user = runtime().accounts.authenticate(conn, str(username), str(password))
    if user is None:
        log.warning(
            "failed login for %r from %s",
            username,
            request.remote_addr,
            extra={"username": username, "remote_addr": request.remote_addr},
        )
        raise Unauthorized("wrong username or password")
    return user


@api.post("/auth/token")
def token() -> ResponseReturnValue:
    """Exchange a username and password for an API token (shown once)."""
    _count_attempt()
    data = _body()
    name = data.get("name", "")
    problem = token_name_problem(name)
    if problem:
        raise BadRequest("the token's name is not valid", {"name": [problem]})
    heddle = runtime()
    with heddle.engine.begin() as conn:
        user = _login(data, conn)
        username = user.username
        days = int(current_app.config["TOKEN_DAYS"])
        value, expires = heddle.accounts.issue_token(conn, user, days=days, name=name)
    log.info("token issued", extra={"username": username})
    return jsonify(token=value, expires_at=expires), 201


@api.post("/auth/session")
def session_login() -> ResponseReturnValue:
    """Log in the browser: a session cookie, and the CSRF token its writes must send."""
    _count_attempt()
    data = _body()
    with runtime().engine.begin() as conn:
        user = _login(data, conn)
    login_user(user)
    return jsonify(data={"username": user.username, "csrf_token": generate_csrf()})


@api.delete("/auth/session")
def session_logout() -> ResponseReturnValue:
    logout_user()
    return "", 204


@api.delete("/auth/token")
def revoke() -> ResponseReturnValue:
    """Revoke the token this request was made with."""
    value = getattr(g, "token", None)
    if value is None:
        raise BadRequest("this request was not made with a token")
    heddle = runtime()
    with heddle.engine.begin() as conn:
        heddle.accounts.revoke_token(conn, value)
    return "", 204


# metadata -----------------------------------------------------------------------------


def _label(label: Label | None) -> Any:
    return None if label is None else label.to_json()


def _field_meta(field: Field, readonly: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": field.name,
        "type": field.type,
        "label": _label(field.label),
        "required": field.required,
        "readonly": field.readonly or field.computed or readonly,
    }
    optional = {
        "help": _label(field.help),
        "unique": field.unique or None,
        "max_length": field.max_length,
        "min": field.min,
        "max": field.max,
        "to": field.to,
        "entity": field.children,
        "multiple": field.multiple or None,
        "returns": field.returns,
        "currency": field.currency,
        "scale": field.scale,
        "visible_when": field.visible_when.source if field.visible_when else None,
        "required_when": field.required_when.source if field.required_when else None,
    }
    meta.update({k: v for k, v in optional.items() if v is not None})
    if field.options:
        meta["options"] = [
            {"value": c.value, "label": _label(c.label), "color": c.color} for c in field.options
        ]
    return meta


def _entity_meta(entity: Entity, act: Actor, *, full: bool) -> dict[str, Any]:
    records = runtime().records
    read = records.permissions.grant(act, entity, "read")
    meta: dict[str, Any] = {
        "name": entity.name,
        "label": _label(entity.label),
        "plural_label": _label(entity.plural_label),
        "title_field": entity.title_field,
        "ownable": entity.ownable,
        "child": entity.child,
        "actions": [
            action
            for action in ("read", "create", "update", "delete")
            if records.permissions.grant(act, entity, action).allowed
        ],
    }
    if full:
        update = records.permissions.grant(act, entity, "update")
        meta["fields"] = [
            _field_meta(f, f.name in update.readonly)
            for f in entity.fields.values()
            if f.name not in read.hidden
        ]
        meta["search_fields"] = [f for f in entity.search_fields if f not in read.hidden]
        meta["default_sort"] = [str(key) for key in entity.default_sort]
    return meta


@api.get("/meta/entities")
def entities() -> ResponseReturnValue:
    """The entities the caller may read."""
    act = actor()
    records = runtime().records
    visible = [
        _entity_meta(e, act, full=False)
        for e in runtime().model
        if records.permissions.grant(act, e, "read").allowed
    ]
    return jsonify(data=visible)


@api.get("/meta/entities/<entity>")
def entity_meta(entity: str) -> ResponseReturnValue:
    """One entity's fields, labels and options, without the fields hidden from the caller."""
    act = actor()
    ent = runtime().records.entity(entity)
    if not runtime().records.permissions.grant(act, ent, "read").allowed:
        raise NotFound(f"unknown entity '{entity}'")
    return jsonify(data=_entity_meta(ent, act, full=True))


# records ------------------------------------------------------------------------------


def _params() -> Mapping[str, Any]:
    return {k: v if len(v) > 1 else v[0] for k, v in request.args.lists()}


@api.get("/records/<entity>")
def list_records(entity: str) -> ResponseReturnValue:
    """A page of records: filters, sort, cursor, search, field selection, expansion."""
    records = runtime().records
    act = actor()
    query = records.parse(act, entity, _params())
    page = records.query(act, entity, query)
    return jsonify(
        data=page.rows,
        next_cursor=page.next_cursor,
        count=page.count,
        count_estimated=page.count_estimated,
    )


@api.post("/records/<entity>")
def create_record(entity: str) -> ResponseReturnValue:
    """Create a record; a duplicate rule that finds it exists is a 409 (code duplicate)
    unless the body's ``confirm_duplicates`` names that rule and it only warns."""
    data = _body()
    confirm = data.pop("confirm_duplicates", None)
    guard: Guard | None = g.get("token_guard")
    try:
        record = runtime().records.create(
            actor(), entity, data, confirm_duplicates=confirm, guard=guard
        )
    except EngineError:
        if guard is not None:  # refused before its token was checked again, maybe
            heddle = runtime()
            with heddle.records.reader.connect() as conn:
                if heddle.accounts.user_for_token(conn, g.token, fresh=True) != g.user:
                    raise Unauthorized("the token is unknown, expired or revoked") from None
        raise
    return jsonify(data=record), 201


def _token_guard(token: str, user: User) -> Guard:
    """A create's check of a token the cache trusts, made in the create's transaction
    with its first statements: a token revoked or a user disabled or changed since it
    was cached refuses the create (401) and nothing is written."""

    def add(batch: Batch) -> Callable[[], None]:
        still_valid = runtime().accounts.check_in(batch, token, user)

        def judge() -> None:
            if not still_valid():
                raise Unauthorized("the token is unknown, expired or revoked")

        return judge

    return add


@api.get("/records/<entity>/<int:record_id>")
def get_record(entity: str, record_id: int) -> ResponseReturnValue:
    return jsonify(data=runtime().records.get(actor(), entity, record_id))


def _version(value: Any, name: str = "version") -> int:
    """The record version a client sent (as ``name``): a positive whole number."""
    if value is None:
        raise BadRequest(
            f"send the record's version as {name}", {name: ["Missing data for required field."]}
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or not 0 < number <= MAX_VERSION:
        raise BadRequest(f"the {name} must be a positive integer", {name: ["Not a valid integer."]})
    return number


@api.patch("/records/<entity>/<int:record_id>")
def update_record(entity: str, record_id: int) -> ResponseReturnValue:
    data = _body()
    version = _version(data.pop("version", None))
    confirm = data.pop("confirm_duplicates", None)
    record = runtime().records.update(
        actor(), entity, record_id, data, version=version, confirm_duplicates=confirm
    )
    return jsonify(data=record)


@api.delete("/records/<entity>/<int:record_id>")
def delete_record(entity: str, record_id: int) -> ResponseReturnValue:
    version = _version(request.args.get("version"))
    runtime().records.delete(actor(), entity, record_id, version=version)
    return "", 204


@api.get("/records/<entity>/<int:record_id>/history")
def record_history(entity: str, record_id: int) -> ResponseReturnValue:
    """Every change to the record: who, when, the version and the field-level diff."""
    return jsonify(data=runtime().records.history(actor(), entity, record_id))
