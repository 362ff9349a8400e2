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

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Report, ReportMeasure, UnknownName

from ..context import Actor
from ..errors import BadRequest, Forbidden, NotFound
from ..paths import QueryValueError
from ..records import Records
from . import _params
from ._aggregates import AGGREGATES, Aggregate
from ._sql import OTHERS, ROWS, TOTALS, Builder, Shape
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "totals": self.totals,
            "chart": self.chart,
            "params": self.params,
        }


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
        action: str = "read",
        conn: sa.Connection | None = None,
    ) -> ReportResult:
        """Run ``report`` (a name or a compiled :class:`Report`) for ``actor``.

        ``params`` are the values given (text or JSON); ``adhoc`` marks a report the caller
        wrote, for which reading a hidden field is an error rather than a measure left out.
        ``action`` is the permission whose scope applies: ``export`` for a download.
        """
        found = self.report(report) if isinstance(report, str) else report
        entity = self._entity(found.entity)
        grant = self.permissions.grant(actor, entity, action)
        if not grant.allowed or not self.permissions.grant(actor, entity, "read").allowed:
            raise Forbidden(f"you may not {action} {entity.plural_label.get(actor.locale)}")
        measures = self._measures_in_sight(actor, entity, found, adhoc)
        today = actor.today or dt.datetime.now(dt.UTC).date()
        values = _params.bind(found, params or {}, today)
        context = actor.context()
        if context.today is None:
            context = type(context)(user_id=actor.user_id, team_id=actor.team_id, today=today)
        scope = self.permissions.where(actor, entity, grant, self.tables.table(entity.name))
        dialect = self.records.dialect
        before = _params.previous(values, found.compare) if found.compare else None
        builder = Builder(
            self.tables,
            found,
            dialect,
            context,
            lambda p: _params.literal(found, values, p),
            None if before is None else (lambda p: _params.literal(found, before, p)),
            self.permissions.sight(actor),
        )
        fills = not found.limit and any(d.fill for d in found.dimensions)
        try:
            built = builder.build(measures, scope, found.limit)
        except QueryValueError as exc:  # pragma: no cover - compile checks the paths
            raise BadRequest(f"Invalid report: {exc}") from None

        def work(c: sa.Connection) -> list[Mapping[str, Any]]:
            return [dict(row) for row in c.execute(built.statement).mappings()]

        if conn is not None:
            fetched = work(conn)
        else:
            with self.records.reader.connect() as new:
                fetched = work(new)
        rows, others, totals = self._shape(built.shape, fetched)
        if fills:
            rows = fill(found, built.shape, rows)
        if others is not None:
            rows.append(others)
        return ReportResult(
            self._columns(found, built.shape, actor.locale),
            rows,
            totals if found.totals else None,
            self._chart(found, built.shape),
            _params.shown(found, values),
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
        return sorted(p for p in expression.fields if p[:2] not in params)

    def _measures_in_sight(
        self, actor: Actor, entity: Entity, report: Report, adhoc: bool
    ) -> list[ReportMeasure]:
        """The measures ``actor`` may see; refuses a report whose rows would reveal a
        hidden field."""
        refused: dict[str, list[str]] = {}
        reads: list[tuple[str, tuple[str, ...]]] = []
        for i, dim in enumerate(report.dimensions):
            paths = [dim.path] if dim.path else self._paths(report, dim.expression)
            reads += [(f"group_by[{i}]", p) for p in paths]
        reads += [("filter", p) for p in self._paths(report, report.filter)]
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
                    if adhoc:
                        refused.setdefault(f"measures[{i}]", []).append(why)
        if refused:
            first = next(iter(refused.values()))[0]
            if adhoc:
                raise BadRequest(f"Invalid report: {first}", refused)
            raise Forbidden(f"report {report.name} reads what you may not see: {first}")
        kept = []
        for measure in report.measures:
            reads_dropped = (
                measure.expression is not None
                and any(".".join(p) in dropped for p in measure.expression.fields)
            ) or measure.share_of in dropped
            twin_of = measure.name.removesuffix("_previous") if measure.previous else None
            if measure.name not in dropped and not reads_dropped and twin_of not in dropped:
                kept.append(measure)
        names = {m.name for m in kept}
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
                m.name: _rounded(shape, m.name, record[label]) for m, label in shape.measures
            }
            if level == ROWS:
                row: dict[str, Any] = {}
                for dim, label, _ in shape.dimensions:
                    row[dim.name] = record[label]
                    if dim.name in shape.titles:
                        row[f"{dim.name}__title"] = record[shape.titles[dim.name]]
                row.update(measures)
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
        ys = spec.get("y") or measures
        ys = [ys] if isinstance(ys, str) else list(ys)
        chart: dict[str, Any] = {
            "type": spec.get("type") or ("bar" if dims else "number"),
            "x": spec.get("x") or (dims[0] if dims else None),
            "y": [y for y in ys if y in measures],
        }
        series = spec.get("series")
        if not series and len(dims) > 1 and chart["type"] in ("bar", "stacked_bar", "line"):
            series = dims[1]
        if series:
            chart["series"] = series
        return chart


def _rounded(shape: Shape, name: str, value: Any) -> Any:
    """A decimal measure to the places of its field, the same on every database."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal) and name in shape.scales:
        return value.quantize(Decimal(1).scaleb(-shape.scales[name]))
    return value
