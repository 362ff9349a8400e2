"""The reports and dashboards of the REST API: ``/api/v1/reports``, ``/api/v1/dashboards``.

- ``GET /api/v1/reports`` — the reports the caller may run, with their parameters;
- ``GET /api/v1/reports/<report>?<param>=…`` — run one: ``{"columns", "rows", "totals",
  "chart", "params"}``;
- ``POST /api/v1/reports/query?<param>=…`` — run an ad-hoc report: the body is a report
  document (``entity``, ``group_by``, ``measures``…, as in a definition file), the
  response the same. A mistake in it is a 400 whose ``fields`` name each place
  (``measures[0].aggregate``), never a 500;
- ``GET /api/v1/dashboards`` and ``GET /api/v1/dashboards/<name>?<param>=…`` — every
  widget's data in one response (:func:`engine.reports.dashboards.run_dashboard`).

Authentication is the API's (:func:`heddle.api.authenticate`); the work is the engine's
(:class:`engine.reports.Reports`), with the caller's permissions in the SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest
from engine.reports import Reports
from engine.reports.dashboards import run_dashboard
from engine.reports.export import to_csv
from metamodel import DefinitionError, Report, report_from_value

from .api import _body, actor, authenticate
from .extensions import csrf, runtime

reports = Blueprint("reports", __name__, url_prefix="/api/v1")
csrf.exempt(reports)
reports.before_request(authenticate)


def init_app(app: Flask) -> None:
    """The reports and dashboards under ``/api/v1``."""
    app.register_blueprint(reports)


def _service() -> Reports:
    return Reports(runtime().records)


def _params() -> Mapping[str, Any]:
    return {k: v if len(v) > 1 else v[0] for k, v in request.args.lists()}


def _summary(report: Report, locale: str) -> dict[str, Any]:
    return {
        "name": report.name,
        "label": report.label.get(locale),
        "entity": report.entity,
        "params": [
            {
                "name": p.name,
                "label": p.label.get(locale),
                "type": p.type,
                "default": p.default,
                "required": p.required,
            }
            for p in report.params
        ],
    }


@reports.get("/reports")
def list_reports() -> ResponseReturnValue:
    """The reports whose entity the caller may read."""
    act = actor()
    return jsonify(data=[_summary(r, act.locale) for r in _service().visible(act)])


@reports.get("/reports/<name>")
def run_report(name: str) -> ResponseReturnValue:
    """One report's rows, totals and chart, for the parameters in the query string."""
    result = _service().run(actor(), name, _params())
    return jsonify(result.to_dict())


@reports.get("/reports/<name>/csv")
def export_report(name: str) -> ResponseReturnValue:
    """The report as CSV, labels in the caller's language; needs the export permission,
    whose scope applies."""
    act = actor()
    result = _service().run(act, name, _params(), action="export")
    response = Response("\ufeff" + to_csv(result, act.locale), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@reports.post("/reports/query")
def run_query() -> ResponseReturnValue:
    """An ad-hoc report: the body is a report document."""
    body = _body()
    try:
        report = report_from_value(runtime().model, body)
    except DefinitionError as exc:
        fields: dict[str, list[str]] = {}
        for problem in exc.problems:
            text = f"{problem.message} ({problem.hint})" if problem.hint else problem.message
            fields.setdefault(problem.path or "report", []).append(text)
        first = next(iter(fields.items()))
        raise BadRequest(f"Invalid report: {first[0]}: {first[1][0]}", fields) from None
    result = _service().run(actor(), report, _params(), adhoc=True)
    return jsonify(result.to_dict())


@reports.get("/dashboards")
def list_dashboards() -> ResponseReturnValue:
    """Every dashboard, and whether it is meant for one of the caller's roles."""
    act = actor()
    return jsonify(
        data=[
            {
                "name": d.name,
                "label": d.label.get(act.locale),
                "roles": list(d.spec.get("roles", ())),
                "mine": act.is_admin or bool(set(d.spec.get("roles", ())) & act.roles),
            }
            for d in runtime().model.dashboards.values()
        ]
    )


@reports.get("/dashboards/<name>")
def get_dashboard(name: str) -> ResponseReturnValue:
    """Every widget's data; the query string's parameters go to the reports that take them."""
    return jsonify(run_dashboard(_service(), actor(), name, _params()))
