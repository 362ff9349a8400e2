"""Overlay packages: patch documents of a base package without forking it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from metamodel import DefinitionError, Model, load_packages

BASE = """\
kind: package
name: crm
locales: [en, zh]
---
kind: entity
name: account
label: {en: Account, zh: 客户}
fields:
  name: {type: string, required: true, label: {en: Name, zh: 名称}}
  grade:
    type: choice
    label: Grade
    options:
      - {value: a, label: A}
      - {value: b, label: B}
  fax: {type: phone}
validations:
  - name: named
    rule: "not is_empty(name)"
    message: A name is needed
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, *overlays: str) -> Model:
    paths = [write(tmp_path, "base.yaml", BASE)]
    paths += [write(tmp_path, f"overlay{i}.yaml", text) for i, text in enumerate(overlays)]
    return load_packages(paths)


def problems(tmp_path: Path, *overlays: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load(tmp_path, *overlays)
    return [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]


def test_add_a_field_change_a_label_and_options_remove_a_field(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: account
        remove: [fields.fax]
        fields:
          wechat: {type: string, label: {en: WeChat, zh: 微信}}
          name: {label: {en: Company name}}
          grade:
            options:
              - {value: b, label: Bronze}
              - {value: vip, label: VIP}
        """,
    )
    account = model.entity("account")
    assert list(account.fields) == ["name", "grade", "wechat"]
    assert account.field("wechat").type == "string"
    # A label map merges per locale: the overlay's English wins, the base's Chinese stays.
    assert account.field("name").label.get("en") == "Company name"
    assert account.field("name").label.get("zh") == "名称"
    assert account.field("name").required is True
    grade = account.field("grade")
    assert grade.choice_values == ("a", "b", "vip")
    assert grade.choice("b").label.get("en") == "Bronze"
    # Provenance: each property knows its package and file.
    origin = model.origin("entity", "account", "fields", "name", "label", "en")
    assert origin is not None and origin.package == "acme" and origin.file.endswith("overlay0.yaml")
    origin = model.origin("entity", "account", "fields", "name", "required")
    assert origin is not None and origin.package == "crm" and origin.line == 9
    origin = model.origin("entity", "account", "fields", "grade", "options", 2, "value")
    assert origin is not None and origin.package == "acme"


def test_named_lists_merge_by_name_and_remove_by_name(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: account
        remove: [validations.named]
        validations:
          - name: graded
            rule: "not is_empty(grade)"
            message: Grade it
        """,
    )
    assert [v.name for v in model.entity("account").validations] == ["graded"]


def test_remove_then_add_replaces_an_item_wholesale(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: account
        remove: [fields.grade]
        fields:
          grade: {type: integer, min: 1, max: 5}
        """,
    )
    grade = model.entity("account").field("grade")
    assert (grade.type, grade.min, grade.max, grade.options) == ("integer", 1, 5, ())


def test_patching_a_missing_document_is_a_clear_error(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: acount
        fields:
          x: {type: string}
        """,
    )
    assert found == [
        "overlay0.yaml:6:9: extend: cannot extend entity 'acount': no package loaded before "
        "'acme' defines it (did you mean 'account'?)"
    ]


def test_removing_a_missing_item_is_a_clear_error(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: account
        remove: [fields.phone]
        """,
    )
    assert found == [
        "overlay0.yaml:7:10: remove[0]: cannot remove 'fields.phone': entity 'account' has no "
        "'phone' there"
    ]


def test_two_sibling_overlays_changing_one_property_conflict(tmp_path: Path) -> None:
    one = """\
        kind: package
        name: sales_team
        extends: crm
        ---
        kind: entity
        extend: account
        fields:
          name: {label: {en: Customer}}
        """
    two = """\
        kind: package
        name: service_team
        extends: crm
        ---
        kind: entity
        extend: account
        fields:
          name: {label: {en: Client}}
        """
    assert problems(tmp_path, one, two) == [
        "overlay1.yaml:8:22: fields.name.label.en: conflicting overlays: packages "
        "'sales_team' (overlay0.yaml:8:22) and 'service_team' both change entity 'account' "
        "here (change it in one of them, or make 'service_team' extend 'sales_team')"
    ]


def test_an_overlay_of_an_overlay_may_change_what_its_parent_set(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        """\
        kind: package
        name: sales_team
        extends: crm
        ---
        kind: entity
        extend: account
        fields:
          name: {label: {en: Customer}}
        """,
        """\
        kind: package
        name: acme_sales
        extends: sales_team
        ---
        kind: entity
        extend: account
        fields:
          name: {label: {en: Client}}
        """,
    )
    assert model.entity("account").field("name").label.get("en") == "Client"
    assert [p.name for p in model.packages] == ["crm", "sales_team", "acme_sales"]


def test_sibling_overlays_agreeing_on_a_value_do_not_conflict(tmp_path: Path) -> None:
    same = """\
        kind: package
        name: {name}
        extends: crm
        ---
        kind: entity
        extend: account
        fields:
          name: {{label: {{en: Customer}}}}
        """
    model = load(tmp_path, same.format(name="one"), same.format(name="two"))
    assert model.entity("account").field("name").label.get("en") == "Customer"


def test_an_overlay_must_extend_the_package_it_patches(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: stray
        ---
        kind: entity
        extend: account
        fields:
          x: {type: string}
        """,
    )
    assert found == [
        "overlay0.yaml:5:9: extend: entity 'account' belongs to package 'crm', which 'stray' "
        "does not extend (add 'extends: crm' to stray's package.yaml)"
    ]


def test_extending_a_package_that_is_not_loaded(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: erp
        """,
    )
    assert found == [
        "overlay0.yaml:3:10: extends: package 'acme' extends 'erp', which is not loaded before "
        "it (list the 'erp' package before 'acme' in HEDDLE_PACKAGES)"
    ]


def test_a_patch_that_breaks_the_document_is_reported_where_the_patch_is(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        extend: account
        fields:
          grade: {default: z}
          budget: {type: money, required: yes, min: 10, max: 1}
        """,
    )
    assert found == [
        "overlay0.yaml:8:20: fields.grade.default: default 'z' is not one of the options "
        "(options: a, b)",
        "overlay0.yaml:9:45: fields.budget.min: min 10 is greater than max 1",
    ]


def test_redefining_instead_of_extending(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        kind: package
        name: acme
        extends: crm
        ---
        kind: entity
        name: account
        fields:
          x: {type: string}
        """,
    )
    assert found == [
        "overlay0.yaml:6:7: name: entity 'account' is already defined in package 'crm' "
        "(base.yaml:5:1) (to change it from another package, write 'extend: account')"
    ]
