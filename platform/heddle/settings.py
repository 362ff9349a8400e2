"""Settings, declared once: name, default and help feed the configuration, the CLI and the
docs (``docs/configuration.md`` is checked against this list by the test suite).

Every setting is read from an environment variable with the ``HEDDLE_`` prefix.
"""

from __future__ import annotations

import os
import time
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
        "",
        "SQLAlchemy URL of the database; PostgreSQL in production "
        "(postgresql+psycopg://user:pass@host/db). Empty: SQLite at "
        "<INSTANCE_PATH>/heddle.db.",
    ),
    Setting("REDIS_URL", "", "Redis URL for background jobs; empty runs jobs in-process."),
    Setting("SECRET_KEY", "", "Secret used to sign sessions; required in production."),
    Setting(
        "PACKAGES",
        "crm",
        "Definition packages to load, separated by commas, base first: folders, files, or "
        "names of installed packages (default: crm, the CRM).",
    ),
    Setting(
        "PLUGINS",
        "",
        "Python modules to import before the definitions are loaded, separated by commas: "
        "plugins that register field types, view kinds, actions or measures.",
    ),
    Setting("LOCALE", "en", "Default locale of labels and screens: en, zh or ja."),
    Setting(
        "TIME_ZONE",
        "",
        "The deployment's time zone, an IANA name (Asia/Shanghai, Asia/Tokyo): what "
        "today() is, the times the screens show and take, and the clock of schedules. "
        "Empty: the server's own (its TZ).",
    ),
    Setting("INSTANCE_PATH", "instance", "Folder for the SQLite database, uploads and the secret."),
    Setting("LOG_FORMAT", "text", "Log lines as plain text or as JSON objects (json)."),
    Setting("LOG_LEVEL", "INFO", "The least important log level written: DEBUG, INFO, WARNING."),
    Setting("MAX_CONTENT_LENGTH", "1048576", "The largest request body accepted, in bytes."),
    Setting(
        "ATTACHMENTS_PATH",
        "",
        "Folder the attachments' files are kept in (by SHA-256; back it up with the "
        "database); empty: <INSTANCE_PATH>/attachments. Every web and worker process "
        "must see the same folder.",
    ),
    Setting(
        "ATTACHMENT_MAX_BYTES",
        "10485760",
        "The largest file that may be attached, in bytes (a file field's max_size may "
        "lower it); uploads may be this large whatever MAX_CONTENT_LENGTH says.",
    ),
    Setting("TOKEN_DAYS", "90", "How many days a new API token is valid."),
    Setting(
        "IMPORT_MAX_BYTES",
        "10485760",
        "The largest file an import accepts, in bytes (uploads to /api/v1/imports may be "
        "this large whatever MAX_CONTENT_LENGTH says).",
    ),
    Setting(
        "IMPORT_BACKGROUND_ROWS",
        "2000",
        "Imports through the API with more rows than this run as background jobs.",
    ),
    Setting(
        "IMPORT_WORKERS",
        "",
        "The most processes one import on PostgreSQL is written with (1 to 8); empty: one "
        "per core, up to 4, unless an import asks for more (heddle import --workers).",
    ),
    Setting(
        "EXPORT_BACKGROUND_ROWS",
        "10000",
        "Exports through the API of more records than this run as background jobs.",
    ),
    Setting(
        "TOKEN_CACHE_SECONDS",
        "5",
        "How long a process trusts a checked API token before asking the database again "
        "(a revocation or a disabled user reaches other processes sooner: at their next "
        "definition check).",
    ),
    Setting(
        "LOGIN_LIMIT",
        "10 per minute",
        "How many login attempts one client address may make (e.g. 10 per minute).",
    ),
    Setting(
        "MODEL_CHECK_SECONDS",
        "1",
        "How often a process asks the database whether another process migrated the "
        "definitions, in seconds (0: on every request).",
    ),
    # jobs, automations and notifications (docs/workflows.md#jobs)
    Setting(
        "REMINDER_CRON",
        "0 7 * * *",
        "When date reminders run, as a cron line in the server's local time (default: "
        "every day at 07:00).",
    ),
    Setting(
        "POOL_RECYCLE_CRON",
        "0 6 * * *",
        "When the public pools' recycle rules return neglected records and warn their "
        "owners, as a cron line in the server's local time (default: every day at 06:00).",
    ),
    Setting(
        "JOB_RETRY_SECONDS",
        "10",
        "The delay before a failed job's first retry, in seconds; each next one waits four "
        "times longer (up to six hours).",
    ),
    Setting(
        "JOB_LEASE_SECONDS",
        "300",
        "How long a job may run before it is considered lost (its worker died) and sent "
        "again; also the job's timeout.",
    ),
    Setting("SMTP_HOST", "", "The SMTP server notifications are emailed through; empty: no email."),
    Setting("SMTP_PORT", "25", "The SMTP server's port (587 with SMTP_STARTTLS)."),
    Setting("SMTP_FROM", "heddle@localhost", "The sender address of notification emails."),
    Setting("SMTP_USER", "", "The SMTP login, if the server asks for one."),
    Setting("SMTP_PASSWORD", "", "The SMTP password of SMTP_USER."),
    Setting("SMTP_STARTTLS", "false", "Upgrade the SMTP connection with STARTTLS (true/false)."),
    Setting(
        "BASE_URL",
        "",
        "The address users open Heddle at (https://crm.example.com), for links in emails; "
        "empty: emails carry no link.",
    ),
    # gunicorn (platform/gunicorn.conf.py)
    Setting("BIND", "0.0.0.0:8000", "The address and port gunicorn listens on."),
    Setting("WORKERS", "", "How many gunicorn worker processes; empty: one per CPU core."),
    Setting("THREADS", "4", "How many threads each gunicorn worker serves requests with."),
    Setting(
        "FORWARDED_ALLOW_IPS",
        "127.0.0.1",
        "Addresses of the reverse proxies whose X-Forwarded-For gunicorn trusts "
        "(comma-separated, * for any).",
    ),
)


def setting(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of one setting from the environment, or its default."""
    env = os.environ if environ is None else environ
    for item in SETTINGS:
        if item.name == name:
            return env.get(item.env, item.default)
    raise KeyError(f"unknown setting {name!r}")


def apply_time_zone(name: str) -> None:
    """Make ``name`` (``HEDDLE_TIME_ZONE``) the process's local time zone, which today(),
    the screens' times and the schedules follow: as if the process had been started with
    ``TZ=<name>``. Empty changes nothing. A name the time zone database does not know
    stops the start with a message (the C library would take it for UTC, silently)."""
    if not name:
        return
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"HEDDLE_TIME_ZONE: unknown time zone {name!r}; give an IANA name such as "
            "Asia/Shanghai, Asia/Tokyo or UTC"
        ) from None
    if os.environ.get("TZ") != name:
        os.environ["TZ"] = name
        time.tzset()


def import_workers(value: str | None) -> int:
    """``HEDDLE_IMPORT_WORKERS`` as a number: the cap on an import's processes (empty: the
    engine's own, 8, which an import's options may ask for). A value that is not a whole
    number from 1 to 8 stops the start with a message.

    >>> import_workers(""), import_workers("2")
    (8, 2)
    """
    from engine.imports import MAX_WORKERS  # (the settings load before the engine)

    text = (value or "").strip()
    if not text:
        return MAX_WORKERS
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValueError(
            f"{PREFIX}IMPORT_WORKERS is {text!r}: give a whole number from 1 to {MAX_WORKERS}"
            ", or leave it empty (one process per core, up to 4)"
        )
    return int(text)


def resolve_database_url(url: str, instance_path: str) -> str:
    """The database URL: ``url`` as configured or, when it is empty, SQLite in the
    instance folder — so ``HEDDLE_INSTANCE_PATH=/srv/x`` alone keeps the database in
    ``/srv/x``. The app and the CLI both resolve it here, so they open the same file.

    >>> resolve_database_url("", "instance")
    'sqlite:///instance/heddle.db'
    >>> resolve_database_url("", "/srv/heddle")
    'sqlite:////srv/heddle/heddle.db'
    """
    if url.strip():
        return url.strip()
    return "sqlite:///" + (Path(instance_path) / "heddle.db").as_posix()


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """The configured database URL (see :func:`resolve_database_url`)."""
    return resolve_database_url(setting("DATABASE_URL", environ), setting("INSTANCE_PATH", environ))


def resolve_attachments_path(path: str, instance_path: str) -> Path:
    """The attachments' folder: ``path`` as configured, else ``attachments`` in the
    instance folder.

    >>> resolve_attachments_path("", "instance").as_posix()
    'instance/attachments'
    """
    return Path(path.strip()) if path.strip() else Path(instance_path) / "attachments"


def attachments_path(environ: Mapping[str, str] | None = None) -> Path:
    """The configured attachments' folder (see :func:`resolve_attachments_path`)."""
    return resolve_attachments_path(
        setting("ATTACHMENTS_PATH", environ), setting("INSTANCE_PATH", environ)
    )


def package_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configured definition packages, base first: paths, or names of installed
    packages, which the loader resolves (``metamodel.load_packages``)."""
    return [Path(p.strip()) for p in setting("PACKAGES", environ).split(",") if p.strip()]
