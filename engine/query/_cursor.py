"""Keyset cursors: the last row's sort values, as opaque URL-safe text.

A cursor is base64url of ``{"v": [values…], "c": check}``: one value per sort key, the
row's id last. Values keep their JSON type where JSON has one (integers, booleans, text);
decimals, dates and times are ISO text. ``c`` is a short hash of the values and of the
sort they belong to, so a cursor that was edited, truncated or made for another sort is
refused instead of silently starting somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_CURSOR = 4096


class CursorError(ValueError):
    """A cursor that cannot be read back."""


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # dates and datetimes
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")  # pragma: no cover


def _check(signature: str, values: list[Any]) -> str:
    text = json.dumps([signature, values], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode(signature: str, values: Sequence[Any]) -> str:
    """The cursor after a row whose sort values are ``values``."""
    plain = [_plain(v) for v in values]
    body = json.dumps({"v": plain, "c": _check(signature, plain)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(signature: str, types: Sequence[str], cursor: str) -> list[Any]:
    """The sort values a cursor holds, typed per ``types``; :class:`CursorError` if it is
    not a cursor this sort produced."""
    if len(cursor) > MAX_CURSOR:
        raise CursorError("too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("not a cursor") from exc
    if not isinstance(body, dict) or set(body) != {"v", "c"} or not isinstance(body["v"], list):
        raise CursorError("not a cursor")
    values = body["v"]
    if body["c"] != _check(signature, values):
        raise CursorError("it was changed, or belongs to another sort order")
    if len(values) != len(types):  # pragma: no cover - the check covers the sort
        raise CursorError("wrong number of values")
    return [_typed(kind, value) for kind, value in zip(types, values, strict=True)]


def _typed(kind: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "boolean" and isinstance(value, bool):
            return value
        if kind == "string" and isinstance(value, str):
            return value
        if kind == "decimal" and isinstance(value, str | int) and not isinstance(value, bool):
            number = Decimal(str(value))
            if number.is_finite():
                return number
        if kind == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if kind == "datetime" and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except (ValueError, InvalidOperation):
        pass
    raise CursorError(f"a value is not {kind}")
