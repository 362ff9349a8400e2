"""Who is acting: every engine call takes an explicit :class:`Actor`, never a global."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from metamodel.expressions import Context


@dataclass(frozen=True, slots=True)
class Actor:
    """The user on whose behalf records are read and written.

    ``roles`` are role names of the package (``admin`` may do everything). ``today`` is
    the user's local date, so rules like "overdue" follow the user's calendar.
    """

    user_id: int | None = None
    team_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    locale: str = "en"
    today: dt.date | None = None
    label: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def context(self) -> Context:
        """What expressions may know about this actor."""
        return Context(user_id=self.user_id, team_id=self.team_id, today=self.today)


SYSTEM = Actor(roles=frozenset({"admin"}), label="system")
"""The platform itself: migrations, demo data, jobs that act for nobody in particular."""
