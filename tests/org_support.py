"""A small company for tests of pools and teams: three teams — Sales, East under Sales,
West — and the reps given, each ``(username, team id, locale)``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from engine.tables import TEAM_TABLE, USER_TABLE, Tables

SALES, EAST, WEST = 1, 2, 3


def seed_people(
    engine: Engine, tables: Tables, people: Sequence[tuple[str, int | None, str]]
) -> None:
    """The teams, and ``people`` with the role ``rep``, their ids in the order given."""
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(tables.metadata.tables[TEAM_TABLE].insert(), [
            {"name": "Sales", "parent_id": None, "created_at": now},
            {"name": "East", "parent_id": SALES, "created_at": now},
            {"name": "West", "parent_id": None, "created_at": now},
        ])  # fmt: skip
        conn.execute(tables.metadata.tables[USER_TABLE].insert(), [
            {"username": name, "name": name, "roles": ["rep"], "team_id": team,
             "locale": locale, "created_at": now}
            for name, team, locale in people
        ])  # fmt: skip
