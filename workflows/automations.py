"""Automations: event automations react to record events; scheduled automations and
date reminders act on the records a query finds.

**Event automations** (``trigger: {event: created|updated|deleted|transition}``) are
record-event handlers (:func:`attach`): after the change, in its transaction, each
automation of the entity whose trigger matches (``fields`` for ``updated``, the
``transitions`` for ``transition``) and whose ``condition`` holds runs its actions — in
the transaction, so a failing action refuses the change, or, with ``async: true``, as an
``automation`` job written to the outbox, run after the commit.

**Scheduled automations** (``trigger: {schedule: <cron>}``) act on the records their
``condition`` selects, compiled to SQL; **date reminders** (``trigger: {date_field,
offset_days, yearly}``) on those whose date is the day — an equality (or, for
``yearly``, an ``IN`` over the same day of each year from the oldest date on) on the
indexed date column, never a scan. Records are taken ``batch_size`` at a time, each
batch one transaction, each record in a savepoint; before its actions, a record's row of
``heddle_automation_mark`` (automation, record, slot) is inserted, and a record whose row
exists is skipped: a second run of the same slot changes nothing.

:func:`preview` is the dry run: the records a run at a given moment would act on, and
why. :func:`enqueue_due` is what the scheduler's every-minute tick calls.

>>> preview(records, model.automations["idle_nudge"], at=tomorrow).summary
'37 accounts: idle_nudge would act on them at 2026-06-02 07:00'
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.dialects import postgresql, sqlite

from engine import SYSTEM, Actor, Conflict, EventBus, NotFound, RecordEvent, Records
from engine.paths import Resolver
from engine.records import jsonable
from engine.sqlexpr import to_sql
from engine.tables import MARK_TABLE
from metamodel import Automation, Entity, Model, local_midnight
from metamodel.expressions import Context

from .actions import Run, run_actions
from .notifications import title_of
from .outbox import JOBS, TICKS, Job, JobQueue, JobRun, Tick, add

log = logging.getLogger("heddle.automations")

DEFAULT_BATCH = 100
#: the schedule of date reminders (the setting HEDDLE_REMINDER_CRON)
REMINDER_CRON = "0 7 * * *"
_DEPTH = "heddle_automation_depth"
MAX_DEPTH = 4
_EVENTS = {"after_create": "created", "after_update": "updated", "after_delete": "deleted"}


# event automations -------------------------------------------------------------------------


def attach(bus: EventBus) -> None:
    """Subscribe the event automations to ``bus`` (after create, update and delete)."""
    for action in _EVENTS:
        bus.subscribe(action, on_event)


@lru_cache(maxsize=16)
def _by_trigger(model: Model) -> Mapping[tuple[str, str], tuple[Automation, ...]]:
    found: dict[tuple[str, str], tuple[Automation, ...]] = {}
    for automation in model.automations.values():
        if automation.enabled and automation.kind == "event":
            key = (automation.entity, str(automation.trigger["event"]))
            found[key] = (*found.get(key, ()), automation)
    return found


def _moved(event: RecordEvent) -> dict[str, Any] | None:
    """How the record moved through its workflow (its state field changed): the
    transitions that lead so (``names``; ``name`` when there is one), ``from_state`` and
    ``to_state``; None when it did not move."""
    if event.previous is None:
        return None
    for workflow in event.records.model.workflows_of(event.entity):
        before, after = event.previous.get(workflow.field), event.values.get(workflow.field)
        if workflow.field in event.changed and before != after:
            names = sorted(
                t.name
                for t in workflow.transitions
                if t.to == after and t.allowed_from(str(before))
            )
            return {
                "name": names[0] if len(names) == 1 else None,
                "names": names,
                "from_state": before,
                "to_state": after,
                "comment": None,
            }
    return None


def _triggered(event: RecordEvent) -> list[Automation]:
    by_trigger = _by_trigger(event.records.model)
    kind = _EVENTS[event.action]
    found = [
        a
        for a in by_trigger.get((event.entity, kind), ())
        if kind != "updated"
        or not a.trigger.get("fields")
        or event.changed & set(a.trigger["fields"])
    ]
    if kind == "updated":
        moved = _moved(event)
        if moved is not None:
            found += [
                a
                for a in by_trigger.get((event.entity, "transition"), ())
                if not a.trigger.get("transitions")
                or set(moved["names"]) & set(a.trigger["transitions"])
            ]
    return found


def on_event(event: RecordEvent) -> None:
    automations = _triggered(event)
    if not automations:
        return
    conn, records = event.conn, event.records
    depth = conn.info.get(_DEPTH, 0)
    if depth >= MAX_DEPTH:
        raise Conflict(
            f"automations set off one another {MAX_DEPTH} deep on {event.entity} "
            f"({', '.join(a.name for a in automations)}): limit them with 'fields' or a "
            "condition"
        )
    ent = records.model.entity(event.entity)
    context = event.actor.context()
    deleted = event.action == "after_delete"
    view = (
        dict(event.values) if deleted else records.computer.view(conn, ent, event.values, context)
    )
    moved = _moved(event) if event.action == "after_update" else None
    conn.info[_DEPTH] = depth + 1
    try:
        for automation in automations:
            if not _holds(automation, view, context):
                continue
            kind = str(automation.trigger["event"])
            if automation.run_async:
                args = {
                    "automation": automation.name,
                    "record_id": event.record_id,
                    "actor_id": event.actor.user_id,
                    "record": _plain(view) if deleted else None,
                    "event": kind,
                    "transition": moved if kind == "transition" else None,
                }
                version = view.get("version", 0)
                key = f"automation:{automation.name}:{event.record_id}:{event.action}:{version}"
                add(conn, records.tables, "automation", args, key=key)
                continue
            seen = {**view, "transition": moved} if kind == "transition" else view
            written = _act(
                records, conn, event.actor, ent, event.record_id, seen, automation, deleted, kind
            )
            if written is not None:  # the caller gets the record as the automations left it
                event.values.update(written)
                view = records.computer.view(conn, ent, event.values, context)
    finally:
        conn.info[_DEPTH] = depth


def _holds(automation: Automation, view: Mapping[str, Any], context: Context) -> bool:
    if automation.condition is None:
        return True
    try:
        return bool(automation.condition.evaluate(view, context))
    except (ArithmeticError, TypeError, ValueError):
        return False


def _plain(view: Mapping[str, Any]) -> dict[str, Any]:
    return {k: jsonable(v.get("id") if isinstance(v, Mapping) else v) for k, v in view.items()}


def _act(
    records: Records,
    conn: sa.Connection,
    actor: Actor,
    ent: Entity,
    record_id: int | None,
    view: Mapping[str, Any],
    automation: Automation,
    deleted: bool = False,
    kind: str = "",
) -> dict[str, Any] | None:
    """Run the automation's actions on one record, then write the fields they set; the
    record written, if they set any."""
    run = Run(
        records,
        conn,
        actor,
        ent,
        int(record_id or 0),
        dict(view),
        actor.context(),
        source=automation.name,
        event=kind or automation.kind,
    )
    run_actions(run, automation.actions)
    if not run.changes or deleted:
        return None
    return records.update(
        run.acting,
        ent.name,
        run.record_id,
        {k: jsonable(v) for k, v in run.changes.items()},
        version=None,
        conn=conn,
        trusted=True,
    )


def _run_async(run: JobRun, args: Mapping[str, Any]) -> None:
    """The ``automation`` job: an ``async`` automation's actions, after the commit."""
    records = run.records
    automation = records.model.automations.get(str(args["automation"]))
    if automation is None or not automation.enabled:
        return  # removed or switched off since
    ent = records.model.entity(automation.entity)
    conn = run.db
    actor = dataclasses.replace(SYSTEM, user_id=args.get("actor_id"))
    if args.get("record") is not None:  # deleted: the record as it was
        view: dict[str, Any] = dict(args["record"])
    else:
        table = records.tables.table(ent.name)
        row = conn.execute(sa.select(table).where(table.c.id == args["record_id"])).mappings()
        found = row.first()
        if found is None:
            return  # deleted since
        view = records.computer.view(conn, ent, dict(found), actor.context())
    if args.get("transition") is not None:
        view["transition"] = dict(args["transition"])
    _act(
        records,
        conn,
        actor,
        ent,
        args["record_id"],
        view,
        automation,
        args.get("record") is not None,
        str(args.get("event") or ""),
    )


JOBS.register(Job("automation", _run_async, "Run an async automation's actions on a record."))


# scheduled automations and reminders ---------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A record a run acts on, and why."""

    id: int
    title: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "reason": self.reason}


@dataclass
class Preview:
    automation: str
    entity: str
    at: dt.datetime
    records: list[Match] = field(default_factory=list)
    total: int = 0

    @property
    def summary(self) -> str:
        what = self.entity if self.total == 1 else f"{self.entity} records"
        return (
            f"{self.total} {what}: {self.automation} would act on "
            f"{'it' if self.total == 1 else 'them'} at {self.at:%Y-%m-%d %H:%M}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "automation": self.automation,
            "entity": self.entity,
            "at": self.at.isoformat(),
            "count": self.total,
            "summary": self.summary,
            "records": [m.to_json() for m in self.records],
        }


@dataclass
class Outcome:
    """What one run did: records matched, acted on, skipped (done by an earlier run of
    the same slot) and failed (left for the next run)."""

    automation: str
    slot: str
    matched: int = 0
    acted: int = 0
    skipped: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scheduled(model: Model) -> list[Automation]:
    """The enabled automations that run on a schedule (reminders included)."""
    return [a for a in model.automations.values() if a.enabled and a.kind != "event"]


def cron_of(automation: Automation, reminder_cron: str = REMINDER_CRON) -> str:
    return str(automation.trigger.get("schedule") or reminder_cron)


def slot_of(
    automation: Automation, at: dt.datetime, reminder_cron: str = REMINDER_CRON
) -> dt.datetime:
    """The schedule's last tick at or before ``at``, read in the process's local time
    (``HEDDLE_TIME_ZONE``'s), like cron."""
    local = at.astimezone().replace(tzinfo=None, microsecond=0) + dt.timedelta(seconds=1)
    tick: dt.datetime = croniter(cron_of(automation, reminder_cron), local).get_prev(dt.datetime)
    return tick


def _day(at: dt.datetime) -> dt.date:
    return at.astimezone().date()


def _target(automation: Automation, day: dt.date) -> dt.date:
    """The date a reminder's field must hold (or, yearly, fall on) for it to fire ``day``."""
    return day - dt.timedelta(days=int(automation.trigger.get("offset_days", 0)))


def _years(day: dt.date, first: int) -> list[dt.date]:
    """``day``'s month and day in every year from ``first`` to ``day.year``; on 28
    February of a year that is not a leap year, 29 February of the leap years too."""
    found = []
    leap_day_too = (day.month, day.day) == (2, 28) and not calendar.isleap(day.year)
    for year in range(first, day.year + 1):
        if (day.month, day.day) != (2, 29) or calendar.isleap(year):
            found.append(day.replace(year=year))
        if leap_day_too and calendar.isleap(year):
            found.append(dt.date(year, 2, 29))
    return found


def _where(
    records: Records, conn: sa.Connection, automation: Automation, day: dt.date, context: Context
) -> tuple[sa.FromClause, list[Any]]:
    """The FROM clause and conditions selecting the records a run on ``day`` acts on."""
    ent = records.model.entity(automation.entity)
    table = records.tables.table(ent.name)
    resolver = Resolver(records.tables, ent.name, records.dialect, context)
    conditions: list[Any] = []
    if automation.condition is not None:
        conditions.append(to_sql(automation.condition, resolver.column, records.dialect, context))
    name = automation.trigger.get("date_field")
    if name:
        column = table.c[name]
        target = _target(automation, day)
        is_datetime = ent.field(name).type == "datetime" if name in ent.fields else True
        if automation.trigger.get("yearly"):
            oldest = conn.scalar(sa.select(sa.func.min(column)))
            if oldest is None:
                return resolver.from_clause(), [sa.false()]
            if isinstance(oldest, str):
                oldest = dt.date.fromisoformat(oldest[:10])
            days = _years(target, oldest.year)
            if is_datetime:
                conditions.append(sa.or_(*(_on_day(column, d) for d in days)))
            else:
                conditions.append(column.in_(days))
        elif is_datetime:
            conditions.append(_on_day(column, target))
        else:
            conditions.append(column == target)
    return resolver.from_clause(), conditions


def _on_day(column: Any, day: dt.date) -> Any:
    """A datetime column within ``day`` of the deployment's time zone."""
    start, end = local_midnight(day), local_midnight(day + dt.timedelta(days=1))
    return sa.and_(column >= start, column < end)


def _matched_ids(
    records: Records,
    conn: sa.Connection,
    automation: Automation,
    day: dt.date,
    context: Context,
    after: int,
    limit: int,
) -> list[int]:
    table = records.tables.table(automation.entity)
    source, conditions = _where(records, conn, automation, day, context)
    query = (
        sa.select(table.c.id)
        .select_from(source)
        .where(table.c.id > after, *conditions)
        .order_by(table.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.scalars(query)]


def _context(at: dt.datetime) -> Context:
    return Context(today=_day(at))


def _views(
    records: Records, conn: sa.Connection, ent: Entity, ids: list[int], context: Context
) -> Iterator[dict[str, Any]]:
    table = records.tables.table(ent.name)
    rows = conn.execute(sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.id))
    for row in rows.mappings():
        yield records.computer.view(conn, ent, dict(row), context)


def reason(records: Records, automation: Automation, view: Mapping[str, Any], day: dt.date) -> str:
    """Why a run on ``day`` acts on this record, in words."""
    parts = []
    name = automation.trigger.get("date_field")
    if name:
        offset = int(automation.trigger.get("offset_days", 0))
        value = view.get(name)
        shown = value.date().isoformat() if isinstance(value, dt.datetime) else str(value)
        when = (
            f"{abs(offset)} day{'s' if abs(offset) != 1 else ''} "
            f"{'before' if offset < 0 else 'after'} it"
            if offset
            else "that day"
        )
        if automation.trigger.get("yearly"):
            target = _target(automation, day)
            parts.append(f"{name} is {shown}: every year on {target:%m-%d}, {when}")
        else:
            parts.append(f"{name} is {shown}: {when}")
    if automation.condition is not None:
        values = ", ".join(
            f"{'.'.join(path)} = {_shown(view, path)}"
            for path in sorted(automation.condition.fields)
        )
        parts.append(f"{automation.condition.source} ({values})")
    return "; ".join(parts) or "every record"


def _shown(view: Mapping[str, Any], path: tuple[str, ...]) -> str:
    value: Any = view
    for step in path:
        value = value.get(step) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="minutes")
    return "empty" if value in (None, "") else str(value)


def preview(
    records: Records, automation: Automation, *, at: dt.datetime | None = None, limit: int = 1000
) -> Preview:
    """The dry run: the records a run at ``at`` (default: now) would act on and why,
    leaving out those an earlier run of the same slot did already."""
    at = at or dt.datetime.now(dt.UTC)
    if automation.kind == "event":
        raise NotFound(f"'{automation.name}' runs on record events, not on a schedule")
    ent = records.model.entity(automation.entity)
    context = _context(at)
    day = _day(at)
    found = Preview(automation.name, ent.name, at)
    marks = records.tables.metadata.tables[MARK_TABLE]
    after = 0
    with records.reader.connect() as conn:
        while True:
            ids = _matched_ids(records, conn, automation, day, context, after, DEFAULT_BATCH)
            if not ids:
                break
            after = ids[-1]
            done = set(
                conn.scalars(
                    sa.select(marks.c.record_id).where(
                        marks.c.key.in_([_key(automation, i, at, day) for i in ids])
                    )
                )
            )
            for view in _views(records, conn, ent, [i for i in ids if i not in done], context):
                if not _holds(automation, view, context):
                    continue
                found.total += 1
                if len(found.records) < limit:
                    title = title_of(ent, view, view["id"])
                    found.records.append(
                        Match(view["id"], title, reason(records, automation, view, day))
                    )
    return found


def _key(
    automation: Automation,
    record_id: int,
    at: dt.datetime,
    day: dt.date,
    reminder_cron: str = REMINDER_CRON,
) -> str:
    if automation.kind == "date_field":
        return f"{automation.name}:{record_id}:{_target(automation, day).isoformat()}"
    return f"{automation.name}:{record_id}:{slot_of(automation, at, reminder_cron).isoformat()}"


def run(
    records: Records,
    automation: Automation,
    *,
    at: dt.datetime | None = None,
    actor: Actor = SYSTEM,
    reminder_cron: str = REMINDER_CRON,
) -> Outcome:
    """Act on the records of the slot ``at`` falls in, in batches; a record already done
    in this slot is skipped, so running twice has the effect of running once."""
    at = at or dt.datetime.now(dt.UTC)
    if automation.kind == "event":
        raise NotFound(f"'{automation.name}' runs on record events, not on a schedule")
    ent = records.model.entity(automation.entity)
    context = _context(at)
    day = _day(at)
    actor = dataclasses.replace(actor, today=day)
    batch = int(automation.spec.get("batch_size") or DEFAULT_BATCH)
    slot = slot_of(automation, at, reminder_cron)
    outcome = Outcome(automation.name, slot.isoformat())
    marks = records.tables.metadata.tables[MARK_TABLE]
    after = 0
    while True:
        with records.transaction() as conn:
            ids = _matched_ids(records, conn, automation, day, context, after, batch)
            if not ids:
                break
            after = ids[-1]
            for view in list(_views(records, conn, ent, ids, context)):
                outcome.matched += 1
                key = _key(automation, view["id"], at, day, reminder_cron)
                try:
                    with conn.begin_nested():
                        if not mark(conn, marks, key, automation.name, view["id"], at):
                            outcome.skipped += 1
                            continue
                        if not _holds(automation, view, context):
                            raise _NotNow
                        _act(records, conn, actor, ent, view["id"], view, automation)
                        outcome.acted += 1
                except _NotNow:
                    outcome.matched -= 1
                except Exception:
                    outcome.failed += 1
                    log.exception("%s failed on %s %s", automation.name, ent.name, view["id"])
    return outcome


class _NotNow(Exception):
    """The record no longer meets the condition: roll its mark back."""


def mark(
    conn: sa.Connection,
    marks: sa.Table,
    key: str,
    name: str,
    record_id: int,
    at: dt.datetime,
) -> bool:
    """Insert ``key`` into ``heddle_automation_mark`` for ``name`` (an automation, or
    another scheduled run); False when it is there already: done before."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(marks)
    row = {"key": key, "automation": name, "record_id": record_id, "at": at}
    inserted = insert.values(row).on_conflict_do_nothing().returning(marks.c.key)
    return conn.execute(inserted).first() is not None  # (rowcount is -1 with psycopg)


def _run_scheduled(job: JobRun, args: Mapping[str, Any]) -> None:
    """The ``scheduled_automation`` job the scheduler's tick writes: one scheduled automation
    for one slot."""
    automation = job.records.model.automations.get(str(args["automation"]))
    if automation is None or not automation.enabled:
        return
    at = dt.datetime.fromisoformat(str(args["at"]))
    cron = str(job.queue.options.get("reminder_cron") or REMINDER_CRON)
    outcome = run(job.records, automation, at=at, reminder_cron=cron)
    log.info("%s: %s", automation.name, outcome.to_json())
    if outcome.failed:
        raise RuntimeError(f"{outcome.failed} records failed: the retry acts on them alone")


JOBS.register(
    Job(
        "scheduled_automation",
        _run_scheduled,
        "Run a scheduled automation or reminder.",
        atomic=False,
    )
)


def enqueue_due(queue: JobQueue, now: dt.datetime) -> int:
    """Write a ``scheduled_automation`` job for each scheduled automation whose cron line
    matches the minute of ``now`` (the outbox key makes a tick run twice one job); then
    hand them over. How many were due."""
    records = queue.records()
    cron = str(queue.options.get("reminder_cron") or REMINDER_CRON)
    minute = now.astimezone().replace(second=0, microsecond=0)
    due = [
        a
        for a in scheduled(records.model)
        if croniter.match(cron_of(a, cron), minute.replace(tzinfo=None))
    ]
    if not due:
        return 0
    with records.transaction() as conn:
        for automation in due:
            key = f"scheduled_automation:{automation.name}:{minute.isoformat()}"
            add(
                conn,
                records.tables,
                "scheduled_automation",
                {"automation": automation.name, "at": minute.isoformat()},
                key=key,
            )
    queue.flush()
    return len(due)


TICKS.register(Tick("automations", enqueue_due))
