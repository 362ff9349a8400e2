"""Drafting the changes to one existing table: its columns (added, renamed, retyped, made
required or unique), their indexes, unique constraints and foreign keys, and what is
archived before a drop. Part of the planner (:class:`~._plan._Planner`), which holds the
state these drafts read and add to.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metamodel import Entity, Field, Model, did_you_mean

from ..tables import AUDIT_TABLE, Tables
from . import _checks as checks
from . import _ops as ops
from ._checks import describe
from ._draft import ADD, ADD_KEY, ALTER, DROP, DROP_KEY, RENAME, REQUIRE, Draft
from ._live import Key, LiveTable, Thing, match, wanted_things


class ColumnDrafts:
    """The planner's drafts for tables that exist already (a mixin of ``_Planner``)."""

    conn: Connection
    dialect: sa.Dialect
    sqlite: bool
    model: Model
    tables: Tables
    previous: Model | None
    before: Tables | None
    live: dict[str, LiveTable]
    archive_hash: str
    refusals: list[str]
    notes: list[str]
    table_renames: dict[str, str]

    def has_rows(self, table: str) -> bool:
        raise NotImplementedError

    def entity_of(self, table: sa.Table) -> Entity | None:
        raise NotImplementedError

    def previous_entity(self, name: str) -> Entity | None:
        raise NotImplementedError

    def previous_table(self, table: sa.Table) -> sa.Table | None:
        raise NotImplementedError

    def add(self, draft: Draft) -> None:
        raise NotImplementedError

    def refuse(self, message: str) -> None:
        raise NotImplementedError

    def now(self, name: str) -> str:
        raise NotImplementedError

    # --- one existing table ---------------------------------------------------------

    def alter_table(self, table: sa.Table) -> None:
        live = self.live[table.name]
        entity = self.entity_of(table)
        old_entity = self.previous_entity(entity.name) if entity else None
        old_table = self.previous_table(table)
        has_id = "id" in live.columns
        renames: dict[str, str] = {}  # live name → new name
        for column in table.columns:
            spec = entity.fields.get(column.name) if entity else None
            source = spec.renamed_from if spec else None
            if (
                column.name not in live.columns
                and source
                and source in live.columns
                and source not in table.columns
            ):
                renames[source] = column.name
                audited = entity.name if entity is not None and entity.audit else None
                self.add(self.rename_column_draft(table.name, source, column.name, audited))
                self.drop_search_indexes(table.name, live, source, "renamed")
            elif column.name not in live.columns and source and source not in live.columns:
                self.rename_from_nothing(table, live, column.name, source)
        live_name = {new: old for old, new in renames.items()}
        added = set()
        for column in table.columns:
            if column.name in live.columns or column.name in live_name:
                source = live_name.get(column.name, column.name)
                self.change_column(table, column, live, source, has_id)
                if entity and column.name in entity.fields:
                    old_field = None
                    if old_entity is not None:
                        old_field = old_entity.fields.get(source) or old_entity.fields.get(
                            column.name
                        )
                    self.field_rules(
                        table.name, entity.fields[column.name], old_field, source, live, has_id
                    )
            else:
                added.add(column.name)
                spec = entity.fields.get(column.name) if entity else None
                self.add_column(table, column, spec)
        dropped = []
        if old_table is not None:
            for column in old_table.columns:
                name = column.name
                if name in table.columns or name in renames or name not in live.columns:
                    continue
                dropped.append(name)
        self.keys(table, live, old_table, renames, added, set(dropped), has_id)
        for name in dropped:
            self.add(self.drop_column_draft(table.name, name, live))
        known = set(table.columns.keys()) | set(renames) | set(dropped)
        if old_table is not None:
            known |= set(old_table.columns.keys())
        strangers = sorted(set(live.columns) - known)
        if strangers and entity is not None:
            listed = ", ".join(f"{table.name}.{c}" for c in strangers)
            self.notes.append(f"columns the definitions do not know, left alone: {listed}")

    def drop_search_indexes(self, table: str, live: LiveTable, column: str, why: str) -> None:
        """A trigram search index stands in the way of a type change and keeps its old name
        after a rename; the search indexes the Model wants are made again after migrating."""
        for name, indexed in sorted(live.search.items()):
            if indexed == column:
                self.add(
                    Draft(
                        "drop_index",
                        table,
                        column,
                        f"drop search index {name} of {table} ({column}): the column is"
                        f" {why}; search indexes are made again after the migration",
                        DROP_KEY - 5,
                        native=ops.drop_index(name, table),
                    )
                )

    def rename_column_draft(
        self, table: str, old: str, new: str, audited: str | None = None
    ) -> Draft:
        """Rename a column; the audit history of ``audited`` (an entity) follows it."""
        follow = None
        described = f"rename column {table}.{old} to {new} (renamed_from keeps its data"
        if audited is not None and AUDIT_TABLE in self.live:
            follow = ops.rename_audit_key(audited, old, new, self.sqlite)
            described += "; its audit history follows"
        return Draft(
            "rename_column",
            table,
            new,
            described + ")",
            RENAME,
            before=follow,
            native=lambda op: op.alter_column(table, old, new_column_name=new),
        )

    def rename_from_nothing(self, table: sa.Table, live: LiveTable, new: str, old: str) -> None:
        """``renamed_from`` names no column: a typo would make the rename a drop and an
        add, so it is refused when the table has columns it could mean (ones the new
        definitions have no field for). Without any, the field is simply new here."""
        could_mean = sorted(c for c in live.columns if c not in table.columns)
        where = f"{table.name}.{new}: renamed_from '{old}' names no column of table {table.name}"
        if not could_mean:
            self.notes.append(f"{where}; {new} is added as a new column")
            return
        hint = did_you_mean(old, could_mean) or (
            f"columns without a field: {', '.join(could_mean)}"
        )
        self.refuse(f"{where} ({hint}); correct renamed_from, or remove it to add {new} empty")

    def add_column(self, table: sa.Table, column: sa.Column[Any], spec: Field | None) -> None:
        name, kind = column.name, describe(column.type, self.dialect)
        value = ops.constant_default(spec) if spec is not None and not spec.unique else None
        populated = self.has_rows(table.name)
        what = spec.type if spec is not None else str(kind)
        if spec is not None and spec.type == "reference":
            what += f" → {spec.to}"
        note = ""
        if value is not None and populated:
            note = f"; existing rows get {ops.shown(value)}"
        if populated and spec is not None and spec.type == "autonumber":
            self.notes.append(
                f"{table.name}.{name}: a new autonumber field; the rows already there get"
                " no number (new records do)"
            )
        if populated and spec is not None and spec.type == "rollup":
            self.notes.append(
                f"{table.name}.{name}: a new rollup field, computed for the rows already there"
            )
        if populated and value is None:
            if spec is not None and spec.required:
                found = checks.count_rows(self.conn, self.now(table.name), ops.everything)
                self.refuse(
                    f"{table.name}.{name}: required, but {found.rows('have')} no value"
                    f" for it{found.where}; give the field a constant default, or add it"
                    " without required, fill it in, then make it required"
                )
            elif not column.nullable and column.server_default is None:
                self.refuse(
                    f"{table.name}.{name}: a NOT NULL column without a default cannot be"
                    " added to a table that has rows"
                )
        reference = next(iter(column.foreign_keys), None)
        inline = self.sqlite and reference is not None
        references = (
            [sa.ForeignKey(reference.target_fullname, ondelete=reference.ondelete)]
            if inline and reference is not None
            else []
        )
        server_default = column.server_default
        plain = sa.Column(
            name,
            column.type,
            *references,
            nullable=column.nullable,
            server_default=server_default.arg
            if isinstance(server_default, sa.DefaultClause)
            and isinstance(server_default.arg, str | sa.TextClause)
            else None,
        )
        literal = ops.literal(value, column.type, self.dialect) if populated else None
        fast = (
            not self.sqlite
            and value is not None
            and literal is not None
            and column.server_default is None
        )
        if fast:
            # PostgreSQL stores a constant default without rewriting the table; dropping
            # the default after leaves the rows with it and the column as the Model says.
            plain.server_default = sa.DefaultClause(sa.text(literal or ""))

        def native(op: Operations) -> None:
            op.add_column(table.name, plain, inline_references=inline)
            if fast:
                op.alter_column(table.name, name, server_default=None)
            elif value is not None and populated:
                light = checks.light_table(table.name, name)
                op.execute(sa.update(light).values({name: ops.bind(value, column.type)}))

        self.add(
            Draft(
                "add_column",
                table.name,
                name,
                f"add column {table.name}.{name} ({what}{note})",
                ADD,
                native=native,
            )
        )

    def change_column(
        self, table: sa.Table, column: sa.Column[Any], live: LiveTable, source: str, has_id: bool
    ) -> None:
        old = live.columns[source].kind
        new = describe(column.type, self.dialect)
        if checks.same_storage(old, new, self.dialect):
            return
        name = column.name
        label = f"{table.name}.{name}"
        how = checks.conversion(old, new)
        if how is None:
            self.refuse(checks.unsupported(label, old, new))
            return
        if self.has_rows(table.name):
            for check in how.checks:
                problem = check(self.conn, self.now(table.name), source, has_id)
                if problem:
                    self.refuse(f"{label}: {problem}")
        self.drop_search_indexes(table.name, live, source, "retyped")
        new_type = checks.resolve(column.type, self.dialect)
        old_type = live.columns[source].type
        using = None
        if not self.sqlite:
            expression = (how.using or (lambda c: sa.cast(c, new_type)))(sa.column(name))
            using = str(
                expression.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True})
            )

        def native(op: Operations) -> None:
            op.alter_column(
                table.name, name, type_=new_type, existing_type=old_type, postgresql_using=using
            )

        def rebuild(job: ops.Rebuild) -> None:
            # The copy already has the new type, so Alembic copies the stored values as
            # they are (its CAST would turn SQLite dates into numbers); the fix-up after
            # converts those whose stored form changes.
            job.table.c[source].type = new_type
            job.batch.append(
                lambda batch: batch.alter_column(source, type_=new_type, existing_type=new_type)
            )
            if how.sqlite_fix is not None:
                light = checks.light_table(table.name, source)
                col = light.c[source]
                job.after.append(
                    sa.update(light).values({source: how.sqlite_fix(col)}).where(col.is_not(None))
                )

        self.add(
            Draft(
                "alter_type",
                table.name,
                name,
                f"change column {label} from {old} to {new}",
                ALTER,
                native=None if self.sqlite else native,
                rebuild=rebuild,
            )
        )

    def field_rules(
        self,
        table: str,
        spec: Field,
        old: Field | None,
        source: str,
        live: LiveTable,
        has_id: bool,
    ) -> None:
        """Checks that guard a field's own rules: required, choice options."""
        if old is None:
            return
        label = f"{table}.{spec.name}"
        kind = live.columns[source].kind
        populated = self.has_rows(table)
        if spec.required and not old.required:
            if populated:
                found = checks.missing_values(self.conn, self.now(table), source, kind, has_id)
                if found.count:
                    self.refuse(
                        f"{label}: {found.rows('have')} no value{found.where}; fill them in"
                        " before making the field required"
                    )
            self.add(
                Draft(
                    "set_required",
                    table,
                    spec.name,
                    f"make {label} required (checked: every row has a value; the record"
                    " service enforces it)",
                    REQUIRE,
                    native=lambda op: None,
                )
            )
        choices = ("choice", "multichoice")
        if spec.type not in choices or not populated:
            return
        multiple = spec.type == "multichoice"
        if old.type == spec.type:
            removed = set(old.choice_values) - set(spec.choice_values)
            if removed:
                found, used = checks.using_values(
                    self.conn, self.now(table), source, removed, multiple, has_id
                )
                if found.count:
                    options = f"option{'s' if len(used) != 1 else ''} {checks.quoted(used)}"
                    self.refuse(
                        f"{label}: {found.rows('use')} {options}, which the definitions"
                        f" remove{found.where}; change those rows first, or keep the option"
                    )
        elif not multiple:
            found, seen = checks.using_values(
                self.conn,
                self.now(table),
                source,
                spec.choice_values,
                multiple,
                has_id,
                outside=True,
            )
            if found.count:
                self.refuse(
                    f"{label}: {found.rows('hold')} values that are not options"
                    f" ({checks.quoted(seen)}){found.where}; change those rows first, or"
                    " add the options"
                )

    # --- indexes and constraints ----------------------------------------------------

    def keys(
        self,
        table: sa.Table,
        live: LiveTable,
        old_table: sa.Table | None,
        renames: dict[str, str],
        added: set[str],
        dropped: set[str],
        has_id: bool,
    ) -> None:
        wanted = wanted_things(table, self.dialect)
        current = [Thing(t.key.renamed(renames), t.name, t.constraint) for t in live.things]
        missing, spare = match(wanted, current)
        ours_keys: set[Key] = set()
        ours_names: set[str | None] = {t.name for t in wanted}
        if old_table is not None:
            previous = wanted_things(old_table, self.dialect)
            ours_keys = {t.key for t in previous}
            ours_names |= {t.name for t in previous}
        live_name = {new: old for old, new in renames.items()}
        for thing in spare:
            if set(thing.key.columns) & dropped:
                continue  # goes with its column
            if thing.key in ours_keys or (thing.name is not None and thing.name in ours_names):
                self.add(self.drop_key_draft(table.name, thing, live_name))
        for thing in missing:
            cols = thing.key.columns
            fresh = bool(set(cols) & added)
            if thing.key.kind == "fk":
                if fresh and self.sqlite:
                    continue  # made inline with its column
                assert isinstance(thing.obj, sa.ForeignKeyConstraint)
                self.add(
                    self.add_foreign_key_draft(
                        table.name, thing.obj, check=not fresh, live_name=live_name, has_id=has_id
                    )
                )
            else:
                self.add(self.add_index_draft(table.name, thing, fresh, live_name, has_id))

    def add_index_draft(
        self, table: str, thing: Thing, fresh: bool, live_name: dict[str, str], has_id: bool
    ) -> Draft:
        cols = list(thing.key.columns)
        unique = thing.key.kind == "unique"
        name = thing.name or ""
        if unique and not fresh and self.has_rows(table):
            sources = [live_name.get(c, c) for c in cols]
            found, values = checks.duplicates(self.conn, self.now(table), sources, has_id)
            if found.count:
                shown = checks.quoted(v[0] if len(v) == 1 else v for v in values)
                what = f"{table}.{cols[0]}" if len(cols) == 1 else f"{table} {thing.key}"
                self.refuse(
                    f"{what}: {found.rows('share')} a value with another row ({shown})"
                    f"{found.where}; make them unique before adding the constraint"
                )
        constraint = unique and thing.constraint and not self.sqlite

        def native(op: Operations) -> None:
            if constraint:
                op.create_unique_constraint(name, table, cols)
            else:
                op.create_index(name, table, cols, unique=unique)

        kind = "add_unique" if unique else "add_index"
        what = "unique constraint" if constraint else ("unique index" if unique else "index")
        return Draft(
            kind,
            table,
            cols[0] if len(cols) == 1 else None,
            f"add {what} {name} on {table} {thing.key}",
            ADD_KEY,
            native=native,
        )

    def add_foreign_key_draft(
        self,
        table: str,
        fk: sa.ForeignKeyConstraint,
        *,
        check: bool,
        live_name: dict[str, str] | None = None,
        has_id: bool = True,
    ) -> Draft:
        column = fk.column_keys[0]
        target = fk.referred_table.name
        name = fk.name if isinstance(fk.name, str) else None
        ondelete = fk.ondelete
        if check and self.has_rows(table):
            source = (live_name or {}).get(column, column)
            found = checks.orphans(self.conn, self.now(table), source, self.now(target), has_id)
            if found.count:
                self.refuse(
                    f"{table}.{column}: {found.rows('point')} to {target} records that do"
                    f" not exist{found.where}; clear or fix them first"
                )
        source_column = (live_name or {}).get(column, column)

        def native(op: Operations) -> None:
            op.create_foreign_key(name, table, target, [column], ["id"], ondelete=ondelete)

        def rebuild(job: ops.Rebuild) -> None:
            job.batch.append(
                lambda batch: batch.create_foreign_key(
                    name, target, [source_column], ["id"], ondelete=ondelete
                )
            )

        return Draft(
            "add_foreign_key",
            table,
            column,
            f"add foreign key {table}.{column} → {target}.id"
            f" (on delete {(ondelete or 'no action').lower()})",
            ADD_KEY,
            native=None if self.sqlite else native,
            rebuild=rebuild,
        )

    def drop_key_draft(self, table: str, thing: Thing, live_name: dict[str, str]) -> Draft:
        name = thing.name
        original = Key(
            thing.key.kind,
            tuple(live_name.get(c, c) for c in thing.key.columns),
            self.now(thing.key.target) if thing.key.target else None,
            thing.key.ondelete,
        )
        cols = thing.key.columns

        def rebuild(job: ops.Rebuild) -> None:
            ops.remove(job.table, lambda key: key == original)

        native: ops.Action | None
        if thing.key.kind == "fk":
            kind, what = "drop_foreign_key", "foreign key"
            native = ops.drop_constraint(name or "", table, "foreignkey")
        elif thing.constraint:
            kind, what = "drop_unique", "unique constraint"
            native = ops.drop_constraint(name or "", table, "unique")
        else:
            kind = "drop_unique" if thing.key.kind == "unique" else "drop_index"
            what = "unique index" if thing.key.kind == "unique" else "index"
            native = ops.drop_index(name or "", table)
        if name is None or (self.sqlite and thing.constraint):
            native = None  # SQLite alters constraints only by rebuilding the table
        return Draft(
            kind,
            table,
            cols[0] if len(cols) == 1 else None,
            f"drop {what} {name or '(unnamed)'} of {table} {thing.key}",
            DROP_KEY,
            native=native,
            rebuild=rebuild,
        )

    def drop_column_draft(self, table: str, column: str, live: LiveTable) -> Draft:
        found = checks.count_rows(
            self.conn, self.now(table), lambda t: t.c[column].is_not(None), False, [column]
        )
        values = f"{found.count:,} value{'s' if found.count != 1 else ''}"

        def rebuild(job: ops.Rebuild) -> None:
            ops.remove(job.table, lambda key: column in key.columns)
            job.batch.append(lambda batch: batch.drop_column(column))

        return Draft(
            "drop_column",
            table,
            column,
            f"drop column {table}.{column} ({values} archived first)",
            DROP,
            destructive=True,
            before=self.archive(table, column) if found.count else None,
            native=None if self.sqlite else (lambda op: op.drop_column(table, column)),
            rebuild=rebuild,
        )

    # --- archive --------------------------------------------------------------------

    def archive(self, table: str, column: str | None) -> ops.Action:
        """Copy a column's values (or whole rows) into heddle_archive first."""
        return ops.archive(self.live[table], table, column, self.sqlite, self.archive_hash)
