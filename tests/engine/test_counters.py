"""Autonumber counters on SQLite (rows of heddle_sequence) and PostgreSQL (a sequence per
counter, seeded from its row): numbers continue across both, and what a refused create
costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.context import Actor
from engine.counters import current, current_params, sequence_name
from engine.errors import Conflict, ValidationFailed
from engine.imports import export_all
from engine.records import Records, autonumber_text
from engine.tables import SEQUENCE_TABLE

COUNTER = "account.code:AC-{seq:04}"


def test_a_refused_create_leaves_a_gap_on_postgresql_only(records: Records, ann: Actor) -> None:
    first = records.create(ann, "account", {"name": "Acme", "email": "a@acme.example"})
    assert first["code"] == "AC-0001"
    with pytest.raises(ValidationFailed) as refused:  # the unique email, told by the INSERT
        records.create(ann, "account", {"name": "Acme 2", "email": "a@acme.example"})
    assert "email" in refused.value.fields
    after = records.create(ann, "account", {"name": "Beta"})
    # PostgreSQL's sequence does not take back the number of a rolled-back write
    assert after["code"] == ("AC-0003" if records.dialect == "postgresql" else "AC-0002")


def test_a_number_taken_already_is_a_conflict_not_a_crash(records: Records, ann: Actor) -> None:
    """Numbers stored ahead of the counter (rows written past the record service, or by a
    process still counting the old way during an upgrade): the create that draws one of
    them is refused as a conflict naming the field, not a server error."""
    ahead = records.create(ann, "account", {"name": "Written elsewhere"})
    table = records.tables.table("account")
    with records.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == ahead["id"]).values(code="AC-0002"))
    with pytest.raises(Conflict) as clash:
        records.create(ann, "account", {"name": "Two"})
    assert clash.value.status == 409 and clash.value.details["field"] == "code"
    if records.dialect == "postgresql":  # the sequence moved on: the next attempt passes
        assert records.create(ann, "account", {"name": "Two"})["code"] == "AC-0003"


def test_a_counter_numbered_before_continues(records: Records, ann: Actor) -> None:
    """A counter's row written before its first create (a deployment numbered in
    heddle_sequence before sequences, the demo data, a restore) seeds its sequence."""
    table = records.tables.metadata.tables[SEQUENCE_TABLE]
    with records.engine.begin() as conn:
        conn.execute(table.insert().values(name=COUNTER, value=41))
    assert records.create(ann, "account", {"name": "Acme"})["code"] == "AC-0042"
    assert records.create(ann, "account", {"name": "Beta"})["code"] == "AC-0043"
    with records.engine.connect() as conn:
        assert records.counters.values(conn)[COUNTER] == 43
        assert records.counters.last(conn, COUNTER) == 43


def test_advance_moves_a_counter_forward_only(records: Records, ann: Actor) -> None:
    records.create(ann, "account", {"name": "Acme"})
    with records.engine.begin() as conn:
        records.counters.advance(conn, COUNTER, 100)  # records numbered by other means
        records.counters.advance(conn, COUNTER, 50)  # never back
    assert records.create(ann, "account", {"name": "Beta"})["code"] == "AC-0101"
    with records.engine.begin() as conn:
        assert records.counters.reserve(conn, COUNTER, 3) == [102, 103, 104]
        assert records.counters.reserve(conn, COUNTER, 0) == []
    assert records.create(ann, "account", {"name": "Gamma"})["code"] == "AC-0105"


def test_postgresql_draws_from_a_sequence_without_touching_the_row(
    records: Records, ann: Actor
) -> None:
    """No row lock held to COMMIT: a create leaves the counter's row as it was."""
    if records.dialect != "postgresql":
        pytest.skip("SQLite counts in the row")
    for name in ("Acme", "Beta", "Gamma"):
        records.create(ann, "account", {"name": name})
    table = records.tables.metadata.tables[SEQUENCE_TABLE]
    with records.engine.connect() as conn:
        row = conn.scalar(sa.select(table.c.value).where(table.c.name == COUNTER))
        given = conn.scalar(sa.text(f"SELECT last_value FROM {sequence_name(COUNTER)}"))
    assert (row, given) == (0, 3)


def test_an_export_saves_what_the_sequence_gave(
    records: Records, ann: Actor, tmp_path: Path
) -> None:
    for name in ("Acme", "Beta"):
        records.create(ann, "account", {"name": name})
    export_all(records.engine, records.tables, tmp_path)
    lines = (tmp_path / f"{SEQUENCE_TABLE}.jsonl").read_text(encoding="utf-8").splitlines()
    saved = [json.loads(line) for line in lines]
    assert {"name": COUNTER, "value": 2} in saved


def test_a_creates_history_holds_the_number_it_was_given(records: Records, ann: Actor) -> None:
    """On PostgreSQL the create's statement writes the number the sequence gave, so its
    audit row adds it to the changes bound in Python: the same entry as on SQLite."""
    for name in ("Acme", "Beta"):
        created = records.create(ann, "account", {"name": name})
        (entry,) = records.history(ann, "account", created["id"])
        assert entry["action"] == "create" and entry["version"] == 1
        assert entry["changes"]["code"] == [None, created["code"]]
        assert entry["changes"]["name"] == [None, name]
    assert created["code"] == "AC-0002"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("AC-{seq:04}", 7),
        ("AC-{seq:04}", 123456),  # longer than the width: never cut
        ("CT-2026-{seq:05}/A", 42),
        ("{seq}", 9),
        ("N{seq:3}", 5),  # no zero: padded with spaces, as Python's format pads
        ("100%_{seq:02}'s", 3),  # SQL's special characters are only text
    ],
)
def test_the_number_written_in_sql_is_the_one_python_writes(
    pg_engine: Engine, text: str, number: int
) -> None:
    """engine.counters.current (a create's statement on PostgreSQL) against
    autonumber_text (SQLite, and a create the duplicate rules let through)."""
    counter = f"thing.code:{text}"
    name = sequence_name(counter)
    written = sa.select(current("n_")).scalar_subquery()
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SEQUENCE {name} START {number}"))
        conn.execute(sa.text(f"SELECT nextval('{name}')"))
        got = conn.scalar(sa.select(written), current_params("n_", counter, text))
    assert got == autonumber_text(text, number)
