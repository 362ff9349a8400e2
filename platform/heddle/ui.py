"""The screens: log in, the home page, and each entity's list, record page and form.

Server-rendered HTML from :mod:`ui_renderer`, with the same session and permissions as the
API: every view goes through the engine's record service with the user's
:class:`~engine.Actor`, so a rep who may not read a record gets the same 404 page the API
would answer with a 404. Pages work without JavaScript; htmx makes search, filters, sort
and pages update in place. Forms post with a CSRF token; HTML pages are served with a
Content-Security-Policy that allows no inline script or style.

URLs (DESIGN.md): ``/`` (home, or the login page), ``/login``, ``/logout``,
``/app/<entity>`` (list: ``?view=``, ``?q=``, ``?sort=``, ``?cursor=`` and the API's
filters, e.g. ``?grade=A&amount__gte=1000``), ``/app/<entity>/new``, ``/app/<entity>/<id>``
and ``/app/<entity>/<id>/edit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from engine import Actor, BadRequest, EngineError, Forbidden, NotFound, StaleVersion
from engine.query import Filter, ListQuery, QueryValueError, parse_params, parse_where, target
from metamodel import Entity, Field, Label
from ui_renderer import Screens, assets
from ui_renderer import pages as P

from . import errors, i18n
from .accounts import User
from .extensions import csrf, runtime
from .i18n import gettext as _
from .ratelimit import LoginLimit

ui = Blueprint("ui", __name__, static_folder=str(assets.static_folder()), static_url_path="/ui")

MAX_ID = 2**63 - 1
PUBLIC = frozenset({"ui.login", "ui.language", "ui.static"})
REF_TYPES = frozenset({"reference", "user", "team"})
RELATED_ROWS = 10
CHOICES = 50

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    """The screens, their languages and their error pages."""
    i18n.init_app(app)
    app.extensions["heddle_screens"] = Screens(
        links=FlaskLinks(),
        formatter=i18n.BabelFormatter(),
        gettext=i18n.gettext,
        ngettext=i18n.ngettext,
        auto_reload=bool(app.debug),
    )
    app.register_blueprint(ui)
    errors.register_page(app, error_page)


# --- the parts every page needs ------------------------------------------------------------


class FlaskLinks:
    """:class:`ui_renderer.Links` with ``url_for``; query strings are encoded here so any
    filter key (``account.grade__in``) passes as it is."""

    @staticmethod
    def _with(url: str, params: Mapping[str, Any] | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return f"{url}?{urlencode(query, doseq=True)}" if query else url

    def home(self) -> str:
        return url_for("ui.home")

    def login(self) -> str:
        return url_for("ui.login")

    def logout(self) -> str:
        return url_for("ui.logout")

    def language(self) -> str:
        return url_for("ui.language")

    def entity_list(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.list_records", entity=entity), params)

    def record(self, entity: str, record_id: Any, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.record", entity=entity, record_id=record_id), params)

    def edit(self, entity: str, record_id: Any) -> str:
        return url_for("ui.edit", entity=entity, record_id=record_id)

    def new(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.new", entity=entity), params)

    def options(self, entity: str) -> str:
        return url_for("ui.options", entity=entity)

    def asset(self, name: str) -> str:
        return url_for("ui.static", filename=assets.static_path(name))

    def static(self, filename: str) -> str:
        return url_for("ui.static", filename=filename)


def screens() -> Screens:
    found: Screens = current_app.extensions["heddle_screens"]
    return found


def actor() -> Actor:
    user: User = g.user
    return user.actor()


def locale() -> str:
    return i18n.current_locale()


def _locales() -> tuple[P.Option, ...]:
    here = locale()
    return tuple(P.Option(c, i18n.native_name(c), None, c == here) for c in i18n.supported())


def chrome(active: str = "") -> P.Chrome:
    """The navigation (the entities the user may read), the user and the language switch."""
    act, here = actor(), locale()
    records = runtime().records
    nav = tuple(
        P.NavItem(e.name, P.text(e.plural_label, here, e.name), P.icon(e.icon), e.name == active)
        for e in runtime().model
        if not e.child and records.permissions.grant(act, e, "read").allowed
    )
    path = request.full_path.rstrip("?") if request.method == "GET" else request.path
    return P.Chrome(
        user=g.user.name or g.user.username,
        locale=here,
        locales=_locales(),
        nav=nav,
        csrf_token=generate_csrf(),
        messages=tuple(cast("list[tuple[str, str]]", get_flashed_messages(with_categories=True))),
        next_url=path,
    )


def page(
    template: str, title: str, active: str = "", status: int = 200, **context: Any
) -> Response:
    html = screens().render(
        template,
        locale=locale(),
        page_title=title,
        active=active,
        chrome=context.pop("chrome", None) or chrome(active),
        **context,
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


@ui.url_value_preprocessor
def check_ids(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A record id is a 64-bit whole number; anything else names no record."""
    if values and "record_id" in values:
        text = str(values["record_id"])
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
            raise NotFound(f"no record with id {text}")
        values["record_id"] = int(text)


@ui.before_request
def authenticate() -> ResponseReturnValue | None:
    """Sessions only (no tokens); writes need the CSRF token; pages need a user."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    g.user = current_user._get_current_object() if current_user.is_authenticated else None
    if g.user is None and request.endpoint not in PUBLIC:
        target_url = url_for("ui.login", next=_local_path(request.full_path.rstrip("?")))
        if request.headers.get("HX-Request"):
            return Response("", 204, headers={"HX-Redirect": target_url})
        return redirect(target_url)
    return None


@ui.after_request
def secure_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        response.vary.add("HX-Request")
    return response


def _local_path(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``: never redirect elsewhere."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value:
        return "/"
    return value


def error_page(status: int, code: str, message: str) -> Response:
    """The HTML page for an error (:func:`heddle.errors.register_page`)."""
    headings = {
        400: _("The request is not valid"),
        401: _("Please log in"),
        403: _("You may not do that"),
        404: _("Page not found"),
        405: _("That is not allowed here"),
        409: _("Conflict"),
        413: _("Too large"),
        422: _("Please correct the form"),
        429: _("Too many attempts"),
        500: _("Something went wrong"),
    }
    texts = {
        "not_found": _("There is no such page, or you may not see it."),
        "forbidden": _("Your role does not allow this. Ask an administrator if you need it."),
        "csrf_failed": _(
            "The form expired or was sent from another site. Go back, reload it and try again."
        ),
        "internal_error": _("An unexpected error occurred. It has been logged."),
        "too_many_requests": _("Wait a minute before trying again."),
    }
    shown = texts.get(code) or i18n.gettext(message)
    heading = headings.get(status, _("Error"))
    signed_in = getattr(g, "user", None) is not None or current_user.is_authenticated
    if signed_in and getattr(g, "user", None) is None:
        g.user = current_user._get_current_object()
    html = screens().render(
        "error.html",
        locale=locale(),
        page_title=heading,
        active="",
        chrome=chrome() if signed_in else None,
        status=status,
        heading=heading,
        message=shown,
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


# --- log in, log out, language ---------------------------------------------------------------


def _login_page(error: str = "", username: str = "", status: int = 200) -> Response:
    html = screens().render(
        "login.html",
        locale=locale(),
        page_title=_("Log in"),
        active="",
        chrome=None,
        csrf_token=generate_csrf(),
        error=error,
        username=username,
        next_url=_local_path(request.values.get("next")),
        locales=_locales(),
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


@ui.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_local_path(request.args.get("next")))
        return _login_page()
    limit: LoginLimit = current_app.extensions["heddle_login_limit"]
    limit.hit(str(current_app.config["LOGIN_LIMIT"]), request.remote_addr or "unknown")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    user = None
    if username and password:
        with runtime().engine.begin() as conn:
            user = runtime().accounts.authenticate(conn, username, password)
    if user is None:
        current_app.logger.warning("failed login for %r from %s", username, request.remote_addr)
        return _login_page(_("Wrong username or password."), username, 401)
    login_user(user)
    return redirect(_local_path(request.form.get("next")))


@ui.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    if request.method == "GET":
        return page("logout.html", _("Log out"))
    logout_user()
    return redirect(url_for("ui.login"))


@ui.post("/language")
def language() -> ResponseReturnValue:
    """The language switch: kept in the session for the rest of the visit."""
    chosen = request.form.get("locale", "")
    if chosen in i18n.supported():
        session["locale"] = chosen
    return redirect(_local_path(request.form.get("next")))


# --- home --------------------------------------------------------------------------------------


@ui.get("/")
def home() -> ResponseReturnValue:
    here = locale()
    chrome_ = chrome("home")
    model = runtime().model
    tiles = [
        {
            "entity": item.entity,
            "label": item.label,
            "icon": item.icon,
            "description": P.text(model.entity(item.entity).description, here),
        }
        for item in chrome_.nav
    ]
    return page("home.html", _("Home"), "home", chrome=chrome_, tiles=tiles)


# --- lists -------------------------------------------------------------------------------------


def _readable(name: str, act: Actor) -> Entity:
    """The entity, if the user may read it: the same 404 for unknown and not allowed."""
    model = runtime().model
    ent = model.entities.get(name)
    if ent is None or not runtime().records.permissions.grant(act, ent, "read").allowed:
        raise NotFound(f"unknown entity '{name}'")
    return ent


def _args() -> dict[str, list[str]]:
    """The query string without empty values (a filter form sends ``grade=`` for "all")."""
    found: dict[str, list[str]] = {}
    for key, values in request.args.lists():
        kept = [v for v in values if v != ""]
        if kept:
            found[key] = kept
    return found


def _expandable(ent: Entity, names: Iterable[str]) -> list[str]:
    found = []
    for name in names:
        kind = P.column_type(ent, name)
        if kind in REF_TYPES and "." not in name:
            found.append(name)
    return found


def _sortable(ent: Entity, names: Iterable[str]) -> frozenset[str]:
    found = set()
    for name in names:
        try:
            if target(ent, name).sortable:
                found.add(name)
        except QueryValueError:
            continue
    return frozenset(found)


def _flat(args: Mapping[str, list[str]]) -> dict[str, Any]:
    return {k: v if len(v) > 1 else v[0] for k, v in args.items()}


@ui.get("/app/<entity>")
def list_records(entity: str) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = _readable(entity, act)
    grant = heddle.records.permissions.grant(act, ent, "read")
    args = _args()
    view = P.default_list_view(ent, args.get("view", [""])[0])
    names = [c for c in view["columns"] if c.split(".")[0] not in grant.hidden]
    params = {k: v for k, v in args.items() if k != "view"}
    if "sort" not in params and view.get("sort"):
        sort = view["sort"]
        params["sort"] = [sort if isinstance(sort, str) else ",".join(sort)]
    params.setdefault("limit", [str(view.get("page_size", 50))])
    expand = _expandable(ent, names)
    if expand:
        params["expand"] = [",".join(expand)]
    query = parse_params(heddle.model, ent.name, _flat(params))
    if view.get("filter"):
        query = dataclasses.replace(
            query, where=parse_where(heddle.model, ent.name, view["filter"])
        )
    result = heddle.records.query(act, ent.name, query)

    currency = heddle.model.package.currency
    cols = P.columns(
        ent,
        names,
        here,
        sort=query.sort or P.sort_keys(view.get("sort")),
        sortable=_sortable(ent, names),
    )
    controls = [
        n for n in names if P.column_type(ent, n) in ("choice", "boolean") and n in ent.fields
    ]
    filters = [_filter_control(ent.fields[n], here, args.get(n, [""])[0]) for n in controls]
    reserved = {"view", "sort", "q", "cursor", "limit"}
    chips = [
        P.Chip(
            _chip_label(ent, key, here),
            ", ".join(values),
            {k: v for k, v in _flat(args).items() if k not in (key, "cursor")},
        )
        for key, values in args.items()
        if key not in reserved and key not in controls
    ]
    kept = {k: v[0] for k, v in args.items() if k in ("view", "sort")}
    kept.update(
        {k: ",".join(v) for k, v in args.items() if k not in reserved and k not in controls}
    )
    screen = P.Screen(
        "list",
        ent.name,
        P.text(ent.label, here, ent.name),
        P.text(ent.plural_label, here, ent.name),
        P.text(ent.plural_label, here, ent.name),
        {
            "views": P.view_choices(ent, here, view["name"]),
            "table": P.table(ent, cols, result.rows, here, currency),
            "params": _flat(args),
            "kept": kept,
            "filters": filters,
            "chips": chips,
            "q": args.get("q", [""])[0],
            "searchable": bool(ent.search_fields),
            "filtered": bool(chips or query.search or any(f["value"] for f in filters)),
            "count": result.count,
            "estimated": result.count_estimated,
            "next_cursor": result.next_cursor,
            "has_previous": "cursor" in args,
            "can_create": heddle.records.permissions.grant(act, ent, "create").allowed,
        },
    )
    partial = (
        request.headers.get("HX-Request")
        and request.headers.get("HX-Target") == "list-results"
        and not request.headers.get("HX-History-Restore-Request")
    )
    if partial:
        html = screens().render("list_results.html", screen=screen)
        return Response(html, 200, content_type="text/html; charset=utf-8")
    return page("list.html", screen.plural_label, ent.name, screen=screen)


def _filter_control(field: Field, here: str, current: str) -> dict[str, Any]:
    options: tuple[P.Option, ...]
    if field.type == "boolean":
        options = (
            P.Option("true", _("Yes"), None, current == "true"),
            P.Option("false", _("No"), None, current == "false"),
        )
    else:
        options = P.choice_options(field, here, [current])
    return {
        "name": field.name,
        "label": P.field_label(field, here),
        "options": options,
        "value": current,
    }


def _chip_label(ent: Entity, key: str, here: str) -> str:
    path, _sep, op = key.partition("__")
    label = P.column_label(ent, path.split(".")[0], here)
    return f"{label} ({op})" if op else label


# --- record pages ----------------------------------------------------------------------------


def _titles(act: Actor, ent: Entity, record_id: int, names: list[str]) -> dict[str, Any]:
    """The titles of a record's references (and owner, creator…), in one query each."""
    if not names:
        return {}
    query = ListQuery(
        filters=(Filter(("id",), "eq", record_id),),
        limit=1,
        fields=tuple(names),
        expand=tuple(names),
    )
    rows = runtime().records.query(act, ent.name, query).rows
    if not rows:
        return {}
    return {name: rows[0].get(f"{name}__title") for name in names}


def _may_update(act: Actor, ent: Entity, record_id: int) -> bool:
    records = runtime().records
    grant = records.permissions.grant(act, ent, "update")
    if not grant.allowed:
        return False
    if grant.scope == "all":
        return True
    with records.reader.connect() as conn:
        return bool(records.permissions.covers(conn, act, ent, grant, record_id))


def _ref_names(ent: Entity, hidden: frozenset[str]) -> list[str]:
    names = [f.name for f in ent.fields.values() if f.type in REF_TYPES and not f.multiple]
    names += [n for n in ("owner_id", "created_by", "updated_by") if n in ent.system_fields]
    return [n for n in names if n not in hidden]


def _children(
    ent: Entity, record: Mapping[str, Any], here: str, currency: str
) -> dict[str, P.ChildTable]:
    model = runtime().model
    found = {}
    for f in ent.fields_of_type("children"):
        child = model.entity(f.children or "")
        rows = record.get(f.name) or []
        found[f.name] = P.child_table(child, rows, here, currency, hide=child.parent_field or "")
    return found


@ui.get("/app/<entity>/<record_id>")
def record(entity: str, record_id: int) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = _readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)
    grant = heddle.records.permissions.grant(act, ent, "read")
    currency = heddle.model.package.currency
    titles = _titles(act, ent, record_id, _ref_names(ent, grant.hidden))
    tabs = P.form_tabs(
        ent,
        here,
        P.FormInput(
            record=row,
            titles=titles,
            hidden=grant.hidden,
            children=_children(ent, row, here, currency),
            currency=currency,
        ),
        active=request.args.get("tab", ""),
    )
    system = [
        P.system_slot(n, here, row.get(n), titles.get(n))
        for n in ("owner_id", "created_by", "created_at", "updated_by", "updated_at")
        if n in ent.system_fields and n in row
    ]
    title = P.record_title(ent, row, here)
    screen = P.Screen(
        "record",
        ent.name,
        P.text(ent.label, here, ent.name),
        P.text(ent.plural_label, here, ent.name),
        title,
        {
            "id": record_id,
            "tabs": tabs,
            "related": _related(act, ent, record_id, here, currency),
            "system": system,
            "can_edit": _may_update(act, ent, record_id),
        },
    )
    return page("record.html", title, ent.name, screen=screen)


def _related(act: Actor, ent: Entity, record_id: int, here: str, currency: str) -> list[P.Related]:
    """The form's related lists the user may read: their first rows and their count."""
    heddle = runtime()
    found = []
    for spec in (ent.form or {}).get("related", ()):
        other = heddle.model.entities.get(spec["entity"])
        if other is None:
            continue
        grant = heddle.records.permissions.grant(act, other, "read")
        if not grant.allowed or spec["via"] in grant.hidden:
            continue
        names = list(spec.get("columns") or P.default_list_view(other)["columns"])
        names = [n for n in names if n not in grant.hidden and n != spec["via"]]
        params: dict[str, Any] = {spec["via"]: str(record_id), "limit": str(RELATED_ROWS)}
        sort = spec.get("sort")
        if sort:
            params["sort"] = sort if isinstance(sort, str) else ",".join(sort)
        expand = _expandable(other, names)
        if expand:
            params["expand"] = ",".join(expand)
        result = heddle.records.query(
            act, other.name, parse_params(heddle.model, other.name, params)
        )
        cols = P.columns(other, names, here)
        found.append(
            P.Related(
                spec["name"],
                P.text(
                    Label.of(spec.get("label")) if spec.get("label") else other.plural_label, here
                ),
                other.name,
                spec["via"],
                P.table(other, cols, result.rows, here, currency),
                result.count,
                result.count_estimated,
                heddle.records.permissions.grant(act, other, "create").allowed,
            )
        )
    return found


# --- forms -----------------------------------------------------------------------------------


def _editable(ent: Entity, hidden: frozenset[str], readonly: frozenset[str]) -> list[Field]:
    """The fields a form sends: on the layout, visible, writable by this user."""
    placed = [
        s
        for tab in P.form_tabs(
            ent, "en", P.FormInput(hidden=hidden, readonly=readonly), editing=True
        )
        for sec in tab.sections
        for s in sec.slots
    ]
    return [ent.fields[s.name] for s in placed if not s.readonly]


def _form_values(
    fields: list[Field], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(data for the engine, values to show again, what was typed) from a posted form."""
    data: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    typed: dict[str, str] = {}
    getlist = getattr(form, "getlist", None)
    for f in fields:
        if f.type == "boolean":
            value: Any = form.get(f.name) in ("true", "on", "1")
            typed[f.name] = "true" if value else ""
        elif f.type == "multichoice":
            value = list(getlist(f.name)) if getlist else []
        else:
            raw = str(form.get(f.name, "")).strip()
            typed[f.name] = raw
            value = raw or None
            if value is not None and f.type in REF_TYPES:
                value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else raw
            elif value is not None and f.type == "datetime" and len(raw) == 16:
                value = raw + ":00"
        data[f.name] = value
        shown[f.name] = value
    return data, shown, typed


def _choices(act: Actor, field: Field, current: Any) -> list[tuple[Any, str]]:
    """What a reference select offers: the first records the user may read, and the
    current one."""
    heddle = runtime()
    if field.type != "reference" or not field.to:
        return []
    other = heddle.model.entity(field.to)
    if not heddle.records.permissions.grant(act, other, "read").allowed:
        return []
    title = other.title_field
    base: dict[str, Any] = {"limit": str(CHOICES)}
    if title:
        base["fields"] = title
    rows = heddle.records.query(act, other.name, parse_params(heddle.model, other.name, base)).rows
    found = [
        (r["id"], str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}") for r in rows
    ]
    if isinstance(current, int) and all(k != current for k, _t in found):
        one = {"id": str(current), **({"fields": title} if title else {})}
        extra = heddle.records.query(
            act, other.name, parse_params(heddle.model, other.name, one)
        ).rows
        found += [
            (r["id"], str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}") for r in extra
        ]
    return found


def _engine_errors(exc: EngineError) -> dict[str, list[str]]:
    return {k: [i18n.gettext(m) for m in v] for k, v in exc.fields.items()}


def _form_page(
    ent: Entity,
    title: str,
    values: Mapping[str, Any],
    *,
    action: str,
    cancel: str,
    hidden: frozenset[str],
    readonly: frozenset[str],
    typed: Mapping[str, str] | None = None,
    errors_: Mapping[str, list[str]] | None = None,
    error: str = "",
    stale: bool = False,
    version: Any = None,
    record_id: int | None = None,
    titles: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    act, here = actor(), locale()
    currency = runtime().model.package.currency
    fields = _editable(ent, hidden, readonly)
    choices = {
        f.name: _choices(act, f, values.get(f.name)) for f in fields if f.type == "reference"
    }
    shown_errors = dict(errors_ or {})
    tabs = P.form_tabs(
        ent,
        here,
        P.FormInput(
            record=values,
            titles=titles or {},
            typed=typed or {},
            errors=shown_errors,
            hidden=hidden,
            readonly=readonly,
            choices=choices,
            children=_children(ent, values, here, currency),
            currency=currency,
        ),
        editing=True,
    )
    placed = {s.name for t in tabs for sec in t.sections for s in sec.slots}
    elsewhere = [
        f"{P.column_label(ent, k, here)}: {' '.join(v)}"
        for k, v in shown_errors.items()
        if k not in placed
    ]
    if elsewhere:
        error = " ".join([error, *elsewhere]).strip()
    screen = P.Screen(
        "form",
        ent.name,
        P.text(ent.label, here, ent.name),
        P.text(ent.plural_label, here, ent.name),
        title,
        {
            "tabs": tabs,
            "action": action,
            "cancel": cancel,
            "error": error,
            "stale": stale,
            "version": version,
            "id": record_id,
        },
    )
    return page("form.html", title, ent.name, status, screen=screen)


def _refused(exc: EngineError) -> tuple[dict[str, list[str]], str, int]:
    """Field errors, a message and a status for a write the engine refused."""
    if isinstance(exc, NotFound | Forbidden):
        raise exc
    message = (
        _("Please correct the fields marked below.") if exc.fields else i18n.gettext(exc.message)
    )
    return _engine_errors(exc), message, exc.status


@ui.route("/app/<entity>/new", methods=["GET", "POST"])
def new(entity: str) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = _readable(entity, act)
    grant = heddle.records.permissions.grant(act, ent, "create")
    if not grant.allowed:
        raise Forbidden(f"you may not create {ent.name} records")
    title = _("New %(what)s", what=P.text(ent.label, here, ent.name))
    fields = _editable(ent, grant.hidden, grant.readonly)
    source = request.form if request.method == "POST" else request.args
    data, shown, typed = _form_values(fields, source)
    if request.method == "GET":
        typed = {k: v for k, v in typed.items() if v}
        shown = {k: v for k, v in shown.items() if v not in (None, "", [], False)}
        for f in fields:  # the definitions' constant defaults, for the user to see
            if f.name not in shown and f.default is not None and not isinstance(f.default, dict):
                shown[f.name] = f.default
        return _form_page(
            ent,
            title,
            shown,
            action=url_for("ui.new", entity=ent.name),
            cancel=url_for("ui.list_records", entity=ent.name),
            hidden=grant.hidden,
            readonly=grant.readonly,
            typed=typed,
        )
    try:
        created = heddle.records.create(
            act, ent.name, {k: v for k, v in data.items() if v not in (None, [])}
        )
    except (BadRequest, EngineError) as exc:
        field_errors, message, status = _refused(exc)
        return _form_page(
            ent,
            title,
            shown,
            action=url_for("ui.new", entity=ent.name),
            cancel=url_for("ui.list_records", entity=ent.name),
            hidden=grant.hidden,
            readonly=grant.readonly,
            typed=typed,
            errors_=field_errors,
            error=message,
            status=status,
        )
    flash(_("%(what)s created.", what=P.record_title(ent, created, here)), "success")
    return redirect(url_for("ui.record", entity=ent.name, record_id=created["id"]))


@ui.route("/app/<entity>/<record_id>/edit", methods=["GET", "POST"])
def edit(entity: str, record_id: int) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = _readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)  # 404 when out of sight
    if not _may_update(act, ent, record_id):
        raise Forbidden(f"you may not change this {ent.name}")
    grant = heddle.records.permissions.grant(act, ent, "update")
    hidden = heddle.records.permissions.grant(act, ent, "read").hidden | grant.hidden
    titles = _titles(act, ent, record_id, _ref_names(ent, hidden))
    title = _("Edit %(what)s", what=P.record_title(ent, row, here))
    form_of: dict[str, Any] = {
        "action": url_for("ui.edit", entity=ent.name, record_id=record_id),
        "cancel": url_for("ui.record", entity=ent.name, record_id=record_id),
        "hidden": hidden,
        "readonly": grant.readonly,
        "record_id": record_id,
        "titles": titles,
    }
    if request.method == "GET":
        return _form_page(ent, title, row, version=row["version"], **form_of)
    data, shown, typed = _form_values(_editable(ent, hidden, grant.readonly), request.form)
    version = request.form.get("version", "")
    try:
        if not (version.isascii() and version.isdigit()) or not 0 < int(version) < 2**31:
            raise BadRequest(_("The form is missing the record's version: reload it."))
        heddle.records.update(act, ent.name, record_id, data, version=int(version))
    except StaleVersion:
        return _form_page(
            ent,
            title,
            {**row, **shown},
            typed=typed,
            stale=True,
            version=version,
            status=409,
            **form_of,
        )
    except EngineError as exc:
        field_errors, message, status = _refused(exc)
        return _form_page(
            ent,
            title,
            {**row, **shown},
            typed=typed,
            errors_=field_errors,
            error=message,
            version=version,
            status=status,
            **form_of,
        )
    flash(_("Saved."), "success")
    return redirect(url_for("ui.record", entity=ent.name, record_id=record_id))


@ui.get("/app/<entity>/options")
def options(entity: str) -> ResponseReturnValue:
    """``<option>``s of the records matching ``_q``, for a reference select (htmx)."""
    act = actor()
    heddle = runtime()
    ent = _readable(entity, act)
    title = ent.title_field
    params: dict[str, Any] = {"limit": str(CHOICES)}
    if title:
        params["fields"] = title
    text = request.args.get("_q", "").strip()
    if text and ent.search_fields:
        params["q"] = text
    rows = heddle.records.query(act, ent.name, parse_params(heddle.model, ent.name, params)).rows
    selected = request.args.get("selected", "")
    slot = P.Slot(
        "options",
        "reference",
        "",
        options=tuple(
            P.Option(
                str(r["id"]),
                str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}",
                None,
                str(r["id"]) == selected,
            )
            for r in rows
        ),
    )
    html = screens().render("options.html", slot=slot)
    return Response(html, 200, content_type="text/html; charset=utf-8")
