"""The rules a workflow puts on its records, kept through the engine's record events so
every write obeys them — the API's, the screens', an import's:

- a new record starts in the workflow's initial state;
- the state field changes only through transitions;
- a record in a ``locked`` state is read-only, and cannot be deleted, except through its
  transitions.

The platform's own writes (``trusted``: a transition, an action, an import, a cascade) may
do what the definitions make them do.

>>> attach(records.events)  # once per event bus; the platform's runtime does it
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from functools import lru_cache

from engine import EventBus, RecordEvent
from engine.errors import ValidationFailed
from metamodel import Model, Workflow

from .errors import RecordLocked

_ATTACHED: weakref.WeakSet[EventBus] = weakref.WeakSet()


def attach(bus: EventBus) -> bool:
    """Subscribe the workflow rules to ``bus`` (once; a second call does nothing and
    returns False). The handlers follow whichever Model the event's record service has."""
    if bus in _ATTACHED:
        return False
    _ATTACHED.add(bus)
    bus.subscribe("before_create", starts_in_initial_state)
    bus.subscribe("before_update", state_moves_by_transitions)
    bus.subscribe("before_delete", locked_stays)
    return True


@lru_cache(maxsize=16)
def _by_entity(model: Model) -> Mapping[str, tuple[Workflow, ...]]:
    found: dict[str, tuple[Workflow, ...]] = {}
    for workflow in model.workflows.values():
        found[workflow.entity] = (*found.get(workflow.entity, ()), workflow)
    return found


def workflows_of(event: RecordEvent) -> tuple[Workflow, ...]:
    return _by_entity(event.records.model).get(event.entity, ())


def _leaving(workflow: Workflow, state: object) -> str:
    names = [t.name for t in workflow.transitions if t.allowed_from(str(state))]
    return ", ".join(names) if names else "none"


def _locked(workflow: Workflow, state: object) -> bool:
    return any(s.name == state and s.locked for s in workflow.states)


def starts_in_initial_state(event: RecordEvent) -> None:
    for workflow in workflows_of(event):
        field = event.records.model.entity(event.entity).field(workflow.field)
        initial = workflow.initial.name
        value = event.values.get(workflow.field)
        if value in (None, field.default, initial) or event.trusted:
            event.values.setdefault(workflow.field, initial)
            if value in (None, field.default):
                event.values[workflow.field] = initial
            continue
        label = field.label.get(event.actor.locale)
        raise ValidationFailed(
            f"a new {event.entity} starts in '{initial}'",
            {
                workflow.field: [
                    f"{label} starts as '{initial}' and changes only through the "
                    f"transitions of {workflow.name} (from '{initial}': "
                    f"{_leaving(workflow, initial)})."
                ]
            },
        )


def state_moves_by_transitions(event: RecordEvent) -> None:
    if event.trusted or event.previous is None:
        return
    for workflow in workflows_of(event):
        before = event.previous.get(workflow.field)
        if _locked(workflow, before):
            raise RecordLocked(
                f"this {event.entity} is '{before}', which locks it: only the transitions "
                f"of {workflow.name} may change it (from '{before}': "
                f"{_leaving(workflow, before)})",
                details={"state": before},
            )
        if event.values.get(workflow.field) != before:
            field = event.records.model.entity(event.entity).field(workflow.field)
            label = field.label.get(event.actor.locale)
            raise ValidationFailed(
                f"{label} changes only through transitions",
                {
                    workflow.field: [
                        f"{label} changes only through the transitions of {workflow.name} "
                        f"(from '{before}': {_leaving(workflow, before)})."
                    ]
                },
            )


def locked_stays(event: RecordEvent) -> None:
    if event.trusted:
        return
    for workflow in workflows_of(event):
        before = event.values.get(workflow.field)
        if _locked(workflow, before):
            raise RecordLocked(
                f"this {event.entity} is '{before}', which locks it: it cannot be deleted",
                details={"state": before},
            )
