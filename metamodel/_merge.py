"""Overlay packages: patch a document from another package, remembering who set what.

A patch document (``extend: account``) merges into the document it names:

- mappings merge deeply, key by key;
- lists of mappings with a ``name`` (fields' options with a ``value``) merge item by item,
  new items appended in the patch's order;
- any other value replaces the old one;
- ``remove: [fields.fax, validations.old_rule]`` drops items first, so a patch can also
  replace an item wholesale by removing and re-adding it.

Every value keeps its :class:`Origin`. When two overlays that do not build on each other
set the same property to different values, that is a conflict, reported with both places.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import Origin, Problem, did_you_mean, format_path
from ._yaml import Location, SourceDocument

_PATCH_KEYS = ("kind", "extend", "remove")


@dataclass(slots=True)
class Document:
    """A definition document after overlays, with the origin of each of its values."""

    kind: str
    name: str
    value: dict[str, Any]
    package: str
    file: str
    origins: dict[Location, Origin] = field(default_factory=dict)
    key_origins: dict[Location, Origin] = field(default_factory=dict)
    #: Fields an overlay removed: name → where the ``remove`` entry is and its path
    #: (``remove[0]``), so that what still names the field can point at it.
    removed: dict[str, tuple[Origin, str]] = field(default_factory=dict)

    @classmethod
    def from_source(cls, source: SourceDocument, kind: str, name: str) -> Document:
        return cls(
            kind,
            name,
            source.value,
            source.package,
            source.file,
            dict(source.positions),
            dict(source.key_positions),
        )

    def origin(self, path: Location) -> Origin:
        """Where ``path`` (or its nearest located ancestor) was set."""
        path = tuple(path)
        while path:
            if path in self.origins:
                return self.origins[path]
            path = path[:-1]
        return self.origins.get((), Origin(self.file, 1, 1, self.package))

    def key_origin(self, path: Location) -> Origin:
        """Where the key of ``path`` was written, falling back to its value."""
        return self.key_origins.get(tuple(path)) or self.origin(path)


def _identity(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    if key == "value" and isinstance(item, str):
        return item
    return None


def _list_key(base: list[Any], patch: list[Any]) -> str | None:
    """The key two lists merge by, or None when the patch list replaces the base."""
    both = [*base, *patch]
    if both and all(isinstance(_identity(i, "name"), str) for i in both):
        return "name"
    if any(isinstance(i, Mapping) for i in patch) and all(
        isinstance(_identity(i, "value"), str) for i in both
    ):
        return "value"
    return None


def _fields(value: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = value.get("fields")
    return fields if isinstance(fields, Mapping) else {}


class Patcher:
    """Applies patch documents to a document, collecting problems instead of raising."""

    def __init__(self, ancestors: Mapping[str, frozenset[str]], problems: list[Problem]) -> None:
        self.ancestors = ancestors
        self.problems = problems

    def apply(self, doc: Document, patch: SourceDocument) -> None:
        value = patch.value
        before = set(_fields(doc.value))
        for index, dotted in enumerate(value.get("remove") or ()):
            self._remove(doc, patch, ("remove", index), dotted)
        for key, item in value.items():
            if key not in _PATCH_KEYS:
                self._merge(doc, patch, (key,), (key,), item)
        self._check_renames(doc, patch, before)

    def _check_renames(self, doc: Document, patch: SourceDocument, before: set[str]) -> None:
        """A field the patch renames from a name the document never had, close to a field
        the patch takes away, is a typo: the migration would drop that field's column.

        (A name far from every removed field may be the patch's own earlier field, which
        only the database knows; the migration planner checks those.)"""
        gone = before - set(_fields(doc.value))
        for name, spec in _fields(patch.value).items():
            old = spec.get("renamed_from") if isinstance(spec, Mapping) else None
            if not isinstance(old, str) or old in before:
                continue
            hint = did_you_mean(old, gone)
            if hint:
                where = ("fields", name, "renamed_from")
                self.problems.append(
                    Problem(
                        patch.origin(where),
                        format_path(where),
                        f"renamed_from '{old}' names no field of {doc.kind} '{doc.name}'"
                        f" before package '{patch.package}' changes it",
                        hint,
                    )
                )

    # removing -------------------------------------------------------------------------

    def _remove(self, doc: Document, patch: SourceDocument, where: Location, dotted: str) -> None:
        parts = dotted.split(".")
        if len(parts) == 1 and parts[0] in ("kind", "name"):
            self.problems.append(
                Problem(
                    patch.origin(where),
                    format_path(where),
                    f"cannot remove '{dotted}': a document's kind and name cannot be removed",
                )
            )
            return
        container: Any = doc.value
        path: list[str | int] = []
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(container, dict):
                if part not in container:
                    self._missing(doc, patch, where, dotted, part, list(container))
                    return
                if last:
                    del container[part]
                    self._drop_origins(doc, (*path, part))
                    if path == ["fields"]:
                        doc.removed[part] = (patch.origin(where), format_path(where))
                    return
                container = container[part]
                path.append(part)
            elif isinstance(container, list):
                names = [_identity(i, "name") or _identity(i, "value") for i in container]
                if part not in names:
                    self._missing(doc, patch, where, dotted, part, [n for n in names if n])
                    return
                index = names.index(part)
                if last:
                    del container[index]
                    self._shift_list(doc, tuple(path), index)
                    return
                container = container[index]
                path.append(index)
            else:
                self._missing(doc, patch, where, dotted, part, [])
                return

    def _missing(
        self,
        doc: Document,
        patch: SourceDocument,
        where: Location,
        dotted: str,
        part: str,
        choices: list[str],
    ) -> None:
        self.problems.append(
            Problem(
                patch.origin(where),
                format_path(where),
                f"cannot remove '{dotted}': {doc.kind} '{doc.name}' has no '{part}' there",
                did_you_mean(part, choices),
            )
        )

    @staticmethod
    def _drop_origins(doc: Document, prefix: Location) -> None:
        n = len(prefix)
        for table in (doc.origins, doc.key_origins):
            for path in [p for p in table if p[:n] == prefix]:
                del table[path]

    def _shift_list(self, doc: Document, list_path: Location, removed: int) -> None:
        n = len(list_path)
        self._drop_origins(doc, (*list_path, removed))
        for table in (doc.origins, doc.key_origins):
            moved = {}
            for path in [p for p in table if p[:n] == list_path and len(p) > n]:
                index = path[n]
                if isinstance(index, int) and index > removed:
                    moved[(*list_path, index - 1, *path[n + 1 :])] = table.pop(path)
            table.update(moved)

    # merging --------------------------------------------------------------------------

    def _merge(
        self, doc: Document, patch: SourceDocument, src: Location, dst: Location, new: Any
    ) -> None:
        parent = self._resolve(doc.value, dst[:-1])
        key = dst[-1]
        exists = (
            key in parent
            if isinstance(parent, dict)
            else isinstance(key, int) and key < len(parent)
        )
        old = parent[key] if exists else None
        if exists and isinstance(old, dict) and isinstance(new, dict):
            self._note_key(doc, patch, src, dst)
            for sub_key, sub_value in new.items():
                self._merge(doc, patch, (*src, sub_key), (*dst, sub_key), sub_value)
            return
        if exists and isinstance(old, list) and isinstance(new, list):
            by = _list_key(old, new)
            if by is not None:
                self._merge_list(doc, patch, src, dst, old, new, by)
                return
        if exists and old != new:
            self._check_conflict(doc, patch, src, dst)
        if exists:
            self._drop_origins(doc, dst)
        parent[key] = copy.deepcopy(new)
        self._copy_origins(doc, patch, src, dst)

    def _merge_list(
        self,
        doc: Document,
        patch: SourceDocument,
        src: Location,
        dst: Location,
        old: list[Any],
        new: list[Any],
        by: str,
    ) -> None:
        for index, item in enumerate(new):
            names = [_identity(i, by) for i in old]
            ident = _identity(item, by)
            if ident in names:
                at = names.index(ident)
                if isinstance(old[at], str) and isinstance(item, dict):
                    old[at] = {"value": old[at]}
                if isinstance(item, dict) and isinstance(old[at], dict):
                    for sub_key, sub_value in item.items():
                        self._merge(
                            doc, patch, (*src, index, sub_key), (*dst, at, sub_key), sub_value
                        )
                continue
            old.append(copy.deepcopy(item))
            self._copy_origins(doc, patch, (*src, index), (*dst, len(old) - 1))

    @staticmethod
    def _resolve(value: Any, path: Location) -> Any:
        for part in path:
            value = value[part]
        return value

    @staticmethod
    def _note_key(doc: Document, patch: SourceDocument, src: Location, dst: Location) -> None:
        if src in patch.key_positions and dst not in doc.key_origins:
            doc.key_origins[dst] = patch.key_positions[src]

    @staticmethod
    def _copy_origins(doc: Document, patch: SourceDocument, src: Location, dst: Location) -> None:
        n = len(src)
        for source, target in (
            (patch.positions, doc.origins),
            (patch.key_positions, doc.key_origins),
        ):
            for path, origin in source.items():
                if path[:n] == src:
                    target[(*dst, *path[n:])] = origin

    def _check_conflict(
        self, doc: Document, patch: SourceDocument, src: Location, dst: Location
    ) -> None:
        previous = doc.origin(dst)
        owner = previous.package
        if owner in (doc.package, patch.package) or owner in self.ancestors.get(patch.package, ()):
            return
        self.problems.append(
            Problem(
                patch.origin(src),
                format_path(dst),
                f"conflicting overlays: packages '{owner}' ({previous}) and '{patch.package}' "
                f"both change {doc.kind} '{doc.name}' here",
                f"change it in one of them, or make '{patch.package}' extend '{owner}'",
            )
        )
