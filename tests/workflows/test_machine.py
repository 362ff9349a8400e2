"""The workflows layer without the web: the rules on the record service, firing with
actions, rollback when an action cannot run — on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine import SYSTEM, Actor, Records, build_tables
from engine.errors import ValidationFailed
from engine.query import parse_params
from metamodel import load_packages
from workflows import ActionUnavailable, StateMachines, attach

PACKAGE = """\
kind: package
name: tickets
---
kind: entity
name: ticket
fields:
  subject: {type: string, required: true}
  status: {type: choice, options: [open, doing, done], default: doing}
  log: {type: reference, to: note, on_delete: set_null}
---
kind: entity
name: note
fields:
  text: {type: string}
---
kind: workflow
name: ticket_flow
entity: ticket
field: status
states:
  - {name: open, initial: true}
  - {name: doing}
  - {name: done, final: true}
transitions:
  - {name: start, from: open, to: doing}
  - name: finish
    from: doing
    to: done
    actions:
      - {type: create, entity: note, link: log, values: {text: "=concat('done: ', subject)"}}
      - {type: enqueue, job: nope}
  - {name: reset, from: "*", to: open}
"""


@pytest.fixture
def records(db_engine: Engine, tmp_path: Path) -> Records:
    path = tmp_path / "tickets.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    model = load_packages([path])
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    records = Records(db_engine, model, tables=tables)
    attach(records.events)
    attach(records.events)  # a second call adds nothing
    return records


def test_the_initial_state_wins_over_the_fields_default(records: Records) -> None:
    user = Actor(roles=frozenset({"admin"}))
    assert records.create(user, "ticket", {"subject": "a"})["status"] == "open"
    with pytest.raises(ValidationFailed) as refused:
        records.create(user, "ticket", {"subject": "b", "status": "done"})
    assert list(refused.value.fields) == ["status"]
    # the platform's own writes (an import) may bring records in any state
    imported = records.create(SYSTEM, "ticket", {"subject": "c", "status": "done"}, trusted=True)
    assert imported["status"] == "done"


def test_a_star_transition_leaves_every_other_state(records: Records) -> None:
    machines = StateMachines(records)
    ticket = records.create(SYSTEM, "ticket", {"subject": "a"})
    names = [t["name"] for t in machines.available(SYSTEM, "ticket", ticket["id"])]
    assert names == ["start"]  # not reset: it would go nowhere
    ticket = machines.fire(SYSTEM, "ticket", ticket["id"], "start", version=1)
    names = [t["name"] for t in machines.available(SYSTEM, "ticket", ticket["id"])]
    assert names == ["finish", "reset"]


def test_an_action_that_cannot_run_refuses_the_whole_transition(records: Records) -> None:
    machines = StateMachines(records)
    ticket = records.create(SYSTEM, "ticket", {"subject": "a"})
    ticket = machines.fire(SYSTEM, "ticket", ticket["id"], "start", version=1)
    with pytest.raises(ActionUnavailable) as refused:
        machines.fire(SYSTEM, "ticket", ticket["id"], "finish", version=ticket["version"])
    assert refused.value.status == 409
    assert "no job named 'nope' is registered" in refused.value.message
    assert records.get(SYSTEM, "ticket", ticket["id"])["status"] == "doing"
    with records.transaction() as conn:
        assert (
            records.query(SYSTEM, "note", parse_params(records.model, "note", {}), conn=conn).rows
            == []
        )
    assert len(machines.history(SYSTEM, "ticket", ticket["id"])) == 1
