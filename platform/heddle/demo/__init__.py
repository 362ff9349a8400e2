"""The demo company: 18 months of a believable CRM, so every report has something to show.

>>> result = load_demo(engine, tables, accounts, scale=1, seed=7)
>>> result.counts["account"]
1000

``scale`` 1 is about 1,000 accounts with everything around them (2,500 contacts, 1,500
deals with their stage history, quotes, contracts, instalments and payments, activities,
cases…) for twelve demo users (:data:`PEOPLE`, password :data:`DEMO_PASSWORD`); 1,000 is
a million accounts. The same seed and day give the same data. Rows are written in batches
exactly as the record service would store them (see :mod:`._rows`). docs/demo.md tells
the story.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from engine import Tables
from engine.dedupe import RuleSet, rebuild

from ..accounts import Accounts
from . import _company as company
from ._names import CompanyNames
from ._people import DEMO_PASSWORD, PEOPLE, TEAMS, DemoPerson, ensure_people
from ._rows import RowSink
from ._story import AccountStory
from ._world import World

#: Accounts at scale 1.
ACCOUNTS_PER_SCALE = 1000
#: Accounts whose stories are written in one transaction.
BATCH_ACCOUNTS = 500
#: Campaigns at scale 1 (about one a month).
CAMPAIGNS_PER_SCALE = 18

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DemoResult:
    """What a load wrote: rows per entity, and the accounts it started from."""

    counts: dict[str, int]
    accounts: int
    first_account: int


def account_count(scale: float) -> int:
    """How many accounts ``scale`` means (at least one)."""
    return max(1, round(scale * ACCOUNTS_PER_SCALE))


def existing_accounts(engine: sa.Engine, tables: Tables) -> int:
    table = tables.table("account")
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def load_demo(
    engine: sa.Engine,
    tables: Tables,
    accounts: Accounts,
    *,
    scale: float = 1.0,
    seed: int = 1,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Write the demo company into the CRM on ``engine`` (migrated to ``tables``' Model).

    A database that has accounts already gets more of them (the demo users, products and
    pools are reused; the ordinals and so the names continue after the last account).
    ``now`` fixes the clock the 18 months end at (default: the current time).
    """
    now = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    first = existing_accounts(engine, tables)
    fresh = first == 0
    with engine.begin() as conn:
        people = ensure_people(conn, accounts)
    sink = RowSink(engine, tables, {m.id: m.team_id for m in people.values()})
    rng = random.Random(f"{seed}:company:{first}")
    admin = people["sato.yuki"].id  # the company's records are made by someone real
    placeholder = World(now, people, [], [], {}, seed)
    catalogue = company.products(sink, tables, placeholder.start, admin)
    total = account_count(scale)
    count = max(4, round(total / ACCOUNTS_PER_SCALE * CAMPAIGNS_PER_SCALE))
    found = company.campaigns(sink, placeholder, count, rng)
    company.channel_costs(sink, placeholder, total / ACCOUNTS_PER_SCALE, rng)
    pools = company.pools(sink, placeholder, tables, placeholder.start, admin)
    world = World(now, people, catalogue, found, pools, seed)
    world.ordinals = {culture: first for culture in ("zh", "ja", "en")}
    story = AccountStory(world, sink, CompanyNames(seed))
    batch: list[dict[str, object]] = []
    for n in range(total):
        batch.append(story.tell(first + n, batch))
        if len(batch) >= BATCH_ACCOUNTS:
            sink.flush()
            batch = []
            if progress and n + 1 < total:
                progress(n + 1, total)
    if fresh:
        company.targets(sink, world, rng, admin)
        company.daily_reports(sink, world, rng)
        company.notices(sink, world, rng, admin)
    sink.finish()
    with engine.begin() as conn:  # the rows went in beside the record service: their keys
        for rule in RuleSet(tables.model):
            rebuild(conn, tables, rule)
    if progress:
        progress(total, total)
    return DemoResult(dict(sink.counted), total, first)


__all__ = [
    "ACCOUNTS_PER_SCALE",
    "DEMO_PASSWORD",
    "PEOPLE",
    "TEAMS",
    "DemoPerson",
    "DemoResult",
    "account_count",
    "existing_accounts",
    "load_demo",
]
