"""``heddle approvals``: the approval commands, for cron and the scheduler.

``heddle approvals run-due`` sends the reminders and makes the escalations that are due,
each once (running it twice in a row does nothing more), on the definitions last
migrated to the configured database — the ones the running application serves.
"""

from __future__ import annotations

import datetime as dt

import click
import sqlalchemy as sa

from engine import Records, applied_model, build_tables, connect
from workflows import attach, run_due

from .plugins import PluginError, load_plugins
from .settings import database_url, setting


@click.group()
def approvals() -> None:
    """Multi-step approvals: reminders and escalations."""


@approvals.command("run-due")
@click.option(
    "--now",
    "now_text",
    metavar="ISO-DATETIME",
    help="Act as if it were this moment (UTC unless it says otherwise); default: now.",
)
def run_due_command(now_text: str | None) -> None:
    """Send the approval reminders and make the escalations that are due.

    Run it every few minutes from cron or the scheduler; each reminder and escalation
    happens once however often it runs.
    """
    now = _moment(now_text)
    try:
        load_plugins(setting("PLUGINS"))
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    url = database_url()
    try:
        engine = connect(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise click.ClickException(f"HEDDLE_DATABASE_URL: cannot use it: {exc}") from None
    try:
        model = applied_model(engine)
        if model is None:
            raise click.ClickException("the database has no definitions yet: run heddle migrate")
        records = Records(engine, model, tables=build_tables(model))
        attach(records.events)
        done = run_due(records, now)
    except sa.exc.DBAPIError as exc:
        raise click.ClickException(f"database error: {exc.orig}") from None
    finally:
        engine.dispose()
    reminders, escalations = done["reminders"], done["escalations"]
    click.echo(
        f"{reminders} reminder{'s' if reminders != 1 else ''} sent, "
        f"{escalations} escalation{'s' if escalations != 1 else ''} made"
    )


def _moment(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"'{text}' is not an ISO date and time (2025-08-01T09:00)", param_hint="--now"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
