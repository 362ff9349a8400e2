"""``heddle import`` and ``heddle export``: spreadsheets in and out from the command line,
through the record service (docs/import-export.md).

    heddle import account accounts.csv --mode upsert --key external_id --dry-run
    heddle import opportunity deals.xlsx --as li.lei --errors rejected.xlsx
    heddle export account --format xlsx --filter grade=A -o key-accounts.xlsx
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa

from engine import SYSTEM, Actor, EngineError, EventBus, Records, build_tables
from engine.attachments import FileStore
from engine.attachments import attach as attach_attachments
from engine.imports import (
    DUPLICATE_CHOICES,
    EXPORT_FORMATS,
    MAX_WORKERS,
    MODES,
    ImportOptions,
    Imports,
    export_all,
    import_all,
)
from engine.migrations import applied_hash
from metamodel import Model
from workflows import JobQueue
from workflows import attach as attach_workflows
from workflows.data_jobs import enqueue

from ._people_import import PEOPLE, import_people
from .accounts import Accounts
from .import_text import error_file_in
from .settings import attachments_path, import_workers, setting

LoadModel = Callable[[tuple[Path, ...]], Model]
OpenDatabase = Callable[[], AbstractContextManager[sa.Engine]]
#: The main group's helpers (``heddle.cli`` hands them over in :func:`attach`): the
#: definitions as every command loads them, and the database with its error handling.
_HELPERS: dict[str, Any] = {}
#: How often ``heddle import --background`` looks at its run.
POLL_SECONDS = 0.5


@contextmanager
def _imports(as_user: str | None) -> Iterator[tuple[Imports, Actor, Accounts]]:
    """The import service on the configured database, and who acts (``--as``)."""
    try:
        workers = import_workers(setting("IMPORT_WORKERS"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    model: Model = _HELPERS["load"](())
    tables = build_tables(model)
    with _HELPERS["database"]() as engine:
        if applied_hash(engine) != model.hash:
            raise click.ClickException(
                "the database is not at these definitions: run heddle migrate first"
            )
        events = EventBus()
        attach_workflows(events)  # the workflows' rules hold for imports too
        attach_attachments(events)  # and a file field names uploaded files
        records = Records(engine, model, tables=tables, events=events)
        accounts = Accounts(tables)
        actor = SYSTEM
        if as_user is not None:
            with engine.connect() as conn:
                user = accounts.by_username(conn, as_user)
            if user is None or not user.active:
                raise click.UsageError(f"no active user {as_user!r} (see: heddle user list)")
            actor = user.actor()
        imports = Imports(records, max_bytes=int(setting("IMPORT_MAX_BYTES")), max_workers=workers)
        yield imports, actor, accounts


def _mapping(text: str | None) -> dict[str, Any] | None:
    """``--mapping``: a JSON object, or a JSON file of one."""
    if text is None:
        return None
    source = Path(text).read_text(encoding="utf-8") if Path(text).is_file() else text
    try:
        found = json.loads(source)
    except ValueError:
        raise click.BadParameter("a JSON object {column: field} or a file of one") from None
    if not isinstance(found, dict):
        raise click.BadParameter("a JSON object {column: field} or a file of one")
    return found


def _duplicates(values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for value in values:
        rule, _, choice = value.partition("=")
        if not choice:
            rule, choice = "*", rule
        if choice not in DUPLICATE_CHOICES:
            choices = ", ".join(DUPLICATE_CHOICES)
            raise click.BadParameter(f"RULE=CHOICE with CHOICE one of {choices}")
        found[rule] = choice
    return found


@click.command("import")
@click.argument("entity", required=False)
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--all",
    "everything",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="Restore a whole export (heddle export --all) into an empty "
    "deployment migrated to the same definitions.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="insert",
    show_default=True,
    help="insert new records, update existing ones, or upsert (both).",
)
@click.option("--key", help="The field that finds existing records (e.g. external_id).")
@click.option("--mapping", help="Columns to fields: a JSON object {header: field} or a file.")
@click.option("--template", help="A saved mapping template (by name) of the entity.")
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option(
    "--all-or-nothing",
    is_flag=True,
    help="Write every row or, if one is bad, none (one transaction).",
)
@click.option(
    "--as",
    "as_user",
    metavar="USER",
    help="Import as this user, with their permissions (default: the system).",
)
@click.option(
    "--errors",
    "errors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rejected rows with their messages here (.csv or .xlsx).",
)
@click.option(
    "--language",
    metavar="LOCALE",
    help="The error file's language (en, zh, ja; default: the --as user's, else English).",
)
@click.option("--encoding", help="The CSV file's encoding (default: detected).")
@click.option(
    "--date-order",
    type=click.Choice(["ymd", "dmy", "mdy"]),
    default="ymd",
    show_default=True,
    help="How to read dates like 07.12.2026.",
)
@click.option(
    "--on-duplicate",
    "on_duplicate",
    multiple=True,
    metavar="[RULE=]CHOICE",
    help="skip, merge or refuse rows a duplicate rule finds (repeatable).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Processes writing a large file on PostgreSQL (default: one per core, up to 4).",
)
@click.option(
    "--background",
    is_flag=True,
    help="Run it as a job of heddle worker (HEDDLE_REDIS_URL) and show its progress "
    "until it ends; Ctrl-C stops watching, not the import.",
)
@click.option(
    "--resume",
    "resume_id",
    type=int,
    metavar="RUN",
    help="Go on with an interrupted run from its checkpoint (FILE is ignored).",
)
def import_command(
    entity: str | None, file: Path | None, everything: Path | None, mode: str,
    key: str | None, mapping: str | None,
    template: str | None, dry_run: bool, all_or_nothing: bool, as_user: str | None,
    errors_file: Path | None, language: str | None, encoding: str | None, date_order: str,
    on_duplicate: tuple[str, ...], workers: int | None, background: bool,
    resume_id: int | None,
) -> None:  # fmt: skip
    """Import FILE (CSV, XLSX or JSON) into ENTITY (an entity, or user or team).

    Columns are matched to fields by name or label (English, Chinese or Japanese). Rows
    are reported by the numbers the spreadsheet shows (the header is row 1). Exits 1 when
    a row is rejected. With --all DIR, restore a whole deployment instead.
    """
    if everything is not None:
        _restore(everything)
        return
    if entity is None or file is None:
        raise click.UsageError("give ENTITY and FILE (or --all DIR)")
    values: dict[str, Any] = {"mode": mode, "key": key, "dry_run": dry_run,
                              "all_or_nothing": all_or_nothing, "encoding": encoding,
                              "date_order": date_order, "workers": workers,
                              "duplicates": _duplicates(on_duplicate)}  # fmt: skip
    given = _mapping(mapping)
    with _imports(as_user) as (imports, actor, accounts):
        locales = imports.records.model.locales
        if language is not None and language not in locales:
            raise click.UsageError(f"--language is one of {', '.join(locales)}")
        language = language or (actor.locale if actor.locale in locales else "en")
        try:
            if template:
                with imports.records.engine.connect() as conn:
                    saved = imports.store.template(conn, template, entity)
                values = {**saved["options"], **{k: v for k, v in values.items() if v},
                          "mapping": {**saved["mapping"], **(given or {})}}  # fmt: skip
            elif given is not None:
                values["mapping"] = given
            options = ImportOptions.from_json(values)
            if background and entity not in PEOPLE:
                run = _background(imports, actor, entity, file, options, resume_id)
            else:
                run = _run(imports, actor, accounts, entity, file, options, resume_id)
        except EngineError as exc:
            _refused(exc)
        if errors_file is not None and run["report"].get("counts", {}).get("error"):
            format = "xlsx" if errors_file.suffix.lower() == ".xlsx" else "csv"
            errors_file.write_bytes(error_file_in(imports, actor, run["id"], format, language))
            click.echo(f"wrote the rejected rows to {errors_file}", err=True)
    failed = _print_report(run)
    if failed:
        sys.exit(1)


def _run(
    imports: Imports, actor: Actor, accounts: Accounts, entity: str, file: Path,
    options: ImportOptions, resume_id: int | None,
) -> dict[str, Any]:  # fmt: skip
    if entity in PEOPLE:
        content = file.read_bytes()
        return import_people(imports, accounts, actor, entity, content, file.name, options)
    if resume_id is None:
        run_id = imports.create(actor, entity, file.read_bytes(), file.name, options)
    else:
        run_id = resume_id
    total = imports.status(actor, run_id)["progress"]["total"]
    with click.progressbar(length=total, label=f"importing {file.name}", file=sys.stderr,
                           show_pos=True) as bar:  # fmt: skip
        shown = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - shown[0])
            shown[0] = done

        imports.resume(run_id, progress=progress)
    return imports.status(actor, run_id)


def _background(
    imports: Imports, actor: Actor, entity: str, file: Path, options: ImportOptions,
    resume_id: int | None,
) -> dict[str, Any]:  # fmt: skip
    """Start the run as a job (workflows.data_jobs) and watch it: a progress bar of the
    batches its worker has committed."""
    redis_url = setting("REDIS_URL")
    if not redis_url:
        raise click.UsageError(
            "--background needs HEDDLE_REDIS_URL and a running heddle worker; without them, "
            "leave it out (the import runs here, with the same progress bar)"
        )
    records = imports.records
    queue = JobQueue(records.engine, lambda: records, redis_url=redis_url,
                     lease_seconds=float(setting("JOB_LEASE_SECONDS") or 300))  # fmt: skip
    if resume_id is None:
        run_id = imports.create(actor, entity, file.read_bytes(), file.name, options)
    else:
        run_id = resume_id
    enqueue(queue, run_id)
    click.echo(f"import run {run_id} queued for heddle worker", err=True)
    status = imports.status(actor, run_id)
    with click.progressbar(length=status["progress"]["total"], label=f"importing {file.name}",
                           file=sys.stderr, show_pos=True) as bar:  # fmt: skip
        shown = 0
        while True:
            status = imports.status(actor, run_id)
            done = int(status["progress"]["done"])
            bar.update(done - shown)
            shown = done
            if status["status"] in ("done", "failed", "interrupted"):
                break
            time.sleep(POLL_SECONDS)
    return status


def _restore(folder: Path) -> None:
    with _imports(None) as (imports, _, _):
        try:
            files = FileStore(attachments_path())
            counts = import_all(imports.records.engine, imports.records.tables, folder, files)
        except EngineError as exc:
            _refused(exc)
    click.echo(f"restored {sum(counts.values())} rows of {len(counts)} tables from {folder}")


def _refused(exc: EngineError) -> NoReturn:
    click.echo(f"import refused: {exc.message}", err=True)
    for name, messages in exc.fields.items():
        for message in messages:
            click.echo(f"  {name}: {message}", err=True)
    sys.exit(1)


def _print_report(run: dict[str, Any]) -> bool:
    report = run["report"]
    if run["status"] == "failed":
        click.echo(f"import run {run['id']} failed: {run['error']}", err=True)
        return True
    for column in report.get("mapping", []):
        if column.get("problem"):
            click.echo(f"column {column['header']!r} left out: {column['problem']}", err=True)
    for row in report.get("rows", []):
        for error in row.get("errors", []):
            where = f", {error['column']}" if error.get("column") else ""
            label = "skipped" if row["status"] == "skipped" else "error"
            click.echo(f"row {error.get('row', row['row'])}{where}: {label}: {error['message']}")
    counts = ", ".join(f"{n} {k}" for k, n in report.get("counts", {}).items() if n)
    if report.get("dry_run"):
        state = "dry run, nothing written"
    elif report.get("committed"):
        state = "committed"
    else:
        state = "rolled back, nothing written"
    click.echo(f"import run {run['id']}: {counts or 'no rows'} ({state})")
    return bool(report.get("counts", {}).get("error"))


@click.command("export")
@click.argument("entity", required=False)
@click.option(
    "--all",
    "everything",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Every table (records, users, teams, definitions, history) and the "
    "attachments' files to DIR, for heddle import --all.",
)
@click.option(
    "--format", "format_", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD[__OP]=VALUE",
    help="A list filter, as the API's (repeatable): grade=A, amount__gte=1000.",
)
@click.option("--fields", help="The columns, separated by commas (default: every field).")
@click.option("--sort", help="The order, as the API's: -amount,name.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the file here (default: standard output).",
)
@click.option(
    "--as", "as_user", metavar="USER", help="Export as this user: their permissions and language."
)
def export_command(
    entity: str | None, everything: Path | None, format_: str, filters: tuple[str, ...],
    fields: str | None, sort: str | None,
    output: Path | None, as_user: str | None,
) -> None:  # fmt: skip
    """Export ENTITY's records as CSV, XLSX or JSON, labels in the user's language; or,
    with --all DIR, every table of the deployment."""
    if everything is not None:
        with _imports(None) as (imports, _, _):
            try:
                counts = export_all(
                    imports.records.engine,
                    imports.records.tables,
                    everything,
                    FileStore(attachments_path()),
                )
            except EngineError as exc:
                _refused(exc)
        click.echo(f"wrote {sum(counts.values())} rows of {len(counts)} tables to {everything}")
        return
    if entity is None:
        raise click.UsageError("give ENTITY (or --all DIR)")
    params: dict[str, Any] = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write FIELD=VALUE", param_hint="--filter")
        params[name] = value
    if fields:
        params["fields"] = fields
    if sort:
        params["sort"] = sort
    with _imports(as_user) as (imports, actor, _):
        try:
            content = imports.export(actor, entity, params, format_)
        except EngineError as exc:
            _refused(exc)
    if output is None:
        if format_ == "xlsx" and sys.stdout.isatty():
            raise click.UsageError("an XLSX file is binary: write it with --output FILE")
        sys.stdout.buffer.write(content)
    else:
        output.write_bytes(content)
        click.echo(f"wrote {output}", err=True)


COMMANDS = (import_command, export_command)


def attach(group: click.Group, load: LoadModel, database: OpenDatabase) -> None:
    """Add ``import`` and ``export`` to the ``heddle`` command group, with its way of
    loading the definitions and opening the database."""
    _HELPERS.update(load=load, database=database)
    for command in COMMANDS:
        group.add_command(command)


__all__ = ["attach", "export_command", "import_command"]
