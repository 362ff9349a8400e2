"""Reading an uploaded file into a sheet: a header and rows of cells, each row with the
number a spreadsheet shows for it (the header is row 1).

CSV in any common encoding (UTF-8 with or without a byte-order mark, GB18030, Shift_JIS,
Big5, EUC-KR, Latin-1…: detected by charset-normalizer unless one is chosen), XLSX
(openpyxl, read-only: numbers stay numbers and dates stay dates) and JSON (a list of
objects, or ``{"rows": [...]}``). A file that is none of these, empty, or not readable in
the encoding asked for is a :class:`BadFile` with a message that says what to do.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError

FORMATS = ("csv", "xlsx", "json")
#: Encodings tried first, in this order, when charset-normalizer is unsure.
LIKELY_ENCODINGS = ("utf_8", "gb18030", "shift_jis", "big5", "euc_kr", "cp1252")


class BadFile(EngineError):
    """A file that cannot be read as a table: wrong format, wrong encoding, empty."""

    status = 422
    code = "bad_file"


class FileTooLarge(BadFile):
    status = 413
    code = "file_too_large"


def size_text(size: int) -> str:
    """A size as people read it: ``10 MB``, ``7.8 KB``, ``900 bytes``."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


@dataclass
class Sheet:
    """A table read from a file. ``rows`` are ``(row number, cells)`` pairs."""

    headers: list[str]
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)
    encoding: str | None = None
    format: str = "csv"


def guess_format(filename: str, content: bytes) -> str:
    """``csv``, ``xlsx`` or ``json`` from the name's extension, else from the bytes."""
    lower = filename.lower()
    for name in FORMATS:
        if lower.endswith("." + name):
            return name
    if lower.endswith((".xlsm", ".xltx")):
        return "xlsx"
    if content.startswith(b"PK\x03\x04"):
        return "xlsx"
    if content.lstrip()[:1] in (b"[", b"{"):
        return "json"
    return "csv"


def read_sheet(
    content: bytes, filename: str = "", *, format: str | None = None, encoding: str | None = None
) -> Sheet:
    """The table in ``content``; :class:`BadFile` when there is none."""
    if not content.strip():
        raise BadFile("the file is empty: it needs a header row and at least one row")
    kind = format or guess_format(filename, content)
    if kind not in FORMATS:
        raise BadFile(f"unknown format '{kind}': use one of {', '.join(FORMATS)}")
    reader = {"csv": _csv, "xlsx": _xlsx, "json": _json}[kind]
    sheet = reader(content, encoding)
    sheet.format = kind
    if not any(h for h in sheet.headers):
        raise BadFile("the first row is empty: it must name the columns")
    if not sheet.rows:
        raise BadFile("the file has a header but no rows to import")
    return sheet


# --- CSV ------------------------------------------------------------------------------------


def detect_encoding(content: bytes) -> str:
    """The encoding of a text file: a byte-order mark, else UTF-8 if it decodes, else
    charset-normalizer's best guess among the likely encodings."""
    if content.startswith(codecs.BOM_UTF8):
        return "utf_8_sig"
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf_16"
    sample = content[:200_000]
    try:
        sample.decode("utf-8")
        return "utf_8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a character cut by the sample's end
            return "utf_8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=list(LIKELY_ENCODINGS)).best()
    if best is None:
        best = from_bytes(sample).best()
    if best is None:
        raise BadFile(
            "the file's encoding could not be recognised: save it as UTF-8 CSV, or choose "
            "its encoding (e.g. gb18030, shift_jis)"
        )
    return str(best.encoding)


def _csv(content: bytes, encoding: str | None) -> Sheet:
    chosen = encoding or detect_encoding(content)
    try:
        codecs.lookup(chosen)
    except LookupError:
        raise BadFile(f"unknown encoding '{chosen}' (try utf-8, gb18030 or shift_jis)") from None
    try:
        text = content.decode(chosen)
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise BadFile(
            f"the file is not {chosen}: undecodable bytes on line {line}; choose the "
            "encoding it was saved in (e.g. gb18030, shift_jis) or save it as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise BadFile("the file is not a text CSV file (it holds NUL bytes): is it a spreadsheet?")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        return _sheet(rows, chosen)
    except csv.Error as exc:
        raise BadFile(f"the CSV file is malformed: {exc}") from None


def _sheet(rows: Iterator[Sequence[Any]], encoding: str | None) -> Sheet:
    headers: list[str] | None = None
    width = 0
    sheet = Sheet([], encoding=encoding)
    for number, row in enumerate(rows, start=1):
        cells = list(row)
        if headers is None:
            if _blank(cells):
                continue  # blank lines above the header
            headers = [_header(c) for c in cells]
            while headers and not headers[-1]:
                headers.pop()
            sheet.headers = headers
            width = len(headers)
            continue
        if _blank(cells):
            continue  # a blank row in the middle or at the end
        if len(cells) != width:  # cut or padded to the header's width
            cells = cells[:width] + [None] * (width - len(cells))
        sheet.rows.append((number, cells))
    return sheet


def _blank(cells: list[Any]) -> bool:
    """Whether no cell of a row holds anything but whitespace."""
    try:  # a CSV's cells: all text, joined and stripped in one go
        return not "".join(cells).strip()
    except TypeError:  # a spreadsheet's: numbers, dates, None among them
        return not any(_filled(c) for c in cells)


def _filled(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())


def _header(cell: Any) -> str:
    return "" if cell is None else str(cell).strip()


# --- XLSX -----------------------------------------------------------------------------------


def _xlsx(content: bytes, encoding: str | None) -> Sheet:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise BadFile(
            f"the file is not a readable XLSX spreadsheet ({exc.__class__.__name__}): "
            "save it again from the spreadsheet program as .xlsx, or as CSV"
        ) from None
    try:
        sheet = book.worksheets[0]
        rows = (tuple(_xlsx_cell(c) for c in row) for row in sheet.iter_rows(values_only=True))
        try:
            return _sheet(rows, None)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as exc:
            raise BadFile(
                f"the XLSX file is damaged or truncated ({exc.__class__.__name__}): save it "
                "again from the spreadsheet program"
            ) from None
    finally:
        book.close()


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.time() == dt.time(0) and value.tzinfo is None:
        return value  # a date or a datetime at midnight: the field's type decides
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


# --- JSON -----------------------------------------------------------------------------------


def _json(content: bytes, encoding: str | None) -> Sheet:
    try:
        data = json.loads(content.decode(encoding or "utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFile(f"the file is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("rows", data.get("data")), list):
        data = data.get("rows", data.get("data"))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise BadFile('a JSON import is a list of objects (or {"rows": [...]}), one per row')
    headers: list[str] = []
    for item in data:
        for key in item:
            if str(key) not in headers:
                headers.append(str(key))
    sheet = Sheet(headers, format="json")
    for index, item in enumerate(data):
        # row numbers as a spreadsheet of the same rows would show them
        sheet.rows.append((index + 2, [item.get(h) for h in headers]))
    return sheet
