"""``public_pool.exempt``, ``settings.exempt_won`` and ``public_pool.recycle``: what
compiles, and each wrong name, type or expression reported at its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from metamodel import DefinitionError, Model, load_packages

BASE = """\
kind: package
name: shop
---
kind: entity
name: pool
fields:
  name: {type: string}
  keep_won: {type: boolean}
  limit: {type: integer}
  rules: {type: children, entity: pool_rule}
---
kind: entity
name: pool_rule
child: true
fields:
  pool: {type: reference, to: pool, on_delete: cascade}
  condition: {type: choice, options: [idle, not_won]}
  grade: {type: choice, options: [A, B]}
  region: {type: string}
  days: {type: integer}
  warn: {type: integer}
  label: {type: string}
  active: {type: boolean}
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string}
  grade: {type: choice, options: [A, B]}
  region: {type: integer}
  locked: {type: boolean}
  status: {type: string}
  touched_at: {type: datetime}
  signed_on: {type: date}
  tags: {type: multichoice, options: [a, b]}
  pool: {type: reference, to: pool, on_delete: set_null}
"""

GOOD = """\
public_pool:
  field: pool
  won: status == 'won'
  exempt: locked
  settings: {exempt_won: keep_won}
  recycle:
    rules: rules
    kind: condition
    days: days
    warn_days: warn
    active: active
    match: [grade]
    kinds:
      idle: {since: "coalesce(touched_at, created_at)"}
      not_won: {since: signed_on, unless: "status == 'won'"}
"""


def _load(tmp_path: Path, public_pool: str) -> Model:
    (tmp_path / "shop.yaml").write_text(BASE + textwrap.dedent(public_pool), encoding="utf-8")
    return load_packages([tmp_path / "shop.yaml"])


def _problems(tmp_path: Path, public_pool: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, public_pool)
    return [str(p) for p in caught.value.problems]


def test_a_recycle_block_compiles(tmp_path: Path) -> None:
    spec = _load(tmp_path, GOOD).entity("account").public_pool
    assert spec is not None and spec.exempt is not None and spec.exempt.source == "locked"
    assert spec.settings["exempt_won"] == "keep_won"
    recycle = spec.recycle
    assert recycle is not None
    assert (recycle.rules, recycle.kind, recycle.days, recycle.warn_days, recycle.active) == (
        "rules",
        "condition",
        "days",
        "warn",
        "active",
    )
    assert recycle.match == ("grade",)
    assert recycle.kinds["idle"].since.type == "datetime" and recycle.kinds["idle"].unless is None
    assert recycle.kinds["not_won"].since.type == "date"
    assert recycle.kinds["not_won"].unless is not None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rules: rules", "rules: rulez", "unknown field 'rulez' of entity 'pool'"),
        ("rules: rules", "rules: limit", "'limit' of 'pool' is of type integer: rules names"),
        ("kind: condition", "kind: label", "'label' of 'pool_rule' is of type string: this "
         "needs type choice"),
        ("days: days", "days: warn_dayz", "unknown field 'warn_dayz' of entity 'pool_rule'"),
        ("warn_days: warn", "warn_days: label", "'label' of 'pool_rule' is of type string: "
         "this needs type integer"),
        ("active: active", "active: days", "'days' of 'pool_rule' is of type integer: this "
         "needs type boolean"),
        ("match: [grade]", "match: [name]", "unknown field 'name' of entity 'pool_rule'"),
        ("match: [grade]", "match: [region]", "'region' is of type string in 'pool_rule' but "
         "integer in 'account'"),
        ("match: [grade]", "match: [tags]", "'tags' of 'account' is of type multichoice: a "
         "rule matches records on one stored value"),
        ("      not_won: {since: signed_on, unless: \"status == 'won'\"}\n", "",
         "no kind for the option not_won of pool_rule.condition"),
        ("idle:", "idel:", "'idel' is no option of pool_rule.condition (did you mean 'idle'?)"),
        ('since: "coalesce(touched_at, created_at)"', "since: name",
         "since gives a string, expected a date or a datetime"),
        ('since: "coalesce(touched_at, created_at)"', "since: touchd_at",
         "unknown field 'touchd_at'"),
        ("unless: \"status == 'won'\"", "unless: status", "expected a boolean"),
        ("exempt: locked", "exempt: lockd", "unknown field 'lockd'"),
        ("settings: {exempt_won: keep_won}", "settings: {exempt_won: limit}",
         "'limit' of 'pool' is of type integer: this needs type boolean"),
        ("  won: status == 'won'\n", "", "exempt_won keeps won records from returning, but "
         "nothing says which records are won"),
    ],
)  # fmt: skip
def test_each_mistake_is_reported_at_its_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new)
    problems = _problems(tmp_path, text)
    assert any(expected in p for p in problems), problems
    line = BASE.count("\n") + next(
        (i for i, row in enumerate(text.splitlines(), 1) if new and new.strip() in row), 0
    )
    if new:  # the problem points at the line that holds the mistake
        assert any(f"shop.yaml:{line}:" in p for p in problems), (line, problems)
    assert all("shop.yaml:" in p for p in problems), problems
