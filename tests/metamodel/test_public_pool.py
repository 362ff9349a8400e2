"""``public_pool`` definitions: what compiles, and each wrong name reported at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from metamodel import DefinitionError, load_packages

POOL = """\
kind: package
name: shop
---
kind: entity
name: pool
fields:
  name: {type: string}
  members: {type: user, multiple: true}
  admins: {type: user, multiple: true}
  owner_user: {type: user}
  limit: {type: integer}
  hide: {type: multichoice, options: [phone, secret]}
---
kind: entity
name: contact
ownable: true
fields:
  name: {type: string}
  account: {type: reference, to: account}
  other_account: {type: reference, to: account}
---
kind: entity
name: note
fields:
  account: {type: reference, to: account}
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string}
  phone: {type: string}
  pool: {type: reference, to: pool, on_delete: set_null}
  pooled_at: {type: datetime}
  previous_owner: {type: user}
"""


def _load(tmp_path: Path, public_pool: str, extra: str = "") -> object:
    text = POOL + textwrap.dedent(public_pool) + textwrap.dedent(extra)
    (tmp_path / "shop.yaml").write_text(text, encoding="utf-8")
    return load_packages([tmp_path / "shop.yaml"])


def _problems(tmp_path: Path, public_pool: str, extra: str = "") -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, public_pool, extra)
    return [str(p) for p in caught.value.problems]


def test_a_public_pool_compiles(tmp_path: Path) -> None:
    model = _load(
        tmp_path,
        """\
        public_pool:
          field: pool
          pooled_at: pooled_at
          previous_owner: previous_owner
          won: name == 'won'
          carry: [contact.account]
          settings: {members: members, admins: admins, daily_claim_limit: limit}
        """,
    )
    spec = model.entity("account").public_pool  # type: ignore[attr-defined]
    assert spec.pools == "pool" and spec.carry == (("contact", "account"),)
    assert dict(spec.settings) == {"members": "members", "admins": "admins",
                                   "daily_claim_limit": "limit"}  # fmt: skip
    assert spec.won.source == "name == 'won'"


@pytest.mark.parametrize(
    ("public_pool", "expected"),
    [
        ("public_pool: {field: name}", "'name' is not a reference field"),
        ("public_pool: {field: pol}", "unknown field 'pol' of entity 'account'"),
        (
            "public_pool: {field: pool, pooled_at: phone}",
            "'phone' of 'account' is of type string: this needs type datetime",
        ),
        (
            "public_pool: {field: pool, settings: {members: owner_user}}",
            "'owner_user' of 'pool' is of type user: this needs type user, multiple: true",
        ),
        (
            "public_pool: {field: pool, settings: {admins: limit}}",
            "'limit' of 'pool' is of type integer: this needs type user",
        ),
        (
            "public_pool: {field: pool, settings: {hidden_fields: hide}}",
            "the option 'secret' of pool.hide names no field of 'account'",
        ),
        ("public_pool: {field: pool, carry: [contact]}", "'contact' has 2 references to"),
        ("public_pool: {field: pool, carry: [note]}", "'note' has no owner to carry"),
        (
            "public_pool: {field: pool, carry: [contact.name]}",
            "'name' of 'contact' is no reference to 'account'",
        ),
        ("public_pool: {field: pool, won: nme == 1}", "unknown field 'nme'"),
    ],
)
def test_each_wrong_name_is_reported(tmp_path: Path, public_pool: str, expected: str) -> None:
    problems = _problems(tmp_path, public_pool + "\n")
    assert any(expected in p for p in problems), problems
    assert all("shop.yaml:" in p for p in problems), problems  # file:line


def test_an_entity_without_owner_has_no_pool(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "",
        """\
        ---
        kind: entity
        name: lead
        fields:
          pool: {type: reference, to: pool}
        public_pool: {field: pool}
        """,
    )
    assert any("the entity must be ownable" in p for p in problems), problems


def test_return_to_pool_needs_an_entity_with_a_pool(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "",
        """\
        ---
        kind: automation
        name: recycle
        entity: contact
        trigger: {schedule: "0 6 * * *"}
        actions:
          - type: return_to_pool
        """,
    )
    assert any("entity 'contact' has no public pool" in p for p in problems), problems
