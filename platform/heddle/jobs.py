"""Jobs, notifications and automations in the running platform.

- :func:`job_queue` makes the :class:`workflows.JobQueue` of a runtime from the settings
  (the web app, ``heddle worker`` and the CLI share it);
- :func:`init_app` keeps it in ``app.extensions["heddle_jobs"]`` and flushes it after
  each request that wrote to the outbox (relay to RQ, or, with no Redis, run the jobs
  here), and registers the endpoints:

  - ``GET /api/v1/notifications`` (``?unread=true``, ``limit``, ``before``) →
    ``{"data": [...], "unread": N}``; ``POST /api/v1/notifications/<id>/read``;
    ``POST /api/v1/notifications/read-all``;
  - ``GET /api/v1/automations/<name>/preview?at=<ISO date or time>`` (administrators):
    the records a scheduled automation or reminder would act on then, and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask.wrappers import Response

from engine import BadRequest, Forbidden, NotFound
from workflows import Inbox, JobQueue, Mailer
from workflows.automations import preview
from workflows.outbox import take_written

from . import api
from .extensions import csrf, runtime
from .runtime import Runtime
from .settings import import_workers

jobs_api = Blueprint("jobs_api", __name__, url_prefix="/api/v1")
csrf.exempt(jobs_api)
jobs_api.before_request(api.authenticate)
jobs_api.url_value_preprocessor(api.check_ids)

MAX_LIMIT = 200


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def job_queue(heddle: Runtime, config: Mapping[str, Any]) -> JobQueue:
    """The outbox of ``heddle``'s database, set up by the ``HEDDLE_`` settings."""
    mailer = Mailer(
        host=str(config.get("SMTP_HOST") or ""),
        port=int(config.get("SMTP_PORT") or 25),
        sender=str(config.get("SMTP_FROM") or "heddle@localhost"),
        username=str(config.get("SMTP_USER") or ""),
        password=str(config.get("SMTP_PASSWORD") or ""),
        starttls=_flag(config.get("SMTP_STARTTLS")),
    )
    return JobQueue(
        heddle.engine,
        lambda: heddle.check().records,
        redis_url=str(config.get("REDIS_URL") or ""),
        lease_seconds=float(config.get("JOB_LEASE_SECONDS") or 300),
        retry_seconds=float(config.get("JOB_RETRY_SECONDS") or 10),
        mailer=mailer,
        options={
            "reminder_cron": str(config.get("REMINDER_CRON") or "0 7 * * *"),
            "pool_recycle_cron": str(config.get("POOL_RECYCLE_CRON") or "0 6 * * *"),
            "base_url": str(config.get("BASE_URL") or ""),
            # the cap on an import's processes (workflows.data_jobs; a bad value stops here)
            "import_workers": import_workers(str(config.get("IMPORT_WORKERS") or "")),
        },
    )


def init_app(app: Flask) -> None:
    queue = job_queue(app.extensions["heddle"], app.config)
    app.extensions["heddle_jobs"] = queue

    @app.after_request
    def flush_outbox(response: Response) -> Response:
        """The request's transaction has committed: hand its jobs over."""
        if take_written():
            queue.flush()
        return response

    app.register_blueprint(jobs_api)


def jobs() -> JobQueue:
    found: JobQueue = current_app.extensions["heddle_jobs"]
    return found


# notifications ---------------------------------------------------------------------------


def _user_id() -> int:
    user_id = api.actor().user_id
    if user_id is None:  # pragma: no cover - every API caller is a user
        raise Forbidden("notifications belong to users")
    return user_id


def _limit() -> int:
    text = request.args.get("limit", "50")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(
            f"limit must be a whole number from 1 to {MAX_LIMIT}",
            {"limit": [f"A number from 1 to {MAX_LIMIT}."]},
        )
    return int(text)


@jobs_api.get("/notifications")
def notifications() -> ResponseReturnValue:
    """The caller's notifications, newest first, and how many are unread."""
    before = request.args.get("before")
    if before is not None and not (before.isdigit() and int(before) <= api.MAX_ID):
        raise BadRequest("before must be a notification id", {"before": ["Not a valid id."]})
    inbox = Inbox(runtime().tables)
    user_id = _user_id()
    with runtime().records.reader.connect() as conn:
        found = inbox.list(
            conn,
            user_id,
            unread=_flag(request.args.get("unread", "")),
            limit=_limit(),
            before=int(before) if before is not None else None,
        )
        unread = inbox.unread(conn, user_id)
    return jsonify(data=found, unread=unread)


@jobs_api.post("/notifications/<int:notification_id>/read")
def mark_read(notification_id: int) -> ResponseReturnValue:
    """Mark one of the caller's notifications read."""
    inbox = Inbox(runtime().tables)
    user_id = _user_id()
    with runtime().records.transaction() as conn:
        inbox.mark_read(conn, user_id, notification_id)
        unread = inbox.unread(conn, user_id)
    return jsonify(data={"id": notification_id, "read": True}, unread=unread)


@jobs_api.post("/notifications/read-all")
def mark_all_read() -> ResponseReturnValue:
    """Mark every notification of the caller read."""
    inbox = Inbox(runtime().tables)
    with runtime().records.transaction() as conn:
        marked = inbox.mark_all_read(conn, _user_id())
    return jsonify(data={"marked": marked}, unread=0)


# automations -----------------------------------------------------------------------------


def parse_moment(text: str | None) -> dt.datetime | None:
    """``2026-06-02`` (that day, at the reminders' hour is the caller's business: midnight
    UTC plus the time given) or a full ISO date-time; None for none."""
    if text is None or not text.strip():
        return None
    try:
        found = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(
            "at must be an ISO date or date-time (2026-06-02 or 2026-06-02T07:00)",
            {"at": ["Not a valid date or date-time."]},
        ) from None
    return found if found.tzinfo else found.astimezone()


@jobs_api.get("/automations/<name>/preview")
def automation_preview(name: str) -> ResponseReturnValue:
    """The dry run of a scheduled automation or reminder (administrators)."""
    if not api.actor().is_admin:
        raise Forbidden("only administrators may preview automations")
    records = runtime().records
    automation = records.model.automations.get(name)
    if automation is None:
        raise NotFound(f"no automation '{name}'")
    found = preview(records, automation, at=parse_moment(request.args.get("at")))
    return jsonify(data=found.to_json())
