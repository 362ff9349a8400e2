"""``heddle approvals run-due``: reminders and escalations from the command line, once."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from heddle.cli import main

from engine import Actor, Records, applied_model, connect
from workflows import StateMachines, attach

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
HEADER = "kind: package\nname: example\n---\n"


def docs_example() -> str:
    """The example of docs/workflows.md's Approvals section (tests/workflows use it too)."""
    section = DOC.read_text(encoding="utf-8").split("\n## Approvals", 1)[1]
    found = re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M)
    assert found
    return found.group(1)


def test_run_due_reminds_and_escalates_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HEDDLE_DATABASE_URL", url)
    package = tmp_path / "example.yaml"
    package.write_text(HEADER + docs_example(), encoding="utf-8")
    monkeypatch.setenv("HEDDLE_PACKAGES", str(package))
    runner = CliRunner()
    done = runner.invoke(main, ["approvals", "run-due"])
    assert done.exit_code == 1 and "run heddle migrate" in done.output
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    for name, role, manager in (
        ("dan", "manager", None),
        ("mia", "manager", "dan"),
        ("ann", "buyer", "mia"),
    ):
        args = ["user", "create", name, "--password", "long-enough", "--role", role]
        done = runner.invoke(main, args + (["--manager", manager] if manager else []))
        assert done.exit_code == 0, done.output
    engine = connect(url)
    model = applied_model(engine)
    assert model is not None
    records = Records(engine, model)
    attach(records.events)
    ann = Actor(user_id=3, roles=frozenset({"buyer"}))
    purchase = records.create(ann, "purchase", {"title": "Chairs", "amount": "300"})
    StateMachines(records).fire(ann, "purchase", purchase["id"], "submit", version=1)
    engine.dispose()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    done = runner.invoke(main, ["approvals", "run-due", "--now", later])
    assert done.output == "1 reminder sent, 1 escalation made\n", done.output
    done = runner.invoke(main, ["approvals", "run-due", "--now", later])
    assert done.output == "0 reminders sent, 0 escalations made\n"
    done = runner.invoke(main, ["approvals", "run-due", "--now", "Tuesday"])
    assert done.exit_code == 2 and "'Tuesday' is not an ISO date and time" in done.output
