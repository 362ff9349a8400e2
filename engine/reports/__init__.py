"""Reports: a report definition (or an ad-hoc one) run as one SQL statement, with the
actor's permissions in that statement.

>>> reports = Reports(records)
>>> result = reports.run(actor, "sales_funnel", {"period": "this_quarter"})
>>> result.rows[0], result.totals
({'stage': 'initial', 'deals': 12, 'amount': Decimal('530000.00'), …}, {'deals': 40, …})

What an actor may see decides what a report may read: the role's scope of the entity is
a condition of the statement, and a field hidden from the role (or a path through one,
or through an entity they may not read) may not be grouped, filtered or measured. An
ad-hoc report that names one is refused (400, as an unknown field); a saved report
leaves out the measures that read one — a rep sees product sales without their margin —
and is refused (403) when its dimensions or filters read one.

Rows are never summed in Python: grouping, measures, having, ranking, "others" and totals
are all in the statement (see :mod:`._sql`). Python only adds the empty time and value
buckets (``fill``) and shapes the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Report, ReportMeasure, UnknownName, local_today

from ..context import Actor
from ..errors import BadRequest, Forbidden, NotFound
from ..paths import QueryValueError
from ..records import Records
from . import _params
from ._aggregates import AGGREGATES, Aggregate
from ._layouts import build_funnel, build_pivot
from ._results import (
    add_sqlite_aggregates,
    arrange_subtotals,
    pivot_chart,
    rounded,
    shape_pivot,
)
from ._sql import OTHERS, ROWS, SUBTOTAL, TOTALS, Builder, Shape
from ._values import fill, label_of, options_of

__all__ = ["AGGREGATES", "Aggregate", "ReportResult", "Reports"]


@dataclass
class ReportResult:
    """What a report run gives: ``columns`` (what each row key holds), ``rows``,
    ``totals`` (over every record the filter and the actor's scope select; None when
    the report turns them off), the ``chart`` to draw and the ``params`` used."""

    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None
    chart: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    pivot: dict[str, Any] | None = None  # a pivot's dimension and column values

    def to_dict(self) -> dict[str, Any]:
        found = {
            "columns": self.columns,
            "rows": self.rows,
            "totals": self.totals,
            "chart": self.chart,
            "params": self.params,
        }
        if self.pivot is not None:
            found["pivot"] = self.pivot
        return found


class Reports:
    """Runs the reports of one record service's Model, as an actor."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.tables = records.tables
        self.model = records.model
        self.permissions = records.permissions

    def report(self, name: str) -> Report:
        found = self.model.reports.get(name)
        if found is None:
            raise NotFound(f"no report named '{name}'")
        return found

    def visible(self, actor: Actor) -> list[Report]:
        """The reports whose entity ``actor`` may read."""
        return [
            r
            for r in self.model.reports.values()
            if self.permissions.grant(actor, self.model.entity(r.entity), "read").allowed
        ]

    def run(
        self,
        actor: Actor,
        report: Report | str,
        params: Mapping[str, Any] | None = None,
        *,
        adhoc: bool = False,
        strict: bool = False,
        action: str = "read",
        conn: sa.Connection | None = None,
    ) -> ReportResult:
        """Run ``report`` (a name or a compiled :class:`Report`) for ``actor``.

        ``params`` are the values given (text or JSON); ``adhoc`` marks a report the caller
        wrote, for which reading a hidden field is an error rather than a measure left out.
        ``strict`` (a saved report) refuses (403) a report that reads a hidden field at
        all. ``action`` is the permission whose scope applies: ``export`` for a download.
        """
        found = self.report(report) if isinstance(report, str) else report
        entity = self._entity(found.entity)
        grant = self.permissions.grant(actor, entity, action)
        if not grant.allowed or not self.permissions.grant(actor, entity, "read").allowed:
            raise Forbidden(f"you may not {action} {entity.plural_label.get(actor.locale)}")
        measures = self._measures_in_sight(actor, entity, found, adhoc, strict)
        today = actor.today or local_today()
        values = _params.bind(found, params or {}, today)
        context = actor.context()
        if context.today is None:
            context = type(context)(user_id=actor.user_id, team_id=actor.team_id, today=today)
        scope = self.permissions.where(actor, entity, grant, self.tables.table(entity.name))
        dialect = self.records.dialect
        before = _params.previous(values, found.compare) if found.compare else None
        sight = self.permissions.sight(actor)

        def builder(report: Report) -> Builder:
            return Builder(
                self.tables,
                report,
                dialect,
                context,
                lambda p: _params.literal(found, values, p),
                None if before is None else (lambda p: _params.literal(found, before, p)),
                sight,
            )

        main = builder(found)
        for part in found.parts:
            part_entity = self._entity(part.entity)
            part_grant = self.permissions.grant(actor, part_entity, action)
            if (
                not part_grant.allowed
                or not self.permissions.grant(actor, part_entity, "read").allowed
            ):
                raise Forbidden(
                    f"you may not {action} {part_entity.plural_label.get(actor.locale)}"
                )
            kept = self._measures_in_sight(actor, part_entity, part, adhoc, strict)
            table = self.tables.table(part_entity.name)
            main.parts.append(
                (builder(part), kept, self.permissions.where(actor, part_entity, part_grant, table))
            )
        measures = _without_dropped(found, measures, {m.name for _, k, _ in main.parts for m in k})
        fills = not found.limit and any(d.fill for d in found.dimensions)
        try:
            if found.funnel is not None:
                built = build_funnel(main, measures, scope)
            elif found.pivot is not None:
                built = build_pivot(main, measures, scope)
            else:
                built = main.build(measures, scope, found.limit)
        except QueryValueError as exc:  # pragma: no cover - compile checks the paths
            raise BadRequest(f"Invalid report: {exc}") from None

        def work(c: sa.Connection) -> list[Mapping[str, Any]]:
            if dialect == "sqlite":
                add_sqlite_aggregates(c)
            return [dict(row) for row in c.execute(built.statement).mappings()]

        if conn is not None:
            fetched = work(conn)
        else:
            with self.records.reader.connect() as new:
                fetched = work(new)
        columns = self._columns(found, built.shape, actor.locale)
        chart = self._chart(found, built.shape)
        if built.shape.layout == "pivot":
            rows, grand, pivot = shape_pivot(found, built.shape, fetched, columns, actor.locale)
            chart = pivot_chart(chart, found, built.shape, pivot)
            return ReportResult(
                columns,
                rows,
                grand if found.totals else None,
                chart,
                _params.shown(found, values),
                pivot,
            )
        rows, others, totals = self._shape(built.shape, fetched)
        subtotals = [r for r in rows if "_subtotal" in r]
        rows = [r for r in rows if "_subtotal" not in r]
        if fills:
            rows = fill(found, built.shape, rows)
        if found.subtotals:
            rows = arrange_subtotals(found, built.shape, rows, subtotals)
        if others is not None:
            rows.append(others)
        return ReportResult(
            columns, rows, totals if found.totals else None, chart, _params.shown(found, values)
        )

    # --- sight -------------------------------------------------------------------------

    def _entity(self, name: str) -> Entity:
        try:
            return self.model.entity(name)
        except UnknownName as exc:
            raise NotFound(str(exc)) from None

    def _hidden(self, actor: Actor, entity: Entity, path: Sequence[str]) -> str | None:
        """Why ``path`` may not be read by ``actor`` (None: it may)."""
        here = entity
        for depth, name in enumerate(path):
            grant = self.permissions.grant(actor, here, "read")
            if not grant.allowed:
                return f"you may not read {here.plural_label.get(actor.locale)}"
            if name in grant.hidden:
                return f"unknown field '{'.'.join(path[: depth + 1])}'"
            ref = here.fields.get(name)
            if ref is None or ref.to is None or depth == len(path) - 1:
                return None
            here = self.model.entity(ref.to)
        return None

    def _paths(self, report: Report, expression: Any) -> list[tuple[str, ...]]:
        if expression is None:
            return []
        params = {("params", p.name) for p in report.params}
        own = {"cycle"} if report.cycle else set()
        own |= {"unpivot"} if report.unpivot else set()
        paths = set()
        for path in expression.fields:
            if path[0] == "cycle" and "cycle" in own:
                assert report.cycle is not None
                paths |= {(report.cycle.record,), (report.cycle.at,)}
            elif path[0] == "unpivot" and "unpivot" in own:
                if path[1] == "value":
                    paths |= {(name,) for name in report.unpivot}
            elif path[:2] not in params:
                paths.add(path)
        return sorted(paths)

    def check(self, actor: Actor, report: Report) -> None:
        """Refuse (400, as an unknown field) a report that reads what ``actor`` may not."""
        for part in (report, *report.parts):
            entity = self._entity(part.entity)
            if not self.permissions.grant(actor, entity, "read").allowed:
                raise Forbidden(f"you may not read {entity.plural_label.get(actor.locale)}")
            self._measures_in_sight(actor, entity, part, True)

    def _measures_in_sight(
        self, actor: Actor, entity: Entity, report: Report, adhoc: bool, strict: bool = False
    ) -> list[ReportMeasure]:
        """The measures ``actor`` may see; refuses a report whose rows would reveal a
        hidden field."""
        refused: dict[str, list[str]] = {}
        reads: list[tuple[str, tuple[str, ...]]] = []
        for i, dim in enumerate(report.dimensions):
            paths = [dim.path] if dim.path else self._paths(report, dim.expression)
            reads += [(f"group_by[{i}]", p) for p in paths]
        reads += [("filter", p) for p in self._paths(report, report.filter)]
        if report.funnel is not None and report.funnel.dropped_at is not None:
            reads.append(("funnel", report.funnel.dropped_at))
        for key, path in reads:
            why = self._hidden(actor, entity, path)
            if why:
                refused.setdefault(key, []).append(why)
        dropped: set[str] = set()
        for i, measure in enumerate(report.measures):
            paths = [measure.path] if measure.path else []
            paths += self._paths(report, measure.value) + self._paths(report, measure.filter)
            for path in paths:
                why = self._hidden(actor, entity, path)
                if why:
                    dropped.add(measure.name)
                    if adhoc or strict:
                        refused.setdefault(f"measures[{i}]", []).append(why)
        if refused:
            first = next(iter(refused.values()))[0]
            if adhoc and not strict:
                raise BadRequest(f"Invalid report: {first}", refused)
            raise Forbidden(f"report {report.name} reads what you may not see: {first}")
        kept = []
        for measure in report.measures:
            reads_dropped = (
                (
                    measure.expression is not None
                    and any(".".join(p) in dropped for p in measure.expression.fields)
                )
                or measure.share_of in dropped
                or measure.conversion_of in dropped
            )
            twin_of = measure.name.removesuffix("_previous") if measure.previous else None
            if measure.name not in dropped and not reads_dropped and twin_of not in dropped:
                kept.append(measure)
        names = {m.name for m in kept}
        if report.parts:
            return kept  # the union's having is checked with its parts' measures (run)
        if report.having is not None and any(
            ".".join(p) not in names and ".".join(p) not in {d.name for d in report.dimensions}
            for p in report.having.fields
        ):
            raise Forbidden(f"report {report.name} reads what you may not see")
        return kept

    # --- the result ----------------------------------------------------------------------

    def _shape(
        self, shape: Shape, fetched: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
        rows: list[dict[str, Any]] = []
        others: dict[str, Any] | None = None
        totals: dict[str, Any] | None = None
        for record in fetched:
            level = record["_level"]
            measures = {
                m.name: rounded(shape, m.name, record[label]) for m, label in shape.measures
            }
            if level == ROWS or level > SUBTOTAL:
                row: dict[str, Any] = {}
                for dim, label, _ in shape.dimensions:
                    row[dim.name] = record[label]
                    if dim.name in shape.titles:
                        row[f"{dim.name}__title"] = record[shape.titles[dim.name]]
                row.update(measures)
                if level > SUBTOTAL:
                    row["_subtotal"] = level - SUBTOTAL
                rows.append(row)
            elif level == OTHERS:
                others = {dim.name: None for dim, _, _ in shape.dimensions}
                others.update(measures)
                others["_others"] = True
            elif level == TOTALS:
                totals = measures
        return rows, others, totals

    def _columns(self, report: Report, shape: Shape, locale: str) -> list[dict[str, Any]]:
        columns: list[dict[str, Any]] = []
        for i, (dim, _, target) in enumerate(shape.dimensions):
            column: dict[str, Any] = {
                "name": dim.name,
                "label": label_of(report, i, dim, target, locale),
                "type": dim.result_type,
                "role": "dimension",
            }
            if dim.bucket:
                column["bucket"] = dim.bucket
            options = options_of(dim, target, locale)
            if options:
                column["options"] = options
            if dim.name in shape.titles:
                column["title"] = f"{dim.name}__title"
            columns.append(column)
        for measure, _ in shape.measures:
            columns.append(
                {
                    "name": measure.name,
                    "label": measure.label.get(locale),
                    "type": measure.value_type,
                    "role": "measure",
                }
            )
        return columns

    def _chart(self, report: Report, shape: Shape) -> dict[str, Any]:
        """How to draw the result: the report's ``chart``, completed, without the
        measures left out for this actor."""
        spec = dict(report.chart or {})
        dims = [d.name for d, _, _ in shape.dimensions]
        measures = [m.name for m, _ in shape.measures]
        funnel = report.funnel
        ys = spec.get("y") or ([funnel.measure] if funnel is not None else measures)
        ys = [ys] if isinstance(ys, str) else list(ys)
        default = "funnel" if funnel is not None else ("bar" if dims else "number")
        chart: dict[str, Any] = {
            "type": spec.get("type") or default,
            "x": spec.get("x") or (dims[0] if dims else None),
            "y": [y for y in ys if y in measures],
        }
        series = spec.get("series")
        if not series and len(dims) > 1 and chart["type"] in ("bar", "stacked_bar", "line"):
            series = dims[1]
        if series:
            chart["series"] = series
        return chart


def _without_dropped(
    report: Report, measures: list[ReportMeasure], parts: set[str]
) -> list[ReportMeasure]:
    """A union's expressions over a part's measure the actor may not see go too."""
    if not report.parts:
        return measures
    known = {m.name for m in measures} | parts
    kept = [
        m
        for m in measures
        if m.expression is None or all(".".join(p) in known for p in m.expression.fields)
    ]
    if report.having is not None and any(
        ".".join(p) not in known | {d.name for d in report.dimensions} for p in report.having.fields
    ):
        raise Forbidden(f"report {report.name} reads what you may not see")
    return kept
