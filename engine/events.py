"""Record events: the workflows layer reacts to changes inside the same transaction.

Handlers subscribe to an action (``before_create`` … ``after_delete``), optionally for one
entity. ``before_*`` handlers may change ``event.values`` (a workflow setting a stage's
probability, say); raising refuses the change and rolls everything back.

>>> bus = EventBus()
>>> @bus.on("after_update", "opportunity")
... def notice(event): print(event.changed)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .context import Actor

if TYPE_CHECKING:
    from .records import Records

ACTIONS = (
    "before_create",
    "after_create",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
    # a merge is the loser's delete and the survivor's update (each with its events),
    # between these two: ``record_id`` is the survivor, ``previous`` the loser's row, so
    # what keeps rows of its own about records (comments, files…) can move the loser's
    # before its delete (``values`` is the survivor's row before, then after the merge)
    "before_merge",
    "after_merge",
)


@dataclass
class RecordEvent:
    """One change to one record, as handlers see it."""

    action: str
    entity: str
    actor: Actor
    conn: sa.Connection
    records: Records
    record_id: int | None
    values: dict[str, Any]  # the record as it will be (create, update) or was (delete)
    previous: dict[str, Any] | None = None  # the record before an update or delete
    changed: frozenset[str] = field(default_factory=frozenset)
    #: the platform's own write (a workflow, an import, a cascade), not a client's input
    trusted: bool = False


Handler = Callable[[RecordEvent], None]


class EventBus:
    """Synchronous subscribers, called in order of subscription."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[str | None, Handler]]] = {a: [] for a in ACTIONS}

    def subscribe(self, action: str, handler: Handler, entity: str | None = None) -> None:
        if action not in self._handlers:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        self._handlers[action].append((entity, handler))

    def on(self, action: str, entity: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`subscribe`."""

        def register(handler: Handler) -> Handler:
            self.subscribe(action, handler, entity)
            return handler

        return register

    def emit(self, event: RecordEvent) -> None:
        for entity, handler in self._handlers[event.action]:
            if entity is None or entity == event.entity:
                handler(event)
