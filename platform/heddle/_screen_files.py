"""Attachments on the screens: the record page's attachments panel (upload with a plain
multipart form, download, remove after a confirmation) and the file widget of the create
and edit forms. The work is :mod:`engine.attachments`'s, with the user's permissions:
reading the record to see and download its files, changing it to add or remove one.

- ``POST /app/<entity>/<id>/attachments`` — upload (``file``), back to the record page;
- ``GET /app/<entity>/<id>/attachments/<attachment_id>`` — the file, as a download;
- ``POST /app/<entity>/<id>/attachments/<attachment_id>/delete`` — remove it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import flask_babel
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from engine import Actor, Conflict, EngineError, NotFound, ValidationFailed
from engine.attachments import TooLarge, attachment_ids
from metamodel import Entity, Field

from . import i18n
from ._screens import actor, may_update, readable, ui
from .attachment_api import FORM_ROOM, file_response, max_bytes
from .extensions import runtime
from .i18n import gettext as _

#: the file input of a file field on a form is named after the field, plus this
UPLOAD_SUFFIX = "__upload"


@ui.before_app_request
def allow_uploads() -> None:
    """A form carrying a file may be as large as HEDDLE_ATTACHMENT_MAX_BYTES (plus room
    for the rest of the form), whatever the app's body limit is."""
    if (
        request.method == "POST"
        and request.path.startswith("/app/")
        and request.mimetype == "multipart/form-data"
        and not request.path.endswith("/import")  # a spreadsheet's limit: _screen_imports
    ):
        request.max_content_length = max_bytes() + FORM_ROOM


def size_text(size: int) -> str:
    """A file's size in the user's language: ``980 B``, ``12.5 KB``, ``3.1 MB``."""
    for unit, power in (("GB", 30), ("MB", 20), ("KB", 10)):
        if size >= 1 << power:
            number = flask_babel.format_decimal(size / (1 << power), format="#,##0.#")
            return f"{number} {unit}"
    return f"{flask_babel.format_decimal(size)} B"


def _url(entity: str, record_id: int, attachment_id: int) -> str:
    return url_for("ui.attachment", entity=entity, record_id=record_id, attachment_id=attachment_id)


def record_files(act: Actor, ent: Entity, record_id: int) -> dict[str, Any]:
    """The record page's attachments panel: its files, and what the user may do."""
    rows = runtime().attachments.list(act, ent.name, record_id)
    fmt = i18n.BabelFormatter()
    labels = {f.name: _label(f) for f in ent.fields_of_type("file")}
    can_change = may_update(act, ent, record_id)
    return {
        "files": [
            {
                "id": row["id"],
                "name": row["filename"],
                "url": _url(ent.name, record_id, row["id"]),
                "delete": url_for(
                    "ui.delete_attachment",
                    entity=ent.name,
                    record_id=record_id,
                    attachment_id=row["id"],
                ),
                "size": size_text(int(row["size"])),
                "type": row["content_type"],
                "uploader": row["uploader"] or "",
                "uploaded_at": fmt.datetime(row["uploaded_at"]),
                "uploaded_iso": row["uploaded_at"].isoformat(),
                "field": labels.get(row["field"] or "", ""),
            }
            for row in rows
        ],
        "can_upload": can_change,
        "upload": url_for("ui.upload_attachment", entity=ent.name, record_id=record_id),
        "max_size": size_text(max_bytes()),
    }


def _label(field: Field) -> str:
    return field.label.get(i18n.current_locale()) if field.label else field.name


def file_titles(
    act: Actor, ent: Entity, record_id: int | None, values: Mapping[str, Any]
) -> dict[str, Any]:
    """What the file widgets show of the files a record's fields hold: name, link, size
    (one query for every file field)."""
    wanted = {one: f.name for f in ent.fields_of_type("file")
              for one in attachment_ids(values.get(f.name))}  # fmt: skip
    found = runtime().attachments.named(act, ent.name, record_id, wanted)
    titles: dict[str, list[dict[str, Any]]] = {}
    for attachment_id, name in wanted.items():
        row = found.get(attachment_id)
        if row is None:
            continue
        bound = row["record_id"] == record_id
        titles.setdefault(name, []).append(
            {
                "id": attachment_id,
                "name": row["filename"],
                "url": _url(ent.name, record_id, attachment_id)
                if record_id is not None and bound
                else "",
                "size": size_text(int(row["size"])),
            }
        )
    return titles


def form_files(fields: Iterable[Field], form: Mapping[str, Any]) -> dict[str, Any]:
    """The files a form keeps in each file field: the ids of the boxes left ticked."""
    getlist = getattr(form, "getlist", None)
    kept: dict[str, Any] = {}
    for f in fields:
        if f.type != "file":
            continue
        raw = list(getlist(f.name)) if getlist else [form.get(f.name, "")]
        ids = [
            int(v)
            for v in raw
            if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) < 19
        ]
        kept[f.name] = ids if f.multiple else (ids[0] if ids else None)
    return kept


def take_uploads(
    act: Actor, ent: Entity, record_id: int | None, fields: Iterable[Field], data: dict[str, Any]
) -> dict[str, list[str]]:
    """Store the files chosen in a form's file inputs and put their ids in ``data`` (a
    single file field's new file replaces the one it held); errors by field."""
    errors: dict[str, list[str]] = {}
    attachments = runtime().attachments
    for f in fields:
        if f.type != "file":
            continue
        for upload in request.files.getlist(f.name + UPLOAD_SUFFIX):
            if not upload.filename:
                continue
            content = upload.read(max_bytes() + 1)
            try:
                row = attachments.add(
                    act, ent.name, record_id, upload.filename, content, field=f.name
                )
            except EngineError as exc:
                if isinstance(exc, NotFound):
                    raise
                errors.setdefault(f.name, []).append(_refusal(exc))
                continue
            if f.multiple:
                data[f.name] = [*(data.get(f.name) or []), row["id"]]
            else:
                data[f.name] = row["id"]
    return errors


def _refusal(exc: EngineError) -> str:
    if isinstance(exc, TooLarge):
        return _(
            "The file is too large: at most %(size)s.",
            size=size_text(runtime().attachments.max_bytes),
        )
    if exc.fields.get("file"):
        return _("This type of file is not accepted here.")
    return i18n.gettext(exc.message)


# --- the record page's panel -----------------------------------------------------------------


def _back(entity: str, record_id: int) -> ResponseReturnValue:
    return redirect(url_for("ui.record", entity=entity, record_id=record_id) + "#attachments")


@ui.post("/app/<entity>/<record_id>/attachments")
def upload_attachment(entity: str, record_id: int) -> ResponseReturnValue:
    act = actor()
    ent = readable(entity, act)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a file to upload."), "danger")
        return _back(ent.name, record_id)
    content = upload.read(max_bytes() + 1)
    try:
        row = runtime().attachments.add(act, ent.name, record_id, upload.filename, content)
    except (TooLarge, ValidationFailed) as exc:
        flash(_refusal(exc), "danger")
        return _back(ent.name, record_id)
    flash(_("%(name)s uploaded.", name=row["filename"]), "success")
    return _back(ent.name, record_id)


@ui.get("/app/<entity>/<record_id>/attachments/<int:attachment_id>")
def attachment(entity: str, record_id: int, attachment_id: int) -> ResponseReturnValue:
    act = actor()
    ent = readable(entity, act)
    row, path = runtime().attachments.get(act, ent.name, record_id, attachment_id)
    return file_response(row, str(path))


@ui.post("/app/<entity>/<record_id>/attachments/<int:attachment_id>/delete")
def delete_attachment(entity: str, record_id: int, attachment_id: int) -> ResponseReturnValue:
    act = actor()
    ent = readable(entity, act)
    attachments = runtime().attachments
    row, _path = attachments.get(act, ent.name, record_id, attachment_id)
    try:
        attachments.remove(act, ent.name, record_id, attachment_id)
    except Conflict:
        flash(
            _("%(name)s is the value of a field: change the field first.", name=row["filename"]),
            "danger",
        )
        return _back(ent.name, record_id)
    flash(_("%(name)s removed.", name=row["filename"]), "success")
    return _back(ent.name, record_id)
