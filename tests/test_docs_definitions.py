"""The examples of docs/definitions.md load, and the reference names everything it should.

Every fenced block opened with ```yaml is an example:

- a block without a ``kind: package`` document gets ``kind: package / name: example``
  put in front of it, so short examples need not repeat the package header;
- a block whose first line is ``# invalid: <text>`` must fail to load, with a problem
  whose message contains ``<text>``;
- a line ``# --- overlay ---`` splits a block into a base package and overlay packages
  (each overlay brings its own ``kind: package`` with ``extends:``); they are loaded in
  order, base first, as HEDDLE_PACKAGES would list them.

Blocks of other languages (```sh, ```python, ```text) are not loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import metamodel
from metamodel import DefinitionError, Model, load_packages
from metamodel.expressions import FUNCTIONS
from metamodel.schema import definition_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "definitions.md"
HEADER = "kind: package\nname: example\n---\n"
OVERLAY_MARK = "# --- overlay ---"
INVALID = re.compile(r"^# invalid: (?P<expected>.+?)\s*$")
PACKAGE_DOC = re.compile(r"^kind:\s*package\s*$", re.MULTILINE)
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MIN_EXAMPLES = 40


@dataclass(frozen=True)
class Example:
    line: int  # of the opening fence, 1-based
    text: str

    @property
    def id(self) -> str:
        return f"{DOC.name}:{self.line}"

    @property
    def expected_error(self) -> str | None:
        first = self.text.split("\n", 1)[0]
        match = INVALID.match(first)
        return match["expected"] if match else None


def _doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def yaml_examples() -> list[Example]:
    found: list[Example] = []
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(_doc_text().splitlines(), start=1):
        match = FENCE.match(line)
        if opened is None:
            if match and match["lang"]:
                opened, body = (number, match["lang"]), []
            elif match:  # a bare ``` opens a block of no language: skip it too
                opened, body = (number, ""), []
            continue
        if match and not match["lang"]:
            if opened[1] == "yaml":
                found.append(Example(opened[0], "\n".join(body) + "\n"))
            opened = None
            continue
        body.append(line)
    assert opened is None, f"{DOC.name}:{opened[0]}: a fenced block is never closed"
    return found


EXAMPLES = yaml_examples() if DOC.exists() else []


def load_example(folder: Path, example: Example) -> Model:
    """Write the example's packages to files in ``folder`` and load them, base first."""
    base, *overlays = re.split(rf"^{re.escape(OVERLAY_MARK)}\s*$", example.text, flags=re.M)
    if not PACKAGE_DOC.search(base):
        base = HEADER + base
    paths = [folder / "base.yaml"]
    paths[0].write_text(base, encoding="utf-8")
    for number, overlay in enumerate(overlays, start=1):
        assert PACKAGE_DOC.search(overlay), (
            f"{example.id}: overlay {number} needs its own 'kind: package' with 'extends:'"
        )
        path = folder / f"overlay{number}.yaml"
        path.write_text(overlay, encoding="utf-8")
        paths.append(path)
    return load_packages(paths)


def test_the_reference_exists_and_has_enough_examples() -> None:
    assert DOC.exists(), f"{DOC} is missing"
    assert len(EXAMPLES) >= MIN_EXAMPLES, (
        f"{DOC.name} has {len(EXAMPLES)} yaml examples; it should have at least {MIN_EXAMPLES}"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example(tmp_path: Path, example: Example) -> None:
    expected = example.expected_error
    if expected is None:
        try:
            model = load_example(tmp_path, example)
        except DefinitionError as exc:
            pytest.fail(f"{example.id}: the example does not load:\n{exc}", pytrace=False)
        assert isinstance(model, Model)
        return
    with pytest.raises(DefinitionError) as caught:
        load_example(tmp_path, example)
    messages = [str(problem) for problem in caught.value.problems]
    assert any(expected in message for message in messages), (
        f"{example.id}: expected a problem containing {expected!r}, got:\n" + "\n".join(messages)
    )


def _mentioned(word: str, text: str) -> bool:
    inline = rf"`[^`\n]*\b{re.escape(word)}\b[^`\n]*`"
    return f"`{word}`" in text or re.search(inline, text) is not None


def test_every_field_type_has_its_own_section() -> None:
    text = _doc_text()
    missing = [
        kind
        for kind in metamodel.FIELD_TYPES
        if not re.search(rf"^###+ .*`{re.escape(kind)}`", text, flags=re.MULTILINE)
    ]
    assert not missing, f"{DOC.name} has no section for the field types {missing}"


def test_every_function_is_documented() -> None:
    text = _doc_text()
    missing = [name for name in FUNCTIONS if f"`{name}(" not in text]
    assert not missing, f"{DOC.name} does not document the functions {missing}"


def test_every_kind_and_every_property_is_mentioned() -> None:
    """What the schema accepts, the reference explains: packages, entities and fields."""
    text = _doc_text()
    defs = definition_schema()["$defs"]
    names = set(metamodel.KINDS)
    for definition in ("package", "entity", "field"):
        names |= set(defs[definition]["properties"])
    missing = sorted(name for name in names if not _mentioned(name, text))
    assert not missing, f"{DOC.name} never mentions {missing}"
