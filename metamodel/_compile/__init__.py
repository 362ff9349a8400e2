"""Semantic checks and compilation: schema-valid documents → the immutable Model.

The JSON Schema checks each document alone; here we check what needs the whole package:
names that must exist (entities, fields, roles, states, reports), names that must not be
used (system columns, keywords), children that form a cycle, defaults outside their
options, expressions that do not type-check. Problems are collected, located through each
document's origins, and the Model is built only when there are none.

One module per concern, over the shared :class:`~._context.Checker`: ``fields`` (each
field type's options and checks), ``entities`` (and their views, one check per view
kind), ``process`` (workflows, automations) and ``access`` (roles, reports, dashboards).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import DefinitionError, Origin, Problem
from .._merge import Document
from .._yaml import Location
from ..model import Entity, Field, Label, Model, Package, freeze
from ._context import Checker
from .access import check_default_dashboards, compile_dashboard, compile_role
from .entities import check_required_cycles, compile_entity, link_children
from .labels import check_label_locales
from .process import compile_automation, compile_workflow
from .reports import compile_report

if TYPE_CHECKING:
    from ..loader import PackageSource

T = TypeVar("T")


def _package(source: Any, parent: Package | None) -> Package:
    """A package's settings; an overlay inherits those it does not restate."""
    value = source.header.value
    locales = tuple(value.get("locales") or (parent.locales if parent else ("en",)))
    return Package(
        name=source.name,
        label=Label.of(value.get("label"), source.name),
        version=str(value.get("version", "0")),
        extends=value.get("extends"),
        locales=locales,
        default_locale=value.get("default_locale", parent.default_locale if parent else locales[0]),
        table_prefix=value.get("table_prefix", parent.table_prefix if parent else ""),
        currency=value.get("currency", parent.currency if parent else "USD"),
        path=str(getattr(source, "path", "")),
    )


def _packages(sources: list[Any]) -> tuple[Package, ...]:
    by_name: dict[str, Package] = {}
    for source in sources:
        if isinstance(source, Package):
            by_name[source.name] = source
        else:
            parent = by_name.get(source.header.value.get("extends") or "")
            by_name[source.name] = _package(source, parent)
    return tuple(by_name.values())


def compile_model(
    sources: list[PackageSource] | list[Package], documents: list[Document], problems: list[Problem]
) -> Model | None:
    """Check ``documents`` as a whole and build the Model; ``None`` when problems were found."""
    packages = _packages(list(sources))
    prefixes = {p.name: p.table_prefix for p in packages}
    checker = Checker.of(documents, problems)
    by_kind = checker.by_kind
    entities: dict[str, Entity] = {}
    for name, doc in checker.docs("entity").items():
        entity = compile_entity(checker, doc, prefixes.get(doc.package, ""))
        if entity is not None:
            entities[name] = entity
    link_children(checker, entities)
    check_required_cycles(checker)
    tables: dict[str, str] = {}
    for entity in entities.values():
        if entity.table in tables:
            doc = by_kind["entity"][entity.name]
            checker.error(
                doc,
                ("table",) if "table" in doc.value else ("name",),
                f"table '{entity.table}' is already used by entity '{tables[entity.table]}'",
            )
        tables[entity.table] = entity.name
    roles = _collect(checker, "role", compile_role)
    workflows = _collect(checker, "workflow", compile_workflow)
    seen_fields: dict[tuple[str, str], str] = {}
    for workflow in workflows.values():
        key = (workflow.entity, workflow.field)
        if key in seen_fields:
            doc = by_kind["workflow"][workflow.name]
            checker.error(
                doc,
                ("field",),
                f"{key[0]}.{key[1]} is already driven by workflow '{seen_fields[key]}'",
            )
        seen_fields[key] = workflow.name
    fired: dict[tuple[str, str], str] = {}  # transitions are fired by name on a record
    for workflow in workflows.values():
        doc = by_kind["workflow"][workflow.name]
        for i, transition in enumerate(workflow.transitions):
            key = (workflow.entity, transition.name)
            if fired.get(key, workflow.name) != workflow.name:
                checker.error(
                    doc,
                    ("transitions", i, "name"),
                    f"workflow '{fired[key]}' has a transition '{transition.name}' on "
                    f"{workflow.entity} too; name it differently",
                )
            fired.setdefault(key, workflow.name)
    reports = _collect(checker, "report", compile_report)
    dashboards = _collect(
        checker, "dashboard", lambda c, d: compile_dashboard(c, d, by_kind.get("report", {}))
    )
    check_default_dashboards(checker, dashboards)
    automations = _collect(checker, "automation", compile_automation)
    declared = _declared_locales(list(sources))
    for doc in documents:
        check_label_locales(checker, declared, doc)
    checker.report_removed()
    if problems:
        return None
    ordered = sorted(documents, key=lambda d: (d.kind, d.name))
    refs: dict[str, list[tuple[Entity, Field]]] = {}
    for entity in entities.values():
        for field in entity.fields_of_type("reference"):
            refs.setdefault(field.to or "", []).append((entity, field))
    return Model(
        packages=packages,
        entities=MappingProxyType(entities),
        workflows=MappingProxyType(workflows),
        roles=MappingProxyType(roles),
        reports=MappingProxyType(reports),
        dashboards=MappingProxyType(dashboards),
        automations=MappingProxyType(automations),
        documents=freeze([d.value for d in ordered]),
        origins=MappingProxyType({(d.kind, d.name): MappingProxyType(d.origins) for d in ordered}),
        owners=MappingProxyType({(d.kind, d.name): d.package for d in ordered}),
        hash=content_hash(packages, ordered),
        _refs_to=MappingProxyType({k: tuple(v) for k, v in refs.items()}),
    )


def _declared_locales(sources: list[Any]) -> dict[str, tuple[str, ...]]:
    """Package name → the locales it declares, itself or through the packages it extends
    (a package read back from a snapshot, or one that declares none, is left out)."""
    declared: dict[str, tuple[str, ...]] = {}
    for source in sources:
        if isinstance(source, Package):
            continue
        value = source.header.value
        locales = value.get("locales") or declared.get(value.get("extends") or "")
        if isinstance(locales, list | tuple) and all(isinstance(x, str) for x in locales):
            declared[source.name] = tuple(locales)
    return declared


def _collect(
    checker: Checker, kind: str, build: Callable[[Checker, Document], T | None]
) -> dict[str, T]:
    result = {}
    for name, doc in checker.docs(kind).items():
        compiled = build(checker, doc)
        if compiled is not None:
            result[name] = compiled
    return result


def content_hash(packages: tuple[Package, ...], documents: list[Document]) -> str:
    """A digest of what the definitions mean: the same for the same content, whatever the
    files, their order, comments or key order (field order is kept: it is column order)."""
    payload = {
        "packages": [[p.name, p.version, p.extends, p.table_prefix] for p in packages],
        "documents": [
            [d.kind, d.name, d.package, d.value, list(d.value.get("fields", {}))] for d in documents
        ],
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def compile_documents_json(data: Mapping[str, Any]) -> Model:
    """Rebuild a Model from :meth:`Model.to_dict` output (no file positions)."""
    problems: list[Problem] = []
    packages = tuple(
        Package(
            name=p["name"],
            label=Label.of(p.get("label"), p["name"]),
            version=p.get("version", "0"),
            extends=p.get("extends"),
            locales=tuple(p.get("locales") or ("en",)),
            default_locale=p.get("default_locale", "en"),
            table_prefix=p.get("table_prefix", ""),
            currency=p.get("currency", "USD"),
        )
        for p in data["packages"]
    )
    first = packages[0].name if packages else ""
    owners = {(o[0], o[1]): o[2] for o in data.get("owners", ())}
    documents = []
    for d in data["documents"]:
        owner = owners.get((d["kind"], d["name"]), first)
        where: dict[Location, Origin] = {(): Origin("<model.json>", 0, 0, owner)}
        documents.append(
            Document(d["kind"], d["name"], json.loads(json.dumps(d)), owner, "<model.json>", where)
        )
    model = compile_model(list(packages), documents, problems)
    if model is None:
        raise DefinitionError(problems)
    return model
