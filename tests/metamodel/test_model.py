"""The compiled Model: look-ups, immutability, a stable content hash and its JSON form."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from metamodel import Model, UnknownName, load_packages, model_from_json

PACKAGE = """\
kind: package
name: shop
label: {en: Shop, zh: 商店, ja: ショップ}
locales: [en, zh, ja]
currency: JPY
---
kind: entity
name: account
label: {en: Account, zh: 客户, ja: 顧客}
ownable: true
fields:
  name: {type: string, required: true, searchable: true}
  parent_account: {type: reference, to: account, on_delete: set_null}
  revenue: {type: rollup, of: deal, via: account, aggregate: sum, field: amount}
---
kind: entity
name: deal
fields:
  title: {type: string}
  account: {type: reference, to: account, required: true}
  amount: {type: money}
  probability: {type: percent, default: 10}
  weighted: {type: formula, returns: money, expression: "amount * probability / 100"}
  lines: {type: children, entity: deal_line}
---
kind: entity
name: deal_line
child: true
fields:
  deal: {type: reference, to: deal, on_delete: cascade}
  qty: {type: integer, default: 1}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def model(tmp_path: Path) -> Model:
    return load_packages([write(tmp_path / "shop.yaml", PACKAGE)])


def test_look_ups(model: Model) -> None:
    account = model.entity("account")
    assert account.label.get("ja") == "顧客"
    assert account.label.get("fr") == "Account"  # falls back to English
    assert account.title_field == "name"
    assert account.search_fields == ("name",)
    assert account.system_fields[-2:] == ("owner_id", "team_id")
    assert model.entity("deal").system_fields[-1] == "version"
    assert model.entity("deal").title_field == "title"
    assert model.entity("deal").field("probability").default == 10
    assert model.entity("deal").field("amount").scale == 2
    assert model.entity("deal").field("weighted").value_type == "decimal"
    assert model.entity("deal").field("weighted").computed
    assert [(e.name, f.name) for e, f in model.references_to("account")] == [
        ("account", "parent_account"),
        ("deal", "account"),
    ]
    assert [f.name for f in model.references_from("deal")] == ["account"]
    assert model.entity("deal_line").parent == "deal"
    assert model.entity("deal_line").parent_field == "deal"
    assert model.package.currency == "JPY"
    assert model.locales == ("en", "zh", "ja")
    assert [e.name for e in model] == ["account", "deal", "deal_line"]


def test_unknown_names_suggest_the_closest(model: Model) -> None:
    with pytest.raises(UnknownName, match=r"unknown entity 'acount' \(did you mean 'account'\?\)"):
        model.entity("acount")
    with pytest.raises(
        UnknownName, match=r"unknown field of deal 'amout' \(did you mean 'amount'\?\)"
    ):
        model.entity("deal").field("amout")
    with pytest.raises(KeyError):
        model.role("nobody")


def test_the_model_is_immutable(model: Model) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.hash = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.entities["x"] = model.entity("deal")  # type: ignore[index]
    with pytest.raises(TypeError):
        model.entity("deal").fields["x"] = model.entity("deal").field("amount")  # type: ignore[index]


def test_origins(model: Model) -> None:
    origin = model.origin("entity", "deal", "fields", "probability", "default")
    assert origin is not None
    assert (origin.package, origin.line, origin.col) == ("shop", 22, 41)
    assert model.origin("entity", "nothing") is None


def test_hash_is_stable_across_layout_and_sensitive_to_content(tmp_path: Path) -> None:
    one = load_packages([write(tmp_path / "one.yaml", PACKAGE)])
    # The same definitions split into files, with comments and keys in another order.
    folder = tmp_path / "split"
    (folder / "entities").mkdir(parents=True)
    header, *docs = PACKAGE.split("---\n")
    write(folder / "package.yaml", "# the shop\n" + header)
    for index, doc in enumerate(reversed(docs)):
        lines = doc.splitlines()
        write(folder / "entities" / f"{index}.yaml", "\n".join([lines[1], lines[0], *lines[2:]]))
    two = load_packages([folder])
    assert one.hash == two.hash
    assert len(one.hash) == 64
    changed = load_packages(
        [write(tmp_path / "three.yaml", PACKAGE.replace("default: 10", "default: 20"))]
    )
    assert changed.hash != one.hash
    reordered = PACKAGE.replace(
        "  title: {type: string}\n  account: {type: reference, to: account, required: true}\n",
        "  account: {type: reference, to: account, required: true}\n  title: {type: string}\n",
    )
    assert load_packages([write(tmp_path / "four.yaml", reordered)]).hash != one.hash


def test_json_round_trip(model: Model) -> None:
    text = model.to_json()
    again = model_from_json(text)
    assert again.hash == model.hash
    assert again.to_json() == text
    assert again.entity("deal").field("weighted").expression is not None
    assert (
        again.entity("deal")
        .field("weighted")
        .expression.evaluate({"amount": 200, "probability": 10})
        == 20
    )
    assert again.entity("deal_line").parent == "deal"
    assert again.origin("entity", "deal") is not None


def test_json_round_trip_keeps_each_documents_package(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", PACKAGE)
    overlay = write(
        tmp_path / "overlay.yaml",
        "kind: package\nname: shop_plus\nextends: shop\n---\n"
        "kind: entity\nname: coupon\nfields:\n  code: {type: string}\n",
    )
    model = load_packages([base, overlay])
    again = model_from_json(model.to_json())
    assert again.entity("coupon").package == "shop_plus"
    assert again.entity("deal").package == "shop"
    assert again.hash == model.hash
    # The overlay inherits the base's settings it does not restate.
    assert again.package.currency == "JPY" and again.package.locales == ("en", "zh", "ja")


def test_choice_descriptions_are_kept(tmp_path: Path) -> None:
    model = load_packages(
        [
            write(
                tmp_path / "p.yaml",
                "kind: package\nname: p\n---\nkind: entity\nname: lead\nfields:\n"
                "  source:\n    type: choice\n    options:\n"
                "      - {value: web, label: Web, description: {en: From the site, zh: 官网}}\n",
            )
        ]
    )
    choice = model.entity("lead").field("source").choice("web")
    assert choice.description is not None and choice.description.get("zh") == "官网"
