"""Workflows: state machines and their actions; approvals, automations, jobs and
notifications come next. Reacts to the engine's record events and writes through its
record service; imports :mod:`metamodel` and :mod:`engine` only, never Flask.

- :class:`StateMachines` fires transitions, lists those a user may fire now and reads a
  record's transition history;
- :func:`attach` puts the workflow rules on an event bus (initial state on create, state
  changed only by transitions, locked states);
- :data:`ACTIONS` is the runtime half of :data:`metamodel.ACTION_TYPES`: the code of each
  action type, a registry plugins extend;
- :func:`mermaid` draws a workflow as a Mermaid state diagram.

>>> attach(records.events)
>>> StateMachines(records).fire(actor, "lead", 3, "qualify", version=2)
"""

from __future__ import annotations

from .actions import ACTIONS, ActionRunner, Run, run_actions
from .diagram import mermaid
from .errors import ActionUnavailable, RecordLocked, TransitionRefused
from .machine import StateMachines, describe
from .rules import attach

__all__ = [
    "ACTIONS",
    "ActionRunner",
    "ActionUnavailable",
    "RecordLocked",
    "Run",
    "StateMachines",
    "TransitionRefused",
    "attach",
    "describe",
    "mermaid",
    "run_actions",
]
