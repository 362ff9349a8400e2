"""The system tables of jobs, automations and notifications. The workflows layer writes
and reads them; they are here so every Model's tables (and migrations) include them.

- ``heddle_outbox``: one row per job, written in the transaction of the change that
  caused it and relayed to RQ after the commit (``key`` is its idempotency key: a job
  added twice under one key is one job);
- ``heddle_automation_mark``: what a scheduled automation or a reminder has done, one row
  per automation, record and run slot, so a second run of the same slot does nothing;
- ``heddle_notification``: the in-app notifications of each user.
"""

from __future__ import annotations

import sqlalchemy as sa

from .sqltypes import ID, JSON, UTCDateTime

OUTBOX_TABLE = "heddle_outbox"
MARK_TABLE = "heddle_automation_mark"
NOTIFICATION_TABLE = "heddle_notification"


def job_tables(metadata: sa.MetaData) -> None:
    sa.Table(
        OUTBOX_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        # pending → queued (relayed to RQ) → running → done; or failed after the last try
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("enqueued_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("claim", sa.String(32)),  # who runs it now: a takeover voids the old run
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("error", sa.Text()),
        sa.Index("ix_heddle_outbox_due", "status", "run_after"),
    )
    sa.Table(
        MARK_TABLE,
        metadata,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("automation", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        NOTIFICATION_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", ID, sa.ForeignKey("heddle_user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(255), unique=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, server_default=""),
        sa.Column("entity", sa.String(63)),
        sa.Column("record_id", ID),
        sa.Column("source", sa.String(63)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime()),
        sa.Index("ix_heddle_notification_user", "user_id", "read_at", "id"),
    )
