"""Exporting a list: the records a list query finds, as CSV, XLSX or JSON.

Honours permissions like the list itself — the export permission's scope (within what the
user may read), never a hidden field — and writes what an import reads back: the header
is each field's label in the user's language; choices are their labels, references the
title of the record (users their username), so a file exported, edited and imported with
``--mode update --key id`` changes exactly what was edited. In XLSX numbers are numbers
and dates are dates; in JSON, values are as the API gives them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Field

from .. import query as queries
from ..context import Actor
from ..errors import BadRequest, Forbidden
from ..fieldtypes import stored
from ..spreadsheet import cell_value
from ..tables import TEAM_TABLE, USER_TABLE

if TYPE_CHECKING:
    from ..records import Records

EXPORT_FORMATS = ("csv", "xlsx", "json")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
# The headers of the system columns a list view may show; those of the id, the owner and
# the team are the words an import reads back (engine.imports._mapping.OWNER_WORDS).
SYSTEM_LABELS = {
    "id": {"en": "ID", "zh": "ID", "ja": "ID"},
    "owner_id": {"en": "Owner", "zh": "负责人", "ja": "担当者"},
    "team_id": {"en": "Team", "zh": "团队", "ja": "チーム"},
    "created_at": {"en": "Created", "zh": "创建时间", "ja": "作成日時"},
    "updated_at": {"en": "Updated", "zh": "更新时间", "ja": "更新日時"},
    "created_by": {"en": "Created by", "zh": "创建人", "ja": "作成者"},
    "updated_by": {"en": "Updated by", "zh": "修改人", "ja": "更新者"},
    "version": {"en": "Version", "zh": "版本", "ja": "バージョン"},
}
PAGE = 500


class Export:
    """One export: the columns and the rows of a list query, for one user."""

    def __init__(
        self,
        records: Records,
        actor: Actor,
        entity: str,
        params: Mapping[str, Any],
        *,
        where: str | None = None,
    ) -> None:
        """``params``: the list's, as the API takes them; ``where``: the filter of a list
        view the Model defines (an expression), for a screen's list exported as it shows."""
        self.records = records
        self.actor = actor
        self.entity = records.entity(entity)
        permissions = records.permissions
        self.grant = permissions.grant(actor, self.entity, "export")
        if not self.grant.allowed:
            raise Forbidden(
                f"you may not export {self.entity.plural_label.get(actor.locale)}: your role "
                "needs the export permission on them"
            )
        self.read = records.access.grant(actor, self.entity, "read")
        wanted = {k: v for k, v in params.items() if k not in ("format", "limit", "cursor")}
        query = records.parse(actor, entity, wanted)
        if where:
            query = replace(query, where=queries.parse_where(records.model, entity, where))
        self.query = records.access.within_sight(actor, self.entity, self.read, query)
        self.fields = self._fields(query.fields)

    def _fields(self, chosen: Sequence[str] | None) -> list[str]:
        names = ["id"]
        if chosen:
            names += [n for n in chosen if n != "id"]
        else:
            names += [f.name for f in self.entity.fields.values()
                      if f.type != "children" and f.name not in self.read.hidden]  # fmt: skip
            if self.entity.ownable:
                names.append("owner_id")
        unknown = [n for n in names if n not in self.entity.fields and n not in SYSTEM_LABELS]
        if unknown:
            raise BadRequest(f"unknown field '{unknown[0]}'", {"fields": ["Unknown field."]})
        return names

    def count(self, up_to: int = 2**62) -> int:
        """How many records the export holds: its filters, search and the user's scope,
        counted exactly up to ``up_to`` (``up_to + 1`` means "more than that")."""
        query = replace(self.query, fields=None, limit=1, cursor=None, expand=())
        with self.records.reader.connect() as conn:
            page = queries.run(conn, self.records.tables, self.entity.name, query, self.actor,
                               scope=self._scope(), sight=self.records.permissions.sight(
                                   self.actor), exact_count_up_to=up_to)  # fmt: skip
        return up_to + 1 if page.count_estimated else page.count

    def _scope(self) -> Any:
        table = self.records.tables.table(self.entity.name)
        permissions = self.records.permissions
        export = permissions.where(self.actor, self.entity, self.grant, table)
        read = permissions.where(self.actor, self.entity, self.read, table)
        parts = [p for p in (export, read) if p is not None]
        return sa.and_(*parts) if parts else None

    def header(self) -> list[str]:
        locale = self.actor.locale
        labels = []
        for name in self.fields:
            found = self.entity.fields.get(name)
            if found is not None:
                labels.append(found.label.get(locale))
            else:
                texts = SYSTEM_LABELS[name]
                labels.append(texts.get(locale.split("-")[0], texts["en"]))
        return labels

    def records_(self) -> Iterator[dict[str, Any]]:
        """Every record of the query, page after page, hidden fields left out."""
        query = replace(self.query, fields=None, limit=PAGE, cursor=None)
        scope = self._scope()
        sight = self.records.permissions.sight(self.actor)
        while True:
            with self.records.reader.connect() as conn:
                page = queries.run(conn, self.records.tables, self.entity.name, query,
                                   self.actor, scope=scope, sight=sight)  # fmt: skip
                self.records.computer.formulas(conn, self.entity, page.rows, self.actor.context())
            for row in page.rows:
                yield self.records.access.visible(self.actor, self.entity, row)
            if not page.next_cursor:
                return
            query = replace(query, cursor=page.next_cursor)

    def rows(self, *, plain: bool) -> Iterator[list[Any]]:
        """Rows of cells: labels and titles (``plain`` False) or API values (JSON)."""
        batch: list[dict[str, Any]] = []
        for record in self.records_():
            batch.append(record)
            if len(batch) == PAGE:
                yield from self._cells(batch, plain)
                batch = []
        if batch:
            yield from self._cells(batch, plain)

    def _cells(self, batch: list[dict[str, Any]], plain: bool) -> Iterator[list[Any]]:
        titles = {} if plain else self._titles(batch)
        locale = self.actor.locale
        for record in batch:
            cells = []
            for name in self.fields:
                value = record.get(name)
                found = self.entity.fields.get(name)
                if not plain:
                    value = _shown(found, name, value, titles, locale)
                cells.append(value)
            yield cells

    def _titles(self, batch: list[dict[str, Any]]) -> dict[tuple[str, Any], str]:
        """Titles of the records, users and teams the batch refers to: one query each."""
        wanted: dict[str, set[Any]] = {}
        for name in self.fields:
            kind = _ref_kind(self.entity.fields.get(name), name)
            if kind is None:
                continue
            for record in batch:
                value = record.get(name)
                for one in value if isinstance(value, list) else [value]:
                    if one is not None:
                        wanted.setdefault(kind, set()).add(one)
        titles: dict[tuple[str, Any], str] = {}
        metadata = self.records.tables.metadata
        with self.records.reader.connect() as conn:
            for kind, ids in wanted.items():
                if kind == "user":
                    table, column = metadata.tables[USER_TABLE], "username"
                elif kind == "team":
                    table, column = metadata.tables[TEAM_TABLE], "name"
                else:
                    target = self.records.model.entity(kind)
                    if not self.records.permissions.grant(self.actor, target, "read").allowed:
                        continue  # as the API's expand: no titles of what they may not read
                    table = self.records.tables.table(kind)
                    column = target.title_field or ("name" if "name" in table.c else "id")
                query = sa.select(table.c.id, table.c[column]).where(table.c.id.in_(ids))
                for row_id, title in conn.execute(query):
                    titles[(kind, row_id)] = str(title) if title is not None else str(row_id)
        return titles

    # --- files -----------------------------------------------------------------------------

    def write(self, format: str) -> bytes:
        if format not in EXPORT_FORMATS:
            raise BadRequest(f"unknown export format '{format}': use csv, xlsx or json",
                             {"format": [f"One of {', '.join(EXPORT_FORMATS)}."]})  # fmt: skip
        if format == "json":
            data = [dict(zip(self.fields, row, strict=True)) for row in self.rows(plain=True)]
            return json.dumps(data, ensure_ascii=False, default=_json_value, indent=1).encode()
        if format == "csv":
            return _csv([self.header(), *self.rows(plain=False)])
        return _xlsx(self.header(), self.rows(plain=False), self.entity.plural_label.get(
            self.actor.locale), self._formats())  # fmt: skip

    def _formats(self) -> list[str | None]:
        formats: list[str | None] = []
        for name in self.fields:
            found = self.entity.fields.get(name)
            kind = found.value_type if found is not None else _SYSTEM_KINDS.get(name, "")
            formats.append(
                {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm:ss",
                 "decimal": "#,##0.00" if found is not None and found.scale != 0 else "#,##0"
                 }.get(kind) if found is None or found.type not in ("choice", "reference") else None
            )  # fmt: skip
        return formats


_SYSTEM_KINDS = {"created_at": "datetime", "updated_at": "datetime"}


def _ref_kind(found: Field | None, name: str) -> str | None:
    if name in ("owner_id", "created_by", "updated_by"):
        return "user"
    if name == "team_id":
        return "team"
    if found is None:
        return None
    if found.type == "reference":
        return found.to
    if found.type in ("user", "team"):
        return found.type
    return None


def _shown(
    found: Field | None, name: str, value: Any, titles: Mapping[tuple[str, Any], str], locale: str
) -> Any:
    """A value as a person reads it in a spreadsheet (and an import reads it back)."""
    if value is None:
        return None
    kind = _ref_kind(found, name)
    if kind is not None:
        if isinstance(value, list):
            return ", ".join(titles.get((kind, v), str(v)) for v in value)
        return titles.get((kind, value), value)
    if found is None:
        return value
    if found.options and found.type in ("choice", "multichoice", "formula"):
        labels = {o.value: o.label.get(locale) for o in found.options}
        if isinstance(value, list):
            return ", ".join(str(labels.get(v, v)) for v in value)
        return labels.get(value, value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):  # the deployment's time, with its offset
        return (value.astimezone() if value.tzinfo else value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _csv(table: Iterator[list[Any]] | list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in table:
        writer.writerow([_csv_cell(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _xlsx(
    header: list[str], rows: Iterator[list[Any]], title: str, formats: list[str | None]
) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "Export")
    sheet.append(header)
    for row in rows:
        cells = []
        for value, number_format in zip(row, formats, strict=True):
            value = cell_value(value)
            cell = WriteOnlyCell(sheet, value=value)
            if number_format and isinstance(value, dt.date | Decimal | int | float):
                cell.number_format = number_format
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


__all__ = ["EXPORT_FORMATS", "MEDIA_TYPES", "Export", "stored"]
