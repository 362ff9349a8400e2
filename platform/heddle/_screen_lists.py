"""What the list screen of :mod:`heddle.ui` does besides showing rows: bulk actions on the
rows ticked, saved views, and the global search of the navigation.

- ``POST /app/<entity>/bulk`` (``action`` = ``assign``, ``transition``, ``delete`` or
  ``export``, ``ids``): each record through the engine with the user's permissions, one
  at a time; what was refused is counted and the first reason shown. ``export`` answers
  with a CSV of the view's columns;
- ``POST /app/<entity>/views`` saves the list's query string under a name, for the user
  or shared with one of their roles; ``POST /app/<entity>/views/<id>/delete`` removes one
  of the user's own;
- ``GET /search?q=`` searches the search fields of every entity the user may read (the
  first :data:`SEARCH_ROWS` of each); with htmx it answers with the dropdown alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import Actor, BadRequest, EngineError, Forbidden, NotFound, PoolRefused
from engine.query import parse_params
from engine.tables import SAVED_VIEW_TABLE
from metamodel import Entity
from ui_renderer import pages as P
from workflows import StateMachines

from . import i18n
from ._screen_form_rows import people_choices
from ._screen_pools import refusal as pool_refusal
from ._screens import (
    FlaskLinks,
    actor,
    expandable,
    filter_control,
    local_path,
    locale,
    page,
    readable,
    screens,
    ui,
)
from .extensions import runtime
from .i18n import gettext as _

MAX_BULK = 500  # records one bulk action may touch
SEARCH_ROWS = 5  # records per entity the global search shows
MAX_VIEWS = 50  # saved views a list offers
KEPT = frozenset({"view", "cursor", "limit", "saved"})  # query keys a saved view leaves out


# --- the filter bar -------------------------------------------------------------------------

NUMBERS = frozenset({"integer", "decimal", "money", "percent"})
DATES = frozenset({"date", "datetime"})
PERIODS = (
    "today",
    "this_week",
    "this_month",
    "last_month",
    "next_30_days",
    "this_quarter",
    "last_quarter",
    "this_year",
)


def list_filters(
    act: Actor, ent: Entity, names: Sequence[str], args: Mapping[str, list[str]], here: str
) -> tuple[list[dict[str, Any]], set[str]]:
    """A control per column of the view that can filter: a select for a choice, yes/no or
    period, "me" for the owner, from–to inputs for a number; and the query keys they set."""
    from ._screen_reports import preset_labels

    first = {k: v[0] for k, v in args.items()}
    found: list[dict[str, Any]] = []
    keys: set[str] = set()
    labels = {
        **preset_labels(),
        "today": _("Today"),
        "this_week": _("This week"),
        "next_30_days": _("Next 30 days"),
    }
    for name in names:
        kind = P.column_type(ent, name)
        field = ent.fields.get(name)
        current = first.get(name, "")
        if kind in ("choice", "boolean") and field is not None:
            found.append({**filter_control(field, here, current), "kind": "select"})
        elif kind in DATES:
            options = tuple(P.Option(p, labels[p], None, p == current) for p in PERIODS)
            found.append(
                {
                    "name": name,
                    "label": P.column_label(ent, name, here),
                    "options": options,
                    "value": current,
                    "kind": "select",
                }
            )
        elif kind == "user" and act.user_id is not None:
            me = P.Option(str(act.user_id), _("Me"), None, current == str(act.user_id))
            found.append(
                {
                    "name": name,
                    "label": P.column_label(ent, name, here),
                    "options": (me,),
                    "value": current,
                    "kind": "select",
                }
            )
        elif kind in NUMBERS and field is not None:
            found.append(
                {
                    "name": name,
                    "label": P.column_label(ent, name, here),
                    "kind": "range",
                    "min": first.get(f"{name}__gte", ""),
                    "max": first.get(f"{name}__lte", ""),
                    "value": first.get(f"{name}__gte") or first.get(f"{name}__lte", ""),
                }
            )
            keys |= {f"{name}__gte", f"{name}__lte"}
            continue
        else:
            continue
        keys.add(name)
    return found, keys


# --- bulk actions ---------------------------------------------------------------------------


def bulk_actions(act: Actor, ent: Entity, here: str) -> dict[str, Any]:
    """The bulk actions this user may take on the entity's records, with their choices."""
    grants = runtime().records.permissions
    update = grants.grant(act, ent, "update")
    steps = [
        P.Option(t.name, P.text(t.label, here, t.name))
        for w in runtime().model.workflows_of(ent.name)
        for t in w.transitions
        if StateMachines.may_fire(act, t)
    ]
    assign = update.allowed and ent.ownable and "owner_id" not in update.readonly
    found: dict[str, Any] = {
        "assign": people() if assign else [],
        "transition": steps if update.allowed else [],
        "delete": grants.grant(act, ent, "delete").allowed,
        "export": grants.grant(act, ent, "export").allowed,
        "claim": _in_a_pool(act, ent),
    }
    return found


def _in_a_pool(act: Actor, ent: Entity) -> bool:
    """Whether the user belongs to a pool of the entity (and so may claim from it)."""
    if ent.public_pool is None or act.user_id is None:
        return False
    records = runtime().records
    with records.reader.connect() as conn:
        return bool(records.pools.readable(conn, act, ent))


def people() -> list[P.Option]:
    """The first active users by name, for an owner select (its search box asks for the
    others: a company's thousand users are not sent with every list page)."""
    return [P.Option(str(i), title) for i, title in people_choices("user")]


def _ids() -> list[int]:
    found = []
    for text in request.form.getlist("ids"):
        if text.isascii() and text.isdigit() and len(text) < 19:
            found.append(int(text))
    if not found:
        raise BadRequest(_("Tick the records first."))
    if len(found) > MAX_BULK:
        raise BadRequest(_("At most %(count)s records at a time.", count=MAX_BULK))
    return list(dict.fromkeys(found))


@ui.post("/app/<entity>/bulk")
def bulk(entity: str) -> ResponseReturnValue:
    act, here = actor(), locale()
    ent = readable(entity, act)
    action = request.form.get("action", "")
    allowed = bulk_actions(act, ent, here)
    if not allowed.get(action):
        raise Forbidden(f"you may not {action or 'do that'} on {ent.name} records")
    ids = _ids()
    back = local_path(request.form.get("next") or url_for("ui.list_records", entity=ent.name))
    if action == "export":
        return _export(act, ent, ids, here)
    done, refused = 0, []
    for record_id in ids:
        try:
            _apply(act, ent, record_id, action)
            done += 1
        except EngineError as exc:
            refused.append(_reason(ent, exc, here))
    if done:
        flash(ngettext_done(done), "success")
    if refused:
        flash(_("%(count)s refused: %(reason)s", count=len(refused), reason=refused[0]), "error")
    return redirect(back)


def ngettext_done(count: int) -> str:
    return i18n.ngettext("%(num)s record changed.", "%(num)s records changed.", count)


def _apply(act: Actor, ent: Entity, record_id: int, action: str) -> None:
    """One record's part of a bulk action, on the version the user may read now."""
    records = runtime().records
    if action == "claim":
        records.claim(act, ent.name, record_id)
        return
    version = records.get(act, ent.name, record_id)["version"]  # NotFound when out of sight
    if action == "assign":
        owner = request.form.get("owner", "")
        if not (owner.isascii() and owner.isdigit() and len(owner) < 19):
            raise BadRequest(_("Pick the new owner."))
        records.update(act, ent.name, record_id, {"owner_id": int(owner)}, version=version)
    elif action == "transition":
        StateMachines(records).fire(
            act, ent.name, record_id, request.form.get("transition", ""), version=version
        )
    else:
        records.delete(act, ent.name, record_id, version=version)


def _reason(ent: Entity, exc: EngineError, here: str) -> str:
    if isinstance(exc, NotFound | Forbidden):
        return _("You may not change this record.")
    if isinstance(exc, PoolRefused):
        return pool_refusal(exc)
    if exc.fields:
        name, messages = next(iter(exc.fields.items()))
        return f"{P.column_label(ent, name, here)}: {i18n.gettext(messages[0])}"
    return i18n.gettext(exc.message)


def _export(act: Actor, ent: Entity, ids: Sequence[int], here: str) -> Response:
    """The ticked records as CSV: the default list view's columns, labels in the user's
    language, references as their titles."""
    heddle = runtime()
    hidden = heddle.records.permissions.grant(act, ent, "read").hidden
    names = [c for c in P.default_list_view(ent)["columns"] if c.split(".")[0] not in hidden]
    params: dict[str, Any] = {"id__in": ",".join(map(str, ids)), "limit": str(MAX_BULK)}
    expand = expandable(act, ent, names)
    if expand:
        params["expand"] = ",".join(expand)
    rows = heddle.records.query(act, ent.name, parse_params(heddle.model, ent.name, params)).rows
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", *(P.column_label(ent, n, here) for n in names)])
    for row in rows:
        writer.writerow([row["id"], *(_csv_value(row, n) for n in names)])
    response = Response("\ufeff" + out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{ent.name}.csv"'
    return response


def _csv_value(row: Mapping[str, Any], name: str) -> Any:
    title = row.get(f"{name}__title")
    value = row.get(name)
    if title not in (None, ""):
        return title
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dt.datetime):
        return value.astimezone().isoformat()  # in the deployment's time zone, with its offset
    return "" if value is None else value


# --- saved views ----------------------------------------------------------------------------


def _table() -> sa.Table:
    return runtime().tables.metadata.tables[SAVED_VIEW_TABLE]


def saved_views(act: Actor, ent: Entity) -> list[dict[str, Any]]:
    """The user's own views of the entity and those shared with one of their roles (with
    the role's label)."""
    t = _table()
    shared = t.c.role.in_(sorted(act.roles)) if act.roles else sa.false()
    query = (
        sa.select(t.c.id, t.c.name, t.c.owner_id, t.c.role, t.c.params)
        .where(t.c.entity == ent.name, sa.or_(t.c.owner_id == act.user_id, shared))
        .order_by(t.c.name, t.c.id)
        .limit(MAX_VIEWS)
    )
    with runtime().records.reader.connect() as conn:
        rows = list(conn.execute(query))
    roles, here = runtime().model.roles, locale()
    return [
        {
            **row._mapping,
            "mine": row.owner_id == act.user_id,
            "role_label": P.text(roles[row.role].label, here, row.role)
            if row.role in roles
            else row.role or "",
        }
        for row in rows
    ]


def shareable_roles(act: Actor) -> list[P.Option]:
    """The roles a user may share a view with, labelled in the page's language: their own
    (any role, for an administrator)."""
    here = locale()
    roles = runtime().model.roles
    names = sorted(roles) if act.is_admin else sorted(r for r in act.roles if r in roles)
    return [P.Option(n, P.text(roles[n].label, here, n)) for n in names]


@ui.post("/app/<entity>/views")
def save_view(entity: str) -> ResponseReturnValue:
    act = actor()
    ent = readable(entity, act)
    name = request.form.get("name", "").strip()
    role = request.form.get("role", "").strip() or None
    if not name or len(name) > 100:
        raise BadRequest(_("Give the view a name of at most 100 characters."))
    if role is not None and role not in {o.value for o in shareable_roles(act)}:
        raise Forbidden(f"you may not share a view with the role '{role}'")
    params = {
        k: v if len(v) > 1 else v[0]
        for k, v in request.form.lists()
        if k.startswith("p:") and k[2:] not in KEPT and any(v)
    }
    stored = {k[2:]: v for k, v in params.items()}
    parse_params(runtime().model, ent.name, stored)  # a bad filter is refused (400)
    t = _table()
    with runtime().engine.begin() as conn:
        conn.execute(
            t.delete().where(t.c.entity == ent.name, t.c.owner_id == act.user_id, t.c.name == name)
        )
        created: Any = conn.execute(
            t.insert().values(
                entity=ent.name,
                name=name,
                owner_id=act.user_id,
                role=role,
                params=stored,
                created_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key
    flash(_("View “%(name)s” saved.", name=name), "success")
    return redirect(FlaskLinks().entity_list(ent.name, {**stored, "saved": created[0]}))


@ui.post("/app/<entity>/views/<record_id>/delete")
def delete_view(entity: str, record_id: int) -> ResponseReturnValue:
    act = actor()
    ent = readable(entity, act)
    t = _table()
    with runtime().engine.begin() as conn:
        gone = conn.execute(
            t.delete().where(
                t.c.id == record_id, t.c.entity == ent.name, t.c.owner_id == act.user_id
            )
        ).rowcount
    if not gone:
        raise Forbidden("you may delete only your own views")
    flash(_("View deleted."), "success")
    return redirect(url_for("ui.list_records", entity=ent.name))


# --- global search ----------------------------------------------------------------------------


@ui.get("/search")
def search() -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    text = request.args.get("q", "").strip()[:200]
    groups = []
    if text:
        for ent in heddle.model:
            if ent.child or not ent.search_fields:
                continue
            if not heddle.records.permissions.grant(act, ent, "read").allowed:
                continue
            params = {"q": text, "limit": str(SEARCH_ROWS)}
            result = heddle.records.query(
                act, ent.name, parse_params(heddle.model, ent.name, params)
            )
            if result.rows:
                groups.append(
                    {
                        "entity": ent.name,
                        "label": P.text(ent.plural_label, here, ent.name),
                        "rows": [(r["id"], P.record_title(ent, r, here)) for r in result.rows],
                        "count": result.count,
                        "estimated": result.count_estimated,
                    }
                )
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "global-results":
        html = screens().render("search_results.html", groups=groups, q=text)
        return Response(html, 200, content_type="text/html; charset=utf-8")
    return page("search.html", _("Search"), "", groups=groups, q=text)
