"""A report's result as CSV or as an XLSX workbook, in the user's language: a header of
column labels, then the rows (a subtotal row says "Subtotal"), the "others" row and the
totals — choices by their labels, references by their titles, numbers as numbers, dates
as dates (ISO in CSV, date cells in XLSX).

>>> text = to_csv(reports.run(actor, "sales_funnel", {}, action="export"), "zh")
>>> data = to_xlsx(reports.run(actor, "sales_funnel", {}, action="export"), "zh")
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from ..spreadsheet import cell_value
from . import ReportResult
from ._results import word

WORDS_USED = ("others", "total", "subtotal")
SHEET_TITLE = 31  # the longest sheet name a workbook takes


def table(result: ReportResult, locale: str = "en") -> Iterator[list[Any]]:
    """The header, then one list of typed cells per row: what both formats write."""
    columns = result.columns
    yield [c["label"] for c in columns]
    labels = {c["name"]: {o["value"]: o["label"] for o in c.get("options", ())} for c in columns}
    first_dimension = next((i for i, c in enumerate(columns) if c["role"] == "dimension"), None)
    for row in result.rows:
        cells: list[Any] = []
        depth = row.get("_subtotal")
        for i, column in enumerate(columns):
            name = column["name"]
            if row.get("_others") and i == 0:
                cells.append(word("others", locale))
                continue
            if depth is not None and i == depth and column["role"] == "dimension":
                cells.append(word("subtotal", locale))
                continue
            value = row.get(column["title"]) if "title" in column else None
            if value is None:
                value = row.get(name)
                value = labels[name].get(value, value) if isinstance(value, str) else value
            cells.append(value)
        yield cells
    if result.totals is not None:
        yield [
            word("total", locale)
            if i == first_dimension
            or (first_dimension is None and i == 0 and c["role"] != "measure")
            else (result.totals.get(c["name"]) if c["role"] == "measure" else None)
            for i, c in enumerate(columns)
        ]


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def to_csv(result: ReportResult, locale: str = "en") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for cells in table(result, locale):
        writer.writerow([_text(c) for c in cells])
    return out.getvalue()


def to_xlsx(result: ReportResult, locale: str = "en", title: str = "Report") -> bytes:
    """The workbook: one sheet, the header bold and frozen, numbers as numbers (money and
    decimals with their places), dates as date cells."""
    from openpyxl import Workbook  # imported when a workbook is asked for
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=False)
    sheet = book.active
    assert sheet is not None
    sheet.title = "".join(c for c in title if c not in "[]:*?/\\")[:SHEET_TITLE] or "Report"
    bold = Font(bold=True)
    lines = list(table(result, locale))
    strong = {1, len(lines)} if result.totals is not None else {1}
    strong |= {i + 2 for i, row in enumerate(result.rows) if row.get("_subtotal")}
    for r, cells in enumerate(lines, start=1):
        for c, value in enumerate(cells, start=1):
            value = cell_value(value)
            cell = sheet.cell(row=r, column=c, value=value)
            if r in strong:
                cell.font = bold
            if isinstance(value, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(value, dt.date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(value, Decimal):
                exponent = value.as_tuple().exponent
                places = min(-exponent, 6) if isinstance(exponent, int) and exponent < 0 else 0
                cell.number_format = "#,##0" + ("." + "0" * places if places else "")
    sheet.freeze_panes = "A2"
    for c, column in enumerate(result.columns, start=1):
        width = max(10, min(40, len(str(column["label"])) + 4))
        sheet.column_dimensions[get_column_letter(c)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
