"""Every XLSX writer stores what a record holds, even text a workbook cannot: control
characters (pasted from another system, sent through the API) are dropped, not a 500."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import load_workbook

from engine.imports._errorfile import to_xlsx as error_file
from engine.reports import ReportResult
from engine.reports.export import to_xlsx as report_workbook
from engine.spreadsheet import cell_value

NASTY = "Acme\x00\x01 Co\x0b.\x1f\tLtd\n"


def test_cell_values_drop_control_characters_and_zones() -> None:
    assert cell_value(NASTY) == "Acme Co.\tLtd\n"  # tab and newline are kept
    aware = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert cell_value(aware) == dt.datetime(2026, 12, 7, 1, 30)
    assert cell_value(3) == 3 and cell_value(None) is None


def test_report_workbooks_take_control_characters() -> None:
    result = ReportResult(
        columns=[
            {"name": "account", "label": "Account", "role": "dimension"},
            {"name": "deals", "label": "Deals", "role": "measure"},
        ],
        rows=[{"account": NASTY, "deals": 2}],
        totals={"deals": 2},
        chart={"type": "table"},
    )
    sheet = load_workbook(io.BytesIO(report_workbook(result))).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1] == ("Acme Co.\tLtd\n", 2)


def test_import_error_files_take_control_characters() -> None:
    book = error_file([["Row", "Errors", "name"], [3, "bad\x02", NASTY]])
    sheet = load_workbook(io.BytesIO(book)).active
    assert sheet is not None
    assert list(sheet.iter_rows(min_row=2, values_only=True)) == [(3, "bad", "Acme Co.\tLtd\n")]
