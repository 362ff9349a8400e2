"""The key table at work: the check a write runs before it is made, and the keys it leaves.

A check computes the record's keys under each rule, looks the new ones up in
``heddle_duplicate_key`` — one statement for every exact rule of the entity, an index
probe per key — and, for fuzzy rules, asks the trigram index for similar keys. The
records found are read (title, owner, pool and the rule's fields, without the writer's
row permissions: name and owner only leave the engine), scored exactly with
:func:`~engine.duplicates.find_duplicates`, and a rule that still finds some refuses the
write with :class:`~engine.errors.DuplicateFound`, unless it is a warning the writer
confirmed. What a check returns is written after the record: :meth:`DuplicateIndex.write`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from metamodel import Entity

from .._compute import Computer
from ..context import SYSTEM, Actor
from ..duplicates import find_duplicates
from ..errors import BadRequest, DuplicateFound
from ..pipeline import Batch, Pending, array_text
from ..search import _sqlite as fts
from ..search import search_columns
from ..tables import DUPLICATE_KEY_TABLE, USER_TABLE, Tables
from ._rules import CompiledRule, RuleSet, Target, lock_id

if TYPE_CHECKING:
    from typing_extensions import Unpack  # keyword arguments typed (PEP 692)

#: Candidates reported per rule (the best first); more are counted, not listed.
MAX_CANDIDATES = 10
#: Rows one exact lookup returns at most (a key shared by thousands of records — one
#: switchboard number — still answers at once).
MAX_HITS = 200
#: Similar keys the trigram index hands to exact scoring, per key.
FUZZY_CANDIDATES = 50
#: Trigrams: a key shorter than this has none (SQLite's FTS5 tokenizer) — exact lookup only.
MIN_TRIGRAM_KEY = 3
#: At most this many of a long key's trigrams go into one SQLite MATCH.
MAX_TRIGRAMS = 64
#: Without a trigram index, a fuzzy rule reads at most this many keys of its key space.
SCAN_LIMIT = 20_000
#: Keys one statement of :meth:`DuplicateIndex.screen` looks up at most.
SCREEN_CHUNK = 2000
_SCREEN_PG = sa.text(
    "SELECT w.key FROM unnest(CAST(:keys AS text[])) AS w(key) CROSS JOIN LATERAL"
    f" (SELECT 1 FROM {DUPLICATE_KEY_TABLE} AS k WHERE k.key_space = :space"
    " AND k.key = w.key AND k.entity = ANY(CAST(:entities AS text[])) LIMIT 1) AS hit"
)
SEVERITY = {"block": 0, "claim": 1, "warn": 2}

Keys = dict[str, tuple[str, ...]]  # rule name → keys


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored key that equals (or resembles) a key being checked."""

    key_space: str
    key: str
    entity: str
    record_id: int
    rule: str


@dataclass
class Refusal:
    rule: CompiledRule
    label: str
    confirmable: bool
    candidates: list[dict[str, Any]]
    more: int

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "label": self.label,
            "action": self.rule.action,
            "confirmable": self.confirmable,
            "candidates": self.candidates,
            "more": self.more,
        }


#: The advisory locks of a check (PostgreSQL), taken in the order given: its key spaces'
#: locks shared, then its keys' alone (:meth:`DuplicateIndex.locks`).
#: Its arrays read through sub-selects, as :data:`LOOKUP`'s: one plan, kept.
LOCK = sa.text(
    "SELECT count(CASE WHEN x.shared THEN pg_advisory_xact_lock_shared(x.id)"
    " ELSE pg_advisory_xact_lock(x.id) END)"
    " FROM unnest((SELECT CAST(:ids AS bigint[])), (SELECT CAST(:shared AS boolean[])))"
    " AS x(id, shared)"
).columns(sa.column("locked"))
#: A connection's ``info`` entry: the transaction that holds key spaces whole, and them
#: (:meth:`DuplicateIndex.hold`).
HELD = "heddle.dedupe.held"
#: The stored keys equal to the new ones (PostgreSQL): one statement whatever the number
#: of rules and keys, an index probe per key — its text never changes, so psycopg
#: prepares it once per connection.
#:
#: The key arrays are read through sub-selects (``unnest((SELECT CAST(:keys AS
#: text[])))``): PostgreSQL then assumes the same number of keys whether it plans for
#: the values sent or for any, so the plan it prepares once costs no more than one made
#: for the values, and it keeps it. Given the arrays themselves it saw the real number —
#: 2 keys, against 10 assumed — judged a plan made for them cheaper, and planned again
#: at every execution (``pg_prepared_statements``: 0 generic plans, 106 custom, in 100
#: creates): about 130 µs of PostgreSQL's CPU per lookup, 55 µs now, the plan the same
#: index probe per key.
LOOKUP = sa.text(
    f"SELECT k.key_space, k.key, k.entity, k.record_id, k.rule"
    f" FROM unnest((SELECT CAST(:l_spaces AS text[])), (SELECT CAST(:l_keys AS text[])))"
    f" AS w(key_space, key)"
    f' JOIN "{DUPLICATE_KEY_TABLE}" AS k ON k.key_space = w.key_space AND k.key = w.key'
    f" WHERE k.entity = ANY(CAST(:l_entities AS text[])) LIMIT {MAX_HITS}"
).columns(
    sa.column("key_space", sa.Text()),
    sa.column("key", sa.Text()),
    sa.column("entity", sa.Text()),
    sa.column("record_id", sa.BigInteger()),
    sa.column("rule", sa.Text()),
)
#: The column of a create's statement that carries what its lookup found, when the lookup
#: travels in it (:meth:`PendingCheck.folded`): a JSON list of :class:`Hit` rows, or null.
FOUND = "heddle_duplicates_found"


class CheckOptions(TypedDict, total=False):
    """What a check may be told besides the record (:meth:`DuplicateIndex.start`)."""

    before: Mapping[str, Any] | None
    changed: Collection[str] | None
    confirmed: Collection[str]
    made_from: tuple[str, int] | None


class PendingCheck:
    """A duplicate check whose lookups were sent (:meth:`DuplicateIndex.start`); its
    :meth:`finish` judges what they found.

    Or whose lookup was left to the record's own statement (``start(…, fold=True)``):
    :attr:`folded` then holds the lookup's parameters, the statement inserts the record
    only when the lookup finds nothing (:meth:`DuplicateIndex.guarded`), and what it
    found is handed to :meth:`finish`."""

    def __init__(
        self,
        index: DuplicateIndex,
        actor: Actor,
        ent: Entity,
        record: Mapping[str, Any],
        keys: Keys,
        checked: Sequence[CompiledRule],
        fresh: Mapping[str, set[str]],
        skip: set[tuple[str, int]],
        confirmed: frozenset[str],
    ) -> None:
        self.index = index
        self.actor = actor
        self.ent = ent
        self.record = record
        self.keys = keys
        self.checked = checked
        self.fresh = fresh
        self.skip = skip
        self.confirmed = confirmed
        self.found: list[Pending] = []
        #: the parameters of :data:`LOOKUP` when the record's statement runs it
        self.folded: dict[str, str] | None = None

    def finish(self, conn: sa.Connection, found: Sequence[Sequence[Any]] | None = None) -> Keys:
        """The keys :meth:`DuplicateIndex.write` must store; :class:`DuplicateFound` when a
        rule finds duplicates the writer did not confirm. ``found``: the rows of the
        lookup the record's statement ran (:attr:`folded`)."""
        if not self.checked:
            return self.keys
        index = self.index
        rows = found if found is not None else [r for pending in self.found for r in pending.rows]
        hits = [Hit(*row) for row in rows]
        if len(hits) >= MAX_HITS and len({r.key_space for r in self.checked}) > 1:
            hits = index._exact_again(conn, self.checked, self.fresh)
        for rule in self.checked:
            if rule.fuzzy is not None:
                hits += index._similar(conn, rule, self.fresh[rule.name])
        hits = [h for h in hits if (h.entity, h.record_id) not in self.skip]
        if not hits:
            return self.keys
        refusals = index._refusals(
            conn, self.actor, self.ent, self.record, self.checked, hits, self.confirmed
        )
        if refusals:
            raise _refused(self.ent, refusals)
        return self.keys


class DuplicateIndex:
    """The duplicate rules of one record service, and the key table that serves them."""

    def __init__(self, tables: Tables, dialect: str, computer: Computer) -> None:
        self.tables = tables
        self.model = tables.model
        self.dialect = dialect
        self.computer = computer
        self.rules = RuleSet(tables.model)
        self.table = tables.metadata.tables[DUPLICATE_KEY_TABLE]
        self._trigrams: bool | None = None  # PostgreSQL: whether pg_trgm is installed

    def of(self, entity: str) -> tuple[CompiledRule, ...]:
        return self.rules.of(entity)

    def confirmations(self, entity: str, names: Any) -> frozenset[str]:
        """The rule names a writer confirms, checked: a list of ``entity``'s rules."""
        if names is None:
            return frozenset()
        if isinstance(names, str | Mapping) or not isinstance(names, Iterable):
            raise BadRequest(
                "confirm_duplicates must be a list of duplicate rule names",
                {"confirm_duplicates": ["Not a valid list."]},
            )
        known = [rule.name for rule in self.of(entity)]
        problems = []
        for name in names:
            if not isinstance(name, str) or name not in known:
                listed = ", ".join(known) if known else "none"
                problems.append(
                    f"Unknown duplicate rule {name!r} of {entity} (its rules: {listed})."
                )
        if problems:
            raise BadRequest(
                "confirm_duplicates names rules the entity does not have",
                {"confirm_duplicates": problems},
            )
        return frozenset(names)

    # --- locks (PostgreSQL) ------------------------------------------------------------

    def locks(self, conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> dict[str, str] | None:
        """The parameters of :data:`LOCK` for new ``keys`` of rules that lock, (key space,
        key) each; None when there is nothing to lock.

        A writer locks each key space it writes keys of *shared*, then each key alone:
        two writers of the same key wait for each other, writers of different keys do not.
        A transaction that holds a key space whole (:meth:`hold`) takes nothing more for
        it. Both in one order — spaces, then keys, each by number — so no two writers
        wait for each other in a circle."""
        held = self.held(conn)
        wanted = {(space, key) for space, key in keys if space not in held}
        if not wanted:
            return None
        spaces = sorted({lock_id(space, "") for space, _ in wanted})  # no key is empty
        ids = sorted({lock_id(space, key) for space, key in wanted})
        shared = ["t"] * len(spaces) + ["f"] * len(ids)
        return {"ids": array_text(spaces + ids), "shared": array_text(shared)}

    def hold(self, conn: sa.Connection, entity: str, *, lock: bool = True) -> None:
        """Make the key spaces ``entity``'s rules lock this transaction's whole, for a
        transaction that writes many records — an import all or nothing, a dry run — and
        would otherwise hold a lock per key until its end (PostgreSQL's lock table holds
        some thousands for all sessions: 20,000 accounts ran out of it).

        ``lock``: one exclusive lock per key space, so a writer of such keys elsewhere waits
        until this transaction ends, then sees its keys. ``lock=False``, for a transaction
        that is rolled back anyway (a dry run): no lock at all, and no writer waits for it.
        Either way, no lock per key follows in this transaction. Call it first in the
        transaction, before any other write: its locks come before any of a key."""
        if self.dialect != "postgresql":
            return  # SQLite: one writer at a time already
        spaces = {rule.key_space for rule in self.of(entity) if rule.locks}
        if not spaces:
            return
        if lock:
            ids = sorted({lock_id(space, "") for space in spaces})
            conn.execute(LOCK, {"ids": array_text(ids), "shared": array_text(["f"] * len(ids))})
        conn.info[HELD] = (conn.get_transaction(), frozenset(spaces) | self.held(conn))

    @staticmethod
    def held(conn: sa.Connection) -> frozenset[str]:
        """The key spaces the connection's transaction holds whole (:meth:`hold`)."""
        found = conn.info.get(HELD)
        if found is None:
            return frozenset()
        transaction, spaces = found
        if transaction is None or transaction is not conn.get_transaction():
            del conn.info[HELD]  # an earlier transaction's
            return frozenset()
        spaces_held: frozenset[str] = spaces
        return spaces_held

    @staticmethod
    def release(conn: sa.Connection) -> None:
        """Forget :meth:`hold` (its locks end with the transaction)."""
        conn.info.pop(HELD, None)

    # --- the check ---------------------------------------------------------------------

    def check(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        **options: Unpack[CheckOptions],
    ) -> Keys:
        """Refuse ``record`` (new, or ``record_id`` changed from ``before``) when a rule
        finds duplicates of it; otherwise return the keys :meth:`write` must store — by
        rule, only the rules whose keys changed.

        Only keys the record did not have already are looked up: editing another field of
        a record that was saved despite a warning does not warn again. ``made_from``: the
        record this one is made from (a lead converted into an account) is no duplicate.
        The locks and lookups go to the database together (:meth:`start`).
        """
        batch = Batch(conn)
        pending = self.start(batch, actor, ent, record, record_id, **options)
        batch.run()
        return pending.finish(conn)

    def start(
        self,
        batch: Batch,
        actor: Actor,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        *,
        before: Mapping[str, Any] | None = None,
        changed: Collection[str] | None = None,
        confirmed: Collection[str] = (),
        made_from: tuple[str, int] | None = None,
        fold: bool = False,
    ) -> PendingCheck:
        """:meth:`check` in two halves around ``batch``: the locks and lookups are added
        to it (so that a create sends them with its other first statements, in one round
        trip), and :meth:`PendingCheck.finish`, once the batch ran, refuses or returns the
        keys. The advisory locks come first in the batch: the lookups after them see
        every key committed by a writer they waited for.

        ``fold`` (PostgreSQL, a create whose statement can carry it: :meth:`guarded`): the
        lookup is not added to the batch but left in :attr:`PendingCheck.folded`, for the
        record's statement — which runs after the batch, so its snapshot too follows the
        locks. Not for fuzzy rules, whose similar keys are asked for once the exact ones
        are known."""
        rules = self.of(ent.name)
        if changed is not None:
            rules = tuple(r for r in rules if not set(r.fields).isdisjoint(changed))
        keys: Keys = {}
        fresh: dict[str, set[str]] = {}
        for rule in rules:
            new = rule.keys(record)
            old = rule.keys(before) if before is not None else ()
            if set(new) != set(old) or before is None:
                keys[rule.name] = new
            added = set(new) - set(old)
            if added:
                fresh[rule.name] = added
        checked = [rule for rule in rules if rule.name in fresh]
        skip = {(ent.name, record_id)} if record_id is not None else set()
        if made_from is not None:
            skip.add(made_from)
        pending = PendingCheck(
            self, actor, ent, record, keys, checked, fresh, skip, frozenset(confirmed)
        )
        if not checked:
            return pending
        if self.dialect == "postgresql":
            locks = self.locks(batch.conn, [(r.key_space, k) for r in checked if r.locks
                                            for k in fresh[r.name]])  # fmt: skip
            if locks is not None:
                batch.single(LOCK, locks)  # before the lookup's snapshot
            spaces, wanted, entities = self._wanted(checked, fresh)
            arrays = {"l_spaces": spaces, "l_keys": wanted, "l_entities": entities}
            params = {name: array_text(v) for name, v in arrays.items()}
            if fold and all(rule.fuzzy is None for rule in checked):
                pending.folded = params
            else:
                pending.found.append(batch.add(LOOKUP, params))
        else:
            pending.found.append(batch.add(self._lookup_query(*self._by_space(checked, fresh))))
        return pending

    @staticmethod
    def _by_space(
        rules: Sequence[CompiledRule], fresh: Mapping[str, set[str]]
    ) -> tuple[dict[str, set[str]], set[str]]:
        by_space: dict[str, set[str]] = defaultdict(set)
        entities: set[str] = set()
        for rule in rules:
            by_space[rule.key_space] |= fresh[rule.name]
            entities |= {target.entity for target in rule.targets}
        return by_space, entities

    def _wanted(
        self, rules: Sequence[CompiledRule], fresh: Mapping[str, set[str]]
    ) -> tuple[list[str], list[str], list[str]]:
        """The lookup's parameters: key spaces and keys side by side, and the entities."""
        by_space, entities = self._by_space(rules, fresh)
        pairs = sorted((space, key) for space, found in by_space.items() for key in found)
        return [p[0] for p in pairs], [p[1] for p in pairs], sorted(entities)

    def _exact_again(
        self, conn: sa.Connection, rules: Sequence[CompiledRule], fresh: Mapping[str, set[str]]
    ) -> list[Hit]:
        """A key shared by very many records filled the page of one lookup: each key space
        on its own, so that one cannot hide another's."""
        by_space, entities = self._by_space(rules, fresh)
        found: list[Hit] = []
        for space, keys in by_space.items():
            rows = conn.execute(self._lookup_query({space: keys}, entities))
            found += [Hit(*row) for row in rows]
        return found

    def _lookup_query(self, by_space: Mapping[str, set[str]], entities: set[str]) -> sa.Select[Any]:
        t = self.table
        return (
            sa.select(t.c.key_space, t.c.key, t.c.entity, t.c.record_id, t.c.rule)
            .where(
                sa.or_(
                    *(
                        sa.and_(t.c.key_space == space, t.c.key.in_(sorted(found)))
                        for space, found in sorted(by_space.items())
                    )
                ),
                t.c.entity.in_(sorted(entities)),
            )
            .limit(MAX_HITS)
        )

    def _similar(self, conn: sa.Connection, rule: CompiledRule, keys: Iterable[str]) -> list[Hit]:
        """Stored keys like ``keys`` under a fuzzy rule, from the trigram index; keys
        shorter than three characters have no trigrams and were looked up exactly."""
        entities = sorted({target.entity for target in rule.targets})
        found: list[Hit] = []
        for key in keys:
            if len(key) < MIN_TRIGRAM_KEY:
                continue
            if self.dialect == "postgresql":
                found += self._similar_pg(conn, rule, key, entities)
            else:
                found += self._similar_sqlite(conn, rule, key, entities)
        return found

    def _similar_pg(
        self, conn: sa.Connection, rule: CompiledRule, key: str, entities: list[str]
    ) -> list[Hit]:
        t = self.table
        if not self._has_trigrams(conn):
            return self._scan(conn, rule, entities)
        # Trigram similarity runs well below RapidFuzz's for the same pair (one wrong
        # character of ten: 0.9 against about 0.5), so the index is asked for more, and
        # exact scoring decides.
        threshold = max(0.1, (rule.fuzzy or 1.0) - 0.5)
        conn.execute(
            sa.select(sa.func.set_config("pg_trgm.similarity_threshold", str(threshold), True))
        )
        query = (
            sa.select(t.c.key_space, t.c.key, t.c.entity, t.c.record_id, t.c.rule)
            .where(
                t.c.key.op("%")(key),
                t.c.key_space == rule.key_space,
                t.c.entity.in_(entities),
            )
            .order_by(sa.func.similarity(t.c.key, key).desc())
            .limit(FUZZY_CANDIDATES)
        )
        return [Hit(*row) for row in conn.execute(query)]

    def _has_trigrams(self, conn: sa.Connection) -> bool:
        if self._trigrams is None:
            self._trigrams = bool(
                conn.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"))
            )
        return self._trigrams

    def _similar_sqlite(
        self, conn: sa.Connection, rule: CompiledRule, key: str, entities: list[str]
    ) -> list[Hit]:
        usable = fts.usable(conn, self.model.hash, lambda: search_columns(self.tables))
        index = usable.get(DUPLICATE_KEY_TABLE)
        if index is None:
            return self._scan(conn, rule, entities)
        grams = list(dict.fromkeys(key[i : i + 3] for i in range(len(key) - 2)))
        phrases = " OR ".join('"' + g.replace('"', '""') + '"' for g in grams[:MAX_TRIGRAMS])
        name = index.name
        rows = conn.execute(
            sa.text(
                f'SELECT k.key_space, k.key, k.entity, k.record_id, k.rule FROM "{name}" AS f'
                f' JOIN "{DUPLICATE_KEY_TABLE}" AS k ON k.id = f.rowid'
                f' WHERE f."{name}" MATCH :phrases AND k.key_space = :space'
                " ORDER BY f.rank LIMIT :limit"
            ),
            {"phrases": phrases, "space": rule.key_space, "limit": FUZZY_CANDIDATES * 4},
        )
        hits = [Hit(*row) for row in rows if row[2] in entities]
        return hits[:FUZZY_CANDIDATES]

    def _scan(self, conn: sa.Connection, rule: CompiledRule, entities: list[str]) -> list[Hit]:
        """No trigram index (pg_trgm not installable, SQLite without FTS5): the rule's key
        space is read, up to :data:`SCAN_LIMIT` keys, and scored in Python."""
        t = self.table
        query = (
            sa.select(t.c.key_space, t.c.key, t.c.entity, t.c.record_id, t.c.rule)
            .where(t.c.key_space == rule.key_space, t.c.entity.in_(entities))
            .limit(SCAN_LIMIT)
        )
        return [Hit(*row) for row in conn.execute(query)]

    # --- what was found ------------------------------------------------------------------

    def _refusals(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record: Mapping[str, Any],
        rules: Sequence[CompiledRule],
        hits: Sequence[Hit],
        confirmed: frozenset[str],
    ) -> list[Refusal]:
        rows = self._rows(conn, {(h.entity, h.record_id) for h in hits})
        refusals = []
        for rule in rules:
            scored: list[tuple[float, int, Target, dict[str, Any]]] = []
            for order, target in enumerate(rule.targets):
                ids = {
                    h.record_id
                    for h in hits
                    if h.key_space == rule.key_space
                    and (h.entity, h.rule) == (target.entity, target.rule)
                    and (h.entity, h.record_id) in rows
                }
                candidates = [(i, rows[(target.entity, i)]) for i in sorted(ids)]
                for found in find_duplicates(
                    rule.match, record, candidates, candidate_rule=target.match
                ):
                    row = rows[(target.entity, found.id)]
                    scored.append((found.score, order, target, row))
            if not scored:
                continue
            # one entry per record (two rules of an also_check entity may both find it)
            best: dict[tuple[str, int], tuple[float, int, Target, dict[str, Any]]] = {}
            for item in scored:
                at = (item[2].entity, item[3]["id"])
                if at not in best or item[0] > best[at][0]:
                    best[at] = item
            ranked = sorted(best.values(), key=lambda s: (-s[0], s[1], s[3]["id"]))
            own = any(item[2].entity == ent.name for item in ranked)
            confirmable = rule.action == "warn" or (rule.action == "claim" and not own)
            if confirmable and rule.name in confirmed:
                continue
            shown = ranked[:MAX_CANDIDATES]
            described = self._describe(conn, shown)
            label = rule.definition.label.get(actor.locale)
            refusals.append(Refusal(rule, label, confirmable, described, len(ranked) - len(shown)))
        refusals.sort(key=lambda r: (SEVERITY.get(r.rule.action, 3), r.confirmable))
        return refusals

    def _rows(
        self, conn: sa.Connection, wanted: set[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The records found, read whole (whatever the writer may see), by (entity, id)."""
        by_entity: dict[str, set[int]] = defaultdict(set)
        for entity, record_id in wanted:
            by_entity[entity].add(record_id)
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for entity, ids in by_entity.items():
            table = self.tables.table(entity)
            found = [
                dict(r)
                for r in conn.execute(
                    sa.select(table).where(table.c.id.in_(sorted(ids)))
                ).mappings()
            ]
            title = self.model.entity(entity).title_field
            if title and title not in table.c:  # a formula title
                self.computer.formulas(conn, self.model.entity(entity), found, SYSTEM.context())
            rows.update({(entity, row["id"]): row for row in found})
        return rows

    def _describe(
        self, conn: sa.Connection, ranked: Sequence[tuple[float, int, Target, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Each candidate as the refusal shows it: its title and who holds it — its owner,
        or the pool it waits in — and nothing else of it."""
        owners = {row.get("owner_id") for _, _, _, row in ranked} - {None}
        names: dict[int, str] = {}
        if owners:
            users = self.tables.metadata.tables[USER_TABLE]
            for user_id, name, username in conn.execute(
                sa.select(users.c.id, users.c.name, users.c.username).where(
                    users.c.id.in_(sorted(owners))
                )
            ):
                names[user_id] = name or username
        pools: dict[tuple[str, int], str] = {}
        for pool_entity, ids in self._pools(ranked).items():
            pools.update(
                {(pool_entity, k): v for k, v in self._titles(conn, pool_entity, ids).items()}
            )
        described = []
        for score, _, target, row in ranked:
            entity = self.model.entity(target.entity)
            owner_id = row.get("owner_id") if entity.ownable else None
            pool = None
            if target.pool is not None and row.get(target.pool) is not None:
                pool_entity = entity.fields[target.pool].to or ""
                pool_id = row[target.pool]
                pool = {"id": pool_id, "name": pools.get((pool_entity, pool_id), f"#{pool_id}")}
            described.append(
                {
                    "id": row["id"],
                    "entity": target.entity,
                    "title": _title(entity, row),
                    "owner": None
                    if owner_id is None
                    else {"id": owner_id, "name": names.get(owner_id, f"#{owner_id}")},
                    "pool": pool,
                    "score": round(score, 4),
                }
            )
        return described

    def _pools(
        self, ranked: Sequence[tuple[float, int, Target, dict[str, Any]]]
    ) -> dict[str, set[int]]:
        found: dict[str, set[int]] = defaultdict(set)
        for _, _, target, row in ranked:
            if target.pool is not None and row.get(target.pool) is not None:
                entity = self.model.entity(target.entity)
                found[entity.fields[target.pool].to or ""].add(row[target.pool])
        return found

    def _titles(self, conn: sa.Connection, entity: str, ids: set[int]) -> dict[int, str]:
        ent = self.model.entity(entity)
        table = self.tables.table(entity)
        title = ent.title_field
        if not title or title not in table.c:
            return {i: f"#{i}" for i in ids}
        rows = conn.execute(
            sa.select(table.c.id, table.c[title]).where(table.c.id.in_(sorted(ids)))
        )
        return {i: str(t) if t is not None else f"#{i}" for i, t in rows}

    # --- keeping the keys ----------------------------------------------------------------

    def write(
        self, conn: sa.Connection, entity: str, record_id: int, keys: Keys, *, replace: bool
    ) -> None:
        """Store ``keys`` (what :meth:`check` returned) for the record; ``replace`` first
        removes the keys those rules stored for it before (an update)."""
        if not keys:
            return
        t = self.table
        if replace:
            conn.execute(
                t.delete().where(
                    t.c.entity == entity, t.c.record_id == record_id, t.c.rule.in_(sorted(keys))
                )
            )
        rows = [
            {
                "key_space": rule.key_space,
                "key": key,
                "entity": entity,
                "record_id": record_id,
                "rule": rule.name,
            }
            for rule in self.of(entity)
            for key in keys.get(rule.name, ())
        ]
        if rows:
            conn.execute(t.insert(), rows)

    def inserting(self, entity: str, created: sa.CTE) -> sa.CTE:
        """On PostgreSQL, the keys of the record ``created`` (a data-modifying CTE
        inserting it and returning it) written by the same statement, from the arrays
        :meth:`bound` gives (one statement whatever the number of keys)."""
        t = self.table
        keys = (
            sa.func.unnest(
                sa.cast(sa.bindparam("k_spaces"), postgresql.ARRAY(sa.Text())),
                sa.cast(sa.bindparam("k_keys"), postgresql.ARRAY(sa.Text())),
                sa.cast(sa.bindparam("k_rules"), postgresql.ARRAY(sa.Text())),
            )
            .table_valued("space", "key", "rule")
            .render_derived(name="keys")
        )
        rows = sa.select(
            keys.c.space, keys.c.key, sa.literal(entity, sa.String()), created.c.id, keys.c.rule
        ).select_from(created.join(keys, sa.true()))
        written = t.insert().from_select(["key_space", "key", "entity", "record_id", "rule"], rows)
        return written.cte("keyed")

    @staticmethod
    def guarded(insert: sa.Insert, values: Mapping[str, Any]) -> tuple[sa.Insert, sa.CTE]:
        """A create's INSERT of ``values`` (column → bound parameter) into ``insert``'s
        table that inserts only when :data:`LOOKUP` finds no key (its parameters: those
        of :attr:`PendingCheck.folded`), and the lookup as a CTE, whose rows the
        statement also returns (:data:`FOUND`): one statement, no round trip of its own."""
        found = LOOKUP.cte("found")
        row = sa.select(*(value.label(name) for name, value in values.items()))
        unless = row.where(~sa.exists().select_from(found))
        return insert.from_select(list(values), unless), found

    @staticmethod
    def found(found: sa.CTE) -> sa.Label[Any]:
        """The rows of :meth:`guarded`'s lookup as one JSON value (null when none)."""
        listed = sa.func.json_agg(sa.func.json_build_array(*found.c))
        return sa.select(listed).select_from(found).scalar_subquery().label(FOUND)

    def bound(self, entity: str, keys: Keys) -> dict[str, str]:
        """The parameters of :meth:`inserting` for ``keys`` (arrays as their text:
        :func:`~engine.pipeline.array_text`)."""
        found: dict[str, list[str]] = {"k_spaces": [], "k_keys": [], "k_rules": []}
        for rule in self.of(entity):
            for key in keys.get(rule.name, ()):
                found["k_spaces"].append(rule.key_space)
                found["k_keys"].append(key)
                found["k_rules"].append(rule.name)
        return {name: array_text(values) for name, values in found.items()}

    # --- many new records at once (imports) -------------------------------------------------

    def screen(
        self, conn: sa.Connection, entity: str, records: Sequence[Mapping[str, Any]]
    ) -> list[Keys | None]:
        """For new records written together: each one's keys (what :meth:`check` would
        return) when no rule can find a duplicate of it — no stored key equals one of its
        keys, no earlier record of ``records`` shares one — else None: that record must
        take :meth:`check` on its own (which names the candidates, or lets a warning
        through). A fuzzy rule sends every record with keys to :meth:`check`.

        On PostgreSQL the keys of the rules that lock are locked first, all in one
        statement and one order (as :meth:`check` does one record's): what a concurrent
        writer of the same key commits is seen, and what this one writes is waited for.
        A statement per key space (and per 2,000 keys), whatever the number of records."""
        rules = self.of(entity)
        if not rules:
            return [{} for _ in records]
        keyed = [{rule.name: rule.keys(record) for rule in rules} for record in records]
        spaces = [(rule, rule.key_space) for rule in rules]
        if self.dialect == "postgresql":
            locks = self.locks(conn, [(space, k) for keys in keyed for r, space in spaces
                                      if r.locks for k in keys[r.name]])  # fmt: skip
            if locks is not None:
                conn.execute(LOCK, locks)
        by_space: dict[str, set[str]] = defaultdict(set)
        entities: set[str] = set()
        for rule, space in spaces:
            entities |= {target.entity for target in rule.targets}
            for keys in keyed:
                by_space[space].update(keys[rule.name])
        stored: set[tuple[str, str]] = set()
        t = self.table
        for space, wanted in sorted(by_space.items()):
            ordered = sorted(wanted)
            for begin in range(0, len(ordered), SCREEN_CHUNK):  # an index probe per key
                chunk = ordered[begin : begin + SCREEN_CHUNK]
                if self.dialect == "postgresql":
                    # An index probe per key, whatever the table's statistics say (a
                    # table an import is filling has stale ones: the planner would read
                    # the whole key space once per batch). One parameter per list.
                    params = {"keys": array_text(chunk), "space": space,
                              "entities": array_text(sorted(entities))}  # fmt: skip
                    hits = conn.scalars(_SCREEN_PG, params)
                else:
                    hits = conn.scalars(
                        sa.select(t.c.key).where(
                            t.c.key_space == space,
                            t.c.key.in_(chunk),
                            t.c.entity.in_(sorted(entities)),
                        )
                    )
                stored |= {(space, key) for key in hits}
        found: list[Keys | None] = []
        taken: set[tuple[str, str]] = set()
        for keys in keyed:
            mine = {(space, k) for r, space in spaces for k in keys[r.name]}
            fuzzy = any(r.fuzzy is not None and keys[r.name] for r in rules)
            if fuzzy or mine & stored or mine & taken:
                found.append(None)
            else:
                found.append(keys)
            taken |= mine
        return found

    def key_rows(self, entity: str, keyed: Sequence[tuple[int, Keys]]) -> list[dict[str, Any]]:
        """The rows of the key table for new records, (id, keys) each (what
        :meth:`screen` gave): their writer inserts them all at once."""
        return [
            {"key_space": rule.key_space, "key": key, "entity": entity, "record_id": record_id,
             "rule": rule.name}
            for record_id, keys in keyed
            for rule in self.of(entity)
            for key in keys.get(rule.name, ())
        ]  # fmt: skip

    def remove(self, conn: sa.Connection, entity: str, record_id: int) -> None:
        """Forget a record's keys (it is deleted, or merged into another)."""
        if self.of(entity):
            t = self.table
            conn.execute(t.delete().where(t.c.entity == entity, t.c.record_id == record_id))


def _title(entity: Entity, row: Mapping[str, Any]) -> str:
    value = row.get(entity.title_field) if entity.title_field else None
    if value is None or value == "":
        return f"{entity.label.get('en')} #{row['id']}"
    return str(value)


def _refused(ent: Entity, refusals: Sequence[Refusal]) -> DuplicateFound:
    first = refusals[0]
    shown = []
    for candidate in first.candidates[:3]:
        holder = ""
        if candidate["pool"] is not None:
            holder = f" (in the pool {candidate['pool']['name']})"
        elif candidate["owner"] is not None:
            holder = f" (owned by {candidate['owner']['name']})"
        what = candidate["entity"]
        shown.append(f"{what} {candidate['title']!r}{holder}")
    more = len(first.candidates) - len(shown) + first.more
    listing = ", ".join(shown) + (f" and {more} more" if more else "")
    if first.confirmable:
        advice = f"confirm the rule {first.rule.name} to save it anyway"
    elif first.rule.action == "claim" and any(c["pool"] for c in first.candidates):
        advice = "claim it from its pool instead"
    elif first.rule.action == "claim":
        advice = "ask its owner, or merge the records"
    else:
        advice = "change the record, or merge the records"
    message = f"{first.label}: {listing} matches this {ent.name}; {advice}"
    details: dict[str, Any] = first.describe()
    details["rules"] = [refusal.describe() for refusal in refusals]
    return DuplicateFound(message, details=details)
