"""The OpenAPI paths of imports and exports (:mod:`heddle.data_api`): uploads, runs, error
files, mapping templates and list exports."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ._openapi_paths import error_responses, response
from ._openapi_schemas import ref

JSONSchema = dict[str, Any]
TAG = "imports"
MODES = ["insert", "update", "upsert"]
FILES = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}
    },
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
}

ROW_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["row", "status"],
    "properties": {
        "row": {
            "type": "integer",
            "description": "The row number the spreadsheet shows (the header is row 1).",
        },
        "status": {"enum": ["created", "updated", "unchanged", "merged", "skipped", "error"]},
        "id": {"type": ["integer", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": "integer"},
                    "column": {"type": ["string", "null"]},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
        "duplicate": {"type": ["object", "null"]},
    },
}
RUN_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["id", "kind", "entity", "status", "progress", "report", "links"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"enum": ["import", "export"]},
        "entity": {"type": "string"},
        "status": {"enum": ["queued", "running", "done", "failed", "interrupted"]},
        "filename": {"type": "string"},
        "progress": {
            "type": "object",
            "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
        },
        "options": {"type": "object"},
        "report": {
            "type": "object",
            "description": "mapping (each column and the field it fills, or its problem), "
            "counts by status, committed, dry_run, and the rows (every row up to 1,000; "
            "beyond, the rows with a problem).",
            "properties": {
                "rows": {"type": "array", "items": ROW_SCHEMA},
                "counts": {"type": "object"},
                "mapping": {"type": "array"},
            },
        },
        "error": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "links": {"type": "object"},
    },
}
TEMPLATE_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["id", "name", "entity", "mapping", "options"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "entity": {"type": "string"},
        "user_id": {"type": ["integer", "null"]},
        "mapping": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "options": {"type": "object"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
TEMPLATE_INPUT: JSONSchema = {
    "type": "object",
    "required": ["name", "entity"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "entity": {"type": "string"},
        "mapping": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "options": {"type": "object"},
    },
}
UPLOAD: JSONSchema = {
    "type": "object",
    "required": ["file", "entity"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "CSV (any common encoding), XLSX or JSON.",
        },
        "entity": {"type": "string", "description": "An entity, or user or team."},
        "mode": {"enum": MODES},
        "key": {"type": "string", "description": "The field that finds existing records."},
        "dry_run": {"type": "boolean"},
        "all_or_nothing": {"type": "boolean"},
        "background": {"type": "boolean"},
        "encoding": {
            "type": "string",
            "description": "e.g. gb18030, shift_jis (default: detected).",
        },
        "format": {"enum": ["csv", "xlsx", "json"]},
        "date_order": {"enum": ["ymd", "dmy", "mdy"]},
        "mapping": {"type": "string", "description": "JSON: {header: field or null}."},
        "value_map": {"type": "string", "description": "JSON: {field: {text: value}}."},
        "duplicates": {
            "type": "string",
            "description": "JSON: {rule or *: skip | merge | refuse}.",
        },
        "template": {"type": "string", "description": "A saved template's id or name."},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000},
    },
}


def _id(name: str, what: str) -> JSONSchema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": what,
        "schema": {"type": "integer", "minimum": 1},
    }


def _data(schema: JSONSchema) -> JSONSchema:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def data_paths(spec: APISpec, readable: list[str]) -> None:
    """Imports, their runs and templates, and the export of the lists in ``readable``."""
    spec.tag({"name": TAG, "description": "Imports and exports (docs/import-export.md)."})
    spec.components.schema("ImportRun", RUN_SCHEMA)
    spec.components.schema("ImportTemplate", TEMPLATE_SCHEMA)
    run = _data(ref("ImportRun"))
    upload = {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD}}}
    problems = error_responses(400, 401, 403, 404, 409, 413, 422)
    spec.path(
        path="/imports",
        operations={
            "get": {
                "operationId": "list_imports",
                "summary": "Your import and export runs",
                "tags": [TAG],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": {"type": "object"}}),
                        "The runs, newest first.",
                    ),
                    **error_responses(401),
                },
            },
            "post": {
                "operationId": "create_import",
                "summary": "Import a file",
                "tags": [TAG],
                "description": "Runs at once (201) or, for a large file or background=true, "
                "in the background (202).",
                "requestBody": upload,
                "responses": {
                    "201": response(run, "The run with its report."),
                    "202": response(run, "The run, queued."),
                    **problems,
                },
            },
        },
    )
    spec.path(
        path="/imports/preview",
        operations={
            "post": {
                "operationId": "preview_import",
                "summary": "The mapping of a file",
                "tags": [TAG],
                "requestBody": upload,
                "responses": {
                    "200": response(
                        _data({"type": "object"}), "Headers, mapping and the first rows."
                    ),
                    **problems,
                },
            },
        },
    )
    run_id = _id("run_id", "The run's id.")
    spec.path(
        path="/imports/{run_id}",
        operations={
            "get": {
                "operationId": "get_import",
                "summary": "A run: status, progress, report",
                "tags": [TAG],
                "parameters": [run_id],
                "responses": {"200": response(run, "The run."), **error_responses(401, 404)},
            },
        },
    )
    spec.path(
        path="/imports/{run_id}/resume",
        operations={
            "post": {
                "operationId": "resume_import",
                "summary": "Resume an interrupted run",
                "tags": [TAG],
                "parameters": [run_id],
                "responses": {
                    "202": response(run, "The run, going on."),
                    **error_responses(401, 404, 409, 422),
                },
            },
        },
    )
    spec.path(
        path="/imports/{run_id}/errors",
        operations={
            "get": {
                "operationId": "import_errors",
                "summary": "The rejected rows, as a file",
                "tags": [TAG],
                "parameters": [
                    run_id,
                    {"name": "format", "in": "query", "schema": {"enum": ["csv", "xlsx"]}},
                ],
                "responses": {
                    "200": {
                        "description": "Each rejected row with its row number and messages.",
                        "content": {k: v for k, v in FILES.items() if k != "application/json"},
                    },
                    **error_responses(400, 401, 404, 422),
                },
            },
        },
    )
    template = _data(ref("ImportTemplate"))
    body = {"required": True, "content": {"application/json": {"schema": TEMPLATE_INPUT}}}
    template_id = _id("template_id", "The template's id.")
    spec.path(
        path="/import-templates",
        operations={
            "get": {
                "operationId": "list_import_templates",
                "summary": "Saved mappings",
                "tags": [TAG],
                "parameters": [{"name": "entity", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": ref("ImportTemplate")}), "The templates."
                    ),
                    **error_responses(401),
                },
            },
            "post": {
                "operationId": "create_import_template",
                "summary": "Save a mapping",
                "tags": [TAG],
                "requestBody": body,
                "responses": {
                    "201": response(template, "The template."),
                    **error_responses(400, 401, 409, 415, 422),
                },
            },
        },
    )
    spec.path(
        path="/import-templates/{template_id}",
        operations={
            "get": {
                "operationId": "get_import_template",
                "summary": "A saved mapping",
                "tags": [TAG],
                "parameters": [template_id],
                "responses": {
                    "200": response(template, "The template."),
                    **error_responses(401, 404),
                },
            },
            "put": {
                "operationId": "update_import_template",
                "summary": "Change a saved mapping",
                "tags": [TAG],
                "parameters": [template_id],
                "requestBody": body,
                "responses": {
                    "200": response(template, "The template."),
                    **error_responses(400, 401, 403, 404, 409, 415, 422),
                },
            },
            "delete": {
                "operationId": "delete_import_template",
                "summary": "Delete a mapping",
                "tags": [TAG],
                "parameters": [template_id],
                "responses": {"204": {"description": "Deleted."}, **error_responses(401, 403, 404)},
            },
        },
    )
    if readable:
        spec.path(
            path="/records/{entity}/export",
            operations={
                "get": {
                    "operationId": "export_records",
                    "summary": "A list as a file",
                    "description": "The list's filters, sort, q and fields apply, as for GET "
                    "/records/{entity}; needs the export permission. A big list is exported "
                    "in the background (202).",
                    "tags": [TAG],
                    "parameters": [
                        {
                            "name": "entity",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": readable},
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"enum": ["csv", "xlsx", "json"]},
                        },
                        {"name": "background", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "responses": {
                        "200": {"description": "The file.", "content": FILES},
                        "202": response(run, "The export, running."),
                        **error_responses(400, 401, 403, 404),
                    },
                },
            },
        )
    spec.path(
        path="/exports/{run_id}",
        operations={
            "get": {
                "operationId": "get_export",
                "summary": "A background export",
                "tags": [TAG],
                "parameters": [run_id],
                "responses": {"200": response(run, "The run."), **error_responses(401, 404)},
            },
        },
    )
    spec.path(
        path="/exports/{run_id}/file",
        operations={
            "get": {
                "operationId": "download_export",
                "summary": "A finished export's file",
                "tags": [TAG],
                "parameters": [run_id],
                "responses": {
                    "200": {"description": "The file.", "content": FILES},
                    **error_responses(401, 404, 409),
                },
            },
        },
    )
