"""The system tables of multi-step approvals; the workflows layer writes and reads them.

- ``heddle_approval``: one approval request, started by a transition on a record;
- ``heddle_approval_step``: the steps of a request that started (or were skipped);
- ``heddle_approval_task``: one approver's seat on a step (an escalation adds tasks to the
  seat it escalates, so the seat still counts once);
- ``heddle_approval_event``: the history: who did what, when, with which comment, on
  behalf of whom, and whom it concerned;
- ``heddle_approval_delegation``: "while I am away, this colleague approves for me".
"""

from __future__ import annotations

import sqlalchemy as sa

from .sqltypes import ID, JSON, UTCDateTime

APPROVAL_TABLE = "heddle_approval"
APPROVAL_STEP_TABLE = "heddle_approval_step"
APPROVAL_TASK_TABLE = "heddle_approval_task"
APPROVAL_EVENT_TABLE = "heddle_approval_event"
DELEGATION_TABLE = "heddle_approval_delegation"


def approval_tables(metadata: sa.MetaData, users: str) -> None:
    """Add the approval tables to ``metadata``; ``users`` is the user table's name."""
    user = f"{users}.id"
    sa.Table(
        APPROVAL_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("approval", sa.String(63), nullable=False),
        sa.Column("transition", sa.String(63), nullable=False),
        sa.Column("from_state", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("submitted_by", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Index("ix_heddle_approval_record", "entity", "record_id"),
        sa.Index("ix_heddle_approval_submitter", "submitted_by", "status"),
    )
    sa.Table(
        APPROVAL_STEP_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "approval_id",
            ID,
            sa.ForeignKey(f"{APPROVAL_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("needed", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime()),
    )
    sa.Table(
        APPROVAL_TASK_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "approval_id",
            ID,
            sa.ForeignKey(f"{APPROVAL_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "step_id",
            ID,
            sa.ForeignKey(f"{APPROVAL_STEP_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seat", sa.Integer(), nullable=False),
        sa.Column("approver_id", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("decided_by", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("comment", sa.Text()),
        sa.Column("reminded_at", UTCDateTime()),
        sa.Column("escalated_at", UTCDateTime()),
        sa.Index("ix_heddle_approval_task_pending", "status", "approver_id"),
    )
    sa.Table(
        APPROVAL_EVENT_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "approval_id",
            ID,
            sa.ForeignKey(f"{APPROVAL_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.String(63)),
        sa.Column("actor_id", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("on_behalf_of", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("comment", sa.Text()),
        sa.Column("recipients", JSON, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        DELEGATION_TABLE,
        metadata,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", ID, sa.ForeignKey(user, ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column(
            "delegate_id", ID, sa.ForeignKey(user, ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_by", ID, sa.ForeignKey(user, ondelete="SET NULL")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
