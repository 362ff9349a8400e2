"""Workflows: state machines and their actions, multi-step approvals; automations, jobs
and notifications come next. Reacts to the engine's record events and writes through its
record service; imports :mod:`metamodel` and :mod:`engine` only, never Flask.

- :class:`StateMachines` fires transitions, lists those a user may fire now and reads a
  record's transition history;
- :func:`attach` puts the workflow rules on an event bus (initial state on create, state
  changed only by transitions, locked states);
- :data:`ACTIONS` is the runtime half of :data:`metamodel.ACTION_TYPES`: the code of each
  action type, a registry plugins extend;
- :class:`Approvals` runs the approvals transitions start: decide, recall, list what
  waits for whom, and :func:`run_due` sends the reminders and escalations due;
  :class:`Delegations` keeps who approves for whom while they are away;
  :data:`APPROVAL_HOOKS` receive every approval event (notifications subscribe);
- :func:`mermaid` draws a workflow as a Mermaid state diagram.

>>> attach(records.events)
>>> StateMachines(records).fire(actor, "lead", 3, "qualify", version=2)
"""

from __future__ import annotations

from .actions import ACTIONS, ActionRunner, Run, run_actions
from .approvals import APPROVAL_HOOKS, ApprovalEvent, Approvals, run_due, subscribe
from .delegations import Delegations
from .diagram import mermaid
from .errors import (
    ActionUnavailable,
    ApprovalDecided,
    NoApprover,
    RecordLocked,
    TransitionRefused,
)
from .machine import StateMachines, describe
from .rules import attach

__all__ = [
    "ACTIONS",
    "APPROVAL_HOOKS",
    "ActionRunner",
    "ActionUnavailable",
    "ApprovalDecided",
    "ApprovalEvent",
    "Approvals",
    "Delegations",
    "NoApprover",
    "RecordLocked",
    "Run",
    "StateMachines",
    "TransitionRefused",
    "attach",
    "describe",
    "mermaid",
    "run_actions",
    "run_due",
    "subscribe",
]
