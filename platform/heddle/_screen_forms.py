"""The create and edit forms of :mod:`heddle.ui`, and the options of a reference select.

A form posts every field it shows that the user may change; the engine checks and coerces
them, and its field errors come back beside their fields. A stale version (someone saved
in between) keeps what the user typed and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import (
    flash,
    redirect,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import (
    Actor,
    BadRequest,
    DuplicateFound,
    EngineError,
    Forbidden,
    NotFound,
    StaleVersion,
    ValidationFailed,
)
from engine.query import parse_params
from metamodel import Entity, Field
from ui_renderer import pages as P

from . import i18n
from ._screen_files import file_titles, form_files, take_uploads
from ._screens import (
    CHOICES,
    REF_TYPES,
    actor,
    child_tables,
    locale,
    may_update,
    page,
    readable,
    ref_names,
    reference_titles,
    screens,
    ui,
)
from .extensions import runtime
from .i18n import gettext as _

# --- forms -----------------------------------------------------------------------------------


def _editable(ent: Entity, hidden: frozenset[str], readonly: frozenset[str]) -> list[Field]:
    """The fields a form sends: on the layout, visible, writable by this user."""
    placed = [
        s
        for tab in P.form_tabs(
            ent, "en", P.FormInput(hidden=hidden, readonly=readonly), editing=True
        )
        for sec in tab.sections
        for s in sec.slots
    ]
    return [ent.fields[s.name] for s in placed if not s.readonly]


def _form_values(
    fields: list[Field], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(data for the engine, values to show again, what was typed) from a posted form."""
    data: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    typed: dict[str, str] = {}
    getlist = getattr(form, "getlist", None)
    for f in fields:
        if f.type == "boolean":
            value: Any = form.get(f.name) in ("true", "on", "1")
            typed[f.name] = "true" if value else ""
        elif f.type == "multichoice":
            value = list(getlist(f.name)) if getlist else []
        else:
            raw = str(form.get(f.name, "")).strip()
            typed[f.name] = raw
            value = raw or None
            if value is not None and f.type in REF_TYPES:
                value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else raw
            elif value is not None and f.type == "datetime" and len(raw) == 16:
                value = raw + ":00"
        data[f.name] = value
        shown[f.name] = value
    return data, shown, typed


def _choices(act: Actor, field: Field, current: Any) -> list[tuple[Any, str]]:
    """What a reference select offers: the first records the user may read, and the
    current one."""
    heddle = runtime()
    if field.type != "reference" or not field.to:
        return []
    other = heddle.model.entity(field.to)
    if not heddle.records.permissions.grant(act, other, "read").allowed:
        return []
    title = other.title_field
    base: dict[str, Any] = {"limit": str(CHOICES)}
    if title:
        base["fields"] = title
    rows = heddle.records.query(act, other.name, parse_params(heddle.model, other.name, base)).rows
    found = [
        (r["id"], str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}") for r in rows
    ]
    if isinstance(current, int) and all(k != current for k, _t in found):
        one = {"id": str(current), **({"fields": title} if title else {})}
        extra = heddle.records.query(
            act, other.name, parse_params(heddle.model, other.name, one)
        ).rows
        found += [
            (r["id"], str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}") for r in extra
        ]
    return found


def _engine_errors(exc: EngineError) -> dict[str, list[str]]:
    return {k: [i18n.gettext(m) for m in v] for k, v in exc.fields.items()}


def _form_page(
    ent: Entity,
    title: str,
    values: Mapping[str, Any],
    *,
    action: str,
    cancel: str,
    hidden: frozenset[str],
    readonly: frozenset[str],
    typed: Mapping[str, str] | None = None,
    errors_: Mapping[str, list[str]] | None = None,
    error: str = "",
    stale: bool = False,
    version: Any = None,
    record_id: int | None = None,
    titles: Mapping[str, Any] | None = None,
    status: int = 200,
    duplicates: list[dict[str, Any]] | None = None,
) -> Response:
    act, here = actor(), locale()
    currency = runtime().model.package.currency
    fields = _editable(ent, hidden, readonly)
    choices = {
        f.name: _choices(act, f, values.get(f.name)) for f in fields if f.type == "reference"
    }
    shown_errors = dict(errors_ or {})
    titles = {**(titles or {}), **file_titles(act, ent, record_id, values)}
    tabs = P.form_tabs(
        ent,
        here,
        P.FormInput(
            record=values,
            titles=titles,
            typed=typed or {},
            errors=shown_errors,
            hidden=hidden,
            readonly=readonly,
            choices=choices,
            children=child_tables(act, ent, values, here, currency),
            currency=currency,
        ),
        editing=True,
    )
    placed = {s.name for t in tabs for sec in t.sections for s in sec.slots}
    elsewhere = [
        f"{P.column_label(ent, k, here)}: {' '.join(v)}"
        for k, v in shown_errors.items()
        if k not in placed
    ]
    if elsewhere:
        error = " ".join([error, *elsewhere]).strip()
    screen = P.entity_screen(
        "form",
        ent,
        here,
        title,
        {
            "tabs": tabs,
            "action": action,
            "cancel": cancel,
            "error": error,
            "stale": stale,
            "version": version,
            "id": record_id,
            "duplicates": _duplicates(duplicates or []),
        },
    )
    return page("form.html", title, ent.name, status, screen=screen)


def _duplicates(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules a save ran into (``DuplicateFound.details["rules"]``), as the form shows
    them: each record found with who holds it, and a box to save anyway where allowed."""
    shown = []
    for rule in rules:
        found = []
        for candidate in rule.get("candidates", ()):
            holder = ""
            if candidate.get("pool"):
                holder = _("in the pool %(name)s", name=candidate["pool"]["name"])
            elif candidate.get("owner"):
                holder = _("owned by %(name)s", name=candidate["owner"]["name"])
            found.append({"title": candidate["title"], "holder": holder})
        shown.append(
            {"rule": rule["rule"], "label": rule.get("label", rule["rule"]),
             "confirmable": bool(rule.get("confirmable")), "candidates": found}
        )  # fmt: skip
    return shown


def _confirmed() -> list[str]:
    """The duplicate rules the user ticked "save anyway" for."""
    return [name for name in request.form.getlist("confirm_duplicates") if name]


def _refused(exc: EngineError) -> tuple[dict[str, list[str]], str, int]:
    """Field errors, a message and a status for a write the engine refused."""
    if isinstance(exc, NotFound | Forbidden):
        raise exc
    message = (
        _("Please correct the fields marked below.") if exc.fields else i18n.gettext(exc.message)
    )
    return _engine_errors(exc), message, exc.status


@ui.route("/app/<entity>/new", methods=["GET", "POST"])
def new(entity: str) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = readable(entity, act)
    grant = heddle.records.permissions.grant(act, ent, "create")
    if not grant.allowed:
        raise Forbidden(f"you may not create {ent.name} records")
    title = _("New %(what)s", what=P.text(ent.label, here, ent.name))
    fields = _editable(ent, grant.hidden, grant.readonly)
    source = request.form if request.method == "POST" else request.args
    data, shown, typed = _form_values(fields, source)
    data.update(form_files(fields, source))
    form_of: dict[str, Any] = {
        "action": url_for("ui.new", entity=ent.name),
        "cancel": url_for("ui.list_records", entity=ent.name),
        "hidden": grant.hidden,
        "readonly": grant.readonly,
    }
    if request.method == "GET":
        typed = {k: v for k, v in typed.items() if v}
        shown = {k: v for k, v in shown.items() if v not in (None, "", [], False)}
        for f in fields:  # the definitions' constant defaults, for the user to see
            if f.name not in shown and f.default is not None and not isinstance(f.default, dict):
                shown[f.name] = f.default
        return _form_page(ent, title, shown, typed=typed, **form_of)
    upload_errors = take_uploads(act, ent, None, fields, data)
    shown.update({f.name: data[f.name] for f in fields if f.type == "file"})
    try:
        if upload_errors:
            raise ValidationFailed("a file was refused", upload_errors)
        created = heddle.records.create(
            act,
            ent.name,
            {k: v for k, v in data.items() if v not in (None, [])},
            confirm_duplicates=_confirmed(),
        )
    except (BadRequest, EngineError) as exc:
        field_errors, message, status = _refused(exc)
        return _form_page(
            ent,
            title,
            shown,
            typed=typed,
            errors_=field_errors,
            error=message,
            status=status,
            duplicates=exc.details.get("rules") if isinstance(exc, DuplicateFound) else None,
            **form_of,
        )
    flash(_("%(what)s created.", what=P.record_title(ent, created, here)), "success")
    return redirect(url_for("ui.record", entity=ent.name, record_id=created["id"]))


@ui.route("/app/<entity>/<record_id>/edit", methods=["GET", "POST"])
def edit(entity: str, record_id: int) -> ResponseReturnValue:
    act, here = actor(), locale()
    heddle = runtime()
    ent = readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)  # 404 when out of sight
    if not may_update(act, ent, record_id):
        raise Forbidden(f"you may not change this {ent.name}")
    grant = heddle.records.permissions.grant(act, ent, "update")
    hidden = heddle.records.permissions.grant(act, ent, "read").hidden | grant.hidden
    titles = reference_titles(act, ent, record_id, ref_names(ent, hidden))
    title = _("Edit %(what)s", what=P.record_title(ent, row, here))
    form_of: dict[str, Any] = {
        "action": url_for("ui.edit", entity=ent.name, record_id=record_id),
        "cancel": url_for("ui.record", entity=ent.name, record_id=record_id),
        "hidden": hidden,
        "readonly": grant.readonly,
        "record_id": record_id,
        "titles": titles,
    }
    if request.method == "GET":
        return _form_page(ent, title, row, version=row["version"], **form_of)
    fields = _editable(ent, hidden, grant.readonly)
    data, shown, typed = _form_values(fields, request.form)
    data.update(form_files(fields, request.form))
    upload_errors = take_uploads(act, ent, record_id, fields, data)
    shown.update({f.name: data[f.name] for f in fields if f.type == "file"})
    version = request.form.get("version", "")
    try:
        if upload_errors:
            raise ValidationFailed("a file was refused", upload_errors)
        if not (version.isascii() and version.isdigit()) or not 0 < int(version) < 2**31:
            raise BadRequest(_("The form is missing the record's version: reload it."))
        heddle.records.update(
            act, ent.name, record_id, data, version=int(version), confirm_duplicates=_confirmed()
        )
    except StaleVersion:
        return _form_page(
            ent,
            title,
            {**row, **shown},
            typed=typed,
            stale=True,
            version=row["version"],  # saving again is a deliberate "keep mine"
            status=409,
            **form_of,
        )
    except EngineError as exc:
        field_errors, message, status = _refused(exc)
        return _form_page(
            ent,
            title,
            {**row, **shown},
            typed=typed,
            errors_=field_errors,
            error=message,
            version=version,
            status=status,
            duplicates=exc.details.get("rules") if isinstance(exc, DuplicateFound) else None,
            **form_of,
        )
    flash(_("Saved."), "success")
    return redirect(url_for("ui.record", entity=ent.name, record_id=record_id))


@ui.get("/app/<entity>/options")
def options(entity: str) -> ResponseReturnValue:
    """``<option>``s of the records matching ``_q``, for a reference select (htmx)."""
    act = actor()
    heddle = runtime()
    ent = readable(entity, act)
    title = ent.title_field
    params: dict[str, Any] = {"limit": str(CHOICES)}
    if title:
        params["fields"] = title
    text = request.args.get("_q", "").strip()
    if text and ent.search_fields:
        params["q"] = text
    rows = heddle.records.query(act, ent.name, parse_params(heddle.model, ent.name, params)).rows
    selected = request.args.get("selected", "")
    slot = P.Slot(
        "options",
        "reference",
        "",
        options=tuple(
            P.Option(
                str(r["id"]),
                str(r.get(title) or f"#{r['id']}") if title else f"#{r['id']}",
                None,
                str(r["id"]) == selected,
            )
            for r in rows
        ),
    )
    html = screens().render("options.html", slot=slot)
    return Response(html, 200, content_type="text/html; charset=utf-8")
