"""View kinds: the screens an entity declares (form, list views, kanban, calendar,
timeline).

Each :class:`ViewKind` is an entity option (``form:``, ``list_views:``…) with the JSON
Schema of what it holds and a check of what it names (fields, paths, expressions). The
screens (``ui_renderer``) keep a renderer per view kind under the same name. A plugin adds
a view kind by registering it here and a renderer there::

    VIEW_KINDS.register(ViewKind("gantt", {"type": "object", …}, check=check_gantt))

and an entity then declares ``gantt: {start: …, end: …}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._errors import article
from .expressions import NUMERIC, TEMPORAL
from .model import parse_sort
from .registry import Registry

Schema = dict[str, Any]
Path = tuple[str | int, ...]


class ViewContext(Protocol):
    """What a view kind's check may see and say about one entity's view."""

    entity: str

    def error(self, path: Path, message: str, hint: str = "") -> None:
        """Report a problem at ``path`` of the entity document (``("kanban", "field")``)."""

    def origin(self, path: Path) -> str:
        """Where ``path`` was written, as ``file:line:col``."""

    def known_field(self, path: Path, name: Any, *, entity: str = "", system: bool = True) -> bool:
        """Whether the field exists (reported when not)."""

    def known_entity(self, path: Path, name: Any) -> bool:
        """Whether the entity exists (reported when not)."""

    def known_path(self, path: Path, dotted: str) -> str | None:
        """The type of a field path like ``account.grade``, or None (reported)."""

    def expression(self, path: Path, source: Any) -> None:
        """Check a boolean expression over the entity (reported when wrong)."""

    def field_spec(self, name: str, *, entity: str = "") -> Mapping[str, Any] | None:
        """A field's definition, or None."""

    def value_type(self, name: str) -> str:
        """A field's expression type."""

    def unique_names(self, path: Path, items: Any, what: str) -> None:
        """Report items of a list that repeat a name."""


@dataclass(frozen=True)
class ViewKind:
    """An entity option that declares a screen: ``schema`` for its value, ``check`` for
    what it names."""

    name: str
    schema: Schema
    check: Callable[[ViewContext, Any], None] | None = None
    description: str = ""


VIEW_KINDS: Registry[ViewKind] = Registry("view kind")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _names() -> Schema:
    return {"type": "array", "items": _ref("identifier"), "uniqueItems": True}


def _obj(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_SECTION = _obj(
    {
        "name": _ref("identifier"),
        "label": _ref("label"),
        "columns": {"type": "integer", "minimum": 1, "maximum": 4},
        "fields": {"type": "array", "items": _ref("identifier"), "minItems": 1},
        "visible_when": _ref("expression"),
        "collapsed": {"type": "boolean"},
    },
    ("name", "fields"),
)

_FORM = _obj(
    {
        "sections": {"type": "array", "items": _SECTION},
        "tabs": {
            "type": "array",
            "items": _obj(
                {
                    "name": _ref("identifier"),
                    "label": _ref("label"),
                    "sections": {"type": "array", "items": _SECTION, "minItems": 1},
                },
                ("name", "sections"),
            ),
        },
        "related": {
            "type": "array",
            "items": _obj(
                {
                    "name": _ref("identifier"),
                    "label": _ref("label"),
                    "entity": _ref("identifier"),
                    "via": _ref("identifier"),
                    "columns": _names(),
                    "sort": _ref("sort"),
                },
                ("name", "entity", "via"),
            ),
        },
    }
)

_LIST_VIEWS = {
    "type": "array",
    "items": _obj(
        {
            "name": _ref("identifier"),
            "label": _ref("label"),
            "columns": {"type": "array", "items": _ref("field_path"), "minItems": 1},
            "filter": _ref("expression"),
            "sort": _ref("sort"),
            "default": {"type": "boolean"},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 500},
        },
        ("name", "columns"),
    ),
}

_KANBAN = _obj(
    {
        "field": _ref("identifier"),
        "title": _ref("identifier"),
        "card_fields": _names(),
        "sum": _ref("identifier"),
    },
    ("field",),
)

_CALENDAR = _obj(
    {
        "start": _ref("identifier"),
        "end": _ref("identifier"),
        "title": _ref("identifier"),
        "color": _ref("identifier"),
    },
    ("start",),
)

_TIMELINE = _obj(
    {
        "at": _ref("identifier"),
        "title": _ref("identifier"),
        "body": _ref("identifier"),
        "kind": _ref("identifier"),
    },
    ("at", "title"),
)


def form_sections(form: Mapping[str, Any]) -> list[tuple[Path, Mapping[str, Any]]]:
    """Every section of a form with its path: the form's own, then each tab's."""
    found: list[tuple[Path, Mapping[str, Any]]] = [
        (("form", "sections", i), s) for i, s in enumerate(form.get("sections", ()))
    ]
    for t, tab in enumerate(form.get("tabs", ())):
        found += [(("form", "tabs", t, "sections", i), s) for i, s in enumerate(tab["sections"])]
    return found


def _check_form(ctx: ViewContext, form: Mapping[str, Any]) -> None:
    placed: dict[str, Path] = {}
    for where, section in form_sections(form):
        for i, name in enumerate(section["fields"]):
            if not ctx.known_field((*where, "fields", i), name):
                continue
            if name in placed:
                ctx.error(
                    (*where, "fields", i),
                    f"field '{name}' is already on the form at {ctx.origin(placed[name])}",
                )
            placed[name] = (*where, "fields", i)
    ctx.unique_names(("form", "related"), form.get("related", ()), "related list")
    for i, related in enumerate(form.get("related", ())):
        _check_related(ctx, ("form", "related", i), related)


def _check_related(ctx: ViewContext, where: Path, related: Mapping[str, Any]) -> None:
    other = related["entity"]
    if not ctx.known_entity((*where, "entity"), other):
        return
    link = ctx.field_spec(related["via"], entity=other)
    if link is None:
        ctx.known_field((*where, "via"), related["via"], entity=other, system=False)
    elif link.get("type") != "reference" or link.get("to") != ctx.entity:
        ctx.error(
            (*where, "via"), f"'{other}.{related['via']}' is not a reference to '{ctx.entity}'"
        )
    for c, column in enumerate(related.get("columns", ())):
        ctx.known_field((*where, "columns", c), column, entity=other)


def _check_list_views(ctx: ViewContext, views: list[Mapping[str, Any]]) -> None:
    ctx.unique_names(("list_views",), views, "list view")
    defaults = [i for i, v in enumerate(views) if v.get("default")]
    for i in defaults[1:]:
        first = views[defaults[0]]["name"]
        ctx.error(("list_views", i, "default"), f"list view '{first}' is already the default")
    for i, view in enumerate(views):
        for c, column in enumerate(view["columns"]):
            where = ("list_views", i, "columns", c)
            if column.startswith("-"):
                ctx.error(
                    where,
                    f"column '{column}' starts with '-'",
                    "a column is a field name; write the order in 'sort'",
                )
                continue
            ctx.known_path(where, column)
        ctx.expression(("list_views", i, "filter"), view.get("filter"))
        for sort_key in parse_sort(view.get("sort")):
            ctx.known_path(("list_views", i, "sort"), sort_key.field)


def _check_kanban(ctx: ViewContext, kanban: Mapping[str, Any]) -> None:
    spec = ctx.field_spec(kanban["field"])
    if spec is None:
        ctx.known_field(("kanban", "field"), kanban["field"], system=False)
    elif spec["type"] != "choice":
        ctx.error(
            ("kanban", "field"),
            f"a kanban groups by a choice field; '{kanban['field']}' is {article(spec['type'])}",
        )
    if "title" in kanban:
        ctx.known_field(("kanban", "title"), kanban["title"])
    if "sum" in kanban and ctx.known_field(("kanban", "sum"), kanban["sum"]):
        kind = ctx.value_type(kanban["sum"])
        if kind not in NUMERIC:
            ctx.error(("kanban", "sum"), f"cannot sum '{kanban['sum']}', {article(kind)}")
    for c, column in enumerate(kanban.get("card_fields", ())):
        ctx.known_field(("kanban", "card_fields", c), column)


def _check_calendar(ctx: ViewContext, calendar: Mapping[str, Any]) -> None:
    for key in ("start", "end", "title", "color"):
        if key in calendar and ctx.known_field(("calendar", key), calendar[key]):
            kind = ctx.value_type(calendar[key])
            if key in ("start", "end") and kind not in TEMPORAL:
                ctx.error(
                    ("calendar", key),
                    f"a calendar's {key} must be a date or datetime; "
                    f"'{calendar[key]}' is {article(kind)}",
                )


def _check_timeline(ctx: ViewContext, timeline: Mapping[str, Any]) -> None:
    """An entity whose records appear on the timeline of the records they reference (an
    activity on its account's, contact's and opportunity's): ``at`` is a date or
    datetime, ``kind`` a choice (its badge)."""
    for key in ("at", "title", "body", "kind"):
        if key in timeline and ctx.known_field(("timeline", key), timeline[key]):
            kind = ctx.value_type(timeline[key])
            if key == "at" and kind not in TEMPORAL:
                ctx.error(
                    ("timeline", "at"),
                    f"a timeline's at must be a date or datetime; '{timeline['at']}' is "
                    f"{article(kind)}",
                )
    spec = ctx.field_spec(timeline["kind"]) if "kind" in timeline else None
    if spec is not None and spec.get("type") != "choice":
        ctx.error(
            ("timeline", "kind"),
            f"a timeline's kind is a choice field (its badge); '{timeline['kind']}' is "
            f"{article(spec.get('type', ''))}",
        )


for _kind in (
    ViewKind("form", _FORM, _check_form, "The record page: sections, tabs, related lists."),
    ViewKind("list_views", _LIST_VIEWS, _check_list_views, "Named lists: columns, filter, sort."),
    ViewKind("kanban", _KANBAN, _check_kanban, "Cards in columns by a choice field."),
    ViewKind("calendar", _CALENDAR, _check_calendar, "Records on a calendar by a date field."),
    ViewKind(
        "timeline",
        _TIMELINE,
        _check_timeline,
        "Records shown on the timeline of the records they reference (activities).",
    ),
):
    VIEW_KINDS.register(_kind)
