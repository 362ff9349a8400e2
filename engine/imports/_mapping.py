"""Which column fills which field: found from headers, or given (and saved as a template).

A header names a field by its name or by its label in any of the Model's languages
(``Account name``, ``客户名称``, ``顧客名``), compared without case, width or spaces; the
owner and team by ``owner``/``负责人``/``担当者`` and ``team``/``团队``/``チーム``. A
header that names no field of the entity may name a field of its child rows (a quote
file's ``Product`` and ``Quantity`` columns fill the quote's lines), or be written
``lines.product``. A column naming a field the user may not write is reported here, before
any row is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from metamodel import Entity, Model

from ..fieldtypes import writable
from ..permissions import Grant
from ._convert import fold

OWNER_WORDS = {
    "owner_id": ("owner", "owner_id", "负责人", "所有者", "担当者", "所有者id"),
    "team_id": ("team", "team_id", "团队", "所属团队", "チーム"),
    "id": ("id", "record id", "记录id", "レコードid"),
}


@dataclass
class Column:
    """One column of the file: its header and the field it fills (``lines.product`` for a
    child row's field), or None when it is left out; ``problem`` says why it cannot be."""

    index: int
    header: str
    field: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"column": self.index + 1, "header": self.header,
                                    "field": self.field}  # fmt: skip
        if self.problem:
            found["problem"] = self.problem
        return found


@dataclass
class Mapping_:
    columns: list[Column] = field(default_factory=list)

    @property
    def problems(self) -> list[Column]:
        return [c for c in self.columns if c.problem]

    def by_field(self) -> dict[str, Column]:
        return {c.field: c for c in self.columns if c.field and not c.problem}

    def to_dict(self) -> list[dict[str, object]]:
        return [c.to_dict() for c in self.columns]


def _names(entity: Entity) -> dict[str, str]:
    """Folded name or label → field name, for the fields a file may fill."""
    names: dict[str, str] = {}
    for f in entity.fields.values():
        if f.type == "children":
            continue
        for label in (f.name, *f.label.texts.values()):
            names.setdefault(fold(label), f.name)
    system = ("owner_id", "team_id", "id") if entity.ownable else ("id",)
    for name in system:
        for word in OWNER_WORDS[name]:
            names.setdefault(fold(word), name)
    return names


def suggest(model: Model, entity: Entity, headers: Sequence[str]) -> dict[str, str | None]:
    """The field each header names (None: none), parent fields first, then child rows'."""
    own = _names(entity)
    children = [
        (f.name, model.entity(f.children or ""))
        for f in entity.fields.values()
        if f.type == "children"
    ]
    child_names = [(name, _names(child)) for name, child in children]
    found: dict[str, str | None] = {}
    for header in headers:
        key = fold(header)
        target: str | None = own.get(key)
        if target is None and "." in header:
            prefix, _, rest = header.partition(".")
            for name, names in child_names:
                if fold(prefix) == fold(name) and fold(rest) in names:
                    target = f"{name}.{names[fold(rest)]}"
        if target is None:
            for name, names in child_names:
                if key in names and names[key] != "id":
                    target = f"{name}.{names[key]}"
                    break
        found[header] = target
    return found


def build(
    model: Model,
    entity: Entity,
    headers: Sequence[str],
    given: Mapping[str, str | None] | None,
    grants: Mapping[str, Grant],
) -> Mapping_:
    """The mapping of ``headers``: ``given`` (header → field, None to leave a column out)
    over the suggestion; each column checked against the entity and the user's grants
    (``create`` and ``update`` of the entity, and of each child entity by children field)."""
    suggested = suggest(model, entity, headers)
    result = Mapping_()
    seen: dict[str, str] = {}
    for index, header in enumerate(headers):
        target = suggested.get(header)
        if given is not None and header in given:
            target = given[header] or None
        column = Column(index, header, target)
        if target is not None:
            column.problem = _problem(model, entity, target, grants)
            if column.problem is None and target in seen:
                column.problem = f"the column '{seen[target]}' fills {target} already"
            seen.setdefault(target, header)
        result.columns.append(column)
    return result


def _problem(model: Model, entity: Entity, target: str, grants: Mapping[str, Grant]) -> str | None:
    owner, _, name = target.rpartition(".")
    here = entity
    grant_key = ""
    if owner:
        parent = entity.fields.get(owner)
        if parent is None or parent.type != "children":
            return f"unknown field '{target}'"
        here = model.entity(parent.children or "")
        grant_key = owner
    if name in ("id", "owner_id", "team_id"):
        if name != "id" and not here.ownable:
            return f"{here.name} has no owner"
        return None
    found = here.fields.get(name)
    create = grants.get(f"{grant_key}:create")
    update = grants.get(f"{grant_key}:update")
    hidden = (create.hidden if create else frozenset()) & (update.hidden if update else frozenset())
    if found is None or name in hidden:
        return f"unknown field '{target}'"
    if found.type == "autonumber":
        return None  # a key to find records by, never written
    if found.computed or not writable(found):
        return f"{target} is computed: it cannot be imported"
    if found.readonly:
        return f"{target} is read-only"
    locked = [g for g in (create, update) if g is not None and name in g.readonly]
    if locked and len(locked) == len([g for g in (create, update) if g is not None]):
        return f"you may not write {target} (read-only for your role)"
    return None
