"""Access and reading: roles (scopes and field rules per entity) and dashboards; reports
are compiled in :mod:`.reports`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._errors import did_you_mean
from .._merge import Document
from ..model import Dashboard, Label, Permission, Role, freeze
from ..schema import ACTIONS
from ._context import BUILTIN_ROLES, Checker, unless_problems
from .reports import _param


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
def compile_dashboard(
    checker: Checker, doc: Document, reports: Mapping[str, Document]
) -> Dashboard | None:
    value = doc.value
    names = set(reports)
    for i, role in enumerate(value.get("roles", ())):
        checker.known_role(doc, ("roles", i), role)
    for i, role in enumerate(value.get("default_for", ())):
        checker.known_role(doc, ("default_for", i), role)
    param_specs = list(value.get("params", ()))
    checker.unique_names(doc, ("params",), param_specs, "parameter")
    params = tuple(_param(checker, doc, i, spec) for i, spec in enumerate(param_specs))
    shared = {p.name: p.type for p in params}
    checker.unique_names(doc, ("widgets",), value.get("widgets", ()), "widget")
    for i, widget in enumerate(value.get("widgets", ())):
        if "report" in widget and widget["report"] not in names:
            checker.error(
                doc,
                ("widgets", i, "report"),
                f"unknown report '{widget['report']}'",
                did_you_mean(widget["report"], names),
            )
        report = reports.get(widget.get("report", ""))
        declared = {p["name"]: p["type"] for p in report.value.get("params", ())} if report else {}
        for key, given in (widget.get("params") or {}).items():
            at = ("widgets", i, "params", key)
            if report is None:
                checker.error(doc, at, "only a report's widget takes params")
            elif key not in declared:
                hint = did_you_mean(key, declared) or f"its parameters: {', '.join(declared)}"
                checker.error(doc, at, f"report {widget['report']} has no parameter '{key}'", hint)
            elif isinstance(given, str) and given in shared and shared[given] != declared[key]:
                checker.error(doc, at, f"'{given}' is a {shared[given]}, '{key}' a {declared[key]}")
        if widget["type"] == "report" and "report" not in widget:
            checker.error(doc, ("widgets", i), "a report widget needs 'report'")
        if "entity" in widget and checker.known_entity(
            doc, ("widgets", i, "entity"), widget["entity"]
        ):
            checker.expression(
                doc, ("widgets", i, "filter"), widget.get("filter"), widget["entity"]
            )
    return Dashboard(
        doc.name,
        Label.of(value.get("label"), doc.name),
        freeze(value),
        doc.package,
        params,
        tuple(value.get("default_for", ())),
    )


def check_default_dashboards(checker: Checker, dashboards: Mapping[str, Dashboard]) -> None:
    """A role has at most one default dashboard."""
    seen: dict[str, str] = {}
    for dashboard in dashboards.values():
        for role in dashboard.default_for:
            if role in seen:
                doc = checker.docs("dashboard")[dashboard.name]
                checker.error(
                    doc,
                    ("default_for",),
                    f"dashboard {seen[role]} is already the default of role '{role}'",
                )
            seen[role] = dashboard.name
