"""Creating many records at once (imports): the checks of :meth:`Writer.create` for each
record in Python, then one statement per step for all of them — the autonumbers a batch
needs reserved at once (:meth:`Counters.reserve`), the rows by one multi-row ``INSERT … RETURNING``,
their audit rows and duplicate keys by one INSERT each.

A record the batch cannot take as it is takes the one-record path instead, after the
batch, and ends exactly as :meth:`Records.create` would end it: one with child rows, one
a duplicate rule finds something for (a stored key, an earlier record of the batch, a
fuzzy rule), one whose scope only the database can decide. When the batch's write is
refused (a unique value, a reference to nothing, a handler's error) it is undone and
every record of it takes the one-record path, so a bad record never takes good ones down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from metamodel import Entity

from ..context import Actor
from ..counters import draw
from ..database import dumps_json
from ..errors import EngineError, ValidationFailed
from ..events import RecordEvent
from ..permissions import Grant
from ..pipeline import array_text
from ..tables import USER_TABLE
from ._validate import unique_groups
from ._write import autonumber_counter, autonumber_text

if TYPE_CHECKING:
    from . import Records

#: What :meth:`Records.create_many` gives for each record: the record, or its refusal.
Created = dict[str, Any] | EngineError


@dataclass
class _Pending:
    """A record on its way into the batch's INSERT."""

    index: int
    values: dict[str, Any]
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


class BatchCreator:
    """The batch creates of one record service."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.tables = records.tables
        self.dialect = records.dialect
        self._names: dict[str, frozenset[str]] = {}  # each table's column names
        self._sequences: dict[str, str] = {}  # each table's id sequence (PostgreSQL)

    def create_many(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        rows: Sequence[Mapping[str, Any]],
        *,
        trusted: bool,
    ) -> list[Created]:
        """Create ``rows`` in ``conn``'s transaction (see :meth:`Records.create_many`)."""
        records = self.records
        results: list[Created | None] = [None] * len(rows)
        alone: list[int] = []  # the records that take the one-record path
        grant = records.access.grant(actor, ent, "create")
        pending: list[_Pending] = []
        teams = self._teams(conn, ent, actor, rows)
        for index, data in enumerate(rows):
            if any(f.name in data for f in ent.fields_of_type("children")):
                alone.append(index)
                continue
            try:
                values = self._checked(conn, actor, ent, data, trusted, grant, teams)
            except EngineError as exc:
                results[index] = exc
                continue
            if values is None:
                alone.append(index)
            else:
                pending.append(_Pending(index, values))
        clashes = self._clashes(conn, ent, pending)
        # every checked record's keys are locked here, before the write (on SQLite, the
        # counter's row lock): a record written alone afterwards holds its locks already
        screened = records.dedupe.screen(conn, ent.name, [p.values for p in pending])
        kept = []
        for item, keys in zip(pending, screened, strict=True):
            if keys is None or item.index in clashes:
                alone.append(item.index)
            else:
                item.keys = keys
                kept.append(item)
        if kept:
            try:
                with conn.begin_nested():
                    for item, record in zip(kept, self._write(conn, actor, ent, kept), strict=True):
                        results[item.index] = record
            except Exception:  # a constraint, a handler: undone, and each record on its own
                alone += [item.index for item in kept]  # path says which (a bug raises there)
        for index in sorted(alone):
            try:
                with conn.begin_nested():  # a refusal undoes this record alone
                    results[index] = records.create(
                        actor, ent.name, rows[index], conn=conn, trusted=trusted
                    )
            except EngineError as exc:
                results[index] = exc
        return [r if r is not None else EngineError("not created") for r in results]

    def _clashes(self, conn: sa.Connection, ent: Entity, pending: Sequence[_Pending]) -> set[int]:
        """The records whose value of a unique field is stored already, or repeats an
        earlier record of the batch: one query per unique field. They take the one-record
        path (which names the field), and the rest of the batch its write."""
        table = self.tables.table(ent.name)
        found: set[int] = set()
        for names in unique_groups(ent):
            if len(names) != 1:
                continue  # a unique combination is left to the constraint
            name = names[0]
            values = {p.values.get(name) for p in pending} - {None, ""}
            if not values:
                continue
            stored: set[Any] = set()
            ordered = sorted(values, key=str)
            column = table.c[name]
            for begin in range(0, len(ordered), 1000):
                chunk = ordered[begin : begin + 1000]
                plain = isinstance(column.type, sa.String | sa.Integer)
                if self.dialect == "postgresql" and plain:  # one parameter: a short statement,
                    listed = array_text(cast(list[str | int], chunk))  # sent as text
                    text = sa.bindparam("values", listed, type_=sa.Text())
                    # unnested in a sub-select: with ``= ANY(CAST(…))`` the generic plan read
                    # the whole table
                    listed_values = sa.func.unnest(sa.cast(text, postgresql.ARRAY(column.type)))
                    among = column.in_(sa.select(listed_values))
                else:
                    among = column.in_(chunk)
                stored |= set(conn.scalars(sa.select(column).where(among)))
            for item in pending:
                value = item.values.get(name)
                if value is None or value == "":
                    continue
                if value in stored:
                    found.add(item.index)
                stored.add(value)
        return found

    def _teams(
        self, conn: sa.Connection, ent: Entity, actor: Actor, rows: Sequence[Mapping[str, Any]]
    ) -> dict[int, int | None]:
        """The teams of the owners the rows give their records to (a record given to
        someone belongs to their team): one query for the batch."""
        if not ent.ownable:
            return {}
        owners = {r.get("owner_id") for r in rows if "team_id" not in r}
        wanted = {o for o in owners if isinstance(o, int) and o != actor.user_id}
        if not wanted:
            return {}
        users = self.tables.metadata.tables[USER_TABLE]
        query = sa.select(users.c.id, users.c.team_id).where(users.c.id.in_(sorted(wanted)))
        return {user_id: team_id for user_id, team_id in conn.execute(query)}

    def _checked(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        data: Mapping[str, Any],
        trusted: bool,
        grant: Grant,
        teams: Mapping[int, int | None],
    ) -> dict[str, Any] | None:
        """The record's values, checked as :meth:`Writer.create` checks them (refusals
        raised); None when the record must take the one-record path."""
        records = self.records
        if not trusted:
            records.access.guard(actor, ent, data, grant, "create")
        validator = records.validator
        values, _, errors = validator.input(ent, data, partial=False, trusted=trusted)
        owner = values.get("owner_id")
        if ent.ownable and "team_id" not in values and isinstance(owner, int) and owner in teams:
            values["team_id"] = teams[owner]
        validator.defaults(conn, ent, values, actor)
        records.events.emit(
            RecordEvent(
                "before_create", ent.name, actor, conn, records, None, values, trusted=trusted
            )
        )
        validator.check(conn, actor, ent, values, None, errors, changed=None, child_counts={},
                        trusted=trusted)  # fmt: skip
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)
        author = {**values, "created_by": actor.user_id}
        inside = records.permissions.covers_values(actor, ent, grant, author)
        if inside is None:
            return None  # only the stored record can say: the one-record path
        records.access.stays_in_scope(conn, actor, ent, grant, author)
        records.access.gives_to_own_teams(conn, actor, ent, grant, values)
        return values

    def _write(
        self, conn: sa.Connection, actor: Actor, ent: Entity, items: Sequence[_Pending]
    ) -> list[dict[str, Any]]:
        records = self.records
        table = self.tables.table(ent.name)
        columns = table.c
        now = dt.datetime.now(dt.UTC)
        stamps = {"created_at": now, "updated_at": now, "created_by": actor.user_id,
                  "updated_by": actor.user_id, "version": 1}  # fmt: skip
        names = self._names.get(table.name)
        if names is None:  # a set: ``name in table.c`` is a call of SQLAlchemy's
            names = self._names[table.name] = frozenset(columns.keys())
        rows = [
            {**{n: v for n, v in item.values.items() if n in names}, **stamps} for item in items
        ]
        for auto in ent.fields_of_type("autonumber"):
            counter, text = autonumber_counter(ent, auto, now)
            numbers = records.counters.reserve(conn, counter, len(rows))
            for row, number in zip(rows, numbers, strict=True):
                row[auto.name] = autonumber_text(text, number)
        if self.dialect == "postgresql":
            stored = self._copy_records(conn, table, rows)
        else:
            stored = self._insert_records(conn, table, rows)
        if ent.audit:
            audit = records.audit
            entry = audit.entry(ent, "create", actor, 1, {}, now)  # the batch's, but for…
            entries = [{**entry, "changes": audit.changes(ent, None, row), "record_id": row["id"]}
                       for row in stored]  # fmt: skip
            self._insert(conn, audit.table, entries)
        keyed = [(row["id"], item.keys) for row, item in zip(stored, items, strict=True)]
        self._insert(conn, records.dedupe.table, records.dedupe.key_rows(ent.name, keyed))
        records.computer.refresh_rollups(conn, ent, [None] * len(stored), stored)
        records.computer.formulas(conn, ent, stored, actor.context())
        results = []
        for row in stored:
            for children in ent.fields_of_type("children"):
                row[children.name] = []
            records.events.emit(
                RecordEvent("after_create", ent.name, actor, conn, records, row["id"], row)
            )
            results.append(records.access.visible(actor, ent, row))
        return results

    def _insert_records(
        self, conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The rows by multi-row ``INSERT … RETURNING`` (one per set of columns), stored."""
        stored: list[dict[str, Any]] = [{} for _ in rows]
        by_columns: dict[tuple[str, ...], list[int]] = {}
        for position, row in enumerate(rows):
            by_columns.setdefault(tuple(row), []).append(position)
        insert = table.insert().returning(*table.c, sort_by_parameter_order=True)
        for columns, positions in by_columns.items():
            params = [{name: rows[p][name] for name in columns} for p in positions]
            for position, found in zip(positions, conn.execute(insert, params).mappings(),
                                       strict=True):  # fmt: skip
                stored[position] = dict(found)
        return stored

    def _copy_records(
        self, conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """PostgreSQL: the rows' ids taken from the table's sequence in one statement, then
        the rows written by ``COPY``; stored as the table holds them (a column not given
        is null, or its server default: a rollup's 0)."""
        sequence = self._sequences.get(table.name)
        if sequence is None:  # looked up once: per id, the lookup cost ten times the nextval
            found = sa.select(sa.func.pg_get_serial_sequence(table.name, "id"))
            sequence = self._sequences[table.name] = str(conn.scalar(found))
        ids = draw(conn, sequence, len(rows))
        # the columns some row has a value for (most have one in the first row)
        given = ["id"] + [
            name
            for name in dict.fromkeys(chain.from_iterable(rows))
            if name != "id" and any(row.get(name) is not None for row in rows)
        ]
        blank = {c.name: _server_default(c) for c in table.c}
        stored = [{**blank, **row, "id": record_id}
                  for record_id, row in zip(ids, rows, strict=True)]  # fmt: skip
        for name, places in _places(table, given).items():  # 0.5 is stored as 0.50
            for row in stored:
                if isinstance(value := row[name], Decimal):
                    row[name] = value.quantize(places, ROUND_HALF_UP)
        self._copy(conn, table, given, stored)
        return stored

    def _insert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Rows of a system table (audit, duplicate keys), ids from its sequence."""
        if not rows:
            return
        if self.dialect == "postgresql":
            self._copy(conn, table, list(rows[0]), rows)
        else:
            conn.execute(table.insert(), rows)

    def _copy(
        self, conn: sa.Connection, table: sa.Table, names: list[str], rows: Sequence[dict[str, Any]]
    ) -> None:
        """``COPY table (names) FROM STDIN`` on this transaction's connection, each value
        bound as SQLAlchemy binds it (UTC timestamps); a JSON value written as its text,
        which ``COPY`` reads as any JSON parameter (SQLAlchemy's processor would wrap it
        for psycopg, whose dumper would call the same :func:`dumps_json`)."""
        dialect = conn.dialect
        processors: list[Callable[[Any], Any] | None] = []
        for name in names:
            column_type = table.c[name].type
            if isinstance(column_type.dialect_impl(dialect), sa.JSON):
                processors.append(dumps_json)
            else:
                processors.append(column_type.dialect_impl(dialect).bind_processor(dialect))
        preparer = dialect.identifier_preparer
        columns = ", ".join(preparer.quote(n) for n in names)
        statement = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
        processed = [(i, process) for i, process in enumerate(processors) if process is not None]
        pick = itemgetter(*names)  # the rows' values in one call (most rows have them all)
        last: list[tuple[Any, Any]] = [(None, None)] * len(names)  # each column's last bound
        single = len(names) == 1
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                try:
                    values = [pick(row)] if single else list(pick(row))
                except KeyError:
                    values = [row.get(name) for name in names]
                for i, process in processed:  # (the key table's rows have none)
                    if (value := values[i]) is not None:
                        # a batch's timestamps are one object: bound once
                        if value is not last[i][0]:
                            last[i] = (value, process(value))
                        values[i] = last[i][1]
                copy.write_row(values)


def _places(table: sa.Table, names: Sequence[str]) -> dict[str, Decimal]:
    """The decimal columns among ``names`` with a fixed scale, each with its unit (0.01):
    what the record's values become when stored, rounded as PostgreSQL rounds."""
    found = {}
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, sa.Numeric) and column_type.scale is not None:
            found[name] = Decimal(1).scaleb(-column_type.scale)
    return found


def _server_default(column: sa.Column[Any]) -> Any:
    """What a column not given holds: the rollups' ``0``, else null."""
    default = column.server_default
    if isinstance(default, sa.DefaultClause) and isinstance(default.arg, sa.TextClause):
        text = default.arg.text
        return int(text) if text.lstrip("-").isdigit() else None
    return None
