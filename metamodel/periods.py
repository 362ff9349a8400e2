"""Periods named relative to a day: ``this_month``, ``last_quarter``, ``year_to_date``…

List filters (``close_date=this_quarter``) and report parameters (``period: last_12_months``)
name them; each resolves, for the user's today, to ``[first day, day after the last)``.
Weeks start on Monday; ``last_12_months`` is the twelve calendar months ending with this
one, and the ``…_to_date`` periods end with today.

>>> RELATIVE_DATES["last_quarter"](dt.date(2024, 5, 15))
(datetime.date(2024, 1, 1), datetime.date(2024, 4, 1))
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType


def _month_start(day: dt.date, months: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _quarter_start(day: dt.date, quarters: int = 0) -> dt.date:
    first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return _month_start(first, 3 * quarters)


def _week_start(day: dt.date, weeks: int = 0) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) + dt.timedelta(weeks=weeks)


def _days(start: int, count: int) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    def period(today: dt.date) -> tuple[dt.date, dt.date]:
        first = today + dt.timedelta(days=start)
        return first, first + dt.timedelta(days=count)

    return period


def _span(
    start: Callable[[dt.date, int], dt.date], offset: int
) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    return lambda today: (start(today, offset), start(today, offset + 1))


def _year(offset: int) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    return lambda today: (
        dt.date(today.year + offset, 1, 1),
        dt.date(today.year + offset + 1, 1, 1),
    )


#: Relative date name → today ↦ [first day, day after the last).
RELATIVE_DATES: Mapping[str, Callable[[dt.date], tuple[dt.date, dt.date]]] = MappingProxyType(
    {
        "today": _days(0, 1),
        "yesterday": _days(-1, 1),
        "tomorrow": _days(1, 1),
        "this_week": _span(_week_start, 0),
        "last_week": _span(_week_start, -1),
        "next_week": _span(_week_start, 1),
        "this_month": _span(_month_start, 0),
        "last_month": _span(_month_start, -1),
        "next_month": _span(_month_start, 1),
        "this_quarter": _span(_quarter_start, 0),
        "last_quarter": _span(_quarter_start, -1),
        "this_year": _year(0),
        "last_year": _year(-1),
        "last_7_days": _days(-6, 7),
        "last_30_days": _days(-29, 30),
        "next_30_days": _days(0, 30),
        "last_90_days": _days(-89, 90),
        "month_to_date": lambda today: (_month_start(today), today + dt.timedelta(days=1)),
        "quarter_to_date": lambda today: (_quarter_start(today), today + dt.timedelta(days=1)),
        "year_to_date": lambda today: (dt.date(today.year, 1, 1), today + dt.timedelta(days=1)),
        "next_quarter": _span(_quarter_start, 1),
        "last_12_months": lambda today: (_month_start(today, -11), _month_start(today, 1)),
    }
)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_period(text: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """``[first day, day after the last)`` of a period written as a relative name
    (``this_month``), a day (``2024-03-05``) or two days (``2024-01-01..2024-03-31``,
    both included); :class:`ValueError` saying the forms otherwise.

    >>> parse_period("2024-01-01..2024-03-31", dt.date(2024, 5, 15))
    (datetime.date(2024, 1, 1), datetime.date(2024, 4, 1))
    """
    text = text.strip()
    if text in RELATIVE_DATES:
        return RELATIVE_DATES[text](today)
    first, sep, last = text.partition("..")
    try:
        start = _day(first)
        end = _day(last) if sep else start
    except ValueError:
        raise ValueError(
            f"'{text[:40]}' is not a period: write a day (2024-07-31), two days "
            f"(2024-01-01..2024-03-31) or one of: {', '.join(RELATIVE_DATES)}"
        ) from None
    if end < start:
        raise ValueError(f"the period '{text}' ends before it starts")
    return start, end + dt.timedelta(days=1)


def _day(text: str) -> dt.date:
    if not _DAY.fullmatch(text.strip()):
        raise ValueError(text)
    day = dt.date.fromisoformat(text.strip())
    if not dt.date.min < day < dt.date.max:
        raise ValueError(text)
    return day
