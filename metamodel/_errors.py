"""Definition errors are data: where, what, and how to fix it.

Every problem found while loading a package becomes a :class:`Problem`; the loader
collects them all and raises one :class:`DefinitionError` at the end, so an author sees
every mistake in one run::

    entities/contact.yaml:14:7: fields.birthday.type: unknown type 'dat' (did you mean 'date'?)
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Where a definition value came from: a package, a file and a 1-based position."""

    file: str
    line: int = 0
    col: int = 0
    package: str = ""

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True, slots=True)
class Problem:
    """One error in a definition, located as precisely as the loader can."""

    origin: Origin
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.origin}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def sort_key(self) -> tuple[int, str, int, int, str]:
        """Problems about a whole file or package (no line: a folder that does not exist,
        a package without its package document) first — they explain the others — then
        by file and position, the order an author reads and fixes them in."""
        whole = 0 if self.origin.line == 0 else 1
        return (whole, self.origin.file, self.origin.line, self.origin.col, self.message)


class DefinitionError(Exception):
    """Raised once per load with every problem found, root causes first (see
    :meth:`Problem.sort_key`)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems), key=Problem.sort_key))
        super().__init__(self.__str__())

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} error{'s' if count != 1 else ''} in definitions"
        return "\n".join([head, *(str(problem) for problem in self.problems)])


class UnknownName(KeyError):
    """A look-up of a name the Model (or a registry) does not have; the message suggests
    the closest."""

    def __init__(self, what: str, name: str, known: Any) -> None:
        hint = did_you_mean(name, known)
        self.message = f"unknown {what} '{name}'" + (f" ({hint})" if hint else "")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or '' when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


def show(value: Any) -> str:
    """A value as the author wrote it in YAML: true, null, 'text', 12."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def article(word: str) -> str:
    """``integer`` → ``an integer``; ``string`` → ``a string``."""
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def format_path(path: Sequence[str | int]) -> str:
    """``('fields', 'name', 'type')`` → ``fields.name.type``; list items as ``[2]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
