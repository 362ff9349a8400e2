"""ui_renderer without Flask: the page builders lay out the Model in each locale, the
widgets and view renderers come from their registries, and a plugin adds its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import jinja2
import pytest

from metamodel import load_packages
from metamodel.model import Model
from ui_renderer import VIEW_RENDERERS, WIDGETS, Screens, ViewRenderer, Widget
from ui_renderer import pages as P
from ui_renderer.render import merged


class Links:
    """URLs as plain strings: what the templates ask for, visible in the output."""

    def home(self) -> str:
        return "/"

    def login(self) -> str:
        return "/login"

    def logout(self) -> str:
        return "/logout"

    def language(self) -> str:
        return "/language"

    def settings(self) -> str:
        return "/settings"

    def entity_list(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return f"/app/{entity}" + (
            "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        )

    def record(self, entity: str, record_id: Any, params: Mapping[str, Any] | None = None) -> str:
        return f"/app/{entity}/{record_id}"

    def opens(self, entity: str) -> bool:
        return True

    def edit(self, entity: str, record_id: Any) -> str:
        return f"/app/{entity}/{record_id}/edit"

    def transition(self, entity: str, record_id: Any, name: str) -> str:
        return f"/app/{entity}/{record_id}/transitions/{name}"

    def new(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        return f"/app/{entity}/new"

    def options(self, entity: str) -> str:
        return f"/app/{entity}/options"

    def asset(self, name: str) -> str:
        return f"/ui/{name}"

    def static(self, filename: str) -> str:
        return f"/ui/{filename}"


class Formatter:
    def number(self, value: Any, scale: int | None = None) -> str:
        return f"n:{value}"

    def money(self, value: Any, currency: str | None) -> str:
        return f"{currency} {value}"

    def percent(self, value: Any) -> str:
        return f"{value}%"

    def date(self, value: Any) -> str:
        return f"d:{value}"

    def datetime(self, value: Any) -> str:
        return f"dt:{value}"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_packages(["apps/crm_definitions"])


@pytest.fixture
def screens() -> Screens:
    return Screens(
        links=Links(),
        formatter=Formatter(),
        gettext=lambda text, **kw: text % kw if kw else text,
        ngettext=lambda one, many, n, **kw: (one if n == 1 else many) % {"num": n, **kw},
    )


def test_every_view_kind_with_a_screen_in_this_increment_has_a_renderer() -> None:
    assert {"form", "list_views"} <= set(VIEW_RENDERERS)


def test_the_form_layout_in_each_language(model: Model) -> None:
    account = model.entity("account")
    record = {
        "id": 7,
        "name": "Acme",
        "grade": "A",
        "tags": ["vip"],
        "annual_revenue": Decimal("5"),
    }
    for locale, section, label, grade in [
        ("en", "Basic information", "Account name", "A (key)"),
        ("zh", "基本信息", "客户名称", "A类（重点客户）"),
        ("ja", "基本情報", "顧客名", "Aランク（重要顧客）"),
    ]:
        tabs = P.form_tabs(account, locale, P.FormInput(record=record))
        first = tabs[0].sections[0]
        assert (first.label, first.slots[0].label, first.slots[0].value) == (section, label, "Acme")
        slot = next(s for s in first.slots if s.name == "grade")
        assert [o.label for o in slot.options if o.selected] == [grade]
        assert next(s for s in tabs[0].sections if s.name == "pool_info").collapsed


def test_hidden_fields_are_left_out_and_computed_ones_read_only(model: Model) -> None:
    account = model.entity("account")
    tabs = P.form_tabs(
        account, "en", P.FormInput(hidden=frozenset({"annual_revenue"})), editing=True
    )
    slots = {s.name: s for t in tabs for sec in t.sections for s in sec.slots}
    assert "annual_revenue" not in slots
    assert "code" not in slots  # an autonumber without a value yet is left off a form
    tabs = P.form_tabs(account, "en", P.FormInput(record={"code": "AC-1", "lifetime_value": 3}))
    slots = {s.name: s for t in tabs for sec in t.sections for s in sec.slots}
    assert (
        slots["code"].readonly and slots["lifetime_value"].readonly and not slots["name"].readonly
    )


def test_list_columns_mark_the_sort_and_offer_the_next(model: Model) -> None:
    account = model.entity("account")
    view = P.default_list_view(account)
    assert view["name"] == "all" and view["columns"][0] == "name"
    cols = P.columns(
        account,
        ["name", "grade", "owner_id"],
        "zh",
        sort=P.sort_keys("-grade"),
        sortable=frozenset({"name", "grade"}),
    )
    assert [(c.label, c.sorted, c.next_sort, c.sortable) for c in cols] == [
        ("客户名称", None, "name", True),
        ("客户等级", "desc", "grade", True),
        ("负责人", None, "owner_id", False),
    ]
    assert P.default_list_view(account, "mine")["name"] == "mine"


def test_input_text_of_stored_values() -> None:
    assert P.input_text(None) == ""
    assert P.input_text(True) == "true" and P.input_text(False) == ""
    assert P.input_text(dt.date(2026, 1, 31)) == "2026-01-31"
    moment = dt.datetime(2026, 1, 31, 9, 30, 59, tzinfo=dt.UTC)
    assert P.input_text(moment) == "2026-01-31T09:30"


def test_merged_query_strings() -> None:
    assert merged({"q": "a", "cursor": "x"}, {"sort": "-name", "cursor": None}) == {
        "q": "a",
        "sort": "-name",
    }


def test_widgets_render_values_and_controls(model: Model, screens: Screens) -> None:
    account = model.entity("account")
    money = P.slot(account.field("annual_revenue"), "en", Decimal("12.5"), currency="CNY")
    assert str(screens.widget(money)) == '<span class="h-number">CNY 12.5</span>'
    assert 'inputmode="decimal"' in screens.widget(money, "input")
    grade = P.slot(account.field("grade"), "en", "A")
    assert 'badge bg-red-lt">A (key)</span>' in screens.widget(grade)
    website = P.slot(account.field("website"), "en", "javascript:alert(1)")
    assert "href" not in screens.widget(website)  # only web addresses become links
    name = P.slot(account.field("name"), "en", "<b>", errors=["Too long."])
    control = str(screens.widget(name, "input"))
    assert 'value="&lt;b&gt;"' in control and 'aria-invalid="true"' in control
    assert 'id="f-name-error" role="alert">Too long.<' in control
    parent = P.slot(account.field("parent_account"), "en", 3, title="Acme")
    assert str(screens.widget(parent)) == '<a href="/app/account/3">Acme</a>'


@pytest.fixture
def plugin_widget() -> Iterator[None]:
    WIDGETS.register(Widget("string", "stars", "stars", "plugin.html"), replace=True)
    VIEW_RENDERERS.register(ViewRenderer("gantt", "gantt", "plugin.html"))
    yield
    WIDGETS.register(Widget("string", "text_input"), replace=True)
    VIEW_RENDERERS.unregister("gantt")


def test_a_plugin_registers_its_widget_and_view(
    model: Model, screens: Screens, plugin_widget: None
) -> None:
    screens.add_templates(
        jinja2.DictLoader(
            {
                "plugin.html": "{% macro stars(s) %}{{ '★' * s.value|length }}{% endmacro %}"
                "{% macro gantt(screen) %}<div class=gantt>{{ screen }}</div>{% endmacro %}",
            }
        )
    )
    name = P.slot(model.entity("account").field("name"), "en", "abc")
    assert str(screens.widget(name)) == "★★★"
    assert str(screens.view("gantt", "x")) == "<div class=gantt>x</div>"


def test_child_rows_follow_the_children_fields_columns(model: Model, screens: Screens) -> None:
    lines = model.entity("quote").field("lines")
    child = model.entity("quote_line")
    rows = [
        {
            "id": 1,
            "quote": 9,
            "product": 5,
            "product__title": "ERP",
            "quantity": Decimal("2"),
            "unit_price": Decimal("98000"),
            "discount": Decimal("5"),
            "amount": Decimal("186200"),
        }
    ]
    table = P.child_table(child, rows, "en", "CNY", lines.columns, frozenset({"description"}))
    assert [c.name for c in table.columns] == [
        "product",
        "quantity",
        "unit_price",
        "discount",
        "amount",
    ]
    html = str(screens.widget(P.slot(lines, "en", rows, children=table)))
    assert '<a href="/app/product/5">ERP</a>' in html and "CNY 98000" in html and "5%" in html
    assert "CNY 186200" in html  # a formula shows as what it returns (money)
