"""The OpenAPI paths of downloads and saved reports: ``/reports/<report>/xlsx``,
``/reports/saved`` and what hangs below it (:mod:`heddle.report_api`). The reports and
dashboards themselves are in :func:`heddle._openapi_paths.report_paths`."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from engine.reports.saved import MAX_LABEL
from metamodel import Report

from ._openapi_paths import _data, _report_parameter, error_responses, response
from ._openapi_schemas import JSONSchema, ref

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WORKBOOK = {
    "description": "The report as an XLSX workbook: a header of labels in your language, "
    "numbers as numbers, dates as dates, then the others row and the totals.",
    "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
}
CSV = {
    "description": "The report as CSV (UTF-8 with a byte-order mark).",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
PARAMS = {
    "name": "params",
    "in": "query",
    "required": False,
    "description": "The saved report's parameters, by name (?period=this_month).",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    "style": "form",
    "explode": True,
}


def saved_schemas() -> dict[str, JSONSchema]:
    roles = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    return {
        "SavedReportInput": {
            "type": "object",
            "required": ["label", "report"],
            "additionalProperties": False,
            "properties": {
                "label": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL},
                "role": {**roles, "description": "Shared with this role's users; null: private."},
                "report": {
                    "type": "object",
                    "description": "A report document, as POST /reports/query takes.",
                },
            },
        },
        "SavedReport": {
            "type": "object",
            "required": ["id", "label", "owner_id", "role", "shared", "mine", "report"],
            "properties": {
                "id": {"type": "integer"},
                "label": {"type": "string"},
                "entity": {"type": "string"},
                "owner_id": {"type": "integer"},
                "role": roles,
                "shared": {"type": "boolean"},
                "mine": {"type": "boolean"},
                "report": {"type": "object"},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
    }


def report_download_paths(spec: APISpec, reports: list[Report]) -> None:
    """``/reports/<report>/xlsx`` for each report the caller may run."""
    for report in reports:
        spec.path(
            path=f"/reports/{report.name}/xlsx",
            operations={
                "get": {
                    "operationId": f"xlsx_{report.name}",
                    "summary": f"{report.label.get('en')} as XLSX",
                    "description": "Needs the export permission on the report's entity.",
                    "tags": ["reports"],
                    "parameters": [_report_parameter(report, i) for i in range(len(report.params))],
                    "responses": {"200": WORKBOOK, **error_responses(400, 401, 403, 404)},
                }
            },
        )


def saved_report_paths(spec: APISpec) -> None:
    """The saved ad-hoc reports: save, list, get, delete, run and download."""
    for name, schema in saved_schemas().items():
        spec.components.schema(name, schema)
    one = response(ref("SavedReport"), "The saved report.")
    tags = ["reports"]
    spec.path(
        path="/reports/saved",
        operations={
            "get": {
                "operationId": "list_saved_reports",
                "summary": "The saved reports you may run",
                "description": "Your own, and those shared with one of your roles.",
                "tags": tags,
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": ref("SavedReport")}), "The reports."
                    ),
                    **error_responses(401),
                },
            },
            "post": {
                "operationId": "save_report",
                "summary": "Save an ad-hoc report, private or shared with a role",
                "description": "The report must compile and read only fields you may see.",
                "tags": tags,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("SavedReportInput")}},
                },
                "responses": {"201": one, **error_responses(400, 401, 403, 413, 415)},
            },
        },
    )
    spec.path(
        path="/reports/saved/{id}",
        parameters=[ID],
        operations={
            "get": {
                "operationId": "get_saved_report",
                "summary": "One saved report",
                "tags": tags,
                "responses": {"200": one, **error_responses(401, 404)},
            },
            "delete": {
                "operationId": "delete_saved_report",
                "summary": "Delete a saved report (its owner, or an admin)",
                "tags": tags,
                "responses": {"204": {"description": "Deleted."}, **error_responses(401, 403, 404)},
            },
        },
    )
    result: dict[str, Any] = response(ref("ReportResult"), "The rows, totals and chart.")
    for suffix, answer, what in (
        ("run", result, "Run a saved report"),
        ("csv", CSV, "A saved report as CSV"),
        ("xlsx", WORKBOOK, "A saved report as XLSX"),
    ):
        spec.path(
            path=f"/reports/saved/{{id}}/{suffix}",
            parameters=[ID],
            operations={
                "get": {
                    "operationId": f"{suffix}_saved_report",
                    "summary": what,
                    "description": "Refused (403) when it reads a field you may not see.",
                    "tags": tags,
                    "parameters": [PARAMS],
                    "responses": {"200": answer, **error_responses(400, 401, 403, 404)},
                }
            },
        )
