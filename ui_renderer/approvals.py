"""A record's approval panel and the approval inbox, built from what the platform's views
hand over: the approvals as :class:`workflows.Approvals` describes them, the users' names
and the Model's definitions (for the labels).

    >>> shown = panel(approval, definition, people, "zh", can_decide=True, can_recall=False)
    >>> shown.status, [s.label for s in shown.steps]
    ('pending', ['直属上级', '财务'])

Nothing here queries a database or decides who may act: ``can_decide`` and ``can_recall``
come from the platform, which asks the workflows layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metamodel import Approval, Entity

from .pages import text

#: The badge colour of each status of an approval, a step or an approver's seat.
COLORS: Mapping[str, str] = {
    "pending": "orange",
    "approved": "green",
    "rejected": "red",
    "recalled": "secondary",
    "cancelled": "secondary",
    "skipped": "secondary",
    "closed": "secondary",
}

#: The icon of each kind of event in an approval's history.
ICONS: Mapping[str, str] = {
    "submitted": "send",
    "requested": "user-question",
    "approved": "circle-check",
    "rejected": "circle-x",
    "recalled": "arrow-back-up",
    "escalated": "arrow-big-up-lines",
    "reminder": "bell",
    "skipped": "player-skip-forward",
    "completed": "flag-check",
    "cancelled": "ban",
}


@dataclass(frozen=True)
class Seat:
    """One approver of a step and what became of their part."""

    approver: str
    status: str
    decided_by: str = ""  # set when someone decided for the approver (a stand-in, an admin)
    decided_at: dt.datetime | None = None
    comment: str = ""
    escalated: bool = False

    @property
    def color(self) -> str:
        return COLORS.get(self.status, "secondary")


@dataclass(frozen=True)
class Step:
    """One step: its label, how many approvals it needs and has, and its approvers."""

    name: str
    label: str
    status: str
    needed: int
    approved: int
    seats: tuple[Seat, ...]

    @property
    def color(self) -> str:
        return COLORS.get(self.status, "secondary")


@dataclass(frozen=True)
class Happened:
    """One entry of an approval's history."""

    kind: str
    who: str
    at: dt.datetime
    step: str = ""
    on_behalf_of: str = ""
    comment: str = ""
    to: str = ""  # whom it asked or told (a request, an escalation)

    @property
    def icon(self) -> str:
        return ICONS.get(self.kind, "point")


@dataclass(frozen=True)
class Panel:
    """The record page's approval panel: the record's latest approval."""

    id: int
    label: str
    status: str
    version: int
    submitted_by: str
    submitted_at: dt.datetime
    steps: tuple[Step, ...]
    history: tuple[Happened, ...]
    can_decide: bool
    can_recall: bool
    earlier: int = 0  # how many approvals the record had before this one

    @property
    def color(self) -> str:
        return COLORS.get(self.status, "secondary")


@dataclass(frozen=True)
class InboxRow:
    """One approval in the inbox: the record, where it stands, who asked and when."""

    id: int
    entity: str
    entity_label: str
    record_id: int
    title: str
    steps: str  # the labels of its current (or last) steps
    submitted_by: str
    submitted_at: dt.datetime
    status: str
    version: int
    can_decide: bool

    @property
    def color(self) -> str:
        return COLORS.get(self.status, "secondary")


def _name(people: Mapping[int, str], user_id: Any) -> str:
    if not isinstance(user_id, int):
        return ""
    return people.get(user_id, f"#{user_id}")


def _step_labels(definition: Approval | None, locale: str) -> dict[str, str]:
    if definition is None:
        return {}
    return {s.name: text(s.label, locale, s.name) for s in definition.steps}


def _seat(task: Mapping[str, Any], people: Mapping[int, str]) -> Seat:
    behalf = task.get("on_behalf_of")
    return Seat(
        approver=_name(people, task.get("approver_id")),
        status=str(task["status"]),
        decided_by=_name(people, task.get("decided_by")) if behalf is not None else "",
        decided_at=task.get("decided_at"),
        comment=task.get("comment") or "",
        escalated=bool(task.get("escalated")),
    )


def panel(
    approval: Mapping[str, Any],
    definition: Approval | None,
    people: Mapping[int, str],
    locale: str,
    *,
    can_decide: bool,
    can_recall: bool,
    earlier: int = 0,
) -> Panel:
    """The panel of ``approval`` (as :meth:`workflows.Approvals.get` answers it, with its
    history); ``definition`` its Model definition (None when it is gone); ``people`` the
    names of the users it mentions."""
    labels = _step_labels(definition, locale)
    steps = tuple(
        Step(
            name=str(s["name"]),
            label=labels.get(s["name"], str(s["name"])),
            status=str(s["status"]),
            needed=int(s["needed"] or 0),
            approved=int(s["approved"] or 0),
            seats=tuple(_seat(t, people) for t in s["tasks"]),
        )
        for s in approval["steps"]
    )
    history = tuple(
        Happened(
            kind=str(h["kind"]),
            who=_name(people, h.get("actor_id")),
            at=h["at"],
            step=labels.get(h.get("step") or "", h.get("step") or ""),
            on_behalf_of=_name(people, h.get("on_behalf_of")),
            comment=h.get("comment") or "",
            to=", ".join(_name(people, r) for r in h.get("recipients") or ())
            if h["kind"] in ("requested", "escalated")
            else "",
        )
        for h in reversed(approval.get("history") or ())
        if h["kind"] != "reminder"
    )
    return Panel(
        id=int(approval["id"]),
        label=text(definition.label, locale, definition.name)
        if definition
        else str(approval["approval"]),
        status=str(approval["status"]),
        version=int(approval["version"]),
        submitted_by=_name(people, approval.get("submitted_by")),
        submitted_at=approval["submitted_at"],
        steps=steps,
        history=history,
        can_decide=can_decide,
        can_recall=can_recall,
        earlier=earlier,
    )


def inbox(
    approvals: Sequence[Mapping[str, Any]],
    entities: Mapping[str, Entity],
    definitions: Mapping[tuple[str, str], Approval],
    people: Mapping[int, str],
    locale: str,
    *,
    deciding: bool,
) -> tuple[InboxRow, ...]:
    """The rows of an inbox tab: ``approvals`` as :meth:`workflows.Approvals.listing`
    answers them; ``definitions`` by (workflow, approval) name; ``deciding`` whether the
    user may decide them (the pending tab)."""
    rows = []
    for item in approvals:
        entity = entities.get(item["entity"])
        record = item.get("record") or {}
        labels = _step_labels(definitions.get((item["workflow"], item["approval"])), locale)
        current = [s for s in item["steps"] if s["status"] == "pending"] or [
            s for s in item["steps"] if s["status"] != "skipped"
        ][-1:]
        title = record.get("title")
        rows.append(
            InboxRow(
                id=int(item["id"]),
                entity=str(item["entity"]),
                entity_label=text(entity.label, locale, entity.name)
                if entity
                else str(item["entity"]),
                record_id=int(item["record_id"]),
                title=str(title) if title not in (None, "") else f"#{item['record_id']}",
                steps=", ".join(labels.get(s["name"], str(s["name"])) for s in current),
                submitted_by=_name(people, item.get("submitted_by")),
                submitted_at=item["submitted_at"],
                status=str(item["status"]),
                version=int(item["version"]),
                can_decide=deciding and item["status"] == "pending",
            )
        )
    return tuple(rows)


__all__ = ["Happened", "InboxRow", "Panel", "Seat", "Step", "inbox", "panel"]
