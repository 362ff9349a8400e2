"""Read YAML and JSON definition files into plain values, remembering where each came from.

PyYAML's composer (libyaml when available) builds a node tree with positions; we turn it
into dicts, lists and JSON scalars ourselves so that every value keeps its line and column,
duplicate keys are reported instead of silently overwritten, and hostile input (alias bombs,
recursive anchors, deep nesting) becomes a :class:`Problem` rather than an exception.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import Origin, Problem, format_path

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Location = tuple[str | int, ...]

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(slots=True)
class SourceDocument:
    """One document of a definition file, with the position of every value and key."""

    value: Any
    file: str
    package: str
    positions: dict[Location, Origin] = field(default_factory=dict)
    key_positions: dict[Location, Origin] = field(default_factory=dict)

    def origin(self, path: Location) -> Origin:
        """The position of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), Origin(self.file, 1, 1, self.package))


class _Abort(Exception):
    """Stops converting a document after a problem that makes the rest meaningless."""


class _Converter:
    def __init__(self, loader: Any, file: str, package: str, text: str = "") -> None:
        self.loader = loader
        self.lines = text.splitlines()
        self.file = file
        self.package = package
        self.nodes = 0
        self.problems: list[Problem] = []

    def origin(self, mark: Any) -> Origin:
        return Origin(self.file, mark.line + 1, mark.column + 1, self.package)

    def document(self, node: Any) -> SourceDocument:
        doc = SourceDocument(None, self.file, self.package)
        doc.value = self.convert(node, (), doc, set(), 0)
        return doc

    def fail(self, node: Any, message: str, path: Location = ()) -> _Abort:
        self.problems.append(Problem(self.origin(node.start_mark), format_path(path), message))
        return _Abort()

    def fail_at(self, origin: Origin, message: str, path: Location) -> _Abort:
        self.problems.append(Problem(origin, format_path(path), message))
        return _Abort()

    def alias_after(self, key_node: Any) -> Origin:
        """Where the ``*alias`` after a key is written (the composer keeps only the anchor's)."""
        line, col = key_node.end_mark.line, key_node.end_mark.column
        text = self.lines[line] if line < len(self.lines) else ""
        star = text.find("*", col)
        return Origin(self.file, line + 1, (star if star >= 0 else col) + 1, self.package)

    def convert(
        self, node: Any, path: Location, doc: SourceDocument, stack: set[int], depth: int
    ) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, f"document too large (more than {MAX_NODES} values)")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels", path)
        if id(node) in stack:
            raise self.fail(node, "recursive alias: a value cannot contain itself", path)
        doc.positions[path] = self.origin(node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        stack = stack | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self.fail(node, f"unsupported YAML tag {node.tag!r}", path)
            return [
                self.convert(item, (*path, index), doc, stack, depth + 1)
                for index, item in enumerate(node.value)
            ]
        if node.tag != _MAP_TAG:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}", path)
        own = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or exc
            raise self.fail(node, f"invalid merge key: {reason}", path) from None
        # Keys written in the mapping override keys merged in with `<<:`.
        merged = [pair for pair in node.value if all(pair is not o for o in own)]
        own_keys = {self.scalar(k, path) for k, _ in own if isinstance(k, yaml.ScalarNode)}
        merged = [
            pair
            for pair in merged
            if not (isinstance(pair[0], yaml.ScalarNode) and self.scalar(pair[0], path) in own_keys)
        ]
        result: dict[str, Any] = {}
        for key_node, value_node in [*own, *merged]:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be plain text, not a list or mapping", path)
            key = self.scalar(key_node, path)
            if not isinstance(key, str):
                # YAML 1.1 reads `on`, `yes`, `no` and numbers as non-text keys.
                raise self.fail(
                    key_node,
                    f"key {key_node.value!r} must be text (quote it: '{key_node.value}')",
                    path,
                )
            if key in result:
                first = doc.key_positions[(*path, key)]
                raise self.fail(
                    key_node, f"duplicate key '{key}' (first defined at line {first.line})", path
                )
            doc.key_positions[(*path, key)] = self.origin(key_node.start_mark)
            if id(value_node) in stack:
                raise self.fail_at(
                    self.alias_after(key_node),
                    "recursive alias: a value cannot contain itself",
                    (*path, key),
                )
            result[key] = self.convert(value_node, (*path, key), doc, stack, depth + 1)
        return result

    def scalar(self, node: Any, path: Location) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception:  # PyYAML's constructors raise assorted errors on bad tagged scalars
            if node.tag == "tag:yaml.org,2002:timestamp":
                return node.value  # an impossible date: the checks say why it is not a date
            raise self.fail(node, f"cannot read value {node.value!r}", path) from None
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()
        if value is None or isinstance(value, str | bool | int | float):
            return value
        raise self.fail(node, f"unsupported value {node.value!r} of type {node.tag}", path)


def read_documents(
    path: Path, display: str, package: str
) -> tuple[list[SourceDocument], list[Problem]]:
    """Every document in ``path`` (YAML may hold several, split by ``---``).

    Returns the documents read and the problems found; never raises for bad content.
    """
    origin = Origin(display, 1, 1, package)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [
            Problem(Origin(display, 0, 0, package), "", f"cannot read file: {exc.strerror}")
        ]
    if len(data) > MAX_FILE_BYTES:
        return [], [Problem(origin, "", f"file larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem(origin, "", f"not valid UTF-8 (byte {exc.start})")]
    documents, problems = _read_yaml(text, display, package)
    if problems and path.suffix == ".json":
        # JSON that YAML 1.1 rejects (tabs, odd escapes): read it plainly, without positions.
        try:
            value = json.loads(text)
        except ValueError as exc:
            line = getattr(exc, "lineno", 1)
            col = getattr(exc, "colno", 1)
            return [], [Problem(Origin(display, line, col, package), "", f"invalid JSON: {exc}")]
        doc = SourceDocument(value, display, package, {(): origin})
        return [doc], []
    return documents, problems


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    """PyYAML's problem, with its context ("while parsing a flow mapping that starts at…")."""
    mark = exc.problem_mark
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines):
        row = lines[mark.line]
        if mark.column < len(row) and row[mark.column] == "\t":
            return "tabs cannot be used for indentation (use spaces)"
    message = exc.problem or exc.context or "invalid YAML"
    context = exc.context_mark
    if exc.problem and exc.context and context is not None:
        message += (
            f" ({exc.context} that starts at line {context.line + 1}, column {context.column + 1})"
        )
    return message


def _read_yaml(text: str, file: str, package: str) -> tuple[list[SourceDocument], list[Problem]]:
    loader = _Loader(text)
    converter = _Converter(loader, file, package, text)
    documents: list[SourceDocument] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # an empty document
                continue
            try:
                documents.append(converter.document(node))
            except _Abort:
                pass
            except RecursionError:
                converter.problems.append(
                    Problem(Origin(file, 1, 1, package), "", "document nested too deeply")
                )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = _yaml_message(exc, text)
        converter.problems.append(
            Problem(Origin(file, line, col, package), "", f"invalid YAML: {message}")
        )
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        converter.problems.append(Problem(Origin(file, 1, 1, package), "", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    return documents, converter.problems
