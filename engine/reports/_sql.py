"""One SQL statement for a report: its rows, the "others" row and the totals.

The statement, for ``group_by: [stage]``, ``measures: [deals: count, total: sum amount]``,
``having: deals > 2``, ``sort: -total``, ``limit: 5``, ``others: true``::

    WITH g AS (SELECT stage AS d0, count(*) AS m0, sum(amount) AS m1
               FROM opportunity [JOIN …] WHERE <filter> AND <scope> GROUP BY stage),
         r AS (SELECT g.*, CASE WHEN <having> THEN 1 ELSE 0 END AS _keep,
                      row_number() OVER (ORDER BY <having first>, m1 DESC, …) AS _rn FROM g)
    SELECT 0 AS _level, r._rn, r.d0, r.m0, r.m1 FROM r WHERE r._rn <= 5 AND r._keep = 1
    UNION ALL                                      -- others: every group not shown
    SELECT 1, NULL, NULL, sum(CASE WHEN NOT (r._rn <= 5 AND r._keep = 1) THEN m0 END), …
      FROM r
    UNION ALL                                      -- totals: every group
    SELECT 2, NULL, NULL, sum(g.m0), sum(g.m1) FROM g
    ORDER BY _level, _rn

The records are read once: "others", the totals and subtotals are **folded** from the
groups (:attr:`Aggregate.fold`: counts and sums add up, minimums take the least, an
average divides its groups' summed sums by their summed counts, kept as helper columns).
A report with a measure that does not fold (a distinct count, a median; in a union, an
average too: the combined groups keep no sums and counts) computes them from the records
instead: the totals as a second aggregate, "others" over the records of
no row shown (``NOT EXISTS (… IS NOT DISTINCT FROM …)``).

Field paths resolve through :class:`engine.paths.Resolver` (one join per reference
prefix), expressions through :func:`engine.sqlexpr.to_sql`, measures through
:data:`AGGREGATES`; expression measures (``won / closed``) are computed from the
aggregates of the same level, so rows, others and totals each get theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from metamodel import Dimension, Report, ReportMeasure, local_zone
from metamodel.expressions import Context, Expression

from ..paths import SQL_TYPES, Resolver, Sight, Target
from ..query import _title_source
from ..query._sql import sort_expression
from ..sqlexpr import to_sql
from ..tables import TEAM_TABLE, USER_TABLE, Tables
from ._aggregates import AGGREGATES

Column = Any
# What each row of a report's statement is (its ``_level``): a row; the "others" row;
# the totals; a subtotal (``_depth`` dimensions fixed); a pivot's row total and column total.
ROWS, OTHERS, TOTALS, ROW_TOTAL, COLUMN_TOTAL = 0, 1, 2, 4, 5
SUBTOTAL = 10  # + the number of dimensions the subtotal fixes


@dataclass
class Shape:
    """What the statement's columns hold: the labels of each dimension, title and measure."""

    dimensions: list[tuple[Dimension, str, Target | None]] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)  # dimension name → label
    measures: list[tuple[ReportMeasure, str]] = field(default_factory=list)
    scales: dict[str, int] = field(default_factory=dict)  # decimal measure → places shown
    layout: str = "rows"  # or pivot, subtotals, funnel


@dataclass
class Grouped:
    """A dimension as the statement reads it, and the title of the record it names."""

    dimension: Dimension
    column: Column
    title: Column | None = None


@dataclass
class Built:
    statement: sa.Select[Any] | sa.CompoundSelect[Any]
    shape: Shape


def _bucket(column: Column, bucket: str, value_type: str, sqlite: bool) -> Column:
    """The first day of the day, week (from Monday), month, quarter or year of a value;
    of a datetime, as the day it is in the deployment's time zone."""
    if sqlite:
        # SQLite's "localtime" is this process's zone: HEDDLE_TIME_ZONE's
        local = ("localtime",) if value_type == "datetime" else ()
        if bucket == "day":
            start = sa.func.date(column, *local)
        elif bucket == "week":
            start = sa.func.date(column, *local, "weekday 0", "-6 days")
        elif bucket == "quarter":
            back = (sa.cast(sa.func.strftime("%m", column, *local), sa.Integer) - 1) % 3
            start = sa.func.date(
                column, *local, "start of month", sa.func.printf("-%d months", back)
            )
        else:
            start = sa.func.date(column, *local, f"start of {bucket}")
        return sa.type_coerce(start, sa.Date())
    plain = (
        sa.func.timezone(local_zone(), column)
        if value_type == "datetime"
        else sa.cast(column, sa.DateTime())
    )
    return sa.cast(sa.func.date_trunc(bucket, plain), sa.Date())


def _ranges(column: Column, dimension: Dimension) -> Column:
    whens: list[tuple[Column, Column]] = [(column.is_(None), sa.null())]
    last = None
    for bucket in dimension.ranges:
        if bucket.to is None:
            last = bucket.value
        else:
            whens.append((column <= bucket.to, sa.literal(bucket.value)))
    return sa.case(*whens, else_=sa.literal(last) if last is not None else sa.null())


class Builder:
    """Builds the statement of one report run (build one per run: ``today()`` and the
    parameters are bound as values)."""

    def __init__(
        self,
        tables: Tables,
        report: Report,
        dialect: str,
        context: Context,
        params: Callable[[tuple[str, ...]], Column],
        previous_params: Callable[[tuple[str, ...]], Column] | None = None,
        sight: Sight | None = None,
    ) -> None:
        self.tables = tables
        self.report = report
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        self.context = context
        self.params = params
        self.previous_params = previous_params
        self._previous = False  # compiling for the previous period (compare)
        self._periods: tuple[Column, Column] | None = None  # (this period's rows, the last's)
        # Paths through references reach only the records the actor may read (others read
        # as no record): a report groups by nothing its user could not see.
        self.resolver = Resolver(tables, report.entity, dialect, context, sight=sight)
        self._system_joins: list[tuple[sa.FromClause, Column]] = []
        self._spread: sa.Subquery | None = None  # the numbers an unpivot spreads over
        # a union's parts: their builders, the measures kept and their scopes
        self.parts: list[tuple[Builder, list[ReportMeasure], Column | None]] = []
        self.scales: dict[str, int] = {}

    def resolve(self, path: tuple[str, ...]) -> Column:
        if path[0] == "params":
            if self._previous and self.previous_params is not None:
                return self.previous_params(path)
            return self.params(path)
        if path[0] == "cycle" and self.report.cycle is not None:
            return self._cycle(path[1])
        if path[0] == "unpivot" and self.report.unpivot:
            index = self._unpivot_index()
            if path[1] == "index":
                return index
            fields = self.report.unpivot
            value = sa.case(
                *((index == i + 1, self.resolver.column((f,))) for i, f in enumerate(fields))
            )
            return sa.type_coerce(value, self.resolver.column((fields[0],)).type)
        return self.resolver.column(path)

    def _unpivot_index(self) -> Column:
        if self._spread is None:
            numbers = [
                sa.select(sa.literal(i + 1).label("i")) for i in range(len(self.report.unpivot))
            ]
            self._spread = sa.union_all(*numbers).subquery("unpivot")
        return self._spread.c.i

    def _cycle(self, name: str) -> Column:
        """Days from this history row to the next of its record (``days``), or from its
        record's first row (``total_days``), over the record's whole history."""
        cycle = self.report.cycle
        assert cycle is not None
        base = self.resolver.base
        other = self.tables.table(self.report.entity).alias()
        at: Column = other.c[cycle.at]
        mine: Column = base.c[cycle.at]
        same = other.c[cycle.record] == base.c[cycle.record]
        if name == "days":
            later = sa.or_(at > mine, sa.and_(at == mine, other.c.id > base.c.id))
            bound = sa.select(sa.func.min(at)).where(same, later).scalar_subquery()
            start, end = mine, bound
        else:
            bound = sa.select(sa.func.min(at)).where(same).scalar_subquery()
            start, end = bound, mine
        if self.sqlite:
            days = sa.func.julianday(end) - sa.func.julianday(start)
        elif cycle.at_type == "datetime":
            days = sa.extract("epoch", end - start) / 86400
        else:
            days = end - start
        return sa.type_coerce(days, sa.Numeric(decimal_return_scale=6))

    def sql(self, expression: Expression) -> Column:
        return to_sql(expression, self.resolve, self.dialect, self.context)

    # --- the parts ------------------------------------------------------------------------

    def dimension(self, dim: Dimension) -> tuple[Column, Target | None]:
        target = None
        if dim.path is not None:
            found = self.resolver.walk(dim.path)
            target = found.target
            column = self.resolver.column_of(found)
        else:
            assert dim.expression is not None
            column = self.sql(dim.expression)
        if dim.bucket:
            return _bucket(column, dim.bucket, dim.value_type, self.sqlite), None
        if dim.ranges:
            return _ranges(column, dim), None
        return column, target

    def title(self, dim: Dimension, target: Target | None, column: Column) -> Column | None:
        """The title of the record a reference dimension names (its id is the value)."""
        if target is None or target.kind != "ref" or dim.path is None:
            return None
        source = _title_source(target)
        if source in (USER_TABLE, TEAM_TABLE):
            system = self.tables.metadata.tables[source].alias()
            self._system_joins.append((system, system.c.id == column))
            return system.c.name
        if source is None or len(dim.path) > 2:
            return None
        title = self.tables.model.entity(source).title_field
        if not title:
            return None
        return self.resolver.column((*dim.path, title))

    def _measured(self, measure: ReportMeasure) -> Column | None:
        """What ``measure`` aggregates for each record: its field or value, ``CASE``'d by
        its filter (and by the period, in a comparison); None for a plain count."""
        value: Column | None = None
        if measure.path is not None:
            value = self.resolver.column(measure.path)
        elif measure.value is not None:
            value = self.sql(measure.value)
        holds: list[Column] = []
        if self._periods is not None:
            holds.append(self._periods[1 if measure.previous else 0])
        if measure.filter is not None:
            self._previous = measure.previous
            holds.append(sa.func.coalesce(self.sql(measure.filter), False))
            self._previous = False
        if holds:
            value = sa.case((sa.and_(*holds), value if value is not None else sa.literal(1)))
        return value

    def measure(self, measure: ReportMeasure) -> Column:
        assert measure.aggregate is not None
        result = AGGREGATES[measure.aggregate].sql(self._measured(measure))
        return self._typed(measure, result)

    def _typed(self, measure: ReportMeasure, result: Column) -> Column:
        """``result`` (``measure``'s aggregate) as the measure's type; a decimal with the
        places it shows."""
        if measure.value_type != "decimal":
            return sa.type_coerce(result, SQL_TYPES.get(measure.value_type, sa.String()))
        scale = 6
        if measure.path is not None:
            kind = self.resolver.column(measure.path).type
            declared = getattr(kind, "scale", None) if isinstance(kind, sa.Numeric) else None
            scale = (
                declared
                if declared is not None
                else _scale(self.resolver.walk(measure.path).target, self.tables)
            )
        if measure.aggregate not in ("sum", "min", "max"):
            scale = max(scale, 6)
        self.scales[measure.name] = scale
        return sa.type_coerce(result, sa.Numeric(decimal_return_scale=scale))

    # --- folding: the aggregates of groups added up to their union's --------------------------

    def folds(self, measures: Sequence[ReportMeasure]) -> bool:
        """Whether every aggregate of ``measures`` adds up from its groups' (then "others",
        totals, subtotals and a pivot's totals are computed from the grouped rows)."""
        folding = [AGGREGATES[str(m.aggregate)].fold for m in measures if m.aggregate is not None]
        if self.parts and "avg" in folding:  # a union's groups keep no sums and counts
            return False
        return all(fold is not None for fold in folding)

    def helpers(self, measure: ReportMeasure, label: str) -> list[Column]:
        """The columns a group adds for its measure to fold: an average's sum and count."""
        if measure.aggregate is None or AGGREGATES[measure.aggregate].fold != "avg":
            return []
        value = self._measured(measure)
        return [sa.func.sum(value).label(f"{label}_s"), sa.func.count(value).label(f"{label}_n")]

    def fold(
        self,
        measure: ReportMeasure,
        label: str,
        grouped: sa.FromClause,
        keep: Column | None = None,
    ) -> Column:
        """``measure`` over the groups of ``grouped`` (those ``keep`` holds for), from each
        group's ``label`` column (and an average's sum and count)."""
        assert measure.aggregate is not None
        aggregate = AGGREGATES[measure.aggregate]

        def kept(column: Column) -> Column:
            return column if keep is None else sa.case((keep, column))

        if aggregate.fold == "avg":
            total = sa.func.sum(kept(grouped.c[f"{label}_s"]))
            count = sa.func.sum(kept(grouped.c[f"{label}_n"]))
            numerator = sa.cast(total, sa.Float if self.sqlite else sa.Numeric)
            result: Column = numerator / sa.func.nullif(count, 0)
        else:
            function = getattr(sa.func, str(aggregate.fold))
            result = function(kept(grouped.c[label]))
            if aggregate.empty is not None:
                result = sa.func.coalesce(result, aggregate.empty)
            if measure.value_type == "integer" and not self.sqlite:
                result = sa.cast(result, sa.BigInteger)  # PostgreSQL sums bigints as numerics
        owner = next((part for part, kept, _ in self.parts if measure in kept), self)
        return owner._typed(measure, result)  # a union part's measure reads its own entity

    def folded(
        self,
        level: int,
        grouped: sa.FromClause,
        used: Sequence[int],
        shape: Shape,
        labels: Sequence[str],
        *,
        keep: Column | None = None,
        ranked: bool = True,
        by_dimensions: bool = False,
    ) -> sa.Select[Any]:
        """One level of a layout computed from the rows of ``grouped`` (a statement's
        groups) rather than from the records: their measures folded by the dimensions
        ``used`` (the others empty), numbered in the report's order when ``ranked``."""
        measures = [(m, label) for m, label in shape.measures]
        values = {
            m.name: self.fold(m, label, grouped, keep) for m, label in measures if label[0] == "m"
        }
        expressions = [m for m, _ in measures if m.expression is not None]
        by_name: dict[str, Column] = dict(values)
        computed = self._expressions(expressions, values)
        by_name.update({m.name: c for m, c in zip(expressions, computed, strict=True)})
        labels_of = {m.name: label for m, label in measures}
        by_measure = {m.name: m for m, _ in measures}
        for measure, _ in measures:
            if measure.share_of is not None:
                part = values[measure.share_of]
                if keep is not None:  # "others": a part of every group's
                    of = by_measure[measure.share_of]
                    whole = self.fold(of, labels_of[of.name], grouped)
                else:  # a subtotal: of every group's; the totals: of themselves
                    whole = sa.func.sum(part).over() if used else part
                by_name[measure.name] = _ratio(part, whole, self.sqlite)
        named: dict[str, Column] = {}
        group: list[Column] = []
        for i, (dimension, label, _) in enumerate(shape.dimensions):
            title = shape.titles.get(dimension.name)
            if i in used:
                by_name[dimension.name] = grouped.c[label]
                group.append(grouped.c[label])
                named[label] = grouped.c[label]
                if title is not None:
                    group.append(grouped.c[title])
                    named[title] = grouped.c[title]
            else:
                named[label] = sa.null()
                if title is not None:
                    named[title] = sa.null()
        columns = self._level(level, shape, by_name, named, labels, ranked, by_dimensions)
        statement = sa.select(*columns).select_from(grouped)
        return statement.group_by(*group) if group else statement

    def source(self) -> sa.FromClause:
        clause = self.resolver.from_clause()
        for table, on in self._system_joins:
            clause = clause.outerjoin(table, on)
        if self._spread is not None:
            clause = clause.join(self._spread, sa.true())
        return clause

    # --- the pieces the layouts share (see ._layouts) --------------------------------------

    def conditions(self, scope: Column | None) -> list[Column]:
        found = [] if self.report.filter is None else [self.sql(self.report.filter)]
        return found if scope is None else [*found, scope]

    def columns(self, shape: Shape) -> list[Grouped]:
        """The report's dimensions, as columns (with the titles of references)."""
        found = []
        for i, dim in enumerate(self.report.dimensions):
            column, target = self.dimension(dim)
            shape.dimensions.append((dim, f"d{i}", target))
            title = self.title(dim, target, column)
            if title is not None:
                shape.titles[dim.name] = f"t{i}"
            found.append(Grouped(dim, column, title))
        return found

    def grouped(
        self,
        level: int,
        dims: Sequence[Grouped],
        used: Sequence[int],
        shape: Shape,
        conditions: Sequence[Column],
        *,
        ranked: bool = True,
        labels: Sequence[str] | None = None,
        by_dimensions: bool = False,
    ) -> sa.Select[Any]:
        """One level of a layout: the measures grouped by the dimensions ``used`` (the
        others empty), numbered in the report's order when ``ranked``. ``labels``: the
        order of the columns after ``_level`` and ``_rn`` (default: dimensions, titles,
        measures)."""
        measures = [m for m, _ in shape.measures]
        aggregates = [m for m in measures if m.aggregate is not None]
        expressions = [m for m in measures if m.expression is not None]
        values = {m.name: self.measure(m) for m in aggregates}
        computed = self._expressions(expressions, values)
        by_name: dict[str, Column] = dict(values)
        by_name.update({m.name: c for m, c in zip(expressions, computed, strict=True)})
        source = self.source()
        for measure in measures:
            if measure.share_of is not None:
                whole = (
                    sa.select(values[measure.share_of])
                    .select_from(source)
                    .where(*conditions)
                    .scalar_subquery()
                )
                by_name[measure.name] = _ratio(values[measure.share_of], whole, self.sqlite)
        named: dict[str, Column] = {}
        group: list[Column] = []
        for i, dim in enumerate(dims):
            if i in used:
                by_name[dim.dimension.name] = dim.column
                group.append(dim.column)
                named[f"d{i}"] = dim.column
                if dim.title is not None:
                    group.append(dim.title)
                    named[f"t{i}"] = dim.title
            else:
                named[f"d{i}"] = sa.null()
                if dim.title is not None:
                    named[f"t{i}"] = sa.null()
        columns = self._level(level, shape, by_name, named, labels, ranked, by_dimensions)
        statement = sa.select(*columns).select_from(source).where(*conditions)
        return statement.group_by(*group) if group else statement

    # --- the statement --------------------------------------------------------------------

    def build(
        self, measures: Sequence[ReportMeasure], scope: Column | None, limit: int | None
    ) -> Built:
        report = self.report
        shape = Shape()
        conditions: list[Column] = []
        if report.filter is not None and report.compare and self.previous_params is not None:
            now = sa.func.coalesce(self.sql(report.filter), False)
            self._previous = True
            before = sa.func.coalesce(self.sql(report.filter), False)
            self._previous = False
            self._periods = (now, before)
            conditions.append(sa.or_(now, before))
        elif report.filter is not None:
            conditions.append(self.sql(report.filter))
        if scope is not None:
            conditions.append(scope)

        grouped: list[Column] = []  # what GROUP BY lists
        selected: list[Column] = []
        base_dims: list[Column] = []
        dims = self.columns(shape)
        for i, dim in enumerate(dims):
            base_dims.append(dim.column)
            grouped.append(dim.column)
            selected.append(dim.column.label(f"d{i}"))
            if dim.title is not None:
                grouped.append(dim.title)
                selected.append(dim.title.label(f"t{i}"))
        aggregates = [m for m in measures if m.aggregate is not None]
        expressions = [m for m in measures if m.expression is not None]
        owners: dict[str, tuple[Builder, list[Column]]] = {}  # a union part's measures
        for part, kept, part_scope in self.parts:
            for measure in kept:
                owners[measure.name] = (part, part.conditions(part_scope))
            aggregates += kept
        for i, measure in enumerate(aggregates):
            shape.measures.append((measure, f"m{i}"))
            if measure.name not in owners:
                selected.append(self.measure(measure).label(f"m{i}"))
        for i, measure in enumerate(expressions):
            shape.measures.append((measure, f"e{i}"))
            if measure.value_type == "decimal":
                self.scales[measure.name] = 6
        shares = [m for m in measures if m.share_of is not None]
        by_aggregate = {m.name: m for m in aggregates}
        for i, measure in enumerate(shares):
            part = self.measure(by_aggregate[str(measure.share_of)])
            whole = sa.func.sum(part).over()
            shape.measures.append((measure, f"s{i}"))
            selected.append(_ratio(part, whole, self.sqlite).label(f"s{i}"))
            self.scales[measure.name] = 6
        shape.scales = self.scales
        fold = self.folds(aggregates)
        if fold:  # an average adds its sum and count, to fold
            for measure, label in shape.measures:
                selected += self.helpers(measure, label)
        source = self.source()
        g_select = sa.select(*selected).select_from(source).where(*conditions).group_by(*grouped)
        g = self._union(g_select, shape, dims, owners).cte("g") if self.parts else g_select.cte("g")
        for part, _, _ in self.parts:  # known once the parts' measures are compiled
            self.scales.update(part.scales)
        by_name: dict[str, Column] = {}
        for dimension, label, _ in shape.dimensions:
            by_name[dimension.name] = g.c[label]
        for measure, label in shape.measures:
            if label.startswith("m"):
                by_name[measure.name] = g.c[label]
        computed = self._expressions(expressions, by_name)
        by_name.update({m.name: c for m, c in zip(expressions, computed, strict=True)})
        order = self._order(shape, by_name)
        ranked_columns = [*g.c, *(c.label(f"e{i}") for i, c in enumerate(computed))]
        having: Column | None = None
        if report.having is not None:
            having = sa.func.coalesce(
                to_sql(report.having, lambda p: by_name[".".join(p)], self.dialect, self.context),
                False,
            )
        # "others" folded from the groups: every group is ranked, those having keeps first;
        # the rows are the first ``limit`` kept, "others" the rest added up — one pass.
        others_fold = fold and report.others and limit is not None and bool(report.dimensions)
        keep: Column | None = None
        if others_fold and having is not None:
            kept_first: Column = sa.case((having, 1), else_=0)
            order = [kept_first.desc(), *order]
            keep = kept_first.label("_keep")
            ranked_columns.append(keep)
        ranked = sa.select(*ranked_columns, sa.func.row_number().over(order_by=order).label("_rn"))
        if having is not None and not others_fold:
            ranked = ranked.where(having)
        r = ranked.cte("r")
        labels = [c.name for c in ranked_columns if "_" not in c.name]  # not the helpers
        rows = sa.select(sa.literal(ROWS).label("_level"), r.c._rn, *(r.c[n] for n in labels))
        shown: list[Column] = []
        if limit is not None:
            shown.append(r.c._rn <= limit)
        if keep is not None:
            shown.append(r.c._keep == 1)
        rows = rows.where(*shown)
        parts: list[sa.Select[Any]] = [rows]

        def level(kind: int, extra: Sequence[Column]) -> sa.Select[Any]:
            values = {
                m.name: self.measure(m)
                if m.name not in owners
                else owners[m.name][0].whole(m, owners[m.name][1])
                for m in aggregates
            }
            exprs = self._expressions(expressions, values)
            columns: list[Column] = [sa.literal(kind).label("_level"), sa.null().label("_rn")]
            for name in labels:
                if name.startswith("m"):
                    columns.append(values[aggregates[int(name[1:])].name].label(name))
                elif name.startswith("e"):
                    columns.append(exprs[int(name[1:])].label(name))
                elif name.startswith("s"):
                    part = values[str(shares[int(name[1:])].share_of)]
                    whole = (
                        sa.select(self.measure(by_aggregate[str(shares[int(name[1:])].share_of)]))
                        .select_from(source)
                        .where(*conditions)
                        .scalar_subquery()
                        if kind == OTHERS
                        else part
                    )
                    columns.append(_ratio(part, whole, self.sqlite).label(name))
                else:
                    columns.append(sa.null().label(name))
            return sa.select(*columns).select_from(source).where(*conditions, *extra)

        if others_fold:
            parts.append(
                self.folded(OTHERS, r, [], shape, labels, keep=~sa.and_(*shown), ranked=False)
            )
        elif report.others and limit is not None and report.dimensions:
            exists = (
                sa.select(sa.literal(1))
                .select_from(r)
                .where(
                    r.c._rn <= limit,
                    *(
                        r.c[label].is_not_distinct_from(column)
                        for (_, label, _), column in zip(shape.dimensions, base_dims, strict=True)
                    ),
                )
            )
            parts.append(level(OTHERS, [~sa.exists(exists)]))
        if report.subtotals:
            for depth in range(1, len(dims)):
                parts.append(
                    self.folded(SUBTOTAL + depth, g, range(depth), shape, labels)
                    if fold
                    else self.grouped(
                        SUBTOTAL + depth, dims, range(depth), shape, conditions, labels=labels
                    )
                )
        if report.totals:
            parts.append(
                self.folded(TOTALS, g, [], shape, labels, ranked=False)
                if fold
                else level(TOTALS, [])
            )
        if len(parts) == 1:
            return Built(rows.order_by(r.c._rn), shape)
        union = sa.union_all(*parts).subquery("u")
        statement = sa.select(union).order_by(union.c._level, union.c._rn)
        return Built(statement, shape)

    def whole(self, measure: ReportMeasure, conditions: Sequence[Column]) -> Column:
        """``measure`` over every record of this (union part's) report, as a value."""
        value = self.measure(measure)
        return sa.select(value).select_from(self.source()).where(*conditions).scalar_subquery()

    def _union(
        self,
        own: sa.Select[Any],
        shape: Shape,
        dims: Sequence[Grouped],
        owners: dict[str, tuple[Builder, list[Column]]],
    ) -> sa.Select[Any]:
        """The report's groups and its union parts' on the same rows: each part grouped by
        its own dimensions, then together by the dimensions' values."""
        mine_by_label = {c.name: c for c in own.selected_columns}
        columns_of_own: list[Column] = []
        for name in mine_by_label:
            if name[0] in "dt":
                columns_of_own.append(mine_by_label[name])

        def empty(measure: ReportMeasure) -> Column:  # typed: PostgreSQL unions need it
            return sa.cast(sa.null(), SQL_TYPES.get(measure.value_type, sa.Numeric()))

        for measure, label in shape.measures:
            if measure.aggregate is not None:
                columns_of_own.append(mine_by_label.get(label, empty(measure).label(label)))
        selects = [own.with_only_columns(*columns_of_own)]
        for part, kept, part_scope in self.parts:
            mine = Shape()
            part_dims = part.columns(mine)
            conditions = part.conditions(part_scope)
            names = {m.name for m in kept}
            columns: list[Column] = []
            group: list[Column] = []
            for i, (dim, theirs) in enumerate(zip(part_dims, dims, strict=True)):
                columns.append(dim.column.label(f"d{i}"))
                group.append(dim.column)
                if theirs.title is not None:
                    columns.append(
                        (dim.title if dim.title is not None else sa.null()).label(f"t{i}")
                    )
                    if dim.title is not None:
                        group.append(dim.title)
            for measure, label in shape.measures:
                if measure.aggregate is None:
                    continue
                columns.append(
                    (part.measure(measure) if measure.name in names else empty(measure)).label(
                        label
                    )
                )
            selects.append(
                sa.select(*columns).select_from(part.source()).where(*conditions).group_by(*group)
            )
        u = sa.union_all(*selects).subquery("u")
        out: list[Column] = []
        keys: list[Column] = []
        for i, dim in enumerate(dims):
            keys.append(u.c[f"d{i}"])
            out.append(u.c[f"d{i}"].label(f"d{i}"))
            if dim.title is not None:
                out.append(sa.func.max(u.c[f"t{i}"]).label(f"t{i}"))
        for measure, label in shape.measures:
            if measure.aggregate is None:
                continue
            combined: Column = sa.func.max(u.c[label])
            empty = AGGREGATES[measure.aggregate].empty
            if empty is not None:
                combined = sa.func.coalesce(combined, empty)
            kind = self.measure(measure).type if measure.name not in owners else None
            out.append(sa.type_coerce(combined, kind or u.c[label].type).label(label))
        return sa.select(*out).group_by(*keys)

    def _level(
        self,
        level: int,
        shape: Shape,
        by_name: dict[str, Column],
        named: dict[str, Column],
        labels: Sequence[str] | None,
        ranked: bool,
        by_dimensions: bool,
    ) -> list[Column]:
        """The columns of one level of a layout: ``_level``, ``_rn`` (the rank in the
        report's order when ``ranked``), then ``labels`` (default: all) — the dimensions
        ``named`` holds and the measures of ``by_name``."""
        for measure, label in shape.measures:
            named[label] = by_name.get(measure.name, sa.null())
        rank = (
            sa.func.row_number().over(order_by=self._order(shape, by_name, by_dimensions))
            if ranked
            else sa.null()
        )
        columns = [sa.literal(level).label("_level"), rank.label("_rn")]
        return columns + [named[label].label(label) for label in labels or named]

    def _expressions(
        self, measures: Sequence[ReportMeasure], values: dict[str, Column]
    ) -> list[Column]:
        found = []
        for measure in measures:
            assert measure.expression is not None
            sql = to_sql(
                measure.expression, lambda p: values[".".join(p)], self.dialect, self.context
            )
            kind = SQL_TYPES.get(measure.value_type, sa.Numeric())
            if measure.value_type == "decimal":
                kind = sa.Numeric(decimal_return_scale=6)
            found.append(sa.type_coerce(sql, kind))
        return found

    def _order(
        self, shape: Shape, by_name: dict[str, Column], by_dimensions: bool = False
    ) -> list[Column]:
        """The rows' order: the report's sort, then the dimensions (choices in their
        options' order); empty values last."""
        targets = {dim.name: target for dim, _, target in shape.dimensions}
        ranges = {d.name: [r.value for r in d.ranges] for d, _, _ in shape.dimensions if d.ranges}
        keys = [] if by_dimensions else [(k.field, k.descending) for k in self.report.sort]
        keys += [(dim.name, False) for dim, _, _ in shape.dimensions]
        order: list[Column] = []
        seen: set[str] = set()
        for name, descending in keys:
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            column = by_name[name]
            target = targets.get(name)
            if target is not None:
                column, _ = sort_expression(target, column)
            elif name in ranges:
                values = ranges[name]
                column = sa.case(*((column == v, i) for i, v in enumerate(values)))
            order.append(sa.nulls_last(column.desc() if descending else column.asc()))
        return order or [sa.literal(1)]


def _ratio(part: Column, whole: Column, sqlite: bool) -> Column:
    """``part / whole`` as a decimal; empty when the whole is zero."""
    numerator = sa.cast(part, sa.Float if sqlite else sa.Numeric)
    return sa.type_coerce(numerator / sa.func.nullif(whole, 0), sa.Numeric(decimal_return_scale=6))


def _scale(target: Target, tables: Tables) -> int:
    """The decimal places a number field shows (SQLite returns its sums as floats)."""
    found = target.field
    if found is None:
        return 0
    if found.scale is not None:
        return int(found.scale)
    if found.type == "rollup" and found.of and found.rollup_field:
        rolled = tables.model.entity(found.of).fields.get(found.rollup_field)
        if rolled is not None and found.aggregate in ("sum", "min", "max"):
            found = rolled
    kind = found.returns if found.type == "formula" and found.returns else found.type
    return 2 if kind in ("money", "percent") else 6
