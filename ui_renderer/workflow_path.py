"""A record's path through its workflow (the stepper above the record page, as
Salesforce's path bar) and the workflow's diagram, drawn as SVG on the server.

The path lists the states in their declared order: the ones the record has passed
checked, the one it is in highlighted, final states (won, lost, closed) apart at the end.
The diagram is an arc diagram: the states in a row in the same order, each transition an
arc from its source to its target — above the row when it moves forward, below when it
moves back — so arcs of different lengths nest instead of crossing boxes, and the layout
is the same every time without a layout engine or a script in the browser::

    >>> d = diagram(model.workflow("opportunity_pipeline"), "en", current="proposal")
    >>> [n.label for n in d.nodes][:2], d.width
    (['Initial contact', 'Needs analysis'], 920)

Nothing here queries a database: ``current`` and ``visited`` come from the record and
its transition history, read by the platform.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metamodel import Workflow

from .pages import text

#: the diagram's grid, in SVG user units (CSS pixels at 100 %)
COLUMN = 150
BOX_WIDTH = 124
BOX_HEIGHT = 44
MARGIN = 12
RISE = 22  # how much higher an arc climbs for each column it spans
BASE_RISE = 26


@dataclass(frozen=True)
class Step:
    """One state on the path: ``status`` is ``done``, ``current`` or ``todo``."""

    name: str
    label: str
    status: str
    final: bool = False
    color: str | None = None


@dataclass(frozen=True)
class Path:
    """A workflow's states for one record: the main ones, then the final ones apart."""

    workflow: str
    label: str
    steps: tuple[Step, ...]
    finals: tuple[Step, ...]
    current: str  # the current state's label


def path(workflow: Workflow, current: str | None, visited: Iterable[str], locale: str) -> Path:
    """The path of a record in ``current`` that has been in ``visited`` states."""
    seen = set(visited)
    main = [s for s in workflow.states if not s.final]
    names = [s.name for s in main]
    at_final = any(s.final and s.name == current for s in workflow.states)
    position = names.index(current) if current in names else -1

    def status(name: str, index: int) -> str:
        if name == current:
            return "current"
        if at_final:
            return "done" if name in seen else "todo"
        return "done" if index < position else "todo"

    steps = tuple(
        Step(s.name, text(s.label, locale, s.name), status(s.name, i), False, s.color)
        for i, s in enumerate(main)
    )
    finals = tuple(
        Step(s.name, text(s.label, locale, s.name), "current" if s.name == current else "todo",
             True, s.color)
        for s in workflow.states
        if s.final
    )  # fmt: skip
    here = next((s for s in workflow.states if s.name == current), None)
    return Path(
        workflow.name,
        text(workflow.label, locale, workflow.name),
        steps,
        finals,
        text(here.label, locale, here.name) if here else (current or ""),
    )


# --- the diagram ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A state's box: its top-left corner, and how it is marked."""

    name: str
    label: str
    x: int
    y: int
    current: bool = False
    initial: bool = False
    final: bool = False
    locked: bool = False
    color: str | None = None

    width: int = BOX_WIDTH
    height: int = BOX_HEIGHT

    @property
    def cx(self) -> int:
        return self.x + BOX_WIDTH // 2

    @property
    def cy(self) -> int:
        return self.y + BOX_HEIGHT // 2


@dataclass(frozen=True)
class Arc:
    """A transition from one state to another: the SVG path and where its label sits.
    ``kind`` is ``transition``, or ``approved``/``rejected`` for an approval's outcome."""

    source: str
    target: str
    label: str
    d: str
    label_x: int
    label_y: int
    forward: bool
    kind: str = "transition"


@dataclass(frozen=True)
class Diagram:
    workflow: str
    label: str
    nodes: tuple[Node, ...]
    arcs: tuple[Arc, ...]
    width: int
    height: int


def _order(workflow: Workflow) -> list[str]:
    """The declared order, final states last (as on the path)."""
    return [s.name for s in workflow.states if not s.final] + [
        s.name for s in workflow.states if s.final
    ]


def _edges(workflow: Workflow, locale: str) -> list[tuple[str, str, str, str]]:
    """(source, target, label, kind) for each transition and source, and each approval
    outcome; a ``'*'`` transition from every other state."""
    names = [s.name for s in workflow.states]
    found: list[tuple[str, str, str, str]] = []
    for transition in workflow.transitions:
        label = text(transition.label, locale, transition.name)
        for source in names:
            if transition.allowed_from(source) and source != transition.to:
                found.append((source, transition.to, label, "transition"))
    for approval in workflow.approvals:
        label = text(approval.label, locale, approval.name)
        waiting = dict.fromkeys(t.to for t in workflow.transitions if t.approval == approval.name)
        for kind, settled in (("approved", approval.on_approve), ("rejected", approval.on_reject)):
            for source in waiting:
                if settled and settled != source:
                    found.append((source, settled, label, kind))
    return list(dict.fromkeys(found))


def diagram(workflow: Workflow, locale: str, current: str | None = None) -> Diagram:
    """The workflow as an arc diagram, ``current`` marked."""
    order = _order(workflow)
    column = {name: i for i, name in enumerate(order)}
    edges = _edges(workflow, locale)
    up = max((abs(column[t] - column[s]) for s, t, _l, _k in edges if column[t] > column[s]),
             default=0)  # fmt: skip
    down = max((abs(column[t] - column[s]) for s, t, _l, _k in edges if column[t] < column[s]),
               default=0)  # fmt: skip
    # a cubic arc whose control points are ``rise`` away climbs three quarters of it
    top = MARGIN + ((BASE_RISE + RISE * up) * 3 // 4 + 16 if up else 0)
    states = {s.name: s for s in workflow.states}
    nodes = tuple(
        Node(
            name,
            text(states[name].label, locale, name),
            MARGIN + i * COLUMN,
            top,
            current=name == current,
            initial=states[name] is workflow.initial,
            final=states[name].final,
            locked=states[name].locked,
            color=states[name].color,
        )
        for i, name in enumerate(order)
    )
    at = {n.name: n for n in nodes}
    arcs = []
    # arcs leaving or entering one box spread along its edge, so they do not meet in a point
    ends: dict[tuple[str, bool], int] = {}
    for source, target, label, kind in sorted(
        edges, key=lambda e: abs(column[e[1]] - column[e[0]])
    ):
        a, b = at[source], at[target]
        forward = column[target] > column[source]
        span = abs(column[target] - column[source])
        rise = BASE_RISE + RISE * span
        for key in ((source, forward), (target, forward)):
            ends[key] = ends.get(key, 0) + 1
        shift_a = _spread(ends[(source, forward)])
        shift_b = _spread(ends[(target, forward)])
        x1, x2 = a.cx + shift_a, b.cx - shift_b if forward else b.cx + shift_b
        if forward:
            y = a.y
            peak = y - rise
        else:
            y = a.y + BOX_HEIGHT
            peak = y + rise
        d = f"M {x1} {y} C {x1} {peak} {x2} {peak} {x2} {y}"
        mid = (x1 + x2) // 2
        label_y = (y + 3 * peak) // 4 + (-4 if forward else 12)
        arcs.append(Arc(source, target, label, d, mid, label_y, forward, kind))
    width = MARGIN * 2 + (len(order) - 1) * COLUMN + BOX_WIDTH
    height = top + BOX_HEIGHT + ((BASE_RISE + RISE * down) * 3 // 4 + 20 if down else 0) + MARGIN
    return Diagram(
        workflow.name, text(workflow.label, locale, workflow.name), nodes, tuple(arcs), width,
        height,
    )  # fmt: skip


def _spread(count: int) -> int:
    """Where the ``count``-th arc at one side of a box meets it: alternately right and
    left of the centre, 8 units apart, within the box."""
    step = (count // 2) * 8
    offset = step if count % 2 else -step
    return max(-BOX_WIDTH // 2 + 6, min(BOX_WIDTH // 2 - 6, offset))
