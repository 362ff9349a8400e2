"""``public_pool.exempt`` and ``public_pool.recycle``: how the pools' recycle rules return
owned records to them, each name checked against the pools, their rules and the record."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import article, did_you_mean
from .._merge import Document
from .._yaml import Location
from ..expressions import TEMPORAL, Expression
from ..model import Recycle, RecycleKind
from ._context import Checker

#: the rule fields ``recycle`` names, with the type each needs (None: optional)
RULE_FIELDS = (("kind", "choice", True), ("days", "integer", True),
               ("warn_days", "integer", False), ("active", "boolean", False))  # fmt: skip


#: field types a rule cannot match a record on: several values, or none stored
UNMATCHED = frozenset({"multichoice", "children", "formula", "rollup", "file"})


def exempt(checker: Checker, doc: Document, spec: Mapping[str, Any]) -> Expression | None:
    return checker.expression(doc, ("public_pool", "exempt"), spec.get("exempt"), doc.name)


def recycle(checker: Checker, doc: Document, spec: Mapping[str, Any], pools: str) -> Recycle | None:
    """The ``recycle`` block of a public pool whose pools are ``pools`` ('' when the pool
    reference is wrong: only the record's expressions are checked then)."""
    block = spec.get("recycle")
    if not isinstance(block, Mapping):
        return None
    at: Location = ("public_pool", "recycle")
    problems = len(checker.problems)
    rule_entity = _rule_entity(checker, doc, at, pools, block["rules"]) if pools else ""
    names: dict[str, str | None] = {}
    for key, kind, required in RULE_FIELDS:
        name = block.get(key)
        names[key] = name
        if rule_entity and name is not None:
            _rule_field(checker, doc, (*at, key), rule_entity, name, kind)
        elif required and name is None:  # pragma: no cover - the schema requires them
            checker.error(doc, at, f"recycle needs '{key}'")
    for index, name in enumerate(block.get("match", ())):
        _match(checker, doc, (*at, "match", index), rule_entity, name)
    kinds = _kinds(checker, doc, at, block.get("kinds") or {}, rule_entity, names["kind"])
    if len(checker.problems) > problems:
        return None
    return Recycle(
        rules=block["rules"],
        kind=block["kind"],
        days=block["days"],
        kinds=MappingProxyType(kinds),
        warn_days=block.get("warn_days"),
        active=block.get("active"),
        match=tuple(block.get("match", ())),
    )


def _rule_entity(checker: Checker, doc: Document, at: Location, pools: str, name: Any) -> str:
    """The entity of the pools' children field ``name`` that holds the rules."""
    if not checker.known_field(doc, (*at, "rules"), pools, name, allow_system=False):
        return ""
    field = checker.field_spec(pools, name) or {}
    if field.get("type") != "children":
        checker.error(doc, (*at, "rules"), f"'{name}' of '{pools}' is of type "
                      f"{field.get('type')}: rules names the pools' children field holding "
                      "their recycle rules")  # fmt: skip
        return ""
    child = str(field.get("entity"))
    return child if child in checker.entity_docs else ""


def _rule_field(
    checker: Checker, doc: Document, path: Location, rules: str, name: Any, kind: str
) -> None:
    if not checker.known_field(doc, path, rules, name, allow_system=False):
        return
    found = (checker.field_spec(rules, name) or {}).get("type")
    if found != kind:
        checker.error(doc, path, f"'{name}' of '{rules}' is of type {found}: this needs "
                      f"type {kind}")  # fmt: skip


def _match(checker: Checker, doc: Document, path: Location, rules: str, name: Any) -> None:
    """A stored field of the record with one value, and a field of the rule of its type."""
    if not checker.known_field(doc, path, doc.name, name, allow_system=False):
        return
    mine = checker.field_type(doc.name, name)
    if mine in UNMATCHED:
        checker.error(doc, path, f"'{name}' of '{doc.name}' is of type {mine}: a rule "
                      "matches records on one stored value (a choice, a number…)")  # fmt: skip
        return
    if not rules or not checker.known_field(doc, path, rules, name, allow_system=False):
        return
    theirs = checker.field_type(rules, name)
    if mine != theirs:
        checker.error(doc, path, f"'{name}' is of type {theirs} in '{rules}' but {mine} in "
                      f"'{doc.name}': a rule's {name} is compared with the record's")  # fmt: skip


def _kinds(
    checker: Checker,
    doc: Document,
    at: Location,
    kinds: Mapping[str, Any],
    rules: str,
    kind_field: str | None,
) -> dict[str, RecycleKind]:
    """Each option of the rule's kind field, with the moment its days count from."""
    found: dict[str, RecycleKind] = {}
    options: list[str] = []
    spec = checker.field_spec(rules, kind_field) if rules and kind_field else None
    if spec is not None and spec.get("type") == "choice":
        options = [o["value"] if isinstance(o, Mapping) else str(o)
                   for o in spec.get("options", ())]  # fmt: skip
        missing = [o for o in options if o not in kinds]
        if missing:
            checker.error(doc, (*at, "kinds"), f"no kind for the option"
                          f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} of "
                          f"{rules}.{kind_field}: a rule of that kind would never apply",
                          f"add {missing[0]}: {{since: ...}}")  # fmt: skip
    for name, entry in kinds.items():
        path = (*at, "kinds", name)
        if options and name not in options:
            checker.error(doc, path, f"'{name}' is no option of {rules}.{kind_field}",
                          did_you_mean(name, options) or f"its options: {', '.join(options)}",
                          at_key=True)  # fmt: skip
            continue
        since = checker.expression(doc, (*path, "since"), entry["since"], doc.name, expect=None)
        if since is not None and since.type not in TEMPORAL:
            checker.error(doc, (*path, "since"), f"since gives {article(since.type)}, "
                          "expected a date or a datetime: the days count from it")  # fmt: skip
            since = None
        unless = checker.expression(doc, (*path, "unless"), entry.get("unless"), doc.name)
        if since is not None:
            found[name] = RecycleKind(since, unless)
    return found
