"""The attachments' metadata table: one row per file uploaded to a record (or to one of
its ``file`` fields). The bytes are not here but in a :class:`~engine.attachments.FileStore`,
addressed by their SHA-256, so two uploads of one file are stored once.

A row with no ``record_id`` is *staged*: uploaded for a record not yet created (a new
record's form), bound to the record when it is created with the attachment's id in the
field. ``archived_at`` is set when the record is deleted, or the attachment removed.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..sqltypes import ID, UTCDateTime

ATTACHMENT_TABLE = "heddle_attachment"


def attachment_table(metadata: sa.MetaData, users: str) -> None:
    """Add the attachment table to ``metadata``; ``users`` is the user table's name."""
    sa.Table(
        ATTACHMENT_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID),  # none: staged, not yet bound to its record
        sa.Column("field", sa.String(63)),  # none: an attachment of the record itself
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", ID, sa.ForeignKey(f"{users}.id", ondelete="SET NULL")),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.Column("archived_at", UTCDateTime()),
        sa.Index("ix_heddle_attachment_record", "entity", "record_id", "id"),
        sa.Index("ix_heddle_attachment_sha256", "sha256"),
    )
