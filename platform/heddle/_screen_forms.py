"""The create and edit forms of :mod:`heddle.ui`, and the options of a reference select.

A form posts every field it shows that the user may change; the engine checks and coerces
them, and its field errors come back beside their fields. A stale version (someone saved
in between) keeps what the user typed and says so.
"""

from __future__ import annotations

import datetime as dt
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

from . import _screen_form_rows as R
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
    unreachable,
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


#: The child rows a form posted per children field: (rows for the engine, what was typed).
Posted = dict[str, tuple[list[dict[str, Any]], list[dict[str, str]]]]


def _form_values(
    act: Actor, ent: Entity, fields: list[Field], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str], Posted]:
    """(data for the engine, values to show again, what was typed, the child rows posted
    with what was typed in them) from a posted form."""
    data: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    typed: dict[str, str] = {}
    posted: Posted = {}
    getlist = getattr(form, "getlist", None)
    for f in fields:
        if f.type == "children":
            rows = R.posted_rows(act, ent, f, form)
            if rows is not None:  # no table on the form: the rows stay as they are
                data[f.name] = rows[0]
                posted[f.name] = rows
            continue
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
            elif value is not None and f.type == "datetime":
                value = _local_time(raw)
        data[f.name] = value
        shown[f.name] = value
    return data, shown, typed, posted


def _local_time(raw: str) -> str:
    """A time typed in a form (``2026-12-07T09:30``, the browser's ``datetime-local``:
    no offset) as a time in the deployment's time zone, with its offset; anything else
    as it came, for the record service to judge."""
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if moment.tzinfo is None:
        try:
            moment = moment.astimezone()  # naive: read as the process's local time
        except (OverflowError, ValueError):
            return raw
    return moment.isoformat()


def _enforced(
    act: Actor, ent: Entity, data: dict[str, Any], base: Mapping[str, Any] | None
) -> dict[str, dict[str, bool]]:
    """Drop from ``data`` the fields that ``visible_when`` hides or ``readonly_when``
    locks for the record as typed (the browser may not have run the form's script, or
    someone posted by hand); returns the fields' states."""
    children = {f.name for f in ent.fields_of_type("children")}
    states = R.conditions(act, ent, {k: v for k, v in data.items() if k not in children}, base)
    for name, state in states.items():
        if name in data and (not state["visible"] or state["readonly"]):
            del data[name]
    return states


def _choices(act: Actor, field: Field, current: Any) -> list[tuple[Any, str]]:
    """What a reference, user or team select offers: the first records the user may
    read (the first active users, the first teams), and the current one."""
    heddle = runtime()
    if field.type in ("user", "team"):
        people = R.people_choices(field.type)
        if isinstance(current, int) and all(k != current for k, _t in people):
            people += R.people_choices(field.type, ids=(current,))
        return people
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
    posted: Posted | None = None,
    states: Mapping[str, Mapping[str, bool]] | None = None,
) -> Response:
    act, here = actor(), locale()
    currency = runtime().model.package.currency
    fields = _editable(ent, hidden, readonly)
    choices = {
        f.name: _choices(act, f, values.get(f.name))
        for f in fields
        if f.type in ("reference", "user", "team") and not f.multiple
    }
    shown_errors = dict(errors_ or {})
    titles = {**(titles or {}), **file_titles(act, ent, record_id, values)}
    inline = R.editors(
        act, ent, here, currency, record_id=record_id, posted=posted or {}, errors=shown_errors
    )
    shown_errors = {k: v for k, v in shown_errors.items() if "[" not in k}  # rows': beside them
    # a table the user edits is drawn by its editor: its rows are not read again to show
    not_edited = {k: v for k, v in values.items() if k not in inline}
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
            children={
                k: v
                for k, v in child_tables(act, ent, not_edited, here, currency).items()
                if k not in inline
            },
            currency=currency,
            conditions=states or {},
            sections=R.sections_shown(act, ent, values, None),
            editors=inline,
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
            "preview": _preview_url(ent, record_id, inline),
        },
    )
    return page("form.html", title, ent.name, status, screen=screen)


def _preview_url(ent: Entity, record_id: int | None, inline: Mapping[str, Any]) -> str:
    """Where the form asks its live state, if it has any: conditions, formulas, rollups
    or child rows."""
    live = inline or any(
        f.visible_when or f.required_when or f.readonly_when or f.type in ("formula", "rollup")
        for f in ent.fields.values()
    )
    if not live:
        return ""
    if record_id is None:
        return url_for("ui.preview_new", entity=ent.name)
    return url_for("ui.preview_edit", entity=ent.name, record_id=record_id)


def _duplicates(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules a save ran into (``DuplicateFound.details["rules"]``), as the form shows
    them: each record found with who holds it, and a box to save anyway where allowed."""
    shown = []
    for rule in rules:
        found = []
        for candidate in rule.get("candidates", ()):
            holder, url = "", ""
            if candidate.get("pool"):
                holder = _("in the pool %(name)s", name=candidate["pool"]["name"])
                # its page has the Claim button, for the pool's members
                url = url_for("ui.record", entity=candidate["entity"], record_id=candidate["id"])
            elif candidate.get("owner"):
                holder = _("owned by %(name)s", name=candidate["owner"]["name"])
            found.append({"title": candidate["title"], "holder": holder, "url": url})
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
    readonly = grant.readonly | unreachable(act, ent)
    fields = _editable(ent, grant.hidden, readonly)
    source = request.form if request.method == "POST" else request.args
    data, shown, typed, posted = _form_values(act, ent, fields, source)
    data.update(form_files(fields, source))
    form_of: dict[str, Any] = {
        "action": url_for("ui.new", entity=ent.name),
        "cancel": url_for("ui.list_records", entity=ent.name),
        "hidden": grant.hidden,
        "readonly": readonly,
    }
    if request.method == "GET":
        typed = {k: v for k, v in typed.items() if v}
        shown = {k: v for k, v in shown.items() if v not in (None, "", [], False)}
        for f in fields:  # the definitions' constant defaults, for the user to see
            if f.name not in shown and f.default is not None and not isinstance(f.default, dict):
                shown[f.name] = f.default
        states = R.conditions(act, ent, {**shown, **typed}, None)
        return _form_page(ent, title, shown, typed=typed, states=states, **form_of)
    upload_errors = take_uploads(act, ent, None, fields, data)
    shown.update({f.name: data[f.name] for f in fields if f.type == "file"})
    states = _enforced(act, ent, data, None)
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
            posted=posted,
            states=states,
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
    readonly = grant.readonly | unreachable(act, ent)
    titles = reference_titles(act, ent, record_id, ref_names(act, ent, hidden))
    title = _("Edit %(what)s", what=P.record_title(ent, row, here))
    form_of: dict[str, Any] = {
        "action": url_for("ui.edit", entity=ent.name, record_id=record_id),
        "cancel": url_for("ui.record", entity=ent.name, record_id=record_id),
        "hidden": hidden,
        "readonly": readonly,
        "record_id": record_id,
        "titles": titles,
    }
    stored = {
        k: v for k, v in row.items() if k not in {f.name for f in ent.fields_of_type("children")}
    }
    if request.method == "GET":
        states = R.conditions(act, ent, {}, stored)
        return _form_page(ent, title, row, version=row["version"], states=states, **form_of)
    fields = _editable(ent, hidden, readonly)
    data, shown, typed, posted = _form_values(act, ent, fields, request.form)
    data.update(form_files(fields, request.form))
    upload_errors = take_uploads(act, ent, record_id, fields, data)
    shown.update({f.name: data[f.name] for f in fields if f.type == "file"})
    states = _enforced(act, ent, data, stored)
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
            posted=posted,
            states=states,
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
            posted=posted,
            states=states,
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
