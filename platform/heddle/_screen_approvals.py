"""The approval screens: the record page's approval panel, the deciding and recalling
forms, and ``/approvals`` (what waits for me, what I decided, what I submitted).

The work is :class:`workflows.Approvals`'s, as in the API: a form posts to
``/app/<entity>/<id>/approvals/<approval_id>/approve`` (``reject``, ``recall``) with its
comment and the approval's version, and comes back to the record page (or to the inbox,
``next``) with what happened as a message: done, not yours (403), decided already or
changed meanwhile (409), a rejection without its comment (422).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from engine import Actor, EngineError, NotFound, StaleVersion
from metamodel import Approval, Entity, local_today
from ui_renderer import approvals as A
from workflows import Approvals

from ._screen_workflow import _people
from ._screens import MAX_ID, actor, local_path, locale, page, ui
from .extensions import runtime
from .i18n import gettext as _

TABS = ("pending", "decided", "mine")
INBOX_LENGTH = 100
ACTIONS = ("approve", "reject", "recall")


def _approvals() -> Approvals:
    return Approvals(runtime().records)


def _definition(workflow: str, name: str) -> Approval | None:
    found = runtime().model.workflows.get(workflow)
    return next((a for a in found.approvals if a.name == name), None) if found else None


def _stand_ins(service: Approvals, act: Actor) -> set[int]:
    """The users whose approvals ``act`` decides today: themselves and who delegated."""
    if act.user_id is None:
        return set()
    today = act.today or local_today()
    with runtime().records.reader.connect() as conn:
        return {act.user_id, *service.directory.delegators(conn, act.user_id, today)}


def _mentioned(approvals: Iterable[Mapping[str, Any]]) -> set[Any]:
    ids: set[Any] = set()
    for item in approvals:
        ids.add(item.get("submitted_by"))
        for step in item["steps"]:
            for task in step["tasks"]:
                ids |= {task.get("approver_id"), task.get("decided_by")}
        for event in item.get("history") or ():
            ids |= {event.get("actor_id"), event.get("on_behalf_of")}
            ids |= set(event.get("recipients") or ())
    return ids


def record_approval(act: Actor, ent: Entity, record_id: int, here: str) -> dict[str, Any]:
    """What the record page adds for approvals: ``approval``, the panel of the record's
    latest approval (None when it never had one)."""
    if not any(w.approvals for w in runtime().model.workflows_of(ent.name)):
        return {"approval": None}
    service = _approvals()
    a = service.approvals
    with runtime().records.reader.connect() as conn:
        newest, count = conn.execute(
            sa.select(sa.func.max(a.c.id), sa.func.count()).where(
                a.c.entity == ent.name, a.c.record_id == record_id
            )
        ).one()
    if newest is None:
        return {"approval": None}
    latest = service.get(act, int(newest))  # the history of the latest one only
    pending = latest["status"] == "pending"
    definition = _definition(latest["workflow"], latest["approval"])
    deciders = _stand_ins(service, act) if pending else set()
    can_recall = (
        pending
        and (latest["submitted_by"] == act.user_id or act.is_admin)
        and (definition is None or definition.recall or act.is_admin)
    )
    shown = A.panel(
        latest,
        definition,
        _people(_mentioned([latest])),
        here,
        # an administrator may decide for any approver, as the API lets them
        can_decide=bool(deciders & set(latest["waiting_for"])) or (pending and act.is_admin),
        can_recall=bool(can_recall),
        earlier=int(count) - 1,
    )
    return {"approval": shown}


# --- deciding ------------------------------------------------------------------------------


def _refusal(exc: EngineError, action: str) -> str:
    """What the user reads when a decision is refused."""
    if isinstance(exc, StaleVersion):
        return _("Someone acted on this approval in the meantime: look again.")
    if exc.status == 403:
        if action == "recall":
            return _("Only the person who submitted it may recall this approval.")
        if "own request" in exc.message:
            return _("You submitted this yourself: recall it instead of deciding it.")
        return _("This approval is not yours to decide: it waits for someone else.")
    if exc.status == 409:
        return _("This approval has been decided already.")
    if exc.status == 422 and action == "reject":
        return _("Say why you reject it: a comment is required.")
    return _("The approval could not be changed: %(reason)s", reason=exc.message)


def _done(action: str) -> str:
    if action == "approve":
        return _("You approved it.")
    if action == "reject":
        return _("You rejected it.")
    return _("You recalled it.")


@ui.post("/app/<entity>/<record_id>/approvals/<int:approval_id>/<action>")
def decide(entity: str, record_id: int, approval_id: int, action: str) -> ResponseReturnValue:
    """Approve, reject or recall an approval of the record; back to the record page, or
    to ``next`` (the inbox) when the form names it."""
    act = actor()
    ent = runtime().model.entities.get(entity)
    if ent is None or action not in ACTIONS or approval_id > MAX_ID:
        raise NotFound(f"no such approval action: {action}")
    service = _approvals()
    found = service.get(act, approval_id)  # 404 when out of sight
    if (found["entity"], int(found["record_id"])) != (ent.name, int(record_id)):
        raise NotFound(f"no approval with id {approval_id}")
    back = local_path(request.form.get("next")) if request.form.get("next") else None
    comment = str(request.form.get("comment", ""))
    version = request.form.get("version", "")
    try:
        chosen = int(version) if version.isascii() and version.isdigit() else None
        method = {"approve": service.approve, "reject": service.reject}.get(action, service.recall)
        method(act, approval_id, comment=comment or None, version=chosen)
    except EngineError as exc:
        flash(_refusal(exc, action), "error" if exc.status != 409 else "warning")
    else:
        flash(_done(action), "success")
    return redirect(back or url_for("ui.record", entity=ent.name, record_id=record_id))


# --- the inbox -------------------------------------------------------------------------------


@ui.get("/approvals")
def approvals_inbox() -> ResponseReturnValue:
    """``?tab=pending`` (default): what waits for me; ``decided``; ``mine``."""
    act, here = actor(), locale()
    tab = request.args.get("tab", "pending")
    if tab not in TABS:
        tab = "pending"
    heddle = runtime()
    found = _approvals().listing(act, tab, limit=INBOX_LENGTH)
    definitions = {
        (w.name, a.name): a for w in heddle.model.workflows.values() for a in w.approvals
    }
    rows = A.inbox(
        found,
        heddle.model.entities,
        definitions,
        _people(item.get("submitted_by") for item in found),
        here,
        deciding=tab == "pending",
    )
    title = _("Approvals")
    return page(
        "approvals.html",
        title,
        "approvals",
        tab=tab,
        tabs=(
            ("pending", _("Waiting for me")),
            ("decided", _("Decided by me")),
            ("mine", _("Submitted by me")),
        ),
        rows=rows,
        next_url=url_for("ui.approvals_inbox", tab=tab),
    )
