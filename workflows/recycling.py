"""Recycling: the public pools' rules return neglected owned records to the pools.

An entity whose ``public_pool`` has a ``recycle`` block (:class:`metamodel.Recycle`) lets
each pool declare rules as child records: a kind (no follow-up, no opportunity… — each
kind says in the definition from which moment its days count, ``since``, and when it does
not apply, ``unless``), a number of days, optionally the days of warning before and the
values of ``match`` fields (a grade) the rule is limited to. An owned record follows the
rules of the first active pool (by id) its owner belongs to.

Every day at ``HEDDLE_POOL_RECYCLE_CRON`` (:func:`enqueue_due`, a scheduler tick) the
``pool_recycle`` job runs :func:`run`: per pool and active rule, the records due are
selected in SQL — owner among the pool's members, the rule's match fields, not
``exempt``, not won if the pool says so, not ``unless``, ``since`` at least ``days`` ago —
``batch`` at a time, each batch one transaction. Each returns to the pool through the
record service's return (owner cleared and kept as previous owner, ``pooled_at``, a line
in the pool's log naming the rule), and its previous owner is told. Owners of records due
within ``warn_days`` are warned once per record, rule and ``since`` (a row of
``heddle_automation_mark``). A second run changes nothing: returned records have no owner
any more and warnings are marked.

:func:`preview` is the dry run (``heddle pool preview``): the records a run at a given
moment would return, and why.

>>> run(records, at=dt.datetime(2026, 6, 2, 6, tzinfo=dt.UTC)).returned
12
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from croniter import croniter

from engine import SYSTEM, Actor, Records
from engine.paths import Resolver
from engine.pools import Pool
from engine.sqlexpr import to_sql
from engine.sqltypes import UTCDateTime
from engine.tables import MARK_TABLE, USER_TABLE
from metamodel import Entity, Label, PublicPool, Recycle
from metamodel.expressions import DATE, Context

from .automations import mark
from .notifications import locale_of, tell
from .outbox import JOBS, TICKS, Job, JobQueue, JobRun, Tick, add

log = logging.getLogger("heddle.recycling")

#: when the rules run (the setting HEDDLE_POOL_RECYCLE_CRON)
CRON = "0 6 * * *"
BATCH = 200
#: the name the warnings' marks and the notifications carry
SOURCE = "pool_recycle"
#: an ``N`` in a kind's label stands for the rule's days: "No follow-up for N days"
_N = re.compile(r"(?<![A-Za-z])N(?![A-Za-z])")

RETURNED = {
    "en": "{entity} “{title}” returned to the public pool {pool}: {rule}",
    "zh": "{entity}“{title}”已回收到公海{pool}：{rule}",
    "ja": "{entity}「{title}」はプール{pool}に戻りました：{rule}",
}
WARNING = {
    "en": "{entity} “{title}” returns to the public pool {pool} on {date}: {rule}",
    "zh": "{entity}“{title}”将于{date}回收到公海{pool}：{rule}",
    "ja": "{entity}「{title}」は{date}にプール{pool}へ戻ります：{rule}",
}


@dataclass(frozen=True)
class Rule:
    """One active recycle rule of an active pool, and the owners it applies to."""

    id: int
    pool: Pool
    kind: str
    label: Label
    days: int
    warn_days: int
    #: the match fields the rule sets → their value
    match: Mapping[str, Any]
    owners: frozenset[int]

    def describe(self, locale: str = "en") -> str:
        """The rule in words: "No follow-up for 30 days"."""
        text = self.label.get(locale) or self.kind
        if _N.search(text):
            return _N.sub(str(self.days), text)
        return f"{text} ({self.days} {'day' if self.days == 1 else 'days'})"


@dataclass(frozen=True)
class Due:
    """A record a rule returns (or warns about), and why."""

    id: int
    title: str
    owner_id: int
    rule: Rule
    since: dt.date | dt.datetime
    #: the day it returns
    on: dt.date

    def reason(self) -> str:
        since, rule = self.since, self.rule
        if isinstance(since, dt.datetime):
            shown = since.astimezone().isoformat(sep=" ", timespec="minutes")
        else:
            shown = since.isoformat()
        matched = "".join(f", {k} = {v}" for k, v in rule.match.items())
        return f"{rule.describe()} (rule {rule.id}{matched}): since {shown}, {rule.days} days"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "owner_id": self.owner_id,
                "pool": self.rule.pool.as_json(), "rule": self.rule.id,
                "kind": self.rule.kind, "since": self.since.isoformat(),
                "days": self.rule.days, "reason": self.reason()}  # fmt: skip


@dataclass
class Outcome:
    """What one run did, per entity: records returned, owners warned, failures."""

    at: str
    returned: int = 0
    warned: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Preview:
    """The records a run at ``at`` would return, by pool."""

    at: dt.datetime
    by_pool: dict[tuple[str, int], list[Due]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(found) for found in self.by_pool.values())

    def lines(self, records: Records) -> Iterator[str]:
        """The preview in words, pool by pool."""
        if not self.by_pool:
            yield f"no records return to a public pool at {self.at:%Y-%m-%d %H:%M}"
        for (entity, _), found in self.by_pool.items():
            ent = records.model.entity(entity)
            what = (ent.label if len(found) == 1 else ent.plural_label).get("en").lower()
            these = "1" if len(found) == 1 else f"these {len(found)}"
            verb = "returns" if len(found) == 1 else "return"
            yield (f"{these} {what} {verb} to the pool {found[0].rule.pool.name} "
                   f"at {self.at:%Y-%m-%d %H:%M}, and why:")  # fmt: skip
            for due in found:
                yield f"  {due.id}\t{due.title}\t{due.reason()}"


# the rules ---------------------------------------------------------------------------------


def recycled(records: Records) -> list[Entity]:
    """The entities whose pools have recycle rules."""
    return [e for e in records.model if e.public_pool and e.public_pool.recycle]


def _spec(ent: Entity) -> tuple[PublicPool, Recycle]:
    spec = ent.public_pool
    if spec is None or spec.recycle is None:
        raise ValueError(f"{ent.name} has no recycle rules")  # a caller's mistake
    return spec, spec.recycle


def rules(records: Records, conn: sa.Connection, ent: Entity) -> list[Rule]:
    """The active rules of the active pools, pool by pool (by id), each with the owners
    whose first active pool it is."""
    spec, recycle = _spec(ent)
    pools = [p for p in records.pools.pools(conn, ent).values() if p.active]
    if not pools:
        return []
    rule_entity = records.model.entity(
        records.model.entity(spec.pools).field(recycle.rules).children or ""
    )
    kinds = {c.value: c.label for c in rule_entity.field(recycle.kind).options}
    table = records.tables.table(rule_entity.name)
    link = table.c[rule_entity.parent_field or ""]
    columns = {"id", link.name, recycle.kind, recycle.days, *recycle.match}
    columns |= {n for n in (recycle.warn_days, recycle.active) if n}
    query = sa.select(*(table.c[n] for n in sorted(columns)))
    query = query.where(link.in_([p.id for p in pools])).order_by(link, table.c.id)
    if recycle.active:
        query = query.where(sa.func.coalesce(table.c[recycle.active], sa.true()))
    by_pool: dict[int, list[dict[str, Any]]] = {}
    for read in conn.execute(query).mappings():
        by_pool.setdefault(read[link.name], []).append(dict(read))
    found: list[Rule] = []
    taken: set[int] = set()  # owners of an earlier pool
    members = _members(records, conn, ent)
    for pool in pools:
        owners = frozenset(u for u, teams in members.items() if pool.has_member(u, teams)) - taken
        taken |= owners
        for row in by_pool.get(pool.id, ()):
            days, kind = row[recycle.days], row[recycle.kind]
            if not owners or not isinstance(days, int) or days < 1 or kind not in recycle.kinds:
                continue
            warn = row.get(recycle.warn_days or "") or 0
            match = {n: row[n] for n in recycle.match if row[n] not in (None, "", [])}
            label = kinds.get(kind, Label.of(kind))
            found.append(Rule(row["id"], pool, kind, label, days, max(0, int(warn)), match, owners))
    return found


def _members(records: Records, conn: sa.Connection, ent: Entity) -> dict[int, frozenset[int]]:
    """Each user, with their team and the teams above it (what membership looks at)."""
    users = records.tables.metadata.tables[USER_TABLE]
    return {
        user_id: records.pools.teams_up(conn, ent, team_id)
        for user_id, team_id in conn.execute(sa.select(users.c.id, users.c.team_id))
    }


# selecting in SQL --------------------------------------------------------------------------


def _due(
    records: Records,
    conn: sa.Connection,
    ent: Entity,
    rule: Rule,
    at: dt.datetime,
    *,
    warn: bool = False,
    after: int = 0,
    limit: int = BATCH,
    lock: bool = False,
) -> list[Due]:
    """The records ``rule`` returns at ``at`` (``warn``: those it returns within its
    warning days, not yet due), ``limit`` from id ``after`` on; ``lock``: their rows
    locked until the transaction ends (PostgreSQL), so a follow-up saved meanwhile waits
    and a record it changed is judged again."""
    spec, recycle = _spec(ent)
    kind = recycle.kinds[rule.kind]
    context = Context(today=at.astimezone().date())
    resolver = Resolver(records.tables, ent.name, records.dialect, context)
    table = resolver.base

    def sql(expression: Any) -> Any:
        return to_sql(expression, resolver.column, records.dialect, context)

    def never(expression: Any) -> Any:
        return sa.not_(sa.func.coalesce(sql(expression), sa.false()))

    is_date = kind.since.type == DATE
    since = sa.type_coerce(sql(kind.since), sa.Date() if is_date else UTCDateTime())
    conditions = [table.c.owner_id.in_(sorted(rule.owners)), table.c[spec.field].is_(None),
                  table.c.id > after]  # fmt: skip
    conditions += [table.c[name] == value for name, value in rule.match.items()]
    for expression in (spec.exempt, kind.unless):
        if expression is not None:
            conditions.append(never(expression))
    if rule.pool.exempt_won and spec.won is not None:
        conditions.append(never(spec.won))
    due_at = _bound(at - dt.timedelta(days=rule.days), is_date)
    if warn:
        warned_at = _bound(at - dt.timedelta(days=rule.days - rule.warn_days), is_date)
        conditions += [since > due_at, since <= warned_at]
    else:
        conditions.append(since <= due_at)
    title = ent.title_field
    query = (
        sa.select(
            table.c.id,
            table.c.owner_id,
            since.label("since"),
            *([resolver.column((title,)).label("title")] if title else []),
        )
        .select_from(resolver.from_clause())
        .where(*conditions)
        .order_by(table.c.id)
        .limit(limit)
    )
    if lock and records.dialect == "postgresql":
        query = query.with_for_update(of=table)
    found = []
    for row in conn.execute(query).mappings():
        moment = row["since"]
        on = _returns_on(moment, rule.days, at)
        shown = row.get("title")
        name = str(shown) if shown not in (None, "") else f"{ent.name} #{row['id']}"
        found.append(Due(row["id"], name, row["owner_id"], rule, moment, on))
    return found


def _returns_on(since: dt.date | dt.datetime, days: int, at: dt.datetime) -> dt.date:
    """The day of the first daily run, at ``at``'s time of day, that returns a record
    whose days count from ``since``."""
    if isinstance(since, dt.datetime):
        wait = since + dt.timedelta(days=days) - at
        later = max(0, -(-wait // dt.timedelta(days=1)))  # whole days, rounded up
    else:
        later = max(0, (since + dt.timedelta(days=days) - at.astimezone().date()).days)
    return (at + dt.timedelta(days=later)).astimezone().date()


def _bound(moment: dt.datetime, is_date: bool) -> Any:
    if is_date:
        return sa.literal(moment.astimezone().date(), sa.Date())
    return sa.literal(moment, UTCDateTime())


# the run -----------------------------------------------------------------------------------


def run(
    records: Records, *, at: dt.datetime | None = None, batch: int = BATCH
) -> dict[str, Outcome]:
    """Return the records due at ``at`` (default: now) to their pools and warn the
    owners of those due soon, per entity; running twice has the effect of running once."""
    at = at or dt.datetime.now(dt.UTC)
    actor = dataclasses.replace(SYSTEM, today=at.astimezone().date())
    found: dict[str, Outcome] = {}
    for ent in recycled(records):
        outcome = found[ent.name] = Outcome(at.isoformat())
        with records.reader.connect() as conn:
            applying = rules(records, conn, ent)
        for rule in applying:
            _returns(records, actor, ent, rule, at, batch, outcome)
            if rule.warn_days:
                _warnings(records, ent, rule, at, batch, outcome)
    return found


def _returns(
    records: Records,
    actor: Actor,
    ent: Entity,
    rule: Rule,
    at: dt.datetime,
    batch: int,
    outcome: Outcome,
) -> None:
    after = 0
    while True:
        with records.transaction() as conn:
            due = _due(records, conn, ent, rule, at, after=after, limit=batch, lock=True)
            if not due:
                return
            after = due[-1].id
            for item in due:
                try:
                    with conn.begin_nested():
                        _return(records, conn, actor, ent, item)
                    outcome.returned += 1
                except Exception:
                    outcome.failed += 1
                    log.exception("%s %s did not return to its pool", ent.name, item.id)


def _return(records: Records, conn: sa.Connection, actor: Actor, ent: Entity, item: Due) -> None:
    rule = item.rule
    note = f"{rule.describe()} (recycle rule {rule.id})"
    record = {"id": item.id, "owner_id": item.owner_id}
    values = records.pool_return(actor, ent.name, record, conn=conn, note=note, pool=rule.pool)
    records.update(actor, ent.name, item.id, values, version=None, conn=conn, trusted=True)
    _tell(records, conn, ent, item, RETURNED)


def _warnings(
    records: Records, ent: Entity, rule: Rule, at: dt.datetime, batch: int, outcome: Outcome
) -> None:
    marks = records.tables.metadata.tables[MARK_TABLE]
    after = 0
    while True:
        with records.transaction() as conn:
            due = _due(records, conn, ent, rule, at, warn=True, after=after, limit=batch)
            if not due:
                return
            after = due[-1].id
            for item in due:
                key = f"{SOURCE}:{ent.name}:{rule.id}:{item.id}:{item.since.isoformat()}"
                if mark(conn, marks, key[:255], SOURCE, item.id, at):
                    _tell(records, conn, ent, item, WARNING)
                    outcome.warned += 1


def _tell(
    records: Records, conn: sa.Connection, ent: Entity, item: Due, messages: Mapping[str, str]
) -> None:
    """Tell the (previous) owner, in their language, if they are an active user."""
    users = records.tables.metadata.tables[USER_TABLE]
    found = (
        conn.execute(
            sa.select(users.c.id, users.c.email, users.c.locale).where(
                users.c.id == item.owner_id, users.c.active.is_(True)
            )
        )
        .mappings()
        .first()
    )
    if found is None:
        return
    user = dict(found)
    locale = locale_of(user)
    subject = messages[locale].format(
        entity=ent.label.get(locale),
        title=item.title,
        pool=item.rule.pool.name,
        rule=item.rule.describe(locale),
        date=item.on.isoformat(),
    )
    tell(conn, records.tables, user, subject, item.title, (ent.name, item.id), SOURCE)


# the dry run -------------------------------------------------------------------------------


def next_run(cron: str = CRON, now: dt.datetime | None = None) -> dt.datetime:
    """The schedule's next tick after ``now``, read in the process's local time
    (``HEDDLE_TIME_ZONE``'s), like cron."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone()
    found: dt.datetime = croniter(cron, local.replace(tzinfo=None)).get_next(dt.datetime)
    return found.astimezone()


def preview(records: Records, *, at: dt.datetime | None = None, limit: int = 1000) -> Preview:
    """The dry run: the records a run at ``at`` (default: the next run) would return to
    their pools, by pool, with the rule, since when and how many days. Changes nothing."""
    at = at or next_run()
    found = Preview(at)
    for ent in recycled(records):
        with records.reader.connect() as conn:
            seen: set[int] = set()
            for rule in rules(records, conn, ent):
                after = 0
                while found.total < limit:
                    due = _due(records, conn, ent, rule, at, after=after)
                    if not due:
                        break
                    after = due[-1].id
                    key = (ent.name, rule.pool.id)
                    fresh = [d for d in due if d.id not in seen]  # the first rule returns it
                    seen.update(d.id for d in fresh)
                    found.by_pool.setdefault(key, []).extend(fresh[: limit - found.total])
    found.by_pool = {k: v for k, v in found.by_pool.items() if v}
    return found


# the schedule ------------------------------------------------------------------------------


def _run_job(job: JobRun, args: Mapping[str, Any]) -> None:
    """The ``pool_recycle`` job the scheduler's tick writes."""
    at = dt.datetime.fromisoformat(str(args["at"]))
    outcomes = run(job.records, at=at)
    for entity, outcome in outcomes.items():
        log.info("%s recycling: %s", entity, outcome.to_json())
    failed = sum(o.failed for o in outcomes.values())
    if failed:
        raise RuntimeError(f"{failed} records did not return: the retry tries them again")


JOBS.register(Job("pool_recycle", _run_job, "Apply the public pools' recycle rules.", atomic=False))


def enqueue_due(queue: JobQueue, now: dt.datetime) -> int:
    """Write the ``pool_recycle`` job when ``HEDDLE_POOL_RECYCLE_CRON`` matches the minute
    of ``now`` and some entity has recycle rules (keyed: a tick run twice starts it once)."""
    records = queue.records()
    cron = str(queue.options.get("pool_recycle_cron") or CRON)
    minute = now.astimezone().replace(second=0, microsecond=0)
    if not recycled(records) or not croniter.match(cron, minute.replace(tzinfo=None)):
        return 0
    with records.transaction() as conn:
        add(conn, records.tables, "pool_recycle", {"at": minute.isoformat()},
            key=f"pool_recycle:{minute.isoformat()}")  # fmt: skip
    queue.flush()
    return 1


TICKS.register(Tick("pool_recycle", enqueue_due))
