"""The examples of docs/workflows.md load (or fail as they say), and its diagram is what
``heddle workflow diagram`` prints for the CRM.

A ```yaml block gets ``kind: package / name: example`` put in front of it; one whose first
line is ``# invalid: <text>`` must fail to load with a problem containing ``<text>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import crm_definitions
import pytest

from metamodel import DefinitionError, load_packages
from workflows import mermaid

DOC = Path(__file__).resolve().parents[1] / "docs" / "workflows.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
HEADER = "kind: package\nname: example\n---\n"


def _blocks(language: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(2))
        for m in BLOCK.finditer(text)
        if m.group(1) == language
    ]


@pytest.mark.parametrize(("line", "text"), _blocks("yaml"), ids=lambda v: str(v)[:20])
def test_the_example_loads(line: int, text: str, tmp_path: Path) -> None:
    package = tmp_path / "example.yaml"
    package.write_text(HEADER + text, encoding="utf-8")
    first = text.split("\n", 1)[0]
    if first.startswith("# invalid: "):
        with pytest.raises(DefinitionError) as caught:
            load_packages([package])
        expected = first.removeprefix("# invalid: ")
        messages = [p.message for p in caught.value.problems]
        assert any(expected in m for m in messages), f"workflows.md:{line}: {messages}"
    else:
        model = load_packages([package])
        assert model.workflows or model.automations, f"workflows.md:{line}: nothing to run"


def test_the_diagram_is_the_one_printed() -> None:
    (_, shown), = _blocks("mermaid")  # fmt: skip
    model = load_packages([crm_definitions.PATH])
    assert mermaid(model.workflow("case_lifecycle")) == shown


def test_there_are_examples() -> None:
    assert len(_blocks("yaml")) >= 4
