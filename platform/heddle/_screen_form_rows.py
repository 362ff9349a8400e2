"""The live parts of a create or edit form (:mod:`heddle._screen_forms`).

- Child rows edited inline (a quote's lines): each cell posts as ``<field>-<n>-<column>``
  (with ``<field>-<n>-id`` for a stored row and a ``<field>-rows`` marker for the table), so
  the parent and its rows are saved in one request; the engine's row errors
  (``lines[2].quantity``) come back beside the row's cell.
- ``POST /app/<entity>/preview`` (and ``/app/<entity>/<id>/preview`` when editing): the
  form as typed, answered with the state of the fields that have ``visible_when``,
  ``required_when`` or ``readonly_when``, and the formulas and totals it comes to
  (:meth:`engine.records.Records.preview`) — the server's own evaluator, so the form and the
  save never disagree. ``static/heddle-form.js`` asks it as the user types.
- ``GET /app/_people/options``: user and team pickers' search-as-you-type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import Actor, Forbidden
from engine.query import Filter, ListQuery, parse_params
from metamodel import Entity, Field
from ui_renderer import pages as P

from ._screens import CHOICES, REF_TYPES, actor, expandable, locale, readable, screens, ui
from .extensions import runtime

ROW_KEY = re.compile(r"^(\d{1,6})-([a-z_][a-z0-9_]*)$")
MAX_ROWS = 500


def _child(field: Field) -> Entity:
    return runtime().model.entity(field.children or "")


def row_columns(act: Actor, ent: Entity, field: Field) -> tuple[list[str], frozenset[str]]:
    """(the columns a children field shows, those this user may not change)."""
    child = _child(field)
    perms = runtime().records.permissions
    hidden = perms.grant(act, child, "read").hidden
    names = P.child_columns(child, field.columns, hidden)
    update = perms.grant(act, child, "update")
    create = perms.grant(act, child, "create")
    fixed = frozenset(
        n
        for n in names
        if child.fields[n].computed
        or child.fields[n].readonly
        or child.fields[n].type in P.SHOWN_ONLY
        or n in update.readonly
        or n in create.readonly
    )
    return names, fixed


def editable_children(act: Actor, ent: Entity) -> list[Field]:
    """The children fields whose rows this user may add, change and remove."""
    perms = runtime().records.permissions
    return [
        f
        for f in ent.fields_of_type("children")
        if all(perms.grant(act, _child(f), a).allowed for a in ("create", "update", "delete"))
    ]


def _typed(raw: str, field: Field) -> Any:
    if field.type in REF_TYPES and raw.isascii() and raw.isdigit() and len(raw) < 19:
        return int(raw)
    if field.type == "boolean":
        return raw in ("true", "on", "1")
    return raw


def posted_rows(
    act: Actor, ent: Entity, field: Field, form: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | None:
    """(rows for the engine, what was typed per row) of a children field, in the order
    the form holds them; None when the form had no table for it (rows unchanged)."""
    if f"{field.name}-rows" not in form:
        return None
    child = _child(field)
    names, fixed = row_columns(act, ent, field)
    writable = [n for n in names if n not in fixed]
    prefix = f"{field.name}-"
    indexes: set[int] = set()
    for key in form:
        if key.startswith(prefix):
            found = ROW_KEY.match(key[len(prefix) :])
            if found:
                indexes.add(int(found.group(1)))
    rows: list[dict[str, Any]] = []
    typed: list[dict[str, str]] = []
    for index in sorted(indexes)[:MAX_ROWS]:
        raw_id = str(form.get(f"{prefix}{index}-id", "")).strip()
        row: dict[str, Any] = {}
        if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19:
            row["id"] = int(raw_id)
        sent: dict[str, str] = {}
        for n in writable:
            f = child.fields[n]
            raw = str(form.get(f"{prefix}{index}-{n}", "")).strip()
            if f.type == "boolean":
                raw = "true" if raw in ("true", "on", "1") else ""
            sent[n] = raw
            if raw:
                row[n] = _typed(raw, f)
            elif "id" in row:  # a stored row's emptied cell is cleared; a new one's default
                row[n] = False if f.type == "boolean" else None
        rows.append(row)
        typed.append(sent)
    return rows, typed


def row_errors(errors: Mapping[str, list[str]], name: str) -> dict[int, dict[str, list[str]]]:
    """The engine's ``lines[2].quantity`` errors as {2: {"quantity": [...]}}."""
    found: dict[int, dict[str, list[str]]] = {}
    pattern = re.compile(rf"^{re.escape(name)}\[(\d+)\]\.(.+)$")
    for key, messages in errors.items():
        hit = pattern.match(key)
        if hit:
            found.setdefault(int(hit.group(1)), {}).setdefault(hit.group(2), []).extend(messages)
    return found


def _base_choices(act: Actor, child: Entity, names: list[str]) -> dict[str, list[tuple[Any, str]]]:
    """The first records each reference column offers (one query per column)."""
    heddle = runtime()
    found: dict[str, list[tuple[Any, str]]] = {}
    for n in names:
        f = child.fields[n]
        if f.type != "reference" or not f.to:
            continue
        other = heddle.model.entity(f.to)
        if not heddle.records.permissions.grant(act, other, "read").allowed:
            continue
        params: dict[str, Any] = {"limit": str(CHOICES)}
        if other.title_field:
            params["fields"] = other.title_field
        rows = heddle.records.query(act, other.name, parse_params(heddle.model, f.to, params)).rows
        found[n] = [(r["id"], _title(other, r)) for r in rows]
    return found


def _title(ent: Entity, row: Mapping[str, Any]) -> str:
    value = row.get(ent.title_field) if ent.title_field else None
    return str(value) if value not in (None, "") else f"#{row['id']}"


def _titled(act: Actor, child: Entity, names: list[str], rows: list[dict[str, Any]]) -> None:
    """Give posted rows the titles of the records they point at (one query per column)."""
    heddle = runtime()
    for n in expandable(act, child, names):
        f = child.fields[n]
        ids = {r[n] for r in rows if isinstance(r.get(n), int)}
        if f.type != "reference" or not f.to or not ids:
            continue
        other = heddle.model.entity(f.to)
        query = ListQuery(filters=(Filter(("id",), "in", tuple(sorted(ids))),), limit=len(ids))
        titles = {r["id"]: _title(other, r) for r in heddle.records.query(act, f.to, query).rows}
        for r in rows:
            if r.get(n) in titles:
                r[f"{n}__title"] = titles[r[n]]


def stored_rows(
    act: Actor, ent: Entity, field: Field, record_id: int | None
) -> list[dict[str, Any]]:
    """A stored record's rows of a children field, with their references' titles (one
    query)."""
    child = _child(field)
    if record_id is None or not child.parent_field:
        return []
    heddle = runtime()
    names, _fixed = row_columns(act, ent, field)
    refs = [n for n in expandable(act, child, names) if n != child.parent_field]
    params = {child.parent_field: str(record_id), "limit": str(MAX_ROWS), "sort": "id"}
    if refs:
        params["expand"] = ",".join(refs)
    return list(
        heddle.records.query(act, child.name, parse_params(heddle.model, child.name, params)).rows
    )


def editors(
    act: Actor,
    ent: Entity,
    here: str,
    currency: str,
    *,
    record_id: int | None,
    posted: Mapping[str, tuple[list[dict[str, Any]], list[dict[str, str]]]],
    errors: Mapping[str, list[str]],
) -> dict[str, P.ChildEditor]:
    """An inline editor per children field the user may edit: the rows posted back (after
    an error) or else the stored ones."""
    found = {}
    for field in editable_children(act, ent):
        child = _child(field)
        names, fixed = row_columns(act, ent, field)
        if field.name in posted:
            rows, typed = posted[field.name]
            rows = [dict(r) for r in rows]
            _titled(act, child, names, rows)
        else:
            rows, typed = stored_rows(act, ent, field, record_id), []
        wrong = row_errors(errors, field.name)
        given = P.RowsInput(
            columns=names,
            readonly=fixed,
            typed=typed,
            errors=[wrong.get(i, {}) for i in range(len(rows))],
            choices=_base_choices(act, child, [n for n in names if n not in fixed]),
        )
        found[field.name] = P.child_editor(field.name, child, rows, here, currency, given)
    return found


# --- the live state of a form -------------------------------------------------------------


def conditions(
    act: Actor, ent: Entity, data: Mapping[str, Any], base: Mapping[str, Any] | None
) -> dict[str, dict[str, bool]]:
    """The state of each field with a condition, for the record as typed."""
    if not any(f.visible_when or f.required_when or f.readonly_when for f in ent.fields.values()):
        return {}
    shown = runtime().records.preview(act, ent.name, data, base=base)
    return {
        n: {"visible": s.visible, "required": s.required, "readonly": s.readonly}
        for n, s in shown.fields.items()
    }


def sections_shown(
    act: Actor, ent: Entity, data: Mapping[str, Any], base: Mapping[str, Any] | None
) -> dict[str, bool]:
    """Whether each form section with a ``visible_when`` is shown, for the record as typed
    over ``base`` (on the record page: ``data`` empty, ``base`` the stored record)."""
    if not ent.section_conditions:
        return {}
    plain = {k: v for k, v in data.items() if k in ent.fields and ent.fields[k].type != "children"}
    return dict(runtime().records.preview(act, ent.name, plain, base=base).sections)


def _display(field: Field, value: Any, currency: str) -> str:
    return str(screens().widget(P.slot(field, locale(), value, currency=currency)))


def _answer(ent: Entity, base: Mapping[str, Any] | None) -> ResponseReturnValue:
    act = actor()
    heddle = runtime()
    currency = heddle.model.package.currency
    data: dict[str, Any] = {}
    for name, field in ent.fields.items():
        if field.type == "children":
            sent = posted_rows(act, ent, field, request.form)
            if sent is not None:
                data[name] = sent[0]
        elif field.type == "multichoice":
            data[name] = request.form.getlist(name)
        elif name in request.form:
            data[name] = _typed(str(request.form[name]).strip(), field)
    shown = heddle.records.preview(act, ent.name, data, base=base)
    children: dict[str, list[dict[str, str]]] = {}
    for name, rows in shown.children.items():
        child = _child(ent.fields[name])
        children[name] = [
            {k: _display(child.fields[k], v, currency) for k, v in row.items()} for row in rows
        ]
    return jsonify(
        fields={
            n: {"visible": s.visible, "required": s.required, "readonly": s.readonly}
            for n, s in shown.fields.items()
        },
        values={n: _display(ent.fields[n], v, currency) for n, v in shown.values.items()},
        children=children,
        sections=shown.sections,
    )


@ui.post("/app/<entity>/preview")
def preview_new(entity: str) -> ResponseReturnValue:
    """The live state of a create form (JSON)."""
    act = actor()
    ent = readable(entity, act)
    if not runtime().records.permissions.grant(act, ent, "create").allowed:
        raise Forbidden(f"you may not create {ent.name} records")
    return _answer(ent, None)


@ui.post("/app/<entity>/<int:record_id>/preview")
def preview_edit(entity: str, record_id: int) -> ResponseReturnValue:
    """The live state of an edit form (JSON), over the stored record."""
    act = actor()
    ent = readable(entity, act)
    row = runtime().records.get(act, ent.name, record_id)  # 404 when out of sight
    row = {
        k: v for k, v in row.items() if not (ent.fields.get(k) and ent.fields[k].type == "children")
    }
    return _answer(ent, row)


# --- user and team pickers ----------------------------------------------------------------


def people_choices(kind: str, text: str = "", ids: tuple[int, ...] = ()) -> list[tuple[int, str]]:
    """Active users (``kind`` "user") or teams whose name holds ``text``, the first
    :data:`CHOICES` by name; with ``ids``, just those."""
    accounts = runtime().accounts
    table = accounts.users if kind == "user" else accounts.teams
    title = sa.func.coalesce(table.c.name, table.c.username) if kind == "user" else table.c.name
    query = sa.select(table.c.id, title.label("title")).order_by(title, table.c.id)
    if kind == "user":
        query = query.where(table.c.active.is_(True))
    query = query.where(table.c.id.in_(ids)) if ids else query.limit(CHOICES)
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        columns = [table.c.name] + ([table.c.username] if kind == "user" else [])
        query = query.where(sa.or_(*(c.ilike(like, escape="\\") for c in columns)))
    with runtime().records.reader.connect() as conn:
        return [(row.id, str(row.title)) for row in conn.execute(query)]


@ui.get("/app/_people/options")
def people_options() -> ResponseReturnValue:
    """``<option>``s of the users or teams matching ``_q``, for a user or team picker."""
    actor()  # signed in
    kind = request.args.get("kind", "user")
    if kind not in ("user", "team"):
        kind = "user"
    text = request.args.get("_q", "").strip()[:100]
    selected = request.args.get("selected", "")
    found = people_choices(kind, text)
    slot = P.Slot(
        "options",
        kind,
        "",
        options=tuple(P.Option(str(i), t, None, str(i) == selected) for i, t in found),
    )
    html = screens().render("options.html", slot=slot)
    return Response(html, 200, content_type="text/html; charset=utf-8")
