"""``heddle demo``: load the demo company into the CRM (docs/demo.md)."""

from __future__ import annotations

import sys
import time

import click
import sqlalchemy as sa

from engine import Tables, build_tables, connect
from engine.migrations import applied_hash
from metamodel import DefinitionError, Model, load_packages

from .accounts import Accounts
from .demo import DEMO_PASSWORD, PEOPLE, account_count, existing_accounts, load_demo
from .plugins import PluginError, load_plugins
from .settings import database_url, package_paths, setting

#: The entities the demo writes: the CRM's (an overlay may add to them, not take away).
NEEDED = ("account", "contact", "lead", "opportunity", "contract", "receivable_plan", "case")


def _crm_model() -> Model:
    try:
        load_plugins(setting("PLUGINS"))
        model = load_packages(package_paths())
    except (PluginError, DefinitionError) as exc:
        raise click.ClickException(
            f"the definitions do not load ({exc}): run `heddle validate` for the details"
        ) from None
    missing = [name for name in NEEDED if name not in model.entities]
    if missing:
        raise click.ClickException(
            f"the demo data is the CRM's, and HEDDLE_PACKAGES has no {', '.join(missing)}:"
            " load the crm package (the default)"
        )
    return model


@click.command("demo")
@click.option(
    "--scale",
    type=click.FloatRange(min=0.001, max=1000),
    default=1.0,
    show_default=True,
    help="How big a company: 1 is about 1,000 accounts, 1000 a million.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="The random seed: the same seed at the same minute, the same data.",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add the demo company's stories to a database that has accounts already.",
)
@click.option(
    "--if-empty",
    is_flag=True,
    help="Load only into a database without accounts; otherwise say so and succeed.",
)
def demo(scale: float, seed: int, append: bool, if_empty: bool) -> None:
    """Fill the CRM with 18 months of a believable company, up to today.

    Twelve demo users of every role (sales reps in three teams with their managers,
    finance, service, marketing, a viewer), accounts in Chinese, Japanese and English,
    leads converted or not, deals moved stage by stage and won or lost, quotes,
    contracts, instalments paid on time or late, invoices, activities, visits, tasks,
    cases, expenses, targets and campaigns: every report has something to show.

    A database with accounts is refused unless --append (which adds, never changes or
    deletes) or --if-empty (which then does nothing: `./dev start` uses it). The
    database must be migrated first (`heddle migrate`).
    """
    model = _crm_model()
    tables = build_tables(model)
    url = database_url()
    engine = connect(url)
    try:
        if applied_hash(engine) != model.hash:
            raise click.ClickException(
                "the database is not at these definitions: run `heddle migrate` first"
            )
        found = existing_accounts(engine, tables)
        if found and not append:
            if if_empty:
                click.echo(f"demo: the database has {found:,} accounts already; nothing loaded")
                _logins(engine, Accounts(tables))
                return
            raise click.ClickException(
                f"the database has {found:,} accounts already: `heddle demo --append` adds the"
                " demo company's stories to them (nothing is changed or deleted)"
            )
        _load(engine, tables, scale, seed)
    except sa.exc.DBAPIError as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        click.echo(f"database error ({shown}): {exc.orig}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()


def _load(engine: sa.Engine, tables: Tables, scale: float, seed: int) -> None:
    total = account_count(scale)
    click.echo(f"demo: writing {total:,} accounts and their 18 months (seed {seed})…", err=True)
    started = time.monotonic()
    shown = [started]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - shown[0] >= 2:
            shown[0] = now
            click.echo(f"  {done:,}/{total:,} accounts  ({now - started:.0f} s)", err=True)

    accounts = Accounts(tables)
    result = load_demo(engine, tables, accounts, scale=scale, seed=seed, progress=progress)
    seconds = time.monotonic() - started
    counts = result.counts
    rows = sum(counts.values())
    click.echo(
        f"demo: loaded {rows:,} records in {seconds:.1f} s — "
        + ", ".join(
            f"{counts.get(name, 0):,} {label}"
            for name, label in (
                ("account", "accounts"),
                ("contact", "contacts"),
                ("lead", "leads"),
                ("opportunity", "opportunities"),
                ("contract", "contracts"),
                ("payment", "payments"),
                ("activity", "activities"),
                ("case", "cases"),
            )
        )
    )
    _logins(engine, accounts)


def _logins(engine: sa.Engine, accounts: Accounts) -> None:
    """The demo users who exist, with their password."""
    with engine.connect() as conn:
        present = [p for p in PEOPLE if accounts.by_username(conn, p.username) is not None]
    if not present:
        return
    click.echo(f"Demo log-ins (password for each: {DEMO_PASSWORD}):")
    width = max(len(p.username) for p in present)
    for person in present:
        team = f"  {person.team}" if person.team else ""
        click.echo(f"  {person.username.ljust(width)}  {person.role.ljust(13)}{team}".rstrip())
