"""Pivot, subtotals, funnel, cycle time, median and union against hand-written SQL over
generated data, on SQLite and PostgreSQL; and a rep's scope and hidden fields in each."""

from __future__ import annotations

import datetime as dt
import random
import statistics
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
  history: {read: all}
  target: {read: all, fields: {m03: hidden}}
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
  stage: {type: choice, options: [open, proposal, negotiation, won, lost]}
  lost_at: {type: choice, options: [open, proposal, negotiation]}
  closed: {type: date}
---
kind: entity
name: history
fields:
  deal: {type: reference, to: deal, on_delete: cascade}
  to_stage: {type: choice, options: [open, proposal, negotiation, won, lost]}
  changed_at: {type: datetime}
---
kind: entity
name: target
fields:
  user: {type: user}
  year: {type: integer}
  m01: {type: money}
  m02: {type: money}
  m03: {type: money}
---
kind: report
name: won_beside_target
entity: target
filter: year == 2026
group_by: [{name: owner, field: user}]
measures:
  - {name: january, aggregate: sum, field: m01}
union:
  - entity: deal
    filter: stage == 'won'
    group_by: [{field: owner_id}]
    measures: [{name: won, aggregate: sum, field: amount}]
---
kind: report
name: pivot
entity: deal
group_by: [account.region, stage]
pivot: stage
measures:
  - {name: deals, aggregate: count}
  - {name: total, aggregate: sum, field: amount}
  - {name: average, aggregate: avg, field: amount}
  - {name: per_deal, expression: total / deals}
sort: -total
---
kind: report
name: subtotals
entity: deal
group_by: [account.region, stage]
subtotals: true
measures:
  - {name: deals, aggregate: count}
  - {name: total, aggregate: sum, field: amount}
  - {name: share, share_of: total}
sort: -total
---
kind: report
name: funnel
entity: deal
funnel: {field: stage, steps: [open, proposal, negotiation, won], dropped_at: lost_at}
measures:
  - {name: deals, aggregate: count}
  - {name: total, aggregate: sum, field: amount}
  - {name: per_deal, expression: total / deals}
---
kind: report
name: cycle
entity: history
cycle: {record: deal, at: changed_at}
group_by: [to_stage]
measures:
  - {name: stints, aggregate: count, value: cycle.days}
  - {name: average, aggregate: avg, value: cycle.days}
  - {name: median, aggregate: median, value: cycle.days}
  - {name: to_win, aggregate: avg, value: cycle.total_days, filter: "to_stage == 'won'"}
---
kind: report
name: against_target
entity: deal
params: [{name: year, type: integer, default: 2026}]
filter: stage == 'won' and year(closed) == params.year and month(closed) <= 3
group_by:
  - {name: owner, field: owner_id}
  - name: month
    expression: month(closed)
    ranges: [{value: jan, to: 1}, {value: feb, to: 2}, {value: mar}]
measures:
  - {name: won, aggregate: sum, field: amount}
  - {name: achieved, expression: won / target}
union:
  - entity: target
    filter: year == params.year
    unpivot: {fields: [m01, m02, m03]}
    group_by: [{field: user}, {expression: unpivot.index}]
    measures: [{name: target, aggregate: sum, value: unpivot.value}]
sort: [owner, month]
"""
TODAY = dt.date(2026, 6, 15)
ADMIN = Actor(roles=frozenset({"admin"}), today=TODAY)
ANN = Actor(user_id=1, team_id=1, roles=frozenset({"rep"}), today=TODAY)
STAGES = ["open", "proposal", "negotiation", "won", "lost"]


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
    rnd = random.Random(7)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "T", "created_at": now}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {
                    "username": u,
                    "name": u.title(),
                    "roles": ["rep"],
                    "team_id": 1,
                    "created_at": now,
                }
                for u in ("ann", "bob", "cy")
            ],
        )
        conn.execute(
            tables.table("account").insert(),
            [
                {
                    "name": f"a{i}",
                    "region": ["north", "south", "east", None][i % 4],
                    "secret": i,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(8)
            ],
        )
        deals, history = [], []
        for i in range(240):
            stage = rnd.choice(STAGES)
            deals.append(
                {
                    "name": f"d{i}",
                    "account": rnd.choice([1, 2, 3, 4, 5, 6, 7, 8, None]),
                    "amount": Decimal(rnd.randint(100, 99999)) / 100
                    if rnd.random() > 0.05
                    else None,
                    "stage": stage,
                    "lost_at": rnd.choice(["open", "proposal", "negotiation", None])
                    if stage == "lost"
                    else None,
                    "closed": dt.date(2026, rnd.randint(1, 5), rnd.randint(1, 28)),
                    "owner_id": rnd.choice([1, 2, 3]),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rnd.randint(0, 5000))
            reached = STAGES.index(stage) if stage != "lost" else rnd.randint(0, 2)
            path = STAGES[: reached + 1] + (["lost"] if stage == "lost" else [])
            for step in path:
                history.append({"deal": i + 1, "to_stage": step, "changed_at": at})
                at += dt.timedelta(hours=rnd.randint(1, 900), minutes=rnd.randint(0, 59))
        conn.execute(tables.table("deal").insert(), [{**d, "updated_at": now} for d in deals])
        conn.execute(
            tables.table("history").insert(),
            [{**h, "created_at": now, "updated_at": now} for h in history],
        )
        conn.execute(
            tables.table("target").insert(),
            [
                {
                    "user": user,
                    "year": year,
                    "m01": Decimal(1000 * user),
                    "m02": Decimal(1500 * user),
                    "m03": Decimal(700 * user) if user != 3 else None,
                    "created_at": now,
                    "updated_at": now,
                }
                for user in (1, 2, 3)
                for year in (2025, 2026)
            ],
        )
    return Reports(Records(db_engine, model, tables=tables))


def _sql(reports: Reports, text: str, **params: Any) -> list[dict[str, Any]]:
    with reports.records.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(text), params).mappings()]


def _num(value: Any, places: str = "0.01") -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal(places))


def _sqlite(reports: Reports) -> bool:
    return reports.records.dialect == "sqlite"


# --- pivot --------------------------------------------------------------------------------


def test_a_pivot_has_a_cell_per_value_and_row_and_column_totals(reports: Reports) -> None:
    result = reports.run(ADMIN, "pivot")
    cells = _sql(
        reports,
        """SELECT a.region, d.stage, count(*) AS deals, coalesce(sum(d.amount), 0) AS total,
                  avg(d.amount) AS average
           FROM deal d LEFT JOIN account a ON a.id = d.account GROUP BY a.region, d.stage""",
    )
    by_region = _sql(
        reports,
        """SELECT a.region, count(*) AS deals, coalesce(sum(d.amount), 0) AS total,
                  avg(d.amount) AS average
           FROM deal d LEFT JOIN account a ON a.id = d.account GROUP BY a.region
           ORDER BY total DESC""",
    )
    by_stage = _sql(
        reports,
        "SELECT stage, count(*) AS deals, coalesce(sum(amount), 0) AS total, "
        "avg(amount) AS average FROM deal GROUP BY stage",
    )
    grand = _sql(reports, "SELECT avg(amount) AS average FROM deal")[0]
    assert result.pivot is not None
    values = [v["value"] for v in result.pivot["values"]]
    assert values == [s for s in STAGES if s in {r["stage"] for r in by_stage}]
    assert next(v["label"] for v in result.pivot["values"]) == "open"
    key = {v: j for j, v in enumerate(values)}
    # rows in the report's sort (-total: by row total), each row's totals as the SQL's
    assert [r["account.region"] for r in result.rows] == [r["region"] for r in by_region]
    for mine, theirs in zip(result.rows, by_region, strict=True):
        assert mine["deals"] == theirs["deals"]
        assert _num(mine["total"]) == _num(theirs["total"])
        assert _num(mine["average"], "0.0001") == _num(theirs["average"], "0.0001")
    rows = {r["account.region"]: r for r in result.rows}
    for cell in cells:
        row = rows[cell["region"]]
        j = key[cell["stage"]]
        assert row[f"deals__{j}"] == cell["deals"]
        assert _num(row[f"total__{j}"]) == _num(cell["total"])
        assert _num(row[f"average__{j}"], "0.0001") == _num(cell["average"], "0.0001")
        if cell["deals"]:
            expected = Decimal(str(cell["total"])) / cell["deals"]
            assert abs(row[f"per_deal__{j}"] - expected) < Decimal("0.001")
    # a missing cell is an empty group: zero deals, no average
    present = {(c["region"], c["stage"]) for c in cells}
    for region, row in rows.items():
        for stage, j in key.items():
            if (region, stage) not in present:
                assert row[f"deals__{j}"] == 0 and row[f"average__{j}"] is None
    assert result.totals is not None
    for theirs in by_stage:
        j = key[theirs["stage"]]
        assert result.totals[f"deals__{j}"] == theirs["deals"]
        assert _num(result.totals[f"total__{j}"]) == _num(theirs["total"])
        assert _num(result.totals[f"average__{j}"], "0.0001") == _num(
            theirs["average"], "0.0001"
        )
    assert result.totals["deals"] == 240
    assert _num(result.totals["average"], "0.0001") == _num(grand["average"], "0.0001")
    names = [c["name"] for c in result.columns]
    assert names[0] == "account.region" and "stage" not in names
    assert names[1:5] == ["deals__0", "total__0", "average__0", "per_deal__0"]
    assert names[-4:] == ["deals", "total", "average", "per_deal"]
    assert result.columns[1]["label"] == "open · Deals"
    assert result.columns[-4]["label"] == "Deals (total)"
    assert result.chart["type"] == "stacked_bar" and result.chart["series"] == "stage"
    assert result.chart["series_columns"]["deals"][0] == "deals__0"
    assert "pivot" in result.to_dict()


def test_a_rep_s_pivot_counts_their_deals_and_refuses_a_hidden_field(reports: Reports) -> None:
    mine = reports.run(ANN, "pivot")
    expected = _sql(reports, "SELECT count(*) AS n FROM deal WHERE owner_id = 1")[0]["n"]
    assert mine.totals is not None and mine.totals["deals"] == expected
    report = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "group_by": ["stage", "account.secret"],
            "pivot": "account.secret",
            "measures": [{"name": "n", "aggregate": "count"}],
        },
    )
    with pytest.raises(BadRequest, match=r"unknown field 'account\.secret'"):
        reports.run(ANN, report, adhoc=True)
    totals = reports.run(ADMIN, report, adhoc=True).totals
    assert totals is not None and totals["n"] == 240


# --- subtotals ----------------------------------------------------------------------------


def test_subtotals_follow_each_group(reports: Reports) -> None:
    result = reports.run(ADMIN, "subtotals")
    by_region = _sql(
        reports,
        """SELECT a.region, count(*) AS deals, coalesce(sum(d.amount), 0) AS total
           FROM deal d LEFT JOIN account a ON a.id = d.account GROUP BY a.region
           ORDER BY total DESC""",
    )
    cells = _sql(
        reports,
        """SELECT a.region, d.stage, count(*) AS deals FROM deal d
           LEFT JOIN account a ON a.id = d.account GROUP BY a.region, d.stage""",
    )
    grand = sum(Decimal(str(r["total"])) for r in by_region)
    subtotals = [r for r in result.rows if r.get("_subtotal")]
    assert [r["account.region"] for r in subtotals] == [r["region"] for r in by_region]
    for mine, theirs in zip(subtotals, by_region, strict=True):
        assert mine["_subtotal"] == 1 and mine["stage"] is None
        assert mine["deals"] == theirs["deals"]
        assert _num(mine["total"]) == _num(theirs["total"])
        assert abs(mine["share"] - Decimal(str(theirs["total"])) / grand) < Decimal("0.00001")
    # each group's rows come right before its subtotal, and add up to it
    group: list[dict[str, Any]] = []
    for row in result.rows:
        if row.get("_subtotal"):
            assert {r["account.region"] for r in group} == {row["account.region"]}
            assert sum(r["deals"] for r in group) == row["deals"]
            totals = [r["total"] for r in group]
            assert totals == sorted(totals, reverse=True)
            group = []
        else:
            group.append(row)
    assert len([r for r in result.rows if not r.get("_subtotal")]) == len(cells)


# --- funnel -------------------------------------------------------------------------------


def test_a_funnel_counts_who_reached_each_step(reports: Reports) -> None:
    result = reports.run(ADMIN, "funnel")
    rank = (
        "CASE stage WHEN 'open' THEN 0 WHEN 'proposal' THEN 1 WHEN 'negotiation' THEN 2 "
        "WHEN 'won' THEN 3 ELSE CASE lost_at WHEN 'open' THEN 0 WHEN 'proposal' THEN 1 "
        "WHEN 'negotiation' THEN 2 END END"
    )
    expected = _sql(
        reports,
        f"""SELECT s.k, s.step, count(d.id) AS deals, coalesce(sum(d.amount), 0) AS total
            FROM (SELECT 0 AS k, 'open' AS step UNION ALL SELECT 1, 'proposal'
                  UNION ALL SELECT 2, 'negotiation' UNION ALL SELECT 3, 'won') s
            LEFT JOIN deal d ON {rank} >= s.k
            GROUP BY s.k, s.step ORDER BY s.k""",
    )
    assert [r["stage"] for r in result.rows] == ["open", "proposal", "negotiation", "won"]
    assert all(type(r["deals"]) is int for r in result.rows)  # not PostgreSQL's numeric
    first = expected[0]["deals"]
    for i, (mine, theirs) in enumerate(zip(result.rows, expected, strict=True)):
        assert mine["deals"] == theirs["deals"]
        assert _num(mine["total"]) == _num(theirs["total"])
        before = expected[i - 1]["deals"] if i else None
        assert mine["conversion"] == (
            None
            if before is None
            else (Decimal(theirs["deals"]) / before).quantize(Decimal("1e-6"))
        )
        assert mine["overall_conversion"] == (Decimal(theirs["deals"]) / first).quantize(
            Decimal("1e-6")
        )
        assert abs(mine["per_deal"] - Decimal(str(theirs["total"])) / theirs["deals"]) < Decimal(
            "0.001"
        )
    assert result.totals is not None and result.totals["deals"] == first
    assert result.totals["overall_conversion"] == result.rows[-1]["overall_conversion"]
    assert result.chart == {"type": "funnel", "x": "stage", "y": ["deals"]}
    names = [c["name"] for c in result.columns]
    assert names == ["stage", "deals", "total", "per_deal", "conversion", "overall_conversion"]
    # a rep's funnel: their deals only
    mine_only = reports.run(ANN, "funnel")
    assert mine_only.totals is not None
    assert (
        mine_only.totals["deals"]
        == _sql(
            reports, f"SELECT count(*) AS n FROM deal WHERE owner_id = 1 AND {rank} IS NOT NULL"
        )[0]["n"]
    )


def test_a_funnel_refuses_a_hidden_field_and_what_does_not_add_up(reports: Reports) -> None:
    hidden = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "filter": "account.secret > 2",
            "funnel": {"field": "stage", "steps": ["open", "won"]},
            "measures": [{"name": "n", "aggregate": "count"}],
        },
    )
    with pytest.raises(BadRequest, match="unknown field"):
        reports.run(ANN, hidden, adhoc=True)
    with pytest.raises(Forbidden):
        reports.run(ANN, hidden)
    with pytest.raises(DefinitionError) as caught:
        report_from_value(
            reports.model,
            {
                "entity": "deal",
                "group_by": ["name"],
                "funnel": {"field": "name"},
                "measures": [{"name": "n", "aggregate": "count"}],
            },
        )
    assert {p.path for p in caught.value.problems} == {"group_by", "funnel.field"}
    with pytest.raises(DefinitionError) as caught:
        report_from_value(
            reports.model,
            {
                "entity": "deal",
                "funnel": {"field": "stage", "steps": ["won", "wnn"]},
                "measures": [{"name": "n", "aggregate": "avg", "field": "amount"}],
            },
        )
    paths = {p.path for p in caught.value.problems}
    assert {"funnel.steps[1]", "measures[0].aggregate", "funnel.measure"} <= paths


# --- cycle time and median ----------------------------------------------------------------


def test_cycle_time_per_stage_from_the_history(reports: Reports) -> None:
    result = reports.run(ADMIN, "cycle")
    rows = _sql(
        reports, "SELECT deal, to_stage, changed_at, id FROM history ORDER BY deal, changed_at, id"
    )

    def moment(value: Any) -> dt.datetime:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    stints: dict[str, list[float]] = {}
    to_win: list[float] = []
    first: dict[int, dt.datetime] = {}
    for i, row in enumerate(rows):
        at = moment(row["changed_at"])
        first.setdefault(row["deal"], at)
        stints.setdefault(row["to_stage"], [])
        if row["to_stage"] == "won":
            to_win.append((at - first[row["deal"]]).total_seconds() / 86400)
        following = rows[i + 1] if i + 1 < len(rows) else None
        if following is not None and following["deal"] == row["deal"]:
            stints[row["to_stage"]].append(
                (moment(following["changed_at"]) - at).total_seconds() / 86400
            )
    got = {r["to_stage"]: r for r in result.rows}
    for stage, days in stints.items():
        mine = got[stage]
        assert mine["stints"] == len(days)
        if days:
            assert abs(mine["average"] - Decimal(statistics.mean(days))) < Decimal("0.001")
            assert abs(mine["median"] - Decimal(statistics.median(days))) < Decimal("0.001")
        else:
            assert mine["average"] is None and mine["median"] is None
    assert abs(got["won"]["to_win"] - Decimal(statistics.mean(to_win))) < Decimal("0.001")
    assert result.totals is not None
    everything = [d for days in stints.values() for d in days]
    assert abs(result.totals["median"] - Decimal(statistics.median(everything))) < Decimal("0.001")


# --- union --------------------------------------------------------------------------------


def test_a_union_puts_targets_beside_actuals(reports: Reports) -> None:
    result = reports.run(ADMIN, "against_target")
    month = "strftime('%m', closed)" if _sqlite(reports) else "to_char(closed, 'MM')"
    won = _sql(
        reports,
        f"""SELECT owner_id, CAST({month} AS INTEGER) AS month, sum(amount) AS won FROM deal
            WHERE stage = 'won' AND closed >= '2026-01-01' AND closed < '2026-04-01'
            GROUP BY owner_id, CAST({month} AS INTEGER)""",
    )
    targets = _sql(reports, 'SELECT "user", m01, m02, m03 FROM target WHERE year = 2026')
    names = {1: "jan", 2: "feb", 3: "mar"}
    rows = {(r["owner"], r["month"]): r for r in result.rows}
    for row in won:
        mine = rows[(row["owner_id"], names[row["month"]])]
        assert _num(mine["won"]) == _num(row["won"])
    for target in targets:
        for i, month_name in names.items():
            mine = rows[(target["user"], month_name)]
            value = target[f"m0{i}"]
            assert _num(mine["target"]) == _num(value or 0)
            if value and mine["won"]:
                assert abs(mine["achieved"] - Decimal(str(mine["won"])) / Decimal(str(value))) < (
                    Decimal("0.0001")
                )
    assert [r["owner__title"] for r in result.rows[:3]] == ["Ann", "Ann", "Ann"]
    assert result.totals is not None
    expected = sum(
        Decimal(str(t["m01"] or 0)) + Decimal(str(t["m02"] or 0)) + Decimal(str(t["m03"] or 0))
        for t in targets
    )
    assert _num(result.totals["target"]) == _num(expected)


def test_a_union_parts_money_keeps_its_places(reports: Reports) -> None:
    """A part's sum of a money field has the field's two places, like the report's own
    (it came back as "59040.0000000000" once: the parts' scales were read too early)."""
    result = reports.run(ADMIN, "won_beside_target")
    assert result.rows and result.totals is not None
    for value in [*(r["won"] for r in result.rows), result.totals["won"]]:
        assert isinstance(value, Decimal) and value.as_tuple().exponent == -2, value
    # a rep sees their won deals beside every target, without a hidden month of them
    mine = reports.run(ANN, "against_target")
    assert {r["owner"] for r in mine.rows if r["won"]} <= {1}
    assert "target" not in mine.rows[0]
