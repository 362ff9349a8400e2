"""``/notifications``: the user's in-app notifications, newest first, and the bell.

The rows are :class:`workflows.Inbox`'s, as the API's ``/api/v1/notifications`` reads
them: one query for the page of rows and one for the unread count, whatever the inbox
holds. Each names its record with a link. "Mark read" and "Mark all read" are forms that
post with the CSRF token and come back to the inbox; with htmx the row (and the bell's
count, out of band) is swapped in place instead.

``?show=unread`` lists only the unread ones; ``?before=<id>`` the page after that id.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from engine import NotFound
from ui_renderer import notifications as N
from workflows import Inbox

from ._screens import MAX_ID, actor, chrome, local_path, locale, page, screens, ui
from .extensions import runtime
from .i18n import gettext as _

#: notifications per page of the inbox
PAGE = 50


def _user_id() -> int:
    user_id = actor().user_id
    if user_id is None:  # pragma: no cover - a session is always a user's
        raise NotFound("notifications belong to users")
    return user_id


@ui.get("/notifications")
def notifications() -> ResponseReturnValue:
    show = "unread" if request.args.get("show") == "unread" else "all"
    before_text = request.args.get("before", "")
    before = int(before_text) if before_text.isdigit() and int(before_text) <= MAX_ID else None
    inbox = Inbox(runtime().tables)
    user_id = _user_id()
    with runtime().records.reader.connect() as conn:
        rows = inbox.list(conn, user_id, unread=show == "unread", limit=PAGE + 1, before=before)
    shown = N.inbox(rows[:PAGE], runtime().model.entities, locale())
    return page(
        "notifications.html",
        _("Notifications"),
        "notifications",
        show=show,
        tabs=(("all", _("All")), ("unread", _("Unread"))),
        notices=shown,
        older=shown[-1].id if len(rows) > PAGE else None,
        paged=before is not None,
        next_url=request.full_path.rstrip("?"),
    )


def _back() -> Response:
    wanted = request.form.get("next")
    return redirect(local_path(wanted) if wanted else url_for("ui.notifications"))


@ui.post("/notifications/<int:notification_id>/read")
def read_notification(notification_id: int) -> ResponseReturnValue:
    """Mark one of the user's notifications read (another's is a 404, as in the API)."""
    if notification_id > MAX_ID:
        raise NotFound(f"no notification {notification_id}")
    inbox = Inbox(runtime().tables)
    user_id = _user_id()
    with runtime().records.transaction() as conn:
        inbox.mark_read(conn, user_id, notification_id)
        row = next(iter(inbox.list(conn, user_id, limit=1, before=notification_id + 1)), None)
    if not request.headers.get("HX-Request") or row is None:
        return _back()
    notice = N.inbox([row], runtime().model.entities, locale())[0]
    html = screens().render(
        "notification_row.html",
        locale=locale(),
        notice=notice,
        chrome=chrome("notifications"),
        active="notifications",
        next_url=local_path(request.form.get("next")),
        oob=True,
    )
    return Response(html, 200, content_type="text/html; charset=utf-8")


@ui.post("/notifications/read-all")
def read_all_notifications() -> ResponseReturnValue:
    inbox = Inbox(runtime().tables)
    with runtime().records.transaction() as conn:
        marked = inbox.mark_all_read(conn, _user_id())
    if marked:
        flash(_("All notifications are marked read."), "success")
    return _back()
