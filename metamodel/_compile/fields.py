"""Fields: the options a field's type allows, defaults and bounds that fit its type, each
type's own checks (:attr:`FieldType.check`), and the compiled :class:`Field`."""

from __future__ import annotations

import datetime as dt
import keyword
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .._errors import article, did_you_mean
from .._errors import show as _show
from .._merge import Document
from .._yaml import Location
from ..expressions import BOOLEAN, DATE, DATETIME, DECIMAL, INTEGER, STRING, Expression
from ..fieldtypes import COMMON_OPTIONS, FIELD_TYPES, FieldType, type_specific_options
from ..model import SYSTEM_FIELDS, Choice, Field, Label
from ._context import Checker, cycles

#: Words a field may not be called, with the reason.
EXPRESSION_WORDS = frozenset(
    {"true", "false", "null", "none"} | {k.lower() for k in keyword.kwlist}
)
RESERVED_FIELDS = frozenset(SYSTEM_FIELDS) | {"parent_id"}
#: Keys a record's create or update body may hold beside its fields.
REQUEST_WORDS = frozenset({"confirm_duplicates"})
#: Options whose value the compiled Field holds in an attribute of its own.
_ATTRIBUTES = frozenset(Field.__dataclass_fields__) | {"entity", "field"}


class _FieldContext:
    """A :class:`~metamodel.fieldtypes.FieldContext` for one field of one document."""

    def __init__(self, checker: Checker, doc: Document, name: str, spec: Mapping[str, Any]):
        self.checker = checker
        self.doc = doc
        self.entity = doc.name
        self.name = name
        self.spec = spec
        self.path: Location = ("fields", name)

    def error(
        self, path: tuple[str | int, ...], message: str, hint: str = "", *, at_key: bool = False
    ) -> None:
        self.checker.error(self.doc, (*self.path, *path), message, hint, at_key=at_key)

    def expression(
        self,
        path: tuple[str | int, ...],
        source: Any,
        *,
        expect: str | None = BOOLEAN,
        entity: str | None = None,
    ) -> Expression | None:
        return self.checker.expression(
            self.doc, (*self.path, *path), source, entity or self.entity, expect=expect
        )

    def known_entity(self, path: tuple[str | int, ...], name: Any) -> bool:
        return self.checker.known_entity(self.doc, (*self.path, *path), name)

    def known_field(self, path: tuple[str | int, ...], entity: str, name: Any) -> bool:
        return self.checker.known_field(self.doc, (*self.path, *path), entity, name)

    def entity_spec(self, name: str) -> Mapping[str, Any] | None:
        return self.checker.entity_docs.get(name)

    def value_type(self, entity: str, name: str) -> str:
        return self.checker.value_type(entity, name)


def check_field_name(checker: Checker, doc: Document, name: str) -> bool:
    path = ("fields", name)
    if name in RESERVED_FIELDS:
        message = f"'{name}' is a system column every record has; choose another name"
    elif name in REQUEST_WORDS:
        message = f"'{name}' is a word of the API's request bodies; choose another name"
    elif name in EXPRESSION_WORDS:
        message = f"'{name}' is a keyword of the expression language; choose another name"
    elif "__" in name:
        message = f"'{name}' may not contain '__' (the API uses it for filter operators)"
    else:
        return True
    checker.error(doc, path, message, at_key=True)
    return False


def compile_field(checker: Checker, doc: Document, name: str, spec: dict[str, Any]) -> Field:
    kind: FieldType = FIELD_TYPES[spec["type"]]
    path = ("fields", name)
    specific = type_specific_options()
    for option in spec:
        if option in COMMON_OPTIONS or kind.takes(option):
            continue
        if option in specific:
            message = f"'{option}' does not apply to {article(kind.name)} field"
            checker.error(doc, (*path, option), message, at_key=True)
    values = {**kind.defaults, **spec}
    options = tuple(_choices(checker, doc, path, spec.get("options") or ()))
    old_name = spec.get("renamed_from")
    if old_name is not None and old_name in doc.value["fields"]:
        checker.error(
            doc,
            (*path, "renamed_from"),
            f"renamed_from '{old_name}' names a field that still exists",
            "a rename keeps the data of a field that is gone; remove one of them",
        )
    default, default_expr = _default(checker, doc, path, spec, kind, options)
    _bounds(checker, doc, path, spec, kind)
    if "pattern" in spec:
        problem = _regex_problem(spec["pattern"])
        if problem:
            checker.error(doc, (*path, "pattern"), f"invalid regular expression: {problem}")
    own = dict(kind.check(_FieldContext(checker, doc, name, spec)) or {}) if kind.check else {}
    conditions = {
        key: checker.expression(doc, (*path, key), spec.get(key), doc.name)
        for key in ("visible_when", "required_when", "readonly_when")
    }
    settings = {k: v for k, v in values.items() if k not in _ATTRIBUTES}
    return Field(
        name=name,
        type=kind.name,
        label=Label.of(spec.get("label"), name.replace("_", " ").capitalize()),
        entity=doc.name,
        help=Label.of(spec["help"]) if "help" in spec else None,
        placeholder=Label.of(spec["placeholder"]) if "placeholder" in spec else None,
        required=bool(spec.get("required", False)),
        unique=bool(spec.get("unique", False)),
        default=default,
        default_expression=default_expr,
        min=spec.get("min"),
        max=spec.get("max"),
        min_length=spec.get("min_length"),
        max_length=values.get("max_length"),
        pattern=spec.get("pattern"),
        index=bool(spec.get("index", False)),
        readonly=bool(spec.get("readonly", False)) or kind.computed,
        searchable=bool(spec.get("searchable", False)),
        visible_when=conditions["visible_when"],
        required_when=conditions["required_when"],
        readonly_when=conditions["readonly_when"],
        renamed_from=old_name,
        options=options,
        to=spec.get("to"),
        on_delete=values.get("on_delete", "set_null"),
        children=spec.get("entity"),
        via=spec.get("via"),
        precision=values.get("precision"),
        scale=values.get("scale"),
        currency=spec.get("currency"),
        format=spec.get("format"),
        expression=own.get("expression"),
        returns=spec.get("returns"),
        of=spec.get("of"),
        aggregate=spec.get("aggregate"),
        rollup_field=spec.get("field"),
        filter=own.get("filter"),
        accept=tuple(spec.get("accept") or ()),
        max_size=spec.get("max_size"),
        multiple=bool(spec.get("multiple", False)),
        columns=tuple(spec.get("columns") or ()),
        value_type=kind.value_type_for(values),
        computed=kind.computed,
        settings=MappingProxyType(settings),
    )


def _choices(
    checker: Checker, doc: Document, path: Location, options: Iterable[Any]
) -> Iterable[Choice]:
    seen: set[str] = set()
    for index, option in enumerate(options):
        item = {"value": option} if isinstance(option, str) else option
        value = item["value"]
        if value in seen:
            checker.error(doc, (*path, "options", index), f"option '{value}' is listed twice")
            continue
        seen.add(value)
        description = Label.of(item["description"]) if "description" in item else None
        yield Choice(value, Label.of(item.get("label"), value), item.get("color"), description)


def _default(
    checker: Checker,
    doc: Document,
    path: Location,
    spec: dict[str, Any],
    kind: FieldType,
    options: tuple[Choice, ...],
) -> tuple[Any, Expression | None]:
    if "default" not in spec:
        return None, None
    value = spec["default"]
    where = (*path, "default")
    expected = kind.value_type_for(spec)
    if isinstance(value, str) and value.startswith("="):
        return None, checker.expression(doc, where, value[1:], doc.name, expect=expected)
    values = [c.value for c in options]
    if kind.category == "choice":
        items = value if isinstance(value, list) and expected.startswith("list") else [value]
        for index, item in enumerate(items):
            if item not in values:
                checker.error(
                    doc,
                    (*where, index) if isinstance(value, list) else where,
                    f"default {_show(item)} is not one of the options",
                    did_you_mean(str(item), values) or f"options: {', '.join(values)}",
                )
        return (tuple(items) if expected.startswith("list") else value), None
    if not kind.constant_default:
        checker.error(
            doc,
            where,
            f"{article(kind.name)} field takes no constant default: ids differ between databases",
            "write an expression such as '=current_user()'"
            if kind.name != "reference"
            else "leave it empty, or set it in an automation",
        )
    elif expected in (DATE, DATETIME) and isinstance(value, str) and _date_error(expected, value):
        reason = _date_error(expected, value)
        checker.error(doc, where, f"{_show(value)} is not a valid {kind.name} ({reason})")
    elif not _constant_fits(expected, value):
        checker.error(
            doc,
            where,
            f"default {_show(value)} is not a valid {kind.name}",
            "write a constant of the field's type, or '=expression'",
        )
    return value, None


def _bounds(
    checker: Checker, doc: Document, path: Location, spec: dict[str, Any], kind: FieldType
) -> None:
    expected = kind.value_type_for(spec)
    low, high = spec.get("min"), spec.get("max")
    if kind.takes("min"):
        for key, value in (("min", low), ("max", high)):
            if value is not None and not _constant_fits(expected, value):
                checker.error(doc, (*path, key), f"{key} {_show(value)} is not a valid {kind.name}")
                return
        both = low is not None and high is not None
        if both and _as_comparable(expected, low) > _as_comparable(expected, high):
            message = f"min {_show(low)} is greater than max {_show(high)}"
            checker.error(doc, (*path, "min"), message)
    lo, hi = spec.get("min_length"), spec.get("max_length")
    if lo is not None and hi is not None and lo > hi:
        message = f"min_length {lo} is greater than max_length {hi}"
        checker.error(doc, (*path, "min_length"), message)


def check_formula_cycles(checker: Checker, doc: Document, fields: Mapping[str, Field]) -> None:
    graph: dict[str, set[str]] = {}
    for name, field in fields.items():
        if field.expression is not None:
            graph[name] = {
                path[0]
                for path in field.expression.fields
                if len(path) == 1 and fields.get(path[0], field).type == "formula"
            }
    for cycle in cycles(graph):
        checker.error(
            doc,
            ("fields", cycle[0], "expression"),
            f"formula fields depend on each other: {' → '.join([*cycle, cycle[0]])}",
        )


def _constant_fits(value_type: str, value: Any) -> bool:
    """Whether a constant written in a definition is a value of ``value_type``."""
    if value_type == STRING:
        return isinstance(value, str)
    if value_type == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if value_type == DECIMAL:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value)
        return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    if value_type == BOOLEAN:
        return isinstance(value, bool)
    if value_type in (DATE, DATETIME):
        return isinstance(value, str) and not _date_error(value_type, value)
    return True


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


def _date_error(value_type: str, value: str) -> str:
    """Why ``value`` is not an ISO date (or date-time), or '' when it is one."""
    try:
        if value_type == DATE:
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


def _as_comparable(value_type: str, value: Any) -> Any:
    if value_type in (DATE, DATETIME):
        return dt.datetime.fromisoformat(str(value))
    return Decimal(str(value))
