"""Approvals tell people (workflows.approval_notices), on SQLite and PostgreSQL.

The approvers a step waits for are notified, and again on a reminder and an escalation;
the submitter hears the outcome, with a rejection's comment; the scheduler's minute sends
the reminders once, however often it is checked. The package is docs/workflows.md's
approval example (test_approvals.World).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from sqlalchemy.engine import Engine
from test_approvals import World

from engine.tables import NOTIFICATION_TABLE, OUTBOX_TABLE
from workflows import JobQueue
from workflows.approval_notices import enqueue_timers


@pytest.fixture
def world(db_engine: Engine, tmp_path: Path) -> World:
    return World(db_engine, tmp_path)


def _inbox(world: World, who: str) -> list[tuple[str, str, str]]:
    notes = world.records.tables.metadata.tables[NOTIFICATION_TABLE]
    with world.records.engine.connect() as conn:
        rows = conn.execute(
            sa.select(notes.c.source, notes.c.subject, notes.c.body)
            .where(notes.c.user_id == world.ids[who])
            .order_by(notes.c.id)
        ).all()
    return [(r.source, r.subject, r.body) for r in rows]


def test_approvers_hear_of_their_turn_and_the_submitter_of_the_outcome(world: World) -> None:
    world.submit(world.purchase(title="Chairs", amount="500"))
    assert _inbox(world, "mia") == [
        ("approval:requested", "Purchase “Chairs” waits for your approval", "Chairs")
    ]
    assert _inbox(world, "ann") == []  # the submitter waits quietly
    world.decide("mia", world.only("mia")["id"])
    assert _inbox(world, "ann") == [
        ("approval:completed", "Purchase “Chairs” was approved", "Chairs")
    ]

    desks = world.submit(world.purchase(title="Desks", amount="500"))
    approval = world.only("mia")
    world.approvals.reject(world.actors["mia"], approval["id"], comment="too dear")
    assert _inbox(world, "ann")[-1] == (
        "approval:rejected",
        "Purchase “Desks” was rejected",
        "too dear",
    )
    assert world.state(desks) == "rejected"
    assert _inbox(world, "fay") == []  # finance had no step on a small purchase


def test_the_schedulers_minute_sends_reminders_and_escalations_once(world: World) -> None:
    start = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
    queue = JobQueue(world.records.engine, lambda: world.records)  # no Redis: in-process
    with time_machine.travel(start, tick=False):
        world.submit(world.purchase(title="Lamps", amount="500"))
    later = start + dt.timedelta(days=1, minutes=5)
    with time_machine.travel(later, tick=False):
        assert enqueue_timers(queue, later) == 1
        assert enqueue_timers(queue, later) == 0  # the same minute: nothing more
    kinds = [source for source, _subject, _body in _inbox(world, "mia")]
    assert kinds == ["approval:requested", "approval:reminder"]
    latest = start + dt.timedelta(days=2, hours=1)
    with time_machine.travel(latest, tick=False):
        assert enqueue_timers(queue, latest) == 1
    assert [s for s, _t, _b in _inbox(world, "dan")] == ["approval:escalated"]
    outbox = world.records.tables.metadata.tables[OUTBOX_TABLE]
    with world.records.engine.connect() as conn:
        jobs = conn.execute(sa.select(outbox.c.job, outbox.c.status)).all()
    assert sorted(jobs) == [("approval_timers", "done"), ("approval_timers", "done")]
