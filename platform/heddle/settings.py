"""Settings, declared once: name, default and help feed the configuration, the CLI and the
docs (``docs/configuration.md`` is checked against this list by the test suite).

Every setting is read from an environment variable with the ``HEDDLE_`` prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import crm_definitions

PREFIX = "HEDDLE_"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return PREFIX + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "sqlite:///instance/heddle.db",
        "SQLAlchemy URL of the database; PostgreSQL in production "
        "(postgresql+psycopg://user:pass@host/db).",
    ),
    Setting("REDIS_URL", "", "Redis URL for background jobs; empty runs jobs in-process."),
    Setting("SECRET_KEY", "", "Secret used to sign sessions; required in production."),
    Setting(
        "PACKAGES",
        str(crm_definitions.PATH),
        "Definition packages to load, separated by commas, base first (default: the CRM).",
    ),
    Setting("LOCALE", "en", "Default locale of labels and screens: en, zh or ja."),
    Setting("INSTANCE_PATH", "instance", "Folder for the SQLite database, uploads and the secret."),
    Setting("LOG_FORMAT", "text", "Log lines as plain text or as JSON objects (json)."),
    Setting("LOG_LEVEL", "INFO", "The least important log level written: DEBUG, INFO, WARNING."),
    Setting("MAX_CONTENT_LENGTH", "1048576", "The largest request body accepted, in bytes."),
    Setting("TOKEN_DAYS", "90", "How many days a new API token is valid."),
    Setting(
        "TOKEN_CACHE_SECONDS",
        "5",
        "How long a process trusts a checked API token before asking the database again "
        "(a revocation reaches other processes within this time).",
    ),
    Setting(
        "LOGIN_LIMIT",
        "10 per minute",
        "How many login attempts one client may make (Flask-Limiter syntax).",
    ),
)


def setting(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of one setting from the environment, or its default."""
    env = os.environ if environ is None else environ
    for item in SETTINGS:
        if item.name == name:
            return env.get(item.env, item.default)
    raise KeyError(f"unknown setting {name!r}")


def package_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configured definition packages, base first."""
    return [Path(p.strip()) for p in setting("PACKAGES", environ).split(",") if p.strip()]
