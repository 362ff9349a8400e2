"""The reports and dashboards of the REST API: ``/api/v1/reports``, ``/api/v1/dashboards``.

- ``GET /api/v1/reports`` — the reports the caller may run, with their parameters;
- ``GET /api/v1/reports/<report>?<param>=…`` — run one: ``{"columns", "rows", "totals",
  "chart", "params"}``;
- ``GET /api/v1/reports/<report>/csv`` and ``/xlsx`` — the same as a download (the export
  permission's scope applies);
- ``POST /api/v1/reports/query?<param>=…`` — run an ad-hoc report: the body is a report
  document (``entity``, ``group_by``, ``measures``…, as in a definition file), the
  response the same. A mistake in it is a 400 whose ``fields`` name each place
  (``measures[0].aggregate``), never a 500;
- ``/api/v1/reports/saved`` — saved ad-hoc reports (:mod:`engine.reports.saved`):
  ``POST`` saves one (``{"label", "role", "report"}``), ``GET`` lists those the caller
  may run, ``GET /saved/<id>`` gives one, ``DELETE /saved/<id>`` removes it, and
  ``GET /saved/<id>/run?<param>=…`` (``/csv``, ``/xlsx``) runs it;
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

from engine.reports import ReportResult, Reports
from engine.reports.dashboards import dashboard_list, run_dashboard
from engine.reports.export import to_csv, to_xlsx
from engine.reports.saved import SavedReports, compile_document
from metamodel import Report

from .api import _body, actor, authenticate, check_ids
from .extensions import csrf, runtime

reports = Blueprint("reports", __name__, url_prefix="/api/v1")
csrf.exempt(reports)
reports.before_request(authenticate)
reports.url_value_preprocessor(check_ids)


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


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(result: ReportResult, name: str, kind: str, title: str) -> Response:
    """The result as a CSV or XLSX attachment, in the caller's language."""
    locale = actor().locale
    if kind == "csv":
        response = Response("\ufeff" + to_csv(result, locale), mimetype="text/csv")
    else:
        response = Response(to_xlsx(result, locale, title), mimetype=XLSX)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


@reports.get("/reports/<name>/<any(csv, xlsx):kind>")
def export_report(name: str, kind: str) -> ResponseReturnValue:
    """The report as CSV or XLSX, labels in the caller's language; needs the export
    permission, whose scope applies."""
    act = actor()
    service = _service()
    result = service.run(act, name, _params(), action="export")
    return _download(result, name, kind, service.report(name).label.get(act.locale))


@reports.post("/reports/query")
def run_query() -> ResponseReturnValue:
    """An ad-hoc report: the body is a report document."""
    service = _service()
    report = compile_document(service, _body())
    result = service.run(actor(), report, _params(), adhoc=True)
    return jsonify(result.to_dict())


def _saved() -> SavedReports:
    return SavedReports(_service())


@reports.get("/reports/saved")
def list_saved() -> ResponseReturnValue:
    """The saved reports the caller may run: their own, and those shared with a role
    of theirs."""
    return jsonify(data=_saved().list(actor()))


@reports.post("/reports/saved")
def save_report() -> ResponseReturnValue:
    """Save an ad-hoc report: ``{"label", "role" (null: private), "report"}``."""
    return jsonify(_saved().save(actor(), _body())), 201


@reports.get("/reports/saved/<int:saved_id>")
def get_saved(saved_id: int) -> ResponseReturnValue:
    return jsonify(_saved().get(actor(), saved_id))


@reports.delete("/reports/saved/<int:saved_id>")
def delete_saved(saved_id: int) -> ResponseReturnValue:
    _saved().delete(actor(), saved_id)
    return "", 204


@reports.get("/reports/saved/<int:saved_id>/run")
def run_saved(saved_id: int) -> ResponseReturnValue:
    """Run a saved report; refused (403) for a caller who may not read a field it reads."""
    return jsonify(_saved().run(actor(), saved_id, _params()).to_dict())


@reports.get("/reports/saved/<int:saved_id>/<any(csv, xlsx):kind>")
def export_saved(saved_id: int, kind: str) -> ResponseReturnValue:
    saved = _saved()
    found = saved.get(actor(), saved_id)
    result = saved.run(actor(), saved_id, _params(), action="export")
    return _download(result, f"report-{saved_id}", kind, found["label"])


@reports.get("/dashboards")
def list_dashboards() -> ResponseReturnValue:
    """Every dashboard, and whether it is meant for one of the caller's roles."""
    return jsonify(data=dashboard_list(runtime().model, actor()))


@reports.get("/dashboards/<name>")
def get_dashboard(name: str) -> ResponseReturnValue:
    """Every widget's data; the dashboard's parameters (and the reports' own) come from
    the query string. ``default`` is the caller's default dashboard."""
    return jsonify(run_dashboard(_service(), actor(), name, _params()))
