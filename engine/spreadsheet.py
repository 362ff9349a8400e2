"""What a value becomes in a workbook cell, shared by every XLSX writer (list exports,
report downloads, import error files).

>>> cell_value("Acme\\x00 Ltd")
'Acme Ltd'

A workbook is XML: control characters other than tab, newline and carriage return cannot
be stored, and openpyxl raises on them. A record's text may hold them (pasted from another
system, sent through the API), so they are dropped rather than failing the download.
Workbooks have no time zones: an aware datetime is written as naive UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def cell_value(value: Any) -> Any:
    """``value`` as a workbook cell can hold it."""
    if isinstance(value, str):
        return _ILLEGAL.sub("", value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # a workbook's times have no zone: written in the deployment's, as read back
        try:
            return value.astimezone().replace(tzinfo=None)
        except (OverflowError, ValueError, OSError):
            return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


__all__ = ["cell_value"]
