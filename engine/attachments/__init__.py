"""Attachments: files kept with a record, or held by one of its ``file`` fields.

The metadata (entity, record, field, name, content type, size, SHA-256, who uploaded it
and when) is a row of ``heddle_attachment``; the bytes are in a :class:`FileStore`
folder, addressed by their SHA-256. Reading a record's attachments needs the record's
read permission; adding or removing one, its update permission. A ``file`` field holds
attachment ids: :func:`attach` subscribes the checks that an id sent for a field names a
file uploaded for that field of that record (or staged for it by the same user, on a new
record's form), binds staged files to the record created, and archives a record's
attachments when the record is deleted.

>>> files = Attachments(records, FileStore(Path("instance/attachments")), max_bytes=10 << 20)
>>> row = files.add(actor, "contract", 7, "合同.pdf", pdf_bytes)
>>> files.list(actor, "contract", 7)[0]["filename"]
'合同.pdf'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Entity, Field

from ..context import Actor
from ..errors import Conflict, EngineError, NotFound, ValidationFailed
from ..events import EventBus, RecordEvent
from ._files import accepts, ascii_filename, clean_filename, served_type, size_text, sniff
from ._store import FileStore
from ._table import ATTACHMENT_TABLE, attachment_table

if TYPE_CHECKING:
    from ..records import Records

__all__ = [
    "ATTACHMENT_TABLE",
    "COLUMNS",
    "Attachments",
    "FileStore",
    "TooLarge",
    "ascii_filename",
    "attach",
    "attachment_ids",
    "attachment_table",
    "clean_filename",
    "served_type",
    "sniff",
]

#: The columns of an attachment as the service returns it.
COLUMNS = (
    "id",
    "entity",
    "record_id",
    "field",
    "filename",
    "content_type",
    "size",
    "sha256",
    "uploaded_by",
    "uploaded_at",
)


#: How long a file uploaded for a record not created yet waits to be used.
STAGED_FOR = dt.timedelta(days=1)


class TooLarge(EngineError):
    """An upload over the size limit (the platform's, or its field's ``max_size``)."""

    status = 413
    code = "file_too_large"


class Attachments:
    """The attachments of one record service's records, their bytes in ``store``."""

    def __init__(self, records: Records, store: FileStore, *, max_bytes: int) -> None:
        self.records = records
        self.store = store
        self.max_bytes = max_bytes
        self.table = records.tables.metadata.tables[ATTACHMENT_TABLE]
        self.users = records.tables.metadata.tables["heddle_user"]

    # --- reading ---------------------------------------------------------------------------

    def list(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        """The record's attachments, newest first, each with its uploader's name; those of
        fields hidden from the actor left out."""
        ent = self.records.entity(entity)
        with self.records.reader.connect() as conn:
            self._readable(conn, actor, ent, record_id)
            hidden = self.records.permissions.grant(actor, ent, "read").hidden
            t, u = self.table, self.users
            query = (
                sa.select(
                    *(t.c[name] for name in COLUMNS),
                    u.c.name.label("uploader"),
                    u.c.username.label("uploader_username"),
                )
                .select_from(t.outerjoin(u, u.c.id == t.c.uploaded_by))
                .where(t.c.entity == ent.name, t.c.record_id == record_id)
                .where(t.c.archived_at.is_(None))
                .order_by(t.c.id.desc())
            )
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["uploader"] = row["uploader"] or row.pop("uploader_username")
            row.pop("uploader_username", None)
        return [row for row in rows if row["field"] not in hidden]

    def get(
        self, actor: Actor, entity: str, record_id: int, attachment_id: int
    ) -> tuple[dict[str, Any], Path]:
        """One attachment of the record and the path of its bytes; :class:`NotFound` when
        it is not the record's, was removed, or its field is hidden from the actor."""
        ent = self.records.entity(entity)
        with self.records.reader.connect() as conn:
            self._readable(conn, actor, ent, record_id)
            row = self._row(conn, ent, record_id, attachment_id)
        if row["field"] in self.records.permissions.grant(actor, ent, "read").hidden:
            raise NotFound(f"no attachment with id {attachment_id} on this {ent.name}")
        path = self.store.path(row["sha256"])
        if not path.is_file():
            raise NotFound(f"the file of attachment {attachment_id} is missing from the file store")
        return row, path

    def named(
        self, actor: Actor, entity: str, record_id: int | None, ids: Iterable[int]
    ) -> dict[int, dict[str, Any]]:
        """The name and size of each of ``ids`` that a form or page of the record may
        show: files of the record, or staged by the actor (a form's ids are the user's
        input, so nobody learns the names of files elsewhere). The caller has read the
        record."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        t = self.table
        mine = t.c.record_id.is_(None) & (t.c.uploaded_by == actor.user_id)
        if record_id is not None:
            mine = mine | (t.c.record_id == record_id)
        query = sa.select(t.c.id, t.c.filename, t.c.size, t.c.record_id).where(
            t.c.id.in_(wanted), t.c.entity == entity, mine
        )
        with self.records.reader.connect() as conn:
            return {row.id: dict(row._mapping) for row in conn.execute(query)}

    def _readable(self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int) -> None:
        """NotFound for a record that is not there or out of the actor's sight."""
        self.records.access.readable(conn, actor, ent, record_id)
        if not self.records.access.exists(conn, ent, record_id):
            raise NotFound(f"no {ent.name} with id {record_id}")

    def _row(
        self, conn: sa.Connection, ent: Entity, record_id: int | None, attachment_id: int
    ) -> dict[str, Any]:
        t = self.table
        row = (
            conn.execute(
                sa.select(*(t.c[name] for name in COLUMNS)).where(
                    t.c.id == attachment_id,
                    t.c.entity == ent.name,
                    t.c.record_id == record_id
                    if record_id is not None
                    else t.c.record_id.is_(None),
                    t.c.archived_at.is_(None),
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"no attachment with id {attachment_id} on this {ent.name}")
        return dict(row)

    # --- writing ---------------------------------------------------------------------------

    def add(
        self,
        actor: Actor,
        entity: str,
        record_id: int | None,
        filename: str,
        data: bytes,
        *,
        field: str | None = None,
    ) -> dict[str, Any]:
        """Keep ``data`` as an attachment of the record (of its ``field`` when given).
        ``record_id`` None stages it for a record the actor is creating: it is bound when
        the record is created with the attachment's id in ``field``.

        Refused: over the size limit (:class:`TooLarge`, 413), a field that is not a
        writable ``file`` field or whose ``accept`` list does not take the file (422)."""
        ent = self.records.entity(entity)
        with self.records.engine.begin() as conn:
            # who may, first: a record out of sight is a 404 whatever the file is
            if record_id is None:
                self.records.access.grant(actor, ent, "create")
                self._forget_staged(conn, actor)
            else:
                self._readable(conn, actor, ent, record_id)
                self.records.access.writable(conn, actor, ent, record_id, "update")
            action = "update" if record_id is not None else "create"
            target = self._field(actor, ent, field, action) if field is not None else None
            limit = self.max_bytes
            if target is not None and target.max_size:
                limit = min(limit, int(target.max_size))
            if len(data) > limit:
                raise TooLarge(
                    f"the file is {size_text(len(data))}: at most {size_text(limit)} may be "
                    "attached",
                    {"file": [f"Larger than {size_text(limit)}."]},
                )
            name = clean_filename(filename)
            content_type = sniff(data, name)
            if target is not None and not accepts(target.accept or (), content_type, name):
                wanted = ", ".join(target.accept or ())
                raise ValidationFailed(
                    f"{target.name} takes {wanted}; this file is {content_type}",
                    {"file": [f"Not an accepted type ({wanted})."]},
                )
            digest = self.store.put(data)
            values = {
                "entity": ent.name,
                "record_id": record_id,
                "field": field,
                "filename": name,
                "content_type": content_type,
                "size": len(data),
                "sha256": digest,
                "uploaded_by": actor.user_id,
                "uploaded_at": dt.datetime.now(dt.UTC),
            }
            new_id = conn.execute(sa.insert(self.table).values(values)).inserted_primary_key
            assert new_id is not None
            return {"id": new_id[0], **values}

    def _forget_staged(self, conn: sa.Connection, actor: Actor) -> None:
        """Archive the actor's staged files left unused for :data:`STAGED_FOR` (a form
        abandoned after its upload), so staged rows do not pile up."""
        t = self.table
        conn.execute(
            sa.update(t)
            .where(t.c.record_id.is_(None), t.c.uploaded_by == actor.user_id)
            .where(t.c.uploaded_at < dt.datetime.now(dt.UTC) - STAGED_FOR)
            .where(t.c.archived_at.is_(None))
            .values(archived_at=dt.datetime.now(dt.UTC))
        )

    def _field(self, actor: Actor, ent: Entity, name: str, action: str) -> Field:
        """The file field ``name`` the actor may write (on ``action``: create, update)."""
        found = ent.fields.get(name)
        grant = self.records.permissions.grant(actor, ent, action)
        if found is None or found.type != "file" or name in grant.hidden:
            raise ValidationFailed(
                f"{ent.name} has no file field '{name}'", {"field": ["Not a file field."]}
            )
        if found.readonly or found.computed or name in grant.readonly:
            raise ValidationFailed(
                f"{ent.name}.{name} is read-only", {"field": ["Read-only field."]}
            )
        return found

    def remove(self, actor: Actor, entity: str, record_id: int, attachment_id: int) -> None:
        """Archive one attachment of the record (its bytes stay: a backup or another
        record may hold the same file). Refused (409) while a field of the record holds
        it: change the field first."""
        ent = self.records.entity(entity)
        with self.records.engine.begin() as conn:
            self.records.access.writable(conn, actor, ent, record_id, "update")
            row = self._row(conn, ent, record_id, attachment_id)
            if row["field"] is not None:
                record = conn.execute(
                    sa.select(self.records.tables.table(ent.name).c[row["field"]]).where(
                        self.records.tables.table(ent.name).c.id == record_id
                    )
                ).scalar()
                if attachment_id in attachment_ids(record):
                    raise Conflict(
                        f"the field {row['field']} holds this file: clear or replace it first"
                    )
            conn.execute(
                sa.update(self.table)
                .where(self.table.c.id == attachment_id)
                .values(archived_at=dt.datetime.now(dt.UTC))
            )


def attachment_ids(value: Any) -> list[int]:
    """The attachment ids a file field's value holds."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, int)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


# --- record events: file fields, deletes --------------------------------------------------


def _rows_of(event: RecordEvent) -> sa.Table:
    return event.records.tables.metadata.tables[ATTACHMENT_TABLE]


def _file_fields(event: RecordEvent) -> Iterable[Field]:
    ent = event.records.model.entity(event.entity)
    for found in ent.fields_of_type("file"):
        if event.action.endswith("create") or found.name in event.changed:
            yield found


def check_fields(event: RecordEvent) -> None:
    """Every id in a file field names an attachment uploaded for that field: of this
    record, or staged by this user for a new one."""
    if event.trusted:
        return
    errors: dict[str, list[str]] = {}
    t = _rows_of(event)
    for found in _file_fields(event):
        wanted = attachment_ids(event.values.get(found.name))
        if not wanted:
            continue
        mine = t.c.record_id.is_(None) & (t.c.uploaded_by == event.actor.user_id)
        if event.record_id is not None:
            mine = mine | (t.c.record_id == event.record_id)
        known = set(
            event.conn.execute(
                sa.select(t.c.id).where(
                    t.c.id.in_(wanted),
                    t.c.entity == event.entity,
                    t.c.field == found.name,
                    t.c.archived_at.is_(None),
                    mine,
                )
            ).scalars()
        )
        for missing in [i for i in wanted if i not in known]:
            errors.setdefault(found.name, []).append(
                f"No file {missing} uploaded for this field: upload it first."
            )
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", errors)


def bind_staged(event: RecordEvent) -> None:
    """Staged files named by the record's file fields now belong to it."""
    t = _rows_of(event)
    for found in _file_fields(event):
        wanted = attachment_ids(event.values.get(found.name))
        if wanted and event.record_id is not None:
            event.conn.execute(
                sa.update(t)
                .where(t.c.id.in_(wanted), t.c.record_id.is_(None), t.c.entity == event.entity)
                .values(record_id=event.record_id)
            )


def archive_with_record(event: RecordEvent) -> None:
    """A record deleted takes its attachments out of sight: archived, not erased."""
    t = _rows_of(event)
    event.conn.execute(
        sa.update(t)
        .where(t.c.entity == event.entity, t.c.record_id == event.record_id)
        .where(t.c.archived_at.is_(None))
        .values(archived_at=dt.datetime.now(dt.UTC))
    )


def move_to_survivor(event: RecordEvent) -> None:
    """A merge's loser's files (its fields' too) become the survivor's before the loser
    is deleted, so the survivor may keep the loser's file field values."""
    t = _rows_of(event)
    loser = (event.previous or {}).get("id")
    event.conn.execute(
        sa.update(t)
        .where(t.c.entity == event.entity, t.c.record_id == loser, t.c.archived_at.is_(None))
        .values(record_id=event.record_id)
    )


def attach(events: EventBus) -> None:
    """Subscribe the attachments' rules to a record service's events (once per bus)."""
    events.subscribe("before_create", check_fields)
    events.subscribe("before_update", check_fields)
    events.subscribe("after_create", bind_staged)
    events.subscribe("after_update", bind_staged)
    events.subscribe("after_delete", archive_with_record)
    events.subscribe("before_merge", move_to_survivor)
