"""The ``heddle`` command line.

Errors in what the user gave (definitions, paths, options) print ``file:line:col: message``
lines and exit non-zero; a traceback would be a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from metamodel import DefinitionError, Model, load_packages, schema_json

from . import __version__
from .settings import SETTINGS, package_paths


def _load(paths: tuple[Path, ...]) -> Model:
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


if __name__ == "__main__":  # pragma: no cover
    main()
