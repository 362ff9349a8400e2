"""The runtime half of workflow actions: what each action type of
:data:`metamodel.ACTION_TYPES` does, under the same name.

An action runs inside the transaction of the transition that fired it, with a
:class:`Run`: the record as expressions see it (``view``), the fields to write to it with
its new state (``changes``), the connection and the acting user. ``set`` and ``create`` run
here; ``notify`` (:mod:`workflows.notifications`), ``webhook`` and ``enqueue``
(:mod:`workflows.hooks`) write to the transactional outbox on the same connection. An
action type without a runtime refuses the change rather than be skipped silently.

A plugin adds a runtime with the same door as the built-ins::

    from workflows import ACTIONS, ActionRunner

    def run_sms(run, action):
        ...  # write to the outbox through run.conn

    ACTIONS.register(ActionRunner("sms", run_sms))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine import Actor, Records
from engine.records import jsonable
from metamodel import Action, Entity, Registry
from metamodel.expressions import Context

from .errors import ActionUnavailable


@dataclass
class Run:
    """One transition (or state change) being carried out, as its actions see it."""

    records: Records
    conn: sa.Connection
    actor: Actor
    entity: Entity
    record_id: int
    #: the record as expressions read it (formulas, referenced records, ``transition.*``)
    view: dict[str, Any]
    context: Context
    #: the record's fields the actions set; written with the new state in one update
    changes: dict[str, Any] = field(default_factory=dict)
    #: what runs the actions, for the messages they leave: an automation's name
    source: str = ""
    #: the record event an automation reacts to: created, updated, deleted, transition…
    event: str = ""

    @property
    def acting(self) -> Actor:
        """Who the actions' own writes are made as: the user who fired the transition,
        with the platform's authority. The definitions decide what an action does — a rep
        who may not create accounts still converts a lead — and the audit names the user."""
        return dataclasses.replace(self.actor, roles=self.actor.roles | {"admin"})

    def values(self, action: Action) -> dict[str, Any]:
        """The action's field values, evaluated on the record as it is now."""
        return {a.field: a.evaluate(self.view, self.context) for a in action.values}

    def set(self, values: Mapping[str, Any]) -> None:
        """Change fields of the record: later actions and expressions see them."""
        self.changes.update(values)
        self.view.update(values)


@dataclass(frozen=True)
class ActionRunner:
    """The code that carries out one action type."""

    name: str
    run: Callable[[Run, Action], None]


ACTIONS: Registry[ActionRunner] = Registry("action runtime")


def run_actions(run: Run, actions: tuple[Action, ...]) -> None:
    for action in actions:
        runner = ACTIONS.get(action.type)
        if runner is None:
            raise ActionUnavailable(
                f"the '{action.type}' action has no runtime in this process: load the plugin "
                f"that registers it (HEDDLE_PLUGINS), or remove it from {run.entity.name}'s "
                "definitions"
            )
        runner.run(run, action)


def _set(run: Run, action: Action) -> None:
    values = run.values(action)
    if action.target is None:
        run.set(values)
        return
    target = run.view.get(action.target)
    if isinstance(target, Mapping):  # loaded for an expression: the record it points at
        target = target.get("id")
    if target is None:
        return  # no record referenced: nothing to set
    run.records.update(
        run.acting,
        action.entity or "",
        int(target),
        {name: jsonable(value) for name, value in values.items()},
        version=None,
        conn=run.conn,
        trusted=True,
    )


def _create(run: Run, action: Action) -> None:
    values = {name: jsonable(value) for name, value in run.values(action).items()}
    # the record a transition makes something from (a lead converted into an account) is
    # no duplicate of it
    created = run.records.create(
        run.acting, action.entity or "", values, conn=run.conn, trusted=True,
        made_from=(run.entity.name, run.record_id),
    )  # fmt: skip
    if action.link is not None:
        run.set({action.link: created["id"]})


def _return_to_pool(run: Run, action: Action) -> None:
    """Hand the record back to its owner's pool, with the other changes of the run."""
    if run.view.get("owner_id") is None:
        return  # nobody owns it: nothing to return
    record = {**run.view, "id": run.record_id}
    note = action.options.get("note") or run.source or None
    run.set(run.records.pool_return(run.actor, run.entity.name, record, conn=run.conn, note=note))


ACTIONS.register(ActionRunner("set", _set))
ACTIONS.register(ActionRunner("return_to_pool", _return_to_pool))
ACTIONS.register(ActionRunner("create", _create))
