"""A form's live state: what a record being typed would look like, without writing it.

A create or edit form asks, as the user types, which fields its ``visible_when``,
``required_when`` and ``readonly_when`` make shown, required or locked, and what its
formulas and its rollups over the child rows being edited (a quote's lines and total)
come to. The answer uses the same evaluator, the same input coercion and the same formulas
as a save, so the form never disagrees with the server; the save checks again.

Rollups are SQL aggregates over stored rows; here they are taken over the rows sent, in
Python, with the rollup's filter evaluated on each row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from marshmallow import ValidationError as InputError

from metamodel import Entity, Expression, Field
from metamodel.expressions import Context

from ..context import Actor
from ..inputs import input_loader

if TYPE_CHECKING:
    from . import Records


@dataclass(frozen=True)
class FieldState:
    """Whether a field is shown, required and locked for the record as typed."""

    visible: bool = True
    required: bool = False
    readonly: bool = False


@dataclass(frozen=True)
class Preview:
    """A form's live state: field states, computed values, and per children field the
    computed values of each row (in the order sent)."""

    fields: Mapping[str, FieldState] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    children: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    #: per form section with a ``visible_when``: whether it is shown
    sections: Mapping[str, bool] = field(default_factory=dict)


def _coerce(records: Records, ent: Entity, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as a save would coerce it; what does not coerce is left out."""
    plain = {
        k: v
        for k, v in data.items()
        if k in ent.fields
        and ent.fields[k].type != "children"
        and not ent.fields[k].computed
        and v not in (None, "")
    }
    try:
        return dict(
            input_loader(records.model, ent.name, records.dialect).load(plain, partial=True)
        )
    except InputError as exc:
        valid = exc.valid_data
        return dict(valid) if isinstance(valid, Mapping) else {}


def _holds(expr: Expression | None, view: Mapping[str, Any], context: Context) -> bool | None:
    """The expression's truth for ``view``; None without an expression, False when it
    cannot be evaluated on a half-typed record."""
    if expr is None:
        return None
    try:
        return bool(expr.evaluate(view, context))
    except (TypeError, ValueError, ArithmeticError, KeyError, AttributeError):
        return False


def _out_of_sight(
    records: Records,
    conn: sa.Connection,
    actor: Actor,
    ent: Entity,
    record: dict[str, Any],
    sent: set[str],
) -> None:
    """Leave out the references sent to records the actor may not read (or that do not
    exist): nothing computed from them is shown, as a save refuses them."""
    names = {f.name for f in ent.fields_of_type("reference", "user", "team")} & sent
    wrong: dict[str, list[str]] = {}
    if names:
        records.validator.check_references(conn, actor, ent, record, wrong, names)
    for name in wrong:
        record.pop(name, None)


def _aggregate(kind: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if kind == "count":
        return len(values)
    if kind == "sum":
        return sum(present, Decimal(0))
    if not present:
        return None
    return min(present) if kind == "min" else max(present)


def preview(
    records: Records,
    actor: Actor,
    entity: str,
    data: Mapping[str, Any],
    *,
    base: Mapping[str, Any] | None = None,
) -> Preview:
    """The live state of a form for ``data`` (as posted, strings allowed) over ``base``
    (the stored record when editing)."""
    ent = records.entity(entity)
    context = actor.context()
    record: dict[str, Any] = dict(base or {})
    typed = _coerce(records, ent, data)
    record.update(typed)
    child_values: dict[str, list[dict[str, Any]]] = {}
    with records.reader.connect() as conn:
        _out_of_sight(records, conn, actor, ent, record, set(typed))
        if base is None:  # a new record: its defaults, as a save gives it
            records.validator.defaults(conn, ent, record, actor)
        for f in ent.fields_of_type("children"):
            sent = data.get(f.name)
            if not isinstance(sent, list):
                continue
            child = records.model.entity(f.children or "")
            rows = []
            for sent_row in (r for r in sent if isinstance(r, Mapping)):
                row = _coerce(records, child, sent_row)
                _out_of_sight(records, conn, actor, child, row, set(row))
                if "id" not in sent_row:  # a new row: its defaults, as a save gives it
                    records.validator.defaults(conn, child, row, actor)
                rows.append(row)
            records.computer.formulas(conn, child, rows, context)
            child_values[f.name] = rows
            for rollup in ent.fields_of_type("rollup"):
                if rollup.of != child.name or rollup.via != child.parent_field:
                    continue
                counted = [
                    r for r in rows if rollup.filter is None or _holds(rollup.filter, r, context)
                ]
                measure = [r.get(rollup.rollup_field or "") for r in counted]
                record[rollup.name] = _aggregate(rollup.aggregate or "count", measure)
        view = records.computer.view(conn, ent, record, context)
    values = {f.name: view.get(f.name) for f in ent.fields.values() if f.computed}
    computed = {
        name: [{f.name: r.get(f.name) for f in _computed(records, name, ent)} for r in rows]
        for name, rows in child_values.items()
    }
    sections = {
        name: _holds(condition, view, context) is not False
        for name, condition in ent.section_conditions.items()
    }
    return Preview(_states(ent, view, context), values, computed, sections)


def _states(ent: Entity, view: Mapping[str, Any], context: Context) -> dict[str, FieldState]:
    """The state of every field with a condition."""
    found = {}
    for f in ent.fields.values():
        conditions = (f.visible_when, f.required_when, f.readonly_when)
        if all(c is None for c in conditions):
            continue
        visible, required, readonly = (_holds(c, view, context) for c in conditions)
        found[f.name] = FieldState(
            visible is not False, f.required or bool(required), f.readonly or bool(readonly)
        )
    return found


def _computed(records: Records, name: str, ent: Entity) -> list[Field]:
    child = records.model.entity(ent.fields[name].children or "")
    return [f for f in child.fields.values() if f.type == "formula"]
