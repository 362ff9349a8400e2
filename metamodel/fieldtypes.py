"""Field types as the definition language knows them: one registry, one object per type.

A :class:`FieldType` says everything the language needs about a type: which options a
field of it may take (and which it must), their defaults, the type its values have in
expressions, whether the platform computes it, and any checks of its own. The JSON Schema
of definitions, the semantic checks and the compiled :class:`~metamodel.model.Field` all
read it from :data:`FIELD_TYPES`.

The other layers keep their own registries keyed by the same names — storage, input and
filters in :mod:`engine.fieldtypes`, the JSON of the API in ``heddle.fieldtypes`` — and a
meta-test checks every type is in each. A plugin adds a type by registering it in each
(docs/architecture.md, "Adding a field type")::

    FIELD_TYPES.register(
        FieldType(
            "rating",
            INTEGER,
            options=frozenset({"required", "default", "index"}),
            extra_options={"stars": {"type": "integer", "minimum": 2, "maximum": 10}},
            defaults={"stars": 5},
            category="number",
        )
    )
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from ._errors import article, did_you_mean
from .expressions import BOOLEAN, DATE, DATETIME, DECIMAL, INTEGER, NUMERIC, STRING, Expression
from .registry import Registry

Schema = dict[str, Any]
Path = tuple[str | int, ...]


class FieldContext(Protocol):
    """What a type's own check may see and say about one field being compiled."""

    entity: str  # the entity the field belongs to
    name: str  # the field's name
    spec: Mapping[str, Any]  # the field as written (after overlays)

    def error(self, path: Path, message: str, hint: str = "", *, at_key: bool = False) -> None:
        """Report a problem at ``path`` inside the field (``("format",)``)."""

    def expression(
        self, path: Path, source: Any, *, expect: str | None = BOOLEAN, entity: str | None = None
    ) -> Expression | None:
        """Parse an expression over ``entity`` (default: the field's own entity)."""

    def known_entity(self, path: Path, name: Any) -> bool:
        """Whether an entity exists; reports it (with a suggestion) when not."""

    def known_field(self, path: Path, entity: str, name: Any) -> bool:
        """Whether ``entity`` has field ``name``; reports it when not."""

    def entity_spec(self, name: str) -> Mapping[str, Any] | None:
        """Another entity's definition, or None."""

    def value_type(self, entity: str, name: str) -> str:
        """The expression type of a field of another entity."""


#: A type's own check: reports problems through the context, and may return attributes
#: of the compiled :class:`~metamodel.model.Field` (``{"expression": …}``).
Check = Callable[[FieldContext], Mapping[str, Any] | None]


@dataclass(frozen=True)
class FieldType:
    """One field type of the language.

    ``value_type`` is what expressions see (``string``, ``integer``, ``decimal``,
    ``boolean``, ``date``, ``datetime``, ``list:string``…); a type whose value type
    depends on its options (a formula's ``returns``) gives ``value_type_of`` instead.
    ``options`` are the type-specific options a field of this type may take (label, help,
    readonly, visible_when… apply to every type); ``requires`` those it must take;
    ``extra_options`` JSON Schemas of options no built-in type knows (a plugin's own);
    ``defaults`` their values when not written. ``category`` groups types for the checks
    and screens that treat alike every type of one kind: text, number, date, boolean,
    choice, reference, file, children or computed.
    """

    name: str
    value_type: str
    options: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()
    extra_options: Mapping[str, Schema] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    category: str = "text"
    computed: bool = False
    constant_default: bool = True  # False: a constant default means nothing (ids)
    check: Check | None = None
    value_type_of: Callable[[Mapping[str, Any]], str] | None = None
    description: str = ""

    def value_type_for(self, spec: Mapping[str, Any]) -> str:
        """The expression type of a field of this type written as ``spec``."""
        if self.value_type_of is not None:
            return self.value_type_of(spec)
        return self.value_type

    def takes(self, option: str) -> bool:
        return option in self.options


FIELD_TYPES: Registry[FieldType] = Registry("field type")

# --- option sets -------------------------------------------------------------------------

_KEYED = frozenset({"unique", "default", "required", "index"})
_TEXT = _KEYED | {"max_length", "min_length", "pattern", "searchable"}
_RANGE = _KEYED | {"min", "max"}
_DECIMAL = _RANGE | {"precision", "scale"}

#: Options every field may take, whatever its type.
COMMON_OPTIONS = frozenset(
    {
        "type",
        "label",
        "help",
        "placeholder",
        "readonly",
        "visible_when",
        "required_when",
        "readonly_when",
        "renamed_from",
    }
)

# --- checks of the built-in types -----------------------------------------------------------

AUTONUMBER_TOKEN = re.compile(r"\{([^{}]*)\}")
AUTONUMBER_PARTS = re.compile(r"^(YYYY|YY|MM|DD|seq(:0?[1-9]\d?)?)$")


def _check_autonumber(ctx: FieldContext) -> None:
    text = ctx.spec["format"]
    parts = AUTONUMBER_TOKEN.findall(text)
    for part in parts:
        if not AUTONUMBER_PARTS.match(part):
            ctx.error(
                ("format",),
                f"unknown placeholder '{{{part}}}' in autonumber format",
                "use {YYYY}, {YY}, {MM}, {DD} and {seq} or {seq:05}",
            )
    if not any(p.startswith("seq") for p in parts):
        ctx.error(
            ("format",),
            "an autonumber format needs a {seq} placeholder",
            "for example 'CT-{YYYY}-{seq:05}'",
        )


def _check_reference(ctx: FieldContext) -> None:
    ctx.known_entity(("to",), ctx.spec["to"])
    if ctx.spec.get("on_delete") == "set_null" and ctx.spec.get("required"):
        ctx.error(("on_delete",), "a required reference cannot be cleared: use restrict or cascade")


def _check_formula(ctx: FieldContext) -> Mapping[str, Any]:
    if ctx.spec.get("options") and ctx.spec["returns"] != "string":
        ctx.error(("options",), "only a formula that returns string may have options")
    expect = _formula_type(ctx.spec)
    return {"expression": ctx.expression(("expression",), ctx.spec["expression"], expect=expect)}


def _check_rollup(ctx: FieldContext) -> Mapping[str, Any] | None:
    spec = ctx.spec
    source = spec["of"]
    if not ctx.known_entity(("of",), source):
        return None
    fields = (ctx.entity_spec(source) or {}).get("fields", {})
    via = spec["via"]
    link = fields.get(via)
    if link is None:
        ctx.error(
            ("via",), f"unknown field '{via}' of entity '{source}'", did_you_mean(via, fields)
        )
    elif link.get("type") != "reference" or link.get("to") != ctx.entity:
        ctx.error(
            ("via",), f"'{source}.{via}' must be a reference to '{ctx.entity}' for this rollup"
        )
    aggregate = spec["aggregate"]
    target = spec.get("field")
    if target is None and aggregate != "count":
        ctx.error((), f"{article(aggregate)} rollup needs 'field'")
    elif target is not None and ctx.known_field(("field",), source, target):
        kind = ctx.value_type(source, target)
        if aggregate in ("sum", "avg") and kind not in NUMERIC:
            ctx.error(("field",), f"cannot {aggregate} '{target}', {article(kind)}")
        elif aggregate in ("min", "max") and kind not in NUMERIC:
            ctx.error(
                ("field",), f"a rollup's {aggregate} needs a number, '{target}' is {article(kind)}"
            )
    return {"filter": ctx.expression(("filter",), spec.get("filter"), entity=source)}


def _formula_type(spec: Mapping[str, Any]) -> str:
    returns = spec.get("returns") or "string"
    kind = FIELD_TYPES.get(returns)
    return kind.value_type_for({}) if kind is not None else STRING


def _rollup_type(spec: Mapping[str, Any]) -> str:
    return INTEGER if spec.get("aggregate") == "count" else DECIMAL


def _ids_type(spec: Mapping[str, Any]) -> str:
    return "list:integer" if spec.get("multiple") else INTEGER


# --- the built-ins, registered like any plugin's ---------------------------------------------


def _people(name: str, description: str) -> FieldType:
    """``user`` and ``team``: ids of the platform's own users or teams."""
    return FieldType(
        name,
        INTEGER,
        frozenset({"on_delete", "multiple", "default", "required", "index"}),
        defaults={"on_delete": "set_null"},
        category="reference",
        constant_default=False,
        value_type_of=_ids_type,
        description=description,
    )


def _builtins() -> list[FieldType]:
    text = {"max_length": 255}
    return [
        FieldType("string", STRING, _TEXT, defaults=text, description="One line of text."),
        FieldType("text", STRING, _TEXT, description="Text of any length, several lines."),
        FieldType("integer", INTEGER, _RANGE, category="number"),
        FieldType(
            "decimal",
            DECIMAL,
            _DECIMAL,
            defaults={"precision": 18, "scale": 6},
            category="number",
        ),
        FieldType(
            "money",
            DECIMAL,
            _DECIMAL | {"currency"},
            defaults={"precision": 18, "scale": 2},
            category="number",
        ),
        FieldType(
            "percent",
            DECIMAL,
            _DECIMAL,
            defaults={"precision": 9, "scale": 2},
            category="number",
            description="A percentage: 12.5 means 12.5 %.",
        ),
        FieldType(
            "boolean", BOOLEAN, frozenset({"default", "required", "index"}), category="boolean"
        ),
        FieldType("date", DATE, _RANGE, category="date"),
        FieldType("datetime", DATETIME, _RANGE, category="date"),
        FieldType(
            "choice",
            STRING,
            frozenset({"options", "searchable", "default", "required", "index"}),
            requires=("options",),
            category="choice",
        ),
        FieldType(
            "multichoice",
            "list:string",
            frozenset({"options", "default", "required"}),
            requires=("options",),
            category="choice",
        ),
        FieldType(
            "reference",
            INTEGER,
            _KEYED | {"to", "on_delete", "link"},
            requires=("to",),
            defaults={"on_delete": "restrict", "link": "readable"},
            category="reference",
            constant_default=False,
            check=_check_reference,
            description="A link to a record of another entity.",
        ),
        FieldType(
            "children",
            "",
            frozenset({"entity", "via", "columns", "required"}),
            requires=("entity",),
            category="children",
            description="Rows of a child entity edited inside the record (quote lines).",
        ),
        FieldType("email", STRING, _TEXT, defaults=text),
        FieldType("phone", STRING, _TEXT, defaults=text),
        FieldType("url", STRING, _TEXT, defaults=text),
        FieldType(
            "file",
            INTEGER,
            frozenset({"accept", "max_size", "multiple", "required"}),
            category="file",
            constant_default=False,
            value_type_of=_ids_type,
            description="Uploaded files: the ids of attachments (docs/api.md#attachments).",
        ),
        FieldType(
            "autonumber",
            STRING,
            frozenset({"format", "searchable", "unique", "index"}),
            requires=("format",),
            computed=True,
            check=_check_autonumber,
            description="A number the platform gives each new record: CT-{YYYY}-{seq:05}.",
        ),
        FieldType(
            "formula",
            STRING,
            frozenset({"options", "expression", "returns"}),
            requires=("expression", "returns"),
            category="computed",
            computed=True,
            check=_check_formula,
            value_type_of=_formula_type,
            description="Computed from the record's fields whenever it is read.",
        ),
        FieldType(
            "rollup",
            DECIMAL,
            frozenset({"of", "via", "aggregate", "field", "filter"}),
            requires=("of", "via", "aggregate"),
            category="computed",
            computed=True,
            check=_check_rollup,
            value_type_of=_rollup_type,
            description="A sum, count, min, max or average over related records.",
        ),
        _people("user", "A user of the platform (or several, with multiple)."),
        _people("team", "A team of the platform (or several, with multiple)."),
    ]


for _type in _builtins():
    FIELD_TYPES.register(_type)

#: The built-in type names, in the order the language documents them.
BUILTIN_FIELD_TYPES: tuple[str, ...] = FIELD_TYPES.names()

#: Types a formula may return: the scalar built-ins.
FORMULA_RETURNS = (
    "string",
    "integer",
    "decimal",
    "money",
    "percent",
    "boolean",
    "date",
    "datetime",
)


def field_type(name: str) -> FieldType:
    """The registered type ``name`` (:class:`~metamodel.model.UnknownName` if none)."""
    return FIELD_TYPES[name]


def value_type(kind: str, spec: Mapping[str, Any] | None = None) -> str:
    """The expression type of a field of type ``kind`` written as ``spec``; ``string``
    for a type nobody registered (the schema reports it)."""
    found = FIELD_TYPES.get(kind)
    return found.value_type_for(spec or {}) if found is not None else STRING


def type_specific_options() -> frozenset[str]:
    """Every option that only some types take: those a field must not carry otherwise."""
    found: set[str] = set()
    for kind in FIELD_TYPES.values():
        found |= kind.options
    return frozenset(found)
