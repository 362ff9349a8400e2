"""The kanban, calendar and chart builders of ui_renderer, without Flask or a database:
report results become chart data and tables; days become a month's grid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from metamodel import load_packages
from ui_renderer import VIEW_RENDERERS
from ui_renderer import boards as B
from ui_renderer import charts as C


class Fmt:
    def number(self, value: Any, scale: int | None = None) -> str:
        return f"{Decimal(str(value)):,}"

    def money(self, value: Any, currency: str | None) -> str:
        return f"{currency} {Decimal(str(value)):,.2f}"

    def percent(self, value: Any) -> str:
        return f"{Decimal(str(value)) * 100:.0f}%"

    def date(self, value: Any) -> str:
        return value.strftime("%d %b %Y")

    def datetime(self, value: Any) -> str:
        return value.isoformat()


STAGE = {
    "name": "stage",
    "label": "Stage",
    "type": "string",
    "role": "dimension",
    "options": [{"value": "new", "label": "New"}, {"value": "won", "label": "Won"}],
}
OWNER = {
    "name": "owner_id",
    "label": "Owner",
    "type": "integer",
    "role": "dimension",
    "title": "owner_id__title",
}
DEALS = {"name": "deals", "label": "Deals", "type": "integer", "role": "measure"}
AMOUNT = {"name": "amount", "label": "Amount", "type": "money", "role": "measure"}


def result(
    chart: dict[str, Any], rows: list[dict[str, Any]], columns: list[Any], totals: Any = None
) -> dict[str, Any]:
    return {"columns": columns, "rows": rows, "totals": totals, "chart": chart, "params": {}}


def data(found: dict[str, Any]) -> Any:
    return C.chart_data(found, Fmt(), "CNY", "(none)", "Others")


def test_a_bar_chart_has_a_series_per_measure_and_labels_from_the_options() -> None:
    rows = [
        {"stage": "new", "deals": 2, "amount": Decimal("10.5")},
        {"stage": "won", "deals": 1, "amount": Decimal(4)},
        {"stage": None, "deals": 1, "amount": None},
    ]
    chart = data(
        result(
            {"type": "bar", "x": "stage", "y": ["deals", "amount"]}, rows, [STAGE, DEALS, AMOUNT]
        )
    )
    assert chart == {
        "type": "bar",
        "categories": ["New", "Won", "(none)"],
        "series": [
            {"name": "Deals", "data": [2, 1, 1]},
            {"name": "Amount", "data": [10.5, 4.0, None]},
        ],
    }


def test_a_series_dimension_pivots_into_stacks_and_titles_name_references() -> None:
    rows = [
        {"owner_id": 1, "owner_id__title": "Ann", "stage": "new", "deals": 2},
        {"owner_id": 1, "owner_id__title": "Ann", "stage": "won", "deals": 3},
        {"owner_id": 2, "owner_id__title": "Bob", "stage": "won", "deals": 1},
        {"owner_id": None, "stage": None, "deals": 5, "_others": True},
    ]
    spec = {"type": "stacked_bar", "x": "owner_id", "y": ["deals"], "series": "stage"}
    chart = data(result(spec, rows, [OWNER, STAGE, DEALS]))
    assert chart["categories"] == ["Ann", "Bob", "Others"]
    assert chart["series"] == [
        {"name": "New", "data": [2, 0, 0]},
        {"name": "Won", "data": [3, 1, 0]},
        {"name": "Others", "data": [0, 0, 5]},
    ]


@pytest.mark.parametrize("kind", ["pie", "funnel"])
def test_pies_and_funnels_draw_the_first_measure(kind: str) -> None:
    rows = [{"stage": "new", "deals": 2, "amount": 1}]
    chart = data(
        result({"type": kind, "x": "stage", "y": ["deals", "amount"]}, rows, [STAGE, DEALS, AMOUNT])
    )
    assert chart["series"] == [{"name": "Deals", "data": [2]}]


def test_a_number_card_shows_the_total_formatted() -> None:
    found = result({"type": "number", "y": ["amount"]}, [], [AMOUNT], {"amount": Decimal("1250.5")})
    assert data(found) == {"type": "number", "label": "Amount", "text": "CNY 1,250.50"}


@pytest.mark.parametrize(
    "chart",
    [
        {"type": "table", "x": "stage", "y": ["deals"]},
        {"type": "heatmap", "x": "stage", "y": ["deals"]},  # a type this version does not draw
        {"type": "bar", "x": "stage", "y": ["margin"]},  # a measure left out for this user
        {"type": "bar", "x": "nowhere", "y": ["deals"]},
    ],
)
def test_what_cannot_be_drawn_is_the_table_alone(chart: dict[str, Any]) -> None:
    assert data(result(chart, [{"stage": "new", "deals": 1}], [STAGE, DEALS])) is None


def test_the_table_formats_every_value_and_its_totals() -> None:
    month = {
        "name": "month",
        "label": "Month",
        "type": "date",
        "role": "dimension",
        "bucket": "month",
    }
    rows = [{"month": dt.date(2026, 3, 1), "stage": "won", "amount": Decimal("1000")}]
    table = C.report_table(
        result({"type": "bar"}, rows, [month, STAGE, AMOUNT], {"amount": Decimal("1000")}),
        Fmt(), "CNY", "(none)", "Others", "Total",
    )  # fmt: skip
    assert [h.text for h in table.headers] == ["Month", "Stage", "Amount"]
    assert [c.text for c in table.rows[0]] == ["2026-03", "Won", "CNY 1,000.00"]
    assert table.totals is not None
    assert [c.text for c in table.totals] == ["Total", "", "CNY 1,000.00"]


def test_a_month_grid_is_whole_weeks_from_monday() -> None:
    entry = B.Entry(1, "Call", "09:30", "red")
    grid = B.calendar_grid(
        "month",
        dt.date(2026, 12, 17),
        {dt.date(2026, 12, 8): [entry]},
        dt.date(2026, 12, 7),
        "MTWTFSS",
    )
    days = [d for week in grid.weeks for d in week]
    assert days[0].date == dt.date(2026, 11, 30) and days[-1].date == dt.date(2027, 1, 3)
    assert all(len(w) == 7 for w in grid.weeks) and len(grid.weeks) == 5
    assert not days[0].in_month and days[1].in_month
    assert [d.date for d in days if d.today] == [dt.date(2026, 12, 7)]
    assert [d.entries for d in days if d.entries] == [(entry,)]
    assert (grid.previous, grid.following) == (dt.date(2026, 11, 1), dt.date(2027, 1, 1))


def test_a_week_is_seven_days_from_its_monday() -> None:
    grid = B.calendar_grid("week", dt.date(2026, 12, 10), {}, dt.date(2026, 12, 7), "MTWTFSS")
    assert [d.date.day for d in grid.weeks[0]] == [7, 8, 9, 10, 11, 12, 13]
    assert (grid.previous, grid.following) == (dt.date(2026, 11, 30), dt.date(2026, 12, 14))


def test_kanban_columns_follow_the_fields_options_with_counts() -> None:
    model = load_packages(["apps/crm_definitions"])
    opportunity = model.entity("opportunity")
    row = {"id": 3, "version": 2, "name": "ERP", "stage": "proposal", "amount": Decimal(5)}
    card = B.card(opportunity, row, "stage", ["amount", "close_date"], "zh", "CNY")
    assert (card.title, card.value, card.version) == ("ERP", "proposal", 2)
    assert [s.name for s in card.fields] == ["amount"]  # empty values left out
    columns = B.kanban_columns(
        opportunity, "stage", "zh", {"proposal": [card]}, {"proposal": (40, True)}
    )
    assert [c.value for c in columns][:3] == ["initial", "needs_analysis", "proposal"]
    proposal = next(c for c in columns if c.value == "proposal")
    assert (proposal.label, proposal.count, proposal.estimated, proposal.more) == (
        "方案报价",
        40,
        True,
        39,
    )
    assert {"kanban", "calendar"} <= set(VIEW_RENDERERS)
