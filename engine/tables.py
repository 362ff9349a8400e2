"""The Model as SQLAlchemy tables: one table per entity, typed columns, system tables.

Each field type's column comes from its :class:`~engine.fieldtypes.StorageType`; formula
and children fields have no column (a formula is computed when read, children live in the child
entity's table). Constraint and index names follow one convention, so migrations can find
them again.

>>> tables = build_tables(model)
>>> tables.table("account").c.grade.type
String(length=63)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Field, Model

from . import _job_tables
from ._job_tables import job_tables
from .approval_tables import approval_tables
from .attachments import _table as _attachment_table
from .fieldtypes import STORAGE_TYPES
from .sqltypes import ID, JSON, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

USER_TABLE = "heddle_user"
TEAM_TABLE = "heddle_team"
TOKEN_TABLE = "heddle_token"
HISTORY_TABLE = "heddle_schema_history"
AUDIT_TABLE = "heddle_audit"
SEQUENCE_TABLE = "heddle_sequence"
ARCHIVE_TABLE = "heddle_archive"
TRANSITION_TABLE = "heddle_transition"
SAVED_REPORT_TABLE = "heddle_saved_report"
IMPORT_RUN_TABLE = "heddle_import_run"
IMPORT_TEMPLATE_TABLE = "heddle_import_template"
SAVED_VIEW_TABLE = "heddle_saved_view"
COMMENT_TABLE = "heddle_comment"
POOL_LOG_TABLE = "heddle_pool_log"
OUTBOX_TABLE = _job_tables.OUTBOX_TABLE
MARK_TABLE = _job_tables.MARK_TABLE
NOTIFICATION_TABLE = _job_tables.NOTIFICATION_TABLE
DUPLICATE_KEY_TABLE = "heddle_duplicate_key"
DUPLICATE_RULE_TABLE = "heddle_duplicate_rule"
ATTACHMENT_TABLE = _attachment_table.ATTACHMENT_TABLE


@dataclass(frozen=True)
class Tables:
    """The tables of one Model version."""

    model: Model
    metadata: sa.MetaData
    by_entity: Mapping[str, sa.Table]

    def table(self, entity: str) -> sa.Table:
        return self.by_entity[entity]

    @property
    def system(self) -> Mapping[str, sa.Table]:
        return {name: t for name, t in self.metadata.tables.items() if name.startswith("heddle_")}


def system_tables(metadata: sa.MetaData) -> None:
    """The platform's own tables, the same for every Model."""
    sa.Table(
        TEAM_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("parent_id", ID, sa.ForeignKey(f"{TEAM_TABLE}.id", ondelete="SET NULL")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        USER_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(150), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("email", sa.String(255)),
        sa.Column("team_id", ID, sa.ForeignKey(f"{TEAM_TABLE}.id", ondelete="SET NULL")),
        sa.Column("manager_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("locale", sa.String(16), nullable=False, server_default="en"),
        sa.Column(
            "active", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.true()
        ),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        TOKEN_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
    )
    sa.Table(
        HISTORY_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("operations", JSON, nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
    )
    sa.Table(
        AUDIT_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", ID),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", JSON, nullable=False),
        # set on the entries a merge moved here from the record merged into this one: the
        # loser's history, shown with the survivor's but not replayed as its states
        sa.Column("merged_from", ID),
        sa.Index("ix_heddle_audit_record", "entity", "record_id", "id"),
    )
    sa.Table(
        SEQUENCE_TABLE,
        metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    sa.Table(
        ARCHIVE_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source_table", sa.String(63), nullable=False),
        sa.Column("source_column", sa.String(63)),
        sa.Column("record_id", ID),
        sa.Column("data", JSON, nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Index("ix_heddle_archive_source", "source_table", "source_column"),
    )
    sa.Table(  # a list's filters and sort saved by a user, for them or shared with a role
        SAVED_VIEW_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("owner_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE")),
        sa.Column("role", sa.String(63)),
        sa.Column("params", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("entity", "owner_id", "name"),
    )
    sa.Table(  # comments on records (engine.comments): the record's discussion
        COMMENT_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("edited_at", UTCDateTime()),  # the last edit of its text, if any
        sa.Index("ix_heddle_comment_record", "entity", "record_id", "id"),
    )
    sa.Table(  # records claimed from, assigned from and returned to public pools (engine.pools)
        POOL_LOG_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("pool_id", ID, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),  # claim, assign, return
        # the new owner (claim, assign) or the owner the record left (return)
        sa.Column("user_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("actor_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("note", sa.Text()),
        sa.Column("at", UTCDateTime(), nullable=False),
        # a user's claims of a day: the daily limit's count
        sa.Index("ix_heddle_pool_log_user", "user_id", "action", "at"),
        sa.Index("ix_heddle_pool_log_record", "entity", "record_id", "id"),
    )
    sa.Table(  # every workflow transition fired: the workflows layer writes and reads it
        TRANSITION_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("transition", sa.String(63), nullable=False),
        sa.Column("from_state", sa.String(63), nullable=False),
        sa.Column("to_state", sa.String(63), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("actor_id", ID),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Index("ix_heddle_transition_record", "entity", "record_id", "id"),
    )
    sa.Table(  # ad-hoc reports a user saved: report documents, compiled when run
        SAVED_REPORT_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column(
            "owner_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("role", sa.String(63)),  # shared with this role's users; none: private
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_heddle_saved_report_owner", "owner_id"),
        sa.Index("ix_heddle_saved_report_role", "role"),
    )
    sa.Table(  # imports and big exports, with their checkpoint: engine.imports writes it
        IMPORT_RUN_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),  # import, export
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("user_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False, server_default=""),
        sa.Column("content", sa.LargeBinary()),  # the file imported, or the export made
        sa.Column("total", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("done", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("report", JSON, nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_heddle_import_run_user", "user_id", "id"),
    )
    sa.Table(  # saved column mappings: engine.imports reads them
        IMPORT_TEMPLATE_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("user_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("mapping", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("entity", "name"),
    )
    approval_tables(metadata, USER_TABLE)
    job_tables(metadata)  # the outbox, automation marks and notifications
    _attachment_table.attachment_table(metadata, USER_TABLE)  # files of records: engine.attachments
    # The keys of every record under every duplicate rule (engine.dedupe): finding a
    # duplicate is one probe of ix_heddle_duplicate_key_lookup, whatever the table's size.
    sa.Table(
        DUPLICATE_KEY_TABLE,
        metadata,
        # an integer key of its own: SQLite's FTS5 trigram index (fuzzy rules) needs one
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("key_space", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("rule", sa.String(63), nullable=False),
        sa.Index(
            "ix_heddle_duplicate_key_lookup",
            "key_space",
            "key",
            "entity",
            "record_id",
            "rule",
            unique=True,
        ),
        sa.Index("ix_heddle_duplicate_key_record", "entity", "record_id"),
    )
    # Per rule, the fingerprint of what made its keys: a rule added or changed (or a
    # normalizer's new version) has its keys rebuilt by migrate.
    sa.Table(
        DUPLICATE_RULE_TABLE,
        metadata,
        sa.Column("entity", sa.String(63), primary_key=True),
        sa.Column("rule", sa.String(63), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("built_at", UTCDateTime(), nullable=False),
    )


_ON_DELETE = {"restrict": "RESTRICT", "cascade": "CASCADE", "set_null": "SET NULL"}


def field_column(entity: Entity, field: Field, model: Model) -> sa.Column[Any] | None:
    """The column that stores ``field`` (its type's :attr:`StorageType.column`), with its
    foreign key, or None."""
    builder = STORAGE_TYPES[field.type].column
    if builder is None:
        return None
    args: list[Any] = []
    if field.type == "reference" and field.to:
        target = model.entity(field.to).table
        args.append(sa.ForeignKey(f"{target}.id", ondelete=_ON_DELETE[field.on_delete]))
    elif field.type in ("user", "team") and not field.multiple:
        target = USER_TABLE if field.type == "user" else TEAM_TABLE
        args.append(sa.ForeignKey(f"{target}.id", ondelete="SET NULL"))
    default = sa.text("0") if field.type == "rollup" else None
    return sa.Column(
        field.name,
        builder(field, model),
        *args,
        nullable=True,
        server_default=default,
        index=(field.type in ("reference", "user", "team") and not field.multiple) or field.index,
        unique=field.unique or field.type == "autonumber",
    )


def entity_table(entity: Entity, model: Model, metadata: sa.MetaData) -> sa.Table:
    """The table of ``entity``: its system columns, a column per stored field, and its
    indexes — one per reference, user and team column (deletes of the rows they point to
    and joins need them) and per ``index: true`` field, unless an index the entity
    declares (``indexes:``) starts with that column already and so serves the same
    look-ups: a second index would only cost every write its upkeep."""
    columns: list[Any] = [
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("updated_by", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    ]
    if entity.ownable:
        columns += [
            sa.Column(
                "owner_id", ID, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="SET NULL"), index=True
            ),
            sa.Column(
                "team_id", ID, sa.ForeignKey(f"{TEAM_TABLE}.id", ondelete="SET NULL"), index=True
            ),
        ]
    for field in entity.fields.values():
        column = field_column(entity, field, model)
        if column is not None:
            columns.append(column)
    led = {index.fields[0] for index in entity.indexes}
    for column in columns:
        if column.index and column.name in led:
            column.index = None
    table = sa.Table(entity.table, metadata, *columns, info={"entity": entity.name})
    for index in entity.indexes:
        sa.Index(
            f"ix_{entity.table}_{index.name}", *index.fields, unique=index.unique, _table=table
        )
    return table


def build_tables(model: Model) -> Tables:
    """Tables for every entity of ``model`` plus the system tables."""
    metadata = sa.MetaData(naming_convention=NAMING)
    system_tables(metadata)
    tables = {entity.name: entity_table(entity, model, metadata) for entity in model}
    return Tables(model, metadata, tables)
