"""Dashboards: every widget's data in one answer.

A dashboard definition arranges widgets; :func:`run_dashboard` fills each for an actor:
a ``report`` or ``chart`` widget runs its report (one statement each), a ``metric`` its
report's totals, a ``list``, ``tasks`` or ``calendar`` widget the first records of its
entity that its filter keeps. Shared parameters (``?period=this_month``) go to every
report that declares them. A widget the actor may not see carries an ``error`` instead
of data; the others still answer.

>>> run_dashboard(reports, actor, "sales_cockpit", {"period": "this_quarter"})
{'name': 'sales_cockpit', 'label': 'Sales cockpit', 'widgets': [{'name': 'funnel', …}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metamodel import Dashboard, Label, Model, ReportParam

from ..context import Actor
from ..errors import EngineError, NotFound
from ..query import ListQuery, parse_where
from . import Reports

LIST_ROWS = 10  # records a list widget shows


def default_dashboard(model: Model, actor: Actor) -> Dashboard | None:
    """The dashboard ``default_for`` one of ``actor``'s roles (the first, by name), else
    the first meant for one of their roles."""
    roles = sorted(actor.roles | ({"admin"} if actor.is_admin else set()))
    ordered = sorted(model.dashboards.values(), key=lambda d: d.name)
    for dashboard in ordered:
        if set(dashboard.default_for) & set(roles):
            return dashboard
    for dashboard in ordered:
        if set(dashboard.spec.get("roles", ())) & set(roles):
            return dashboard
    return None


def dashboard_list(model: Model, actor: Actor) -> list[dict[str, Any]]:
    """Every dashboard: whether it is meant for one of the caller's roles (``mine``) and
    whether it is their default, with its shared parameters."""
    home = default_dashboard(model, actor)
    return [
        {
            "name": d.name,
            "label": d.label.get(actor.locale),
            "roles": list(d.spec.get("roles", ())),
            "mine": actor.is_admin or bool(set(d.spec.get("roles", ())) & actor.roles),
            "default": home is not None and home.name == d.name,
            "params": [_param(p, actor.locale) for p in d.params],
        }
        for d in model.dashboards.values()
    ]


def _param(param: ReportParam, locale: str) -> dict[str, Any]:
    return {
        "name": param.name,
        "label": param.label.get(locale),
        "type": param.type,
        "default": param.default,
        "required": param.required,
    }


def run_dashboard(
    reports: Reports, actor: Actor, name: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    model = reports.model
    dashboard = default_dashboard(model, actor) if name == "default" else model.dashboards.get(name)
    if dashboard is None:
        raise NotFound(f"no dashboard named '{name}'")
    locale = actor.locale
    shared = {p.name: params.get(p.name, p.default) for p in dashboard.params}
    given = {**{k: v for k, v in params.items() if k not in shared}, **shared}
    widgets = []
    for spec in dashboard.spec.get("widgets", ()):
        widget: dict[str, Any] = {
            "name": spec["name"],
            "label": _label(spec, model, locale),
            "type": spec["type"],
            "width": spec.get("width", 6),
        }
        try:
            widget["data"] = _data(reports, actor, spec, given)
        except EngineError as exc:
            widget["error"] = exc.to_dict()["error"]
        widgets.append(widget)
    return {
        "name": dashboard.name,
        "label": dashboard.label.get(locale),
        "params": [{**_param(p, locale), "value": shared[p.name]} for p in dashboard.params],
        "widgets": widgets,
    }


def _label(spec: Mapping[str, Any], model: Model, locale: str) -> str:
    if "label" in spec:
        return Label.of(spec["label"]).get(locale)
    if "report" in spec and spec["report"] in model.reports:
        return str(model.reports[spec["report"]].label.get(locale))
    return str(spec["name"]).replace("_", " ").capitalize()


def _data(
    reports: Reports, actor: Actor, spec: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    if "report" in spec:
        report = reports.report(spec["report"])
        declared = {p.name for p in report.params}
        given = {k: v for k, v in params.items() if k in declared and v is not None}
        for key, value in (spec.get("params") or {}).items():
            if isinstance(value, str) and value in params:
                value = params[value]  # a dashboard parameter's value
            if value is None:
                given.pop(key, None)
            else:
                given[key] = value
        result = reports.run(actor, report, given).to_dict()
        if spec["type"] == "metric":
            return {"totals": result["totals"], "columns": result["columns"]}
        return result
    entity = spec.get("entity")
    if entity is None:
        return {"rows": []}
    where = parse_where(reports.model, entity, spec["filter"]) if "filter" in spec else None
    page = reports.records.query(actor, entity, ListQuery(limit=LIST_ROWS, where=where))
    return {"rows": page.rows, "count": page.count, "count_estimated": page.count_estimated}
