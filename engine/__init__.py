"""The engine: turns the compiled Model into tables and is the only way records are read
and written — the API, the screens, imports and jobs all go through it. It runs on SQLite
(the embedded default) and PostgreSQL. Imports :mod:`metamodel` only.

>>> from engine import Records, connect, Actor
>>> records = Records(connect("sqlite:///instance/heddle.db"), model)
>>> records.create(Actor(user_id=1), "account", {"name": "Acme"})
"""

from __future__ import annotations

from .context import SYSTEM, Actor
from .database import connect
from .errors import (
    BadRequest,
    Conflict,
    DuplicateFound,
    EngineError,
    Forbidden,
    MigrationRefused,
    NotFound,
    PoolRefused,
    Restricted,
    StaleVersion,
    ValidationFailed,
)
from .events import EventBus, RecordEvent
from .migrations import Operation, Plan, applied_model, migrate, plan
from .records import Records
from .tables import Tables, build_tables

__all__ = [
    "SYSTEM",
    "Actor",
    "BadRequest",
    "Conflict",
    "DuplicateFound",
    "EngineError",
    "EventBus",
    "Forbidden",
    "MigrationRefused",
    "NotFound",
    "Operation",
    "Plan",
    "PoolRefused",
    "RecordEvent",
    "Records",
    "Restricted",
    "StaleVersion",
    "Tables",
    "ValidationFailed",
    "applied_model",
    "build_tables",
    "connect",
    "migrate",
    "plan",
]
