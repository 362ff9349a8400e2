"""JSON in and out: how request bodies are read and every API response is written.

Bodies are read by :func:`loads`, which refuses nesting deeper than :data:`MAX_DEPTH`
(the standard library would recurse until Python's stack runs out: a 500 for a few
kilobytes of ``[``).

Decimals are exact strings in plain notation (``"1000.00"``, never ``"1E+3"``), dates and
times ISO 8601, text as UTF-8 rather than ``\\u`` escapes. Responses are encoded with
orjson, several times faster than the standard library on a page of records (about a
tenth of a fifty-row list's time went to ``json.dumps`` and its ``default`` hook); what
orjson refuses — an integer beyond 64 bits from a formula, a key that is not a string —
falls back to the standard library, so the output is the same either way (tests check
that both write the same text).

>>> dumps({"amount": Decimal("0E-8"), "on": dt.date(2026, 12, 1), "name": "顧客"})
'{"amount":"0.00000000","on":"2026-12-01","name":"顧客"}'
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

__all__ = ["MAX_DEPTH", "JSONProvider", "TooDeep", "dumps", "kind", "loads"]

#: How deeply arrays and objects may nest in a request body; a record with child rows
#: needs 3, a report query a few more.
MAX_DEPTH = 32


class TooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_DEPTH`."""


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of JSON text; :class:`ValueError` for text that is not JSON, and
    :class:`TooDeep` for arrays and objects nested more than ``max_depth`` levels.

    >>> loads(b'{"lines": [{"qty": 1}]}')
    {'lines': [{'qty': 1}]}
    >>> loads(b"[[[1]]]", max_depth=2)
    Traceback (most recent call last):
    heddle.jsonio.TooDeep: arrays and objects nest more than 2 levels deep
    """
    try:
        value = json.loads(data)
    except RecursionError:  # the parser recursed before the depth could be checked
        raise TooDeep(f"arrays and objects nest more than {max_depth} levels deep") from None
    # Each bracket opens at most one level: most bodies need no walk at all.
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > max_depth and _depth(value) > max_depth:
        raise TooDeep(f"arrays and objects nest more than {max_depth} levels deep")
    return value


def _depth(value: Any) -> int:
    """How many levels of arrays and objects ``value`` nests (without recursing)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def kind(value: Any) -> str:
    """What a parsed JSON value is, for messages: ``null``, ``an array``, ``a string``…"""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), "a number")


def default(value: Any) -> Any:
    """What JSON cannot say by itself: decimals and, for the standard library, dates."""
    if isinstance(value, Decimal):
        return format(value, "f")  # never scientific notation: 0E-8 is "0.00000000"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return DefaultJSONProvider.default(value)


# Row keys are SQLAlchemy's ``quoted_name`` (a str subclass), which orjson takes as keys
# only with OPT_NON_STR_KEYS.
OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(value: Any, *, indent: bool = False) -> bytes:
    try:
        options = OPTIONS | orjson.OPT_INDENT_2 if indent else OPTIONS
        return orjson.dumps(value, default=default, option=options)
    except TypeError:  # orjson.JSONEncodeError: beyond what orjson writes; the slow path
        text = json.dumps(
            value,
            default=default,
            ensure_ascii=False,
            indent=2 if indent else None,
            separators=None if indent else (",", ":"),
        )
        return text.encode("utf-8")


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode("utf-8")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing with :func:`dumps_bytes` (reading is Flask's own)."""

    sort_keys = False
    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps_bytes(obj, indent=bool(kwargs.get("indent"))).decode("utf-8")

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        indent = self.compact is False or (self.compact is None and self._app.debug)
        return Response(dumps_bytes(obj, indent=indent) + b"\n", mimetype=self.mimetype)
