"""The notification inbox (``/notifications``) and the bell's count, from the rows the
platform read (:class:`workflows.Inbox`): nothing here queries a database.

>>> rows = inbox([{"id": 7, "subject": "Contract “Tea” needs your attention", "body": "Tea",
...                "entity": "contract", "record_id": 3, "source": "submit",
...                "created_at": at, "read_at": None}], model.entities, "en")
>>> rows[0].entity_label, rows[0].unread
('Contract', True)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metamodel import Entity

from .pages import text


@dataclass(frozen=True)
class Notice:
    """One notification as the inbox shows it; ``entity`` and ``record_id`` make its link
    (empty when it names no record, or one of an entity the Model no longer has)."""

    id: int
    subject: str
    body: str
    at: dt.datetime
    unread: bool
    entity: str = ""
    entity_label: str = ""
    record_id: int | None = None


def inbox(
    rows: Sequence[Mapping[str, Any]], entities: Mapping[str, Entity], locale: str
) -> tuple[Notice, ...]:
    """``rows`` (newest first, as :meth:`workflows.Inbox.list` returns them) as notices."""
    found = []
    for row in rows:
        entity = entities.get(row.get("entity") or "")
        linked = entity is not None and row.get("record_id") is not None
        found.append(
            Notice(
                id=int(row["id"]),
                subject=str(row["subject"]),
                body=str(row.get("body") or ""),
                at=row["created_at"],
                unread=row.get("read_at") is None,
                entity=entity.name if linked and entity else "",
                entity_label=text(entity.label, locale, entity.name) if entity else "",
                record_id=int(row["record_id"]) if linked else None,
            )
        )
    return tuple(found)


def badge(count: int) -> str:
    """The bell's number: ``99+`` past 99, so the badge keeps its size."""
    return "99+" if count > 99 else str(count)
