"""Running an import: rows become records through the record service, so permissions,
validation, audit, workflows' rules and duplicate rules apply as they do to the API.

Rows are taken in *groups*: a record and its child rows (a quote and its lines share the
quote's key, or the lines follow their quote with the quote's cells left empty). New
records without child rows wait in a queue and are created together
(:meth:`Records.create_many`: a few statements for the lot); the others — updates,
merges, records with child rows — are written one by one, each in a SAVEPOINT, so a bad
one is undone alone. A row that must see a queued record (it repeats one under a
duplicate rule, or names one by the import's key) has the queue written first. Groups
are committed in batches, each batch with the run's checkpoint in the same transaction: a
run resumed after a crash starts after the last batch committed and writes no row twice.
A dry run, and an all-or-nothing run that meets an error, roll everything back.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Entity, Field

from ..context import Actor
from ..duplicates import MatchRule
from ..errors import DuplicateFound, EngineError, Forbidden, ValidationFailed
from ..permissions import Grant
from ..records._validate import unique_groups
from ._convert import LIST_SEPARATORS, CellError, Conversion, convert, empty, msgid, text
from ._files import Sheet
from ._lookup import Lookups, Target, key_fields
from ._mapping import Column, build
from ._options import MAX_WORKERS, ImportOptions

if TYPE_CHECKING:
    from ..records import Records

#: Runs with at most this many rows list every row in their report; larger ones list the
#: rows with a problem (and the counts).
REPORT_EVERY_ROW = 1000
Progress = Callable[[int, int], None]
#: Adds a batch's report to the run's stored one, in the batch's transaction.
Checkpoint = Callable[[sa.Connection, "Report"], None]
#: The processes an import writes with at most, when its options leave it to the machine.
AUTO_WORKERS = 4
#: Choice cells remembered per field and run, with what they are read as (Runner._reader).
CHOICES_KEPT = 10_000
#: Advisory locks a batch of an import takes at most (see Runner._batch_size).
LOCKS_PER_BATCH = 2000
# Why a row is refused (msgids of the interface's catalogs, see CellError).
NOT_AN_ID = msgid("Not an id: '%(text)s'.")
EMPTY_KEY = msgid("The key %(key)s is empty.")
SEVERAL_KEYED = msgid("Several records have %(key)s '%(text)s'.")
NONE_KEYED = msgid("No %(what)s with %(key)s '%(text)s'.")
REPEATS = msgid("Repeats row %(row)s (duplicate rule %(rule)s).")
#: What reads one cell of a column into its field's value (raising CellError).
Reader = Callable[[sa.Connection, Any], Any]


@dataclass
class Group:
    """A record's rows: the first holds its own cells; all may hold child rows' cells."""

    rows: list[tuple[int, list[Any]]]

    @property
    def number(self) -> int:
        return self.rows[0][0]


@dataclass
class Outcome:
    """What became of one group: created, updated, unchanged, merged, skipped or error."""

    row: int
    status: str
    id: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    duplicate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"row": self.row, "status": self.status}
        if self.id is not None:
            found["id"] = self.id
        if self.errors:
            found["errors"] = self.errors
        if self.duplicate:
            found["duplicate"] = self.duplicate
        return found


@dataclass
class Report:
    """A run's report: the mapping, the counts and the rows (see :data:`REPORT_EVERY_ROW`)."""

    mapping: list[dict[str, Any]]
    total: int
    dry_run: bool
    all_or_nothing: bool
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("created", "updated", "unchanged", "merged", "skipped", "error"), 0
        )
    )
    rows: list[dict[str, Any]] = field(default_factory=list)
    committed: bool = False
    done: int = 0
    #: The groups written, as ``[start, end)`` ranges of their places in the file, sorted
    #: and apart: one range when a single process writes them in order, more when
    #: several do (:mod:`._parallel`). A resumed run writes the others.
    ranges: list[list[int]] = field(default_factory=list)
    workers: int = 1  # the processes that wrote the rows (:mod:`._parallel`)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        if self.dry_run and outcome.status == "created":
            outcome.id = None  # rolled back: the id was never kept
        if self.total <= REPORT_EVERY_ROW or outcome.status in ("error", "skipped", "merged"):
            self.rows.append(outcome.to_dict())

    def part(self) -> Report:
        """An empty report for one batch of this run, to :meth:`merge` when committed."""
        return Report(self.mapping, self.total, self.dry_run, self.all_or_nothing,
                      workers=self.workers)  # fmt: skip

    def mark(self, places: Sequence[int]) -> None:
        """The groups at ``places`` (ascending) are written."""
        spans: list[list[int]] = []
        for place in places:
            if spans and spans[-1][1] == place:
                spans[-1][1] = place + 1
            else:
                spans.append([place, place + 1])
        self.ranges = _joined(self.ranges + spans)
        self.done += len(places)

    def merge(self, part: Report) -> None:
        """Add a batch's report (its counts, rows and ranges) to this one."""
        for status, count in part.counts.items():
            self.counts[status] = self.counts.get(status, 0) + count
        if part.rows:
            self.rows = sorted(self.rows + part.rows, key=lambda r: int(r.get("row", 0)))
        self.ranges = _joined(self.ranges + part.ranges)
        self.done += part.done
        self.workers = max(self.workers, part.workers)

    def pending(self) -> list[int]:
        """The places of the groups still to write, in the file's order."""
        written = self.ranges or ([[0, self.done]] if self.done else [])
        left: list[int] = []
        start = 0
        for begin, end in written:
            left.extend(range(start, begin))
            start = end
        left.extend(range(start, self.total))
        return left

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "total": self.total,
            "done": self.done,
            "ranges": [list(r) for r in self.ranges],
            "workers": self.workers,
            "dry_run": self.dry_run,
            "all_or_nothing": self.all_or_nothing,
            "committed": self.committed,
            "counts": dict(self.counts),
            "rows": list(self.rows),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        report = cls(list(data.get("mapping", [])), int(data.get("total", 0)),
                     bool(data.get("dry_run")), bool(data.get("all_or_nothing")))  # fmt: skip
        report.counts.update(data.get("counts", {}))
        report.rows = list(data.get("rows", []))
        report.done = int(data.get("done", 0))
        report.ranges = [[int(a), int(b)] for a, b in data.get("ranges", [])]
        report.workers = int(data.get("workers", 1))
        return report


def _joined(ranges: list[list[int]]) -> list[list[int]]:
    """``[start, end)`` ranges sorted, those that touch or overlap made one."""
    joined: list[list[int]] = []
    for begin, end in sorted(ranges):
        if joined and begin <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([begin, end])
    return joined


class Plan:
    """An import ready to run: the entity, the mapping checked against the user's grants,
    the rows grouped into records."""

    def __init__(
        self, records: Records, actor: Actor, entity: str, sheet: Sheet, options: ImportOptions
    ) -> None:
        self.records = records
        self.model = records.model
        self.actor = actor
        self.entity = records.entity(entity)
        self.sheet = sheet
        self.options = options
        self.grants = self._grants()
        self.mapping = build(self.model, self.entity, sheet.headers, options.mapping, self.grants)
        self.columns = self.mapping.by_field()
        self.parent_columns = [c for c in self.columns.values() if "." not in (c.field or "")]
        self.child_columns: dict[str, list[Column]] = {}
        for column in self.columns.values():
            owner, _, _ = (column.field or "").rpartition(".")
            if owner:
                self.child_columns.setdefault(owner, []).append(column)
        self._check_key()
        self.groups = list(self._groups())

    def _grants(self) -> dict[str, Grant]:
        permissions = self.records.permissions
        ent = self.entity
        if not permissions.grant(self.actor, ent, "import").allowed:
            raise Forbidden(
                f"you may not import {ent.plural_label.get(self.actor.locale)}: your role needs "
                "the import permission on them"
            )
        actions = {"insert": ("create",), "update": ("update",), "upsert": ("create", "update")}
        grants: dict[str, Grant] = {}
        for action in actions[self.options.mode]:
            grant = permissions.grant(self.actor, ent, action)
            if not grant.allowed:
                raise Forbidden(f"you may not {action} {ent.plural_label.get(self.actor.locale)}")
            grants[f":{action}"] = grant
            for child in ent.fields_of_type("children"):
                target = self.model.entity(child.children or "")
                grants[f"{child.name}:{action}"] = permissions.grant(self.actor, target, action)
        return grants

    def _check_key(self) -> None:
        key = self.options.key
        if key is None:
            return
        problem = None
        if key != "id" and key not in self.entity.fields:
            problem = f"unknown field '{key}'"
        elif key not in self.columns:
            problem = f"no column of the file fills the key {key}"
        if problem:
            raise ValidationFailed(f"the key is not valid: {problem}", {"key": [problem]})

    def _groups(self) -> Iterator[Group]:
        rows = self.sheet.rows
        if not self.child_columns:
            for row in rows:
                yield Group([row])
            return
        key = self.columns.get(self.options.key or "")
        parents = [c.index for c in self.parent_columns]
        by_key: dict[str, Group] = {}
        current: Group | None = None
        for number, cells in rows:
            own = [cells[i] for i in parents]
            if key is not None and not empty(cells[key.index]):
                value = text(cells[key.index])
                if value in by_key:
                    by_key[value].rows.append((number, cells))
                    continue
                current = by_key[value] = Group([(number, cells)])
                yield current
            elif current is not None and all(empty(c) for c in own):
                current.rows.append((number, cells))
            else:
                current = Group([(number, cells)])
                yield current


class Runner:
    """Writes the groups of a :class:`Plan` and reports what became of each."""

    def __init__(self, plan: Plan, max_workers: int = MAX_WORKERS) -> None:
        self.plan = plan
        self.max_workers = max_workers
        self.records = plan.records
        self.actor = plan.actor
        self.entity = plan.entity
        self.options = plan.options
        self.conversion = Conversion(plan.options.date_order, plan.options.value_map)
        self.lookups = Lookups(self.records.tables, self.records.permissions, plan.actor)
        self.rules = [MatchRule.from_definition(r) for r in plan.entity.duplicate_rules]
        self.seen: dict[tuple[str, str], tuple[int, int | None]] = {}  # (rule, key) → row, id
        self.table = self.records.tables.table(plan.entity.name)
        self.self_refs = [f for f in plan.entity.fields_of_type("reference")
                          if f.to == plan.entity.name]  # fmt: skip
        # New records wait here to be created together (Records.create_many), unless a
        # later row may name one of them: as a parent (a reference to the entity itself).
        self.batching = not any(ref.name in plan.columns for ref in self.self_refs)
        self.outcomes: list[Outcome | None] = []  # the batch's, in the file's order
        # (outcome slot, group, data, keys)
        self.queued: list[tuple[int, Group, dict[str, Any], list[tuple[str, str]]]] = []
        self.queued_keys: set[tuple[str, str]] = set()  # (rule, key) of queued rows
        self.queued_values: set[Any] = set()  # their import keys (upsert)
        self.found: dict[Any, list[int]] = {}  # the batch's key values → their records
        self.readers: dict[str, list[tuple[Column, str, Reader]]] = {}  # see _readers
        # keys a row may find its record by, but never writes: its id, its autonumbers
        self.never_written = {"id", *(f.name for f in plan.entity.fields_of_type("autonumber"))}
        self.batch_size = self._batch_size()
        self.unique_groups = unique_groups(plan.entity)
        #: The rows (their numbers) whose marks no other row of the file has (known when
        #: :mod:`._parallel` worked them out): their keys need no in-file check.
        self.unshared: set[int] = set()
        self.mark_fields = self._mark_fields()
        # the readers of the columns :meth:`marks` reads
        self.mark_readers = [r for r in self._readers("") if r[1] in self.mark_fields]

    def written_entities(self) -> list[str]:
        """The entity and those of its children fields: what the run writes records of."""
        children = (f.children for f in self.entity.fields_of_type("children"))
        return list(dict.fromkeys([self.entity.name, *(c for c in children if c)]))

    def _batch_size(self) -> int:
        """The groups of a batch: the options' size, or fewer when its records would take
        more than :data:`LOCKS_PER_BATCH` advisory locks (a lock per key of a rule that
        locks, held until the batch commits; PostgreSQL's lock table is shared by all
        sessions and holds some thousands)."""
        keys = 0
        for name in self.written_entities():
            for rule in self.records.dedupe.of(name):
                if rule.locks:
                    joined = rule.match.match == "all" and len(rule.fields) > 1
                    keys += 1 if joined else len(rule.fields)
        size = self.options.batch_size
        return min(size, max(1, LOCKS_PER_BATCH // keys)) if keys else size

    # --- the whole run ---------------------------------------------------------------------

    def run(
        self,
        report: Report,
        *,
        checkpoint: Checkpoint | None = None,
        progress: Progress | None = None,
        after_batch: Callable[[int], None] | None = None,
    ) -> Report:
        """Write the groups ``report`` does not list as written, adding what became of them
        to it. ``checkpoint`` adds a batch's report to the stored one in the batch's own
        transaction; ``after_batch`` is called once a batch is committed (with how many
        groups are done)."""
        groups = self.plan.groups
        total = len(groups)
        if self.options.dry_run or self.options.all_or_nothing:
            with self.records.engine.connect() as conn, conn.begin() as outer:
                # one transaction for the whole file: its key spaces held whole, not a
                # lock per key to its end (a dry run, undone anyway, locks nothing)
                for name in self.written_entities():
                    self.records.dedupe.hold(conn, name, lock=not self.options.dry_run)
                try:
                    self._batch(conn, groups, report, progress, total)
                finally:
                    self.records.dedupe.release(conn)
                failed = report.counts["error"] > 0
                report.mark(range(total))
                if self.options.dry_run or failed:
                    outer.rollback()
                    report.committed = False
                else:
                    report.committed = True
                    if checkpoint is not None:
                        checkpoint(conn, report)
            return report
        self.write(report.pending(), report, checkpoint, progress, after_batch)
        report.committed = True
        return report

    def write(
        self,
        places: Sequence[int],
        report: Report,
        checkpoint: Checkpoint | None,
        progress: Progress | None,
        after_batch: Callable[[int], None] | None,
    ) -> None:
        """Write the groups at ``places`` in batches, each committed with its checkpoint."""
        size = self.batch_size
        for begin in range(0, len(places), size):
            part = self.write_batch(places[begin : begin + size], report, checkpoint, progress)
            report.merge(part)
            if after_batch is not None:
                after_batch(report.done)

    def write_batch(
        self,
        places: Sequence[int],
        report: Report,
        checkpoint: Checkpoint | None,
        progress: Progress | None = None,
    ) -> Report:
        """Write the groups at ``places`` in one transaction with its checkpoint; the
        batch's report (for :meth:`Report.merge`)."""
        groups = self.plan.groups
        part = report.part()
        with self.records.engine.begin() as conn:
            self._batch(conn, [groups[p] for p in places], part, progress, len(groups),
                        offset=report.done)  # fmt: skip
            part.mark(places)
            if checkpoint is not None:
                checkpoint(conn, part)
        return part

    def workers(self, pending: int) -> int:
        """The processes to write ``pending`` groups with (see :mod:`._parallel`): one
        unless the options ask for more or leave it to the machine's cores (at most
        ``max_workers``: a deployment's cap, ``HEDDLE_IMPORT_WORKERS``), the database
        is PostgreSQL, each process gets a batch at least, no row of the file may name
        another (a reference to the entity itself), no duplicate rule is fuzzy (its
        matches are not keys a process can share), and the import runs on the process's
        main thread: the command line's, a job worker's. A web server's background thread
        writes with one (its process has other requests' threads, whose locks a copy of
        it could wait for forever)."""
        wanted = self.options.workers
        if wanted is None:
            wanted = min(os.cpu_count() or 1, AUTO_WORKERS)
        wanted = min(wanted, self.max_workers, pending // self.batch_size)
        if wanted <= 1 or self.records.dialect != "postgresql" or not self.batching:
            return 1
        if any(rule.fuzzy is not None for name in self.written_entities()
               for rule in self.records.dedupe.of(name)):  # fmt: skip
            return 1
        if threading.current_thread() is not threading.main_thread():
            return 1
        if "fork" not in mp.get_all_start_methods():
            return 1
        return wanted

    def _batch(
        self,
        conn: sa.Connection,
        groups: Sequence[Group],
        report: Report,
        progress: Progress | None,
        total: int,
        offset: int = 0,
    ) -> None:
        self._prefetch(conn, groups)
        self._find_existing(conn, groups)
        self.outcomes = []
        for group in groups:
            self.outcomes.append(self.group(conn, group))
            if len(self.queued) >= self.batch_size:
                self._flush(conn)
        self._flush(conn)
        for index, outcome in enumerate(self.outcomes, start=1):
            assert outcome is not None
            report.add(outcome)
            done = offset + index
            if progress is not None and (done % 50 == 0 or done == total):
                progress(done, total)
        self.outcomes = []

    def _prefetch(self, conn: sa.Connection, groups: Sequence[Group]) -> None:
        """Look up the references of a batch in a few queries, not one per row."""
        for column in self.plan.columns.values():
            target = self._target(column.field or "")
            if target is not None:
                cells = [cells[column.index] for g in groups for _, cells in g.rows]
                self.lookups.prefetch(conn, target, cells)

    def _target(self, name: str) -> Target | None:
        owner, _, name = name.rpartition(".")
        ent = self._entity_of(owner)
        if name == "owner_id":
            return Target("user")
        if name == "team_id":
            return Target("team")
        found = ent.fields.get(name)
        if found is not None and found.type in ("reference", "user", "team"):
            return Target.of(found)
        return None

    def _entity_of(self, children: str) -> Entity:
        if not children:
            return self.entity
        return self.plan.model.entity(self.entity.fields[children].children or "")

    # --- one group -------------------------------------------------------------------------

    def group(self, conn: sa.Connection, group: Group) -> Outcome | None:
        """What became of ``group``; None when its record waits in the queue of records
        created together (:meth:`_flush` fills its outcome in)."""
        number = group.number
        data, problems = self._values(conn, group.rows[0], "")
        lines: dict[str, list[dict[str, Any]]] = {}
        for owner, columns in self.plan.child_columns.items():
            rows = []
            for row_number, cells in group.rows:
                if all(empty(cells[c.index]) for c in columns):
                    continue
                values, errors = self._values(conn, (row_number, cells), owner)
                problems += errors
                rows.append(values)
            if rows:
                lines[owner] = rows
        if problems:
            return Outcome(number, "error", errors=problems)
        keys = [] if number in self.unshared else self._keys(data)
        if self._waits_for_queue(data, keys):
            self._flush(conn)  # it may repeat, or be found as, a record still to be made
        existing, problem = self._existing(conn, data, number)
        if problem is not None:
            return Outcome(number, "error", errors=[problem])
        data.update(lines)
        popped = [n for n in data if n in self.never_written]
        for name in popped:
            data.pop(name)  # keys to find a record by, never written
        if keys and any(name in rule.fields for rule in self.rules for name in popped):
            keys = self._keys(data)
        try:
            if existing is not None:
                try:
                    return self._update(conn, group, existing, data)
                except DuplicateFound as exc:  # the change would make it a duplicate
                    return self._duplicate(conn, group, data, exc, can_merge=False)
            repeat = self._repeats(keys, number)
            if repeat is not None:
                return self._repeat(conn, group, data, *repeat)
            if self.batching and not lines:
                self._queue(group, data, keys)
                return None
            return self._create(conn, group, data, keys)
        except EngineError as exc:
            return Outcome(number, "error", errors=self._errors(exc, group))

    def marks(self, conn: sa.Connection, group: Group) -> list[tuple[Any, ...]]:
        """What may tie the group's record to another row of the file: its keys under the
        duplicate rules, its import key's value (update, upsert) and its unique values.
        Two groups that share a mark are written by one process (:mod:`._parallel`)."""
        data: dict[str, Any] = {}
        cells = group.rows[0][1]
        for column, name, read in self.mark_readers:
            if empty(cell := cells[column.index]):
                continue
            try:
                data[name] = read(conn, cell)
            except CellError:
                continue  # the row's conversion reports it
        found: list[tuple[Any, ...]] = [
            ("rule", rule.key_space, key) for rule in self.rules for key in rule.keys(data)
        ]
        key = self.options.key
        if self.options.mode != "insert" and key is not None and _hashable(data.get(key)):
            found.append(("key", data[key]))
        for fields in self.unique_groups:
            values = tuple(data.get(name) for name in fields)
            if all(v is not None and _hashable(v) for v in values):
                found.append(("unique", fields, values))
        return found

    def _mark_fields(self) -> set[str]:
        fields = {name for rule in self.rules for name in rule.fields}
        fields.update(name for group in self.unique_groups for name in group)
        if self.options.key is not None:
            fields.add(self.options.key)
        return fields

    def _values(
        self, conn: sa.Connection, row: tuple[int, list[Any]], owner: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The converted non-empty cells of a row for the entity (``owner`` ""), or for one
        child row of children field ``owner``, and the problems found."""
        number, cells = row
        values: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for column, name, read in self._readers(owner):
            cell = cells[column.index]
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                continue  # empty
            try:
                values[name] = read(conn, cell)
            except CellError as exc:
                problems.append(_problem(number, column, exc, cell))
        return values, problems

    def _readers(self, owner: str) -> list[tuple[Column, str, Reader]]:
        """The columns of the entity (``owner`` "") or of a children field, each with the
        field it fills and what reads its cells: worked out once per run."""
        found = self.readers.get(owner)
        if found is None:
            ent = self._entity_of(owner)
            columns = self.plan.child_columns[owner] if owner else self.plan.parent_columns
            found = self.readers[owner] = []
            for column in columns:
                name = (column.field or "").rpartition(".")[2]
                found.append((column, name, self._reader(ent, name)))
        return found

    def _convert(self, conn: sa.Connection, ent: Entity, name: str, cell: Any) -> Any:
        return self._reader(ent, name)(conn, cell)

    def _reader(self, ent: Entity, name: str) -> Reader:
        """What reads a cell of field ``name`` of ``ent`` (raising :class:`CellError`)."""
        if name == "id":
            return _read_id
        if name in ("owner_id", "team_id"):
            target = Target("user" if name == "owner_id" else "team")
            return lambda conn, cell: self.lookups.resolve(conn, target, cell)
        found: Field = ent.fields[name]
        if found.type in ("reference", "user", "team"):
            target = Target.of(found)
            if found.multiple:
                return lambda conn, cell: [
                    self.lookups.resolve(conn, target, p)
                    for p in LIST_SEPARATORS.split(text(cell)) if p
                ]  # fmt: skip
            return lambda conn, cell: self.lookups.resolve(conn, target, cell)
        conversion = self.conversion
        if found.type != "choice":
            return lambda conn, cell: convert(cell, found, conversion)
        memo: dict[str, str | CellError] = {}

        def choice(conn: sa.Connection, cell: Any) -> Any:
            # A choice column holds a few texts over and over: each is read once per run.
            if not isinstance(cell, str):
                return convert(cell, found, conversion)
            known = memo.get(cell)
            if known is None:
                try:
                    known = convert(cell, found, conversion)
                except CellError as exc:
                    known = exc
                if len(memo) < CHOICES_KEPT:
                    memo[cell] = known
            if isinstance(known, CellError):
                raise CellError(known.template, **known.params)
            return known

        return choice

    def _existing(
        self, conn: sa.Connection, data: dict[str, Any], number: int
    ) -> tuple[int | None, dict[str, Any] | None]:
        """The record the row's key names (update, upsert), or a problem."""
        key = self.options.key
        if self.options.mode == "insert" or key is None:
            return None, None
        column = self.plan.columns[key]
        value = data.pop(key, None) if key == "id" else data.get(key)
        if value is None:
            return None, _problem(number, column, CellError(EMPTY_KEY, key=key))
        if _hashable(value) and value in self.found:
            ids = self.found[value][:2]
        else:
            query = self._sighted(sa.select(self.table.c.id).where(self.table.c[key] == value))
            ids = list(conn.scalars(query.limit(2)))
        if len(ids) > 1:
            return None, _problem(number, column, CellError(SEVERAL_KEYED, key=key, text=value))
        if ids:
            return ids[0], None
        if self.options.mode == "update":
            none = CellError(NONE_KEYED, what=self.entity.name, key=key, text=value)
            return None, _problem(number, column, none)
        return None, None

    def _sighted(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query`` limited to the records the importing user may read."""
        grant = self.records.permissions.grant(self.actor, self.entity, "read")
        sight = self.records.permissions.where(self.actor, self.entity, grant, self.table)
        return query if sight is None else query.where(sight)

    def _find_existing(self, conn: sa.Connection, groups: Sequence[Group]) -> None:
        """The records the keys of a batch name (update, upsert), in one query: each key
        value looked up maps to its ids (none: absent). A record the run creates later
        is forgotten from the map (:meth:`_remember`)."""
        self.found = {}
        key = self.options.key
        if self.options.mode == "insert" or key is None:
            return
        column = self.plan.columns[key]
        values = set()
        for group in groups:
            cell = group.rows[0][1][column.index]
            if empty(cell):
                continue
            try:
                value = self._convert(conn, self.entity, key, cell)
            except CellError:
                continue  # the row's conversion reports it
            if value is not None and _hashable(value):
                values.add(value)
        ordered = sorted(values, key=str)
        for begin in range(0, len(ordered), 1000):
            chunk = ordered[begin : begin + 1000]
            self.found.update({value: [] for value in chunk})
            query = sa.select(self.table.c[key], self.table.c.id).where(
                self.table.c[key].in_(chunk)
            )
            for value, record_id in conn.execute(self._sighted(query).order_by(self.table.c.id)):
                if value in self.found:
                    self.found[value].append(record_id)

    # --- writes ----------------------------------------------------------------------------

    def _create(
        self, conn: sa.Connection, group: Group, data: dict[str, Any], keys: list[tuple[str, str]]
    ) -> Outcome:
        try:
            with conn.begin_nested():
                record = self.records.create(self.actor, self.entity.name, data, conn=conn)
        except DuplicateFound as exc:
            return self._duplicate(conn, group, data, exc)
        self._remember(keys, group.number, record)
        return Outcome(group.number, "created", record["id"])

    def _keys(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The row's keys under the duplicate rules: (rule, key) each."""
        return [(rule.name, key) for rule in self.rules for key in rule.keys(data)]

    def _waits_for_queue(self, data: Mapping[str, Any], keys: list[tuple[str, str]]) -> bool:
        """Whether a row must see the queued records made first: it repeats one under a
        duplicate rule, or names one by the import's key."""
        if not self.queued:
            return False
        key = self.options.key
        if key is not None and key in data and data[key] in self.queued_values:
            return True
        return not self.queued_keys.isdisjoint(keys)

    def _queue(self, group: Group, data: dict[str, Any], keys: list[tuple[str, str]]) -> None:
        self.queued.append((len(self.outcomes), group, data, keys))
        self.queued_keys.update(keys)
        key = self.options.key
        if key is not None and data.get(key) is not None:
            self.queued_values.add(data[key])

    def _flush(self, conn: sa.Connection) -> None:
        """Create the queued records together; each one's outcome goes to its slot."""
        if not self.queued:
            return
        queued, self.queued = self.queued, []
        self.queued_keys, self.queued_values = set(), set()
        made = self.records.create_many(self.actor, self.entity.name,
                                        [item[2] for item in queued], conn=conn)  # fmt: skip
        for (slot, group, data, keys), result in zip(queued, made, strict=True):
            outcome: Outcome
            if isinstance(result, DuplicateFound):
                outcome = self._duplicate(conn, group, data, result)
            elif isinstance(result, EngineError):
                outcome = Outcome(group.number, "error", errors=self._errors(result, group))
            else:
                self._remember(keys, group.number, result)
                outcome = Outcome(group.number, "created", result["id"])
            self.outcomes[slot] = outcome

    def _update(
        self, conn: sa.Connection, group: Group, record_id: int, data: dict[str, Any]
    ) -> Outcome:
        key = self.options.key
        if key is not None and key != "id":
            data.pop(key, None)
        version = conn.scalar(sa.select(self.table.c.version).where(self.table.c.id == record_id))
        with conn.begin_nested():
            record = self.records.update(
                self.actor, self.entity.name, record_id, data, version=version, conn=conn
            )
        status = "unchanged" if record["version"] == version else "updated"
        return Outcome(group.number, status, record_id)

    def _repeats(
        self, keys: list[tuple[str, str]], number: int
    ) -> tuple[str, int, int | None] | None:
        """The first duplicate rule under which the row (its ``keys``) repeats an earlier
        row of the file: (rule, that row's number, the record it made)."""
        for rule, key in keys:
            earlier = self.seen.get((rule, key))
            if earlier is not None and earlier[0] != number:
                return rule, earlier[0], earlier[1]
        return None

    def _repeat(
        self, conn: sa.Connection, group: Group, data: dict[str, Any], rule: str, row: int,
        record_id: int | None,
    ) -> Outcome:  # fmt: skip
        choice = self.options.duplicate_choice(rule)
        duplicate = {"rule": rule, "row": row, "id": record_id}
        said = CellError(REPEATS, row=row, rule=rule)
        if choice == "merge" and record_id is not None:
            outcome = self._update(conn, group, record_id, data)
            outcome.status, outcome.duplicate = "merged", duplicate
            return outcome
        if choice in ("skip", "merge"):
            return Outcome(group.number, "skipped", record_id, duplicate=duplicate,
                           errors=[{"row": group.number, **_said(said)}])  # fmt: skip
        return Outcome(group.number, "error", duplicate=duplicate,
                       errors=[{"row": group.number, **_said(said)}])  # fmt: skip

    def _duplicate(
        self,
        conn: sa.Connection,
        group: Group,
        data: dict[str, Any],
        exc: DuplicateFound,
        *,
        can_merge: bool = True,
    ) -> Outcome:
        """A row the database's records duplicate, as the user chose for the rule (an
        update that would make its record a duplicate is skipped or refused, not merged)."""
        rule = str(exc.details.get("rule", ""))
        candidates = list(exc.details.get("candidates", []))
        duplicate = {"rule": rule, "candidates": candidates}
        choice = self.options.duplicate_choice(rule)
        errors = [{"row": group.number, "message": exc.message}]
        if choice == "merge" and candidates and can_merge:
            try:
                outcome = self._update(conn, group, int(candidates[0]["id"]), data)
            except EngineError as refused:
                message = f"{exc.message}; it cannot be merged into it: {refused.message}"
                return Outcome(group.number, "error", duplicate=duplicate,
                               errors=[{"row": group.number, "message": message}])  # fmt: skip
            outcome.status, outcome.duplicate = "merged", duplicate
            return outcome
        if choice == "skip" or (choice == "merge" and not can_merge):
            return Outcome(group.number, "skipped", duplicate=duplicate, errors=errors)
        return Outcome(group.number, "error", duplicate=duplicate, errors=errors)

    def _remember(
        self, keys: list[tuple[str, str]], number: int, record: Mapping[str, Any]
    ) -> None:
        for rule_key in keys:
            self.seen.setdefault(rule_key, (number, record["id"]))
        key = self.options.key
        if key is not None and _hashable(record.get(key)):
            self.found.pop(record.get(key), None)  # it exists now: ask the database
        if self.batching:
            return  # no column names a record of the entity itself: none is looked up
        for ref in self.self_refs:  # later rows may name this record as their parent
            for name in key_fields(self.entity):
                self.lookups.remember(Target.of(ref), record.get(name), record["id"])

    # --- errors ----------------------------------------------------------------------------

    def _errors(self, exc: EngineError, group: Group) -> list[dict[str, Any]]:
        """The engine's field errors, each at the row and column it came from."""
        if not exc.fields:
            return [{"row": group.number, "message": exc.message}]
        found = []
        for name, messages in exc.fields.items():
            row, column = self._locate(name, group)
            for message in messages:
                entry: dict[str, Any] = {"row": row, "field": name, "message": message}
                if column is not None:
                    entry["column"] = column.header
                found.append(entry)
        return found

    def _locate(self, name: str, group: Group) -> tuple[int, Column | None]:
        """``lines[1].quantity`` → the row of the second child row and its column."""
        owner, _, rest = name.partition("[")
        if rest and owner in self.plan.child_columns:
            index_text, _, child_field = rest.partition("].")
            columns = self.plan.child_columns[owner]
            rows = [n for n, cells in group.rows
                    if not all(empty(cells[c.index]) for c in columns)]  # fmt: skip
            index = int(index_text) if index_text.isdigit() else 0
            row = rows[index] if index < len(rows) else group.number
            return row, self.plan.columns.get(f"{owner}.{child_field}")
        return group.number, self.plan.columns.get(name)


def _read_id(conn: sa.Connection, cell: Any) -> int:
    try:
        return int(text(cell).lstrip("#"))
    except ValueError:
        raise CellError(NOT_AN_ID, text=text(cell)) from None


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _problem(row: int, column: Column, said: CellError, cell: Any = None) -> dict[str, Any]:
    """A problem of a row: its message, and its ``template`` and ``params`` for a screen to
    say it in the user's language; with the cell's text (``value``) when the cell is what
    is wrong (an unknown choice: the screens offer to map it, docs/import-export.md)."""
    found = {"row": row, "column": column.header, "field": column.field, **_said(said)}
    if cell is not None:
        found["value"] = text(cell)[:200]
    return found


def _said(said: CellError) -> dict[str, Any]:
    """A message as a report holds it: in English, and as its template and params."""
    found: dict[str, Any] = {"message": str(said), "template": said.template}
    if said.params:
        found["params"] = {k: v if isinstance(v, int | str) else str(v)
                           for k, v in said.params.items()}  # fmt: skip
    return found


def prepare(
    records: Records, actor: Actor, entity: str, sheet: Sheet, options: ImportOptions
) -> tuple[Plan, Report]:
    """The plan of an import and its empty report. A column found automatically that names
    a field the user may not write is left out and reported in the mapping; one the user
    mapped to such a field explicitly refuses the import before any row is read
    (:class:`ValidationFailed`, the mapping in ``details``)."""
    plan = Plan(records, actor, entity, sheet, options)
    report = Report(plan.mapping.to_dict(), len(plan.groups), options.dry_run,
                    options.all_or_nothing)  # fmt: skip
    given = options.mapping or {}
    problems = [c for c in plan.mapping.problems if given.get(c.header)]
    if problems:
        fields = {c.header: [c.problem or ""] for c in problems}
        first = problems[0]
        raise ValidationFailed(
            f"the column '{first.header}' cannot be imported: {first.problem}",
            fields,
            {"mapping": report.mapping},
        )
    return plan, report
