"""The OpenAPI 3.1 document of the REST API, generated from the Model, and its docs page.

``GET /api/v1/openapi.json`` describes every endpoint of ``/api/v1`` with one set of
schemas per entity: ``<Entity>`` (a record as returned), ``<Entity>Input`` (what a create
accepts), ``<Entity>Patch`` (what an update accepts, with the record's ``version``) and
``<Entity>Page`` (a list page); a child entity adds ``<Entity>RowInput`` and
``<Entity>RowPatch`` (one row sent inline with its parent, on create and on update). The
list operation documents every filter parameter the query layer accepts (``amount``,
``amount__gte``…) with the reserved ones (``sort``, ``limit``, ``cursor``, ``q``,
``fields``, ``expand``). ``GET /api/v1/docs`` is Swagger UI on that
document, served from the ``openapi-ui-bundles`` package installed with Heddle (no CDN).

Who asks changes what the document shows — a field hidden from a caller never appears
in it (:func:`view_for`):

- a caller with a token (``Authorization: Bearer``) or a browser session gets their own
  view: only the entities they may read, only the operations they may perform, without
  the fields hidden from them, and without read-only fields in the input schemas;
- an anonymous caller gets every entity and operation, without any field that any role
  of the package hides (so the public document never names a field some role may not
  know about).

Documents are generated once per (Model hash, view) and kept until the Model changes
(:class:`DocumentCache`), so a definition change regenerates them and a request costs a
dictionary look-up.

This module holds the views, the assembly of a document, its cache and the blueprint;
the schemas are built in :mod:`heddle._openapi_schemas` and the paths and parameters in
:mod:`heddle._openapi_paths`.

>>> document = build_document(model, view_for(model, permissions, frozenset({"admin"})))
>>> document["components"]["schemas"]["Account"]["properties"]["name"]["title"]
'Account name'
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import openapi_ui_bundles
from apispec import APISpec
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    request,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import escape

from engine import Actor, Records
from engine.permissions import Permissions
from metamodel import Entity, Model

from ._openapi_approvals import approval_paths
from ._openapi_attachments import attachment_paths
from ._openapi_comments import comment_paths
from ._openapi_data import data_paths
from ._openapi_duplicates import DUPLICATE_DETAILS, merge_paths, with_confirmation
from ._openapi_jobs import job_paths
from ._openapi_paths import (
    ERRORS,
    REPORT_RESULT,
    account_paths,
    auth_paths,
    entity_paths,
    entity_tag,
    meta_paths,
    report_paths,
    response,
    workflow_paths,
)
from ._openapi_pools import pool_paths
from ._openapi_reports import report_download_paths, saved_report_paths
from ._openapi_schemas import (
    ACTIONS,
    ENTITY_META_SCHEMA,
    ENTITY_SUMMARY_SCHEMA,
    ERROR_SCHEMA,
    FIELD_META_SCHEMA,
    HISTORY_SCHEMA,
    LABEL_SCHEMA,
    TRANSITION_ENTRY_SCHEMA,
    TRANSITION_SCHEMA,
    input_schema,
    page_schema,
    patch_schema,
    record_schema,
    ref,
    row_schema,
    schema_names,
)
from .errors import Unauthorized

# The JSON of each field type comes from heddle.fieldtypes.JSON_TYPES; the component
# names of each entity are built in _openapi_schemas.
__all__ = [
    "DocumentCache",
    "EntityView",
    "View",
    "build_document",
    "docs",
    "schema_names",
    "view_for",
]

OPENAPI_VERSION = "3.1.0"


# --- views: what one caller may see -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityView:
    """One entity as a caller sees it."""

    actions: frozenset[str]
    hidden: frozenset[str] = frozenset()  # left out of every schema and parameter
    create_readonly: frozenset[str] = frozenset()  # left out of <Entity>Input
    update_readonly: frozenset[str] = frozenset()  # left out of <Entity>Patch


@dataclass(frozen=True, slots=True)
class View:
    """The entities a caller may read, in Model order; ``roles`` None is anonymous."""

    roles: frozenset[str] | None
    entities: tuple[tuple[str, EntityView], ...]

    @property
    def label(self) -> str:
        if self.roles is None:
            return "anonymous"
        return "admin" if "admin" in self.roles else ", ".join(sorted(self.roles)) or "none"


def view_for(model: Model, permissions: Permissions, roles: frozenset[str] | None) -> View:
    """The view of a caller with ``roles``, or the anonymous view for ``None``.

    The anonymous view keeps every entity and operation and leaves out each field that
    any role of the Model hides: a field some role may not know about stays unnamed in
    the public document.
    """
    entities: list[tuple[str, EntityView]] = []
    if roles is None:
        actors = [Actor(roles=frozenset({name})) for name in sorted(model.roles)]
        for ent in model:
            hidden: set[str] = set()
            for actor in actors:
                hidden |= permissions.grant(actor, ent, "read").hidden
            frozen = frozenset(hidden)
            entities.append((ent.name, EntityView(frozenset(ACTIONS), frozen, frozen, frozen)))
        return View(None, tuple(entities))
    # admin may do everything, whatever else it has; roles the Model lacks grant nothing
    roles = frozenset({"admin"}) if "admin" in roles else roles & frozenset(model.roles)
    actor = Actor(roles=roles)
    for ent in model:
        grants = {action: permissions.grant(actor, ent, action) for action in ACTIONS}
        if not grants["read"].allowed:
            continue
        allowed = frozenset(a for a, g in grants.items() if g.allowed)
        entities.append(
            (
                ent.name,
                EntityView(
                    allowed,
                    grants["read"].hidden,
                    grants["create"].readonly | grants["read"].hidden,
                    grants["update"].readonly | grants["read"].hidden,
                ),
            )
        )
    return View(roles, tuple(entities))


# --- the document -------------------------------------------------------------------------

DESCRIPTION = """\
The REST API of {package}, generated from its definitions (Model {hash}).

**Authentication.** Send `Authorization: Bearer <token>`; `POST /auth/token` exchanges a \
username and password for a token. A browser logged in with `POST /auth/session` is \
authenticated by its session cookie instead; its writes must then send the CSRF token in \
`X-CSRFToken`.

**Records.** One record is `{{"data": {{…}}}}`, with `id` and `version` among its fields; \
a list is `{{"data": […], "next_cursor": …, "count": N, "count_estimated": false}}`. \
Decimals (money, percent) are strings such as `"1250.00"`; dates and times are ISO 8601. \
PATCH and DELETE take the version you read; a stale one is a 409.

**Lists.** Filter with `field=value` or `field__op=value` (operators per field below), \
also through references (`account.grade=A`, up to two hops). Sort with `sort=-amount,name`, \
page with `limit` and the `next_cursor` of the previous page, search with `q`, choose \
columns with `fields` and add reference titles with `expand`.

**Errors** are `{{"error": {{"code", "message", "fields": {{field: [messages]}}}}}}`.

**Duplicates.** A create or update that a duplicate rule finds exists already is a 409 \
with code `duplicate` and `details` as in the `DuplicateDetails` schema (the records found, \
with their owner or pool); resend with `confirm_duplicates: [rule]` to accept a warning. \
`POST /records/<entity>/{{id}}/merge` folds a duplicate into the record.

**This document** is the view of: {view}. Fields hidden from that view are left out \
everywhere; an anonymous request gets every entity without any field that some role hides. \
Labels: `title` is the English label, `x-labels` has every locale.
"""


def build_document(model: Model, view: View) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``model``'s API as ``view`` sees it."""
    names = schema_names(model)
    package = model.package
    spec = APISpec(
        title=f"{package.label.get('en')} API",
        version=package.version,
        openapi_version=OPENAPI_VERSION,
        info={
            "description": DESCRIPTION.format(
                package=package.label.get("en"), hash=model.hash[:12], view=view.label
            ),
            "x-model-hash": model.hash,
            "x-view": view.label,
        },
        servers=[{"url": "/api/v1"}],
        security=[{"bearerAuth": []}],
    )
    _shared_components(spec)
    auth_paths(spec)
    meta_paths(spec, [name for name, _ in view.entities])
    if view.roles is None or "admin" in view.roles:  # others may not use them
        account_paths(spec, sorted({"admin", *model.roles}))
    job_paths(spec, admin=view.roles is None or "admin" in view.roles)
    for name, seen in view.entities:
        _entity(spec, model.entity(name), names, seen)
        base = names[name]
        workflow_paths(spec, model.entity(name), base, model.workflows_of(name), seen.actions,
                       seen.hidden)  # fmt: skip
    readable = {name for name, _ in view.entities}
    comment_paths(spec, [model.entity(n) for n in sorted(readable)])
    approval_paths(spec, [model.entity(n) for n in sorted(readable)
                          if any(w.approvals for w in model.workflows_of(n))])  # fmt: skip
    runnable = [r for r in model.reports.values() if r.entity in readable]
    report_paths(spec, runnable, ["default", *model.dashboards])
    report_download_paths(spec, runnable)
    saved_report_paths(spec)
    data_paths(spec, [name for name, _ in view.entities])
    return spec.to_dict()


def _shared_components(spec: APISpec) -> None:
    """What every document has: the security scheme, the errors and the metadata schemas."""
    components = spec.components
    components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /auth/token. Browsers may use the session "
            "cookie of POST /auth/session instead (writes then need X-CSRFToken).",
        },
    )
    components.schema("Error", ERROR_SCHEMA)
    for status, (name, description) in ERRORS.items():
        error = response(ref("Error"), description)
        if status == 401:
            error["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        components.response(name, error)
    components.schema("Label", LABEL_SCHEMA)
    components.schema("HistoryEntry", HISTORY_SCHEMA)
    components.schema("Transition", TRANSITION_SCHEMA)
    components.schema("TransitionEntry", TRANSITION_ENTRY_SCHEMA)
    components.schema("FieldMeta", FIELD_META_SCHEMA)
    components.schema("EntitySummary", ENTITY_SUMMARY_SCHEMA)
    components.schema("EntityMeta", ENTITY_META_SCHEMA)
    components.schema("ReportResult", REPORT_RESULT)
    components.schema("DuplicateDetails", DUPLICATE_DETAILS)


def _entity(spec: APISpec, entity: Entity, names: dict[str, str], seen: EntityView) -> None:
    """``entity``'s schemas, tag and operations, as far as ``seen`` allows."""
    base = names[entity.name]
    components = spec.components
    components.schema(base, record_schema(entity, names, seen.hidden))
    if "create" in seen.actions:
        created = input_schema(entity, names, seen.create_readonly)
        components.schema(base + "Input", with_confirmation(created, entity))
    if "update" in seen.actions:
        patched = patch_schema(entity, names, seen.update_readonly)
        components.schema(base + "Patch", with_confirmation(patched, entity))
    if entity.child:
        components.schema(base + "RowInput", row_schema(entity, names, seen.create_readonly))
        components.schema(
            base + "RowPatch", row_schema(entity, names, seen.update_readonly, patch=True)
        )
    components.schema(base + "Page", page_schema(entity, names, seen.hidden))
    spec.tag(entity_tag(entity))
    entity_paths(spec, entity, base, seen.actions, seen.hidden)
    merge_paths(spec, entity, base, seen.actions, seen.update_readonly)
    pool_paths(spec, entity, base, seen.actions)
    attachment_paths(spec, entity, seen.actions)


# --- caching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    etag: str


class DocumentCache:
    """Documents by (Model hash, view), serialized once; emptied when the Model changes.

    Views are keyed by role set first, so a request costs two look-ups; two role sets
    with the same effective permissions share one document.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hash = ""
        self._views: dict[frozenset[str] | None, View] = {}
        self._documents: dict[View, Document] = {}

    def get(self, model: Model, permissions: Permissions, roles: frozenset[str] | None) -> Document:
        with self._lock:
            if model.hash != self._hash:
                self._hash = model.hash
                self._views.clear()
                self._documents.clear()
            view = self._views.get(roles)
            if view is None:
                view = self._views[roles] = view_for(model, permissions, roles)
            found = self._documents.get(view)
            if found is None:
                body = json.dumps(
                    build_document(model, view), ensure_ascii=False, separators=(",", ":")
                ).encode()
                etag = hashlib.sha256(body).hexdigest()[:32]
                found = self._documents[view] = Document(body, etag)
            return found

    @property
    def size(self) -> int:
        """How many documents are kept."""
        return len(self._documents)


# --- the blueprint ------------------------------------------------------------------------

docs = Blueprint("docs", __name__, url_prefix="/api/v1")


def init_app(app: Flask) -> None:
    """``/api/v1/openapi.json`` and the interactive documentation."""
    app.register_blueprint(docs)


SWAGGER_UI = openapi_ui_bundles.swagger_ui.static_path
SWAGGER_FILES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"}
)
INIT_JS = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
# In the assets' URLs, so they can be cached for a year and still change on an upgrade.
ASSET_VERSION = (
    f"{metadata.version('openapi-ui-bundles')}-{hashlib.sha256(INIT_JS.encode()).hexdigest()[:8]}"
)
ONE_YEAR = 365 * 24 * 3600
PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{assets}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-url="{url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/heddle-docs.js"></script>
</body>
</html>
"""


def _cache() -> DocumentCache:
    found: DocumentCache | None = current_app.extensions.get("heddle.openapi")
    if found is None:
        found = current_app.extensions.setdefault("heddle.openapi", DocumentCache())
    return found


def _records() -> Records:
    found: Records = current_app.extensions["heddle"].records
    return found


def _caller_roles() -> frozenset[str] | None:
    """The roles of the caller's token or session; None for an anonymous request.

    A token that is sent must be valid (401 otherwise), as everywhere in the API.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send the token as: Authorization: Bearer <token>")
        heddle = current_app.extensions["heddle"]
        with heddle.records.reader.connect() as conn:  # as the API's authenticate() does
            user = heddle.accounts.user_for_token(conn, token.strip())
        if user is None:
            raise Unauthorized("the token is unknown, expired or revoked")
        return frozenset(user.roles)
    if current_user.is_authenticated:
        return frozenset(current_user.roles)
    return None


@docs.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI document as the caller may see it (no login needed)."""
    records = _records()
    roles = _caller_roles()
    document = _cache().get(records.model, records.permissions, roles)
    response = Response(document.body, mimetype="application/json")
    response.set_etag(document.etag)
    response.cache_control.no_cache = True
    if roles is not None:
        response.cache_control.private = True
    response.vary.update(("Authorization", "Cookie"))
    return response.make_conditional(request)


@docs.get("/docs")
def page() -> ResponseReturnValue:
    """Swagger UI on /api/v1/openapi.json."""
    title = f"{_records().model.package.label.get('en')} API"
    assets = url_for("docs.asset", version=ASSET_VERSION, filename="").rstrip("/")
    html = PAGE.format(
        title=escape(title), assets=escape(assets), url=escape(url_for("docs.openapi"))
    )
    response = Response(html, mimetype="text/html")
    response.cache_control.no_cache = True
    return response


@docs.get("/docs/assets/<version>/<path:filename>")
def asset(version: str, filename: str) -> ResponseReturnValue:
    """Swagger UI's files from the installed package, cached for a year."""
    if version != ASSET_VERSION:
        abort(404)
    if filename == "heddle-docs.js":
        response = Response(INIT_JS, mimetype="text/javascript")
    elif filename in SWAGGER_FILES:
        response = send_from_directory(SWAGGER_UI, filename, max_age=ONE_YEAR)
    else:
        abort(404)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    return response
