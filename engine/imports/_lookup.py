"""Finding the records a spreadsheet names: references by external id, code, title or id;
users by username, name or email; teams by name.

Texts are looked up in batches (one query per field and kind of key for all the distinct
texts of a batch of rows) and remembered for the run. A reference finds only records the
importing user may read (unless the field says ``link: any``), exactly as the record
service checks it: a name out of sight reads as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Field

from ..context import Actor
from ..permissions import Permissions
from ..tables import TEAM_TABLE, USER_TABLE, Tables
from ._convert import CellError, fold, msgid, text

# Why a cell names no record (msgids of the interface's catalogs, see CellError).
UNKNOWN_NAME = msgid("Unknown %(what)s '%(text)s'.")
SEVERAL_RECORDS = msgid(
    "%(count)s %(what)s records are called '%(text)s': use its code, external id or id."
)
SEVERAL_USERS = msgid("%(count)s users are called '%(text)s': use the username or email.")
SEVERAL_TEAMS = msgid("%(count)s teams are called '%(text)s': use the team's id.")

#: Field names taken as an external id (a key from the system the data comes from).
EXTERNAL_ID_NAMES = ("external_id", "external_code", "legacy_id")
CHUNK = 500


def key_fields(entity: Entity) -> list[str]:
    """The fields that name one record of ``entity``, most specific first: external ids,
    unique or autonumbered codes, then its title field."""
    names = [n for n in EXTERNAL_ID_NAMES if n in entity.fields]
    for f in entity.fields.values():
        if f.name in names:
            continue
        if f.type == "autonumber" or (f.unique and f.value_type == "string"):
            names.append(f.name)
    title = entity.title_field or ("name" if "name" in entity.fields else None)
    if title and title not in names and title in entity.fields:
        names.append(title)
    return names


@dataclass(frozen=True)
class Target:
    """What a column names: records of an entity (``reference``), users or teams."""

    kind: str  # reference, user, team
    to: str | None = None
    anyone: bool = False  # a reference with link: any (no sight applies)

    @classmethod
    def of(cls, field: Field) -> Target:
        if field.type == "reference":
            return cls("reference", field.to, field.settings.get("link") == "any")
        return cls(field.type)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.to}:{self.anyone}"


class Lookups:
    """Ids of the records, users and teams named in cells, for one import run."""

    def __init__(self, tables: Tables, permissions: Permissions, actor: Actor) -> None:
        self.tables = tables
        self.model = tables.model
        self.permissions = permissions
        self.actor = actor
        # (target, folded text) → its id, why it names none (several), or None (no record)
        self._found: dict[tuple[str, str], int | CellError | None] = {}

    def prefetch(self, conn: sa.Connection, target: Target, cells: Iterable[Any]) -> None:
        """Look up every text of ``cells`` not looked up yet, in a few queries."""
        wanted = {text(c) for c in cells if text(c)}
        wanted = {t for t in wanted if (target.key, fold(t)) not in self._found}
        if not wanted:
            return
        if target.kind == "reference":
            found = self._records(conn, target, wanted)
        elif target.kind == "team":
            found = self._by_columns(conn, TEAM_TABLE, ("name",), wanted, "team")
        else:
            found = self._by_columns(conn, USER_TABLE, ("username", "email", "name"),
                                     wanted, "user")  # fmt: skip
        for raw in wanted:
            self._found[(target.key, fold(raw))] = found.get(fold(raw))

    def resolve(self, conn: sa.Connection, target: Target, cell: Any) -> int:
        raw = text(cell)
        key = (target.key, fold(raw))
        if key not in self._found:
            self.prefetch(conn, target, [cell])
        found = self._found[key]
        if isinstance(found, CellError):
            raise CellError(found.template, **found.params)
        if found is None:
            what = target.to if target.kind == "reference" else target.kind
            raise CellError(UNKNOWN_NAME, what=what, text=raw)
        return found

    def remember(self, target: Target, raw: Any, record_id: int) -> None:
        """A record this import created: later rows may name it."""
        if text(raw):
            self._found[(target.key, fold(text(raw)))] = record_id

    # --- queries ---------------------------------------------------------------------------

    def _records(self, conn: sa.Connection, to: Target, wanted: set[str]) -> dict[str, Any]:
        target = self.model.entity(to.to or "")
        table = self.tables.table(target.name)
        sight = None
        if not to.anyone:
            grant = self.permissions.grant(self.actor, target, "read")
            sight = self.permissions.where(self.actor, target, grant, table)
        found: dict[str, Any] = {}
        remaining = set(wanted)
        for name in key_fields(target):
            column = table.c.get(name)
            if column is None or not remaining:
                continue
            hits = self._hits(conn, table, column, remaining, sight)
            for raw in list(remaining):
                ids = hits.get(fold(raw))
                if ids:
                    found[fold(raw)] = ids[0] if len(ids) == 1 else CellError(
                        SEVERAL_RECORDS, count=len(ids), what=target.name, text=raw)  # fmt: skip
                    remaining.discard(raw)
        numbers = {raw: int(raw.lstrip("#")) for raw in remaining if raw.lstrip("#").isdigit()}
        if numbers:
            query = sa.select(table.c.id).where(table.c.id.in_(set(numbers.values())))
            if sight is not None:
                query = query.where(sight)
            present = set(conn.scalars(query))
            for raw, number in numbers.items():
                if number in present:
                    found[fold(raw)] = number
        return found

    def _hits(
        self, conn: sa.Connection, table: sa.Table, column: Any, wanted: set[str], sight: Any
    ) -> dict[str, list[int]]:
        """Ids by folded text, for the rows whose ``column`` is one of ``wanted`` — compared
        as typed, and as typed in other cases or widths (NFKC, case-folded) too."""
        hits: dict[str, list[int]] = {}
        values = sorted(wanted)
        for start in range(0, len(values), CHUNK):
            chunk = values[start : start + CHUNK]
            lowered = {v.lower() for v in chunk}
            query = sa.select(table.c.id, column).where(
                sa.or_(column.in_(chunk), sa.func.lower(column).in_(lowered))
            )
            if sight is not None:
                query = query.where(sight)
            for row_id, value in conn.execute(query):
                ids = hits.setdefault(fold(str(value)), [])
                if row_id not in ids:
                    ids.append(row_id)
        return hits

    def _by_columns(
        self,
        conn: sa.Connection,
        table_name: str,
        columns: tuple[str, ...],
        wanted: set[str],
        what: str,
    ) -> dict[str, Any]:
        table = self.tables.metadata.tables[table_name]
        found: dict[str, Any] = {}
        remaining = set(wanted)
        for name in columns:
            if not remaining:
                break
            hits = self._hits(conn, table, table.c[name], remaining, None)
            for raw in list(remaining):
                ids = hits.get(fold(raw))
                if ids:
                    found[fold(raw)] = ids[0] if len(ids) == 1 else CellError(
                        SEVERAL_USERS if what == "user" else SEVERAL_TEAMS,
                        count=len(ids), text=raw)  # fmt: skip
                    remaining.discard(raw)
        numbers = {raw: int(raw.lstrip("#")) for raw in remaining if raw.lstrip("#").isdigit()}
        if numbers:  # an id, as JSON exports and the API give them
            present = set(conn.scalars(sa.select(table.c.id).where(
                table.c.id.in_(set(numbers.values())))))  # fmt: skip
            found.update({fold(raw): n for raw, n in numbers.items() if n in present})
        return found
