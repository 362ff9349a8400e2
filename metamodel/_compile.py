"""Semantic checks and compilation: schema-valid documents → the immutable Model.

The JSON Schema checks each document alone; here we check what needs the whole package:
names that must exist (entities, fields, roles, states, reports), names that must not be
used (system columns, keywords), children that form a cycle, defaults outside their
options, expressions that do not type-check. Problems are collected, located through each
document's origins, and the Model is built only when there are none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import keyword
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._errors import Origin, Problem, article, did_you_mean, format_path
from ._errors import show as _show
from ._merge import Document
from ._yaml import Location
from .expressions import NUMERIC, Expression, ExpressionError, parse
from .model import (
    SYSTEM_FIELDS,
    Automation,
    Choice,
    Dashboard,
    DuplicateRule,
    Entity,
    Field,
    Index,
    Label,
    Model,
    Package,
    Permission,
    Report,
    Role,
    State,
    Transition,
    Validation,
    Workflow,
    freeze,
    parse_sort,
    value_type,
)
from .schema import ACTIONS

if TYPE_CHECKING:
    from .loader import PackageSource

TEXTUAL = frozenset({"string", "text", "email", "phone", "url"})
NUMBERS = frozenset({"integer", "decimal", "money", "percent"})
DATES = frozenset({"date", "datetime"})
COMPUTED = frozenset({"formula", "rollup", "autonumber"})
#: Types whose value a client gives directly (so they may have a default).
VALUES = (
    TEXTUAL | NUMBERS | DATES | {"boolean", "choice", "multichoice", "reference", "user", "team"}
)

#: Which field types each type-specific option applies to.
APPLIES_TO: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "options": frozenset({"choice", "multichoice", "formula"}),
        "to": frozenset({"reference"}),
        "on_delete": frozenset({"reference", "user", "team"}),
        "entity": frozenset({"children"}),
        "via": frozenset({"children", "rollup"}),
        "precision": frozenset({"decimal", "money", "percent"}),
        "scale": frozenset({"decimal", "money", "percent"}),
        "currency": frozenset({"money"}),
        "format": frozenset({"autonumber"}),
        "expression": frozenset({"formula"}),
        "returns": frozenset({"formula"}),
        "of": frozenset({"rollup"}),
        "aggregate": frozenset({"rollup"}),
        "field": frozenset({"rollup"}),
        "filter": frozenset({"rollup"}),
        "accept": frozenset({"file"}),
        "max_size": frozenset({"file"}),
        "multiple": frozenset({"file", "user", "team"}),
        "columns": frozenset({"children"}),
        "max_length": TEXTUAL,
        "min_length": TEXTUAL,
        "pattern": TEXTUAL,
        "min": NUMBERS | DATES,
        "max": NUMBERS | DATES,
        "searchable": TEXTUAL | {"autonumber", "choice"},
        "unique": TEXTUAL | NUMBERS | DATES | {"autonumber", "reference"},
        "default": VALUES,
        "required": VALUES | {"file", "children"},
        "index": TEXTUAL
        | NUMBERS
        | DATES
        | {"autonumber", "choice", "reference", "boolean", "user", "team"},
    }
)

#: Words a field or entity may not be called, with the reason.
EXPRESSION_WORDS = frozenset(
    {"true", "false", "null", "none"} | {k.lower() for k in keyword.kwlist}
)
RESERVED_FIELDS = frozenset(SYSTEM_FIELDS) | {"parent_id"}
RESERVED_ENTITIES = frozenset({"user", "team", "role", "permission", "session", "token", "schema"})
AUTONUMBER_TOKEN = re.compile(r"\{([^{}]*)\}")
AUTONUMBER_PARTS = re.compile(r"^(YYYY|YY|MM|DD|seq(:0?[1-9]\d?)?)$")
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
            spec = fields[name]
            kind = spec.get("type")
            if kind == "children":
                raise ExpressionError(
                    f"'{name}' holds child rows, which expressions cannot read",
                    "sum or count them with a rollup field",
                )
            if last:
                return value_type(
                    kind, spec.get("returns"), spec.get("aggregate"), bool(spec.get("multiple"))
                )
            if kind != "reference":
                raise ExpressionError(f"'{name}' is not a reference, so nothing can follow its '.'")
            if hop + 1 >= MAX_PATH_HOPS:
                raise ExpressionError(f"a path may cross at most {MAX_PATH_HOPS - 1} references")
            entity = spec.get("to", "")
            if entity not in self.docs:
                raise ExpressionError(f"'{name}' refers to unknown entity '{entity}'")
        raise ExpressionError("empty field path")  # pragma: no cover


class _Compiler:
    def __init__(self, documents: list[Document], problems: list[Problem]) -> None:
        self.problems = problems
        self.by_kind: dict[str, dict[str, Document]] = {}
        for doc in documents:
            self.by_kind.setdefault(doc.kind, {})[doc.name] = doc
        self.entity_docs = {n: d.value for n, d in self.by_kind.get("entity", {}).items()}
        self.role_names = {*BUILTIN_ROLES, *self.by_kind.get("role", {})}

    # helpers ----------------------------------------------------------------------------

    def error(
        self, doc: Document, path: Location, message: str, hint: str = "", *, at_key: bool = False
    ) -> None:
        where = doc.key_origin(path) if at_key else doc.origin(path)
        self.problems.append(Problem(where, format_path(path), message, hint))

    def expression(
        self,
        doc: Document,
        path: Location,
        source: Any,
        entity: str,
        expect: str | None = "boolean",
        extra: Mapping[str, str] | None = None,
    ) -> Expression | None:
        if source is None:
            return None
        if entity not in self.entity_docs:
            return None
        try:
            return parse(str(source), EntityScope(self.entity_docs, entity, extra), expect=expect)
        except ExpressionError as exc:
            self.error(doc, path, exc.message, exc.hint)
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
        self.error(
            doc,
            path,
            f"unknown field '{name}' of entity '{entity}'",
            did_you_mean(str(name), fields),
        )
        return False

    def field_type(self, entity: str, name: str) -> str:
        """The declared type of a field, or the type of a system column."""
        spec = self.entity_docs.get(entity, {}).get("fields", {}).get(name)
        if spec is not None:
            return str(spec["type"])
        return SYSTEM_FIELDS.get(name, "string")

    def value_type(self, entity: str, name: str) -> str:
        """A field's (or system column's) type as expressions see it."""
        spec = self.entity_docs.get(entity, {}).get("fields", {}).get(name)
        if spec is None:
            return SYSTEM_FIELDS.get(name, "string")
        return value_type(spec["type"], spec.get("returns"), spec.get("aggregate"))

    def known_path(self, doc: Document, path: Location, entity: str, dotted: str) -> str | None:
        """Check a field path like ``account.grade``; returns its type."""
        try:
            return EntityScope(self.entity_docs, entity).type_of(
                tuple(dotted.lstrip("-").split("."))
            )
        except ExpressionError as exc:
            self.error(doc, path, exc.message, exc.hint)
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

    # entities ---------------------------------------------------------------------------

    def check_entity_name(self, doc: Document) -> None:
        name = doc.name
        if name in RESERVED_ENTITIES or name.startswith("heddle"):
            self.error(
                doc,
                ("name",),
                f"'{name}' is reserved for the platform's own tables",
                f"choose another name, such as '{doc.package}_{name}'",
            )
        elif "__" in name:
            self.error(
                doc, ("name",), f"'{name}' may not contain '__' (the API uses it for operators)"
            )

    def check_field_name(self, doc: Document, name: str) -> bool:
        path = ("fields", name)
        if name in RESERVED_FIELDS:
            self.error(
                doc,
                path,
                f"'{name}' is a system column every record has; choose another name",
                at_key=True,
            )
        elif name in EXPRESSION_WORDS:
            self.error(
                doc,
                path,
                f"'{name}' is a keyword of the expression language; choose another name",
                at_key=True,
            )
        elif "__" in name:
            self.error(
                doc,
                path,
                f"'{name}' may not contain '__' (the API uses it for filter operators)",
                at_key=True,
            )
        else:
            return True
        return False

    def compile_field(self, doc: Document, name: str, spec: dict[str, Any]) -> Field:
        entity = doc.name
        kind = spec["type"]
        path = ("fields", name)
        for option in spec:
            allowed = APPLIES_TO.get(option)
            if allowed is not None and kind not in allowed:
                self.error(
                    doc,
                    (*path, option),
                    f"'{option}' does not apply to {article(kind)} field",
                    at_key=True,
                )
        options = tuple(self.choices(doc, path, spec.get("options") or ()))
        old_name = spec.get("renamed_from")
        if old_name is not None and old_name in doc.value["fields"]:
            self.error(
                doc,
                (*path, "renamed_from"),
                f"renamed_from '{old_name}' names a field that still exists",
                "a rename keeps the data of a field that is gone; remove one of them",
            )
        default, default_expr = self.default(doc, path, spec, kind, options)
        self.bounds(doc, path, spec, kind)
        if "pattern" in spec:
            problem = _regex_problem(spec["pattern"])
            if problem:
                self.error(doc, (*path, "pattern"), f"invalid regular expression: {problem}")
        if kind == "autonumber":
            self.autonumber(doc, (*path, "format"), spec["format"])
        if kind == "reference":
            self.known_entity(doc, (*path, "to"), spec["to"])
            if spec.get("on_delete") == "set_null" and spec.get("required"):
                self.error(
                    doc,
                    (*path, "on_delete"),
                    "a required reference cannot be cleared: use restrict or cascade",
                )
        rollup_filter = None
        if kind == "rollup":
            rollup_filter = self.rollup(doc, path, spec)
        formula = None
        if kind == "formula" and options and spec["returns"] != "string":
            self.error(
                doc, (*path, "options"), "only a formula that returns string may have options"
            )
        if kind == "formula":
            formula = self.expression(
                doc,
                (*path, "expression"),
                spec["expression"],
                entity,
                expect=value_type("formula", spec["returns"]),
            )
        conditions = {
            key: self.expression(doc, (*path, key), spec.get(key), entity)
            for key in ("visible_when", "required_when", "readonly_when")
        }
        return Field(
            name=name,
            type=kind,
            label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
            entity=entity,
            help=Label.of(spec["help"]) if "help" in spec else None,
            placeholder=Label.of(spec["placeholder"]) if "placeholder" in spec else None,
            required=bool(spec.get("required", False)),
            unique=bool(spec.get("unique", False)),
            default=default,
            default_expression=default_expr,
            min=spec.get("min"),
            max=spec.get("max"),
            min_length=spec.get("min_length"),
            max_length=spec.get("max_length", 255 if kind in TEXTUAL - {"text"} else None),
            pattern=spec.get("pattern"),
            index=bool(spec.get("index", False)),
            readonly=bool(spec.get("readonly", False)) or kind in COMPUTED,
            searchable=bool(spec.get("searchable", False)),
            visible_when=conditions["visible_when"],
            required_when=conditions["required_when"],
            readonly_when=conditions["readonly_when"],
            renamed_from=spec.get("renamed_from"),
            options=options,
            to=spec.get("to"),
            on_delete=spec.get("on_delete", "restrict" if kind == "reference" else "set_null"),
            children=spec.get("entity"),
            via=spec.get("via"),
            precision=spec.get(
                "precision",
                18 if kind in ("money", "decimal") else (9 if kind == "percent" else None),
            ),
            scale=spec.get(
                "scale", 2 if kind in ("money", "percent") else (6 if kind == "decimal" else None)
            ),
            currency=spec.get("currency"),
            format=spec.get("format"),
            expression=formula,
            returns=spec.get("returns"),
            of=spec.get("of"),
            aggregate=spec.get("aggregate"),
            rollup_field=spec.get("field"),
            filter=rollup_filter,
            accept=tuple(spec.get("accept") or ()),
            max_size=spec.get("max_size"),
            multiple=bool(spec.get("multiple", False)),
            columns=tuple(spec.get("columns") or ()),
        )

    def choices(self, doc: Document, path: Location, options: Iterable[Any]) -> Iterable[Choice]:
        seen: set[str] = set()
        for index, option in enumerate(options):
            item = {"value": option} if isinstance(option, str) else option
            value = item["value"]
            if value in seen:
                self.error(doc, (*path, "options", index), f"option '{value}' is listed twice")
                continue
            seen.add(value)
            description = Label.of(item["description"]) if "description" in item else None
            yield Choice(value, Label.of(item.get("label"), value), item.get("color"), description)

    def default(
        self,
        doc: Document,
        path: Location,
        spec: dict[str, Any],
        kind: str,
        options: tuple[Choice, ...],
    ) -> tuple[Any, Expression | None]:
        if "default" not in spec:
            return None, None
        value = spec["default"]
        where = (*path, "default")
        if isinstance(value, str) and value.startswith("="):
            expected = value_type(kind, multiple=bool(spec.get("multiple")))
            expr = self.expression(doc, where, value[1:], doc.name, expect=expected)
            return None, expr
        values = [c.value for c in options]
        if kind == "choice":
            if value not in values:
                self.error(
                    doc,
                    where,
                    f"default {_show(value)} is not one of the options",
                    did_you_mean(str(value), values) or f"options: {', '.join(values)}",
                )
        elif kind == "multichoice":
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if item not in values:
                    self.error(
                        doc,
                        (*where, index) if isinstance(value, list) else where,
                        f"default {_show(item)} is not one of the options",
                        did_you_mean(str(item), values) or f"options: {', '.join(values)}",
                    )
            value = tuple(items)
        elif kind in ("reference", "user", "team"):
            self.error(
                doc,
                where,
                f"{article(kind)} field takes no constant default: ids differ between databases",
                "write an expression such as '=current_user()'"
                if kind != "reference"
                else "leave it empty, or set it in an automation",
            )
        elif kind in DATES and isinstance(value, str) and _date_error(kind, value):
            self.error(
                doc, where, f"{_show(value)} is not a valid {kind} ({_date_error(kind, value)})"
            )
        elif not _constant_fits(kind, value):
            self.error(
                doc,
                where,
                f"default {_show(value)} is not a valid {kind}",
                "write a constant of the field's type, or '=expression'",
            )
        return value, None

    def bounds(self, doc: Document, path: Location, spec: dict[str, Any], kind: str) -> None:
        low, high = spec.get("min"), spec.get("max")
        for key, value in (("min", low), ("max", high)):
            if value is not None and kind in (NUMBERS | DATES) and not _constant_fits(kind, value):
                self.error(doc, (*path, key), f"{key} {_show(value)} is not a valid {kind}")
                return
        both = low is not None and high is not None and kind in NUMBERS | DATES
        if both and _as_comparable(kind, low) > _as_comparable(kind, high):
            self.error(doc, (*path, "min"), f"min {_show(low)} is greater than max {_show(high)}")
        lo, hi = spec.get("min_length"), spec.get("max_length")
        if lo is not None and hi is not None and lo > hi:
            self.error(
                doc, (*path, "min_length"), f"min_length {lo} is greater than max_length {hi}"
            )

    def autonumber(self, doc: Document, path: Location, text: str) -> None:
        parts = AUTONUMBER_TOKEN.findall(text)
        for part in parts:
            if not AUTONUMBER_PARTS.match(part):
                self.error(
                    doc,
                    path,
                    f"unknown placeholder '{{{part}}}' in autonumber format",
                    "use {YYYY}, {YY}, {MM}, {DD} and {seq} or {seq:05}",
                )
        if not any(p.startswith("seq") for p in parts):
            self.error(
                doc,
                path,
                "an autonumber format needs a {seq} placeholder",
                "for example 'CT-{YYYY}-{seq:05}'",
            )

    def rollup(self, doc: Document, path: Location, spec: dict[str, Any]) -> Expression | None:
        source = spec["of"]
        if not self.known_entity(doc, (*path, "of"), source):
            return None
        fields = self.entity_docs[source].get("fields", {})
        via = spec["via"]
        link = fields.get(via)
        if link is None:
            self.error(
                doc,
                (*path, "via"),
                f"unknown field '{via}' of entity '{source}'",
                did_you_mean(via, fields),
            )
        elif link.get("type") != "reference" or link.get("to") != doc.name:
            self.error(
                doc,
                (*path, "via"),
                f"'{source}.{via}' must be a reference to '{doc.name}' for this rollup",
            )
        aggregate = spec["aggregate"]
        target = spec.get("field")
        if target is None and aggregate != "count":
            self.error(doc, path, f"{article(aggregate)} rollup needs 'field'")
        elif target is not None and self.known_field(doc, (*path, "field"), source, target):
            kind = self.value_type(source, target)
            if aggregate in ("sum", "avg") and kind not in NUMERIC:
                self.error(doc, (*path, "field"), f"cannot {aggregate} '{target}', {article(kind)}")
            elif aggregate in ("min", "max") and kind not in NUMERIC:
                self.error(
                    doc,
                    (*path, "field"),
                    f"a rollup's {aggregate} needs a number, '{target}' is {article(kind)}",
                )
        return self.expression(doc, (*path, "filter"), spec.get("filter"), source)

    def check_formula_cycles(self, doc: Document, fields: Mapping[str, Field]) -> None:
        graph: dict[str, set[str]] = {}
        for name, field in fields.items():
            if field.expression is not None:
                graph[name] = {
                    path[0]
                    for path in field.expression.fields
                    if len(path) == 1 and fields.get(path[0], field).type == "formula"
                }
        for cycle in _cycles(graph):
            self.error(
                doc,
                ("fields", cycle[0], "expression"),
                f"formula fields depend on each other: {' → '.join([*cycle, cycle[0]])}",
            )

    def compile_entity(self, doc: Document, prefix: str) -> Entity | None:
        value = doc.value
        name = doc.name
        before = len(self.problems)
        self.check_entity_name(doc)
        fields: dict[str, Field] = {}
        for field_name, spec in value["fields"].items():
            if self.check_field_name(doc, field_name):
                fields[field_name] = self.compile_field(doc, field_name, spec)
        self.check_formula_cycles(doc, fields)
        for key in ("title_field",):
            if key in value:
                self.known_field(doc, (key,), name, value[key])
        search = list(value.get("search_fields") or ())
        for index, field_name in enumerate(search):
            if self.known_field(
                doc, ("search_fields", index), name, field_name, allow_system=False
            ):
                kind = value["fields"][field_name]["type"]
                if kind not in APPLIES_TO["searchable"]:
                    self.error(
                        doc,
                        ("search_fields", index),
                        f"cannot search {article(kind)} field '{field_name}'",
                    )
        search += [f.name for f in fields.values() if f.searchable and f.name not in search]
        validations = []
        self.unique_names(doc, ("validations",), value.get("validations", ()), "validation")
        for index, spec in enumerate(value.get("validations", ())):
            where = ("validations", index)
            rule = self.expression(doc, (*where, "rule"), spec["rule"], name)
            when = self.expression(doc, (*where, "when"), spec.get("when"), name)
            for i, field_name in enumerate(spec.get("fields", ())):
                self.known_field(doc, (*where, "fields", i), name, field_name)
            if rule is not None:
                validations.append(
                    Validation(
                        spec["name"],
                        rule,
                        Label.of(spec["message"]),
                        when,
                        tuple(spec.get("fields", ())),
                    )
                )
        rules = []
        self.unique_names(
            doc, ("duplicate_rules",), value.get("duplicate_rules", ()), "duplicate rule"
        )
        for index, spec in enumerate(value.get("duplicate_rules", ())):
            where = ("duplicate_rules", index)
            for i, field_name in enumerate(spec["fields"]):
                self.known_field(doc, (*where, "fields", i), name, field_name, allow_system=False)
            for i, other in enumerate(spec.get("also_check", ())):
                self.known_entity(doc, (*where, "also_check", i), other)
            rules.append(
                DuplicateRule(
                    spec["name"],
                    Label.of(spec.get("label"), spec["name"]),
                    tuple(spec["fields"]),
                    tuple(spec.get("normalize", ())),
                    spec.get("action", "warn"),
                    spec.get("match", "all"),
                    tuple(spec.get("also_check", ())),
                )
            )
        indexes = []
        self.unique_names(doc, ("indexes",), value.get("indexes", ()), "index")
        for index, spec in enumerate(value.get("indexes", ())):
            for i, field_name in enumerate(spec["fields"]):
                self.known_field(doc, ("indexes", index, "fields", i), name, field_name)
            indexes.append(Index(spec["name"], tuple(spec["fields"]), bool(spec.get("unique"))))
        sort = parse_sort(value.get("default_sort"))
        for sort_key in sort:
            self.known_path(doc, ("default_sort",), name, sort_key.field)
        self.check_layout(doc)
        if len(self.problems) > before:
            return None
        title = value.get("title_field") or next(
            (n for n in ("name", "title", "subject", "number") if n in fields),
            next((f.name for f in fields.values() if f.type in TEXTUAL | {"autonumber"}), None),
        )
        return Entity(
            name=name,
            label=Label.of(value.get("label"), name.replace("_", " ").capitalize()),
            plural_label=Label.of(
                value.get("plural_label") or value.get("label"), name.replace("_", " ").capitalize()
            ),
            package=doc.package,
            fields=MappingProxyType(fields),
            description=Label.of(value["description"]) if "description" in value else None,
            icon=value.get("icon"),
            table=value.get("table") or f"{prefix}{name}",
            title_field=title,
            search_fields=tuple(search),
            ownable=bool(value.get("ownable", False)),
            child=bool(value.get("child", False)),
            audit=bool(value.get("audit", True)),
            validations=tuple(validations),
            duplicate_rules=tuple(rules),
            indexes=tuple(indexes),
            default_sort=sort,
            form=freeze(value.get("form")),
            list_views=freeze(value.get("list_views", [])),
            kanban=freeze(value.get("kanban")),
            calendar=freeze(value.get("calendar")),
        )

    def check_layout(self, doc: Document) -> None:
        value, name = doc.value, doc.name
        form = value.get("form") or {}
        sections: list[tuple[Location, dict[str, Any]]] = [
            (("form", "sections", i), s) for i, s in enumerate(form.get("sections", ()))
        ]
        for t, tab in enumerate(form.get("tabs", ())):
            sections += [
                (("form", "tabs", t, "sections", i), s) for i, s in enumerate(tab["sections"])
            ]
        placed: dict[str, Location] = {}
        for where, section in sections:
            for i, field_name in enumerate(section["fields"]):
                if not self.known_field(doc, (*where, "fields", i), name, field_name):
                    continue
                if field_name in placed:
                    self.error(
                        doc,
                        (*where, "fields", i),
                        f"field '{field_name}' is already on the form "
                        f"at {doc.origin(placed[field_name])}",
                    )
                placed[field_name] = (*where, "fields", i)
            self.expression(doc, (*where, "visible_when"), section.get("visible_when"), name)
        self.unique_names(doc, ("form", "related"), form.get("related", ()), "related list")
        for i, related in enumerate(form.get("related", ())):
            where = ("form", "related", i)
            other = related["entity"]
            if not self.known_entity(doc, (*where, "entity"), other):
                continue
            link = self.entity_docs[other]["fields"].get(related["via"])
            if link is None:
                self.known_field(doc, (*where, "via"), other, related["via"], allow_system=False)
            elif link.get("type") != "reference" or link.get("to") != name:
                self.error(
                    doc,
                    (*where, "via"),
                    f"'{other}.{related['via']}' is not a reference to '{name}'",
                )
            for c, column in enumerate(related.get("columns", ())):
                self.known_field(doc, (*where, "columns", c), other, column)
        self.unique_names(doc, ("list_views",), value.get("list_views", ()), "list view")
        defaults = [i for i, v in enumerate(value.get("list_views", ())) if v.get("default")]
        for i in defaults[1:]:
            first = value["list_views"][defaults[0]]["name"]
            self.error(
                doc, ("list_views", i, "default"), f"list view '{first}' is already the default"
            )
        for i, view in enumerate(value.get("list_views", ())):
            for c, column in enumerate(view["columns"]):
                where = ("list_views", i, "columns", c)
                if column.startswith("-"):
                    self.error(
                        doc,
                        where,
                        f"column '{column}' starts with '-'",
                        "a column is a field name; write the order in 'sort'",
                    )
                    continue
                self.known_path(doc, where, name, column)
            self.expression(doc, ("list_views", i, "filter"), view.get("filter"), name)
            for sort_key in parse_sort(view.get("sort")):
                self.known_path(doc, ("list_views", i, "sort"), name, sort_key.field)
        kanban = value.get("kanban")
        if kanban:
            field_spec = value["fields"].get(kanban["field"])
            if field_spec is None:
                self.known_field(
                    doc, ("kanban", "field"), name, kanban["field"], allow_system=False
                )
            elif field_spec["type"] != "choice":
                self.error(
                    doc,
                    ("kanban", "field"),
                    f"a kanban groups by a choice field; "
                    f"'{kanban['field']}' is {article(field_spec['type'])}",
                )
            if "title" in kanban:
                self.known_field(doc, ("kanban", "title"), name, kanban["title"])
            if "sum" in kanban and self.known_field(doc, ("kanban", "sum"), name, kanban["sum"]):
                kind = self.value_type(name, kanban["sum"])
                if kind not in NUMERIC:
                    self.error(
                        doc, ("kanban", "sum"), f"cannot sum '{kanban['sum']}', {article(kind)}"
                    )
            for c, column in enumerate(kanban.get("card_fields", ())):
                self.known_field(doc, ("kanban", "card_fields", c), name, column)
        calendar = value.get("calendar")
        if calendar:
            for key in ("start", "end", "title", "color"):
                if key in calendar and self.known_field(
                    doc, ("calendar", key), name, calendar[key]
                ):
                    kind = self.field_type(name, calendar[key])
                    if key in ("start", "end") and kind not in DATES:
                        self.error(
                            doc,
                            ("calendar", key),
                            f"a calendar's {key} must be a date or datetime; "
                            f"'{calendar[key]}' is {article(kind)}",
                        )

    def link_children(self, entities: dict[str, Entity]) -> None:
        """Check children fields and tell each child entity its parent."""
        parents: dict[str, tuple[str, str]] = {}
        claimed: set[str] = set()  # named by some children field, linked or not
        graph: dict[str, set[str]] = {}
        for doc in self.by_kind.get("entity", {}).values():
            for field_name, spec in doc.value["fields"].items():
                if spec.get("type") != "children":
                    continue
                path = ("fields", field_name)
                child = spec["entity"]
                graph.setdefault(doc.name, set()).add(child)
                claimed.add(child)
                if not self.known_entity(doc, (*path, "entity"), child):
                    continue
                child_doc = self.entity_docs[child]
                if not child_doc.get("child"):
                    self.error(
                        doc,
                        (*path, "entity"),
                        f"'{child}' is not a child entity",
                        f"add 'child: true' to entity '{child}'",
                    )
                    continue
                if child in parents:
                    owner = parents[child]
                    self.error(
                        doc,
                        (*path, "entity"),
                        f"child entity '{child}' already belongs to {owner[0]}.{owner[1]}",
                    )
                    continue
                links = [
                    n
                    for n, s in child_doc["fields"].items()
                    if s.get("type") == "reference" and s.get("to") == doc.name
                ]
                via = spec.get("via")
                if via is None and len(links) == 1:
                    via = links[0]
                if via is None:
                    self.error(
                        doc,
                        path,
                        f"child entity '{child}' needs one reference field to '{doc.name}'"
                        + (f" (it has {len(links)}: name one with 'via')" if links else ""),
                        ""
                        if links
                        else f"add e.g. '{doc.name}: {{type: reference, to: {doc.name}, "
                        f"on_delete: cascade}}' to '{child}'",
                    )
                    continue
                if via not in links:
                    self.error(
                        doc,
                        (*path, "via"),
                        f"'{child}.{via}' is not a reference to '{doc.name}'",
                        did_you_mean(via, links),
                    )
                    continue
                parents[child] = (doc.name, field_name)
                for index, column in enumerate(spec.get("columns", ())):
                    self.known_field(doc, (*path, "columns", index), child, column)
                if child in entities:
                    entities[child] = _replace(entities[child], parent=doc.name, parent_field=via)
        for cycle in _cycles(graph):
            doc = self.by_kind["entity"][cycle[0]]
            field_name = next(
                n
                for n, s in doc.value["fields"].items()
                if s.get("type") == "children" and s.get("entity") in cycle
            )
            self.error(
                doc,
                ("fields", field_name, "entity"),
                f"children form a cycle: {' → '.join([*cycle, cycle[0]])}",
            )
        for name, value in self.entity_docs.items():
            if value.get("child") and name not in claimed:
                doc = self.by_kind["entity"][name]
                self.error(
                    doc,
                    ("child",),
                    f"child entity '{name}' is not used by any children field",
                    "add a field of type children with this entity, or remove 'child: true'",
                )

    # other kinds ------------------------------------------------------------------------

    def compile_workflow(self, doc: Document) -> Workflow | None:
        value = doc.value
        before = len(self.problems)
        entity = value["entity"]
        if not self.known_entity(doc, ("entity",), entity):
            return None
        field_spec = self.entity_docs[entity]["fields"].get(value["field"])
        options: list[str] = []
        if field_spec is None:
            self.known_field(doc, ("field",), entity, value["field"], allow_system=False)
        elif field_spec["type"] != "choice":
            self.error(
                doc,
                ("field",),
                f"a workflow's state field must be a choice; "
                f"'{value['field']}' is {article(field_spec['type'])}",
            )
        else:
            options = [o if isinstance(o, str) else o["value"] for o in field_spec["options"]]
        self.unique_names(doc, ("states",), value["states"], "state")
        states = [s["name"] for s in value["states"]]
        for i, state in enumerate(value["states"]):
            if options and state["name"] not in options:
                self.error(
                    doc,
                    ("states", i, "name"),
                    f"state '{state['name']}' is not an option of {entity}.{value['field']}",
                    did_you_mean(state["name"], options),
                )
        initial = [i for i, s in enumerate(value["states"]) if s.get("initial")]
        if len(initial) > 1:
            self.error(doc, ("states", initial[1], "initial"), "a workflow has one initial state")
        self.unique_names(doc, ("transitions",), value.get("transitions", ()), "transition")
        approvals = {a["name"] for a in value.get("approvals", ())}
        transitions = []
        for i, spec in enumerate(value.get("transitions", ())):
            where = ("transitions", i)
            sources = [spec["from"]] if isinstance(spec["from"], str) else list(spec["from"])
            for s, state in enumerate(sources):
                if state != "*" and state not in states:
                    at = (*where, "from") if isinstance(spec["from"], str) else (*where, "from", s)
                    self.error(doc, at, f"unknown state '{state}'", did_you_mean(state, states))
            if spec["to"] not in states:
                self.error(
                    doc,
                    (*where, "to"),
                    f"unknown state '{spec['to']}'",
                    did_you_mean(spec["to"], states),
                )
            guard = self.expression(doc, (*where, "guard"), spec.get("guard"), entity)
            for r, role in enumerate(spec.get("roles", ())):
                self.known_role(doc, (*where, "roles", r), role)
            for f, field_name in enumerate(spec.get("required_fields", ())):
                self.known_field(
                    doc, (*where, "required_fields", f), entity, field_name, allow_system=False
                )
            for field_name in spec.get("set", {}):
                self.known_field(
                    doc, (*where, "set", field_name), entity, field_name, allow_system=False
                )
            if "approval" in spec and spec["approval"] not in approvals:
                self.error(
                    doc,
                    (*where, "approval"),
                    f"unknown approval '{spec['approval']}'",
                    did_you_mean(spec["approval"], approvals),
                )
            transitions.append(
                Transition(
                    spec["name"],
                    Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize()),
                    tuple(sources),
                    spec["to"],
                    guard,
                    tuple(spec.get("roles", ())),
                    spec.get("comment", "optional"),
                    tuple(spec.get("required_fields", ())),
                    freeze(spec.get("set")),
                    spec.get("approval"),
                )
            )
        for a, approval in enumerate(value.get("approvals", ())):
            for s, step in enumerate(approval["steps"]):
                self.expression(doc, ("approvals", a, "steps", s, "when"), step.get("when"), entity)
                approver = step["approver"]
                if approver.startswith("role:"):
                    self.known_role(doc, ("approvals", a, "steps", s, "approver"), approver[5:])
            for key in ("on_approve", "on_reject"):
                if key in approval and approval[key] not in states:
                    self.error(
                        doc,
                        ("approvals", a, key),
                        f"unknown state '{approval[key]}'",
                        did_you_mean(approval[key], states),
                    )
        if len(self.problems) > before:
            return None
        return Workflow(
            doc.name,
            Label.of(value.get("label"), doc.name),
            entity,
            value["field"],
            tuple(
                State(
                    s["name"],
                    Label.of(s.get("label"), s["name"].replace("_", " ").capitalize()),
                    bool(s.get("initial")),
                    bool(s.get("final")),
                    s.get("color"),
                )
                for s in value["states"]
            ),
            tuple(transitions),
            freeze(value.get("approvals", [])),
            doc.package,
        )

    def compile_role(self, doc: Document) -> Role | None:
        value = doc.value
        before = len(self.problems)
        if doc.name in BUILTIN_ROLES and value.get("permissions"):
            self.error(
                doc,
                ("permissions",),
                f"the built-in '{doc.name}' role may do everything; it takes no permissions",
            )
        permissions: dict[str, Permission] = {}
        for entity, spec in (value.get("permissions") or {}).items():
            where = ("permissions", entity)
            if entity != "*" and not self.known_entity(doc, where, entity):
                continue
            for field_name in spec.get("fields", {}):
                self.known_field(
                    doc, (*where, "fields", field_name), entity, field_name, allow_system=False
                )
            scopes = {("import_" if a == "import" else a): spec.get(a, "none") for a in ACTIONS}
            permissions[entity] = Permission(
                **scopes, fields=MappingProxyType(dict(spec.get("fields", {})))
            )
        if len(self.problems) > before:
            return None
        return Role(
            doc.name,
            Label.of(value.get("label"), doc.name.replace("_", " ").capitalize()),
            Label.of(value["description"]) if "description" in value else None,
            MappingProxyType(permissions),
            doc.package,
        )

    def compile_report(self, doc: Document) -> Report | None:
        value = doc.value
        before = len(self.problems)
        entity = value["entity"]
        if not self.known_entity(doc, ("entity",), entity):
            return None
        params = {f"params.{p['name']}": value_type(p["type"]) for p in value.get("params", ())}
        self.unique_names(doc, ("params",), value.get("params", ()), "parameter")
        condition = self.expression(doc, ("filter",), value.get("filter"), entity, extra=params)
        for i, dotted in enumerate(value.get("group_by", ())):
            self.known_path(doc, ("group_by", i), entity, dotted)
        self.unique_names(doc, ("measures",), value.get("measures", ()), "measure")
        for i, measure in enumerate(value.get("measures", ())):
            if "field" in measure:
                kind = self.known_path(doc, ("measures", i, "field"), entity, measure["field"])
                if kind and measure["aggregate"] in ("sum", "avg") and kind not in NUMERIC:
                    self.error(
                        doc,
                        ("measures", i, "field"),
                        f"cannot {measure['aggregate']} {article(kind)}",
                    )
            elif measure["aggregate"] != "count":
                self.error(
                    doc, ("measures", i), f"{article(measure['aggregate'])} measure needs 'field'"
                )
        if len(self.problems) > before:
            return None
        return Report(
            doc.name,
            Label.of(value.get("label"), doc.name),
            entity,
            freeze(value),
            condition,
            doc.package,
        )

    def compile_dashboard(self, doc: Document, reports: Iterable[str]) -> Dashboard | None:
        value = doc.value
        before = len(self.problems)
        names = set(reports)
        for i, role in enumerate(value.get("roles", ())):
            self.known_role(doc, ("roles", i), role)
        self.unique_names(doc, ("widgets",), value.get("widgets", ()), "widget")
        for i, widget in enumerate(value.get("widgets", ())):
            if "report" in widget and widget["report"] not in names:
                self.error(
                    doc,
                    ("widgets", i, "report"),
                    f"unknown report '{widget['report']}'",
                    did_you_mean(widget["report"], names),
                )
            if widget["type"] == "report" and "report" not in widget:
                self.error(doc, ("widgets", i), "a report widget needs 'report'")
            if "entity" in widget and self.known_entity(
                doc, ("widgets", i, "entity"), widget["entity"]
            ):
                self.expression(
                    doc, ("widgets", i, "filter"), widget.get("filter"), widget["entity"]
                )
        if len(self.problems) > before:
            return None
        return Dashboard(
            doc.name, Label.of(value.get("label"), doc.name), freeze(value), doc.package
        )

    def compile_automation(self, doc: Document) -> Automation | None:
        value = doc.value
        before = len(self.problems)
        entity = value["entity"]
        if not self.known_entity(doc, ("entity",), entity):
            return None
        trigger = value["trigger"]
        given = [k for k in ("event", "schedule", "date_field") if k in trigger]
        if len(given) != 1:
            self.error(
                doc,
                ("trigger",),
                "a trigger needs exactly one of 'event', 'schedule' or 'date_field'",
            )
        if "date_field" in trigger and self.known_field(
            doc, ("trigger", "date_field"), entity, trigger["date_field"]
        ):
            kind = self.field_type(entity, trigger["date_field"])
            if kind not in DATES:
                self.error(
                    doc,
                    ("trigger", "date_field"),
                    f"'{trigger['date_field']}' is {article(kind)}, not a date",
                )
        for index, field_name in enumerate(trigger.get("fields", ())):
            self.known_field(doc, ("trigger", "fields", index), entity, field_name)
        condition = self.expression(doc, ("condition",), value.get("condition"), entity)
        if len(self.problems) > before:
            return None
        return Automation(
            doc.name,
            Label.of(value.get("label"), doc.name),
            entity,
            freeze(value),
            condition,
            doc.package,
        )


def _constant_fits(kind: str, value: Any) -> bool:
    if kind in TEXTUAL:
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in NUMBERS:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value)
        return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in DATES:
        return isinstance(value, str) and not _date_error(kind, value)
    return kind not in ("reference", "user", "team")


def _regex_problem(pattern: str) -> str:
    """Why ``pattern`` is not a usable regular expression, or ''.

    Python warns (FutureWarning) about patterns whose meaning will change, such as POSIX
    classes ``[[:alpha:]]``; a definition should not depend on that, so they count too.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(pattern)
        except (re.error, FutureWarning, DeprecationWarning) as exc:
            return str(exc)
    return ""


def _date_error(kind: str, value: str) -> str:
    """Why ``value`` is not an ISO date (or date-time), or '' when it is one."""
    try:
        if kind == "date":
            dt.date.fromisoformat(value)
        else:
            dt.datetime.fromisoformat(value)
    except ValueError as exc:
        reason = str(exc)
        return (
            "write it as 2024-07-31, or as an expression like '=today()'"
            if "Invalid isoformat" in reason
            else reason
        )
    return ""


def _as_comparable(kind: str, value: Any) -> Any:
    if kind in DATES:
        return dt.datetime.fromisoformat(str(value))
    return Decimal(str(value))


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
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


def _replace(entity: Entity, **changes: Any) -> Entity:
    import dataclasses

    return dataclasses.replace(entity, **changes)


def _package(source: Any, parent: Package | None) -> Package:
    """A package's settings; an overlay inherits those it does not restate."""
    value = source.header.value
    locales = tuple(value.get("locales") or (parent.locales if parent else ("en",)))
    return Package(
        name=source.name,
        label=Label.of(value.get("label"), source.name),
        version=str(value.get("version", "0")),
        extends=value.get("extends"),
        locales=locales,
        default_locale=value.get("default_locale", parent.default_locale if parent else locales[0]),
        table_prefix=value.get("table_prefix", parent.table_prefix if parent else ""),
        currency=value.get("currency", parent.currency if parent else "USD"),
        path=str(getattr(source, "path", "")),
    )


def _packages(sources: list[Any]) -> tuple[Package, ...]:
    by_name: dict[str, Package] = {}
    for source in sources:
        if isinstance(source, Package):
            by_name[source.name] = source
        else:
            parent = by_name.get(source.header.value.get("extends") or "")
            by_name[source.name] = _package(source, parent)
    return tuple(by_name.values())


def compile_model(
    sources: list[PackageSource] | list[Package], documents: list[Document], problems: list[Problem]
) -> Model | None:
    """Check ``documents`` as a whole and build the Model; ``None`` when problems were found."""
    packages = _packages(list(sources))
    prefixes = {p.name: p.table_prefix for p in packages}
    compiler = _Compiler(documents, problems)
    by_kind = compiler.by_kind
    entities: dict[str, Entity] = {}
    for name, doc in by_kind.get("entity", {}).items():
        entity = compiler.compile_entity(doc, prefixes.get(doc.package, ""))
        if entity is not None:
            entities[name] = entity
    compiler.link_children(entities)
    tables: dict[str, str] = {}
    for entity in entities.values():
        if entity.table in tables:
            doc = by_kind["entity"][entity.name]
            compiler.error(
                doc,
                ("table",) if "table" in doc.value else ("name",),
                f"table '{entity.table}' is already used by entity '{tables[entity.table]}'",
            )
        tables[entity.table] = entity.name
    roles = _collect(by_kind, "role", compiler.compile_role)
    workflows = _collect(by_kind, "workflow", compiler.compile_workflow)
    seen_fields: dict[tuple[str, str], str] = {}
    for workflow in workflows.values():
        key = (workflow.entity, workflow.field)
        if key in seen_fields:
            doc = by_kind["workflow"][workflow.name]
            compiler.error(
                doc,
                ("field",),
                f"{key[0]}.{key[1]} is already driven by workflow '{seen_fields[key]}'",
            )
        seen_fields[key] = workflow.name
    reports = _collect(by_kind, "report", compiler.compile_report)
    dashboards = _collect(
        by_kind, "dashboard", lambda d: compiler.compile_dashboard(d, by_kind.get("report", {}))
    )
    automations = _collect(by_kind, "automation", compiler.compile_automation)
    if problems:
        return None
    ordered = sorted(documents, key=lambda d: (d.kind, d.name))
    refs: dict[str, list[tuple[Entity, Field]]] = {}
    for entity in entities.values():
        for field in entity.fields_of_type("reference"):
            refs.setdefault(field.to or "", []).append((entity, field))
    return Model(
        packages=packages,
        entities=MappingProxyType(entities),
        workflows=MappingProxyType(workflows),
        roles=MappingProxyType(roles),
        reports=MappingProxyType(reports),
        dashboards=MappingProxyType(dashboards),
        automations=MappingProxyType(automations),
        documents=freeze([d.value for d in ordered]),
        origins=MappingProxyType({(d.kind, d.name): MappingProxyType(d.origins) for d in ordered}),
        owners=MappingProxyType({(d.kind, d.name): d.package for d in ordered}),
        hash=content_hash(packages, ordered),
        _refs_to=MappingProxyType({k: tuple(v) for k, v in refs.items()}),
    )


T = Any


def _collect(
    by_kind: Mapping[str, Mapping[str, Document]], kind: str, build: Callable[[Document], T | None]
) -> dict[str, T]:
    result = {}
    for name, doc in by_kind.get(kind, {}).items():
        compiled = build(doc)
        if compiled is not None:
            result[name] = compiled
    return result


def content_hash(packages: tuple[Package, ...], documents: list[Document]) -> str:
    """A digest of what the definitions mean: the same for the same content, whatever the
    files, their order, comments or key order (field order is kept: it is column order)."""
    payload = {
        "packages": [[p.name, p.version, p.extends, p.table_prefix] for p in packages],
        "documents": [
            [d.kind, d.name, d.package, d.value, list(d.value.get("fields", {}))] for d in documents
        ],
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def compile_documents_json(data: Mapping[str, Any]) -> Model:
    """Rebuild a Model from :meth:`Model.to_dict` output (no file positions)."""
    from ._errors import DefinitionError

    problems: list[Problem] = []
    packages = tuple(
        Package(
            name=p["name"],
            label=Label.of(p.get("label"), p["name"]),
            version=p.get("version", "0"),
            extends=p.get("extends"),
            locales=tuple(p.get("locales") or ("en",)),
            default_locale=p.get("default_locale", "en"),
            table_prefix=p.get("table_prefix", ""),
            currency=p.get("currency", "USD"),
        )
        for p in data["packages"]
    )
    first = packages[0].name if packages else ""
    owners = {(o[0], o[1]): o[2] for o in data.get("owners", ())}
    documents = []
    for d in data["documents"]:
        owner = owners.get((d["kind"], d["name"]), first)
        where: dict[Location, Origin] = {(): Origin("<model.json>", 0, 0, owner)}
        documents.append(
            Document(d["kind"], d["name"], json.loads(json.dumps(d)), owner, "<model.json>", where)
        )
    model = compile_model(list(packages), documents, problems)
    if model is None:
        raise DefinitionError(problems)
    return model
