"""Reading approvals: one with its steps, tasks and history; a record's; what waits
for whom."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from engine import Actor
from engine.errors import Forbidden, NotFound

from ._approval_rows import APPROVED, PENDING, REJECTED, ApprovalRows, _now, _today


class ApprovalReads(ApprovalRows):
    """What the API shows of approvals."""

    # reading --------------------------------------------------------------------------------

    def get(self, actor: Actor, approval_id: int) -> dict[str, Any]:
        """One approval with its steps, their approvers and its history; for those
        involved (submitter, approvers, their stand-ins) and those who can see the record."""
        with self.records.reader.connect() as conn:
            row = self._row(conn, approval_id)
            if not self._involved(conn, actor, row):
                ent = self.records.entity(row["entity"])
                try:
                    self.records.access.readable(conn, actor, ent, int(row["record_id"]))
                except (Forbidden, NotFound):
                    raise NotFound(f"no approval with id {approval_id}") from None
            return self._describe(conn, row)

    def for_record(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        """Every approval of a record the actor can see, newest first, with the history."""
        ent = self.records.entity(entity)
        with self.records.reader.connect() as conn:
            if not self.records.access.exists(conn, ent, record_id):
                raise NotFound(f"no {ent.name} with id {record_id}")
            self.records.access.readable(conn, actor, ent, record_id)
            a = self.approvals
            rows = conn.execute(
                sa.select(a)
                .where(a.c.entity == ent.name, a.c.record_id == record_id)
                .order_by(a.c.id.desc())
            ).mappings()
            return [self._describe(conn, dict(r)) for r in rows]

    def record_events(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        kinds: Collection[str],
        *,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events of ``kinds`` of every approval of a record the actor
        can see, newest first, each with its approval's ``workflow`` and ``approval``: one
        query, for the record's timeline."""
        ent = self.records.entity(entity)
        a, e = self.approvals, self.events
        with self.records.reader.connect() as conn:
            self.records.access.readable(conn, actor, ent, record_id)
            rows = conn.execute(
                sa.select(
                    e.c.kind,
                    e.c.step,
                    e.c.actor_id,
                    e.c.on_behalf_of,
                    e.c.comment,
                    e.c.at,
                    a.c.workflow,
                    a.c.approval,
                )
                .join(a, a.c.id == e.c.approval_id)
                .where(
                    a.c.entity == ent.name,
                    a.c.record_id == record_id,
                    e.c.kind.in_(sorted(kinds)),
                )
                .order_by(e.c.id.desc())
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def listing(
        self, actor: Actor, status: str = "pending", *, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """``pending``: what waits for the actor (or for those they stand in for today);
        ``decided``: what they decided; ``mine``: what they submitted. Newest first;
        ``before`` (an approval id) pages on."""
        a, t, s = self.approvals, self.tasks, self.steps
        with self.records.reader.connect() as conn:
            if status == "mine":
                where = a.c.submitted_by == actor.user_id
            elif status == "decided":
                where = a.c.id.in_(
                    sa.select(t.c.approval_id).where(
                        t.c.decided_by == actor.user_id, t.c.status.in_((APPROVED, REJECTED))
                    )
                )
            else:
                for_whom = [
                    actor.user_id,
                    *self.directory.delegators(conn, actor.user_id or 0, _today(actor, _now())),
                ]
                where = sa.and_(
                    a.c.status == PENDING,
                    a.c.id.in_(
                        sa.select(t.c.approval_id)
                        .join(s, s.c.id == t.c.step_id)
                        .where(
                            t.c.status == PENDING,
                            s.c.status == PENDING,
                            t.c.approver_id.in_(for_whom),
                        )
                    ),
                )
            query = sa.select(a).where(where).order_by(a.c.id.desc()).limit(limit)
            if before is not None:
                query = query.where(a.c.id < before)
            rows = [dict(r) for r in conn.execute(query).mappings()]
            found = []
            for row in rows:
                item = self._describe(conn, row, history=False)
                item["record"] = self._title(conn, row)
                found.append(item)
            return found

    def _involved(self, conn: sa.Connection, actor: Actor, row: Mapping[str, Any]) -> bool:
        if actor.user_id is None:
            return False
        if row["submitted_by"] == actor.user_id:
            return True
        t = self.tasks
        people = {
            int(u)
            for u in conn.scalars(sa.select(t.c.approver_id).where(t.c.approval_id == row["id"]))
            if u is not None
        }
        people |= {
            int(u)
            for u in conn.scalars(sa.select(t.c.decided_by).where(t.c.approval_id == row["id"]))
            if u is not None
        }
        today = _today(actor, _now())
        return actor.user_id in people or bool(
            people & set(self.directory.delegators(conn, actor.user_id, today))
        )

    def _title(self, conn: sa.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
        ent = self.model.entities.get(row["entity"])
        summary: dict[str, Any] = {"entity": row["entity"], "id": row["record_id"]}
        if ent is None:
            return summary
        summary["label"] = ent.label.to_json()
        table = self.records.tables.table(ent.name)
        title = ent.title_field
        if title and title in table.c:
            summary["title"] = conn.scalar(
                sa.select(table.c[title]).where(table.c.id == row["record_id"])
            )
        return summary

    def _steps(self, conn: sa.Connection, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        s, t = self.steps, self.tasks
        tasks: dict[int, list[dict[str, Any]]] = {}
        for task in conn.execute(
            sa.select(t).where(t.c.approval_id == row["id"]).order_by(t.c.id)
        ).mappings():
            decided_by = task["decided_by"]
            tasks.setdefault(int(task["step_id"]), []).append(
                {
                    "id": task["id"],
                    "approver_id": task["approver_id"],
                    "status": task["status"],
                    "decided_by": decided_by,
                    "on_behalf_of": task["approver_id"]
                    if decided_by is not None and decided_by != task["approver_id"]
                    else None,
                    "decided_at": task["decided_at"],
                    "comment": task["comment"],
                    "escalated": task["seat"] != task["id"],
                }
            )
        labels: dict[str, Any] = {}
        try:
            _, approval = self._definition(row)
            labels = {step.name: step.label.to_json() for step in approval.steps}
        except NotFound:
            pass
        return [
            {
                "name": step["step"],
                "label": labels.get(step["step"], step["step"]),
                "stage": step["stage"],
                "status": step["status"],
                "needed": step["needed"],
                "approved": len(
                    {t["id"] for t in tasks.get(int(step["id"]), ()) if t["status"] == APPROVED}
                ),
                "started_at": step["started_at"],
                "decided_at": step["decided_at"],
                "tasks": tasks.get(int(step["id"]), []),
            }
            for step in conn.execute(
                sa.select(s).where(s.c.approval_id == row["id"]).order_by(s.c.id)
            ).mappings()
        ]

    def _describe(
        self, conn: sa.Connection, row: Mapping[str, Any], *, history: bool = True
    ) -> dict[str, Any]:
        steps = self._steps(conn, row)
        found = {
            "id": row["id"],
            "entity": row["entity"],
            "record_id": row["record_id"],
            "workflow": row["workflow"],
            "approval": row["approval"],
            "transition": row["transition"],
            "status": row["status"],
            "submitted_by": row["submitted_by"],
            "submitted_at": row["submitted_at"],
            "decided_at": row["decided_at"],
            "version": row["version"],
            "steps": steps,
            "waiting_for": sorted(
                {
                    t["approver_id"]
                    for s in steps
                    if s["status"] == PENDING
                    for t in s["tasks"]
                    if t["status"] == PENDING
                }
            ),
        }
        if history:
            e = self.events
            found["history"] = [
                {
                    "kind": ev["kind"],
                    "step": ev["step"],
                    "actor_id": ev["actor_id"],
                    "on_behalf_of": ev["on_behalf_of"],
                    "comment": ev["comment"],
                    "recipients": list(ev["recipients"] or ()),
                    "at": ev["at"],
                }
                for ev in conn.execute(
                    sa.select(e).where(e.c.approval_id == row["id"]).order_by(e.c.id)
                ).mappings()
            ]
        return found
