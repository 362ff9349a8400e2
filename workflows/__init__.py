"""Workflows: state machines and their actions, multi-step approvals, automations,
reminders, the outbox and its jobs, notifications. Reacts to the engine's record events
and writes through its record service; imports :mod:`metamodel` and :mod:`engine` only, never Flask.

- :class:`StateMachines` fires transitions, lists those a user may fire now and reads a
  record's transition history;
- :func:`attach` puts the workflow rules (initial state on create, state changed only by
  transitions, locked states) and the event automations on an event bus;
- :class:`JobQueue` relays the transactional outbox to RQ (or runs it in-process);
  :data:`JOBS` is the registry of job types; :mod:`workflows.automations` runs and
  previews scheduled automations and reminders; :mod:`workflows.recycling` applies the
  public pools' recycle rules every day; :class:`Inbox` reads notifications;
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

from engine import EventBus
from engine.comments import move_on_merge

from . import approval_notices, data_jobs, hooks, recycling  # noqa: F401  (jobs, ticks, hooks)
from .actions import ACTIONS, ActionRunner, Run, run_actions
from .approvals import APPROVAL_HOOKS, ApprovalEvent, Approvals, run_due, subscribe
from .automations import attach as _attach_automations
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
from .notifications import Inbox, mention
from .outbox import JOBS, TICKS, Job, JobQueue, JobRun, Mailer, Tick
from .rules import attach as _attach_rules


def attach(bus: EventBus) -> None:
    """The workflow rules and the event automations on ``bus`` (once)."""
    if _attach_rules(bus):
        _attach_automations(bus)
        bus.subscribe("after_merge", move_on_merge)  # a merge's comments follow the survivor


__all__ = [
    "ACTIONS",
    "APPROVAL_HOOKS",
    "JOBS",
    "TICKS",
    "ActionRunner",
    "ActionUnavailable",
    "ApprovalDecided",
    "ApprovalEvent",
    "Approvals",
    "Delegations",
    "Inbox",
    "Job",
    "JobQueue",
    "JobRun",
    "Mailer",
    "NoApprover",
    "RecordLocked",
    "Run",
    "StateMachines",
    "Tick",
    "TransitionRefused",
    "attach",
    "describe",
    "hooks",
    "mention",
    "mermaid",
    "run_actions",
    "run_due",
    "subscribe",
]
