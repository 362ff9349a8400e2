"""What the parts of an account's story share: the people who act in it, the sink its
records go to, the deal being told, and small helpers for random draws."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ._people import Member
from ._rows import Change, RowSink
from ._world import Product, World


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    """One of the values, drawn by weight."""
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method: the means here are small)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, product = pow(2.718281828459045, -mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def by_time(change: Change) -> dt.datetime:
    return change.at


@dataclass
class Line:
    """A product line of a deal: its quote's, its order's."""

    product: Product
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price * (100 - self.discount) / 100


@dataclass
class Deal:
    """An opportunity as the rest of its account's story needs it."""

    id: int
    created: dt.datetime
    stage: str
    amount: Decimal
    lines: list[Line]
    discount: Decimal
    closed: dt.datetime | None = None
    reached_proposal: dt.datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scene:
    """The account a story is about, as each part of the story needs it."""

    rng: random.Random
    culture: str
    #: the account's values (id, name, address…) as written
    account: dict[str, Any]
    region: str
    grade: str
    created: dt.datetime
    owner: Member
    #: where the rep's visits check in
    location: str
    contacts: list[int] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    #: when the rep's work on it ends: now, or when it went back to the pool
    end: dt.datetime | None = None

    @property
    def id(self) -> int:
        return int(self.account["id"])

    @property
    def until(self) -> dt.datetime:
        assert self.end is not None
        return self.end


class Teller:
    """The world and sink a story is told with, and who besides the rep acts in it."""

    def __init__(self, world: World, sink: RowSink) -> None:
        self.world = world
        self.sink = sink
        self.finance = world.role("finance")
        self.service = world.role("service_agent")
        self.marketing = world.role("marketing")
