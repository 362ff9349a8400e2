"""How many notifications the user has not read: the bell's badge on every page."""

from __future__ import annotations

from engine import Actor
from workflows import Inbox

from .extensions import runtime


def unread_count(act: Actor) -> int:
    """One query (``ix_heddle_notification_user`` covers it), whatever the inbox holds."""
    if act.user_id is None:
        return 0
    with runtime().records.reader.connect() as conn:
        return Inbox(runtime().tables).unread(conn, act.user_id)
