"""What the kanban and calendar pages show, built from the Model and the rows the
platform's views read (no queries, no permissions decided here).

A kanban groups cards in columns by a choice field (a workflow's state field, or a plain
choice); each column carries its count and, when the view names one, the sum of a number
field. A calendar lays records on the days of a month or a week by a date field::

    >>> board = kanban_columns(entity, "stage", "en", cards_by_value, counts, sums)
    >>> [c.label for c in board]
    ['Initial contact', 'Needs analysis', …]
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metamodel import Entity

from .pages import Option, Slot, cell, choice_options, record_title


@dataclass(frozen=True)
class Card:
    """One record on a kanban: its title, the view's fields and what moving it needs."""

    id: int
    title: str
    value: str  # the column it is in
    version: int
    fields: tuple[Slot, ...]


@dataclass(frozen=True)
class KanbanColumn:
    value: str
    label: str
    color: str | None
    cards: tuple[Card, ...]
    count: int
    estimated: bool = False
    total: Any = None  # the sum of the view's ``sum`` field over the whole column
    more: int = 0  # cards in the column beyond those shown


@dataclass(frozen=True)
class Kanban:
    field: str
    field_label: str
    kind: str  # "state" (moves fire transitions) or "choice" (moves update the field)
    columns: tuple[KanbanColumn, ...]
    targets: tuple[Option, ...]  # the "Move to" choices
    sum_field: Slot | None = None  # label, type and currency of the summed field
    movable: bool = False


def card(
    entity: Entity,
    row: Mapping[str, Any],
    group_field: str,
    names: Sequence[str],
    locale: str,
    currency: str,
) -> Card:
    """A row as a card: the title, then each of ``names`` (empty values left out)."""
    slots = tuple(s for s in (cell(entity, n, row, locale, currency) for n in names) if not s.empty)
    return Card(
        int(row["id"]),
        record_title(entity, row, locale),
        str(row.get(group_field) or ""),
        int(row.get("version") or 0),
        slots,
    )


def kanban_columns(
    entity: Entity,
    group_field: str,
    locale: str,
    cards: Mapping[str, Sequence[Card]],
    counts: Mapping[str, tuple[int, bool]],
    totals: Mapping[str, Any] | None = None,
) -> tuple[KanbanColumn, ...]:
    """One column per option of ``group_field``, in the field's order, with its cards,
    its count (and whether it is an estimate) and its total."""
    field = entity.fields[group_field]
    found = []
    for option in choice_options(field, locale, ()):
        shown = tuple(cards.get(option.value, ()))
        count, estimated = counts.get(option.value, (len(shown), False))
        found.append(
            KanbanColumn(
                option.value,
                option.label,
                option.color,
                shown,
                count,
                estimated,
                None if totals is None else totals.get(option.value),
                max(count - len(shown), 0),
            )
        )
    return tuple(found)


# --- calendar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A record on a day: its title, its time (for a datetime field) and colour."""

    id: int
    title: str
    time: str = ""
    color: str | None = None
    label: str = ""  # the colour field's label (the state, the priority…)


@dataclass(frozen=True)
class Day:
    date: dt.date
    entries: tuple[Entry, ...]
    in_month: bool = True
    today: bool = False


@dataclass(frozen=True)
class Calendar:
    """A month (weeks of seven days, Monday first) or one week."""

    mode: str  # "month" or "week"
    start: dt.date  # the first day of the month, or the Monday of the week
    weeks: tuple[tuple[Day, ...], ...]
    weekdays: tuple[str, ...]
    previous: dt.date
    following: dt.date


def month_span(first: dt.date) -> tuple[dt.date, dt.date]:
    """The first and the day after the last day the month's grid shows (whole weeks)."""
    start = first - dt.timedelta(days=first.weekday())
    days = _calendar.monthrange(first.year, first.month)[1]
    last = first.replace(day=days)
    end = last + dt.timedelta(days=7 - last.weekday())
    return start, end


def week_span(day: dt.date) -> tuple[dt.date, dt.date]:
    start = day - dt.timedelta(days=day.weekday())
    return start, start + dt.timedelta(days=7)


def calendar_grid(
    mode: str,
    anchor: dt.date,
    entries: Mapping[dt.date, Sequence[Entry]],
    today: dt.date,
    weekdays: Sequence[str],
) -> Calendar:
    """The days of the month of ``anchor`` (or its week), each with its entries."""
    if mode == "week":
        start, end = week_span(anchor)
        first = start
        previous, following = start - dt.timedelta(days=7), end
    else:
        first = anchor.replace(day=1)
        start, end = month_span(first)
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
    days = []
    day = start
    while day < end:
        in_month = mode == "week" or day.month == first.month
        days.append(Day(day, tuple(entries.get(day, ())), in_month, day == today))
        day += dt.timedelta(days=1)
    weeks = tuple(tuple(days[i : i + 7]) for i in range(0, len(days), 7))
    return Calendar(mode, first, weeks, tuple(weekdays), previous, following)
