"""The CRM package: always valid, every entity of CRM.md, every label in three languages."""

from __future__ import annotations

from collections.abc import Iterator

import crm_definitions
import pytest

from metamodel import Label, Model, load_packages, model_from_json

# The entity names CRM.md fixes: tests and integrations rely on them.
CRM_ENTITIES = (
    "account", "contact", "account_relation", "lead", "campaign", "opportunity",
    "stage_history", "product", "quote", "quote_line", "contract", "sales_order",
    "order_line", "receivable_plan", "payment", "invoice", "activity", "task", "visit",
    "daily_report", "sales_target", "expense_claim", "expense_line", "case",
    "announcement", "article",
)  # fmt: skip
LOCALES = ("en", "zh", "ja")


@pytest.fixture(scope="module")
def crm() -> Model:
    return load_packages([crm_definitions.PATH])


def test_the_package_is_valid_and_complete(crm: Model) -> None:
    missing = [name for name in CRM_ENTITIES if name not in crm.entities]
    assert missing == []
    assert crm.package.name == "crm"
    assert crm.package.locales == LOCALES


def _labels(crm: Model) -> Iterator[tuple[str, Label]]:
    for entity in crm:
        yield entity.name, entity.label
        yield f"{entity.name} (plural)", entity.plural_label
        for field in entity.fields.values():
            yield f"{entity.name}.{field.name}", field.label
            for choice in field.options:
                yield f"{entity.name}.{field.name}={choice.value}", choice.label
        for validation in entity.validations:
            yield f"{entity.name} validation {validation.name}", validation.message


def test_every_label_speaks_english_chinese_and_japanese(crm: Model) -> None:
    untranslated = [
        where
        for where, label in _labels(crm)
        if not all(locale in label.texts for locale in LOCALES)
    ]
    assert untranslated == []


def test_key_fields_of_the_brief(crm: Model) -> None:
    opportunity = crm.entity("opportunity")
    assert opportunity.field("stage").choice_values == (
        "initial", "needs_analysis", "proposal", "negotiation", "won", "lost",
    )  # fmt: skip
    assert opportunity.field("weighted_amount").type == "formula"
    assert opportunity.field("amount").type == "money"
    assert crm.entity("contract").field("received").type == "rollup"
    assert crm.entity("contract").field("received").of == "payment"
    assert crm.entity("account").field("grade").choice_values[:4] == ("A", "B", "C", "D")
    assert crm.entity("account").field("code").type == "autonumber"
    assert crm.entity("account").ownable
    assert not crm.entity("product").ownable
    for child, parent in (("quote_line", "quote"), ("order_line", "sales_order"),
                          ("expense_line", "expense_claim")):  # fmt: skip
        assert crm.entity(child).child and crm.entity(child).parent == parent
    assert crm.entity("lead").field("status").choice_values == (
        "new", "contacted", "qualified", "converted", "disqualified",
    )  # fmt: skip


def test_the_model_round_trips_through_json(crm: Model) -> None:
    again = model_from_json(crm.to_json())
    assert again.hash == crm.hash
    assert set(again.entities) == set(crm.entities)


def test_the_roles_of_the_brief(crm: Model) -> None:
    assert set(crm.roles) == {
        "admin", "sales_manager", "sales_rep", "finance", "service_agent", "marketing", "viewer",
    }  # fmt: skip
    rep = crm.role("sales_rep").permissions
    assert rep["account"].read == "own" and rep["account"].delete == "none"
    assert rep["product"].fields["cost"] == "hidden"
    assert crm.role("sales_manager").permissions["opportunity"].read == "team_and_below"
    assert crm.role("viewer").permissions["*"].read == "all"
    for role in crm.roles.values():
        assert all(locale in role.label.texts for locale in LOCALES), role.name
