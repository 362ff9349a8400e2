"""Load definition packages: files → documents → overlays → schema → compiled Model.

A package is a folder holding a ``package.yaml`` (``kind: package``) and any number of
YAML or JSON files in sub-folders, each with one or more documents; or a single YAML file
whose documents include the package document. Folders named ``demo``, ``tests``,
``translations`` or starting with ``.`` or ``_`` hold no definitions and are skipped.

Every problem in every file is collected; :func:`load_packages` raises one
:class:`DefinitionError` listing them all, each as ``file:line:col: path: message``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ._compile import compile_documents_json, compile_model
from ._compile._context import Checker
from ._compile.reports import compile_report
from ._errors import (
    DefinitionError,
    Origin,
    Problem,
    article,
    did_you_mean,
    format_path,
)
from ._errors import show as _show
from ._installed import installed_packages, installed_path
from ._merge import Document, Patcher
from ._yaml import Location, SourceDocument, read_documents
from .model import Model, Report, thaw
from .schema import IDENTIFIER, KINDS, kind_schema, registries_version

SUFFIXES = (".yaml", ".yml", ".json")
SKIPPED_FOLDERS = frozenset({"demo", "tests", "translations", "node_modules"})


@dataclass(slots=True)
class PackageSource:
    """One package as read from disk: its own document and the others."""

    name: str
    path: Path
    header: SourceDocument
    documents: list[SourceDocument] = field(default_factory=list)

    @property
    def extends(self) -> str | None:
        value = self.header.value.get("extends")
        return value if isinstance(value, str) else None


def _display(path: Path) -> str:
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith((".", "_"))
        )
        found.extend(Path(folder) / n for n in sorted(names) if n.endswith(SUFFIXES))
    return found


def _locate(path: str | Path, problems: list[Problem]) -> Path | None:
    """The folder or file of a package given by path or by installed name (``crm``): an
    existing path comes first. Reports it (a root cause, sorted first) when neither."""
    root = Path(path)
    if root.exists():
        return root
    name = str(path)
    installed = installed_packages()
    if name in installed:
        found = installed_path(name)
        if found is not None and found.exists():
            return found
        problems.append(
            Problem(
                Origin(name),
                "",
                f"installed package '{name}' points at {installed[name]!r}, which is not"
                " a folder of definitions",
                "reinstall the distribution that provides it",
            )
        )
        return None
    message, hint = "no such file or folder", ""
    if re.fullmatch(IDENTIFIER, name):
        message += ", nor an installed package of that name"
        hint = did_you_mean(name, installed) or (
            f"installed packages: {', '.join(sorted(installed))}" if installed else ""
        )
    elif root.parent.is_dir():
        siblings = [str(root.parent / p.name) for p in root.parent.iterdir()]
        hint = did_you_mean(str(root), siblings)
    problems.append(Problem(Origin(_display(root)), "", message, hint))
    return None


def read_package(path: str | Path, problems: list[Problem]) -> PackageSource | None:
    """Read every document of the package at ``path`` (a folder, a file, or the name of an
    installed package); problems go to ``problems``."""
    root = _locate(path, problems)
    if root is None:
        return None
    where = Origin(_display(root))
    documents: list[SourceDocument] = []
    for file in _files(root):
        docs, found = read_documents(file, _display(file), "")
        problems.extend(found)
        documents.extend(docs)
    headers = [
        d for d in documents if isinstance(d.value, dict) and d.value.get("kind") == "package"
    ]
    if not headers:
        if root.is_dir() and not (documents or problems):
            problems.append(Problem(where, "", "no definition files (.yaml, .yml, .json) here"))
        elif not any(p.origin.file.startswith(_display(root)) for p in problems):
            problems.append(
                Problem(
                    where,
                    "",
                    "no package document: add package.yaml with 'kind: package' and a name",
                )
            )
        return None
    if len(headers) > 1:
        for extra in headers[1:]:
            problems.append(
                Problem(
                    extra.origin(()),
                    "kind",
                    f"a second package document (the first is at {headers[0].origin(())})",
                )
            )
    header = headers[0]
    name = header.value.get("name")
    if not isinstance(name, str):
        name = root.stem
    for doc in documents:
        doc.package = name
        for table in (doc.positions, doc.key_positions):
            for key, origin in table.items():
                table[key] = Origin(origin.file, origin.line, origin.col, name)
    others = [d for d in documents if all(d is not h for h in headers)]
    return PackageSource(name, root, header, others)


def load_packages(paths: Sequence[str | Path]) -> Model:
    """Load, check and compile the packages at ``paths`` (base first, overlays after).

    Raises :class:`DefinitionError` with every problem found.
    """
    problems: list[Problem] = []
    sources = [s for s in (read_package(p, problems) for p in paths) if s is not None]
    if not sources and not problems:
        problems.append(Problem(Origin("<packages>"), "", "no packages given"))
    model = None
    if sources:
        model = _Loader(problems).load(sources)
    if problems or model is None:
        raise DefinitionError(problems)
    return model


def model_from_json(text: str | bytes | Mapping[str, Any]) -> Model:
    """Recompile a Model from :meth:`Model.to_json`'s output (how the engine reads back
    the definitions each migration applied)."""
    data = json.loads(text) if isinstance(text, str | bytes) else text
    return compile_documents_json(data)


def report_from_value(model: Model, value: Mapping[str, Any]) -> Report:
    """Check and compile a report document given at run time — an ad-hoc report — against
    ``model``'s entities, as a report file would be; :class:`DefinitionError` listing every
    problem (``problem.path`` says where) otherwise.

    >>> report_from_value(model, {"entity": "opportunity", "group_by": ["stage"],
    ...                           "measures": [{"name": "deals", "aggregate": "count"}]})
    """
    problems: list[Problem] = []
    data = {"kind": "report", "name": "query", **value}
    where = Origin("<query>")
    _Loader(problems)._validate(data, "report", False, lambda _: where, lambda _: where)
    if problems:
        raise DefinitionError(problems)
    doc = Document("report", str(data["name"]), data, "", "<query>", {(): where})
    report = compile_report(Checker.of([*_entity_documents(model), doc], problems), doc)
    if report is None:
        raise DefinitionError(problems)
    return report


@lru_cache(maxsize=4)  # per Model: the latest few served
def _entity_documents(model: Model) -> tuple[Document, ...]:
    return tuple(
        Document("entity", d["name"], thaw(d), "", "<model>", {})
        for d in model.documents
        if d["kind"] == "entity"
    )


class _Loader:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        #: packages whose parent is not loaded: their patches cannot apply, and saying so
        #: for each would bury the one problem that explains them all
        self.orphans: set[str] = set()

    def problem(self, origin: Origin, path: Location | str, message: str, hint: str = "") -> None:
        text = path if isinstance(path, str) else format_path(path)
        self.problems.append(Problem(origin, text, message, hint))

    def load(self, sources: list[PackageSource]) -> Model | None:
        ancestors = self._check_packages(sources)
        documents: dict[tuple[str, str], Document] = {}
        patched: set[tuple[str, str]] = set()
        patcher = Patcher(ancestors, self.problems)
        for source in sources:
            bases, patches = self._sort(source)
            for base_doc in bases:
                key = (base_doc.value["kind"], base_doc.value["name"])
                if key in documents:
                    first = documents[key]
                    if first.package == source.name:
                        message = f"{key[0]} '{key[1]}' is already defined ({first.origin(())})"
                        hint = "rename one of them"
                    else:
                        message = (
                            f"{key[0]} '{key[1]}' is already defined in package "
                            f"'{first.package}' ({first.origin(())})"
                        )
                        hint = f"to change it from another package, write 'extend: {key[1]}'"
                    self.problem(base_doc.origin(("name",)), "name", message, hint)
                    continue
                if self._schema_ok(base_doc, base_doc.value["kind"], patch=False):
                    documents[key] = Document.from_source(base_doc, *key)
            for patch in patches:
                kind, target = patch.value["kind"], patch.value["extend"]
                if not self._schema_ok(patch, kind, patch=True):
                    continue
                base = documents.get((kind, target))
                if base is None and source.name in self.orphans:
                    continue
                if base is None:
                    names = [n for k, n in documents if k == kind]
                    self.problem(
                        patch.origin(("extend",)),
                        "extend",
                        f"cannot extend {kind} '{target}': no package loaded before "
                        f"'{source.name}' defines it",
                        did_you_mean(target, names),
                    )
                    continue
                if base.package != source.name and base.package not in ancestors[source.name]:
                    self.problem(
                        patch.origin(("extend",)),
                        "extend",
                        f"{kind} '{target}' belongs to package '{base.package}', which "
                        f"'{source.name}' does not extend",
                        f"add 'extends: {base.package}' to {source.name}'s package.yaml",
                    )
                    continue
                patcher.apply(base, patch)
                patched.add((kind, target))
        for key in sorted(patched):
            doc = documents[key]
            self._validate(doc.value, key[0], False, doc.origin, doc.key_origin)
        if self.problems:
            return None
        return compile_model(sources, list(documents.values()), self.problems)

    def _check_packages(self, sources: list[PackageSource]) -> dict[str, frozenset[str]]:
        ancestors: dict[str, frozenset[str]] = {}
        for source in sources:
            header = source.header
            self._validate(
                header.value,
                "package",
                False,
                header.origin,
                lambda p, h=header: h.key_positions.get(tuple(p)) or h.origin(p),
            )
            locales = header.value.get("locales")
            default = header.value.get("default_locale")
            if isinstance(locales, list) and isinstance(default, str) and default not in locales:
                self.problem(
                    header.origin(("default_locale",)),
                    "default_locale",
                    f"default locale '{default}' is not among the locales",
                    f"locales: {', '.join(map(str, locales))}",
                )
            if source.name in ancestors:
                self.problem(
                    header.origin(("name",)), "name", f"package '{source.name}' is loaded twice"
                )
                continue
            parent = source.extends
            if parent == source.name:
                self.problem(
                    header.origin(("extends",)),
                    "extends",
                    f"package '{parent}' cannot extend itself",
                )
                ancestors[source.name] = frozenset()
            elif parent is None:
                ancestors[source.name] = frozenset()
            elif parent in ancestors:
                ancestors[source.name] = ancestors[parent] | {parent}
            else:
                self.orphans.add(source.name)
                self.problem(
                    header.origin(("extends",)),
                    "extends",
                    f"package '{source.name}' extends '{parent}', which is not loaded before it",
                    f"list the '{parent}' package before '{source.name}' in HEDDLE_PACKAGES"
                    if parent not in {s.name for s in sources}
                    else f"put '{parent}' before '{source.name}' in the package list",
                )
                ancestors[source.name] = frozenset()
        return ancestors

    def _sort(self, source: PackageSource) -> tuple[list[SourceDocument], list[SourceDocument]]:
        """Split documents into definitions and patches, reporting malformed envelopes."""
        bases: list[SourceDocument] = []
        patches: list[SourceDocument] = []
        for doc in source.documents:
            value = doc.value
            if not isinstance(value, dict):
                self.problem(
                    doc.origin(()), "", "a document must be a mapping with 'kind' and 'name'"
                )
                continue
            kind = value.get("kind")
            if kind is None:
                self.problem(doc.origin(()), "", "missing 'kind'", f"one of: {', '.join(KINDS)}")
                continue
            if kind not in KINDS or kind == "package":
                hint = did_you_mean(str(kind), KINDS) or f"one of: {', '.join(KINDS[1:])}"
                self.problem(doc.origin(("kind",)), "kind", f"unknown kind '{kind}'", hint)
                continue
            has_name, has_extend = "name" in value, "extend" in value
            if has_name and has_extend:
                self.problem(
                    doc.origin(("extend",)),
                    "extend",
                    "a document either defines ('name') or patches ('extend'), not both",
                )
            elif has_extend:
                if self._identifier(doc, "extend"):
                    patches.append(doc)
            elif not has_name:
                self.problem(doc.origin(()), "", f"{kind} has no 'name'")
            elif self._identifier(doc, "name"):
                bases.append(doc)
        return bases, patches

    def _identifier(self, doc: SourceDocument, key: str) -> bool:
        value = doc.value[key]
        if isinstance(value, str) and re.match(IDENTIFIER, value) and len(value) <= 63:
            return True
        self.problem(doc.origin((key,)), key, _bad_name(value))
        return False

    def _schema_ok(self, doc: SourceDocument, kind: str, *, patch: bool) -> bool:
        before = len(self.problems)
        self._validate(
            doc.value,
            kind,
            patch,
            doc.origin,
            lambda p: doc.key_positions.get(tuple(p)) or doc.origin(p),
        )
        return len(self.problems) == before

    def _validate(self, value: Any, kind: str, patch: bool, origin: Any, key_origin: Any) -> None:
        # A compiled validator answers "valid?" an order of magnitude faster than jsonschema;
        # only a document that fails it is walked again for every error, explained.
        try:
            _fast_validator(kind, patch)(value)
            return
        except fastjsonschema.JsonSchemaException as exc:
            fallback = str(exc)
        found = False
        for error in _full_validator(kind, patch).iter_errors(value):
            for path, message, hint, at_key in _explain(error):
                where = key_origin(path) if at_key else origin(path)
                self.problem(where, path, message, hint)
                found = True
        if not found:  # pragma: no cover - the two validators disagree: still refuse
            self.problem(origin(()), (), fallback)


def _fast_validator(kind: str, patch: bool) -> Any:
    return _fast(kind, patch, registries_version())


def _full_validator(kind: str, patch: bool) -> Draft202012Validator:
    return _full(kind, patch, registries_version())


# Validators are compiled once per schema: per registries' version (a plugin registering
# a field type makes a new schema).
@cache
def _fast(kind: str, patch: bool, _version: tuple[int, ...]) -> Any:
    return fastjsonschema.compile(kind_schema(kind, patch=patch))


@cache
def _full(kind: str, patch: bool, _version: tuple[int, ...]) -> Draft202012Validator:
    return Draft202012Validator(kind_schema(kind, patch=patch))


def _bad_name(value: Any) -> str:
    if not isinstance(value, str):
        return f"a name must be text, got {_json_type(value)}"
    return (
        f"'{value}' is not a valid name: use lowercase letters, digits and underscores, "
        "starting with a letter (at most 63)"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


_TYPE_NAMES = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}

Explained = tuple[Location, str, str, bool]


def _values(options: list[Any]) -> str:
    shown = [str(o) for o in options]
    return ", ".join(shown) if len(shown) <= 8 else ", ".join(shown[:8]) + ", …"


def _branch_type(schema: Any) -> set[str]:
    """The JSON types a ``oneOf`` branch accepts ('' when it does not say)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    return {""}


def _fits(instance: Any, types: set[str]) -> bool:
    checks = {
        "string": isinstance(instance, str),
        "object": isinstance(instance, dict),
        "array": isinstance(instance, list),
        "boolean": isinstance(instance, bool),
        "integer": isinstance(instance, int) and not isinstance(instance, bool),
        "number": isinstance(instance, int | float) and not isinstance(instance, bool),
        "": True,
    }
    return any(checks.get(t, False) for t in types)


def _explain(error: ValidationError) -> Iterable[Explained]:
    """Turn one jsonschema error into messages that say how to fix it."""
    path: Location = tuple(error.absolute_path)
    validator: Any = error.validator
    instance: Any = error.instance
    schema: Any = error.schema
    expected: Any = error.validator_value
    if "propertyNames" in error.relative_schema_path:
        # A key of a mapping is wrong: point at the key itself.
        if validator == "pattern" and expected != IDENTIFIER and schema.get("description"):
            message = f"{instance!r} is not {schema['description']}"
        else:
            message = _bad_name(instance)
        yield (*path, instance), message, "", True
        return
    if validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                yield (*path, key), f"unknown property '{key}'", did_you_mean(key, allowed), True
        return
    if validator == "required":
        for key in expected:
            if isinstance(instance, dict) and key not in instance:
                kind = instance.get("type") if len(path) >= 2 and path[-2] == "fields" else None
                owner = f" ({article(kind)} field needs it)" if isinstance(kind, str) else ""
                yield path, f"missing required property '{key}'{owner}", "", False
        return
    if validator == "enum":
        if not all(isinstance(o, str) for o in expected) or isinstance(instance, str):
            what = "type" if path and path[-1] == "type" else "value"
            hint = did_you_mean(str(instance), expected) or f"one of: {_values(expected)}"
            yield path, f"unknown {what} {_show(instance)}", hint, False
        else:
            got = _json_type(instance)
            yield path, f"expected text, got {got}", f"one of: {_values(expected)}", False
        return
    if validator == "pattern":
        if expected == IDENTIFIER:
            yield path, _bad_name(instance), "", False
        else:
            form = schema.get("description") or f"matching {expected}"
            yield path, f"{instance!r} does not have the expected form ({form})", "", False
        return
    if validator == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        yield path, f"expected {wanted}, got {_json_type(instance)}", "", False
        return
    if validator in ("oneOf", "anyOf"):
        # Explain the branch made for this kind of value (the mapping form of a label,
        # say); when no branch takes this kind of value, say which kinds would do.
        branches = [_branch_type(b) for b in expected]
        fitting = [i for i, types in enumerate(branches) if _fits(instance, types)]
        if not fitting:
            kinds = list(dict.fromkeys(t for types in branches for t in sorted(types) if t))
            wanted = " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
            yield path, f"expected {wanted}, got {_json_type(instance)}", "", False
            return
        inner = [
            e
            for e in error.context or ()
            if e.relative_schema_path[0] in fitting and e.parent is error
        ]
        for sub_error in inner:
            yield from _explain(sub_error)
        if not inner:
            yield path, error.message, "", False
        return
    if validator in ("minItems", "minProperties", "minLength"):
        yield path, "must not be empty", "", False
        return
    if validator == "maxLength":
        title = schema.get("title", "text")
        yield path, f"{title} longer than {expected} characters", "", False
        return
    if validator == "uniqueItems":
        yield path, "items must not repeat", "", False
        return
    yield path, error.message, "", False
