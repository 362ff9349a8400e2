"""State machines: fire a transition, list the transitions a user may fire now, and read
a record's transition history.

Firing is one transaction: the record's row is locked and its version compared with the
one the client read (a stale one is a 409, so of concurrent attempts on one version
exactly one wins); then the transition's roles, the state it leaves, the comment rule,
the fields it takes and its guard are checked; then the actions run — the state left's
``on_exit``, the transition's ``set`` and ``actions``, the state entered's ``on_enter`` —
and the record is written once with its new state and every field the actions set,
through the record service (validations, audit and record events apply). A row of
``heddle_transition`` says who fired what, when, from where to where, with which comment.

>>> machines = StateMachines(records)
>>> deal = machines.fire(actor, "opportunity", 7, "lose", version=3,
...                      comment="went with a competitor", values={"lost_reason": "price"})
>>> [t["name"] for t in machines.available(actor, "opportunity", 7)]
['reopen']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine import Actor, Records
from engine.errors import Forbidden, NotFound, StaleVersion, ValidationFailed
from engine.records import jsonable
from engine.tables import TRANSITION_TABLE
from metamodel import Action, Entity, Transition, Workflow
from metamodel.expressions import Context

from .actions import Run, run_actions
from .errors import TransitionRefused

REQUIRED = "Missing data for required field."
COMMENT_FIELD = "comment"


@dataclass(frozen=True)
class Fired:
    """A transition that has just fired, in its still open transaction."""

    machines: StateMachines
    conn: sa.Connection
    actor: Actor
    entity: Entity
    record_id: int
    workflow: Workflow
    transition: Transition
    from_state: str
    comment: str | None
    record: dict[str, Any]


#: Called with each :class:`Fired` transition inside its transaction: an approval starts
#: here (:mod:`workflows.approvals` subscribes). A hook that raises undoes the transition;
#: one that moves the record on returns it as it is now (else None).
FIRED: list[Callable[[Fired], dict[str, Any] | None]] = []


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


class StateMachines:
    """The workflows of one record service's Model, run on its database."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.model = records.model
        self.history_table = records.tables.metadata.tables[TRANSITION_TABLE]

    # finding --------------------------------------------------------------------------------

    def find(self, entity: str, name: str) -> tuple[Workflow, Transition]:
        """The workflow and transition ``name`` of ``entity``; NotFound suggests a name."""
        ent = self.records.entity(entity)
        names: list[str] = []
        for workflow in self.model.workflows_of(ent.name):
            for transition in workflow.transitions:
                if transition.name == name:
                    return workflow, transition
                names.append(transition.name)
        if not names:
            raise NotFound(f"{ent.name} has no workflow, so no transitions")
        raise NotFound(f"no transition '{name}' on {ent.name} ({_suggest(name, names)})")

    # firing ---------------------------------------------------------------------------------

    def fire(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        name: str,
        *,
        version: int | None,
        comment: Any = None,
        values: Mapping[str, Any] | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """Fire transition ``name`` on a record the client read at ``version``; returns the
        record as :meth:`engine.Records.get` would. ``values`` are the fields the transition
        takes (``required_fields`` and ``fields``)."""
        workflow, transition = self.find(entity, name)
        ent = self.records.entity(entity)
        given = dict(values or {})
        if conn is not None:
            return self._fire(conn, actor, ent, record_id, workflow, transition,
                              version, comment, given)  # fmt: skip
        with self.records.transaction() as new:
            return self._fire(new, actor, ent, record_id, workflow, transition,
                              version, comment, given)  # fmt: skip

    def _fire(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        workflow: Workflow,
        transition: Transition,
        version: int | None,
        comment: Any,
        given: dict[str, Any],
    ) -> dict[str, Any]:
        records = self.records
        grant = records.access.writable(conn, actor, ent, record_id, "update")
        row = self._locked_row(conn, ent, record_id)
        if version is not None and row["version"] != version:
            raise StaleVersion(
                f"the {ent.name} was changed by someone else (version {row['version']}, "
                f"you sent {version}): reload it and try '{transition.name}' again",
                details={"current_version": row["version"]},
            )
        if not self.may_fire(actor, transition):
            raise Forbidden(f"only {self._roles(transition)} may fire '{transition.name}'")
        state = row[workflow.field]
        if not transition.allowed_from(state):
            raise TransitionRefused(
                f"'{transition.name}' cannot be fired from '{state}': it goes from "
                f"{', '.join(transition.sources)} to {transition.to}",
                details={"state": state, "from": list(transition.sources)},
            )
        text = self._comment(transition, comment)
        records.access.guard(actor, ent, given, grant, "update")
        coerced = self._input(ent, transition, given)
        context = actor.context()
        view = records.computer.view(conn, ent, {**row, **coerced}, context)
        self._required(ent, transition, view)
        if transition.guard is not None and not holds(transition, view, context):
            raise TransitionRefused(
                f"'{transition.name}' is not possible now: its condition "
                f"'{transition.guard.source}' does not hold for this {ent.name}",
                details={"guard": transition.guard.source},
            )
        record = self._move(conn, actor, ent, row, view, workflow, transition.to,
                            transition.name, text, transition.actions, given)  # fmt: skip
        fired = Fired(self, conn, actor, ent, record_id, workflow, transition, state, text, record)
        for hook in FIRED:
            moved = hook(fired)
            if moved is not None:  # the hook moved the record on (an approval settled it)
                record = moved
        return record

    def settle(
        self,
        conn: sa.Connection,
        actor: Actor,
        entity: str,
        record_id: int,
        workflow: Workflow,
        to: str,
        *,
        name: str,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Move the record to state ``to`` on the platform's authority, not by a transition
        the actor fires: an approval settling it (``name`` is what the history shows, such
        as ``contract_review:approved``). The states' ``on_exit`` and ``on_enter`` actions
        run, and the audit names the actor."""
        ent = self.records.entity(entity)
        row = self._locked_row(conn, ent, record_id)
        acting = dataclasses.replace(actor, roles=actor.roles | {"admin"})
        view = self.records.computer.view(conn, ent, row, acting.context())
        return self._move(conn, acting, ent, row, view, workflow, to, name, comment, (), {})

    def _move(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        row: Mapping[str, Any],
        view: dict[str, Any],
        workflow: Workflow,
        to: str,
        name: str,
        text: str | None,
        actions: tuple[Action, ...],
        given: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Run the actions of leaving ``row``'s state, of the move and of entering ``to``
        (``view``: the record as expressions see it); write the record once and a history
        row."""
        records = self.records
        record_id = int(row["id"])
        state = row[workflow.field]
        context = actor.context()
        view["transition"] = {
            "name": name,
            "from_state": state,
            "to_state": to,
            "comment": text,
        }
        run = Run(records, conn, actor, ent, record_id, view, context)
        run_actions(run, workflow.state(state).on_exit)
        run_actions(run, actions)
        run.set({workflow.field: to})
        run_actions(run, workflow.state(to).on_enter)
        data = {**given, **{k: jsonable(v) for k, v in run.changes.items()}}
        record = records.update(
            actor, ent.name, record_id, data, version=row["version"], conn=conn, trusted=True
        )
        conn.execute(
            self.history_table.insert().values(
                entity=ent.name,
                record_id=record_id,
                workflow=workflow.name,
                transition=name,
                from_state=state,
                to_state=to,
                comment=text,
                actor_id=actor.user_id,
                at=dt.datetime.now(dt.UTC),
                version=record["version"],
            )
        )
        return record

    def _locked_row(self, conn: sa.Connection, ent: Entity, record_id: int) -> dict[str, Any]:
        """The stored row, locked until the transaction ends (PostgreSQL: ``FOR UPDATE``;
        SQLite holds one write lock for the whole database)."""
        table = self.records.tables.table(ent.name)
        query = sa.select(table).where(table.c.id == record_id)
        if self.records.dialect == "postgresql":
            query = query.with_for_update()
        found = conn.execute(query).mappings().first()
        if found is None:
            raise NotFound(f"no {ent.name} with id {record_id}")
        return dict(found)

    @staticmethod
    def _roles(transition: Transition) -> str:
        names = list(transition.roles)
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"

    @staticmethod
    def may_fire(actor: Actor, transition: Transition) -> bool:
        """Whether the actor's roles allow the transition (its guard aside)."""
        return not transition.roles or actor.is_admin or bool(actor.roles & set(transition.roles))

    @staticmethod
    def _comment(transition: Transition, comment: Any) -> str | None:
        if comment is not None and not isinstance(comment, str):
            raise ValidationFailed(
                "the comment is not valid", {COMMENT_FIELD: ["Not a valid string."]}
            )
        text = comment.strip() if isinstance(comment, str) else ""
        if transition.comment == "required" and not text:
            raise ValidationFailed(
                f"'{transition.name}' needs a comment saying why",
                {COMMENT_FIELD: [f"A comment is required to {transition.name}."]},
            )
        if transition.comment == "none" and text:
            raise ValidationFailed(
                f"'{transition.name}' takes no comment",
                {COMMENT_FIELD: [f"'{transition.name}' takes no comment."]},
            )
        return text or None

    def _input(
        self, ent: Entity, transition: Transition, given: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The fields sent with the transition, coerced; only those it takes."""
        errors: dict[str, list[str]] = {}
        for name in given:
            if name not in transition.inputs:
                takes = ", ".join(transition.inputs) or "no fields"
                errors[str(name)] = [
                    f"'{transition.name}' does not take this field (it takes {takes}); "
                    "change it with an update first"
                ]
        values, _children, problems = self.records.validator.input(
            ent, given, partial=True, trusted=False
        )
        for name, messages in problems.items():
            errors.setdefault(name, []).extend(messages)
        if errors:
            raise ValidationFailed(
                f"the fields sent with '{transition.name}' are not valid", errors
            )
        return values

    @staticmethod
    def _required(ent: Entity, transition: Transition, view: Mapping[str, Any]) -> None:
        missing = {
            name: [REQUIRED] for name in transition.required_fields if _empty(view.get(name))
        }
        if missing:
            names = ", ".join(missing)
            raise ValidationFailed(
                f"'{transition.name}' needs {names}: send {'them' if len(missing) > 1 else 'it'}"
                " with the transition",
                missing,
            )

    # reading --------------------------------------------------------------------------------

    def available(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """The transitions the actor may fire on the record now: from its current state,
        allowed to one of their roles, guard holding. Empty when they may not change it."""
        ent = self.records.entity(entity)
        workflows = self.model.workflows_of(ent.name)

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            self._readable(c, actor, ent, record_id)
            grant = self.records.permissions.grant(actor, ent, "update")
            if not workflows or not grant.allowed:
                return []
            if not self.records.permissions.covers(c, actor, ent, grant, record_id):
                return []
            table = self.records.tables.table(ent.name)
            row = dict(c.execute(sa.select(table).where(table.c.id == record_id)).mappings().one())
            context = actor.context()
            view = self.records.computer.view(c, ent, row, context)
            found = []
            for workflow in workflows:
                state = row[workflow.field]
                for transition in workflow.transitions:
                    if not transition.allowed_from(state) or not self.may_fire(actor, transition):
                        continue
                    if not holds(transition, view, context):
                        continue
                    found.append(describe(workflow, transition, state))
            return found

        if conn is not None:
            return work(conn)
        with self.records.reader.connect() as new:
            return work(new)

    def _readable(self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int) -> None:
        """NotFound for a record that does not exist (any more) or is out of sight."""
        if not self.records.access.exists(conn, ent, record_id):
            raise NotFound(f"no {ent.name} with id {record_id}")
        self.records.access.readable(conn, actor, ent, record_id)

    def history(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Every transition fired on the record, oldest first: who, when, from, to, comment."""
        ent = self.records.entity(entity)
        t = self.history_table

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            self._readable(c, actor, ent, record_id)
            rows = c.execute(
                sa.select(
                    t.c.workflow,
                    t.c.transition,
                    t.c.from_state,
                    t.c.to_state,
                    t.c.comment,
                    t.c.actor_id,
                    t.c.at,
                    t.c.version,
                )
                .where(t.c.entity == ent.name, t.c.record_id == record_id)
                .order_by(t.c.id)
            ).mappings()
            return [dict(row) for row in rows]

        if conn is not None:
            return work(conn)
        with self.records.reader.connect() as new:
            return work(new)


def holds(transition: Transition, view: Mapping[str, Any], context: Context) -> bool:
    """Whether the transition's guard holds on the record; one that cannot be evaluated
    (a value of the wrong kind in the data) does not."""
    if transition.guard is None:
        return True
    try:
        return bool(transition.guard.evaluate(view, context))
    except (ArithmeticError, TypeError, ValueError):
        return False


def describe(workflow: Workflow, transition: Transition, state: str) -> dict[str, Any]:
    """A transition as the API lists it."""
    target = workflow.state(transition.to)
    return {
        "name": transition.name,
        "label": transition.label.to_json(),
        "workflow": workflow.name,
        "field": workflow.field,
        "from": state,
        "to": transition.to,
        "to_label": target.label.to_json(),
        "comment": transition.comment,
        "required_fields": list(transition.required_fields),
        "fields": list(transition.fields),
        "approval": transition.approval,
    }


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f"did you mean '{close[0]}'?" if close else f"one of: {', '.join(names)}"
