"""The packages in ``valid/`` load, and the Model says what their definitions say.

- ``valid/sales/``: a base package in a folder (YAML and JSON files, a skipped ``demo/``)
  using every field type, every field option and every kind of document;
- ``valid/sales_eu.yaml``: an overlay in one file (``extends: sales``) that patches,
  adds and removes;
- ``valid/sales_de.yaml``: an overlay of the overlay, changing what ``sales_eu`` set.

Tests that document a valid definition the loader rejects today (or a fact it gets wrong)
are marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from metamodel import (
    FIELD_TYPES,
    KINDS,
    DefinitionError,
    Model,
    Origin,
    definition_schema,
    load_packages,
    model_from_json,
)
from metamodel.model import SortKey

ROOT = Path(__file__).resolve().parents[2]
VALID = Path(__file__).resolve().parent / "valid"
BASE = VALID / "sales"
EU = VALID / "sales_eu.yaml"
DE = VALID / "sales_de.yaml"
ACCOUNT = BASE / "entities" / "account.yaml"


@pytest.fixture(scope="module")
def in_root() -> Iterator[None]:
    """Run from the repository root, so origins read ``tests/definitions/valid/…``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        yield


@pytest.fixture(scope="module")
def base(in_root: None) -> Model:
    return load_packages([BASE])


@pytest.fixture(scope="module")
def model(in_root: None) -> Model:
    return load_packages([BASE, EU, DE])


def at(path: Path, snippet: str, target: str, package: str) -> Origin:
    """The origin of ``target`` inside the one place ``snippet`` occurs in ``path``."""
    text = path.read_text(encoding="utf-8")
    assert text.count(snippet) == 1, f"{snippet!r} must occur once in {path.name}"
    offset = text.index(snippet) + snippet.index(target)
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Origin(path.relative_to(ROOT).as_posix(), line, col, package)


# the base package alone ---------------------------------------------------------------


def test_base_uses_every_field_type(base: Model) -> None:
    used = {field.type for entity in base for field in entity.fields.values()}
    assert used == set(FIELD_TYPES)


def test_base_uses_every_field_option(base: Model) -> None:
    options = set(definition_schema()["$defs"]["field"]["properties"])
    used = {
        key
        for document in base.documents
        if document["kind"] == "entity"
        for spec in document["fields"].values()
        for key in spec
    }
    assert used == options


def test_base_uses_every_kind(base: Model) -> None:
    kinds = {document["kind"] for document in base.documents}
    assert kinds == set(KINDS) - {"package"}


def test_base_reads_json_and_skips_demo(base: Model) -> None:
    assert base.entity("tag").label.get("zh") == "标签"
    origin = base.origin("entity", "tag", "fields", "name", "type")
    assert origin is not None and origin.file.endswith("sales/entities/tag.json")
    assert origin.line == 5
    assert "broken" not in base.entities


def test_base_has_what_overlays_remove(base: Model) -> None:
    account = base.entity("account")
    assert account.field("documents").multiple
    assert [v.name for v in account.validations] == ["revenue_positive"]
    assert base.role("sales_manager").permissions["account"].delete == "own"
    assert "region" not in account.fields


def test_base_package(base: Model) -> None:
    package = base.package
    assert (package.name, package.version, package.table_prefix) == ("sales", "1.2.0", "s_")
    assert (package.currency, package.locales, package.default_locale) == (
        "EUR",
        ("en", "zh", "ja"),
        "en",
    )
    assert package.label.get("zh") == "销售"
    assert package.extends is None


# fields -------------------------------------------------------------------------------


def test_text_fields(model: Model) -> None:
    account = model.entity("account")
    name = account.field("name")
    assert (name.type, name.required, name.unique, name.index, name.searchable) == (
        "string",
        True,
        True,
        True,
        True,
    )
    assert (name.min_length, name.max_length, name.pattern) == (2, 120, "^[^<>]*$")
    assert name.placeholder is not None and name.placeholder.get("ja") == "Acme Ltd"
    assert name.help is not None and name.help.get("zh") == "公司注册名称"
    assert account.field("email").max_length == 255  # the default for one-line text
    assert account.field("notes").max_length is None  # long text has no limit
    assert account.field("phone").renamed_from == "telephone"
    assert account.field("website").type == "url"


def test_labels_per_locale(model: Model) -> None:
    account = model.entity("account")
    assert account.label.get("en") == "Account"
    assert account.label.get("zh") == "客户"
    assert account.label.get("ja") == "顧客"
    assert account.label.get("de") == "Kunde"  # added by sales_eu
    assert account.label.get("fr") == "Account"  # falls back to English
    assert account.plural_label.get("ja") == "Accounts"
    name = account.field("name").label
    assert (name.get("en"), name.get("zh-TW"), name.get("de")) == ("Name", "名称", "Firma")
    assert account.field("notes").label.get("zh") == "Notes"  # humanized field name
    assert account.field("last_contacted").label.get() == "Last contacted"


def test_number_fields(model: Model) -> None:
    account = model.entity("account")
    employees = account.field("employees")
    assert (employees.type, employees.default, employees.min, employees.max) == (
        "integer",
        1,
        0,
        1_000_000,
    )
    revenue = account.field("revenue")
    assert (revenue.currency, revenue.precision, revenue.scale, revenue.min) == ("USD", 20, 2, 0)
    margin = account.field("margin")
    assert (margin.type, margin.default, margin.precision, margin.scale) == ("percent", 12.5, 9, 1)
    rating = account.field("rating")
    assert (rating.precision, rating.scale, rating.min, rating.max) == (4, 2, "0.5", "5")
    amount = model.entity("opportunity").field("amount")
    assert (amount.precision, amount.scale, amount.currency) == (18, 2, None)


def test_boolean_and_date_fields(model: Model) -> None:
    account = model.entity("account")
    assert account.field("active").default is True
    founded = account.field("founded")
    assert (founded.default, founded.min, founded.max) == ("2000-01-01", "1800-01-01", "2100-12-31")
    assert account.field("last_contacted").readonly
    close_date = model.entity("opportunity").field("close_date")
    assert close_date.default is None
    assert close_date.default_expression is not None
    assert close_date.default_expression.type == "date"
    assert str(close_date.default_expression) == "add_days(today(), 30)"


def test_choice_fields(model: Model) -> None:
    grade = model.entity("account").field("grade")
    assert grade.choice_values == ("a", "b", "c", "d")  # 'd' added by sales_eu
    assert grade.default == "b"
    key = grade.choice("a")
    assert key.color == "#ff0000"
    assert (key.label.get("en"), key.label.get("zh"), key.label.get("de")) == (
        "Key account",
        "重点客户",
        "Schlüsselkunde",
    )
    assert grade.choice("c").label.get("en") == "c"
    assert grade.choice("d").label.get("de") == "Dormant"
    assert grade.label.get("zh") == "等级"
    tags = model.entity("account").field("tags")
    assert (tags.type, tags.choice_values, list(tags.default)) == (
        "multichoice",
        ("vip", "partner", "reseller"),
        ["vip"],
    )
    assert tags.value_type == "list:string"


def test_reference_and_people_fields(model: Model) -> None:
    account = model.entity("account")
    parent = account.field("parent_account")
    assert (parent.to, parent.on_delete, parent.required) == ("account", "set_null", False)
    link = model.entity("opportunity").field("account")
    assert (link.to, link.on_delete, link.required) == ("account", "cascade", True)
    assert {(e.name, f.name) for e, f in model.references_to("account")} == {
        ("account", "parent_account"),
        ("opportunity", "account"),
        ("eu_note", "account"),
    }
    assert account.field("manager").on_delete == "set_null"
    assert account.field("watchers").multiple
    assert account.field("watchers").value_type == "list:integer"
    assert account.field("manager").value_type == "integer"
    assert account.field("sales_team").type == "team"


def test_file_fields(model: Model) -> None:
    logo = model.entity("account").field("logo")
    assert (logo.accept, logo.max_size, logo.multiple) == (
        ("image/png", "image/jpeg"),
        1_048_576,
        False,
    )


def test_computed_fields(model: Model) -> None:
    account = model.entity("account")
    code = account.field("code")
    assert (code.format, code.readonly, code.computed) == ("AC-{YYYY}-{seq:05}", True, True)
    shown = account.field("display_name")
    assert shown.returns == "string" and shown.readonly
    assert shown.expression is not None
    assert shown.expression.evaluate({"name": "Acme", "code": "AC-1"}) == "Acme (AC-1)"
    open_amount = account.field("open_amount")
    assert (open_amount.of, open_amount.via, open_amount.aggregate) == (
        "opportunity",
        "account",
        "sum",
    )
    assert open_amount.rollup_field == "amount" and open_amount.value_type == "decimal"
    assert open_amount.filter is not None
    assert open_amount.filter.evaluate({"stage": "lost"}) is False
    assert account.field("opportunity_count").value_type == "integer"
    total = model.entity("opportunity_line").field("total")
    assert total.expression is not None
    assert total.expression.evaluate({"quantity": 3, "price": Decimal("2.50")}) == Decimal("7.50")
    grade = model.entity("opportunity").field("account_grade")
    assert grade.expression is not None and grade.expression.fields == {("account", "grade")}


def test_conditions(model: Model) -> None:
    account = model.entity("account")
    website = account.field("website").visible_when
    assert website is not None
    assert (website.evaluate({"grade": "a"}), website.evaluate({"grade": "b"})) == (True, False)
    vat = account.field("vat_number")
    assert vat.required  # set by sales_eu
    assert vat.required_when is not None and vat.readonly_when is not None
    assert vat.readonly_when.evaluate({"active": False}) is True
    assert vat.label.get("de") == "USt-IdNr."


# entities -----------------------------------------------------------------------------


def test_entity_settings(model: Model) -> None:
    account = model.entity("account")
    assert (account.table, account.title_field, account.ownable, account.audit) == (
        "s_account",
        "name",
        True,
        True,
    )
    assert account.search_fields == ("name", "code")
    assert "owner_id" in account.system_fields
    assert "owner_id" not in model.entity("tag").system_fields
    assert account.icon == "building"
    assert account.description is not None and account.description.get() == "A company we sell to."
    assert account.default_sort == (SortKey("revenue", True), SortKey("name"))
    assert model.entity("eu_note").table == "s_eu_note"  # the base package's prefix


def test_children(model: Model) -> None:
    line = model.entity("opportunity_line")
    assert (line.child, line.parent, line.parent_field) == (True, "opportunity", "opportunity")
    lines = model.entity("opportunity").field("lines")
    assert (lines.children, lines.via) == ("opportunity_line", "opportunity")
    assert lines.columns == ("product", "quantity", "total")


def test_rules_and_layout(model: Model) -> None:
    account = model.entity("account")
    assert account.validations == ()  # removed by sales_eu
    (rule,) = account.duplicate_rules
    assert (rule.fields, rule.normalize, rule.action, rule.match) == (
        ("name",),
        ("case", "space", "company_suffix"),
        "warn",
        "all",
    )
    assert [(i.name, i.fields, i.unique) for i in account.indexes] == [
        ("by_grade_name", ("grade", "name"), False)
    ]
    main = account.form["sections"][0]
    assert main["fields"] == ("name", "code", "grade", "tags", "region")  # replaced
    assert main["columns"] == 2 and main["label"]["zh"] == "主要"  # kept
    assert account.form["tabs"][0]["sections"][0]["collapsed"] is True
    assert account.form["related"][0]["via"] == "account"
    assert account.list_views[0]["columns"][-1] == "parent_account.name"
    assert account.kanban["field"] == "grade"
    assert account.calendar["start"] == "founded"
    assert "documents" not in account.fields  # removed by sales_eu
    assert list(account.fields)[-1] == "region"  # added by sales_eu, after the others


# other kinds --------------------------------------------------------------------------


def test_workflow(model: Model) -> None:
    flow = model.workflow("opportunity_flow")
    assert (flow.entity, flow.field, flow.initial.name) == ("opportunity", "stage", "open")
    assert [(s.name, s.final) for s in flow.states] == [
        ("open", False),
        ("won", True),
        ("lost", True),
    ]
    win = flow.transition("win")
    assert (win.sources, win.to, win.roles, win.required_fields) == (
        ("open",),
        "won",
        ("sales_manager",),
        ("amount",),
    )
    assert win.label.get("zh") == "赢单"
    assert win.guard is not None and win.guard.evaluate({"amount": 5}) is True
    assert flow.transition("lose").comment == "required"
    reopen = flow.transition("reopen")
    assert reopen.allowed_from("won") and reopen.approval == "reopen_approval"
    assert flow.approvals[0].on_reject == "lost"
    assert model.workflows_of("opportunity") == (flow,)


def test_roles(model: Model) -> None:
    manager = model.role("sales_manager")
    account = manager.permissions["account"]
    assert (account.scope("read"), account.scope("update"), account.scope("delete")) == (
        "all",
        "team",
        "none",  # 'own' in sales, 'none' since sales_eu
    )
    assert account.scope("import") == "none"
    assert dict(account.fields) == {"revenue": "readonly", "vat_number": "hidden"}
    opportunity = manager.permissions["opportunity"]
    assert (opportunity.read, opportunity.create) == ("team_and_below", "none")
    assert manager.label.get("zh") == "销售经理"
    assert model.role("admin").permissions == {}


def test_report_dashboard_automation(model: Model) -> None:
    report = model.reports["pipeline"]
    assert report.entity == "opportunity"
    assert report.filter is not None
    values = {"amount": 5, "stage": "open", "params": {"min_amount": 1}}
    assert report.filter.evaluate(values) is True
    assert report.spec["group_by"] == ("stage", "account.grade")
    dashboard = model.dashboards["sales_home"]
    assert dashboard.label.get("zh") == "销售"
    assert [w["name"] for w in dashboard.spec["widgets"]] == ["pipeline", "big_deals"]
    follow_up = model.automations["follow_up"]
    assert follow_up.spec["trigger"]["offset_days"] == -3
    assert follow_up.condition is not None
    assert follow_up.condition.evaluate({"stage": "open"}) is True


# overlays and origins -----------------------------------------------------------------


def test_packages(model: Model) -> None:
    assert [(p.name, p.extends) for p in model.packages] == [
        ("sales", None),
        ("sales_eu", "sales"),
        ("sales_de", "sales_eu"),
    ]
    assert model.package.name == "sales_de"
    assert model.locales == ("en", "zh", "ja", "de")
    assert model.entity("eu_note").package == "sales_eu"
    assert model.entity("account").package == "sales"


def test_origins_of_base_values(model: Model) -> None:
    assert model.origin("entity", "account", "fields", "name", "type") == at(
        ACCOUNT, "  name:\n    type: string", "string", "sales"
    )
    assert model.origin("entity", "account", "fields", "vat_number", "required_when") == at(
        ACCOUNT, "\"grade == 'a'\"\n    readonly_when", '"grade', "sales"
    )
    assert model.origin("entity", "account", "label", "en") == at(
        ACCOUNT, "{en: Account,", "Account", "sales"
    )
    assert model.origin("role", "sales_manager", "permissions", "account", "read") == at(
        BASE / "process" / "roles.yaml", "read: all", "all", "sales"
    )
    assert model.origin("entity", "account", "fields", "grade", "options", 0, "label", "en") == (
        at(ACCOUNT, "{en: Key account", "Key account", "sales")
    )


def test_origins_of_overlay_values(model: Model) -> None:
    assert model.origin("entity", "account", "fields", "vat_number", "required") == at(
        EU, "required: true", "true", "sales_eu"
    )
    assert model.origin("entity", "account", "label", "de") == at(
        EU, "label: {de: Kunde}", "Kunde", "sales_eu"
    )
    assert model.origin("entity", "account", "fields", "grade", "options", 3) == at(
        EU, "{value: d,", "{", "sales_eu"
    )
    assert model.origin("entity", "account", "fields", "grade", "options", 0, "label", "de") == (
        at(EU, "Schlüsselkunde", "Schlüsselkunde", "sales_eu")
    )
    assert model.origin("entity", "account", "fields", "region", "type") == at(
        EU, "region: {type: choice", "choice", "sales_eu"
    )
    assert model.origin("role", "sales_manager", "permissions", "account", "delete") == at(
        EU, "delete: none", "none", "sales_eu"
    )
    assert model.origin("entity", "eu_note", "fields", "text") == at(
        EU, "{type: text, label: {en: Note", "{", "sales_eu"
    )


def test_origins_after_two_overlays(model: Model) -> None:
    assert model.origin("entity", "account", "fields", "region", "default") == at(
        DE, "default: south", "south", "sales_de"
    )
    assert model.origin("entity", "account", "fields", "name", "label", "de") == at(
        DE, "{de: Firma}", "Firma", "sales_de"
    )
    assert model.origin("entity", "account", "fields", "name", "label", "zh") == at(
        ACCOUNT, "zh: 名称", "名称", "sales"
    )


def test_region_default_follows_the_last_overlay(model: Model) -> None:
    region = model.entity("account").field("region")
    assert (region.default, region.choice_values) == ("south", ("north", "south"))


def test_model_round_trips_through_json(model: Model) -> None:
    again = model_from_json(model.to_json())
    assert again.hash == model.hash
    assert again.entity("account").fields == model.entity("account").fields
    assert again.entity("opportunity_line").parent == "opportunity"


def test_loading_is_deterministic(in_root: None, model: Model) -> None:
    assert load_packages([BASE, EU, DE]).hash == model.hash


# small valid definitions, written on the fly ----------------------------------------


def _load_text(tmp_path: Path, text: str) -> Model:
    path = tmp_path / "package.yaml"
    path.write_text("kind: package\nname: t\n---\n" + text, encoding="utf-8")
    return load_packages([path])


def test_text_literal_is_not_a_formula_dependency(tmp_path: Path) -> None:
    model = _load_text(
        tmp_path,
        "kind: entity\nname: contact\nfields:\n"
        "  name: {type: string}\n"
        "  a: {type: formula, returns: string, expression: \"concat('b', name)\"}\n"
        "  b: {type: formula, returns: string, expression: \"concat(a, '!')\"}\n",
    )
    assert model.entity("contact").field("b").expression is not None


def test_merge_key_can_be_overridden(tmp_path: Path) -> None:
    model = _load_text(
        tmp_path,
        "kind: entity\nname: contact\nfields:\n"
        "  first: &text {type: string, label: First}\n"
        "  last:\n    <<: *text\n    label: Last\n",
    )
    assert model.entity("contact").field("last").label.get() == "Last"


def test_role_permission_on_every_entity(tmp_path: Path) -> None:
    model = _load_text(
        tmp_path,
        "kind: entity\nname: contact\nfields:\n  name: {type: string}\n"
        "---\nkind: role\nname: reader\npermissions:\n  '*': {read: all}\n",
    )
    assert model.role("reader").permissions["*"].read == "all"


def test_overlay_inherits_package_settings(model: Model) -> None:
    assert model.package.currency == "EUR"


def test_outcome_does_not_depend_on_warning_filters(tmp_path: Path) -> None:
    text = (
        "kind: entity\nname: contact\nfields:\n  name: {type: string}\n"
        "validations:\n  - {name: v, rule: \"name != '\\\\d'\", message: m}\n"
    )
    outcomes: list[object] = []
    for action in ("ignore", "error"):
        with warnings.catch_warnings():
            warnings.simplefilter(action)
            try:
                _load_text(tmp_path, text)
                outcomes.append("loaded")
            except DefinitionError as error:
                outcomes.append([str(problem) for problem in error.problems])
    assert outcomes[0] == outcomes[1]
