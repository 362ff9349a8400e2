"""The functions expressions may call: ``today()``, ``days_between(a, b)``, ``round(x, 2)``…

Each :class:`Function` has its arity, the check of its argument types, its result type and
its Python body; the engine keeps the SQL form of each (``engine.sqlexpr``). The
:class:`Context` is what a function may know beyond the record: who evaluates it, and when.
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ._types import ANY, BOOLEAN, DATE, DATETIME, DECIMAL, INTEGER, NULL, NUMERIC, STRING
from ._types import family as _family
from ._types import first_known as _first_known


@dataclass(frozen=True, slots=True)
class Function:
    """A function expressions may call: its arity, argument check and Python body."""

    min_args: int
    max_args: int
    result: Callable[[Sequence[str]], str]
    accepts: Callable[[Sequence[str]], str | None]  # an error message, or None
    body: Callable[..., Any]
    doc: str
    contextual: bool = False  # the body's first argument is the evaluation Context


def local_today() -> dt.date:
    """Today in the deployment's time zone: the process's local time zone, which
    ``HEDDLE_TIME_ZONE`` sets as the platform starts (else the server's ``TZ``). Where
    the engine is not told a user's date (``Actor.today``), "today" is this day."""
    return dt.datetime.now().astimezone().date()


def local_midnight(day: dt.date) -> dt.datetime:
    """The moment ``day`` starts in the deployment's time zone: where a filter on a
    datetime field for that day begins (UTC's midnight for a day at the ends of the
    calendar, which the local zone cannot place)."""
    try:
        return dt.datetime.combine(day, dt.time()).astimezone()
    except (OverflowError, ValueError, OSError):
        return dt.datetime.combine(day, dt.time(), dt.UTC)


def local_zone() -> str:
    """The IANA name of the deployment's time zone, for SQL that converts times itself
    (PostgreSQL's ``timezone(…)``): ``TZ`` (what ``HEDDLE_TIME_ZONE`` sets), else the
    zone ``/etc/localtime`` links to, else ``UTC``."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if not name:
        target = os.path.realpath("/etc/localtime")
        name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


@dataclass(frozen=True, slots=True)
class Context:
    """What an expression may know beyond the record: who evaluates it, and when.

    ``today`` defaults to the date in the deployment's time zone (:func:`local_today`),
    ``now`` to the present moment; pass the user's own date so that "overdue" means
    overdue where the user is.
    """

    user_id: int | None = None
    team_id: int | None = None
    today: dt.date | None = None
    now: dt.datetime | None = None

    def current_date(self) -> dt.date:
        return self.today or local_today()

    def current_time(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)


NO_CONTEXT = Context()


def _want(*allowed: str) -> Callable[[Sequence[str]], str | None]:
    def check(types: Sequence[str]) -> str | None:
        for t in types:
            if t not in (*allowed, NULL, ANY):
                return f"expects {' or '.join(allowed)}, got {t}"
        return None

    return check


def mixed_types(types: Sequence[str]) -> str | None:
    known = {_family(t) for t in types if t not in (NULL, ANY)}
    return None if len(known) <= 1 else f"arguments must share one type, got {', '.join(types)}"


def _fixed(result: str) -> Callable[[Sequence[str]], str]:
    return lambda _types: result


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _nullsafe(func: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if any(arg is None for arg in args):
            return None
        return func(*args)

    return call


def _round(value: Any, places: int | None = None) -> Any:
    if value is None:
        return None
    # Half away from zero, as SQL's round() does (2.5 → 3, -2.5 → -3).
    exponent = Decimal(1).scaleb(-int(places or 0))
    rounded = Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP)
    return int(rounded) if places is None else rounded


FUNCTIONS: dict[str, Function] = {
    "today": Function(
        0, 0, _fixed(DATE), _want(), Context.current_date, "Today's date.", contextual=True
    ),
    "now": Function(
        0, 0, _fixed(DATETIME), _want(), Context.current_time, "The current time.", contextual=True
    ),
    "current_user": Function(
        0,
        0,
        _fixed(INTEGER),
        _want(),
        lambda ctx: ctx.user_id,
        "The id of the user evaluating the expression: `owner_id == current_user()`.",
        contextual=True,
    ),
    "current_team": Function(
        0,
        0,
        _fixed(INTEGER),
        _want(),
        lambda ctx: ctx.team_id,
        "The id of the current user's team.",
        contextual=True,
    ),
    "text": Function(
        1,
        1,
        _fixed(STRING),
        _want(INTEGER, STRING, DATE, BOOLEAN),
        _nullsafe(_as_text),
        "An integer, date or boolean as text (dates as 2024-07-09, booleans as true/false): "
        "`concat(number, ' #', text(period))`.",
    ),
    "days_between": Function(
        2,
        2,
        _fixed(INTEGER),
        _want(DATE, DATETIME),
        _nullsafe(lambda a, b: (_as_date(b) - _as_date(a)).days),
        "Calendar days from the first date to the second: `days_between(created_at, today())`.",
    ),
    "add_days": Function(
        2,
        2,
        _fixed(DATE),
        lambda ts: _want(DATE, DATETIME)(ts[:1]) or _want(INTEGER)(ts[1:]),
        _nullsafe(lambda d, n: _as_date(d) + dt.timedelta(days=int(n))),
        "The date n days after (or before, if negative): `add_days(sign_date, 30)`.",
    ),
    "year": Function(
        1,
        1,
        _fixed(INTEGER),
        _want(DATE, DATETIME),
        _nullsafe(lambda d: d.year),
        "The year of a date.",
    ),
    "month": Function(
        1,
        1,
        _fixed(INTEGER),
        _want(DATE, DATETIME),
        _nullsafe(lambda d: d.month),
        "The month (1–12) of a date.",
    ),
    "day": Function(
        1,
        1,
        _fixed(INTEGER),
        _want(DATE, DATETIME),
        _nullsafe(lambda d: d.day),
        "The day of the month of a date.",
    ),
    "len": Function(
        1,
        1,
        _fixed(INTEGER),
        lambda ts: None if ts[0].startswith("list") else _want(STRING)(ts),
        _nullsafe(len),
        "Length of a text or a multichoice.",
    ),
    "lower": Function(1, 1, _fixed(STRING), _want(STRING), _nullsafe(str.lower), "Lowercase text."),
    "upper": Function(1, 1, _fixed(STRING), _want(STRING), _nullsafe(str.upper), "Uppercase text."),
    "trim": Function(
        1,
        1,
        _fixed(STRING),
        _want(STRING),
        _nullsafe(str.strip),
        "Text without leading and trailing spaces.",
    ),
    "startswith": Function(
        2,
        2,
        _fixed(BOOLEAN),
        _want(STRING),
        lambda s, p: s is not None and p is not None and s.startswith(p),
        "Whether text starts with a prefix.",
    ),
    "concat": Function(
        1,
        20,
        _fixed(STRING),
        _want(STRING),
        lambda *parts: "".join(p for p in parts if p is not None),
        "Joins texts; empty values count as ''.",
    ),
    "coalesce": Function(
        2,
        10,
        _first_known,
        mixed_types,
        lambda *args: next((a for a in args if a is not None), None),
        "The first argument that is not empty.",
    ),
    "is_empty": Function(
        1,
        1,
        _fixed(BOOLEAN),
        lambda ts: None,
        lambda v: v is None or v == "" or v == [],
        "Whether a value is empty.",
    ),
    "round": Function(
        1,
        2,
        lambda ts: INTEGER if len(ts) == 1 else DECIMAL,
        lambda ts: _want(*NUMERIC)(ts[:1]) or _want(INTEGER)(ts[1:]),
        _round,
        "A number rounded to n decimal places, half away from zero; "
        "with no n, to an integer: `round(amount)`, `round(amount, 2)`.",
    ),
    "abs": Function(1, 1, _first_known, _want(*NUMERIC), _nullsafe(abs), "Absolute value."),
    "min": Function(
        2,
        10,
        _first_known,
        mixed_types,
        lambda *a: min((x for x in a if x is not None), default=None),
        "The smallest argument.",
    ),
    "max": Function(
        2,
        10,
        _first_known,
        mixed_types,
        lambda *a: max((x for x in a if x is not None), default=None),
        "The largest argument.",
    ),
}
