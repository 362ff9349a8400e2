"""A workflow's approvals: steps, who approves them, the states they settle in.

Checked here, each at its place: an approver nobody could be (an unknown role, a role
that cannot read the entity, a field that is not a user field), a step needing more
approvers than it names, states that do not exist. Whether a named user exists, or an
owner has a manager, is known only when the approval starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import article, did_you_mean
from .._merge import Document
from .._yaml import Location
from ..model import Approval, ApprovalStep, Label
from ._context import BUILTIN_ROLES, Checker

#: The seconds in one unit of a delay (``30m``, ``48h``, ``2d``).
UNITS = {"m": 60, "h": 3600, "d": 86400}
STATE_KEYS = ("on_approve", "on_reject", "on_recall")


def seconds(delay: str | None) -> int | None:
    """``'48h'`` → 172800; None stays None."""
    if delay is None:
        return None
    return int(delay[:-1]) * UNITS[delay[-1]]


def compile_approvals(
    checker: Checker, doc: Document, entity: str, states: Sequence[str]
) -> tuple[Approval, ...]:
    specs = doc.value.get("approvals", ())
    checker.unique_names(doc, ("approvals",), specs, "approval")
    compiled = []
    for a, spec in enumerate(specs):
        where = ("approvals", a)
        checker.unique_names(doc, (*where, "steps"), spec["steps"], "step")
        steps = tuple(
            _step(checker, doc, (*where, "steps", s), entity, step)
            for s, step in enumerate(spec["steps"])
        )
        for key in STATE_KEYS:
            if key in spec and spec[key] not in states:
                checker.error(
                    doc,
                    (*where, key),
                    f"unknown state '{spec[key]}'",
                    did_you_mean(spec[key], states),
                )
        if "escalate_to" in spec:
            _approver(checker, doc, (*where, "escalate_to"), entity, spec["escalate_to"])
        compiled.append(
            Approval(
                spec["name"],
                Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize()),
                steps,
                spec.get("on_approve"),
                spec.get("on_reject"),
                spec.get("on_recall"),
                bool(spec.get("allow_self_approval", False)),
                bool(spec.get("recall", True)),
                seconds(spec.get("remind_after")),
                seconds(spec.get("escalate_after")),
                spec.get("escalate_to") or ("manager" if "escalate_after" in spec else None),
            )
        )
    return tuple(compiled)


def _step(
    checker: Checker, doc: Document, where: Location, entity: str, spec: Mapping[str, Any]
) -> ApprovalStep:
    given = spec["approver"]
    approvers = (given,) if isinstance(given, str) else tuple(given)
    for index, approver in enumerate(approvers):
        at = (*where, "approver") if isinstance(given, str) else (*where, "approver", index)
        _approver(checker, doc, at, entity, approver)
    mode = spec.get("mode", "any")
    named = [a for a in approvers if a.startswith("user:")]
    if isinstance(mode, int) and len(named) == len(approvers) and mode > len(set(named)):
        checker.error(
            doc,
            (*where, "mode"),
            f"step '{spec['name']}' needs {mode} approvals but names only "
            f"{len(set(named))} approver{'s' if len(set(named)) != 1 else ''}",
            "lower the number, or name more approvers",
        )
    when = checker.expression(doc, (*where, "when"), spec.get("when"), entity)
    return ApprovalStep(
        spec["name"],
        Label.of(spec.get("label"), spec["name"].replace("_", " ").capitalize()),
        approvers,
        mode,
        when,
        bool(spec.get("parallel", False)),
    )


def _approver(checker: Checker, doc: Document, at: Location, entity: str, approver: str) -> None:
    """An approver someone could be: a known role that may read the entity, a user field."""
    kind, _, name = approver.partition(":")
    if kind == "role":
        if name not in checker.role_names:
            checker.known_role(doc, at, name)
        elif name not in BUILTIN_ROLES and not _may_read(checker, name, entity):
            checker.error(
                doc,
                at,
                f"nobody could approve: role '{name}' cannot read {entity}",
                f"give role '{name}' 'read' on {entity}, or name a role that has it",
            )
    elif kind == "field":
        if not checker.known_field(doc, at, entity, name):
            return
        kind_of = checker.field_type(entity, name)
        if kind_of != "user":
            checker.error(
                doc,
                at,
                f"nobody could approve: '{name}' is {article(kind_of)}, not a user field",
                "name a field of type user, whose users approve",
            )


def _may_read(checker: Checker, role: str, entity: str) -> bool:
    permissions = checker.docs("role")[role].value.get("permissions") or {}
    rule = permissions.get(entity) or permissions.get("*") or {}
    return bool(rule.get("read", "none") != "none")
