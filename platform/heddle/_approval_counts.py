"""How many approvals wait for a user: the navigation's badge on every page."""

from __future__ import annotations

import sqlalchemy as sa

from engine import Actor
from metamodel import local_today
from workflows import Approvals

from .extensions import runtime


def has_approvals() -> bool:
    """Whether the Model starts any approval (else the navigation has no "Approvals")."""
    return any(w.approvals for w in runtime().model.workflows.values())


def pending_count(act: Actor) -> int:
    """How many approvals wait for the user (or those they stand in for today): one
    query, for the navigation's badge."""
    if act.user_id is None:
        return 0
    service = Approvals(runtime().records)
    a, s, t = service.approvals, service.steps, service.tasks
    d = service.directory.delegations
    today = act.today or local_today()
    delegators = sa.select(d.c.user_id).where(
        d.c.delegate_id == act.user_id, d.c.starts_on <= today, d.c.ends_on >= today
    )
    query = (
        sa.select(sa.func.count(sa.distinct(t.c.approval_id)))
        .select_from(t.join(s, s.c.id == t.c.step_id).join(a, a.c.id == t.c.approval_id))
        .where(
            a.c.status == "pending",
            s.c.status == "pending",
            t.c.status == "pending",
            sa.or_(t.c.approver_id == act.user_id, t.c.approver_id.in_(delegators)),
        )
    )
    with runtime().records.reader.connect() as conn:
        return int(conn.scalar(query) or 0)
