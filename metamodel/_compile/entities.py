"""Entities: their names, fields, search fields, validations, duplicate rules, indexes,
sort, views (one check per view kind, :data:`~metamodel.views.VIEW_KINDS`) and the
parent–child links of children fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import article, did_you_mean
from .._merge import Document
from .._yaml import Location
from ..expressions import Expression
from ..fieldtypes import FIELD_TYPES
from ..model import (
    POOL_SETTINGS,
    DuplicateRule,
    Entity,
    Field,
    Index,
    Label,
    PublicPool,
    Validation,
    freeze,
    parse_sort,
)
from ..views import VIEW_KINDS, form_sections
from . import recycle
from ._context import Checker, cycles, unless_problems
from .fields import check_field_name, check_formula_cycles, compile_field

RESERVED_ENTITIES = frozenset({"user", "team", "role", "permission", "session", "token", "schema"})
TITLE_NAMES = ("name", "title", "subject", "number")
#: Field types whose values are computed or kept elsewhere: no duplicate rule compares them.
UNSTORED = frozenset({"formula", "rollup", "children"})


class _ViewContext:
    """A :class:`~metamodel.views.ViewContext` for one entity document."""

    def __init__(self, checker: Checker, doc: Document) -> None:
        self.checker = checker
        self.doc = doc
        self.entity = doc.name

    def error(self, path: Location, message: str, hint: str = "") -> None:
        self.checker.error(self.doc, path, message, hint)

    def origin(self, path: Location) -> str:
        return str(self.doc.origin(path))

    def known_field(
        self, path: Location, name: Any, *, entity: str = "", system: bool = True
    ) -> bool:
        return self.checker.known_field(self.doc, path, entity or self.entity, name, system)

    def known_entity(self, path: Location, name: Any) -> bool:
        return self.checker.known_entity(self.doc, path, name)

    def known_path(self, path: Location, dotted: str) -> str | None:
        return self.checker.known_path(self.doc, path, self.entity, dotted)

    def expression(self, path: Location, source: Any) -> None:
        self.checker.expression(self.doc, path, source, self.entity)

    def field_spec(self, name: str, *, entity: str = "") -> Mapping[str, Any] | None:
        return self.checker.field_spec(entity or self.entity, name)

    def value_type(self, name: str) -> str:
        return self.checker.value_type(self.entity, name)

    def unique_names(self, path: Location, items: Any, what: str) -> None:
        self.checker.unique_names(self.doc, path, items, what)


def check_entity_name(checker: Checker, doc: Document) -> None:
    name = doc.name
    if name in RESERVED_ENTITIES or name.startswith("heddle"):
        checker.error(
            doc,
            ("name",),
            f"'{name}' is reserved for the platform's own tables",
            f"choose another name, such as '{doc.package}_{name}'",
        )
    elif "__" in name:
        message = f"'{name}' may not contain '__' (the API uses it for operators)"
        checker.error(doc, ("name",), message)


@unless_problems
def compile_entity(checker: Checker, doc: Document, prefix: str) -> Entity | None:
    value = doc.value
    name = doc.name
    check_entity_name(checker, doc)
    fields: dict[str, Field] = {}
    for field_name, spec in value["fields"].items():
        if check_field_name(checker, doc, field_name):
            fields[field_name] = compile_field(checker, doc, field_name, spec)
    check_formula_cycles(checker, doc, fields)
    if "title_field" in value:
        checker.known_field(doc, ("title_field",), name, value["title_field"])
    search = _search_fields(checker, doc, fields)
    validations = _validations(checker, doc)
    rules = _duplicate_rules(checker, doc)
    pool = _public_pool(checker, doc)
    indexes = _indexes(checker, doc)
    sort = parse_sort(value.get("default_sort"))
    for sort_key in sort:
        checker.known_path(doc, ("default_sort",), name, sort_key.field)
    context = _ViewContext(checker, doc)
    for kind in VIEW_KINDS.values():
        if value.get(kind.name) and kind.check is not None:
            kind.check(context, value[kind.name])
    title = value.get("title_field") or next(
        (n for n in TITLE_NAMES if n in fields),
        next(
            (
                f.name
                for f in fields.values()
                if FIELD_TYPES[f.type].value_type == "string"
                and FIELD_TYPES[f.type].category == "text"
            ),
            None,
        ),
    )
    label = Label.of(value.get("label"), name.replace("_", " ").capitalize())
    return Entity(
        name=name,
        label=label,
        plural_label=Label.of(value.get("plural_label") or value.get("label"), str(label)),
        package=doc.package,
        fields=MappingProxyType(fields),
        description=Label.of(value["description"]) if "description" in value else None,
        icon=value.get("icon"),
        table=value.get("table") or f"{prefix}{name}",
        title_field=title,
        search_fields=tuple(search),
        ownable=bool(value.get("ownable", False)),
        child=bool(value.get("child", False)),
        audit=bool(value.get("audit", True)),
        validations=tuple(validations),
        duplicate_rules=tuple(rules),
        public_pool=pool,
        indexes=tuple(indexes),
        default_sort=sort,
        form=freeze(value.get("form")),
        section_conditions=MappingProxyType(_section_conditions(checker, doc, value.get("form"))),
        list_views=freeze(value.get("list_views", [])),
        kanban=freeze(value.get("kanban")),
        calendar=freeze(value.get("calendar")),
        views=MappingProxyType(
            {kind: freeze(value[kind]) for kind in VIEW_KINDS if value.get(kind)}
        ),
    )


def _section_conditions(checker: Checker, doc: Document, form: Any) -> dict[str, Expression]:
    """The form's sections' ``visible_when``, compiled (reported with file:line if wrong)."""
    found: dict[str, Expression] = {}
    if not isinstance(form, Mapping):
        return found
    for where, section in form_sections(form):
        condition = checker.expression(doc, (*where, "visible_when"), section.get("visible_when"),
                                       doc.name)  # fmt: skip
        if condition is not None:
            found[str(section["name"])] = condition
    return found


def _search_fields(checker: Checker, doc: Document, fields: Mapping[str, Field]) -> list[str]:
    value, name = doc.value, doc.name
    search = list(value.get("search_fields") or ())
    for index, field_name in enumerate(search):
        where = ("search_fields", index)
        if checker.known_field(doc, where, name, field_name, allow_system=False):
            kind = value["fields"][field_name]["type"]
            if not FIELD_TYPES[kind].takes("searchable"):
                checker.error(doc, where, f"cannot search {article(kind)} field '{field_name}'")
    return search + [f.name for f in fields.values() if f.searchable and f.name not in search]


def _validations(checker: Checker, doc: Document) -> list[Validation]:
    name = doc.name
    specs = doc.value.get("validations", ())
    checker.unique_names(doc, ("validations",), specs, "validation")
    found = []
    for index, spec in enumerate(specs):
        where = ("validations", index)
        rule = checker.expression(doc, (*where, "rule"), spec["rule"], name)
        when = checker.expression(doc, (*where, "when"), spec.get("when"), name)
        for i, field_name in enumerate(spec.get("fields", ())):
            checker.known_field(doc, (*where, "fields", i), name, field_name)
        if rule is not None:
            message = Label.of(spec["message"])
            found.append(
                Validation(spec["name"], rule, message, when, tuple(spec.get("fields", ())))
            )
    return found


def _duplicate_rules(checker: Checker, doc: Document) -> list[DuplicateRule]:
    specs = doc.value.get("duplicate_rules", ())
    checker.unique_names(doc, ("duplicate_rules",), specs, "duplicate rule")
    found = []
    for index, spec in enumerate(specs):
        where = ("duplicate_rules", index)
        for i, field_name in enumerate(spec["fields"]):
            if (
                checker.known_field(
                    doc, (*where, "fields", i), doc.name, field_name, allow_system=False
                )
                and checker.field_type(doc.name, field_name) in UNSTORED
            ):
                kind = checker.field_type(doc.name, field_name)
                checker.error(
                    doc,
                    (*where, "fields", i),
                    f"'{field_name}' is {article(kind)} field: duplicate rules compare "
                    "the values records store",
                )
        for i, other in enumerate(spec.get("also_check", ())):
            if checker.known_entity(doc, (*where, "also_check", i), other):
                _meets(checker, doc, (*where, "also_check", i), spec, other)
        pool = spec.get("pool")
        if (
            pool is not None
            and checker.known_field(doc, (*where, "pool"), doc.name, pool, allow_system=False)
            and checker.field_type(doc.name, pool) != "reference"
        ):
            checker.error(
                doc,
                (*where, "pool"),
                f"'{pool}' is not a reference field: pool names the reference field "
                "that says which public pool holds a record",
            )
        fuzzy = spec.get("fuzzy")
        found.append(
            DuplicateRule(
                spec["name"],
                Label.of(spec.get("label"), spec["name"]),
                tuple(spec["fields"]),
                tuple(spec.get("normalize", ())),
                spec.get("action", "warn"),
                spec.get("match", "all"),
                tuple(spec.get("also_check", ())),
                None if fuzzy is None else float(fuzzy),
                pool,
            )
        )
    return found


def _public_pool(checker: Checker, doc: Document) -> PublicPool | None:
    """The entity's ``public_pool``, each name it gives checked against its fields and the
    pools' (docs/pools.md)."""
    spec = doc.value.get("public_pool")
    if not isinstance(spec, Mapping):
        return None
    name, at = doc.name, ("public_pool",)
    problems = len(checker.problems)
    if not doc.value.get("ownable"):
        checker.error(doc, at, "a public pool holds records without an owner: the entity "
                      "must be ownable", "add 'ownable: true'", at_key=True)  # fmt: skip
    pools = ""
    if checker.known_field(doc, (*at, "field"), name, spec["field"], allow_system=False):
        field_spec = checker.field_spec(name, spec["field"]) or {}
        if field_spec.get("type") != "reference":
            checker.error(doc, (*at, "field"), f"'{spec['field']}' is not a reference field: "
                          "field names the reference to the pool that holds a record")  # fmt: skip
        else:
            pools = str(field_spec.get("to"))
    for key, kind in (("pooled_at", "datetime"), ("claimed_at", "datetime"),
                      ("previous_owner", "user")):  # fmt: skip
        _pool_field(checker, doc, (*at, key), name, spec.get(key), kind, False)
    won = checker.expression(doc, (*at, "won"), spec.get("won"), name)
    carry = [_carried(checker, doc, (*at, "carry", i), item)
             for i, item in enumerate(spec.get("carry", ()))]  # fmt: skip
    settings = dict(spec.get("settings") or {})
    for key, field_name in settings.items():
        kind, multiple = POOL_SETTINGS[key]
        where = (*at, "settings", key)
        if (
            pools
            and _pool_field(checker, doc, where, pools, field_name, kind, multiple)
            and key == "hidden_fields"
        ):
            _hidden_choices(checker, doc, where, pools, field_name)
    if "exempt_won" in settings and won is None and "won" not in spec:
        checker.error(doc, (*at, "settings", "exempt_won"), "exempt_won keeps won records "
                      "from returning, but nothing says which records are won",
                      "add 'won: <expression>' to public_pool", at_key=True)  # fmt: skip
    exempt = recycle.exempt(checker, doc, spec)
    rules = recycle.recycle(checker, doc, spec, pools)
    if len(checker.problems) > problems:
        return None
    return PublicPool(
        field=spec["field"],
        pools=pools,
        pooled_at=spec.get("pooled_at"),
        previous_owner=spec.get("previous_owner"),
        claimed_at=spec.get("claimed_at"),
        won=won,
        carry=tuple(c for c in carry if c is not None),
        settings=MappingProxyType(settings),
        exempt=exempt,
        recycle=rules,
    )


def _pool_field(
    checker: Checker,
    doc: Document,
    path: Location,
    entity: str,
    name: Any,
    kind: str,
    multiple: bool,
) -> bool:
    """``name`` is a field of ``entity`` of type ``kind`` (several values if ``multiple``)."""
    if name is None or not checker.known_field(doc, path, entity, name, allow_system=False):
        return False
    spec = checker.field_spec(entity, name) or {}
    if spec.get("type") == kind and bool(spec.get("multiple")) == multiple:
        return True
    given = str(spec.get("type")) + (", multiple" if spec.get("multiple") else "")
    wanted = kind + (", multiple: true" if multiple else "")
    checker.error(doc, path, f"'{name}' of '{entity}' is of type {given}: this needs type "
                  f"{wanted}")  # fmt: skip
    return False


def _hidden_choices(
    checker: Checker, doc: Document, path: Location, pools: str, field_name: str
) -> None:
    """The options of the pools' hidden-fields choice must name fields of the entity."""
    options = (checker.field_spec(pools, field_name) or {}).get("options", ())
    fields = checker.entity_docs.get(doc.name, {}).get("fields", {})
    for option in options:
        value = option.get("value") if isinstance(option, Mapping) else option
        if value not in fields:
            checker.error(doc, path, f"the option '{value}' of {pools}.{field_name} names no "
                          f"field of '{doc.name}': each option is a field to hide while a "
                          "record is pooled", did_you_mean(str(value), fields))  # fmt: skip


def _carried(checker: Checker, doc: Document, path: Location, item: str) -> tuple[str, str] | None:
    """``contact`` or ``contact.account``: an ownable entity and its reference to this one."""
    entity, _, via = item.partition(".")
    if not checker.known_entity(doc, path, entity):
        return None
    fields = checker.entity_docs[entity].get("fields", {})
    links = [n for n, f in fields.items()
             if f.get("type") == "reference" and f.get("to") == doc.name]  # fmt: skip
    if not checker.entity_docs[entity].get("ownable"):
        checker.error(doc, path, f"'{entity}' has no owner to carry: carry names ownable "
                      "entities")  # fmt: skip
        return None
    if via:
        if via not in links:
            checker.error(doc, path, f"'{via}' of '{entity}' is no reference to '{doc.name}'",
                          did_you_mean(via, links) or f"its references to {doc.name}: "
                          + (", ".join(links) or "none"))  # fmt: skip
            return None
        return entity, via
    if len(links) != 1:
        checker.error(doc, path, f"'{entity}' has {len(links) or 'no'} reference"
                      f"{'' if len(links) == 1 else 's'} to '{doc.name}'"
                      + (f" ({', '.join(links)})" if links else ""),
                      "say which: entity.reference" if links else "")  # fmt: skip
        return None
    return entity, links[0]


def _key_kind(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], int]:
    """What decides whether two rules' keys can meet (the engine's ``MatchRule.key_space``):
    the normalizers in order, and how many fields one key joins (``match: all`` over
    several fields), 1 for a key per field."""
    fields = len(spec.get("fields", ()))
    joined = fields if spec.get("match", "all") == "all" and fields > 1 else 1
    return tuple(spec.get("normalize", ())), joined


def _meets(
    checker: Checker, doc: Document, path: Location, spec: Mapping[str, Any], other: str
) -> None:
    """``also_check: [other]`` needs a rule of ``other`` whose keys can meet this rule's:
    the same normalizers in the same order, and as many fields joined in one key."""
    kind = _key_kind(spec)
    rules = checker.entity_docs.get(other, {}).get("duplicate_rules", ())
    if any(isinstance(r, Mapping) and _key_kind(r) == kind for r in rules):
        return
    normalize = ", ".join(kind[0]) or "none"
    joined = "one key per field" if kind[1] == 1 else f"one key joining {kind[1]} fields"
    names = ", ".join(str(r.get("name")) for r in rules if isinstance(r, Mapping))
    checker.error(
        doc,
        path,
        f"entity '{other}' has no duplicate rule whose keys can meet this rule's "
        f"(normalize [{normalize}], {joined}), so also_check would find nothing",
        f"give {other} a rule with the same normalize list, in the same order"
        + (f"; its rules: {names}" if names else ""),
    )


def _indexes(checker: Checker, doc: Document) -> list[Index]:
    specs = doc.value.get("indexes", ())
    checker.unique_names(doc, ("indexes",), specs, "index")
    found = []
    for index, spec in enumerate(specs):
        for i, field_name in enumerate(spec["fields"]):
            checker.known_field(doc, ("indexes", index, "fields", i), doc.name, field_name)
        found.append(Index(spec["name"], tuple(spec["fields"]), bool(spec.get("unique"))))
    return found


def link_children(checker: Checker, entities: dict[str, Entity]) -> None:
    """Check children fields and tell each child entity its parent."""
    parents: dict[str, tuple[str, str]] = {}
    claimed: set[str] = set()  # named by some children field, linked or not
    graph: dict[str, set[str]] = {}
    for doc in checker.docs("entity").values():
        for field_name, spec in doc.value["fields"].items():
            if spec.get("type") != "children":
                continue
            child = spec["entity"]
            graph.setdefault(doc.name, set()).add(child)
            claimed.add(child)
            via = _child_link(checker, doc, field_name, spec, parents)
            if via is None:
                continue
            parents[child] = (doc.name, field_name)
            for index, column in enumerate(spec.get("columns", ())):
                checker.known_field(doc, ("fields", field_name, "columns", index), child, column)
            if child in entities:
                entities[child] = dataclasses.replace(
                    entities[child], parent=doc.name, parent_field=via
                )
    for cycle in cycles(graph):
        doc = checker.docs("entity")[cycle[0]]
        field_name = next(
            n
            for n, s in doc.value["fields"].items()
            if s.get("type") == "children" and s.get("entity") in cycle
        )
        checker.error(
            doc,
            ("fields", field_name, "entity"),
            f"children form a cycle: {' → '.join([*cycle, cycle[0]])}",
        )
    for name, value in checker.entity_docs.items():
        if value.get("child") and name not in claimed:
            checker.error(
                checker.docs("entity")[name],
                ("child",),
                f"child entity '{name}' is not used by any children field",
                "add a field of type children with this entity, or remove 'child: true'",
            )


def check_required_cycles(checker: Checker) -> None:
    """Entities whose required references go round in a circle (A requires a B, B an A):
    no first record of any of them can ever be saved."""
    graph: dict[str, dict[str, str]] = {}  # entity → {entity it requires: via field}
    for doc in checker.docs("entity").values():
        for field_name, spec in doc.value["fields"].items():
            target = spec.get("to")
            if (
                spec.get("type") == "reference"
                and spec.get("required") is True
                and "default" not in spec
                and target in checker.entity_docs
            ):
                graph.setdefault(doc.name, {}).setdefault(target, field_name)
    for cycle in cycles({name: set(targets) for name, targets in graph.items()}):
        steps = [
            f"{name}.{graph[name][cycle[(i + 1) % len(cycle)]]}" for i, name in enumerate(cycle)
        ]
        first = graph[cycle[0]][cycle[1 % len(cycle)]]
        checker.error(
            checker.docs("entity")[cycle[0]],
            ("fields", first, "required"),
            f"required references form a cycle ({' → '.join([*steps, cycle[0]])}):"
            " no first record can ever be saved",
            "make one of them optional: drop its 'required', or use 'required_when'",
        )


def _child_link(
    checker: Checker,
    doc: Document,
    field_name: str,
    spec: Mapping[str, Any],
    parents: Mapping[str, tuple[str, str]],
) -> str | None:
    """The reference of the child entity to ``doc``'s entity, or None (reported)."""
    path = ("fields", field_name)
    child = spec["entity"]
    if not checker.known_entity(doc, (*path, "entity"), child):
        return None
    child_doc = checker.entity_docs[child]
    if not child_doc.get("child"):
        checker.error(
            doc,
            (*path, "entity"),
            f"'{child}' is not a child entity",
            f"add 'child: true' to entity '{child}'",
        )
        return None
    if child in parents:
        owner = parents[child]
        message = f"child entity '{child}' already belongs to {owner[0]}.{owner[1]}"
        checker.error(doc, (*path, "entity"), message)
        return None
    links = [
        n
        for n, s in child_doc["fields"].items()
        if s.get("type") == "reference" and s.get("to") == doc.name
    ]
    via = spec.get("via")
    if via is None and len(links) == 1:
        via = links[0]
    if via is None:
        checker.error(
            doc,
            path,
            f"child entity '{child}' needs one reference field to '{doc.name}'"
            + (f" (it has {len(links)}: name one with 'via')" if links else ""),
            ""
            if links
            else f"add e.g. '{doc.name}: {{type: reference, to: {doc.name}, "
            f"on_delete: cascade}}' to '{child}'",
        )
        return None
    if via not in links:
        checker.error(
            doc,
            (*path, "via"),
            f"'{child}.{via}' is not a reference to '{doc.name}'",
            did_you_mean(via, links),
        )
        return None
    return str(via)
