"""The error file of a run: each rejected row as the file had it, with its row number and
its messages, as CSV (UTF-8 with a byte-order mark, which spreadsheets open as UTF-8) or
XLSX — fix the cells and import the file again."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

from ..spreadsheet import cell_value
from ._files import Sheet

ROW, ERRORS = "Row", "Errors"
#: How a caller words a problem of a run of an entity (:meth:`Imports.error_file`).
Say = Callable[[str, Mapping[str, Any]], str]


def rejected(
    sheet: Sheet,
    report: Mapping[str, Any],
    *,
    say: Callable[[Mapping[str, Any]], str] | None = None,
    labels: tuple[str, str] = (ROW, ERRORS),
) -> list[list[Any]]:
    """Header and rows of the error file: the row number, the messages, the cells.
    ``say`` words each problem (else its English message); ``labels`` head the first
    two columns."""
    messages: dict[int, list[str]] = {}
    for entry in report.get("rows", []):
        if entry.get("status") != "error":
            continue
        for error in entry.get("errors", []):
            where = f"{error['column']}: " if error.get("column") else ""
            text = where + (say(error) if say is not None else str(error["message"]))
            messages.setdefault(int(entry["row"]), []).append(text)
            if error.get("row") and error["row"] != entry["row"]:
                messages.setdefault(int(error["row"]), []).append(text)
    table: list[list[Any]] = [[*labels, *sheet.headers]]
    for number, cells in sheet.rows:
        if number in messages:
            table.append([number, "; ".join(messages[number]), *cells])
    return table


def to_csv(table: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in table:
        writer.writerow(["" if c is None else c for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: list[list[Any]], title: str = "Errors") -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    for row in table:
        sheet.append([cell_value(c) for c in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
