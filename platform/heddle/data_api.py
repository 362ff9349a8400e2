"""Imports and exports over the REST API (docs/import-export.md):

- ``POST /api/v1/imports`` — upload a file (``multipart/form-data``: ``file``, ``entity``
  and the options) → the import run with its report (``201``), or, for a large file or
  ``background=true``, the run queued (``202``: watch it with ``GET /imports/<id>``);
- ``POST /api/v1/imports/preview`` — the mapping and first rows an upload would give;
- ``GET /api/v1/imports``, ``GET /api/v1/imports/<id>`` (status, progress, report),
  ``POST /api/v1/imports/<id>/resume``, ``GET /api/v1/imports/<id>/errors`` (the error
  file, CSV or XLSX);
- ``/api/v1/import-templates`` — saved mappings: list, create, read, change, delete;
- ``GET /api/v1/records/<entity>/export?format=csv|xlsx|json&<the list's filters>`` — the
  file, or for a big list ``202`` with an export run; ``GET /api/v1/exports/<id>`` and
  ``GET /api/v1/exports/<id>/file`` when it is done.

The work is the engine's (:mod:`engine.imports`): the caller's permissions apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest, NotFound
from engine.imports import MAX_WORKERS, FileTooLarge, ImportOptions, Imports, size_text
from engine.imports._export import MEDIA_TYPES, Export
from workflows.data_jobs import job_executor

from ._people_import import PEOPLE, import_people
from .api import _body, actor, authenticate, check_ids
from .extensions import csrf, runtime
from .import_text import error_file
from .jobs import jobs

data_api = Blueprint("data_api", __name__, url_prefix="/api/v1")
csrf.exempt(data_api)
data_api.before_request(authenticate)

#: Multipart fields that are options, and how each is read.
FLAGS = ("dry_run", "all_or_nothing", "background")
JSON_OPTIONS = ("mapping", "value_map", "duplicates")
TEXT_OPTIONS = ("mode", "key", "encoding", "format", "date_order")


def init_app(app: Flask) -> None:
    """Imports and exports under ``/api/v1``."""
    app.register_blueprint(data_api)


data_api.url_value_preprocessor(check_ids)


@data_api.before_app_request
def allow_big_uploads() -> None:
    """An upload to an import may be as large as HEDDLE_IMPORT_MAX_BYTES (and a little
    for the form around it), whatever the app's body limit is."""
    if request.path.startswith("/api/v1/imports") and request.method == "POST":
        request.max_content_length = _max_bytes() + 64 * 1024


def _max_bytes() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES", 10 * 1024 * 1024))


def _imports() -> Imports:
    """The import service; with Redis, background runs are jobs for ``heddle worker``
    (:mod:`workflows.data_jobs`), else threads of this process."""
    queue = jobs()
    workers = int(queue.options.get("import_workers") or MAX_WORKERS)
    if queue.redis_url:
        return Imports(
            runtime().records, max_bytes=_max_bytes(), executor=job_executor(queue),
            max_workers=workers,
        )  # fmt: skip
    return Imports(runtime().records, max_bytes=_max_bytes(), max_workers=workers)


# --- uploads ---------------------------------------------------------------------------------


def _upload() -> tuple[str, bytes, str, ImportOptions, bool]:
    """The entity, file, file name, options and background flag of a multipart upload."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise BadRequest(
            "send the file as multipart/form-data, with the fields file and entity",
            {"file": ["Missing data for required field."]},
        )
    form = request.form
    upload = request.files.get("file")
    problems: dict[str, list[str]] = {}
    if upload is None:
        problems["file"] = ["Missing data for required field."]
    entity = form.get("entity", "")
    if not entity:
        problems["entity"] = ["Missing data for required field."]
    values: dict[str, Any] = {}
    for name in TEXT_OPTIONS:
        if form.get(name):
            values[name] = form[name]
    for name in ("dry_run", "all_or_nothing"):
        if name in form:
            flag = _flag(form[name])
            if flag is None:
                problems[name] = ["true or false."]
            else:
                values[name] = flag
    for name in JSON_OPTIONS:
        if form.get(name):
            try:
                values[name] = json.loads(form[name])
            except ValueError:
                problems[name] = ["Not valid JSON."]
    if form.get("batch_size"):
        text = form["batch_size"]
        values["batch_size"] = int(text) if text.isdigit() and len(text) < 7 else text
    background = _flag(form.get("background", "false"))
    if background is None:
        problems["background"] = ["true or false."]
    if problems:
        first = next(iter(problems.items()))
        raise BadRequest(f"{first[0]}: {first[1][0]}", problems)
    if form.get("template"):
        values = {**_template_options(form["template"], entity), **values}
    content = upload.read(_max_bytes() + 1) if upload is not None else b""
    if len(content) > _max_bytes():
        limit = size_text(_max_bytes())
        raise FileTooLarge(f"the file is larger than {limit}, the most one import takes: split it")
    filename = (upload.filename or "upload") if upload is not None else ""
    return entity, content, filename, ImportOptions.from_json(values), bool(background)


def _flag(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    return None


def _template_options(ref: str, entity: str) -> dict[str, Any]:
    imports = _imports()
    with runtime().records.reader.connect() as conn:
        found = imports.store.template(conn, int(ref) if ref.isdigit() else ref, entity)
    return {**found["options"], "mapping": found["mapping"]}


@data_api.post("/imports")
def create_import() -> ResponseReturnValue:
    """Import a file; small files at once, large ones in the background."""
    entity, content, filename, options, background = _upload()
    imports = _imports()
    act = actor()
    if entity in PEOPLE:
        run = import_people(imports, runtime().accounts, act, entity, content, filename, options)
        return jsonify(data=_run(run)), 201
    sheet = imports.read(content, filename, options)
    limit = int(current_app.config.get("IMPORT_BACKGROUND_ROWS", 2000))
    if background or len(sheet.rows) > limit:
        run_id = imports.start(act, entity, content, filename, options)
        return jsonify(data=_run(imports.status(act, run_id))), 202
    run = imports.run(act, entity, content, filename, options)
    return jsonify(data=_run(run)), 201


@data_api.post("/imports/preview")
def preview_import() -> ResponseReturnValue:
    """The mapping an import of this file would use, its problems and the first rows."""
    entity, content, filename, options, _ = _upload()
    return jsonify(data=_imports().preview(actor(), entity, content, filename, options))


@data_api.get("/imports")
def list_imports() -> ResponseReturnValue:
    """Your import and export runs, newest first (an administrator's: everyone's)."""
    imports = _imports()
    with runtime().records.reader.connect() as conn:
        runs = imports.store.runs_of(conn, actor())
    return jsonify(data=[_summary(run) for run in runs])


@data_api.get("/imports/<int:run_id>")
def get_import(run_id: int) -> ResponseReturnValue:
    return jsonify(data=_run(_imports().status(actor(), run_id)))


@data_api.post("/imports/<int:run_id>/resume")
def resume_import(run_id: int) -> ResponseReturnValue:
    """Go on with an interrupted run from its checkpoint, in the background."""
    imports = _imports()
    act = actor()
    imports.status(act, run_id)  # only its user, or an administrator
    imports.resume(run_id, background=True)
    return jsonify(data=_run(imports.status(act, run_id))), 202


@data_api.get("/imports/<int:run_id>/errors")
def import_errors(run_id: int) -> ResponseReturnValue:
    """Each rejected row with its row number and messages: CSV (default) or XLSX, the
    headers and messages in the caller's language."""
    format = request.args.get("format", "csv")
    caller = actor()  # the messages in the caller's own language
    content = error_file(_imports(), caller, run_id, format, locale=caller.locale)
    return _file(content, f"import-{run_id}-errors.{format}", MEDIA_TYPES[format])


# --- templates -------------------------------------------------------------------------------


def _template_body() -> tuple[str, str, Mapping[str, Any], Mapping[str, Any]]:
    body = _body()
    entity = body.get("entity")
    known = (*PEOPLE, *runtime().model.entities)
    if not isinstance(entity, str) or entity not in known:
        raise BadRequest("unknown entity", {"entity": ["Unknown entity."]})
    options = body.get("options", {})
    if isinstance(options, Mapping):
        ImportOptions.from_json({k: v for k, v in options.items() if k != "mapping"})
    return body.get("name"), entity, body.get("mapping", {}), options  # type: ignore[return-value]


@data_api.get("/import-templates")
def list_templates() -> ResponseReturnValue:
    imports = _imports()
    with runtime().records.reader.connect() as conn:
        found = imports.store.templates_of(conn, request.args.get("entity"))
    return jsonify(data=found)


@data_api.post("/import-templates")
def create_template() -> ResponseReturnValue:
    name, entity, mapping, options = _template_body()
    imports = _imports()
    with runtime().engine.begin() as conn:
        saved = imports.store.save_template(conn, actor(), name=name, entity=entity,
                                            mapping=mapping, options=options)  # fmt: skip
    return jsonify(data=saved), 201


@data_api.get("/import-templates/<int:template_id>")
def get_template(template_id: int) -> ResponseReturnValue:
    with runtime().records.reader.connect() as conn:
        return jsonify(data=_imports().store.template(conn, template_id))


@data_api.put("/import-templates/<int:template_id>")
def update_template(template_id: int) -> ResponseReturnValue:
    name, entity, mapping, options = _template_body()
    with runtime().engine.begin() as conn:
        saved = _imports().store.save_template(conn, actor(), name=name, entity=entity,
                                               mapping=mapping, options=options,
                                               template_id=template_id)  # fmt: skip
    return jsonify(data=saved)


@data_api.delete("/import-templates/<int:template_id>")
def delete_template(template_id: int) -> ResponseReturnValue:
    with runtime().engine.begin() as conn:
        _imports().store.delete_template(conn, actor(), template_id)
    return "", 204


# --- exports ---------------------------------------------------------------------------------


@data_api.get("/records/<entity>/export")
def export_records(entity: str) -> ResponseReturnValue:
    """The list's records (its filters, sort, search and ``fields``) as a file."""
    params = {k: v if len(v) > 1 else v[0] for k, v in request.args.lists()}
    format = str(params.pop("format", "csv"))
    background = _flag(str(params.pop("background", "false")))
    if format not in MEDIA_TYPES:
        raise BadRequest("format is csv, xlsx or json", {"format": ["One of csv, xlsx, json."]})
    act = actor()
    imports = _imports()
    job = Export(runtime().records, act, entity, params)
    limit = int(current_app.config.get("EXPORT_BACKGROUND_ROWS", 10000))
    if background or job.count(up_to=limit) > limit:
        run_id = imports.start_export(act, entity, params, format)
        return jsonify(data=_run(imports.status(act, run_id))), 202
    return _file(job.write(format), f"{job.entity.name}.{format}", MEDIA_TYPES[format])


@data_api.get("/exports/<int:run_id>")
def get_export(run_id: int) -> ResponseReturnValue:
    status = _imports().status(actor(), run_id)
    if status["kind"] != "export":
        raise NotFound(f"no export with id {run_id}")
    return jsonify(data=_run(status))


@data_api.get("/exports/<int:run_id>/file")
def download_export(run_id: int) -> ResponseReturnValue:
    content, filename, media_type = _imports().download(actor(), run_id)
    return _file(content, filename, media_type)


# --- shapes ----------------------------------------------------------------------------------


def _file(content: bytes, filename: str, media_type: str) -> Response:
    response = Response(content, mimetype=media_type.split(";")[0])
    if media_type.startswith("text/"):
        response.headers["Content-Type"] = media_type
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _run(run: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(run)
    shown["links"] = {"self": f"/api/v1/{'imports' if run['kind'] == 'import' else 'exports'}"
                              f"/{run['id']}"}  # fmt: skip
    if run["kind"] == "import":
        shown["links"]["errors"] = f"/api/v1/imports/{run['id']}/errors"
    elif run["status"] == "done":
        shown["links"]["file"] = f"/api/v1/exports/{run['id']}/file"
    return shown


def _summary(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": run["id"],
        "kind": run["kind"],
        "entity": run["entity"],
        "status": run["status"],
        "filename": run["filename"],
        "progress": {"done": run["done"], "total": run["total"]},
        "created_at": run["created_at"],
        "updated_at": run["updated_at"],
    }
