"""Reports: what a report document may say, checked against the entities it reads.

A report groups the records of one entity by *dimensions* (field paths, expressions,
time buckets, value ranges) and computes *measures* (aggregates of
:data:`~metamodel.processes.MEASURES`, maybe over the records a ``filter`` keeps, and
expressions over other measures). ``having`` and ``sort`` read dimension and measure
names; ``params`` are the report's inputs, read by its expressions as ``params.<name>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from .._errors import article, did_you_mean
from .._merge import Document
from ..expressions import (
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    NUMERIC,
    Expression,
    ExpressionError,
    MappingScope,
    parse,
)
from ..fieldtypes import value_type
from ..model import (
    Cycle,
    Dimension,
    Funnel,
    Label,
    Report,
    ReportMeasure,
    ReportParam,
    ValueRange,
    freeze,
    parse_sort,
)
from ..periods import parse_period
from ..processes import MEASURES
from ._context import Checker, EntityScope, unless_problems

Location = tuple[str | int, ...]


def param_types(params: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The names report parameters give expressions (``params.x``; a period gives
    ``params.x.start`` and ``params.x.end``), with their types."""
    names: dict[str, str] = {}
    for param in params:
        if param["type"] == "period":
            names[f"params.{param['name']}.start"] = DATE
            names[f"params.{param['name']}.end"] = DATE
        else:
            names[f"params.{param['name']}"] = value_type(param["type"])
    return names


ADDITIVE = ("count", "sum")  # aggregates whose parts add up to the whole
CYCLE_NAMES = ("cycle.days", "cycle.total_days")
UNPIVOT_NAMES = ("unpivot.index", "unpivot.value")


@unless_problems
def compile_report(checker: Checker, doc: Document) -> Report | None:
    value = doc.value
    entity = value["entity"]
    if not checker.known_entity(doc, ("entity",), entity):
        return None
    specs = list(value.get("params", ()))
    checker.unique_names(doc, ("params",), specs, "parameter")
    params = tuple(_param(checker, doc, i, spec) for i, spec in enumerate(specs))
    extra = param_types(specs)
    cycle = _cycle(checker, doc, entity, value.get("cycle"))
    if cycle is not None:
        extra.update(dict.fromkeys(CYCLE_NAMES, DECIMAL))
    unpivot = _unpivot(checker, doc, (), entity, value.get("unpivot"), extra)
    condition = checker.expression(doc, ("filter",), value.get("filter"), entity, extra=extra)
    dimensions = [
        _dimension(checker, doc, i, spec, entity, extra)
        for i, spec in enumerate(value.get("group_by", ()))
    ]
    funnel_spec = value.get("funnel")
    if funnel_spec is not None:
        if dimensions:
            checker.error(doc, ("group_by",), "a funnel groups by its field: leave out group_by")
        dimensions = [_dimension(checker, doc, 0, {"field": funnel_spec["field"]}, entity, extra)]
    compare = value.get("compare")
    periods = [p["name"] for p in specs if p["type"] == "period"]
    if compare is not None and compare not in periods:
        hint = did_you_mean(compare, periods) or (
            f"a period parameter: {', '.join(periods)}" if periods else "declare a period parameter"
        )
        checker.error(doc, ("compare",), f"'{compare}' is not a period parameter", hint)
    parts = tuple(
        _part(checker, doc, i, spec, dimensions, extra, specs)
        for i, spec in enumerate(value.get("union", ()))
    )
    from_parts = {m.name: m.value_type for part in parts if part for m in part.measures}
    measures = _measures(
        checker, doc, entity, extra, value.get("measures", ()), compare is not None, from_parts
    )
    funnel = None
    if funnel_spec is not None and dimensions and dimensions[0] is not None:
        funnel, conversions = _funnel(checker, doc, entity, funnel_spec, value, measures)
        measures = [*measures, *conversions]
    names: dict[str, str] = {}
    for where, item in [
        *(("group_by", d) for d in dimensions),
        *(("measures", m) for m in measures),
    ]:
        if item is None:
            continue
        if item.name in names:
            checker.error(doc, (where,), f"two columns are named '{item.name}'")
        names[item.name] = item.result_type if isinstance(item, Dimension) else item.value_type
    for part in parts:
        for m in part.measures if part else ():
            if m.name in names:
                checker.error(doc, ("union",), f"two columns are named '{m.name}'")
            names[m.name] = m.value_type
    having = _over_columns(checker, doc, ("having",), value.get("having"), names, "boolean")
    sort = parse_sort(value.get("sort"))
    for sort_key in sort:
        if sort_key.field not in names:
            hint = did_you_mean(sort_key.field, names)
            checker.error(doc, ("sort",), f"unknown column '{sort_key.field}'", hint)
    if value.get("others") and "limit" not in value:
        checker.error(doc, ("others",), "'others' gathers the rows past 'limit': give a limit")
    pivot = value.get("pivot")
    _check_layout(checker, doc, value, [d.name for d in dimensions if d is not None])
    chart = value.get("chart") or {}
    for key in ("x", "series"):
        if key in chart and chart[key] not in names:
            checker.error(
                doc,
                ("chart", key),
                f"unknown column '{chart[key]}'",
                did_you_mean(chart[key], names),
            )
    ys = chart.get("y", ())
    for y in [ys] if isinstance(ys, str) else ys:
        if y not in names:
            checker.error(doc, ("chart", "y"), f"unknown column '{y}'", did_you_mean(y, names))
    return Report(
        doc.name,
        Label.of(value.get("label"), doc.name),
        entity,
        freeze(value),
        condition,
        doc.package,
        params=params,
        dimensions=tuple(d for d in dimensions if d is not None),
        measures=tuple(m for m in measures if m is not None),
        having=having,
        sort=sort,
        limit=value.get("limit"),
        others=bool(value.get("others", False)),
        totals=bool(value.get("totals", True)),
        chart=freeze(chart) if chart else None,
        compare=compare,
        pivot=pivot,
        subtotals=bool(value.get("subtotals", False)),
        funnel=funnel,
        cycle=cycle,
        parts=tuple(p for p in parts if p is not None),
        unpivot=unpivot,
    )


def _check_layout(
    checker: Checker, doc: Document, value: Mapping[str, Any], dimensions: list[str]
) -> None:
    """What pivot, subtotals, funnel and union may be combined with."""
    layouts = [k for k in ("pivot", "subtotals", "funnel", "union") if value.get(k)]
    if len(layouts) > 1:
        checker.error(doc, (layouts[1],), f"a report has one of {' or '.join(layouts)}, not both")
        return
    if not layouts:
        return
    layout = layouts[0]
    refused = {
        "pivot": ("having", "limit", "others", "compare"),
        "subtotals": ("limit", "others"),
        "funnel": ("having", "limit", "others", "compare", "sort"),
        "union": ("limit", "others", "compare"),
    }[layout]
    for key in refused:
        if key in value:
            checker.error(doc, (key,), f"a report with {layout} takes no '{key}'")
    if layout in ("pivot", "union"):
        for i, spec in enumerate(value.get("measures", ())):
            if "share_of" in spec:
                checker.error(doc, ("measures", i, "share_of"), f"a {layout} takes no share_of")
    if layout == "pivot":
        pivot = value["pivot"]
        if pivot not in dimensions:
            hint = did_you_mean(pivot, dimensions) or f"a dimension: {', '.join(dimensions)}"
            checker.error(doc, ("pivot",), f"'{pivot}' is not a dimension of this report", hint)
    if layout == "subtotals" and len(dimensions) < 2:
        checker.error(doc, ("subtotals",), "subtotals need two dimensions or more")


def _cycle(checker: Checker, doc: Document, entity: str, spec: Any) -> Cycle | None:
    if spec is None:
        return None
    record = checker.known_path(doc, ("cycle", "record"), entity, spec["record"])
    at = checker.known_path(doc, ("cycle", "at"), entity, spec["at"])
    if at is not None and at not in (DATE, DATETIME):
        checker.error(doc, ("cycle", "at"), f"'at' is a date or a time, not {article(at)}")
        return None
    if record is None or at is None:
        return None
    return Cycle(spec["record"], spec["at"], at)


def _unpivot(
    checker: Checker,
    doc: Document,
    where: Location,
    entity: str,
    spec: Any,
    extra: dict[str, str],
) -> tuple[str, ...]:
    """The fields of an ``unpivot``; adds ``unpivot.index`` and ``unpivot.value`` to
    ``extra``."""
    if spec is None:
        return ()
    kinds = set()
    for i, name in enumerate(spec["fields"]):
        kind = checker.known_path(doc, (*where, "unpivot", "fields", i), entity, name)
        if kind is not None:
            kinds.add(kind)
    if len(kinds) > 1:
        checker.error(
            doc, (*where, "unpivot", "fields"), f"the fields must share a type: {sorted(kinds)}"
        )
    extra["unpivot.index"] = INTEGER
    extra["unpivot.value"] = next(iter(kinds)) if len(kinds) == 1 else DECIMAL
    return tuple(spec["fields"])


def _part(
    checker: Checker,
    doc: Document,
    index: int,
    spec: Mapping[str, Any],
    dimensions: Sequence[Dimension | None],
    extra: Mapping[str, str],
    params: Sequence[Mapping[str, Any]],
) -> Report | None:
    """One part of a ``union``: another entity's measures on the report's rows. Its
    dimensions have the report's names, in order, and take their labels, buckets and
    ranges."""
    where: Location = ("union", index)
    entity = spec["entity"]
    if not checker.known_entity(doc, (*where, "entity"), entity):
        return None
    own = {k: v for k, v in extra.items() if k.startswith("params.")}
    unpivot = _unpivot(checker, doc, where, entity, spec.get("unpivot"), own)
    condition = checker.expression(doc, (*where, "filter"), spec.get("filter"), entity, extra=own)
    found: list[Dimension] = []
    specs = list(spec["group_by"])
    if len(specs) != len(dimensions):
        checker.error(
            doc,
            (*where, "group_by"),
            f"a part groups by {len(dimensions)} dimensions, as the report",
        )
        return None
    for i, (dim_spec, main) in enumerate(zip(specs, dimensions, strict=True)):
        if main is None:
            return None
        if isinstance(dim_spec, str):
            dim_spec = {"field": dim_spec}
        if "name" in dim_spec and dim_spec["name"] != main.name:
            checker.error(
                doc,
                (*where, "group_by", i, "name"),
                f"the report's dimension {i + 1} is '{main.name}'",
            )
        inherited = {k: v for k, v in dim_spec.items() if k in ("field", "expression")}
        if main.bucket:
            inherited["bucket"] = main.bucket
        mine = _dimension(
            checker, doc, i, {**inherited, "name": main.name}, entity, own, (*where, "group_by", i)
        )
        if mine is None:
            return None
        if _family_of(mine.value_type) != _family_of(main.value_type):
            checker.error(
                doc,
                (*where, "group_by", i),
                f"'{main.name}' is {article(main.value_type)} in the report, "
                f"{article(mine.value_type)} here",
            )
        found.append(replace(mine, label=main.label, ranges=main.ranges, fill=main.fill))
    measure_specs = spec["measures"]
    for i, m in enumerate(measure_specs):
        if "aggregate" not in m:
            checker.error(doc, (*where, "measures", i), "a part's measures are aggregates")
            return None
    measures = _measures(checker, doc, entity, own, measure_specs, False, {}, where)
    if any(m is None for m in measures):
        return None
    return Report(
        f"{doc.name}.union[{index}]",
        Label.of(None, doc.name),
        entity,
        freeze(spec),
        condition,
        doc.package,
        dimensions=tuple(found),
        measures=tuple(m for m in measures if m is not None),
        unpivot=unpivot,
    )


def _family_of(kind: str) -> str:
    return "number" if kind in NUMERIC else kind


def _funnel(
    checker: Checker,
    doc: Document,
    entity: str,
    spec: Mapping[str, Any],
    value: Mapping[str, Any],
    measures: Sequence[ReportMeasure | None],
) -> tuple[Funnel | None, list[ReportMeasure]]:
    """A funnel's steps, and its two conversion measures."""
    path = tuple(spec["field"].split("."))
    scope = EntityScope(checker.entity_docs, entity)
    options = scope.options_of(path)
    if options is None:
        checker.error(doc, ("funnel", "field"), "a funnel runs over a choice field")
        return None, []
    steps = tuple(spec.get("steps") or options)
    for i, step in enumerate(steps):
        if step not in options:
            checker.error(
                doc,
                ("funnel", "steps", i),
                f"'{step}' is not an option of {spec['field']}",
                did_you_mean(step, options),
            )
    if len(set(steps)) != len(steps):
        checker.error(doc, ("funnel", "steps"), "a step is listed twice")
    dropped: tuple[str, ...] | None = None
    if "dropped_at" in spec:
        dropped = tuple(spec["dropped_at"].split("."))
        if scope.options_of(dropped) is None and checker.known_path(
            doc, ("funnel", "dropped_at"), entity, spec["dropped_at"]
        ):
            checker.error(doc, ("funnel", "dropped_at"), "'dropped_at' is a choice field")
    additive = [m for m in measures if m is not None and m.aggregate in ADDITIVE and not m.previous]
    for i, m_spec in enumerate(value.get("measures", ())):
        if "aggregate" in m_spec and m_spec["aggregate"] not in ADDITIVE:
            checker.error(
                doc,
                ("measures", i, "aggregate"),
                "a funnel adds its steps up: its measures count or sum",
                "an average is an expression: amount / deals",
            )
        if "share_of" in m_spec:
            checker.error(doc, ("measures", i, "share_of"), "a funnel takes no share_of")
    measure = spec.get("measure") or (additive[0].name if additive else "")
    if measure not in {m.name for m in additive}:
        hint = did_you_mean(measure, [m.name for m in additive])
        checker.error(
            doc, ("funnel", "measure"), f"'{measure}' is not a count or sum measure", hint
        )
        return None, []
    conversions = [
        ReportMeasure(
            "conversion",
            Label.of(
                {
                    "en": "Conversion from the previous step",
                    "zh": "上一步转化率",
                    "ja": "前ステップからの転換率",
                }
            ),
            DECIMAL,
            conversion="previous",
            conversion_of=measure,
        ),
        ReportMeasure(
            "overall_conversion",
            Label.of(
                {"en": "Conversion from the first step", "zh": "总转化率", "ja": "全体転換率"}
            ),
            DECIMAL,
            conversion="first",
            conversion_of=measure,
        ),
    ]
    return Funnel(path, steps, dropped, measure), conversions


def _param(checker: Checker, doc: Document, index: int, spec: Mapping[str, Any]) -> ReportParam:
    kind = spec["type"]
    default = spec.get("default")
    where: Location = ("params", index, "default")
    if default is not None:
        problem = _default_problem(kind, default)
        if problem:
            checker.error(doc, where, problem)
    return ReportParam(
        spec["name"],
        Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize()),
        kind,
        default,
        bool(spec.get("required", False)),
    )


def _default_problem(kind: str, default: Any) -> str:
    """What is wrong with a parameter's default, if anything."""
    if kind in ("period", "date"):
        if isinstance(default, dt.date):
            default = default.isoformat()
        if not isinstance(default, str):
            return f"a {kind} default is text: a day, two days or a name like this_month"
        try:
            parse_period(default, dt.date(2000, 1, 1))
        except ValueError as exc:
            return str(exc)
        if kind == "date" and ".." in default:
            return "a date default is one day, or a name like today (a span needs type: period)"
        return ""
    expected = value_type(kind)
    if expected in NUMERIC:
        ok = isinstance(default, int | float | Decimal) and not isinstance(default, bool)
        if expected == "integer":
            ok = ok and float(default).is_integer()
        return "" if ok else f"the default of {article(kind)} parameter must be a number"
    if expected == "boolean":
        return "" if isinstance(default, bool) else "the default must be true or false"
    if expected == DATETIME:
        return "" if isinstance(default, str | dt.datetime) else "the default must be a time"
    return "" if isinstance(default, str) else "the default must be text"


def _dimension(
    checker: Checker,
    doc: Document,
    index: int,
    spec: Any,
    entity: str,
    extra: Mapping[str, str],
    at: Location | None = None,
) -> Dimension | None:
    where: Location = ("group_by", index) if at is None else at
    at_field: Location = (*where, "field")
    if isinstance(spec, str):
        spec, at_field = {"field": spec}, where
    if ("field" in spec) == ("expression" in spec):
        checker.error(doc, where, "a dimension needs exactly one of 'field' or 'expression'")
        return None
    path: tuple[str, ...] | None = None
    expression: Expression | None = None
    if "field" in spec:
        kind = checker.known_path(doc, at_field, entity, spec["field"])
        if kind is None:
            return None
        if kind.startswith("list") or kind == "file":
            checker.error(doc, at_field, f"cannot group by {article(kind)} field")
            return None
        path = tuple(spec["field"].split("."))
        name = spec.get("name", spec["field"])
    else:
        expression = checker.expression(
            doc, (*where, "expression"), spec["expression"], entity, expect=None, extra=extra
        )
        if expression is None:
            return None
        kind = expression.type
        if "name" not in spec:
            checker.error(doc, where, "a dimension with an expression needs a 'name'")
            return None
        name = spec["name"]
    bucket = spec.get("bucket")
    if bucket and kind not in (DATE, DATETIME):
        checker.error(doc, (*where, "bucket"), f"a time bucket needs a date, not {article(kind)}")
    ranges = tuple(_ranges(checker, doc, where, spec.get("ranges", ()), kind))
    if ranges and bucket:
        checker.error(doc, (*where, "ranges"), "a dimension has a time bucket or ranges, not both")
    if spec.get("fill") and not bucket and not ranges:
        checker.error(doc, (*where, "fill"), "only time buckets and ranges can be filled")
    return Dimension(
        name,
        Label.of(spec.get("label"), name.replace(".", " ").replace("_", " ").capitalize()),
        kind,
        path,
        expression,
        bucket,
        ranges,
        bool(spec.get("fill", bucket is not None or bool(ranges))),
    )


def _ranges(
    checker: Checker, doc: Document, where: Location, specs: Sequence[Any], kind: str
) -> list[ValueRange]:
    if not specs:
        return []
    if kind not in NUMERIC:
        checker.error(doc, (*where, "ranges"), f"ranges need a number, not {article(kind)}")
        return []
    found: list[ValueRange] = []
    previous = None
    values: set[str] = set()
    for i, spec in enumerate(specs):
        at: Location = (*where, "ranges", i)
        to = spec.get("to")
        if to is None and i != len(specs) - 1:
            checker.error(doc, (*at, "to"), "only the last range may leave 'to' out")
        if to is not None and previous is not None and to <= previous:
            checker.error(doc, (*at, "to"), f"ranges go upwards: {to} is not above {previous}")
        if spec["value"] in values:
            checker.error(doc, (*at, "value"), f"two ranges are named '{spec['value']}'")
        values.add(spec["value"])
        previous = to if to is not None else previous
        found.append(ValueRange(spec["value"], Label.of(spec.get("label"), spec["value"]), to))
    return found


def _measures(
    checker: Checker,
    doc: Document,
    entity: str,
    extra: Mapping[str, str],
    specs: Sequence[Mapping[str, Any]],
    compare: bool = False,
    from_parts: Mapping[str, str] | None = None,
    base: Location = (),
) -> list[ReportMeasure | None]:
    checker.unique_names(doc, (*base, "measures"), specs, "measure")
    found: list[ReportMeasure | None] = []
    aggregates: dict[str, str] = dict(from_parts or {})
    twins: list[ReportMeasure] = []  # the previous period's, with compare
    for i, spec in enumerate(specs):
        where: Location = (*base, "measures", i)
        label = Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize())
        if sum(key in spec for key in ("aggregate", "expression", "share_of")) != 1:
            message = "a measure needs exactly one of 'aggregate', 'expression' or 'share_of'"
            checker.error(doc, where, message)
            found.append(None)
            continue
        if "expression" in spec or "share_of" in spec:
            for key in ("field", "value", "filter"):
                if key in spec:
                    checker.error(doc, (*where, key), f"a measure of measures takes no '{key}'")
            found.append(None)  # filled in below, once every aggregate is known
            continue
        measure = MEASURES[spec["aggregate"]]
        kind: str | None = None
        path: tuple[str, ...] | None = None
        per_record: Expression | None = None
        if "field" in spec and "value" in spec:
            checker.error(
                doc, (*where, "value"), "a measure reads a 'field' or a 'value', not both"
            )
        elif "value" in spec:
            per_record = checker.expression(
                doc, (*where, "value"), spec["value"], entity, expect=None, extra=extra
            )
            kind = per_record.type if per_record is not None else None
            if kind and measure.accepts and kind not in measure.accepts:
                checker.error(doc, (*where, "value"), f"cannot {measure.name} {article(kind)}")
        elif "field" in spec:
            kind = checker.known_path(doc, (*where, "field"), entity, spec["field"])
            if kind and measure.accepts and kind not in measure.accepts:
                checker.error(doc, (*where, "field"), f"cannot {measure.name} {article(kind)}")
            path = tuple(spec["field"].split("."))
        elif measure.needs_field:
            checker.error(doc, where, f"{article(measure.name)} measure needs 'field' or 'value'")
        condition = checker.expression(
            doc, (*where, "filter"), spec.get("filter"), entity, extra=extra
        )
        gives = measure.result(kind)
        aggregates[spec["name"]] = gives
        current = ReportMeasure(
            spec["name"], label, gives, measure.name, path, condition, None, per_record
        )
        found.append(current)
        if compare:
            twin = replace(
                current, name=f"{current.name}_previous", label=_previous(label), previous=True
            )
            aggregates[twin.name] = gives
            twins.append(twin)
    additive = {
        spec["name"]
        for spec in specs
        if spec.get("aggregate") in ("count", "sum") and spec["name"] in aggregates
    }
    for i, spec in enumerate(specs):
        if "share_of" in spec and "aggregate" not in spec and "expression" not in spec:
            label = Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize())
            if spec["share_of"] in additive:
                found[i] = ReportMeasure(spec["name"], label, "decimal", share_of=spec["share_of"])
            else:
                hint = did_you_mean(spec["share_of"], additive) or (
                    f"a count or sum measure: {', '.join(sorted(additive))}" if additive else ""
                )
                message = f"'{spec['share_of']}' is not a count or sum measure of this report"
                checker.error(doc, ("measures", i, "share_of"), message, hint)
        if "expression" in spec and "aggregate" not in spec:
            where = ("measures", i, "expression")
            expression = _over_columns(checker, doc, where, spec["expression"], aggregates, None)
            if expression is not None:
                if expression.type not in NUMERIC:
                    checker.error(
                        doc, where, f"a measure is a number, not {article(expression.type)}"
                    )
                label = Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize())
                found[i] = ReportMeasure(
                    spec["name"], label, expression.type, expression=expression
                )
    return [*found, *twins]


_PREVIOUS = {"en": " (previous period)", "zh": "（上期）", "ja": "（前期）"}


def _previous(label: Label) -> Label:
    texts = label.to_json()
    if isinstance(texts, str):
        return Label.of(texts + _PREVIOUS["en"])
    return Label.of({k: v + _PREVIOUS.get(k, _PREVIOUS["en"]) for k, v in texts.items()})


def _over_columns(
    checker: Checker,
    doc: Document,
    where: Location,
    source: Any,
    columns: Mapping[str, str],
    expect: str | None,
) -> Expression | None:
    """An expression over a report's columns (``won / closed``, ``total > 1000``)."""
    if source is None:
        return None
    try:
        return parse(str(source), MappingScope(columns), expect=expect)
    except ExpressionError as exc:
        checker.error(doc, where, exc.message, exc.hint)
        return None
