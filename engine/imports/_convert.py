"""Spreadsheet cells to the values the record service takes, per field type.

People type values the way their spreadsheet shows them: ``1,250.50``, ``１２５０``,
``15%``, ``2026/12/07``, ``2026年12月7日``, ``是``, the label ``A类（重点客户）`` of a
choice. Each converter returns the value as the API takes it (ISO dates, decimals as
text, choice values) or raises :class:`CellError` with a message for the row's report.
References, users and teams are found by :class:`~engine.imports._lookup.Lookups`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from metamodel import Field

DATE_ORDERS = ("ymd", "dmy", "mdy")
TRUE_WORDS = frozenset(
    {"true", "yes", "y", "1", "on", "x", "✓", "✔", "是", "对", "真", "有", "はい", "済", "○", "〇"}
)
FALSE_WORDS = frozenset(
    {"false", "no", "n", "0", "off", "否", "不是", "假", "无", "いいえ", "無", "×", "-"}
)
LIST_SEPARATORS = re.compile(r"\s*[,;，；、|\n]\s*")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_SHORT = re.compile(r"(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})")
_HEADER_MARKS = re.compile(r"[\s_*:：()（）\[\]【】]+")
_NUMBER_MARKS = re.compile(r"[\s,'_¥$€£元円%]|RMB|CNY|JPY|USD")
_TIME = re.compile(r"(\d{1,2})\s*[:時时]\s*(\d{1,2})(?:\s*[:分]\s*(\d{1,2}(?:\.\d+)?))?\s*秒?")


#: The templates of the messages a row is refused with (``template`` in a report's row
#: errors, with its ``params``): msgids of the interface's catalogs, so the screens say
#: them in the user's language (tests/ui_renderer/test_translations.py keeps them there).
MESSAGES: list[str] = []


def msgid(template: str) -> str:
    """``template`` (English, with ``%(name)s`` places), listed in :data:`MESSAGES`."""
    MESSAGES.append(template)
    return template


# What a cell may be refused for (see CellError).
NOT_A_NUMBER = msgid("Not a number.")
NOT_THIS_NUMBER = msgid("Not a number: '%(text)s'.")
NOT_WHOLE = msgid("Not a whole number: '%(text)s'.")
NOT_YES_OR_NO = msgid("Not yes or no: '%(text)s' (use true/false, yes/no, 是/否, はい/いいえ).")
NOT_A_DATE = msgid("Not a date: '%(text)s'; write it like 2026-12-07.")
DATE_ORDER = msgid(
    "Not a date: '%(text)s' (choose the date order: dmy or mdy); write it like 2026-12-07."
)
NO_SUCH_DATE = msgid("No such date: '%(text)s'.")
NOT_A_TIME = msgid("Not a time: '%(text)s'.")
UNKNOWN_CHOICE = msgid("Unknown choice '%(text)s'; the choices: %(choices)s (or map it to one).")


class CellError(ValueError):
    """A cell that cannot be read as its field's value; the message is for the user.

    ``template`` is the message with ``%(name)s`` places for ``params``: a screen says it
    in the user's language (the English templates are msgids of the interface's
    catalogs, :data:`engine.imports.MESSAGES`); ``str()`` gives it in English."""

    def __init__(self, template: str, **params: Any) -> None:
        self.template, self.params = template, params
        super().__init__(template % params if params else template)


@dataclass(frozen=True)
class Conversion:
    """How cells are read: the order of day, month and year in dates such as
    ``07.12.2026`` (``dmy``) or ``12/07/2026`` (``mdy``) — ISO and Chinese or Japanese
    dates are read whatever it says — and, per field, a map of texts to choice values."""

    date_order: str = "ymd"
    value_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def fold(text: str) -> str:
    """A text as matching compares it: NFKC (full-width to half-width), case-folded,
    without spaces and the marks people add to headers (``*Name``, ``Name:``)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _HEADER_MARKS.sub("", folded)


def text(cell: Any) -> str:
    """A cell as text: whole floats without their ``.0`` (a phone read as a number)."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime | dt.date):
        return cell.isoformat()
    return str(cell).strip()


def empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def number(cell: Any) -> Decimal:
    """``1,250.50``, ``１２５０``, ``1 250``, ``¥1,250``, ``15%`` (as 15), ``(300)``."""
    if isinstance(cell, bool):
        raise CellError(NOT_A_NUMBER)
    if isinstance(cell, int | Decimal):
        return Decimal(cell)
    if isinstance(cell, float):
        return Decimal(repr(cell))
    raw = unicodedata.normalize("NFKC", str(cell)).strip()
    negative = raw.startswith("(") and raw.endswith(")")
    cleaned = _NUMBER_MARKS.sub("", raw.strip("()"))
    if not _NUMBER.fullmatch(cleaned):
        raise CellError(NOT_THIS_NUMBER, text=raw)
    try:
        value = Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise CellError(NOT_THIS_NUMBER, text=raw) from None
    return -value if negative else value


def integer(cell: Any) -> int:
    value = number(cell)
    if value != value.to_integral_value():
        raise CellError(NOT_WHOLE, text=text(cell))
    return int(value)


def decimal_text(cell: Any, field: Field) -> str:
    value = number(cell)
    scale = field.scale if field.scale is not None else 2
    if isinstance(cell, float):  # a spreadsheet's binary float: keep the field's places
        value = value.quantize(Decimal(1).scaleb(-scale))
    return format(value.normalize() if value == value.to_integral_value() else value, "f")


def boolean(cell: Any) -> bool:
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, int | float) and cell in (0, 1):
        return bool(cell)
    word = fold(text(cell))
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CellError(NOT_YES_OR_NO, text=text(cell))


def date(cell: Any, order: str = "ymd") -> dt.date:
    """``2026-12-07``, ``2026/12/07``, ``2026.12.7``, ``2026年12月7日``; ``07.12.2026``
    and ``12/07/2026`` as ``order`` says (``dmy`` or ``mdy``); a spreadsheet's date."""
    if isinstance(cell, dt.datetime):
        return cell.date()
    if isinstance(cell, dt.date):
        return cell
    raw = unicodedata.normalize("NFKC", text(cell))
    found = _YMD.match(raw)
    if found:
        year, month, day = (int(g) for g in found.groups())
        rest = raw[found.end() :]
    else:
        found = _SHORT.match(raw)
        if found is None or order == "ymd":
            raise CellError(NOT_A_DATE if found is None else DATE_ORDER, text=raw)
        first, second, year = (int(g) for g in found.groups())
        day, month = (first, second) if order == "dmy" else (second, first)
        rest = raw[found.end() :]
    if rest.strip() and not _TIME.search(rest):
        raise CellError(NOT_A_DATE, text=raw)
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(NO_SUCH_DATE, text=raw) from None


def datetime(cell: Any, order: str = "ymd") -> str:
    """A date with an optional time (``2026/12/07 14:30``, ``2026年12月7日 14時30分``) as
    ISO 8601; without a zone it is a time of the deployment's time zone (the screens'
    and the exported workbooks' too)."""
    if isinstance(cell, dt.datetime):
        moment = cell
    else:
        raw = unicodedata.normalize("NFKC", text(cell))
        try:
            moment = dt.datetime.fromisoformat(raw)
        except ValueError:
            day = date(raw, order)
            clock = _TIME.search(raw[10:]) if len(raw) > 10 else None
            hour, minute, second = 0, 0, 0.0
            if clock is not None:
                hour, minute = int(clock.group(1)), int(clock.group(2))
                second = float(clock.group(3) or 0)
            try:
                moment = dt.datetime.combine(
                    day, dt.time(hour, minute, int(second), int(second % 1 * 1_000_000))
                )
            except ValueError:
                raise CellError(NOT_A_TIME, text=raw) from None
    if moment.tzinfo is None:  # a time of the deployment's time zone
        try:
            moment = moment.astimezone()
        except (OverflowError, ValueError, OSError):
            moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def choice(cell: Any, field: Field, conversion: Conversion) -> str:
    """A choice by its value or its label in any language, or by the field's value map."""
    raw = text(cell)
    mapped = conversion.value_map.get(field.name, {})
    if raw in mapped:
        return mapped[raw]
    folded = fold(raw)
    for key, value in mapped.items():
        if fold(key) == folded:
            return value
    for option in field.options:
        if folded == fold(option.value) or any(
            folded == fold(label) for label in option.label.texts.values()
        ):
            return option.value
    known = ", ".join(o.value for o in field.options[:12])
    raise CellError(UNKNOWN_CHOICE, text=raw, choices=known)


def choices(cell: Any, field: Field, conversion: Conversion) -> list[str]:
    if isinstance(cell, list):
        parts = [text(c) for c in cell]
    else:
        parts = [p for p in LIST_SEPARATORS.split(text(cell)) if p]
    return list(dict.fromkeys(choice(p, field, conversion) for p in parts))


def convert(cell: Any, field: Field, conversion: Conversion) -> Any:
    """The value of ``field`` in ``cell`` as the record service takes it; None for an empty
    cell. References, users and teams are not converted here (see ``Lookups``)."""
    if empty(cell):
        return None
    kind = field.type
    if kind == "choice":
        return choice(cell, field, conversion)
    if kind == "multichoice":
        return choices(cell, field, conversion)
    value_type = field.value_type
    if value_type == "integer":
        return integer(cell)
    if value_type == "decimal":
        return decimal_text(cell, field)
    if value_type == "boolean":
        return boolean(cell)
    if value_type == "date":
        return date(cell, conversion.date_order).isoformat()
    if value_type == "datetime":
        return datetime(cell, conversion.date_order)
    if kind == "file" and field.multiple:  # attachment ids
        return [integer(p) for p in LIST_SEPARATORS.split(text(cell)) if p]
    return text(cell)
