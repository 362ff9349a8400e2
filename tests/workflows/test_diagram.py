"""``heddle workflow diagram``: a workflow as a Mermaid state diagram."""

from __future__ import annotations

from pathlib import Path

import crm_definitions
from click.testing import CliRunner
from heddle.cli import main

from metamodel import load_packages
from workflows import mermaid

SALES = Path(__file__).resolve().parents[1] / "definitions" / "valid" / "sales"


def test_every_transition_and_end_is_drawn() -> None:
    text = mermaid(load_packages([SALES]).workflow("opportunity_flow"), "zh")
    assert text.splitlines() == [
        "stateDiagram-v2",
        '    state "Open" as open',
        '    state "Won" as won',
        '    state "Lost" as lost',
        "    [*] --> open",
        "    open --> won: 赢单",
        "    open --> lost: Lose",
        # '*': from every other state; the approval's outcomes as arrows of their own
        "    won --> open: Reopen (reopen_approval)",
        "    lost --> open: Reopen (reopen_approval)",
        "    open --> lost: reopen_approval rejected",
        "    won --> [*]",
        "    lost --> [*]",
    ]


def test_the_command_prints_it_and_suggests_names() -> None:
    runner = CliRunner()
    path = str(crm_definitions.PATH)
    result = runner.invoke(main, ["workflow", "diagram", "lead_lifecycle", path])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("stateDiagram-v2\n")
    assert '    state "Converted (locked)" as converted\n' in result.output
    assert "    qualified --> converted: Convert\n" in result.output
    result = runner.invoke(main, ["workflow", "diagram", "lead_lifecyle", path])
    assert result.exit_code == 2
    assert "unknown workflow 'lead_lifecyle' (did you mean 'lead_lifecycle'?)" in result.output
