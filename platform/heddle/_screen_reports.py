"""The report and dashboard screens of :mod:`heddle.ui`, and the home page's dashboard.

- ``/reports`` — the reports the user may run; ``/reports/<name>?<param>=…`` — one report:
  its parameters as a form, the chart its result's ``chart`` spec asks for, the table
  with its totals, and a CSV link (``/api/v1/reports/<name>/csv``, the export permission);
- ``/dashboards/<name>?<param>=…`` — the dashboard's widgets in a grid; the parameters of
  its reports are one shared form;
- ``/`` shows the first dashboard meant for one of the user's roles.

The work is the engine's (:class:`engine.reports.Reports`, with the user's permissions in
the SQL); labels come in the page's language.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import request
from flask.typing import ResponseReturnValue

from engine import Actor, BadRequest, NotFound
from engine.reports import Reports
from engine.reports.dashboards import run_dashboard
from metamodel import Dashboard, Report, ReportParam
from ui_renderer import charts as C
from ui_renderer import pages as P

from . import i18n
from ._screens import actor, locale, page, readable, ui, visible_dashboards
from .extensions import runtime
from .i18n import gettext as _

#: The period presets a report's period parameter offers, in this order.
PRESETS = (
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "last_30_days",
    "last_90_days",
    "last_12_months",
    "year_to_date",
)
USER_PARAMS = frozenset({"owner", "owner_id", "user", "assignee"})
TEAM_PARAMS = frozenset({"team", "team_id"})


def preset_labels() -> dict[str, str]:
    return {
        "this_month": _("This month"),
        "last_month": _("Last month"),
        "this_quarter": _("This quarter"),
        "last_quarter": _("Last quarter"),
        "this_year": _("This year"),
        "last_year": _("Last year"),
        "last_30_days": _("Last 30 days"),
        "last_90_days": _("Last 90 days"),
        "last_12_months": _("Last 12 months"),
        "year_to_date": _("Year to date"),
    }


def service() -> Reports:
    return Reports(runtime().records)


def _as_here(act: Actor) -> Actor:
    """The actor with the page's language, so the engine's labels match the screen."""
    return dataclasses.replace(act, locale=locale())


def visible_reports(act: Actor) -> list[Report]:
    return service().visible(act)


def _given(params: Iterable[ReportParam]) -> dict[str, str]:
    """The query string's values for ``params``; a custom span ``<name>__from``/``__to``."""
    found: dict[str, str] = {}
    for param in params:
        value = request.args.get(param.name, "").strip()
        start = request.args.get(f"{param.name}__from", "").strip()
        end = request.args.get(f"{param.name}__to", "").strip()
        if param.type == "period" and (start or end) and value in ("", "custom"):
            value = f"{start or end}..{end or start}"
        if value and value != "custom":
            found[param.name] = value
    return found


def _people() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    accounts = runtime().accounts
    with runtime().engine.connect() as conn:
        users = [(u.id, u.name or u.username) for u in accounts.list_users(conn, active=True)]
        teams = [(t.id, t.name) for t in accounts.list_teams(conn)]
    return users, teams


def param_controls(
    params: Sequence[ReportParam], given: Mapping[str, str], errors: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    """A control per parameter: period presets and a custom span, a user or team select,
    a date, number or text input."""
    here = locale()
    controls = []
    people: tuple[list[tuple[int, str]], list[tuple[int, str]]] | None = None
    labels = preset_labels()
    for param in params:
        value = given.get(param.name, "" if param.default is None else str(param.default))
        control: dict[str, Any] = {
            "name": param.name,
            "label": P.text(param.label, here, param.name),
            "value": value,
            "required": param.required,
            "errors": [_("This value is not valid here.")] if param.name in errors else [],
            "kind": "text",
            "options": (),
        }
        if param.type == "period":
            start, _sep, end = value.partition("..")
            custom = bool(_sep)
            options = [P.Option(p, labels[p], None, p == value) for p in PRESETS]
            if value and not custom and value not in PRESETS:
                options.append(P.Option(value, value, None, True))
            control.update(
                kind="period",
                options=tuple(options),
                custom=custom,
                start=start if custom else "",
                end=end if custom else "",
            )
        elif param.name in USER_PARAMS | TEAM_PARAMS or param.type in ("user", "team"):
            people = people or _people()
            team = param.name in TEAM_PARAMS or param.type == "team"
            choices = people[1] if team else people[0]
            control.update(
                kind="select",
                options=tuple(P.Option(str(i), n, None, str(i) == value) for i, n in choices),
            )
        elif param.type == "boolean":
            control.update(
                kind="select",
                options=(
                    P.Option("true", _("Yes"), None, value == "true"),
                    P.Option("false", _("No"), None, value == "false"),
                ),
            )
        elif param.type in ("date", "integer", "decimal", "money", "percent"):
            control["kind"] = "date" if param.type == "date" else "number"
        controls.append(control)
    return controls


def money_measures(report: Report | None) -> set[str]:
    """The measures that sum or average a money field: shown with the currency."""
    found: set[str] = set()
    model = runtime().model
    for measure in report.measures if report else ():
        if measure.aggregate not in ("sum", "avg", "min", "max") or not measure.path:
            continue
        ent = model.entity(report.entity) if report else None
        for depth, name in enumerate(measure.path):
            field = ent.fields.get(name) if ent else None
            if field is None:
                break
            if depth == len(measure.path) - 1:
                if "money" in (field.type, field.returns):  # a formula may return money
                    found.add(measure.name)
            elif field.to:
                ent = model.entities.get(field.to)
    return found


def chart_block(result: Mapping[str, Any], report: Report | None = None) -> dict[str, Any]:
    """The chart data (as the JSON of a data attribute) and the table of a result."""
    money = money_measures(report)
    if money:
        result = {
            **result,
            "columns": [
                {**c, "type": "money"} if c["name"] in money else c for c in result["columns"]
            ],
        }
    fmt = screens_formatter()
    currency = runtime().model.package.currency
    empty, others = _("(none)"), _("Others")
    data = C.chart_data(result, fmt, currency, empty, others)
    return {
        "chart": data,
        "chart_json": json.dumps(data, ensure_ascii=False) if data else "",
        "table": C.report_table(result, fmt, currency, empty, others, _("Total")),
    }


def screens_formatter() -> i18n.BabelFormatter:
    return i18n.BabelFormatter()


@ui.get("/reports")
def reports_index() -> ResponseReturnValue:
    act, here = actor(), locale()
    model = runtime().model
    items = [
        {
            "name": r.name,
            "label": P.text(r.label, here, r.name),
            "entity": P.text(model.entity(r.entity).plural_label, here, r.entity),
        }
        for r in visible_reports(act)
    ]
    boards = [
        {"name": d.name, "label": P.text(d.label, here, d.name)} for d in visible_dashboards(act)
    ]
    return page("reports.html", _("Reports"), "reports", reports=items, dashboards=boards)


@ui.get("/reports/<name>")
def report(name: str) -> ResponseReturnValue:
    act, here = actor(), locale()
    found = service().report(name)
    readable(found.entity, act)
    given = _given(found.params)
    status, errors, error = 200, {}, ""
    block: dict[str, Any] = {}
    try:
        result = service().run(_as_here(act), found, given).to_dict()
        block = chart_block(result, found)
    except BadRequest as exc:
        status, errors = 400, dict(exc.fields)
        error = _(
            "Some parameters are not valid: %(names)s.",
            names=", ".join(
                P.text(p.label, here, p.name) for p in found.params if p.name in exc.fields
            )
            or ", ".join(exc.fields),
        )
    title = P.text(found.label, here, found.name)
    return page(
        "report.html",
        title,
        "report:" + found.name,
        status,
        report={
            "name": found.name,
            "title": title,
            "entity": found.entity,
            "controls": param_controls(found.params, given, errors),
            "given": given,
            "error": error,
            **block,
        },
    )


def dashboard_view(act: Actor, board: Dashboard, given: Mapping[str, str]) -> dict[str, Any]:
    """Every widget of ``board`` with its chart, number, table or list of records."""
    here = locale()
    model = runtime().model
    params = _shared_params(board)
    data = run_dashboard(service(), _as_here(act), board.name, given)
    widgets = []
    for spec, widget in zip(board.spec.get("widgets", ()), data["widgets"], strict=True):
        shown: dict[str, Any] = {
            "name": widget["name"],
            "label": widget["label"],
            "type": widget["type"],
            "width": C.dashboard_width(widget.get("width")),
            "report": spec.get("report"),
            "entity": spec.get("entity"),
            "error": "",
        }
        if "error" in widget:
            shown["error"] = _("You may not see this, or it could not be run.")
        elif widget["type"] == "metric":
            found = model.reports.get(spec.get("report", ""))
            measures = [c["name"] for c in widget["data"]["columns"] if c.get("role") == "measure"]
            result = {
                **widget["data"],
                "rows": [],
                "chart": {"type": "number", "y": _metric_measure(found, measures)},
            }
            shown.update(chart_block(result, found))
        elif "columns" in widget["data"]:
            shown.update(chart_block(widget["data"], model.reports.get(spec.get("report", ""))))
        else:
            shown["records"] = _records(model, spec.get("entity"), widget["data"], here)
        widgets.append(shown)
    return {
        "name": board.name,
        "title": P.text(board.label, here, board.name),
        "widgets": widgets,
        "controls": param_controls(params, given, {}),
    }


def _metric_measure(report: Report | None, measures: list[str]) -> list[str]:
    """What a metric widget shows: the first measure its report's chart draws, else the
    report's first measure."""
    ys = (report.chart or {}).get("y") if report else None
    wanted = [ys] if isinstance(ys, str) else list(ys or ())
    return [next((y for y in wanted if y in measures), measures[0] if measures else "")]


def _records(model: Any, entity: str | None, data: Mapping[str, Any], here: str) -> dict[str, Any]:
    if not entity or entity not in model.entities:
        return {"entity": "", "rows": [], "count": 0}
    ent = model.entity(entity)
    return {
        "entity": ent.name,
        "rows": [(r["id"], P.record_title(ent, r, here)) for r in data.get("rows", ())],
        "count": data.get("count", 0),
        "estimated": data.get("count_estimated", False),
    }


def _shared_params(board: Dashboard) -> list[ReportParam]:
    """The parameters of the dashboard's reports, each name once."""
    model = runtime().model
    found: dict[str, ReportParam] = {}
    for spec in board.spec.get("widgets", ()):
        report_ = model.reports.get(spec.get("report", ""))
        for param in report_.params if report_ else ():
            found.setdefault(param.name, param)
    return list(found.values())


@ui.get("/dashboards/<name>")
def dashboard(name: str) -> ResponseReturnValue:
    act = actor()
    board = runtime().model.dashboards.get(name)
    if board is None or board not in visible_dashboards(act):
        raise NotFound(f"no dashboard named '{name}'")
    shown = dashboard_view(act, board, _given(_shared_params(board)))
    return page("dashboard.html", shown["title"], "dashboard:" + name, dashboard=shown)


def home_dashboard(act: Actor) -> dict[str, Any] | None:
    """The dashboard of the user's first role that has one (None when none does)."""
    boards = runtime().model.dashboards.values()
    mine = [b for b in boards if set(b.spec.get("roles", ())) & act.roles]
    if not mine:
        return None
    try:
        return dashboard_view(act, mine[0], _given(_shared_params(mine[0])))
    except BadRequest:
        return dashboard_view(act, mine[0], {})
