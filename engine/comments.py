"""Comments on records: the discussion a record's timeline shows beside its history.

Who may do what follows the record: whoever may read a record may read its comments and
add one (a manager who can see a rep's deal can say something about it, a viewer too);
a record out of the actor's sight is a :class:`NotFound`, as :meth:`Records.get` says.
A comment is kept as written (plain text, at most :data:`MAX_LENGTH` characters); the
screens escape it. Its author may change its text (it then says when: ``edited_at``) and
delete it; an admin may delete anyone's. A merge moves the loser's comments to the
survivor, and they stay when their record is deleted (the audit history does too).

>>> comments = Comments(records)
>>> comments.add(actor, "account", 7, "Called: they want a quote by Friday")["body"]
'Called: they want a quote by Friday'
>>> [c["author"] for c in comments.list(actor, "account", 7)]
['Ann']
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .context import Actor
from .errors import Forbidden, NotFound, ValidationFailed
from .events import RecordEvent
from .tables import COMMENT_TABLE, USER_TABLE

if TYPE_CHECKING:
    from .records import Records

#: the longest comment, in characters
MAX_LENGTH = 10_000


class Comments:
    """The comments of the records of ``records``' Model."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.table = records.tables.metadata.tables[COMMENT_TABLE]
        self.users = records.tables.metadata.tables[USER_TABLE]

    def _sight(self, conn: sa.Connection, actor: Actor, entity: str, record_id: int) -> str:
        ent = self.records.entity(entity)
        access = self.records.access
        if not access.exists(conn, ent, record_id):
            raise NotFound(f"no {ent.name} with id {record_id}")
        access.readable(conn, actor, ent, record_id)
        return ent.name

    def list(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        *,
        limit: int = 100,
        conn: sa.Connection | None = None,
    ) -> list[dict[str, Any]]:
        """The record's latest ``limit`` comments, newest first, each with its author's
        name (``author``; None once the user is gone)."""
        t, u = self.table, self.users

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            name = self._sight(c, actor, entity, record_id)
            query = (
                sa.select(
                    t.c.id,
                    t.c.body,
                    t.c.author_id,
                    sa.func.coalesce(u.c.name, u.c.username).label("author"),
                    t.c.created_at,
                    t.c.edited_at,
                )
                .select_from(t.outerjoin(u, u.c.id == t.c.author_id))
                .where(t.c.entity == name, t.c.record_id == record_id)
                .order_by(t.c.id.desc())
                .limit(limit)
            )
            return [dict(row) for row in c.execute(query).mappings()]

        return self.records._read_only(conn, work)

    def add(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        body: Any,
        *,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """Add a comment; :class:`ValidationFailed` (``body``) when it is empty or too
        long, :class:`NotFound` when the record is out of sight."""
        text = _text(body)
        now = dt.datetime.now(dt.UTC)

        def work(c: sa.Connection) -> dict[str, Any]:
            name = self._sight(c, actor, entity, record_id)
            values = {
                "entity": name,
                "record_id": record_id,
                "body": text,
                "author_id": actor.user_id,
                "created_at": now,
            }
            new_id = c.execute(self.table.insert().values(values).returning(self.table.c.id))
            return {"id": new_id.scalar_one(), **values, "edited_at": None}

        return self.records._run(conn, work)

    def edit(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        comment_id: int,
        body: Any,
        *,
        conn: sa.Connection | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Change the text of a comment of the record: only its author may, while the
        record is in their sight. The comment as it is now, and its text before (whose
        mentions were told already)."""
        text = _text(body)
        now = dt.datetime.now(dt.UTC)

        def work(c: sa.Connection) -> tuple[dict[str, Any], str]:
            found = self._comment(c, actor, entity, record_id, comment_id)
            if found["author_id"] is None or found["author_id"] != actor.user_id:
                raise Forbidden("only its author may edit a comment")
            t = self.table
            c.execute(t.update().where(t.c.id == comment_id).values(body=text, edited_at=now))
            return {**found, "body": text, "edited_at": now}, str(found["body"])

        return self.records._run(conn, work)

    def delete(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        comment_id: int,
        *,
        conn: sa.Connection | None = None,
    ) -> None:
        """Delete a comment of the record: its author, or an admin, while the record is in
        their sight."""

        def work(c: sa.Connection) -> None:
            found = self._comment(c, actor, entity, record_id, comment_id)
            mine = found["author_id"] is not None and found["author_id"] == actor.user_id
            if not mine and not actor.is_admin:
                raise Forbidden("only its author or an admin may delete a comment")
            c.execute(self.table.delete().where(self.table.c.id == comment_id))

        self.records._run(conn, work)

    def _comment(
        self, conn: sa.Connection, actor: Actor, entity: str, record_id: int, comment_id: int
    ) -> dict[str, Any]:
        """A comment of the record, which the actor may see; :class:`NotFound` otherwise
        (a comment of another record too)."""
        name = self._sight(conn, actor, entity, record_id)
        t = self.table
        row = conn.execute(
            sa.select(t.c.id, t.c.entity, t.c.record_id, t.c.body, t.c.author_id,
                      t.c.created_at, t.c.edited_at)
            .where(t.c.id == comment_id, t.c.entity == name, t.c.record_id == record_id)
            .with_for_update()
        ).mappings().first()  # fmt: skip
        if row is None:
            raise NotFound(f"no comment {comment_id} on this {name}")
        return dict(row)


def _text(body: Any) -> str:
    """A comment's text, checked: :class:`ValidationFailed` (``body``) when it is empty or
    too long."""
    if not isinstance(body, str) or not body.strip():
        raise ValidationFailed("a comment needs some text", {"body": ["Write a comment."]})
    text = body.strip()
    if len(text) > MAX_LENGTH:
        raise ValidationFailed(
            f"a comment is at most {MAX_LENGTH} characters",
            {"body": [f"Longer than {MAX_LENGTH} characters."]},
        )
    return text


def move_on_merge(event: RecordEvent) -> None:
    """After a merge the loser's comments belong to the survivor (``after_merge``)."""
    if event.previous is None or event.record_id is None:
        return
    table = event.records.tables.metadata.tables[COMMENT_TABLE]
    event.conn.execute(
        table.update()
        .where(table.c.entity == event.entity, table.c.record_id == event.previous["id"])
        .values(record_id=event.record_id)
    )
