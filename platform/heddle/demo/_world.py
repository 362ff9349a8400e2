"""What every account's story draws on: the clock, the people, the product catalogue, the
campaigns and pools, and a few helpers for times and amounts."""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from ._people import Member

CENT = Decimal("0.01")
DAY = dt.timedelta(days=1)
MONTHS = 18


def money(value: float | Decimal, step: int = 1) -> Decimal:
    """``value`` rounded to ``step`` (100: whole hundreds) as money with two places."""
    rounded = Decimal(round(float(value) / step) * step) if step > 1 else Decimal(str(value))
    return rounded.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    category: str
    list_price: Decimal
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    type: str
    source: str  # the lead source its leads come in as
    start: dt.date
    end: dt.date


#: The lead source a campaign of each type brings its leads in as.
CAMPAIGN_SOURCE = {
    "trade_show": "trade_show",
    "seminar": "campaign",
    "webinar": "campaign",
    "online_ad": "advertisement",
    "email": "campaign",
    "social_media": "social_media",
    "content": "website",
    "other": "campaign",
}


@dataclass
class World:
    """The shared state of one demo load."""

    now: dt.datetime
    people: dict[str, Member]
    products: list[Product]
    campaigns: list[Campaign]
    pools: dict[str, int]  # territory -> pool id
    seed: int
    #: won amount by (owner id, year, month), for the targets written at the end
    won: dict[tuple[int, int, int], Decimal] = field(default_factory=dict)
    paid: dict[tuple[int, int, int], Decimal] = field(default_factory=dict)
    #: the next ordinal of a company name, per culture (distinct names: _names.CompanyNames)
    ordinals: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.today = self.now.date()
        self.start = (self.now - dt.timedelta(days=round(MONTHS * 30.44))).replace(
            hour=1, minute=0, second=0, microsecond=0
        )
        self.span_days = (self.today - self.start.date()).days
        self._campaign_starts = [c.start for c in self.campaigns]

    # --- people -------------------------------------------------------------------------------

    def sellers(self, territory: str) -> list[Member]:
        return [m for m in self.people.values() if m.person.territory == territory]

    def role(self, role: str) -> Member:
        return next(m for m in self.people.values() if m.person.role == role)

    def manager_of(self, member: Member) -> Member | None:
        name = member.person.manager
        return self.people[name] if name else None

    # --- time ---------------------------------------------------------------------------------

    def at(self, day: dt.date, rng: random.Random) -> dt.datetime:
        """A moment in office hours (09:00-18:00 in Beijing) of ``day``, never after now."""
        moment = dt.datetime(day.year, day.month, day.day, 1, tzinfo=dt.UTC) + dt.timedelta(
            minutes=rng.randrange(0, 9 * 60)
        )
        return min(moment, self.now - dt.timedelta(minutes=rng.randrange(5, 120)))

    def created_day(self, rng: random.Random, latest_gap: int = 2) -> dt.date:
        """A day in the 18 months, more of them recent: the company grows."""
        days = max(self.span_days - latest_gap, 1)
        return self.start.date() + dt.timedelta(days=int(days * math.sqrt(rng.random())))

    def later(
        self, moment: dt.datetime, rng: random.Random, low: float, high: float
    ) -> dt.datetime:
        """A moment ``low``-``high`` days after ``moment`` (may be in the future)."""
        return moment + dt.timedelta(days=rng.uniform(low, high))

    # --- campaigns ----------------------------------------------------------------------------

    def campaign_near(self, day: dt.date, rng: random.Random) -> Campaign | None:
        """A campaign that ran at most 45 days before ``day`` (leads trickle in after)."""
        last = bisect.bisect_right(self._campaign_starts, day)
        first = bisect.bisect_left(self._campaign_starts, day - 45 * DAY)
        if last <= first:
            return None
        return self.campaigns[rng.randrange(first, last)]
