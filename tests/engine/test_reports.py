"""Reports against hand-written SQL: each aggregation feature of :mod:`engine.reports`
compared with an independent query over generated data, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import BadRequest, Forbidden
from engine.context import Actor
from engine.records import Records
from engine.reports import Reports
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import DefinitionError, Model, load_packages, report_from_value

PACKAGE = """\
kind: package
name: deals
---
kind: role
name: rep
permissions:
  deal: {read: own}
  account: {read: all, fields: {secret: hidden}}
---
kind: entity
name: account
fields:
  name: {type: string}
  region: {type: choice, options: [north, south, east]}
  secret: {type: integer}
---
kind: entity
name: deal
ownable: true
fields:
  name: {type: string}
  account: {type: reference, to: account}
  amount: {type: money}
  probability: {type: percent}
  weighted: {type: formula, returns: money, expression: amount * probability / 100}
  stage: {type: choice, options: [open, proposal, won, lost]}
  closed: {type: date}
  due: {type: date}
---
kind: report
name: by_region_and_stage
entity: deal
group_by: [account.region, stage]
measures:
  - {name: deals, aggregate: count}
  - {name: total, aggregate: sum, field: amount}
  - {name: average, aggregate: avg, field: amount}
  - {name: smallest, aggregate: min, field: amount}
  - {name: latest, aggregate: max, field: closed}
  - {name: accounts, aggregate: count_distinct, field: account}
  - {name: weighted, aggregate: sum, field: weighted}
---
kind: report
name: monthly
entity: deal
params:
  - {name: period, type: period, default: this_year}
filter: closed >= params.period.start and closed <= params.period.end
group_by: [{field: closed, bucket: month}]
measures:
  - {name: deals, aggregate: count}
  - {name: won, aggregate: count, filter: "stage == 'won'"}
  - {name: decided, aggregate: count, filter: "stage in ['won', 'lost']"}
  - {name: win_rate, expression: won / decided}
---
kind: report
name: aging
entity: deal
filter: stage not in ['won', 'lost']
group_by:
  - name: age
    expression: days_between(due, today())
    ranges: [{value: current, to: 0}, {value: "1-30", to: 30}, {value: "31-90", to: 90}, {value: "90+"}]
measures: [{name: deals, aggregate: count}, {name: total, aggregate: sum, field: amount}]
---
kind: report
name: top_regions
entity: deal
group_by: [account.region]
measures:
  - {name: total, aggregate: sum, field: amount}
  - {name: average, aggregate: avg, field: amount}
  - {name: secrets, aggregate: sum, field: account.secret}
having: total > 100
sort: -total
limit: 2
others: true
"""
TODAY = dt.date(2026, 6, 15)
ADMIN = Actor(roles=frozenset({"admin"}), today=TODAY)
ANN = Actor(user_id=1, team_id=1, roles=frozenset({"rep"}), today=TODAY)


@pytest.fixture
def model(tmp_path: Path) -> Model:
    path = tmp_path / "deals.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    return load_packages([path])


@pytest.fixture
def reports(db_engine: Engine, model: Model) -> Reports:
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    now = dt.datetime.now(dt.UTC)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "T", "created_at": now}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {"username": u, "name": u, "roles": ["rep"], "team_id": 1, "created_at": now}
                for u in ("ann", "bob")
            ],
        )
        rnd = random.Random(11)
        regions = ["north", "south", "east", None]
        conn.execute(
            tables.table("account").insert(),
            [
                {
                    "name": f"a{i}",
                    "region": regions[i % 4],
                    "secret": i,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(8)
            ],
        )
        deals = []
        for i in range(300):
            closed = TODAY - dt.timedelta(days=rnd.randint(0, 400))
            deals.append(
                {
                    "name": f"d{i}",
                    "account": rnd.choice([1, 2, 3, 4, 5, 6, 7, 8, None]),
                    "amount": Decimal(rnd.randint(0, 99999)) / 100 if rnd.random() > 0.05 else None,
                    "probability": rnd.choice([10, 50, 90]),
                    "stage": rnd.choice(["open", "proposal", "won", "lost"]),
                    "closed": closed if rnd.random() > 0.1 else None,
                    "due": TODAY - dt.timedelta(days=rnd.randint(-30, 200)),
                    "owner_id": rnd.choice([1, 2]),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        conn.execute(tables.table("deal").insert(), deals)
    return Reports(Records(db_engine, model, tables=tables))


def _sql(reports: Reports, text: str, **params: Any) -> list[dict[str, Any]]:
    with reports.records.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(text), params).mappings()]


def _num(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _sqlite(reports: Reports) -> bool:
    return reports.records.dialect == "sqlite"


def test_groups_by_a_path_and_a_field_with_every_measure(reports: Reports) -> None:
    result = reports.run(ADMIN, "by_region_and_stage")
    expected = _sql(
        reports,
        """SELECT a.region, d.stage, count(*) AS deals, coalesce(sum(d.amount), 0) AS total,
                  avg(d.amount) AS average, min(d.amount) AS smallest, max(d.closed) AS latest,
                  count(DISTINCT d.account) AS accounts,
                  coalesce(sum(d.amount * d.probability / 100.0), 0) AS weighted
           FROM deal d LEFT JOIN account a ON a.id = d.account
           GROUP BY a.region, d.stage""",
    )
    got = {(r["account.region"], r["stage"]): r for r in result.rows}
    assert len(got) == len(expected)
    for row in expected:
        mine = got[(row["region"], row["stage"])]
        assert mine["deals"] == row["deals"] and mine["accounts"] == row["accounts"]
        for name in ("total", "smallest", "weighted"):
            assert _num(mine[name]) == _num(row[name]), name
        assert abs((mine["average"] or 0) - Decimal(str(row["average"] or 0))) < Decimal("0.0001")
        latest = row["latest"]
        assert mine["latest"] == (
            dt.date.fromisoformat(latest) if isinstance(latest, str) else latest
        )
    # regions and stages in their options' order, empty region last
    keys = [(r["account.region"], r["stage"]) for r in result.rows]
    order = {v: i for i, v in enumerate(["north", "south", "east", None])}
    stages = {v: i for i, v in enumerate(["open", "proposal", "won", "lost"])}
    assert keys == sorted(keys, key=lambda k: (order[k[0]], stages[k[1]]))
    assert result.totals is not None and result.totals["deals"] == 300


def test_time_buckets_fill_empty_months_and_follow_the_period(reports: Reports) -> None:
    result = reports.run(ADMIN, "monthly", {"period": "last_12_months"})
    month = "strftime('%Y-%m-01', closed)" if _sqlite(reports) else "to_char(closed, 'YYYY-MM-01')"
    expected = _sql(
        reports,
        f"""SELECT {month} AS month, count(*) AS deals,
                   count(CASE WHEN stage = 'won' THEN 1 END) AS won,
                   count(CASE WHEN stage IN ('won', 'lost') THEN 1 END) AS decided
            FROM deal WHERE closed >= :start AND closed <= :end GROUP BY {month}""",
        start=dt.date(2025, 7, 1),
        end=dt.date(2026, 6, 30),
    )
    by_month = {r["closed"].isoformat(): r for r in result.rows}
    for row in expected:
        mine = by_month[row["month"]]
        assert (mine["deals"], mine["won"], mine["decided"]) == (
            row["deals"],
            row["won"],
            row["decided"],
        )
        rate = Decimal(row["won"]) / row["decided"] if row["decided"] else None
        assert mine["win_rate"] == (None if rate is None else rate.quantize(Decimal("0.000001")))
    months = [r["closed"] for r in result.rows]
    assert months == sorted(months) and len(set(months)) == len(months)
    assert result.params == {"period": {"start": dt.date(2025, 7, 1), "end": dt.date(2026, 6, 30)}}
    # an explicit span, and the default (this year)
    assert reports.run(ADMIN, "monthly", {"period": "2026-01-01..2026-03-31"}).rows[-1][
        "closed"
    ] <= dt.date(2026, 3, 1)
    assert reports.run(ADMIN, "monthly").rows[0]["closed"] >= dt.date(2026, 1, 1)


@pytest.mark.parametrize("bucket", ["day", "week", "month", "quarter", "year"])
def test_every_time_bucket_starts_its_period(reports: Reports, bucket: str) -> None:
    report = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "filter": "not is_empty(closed)",
            "group_by": [{"field": "closed", "bucket": bucket, "fill": False}],
            "measures": [{"name": "deals", "aggregate": "count"}],
        },
    )
    result = reports.run(ADMIN, report, adhoc=True)
    closed = [
        r["closed"] for r in _sql(reports, "SELECT closed FROM deal WHERE closed IS NOT NULL")
    ]
    days = [dt.date.fromisoformat(c) if isinstance(c, str) else c for c in closed]

    def start(day: dt.date) -> dt.date:
        if bucket == "day":
            return day
        if bucket == "week":
            return day - dt.timedelta(days=day.weekday())
        if bucket == "month":
            return day.replace(day=1)
        if bucket == "quarter":
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        return day.replace(month=1, day=1)

    counts: dict[dt.date, int] = {}
    for day in days:
        counts[start(day)] = counts.get(start(day), 0) + 1
    assert {r["closed"]: r["deals"] for r in result.rows} == counts


def test_value_ranges_show_every_bucket(reports: Reports) -> None:
    result = reports.run(ADMIN, "aging")
    age = "(julianday(:today) - julianday(due))" if _sqlite(reports) else "(:today - due)"
    expected = _sql(
        reports,
        f"""SELECT CASE WHEN {age} <= 0 THEN 'current' WHEN {age} <= 30 THEN '1-30'
                        WHEN {age} <= 90 THEN '31-90' ELSE '90+' END AS age,
                   count(*) AS deals, coalesce(sum(amount), 0) AS total
            FROM deal WHERE stage NOT IN ('won', 'lost') GROUP BY 1""",
        today=TODAY,
    )
    assert [r["age"] for r in result.rows] == ["current", "1-30", "31-90", "90+"]
    got = {r["age"]: r for r in result.rows}
    for row in expected:
        assert got[row["age"]]["deals"] == row["deals"]
        assert _num(got[row["age"]]["total"]) == _num(row["total"])


def test_having_sort_top_n_others_and_totals(reports: Reports) -> None:
    result = reports.run(ADMIN, "top_regions")
    expected = _sql(
        reports,
        """SELECT a.region, coalesce(sum(d.amount), 0) AS total, avg(d.amount) AS average
           FROM deal d LEFT JOIN account a ON a.id = d.account
           GROUP BY a.region HAVING coalesce(sum(d.amount), 0) > 100
           ORDER BY total DESC""",
    )
    shown, others = result.rows[:-1], result.rows[-1]
    assert [r["account.region"] for r in shown] == [r["region"] for r in expected[:2]]
    assert [_num(r["total"]) for r in shown] == [_num(r["total"]) for r in expected[:2]]
    totals = _sql(
        reports,
        """SELECT count(*) AS n, coalesce(sum(amount), 0) AS total, avg(amount) AS average
           FROM deal""",
    )[0]
    assert result.totals is not None
    assert _num(result.totals["total"]) == _num(totals["total"])
    # "others" holds every record of no row shown: rows and others add up to the totals
    assert others["_others"] is True
    assert _num(others["total"]) == _num(totals["total"]) - sum(
        _num(r["total"]) or 0 for r in shown
    )
    assert result.chart == {
        "type": "bar",
        "x": "account.region",
        "y": ["total", "average", "secrets"],
    }


def test_a_rep_sees_only_their_records_and_no_hidden_field(reports: Reports) -> None:
    mine = reports.run(ANN, "by_region_and_stage")
    expected = _sql(reports, "SELECT count(*) AS n FROM deal WHERE owner_id = 1")[0]["n"]
    assert mine.totals is not None and mine.totals["deals"] == expected
    assert sum(r["deals"] for r in mine.rows) == expected
    # a saved report leaves out a measure over a hidden field …
    top = reports.run(ANN, "top_regions")
    assert "secrets" not in top.rows[0] and "secrets" not in [c["name"] for c in top.columns]
    assert top.chart["y"] == ["total", "average"]
    # … and an ad-hoc one is refused, wherever the hidden field is named
    for query in (
        {"group_by": ["account.secret"], "measures": [{"name": "n", "aggregate": "count"}]},
        {"measures": [{"name": "n", "aggregate": "sum", "field": "account.secret"}]},
        {"filter": "account.secret > 3", "measures": [{"name": "n", "aggregate": "count"}]},
    ):
        report = report_from_value(reports.model, {"entity": "deal", **query})
        with pytest.raises(BadRequest, match=r"unknown field 'account\.secret'"):
            reports.run(ANN, report, adhoc=True)
    hidden_filter = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "filter": "account.secret > 3",
            "measures": [{"name": "n", "aggregate": "count"}],
        },
    )
    with pytest.raises(Forbidden):
        reports.run(ANN, hidden_filter)


def test_parameters_are_checked_and_named(reports: Reports) -> None:
    with pytest.raises(BadRequest) as caught:
        reports.run(ADMIN, "monthly", {"period": "soon", "color": "red"})
    assert set(caught.value.fields) == {"period", "color"}
    with pytest.raises(BadRequest):
        reports.run(ADMIN, "monthly", {"period": "2026-05-01..2026-01-01"})


def test_ad_hoc_reports_are_checked_like_files(model: Model) -> None:
    with pytest.raises(DefinitionError) as caught:
        report_from_value(
            model,
            {
                "entity": "deal",
                "group_by": [{"field": "stage", "bucket": "month"}],
                "measures": [{"name": "r", "expression": "won / n"}],
                "sort": "-nothing",
                "others": True,
            },
        )
    paths = {p.path for p in caught.value.problems}
    assert {"group_by[0].bucket", "measures[0].expression", "sort", "others"} <= paths


def test_share_of_the_total(reports: Reports) -> None:
    report = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "group_by": ["stage"],
            "measures": [
                {"name": "total", "aggregate": "sum", "field": "amount"},
                {"name": "deals", "aggregate": "count"},
                {"name": "part", "share_of": "total"},
                {"name": "part_of_deals", "share_of": "deals"},
            ],
            "sort": "-total",
            "limit": 2,
            "others": True,
        },
    )
    result = reports.run(ADMIN, report, adhoc=True)
    expected = _sql(
        reports,
        "SELECT stage, coalesce(sum(amount), 0) AS total, count(*) AS deals FROM deal "
        "GROUP BY stage ORDER BY total DESC",
    )
    grand = sum(Decimal(str(r["total"])) for r in expected)
    for row, mine in zip(expected[:2], result.rows[:2], strict=True):
        assert mine["stage"] == row["stage"]
        assert abs(mine["part"] - Decimal(str(row["total"])) / grand) < Decimal("0.00001")
        assert abs(mine["part_of_deals"] - Decimal(row["deals"]) / 300) < Decimal("0.00001")
    others = result.rows[-1]
    rest = sum(Decimal(str(r["total"])) for r in expected[2:])
    assert abs(others["part"] - rest / grand) < Decimal("0.00001")
    assert result.totals is not None and result.totals["part"] == Decimal(1)
    with pytest.raises(DefinitionError, match="not a count or sum measure"):
        report_from_value(
            reports.model,
            {
                "entity": "deal",
                "measures": [
                    {"name": "average", "aggregate": "avg", "field": "amount"},
                    {"name": "part", "share_of": "average"},
                ],
            },
        )


@pytest.mark.parametrize(
    ("period", "before"),
    [
        ("last_quarter", (dt.date(2025, 10, 1), dt.date(2025, 12, 31))),
        ("2026-05-01..2026-05-10", (dt.date(2026, 4, 21), dt.date(2026, 4, 30))),
    ],
)
def test_comparison_with_the_previous_period(
    reports: Reports, period: str, before: tuple[dt.date, dt.date]
) -> None:
    report = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "params": [{"name": "period", "type": "period"}],
            "filter": "closed >= params.period.start and closed <= params.period.end",
            "group_by": ["stage"],
            "measures": [
                {"name": "deals", "aggregate": "count"},
                {"name": "won", "aggregate": "sum", "field": "amount", "filter": "stage == 'won'"},
                {"name": "growth", "expression": "(deals - deals_previous) / deals_previous"},
            ],
            "compare": "period",
        },
    )
    result = reports.run(ADMIN, report, {"period": period}, adhoc=True)
    start, end = dt.date.fromisoformat("2026-01-01"), dt.date.fromisoformat("2026-03-31")
    if ".." in period:
        start, end = (dt.date.fromisoformat(d) for d in period.split(".."))
    counts = (
        "SELECT stage, count(*) AS n, coalesce(sum(CASE WHEN stage = 'won' THEN amount END), 0)"
        " AS won FROM deal WHERE closed >= :s AND closed <= :e GROUP BY stage"
    )
    current = {r["stage"]: r for r in _sql(reports, counts, s=start, e=end)}
    previous = {r["stage"]: r for r in _sql(reports, counts, s=before[0], e=before[1])}
    rows = {r["stage"]: r for r in result.rows}
    assert set(rows) == set(current) | set(previous)
    for stage, row in rows.items():
        assert row["deals"] == (current[stage]["n"] if stage in current else 0)
        assert row["deals_previous"] == (previous[stage]["n"] if stage in previous else 0)
        if stage in previous:
            assert _num(row["won_previous"]) == _num(previous[stage]["won"])
    assert result.totals is not None
    assert result.totals["deals_previous"] == sum(r["n"] for r in previous.values())
    names = [c["name"] for c in result.columns]
    assert names == ["stage", "deals", "won", "deals_previous", "won_previous", "growth"]
    assert result.columns[3]["label"] == "Deals (previous period)"


@pytest.mark.parametrize("distinct", [False, True], ids=["folded", "not_foldable"])
def test_others_and_totals_with_having_against_sql(reports: Reports, distinct: bool) -> None:
    """ "Others" holds the groups past the limit and those ``having`` leaves out; with
    measures that add up from their groups (count, sum, avg, min, max) it and the totals
    are folded from the grouped rows, else computed from the records: the same numbers."""
    measures: list[dict[str, Any]] = [
        {"name": "deals", "aggregate": "count"},
        {"name": "total", "aggregate": "sum", "field": "amount"},
        {"name": "average", "aggregate": "avg", "field": "amount"},
        {"name": "smallest", "aggregate": "min", "field": "amount"},
        {"name": "latest", "aggregate": "max", "field": "closed"},
        {"name": "per_deal", "expression": "total / deals"},
        {"name": "part", "share_of": "total"},
    ]
    if distinct:
        measures.append({"name": "accounts", "aggregate": "count_distinct", "field": "account"})
    keys = {"entity": "deal", "group_by": ["stage"], "having": "stage != 'won'"}
    keys.update({"sort": "-total", "limit": 2, "others": True, "measures": measures})
    result = reports.run(ADMIN, report_from_value(reports.model, keys), adhoc=True)
    groups = _sql(
        reports,
        "SELECT stage, coalesce(sum(amount), 0) AS total FROM deal GROUP BY stage "
        "ORDER BY total DESC",
    )
    shown = [g["stage"] for g in groups if g["stage"] != "won"][:2]
    assert [r["stage"] for r in result.rows[:-1]] == shown
    whole = """SELECT count(*) AS deals, coalesce(sum(amount), 0) AS total, avg(amount) AS average,
                      min(amount) AS smallest, max(closed) AS latest,
                      count(DISTINCT account) AS accounts FROM deal"""
    others = _sql(reports, whole + " WHERE stage NOT IN (:a, :b)", a=shown[0], b=shown[1])[0]
    totals = _sql(reports, whole)[0]
    for mine, theirs in ((result.rows[-1], others), (result.totals, totals)):
        assert mine is not None
        assert mine["deals"] == theirs["deals"]
        assert _num(mine["total"]) == _num(theirs["total"])
        assert abs(mine["average"] - Decimal(str(theirs["average"]))) < Decimal("0.0001")
        assert _num(mine["smallest"]) == _num(theirs["smallest"])
        assert mine["latest"] == dt.date.fromisoformat(str(theirs["latest"]))
        per_deal = Decimal(str(theirs["total"])) / theirs["deals"]
        assert abs(mine["per_deal"] - per_deal) < Decimal("0.0001")
        part = Decimal(str(theirs["total"])) / Decimal(str(totals["total"]))
        assert abs(mine["part"] - part) < Decimal("0.00001")
        if distinct:
            assert mine["accounts"] == theirs["accounts"]
    assert result.rows[-1]["_others"] is True
