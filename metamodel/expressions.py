"""The expression language of guards, validations, visibility rules, formulas and filters.

Expressions read like Python and are parsed with Python's own parser, then checked
against a whitelist and compiled into a small typed tree::

    amount >= 100000 and stage in ['won', 'lost']
    days_between(created_at, today()) > 30 and account.grade == 'A'

Nothing in an expression can reach a Python object: only the names of the entity's
fields (and paths through references), literals, the operators below and the functions
of :data:`FUNCTIONS`. There are no loops, attribute access on values, subscripts or
keyword arguments, and sources and trees are size-limited, so evaluation time is bounded
by the size of the expression. Each expression is type-checked once against the fields
and compiled once to a Python callable (:meth:`Expression.evaluate`); the engine
compiles the same tree to SQL (``engine.sqlexpr``).
"""

from __future__ import annotations

import ast
import datetime as dt
import operator
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Protocol

from ._errors import article, did_you_mean
from ._types import (
    ANY,
    BOOLEAN,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    NULL,
    NUMERIC,
    STRING,
    TEMPORAL,
    first_known,
)
from ._types import family as _family
from .functions import FUNCTIONS, NO_CONTEXT, Context, Function, mixed_types

# The value types, the functions and the evaluation context are part of this module's
# public face: every layer imports them from here.
__all__ = [
    "ANY",
    "BOOLEAN",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "FUNCTIONS",
    "INTEGER",
    "NO_CONTEXT",
    "NULL",
    "NUMERIC",
    "STRING",
    "TEMPORAL",
    "Context",
    "Expression",
    "ExpressionError",
    "Function",
    "MappingScope",
    "Scope",
    "parse",
]

MAX_SOURCE = 2000
MAX_NODES = 300
MAX_DEPTH = 100
MAX_INT = 10**18


Path = tuple[str, ...]
Values = Mapping[str, Any]
Evaluator = Callable[[Values, Context], Any]


class ExpressionError(Exception):
    """An expression that does not parse, names unknown fields or mixes types."""

    def __init__(self, message: str, hint: str = "", offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Scope(Protocol):
    """What names an expression may use and their types."""

    def type_of(self, path: Path) -> str:
        """The type of a field path, or raise :class:`ExpressionError` naming the problem."""
        ...

    # A scope may also offer ``options_of(path) -> list[str] | None``: the options of a
    # choice field, so that comparing it with a literal outside them is an error.


# --- the typed tree ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    type: str


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class FieldRef(Node):
    path: Path


@dataclass(frozen=True, slots=True)
class ListOf(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "not" | "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # + - * / %
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >= in not_in
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    op: str  # and | or
    values: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not_in",
    ast.Is: "==",
    ast.IsNot: "!=",
}


def _literal_type(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, Decimal):
        return DECIMAL
    return STRING


# --- parsing and checking -------------------------------------------------------------


class _Checker:
    def __init__(self, source: str, scope: Scope) -> None:
        self.source = source
        self.scope = scope
        self.count = 0
        self.fields: set[Path] = set()

    def error(self, node: ast.AST, message: str, hint: str = "") -> ExpressionError:
        return ExpressionError(message, hint, getattr(node, "col_offset", 0))

    def build(self, node: ast.AST, depth: int = 0) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(node, f"expression too complex (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise self.error(node, f"expression nested deeper than {MAX_DEPTH} levels")
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.error(node, f"{_describe(node)} is not allowed in expressions")
        result: Node = method(node, depth + 1)
        return result

    def _Constant(self, node: ast.Constant, depth: int) -> Node:
        value: Any = node.value
        if isinstance(value, float):
            value = Decimal(repr(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise self.error(node, f"number {value} is too large")
        elif not (value is None or isinstance(value, bool | int | str)):
            what = type(value).__name__
            raise self.error(node, f"{article(what)} value is not allowed in expressions")
        return Literal(_literal_type(value), value)

    def _Name(self, node: ast.Name, depth: int) -> Node:
        if node.id in _CONSTANTS:
            value = _CONSTANTS[node.id]
            return Literal(_literal_type(value), value)
        return self._field(node, (node.id,))

    def _Attribute(self, node: ast.Attribute, depth: int) -> Node:
        parts = [node.attr]
        target: ast.AST = node.value
        while isinstance(target, ast.Attribute):
            parts.append(target.attr)
            target = target.value
        if not isinstance(target, ast.Name):
            raise self.error(node, "only field paths like account.grade may use '.'")
        parts.append(target.id)
        return self._field(node, tuple(reversed(parts)))

    def _field(self, node: ast.AST, path: Path) -> Node:
        if any(part.startswith("_") for part in path):
            raise self.error(node, f"'{'.'.join(path)}' is not a field")
        try:
            kind = self.scope.type_of(path)
        except ExpressionError as exc:
            exc.offset = getattr(node, "col_offset", 0)
            raise
        self.fields.add(path)
        return FieldRef(kind, path)

    def _List(self, node: ast.List | ast.Tuple, depth: int) -> Node:
        items = tuple(self.build(item, depth) for item in node.elts)
        if len(items) > 100:
            raise self.error(node, "a list may hold at most 100 items")
        kinds = {_family(i.type) for i in items if i.type not in (NULL, ANY)}
        if len(kinds) > 1:
            raise self.error(node, "a list's items must share one type")
        elem = first_known([i.type for i in items])
        return ListOf(f"list:{elem}", items)

    _Tuple = _List

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> Node:
        operand = self.build(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return Unary(BOOLEAN, "not", operand)
        if isinstance(node.op, ast.USub | ast.UAdd):
            if operand.type not in (*NUMERIC, NULL, ANY):
                raise self.error(node, f"cannot negate {article(operand.type)}")
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand, Literal) and operand.value is not None:
                return Literal(operand.type, -operand.value)
            return Unary(operand.type, "-", operand)
        raise self.error(node, f"{_describe(node.op)} is not allowed in expressions")

    def _BinOp(self, node: ast.BinOp, depth: int) -> Node:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {_describe(node.op)} is not allowed in expressions")
        left, right = self.build(node.left, depth), self.build(node.right, depth)
        lt, rt = left.type, right.type
        if op == "+" and STRING in (lt, rt) and {lt, rt} <= {STRING, NULL, ANY}:
            return Binary(STRING, op, left, right)
        if {lt, rt} <= {*NUMERIC, NULL, ANY}:
            kind = INTEGER if lt == rt == INTEGER and op != "/" else DECIMAL
            if ANY in (lt, rt):
                kind = ANY
            return Binary(kind, op, left, right)
        raise self.error(node, f"cannot use '{op}' on {lt} and {rt}")

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        return Logical(BOOLEAN, op, tuple(self.build(v, depth) for v in node.values))

    def _IfExp(self, node: ast.IfExp, depth: int) -> Node:
        test = self.build(node.test, depth)
        body, orelse = self.build(node.body, depth), self.build(node.orelse, depth)
        if mixed_types([body.type, orelse.type]):
            raise self.error(
                node, f"both branches must have one type, got {body.type} and {orelse.type}"
            )
        return Conditional(first_known([body.type, orelse.type]), test, body, orelse)

    def _Compare(self, node: ast.Compare, depth: int) -> Node:
        left = self.build(node.left, depth)
        parts: list[Node] = []
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = _COMPARE[type(op_node)]
            right = self.build(right_node, depth)
            self._check_compare(node, op, left, right)
            parts.append(Compare(BOOLEAN, op, left, right))
            left = right
        return parts[0] if len(parts) == 1 else Logical(BOOLEAN, "and", tuple(parts))

    def _check_options(self, node: ast.AST, field: Node, literal: Node) -> None:
        """``stage == 'wonn'``: a literal compared with a choice must be one of its options."""
        options_of = getattr(self.scope, "options_of", None)
        if options_of is None or not isinstance(field, FieldRef):
            return
        options = options_of(field.path)
        if not options:
            return
        items = literal.items if isinstance(literal, ListOf) else (literal,)
        for item in items:
            if (
                isinstance(item, Literal)
                and isinstance(item.value, str)
                and item.value not in options
            ):
                raise self.error(
                    node,
                    f"'{item.value}' is not an option of {'.'.join(field.path)}",
                    did_you_mean(item.value, options)
                    or f"options: {', '.join(options[:8])}{', …' if len(options) > 8 else ''}",
                )

    def _check_compare(self, node: ast.AST, op: str, left: Node, right: Node) -> None:
        lt, rt = left.type, right.type
        self._check_options(node, left, right)
        self._check_options(node, right, left)
        if op in ("in", "not_in"):
            if rt.startswith("list:"):
                elem = rt[5:]
                if _compatible(lt, elem):
                    return
                raise self.error(node, f"cannot look for {article(lt)} in a list of {elem}")
            if rt in (STRING, ANY) and lt in (STRING, NULL, ANY):
                return
            raise self.error(node, f"'in' needs a list or a text on its right, got {rt}")
        if not _compatible(lt, rt):
            raise self.error(node, f"cannot compare {lt} with {rt}")
        if op not in ("==", "!=") and (BOOLEAN in (lt, rt) or lt.startswith("list")):
            raise self.error(node, f"cannot order {lt} values with '{op}'")

    def _Call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.error(node, "only the built-in functions may be called")
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise self.error(node, f"unknown function '{name}'", did_you_mean(name, FUNCTIONS))
        if node.keywords:
            raise self.error(node, f"{name}() takes no keyword arguments")
        args = tuple(self.build(arg, depth) for arg in node.args)
        if not function.min_args <= len(args) <= function.max_args:
            expected = (
                str(function.min_args)
                if function.min_args == function.max_args
                else f"{function.min_args} to {function.max_args}"
            )
            raise self.error(node, f"{name}() takes {expected} arguments, got {len(args)}")
        types = [a.type for a in args]
        problem = function.accepts(types)
        if problem:
            raise self.error(node, f"{name}() {problem}")
        return Call(function.result(types), name, args)


def _compatible(a: str, b: str) -> bool:
    return NULL in (a, b) or ANY in (a, b) or _family(a) == _family(b)


def _describe(node: ast.AST) -> str:
    names = {
        "Subscript": "indexing ([...])",
        "Lambda": "lambda",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "DictComp": "a comprehension",
        "SetComp": "a comprehension",
        "Dict": "a mapping ({...})",
        "Set": "a set",
        "JoinedStr": "an f-string",
        "NamedExpr": "assignment (:=)",
        "Starred": "unpacking (*)",
        "Await": "await",
        "Pow": "'**'",
        "FloorDiv": "'//'",
        "BitAnd": "'&'",
        "BitOr": "'|'",
        "BitXor": "'^'",
        "LShift": "'<<'",
        "RShift": "'>>'",
        "MatMult": "'@'",
        "Invert": "'~'",
    }
    return names.get(type(node).__name__, type(node).__name__)


_MISTAKES = (
    (re.compile(r"(?<![=!<>])=(?!=)"), "'=' assigns a value (to compare, write '==')"),
    (re.compile(r"&&"), "write 'and' instead of '&&'"),
    (re.compile(r"\|\|"), "write 'or' instead of '||'"),
    (re.compile(r"!(?!=)"), "write 'not' instead of '!'"),
)


def _syntax_message(text: str, exc: SyntaxError) -> str:
    """A syntax error that names the usual slips, or says where parsing stopped."""
    outside_quotes = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)
    for pattern, advice in _MISTAKES:
        if pattern.search(outside_quotes):
            return f"syntax error: {advice}"
    message = (exc.msg or "invalid syntax").replace("invalid syntax. ", "")
    offset = (exc.offset or 0) - 1
    if 0 <= offset < len(text) and message == "invalid syntax":
        message += f" at '{text[offset : offset + 20]}'"
    return f"syntax error: {message}"


def parse(source: str, scope: Scope, *, expect: str | None = None) -> Expression:
    """Parse, check and compile ``source`` against ``scope``.

    ``expect`` names the type the result must have (``"boolean"`` for guards and rules).

    >>> parse("amount >= 100 and stage in ['won']", scope).evaluate({"amount": 150, "stage": "won"})
    True
    """
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("empty expression")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"expression longer than {MAX_SOURCE} characters")
    text = " ".join(source.splitlines()).strip()
    try:
        with warnings.catch_warnings():
            # '\d' in a text literal is a warning in Python, and an error under -W error;
            # the meaning must not depend on the warning settings: keep it as written.
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(_syntax_message(text, exc), offset=(exc.offset or 1) - 1) from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("expression cannot be parsed") from None
    checker = _Checker(text, scope)
    try:
        root = checker.build(tree.body)
    except RecursionError:
        raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    if expect is not None:
        if root.type == NULL:
            raise ExpressionError("expression is always empty (null)")
        if not _compatible(root.type, expect):
            raise ExpressionError(
                f"expression gives {article(root.type)}, expected {article(expect)}"
            )
        if expect == INTEGER and root.type == DECIMAL:
            raise ExpressionError(
                "expression gives a decimal, expected an integer",
                "round it with round(...), or return decimal",
            )
    return Expression(source, root.type, root, frozenset(checker.fields))


# --- evaluation ------------------------------------------------------------------------


def _number_pair(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, float) and isinstance(b, Decimal):
        return Decimal(repr(a)), b
    if isinstance(b, float) and isinstance(a, Decimal):
        return a, Decimal(repr(b))
    return a, b


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Make two non-null values comparable: dates with datetimes, floats with decimals."""
    if isinstance(a, dt.datetime) != isinstance(b, dt.datetime) and all(
        isinstance(v, dt.date) for v in (a, b)
    ):
        a, b = (_as_datetime(a), _as_datetime(b))
    if (
        isinstance(a, dt.datetime)
        and isinstance(b, dt.datetime)
        and (a.tzinfo is None) != (b.tzinfo is None)
    ):
        a, b = a.replace(tzinfo=a.tzinfo or dt.UTC), b.replace(tzinfo=b.tzinfo or dt.UTC)
    return _number_pair(a, b)


def _as_datetime(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("in", "not_in"):
        # An empty value on the left is in nothing, nor "not in" anything; an empty list
        # or text on the right holds nothing.
        if a is None:
            return False
        found = b is not None and a in b
        return found if op == "in" else not found
    if a is None or b is None:
        if op == "==":
            return a is b
        if op == "!=":
            return a is not b
        return False
    a, b = _comparable(a, b)
    try:
        if op == "==":
            return bool(a == b)
        if op == "!=":
            return bool(a != b)
        return bool(_ORDER[op](a, b))
    except TypeError:
        return False


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and (isinstance(a, str) or isinstance(b, str)):
        return (a or "") + (b or "")  # text + text: an empty side counts as ''
    if a is None or b is None:
        return None
    a, b = _number_pair(a, b)
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return Decimal(a) / Decimal(b) if not isinstance(a, float) else a / b
        # The remainder takes the dividend's sign, as in SQL: -7 % 3 == -1.
        remainder = Decimal(a) % Decimal(b)
        return int(remainder) if isinstance(a, int) and isinstance(b, int) else remainder
    except (ZeroDivisionError, DivisionByZero, InvalidOperation):
        return None
    except TypeError:
        return None


def _lookup(values: Values, path: Path) -> Any:
    value: Any = values
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        else:
            return values.get(".".join(path)) if isinstance(values, Mapping) else None
        if value is None:
            return None
    # A reference at the end of a path (plan.contract) may be loaded as the record it
    # points at, as a one-name reference may: its value is the id.
    return value.get("id") if isinstance(value, Mapping) else value


def _compile_py(node: Node) -> Evaluator:
    if isinstance(node, Literal):
        constant = node.value
        return lambda values, ctx: constant
    if isinstance(node, FieldRef):
        path = node.path
        if len(path) == 1:
            name = path[0]
            # A reference may be loaded as the record it points at: its value is the id.
            return lambda values, ctx: (
                v.get("id") if isinstance(v := values.get(name), Mapping) else v
            )
        return lambda values, ctx: _lookup(values, path)
    if isinstance(node, ListOf):
        items = [_compile_py(item) for item in node.items]
        return lambda values, ctx: [item(values, ctx) for item in items]
    if isinstance(node, Unary):
        inner = _compile_py(node.operand)
        if node.op == "not":
            return lambda values, ctx: not inner(values, ctx)
        return lambda values, ctx: None if (v := inner(values, ctx)) is None else -v
    if isinstance(node, Binary):
        left, right, op = _compile_py(node.left), _compile_py(node.right), node.op
        return lambda values, ctx: _arith(op, left(values, ctx), right(values, ctx))
    if isinstance(node, Compare):
        left, right, cop = _compile_py(node.left), _compile_py(node.right), node.op
        return lambda values, ctx: _compare(cop, left(values, ctx), right(values, ctx))
    if isinstance(node, Logical):
        parts = [_compile_py(v) for v in node.values]
        if node.op == "and":
            return lambda values, ctx: all(bool(p(values, ctx)) for p in parts)
        return lambda values, ctx: any(bool(p(values, ctx)) for p in parts)
    if isinstance(node, Conditional):
        test, body, orelse = (_compile_py(n) for n in (node.test, node.body, node.orelse))
        return lambda values, ctx: body(values, ctx) if test(values, ctx) else orelse(values, ctx)
    if isinstance(node, Call):
        spec = FUNCTIONS[node.name]
        function = spec.body
        args = [_compile_py(a) for a in node.args]
        if spec.contextual:
            return lambda values, ctx: function(ctx, *(a(values, ctx) for a in args))
        return lambda values, ctx: function(*(a(values, ctx) for a in args))
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover - the checker builds only these


@dataclass(frozen=True)
class Expression:
    """A checked expression: its source, result type, tree and the field paths it reads."""

    source: str
    type: str
    tree: Node = field(repr=False)
    fields: frozenset[Path] = field(repr=False)
    _evaluate: Evaluator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_evaluate", _compile_py(self.tree))

    def evaluate(self, values: Values, context: Context = NO_CONTEXT) -> Any:
        """The value for one record's ``values``.

        Paths read nested mappings: ``account.grade`` reads ``{"account": {"grade": "A"}}``.
        """
        return self._evaluate(values, context)

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class MappingScope:
    """A scope from a flat map of path → type; handy for tests and parameters."""

    types: Mapping[str, str]

    def type_of(self, path: Path) -> str:
        name = ".".join(path)
        if name in self.types:
            return self.types[name]
        raise ExpressionError(f"unknown field '{name}'", did_you_mean(name, self.types))
