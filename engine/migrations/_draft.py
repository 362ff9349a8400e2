"""A draft: one operation of a migration before its SQL is known."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.operations import Operations

from . import _ops as ops

# Order of the operations on one table (PostgreSQL; SQLite runs its rebuild first).
RENAME, ADD, DROP_KEY, ALTER, REQUIRE, ADD_KEY, DROP = 10, 20, 30, 40, 50, 60, 70


@dataclass
class Draft:
    """An operation before its SQL is known.

    ``before`` always runs where the draft stands (archiving); ``native`` is the change made
    in place, ``rebuild`` the same change made by SQLite's table rebuild. On PostgreSQL
    ``native`` always exists; on SQLite a draft without it needs the rebuild.
    """

    kind: str
    table: str
    column: str | None
    description: str
    phase: int = 0
    destructive: bool = False
    before: ops.Action | None = None
    native: ops.Action | None = None
    rebuild: ops.RebuildPart | None = None

    def action(self, rebuilt: bool) -> ops.Action:
        """What to run at this draft's place; ``rebuilt``: its table is being rebuilt."""
        steps = [self.before, None if rebuilt and self.rebuild else self.native]

        def run(op: Operations) -> None:
            for step in steps:
                if step is not None:
                    step(op)

        return run
