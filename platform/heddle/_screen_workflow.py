"""The record page's workflow bar and timeline, and the page that fires a transition.

The bar lists the transitions the user may fire now (roles and guards checked by
:class:`workflows.StateMachines`, as the API's ``GET …/transitions`` does). A transition
that takes no fields and needs no comment is a button posting straight to
``/app/<entity>/<id>/transitions/<name>``; the others open that URL as a small form: the
comment and the fields the transition takes. A refusal (a guard, a missing field, a stale
version) comes back on that form with the engine's messages beside their fields.

The timeline merges the record's audit history (fields changed, with the values before
and after, hidden fields left out) with its transition history (who, from, to, comment).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import Actor, BadRequest, EngineError, StaleVersion
from engine.fieldtypes import python_value
from engine.query import Filter, ListQuery
from metamodel import Entity, Field, Transition, Workflow
from ui_renderer import pages as P
from ui_renderer import timeline as T
from ui_renderer import workflow_path as W
from workflows import Approvals, StateMachines

from . import i18n
from ._screen_timeline import record_timeline
from ._screens import REF_TYPES, actor, locale, page, readable, ui
from .extensions import runtime
from .i18n import gettext as _

#: how many changes the record page shows; older ones stay in the audit history (API)
TIMELINE_LENGTH = 50


def _machines() -> StateMachines:
    return StateMachines(runtime().records)


def record_workflow(
    act: Actor, ent: Entity, record_id: int, here: str, row: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the record page adds for workflows: ``moves`` (the transitions the user may
    fire), ``events`` (the timeline, newest first: history, comments and activities, see
    :mod:`heddle._screen_timeline`), the forms that add to it, and with the record's
    ``row`` its ``paths`` (a stepper of states per workflow) and their ``diagrams``."""
    heddle = runtime()
    machines = _machines()
    workflows = heddle.model.workflows_of(ent.name)
    moves = T.moves(workflows, machines.available(act, ent.name, record_id), here)
    audit = [_typed(ent, entry) for entry in heddle.records.history(act, ent.name, record_id)][
        -TIMELINE_LENGTH:
    ]
    fired = machines.history(act, ent.name, record_id) if workflows else []
    people = _people(entry.get("actor_id") for entry in [*audit, *fired])
    titles = _titles(act, ent, audit, people)
    events = T.timeline(
        ent,
        audit,
        fired,
        people,
        here,
        heddle.model.package.currency,
        titles=titles,
        workflows=workflows,
    )
    more = record_timeline(act, ent, record_id, here, people)
    decided = _approval_entries(act, ent, record_id, workflows, here)
    pooled = _pool_entries(act, ent, record_id)
    return {
        "moves": moves,
        "events": T.merge(events, more.pop("extra"), decided, pooled),
        **more,
        **record_paths(act, ent, row, fired, here),
    }


def _approval_entries(
    act: Actor, ent: Entity, record_id: int, workflows: Sequence[Workflow], here: str
) -> list[T.Event]:
    """The record's approval history for its timeline (one query, the newest
    :data:`TIMELINE_LENGTH` events): who submitted, approved, rejected, recalled, and the
    reminders and escalations. Whoever reads the record reads its approvals' history
    (as ``GET /records/<entity>/<id>/approvals`` gives it)."""
    if not any(w.approvals for w in workflows):
        return []
    rows = Approvals(runtime().records).record_events(
        act, ent.name, record_id, T.APPROVAL_EVENTS, limit=TIMELINE_LENGTH
    )
    labels: dict[tuple[str, str, str | None], str] = {}
    for w in workflows:
        for approval in w.approvals:
            labels[(w.name, approval.name, None)] = P.text(approval.label, here, approval.name)
            for step in approval.steps:
                labels[(w.name, approval.name, step.name)] = P.text(step.label, here, step.name)
    people = _people(who for row in rows for who in (row["actor_id"], row["on_behalf_of"]) if who)
    return T.approval_events(rows, labels, people)


def _pool_entries(act: Actor, ent: Entity, record_id: int) -> list[T.Event]:
    """The record's claims, assignments and returns to a public pool, with their reasons
    (one query, and one for the people named)."""
    if ent.public_pool is None:
        return []
    rows = runtime().records.pool_log(act, ent.name, record_id, limit=TIMELINE_LENGTH)
    people = _people(who for row in rows for who in (row["actor_id"], row["user_id"]) if who)
    return T.pool_events(rows, people)


def record_paths(
    act: Actor,
    ent: Entity,
    row: Mapping[str, Any] | None,
    fired: Iterable[Mapping[str, Any]],
    here: str,
) -> dict[str, Any]:
    """The path bar and the diagram of each workflow whose state field the user sees."""
    if row is None:
        return {"paths": (), "diagrams": ()}
    hidden = runtime().records.permissions.grant(act, ent, "read").hidden
    history = list(fired)
    paths, diagrams = [], []
    for workflow in runtime().model.workflows_of(ent.name):
        if workflow.field in hidden:
            continue
        current = row.get(workflow.field)
        visited = {
            state
            for entry in history
            if entry["workflow"] == workflow.name
            for state in (entry["from_state"], entry["to_state"])
        }
        paths.append(W.path(workflow, current, visited, here))
        diagrams.append(W.diagram(workflow, here, current))
    return {"paths": tuple(paths), "diagrams": tuple(diagrams)}


def _typed(ent: Entity, entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry with its values in their fields' Python types (dates, decimals), as
    the widgets draw them; the audit keeps them as JSON."""
    changes = {}
    for name, pair in (entry.get("changes") or {}).items():
        field = ent.fields.get(name)
        if field is not None and isinstance(pair, list) and len(pair) == 2:
            pair = [python_value(field, pair[0]), python_value(field, pair[1])]
        changes[name] = pair
    return {**entry, "changes": changes}


def _people(ids: Iterable[Any]) -> dict[int, str]:
    """The names of these users (a timeline says who did what to the record)."""
    wanted = {i for i in ids if isinstance(i, int)}
    if not wanted:
        return {}
    users = runtime().accounts.users
    with runtime().records.reader.connect() as conn:
        rows = conn.execute(
            sa.select(users.c.id, users.c.name, users.c.username).where(users.c.id.in_(wanted))
        )
        return {row.id: row.name or row.username for row in rows}


def _titles(
    act: Actor, ent: Entity, audit: list[dict[str, Any]], people: dict[int, str]
) -> dict[tuple[str, Any], str]:
    """The titles of the records and users the changes name, as far as the user may read
    them (one query per referenced entity)."""
    wanted: dict[str, set[int]] = {}
    for entry in audit:
        for name, pair in (entry.get("changes") or {}).items():
            field = ent.fields.get(name)
            kind = field.type if field else ("user" if name in ("owner_id",) else "")
            if kind not in REF_TYPES or (field is not None and field.multiple):
                continue
            for value in pair if isinstance(pair, list) else [pair]:
                if isinstance(value, int):
                    wanted.setdefault(name, set()).add(value)
    titles: dict[tuple[str, Any], str] = {}
    missing_people = {i for ids in wanted.values() for i in ids} - set(people)
    people = {**people, **_people(missing_people)} if missing_people else people
    for name, ids in wanted.items():
        field = ent.fields.get(name)
        if field is None or field.type in ("user", "team"):
            if field is None or field.type == "user":
                titles.update({(name, i): people[i] for i in ids if i in people})
            continue
        titles.update({(name, i): t for i, t in _record_titles(act, field, ids).items()})
    return titles


def _record_titles(act: Actor, field: Field, ids: set[int]) -> dict[int, str]:
    heddle = runtime()
    other = heddle.model.entities.get(field.to or "")
    if other is None or not other.title_field:
        return {}
    if not heddle.records.permissions.grant(act, other, "read").allowed:
        return {}
    query = ListQuery(
        filters=(Filter(("id",), "in", tuple(sorted(ids))),),
        limit=len(ids),
        fields=(other.title_field,),
    )
    rows = heddle.records.query(act, other.name, query).rows
    return {r["id"]: str(r.get(other.title_field) or f"#{r['id']}") for r in rows}


# --- firing a transition -----------------------------------------------------------------


def _transition(ent: Entity, name: str) -> Transition:
    _workflow, found = _machines().find(ent.name, name)
    return found


def _transition_page(
    ent: Entity,
    record_id: int,
    row: Mapping[str, Any],
    transition: Transition,
    *,
    typed: Mapping[str, str] | None = None,
    comment: str = "",
    errors: Mapping[str, list[str]] | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    here = locale()
    heddle = runtime()
    currency = heddle.model.package.currency
    errors = errors or {}
    slots = tuple(
        dataclasses.replace(
            P.slot(
                ent.fields[name],
                here,
                row.get(name),
                typed=(typed or {}).get(name),
                errors=errors.get(name, ()),
                currency=currency,
            ),
            required=ent.fields[name].required or name in transition.required_fields,
        )
        for name in transition.inputs
        if name in ent.fields
    )
    title = f"{P.text(transition.label, here, transition.name)} · {P.record_title(ent, row, here)}"
    screen = P.entity_screen(
        "transition",
        ent,
        here,
        title,
        {
            "id": record_id,
            "version": row.get("version"),
            "slots": slots,
            "comment": comment,
            "comment_rule": transition.comment,
            "comment_errors": errors.get("comment", []),
            "error": error,
            "action": url_for(
                "ui.transition", entity=ent.name, record_id=record_id, name=transition.name
            ),
        },
    )
    return page("transition.html", title, ent.name, status, screen=screen)


@ui.route("/app/<entity>/<record_id>/transitions/<name>", methods=["GET", "POST"])
def transition(entity: str, record_id: int, name: str) -> ResponseReturnValue:
    """The form of a transition (GET), or firing it (POST) and back to the record."""
    act = actor()
    heddle = runtime()
    ent = readable(entity, act)
    row = heddle.records.get(act, ent.name, record_id)  # 404 when out of sight
    chosen = _transition(ent, name)
    if request.method == "GET":
        return _transition_page(ent, record_id, row, chosen)
    typed = {n: str(request.form.get(n, "")).strip() for n in chosen.inputs}
    values = {n: v for n, v in typed.items() if v}
    comment = str(request.form.get("comment", "")).strip()
    version = request.form.get("version", "")
    try:
        if not (version.isascii() and version.isdigit()) or not 0 < int(version) < 2**31:
            raise BadRequest(_("The form is missing the record's version: reload it."))
        _machines().fire(
            act,
            ent.name,
            record_id,
            chosen.name,
            version=int(version),
            comment=comment or None,
            values=values,
        )
    except StaleVersion:
        flash(_("Someone else changed this record in the meantime: look again."), "warning")
        return redirect(url_for("ui.record", entity=ent.name, record_id=record_id))
    except EngineError as exc:
        fields = {k: list(v) for k, v in exc.fields.items()}
        return _transition_page(
            ent,
            record_id,
            row,
            chosen,
            typed=typed,
            comment=comment,
            errors=fields,
            error=_("Please correct the fields marked below.")
            if fields
            else i18n.gettext(exc.message),
            status=exc.status,
        )
    flash(_("Done: %(what)s.", what=P.text(chosen.label, locale(), chosen.name)), "success")
    return redirect(url_for("ui.record", entity=ent.name, record_id=record_id))
