"""The screens: log in, the home page, and each entity's list, record page and form.

Server-rendered HTML from :mod:`ui_renderer`, with the same session and permissions as the
API: every view goes through the engine's record service with the user's
:class:`~engine.Actor`, so a rep who may not read a record gets the same 404 page the API
would answer with a 404. Pages work without JavaScript; htmx makes search, filters, sort
and pages update in place. Forms post with a CSRF token; :mod:`heddle.security` serves
HTML with a Content-Security-Policy that allows no inline script or style.

URLs (DESIGN.md): ``/`` (home, or the login page), ``/login``, ``/logout``,
``/app/<entity>`` (list: ``?view=``, ``?q=``, ``?sort=``, ``?cursor=`` and the API's
filters, e.g. ``?grade=A&amount__gte=1000``), ``/app/<entity>/new``, ``/app/<entity>/<id>``,
``/app/<entity>/<id>/edit``, ``/app/<entity>/import`` (:mod:`heddle._screen_imports`) and
``/settings`` (:mod:`heddle._screen_settings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from flask import (
    Flask,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from engine import Actor, NotFound
from engine.query import QueryValueError, parse_params, parse_where, target
from metamodel import Entity, Label
from ui_renderer import Screens
from ui_renderer import pages as P

from . import (
    _screen_approvals,  # noqa: F401  (the approval inbox and decisions)
    _screen_boards,  # noqa: F401  (kanban and calendar)
    _screen_forms,  # noqa: F401  (its views register on the blueprint)
    _screen_imports,
    _screen_lists,
    _screen_notifications,  # noqa: F401  (the notification inbox)
    _screen_reports,
    _screen_settings,
    errors,
    i18n,
)
from ._screen_approvals import record_approval
from ._screen_files import file_titles, record_files
from ._screen_form_rows import sections_shown
from ._screen_pools import pool_hidden, record_pool
from ._screen_workflow import record_workflow
from ._screens import (
    MAX_ID,
    RELATED_ROWS,
    FlaskLinks,
    actor,
    child_tables,
    chrome,
    error_page,
    expandable,
    local_path,
    locale,
    locales,
    may_update,
    page,
    readable,
    ref_names,
    reference_titles,
    screens,
    ui,
)
from .extensions import csrf, runtime
from .i18n import gettext as _
from .ratelimit import LoginLimit

PUBLIC = frozenset({"ui.login", "ui.language", "ui.static"})


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
        target_url = url_for("ui.login", next=local_path(request.full_path.rstrip("?")))
        if request.headers.get("HX-Request"):
            return Response("", 204, headers={"HX-Redirect": target_url})
        return redirect(target_url)
    return None


@ui.after_request
def fresh_pages(response: Response) -> Response:
    """Pages show records as they are now, and differ for htmx. (The Content-Security-
    Policy without inline scripts or styles comes from :mod:`heddle.security`.)"""
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
        response.vary.add("HX-Request")
    return response


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
        next_url=local_path(request.values.get("next")),
        locales=locales(),
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


@ui.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(local_path(request.args.get("next")))
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
    return redirect(local_path(request.form.get("next")))


@ui.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    if request.method == "GET":
        return page("logout.html", _("Log out"))
    logout_user()
    return redirect(url_for("ui.login"))


@ui.post("/language")
def language() -> ResponseReturnValue:
    """The language switch: kept in the session for the rest of the visit, and on the
    account of a logged-in user (their language in every browser)."""
    chosen = request.form.get("locale", "")
    if chosen in i18n.supported():
        session["locale"] = chosen
        if g.user is not None:
            _screen_settings.save_locale(g.user, chosen)
    return redirect(local_path(request.form.get("next")))


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
    try:
        board = _screen_reports.home_dashboard(actor())
    except Exception:  # the home page opens even when a dashboard's report fails
        current_app.logger.exception("the home dashboard could not be drawn")
        board = None
    return page("home.html", _("Home"), "home", chrome=chrome_, tiles=tiles, dashboard=board)


# --- lists -------------------------------------------------------------------------------------


def _args() -> dict[str, list[str]]:
    """The query string without empty values (a filter form sends ``grade=`` for "all")."""
    found: dict[str, list[str]] = {}
    for key, values in request.args.lists():
        kept = [v for v in values if v != ""]
        if kept:
            found[key] = kept
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
    ent = readable(entity, act)
    grant = heddle.records.permissions.grant(act, ent, "read")
    args = _args()
    view = P.default_list_view(ent, args.get("view", [""])[0])
    names = [c for c in view["columns"] if c.split(".")[0] not in grant.hidden]
    params = {k: v for k, v in args.items() if k not in ("view", "saved")}
    if "sort" not in params and view.get("sort"):
        sort = view["sort"]
        params["sort"] = [sort if isinstance(sort, str) else ",".join(sort)]
    params.setdefault("limit", [str(view.get("page_size", 50))])
    expand = expandable(act, ent, names)
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
    filters, controls = _screen_lists.list_filters(act, ent, names, args, here)
    reserved = {"view", "sort", "q", "cursor", "limit", "saved"}
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
    screen = P.entity_screen(
        "list",
        ent,
        here,
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
            "import_url": _screen_imports.import_url(act, ent),
            "export_urls": _screen_imports.export_urls(act, ent),
            "bulk": _bulk(act, ent, here) if result.rows else {},
            "saved": _screen_lists.saved_views(act, ent),
            "saved_id": args.get("saved", [""])[0],
            "roles": _screen_lists.shareable_roles(act),
            "next_url": request.full_path.rstrip("?"),
            "csrf_token": generate_csrf(),
            "has_kanban": bool(ent.kanban) and ent.kanban["field"] not in grant.hidden,
            "has_calendar": bool(ent.calendar) and ent.calendar["start"] not in grant.hidden,
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


def _bulk(act: Actor, ent: Entity, here: str) -> dict[str, Any]:
    """The bulk actions on the list's ticked rows ({} when the user may take none)."""
    found = _screen_lists.bulk_actions(act, ent, here)
    return found if any(found.values()) else {}


def _chip_label(ent: Entity, key: str, here: str) -> str:
    path, _sep, op = key.partition("__")
    label = P.column_label(ent, path.split(".")[0], here)
    return f"{label} ({op})" if op else label


# --- record pages ----------------------------------------------------------------------------


@ui.get("/app/<entity>/<record_id>")
def record(entity: str, record_id: int) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)
    grant = heddle.records.permissions.grant(act, ent, "read")
    hidden = grant.hidden | pool_hidden(act, ent, row)  # and what its pool hides
    currency = heddle.model.package.currency
    titles = reference_titles(act, ent, record_id, ref_names(act, ent, hidden))
    titles.update(file_titles(act, ent, record_id, row))
    tabs = P.form_tabs(
        ent,
        here,
        P.FormInput(
            record=row,
            titles=titles,
            hidden=hidden,
            children=child_tables(act, ent, row, here, currency),
            currency=currency,
            sections=sections_shown(act, ent, {}, row),
        ),
        active=request.args.get("tab", ""),
    )
    system = [
        P.system_slot(n, here, row.get(n), titles.get(n))
        for n in ("owner_id", "created_by", "created_at", "updated_by", "updated_at")
        if n in ent.system_fields and n in row
    ]
    title = P.record_title(ent, row, here)
    screen = P.entity_screen(
        "record",
        ent,
        here,
        title,
        {
            "id": record_id,
            "version": row.get("version"),
            "tabs": tabs,
            "related": _related(act, ent, record_id, here, currency),
            "system": system,
            "can_edit": may_update(act, ent, record_id),
            **record_workflow(act, ent, record_id, here, row=row),
            **record_approval(act, ent, record_id, here),
            "attachments": record_files(act, ent, record_id),
            "pool": record_pool(act, ent, row, here),
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
        expand = expandable(act, other, names)
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
