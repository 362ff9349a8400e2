"""Processes: workflows (states, transitions, approvals) and automations (a trigger,
a condition and actions of registered types, :data:`~metamodel.processes.ACTION_TYPES`)."""

from __future__ import annotations

from .._errors import article, did_you_mean
from .._merge import Document
from ..fieldtypes import FIELD_TYPES
from ..model import Automation, Label, State, Transition, Workflow, freeze
from ..processes import ACTION_TYPES, TRIGGER_TYPES
from ._context import Checker, unless_problems


@unless_problems
def compile_workflow(checker: Checker, doc: Document) -> Workflow | None:
    value = doc.value
    entity = value["entity"]
    if not checker.known_entity(doc, ("entity",), entity):
        return None
    field_spec = checker.entity_docs[entity]["fields"].get(value["field"])
    options: list[str] = []
    if field_spec is None:
        checker.known_field(doc, ("field",), entity, value["field"], allow_system=False)
    elif field_spec["type"] != "choice":
        checker.error(
            doc,
            ("field",),
            f"a workflow's state field must be a choice; "
            f"'{value['field']}' is {article(field_spec['type'])}",
        )
    else:
        options = [o if isinstance(o, str) else o["value"] for o in field_spec["options"]]
    checker.unique_names(doc, ("states",), value["states"], "state")
    states = [s["name"] for s in value["states"]]
    for i, state in enumerate(value["states"]):
        if options and state["name"] not in options:
            checker.error(
                doc,
                ("states", i, "name"),
                f"state '{state['name']}' is not an option of {entity}.{value['field']}",
                did_you_mean(state["name"], options),
            )
    initial = [i for i, s in enumerate(value["states"]) if s.get("initial")]
    if len(initial) > 1:
        checker.error(doc, ("states", initial[1], "initial"), "a workflow has one initial state")
    checker.unique_names(doc, ("transitions",), value.get("transitions", ()), "transition")
    approvals = {a["name"] for a in value.get("approvals", ())}
    transitions = []
    for i, spec in enumerate(value.get("transitions", ())):
        where = ("transitions", i)
        sources = [spec["from"]] if isinstance(spec["from"], str) else list(spec["from"])
        for s, state in enumerate(sources):
            if state != "*" and state not in states:
                at = (*where, "from") if isinstance(spec["from"], str) else (*where, "from", s)
                checker.error(doc, at, f"unknown state '{state}'", did_you_mean(state, states))
        if spec["to"] not in states:
            checker.error(
                doc,
                (*where, "to"),
                f"unknown state '{spec['to']}'",
                did_you_mean(spec["to"], states),
            )
        guard = checker.expression(doc, (*where, "guard"), spec.get("guard"), entity)
        for r, role in enumerate(spec.get("roles", ())):
            checker.known_role(doc, (*where, "roles", r), role)
        for f, field_name in enumerate(spec.get("required_fields", ())):
            checker.known_field(
                doc, (*where, "required_fields", f), entity, field_name, allow_system=False
            )
        for field_name in spec.get("set", {}):
            checker.known_field(
                doc, (*where, "set", field_name), entity, field_name, allow_system=False
            )
        if "approval" in spec and spec["approval"] not in approvals:
            checker.error(
                doc,
                (*where, "approval"),
                f"unknown approval '{spec['approval']}'",
                did_you_mean(spec["approval"], approvals),
            )
        transitions.append(
            Transition(
                spec["name"],
                Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize()),
                tuple(sources),
                spec["to"],
                guard,
                tuple(spec.get("roles", ())),
                spec.get("comment", "optional"),
                tuple(spec.get("required_fields", ())),
                freeze(spec.get("set")),
                spec.get("approval"),
            )
        )
    for a, approval in enumerate(value.get("approvals", ())):
        for s, step in enumerate(approval["steps"]):
            checker.expression(doc, ("approvals", a, "steps", s, "when"), step.get("when"), entity)
            approver = step["approver"]
            if approver.startswith("role:"):
                checker.known_role(doc, ("approvals", a, "steps", s, "approver"), approver[5:])
        for key in ("on_approve", "on_reject"):
            if key in approval and approval[key] not in states:
                checker.error(
                    doc,
                    ("approvals", a, key),
                    f"unknown state '{approval[key]}'",
                    did_you_mean(approval[key], states),
                )
    return Workflow(
        doc.name,
        Label.of(value.get("label"), doc.name),
        entity,
        value["field"],
        tuple(
            State(
                s["name"],
                Label.of(s.get("label"), s["name"].replace("_", " ").capitalize()),
                bool(s.get("initial")),
                bool(s.get("final")),
                s.get("color"),
            )
            for s in value["states"]
        ),
        tuple(transitions),
        freeze(value.get("approvals", [])),
        doc.package,
    )


@unless_problems
def compile_automation(checker: Checker, doc: Document) -> Automation | None:
    value = doc.value
    entity = value["entity"]
    if not checker.known_entity(doc, ("entity",), entity):
        return None
    trigger = value["trigger"]
    given = [k for k in TRIGGER_TYPES if k in trigger]
    if len(given) != 1:
        names = [f"'{name}'" for name in TRIGGER_TYPES]
        checker.error(
            doc,
            ("trigger",),
            f"a trigger needs exactly one of {', '.join(names[:-1])} or {names[-1]}",
        )
    if "date_field" in trigger and checker.known_field(
        doc, ("trigger", "date_field"), entity, trigger["date_field"]
    ):
        kind = checker.field_type(entity, trigger["date_field"])
        if FIELD_TYPES[kind].category != "date":
            checker.error(
                doc,
                ("trigger", "date_field"),
                f"'{trigger['date_field']}' is {article(kind)}, not a date",
            )
    for index, field_name in enumerate(trigger.get("fields", ())):
        checker.known_field(doc, ("trigger", "fields", index), entity, field_name)
    condition = checker.expression(doc, ("condition",), value.get("condition"), entity)
    for index, action in enumerate(value["actions"]):
        if action["type"] not in ACTION_TYPES:
            checker.error(
                doc,
                ("actions", index, "type"),
                f"unknown action type '{action['type']}'",
                did_you_mean(action["type"], ACTION_TYPES) or f"one of: {', '.join(ACTION_TYPES)}",
            )
    return Automation(
        doc.name,
        Label.of(value.get("label"), doc.name),
        entity,
        freeze(value),
        condition,
        doc.package,
    )
