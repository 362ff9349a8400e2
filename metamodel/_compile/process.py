"""Processes: workflows (states, transitions, approvals) and automations (a trigger,
a condition and actions of registered types, :data:`~metamodel.processes.ACTION_TYPES`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from croniter import croniter

from .._errors import article, did_you_mean
from .._merge import Document
from .._yaml import Location
from ..expressions import STRING
from ..fieldtypes import FIELD_TYPES
from ..model import Action, Assignment, Automation, Label, State, Transition, Workflow, freeze
from ..processes import ACTION_TYPES, TRIGGER_TYPES
from ._approvals import compile_approvals
from ._context import BUILTIN_ROLES, Checker, unless_problems

#: System fields an action may write: handing the record (or the one it creates) over.
OWNERSHIP = ("owner_id", "team_id")

#: What a workflow's action values may read besides the record's fields.
TRANSITION_NAMES = {
    "transition.name": STRING,
    "transition.from_state": STRING,
    "transition.to_state": STRING,
    "transition.comment": STRING,
}


@unless_problems
def compile_workflow(checker: Checker, doc: Document) -> Workflow | None:
    value = doc.value
    entity = value["entity"]
    problems = len(checker.problems)
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
        for key in ("required_fields", "fields"):
            for f, field_name in enumerate(spec.get(key, ())):
                checker.known_field(doc, (*where, key, f), entity, field_name, allow_system=False)
        if "approval" in spec and spec["approval"] not in approvals:
            checker.error(
                doc,
                (*where, "approval"),
                f"unknown approval '{spec['approval']}'",
                did_you_mean(spec["approval"], approvals),
            )
        actions: list[Action] = []
        if spec.get("set"):
            values = _assignments(checker, doc, (*where, "set"), entity, entity, spec["set"])
            actions.append(Action("set", freeze({"values": spec["set"]}), values, entity))
        actions += compile_actions(checker, doc, (*where, "actions"), entity, spec.get("actions"))
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
                tuple(spec.get("fields", ())),
                tuple(actions),
            )
        )
    approvals_compiled = compile_approvals(checker, doc, entity, states)
    started = {t.approval for t in transitions}
    for a, approval in enumerate(value.get("approvals", ())):
        if approval["name"] not in started:
            checker.error(
                doc,
                ("approvals", a, "name"),
                f"no transition starts approval '{approval['name']}'",
                "name it in a transition's 'approval', or remove it",
            )
    compiled_states = tuple(
        State(
            s["name"],
            Label.of(s.get("label"), s["name"].replace("_", " ").capitalize()),
            bool(s.get("initial")),
            bool(s.get("final")),
            s.get("color"),
            bool(s.get("locked")),
            compile_actions(checker, doc, ("states", i, "on_enter"), entity, s.get("on_enter")),
            compile_actions(checker, doc, ("states", i, "on_exit"), entity, s.get("on_exit")),
        )
        for i, s in enumerate(value["states"])
    )
    workflow = Workflow(
        doc.name,
        Label.of(value.get("label"), doc.name),
        entity,
        value["field"],
        compiled_states,
        tuple(transitions),
        approvals_compiled,
        doc.package,
    )
    if len(checker.problems) == problems:  # root causes first: a broken one is not judged
        _check_graph(checker, doc, workflow)
        _check_roles(checker, doc, workflow)
    return workflow


def _check_graph(checker: Checker, doc: Document, workflow: Workflow) -> None:
    """Every state can be reached from the initial one, and every state that is not final
    can be left."""
    names = [s.name for s in workflow.states]
    if len(set(names)) != len(names) or any(
        t.to not in names or any(s != "*" and s not in names for s in t.sources)
        for t in workflow.transitions
    ):
        return  # the unknown names are reported already
    settles = {a.name: [s for s in (a.on_approve, a.on_reject, a.on_recall) if s]
               for a in workflow.approvals}  # fmt: skip
    edges: dict[str, set[str]] = {name: set() for name in names}
    for transition in workflow.transitions:
        for source in names:
            if transition.allowed_from(source):
                edges[source].add(transition.to)
        for settled in settles.get(transition.approval or "", ()):
            if settled in edges:  # an approval settles the record in another state
                edges[transition.to].add(settled)
    initial = workflow.initial.name
    reached, todo = {initial}, [initial]
    while todo:
        for nxt in edges[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    for i, state in enumerate(workflow.states):
        if state.name not in reached:
            checker.error(
                doc,
                ("states", i, "name"),
                f"state '{state.name}' cannot be reached from the initial state '{initial}'",
                "add a transition that leads to it, or remove it",
            )
        elif not state.final and not edges[state.name] - {state.name}:
            checker.error(
                doc,
                ("states", i, "name"),
                f"state '{state.name}' is not final, but no transition leaves it",
                "add a transition from it, or mark it 'final: true'",
            )


def _check_roles(checker: Checker, doc: Document, workflow: Workflow) -> None:
    """A transition that names roles needs one of them to be able to update the record
    (firing a transition changes it); ``admin`` may do everything."""
    role_docs = checker.docs("role")
    for i, transition in enumerate(workflow.transitions):
        roles = [r for r in transition.roles if r in role_docs or r in BUILTIN_ROLES]
        if not roles or len(roles) != len(transition.roles) or set(roles) & set(BUILTIN_ROLES):
            continue
        if any(_may_update(role_docs[r].value, workflow.entity) for r in roles):
            continue
        listed = ", ".join(roles)
        checker.error(
            doc,
            ("transitions", i, "roles"),
            f"no role may fire transition '{transition.name}': "
            f"{'neither of' if len(roles) == 2 else 'none of' if len(roles) > 2 else ''}"
            f"{' ' if len(roles) > 1 else ''}{listed} may update {workflow.entity}",
            f"give {'one of them' if len(roles) > 1 else 'it'} 'update' on {workflow.entity},"
            " or name a role that has it",
        )


def _may_update(role: Mapping[str, Any], entity: str) -> bool:
    permissions = role.get("permissions") or {}
    rule = permissions.get(entity) or permissions.get("*") or {}
    return bool(rule.get("update", "none") != "none")


def compile_actions(
    checker: Checker, doc: Document, where: Location, entity: str, specs: Any
) -> tuple[Action, ...]:
    """A list of actions run on a record of ``entity``: their types known, the fields
    they write known, their expressions checked against ``entity``."""
    actions = []
    for index, spec in enumerate(specs or ()):
        at = (*where, index)
        kind = spec["type"]
        if kind not in ACTION_TYPES:
            checker.error(
                doc,
                (*at, "type"),
                f"unknown action type '{kind}'",
                did_you_mean(kind, ACTION_TYPES) or f"one of: {', '.join(ACTION_TYPES)}",
            )
            continue
        options = freeze({k: v for k, v in spec.items() if k != "type"})
        if kind == "set":
            target, written = spec.get("target"), entity
            if target is not None:
                written = _reference(checker, doc, (*at, "target"), entity, target, None) or ""
            values = _assignments(checker, doc, (*at, "values"), entity, written, spec["values"])
            actions.append(Action(kind, options, values, written or None, target))
        elif kind == "create":
            created = spec["entity"]
            values = ()
            if checker.known_entity(doc, (*at, "entity"), created):
                values = _assignments(
                    checker, doc, (*at, "values"), entity, created, spec["values"]
                )
            link = spec.get("link")
            if link is not None:
                _reference(checker, doc, (*at, "link"), entity, link, created)
            actions.append(Action(kind, options, values, created, None, link))
        elif kind == "return_to_pool":
            if not checker.entity_docs.get(entity, {}).get("public_pool"):
                checker.error(
                    doc,
                    (*at, "type"),
                    f"entity '{entity}' has no public pool to return records to",
                    "declare its public_pool (docs/pools.md)",
                )
            actions.append(Action(kind, options, (), entity))
        else:
            actions.append(Action(kind, options))
    return tuple(actions)


def _reference(
    checker: Checker, doc: Document, at: Location, entity: str, name: str, to: str | None
) -> str | None:
    """The entity reference field ``name`` of ``entity`` points at (which must be ``to``,
    if given); None, reported, when it is not such a field."""
    if not checker.known_field(doc, at, entity, name, allow_system=False):
        return None
    spec = checker.field_spec(entity, name) or {}
    if spec.get("type") != "reference":
        checker.error(doc, at, f"'{name}' is {article(str(spec.get('type')))}, not a reference")
        return None
    if to is not None and spec.get("to") != to:
        checker.error(doc, at, f"'{name}' refers to {spec.get('to')}, not to {to}")
        return None
    return str(spec.get("to"))


def _assignments(
    checker: Checker,
    doc: Document,
    at: Location,
    source: str,
    written: str,
    values: Mapping[str, Any],
) -> tuple[Assignment, ...]:
    """``{field: constant or '=expression'}`` for fields of ``written``, expressions read
    from a record of ``source``."""
    found = []
    for name, given in values.items():
        where = (*at, name)
        owner = name in OWNERSHIP and bool(checker.entity_docs.get(written, {}).get("ownable"))
        if not written or not checker.known_field(doc, where, written, name, allow_system=owner):
            continue
        if isinstance(given, str) and given.startswith("="):
            expression = checker.expression(
                doc, where, given[1:].strip(), source, expect=None, extra=TRANSITION_NAMES
            )
            found.append(Assignment(name, None, expression))
            continue
        spec = checker.field_spec(written, name) or {}
        choices = [o if isinstance(o, str) else o["value"] for o in spec.get("options", ())]
        if spec.get("type") == "choice" and given is not None and given not in choices:
            checker.error(
                doc,
                where,
                f"'{given}' is not an option of {written}.{name}",
                did_you_mean(str(given), choices),
            )
        found.append(Assignment(name, given))
    return tuple(found)


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
        elif not _indexed(checker, entity, trigger["date_field"]):
            checker.error(
                doc,
                ("trigger", "date_field"),
                f"'{trigger['date_field']}' has no index: a reminder finds its records by an "
                "indexed query, never by reading them all",
                f"add 'index: true' to {entity}.{trigger['date_field']}",
            )
    _trigger_options(checker, doc, trigger, entity)
    for index, field_name in enumerate(trigger.get("fields", ())):
        checker.known_field(doc, ("trigger", "fields", index), entity, field_name)
    condition = checker.expression(doc, ("condition",), value.get("condition"), entity)
    actions = compile_actions(checker, doc, ("actions",), entity, value["actions"])
    for index, action in enumerate(actions):
        _recipient(checker, doc, ("actions", index, "to"), entity, action)
    return Automation(
        doc.name,
        Label.of(value.get("label"), doc.name),
        entity,
        freeze(value),
        condition,
        doc.package,
        actions,
        bool(value.get("async")),
        value.get("enabled", True) is not False,
    )


#: Trigger options and the trigger they belong to.
_TRIGGER_OPTIONS = {
    "fields": ("event", "updated"),
    "transitions": ("event", "transition"),
    "offset_days": ("date_field", None),
    "yearly": ("date_field", None),
}


def _trigger_options(
    checker: Checker, doc: Document, trigger: Mapping[str, Any], entity: str
) -> None:
    """Each option goes with its trigger (``fields`` with ``event: updated``…); a
    schedule is a cron line; ``transitions`` names transitions of the entity."""
    for option, (kind, event) in _TRIGGER_OPTIONS.items():
        if option not in trigger or kind not in trigger:
            if option in trigger and any(k in trigger for k in TRIGGER_TYPES):
                checker.error(doc, ("trigger", option), f"'{option}' goes with a '{kind}' trigger")
            continue
        if event is not None and trigger[kind] != event:
            checker.error(
                doc,
                ("trigger", option),
                f"'{option}' goes with 'event: {event}', not 'event: {trigger[kind]}'",
            )
    if isinstance(trigger.get("schedule"), str) and not croniter.is_valid(trigger["schedule"]):
        checker.error(
            doc,
            ("trigger", "schedule"),
            f"'{trigger['schedule']}' is not a cron schedule",
            "five fields: minute hour day-of-month month day-of-week, e.g. '0 7 * * 1-5'",
        )
    names = {
        t["name"]
        for w in checker.docs("workflow").values()
        if w.value.get("entity") == entity
        for t in w.value.get("transitions", ())
    }
    for index, name in enumerate(trigger.get("transitions", ())):
        if name not in names:
            checker.error(
                doc,
                ("trigger", "transitions", index),
                f"{entity} has no transition '{name}'",
                did_you_mean(name, names),
            )


def _indexed(checker: Checker, entity: str, name: str) -> bool:
    spec = checker.field_spec(entity, name) or {}
    if spec.get("index") or spec.get("unique"):
        return True
    indexes = checker.entity_docs.get(entity, {}).get("indexes", ())
    return any(name in index.get("fields", ()) for index in indexes)


def _recipient(checker: Checker, doc: Document, at: Location, entity: str, action: Action) -> None:
    """A notify action's ``to``: owner, manager, role:<name>,
    user:<username> or a user field of the entity."""
    if action.type != "notify":
        return
    to = str(action.options.get("to", "owner"))
    if to in ("owner", "manager"):  # of a record without an owner: its creator
        return
    if to.startswith("role:"):
        checker.known_role(doc, at, to[5:])
        return
    if to.startswith("user:"):
        return
    if checker.known_field(doc, at, entity, to, allow_system=True):
        kind = checker.field_type(entity, to)
        if kind != "user" and to not in ("created_by", "updated_by", "owner_id"):
            checker.error(
                doc,
                at,
                f"'{to}' is {article(kind)}, not a user",
                "notify owner, manager, role:<name>, user:<username> or a user field",
            )
