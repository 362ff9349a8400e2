"""What every check of the compile step shares: the documents by kind, how to report a
problem at its place, and look-ups of names (entities, fields, roles, paths).

Each document kind is compiled by a module of its own (fields, entities, views,
processes, access) over one :class:`Checker`, which collects problems instead of raising:
an author sees every mistake in one run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from .._errors import Origin, Problem, did_you_mean, format_path
from .._merge import Document
from .._yaml import Location
from ..expressions import Expression, ExpressionError, parse
from ..fieldtypes import value_type
from ..model import SYSTEM_FIELDS

MAX_PATH_HOPS = 3
BUILTIN_ROLES = ("admin",)


class EntityScope:
    """The names an entity's expressions may use: its fields and paths through references."""

    def __init__(
        self,
        docs: Mapping[str, Mapping[str, Any]],
        entity: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.docs = docs
        self.entity = entity
        self.extra = extra or {}

    def options_of(self, path: tuple[str, ...]) -> list[str] | None:
        """The options of a choice or multichoice field at ``path`` (None for others)."""
        entity = self.entity
        spec: Mapping[str, Any] = {}
        for name in path:
            spec = self.docs.get(entity, {}).get("fields", {}).get(name) or {}
            entity = spec.get("to", "")
        if spec.get("type") not in ("choice", "multichoice"):
            return None
        return [o if isinstance(o, str) else o["value"] for o in spec.get("options", ())]

    def type_of(self, path: tuple[str, ...]) -> str:
        dotted = ".".join(path)
        if dotted in self.extra:
            return self.extra[dotted]
        entity = self.entity
        for hop, name in enumerate(path):
            doc = self.docs[entity]
            fields = doc.get("fields", {})
            last = hop == len(path) - 1
            if name not in fields:
                return self._system(doc, entity, name, hop, last, fields)
            spec = fields[name]
            kind = spec.get("type")
            if kind == "children":
                raise ExpressionError(
                    f"'{name}' holds child rows, which expressions cannot read",
                    "sum or count them with a rollup field",
                )
            if last:
                return value_type(kind, spec)
            if kind != "reference":
                raise ExpressionError(f"'{name}' is not a reference, so nothing can follow its '.'")
            if hop + 1 >= MAX_PATH_HOPS:
                raise ExpressionError(f"a path may cross at most {MAX_PATH_HOPS - 1} references")
            entity = spec.get("to", "")
            if entity not in self.docs:
                raise ExpressionError(f"'{name}' refers to unknown entity '{entity}'")
        raise ExpressionError("empty field path")  # pragma: no cover

    def _system(
        self,
        doc: Mapping[str, Any],
        entity: str,
        name: str,
        hop: int,
        last: bool,
        fields: Mapping[str, Any],
    ) -> str:
        system = SYSTEM_FIELDS.get(name)
        if system and last and (doc.get("ownable") or name not in ("owner_id", "team_id")):
            return system
        if system and name in ("owner_id", "team_id"):
            raise ExpressionError(
                f"'{entity}' has no {name}: its records have no owner",
                f"add 'ownable: true' to entity '{entity}'",
            )
        known = [*fields, *self.extra] if hop == 0 else list(fields)
        raise ExpressionError(
            f"unknown field '{name}'" + (f" of '{entity}'" if hop else ""),
            did_you_mean(name, known),
        )


@dataclass
class Checker:
    """The documents being compiled and the problems found so far."""

    problems: list[Problem]
    by_kind: dict[str, dict[str, Document]]

    @classmethod
    def of(cls, documents: Iterable[Document], problems: list[Problem]) -> Checker:
        by_kind: dict[str, dict[str, Document]] = {}
        for doc in documents:
            by_kind.setdefault(doc.kind, {})[doc.name] = doc
        return cls(problems, by_kind)

    def __post_init__(self) -> None:
        self.entity_docs = {n: d.value for n, d in self.by_kind.get("entity", {}).items()}
        self.role_names = {*BUILTIN_ROLES, *self.by_kind.get("role", {})}
        #: (entity, field) an overlay removed → where; and the places that still name it
        self.removed: dict[tuple[str, str], tuple[Origin, str]] = {
            (d.name, field): where
            for d in self.by_kind.get("entity", {}).values()
            for field, where in d.removed.items()
        }
        self.removed_uses: dict[tuple[str, str], list[tuple[Origin, str]]] = {}

    def docs(self, kind: str) -> dict[str, Document]:
        return self.by_kind.get(kind, {})

    # reporting ---------------------------------------------------------------------------

    def error(
        self, doc: Document, path: Location, message: str, hint: str = "", *, at_key: bool = False
    ) -> None:
        where = doc.key_origin(path) if at_key else doc.origin(path)
        self.problems.append(Problem(where, format_path(path), message, hint))

    def _removed_use(self, doc: Document, path: Location, entity: str, names: Iterable[str]) -> str:
        """Remember that ``path`` still names a field an overlay removed; returns a hint
        saying which ``remove`` took it away ('' when none did)."""
        hint = ""
        for name in names:
            if (entity, name) in self.removed:
                place = format_path(path) or "the document"
                if doc.kind != "entity" or doc.name != entity:
                    place = f"{doc.kind} '{doc.name}' {place}"
                uses = self.removed_uses.setdefault((entity, name), [])
                uses.append((doc.origin(path), place))
                origin, where = self.removed[(entity, name)]
                hint = f"package '{origin.package}' removes it: {where} at {origin}"
        return hint

    def report_removed(self) -> None:
        """Point each overlay's ``remove`` entry at what still names the removed field: the
        errors there are its consequences, and the fix belongs in the overlay."""
        for (entity, name), uses in sorted(self.removed_uses.items()):
            origin, path = self.removed[(entity, name)]
            count = len(uses)
            self.problems.append(
                Problem(
                    origin,
                    path,
                    f"fields.{name} of entity '{entity}' is removed, but "
                    f"{'one place still names' if count == 1 else f'{count} places still name'}"
                    f" it: {'; '.join(f'{place} ({at})' for at, place in sorted(uses))}",
                    "patch them in this overlay so that they no longer name it; a list of"
                    " names in a patch replaces the whole list",
                )
            )

    # look-ups ----------------------------------------------------------------------------

    def expression(
        self,
        doc: Document,
        path: Location,
        source: Any,
        entity: str,
        expect: str | None = "boolean",
        extra: Mapping[str, str] | None = None,
    ) -> Expression | None:
        if source is None or entity not in self.entity_docs:
            return None
        try:
            return parse(str(source), EntityScope(self.entity_docs, entity, extra), expect=expect)
        except ExpressionError as exc:
            code = re.sub(r"'[^']*'|\"[^\"]*\"", "", str(source))  # not in text literals
            words = sorted(set(re.findall(r"[a-z][a-z0-9_]*", code)))
            removed = self._removed_use(doc, path, entity, words)
            self.error(doc, path, exc.message, removed or exc.hint)
            return None

    def known_entity(self, doc: Document, path: Location, name: Any) -> bool:
        if name in self.entity_docs:
            return True
        self.error(doc, path, f"unknown entity '{name}'", did_you_mean(str(name), self.entity_docs))
        return False

    def known_field(
        self, doc: Document, path: Location, entity: str, name: Any, allow_system: bool = True
    ) -> bool:
        fields = self.entity_docs.get(entity, {}).get("fields", {})
        if name in fields or (allow_system and name in SYSTEM_FIELDS):
            return True
        removed = self._removed_use(doc, path, entity, [str(name)])
        self.error(
            doc,
            path,
            f"unknown field '{name}' of entity '{entity}'",
            removed or did_you_mean(str(name), fields),
        )
        return False

    def field_spec(self, entity: str, name: str) -> Mapping[str, Any] | None:
        spec: Mapping[str, Any] | None = (
            self.entity_docs.get(entity, {}).get("fields", {}).get(name)
        )
        return spec

    def field_type(self, entity: str, name: str) -> str:
        """The declared type of a field, or the type of a system column."""
        spec = self.field_spec(entity, name)
        if spec is not None:
            return str(spec["type"])
        return SYSTEM_FIELDS.get(name, "string")

    def value_type(self, entity: str, name: str) -> str:
        """A field's (or system column's) type as expressions see it."""
        spec = self.field_spec(entity, name)
        if spec is None:
            return SYSTEM_FIELDS.get(name, "string")
        return value_type(spec["type"], spec)

    def known_path(self, doc: Document, path: Location, entity: str, dotted: str) -> str | None:
        """Check a field path like ``account.grade``; returns its type."""
        try:
            return EntityScope(self.entity_docs, entity).type_of(
                tuple(dotted.lstrip("-").split("."))
            )
        except ExpressionError as exc:
            first = dotted.lstrip("-").split(".")[0]
            removed = self._removed_use(doc, path, entity, [first])
            self.error(doc, path, exc.message, removed or exc.hint)
            return None

    def known_role(self, doc: Document, path: Location, name: str) -> None:
        if name not in self.role_names:
            self.error(doc, path, f"unknown role '{name}'", did_you_mean(name, self.role_names))

    def unique_names(self, doc: Document, path: Location, items: Iterable[Any], what: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if name is None:
                continue
            if name in seen:
                self.error(
                    doc,
                    (*path, index, "name"),
                    f"duplicate {what} name '{name}' (first at {doc.origin((*path, seen[name]))})",
                )
            else:
                seen[name] = index


P = ParamSpec("P")
T = TypeVar("T")


def unless_problems(
    build: Callable[Concatenate[Checker, P], T | None],
) -> Callable[Concatenate[Checker, P], T | None]:
    """Compile to nothing when the checks made while building found a problem.

    Every problem of a document is reported, and a document with problems does not
    become part of the Model (the loader raises before a Model is used anyway)::

        @unless_problems
        def compile_role(checker: Checker, doc: Document) -> Role | None: ...
    """

    @functools.wraps(build)
    def wrapper(checker: Checker, *args: P.args, **kwargs: P.kwargs) -> T | None:
        before = len(checker.problems)
        result = build(checker, *args, **kwargs)
        return None if len(checker.problems) > before else result

    return wrapper  # type: ignore[return-value]  # wraps() keeps the signature


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each elementary cycle of a small directed graph, once, starting at its smallest name."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                cycle = trail[trail.index(nxt) :]
                start = cycle.index(min(cycle))
                canonical = tuple(cycle[start:] + cycle[:start])
                if canonical not in seen:
                    seen.add(canonical)
                    found.append(list(canonical))
            elif len(trail) < 50:
                visit(nxt, [*trail, nxt])

    for node in sorted(graph):
        visit(node, [node])
    return found
