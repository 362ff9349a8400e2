"""Keys that are no longer the keys their rules make, found and rebuilt by migrate.

``heddle_duplicate_rule`` keeps, per rule, the fingerprint of what made its stored keys
(:attr:`CompiledRule.fingerprint`). A rule that is new, whose fields or normalizers
changed, or whose normalizer got a new version has its keys rebuilt from the records, in
batches; the keys of a rule that is gone are deleted. ``heddle plan`` lists each as an
operation (:func:`pending`), ``migrate`` runs them (:func:`sync`) in its transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from ..tables import DUPLICATE_KEY_TABLE, DUPLICATE_RULE_TABLE, Tables
from ._rules import CompiledRule, RuleSet

#: Records read, and their keys written, per statement of a rebuild.
BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Pending:
    """Work on one rule's keys: ``build`` (new rule), ``rebuild`` (changed) or ``drop``."""

    kind: str
    entity: str
    rule: str
    rows: int  # records of the entity (build, rebuild) or keys to delete (drop)

    @property
    def description(self) -> str:
        what = f"{self.entity}.{self.rule}"
        if self.kind == "drop":
            return f"drop the duplicate keys of {what}, a rule that is gone ({self.rows:,} keys)"
        why = "a new rule" if self.kind == "build" else "its fields or normalizers changed"
        return f"{self.kind} the duplicate keys of {what}: {why} ({self.rows:,} records)"

    @property
    def sql(self) -> tuple[str, ...]:
        deleting = (
            f"DELETE FROM {DUPLICATE_KEY_TABLE} WHERE entity = '{self.entity}'"
            f" AND rule = '{self.rule}'"
        )
        if self.kind == "drop":
            return (deleting,)
        return (
            deleting,
            f"-- then, per {BATCH:,} records of {self.entity}, the keys computed in Python:"
            f" INSERT INTO {DUPLICATE_KEY_TABLE} (key_space, key, entity, record_id, rule) …",
        )


def _stored(conn: sa.Connection, tables: Tables) -> dict[tuple[str, str], str]:
    if not sa.inspect(conn).has_table(DUPLICATE_RULE_TABLE):
        return {}
    t = tables.metadata.tables[DUPLICATE_RULE_TABLE]
    return {(e, r): f for e, r, f in conn.execute(sa.select(t.c.entity, t.c.rule, t.c.fingerprint))}


def _count(conn: sa.Connection, table: str) -> int:
    if not sa.inspect(conn).has_table(table):
        return 0
    return int(conn.scalar(sa.select(sa.func.count()).select_from(sa.table(table))) or 0)


def pending(conn: sa.Connection, tables: Tables) -> list[Pending]:
    """The rules whose stored keys are not their keys, with records to read, and the
    rules gone that left keys. (A new rule of an empty or new entity needs no work:
    :func:`sync` just records its fingerprint.)"""
    rules = RuleSet(tables.model)
    stored = _stored(conn, tables)
    found = []
    counts: dict[str, int] = {}
    for rule in rules:
        if stored.get((rule.entity, rule.name)) == rule.fingerprint:
            continue
        table = tables.table(rule.entity).name
        if table not in counts:
            counts[table] = _count(conn, table)
        if counts[table]:
            kind = "build" if (rule.entity, rule.name) not in stored else "rebuild"
            found.append(Pending(kind, rule.entity, rule.name, counts[table]))
    known = {(rule.entity, rule.name) for rule in rules}
    gone = [at for at in stored if at not in known]
    if gone:
        keys = tables.metadata.tables[DUPLICATE_KEY_TABLE]
        for entity, name in sorted(gone):
            left = conn.scalar(
                sa.select(sa.func.count()).where(keys.c.entity == entity, keys.c.rule == name)
            )
            if left:
                found.append(Pending("drop", entity, name, int(left)))
    return found


def sync(conn: sa.Connection, tables: Tables) -> list[Pending]:
    """Make every rule's stored keys its keys (see the module docstring); returns the work
    done. Runs in the caller's transaction (migrate's)."""
    rules = RuleSet(tables.model)
    stored = _stored(conn, tables)
    done = []
    keys = tables.metadata.tables[DUPLICATE_KEY_TABLE]
    fingerprints = tables.metadata.tables[DUPLICATE_RULE_TABLE]
    now = dt.datetime.now(dt.UTC)
    for rule in rules:
        at = (rule.entity, rule.name)
        if stored.get(at) == rule.fingerprint:
            continue
        count = rebuild(conn, tables, rule)
        if count:
            done.append(Pending("build" if at not in stored else "rebuild", *at, count))
        conn.execute(
            fingerprints.delete().where(
                fingerprints.c.entity == rule.entity, fingerprints.c.rule == rule.name
            )
        )
        conn.execute(
            fingerprints.insert().values(
                entity=rule.entity, rule=rule.name, fingerprint=rule.fingerprint, built_at=now
            )
        )
    known = {(rule.entity, rule.name) for rule in rules}
    for entity, name in sorted(at for at in stored if at not in known):
        gone = conn.execute(keys.delete().where(keys.c.entity == entity, keys.c.rule == name))
        conn.execute(
            fingerprints.delete().where(
                fingerprints.c.entity == entity, fingerprints.c.rule == name
            )
        )
        if gone.rowcount:
            done.append(Pending("drop", entity, name, gone.rowcount))
    return done


def rebuild(conn: sa.Connection, tables: Tables, rule: CompiledRule, *, batch: int = BATCH) -> int:
    """Replace ``rule``'s stored keys by the keys of every record, :data:`BATCH` records at
    a time in id order; returns how many records were read."""
    keys = tables.metadata.tables[DUPLICATE_KEY_TABLE]
    conn.execute(keys.delete().where(keys.c.entity == rule.entity, keys.c.rule == rule.name))
    table = tables.table(rule.entity)
    columns = [table.c.id, *(table.c[f] for f in rule.fields if f in table.c)]
    last, read = 0, 0
    while True:
        rows = (
            conn.execute(
                sa.select(*columns).where(table.c.id > last).order_by(table.c.id).limit(batch)
            )
            .mappings()
            .all()
        )
        if not rows:
            return read
        found = [
            {
                "key_space": rule.key_space,
                "key": key,
                "entity": rule.entity,
                "record_id": row["id"],
                "rule": rule.name,
            }
            for row in rows
            for key in rule.keys(dict(row))
        ]
        if found:
            conn.execute(keys.insert(), found)
        read += len(rows)
        last = rows[-1]["id"]
