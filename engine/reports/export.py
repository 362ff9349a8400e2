"""A report's result as CSV: a header of column labels, then the rows, the "others" row
and the totals, in the user's language — choices by their labels, references by their
titles, numbers as plain numbers, dates as ISO dates (what spreadsheets read as such).

>>> text = to_csv(reports.run(actor, "sales_funnel", {}, action="export"), "zh")
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

from . import ReportResult

WORDS = {
    "others": {"en": "Others", "zh": "其他", "ja": "その他"},
    "total": {"en": "Total", "zh": "合计", "ja": "合計"},
}


def _word(key: str, locale: str) -> str:
    texts = WORDS[key]
    return texts.get(locale) or texts.get(locale.split("-")[0]) or texts["en"]


def _cell(value: Any) -> Any:
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
    columns = result.columns
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c["label"] for c in columns])
    labels = {c["name"]: {o["value"]: o["label"] for o in c.get("options", ())} for c in columns}
    for row in result.rows:
        cells = []
        for i, column in enumerate(columns):
            name = column["name"]
            if row.get("_others") and i == 0:
                cells.append(_word("others", locale))
                continue
            value = row.get(column.get("title", ""), None) if "title" in column else None
            if value is None:
                value = row.get(name)
                value = labels[name].get(value, value) if isinstance(value, str) else value
            cells.append(_cell(value))
        writer.writerow(cells)
    if result.totals is not None:
        writer.writerow(
            [
                _word("total", locale)
                if i == 0 and c["role"] == "dimension"
                else _cell(result.totals.get(c["name"]) if c["role"] == "measure" else None)
                for i, c in enumerate(columns)
            ]
        )
    return out.getvalue()
