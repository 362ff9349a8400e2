"""A record's workflow bar and timeline, built from data the platform's views hand over.

The bar shows the record's states (a badge per workflow field) and the transitions the
user may fire now; the timeline tells what happened to the record, newest first: created,
fields changed (each with its value before and after), transitions with their comments.
A transition and the field changes it wrote (the same version) are one entry::

    >>> events = timeline(entity, audit, fired, people, "zh", "CNY")
    >>> events[0].title, [c.label for c in events[0].changes]
    ('赢单', ['赢率 (%)', '实际成交日期'])

Nothing here queries a database or decides a permission: ``audit`` is what the record
service's history returns for this user (hidden fields already left out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metamodel import Entity, Workflow

from .pages import Slot, column_label, slot, system_slot, text

#: The columns every write touches: not worth a line in the timeline.
QUIET = frozenset({"updated_at", "updated_by", "version", "created_at", "created_by"})


@dataclass(frozen=True)
class Change:
    """One field changed: its label, and the value before and after as widgets draw them."""

    label: str
    before: Slot
    after: Slot


@dataclass(frozen=True)
class Event:
    """One entry of the timeline."""

    at: dt.datetime
    who: str
    kind: str  # "create", "update", "delete", "restore", "transition", "comment", "activity"
    title: str
    changes: tuple[Change, ...] = ()
    comment: str = ""  # a transition's comment, a comment's text, an activity's notes
    states: tuple[str, str] = ("", "")  # a transition's states, left and entered
    #: an activity's own record (entity, id), its kind as a choice badge (label, colour)
    link: tuple[str, int] | None = None
    badge: tuple[str, str | None] | None = None
    #: an approval's event: submitted, approved, rejected, recalled, cancelled, completed,
    #: reminder or escalated (``title`` is the approval's or its step's label); a public
    #: pool's: claim, assign or return (``title`` is the pool's name)
    decision: str = ""
    #: whom a pool's assignment gave the record to
    subject: str = ""
    #: a comment's id, when it was last edited, and whether the viewer may edit it (its
    #: author) and delete it (its author, an admin)
    comment_id: int | None = None
    edited_at: dt.datetime | None = None
    editable: bool = False
    deletable: bool = False

    @property
    def icon(self) -> str:
        return {
            "create": "circle-plus",
            "update": "pencil",
            "delete": "trash",
            "restore": "restore",
            "transition": "arrow-big-right-lines",
            "comment": "message",
            "activity": "phone-call",
            "approval": "clipboard-check",
            "pool": "inbox",
        }.get(self.kind, "point")


@dataclass(frozen=True)
class Move:
    """A transition the user may fire now: a button, or a link to a form when it takes
    fields or needs a comment."""

    name: str
    label: str
    to_label: str
    form: bool


def moves(
    workflows: Sequence[Workflow], available: Sequence[Mapping[str, Any]], locale: str
) -> tuple[Move, ...]:
    """The transitions of ``available`` (as the state machines list them) as buttons;
    ``workflows`` the entity's."""
    found = []
    for item in available:
        workflow = next(w for w in workflows if w.name == item["workflow"])
        transition = next(t for t in workflow.transitions if t.name == item["name"])
        target = workflow.state(transition.to)
        found.append(
            Move(
                name=transition.name,
                label=text(transition.label, locale, transition.name),
                to_label=text(target.label, locale, target.name),
                form=bool(transition.inputs) or transition.comment == "required",
            )
        )
    return tuple(found)


def timeline(
    entity: Entity,
    audit: Sequence[Mapping[str, Any]],
    fired: Sequence[Mapping[str, Any]],
    people: Mapping[int, str],
    locale: str,
    currency: str,
    *,
    titles: Mapping[tuple[str, Any], str] | None = None,
    workflows: Sequence[Workflow] = (),
) -> tuple[Event, ...]:
    """The record's history, newest first. ``audit`` and ``fired`` are the record
    service's and the state machines' histories (oldest first); ``people`` user names by
    id; ``titles`` the titles of referenced records by (field, id)."""
    by_version = {entry["version"]: entry for entry in fired}
    states = {w.field: w for w in workflows}
    events: list[Event] = []
    for entry in audit:
        who = people.get(entry.get("actor_id") or 0, "")
        action = entry["action"]
        transition = by_version.get(entry["version"]) if action == "update" else None
        changed = {
            name: pair
            for name, pair in (entry.get("changes") or {}).items()
            if name not in QUIET and not (transition and name in states)
        }
        if action == "create":
            events.append(Event(entry["at"], who, "create", ""))
        elif transition is not None:
            label, moved = _transition_title(states, transition, locale)
            events.append(
                Event(
                    transition["at"],
                    who,
                    "transition",
                    label,
                    _changes(entity, changed, locale, currency, titles or {}),
                    transition.get("comment") or "",
                    moved,
                )
            )
        elif action == "update" and changed:
            changes = _changes(entity, changed, locale, currency, titles or {})
            events.append(Event(entry["at"], who, "update", "", changes))
        elif action != "update":
            events.append(Event(entry["at"], who, action, ""))
    return tuple(reversed(events))


def _transition_title(
    states: Mapping[str, Workflow], fired: Mapping[str, Any], locale: str
) -> tuple[str, tuple[str, str]]:
    """A fired transition's label and the labels of the states it left and entered."""
    workflow = next((w for w in states.values() if w.name == fired["workflow"]), None)
    if workflow is None:
        return str(fired["transition"]), (str(fired["from_state"]), str(fired["to_state"]))
    name = str(fired["transition"])
    found = next((t for t in workflow.transitions if t.name == name), None)
    # an approval's outcome moves the record as "<approval>:<outcome>": named by the
    # approval, the states it moved between tell the outcome
    approval = next((a for a in workflow.approvals if a.name == name.split(":")[0]), None)
    if found is not None:
        label = text(found.label, locale, found.name)
    elif approval is not None and ":" in name:
        label = text(approval.label, locale, approval.name)
    else:
        label = name
    named = {s.name: text(s.label, locale, s.name) for s in workflow.states}
    left, entered = str(fired["from_state"]), str(fired["to_state"])
    return label, (named.get(left, left), named.get(entered, entered))


def _title(titles: Mapping[tuple[str, Any], str], name: str, value: Any) -> str | None:
    """A reference's title; None for a list of values (a multiple file field's ids)."""
    return None if isinstance(value, list) else titles.get((name, value))


def _changes(
    entity: Entity,
    changed: Mapping[str, Any],
    locale: str,
    currency: str,
    titles: Mapping[tuple[str, Any], str],
) -> tuple[Change, ...]:
    found = []
    for name, pair in changed.items():
        paired = isinstance(pair, list | tuple) and len(pair) == 2
        before, after = pair if paired else (None, pair)
        field = entity.fields.get(name)
        if field is None:
            if name not in entity.system_fields:
                continue
            found.append(
                Change(
                    column_label(entity, name, locale),
                    system_slot(name, locale, before, _title(titles, name, before)),
                    system_slot(name, locale, after, _title(titles, name, after)),
                )
            )
            continue
        found.append(
            Change(
                column_label(entity, name, locale),
                slot(field, locale, before, title=_title(titles, name, before), currency=currency),
                slot(field, locale, after, title=_title(titles, name, after), currency=currency),
            )
        )
    return tuple(found)


def comment_events(
    comments: Sequence[Mapping[str, Any]], viewer: int | None = None, admin: bool = False
) -> list[Event]:
    """Comments (as :meth:`engine.comments.Comments.list` returns them) as entries; the
    ``viewer``'s own may be edited and deleted by them, anyone's deleted by an ``admin``."""
    found = []
    for c in comments:
        mine = viewer is not None and c.get("author_id") == viewer
        entry = Event(
            c["created_at"], str(c.get("author") or ""), "comment", "",
            comment=str(c["body"]), comment_id=c.get("id"), edited_at=c.get("edited_at"),
            editable=mine, deletable=mine or admin,
        )  # fmt: skip
        found.append(entry)
    return found


def activity_events(
    entity: Entity,
    spec: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    people: Mapping[int, str],
    locale: str,
) -> list[Event]:
    """Records of ``entity`` (an activity, a visit…) as entries, by its ``timeline`` view:
    ``at`` (when), ``title``, ``body`` and ``kind`` (a choice shown as its badge). Rows
    without a time are left out."""
    kind_field = entity.fields.get(spec.get("kind") or "")
    found = []
    for row in rows:
        at = row.get(spec["at"])
        if not isinstance(at, dt.datetime | dt.date):
            continue
        if not isinstance(at, dt.datetime):
            at = dt.datetime.combine(at, dt.time(), dt.UTC)
        badge = None
        if kind_field is not None and row.get(kind_field.name) not in (None, ""):
            value = row[kind_field.name]
            option = next((o for o in kind_field.options if o.value == value), None)
            badge = (
                (text(option.label, locale, str(value)), option.color)
                if option
                else (str(value), None)
            )
        who = row.get("owner_id__title") or people.get(row.get("created_by") or 0, "")
        found.append(
            Event(
                at,
                str(who or ""),
                "activity",
                str(row.get(spec["title"]) or f"{text(entity.label, locale)} #{row['id']}"),
                comment=str(row.get(spec.get("body") or "") or ""),
                link=(entity.name, int(row["id"])),
                badge=badge,
            )
        )
    return found


#: the approval events a timeline shows (a step's requests and skips are the panel's)
APPROVAL_EVENTS = frozenset(
    {"submitted", "approved", "rejected", "recalled", "cancelled", "completed", "reminder",
     "escalated"}
)  # fmt: skip


def approval_events(
    rows: Sequence[Mapping[str, Any]],
    labels: Mapping[tuple[str, str, str | None], str],
    people: Mapping[int, str],
) -> list[Event]:
    """Approval events (rows of the approval event table with their approval's
    ``workflow`` and ``approval``) as entries; ``labels`` names each (workflow, approval,
    step) — the step None for the approval itself. A decision's comment goes with it."""
    found = []
    for row in rows:
        if row["kind"] not in APPROVAL_EVENTS:
            continue
        key = (row["workflow"], row["approval"], row["step"])
        title = labels.get(key) or labels.get((row["workflow"], row["approval"], None), "")
        who = people.get(row["actor_id"] or 0, "")
        if row["on_behalf_of"]:
            who = f"{who} ({people.get(row['on_behalf_of'], '')})" if who else who
        found.append(
            Event(row["at"], who, "approval", title, comment=str(row["comment"] or ""),
                  decision=str(row["kind"]))
        )  # fmt: skip
    return found


def pool_events(rows: Sequence[Mapping[str, Any]], people: Mapping[int, str]) -> list[Event]:
    """A record's claims, assignments and returns (as
    :meth:`engine.Records.pool_log` gives them) as entries; a return's note goes with it."""
    return [
        Event(
            row["at"],
            people.get(row["actor_id"] or 0, ""),
            "pool",
            str(row["pool"]["name"]),
            comment=str(row["note"] or ""),
            decision=str(row["action"]),
            subject=people.get(row["user_id"] or 0, ""),
        )
        for row in rows
    ]


def merge(*groups: Sequence[Event]) -> tuple[Event, ...]:
    """Entries of several sources in one timeline, newest first (stable: on a tie the
    first group's entry comes first)."""

    def moment(event: Event) -> dt.datetime:
        at = event.at
        return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)

    everything = [event for group in groups for event in group]
    return tuple(sorted(everything, key=moment, reverse=True))
