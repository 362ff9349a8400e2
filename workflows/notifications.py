"""Notifications: the ``notify`` action, the in-app inbox and the email job.

``notify`` finds its recipients (``owner`` — a record without one: its creator —,
``manager``: the owner's, ``role:<name>``, ``user:<username>``, or a user field), writes
one ``heddle_notification`` row per recipient in the change's transaction, with the
message in the recipient's language, and adds an ``email`` job to the outbox for each
recipient with an email address (unless ``email: false``). The email is rendered with
Jinja2 from ``templates/notification.<locale>.txt`` when the job runs, and sent over
SMTP (:class:`~workflows.outbox.Mailer`).

>>> Inbox(tables).unread(conn, user_id=3)
2
"""

from __future__ import annotations

import datetime as dt
import re
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa

from engine import Actor, NotFound, Records, Tables
from engine.tables import NOTIFICATION_TABLE, USER_TABLE
from metamodel import Action, Entity, Label

from .actions import ACTIONS, ActionRunner, Run
from .outbox import JOBS, Job, JobRun, add

LOCALES = ("en", "zh", "ja")
#: the message when the action gives none
DEFAULT_MESSAGE = {
    "en": "{entity} “{title}” needs your attention",
    "zh": "{entity}“{title}”需要您关注",
    "ja": "{entity}「{title}」をご確認ください",
}
SUBJECT = {"en": "[Heddle] {message}", "zh": "【Heddle】{message}", "ja": "【Heddle】{message}"}
#: what the person @mentioned in a comment is told
MENTIONED = {
    "en": "{who} mentioned you on {entity} “{title}”",
    "zh": "{who}在{entity}“{title}”中提到了您",
    "ja": "{who}さんが{entity}「{title}」であなたに言及しました",
}
#: ``@username`` (letters, digits, ``_``, ``.`` and ``-``), not inside an email address
MENTION = re.compile(r"(?<![\w.@])@([\w][\w.\-]*)")

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=False,  # plain-text emails
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def _locale(value: Any) -> str:
    base = str(value or "en").split("-")[0]
    return base if base in LOCALES else "en"


def title_of(entity: Entity, view: Mapping[str, Any], record_id: int | None) -> str:
    value = view.get(entity.title_field) if entity.title_field else None
    return str(value) if value not in (None, "") else f"{entity.name} #{record_id}"


# recipients ------------------------------------------------------------------------------


def recipients(run: Run, to: str) -> list[dict[str, Any]]:
    """The active users ``to`` names for the record ``run`` acts on."""
    users = run.records.tables.metadata.tables[USER_TABLE]
    columns = (users.c.id, users.c.username, users.c.name, users.c.email, users.c.locale)
    query = sa.select(*columns, users.c.roles).where(users.c.active.is_(True))
    if to.startswith("role:"):
        role = to[5:]
        found = run.conn.execute(query).mappings()
        return [dict(u) for u in found if role in (u["roles"] or ())]
    if to.startswith("user:"):
        query = query.where(users.c.username == to[5:])
    else:
        field = {"owner": "owner_id", "manager": "owner_id"}.get(to, to)
        if field == "owner_id" and not run.entity.ownable:
            field = "created_by"
        user_id = run.view.get(field)
        if isinstance(user_id, Mapping):
            user_id = user_id.get("id")
        if to == "manager" and user_id is not None:
            user_id = run.conn.scalar(sa.select(users.c.manager_id).where(users.c.id == user_id))
        if user_id is None:
            return []
        query = query.where(users.c.id == int(user_id))
    return [dict(u) for u in run.conn.execute(query).mappings()]


# the action ------------------------------------------------------------------------------


def message_for(action: Action, locale: str, entity: Entity, title: str) -> str:
    given = action.options.get("message")
    if given:
        return Label.of(given).get(locale)
    return DEFAULT_MESSAGE[locale].format(entity=entity.label.get(locale), title=title)


def notify(run: Run, action: Action) -> None:
    """Tell each recipient in the application, and by email (an outbox job)."""
    title = title_of(run.entity, run.view, run.record_id)
    transition = run.view.get("transition")
    source = run.source or (transition["name"] if isinstance(transition, Mapping) else "")
    email = action.options.get("email", True) is not False
    for user in recipients(run, str(action.options.get("to", "owner"))):
        subject = message_for(action, _locale(user["locale"]), run.entity, title)
        tell(run.conn, run.records.tables, user, subject, title,
             (run.entity.name, run.record_id), source, email=email)  # fmt: skip


def tell(
    conn: sa.Connection,
    tables: Tables,
    user: Mapping[str, Any],
    subject: str,
    body: str,
    record: tuple[str, int],
    source: str,
    *,
    email: bool = True,
) -> int:
    """Write one notification for ``user`` (a row of the users' table: ``id``, ``email``)
    about ``record`` (entity, id), and the ``email`` job if they have an address; its id."""
    table = tables.metadata.tables[NOTIFICATION_TABLE]
    created: int = conn.execute(
        table.insert()
        .values(
            user_id=user["id"],
            subject=subject,
            body=body,
            entity=record[0],
            record_id=record[1],
            source=source[:63] or None,
            created_at=dt.datetime.now(dt.UTC),
        )
        .returning(table.c.id)
    ).scalar_one()
    if user["email"] and email:
        add(conn, tables, "email", {"notification": created})
    return created


def locale_of(user: Mapping[str, Any]) -> str:
    """The user's language among those messages come in (en, zh, ja)."""
    return _locale(user.get("locale"))


# @mentions in comments -------------------------------------------------------------------


def mention(
    conn: sa.Connection,
    records: Records,
    author: Actor,
    entity: str,
    record_id: int,
    text: str,
    *,
    already: str = "",
) -> list[str]:
    """Tell each active user ``@named`` in a comment ``text`` on the record — only those
    who may read the record, and never the author — in the application and by email, as
    :func:`notify` does. Returns the usernames told. ``already``: the comment's text
    before an edit, whose mentions were told then and are not told again."""
    names = {name.rstrip(".-") for name in MENTION.findall(text)}
    names -= {name.rstrip(".-") for name in MENTION.findall(already)}
    if not names:
        return []
    ent = records.entity(entity)
    users = records.tables.metadata.tables[USER_TABLE]
    table = records.tables.metadata.tables[NOTIFICATION_TABLE]
    found = conn.execute(
        sa.select(users).where(users.c.username.in_(sorted(names)), users.c.active.is_(True))
    ).mappings()
    view = records.get(author, ent.name, record_id, conn=conn)
    title = title_of(ent, view, record_id)
    who = author.label or "?"
    if author.user_id is not None:
        row = conn.execute(
            sa.select(users.c.name, users.c.username).where(users.c.id == author.user_id)
        ).first()
        who = (row.name or row.username) if row is not None else who
    told = []
    for user in list(found):
        if user["id"] == author.user_id:
            continue
        reader = Actor(user_id=user["id"], team_id=user["team_id"],
                       roles=frozenset(user["roles"] or ()), label=user["username"])  # fmt: skip
        grant = records.permissions.grant(reader, ent, "read")
        if not grant.allowed or not records.permissions.covers(conn, reader, ent, grant, record_id):
            continue  # a mention does not show a record to someone who may not read it
        locale = _locale(user["locale"])
        message = MENTIONED[locale].format(who=who, entity=ent.label.get(locale), title=title)
        created = conn.execute(
            table.insert()
            .values(
                user_id=user["id"],
                subject=message,
                body=title,
                entity=ent.name,
                record_id=record_id,
                source="comment",
                created_at=dt.datetime.now(dt.UTC),
            )
            .returning(table.c.id)
        ).scalar_one()
        if user["email"]:
            add(conn, records.tables, "email", {"notification": created})
        told.append(str(user["username"]))
    return told


ACTIONS.register(ActionRunner("notify", notify))


# the email job ---------------------------------------------------------------------------


def render_email(
    user: Mapping[str, Any], notification: Mapping[str, Any], entity: Entity | None, url: str
) -> EmailMessage:
    """The email of a notification, in the recipient's language."""
    locale = _locale(user["locale"])
    body = _TEMPLATES.get_template(f"notification.{locale}.txt").render(
        user=user,
        message=notification["subject"],
        title=notification["body"],
        entity_label=entity.label.get(locale) if entity is not None else "",
        url=url,
        source=notification["source"] or "",
    )
    message = EmailMessage()
    message["Subject"] = SUBJECT[locale].format(message=notification["subject"])
    message["To"] = str(user["email"])
    message.set_content(body)
    return message


def _send_email(run: JobRun, args: Mapping[str, Any]) -> None:
    tables = run.records.tables
    notes = tables.metadata.tables[NOTIFICATION_TABLE]
    users = tables.metadata.tables[USER_TABLE]
    with run.queue.engine.connect() as conn:
        found = (
            conn.execute(
                sa.select(notes, users.c.username, users.c.name, users.c.email, users.c.locale)
                .join(users, users.c.id == notes.c.user_id)
                .where(notes.c.id == args["notification"])
            )
            .mappings()
            .first()
        )
    mailer = run.queue.mailer
    if found is None or not found["email"] or not mailer.host:
        return  # deleted since, no address any more, or no SMTP server configured
    entity = run.records.model.entities.get(found["entity"] or "")
    base = str(run.queue.options.get("base_url") or "").rstrip("/")
    url = f"{base}/app/{found['entity']}/{found['record_id']}" if base and entity else ""
    row = dict(found)
    message = render_email(row, row, entity, url)
    message["From"] = mailer.sender
    message["Message-ID"] = f"<{run.key}@heddle>"  # the same on a retry: receivers dedupe
    with smtplib.SMTP(mailer.host, mailer.port, timeout=30) as smtp:
        if mailer.starttls:
            smtp.starttls()
        if mailer.username:
            smtp.login(mailer.username, mailer.password)
        smtp.send_message(message)


JOBS.register(Job("email", _send_email, "Send a notification by email over SMTP.", atomic=False))


# the inbox -------------------------------------------------------------------------------


class Inbox:
    """A user's in-app notifications: the API's ``/api/v1/notifications``."""

    def __init__(self, tables: Tables) -> None:
        self.table = tables.metadata.tables[NOTIFICATION_TABLE]

    def list(
        self,
        conn: sa.Connection,
        user_id: int,
        *,
        unread: bool = False,
        limit: int = 50,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        t = self.table
        query = (
            sa.select(
                t.c.id,
                t.c.subject,
                t.c.body,
                t.c.entity,
                t.c.record_id,
                t.c.source,
                t.c.created_at,
                t.c.read_at,
            )
            .where(t.c.user_id == user_id)
            .order_by(t.c.id.desc())
            .limit(limit)
        )
        if unread:
            query = query.where(t.c.read_at.is_(None))
        if before is not None:
            query = query.where(t.c.id < before)
        return [dict(r) for r in conn.execute(query).mappings()]

    def unread(self, conn: sa.Connection, user_id: int) -> int:
        t = self.table
        query = sa.select(sa.func.count()).where(t.c.user_id == user_id, t.c.read_at.is_(None))
        return int(conn.scalar(query) or 0)

    def mark_read(self, conn: sa.Connection, user_id: int, notification_id: int) -> None:
        t = self.table
        mine = sa.and_(t.c.id == notification_id, t.c.user_id == user_id)
        if conn.scalar(sa.select(t.c.id).where(mine)) is None:
            raise NotFound(f"no notification {notification_id}")
        conn.execute(
            t.update().where(mine, t.c.read_at.is_(None)).values(read_at=dt.datetime.now(dt.UTC))
        )

    def mark_all_read(self, conn: sa.Connection, user_id: int) -> int:
        t = self.table
        return int(
            conn.execute(
                t.update()
                .where(t.c.user_id == user_id, t.c.read_at.is_(None))
                .values(read_at=dt.datetime.now(dt.UTC))
            ).rowcount
        )
