"""What a column's type change does to the rows already there, and the data checks that
refuse a change before it loses or breaks a value.

Types are compared as :class:`ColumnType` (a kind plus its length, precision or scale), so
a column built from the Model and one reflected from the live database compare alike on
both SQLite and PostgreSQL. :func:`conversion` says whether a change is possible in place,
which rows it must check, and how the values are converted.

Every check returns a :class:`Finding`: how many rows break the rule and the first ids,
turned into one line of a refusal (``account.code: 3 rows are longer than 20 characters
(ids 4, 9, 17)``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator

#: How many ids a refusal names; the count is always exact.
SHOWN_IDS = 10
INT32 = 2**31 - 1
INT64 = 2**63 - 1


class ColumnType(NamedTuple):
    """A column type as the data sees it: ``string(20)``, ``decimal(18,2)``, ``date``…"""

    kind: str  # string text integer decimal boolean date datetime json other
    length: int | None = None  # string: characters; integer: bytes (4 or 8)
    precision: int | None = None
    scale: int | None = None
    name: str = ""  # other: the type's SQL, for messages

    def __str__(self) -> str:
        if self.kind == "string":
            return f"string({self.length})" if self.length else "string"
        if self.kind == "integer":
            return "bigint" if self.length == 8 else "integer"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "other":
            return self.name
        return self.kind


def resolve(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> sa.types.TypeEngine[Any]:
    """The type a dialect really uses: variants chosen, decorators unwrapped."""
    variants = getattr(type_, "_variant_mapping", None)
    if variants and dialect.name in variants:
        type_ = variants[dialect.name]
    if isinstance(type_, TypeDecorator):
        return resolve(type_.impl_instance, dialect)
    return type_


def describe(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> ColumnType:
    """The :class:`ColumnType` of a built or reflected column type."""
    type_ = resolve(type_, dialect)
    if isinstance(type_, sa.JSON):
        return ColumnType("json")
    if isinstance(type_, sa.Text):
        return ColumnType("text")
    if isinstance(type_, sa.String):
        return ColumnType("string", type_.length) if type_.length else ColumnType("text")
    if isinstance(type_, sa.Boolean):
        return ColumnType("boolean")
    if isinstance(type_, sa.BigInteger):
        return ColumnType("integer", 8)
    if isinstance(type_, sa.Integer):
        return ColumnType("integer", 4)
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        return ColumnType("decimal", precision=type_.precision, scale=type_.scale)
    if isinstance(type_, sa.DateTime):
        return ColumnType("datetime")
    if isinstance(type_, sa.Date):
        return ColumnType("date")
    try:
        name = type_.compile(dialect=dialect)
    except sa.exc.CompileError:  # pragma: no cover - a type no dialect knows
        name = repr(type_)
    return ColumnType("other", name=name)


def same_storage(old: ColumnType, new: ColumnType, dialect: Dialect) -> bool:
    """Whether two types store values alike, so no ALTER is needed.

    SQLite stores every integer alike, whatever the declared size; a decimal reflected
    without precision (a column made by hand) is taken as it is.
    """
    if old == new:
        return True
    if old.kind == new.kind == "integer":
        return dialect.name == "sqlite" or old.length == new.length
    return old.kind == new.kind == "decimal" and old.precision is None


# --- findings -----------------------------------------------------------------------


SINGULAR = {
    "are": "is",
    "have": "has",
    "hold": "holds",
    "use": "uses",
    "point": "points",
    "share": "shares",
    "do": "does",
}


@dataclass(frozen=True)
class Finding:
    """Rows that break a rule: the exact count and the first ids (when rows have ids)."""

    count: int
    ids: tuple[Any, ...] = ()

    def rows(self, phrase: str) -> str:
        """``"3 rows are …"`` / ``"1 row is …"``: the phrase's first word agrees."""
        verb, _, rest = phrase.partition(" ")
        if self.count == 1:
            verb = SINGULAR.get(verb, verb)
        text = f"{self.count:,} row{'s' if self.count != 1 else ''} {verb}"
        return f"{text} {rest}" if rest else text

    @property
    def where(self) -> str:
        if not self.ids:
            return ""
        shown = ", ".join(str(i) for i in self.ids[:SHOWN_IDS])
        more = f", … ({self.count - SHOWN_IDS:,} more)" if self.count > SHOWN_IDS else ""
        return f" (id{'s' if self.count != 1 else ''} {shown}{more})"


def light_table(name: str, *columns: str) -> sa.TableClause:
    """A table without types: checks read raw stored values on both databases."""
    return sa.table(name, *(sa.column(c) for c in dict.fromkeys(columns)))


def count_rows(
    conn: Connection,
    table: str,
    condition: Callable[[sa.TableClause], sa.ColumnElement[bool]],
    has_id: bool = True,
    columns: Sequence[str] = (),
) -> Finding:
    """How many rows of ``table`` meet ``condition`` (built on the table given to it, which
    has ``id`` and ``columns``), and the first ids."""
    t = light_table(table, "id", *columns)
    where = condition(t)
    count = conn.scalar(sa.select(sa.func.count()).select_from(t).where(where)) or 0
    if not count or not has_id:
        return Finding(int(count))
    ids = conn.scalars(sa.select(t.c.id).where(where).order_by(t.c.id).limit(SHOWN_IDS)).all()
    return Finding(int(count), tuple(ids))


def scan_rows(
    conn: Connection, table: str, column: str, bad: Callable[[Any], bool], has_id: bool = True
) -> Finding:
    """Rows whose raw stored ``column`` value ``bad`` rejects, read in batches.

    For rules SQL cannot say alike on both databases (is this text a whole number?).
    """
    t = light_table(table, "id" if has_id else column, column)
    query = sa.select(*([t.c.id] if has_id else []), t.c[column]).where(t.c[column].is_not(None))
    if has_id:
        query = query.order_by(t.c.id)
    count, ids = 0, list[Any]()
    result = conn.execute(query.execution_options(yield_per=5000))
    for row in result:
        if bad(row[-1]):
            count += 1
            if has_id and len(ids) < SHOWN_IDS:
                ids.append(row[0])
    return Finding(count, tuple(ids))


def has_rows(conn: Connection, table: str) -> bool:
    t = sa.table(table)
    return conn.scalar(sa.select(sa.literal(1)).select_from(t).limit(1)) is not None


# --- conversions --------------------------------------------------------------------

#: A check of a column's rows: (connection, table, column, has_id) → refusal text or None
Check = Callable[[Connection, str, str, bool], str | None]
#: A condition on one column
Condition = Callable[[sa.ColumnClause[Any]], sa.ColumnElement[bool]]
#: How PostgreSQL converts the old value (``USING``): column → expression
Using = Callable[[sa.ColumnClause[Any]], sa.ColumnElement[Any]]


@dataclass(frozen=True)
class Conversion:
    """How one type becomes another in place."""

    checks: tuple[Check, ...] = ()
    using: Using | None = None  # PostgreSQL; None: a plain CAST
    sqlite_fix: Using | None = None  # SQLite: an UPDATE after the table is rebuilt


def _length_check(limit: int, as_text: bool = False) -> Check:
    def check(conn: Connection, table: str, column: str, has_id: bool) -> str | None:
        def longer(t: sa.TableClause) -> sa.ColumnElement[bool]:
            value = sa.cast(t.c[column], sa.Text()) if as_text else t.c[column]
            return sa.func.length(value) > limit

        found = count_rows(conn, table, longer, has_id, [column])
        if not found.count:
            return None
        return f"{found.rows('are')} longer than {limit} characters{found.where}"

    return check


def _scan_check(bad: Callable[[Any], bool], problem: str) -> Check:
    def check(conn: Connection, table: str, column: str, has_id: bool) -> str | None:
        found = scan_rows(conn, table, column, bad, has_id)
        return f"{found.rows(problem)}{found.where}" if found.count else None

    return check


def _sql_check(condition: Condition, problem: str) -> Check:
    def check(conn: Connection, table: str, column: str, has_id: bool) -> str | None:
        found = count_rows(conn, table, lambda t: condition(t.c[column]), has_id, [column])
        return f"{found.rows(problem)}{found.where}" if found.count else None

    return check


def _not_integer(limit: int) -> Callable[[Any], bool]:
    def bad(value: Any) -> bool:
        try:
            number = int(str(value).strip())
        except ValueError:
            return True
        return not -limit - 1 <= number <= limit

    return bad


def _not_decimal(precision: int, scale: int) -> Callable[[Any], bool]:
    def bad(value: Any) -> bool:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return True
        if not number.is_finite():
            return True
        if number != number.quantize(Decimal(1).scaleb(-scale)):
            return True
        return abs(number) >= Decimal(10) ** (precision - scale)

    return bad


def _not_iso_date(value: Any) -> bool:
    text = str(value)
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return True
    return len(text) != 10


def _has_time_of_day(value: Any) -> bool:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return bool(value.time() != dt.time(0))
    return False


def _utc(col: sa.ColumnClause[Any]) -> sa.ColumnElement[Any]:
    return sa.func.timezone("UTC", col)


def conversion(old: ColumnType, new: ColumnType) -> Conversion | None:
    """How ``old`` becomes ``new`` in place, or None when it cannot be done safely.

    Safe without looking at rows: a longer string, string → text, integer → bigint or a
    decimal wide enough, date → datetime (midnight UTC), more decimal digits. The others
    check every row first and are refused if one value would be cut, rounded or fail.
    """
    textual = ("string", "text")
    limit = new.length or 0
    if old.kind in textual and new.kind in textual:
        if new.kind == "text" or (old.kind == "string" and (old.length or 0) <= limit):
            return Conversion()
        return Conversion((_length_check(limit),))
    if old.kind in textual and new.kind == "integer":
        top = INT64 if new.length == 8 else INT32
        return Conversion(
            (_scan_check(_not_integer(top), "do not hold a whole number in range"),),
            using=lambda c: sa.cast(sa.func.trim(c), sa.BigInteger if top == INT64 else sa.Integer),
            sqlite_fix=lambda c: sa.cast(sa.func.trim(c), sa.Integer),
        )
    if old.kind in textual and new.kind == "decimal":
        p, s = new.precision or 18, new.scale or 0
        return Conversion(
            (_scan_check(_not_decimal(p, s), f"do not hold a number that fits decimal({p},{s})"),),
            using=lambda c: sa.cast(sa.func.trim(c), sa.Numeric(p, s)),
            sqlite_fix=lambda c: sa.cast(sa.func.trim(c), sa.Numeric()),
        )
    if old.kind in textual and new.kind == "date":
        return Conversion((_scan_check(_not_iso_date, "do not hold a date written YYYY-MM-DD"),))
    if old.kind == "integer" and new.kind == "integer":
        if (new.length or 4) >= (old.length or 4):
            return Conversion()
        outside = _sql_check(
            lambda c: sa.or_(c > INT32, c < -INT32 - 1), "are outside the integer range"
        )
        return Conversion((outside,))
    if old.kind == "integer" and new.kind == "decimal":
        digits = (new.precision or 18) - (new.scale or 0)
        if digits >= (19 if old.length == 8 else 10):
            return Conversion()
        return Conversion(
            (_sql_check(lambda c: sa.func.abs(c) >= 10**digits, f"are too large for {new}"),)
        )
    if old.kind == "integer" and new.kind in textual:
        if new.kind == "text" or limit >= 20:
            return Conversion()
        return Conversion((_length_check(limit, as_text=True),))
    if old.kind == "decimal" and new.kind == "decimal":
        return _decimal_to_decimal(old, new)
    if old.kind == "decimal" and new.kind == "integer":
        old_scale = old.scale or 0
        top = INT64 if new.length == 8 else INT32
        return Conversion(
            (
                _sql_check(
                    lambda c: sa.func.round(c, old_scale) != sa.func.round(c, 0),
                    "have decimals that would be lost",
                ),
                _sql_check(lambda c: sa.func.abs(c) > top, "are outside the integer range"),
            ),
            sqlite_fix=lambda c: sa.cast(sa.func.round(c), sa.Integer),
        )
    if old.kind == "date" and new.kind == "datetime":
        return Conversion(
            using=lambda c: sa.func.timezone("UTC", sa.cast(c, sa.DateTime())),
            sqlite_fix=lambda c: c.concat(" 00:00:00.000000"),
        )
    if old.kind == "datetime" and new.kind == "date":
        return Conversion(
            (_scan_check(_has_time_of_day, "have a time of day that would be lost"),),
            using=lambda c: sa.cast(_utc(c), sa.Date()),
            sqlite_fix=lambda c: sa.func.substr(c, 1, 10),
        )
    if old.kind == "date" and new.kind in textual:
        return Conversion(() if new.kind == "text" or limit >= 10 else (_length_check(limit),))
    if old.kind == new.kind == "json":
        return Conversion()
    return None


def _decimal_to_decimal(old: ColumnType, new: ColumnType) -> Conversion:
    old_scale, new_scale = old.scale or 0, new.scale or 0
    checks: list[Check] = []
    if new_scale < old_scale:
        checks.append(
            _sql_check(
                lambda c: sa.func.round(c, old_scale) != sa.func.round(c, new_scale),
                f"have more than {new_scale} decimal{'s' if new_scale != 1 else ''}"
                " and would be rounded",
            )
        )
    digits = (new.precision or 18) - new_scale
    if old.precision is None or digits < (old.precision - old_scale):
        checks.append(
            _sql_check(
                lambda c: sa.func.abs(sa.func.round(c, new_scale)) >= 10**digits,
                f"are too large for {new}",
            )
        )
    return Conversion(tuple(checks))


def unsupported(column: str, old: ColumnType, new: ColumnType) -> str:
    return (
        f"{column}: cannot change {old} to {new} in place; add a new field, copy the values"
        " over, then remove the old one"
    )


# --- field rules --------------------------------------------------------------------


def missing_values(
    conn: Connection, table: str, column: str, kind: ColumnType, has_id: bool = True
) -> Finding:
    """Rows without a value the way the record service sees it: NULL, '' or []."""

    def empty(t: sa.TableClause) -> sa.ColumnElement[bool]:
        col = t.c[column]
        if kind.kind in ("string", "text"):
            return sa.or_(col.is_(None), col == "")
        if kind.kind == "json":
            return sa.or_(col.is_(None), sa.cast(col, sa.Text()) == "[]")
        return col.is_(None)

    return count_rows(conn, table, empty, has_id, [column])


def duplicates(
    conn: Connection, table: str, columns: Sequence[str], has_id: bool = True
) -> tuple[Finding, list[tuple[Any, ...]]]:
    """Rows sharing their (non-null) values of ``columns`` with another row, and a few of
    those values."""
    t = light_table(table, "id", *columns)
    cols = [t.c[c] for c in columns]
    not_null = sa.and_(*(c.is_not(None) for c in cols))
    groups = sa.select(*cols).where(not_null).group_by(*cols).having(sa.func.count() > 1).subquery()
    joined = t.join(groups, sa.and_(*(t.c[c] == groups.c[c] for c in columns)))
    count = conn.scalar(sa.select(sa.func.count()).select_from(joined)) or 0
    if not count:
        return Finding(0), []
    values = [tuple(row) for row in conn.execute(sa.select(groups).limit(3))]
    ids: tuple[Any, ...] = ()
    if has_id:
        ids = tuple(
            conn.scalars(sa.select(t.c.id).select_from(joined).order_by(t.c.id).limit(SHOWN_IDS))
        )
    return Finding(int(count), ids), values


def orphans(conn: Connection, table: str, column: str, target: str, has_id: bool = True) -> Finding:
    """Rows whose ``column`` points at no row of ``target``."""
    ref = light_table(target, "id").alias("target")

    def dangling(t: sa.TableClause) -> sa.ColumnElement[bool]:
        col = t.c[column]
        return sa.and_(col.is_not(None), ~sa.exists().where(ref.c.id == col))

    return count_rows(conn, table, dangling, has_id, [column])


def using_values(
    conn: Connection,
    table: str,
    column: str,
    values: Iterable[str],
    multiple: bool,
    has_id: bool = True,
    *,
    outside: bool = False,
) -> tuple[Finding, set[str]]:
    """Rows whose choice (or one of whose multichoice values) is in ``values`` — or, with
    ``outside``, is not in them — and which of those values occur."""
    wanted = set(values)
    seen: set[str] = set()

    def items(raw: Any) -> list[str]:
        if not multiple:
            return [str(raw)]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return [raw]
        return [str(v) for v in raw] if isinstance(raw, list) else [str(raw)]

    def bad(raw: Any) -> bool:
        hits = [v for v in items(raw) if (v not in wanted) == outside]
        seen.update(hits)
        return bool(hits)

    return scan_rows(conn, table, column, bad, has_id), seen


def quoted(values: Iterable[Any], limit: int = 5) -> str:
    items = sorted(values, key=str)
    text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in items[:limit])
    return text + (", …" if len(items) > limit else "")
