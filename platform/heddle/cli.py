"""The ``heddle`` command line.

Errors in what the user gave (definitions, paths, options) print ``file:line:col: message``
lines and exit non-zero; a traceback would be a bug.
"""

from __future__ import annotations

import datetime as dt
import difflib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
import sqlalchemy as sa

from engine import EngineError, MigrationRefused, build_tables, connect, migrate, plan
from engine.migrations import applied_hash, restore
from metamodel import DefinitionError, Model, did_you_mean, load_packages, schema_json
from workflows import mermaid

from . import __version__, cli_data, cli_jobs
from .accounts import AccountError, Accounts, token_name_problem, username_problem
from .cli_approvals import approvals
from .cli_demo import demo as demo_command
from .plugins import PluginError, load_plugins
from .settings import SETTINGS, apply_time_zone, database_url, package_paths, setting


def _load(paths: tuple[Path, ...]) -> Model:
    try:
        load_plugins(setting("PLUGINS"))
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return load_packages(list(paths) or package_paths())
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{count} error{'s' if count != 1 else ''} found", err=True)
        sys.exit(1)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Settings (environment variables):\n\n"
    + "\n\n".join(f"{s.env}: {s.help}" for s in SETTINGS),
)
@click.version_option(__version__, prog_name="heddle")
def main() -> None:
    """Heddle: business definitions in YAML become tables, an API and screens."""
    try:
        apply_time_zone(setting("TIME_ZONE"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


main.add_command(demo_command)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when the packages are valid.")
def validate(paths: tuple[Path, ...], quiet: bool) -> None:
    """Check definition packages and print every error.

    PATHS are package folders (or single-file packages), base first; by default the
    packages of HEDDLE_PACKAGES. Exits 0 when they are valid.
    """
    model = _load(paths)
    if not quiet:
        names = ", ".join(p.name for p in model.packages)
        fields = sum(len(e.fields) for e in model)
        click.echo(
            f"{names}: valid — {len(model.entities)} entities, {fields} fields, "
            f"{len(model.workflows)} workflows, {len(model.roles)} roles, "
            f"{len(model.reports)} reports, {len(model.dashboards)} dashboards, "
            f"{len(model.automations)} automations (hash {model.hash[:12]})"
        )


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema to this file instead of printing it.",
)
def schema(output: Path | None) -> None:
    """Print the JSON Schema of definition files (draft 2020-12).

    Point an editor at it with a first line such as
    ``# yaml-language-server: $schema=../../docs/heddle.schema.json``.
    """
    text = schema_json()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@contextmanager
def _database() -> Iterator[sa.Engine]:
    """The configured database (by default SQLite in the instance folder, as the app's);
    a database error ends the command with a message."""
    url = database_url()
    shown = url
    try:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        engine = connect(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        click.echo(f"HEDDLE_DATABASE_URL: cannot use {shown!r}: {exc}", err=True)
        sys.exit(1)
    try:
        yield engine
    except sa.exc.DBAPIError as exc:
        click.echo(f"database error ({shown}): {exc.orig}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()


@main.command("plan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--sql", "show_sql", is_flag=True, help="Show the SQL of each operation too.")
def plan_command(paths: tuple[Path, ...], show_sql: bool) -> None:
    """Show what `heddle migrate` would change in the database; change nothing.

    Operations are listed in the order they run; ! marks destructive ones (a dropped
    column or table, archived first). Data that would block the migration is listed
    under "Refused", and the command then exits 1. PATHS default to HEDDLE_PACKAGES; the
    database is HEDDLE_DATABASE_URL.
    """
    model = _load(paths)
    with _database() as engine:
        result = plan(engine, model)
    click.echo(result.render(sql=show_sql))
    if result.refusals:
        sys.exit(1)


@main.command("migrate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Apply operations that drop columns or tables (their data is archived first).",
)
@click.option("--actor", default="cli", show_default=True, help="Who to record as migrating.")
def migrate_command(paths: tuple[Path, ...], allow_destructive: bool, actor: str) -> None:
    """Bring the database to the definitions, in one transaction.

    Refuses — changing nothing, exit 1 — when data would be lost or broken, or when an
    operation is destructive and --allow-destructive is not given. PATHS default to
    HEDDLE_PACKAGES; the database is HEDDLE_DATABASE_URL.
    """
    model = _load(paths)
    with _database() as engine:
        try:
            result = migrate(engine, model, allow_destructive=allow_destructive, actor=actor)
        except MigrationRefused as exc:
            click.echo(exc.message, err=True)
            sys.exit(1)
    if result.empty:
        click.echo(result.render())
        return
    count = len(result.operations)
    click.echo(
        f"Migrated to model {result.model_hash[:12]}:"
        f" {count} operation{'s' if count != 1 else ''} applied"
    )
    click.echo("\n".join(result.render().splitlines()[1:]))


@main.command("restore")
@click.argument("entity")
@click.argument("field", required=False)
@click.option("--into", metavar="FIELD", help="Fill this field instead (FIELD was renamed).")
def restore_command(entity: str, field: str | None, into: str | None) -> None:
    """Put archived data back: a dropped field's values, or a dropped entity's rows.

    A migration that drops a field or an entity keeps its data in heddle_archive. Add
    the field (or entity) to the definitions again and migrate, then:

    \b
    heddle restore account fax                      # the values of account.fax
    heddle restore account fax --into fax_number    # into a field renamed since
    heddle restore legacy_visit                     # the rows of an entity

    Values go back by record id, each record's latest archived value; rows come back
    with their ids, skipping ids already present. The archive is kept as it is.
    """
    model = _load(())
    if entity not in model.entities:
        hint = did_you_mean(entity, model.entities)
        raise click.UsageError(
            f"no entity '{entity}' in the definitions"
            + (f" ({hint})" if hint else ": add it again and migrate before restoring it")
        )
    ent = model.entity(entity)
    target = into or field
    if target is not None and target not in ent.fields:
        hint = did_you_mean(target, ent.fields)
        raise click.UsageError(
            f"entity '{entity}' has no field '{target}'"
            + (f" ({hint})" if hint else ": add it again and migrate before restoring it")
        )
    if into is not None and field is None:
        raise click.UsageError("--into needs the FIELD whose archived values to restore")
    with _database() as engine:
        if applied_hash(engine) != model.hash:
            raise click.ClickException(
                "the database is not at these definitions: run heddle migrate first"
            )
        try:
            count = restore(engine, model, ent.table, field, into=into)
        except EngineError as exc:
            raise click.ClickException(str(exc)) from None
    what = entity if field is None else f"{entity}.{field}"
    if into is not None:
        what += f" into {entity}.{into}"
    if count == 0:
        click.echo(f"nothing to restore for {what}: the archive has none, or all is back")
        return
    noun = "row" if field is None else "value"
    click.echo(f"restored {count} {noun}{'s' if count != 1 else ''} of {what}")


_password_option = click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters; asked for when not given.",
)


@main.group()
def user() -> None:
    """Manage users: the people who log in."""


@user.command("create")
@click.argument("username")
@_password_option
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="A role of the package, or admin. Repeat for several.",
)
@click.option("--team", help="The user's team, created when it does not exist.")
@click.option("--manager", help="The username of the user's manager.")
@click.option("--name", default="", help="The name shown on screens (default: the username).")
@click.option("--email", help="The user's email address.")
@click.option("--locale", default="en", show_default=True, help="en, zh or ja.")
@click.option("--exists-ok", is_flag=True, help="Succeed without change if the user exists.")
def user_create(
    username: str,
    password: str,
    roles: tuple[str, ...],
    team: str | None,
    manager: str | None,
    name: str,
    email: str | None,
    locale: str,
    exists_ok: bool,
) -> None:
    """Create a user who can log in, with one or more roles.

    heddle user create li.lei --password '…' --role sales_rep --team Shanghai --manager wang
    """
    problem = username_problem(username)
    if problem:  # before compiling the definitions
        raise click.UsageError(f"cannot create user {username!r}: {problem}")
    accounts = Accounts(build_tables(_load(())))  # the roles come from the definitions
    with _database() as engine, engine.begin() as conn:
        if exists_ok and accounts.by_username(conn, username) is not None:
            click.echo(f"user {username} exists")
            return
        try:
            created = accounts.create_user(
                conn,
                username,
                password,
                list(roles),
                team=team,
                manager=manager,
                name=name,
                email=email,
                locale=locale,
            )
        except AccountError as exc:
            click.echo(f"cannot create user {username}: {exc}", err=True)
            sys.exit(1)
    click.echo(f"created user {created.username} (id {created.id}) with roles {', '.join(roles)}")


def _table(rows: Sequence[Sequence[str]]) -> None:
    """Print rows as columns, the first row a header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@contextmanager
def _change_user(username: str, what: str) -> Iterator[tuple[Accounts, sa.Connection, int]]:
    """The accounts, a transaction and the id of user ``username``, for a change; an
    unknown user or a refused change ends the command with a message."""
    accounts = Accounts()
    with _database() as engine, engine.begin() as conn:
        found = accounts.by_username(conn, username)
        if found is None:
            raise click.UsageError(f"no user {username!r} (see: heddle user list)")
        try:
            yield accounts, conn, found.id
        except AccountError as exc:
            raise click.ClickException(f"cannot {what} {username}: {exc}") from None


@user.command("list")
@click.option("--active/--inactive", default=None, help="Only active (or only disabled) users.")
@click.option("--team", help="Only the users of this team.")
@click.option("--role", help="Only the users with this role.")
def user_list(active: bool | None, team: str | None, role: str | None) -> None:
    """The users: username, name, roles, team, manager, status."""
    with _database() as engine, engine.connect() as conn:
        users = Accounts().list_users(conn, active=active, team=team, role=role)
    rows = [("username", "name", "roles", "team", "manager", "status")]
    rows += [
        (u.username, u.name, ",".join(u.roles), u.team or "-", u.manager or "-",
         "active" if u.active else "disabled")
        for u in users
    ]  # fmt: skip
    _table(rows)


@user.command("disable")
@click.argument("usernames", metavar="USERNAME...", nargs=-1, required=True)
def user_disable(usernames: tuple[str, ...]) -> None:
    """Stop users from logging in. Their sessions and API tokens stop working at once for
    every change; other processes may serve reads for HEDDLE_TOKEN_CACHE_SECONDS."""
    for username in usernames:
        with _change_user(username, "disable") as (accounts, conn, user_id):
            accounts.update_user(conn, user_id, active=False)
        click.echo(f"disabled user {username}")


@user.command("enable")
@click.argument("usernames", metavar="USERNAME...", nargs=-1, required=True)
def user_enable(usernames: tuple[str, ...]) -> None:
    """Let disabled users log in again (their unexpired tokens work again too)."""
    for username in usernames:
        with _change_user(username, "enable") as (accounts, conn, user_id):
            accounts.update_user(conn, user_id, active=True)
        click.echo(f"enabled user {username}")


@user.command("set-password")
@click.argument("username")
@_password_option
def user_set_password(username: str, password: str) -> None:
    """Give a user a new password (their sessions end; their API tokens keep working:
    revoke them with token revoke)."""
    with _change_user(username, "set the password of") as (accounts, conn, user_id):
        accounts.update_user(conn, user_id, password=password)
    click.echo(f"new password set for {username}")


@user.command("set-role")
@click.argument("username")
@click.argument("roles", metavar="ROLE...", nargs=-1, required=True)
def user_set_role(username: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles: heddle user set-role li.lei sales_rep marketing"""
    tables = build_tables(_load(()))  # the roles come from the definitions
    with _change_user(username, "set the roles of") as (_, conn, user_id):
        Accounts(tables).update_user(conn, user_id, roles=list(roles))
    click.echo(f"user {username} has roles {', '.join(sorted(set(roles)))}")


@user.command("rename")
@click.argument("old")
@click.argument("new")
def user_rename(old: str, new: str) -> None:
    """Change a username (e.g. one made before usernames were checked: "Test Person").
    The user's records, history and tokens follow: they refer to the user's id."""
    with _change_user(old, "rename") as (accounts, conn, user_id):
        accounts.update_user(conn, user_id, username=new)
    click.echo(f"renamed user {old} to {new}")


@main.group()
def team() -> None:
    """Manage teams: a hierarchy, for the "team and below" scope."""


@team.command("create")
@click.argument("name")
@click.option("--parent", help="The team it belongs under (created when missing).")
def team_create(name: str, parent: str | None) -> None:
    """Create a team, or move it under another: heddle team create East-North --parent East"""
    accounts = Accounts()
    with _database() as engine, engine.begin() as conn:
        try:
            team_id = accounts.set_team_parent(conn, name, parent)
        except AccountError as exc:
            click.echo(f"cannot place team {name}: {exc}", err=True)
            sys.exit(1)
    where = f" under {parent}" if parent else ""
    click.echo(f"team {name} (id {team_id}){where}")


@team.command("list")
def team_list() -> None:
    """The teams: name, the team above, how many users."""
    with _database() as engine, engine.connect() as conn:
        teams = Accounts().list_teams(conn)
    rows = [("team", "parent", "users")]
    rows += [(t.name, t.parent or "-", str(t.users)) for t in teams]
    _table(rows)


@main.group()
def token() -> None:
    """Manage API tokens: for integrations and service accounts, without a password."""


@token.command("create")
@click.argument("username")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=lambda: int(setting("TOKEN_DAYS")),
    show_default="HEDDLE_TOKEN_DAYS",
    help="How many days the token is valid.",
)
@click.option("--name", default="", help="What the token is for (shown by token list).")
def token_create(username: str, days: int, name: str) -> None:
    """Issue a token for a user; the token alone goes to standard output, shown only now:

    TOKEN=$(heddle token create erp-sync --name "ERP nightly sync")
    """
    problem = token_name_problem(name)
    if problem:
        raise click.BadParameter(problem, param_hint="--name")
    accounts = Accounts()
    with _database() as engine, engine.begin() as conn:
        user = accounts.by_username(conn, username)
        if user is None or not user.active:
            click.echo(f"cannot issue a token: no active user {username!r}", err=True)
            sys.exit(1)
        value, expires = accounts.issue_token(conn, user, days=days, name=name)
    click.echo(value)
    click.echo(f"token for {username}, valid until {expires:%Y-%m-%d %H:%M} UTC", err=True)


@token.command("list")
@click.argument("username", required=False)
def token_list(username: str | None) -> None:
    """The tokens issued (to USERNAME, or to everyone): id, user, name, dates, status."""
    accounts = Accounts()
    with _database() as engine, engine.connect() as conn:
        tokens = accounts.tokens_of(conn, username)
    now = dt.datetime.now(dt.UTC)

    def day(moment: dt.datetime | None) -> str:
        return "-" if moment is None else f"{moment:%Y-%m-%d}"

    rows = [("id", "user", "name", "created", "expires", "last used", "status")]
    rows += [
        (str(t.id), t.username, t.name or "-", day(t.created_at), day(t.expires_at),
         day(t.last_used_at), t.status(now))
        for t in tokens
    ]  # fmt: skip
    _table(rows)


@token.command("revoke")
@click.argument("token_ids", metavar="ID...", nargs=-1, required=True, type=int)
def token_revoke(token_ids: tuple[int, ...]) -> None:
    """Revoke tokens by their ids (from token list). Other processes stop accepting them
    within HEDDLE_TOKEN_CACHE_SECONDS."""
    accounts = Accounts()
    with _database() as engine, engine.begin() as conn:
        missing = [n for n in token_ids if not accounts.revoke_token_id(conn, n)]
    for n in token_ids:
        if n not in missing:
            click.echo(f"revoked token {n}")
    if missing:
        listed = ", ".join(map(str, missing))
        click.echo(f"no active token with id {listed} (see: heddle token list)", err=True)
        sys.exit(1)


@main.group()
def workflow() -> None:
    """Look at the workflows of the definitions."""


@workflow.command("diagram")
@click.argument("name")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--locale", default="en", show_default=True, help="The language of the labels.")
def workflow_diagram(name: str, paths: tuple[Path, ...], locale: str) -> None:
    """Print workflow NAME as a Mermaid state diagram.

    PATHS are the packages, base first (default: HEDDLE_PACKAGES). Paste the output into
    a Markdown file between ```mermaid fences, or into mermaid.live.
    """
    model = _load(paths)
    if name not in model.workflows:
        close = difflib.get_close_matches(name, list(model.workflows), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        known = ", ".join(model.workflows) or "none"
        raise click.UsageError(f"unknown workflow '{name}'{hint}; the workflows: {known}")
    click.echo(mermaid(model.workflow(name), locale), nl=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=5000, show_default=True, help="The port to listen on.")
def serve(host: str, port: int) -> None:
    """Run the development web server (production: gunicorn, see docs/deployment.md)."""
    # Imported here, not at the top: the other commands (validate, migrate, user …) need
    # none of the web application, and the CLI should start without loading it.
    from .app import create_app

    try:
        app = create_app()
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except ValueError as exc:  # a setting that is not what it must be, named in the message
        raise click.ClickException(str(exc)) from None
    click.echo(f"Heddle on http://{host}:{port}/  (API: /api/v1, docs: /api/v1/docs)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


cli_data.attach(main, _load, _database)  # heddle import, heddle export
main.add_command(approvals)
cli_jobs.register(main)  # worker, scheduler, jobs, automation

if __name__ == "__main__":  # pragma: no cover
    main()
