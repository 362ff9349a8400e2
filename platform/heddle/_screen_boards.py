"""The kanban and calendar screens of :mod:`heddle.ui`.

- ``/app/<entity>/kanban`` — cards in columns by the kanban view's choice field, with the
  list's filters (``?q=``, ``?owner_id=``…). A drop (or the card's "Move to" select, which
  works without JavaScript) posts to ``/app/<entity>/<id>/move``: on a workflow's state
  field it fires the transition that leads there, through :class:`workflows.StateMachines`
  as the API does; on a plain choice field it updates the field.
- ``/app/<entity>/calendar`` — the records of a month (or ``?mode=week``) on their days by
  the calendar view's date field; ``?date=2026-03-01`` picks the month.

Counts come from one query per column; a column's sum from one ad-hoc report grouped by
the field, so both cover every record the filters and the user's scope select, not only
the cards shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from babel.dates import format_skeleton, get_day_names
from flask import flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from engine import Actor, BadRequest, EngineError, Forbidden, NotFound, StaleVersion
from engine.query import Filter, ListQuery, QueryValueError, parse_params
from engine.reports import Reports
from metamodel import DefinitionError, Entity, Workflow, local_today, report_from_value
from ui_renderer import boards as B
from ui_renderer import pages as P
from workflows import RecordLocked, StateMachines, TransitionRefused

from . import i18n
from ._screen_lists import list_filters
from ._screens import (
    actor,
    expandable,
    local_path,
    locale,
    page,
    readable,
    screens,
    ui,
)
from .extensions import runtime
from .i18n import gettext as _

KANBAN_CARDS = 25  # cards a column shows; the count says how many there are
CALENDAR_ROWS = 500  # records a calendar page reads at most
DAY_ENTRIES = 4  # entries a day of the month shows before "+N more"
RESERVED = frozenset({"view", "sort", "limit", "cursor", "mode", "date", "fields", "expand"})


def query_args() -> dict[str, Any]:
    """The query string's filters and search, without empty values and page parameters."""
    found: dict[str, Any] = {}
    for key, values in request.args.lists():
        kept = [v for v in values if v != ""]
        if kept and key not in RESERVED:
            found[key] = kept if len(kept) > 1 else kept[0]
    return found


def _workflow(ent: Entity, field: str) -> Workflow | None:
    return next((w for w in runtime().model.workflows_of(ent.name) if w.field == field), None)


def _partial(target: str) -> bool:
    return bool(
        request.headers.get("HX-Request")
        and request.headers.get("HX-Target") == target
        and not request.headers.get("HX-History-Restore-Request")
    )


# --- kanban -----------------------------------------------------------------------------------


def _view(entity: str, kind: str, key: str) -> tuple[Actor, Entity, Mapping[str, Any], Any]:
    """The user, the entity, its ``kind`` view (``kanban``, ``calendar``) and the user's
    read grant; a 404 when there is none, or its ``key`` field is hidden from them."""
    act = actor()
    ent = readable(entity, act)
    spec = getattr(ent, kind) or {}
    grant = runtime().records.permissions.grant(act, ent, "read")
    if not spec or spec[key] in grant.hidden:
        raise NotFound(f"{ent.name} has no {kind} view")
    return act, ent, spec, grant


@ui.get("/app/<entity>/kanban")
def kanban(entity: str) -> ResponseReturnValue:
    act, ent, spec, grant = _view(entity, "kanban", "field")
    here, heddle = locale(), runtime()
    field = spec["field"]
    title = spec.get("title") or ent.title_field
    names = [
        n
        for n in spec.get("card_fields", ())
        if n.split(".")[0] not in grant.hidden and n not in (title, field)
    ]
    filters = query_args()
    params: dict[str, Any] = {**filters, "limit": str(KANBAN_CARDS)}
    sort = request.args.get("sort") or P.default_list_view(ent).get("sort")
    if sort:
        params["sort"] = sort if isinstance(sort, str) else ",".join(sort)
    expand = expandable(act, ent, names)
    if expand:
        params["expand"] = ",".join(expand)
    try:
        base = parse_params(heddle.model, ent.name, params)
    except QueryValueError as exc:
        raise BadRequest(str(exc)) from None
    currency = heddle.model.package.currency
    cards: dict[str, list[B.Card]] = {}
    counts: dict[str, tuple[int, bool]] = {}
    for option in ent.fields[field].options:
        query = dataclasses.replace(
            base, filters=(*base.filters, Filter((field,), "eq", option.value))
        )
        result = heddle.records.query(act, ent.name, query)
        cards[option.value] = [B.card(ent, r, field, names, here, currency) for r in result.rows]
        counts[option.value] = (result.count, result.count_estimated)
    sum_field = spec.get("sum")
    totals = None
    sum_slot = None
    if sum_field and sum_field not in grant.hidden and sum_field in ent.fields:
        sums = _column_sums(act, ent, field, sum_field, base)
        if sums is not None:
            sum_slot = P.slot(ent.fields[sum_field], here, currency=currency)
            totals = {k: dataclasses.replace(sum_slot, value=v) for k, v in sums.items()}
    controls, filter_keys = _filter_bar(act, ent, filters, {field}, here)
    update = heddle.records.permissions.grant(act, ent, "update")
    workflow = _workflow(ent, field)
    board = B.Kanban(
        field,
        P.field_label(ent.fields[field], here),
        "state" if workflow else "choice",
        B.kanban_columns(ent, field, here, cards, counts, totals),
        P.choice_options(ent.fields[field], here, ()),
        sum_slot,
        update.allowed and field not in update.readonly | update.hidden,
    )
    screen = P.entity_screen(
        "kanban",
        ent,
        here,
        P.text(ent.plural_label, here, ent.name),
        {
            "board": board,
            "params": filters,
            "filters": controls,
            "filter_keys": sorted(filter_keys),
            "q": filters.get("q", ""),
            "searchable": bool(ent.search_fields),
            "has_calendar": bool(ent.calendar),
            "next_url": request.full_path.rstrip("?"),
            "csrf_token": generate_csrf(),
        },
    )
    if _partial("kanban-board"):
        html = screens().render("kanban_board.html", screen=screen)
        return Response(html, 200, content_type="text/html; charset=utf-8")
    return page("kanban.html", screen.plural_label, ent.name, screen=screen)


def _filter_bar(
    act: Actor, ent: Entity, filters: Mapping[str, Any], left_out: set[str], here: str
) -> tuple[list[dict[str, Any]], set[str]]:
    """The list's filter controls for the default list view's columns, but ``left_out``
    (the kanban's own field, the calendar's dates), and the query keys they set."""
    hidden = runtime().records.permissions.grant(act, ent, "read").hidden
    columns = [
        n
        for n in P.default_list_view(ent)["columns"]
        if n not in left_out and n.split(".")[0] not in hidden
    ]
    args = {k: v if isinstance(v, list) else [v] for k, v in filters.items()}
    return list_filters(act, ent, columns, args, here)


def _literal(value: Any) -> str | None:
    """A filter value written in the expression language, or None when it cannot be."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return str(value)
    if isinstance(value, str) and "'" not in value and "\\" not in value:
        return f"'{value}'"
    return None


OPERATORS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _expression(query: ListQuery) -> str | None:
    """The query's filters as a report filter; None when one has no such form."""
    if query.search or query.where is not None:
        return None
    parts = []
    for f in query.filters:
        path = ".".join(f.path)
        if f.op in OPERATORS:
            text = _literal(f.value)
            if text is None:
                return None
            parts.append(f"{path} {OPERATORS[f.op]} {text}")
        elif f.op == "in" and isinstance(f.value, tuple):
            items = [_literal(v) for v in f.value]
            if any(i is None for i in items):
                return None
            parts.append(f"{path} in [{', '.join(str(i) for i in items)}]")
        else:
            return None
    return " and ".join(parts)


def _column_sums(
    act: Actor, ent: Entity, field: str, sum_field: str, query: ListQuery
) -> dict[str, Any] | None:
    """The sum of ``sum_field`` per value of ``field`` over every record the filters select
    (one report statement); None when the filters cannot be written as a report's."""
    where = _expression(query)
    if where is None:
        return None
    document: dict[str, Any] = {
        "entity": ent.name,
        "group_by": [field],
        "measures": [{"name": "total", "aggregate": "sum", "field": sum_field}],
    }
    if where:
        document["filter"] = where
    heddle = runtime()
    try:
        report = report_from_value(heddle.model, document)
        result = Reports(heddle.records).run(act, report, {}, adhoc=True)
    except (DefinitionError, EngineError):
        return None
    return {str(r[field]): r["total"] for r in result.rows if r.get(field) is not None}


# --- moving a card --------------------------------------------------------------------------


class Refused(Exception):
    """A move that did not happen, with the message the card shows."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@ui.post("/app/<entity>/<record_id>/move")
def move(entity: str, record_id: int) -> ResponseReturnValue:
    """Move a card to another column: fire the transition there, or set the choice."""
    act, ent, spec, _grant = _view(entity, "kanban", "field")
    here, heddle = locale(), runtime()
    field = spec["field"]
    row = heddle.records.get(act, ent.name, record_id)  # 404 when out of sight
    target = request.form.get("to", "")
    labels = {o.value: o.label for o in P.choice_options(ent.fields[field], here, ())}
    text = request.form.get("version", "")
    version = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None
    back = local_path(request.form.get("next") or url_for("ui.kanban", entity=ent.name))
    wants_json = request.headers.get("X-Heddle-Move") == "1"
    try:
        if target not in labels:
            raise Refused(_("There is no column “%(name)s”.", name=target[:50]), 400)
        if target == row.get(field):
            record = row
        else:
            record = _moved(act, ent, field, row, target, version, here)
    except Refused as refused:
        if wants_json:
            return jsonify(ok=False, message=refused.message), refused.status
        flash(refused.message, "error")
        return redirect(back)
    message = _("Moved to “%(column)s”.", column=labels[target])
    if wants_json:
        return jsonify(ok=True, message=message, version=record.get("version"))
    flash(message, "success")
    return redirect(back)


def _moved(
    act: Actor,
    ent: Entity,
    field: str,
    row: Mapping[str, Any],
    target: str,
    version: int | None,
    here: str,
) -> dict[str, Any]:
    heddle = runtime()
    workflow = _workflow(ent, field)
    try:
        if workflow is None:
            return heddle.records.update(
                act, ent.name, int(row["id"]), {field: target}, version=version or row["version"]
            )
        state = str(row.get(field))
        steps = [t for t in workflow.transitions if t.to == target and t.allowed_from(state)]
        mine = [t for t in steps if StateMachines.may_fire(act, t)]
        if not steps:
            raise Refused(
                _(
                    "There is no step from “%(from)s” to “%(to)s”.",
                    **{"from": _state(workflow, state, here), "to": _state(workflow, target, here)},
                )
            )
        if not mine:
            raise Refused(
                _("Your role may not move it to “%(to)s”.", to=_state(workflow, target, here)), 403
            )
        step = mine[0]
        try:
            return StateMachines(heddle.records).fire(
                act, ent.name, int(row["id"]), step.name, version=version or row["version"]
            )
        except TransitionRefused as exc:
            condition = exc.details.get("guard") if exc.details else None
            if condition:
                raise Refused(
                    _(
                        "“%(step)s” is not possible now: %(condition)s does not hold.",
                        step=step.label.get(here),
                        condition=condition,
                    )
                ) from None
            raise
        except EngineError as exc:
            if exc.fields and exc.status == 422:
                names = ", ".join(
                    _("a comment") if n == "comment" else P.column_label(ent, n, here)
                    for n in exc.fields
                )
                raise Refused(
                    _(
                        "“%(step)s” needs %(fields)s: open the record, fill it in and try again.",
                        step=step.label.get(here),
                        fields=names,
                    ),
                    422,
                ) from None
            raise
    except StaleVersion:
        raise Refused(_("Someone else changed it meanwhile: reload the board.")) from None
    except RecordLocked:
        raise Refused(_("It is locked in its current state.")) from None
    except (Forbidden, NotFound):
        raise Refused(_("You may not change this record."), 403) from None
    except EngineError as exc:
        if exc.fields:
            first = next(iter(exc.fields.items()))
            shown = f"{P.column_label(ent, first[0], here)}: {i18n.gettext(first[1][0])}"
            raise Refused(shown, exc.status) from None
        raise Refused(i18n.gettext(exc.message), exc.status) from None


def _state(workflow: Workflow, name: str, here: str) -> str:
    try:
        return str(workflow.state(name).label.get(here))
    except (KeyError, LookupError):
        return name


# --- calendar -----------------------------------------------------------------------------------


def _anchor(act: Actor) -> dt.date:
    text = request.args.get("date", "")
    today = act.today or local_today()
    if not text:
        return today
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise BadRequest(
            _("“%(value)s” is not a date (write it like 2026-03-01).", value=text[:20])
        ) from None


def _day_of(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.astimezone().date()  # the day in the deployment's time zone
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


@ui.get("/app/<entity>/calendar")
def calendar(entity: str) -> ResponseReturnValue:
    act, ent, spec, grant = _view(entity, "calendar", "start")
    here, heddle = locale(), runtime()
    mode = "week" if request.args.get("mode") == "week" else "month"
    anchor = _anchor(act)
    first, end = B.week_span(anchor) if mode == "week" else B.month_span(anchor.replace(day=1))
    start_field, end_field = spec["start"], spec.get("end")
    if end_field in grant.hidden:
        end_field = None
    color_field = spec.get("color") if spec.get("color") not in grant.hidden else None
    filters = query_args()
    controls, filter_keys = _filter_bar(act, ent, filters, {start_field, end_field or ""}, here)
    params = {
        **filters,
        f"{start_field}__gte": first.isoformat(),
        f"{start_field}__lt": end.isoformat(),
        "sort": start_field,
        "limit": str(CALENDAR_ROWS),
    }
    try:
        query = parse_params(heddle.model, ent.name, params)
    except QueryValueError as exc:
        raise BadRequest(str(exc)) from None
    result = heddle.records.query(act, ent.name, query)
    entries = _entries(ent, result.rows, start_field, end_field, color_field, here, end)
    today = act.today or local_today()
    names = get_day_names("abbreviated", locale=here)
    grid = B.calendar_grid(mode, anchor, entries, today, [names[i] for i in range(7)])
    heading = (
        format_skeleton("yMMMM", grid.start, locale=here)
        if mode == "month"
        else f"{format_skeleton('yMMMd', first, locale=here)} – "
        f"{format_skeleton('yMMMd', end - dt.timedelta(days=1), locale=here)}"
    )
    screen = P.entity_screen(
        "calendar",
        ent,
        here,
        P.text(ent.plural_label, here, ent.name),
        {
            "calendar": grid,
            "heading": heading,
            "params": filters,
            "start_field": start_field,
            "filters": controls,
            "filter_keys": sorted(filter_keys),
            "q": filters.get("q", ""),
            "searchable": bool(ent.search_fields),
            "day_entries": DAY_ENTRIES if mode == "month" else CALENDAR_ROWS,
            "truncated": result.next_cursor is not None,
            "has_kanban": bool(ent.kanban),
            "can_create": heddle.records.permissions.grant(act, ent, "create").allowed,
        },
    )
    if _partial("calendar"):
        html = screens().render("calendar_grid.html", screen=screen)
        return Response(html, 200, content_type="text/html; charset=utf-8")
    return page("calendar.html", screen.plural_label, ent.name, screen=screen)


def _entries(
    ent: Entity,
    rows: list[dict[str, Any]],
    start_field: str,
    end_field: str | None,
    color_field: str | None,
    here: str,
    until: dt.date,
) -> dict[dt.date, list[B.Entry]]:
    """Each record on its start day, and on every following day up to its end."""
    found: dict[dt.date, list[B.Entry]] = {}
    colours = {}
    if color_field and color_field in ent.fields:
        colours = {o.value: o for o in P.choice_options(ent.fields[color_field], here, ())}
    for row in rows:
        day = _day_of(row.get(start_field))
        if day is None:
            continue
        value = row.get(start_field)
        time = value.astimezone().strftime("%H:%M") if isinstance(value, dt.datetime) else ""
        option = colours.get(str(row.get(color_field))) if color_field else None
        entry = B.Entry(
            int(row["id"]),
            P.record_title(ent, row, here),
            time,
            option.color if option else None,
            option.label if option else "",
        )
        last = _day_of(row.get(end_field)) if end_field else None
        last = min(last or day, until - dt.timedelta(days=1), day + dt.timedelta(days=42))
        while day <= last:
            found.setdefault(day, []).append(entry)
            day += dt.timedelta(days=1)
    return found
