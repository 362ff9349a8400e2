"""What a screen shows, built from the Model and the data the platform's views hand over.

The views (``heddle.ui``) query the engine, check permissions and collect errors; they then
call these builders with the Model's objects, the rows they read and what the user may
see or change. The builders resolve labels in the user's locale and lay the fields out as
the entity's form and list views say; the templates only draw the result::

    >>> tabs = form_tabs(model.entity("account"), "zh", record=row, titles=titles)
    >>> tabs[0].sections[0].label, tabs[0].sections[0].slots[0].label
    ('基本信息', '客户名称')

Nothing here queries a database or decides a permission.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from metamodel import Entity, Field, Label
from metamodel.model import SortKey, parse_sort

#: Field types a screen never edits: the platform computes them.
COMPUTED_TYPES = frozenset({"autonumber", "formula", "rollup"})
#: Field types a form shows but does not edit: what the engine computes.
SHOWN_ONLY = COMPUTED_TYPES


@dataclass(frozen=True)
class Option:
    """One choice of a select: its value, its label in the user's locale, its colour."""

    value: str
    label: str
    color: str | None = None
    selected: bool = False


@dataclass(frozen=True)
class ChildTable:
    """Inline child rows (quote lines) as a small table."""

    columns: tuple[Slot, ...]  # headers: label and type only
    rows: tuple[tuple[Slot, ...], ...]


@dataclass(frozen=True)
class ChildRow:
    """One child row on a form: its id (None for a new one), its form position
    (``__i__`` in the blank row new ones are copied from) and a slot per column."""

    id: int | None
    index: str
    cells: tuple[Slot, ...]
    errors: tuple[str, ...] = ()  # the row's errors that belong to no column


@dataclass(frozen=True)
class ChildEditor:
    """Child rows edited inline on the parent's form (a quote's lines): each cell posts
    as ``<field>-<index>-<column>``."""

    name: str
    columns: tuple[Slot, ...]  # headers: label and type only
    rows: tuple[ChildRow, ...]
    blank: ChildRow


@dataclass(frozen=True)
class Slot:
    """One field as a widget draws it: on a form, a record page or in a list cell.

    ``value`` is the stored value; ``text`` what the form control holds (the value as
    text, or what the user typed when the form comes back with errors); ``title`` a
    reference's title (a list of titles for several).
    """

    name: str
    type: str
    label: str
    value: Any = None
    text: str = ""
    title: Any = None
    help: str = ""
    required: bool = False
    readonly: bool = False
    errors: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    to: str | None = None
    currency: str | None = None
    scale: int | None = None
    min: Any = None
    max: Any = None
    max_length: int | None = None
    children: ChildTable | None = None
    shown_as: str = ""  # the type whose display widget shows it (a formula's ``returns``)
    multiple: bool = False  # several values (a file field's files)
    accept: str = ""  # a file field's accepted types, as HTML's accept attribute takes them
    editor: ChildEditor | None = None  # child rows edited inline (a form's children field)
    shown: bool = True  # False while the field's visible_when is false
    locked: bool = False  # True while the field's readonly_when is true

    @property
    def input_id(self) -> str:
        return f"f-{self.name}"

    @property
    def empty(self) -> bool:
        return self.value is None or self.value == "" or self.value == [] or self.value == ()


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    columns: int
    slots: tuple[Slot, ...]
    collapsed: bool = False
    shown: bool = True  # False while its visible_when is false (a form shows it live)


@dataclass(frozen=True)
class Tab:
    name: str
    label: str
    sections: tuple[Section, ...]
    active: bool = False


@dataclass(frozen=True)
class Column:
    """A list column: its header and the sort a click on it asks for."""

    name: str
    label: str
    type: str
    sortable: bool
    sorted: str | None = None  # "asc", "desc" or None
    next_sort: str = ""  # the ``sort`` parameter of the header's link


@dataclass(frozen=True)
class Row:
    id: int
    cells: tuple[Slot, ...]
    title: str = ""


@dataclass(frozen=True)
class Table:
    """Rows of one entity under a header of columns (a list page, a related list)."""

    entity: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Related:
    """A related list on a record page: the records whose ``via`` points at it."""

    name: str
    label: str
    entity: str
    via: str
    table: Table
    count: int
    count_estimated: bool = False
    can_create: bool = False


#: Icon names definitions use that Tabler calls otherwise (Feather's and Lucide's names).
ICON_ALIASES: Mapping[str, str] = {
    "banknote": "cash",
    "book-open": "book",
    "check-square": "square-check",
    "file-signature": "file-certificate",
    "life-buoy": "lifebuoy",
    "megaphone": "speakerphone",
}


def icon(name: str | None) -> str:
    """The Tabler icon for an entity's ``icon`` (``database`` when it has none)."""
    if not name:
        return "database"
    return ICON_ALIASES.get(name, name)


@dataclass(frozen=True)
class NavItem:
    entity: str
    label: str
    icon: str
    active: bool = False


@dataclass(frozen=True)
class ViewChoice:
    """A named list view the user can switch to."""

    name: str
    label: str
    active: bool = False


@dataclass(frozen=True)
class Chip:
    """An active filter, with the query string that removes it."""

    label: str
    value: str
    remove: Mapping[str, Any]


@dataclass(frozen=True)
class Chrome:
    """What every signed-in page shows around its content."""

    user: str
    locale: str
    locales: tuple[Option, ...]
    nav: tuple[NavItem, ...]
    csrf_token: str
    analyses: tuple[NavItem, ...] = ()  # dashboards ("dashboard:<name>"), reports ("report:…")
    title: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # (category, text) flashed by the last step
    next_url: str = "/"
    approvals: int | None = None  # what waits for the user; None: no approvals in the Model
    notifications: int = 0  # the user's unread notifications (the bell's badge)


@dataclass(frozen=True)
class Screen:
    """One page's content; ``kind`` names its template (``list``, ``record``, ``form``…)."""

    kind: str
    entity: str = ""
    entity_label: str = ""
    plural_label: str = ""
    title: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def entity_screen(
    kind: str, entity: Entity, locale: str, title: str, data: Mapping[str, Any]
) -> Screen:
    """A page about ``entity``: its labels in ``locale``, with the page's own data."""
    return Screen(
        kind,
        entity.name,
        text(entity.label, locale, entity.name),
        text(entity.plural_label, locale, entity.name),
        title,
        data,
    )


# --- labels -------------------------------------------------------------------------------


def text(label: Label | None, locale: str, fallback: str = "") -> str:
    """A label in ``locale`` (the Model falls back to English, then any text it has)."""
    if label is None:
        return fallback
    return label.get(locale) or fallback


def field_label(field: Field, locale: str) -> str:
    return text(field.label, locale, field.name.replace("_", " ").capitalize())


SYSTEM_LABELS: Mapping[str, Label] = {
    "id": Label.of({"en": "ID", "zh": "编号", "ja": "ID"}),
    "created_at": Label.of({"en": "Created", "zh": "创建时间", "ja": "作成日時"}),
    "updated_at": Label.of({"en": "Updated", "zh": "更新时间", "ja": "更新日時"}),
    "created_by": Label.of({"en": "Created by", "zh": "创建人", "ja": "作成者"}),
    "updated_by": Label.of({"en": "Updated by", "zh": "修改人", "ja": "更新者"}),
    "version": Label.of({"en": "Version", "zh": "版本", "ja": "バージョン"}),
    "owner_id": Label.of({"en": "Owner", "zh": "负责人", "ja": "担当者"}),
    "team_id": Label.of({"en": "Team", "zh": "所属团队", "ja": "チーム"}),
}
SYSTEM_TYPES: Mapping[str, str] = {
    "id": "integer",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "user",
    "updated_by": "user",
    "version": "integer",
    "owner_id": "user",
    "team_id": "team",
}


def column_label(entity: Entity, name: str, locale: str) -> str:
    if name in entity.fields:
        return field_label(entity.fields[name], locale)
    if name in SYSTEM_LABELS:
        return text(SYSTEM_LABELS[name], locale)
    return name


def column_type(entity: Entity, name: str) -> str:
    if name in entity.fields:
        return entity.fields[name].type
    return SYSTEM_TYPES.get(name, "string")


# --- slots ----------------------------------------------------------------------------------


def input_text(value: Any) -> str:
    """A stored value as an HTML form control holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%dT%H:%M")  # the deployment's time zone
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def choice_options(field: Field, locale: str, chosen: Iterable[str]) -> tuple[Option, ...]:
    picked = set(chosen)
    return tuple(
        Option(c.value, text(c.label, locale, c.value), c.color, c.value in picked)
        for c in field.options
    )


def slot(
    field: Field,
    locale: str,
    value: Any = None,
    *,
    title: Any = None,
    typed: str | None = None,
    errors: Sequence[str] = (),
    readonly: bool = False,
    choices: Sequence[tuple[Any, str]] = (),
    currency: str | None = None,
    children: ChildTable | None = None,
) -> Slot:
    """A field with its value for a widget. ``typed`` is what the user sent, when a form
    comes back with errors; ``choices`` the (id, title) pairs a reference or user select
    offers."""
    shown = input_text(value) if typed is None else typed
    if field.options:
        chosen = value if isinstance(value, list | tuple) else [shown]
        options = choice_options(field, locale, [str(v) for v in chosen])
    else:
        options = tuple(Option(str(k), t, None, str(k) == shown) for k, t in choices)
    return Slot(
        name=field.name,
        type=field.type,
        label=field_label(field, locale),
        value=value,
        text=shown,
        title=title,
        help=text(field.help, locale),
        required=field.required,
        readonly=readonly or field.readonly or field.computed or field.type in SHOWN_ONLY,
        errors=tuple(errors),
        options=options,
        to=field.to,
        currency=field.currency or currency,
        scale=field.scale,
        min=field.min,
        max=field.max,
        max_length=field.max_length,
        children=children,
        shown_as=field.returns if field.type == "formula" and field.returns else "",
        multiple=bool(field.multiple),
        accept=",".join(field.accept),
    )


def system_slot(name: str, locale: str, value: Any, title: Any = None) -> Slot:
    """A system column (owner, created…) for display."""
    return Slot(
        name=name,
        type=SYSTEM_TYPES.get(name, "string"),
        label=text(SYSTEM_LABELS.get(name), locale, name),
        value=value,
        text=input_text(value),
        title=title,
        readonly=True,
    )


def cell(entity: Entity, name: str, row: Mapping[str, Any], locale: str, currency: str) -> Slot:
    """One list cell: a field (or system column) of a row, with its expanded title."""
    title = row.get(f"{name}__title")
    if name in entity.fields:
        return slot(entity.fields[name], locale, row.get(name), title=title, currency=currency)
    return system_slot(name, locale, row.get(name), title)


# --- the form layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class FormInput:
    """What a form shows besides the Model: the record, titles, errors and choices."""

    record: Mapping[str, Any] = field(default_factory=dict)
    titles: Mapping[str, Any] = field(default_factory=dict)
    typed: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()
    choices: Mapping[str, Sequence[tuple[Any, str]]] = field(default_factory=dict)
    children: Mapping[str, ChildTable] = field(default_factory=dict)
    currency: str = "USD"
    #: per field with conditions: {"visible": …, "required": …, "readonly": …} as typed
    conditions: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    editors: Mapping[str, ChildEditor] = field(default_factory=dict)
    #: per form section with a ``visible_when``: whether it is shown now
    sections: Mapping[str, bool] = field(default_factory=dict)


def _sections_of(entity: Entity) -> list[tuple[str, Label | None, list[Mapping[str, Any]]]]:
    """(tab name, tab label, sections) as the form declares them; one tab if it has none."""
    form = entity.form or {}
    tabs: list[tuple[str, Label | None, list[Mapping[str, Any]]]] = []
    if form.get("sections"):
        tabs.append(("main", None, list(form["sections"])))
    for tab in form.get("tabs", ()):
        tabs.append((tab["name"], Label.of(tab.get("label"), tab["name"]), list(tab["sections"])))
    placed = {n for _, _, sections in tabs for s in sections for n in s["fields"]}
    rest = [
        name
        for name, f in entity.fields.items()
        if name not in placed and f.name != entity.parent_field
    ]
    if rest:
        other = {"name": "other", "fields": rest, "columns": 2, "collapsed": bool(tabs)}
        if tabs:
            tabs[-1][2].append(other)
        else:
            tabs.append(("main", None, [other]))
    return tabs


OTHER_LABEL = Label.of({"en": "More fields", "zh": "其他字段", "ja": "その他の項目"})
MAIN_LABEL = Label.of({"en": "Details", "zh": "详细信息", "ja": "詳細"})


def form_tabs(
    entity: Entity,
    locale: str,
    given: FormInput | None = None,
    *,
    active: str = "",
    editing: bool = False,
) -> tuple[Tab, ...]:
    """The entity's form layout filled with a record: tabs of sections of slots.

    Hidden fields are left out; on a form (``editing``) computed fields are too, unless
    they have a value to show.
    """
    given = given or FormInput()
    tabs: list[Tab] = []
    for tab_name, tab_label, sections in _sections_of(entity):
        built: list[Section] = []
        for section in sections:
            shown = given.sections.get(section["name"], True)
            if not shown and not editing:
                continue  # the record page leaves it out; a form hides it, to show live
            slots = []
            for name in section["fields"]:
                f = entity.fields.get(name)
                if f is None or name in given.hidden:
                    continue
                value = given.record.get(name)
                if editing and f.type == "autonumber" and value is None:
                    continue  # a formula or rollup stays: the form shows it change live
                state = given.conditions.get(name, {})
                built_slot = slot(
                    f,
                    locale,
                    value,
                    title=given.titles.get(name),
                    typed=given.typed.get(name),
                    errors=given.errors.get(name, ()),
                    readonly=name in given.readonly,
                    choices=given.choices.get(name, ()),
                    currency=given.currency,
                    children=given.children.get(name),
                )
                if state:
                    built_slot = replace(
                        built_slot,
                        shown=state.get("visible", True),
                        required=state.get("required", built_slot.required),
                        locked=state.get("readonly", False),
                    )
                if editing and name in given.editors and not built_slot.readonly:
                    built_slot = replace(built_slot, editor=given.editors[name])
                slots.append(built_slot)
            if not slots:
                continue
            default = OTHER_LABEL if section["name"] == "other" else None
            label = Label.of(section.get("label")) if section.get("label") else default
            built.append(
                Section(
                    section["name"],
                    text(label, locale),
                    int(section.get("columns", 1)),
                    tuple(slots),
                    bool(section.get("collapsed")) and not editing,
                    shown,
                )
            )
        if built:
            label_text = text(tab_label or MAIN_LABEL, locale, tab_name)
            tabs.append(Tab(tab_name, label_text, tuple(built)))
    if tabs:
        chosen = active if any(t.name == active for t in tabs) else tabs[0].name
        tabs = [Tab(t.name, t.label, t.sections, t.name == chosen) for t in tabs]
    return tuple(tabs)


def child_table(
    child: Entity,
    rows: Sequence[Mapping[str, Any]],
    locale: str,
    currency: str,
    columns: Sequence[str] = (),
    hidden: frozenset[str] = frozenset(),
) -> ChildTable:
    """Child rows (a quote's lines) for display: the children field's ``columns``, else
    every field but the link to the parent; references show the titles the rows carry
    (``product__title``)."""
    names = child_columns(child, columns, hidden)
    header = tuple(slot(child.fields[n], locale) for n in names)
    body = tuple(tuple(cell(child, n, row, locale, currency) for n in names) for row in rows)
    return ChildTable(header, body)


def _plain_decimal(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def child_columns(
    child: Entity, columns: Sequence[str], hidden: frozenset[str] = frozenset()
) -> list[str]:
    """The columns a children field shows: its ``columns``, else every field of the
    child but the link to the parent; hidden ones left out."""
    return [
        n
        for n in (columns or child.fields)
        if n in child.fields and n != child.parent_field and n not in hidden
    ]


@dataclass(frozen=True)
class RowsInput:
    """What a child-row editor shows besides the rows: the columns, those the user may
    not change, what was typed and the engine's errors per row, and the first records a
    reference column offers."""

    columns: Sequence[str] = ()
    readonly: frozenset[str] = frozenset()
    typed: Sequence[Mapping[str, str]] = ()
    errors: Sequence[Mapping[str, Sequence[str]]] = ()
    choices: Mapping[str, Sequence[tuple[Any, str]]] = field(default_factory=dict)


def child_editor(
    name: str, child: Entity, rows: Sequence[Mapping[str, Any]], locale: str, currency: str,
    given: RowsInput,
) -> ChildEditor:  # fmt: skip
    """Child rows for inline editing on the parent's form: a slot per column of each row
    (``rows`` carry values and ``<reference>__title``) and a blank row to copy new ones
    from; a row's own pick is added to its reference select's choices."""
    names = child_columns(child, given.columns)
    readonly, typed, errors, choices = given.readonly, given.typed, given.errors, given.choices
    header = tuple(slot(child.fields[n], locale) for n in names)

    def row(index: str, values: Mapping[str, Any], sent: Mapping[str, str],
            wrong: Mapping[str, Sequence[str]]) -> ChildRow:  # fmt: skip
        cells = []
        for n in names:
            f = child.fields[n]
            offered = list(choices.get(n, ()))
            picked, title = values.get(n), values.get(f"{n}__title")
            if picked not in (None, "") and all(str(k) != str(picked) for k, _t in offered):
                offered.append((picked, str(title or f"#{picked}")))
            value = values.get(n)
            shown = sent.get(n)
            if shown is None and f.type == "decimal" and isinstance(value, Decimal):
                shown = _plain_decimal(value)  # 2, not 2.000000
            cell = slot(
                f,
                locale,
                value,
                title=title,
                typed=shown,
                errors=wrong.get(n, ()),
                readonly=n in readonly,
                choices=offered,
                currency=currency,
            )
            cells.append(replace(cell, name=f"{name}-{index}-{n}"))
        rest = [m for k, v in wrong.items() if k not in names for m in v]
        raw_id = values.get("id")
        return ChildRow(
            raw_id if isinstance(raw_id, int) else None, index, tuple(cells), tuple(rest)
        )

    built = tuple(
        row(
            str(i),
            values,
            typed[i] if i < len(typed) else {},
            errors[i] if i < len(errors) else {},
        )
        for i, values in enumerate(rows)
    )
    defaults = {
        n: child.fields[n].default
        for n in names
        if child.fields[n].default is not None and not isinstance(child.fields[n].default, dict)
    }
    return ChildEditor(name, header, built, row("__i__", defaults, {}, {}))


# --- lists -----------------------------------------------------------------------------------


def default_list_view(entity: Entity, name: str = "") -> Mapping[str, Any]:
    """The list view called ``name``, else the default one, else a view of the title
    field and the first few fields."""
    views: list[Mapping[str, Any]] = list(entity.list_views or ())
    chosen = [v for v in views if v["name"] == name] or [v for v in views if v.get("default")]
    if chosen or views:
        return (chosen or views)[0]
    first = [entity.title_field] if entity.title_field else []
    others = [
        n
        for n, f in entity.fields.items()
        if f.type not in ("children", "text", "file") and n not in first
    ]
    return {"name": "all", "columns": [*first, *others][:6]}


def view_choices(entity: Entity, locale: str, active: str) -> tuple[ViewChoice, ...]:
    return tuple(
        ViewChoice(
            v["name"], text(Label.of(v.get("label"), v["name"]), locale), v["name"] == active
        )
        for v in entity.list_views or ()
    )


def columns(
    entity: Entity,
    names: Sequence[str],
    locale: str,
    *,
    sort: Sequence[SortKey] = (),
    sortable: frozenset[str] = frozenset(),
) -> tuple[Column, ...]:
    """List columns with the sort each header link asks for: ascending first, then
    descending; the current sort is marked."""
    first = sort[0] if sort else None
    found = []
    for name in names:
        state = None
        if first is not None and first.field == name:
            state = "desc" if first.descending else "asc"
        following = f"-{name}" if state == "asc" else name
        found.append(
            Column(
                name,
                column_label(entity, name, locale),
                column_type(entity, name),
                name in sortable,
                state,
                following,
            )
        )
    return tuple(found)


def table(
    entity: Entity,
    cols: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    locale: str,
    currency: str,
) -> Table:
    title = entity.title_field
    built = tuple(
        Row(
            int(row["id"]),
            tuple(cell(entity, c.name, row, locale, currency) for c in cols),
            str(row.get(title) or "") if title else "",
        )
        for row in rows
    )
    return Table(entity.name, tuple(cols), built)


def sort_keys(value: Any) -> tuple[SortKey, ...]:
    return parse_sort(value)


def record_title(entity: Entity, record: Mapping[str, Any], locale: str) -> str:
    """What a record is called: its title field, else "<Entity> #id"."""
    if entity.title_field and record.get(entity.title_field) not in (None, ""):
        value = record[entity.title_field]
        field = entity.fields.get(entity.title_field)
        if field is not None and field.options and isinstance(value, str):
            chosen = choice_options(field, locale, [value])
            return next((o.label for o in chosen if o.selected), value)
        if isinstance(value, str | int):
            return str(value)
    return f"{text(entity.label, locale, entity.name)} #{record.get('id', '')}"
