"""Access and reading: roles (scopes and field rules per entity) and dashboards; reports
are compiled in :mod:`.reports`."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from .._errors import did_you_mean
from .._merge import Document
from ..model import Dashboard, Label, Permission, Role, freeze
from ..schema import ACTIONS
from ._context import BUILTIN_ROLES, Checker, unless_problems


@unless_problems
def compile_role(checker: Checker, doc: Document) -> Role | None:
    value = doc.value
    if doc.name in BUILTIN_ROLES and value.get("permissions"):
        checker.error(
            doc,
            ("permissions",),
            f"the built-in '{doc.name}' role may do everything; it takes no permissions",
        )
    permissions: dict[str, Permission] = {}
    for entity, spec in (value.get("permissions") or {}).items():
        where = ("permissions", entity)
        if entity != "*" and not checker.known_entity(doc, where, entity):
            continue
        for field_name in spec.get("fields", {}):
            checker.known_field(
                doc, (*where, "fields", field_name), entity, field_name, allow_system=False
            )
        scopes = {("import_" if a == "import" else a): spec.get(a, "none") for a in ACTIONS}
        permissions[entity] = Permission(
            **scopes, fields=MappingProxyType(dict(spec.get("fields", {})))
        )
    return Role(
        doc.name,
        Label.of(value.get("label"), doc.name.replace("_", " ").capitalize()),
        Label.of(value["description"]) if "description" in value else None,
        MappingProxyType(permissions),
        doc.package,
    )


@unless_problems
def compile_dashboard(checker: Checker, doc: Document, reports: Iterable[str]) -> Dashboard | None:
    value = doc.value
    names = set(reports)
    for i, role in enumerate(value.get("roles", ())):
        checker.known_role(doc, ("roles", i), role)
    checker.unique_names(doc, ("widgets",), value.get("widgets", ()), "widget")
    for i, widget in enumerate(value.get("widgets", ())):
        if "report" in widget and widget["report"] not in names:
            checker.error(
                doc,
                ("widgets", i, "report"),
                f"unknown report '{widget['report']}'",
                did_you_mean(widget["report"], names),
            )
        if widget["type"] == "report" and "report" not in widget:
            checker.error(doc, ("widgets", i), "a report widget needs 'report'")
        if "entity" in widget and checker.known_entity(
            doc, ("widgets", i, "entity"), widget["entity"]
        ):
            checker.expression(
                doc, ("widgets", i, "filter"), widget.get("filter"), widget["entity"]
            )
    return Dashboard(doc.name, Label.of(value.get("label"), doc.name), freeze(value), doc.package)
