"""The record page's discussion and activities: comments, the records of entities with a
``timeline`` view (the CRM's activities) that reference the record, and the two small
forms that add to them — "Comment" and "Log activity" (for a rep on the road: the kind, a
subject and notes, nothing else to fill in).

Comments are :class:`engine.comments.Comments`'s: whoever may read the record may read and
add them; each ``@username`` in one who may read the record is notified
(:func:`workflows.mention`). An activity is created through the record service like any
record, so the user needs ``create`` on the activity's entity; the form's link to this
record is filled in, and so are the activity's other references that this record already
names (logged on an opportunity, an activity gets the opportunity's account too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from engine import Actor, EngineError, NotFound
from engine.comments import Comments
from engine.query import parse_params
from metamodel import Entity, Field
from ui_renderer import pages as P
from ui_renderer import timeline as T
from workflows import mention

from . import i18n
from ._screens import actor, readable, ui
from .extensions import runtime
from .i18n import gettext as _

#: how many activities of each kind the record page shows (the related list has them all)
ACTIVITIES = 20
COMMENTS = 50


@dataclass(frozen=True)
class Source:
    """An entity whose records appear on this record's timeline, through ``via``."""

    entity: Entity
    via: Field
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class LogForm:
    """The quick "Log activity" form of one source: its fields as slots."""

    entity: str
    label: str
    kind: P.Slot | None
    title: P.Slot
    body: P.Slot | None


def sources(act: Actor, ent: Entity) -> list[Source]:
    """The timeline entities the user may read, with each reference to ``ent`` they may
    see."""
    heddle = runtime()
    found = []
    for other in heddle.model:
        spec = other.views.get("timeline")
        if not spec or other.child:
            continue
        grant = heddle.records.permissions.grant(act, other, "read")
        if not grant.allowed:
            continue
        for field in other.fields.values():
            if (
                field.type == "reference"
                and field.to == ent.name
                and not field.multiple
                and field.name not in grant.hidden
                and spec["at"] not in grant.hidden
            ):
                found.append(Source(other, field, spec))
    return found


def record_timeline(
    act: Actor, ent: Entity, record_id: int, here: str, people: Mapping[int, str]
) -> dict[str, Any]:
    """What the timeline adds to the record's history: ``extra`` (comment and activity
    entries) and the forms: ``log_forms`` and ``can_comment``."""
    heddle = runtime()
    comments = Comments(heddle.records).list(act, ent.name, record_id, limit=COMMENTS)
    extra: list[T.Event] = T.comment_events(comments, act.user_id, act.is_admin)
    forms: list[LogForm] = []
    for source in sources(act, ent):
        other = source.entity
        spec = source.spec
        params: dict[str, Any] = {
            source.via.name: str(record_id),
            "sort": f"-{spec['at']},-id",
            "limit": str(ACTIVITIES),
        }
        if other.ownable:
            params["expand"] = "owner_id"
        query = parse_params(heddle.model, other.name, params)
        rows = heddle.records.query(act, other.name, query).rows
        extra += T.activity_events(other, spec, rows, people, here)
        if heddle.records.permissions.grant(act, other, "create").allowed and not any(
            f.entity == other.name for f in forms
        ):
            forms.append(log_form(other, spec, here))
    return {"extra": extra, "log_forms": tuple(forms), "can_comment": act.user_id is not None}


def log_form(
    other: Entity,
    spec: Mapping[str, Any],
    here: str,
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> LogForm:
    typed, errors = typed or {}, errors or {}

    def field_slot(name: str | None) -> P.Slot | None:
        field = other.fields.get(name or "")
        if field is None:
            return None
        return P.slot(
            field,
            here,
            field.default if isinstance(field.default, str) else None,
            typed=typed.get(field.name),
            errors=errors.get(field.name, ()),
        )

    title = field_slot(spec["title"])
    assert title is not None  # the timeline view's check says it is a field
    return LogForm(
        other.name,
        P.text(other.label, here, other.name),
        field_slot(spec.get("kind")),
        title,
        field_slot(spec.get("body")),
    )


# --- posting ----------------------------------------------------------------------------


def _back(ent: Entity, record_id: int) -> ResponseReturnValue:
    return redirect(url_for("ui.record", entity=ent.name, record_id=record_id) + "#timeline")


@ui.post("/app/<entity>/<record_id>/comments")
def post_comment(entity: str, record_id: int) -> ResponseReturnValue:
    """Add a comment to the record and come back to its timeline."""
    act = actor()
    ent = readable(entity, act)
    records = runtime().records
    try:
        with records.transaction() as conn:
            made = Comments(records).add(
                act, ent.name, record_id, request.form.get("body", ""), conn=conn
            )
            mention(conn, records, act, ent.name, record_id, made["body"])
    except EngineError as exc:
        if exc.status == 404:
            raise
        flash(_("The comment was not added: %(reason)s", reason=_reason(exc)), "error")
    else:
        flash(_("Your comment is added."), "success")
    return _back(ent, record_id)


@ui.post("/app/<entity>/<record_id>/comments/<int:comment_id>/<any(edit, delete):action>")
def change_comment(
    entity: str, record_id: int, comment_id: int, action: str
) -> ResponseReturnValue:
    """Edit one's own comment (its new ``body``) or delete it (an admin: anyone's), and
    come back to the record's timeline."""
    act = actor()
    ent = readable(entity, act)
    records = runtime().records
    comments = Comments(records)
    try:
        if action == "edit":
            with records.transaction() as conn:
                edited, before = comments.edit(
                    act, ent.name, record_id, comment_id, request.form.get("body", ""), conn=conn
                )
                mention(conn, records, act, ent.name, record_id, edited["body"], already=before)
        else:
            comments.delete(act, ent.name, record_id, comment_id)
    except EngineError as exc:
        if exc.status == 404:
            raise
        flash(_("The comment was not changed: %(reason)s", reason=_reason(exc)), "error")
    else:
        said = _("Your comment is changed.") if action == "edit" else _("The comment is deleted.")
        flash(said, "success")
    return _back(ent, record_id)


@ui.post("/app/<entity>/<record_id>/log/<other>")
def log_activity(entity: str, record_id: int, other: str) -> ResponseReturnValue:
    """Create an activity (a record of ``other``, a timeline entity) about the record."""
    act = actor()
    heddle = runtime()
    ent = readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)  # 404 when out of sight
    source = next((s for s in sources(act, ent) if s.entity.name == other), None)
    if source is None:
        raise NotFound(f"no timeline entity '{other}' for {ent.name}")
    spec = source.spec
    names = [n for n in (spec.get("kind"), spec["title"], spec.get("body")) if n]
    typed = {n: str(request.form.get(n, "")).strip() for n in names}
    values: dict[str, Any] = {**_linked(source, ent, row), source.via.name: record_id}
    values.update({n: v for n, v in typed.items() if v})
    try:
        heddle.records.create(act, other, values)
    except EngineError as exc:
        if exc.status == 404:
            raise
        flash(_("It was not logged: %(reason)s", reason=_reason(exc, source.entity)), "error")
    else:
        flash(
            _("Logged: %(what)s.", what=P.text(source.entity.label, i18n.current_locale())),
            "success",
        )
    return _back(ent, record_id)


def _linked(source: Source, ent: Entity, row: Mapping[str, Any]) -> dict[str, Any]:
    """The activity's other references that the record names too (one field of the
    record per target entity, else it is ambiguous and left out)."""
    found: dict[str, Any] = {}
    for field in source.entity.fields.values():
        if field.type != "reference" or field.multiple or field is source.via:
            continue
        if field.to == ent.name:
            continue
        same = [f for f in ent.fields.values() if f.type == "reference" and f.to == field.to
                and not f.multiple]  # fmt: skip
        if len(same) == 1 and row.get(same[0].name) is not None:
            value = row[same[0].name]
            found[field.name] = value.get("id") if isinstance(value, Mapping) else value
    return found


def _reason(exc: EngineError, ent: Entity | None = None) -> str:
    """The engine's messages, each after its field's label."""
    if not exc.fields:
        return i18n.gettext(exc.message)
    here = i18n.current_locale()
    parts = []
    for name, messages in exc.fields.items():
        field = ent.fields.get(name) if ent is not None else None
        label = P.field_label(field, here) if field is not None else name
        parts.append(f"{label}: {' '.join(i18n.gettext(m) for m in messages)}")
    return "; ".join(parts)
