"""Counting the SQL statements a page costs: what "a page issues a fixed number of
queries whatever the data" is tested with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

#: the runtime's once-a-second look for a newer Model: not the page's own
MODEL_CHECK = "SELECT (SELECT heddle_sequence"
#: a list's count asks PostgreSQL a table's size once a minute (engine.query): not the page's
TABLE_SIZE = "SELECT pg_class.reltuples FROM pg_class"


def statements(app: Flask, request: Callable[[], Any]) -> list[str]:
    """The statements ``request()`` runs on ``app``'s database (their first words),
    without transaction control and the Model check."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        text = " ".join(statement.split())
        if not text.upper().startswith(
            ("BEGIN", "SAVEPOINT", "RELEASE", MODEL_CHECK.upper(), TABLE_SIZE.upper())
        ):
            seen.append(" ".join(text.split()[:6]))

    engine = app.extensions["heddle"].engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        request()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen
