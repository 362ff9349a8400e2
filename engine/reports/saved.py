"""Saved reports: an ad-hoc report a user keeps, private or shared with a role.

A saved report is a report *document* kept in ``heddle_saved_report`` — the body of
``POST /api/v1/reports/query`` — and compiled by :func:`metamodel.report_from_value`
each time it runs, by the same engine as every report: not a second engine, and never
stale when the definitions change (a field removed since is a 400 naming it).

- private (``role`` empty): only its owner sees, runs and deletes it;
- shared with a role: the role's users see and run it; its owner (or an admin) deletes it;
- a saved report that reads a field its runner may not see — grouped, filtered or
  measured — is refused for that runner (403), whoever saved it.

>>> saved = SavedReports(reports)
>>> found = saved.save(actor, {"label": "My pipeline", "role": None, "report": {...}})
>>> saved.run(actor, found["id"], {"period": "this_month"})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from metamodel import DefinitionError, Report, report_from_value

from ..context import Actor
from ..errors import BadRequest, Forbidden, NotFound
from ..tables import SAVED_REPORT_TABLE
from . import ReportResult, Reports

MAX_LABEL = 200
MAX_SAVED = 500  # reports one user may keep


def compile_document(reports: Reports, document: Any, name: str = "query") -> Report:
    """A report document compiled against the Model; a 400 whose ``fields`` say where
    each mistake is (``measures[0].aggregate``)."""
    if not isinstance(document, Mapping):
        raise BadRequest("Invalid report: send a report document (an object)")
    try:
        report = report_from_value(reports.model, document)
    except DefinitionError as exc:
        fields: dict[str, list[str]] = {}
        for problem in exc.problems:
            text = f"{problem.message} ({problem.hint})" if problem.hint else problem.message
            fields.setdefault(problem.path or "report", []).append(text)
        first = next(iter(fields.items()))
        raise BadRequest(f"Invalid report: {first[0]}: {first[1][0]}", fields) from None
    return report


class SavedReports:
    def __init__(self, reports: Reports) -> None:
        self.reports = reports
        self.engine = reports.records.engine
        self.table = reports.tables.metadata.tables[SAVED_REPORT_TABLE]

    # --- what an actor may see -----------------------------------------------------------

    def _visible(self, actor: Actor) -> Any:
        table = self.table
        if actor.is_admin:
            return sa.true()
        mine = table.c.owner_id == actor.user_id
        if not actor.roles:
            return mine
        return sa.or_(mine, table.c.role.in_(sorted(actor.roles)))

    def _shown(self, row: Any, actor: Actor) -> dict[str, Any]:
        return {
            "id": row["id"],
            "label": row["label"],
            "entity": row["definition"].get("entity"),
            "owner_id": row["owner_id"],
            "role": row["role"],
            "shared": row["role"] is not None,
            "mine": row["owner_id"] == actor.user_id,
            "report": row["definition"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }

    def list(self, actor: Actor) -> list[dict[str, Any]]:
        statement = (
            sa.select(self.table)
            .where(self._visible(actor))
            .order_by(self.table.c.label, self.table.c.id)
        )
        with self.reports.records.reader.connect() as conn:
            return [self._shown(row, actor) for row in conn.execute(statement).mappings()]

    def get(self, actor: Actor, saved_id: int) -> dict[str, Any]:
        statement = sa.select(self.table).where(self.table.c.id == saved_id, self._visible(actor))
        with self.reports.records.reader.connect() as conn:
            row = conn.execute(statement).mappings().first()
        if row is None:
            raise NotFound(f"no saved report {saved_id}")
        return self._shown(row, actor)

    # --- changes --------------------------------------------------------------------------

    def save(self, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]:
        """Keep ``body["report"]`` (a report document) as ``body["label"]``, shared with
        ``body.get("role")``. The document must compile, and read only what its owner may."""
        if actor.user_id is None:
            raise Forbidden("only a user may save a report")
        unknown = set(body) - {"label", "role", "report"}
        errors: dict[str, list[str]] = {k: ["unknown key (label, role, report)"] for k in unknown}
        label = body.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
            errors["label"] = [f"give a label of 1 to {MAX_LABEL} characters"]
        role = body.get("role")
        roles = set(self.reports.model.roles) | {"admin"}
        if role is not None and (not isinstance(role, str) or role not in roles):
            errors["role"] = [f"a role: {', '.join(sorted(roles))}, or null (private)"]
        elif role is not None and not actor.is_admin and role not in actor.roles:
            errors["role"] = ["share with one of your own roles"]
        if "report" not in body:
            errors["report"] = ["give the report document"]
        if errors:
            first = next(iter(errors.items()))
            raise BadRequest(f"Invalid saved report: {first[0]}: {first[1][0]}", errors)
        document = dict(body["report"]) if isinstance(body["report"], Mapping) else body["report"]
        report = compile_document(self.reports, document)
        self.reports.check(actor, report)  # the owner may read what it reads
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(self.table)
                .where(self.table.c.owner_id == actor.user_id)
            ).scalar_one()
            if count >= MAX_SAVED:
                raise BadRequest(f"you keep {count} saved reports: delete some first")
            inserted = conn.execute(
                self.table.insert().values(
                    label=label.strip(),  # type: ignore[union-attr]
                    owner_id=actor.user_id,
                    role=role,
                    definition=document,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
        assert inserted is not None
        return self.get(actor, int(inserted[0]))

    def delete(self, actor: Actor, saved_id: int) -> None:
        found = self.get(actor, saved_id)
        if found["owner_id"] != actor.user_id and not actor.is_admin:
            raise Forbidden("only its owner may delete a saved report")
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.id == saved_id))

    def run(
        self, actor: Actor, saved_id: int, params: Mapping[str, Any], *, action: str = "read"
    ) -> ReportResult:
        """Run a saved report for ``actor``: refused (403) when it reads a field they may
        not see."""
        found = self.get(actor, saved_id)
        report = compile_document(self.reports, found["report"])
        return self.reports.run(actor, report, params, strict=True, action=action)
