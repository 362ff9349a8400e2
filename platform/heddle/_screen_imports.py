"""``/app/<entity>/import``: bring a spreadsheet in from the browser, checked first.

The page takes a file (CSV in any common encoding, XLSX, JSON) and what to do with it —
add new records, update records found by a key, or both — and checks it first: a dry run
through :class:`engine.imports.Imports`, the same service as ``heddle import`` and
``POST /api/v1/imports``, so mapping, conversion, permissions, validation and duplicate
rules are exactly theirs. The run's page (``/app/imports/<id>``) shows how each column was
read, the counts and every rejected row with its column and message; a checked file is
then imported for real from there — the valid rows, or all of them or none — without
sending it again. A file larger than ``HEDDLE_IMPORT_BACKGROUND_ROWS`` runs in the
background (a worker's job with Redis, else a thread), and its page refreshes itself
until it is done. Rejected rows download as CSV or XLSX, row numbers as the spreadsheet
shows them. A user sees only their own runs; an administrator sees everyone's.

A list exports as it shows (``/app/<entity>/export?format=xlsx`` with the list's query
string): its view's filter and sort, the filters and search, the view's columns the user
may read, every page — through :class:`engine.imports.Export`, the API's export, so the
export permission's scope applies. A list of more than ``HEDDLE_EXPORT_BACKGROUND_ROWS``
records is written in the background; ``/app/imports`` (the user's imports and exports)
has its file once it is ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import current_app, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import Actor, EngineError, NotFound
from engine.fieldtypes import writable
from engine.imports import (
    DUPLICATE_CHOICES,
    MEDIA_TYPES,
    MODES,
    Export,
    FileTooLarge,
    ImportOptions,
)
from metamodel import Entity
from ui_renderer import pages as P

from . import i18n
from ._screen_files import size_text
from ._screens import actor, locale, page, readable, ui
from .data_api import _imports, _max_bytes
from .extensions import runtime
from .i18n import gettext as _
from .import_text import error_file, said

#: Room for the rest of the form around the file.
FORM_ROOM = 64 * 1024
#: Rejected rows listed on a run's page (the error file holds them all).
ROWS_SHOWN = 200
#: Runs listed on /app/imports, newest first.
RUNS_SHOWN = 50
#: A running import's page reloads itself this often, in seconds.
REFRESH_SECONDS = 2


def import_url(act: Actor, ent: Entity) -> str | None:
    """The import page of ``ent``, when the user may import it (a list page's button)."""
    if ent.child or not runtime().records.permissions.grant(act, ent, "import").allowed:
        return None
    return url_for("ui.import_form", entity=ent.name)


@ui.before_app_request
def allow_import_uploads() -> None:
    """A file to import may be as large as HEDDLE_IMPORT_MAX_BYTES, whatever the app's
    body limit (or an attachment's) is."""
    if request.method == "POST" and request.path.startswith("/app/") and (
        request.path.endswith("/import")
    ):
        request.max_content_length = _max_bytes() + FORM_ROOM


# --- the form ------------------------------------------------------------------------------


def _importable(entity: str) -> tuple[Actor, Entity]:
    """The user and the entity, if they may import it: the same 404 otherwise."""
    act = actor()
    ent = readable(entity, act)
    if import_url(act, ent) is None:
        raise NotFound(f"you may not import {entity}")
    return act, ent


def _key_fields(ent: Entity) -> list[dict[str, str]]:
    """The fields an update may find its records by: the id, then unique and text fields
    (an external id is the usual one)."""
    here = locale()
    found = [{"value": "id", "label": "ID"}]
    for field in ent.fields.values():
        if field.computed or field.type not in ("string", "autonumber", "email", "phone"):
            continue
        found.append({"value": field.name, "label": field.label.get(here) or field.name})
    return found


def _form(ent: Entity, typed: Mapping[str, str], problem: str = "", status: int = 200) -> Response:
    here = locale()
    modes = {
        "insert": _("Add new records"),
        "update": _("Update the records the key finds"),
        "upsert": _("Update the records the key finds, add the others"),
    }
    duplicates = {
        "refuse": _("Reject the row"),
        "skip": _("Skip the row"),
        "merge": _("Merge the row into the record it repeats"),
    }
    mode = typed.get("mode") or "insert"
    duplicate = typed.get("duplicates") or "refuse"
    encodings = {
        "": _("Recognise it"),
        "utf-8": "UTF-8",
        "gb18030": _("GB18030 (Chinese)"),
        "shift_jis": _("Shift_JIS (Japanese)"),
        "big5": _("Big5 (traditional Chinese)"),
    }
    orders = {
        "ymd": _("Year, month, day (2026/12/07)"),
        "dmy": _("Day, month, year (07/12/2026)"),
        "mdy": _("Month, day, year (12/07/2026)"),
    }
    with runtime().records.reader.connect() as conn:
        templates = _imports().store.templates_of(conn, ent.name)
    chosen = typed.get("template") or ""
    return page(
        "import_form.html",
        _("Import %(what)s", what=ent.plural_label.get(here)),
        active=ent.name,
        status=status,
        entity=ent.name,
        entity_label=ent.label.get(here),
        plural_label=ent.plural_label.get(here),
        action=url_for("ui.import_file", entity=ent.name),
        list_url=url_for("ui.list_records", entity=ent.name),
        runs_url=url_for("ui.import_runs"),
        modes=[{"value": m, "label": modes[m], "selected": m == mode} for m in MODES],
        keys=[{**k, "selected": typed.get("key") == k["value"]} for k in _key_fields(ent)],
        duplicates=[
            {"value": d, "label": duplicates[d], "selected": d == duplicate}
            for d in DUPLICATE_CHOICES
        ],
        templates=_options({str(t["id"]): t["name"] for t in templates}, chosen),
        encodings=_options(encodings, typed.get("encoding") or ""),
        orders=_options(orders, typed.get("date_order") or "ymd"),
        all_or_nothing=typed.get("all_or_nothing") == "true",
        max_size=size_text(_max_bytes()),
        problem=problem,
    )


def _options(labels: Mapping[str, str], chosen: str) -> list[dict[str, Any]]:
    return [{"value": v, "label": label, "selected": v == chosen} for v, label in labels.items()]


@ui.get("/app/<entity>/import")
def import_form(entity: str) -> ResponseReturnValue:
    _, ent = _importable(entity)
    return _form(ent, request.args)


@ui.post("/app/<entity>/import")
def import_file(entity: str) -> ResponseReturnValue:
    """Check the file (a dry run), or import it at once; then its run's page."""
    act, ent = _importable(entity)
    form = request.form
    upload = request.files.get("file")
    names = ("mode", "key", "duplicates", "all_or_nothing", "encoding", "date_order", "template")
    typed = {name: form.get(name, "") for name in names}
    if upload is None or not upload.filename:
        return _form(ent, typed, _("Choose a file to import."), 400)
    values: dict[str, Any] = {
        "mode": typed["mode"] or "insert",
        "dry_run": form.get("do") != "import",
        "all_or_nothing": typed["all_or_nothing"] == "true",
        "duplicates": {"*": typed["duplicates"] or "refuse"},
    }
    if values["mode"] != "insert":
        values["key"] = typed["key"] or None
    for name in ("encoding", "date_order"):
        if typed[name]:
            values[name] = typed[name]
    try:
        if typed["template"]:  # its columns and values; what the form says wins
            values = {**_template(typed["template"], ent.name), **values}
        options = ImportOptions.from_json(values)
        content = upload.read(_max_bytes() + 1)
        if len(content) > _max_bytes():
            raise FileTooLarge(_("The file is too large: split it into smaller files."))
        run_id = _start(act, ent.name, content, upload.filename, options)
    except EngineError as exc:
        return _form(ent, typed, _refusal(exc), 400 if exc.status < 500 else exc.status)
    return redirect(url_for("ui.import_run", run_id=run_id), 303)


def _template(ref: str, entity: str) -> dict[str, Any]:
    """The options a saved template gives an import: its mapping and value map."""
    if not ref.isdigit() or len(ref) > 18:
        raise NotFound(f"no import template {ref!r}")
    with runtime().records.reader.connect() as conn:
        found = _imports().store.template(conn, int(ref))
    if found["entity"] != entity:
        raise NotFound(f"no import template {ref!r} of {entity}")
    kept = {k: v for k, v in found["options"].items() if k in ("value_map", "date_order")}
    return {**kept, "mapping": found["mapping"]}


def _start(act: Actor, entity: str, content: bytes, filename: str, options: ImportOptions) -> int:
    """Run the import now, or in the background when the file is large (as the API)."""
    imports = _imports()
    sheet = imports.read(content, filename, options)
    if _large(len(sheet.rows)):
        return imports.start(act, entity, content, filename, options)
    return int(imports.run(act, entity, content, filename, options)["id"])


def _large(rows: int) -> bool:
    """Whether an import of ``rows`` runs in the background (as through the API)."""
    return rows > int(current_app.config.get("IMPORT_BACKGROUND_ROWS", 2000))


def _download(content: bytes, filename: str, media_type: str) -> Response:
    response = Response(content, content_type=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _refusal(exc: EngineError) -> str:
    """What went wrong, in the user's language where the engine's message is known."""
    shown = i18n.gettext(exc.message)
    details = exc.fields or {}
    if details:
        name, messages = next(iter(details.items()))
        if messages:
            shown = f"{shown} ({name}: {i18n.gettext(str(messages[0]))})"
    return shown


# --- exporting a list ----------------------------------------------------------------------


def export_urls(act: Actor, ent: Entity) -> dict[str, str]:
    """The list's export links by format, keeping its query string (none when the user
    may not export the entity)."""
    if ent.child or not runtime().records.permissions.grant(act, ent, "export").allowed:
        return {}
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "format")]
    found = {}
    for format in ("xlsx", "csv"):
        query = urlencode([*args, ("format", format)])
        found[format] = f"{url_for('ui.export_list', entity=ent.name)}?{query}"
    return found


@ui.get("/app/<entity>/export")
def export_list(entity: str) -> ResponseReturnValue:
    """The list as it shows — its view's filter and sort, the filters, the search and the
    columns the user may read — as XLSX or CSV, every page of it; a file of more than
    HEDDLE_EXPORT_BACKGROUND_ROWS records is written in the background (its run's page
    has the file when it is ready)."""
    act = actor()
    ent = readable(entity, act)
    format = request.args.get("format", "xlsx")
    if format not in ("xlsx", "csv") or not export_urls(act, ent):
        raise NotFound(f"no export of {entity} as {format}")
    args = {k: [v for v in vs if v != ""] for k, vs in request.args.lists()}
    view = P.default_list_view(ent, (args.get("view") or [""])[0])
    hidden = runtime().records.permissions.grant(act, ent, "read").hidden
    columns = [c for c in view["columns"] if "." not in c and c not in hidden]
    params: dict[str, Any] = {
        k: v if len(v) > 1 else v[0]
        for k, v in args.items()
        if v and k not in ("view", "saved", "cursor", "limit", "format", "fields", "expand")
    }
    if "sort" not in params and view.get("sort"):
        sort = view["sort"]
        params["sort"] = sort if isinstance(sort, str) else ",".join(sort)
    params["fields"] = ",".join(columns)
    where = view.get("filter") or None
    imports = _imports()
    job = Export(runtime().records, act, ent.name, params, where=where)
    limit = int(current_app.config.get("EXPORT_BACKGROUND_ROWS", 10000))
    if job.count(up_to=limit) > limit:
        run_id = imports.start_export(act, ent.name, params, format, where=where)
        flash(_("The list is large: its file is being written. It will be here when ready."),
              "info")  # fmt: skip
        return redirect(url_for("ui.import_runs", _anchor=f"run-{run_id}"), 303)
    return _download(job.write(format), f"{ent.name}.{format}", MEDIA_TYPES[format])


@ui.get("/app/exports/<int:run_id>/file")
def export_file(run_id: int) -> ResponseReturnValue:
    """A list's file written in the background, once it is ready."""
    return _download(*_imports().download(actor(), run_id))


# --- the runs ------------------------------------------------------------------------------


@ui.get("/app/imports")
def import_runs() -> ResponseReturnValue:
    """The user's imports and exports, newest first (an administrator's: everyone's), to
    come back to one that runs in the background, to its rejected rows or to its file."""
    act, here = actor(), locale()
    imports = _imports()
    with runtime().records.reader.connect() as conn:
        runs = imports.store.runs_of(conn, act, limit=RUNS_SHOWN)
    model = runtime().model
    when = i18n.BabelFormatter()
    shown = []
    busy = False
    for run in runs:
        ent = model.entities.get(run["entity"])
        status = imports.status_of(run)  # "interrupted" when stale
        export = run["kind"] == "export"
        busy = busy or status in ("queued", "running")
        if export:
            url = url_for("ui.export_file", run_id=run["id"]) if status == "done" else None
        else:
            url = url_for("ui.import_run", run_id=run["id"])
        shown.append({
            "id": run["id"],
            "kind": _("Export") if export else _("Import"),
            "url": url,
            "filename": run["filename"] or f"{run['entity']}.{run['options'].get('format')}",
            "entity": ent.plural_label.get(here) if ent is not None else run["entity"],
            "when": when.datetime(run["created_at"]),
            "status": _export_status(status) if export else _status_label(
                status, bool(run["options"].get("dry_run"))),
            "done": imports.progress(run)[0],
            "total": imports.progress(run)[1],
        })  # fmt: skip
    return page("import_runs.html", _("Your imports and exports"), runs=shown,
                all=act.is_admin, refresh=REFRESH_SECONDS if busy else None)  # fmt: skip


def _export_status(status: str) -> str:
    return {
        "queued": _("Waiting to start"),
        "running": _("Writing the file…"),
        "done": _("Ready to download"),
        "failed": _("Failed"),
    }.get(status, status)


# --- a run ---------------------------------------------------------------------------------


@ui.get("/app/imports/<int:run_id>")
def import_run(run_id: int) -> ResponseReturnValue:
    act = actor()
    run = _imports().status(act, run_id)
    if run["kind"] != "import":
        raise NotFound(f"no import run with id {run_id}")
    ent = readable(run["entity"], act)
    here = locale()
    report = run["report"] or {}
    options = run["options"]
    status = run["status"]
    busy = status in ("queued", "running")
    rejected = [r for r in report.get("rows", []) if r.get("status") in ("error", "skipped")]
    fields = {f.name: f.label.get(here) for f in ent.fields.values()}
    problems = [
        {"row": r["row"], "status": r["status"],
         "messages": [{"column": e.get("column") or fields.get(e.get("field", ""), ""),
                       "message": said(e, ent, here)}
                      for e in r.get("errors", [])] or [{"column": "", "message": ""}]}
        for r in rejected[:ROWS_SHOWN]
    ]  # fmt: skip
    mapping = [
        {"header": m.get("header", ""), "field": fields.get(m.get("field") or "", m.get("field")),
         "problem": i18n.gettext(m["problem"]) if m.get("problem") else ""}
        for m in report.get("mapping", [])
    ]  # fmt: skip
    columns = _columns(ent, report.get("mapping", []), here) if _checked(run) else []
    unknown = _unknown_choices(ent, rejected, here) if _checked(run) else []
    counts = report.get("counts", {})
    shown = [n for n in ("created", "updated", "unchanged", "merged", "skipped", "error")
             if counts.get(n) or n in ("created", "error")]  # fmt: skip
    checked = _checked(run)
    return page(
        "import_run.html",
        _("Import of %(file)s", file=run["filename"]),
        active=ent.name,
        run=run,
        entity_label=ent.plural_label.get(here),
        list_url=url_for("ui.list_records", entity=ent.name),
        form_url=url_for("ui.import_form", entity=ent.name),
        runs_url=url_for("ui.import_runs"),
        status_label=_status_label(status, bool(options.get("dry_run"))),
        busy=busy,
        refresh=REFRESH_SECONDS if busy else None,
        done=run["progress"]["done"],
        total=run["progress"]["total"],
        counts=[{"name": n, "label": _count_label(n), "value": counts.get(n, 0)} for n in shown],
        dry_run=bool(options.get("dry_run")),
        committed=bool(report.get("committed")),
        mapping=mapping,
        columns=columns,
        unknown=unknown,
        remap_url=url_for("ui.import_remap", run_id=run_id) if columns else None,
        template_url=url_for("ui.import_template", run_id=run_id) if columns else None,
        problems=problems,
        more=max(0, len(rejected) - ROWS_SHOWN),
        rejected=counts.get("error", 0) + counts.get("skipped", 0),
        checked=checked,
        would_write=sum(counts.get(n, 0) for n in ("created", "updated", "merged")),
        import_url=url_for("ui.import_checked", run_id=run_id) if checked else None,
        errors_csv=url_for("ui.import_errors", run_id=run_id, format="csv"),
        errors_xlsx=url_for("ui.import_errors", run_id=run_id, format="xlsx"),
        error=i18n.gettext(run["error"]) if run.get("error") else "",
        problem=request.args.get("problem", "")[:500],
    )


def _checked(run: Mapping[str, Any]) -> bool:
    """A dry run that is over: its file may be imported for real, or checked again."""
    return bool(run["options"].get("dry_run")) and run["status"] == "done"


def _targets(ent: Entity, here: str) -> list[tuple[str, str]]:
    """The fields a column may fill, (field, label) each: the entity's, its owner and
    team, and its child rows' (``lines.product``)."""
    model = runtime().model
    found = [("id", "ID")]
    if ent.ownable:
        found += [("owner_id", _("Owner")), ("team_id", _("Team"))]
    for field in ent.fields.values():
        if field.type == "children":
            child = model.entity(field.children or "")
            found += [(f"{field.name}.{f.name}", f"{field.label.get(here)} · {f.label.get(here)}")
                      for f in child.fields.values() if writable(f)]  # fmt: skip
        elif writable(field) or field.type == "autonumber":
            found.append((field.name, field.label.get(here) or field.name))
    return found


def _columns(ent: Entity, mapping: list[dict[str, Any]], here: str) -> list[dict[str, Any]]:
    """Each column of a checked file with the field it fills, to choose another."""
    targets = _targets(ent, here)
    return [
        {"index": m.get("column", n + 1), "header": m.get("header", ""),
         "problem": i18n.gettext(m["problem"]) if m.get("problem") else "",
         "options": [{"value": "", "label": _("(not imported)"), "selected": not m.get("field")}]
                    + [{"value": v, "label": label, "selected": m.get("field") == v}
                       for v, label in targets]}
        for n, m in enumerate(mapping)
    ]  # fmt: skip


#: Unknown texts of one choice field offered for mapping, at most.
UNKNOWN_SHOWN = 30


def _unknown_choices(
    ent: Entity, rows: list[dict[str, Any]], here: str
) -> list[dict[str, Any]]:
    """The texts of a checked file's choice cells that name no choice, by field, each with
    the field's choices to map it to (the import's ``value_map``)."""
    found: dict[str, list[str]] = {}
    for row in rows:
        for problem in row.get("errors", []):
            field = ent.fields.get(problem.get("field") or "")
            value = problem.get("value")
            if field is None or field.type != "choice" or field.multiple or not value:
                continue
            texts = found.setdefault(field.name, [])
            if value not in texts and len(texts) < UNKNOWN_SHOWN:
                texts.append(value)
    return [
        {"field": name, "label": ent.fields[name].label.get(here),
         "texts": [{"index": n, "text": t} for n, t in enumerate(texts)],
         "choices": [{"value": "", "label": _("(leave it rejected)")}]
                    + [{"value": o.value, "label": o.label.get(here) or o.value}
                       for o in ent.fields[name].options]}
        for name, texts in found.items()
    ]  # fmt: skip


@ui.post("/app/imports/<int:run_id>/check")
def import_remap(run_id: int) -> ResponseReturnValue:
    """Check a file again with the columns the user chose for some of its fields, and
    the choices they mapped unknown texts to."""
    act = actor()
    imports = _imports()
    run = imports.status(act, run_id)
    given = dict(run["options"].get("mapping") or {})
    for m in (run["report"] or {}).get("mapping", []):
        chosen = request.form.get(f"column-{m.get('column')}")
        if chosen is not None and (chosen or None) != m.get("field"):
            given[m.get("header", "")] = chosen or None  # a change: given explicitly
    values = {k: dict(v) for k, v in (run["options"].get("value_map") or {}).items()}
    form = request.form
    for key in form:
        if key.startswith("text-"):  # text-<field>-<n>: an unknown text; value-…: its choice
            chosen = form.get("value-" + key[5:], "")
            name = key[5:].rpartition("-")[0]
            if chosen:
                values.setdefault(name, {})[form[key]] = chosen
    background = _large(run["progress"]["total"])
    try:
        new = imports.again(act, run_id, background=background, dry_run=True, mapping=given,
                            value_map=values)  # fmt: skip
    except EngineError as exc:
        return redirect(url_for("ui.import_run", run_id=run_id, problem=_refusal(exc)), 303)
    return redirect(url_for("ui.import_run", run_id=new), 303)


@ui.post("/app/imports/<int:run_id>/template")
def import_template(run_id: int) -> ResponseReturnValue:
    """Save how a checked file's columns and texts were read as a template of its entity,
    for the next file laid out the same way."""
    act = actor()
    imports = _imports()
    run = imports.status(act, run_id)
    if not _checked(run):
        raise NotFound(f"no checked import run with id {run_id}")
    report = run["report"] or {}
    mapping = {m["header"]: m.get("field") for m in report.get("mapping", []) if m.get("header")}
    options = {k: run["options"][k] for k in ("value_map", "date_order") if run["options"].get(k)}
    name = request.form.get("name", "").strip()
    try:
        with runtime().engine.begin() as conn:
            imports.store.save_template(conn, act, name=name, entity=run["entity"],
                                        mapping=mapping, options=options)  # fmt: skip
    except EngineError as exc:
        return redirect(url_for("ui.import_run", run_id=run_id, problem=_refusal(exc)), 303)
    flash(_("Saved as the template “%(name)s”: choose it on the import page next time.",
            name=name), "success")  # fmt: skip
    return redirect(url_for("ui.import_run", run_id=run_id), 303)


def _status_label(status: str, dry_run: bool) -> str:
    labels = {
        "queued": _("Waiting to start"),
        "running": _("Checking…") if dry_run else _("Importing…"),
        "done": _("Checked: nothing was written") if dry_run else _("Imported"),
        "failed": _("Failed"),
        "interrupted": _("Interrupted"),
    }
    return labels.get(status, status)


def _count_label(name: str) -> str:
    return {
        "created": _("New records"),
        "updated": _("Updated"),
        "unchanged": _("Unchanged"),
        "merged": _("Merged"),
        "skipped": _("Skipped"),
        "error": _("Rejected"),
    }[name]


@ui.post("/app/imports/<int:run_id>/import")
def import_checked(run_id: int) -> ResponseReturnValue:
    """Import a file a dry run checked, for real: its valid rows, or all or none."""
    act = actor()
    imports = _imports()
    run = imports.status(act, run_id)
    whole = request.form.get("all_or_nothing") == "true"
    background = _large(run["progress"]["total"])
    try:
        new = imports.again(act, run_id, background=background, dry_run=False,
                            all_or_nothing=whole)  # fmt: skip
    except EngineError as exc:
        return redirect(url_for("ui.import_run", run_id=run_id, problem=_refusal(exc)), 303)
    return redirect(url_for("ui.import_run", run_id=new), 303)


@ui.get("/app/imports/<int:run_id>/errors.<format>")
def import_errors(run_id: int, format: str) -> ResponseReturnValue:
    """The rejected rows with their messages, to correct and import again."""
    if format not in MEDIA_TYPES or format == "json":
        raise NotFound(f"no error file as {format}")
    content = error_file(_imports(), actor(), run_id, format)
    return _download(content, f"import-{run_id}-rejected.{format}", MEDIA_TYPES[format])
