"""The value types of the expression language, shared by the parser and the functions.

Lists carry their element type: ``list:string``.
"""

from __future__ import annotations

from collections.abc import Sequence

INTEGER, DECIMAL, STRING, BOOLEAN = "integer", "decimal", "string", "boolean"
DATE, DATETIME, NULL, ANY = "date", "datetime", "null", "any"
NUMERIC = (INTEGER, DECIMAL)
TEMPORAL = (DATE, DATETIME)


def family(t: str) -> str:
    """Types that compare with each other: numbers, dates, or the type itself."""
    if t in NUMERIC:
        return "number"
    if t in TEMPORAL:
        return "date"
    return t


def first_known(types: Sequence[str]) -> str:
    """The type of a result built from arguments of ``types`` (decimal wins over integer)."""
    known = [t for t in types if t not in (NULL, ANY)]
    if not known:
        return ANY
    return DECIMAL if DECIMAL in known else known[0]
