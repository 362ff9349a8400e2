"""What every screen shares: the blueprint, URLs, the page around the content, the error
page, and the look-ups the list, record and form views all make (see :mod:`heddle.ui`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    current_app,
    g,
    get_flashed_messages,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from engine import Actor, NotFound
from engine.query import Filter, ListQuery, parse_params
from engine.reports import Reports
from metamodel import Dashboard, Entity, Field
from ui_renderer import Screens, assets
from ui_renderer import pages as P

from . import i18n
from ._approval_counts import has_approvals, pending_count
from ._notice_counts import unread_count
from .accounts import User
from .extensions import runtime
from .i18n import gettext as _

ui = Blueprint("ui", __name__, static_folder=str(assets.static_folder()), static_url_path="/ui")

MAX_ID = 2**63 - 1
REF_TYPES = frozenset({"reference", "user", "team"})
RELATED_ROWS = 10
CHOICES = 50

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

    def settings(self) -> str:
        return url_for("ui.settings")

    def entity_list(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.list_records", entity=entity), params)

    def record(self, entity: str, record_id: Any, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.record", entity=entity, record_id=record_id), params)

    def opens(self, entity: str) -> bool:
        user: User | None = g.get("user")
        return user is None or may_read(user.actor(), entity)

    def edit(self, entity: str, record_id: Any) -> str:
        return url_for("ui.edit", entity=entity, record_id=record_id)

    def transition(self, entity: str, record_id: Any, name: str) -> str:
        return url_for("ui.transition", entity=entity, record_id=record_id, name=name)

    def new(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.new", entity=entity), params)

    def options(self, entity: str) -> str:
        return url_for("ui.options", entity=entity)

    def kanban(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.kanban", entity=entity), params)

    def calendar(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.calendar", entity=entity), params)

    def move(self, entity: str, record_id: Any) -> str:
        return url_for("ui.move", entity=entity, record_id=record_id)

    def bulk(self, entity: str) -> str:
        return url_for("ui.bulk", entity=entity)

    def save_view(self, entity: str) -> str:
        return url_for("ui.save_view", entity=entity)

    def delete_view(self, entity: str, view_id: Any) -> str:
        return url_for("ui.delete_view", entity=entity, record_id=view_id)

    def search(self) -> str:
        return url_for("ui.search")

    def reports(self) -> str:
        return url_for("ui.reports_index")

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.report", name=name), params)

    def report_csv(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("reports.export_report", name=name, kind="csv"), params)

    def report_xlsx(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("reports.export_report", name=name, kind="xlsx"), params)

    def dashboard(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.dashboard", name=name), params)

    def approvals(self, tab: str = "pending") -> str:
        return url_for("ui.approvals_inbox", tab=tab)

    def approval(self, entity: str, record_id: Any, approval_id: Any, action: str) -> str:
        return url_for(
            "ui.decide", entity=entity, record_id=record_id, approval_id=approval_id, action=action
        )

    def notifications(self, params: Mapping[str, Any] | None = None) -> str:
        return self._with(url_for("ui.notifications"), params)

    def notification_read(self, notification_id: Any) -> str:
        return url_for("ui.read_notification", notification_id=notification_id)

    def notifications_read_all(self) -> str:
        return url_for("ui.read_all_notifications")

    def comments(self, entity: str, record_id: Any) -> str:
        return url_for("ui.post_comment", entity=entity, record_id=record_id)

    def comment(self, entity: str, record_id: Any, comment_id: Any, action: str) -> str:
        return url_for(
            "ui.change_comment",
            entity=entity, record_id=record_id, comment_id=comment_id, action=action,
        )  # fmt: skip

    def log_activity(self, entity: str, record_id: Any, other: str) -> str:
        return url_for("ui.log_activity", entity=entity, record_id=record_id, other=other)

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


def locales() -> tuple[P.Option, ...]:
    here = locale()
    return tuple(P.Option(c, i18n.native_name(c), None, c == here) for c in i18n.supported())


def visible_dashboards(act: Actor) -> list[Dashboard]:
    """The dashboards meant for one of the user's roles (every one for an administrator)."""
    found = []
    for board in runtime().model.dashboards.values():
        roles = set(board.spec.get("roles", ()))
        if act.is_admin or not roles or roles & act.roles:
            found.append(board)
    return found


def chrome(active: str = "") -> P.Chrome:
    """The navigation (the entities, reports and dashboards the user may read), the user
    and the language switch."""
    act, here = actor(), locale()
    records = runtime().records
    nav = tuple(
        P.NavItem(e.name, P.text(e.plural_label, here, e.name), P.icon(e.icon), e.name == active)
        for e in runtime().model
        if not e.child and records.permissions.grant(act, e, "read").allowed
    )
    path = request.full_path.rstrip("?") if request.method == "GET" else request.path
    analyses = tuple(
        P.NavItem(f"dashboard:{d.name}", P.text(d.label, here, d.name), "dashboard",
                  active == f"dashboard:{d.name}")
        for d in visible_dashboards(act)
    ) + tuple(
        P.NavItem(f"report:{r.name}", P.text(r.label, here, r.name), "chart-bar",
                  active == f"report:{r.name}")
        for r in Reports(records).visible(act)
    )  # fmt: skip
    return P.Chrome(
        user=g.user.name or g.user.username,
        approvals=approval_badge(act),
        notifications=unread_count(act),
        locale=here,
        locales=locales(),
        nav=nav,
        analyses=analyses,
        csrf_token=generate_csrf(),
        messages=tuple(cast("list[tuple[str, str]]", get_flashed_messages(with_categories=True))),
        next_url=path,
    )


def approval_badge(act: Actor) -> int | None:
    """How many approvals wait for the user (None when the Model has no approvals, and
    the navigation no "Approvals")."""
    return pending_count(act) if has_approvals() else None


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


def local_path(value: str | None) -> str:
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


def readable(name: str, act: Actor) -> Entity:
    """The entity, if the user may read it: the same 404 for unknown and not allowed."""
    model = runtime().model
    ent = model.entities.get(name)
    if ent is None or not runtime().records.permissions.grant(act, ent, "read").allowed:
        raise NotFound(f"unknown entity '{name}'")
    return ent


def expandable(act: Actor, ent: Entity, names: Iterable[str]) -> list[str]:
    """The columns among ``names`` whose titles a list asks for (``expand``): references
    the user may follow. A reference to an entity they may not read is not expanded — the
    API would refuse the whole query — and shows as its number."""
    return [
        name
        for name in names
        if P.column_type(ent, name) in REF_TYPES and "." not in name and _may_follow(act, ent, name)
    ]


def _may_follow(act: Actor, ent: Entity, name: str) -> bool:
    """Whether the user may read what the reference field ``name`` points at."""
    field = ent.fields.get(name)
    return may_read(act, field.to if field is not None else None)


def unreachable(act: Actor, ent: Entity) -> frozenset[str]:
    """The reference fields whose target entity the user may not read: a form shows them
    as text, since the user could pick no record for them (nor would the engine take one
    they may not read)."""
    return frozenset(f.name for f in ent.fields_of_type("reference") if not may_read(act, f.to))


def may_read(act: Actor, entity: str | None) -> bool:
    """Whether the user may read records of ``entity`` (users and teams, which are no
    entities, everyone may)."""
    heddle = runtime()
    ent = heddle.model.entities.get(entity) if entity else None
    return ent is None or heddle.records.permissions.grant(act, ent, "read").allowed


def reference_titles(act: Actor, ent: Entity, record_id: int, names: list[str]) -> dict[str, Any]:
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


def may_update(act: Actor, ent: Entity, record_id: int) -> bool:
    records = runtime().records
    grant = records.permissions.grant(act, ent, "update")
    if not grant.allowed:
        return False
    if grant.scope == "all":
        return True
    with records.reader.connect() as conn:
        return bool(records.permissions.covers(conn, act, ent, grant, record_id))


def ref_names(act: Actor, ent: Entity, hidden: frozenset[str]) -> list[str]:
    """The record page's references whose titles it shows (see :func:`expandable`)."""
    names = [f.name for f in ent.fields.values() if f.type in REF_TYPES and not f.multiple]
    names += [n for n in ("owner_id", "created_by", "updated_by") if n in ent.system_fields]
    return [n for n in names if n not in hidden and _may_follow(act, ent, n)]


def child_tables(
    act: Actor, ent: Entity, record: Mapping[str, Any], here: str, currency: str
) -> dict[str, P.ChildTable]:
    """The record's child rows per children field, with their references' titles (one
    query per children field that has references to show)."""
    heddle = runtime()
    found = {}
    for f in ent.fields_of_type("children"):
        child = heddle.model.entity(f.children or "")
        hidden = heddle.records.permissions.grant(act, child, "read").hidden
        rows = record.get(f.name) or []
        refs = expandable(act, child, [n for n in (f.columns or child.fields) if n not in hidden])
        refs = [n for n in refs if n != child.parent_field]
        if rows and refs and child.parent_field and record.get("id"):
            params = {
                child.parent_field: str(record["id"]),
                "limit": "500",
                "expand": ",".join(refs),
            }
            query = parse_params(heddle.model, child.name, params)
            rows = heddle.records.query(act, child.name, query).rows
        found[f.name] = P.child_table(child, rows, here, currency, f.columns, hidden)
    return found


def filter_control(field: Field, here: str, current: str) -> dict[str, Any]:
    """A select of a choice or yes/no field for a filter bar ("" is "all")."""
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
