"""The commands of jobs and automations: ``heddle worker``, ``heddle scheduler``,
``heddle jobs``, ``heddle automation`` and ``heddle pool``. Attached to the main group by
:func:`register`.

    heddle worker                    # an RQ worker (needs HEDDLE_REDIS_URL)
    heddle scheduler                 # RQ's cron scheduler: automations and reminders
    heddle jobs                      # the failed jobs; --status all for every one
    heddle jobs retry 12 13 | --all  # failed jobs get a fresh set of attempts
    heddle automation preview idle_nudge --at 2026-06-02
    heddle automation run idle_nudge
    heddle automation tick           # embedded mode: from cron, every minute
    heddle pool preview --at 2026-06-02T06:00   # who returns to a public pool, and why
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa

from engine import EngineError
from metamodel import DefinitionError, did_you_mean
from workflows import JobQueue, recycling
from workflows import automations as autos
from workflows.outbox import run_ticks

from .jobs import job_queue
from .plugins import PluginError
from .runtime import Runtime
from .settings import SETTINGS, database_url, setting

STATUSES = ("pending", "queued", "running", "done", "failed")


def _config() -> dict[str, Any]:
    config: dict[str, Any] = {s.name: setting(s.name) for s in SETTINGS}
    config["DATABASE_URL"] = database_url()
    return config


@contextmanager
def _queue(*, redis: bool = False) -> Iterator[JobQueue]:
    """The configured runtime's job queue; errors end the command with a message."""
    config = _config()
    if redis and not config["REDIS_URL"]:
        raise click.UsageError(
            "HEDDLE_REDIS_URL is not set: without Redis, jobs run in the web process; "
            "run scheduled automations with `heddle automation tick` from cron"
        )
    try:
        heddle = Runtime(config)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except (PluginError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        queue = job_queue(heddle, config)
    except ValueError as exc:  # a setting's value (HEDDLE_IMPORT_WORKERS)
        raise click.ClickException(str(exc)) from None
    try:
        yield queue
    except sa.exc.DBAPIError as exc:
        raise click.ClickException(f"database error: {exc.orig}") from None
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        heddle.engine.dispose()


def _moment(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        found = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"'{text}' is not a date or date-time (2026-06-02, 2026-06-02T07:00)", param_hint="--at"
        ) from None
    return found if found.tzinfo else found.astimezone()


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# worker and scheduler ----------------------------------------------------------------------


@click.command()
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then stop.")
@click.option("--name", help="The worker's name in Redis (default: host and pid).")
def worker(burst: bool, name: str | None) -> None:
    """Run jobs: an RQ worker on HEDDLE_REDIS_URL that also relays the outbox."""
    from workflows.worker import worker as make_worker

    with _queue(redis=True) as queue:
        click.echo(f"heddle worker: queue '{queue.queue_name}' on {_shown(queue.redis_url)}")
        make_worker(queue, name=name).work(burst=burst, with_scheduler=False)


@click.command()
def scheduler() -> None:
    """Run RQ's cron scheduler: each minute, the due automations and reminders."""
    from workflows.worker import scheduler as make_scheduler

    with _queue(redis=True) as queue:
        due = autos.scheduled(queue.records().model)
        click.echo(f"heddle scheduler: {len(due)} scheduled automations, checked every minute")
        make_scheduler(queue).start()  # type: ignore[no-untyped-call]


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True) if "://" in url else url


# jobs --------------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """List and retry background jobs (without a subcommand: the failed ones)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(jobs_list)


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice([*STATUSES, "all"]),
    default="failed",
    show_default=True,
    help="Which jobs to list.",
)
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
def jobs_list(status: str = "failed", limit: int = 50) -> None:
    """List jobs of the outbox: id, job, status, attempts, when, last error."""
    with _queue() as queue:
        rows = queue.listing(None if status == "all" else status, limit)
        counts = queue.counts()
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
    if not rows:
        click.echo(f"no {'' if status == 'all' else status + ' '}jobs ({summary})")
        return
    table = [["ID", "JOB", "STATUS", "TRIES", "CREATED", "ERROR"]]
    for row in rows:
        table.append(
            [
                str(row["id"]),
                row["job"],
                row["status"],
                f"{row['attempts']}/{row['max_attempts']}",
                f"{row['created_at']:%Y-%m-%d %H:%M}",
                (row["error"] or "").splitlines()[-1:][0][:80] if row["error"] else "",
            ]
        )
    _table(table)
    click.echo(summary)


@jobs.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Retry every failed job.")
def jobs_retry(ids: tuple[int, ...], every: bool) -> None:
    """Give failed jobs a fresh set of attempts, and hand them over now."""
    if not ids and not every:
        raise click.UsageError("name the failed jobs' ids, or give --all")
    with _queue() as queue:
        count = queue.retry(None if every else list(ids))
        queue.flush()
    click.echo(f"{count} job{'s' if count != 1 else ''} to retry")
    if ids and count < len(ids):
        click.echo(f"{len(ids) - count} of the ids named no failed job", err=True)
        sys.exit(1)


@jobs.command("run")
def jobs_run() -> None:
    """Run the due jobs in this process now (the embedded mode, without Redis)."""
    with _queue() as queue:
        ran = queue.run_due()
    click.echo(f"{ran} job{'s' if ran != 1 else ''} run")


# automations -------------------------------------------------------------------------------


@click.group()
def automation() -> None:
    """Scheduled automations and reminders: list, preview (dry run), run, tick."""


def _automation(queue: JobQueue, name: str) -> Any:
    model = queue.records().model
    found = model.automations.get(name)
    if found is None:
        names = [a.name for a in autos.scheduled(model)]
        raise click.UsageError(
            f"unknown automation '{name}'{did_you_mean(name, list(model.automations))}; the "
            f"scheduled ones: {', '.join(names) or 'none'}"
        )
    if found.kind == "event":
        raise click.UsageError(f"'{name}' runs on record events, not on a schedule")
    return found


@automation.command("list")
def automation_list() -> None:
    """The scheduled automations and reminders, with their cron lines and next run."""
    with _queue() as queue:
        cron = str(queue.options["reminder_cron"])
        found = autos.scheduled(queue.records().model)
        rows = [["NAME", "ENTITY", "TRIGGER", "CRON", "NEXT"]]
        for item in found:
            line = autos.cron_of(item, cron)
            trigger = (
                "schedule" if item.kind == "schedule" else f"date {item.trigger['date_field']}"
            )
            nxt = _next(line)
            rows.append([item.name, item.entity, trigger, line, nxt])
    if len(rows) == 1:
        click.echo("no scheduled automations")
        return
    _table(rows)


def _next(line: str) -> str:
    from croniter import croniter

    return f"{croniter(line, dt.datetime.now()).get_next(dt.datetime):%Y-%m-%d %H:%M}"


@automation.command("preview")
@click.argument("name")
@click.option("--at", "at", help="When the run would be (default: now): 2026-06-02[T07:00].")
@click.option("--limit", default=100, show_default=True, help="List at most this many records.")
def automation_preview(name: str, at: str | None, limit: int) -> None:
    """Dry run: the records a run would act on, and why. Changes nothing."""
    moment = _moment(at)
    with _queue() as queue:
        found = autos.preview(queue.records(), _automation(queue, name), at=moment, limit=limit)
    for match in found.records:
        click.echo(f"{match.id}\t{match.title}\t{match.reason}")
    if found.total > len(found.records):
        click.echo(f"… and {found.total - len(found.records)} more")
    click.echo(found.summary)


@automation.command("run")
@click.argument("name")
@click.option("--at", "at", help="Run the slot of this moment (default: now).")
def automation_run(name: str, at: str | None) -> None:
    """Run a scheduled automation now; a second run of the same slot does nothing."""
    moment = _moment(at)
    with _queue() as queue:
        item = _automation(queue, name)
        outcome = autos.run(
            queue.records(), item, at=moment, reminder_cron=str(queue.options["reminder_cron"])
        )
        queue.flush()
    click.echo(
        f"{name} ({outcome.slot}): {outcome.acted} acted on, {outcome.skipped} done before, "
        f"{outcome.failed} failed"
    )
    if outcome.failed:
        sys.exit(1)


@automation.command("tick")
@click.option("--at", "at", help="The minute to check (default: now).")
def automation_tick(at: str | None) -> None:
    """Enqueue the automations due this minute (what `heddle scheduler` does every
    minute; without Redis, run this from cron and the jobs run here)."""
    moment = _moment(at) or dt.datetime.now(dt.UTC)
    with _queue() as queue:
        due = run_ticks(queue, moment)
    click.echo(f"{due} job{'s' if due != 1 else ''} due")


# public pools' recycling -------------------------------------------------------------------


@click.group()
def pool() -> None:
    """Public pools' recycle rules: preview (dry run) and run."""


@pool.command("preview")
@click.option("--at", "at", help="The run's moment (default: the next run): 2026-06-02[T06:00].")
@click.option("--limit", default=1000, show_default=True, help="List at most this many records.")
def pool_preview(at: str | None, limit: int) -> None:
    """Dry run: the records the next recycle run returns to each pool, and why (the rule,
    since when, how many days). Changes nothing."""
    moment = _moment(at)
    with _queue() as queue:
        records = queue.records()
        if not recycling.recycled(records):
            raise click.UsageError("no public pool has recycle rules (public_pool.recycle)")
        if moment is None:
            moment = recycling.next_run(str(queue.options["pool_recycle_cron"]))
        found = recycling.preview(records, at=moment, limit=limit)
        for line in found.lines(records):
            click.echo(line)


@pool.command("run")
@click.option("--at", "at", help="Run as if at this moment (default: now).")
def pool_run(at: str | None) -> None:
    """Apply the recycle rules now; a second run the same day changes nothing."""
    moment = _moment(at)
    with _queue() as queue:
        outcomes = recycling.run(queue.records(), at=moment)
        queue.flush()
    for entity, outcome in outcomes.items():
        click.echo(
            f"{entity}: {outcome.returned} returned, {outcome.warned} owners warned, "
            f"{outcome.failed} failed"
        )
    if any(o.failed for o in outcomes.values()):
        sys.exit(1)


def register(main: click.Group) -> None:
    """Attach the commands to the ``heddle`` group."""
    for command in (worker, scheduler, jobs, automation, pool):
        main.add_command(command)
