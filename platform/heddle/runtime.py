"""The running platform's parts, made from the settings: the database, the compiled Model,
its tables and the services on them. The web app and the CLI share it.

The Model can change while the process runs: another process (``heddle migrate``, the
admin screens) migrates the database to new definitions and records their snapshot in
``heddle_schema_history``. :meth:`Runtime.check` notices — one small query, at most once
every ``MODEL_CHECK_SECONDS`` — recompiles the snapshot and swaps in a new :class:`State`
(Model, tables, record service, accounts, made together) with one assignment. Each request
pins the state it started with (:meth:`Runtime.pin`), so it never mixes one version's
Model with another's tables, and ``runtime.records``, ``runtime.model``… return the pinned
state's parts.

>>> runtime = Runtime({"DATABASE_URL": "sqlite:///instance/heddle.db",
...                    "PACKAGES": "apps/crm_definitions"})
>>> runtime.check().model is runtime.model  # nothing migrated elsewhere
True
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import g
from sqlalchemy.engine import Engine

from engine import EventBus, Records, Tables, build_tables, connect
from engine.attachments import Attachments, FileStore
from engine.attachments import attach as attach_attachments
from engine.tables import HISTORY_TABLE, SEQUENCE_TABLE
from metamodel import Model, load_packages, model_from_json
from workflows import attach as attach_workflows

from .accounts import AUTH_COUNTER, Accounts, TokenCache
from .plugins import load_plugins
from .settings import resolve_attachments_path

log = logging.getLogger("heddle.runtime")


@dataclass(frozen=True, slots=True)
class State:
    """What one Model version is served with. Never changed: a new Model gets a new one."""

    model: Model
    tables: Tables
    records: Records
    # Accounts reads only system tables, but checks roles against the Model's: one per Model.
    accounts: Accounts
    #: the hash of the history row (or, at start, of the files) the Model was compiled from
    source: str


class Runtime:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.check_seconds = _seconds(config.get("MODEL_CHECK_SECONDS", 1))
        # Shared by every state: handlers subscribe once, and a token revoked through one
        # state's Accounts is forgotten by all of them.
        self.events = EventBus()
        attach_workflows(self.events)  # the workflows' rules hold for every process
        attach_attachments(self.events)  # file fields name uploaded files
        self.tokens = TokenCache(float(config.get("TOKEN_CACHE_SECONDS", 5)))
        self._key = f"heddle_state_{id(self)}"  # in flask.g; one per app, should there be two
        self._swap = threading.Lock()
        self._next_check = 0.0  # the first request checks
        self._broken = ""  # the hash of a snapshot that did not compile: not tried again
        self._auth_seen: int | None = None  # the accounts' change counter last read
        model = self._load_files()  # invalid definitions stop the start, with their errors
        self._state = self._build(model, model.hash)
        self._seen_history = False  # whether a check has found a migration yet

    @cached_property
    def engine(self) -> Engine:
        return connect(str(self.config["DATABASE_URL"]))

    # --- the state a caller sees -----------------------------------------------------------

    @property
    def state(self) -> State:
        """The state pinned for the current request; outside a request, the latest."""
        try:
            pinned: State | None = g.get(self._key)
        except RuntimeError:  # no app context: a command, a test setting up
            pinned = None
        return self._state if pinned is None else pinned

    @property
    def latest(self) -> State:
        """The newest state, whatever the current request pinned."""
        return self._state

    @property
    def model(self) -> Model:
        return self.state.model

    @property
    def tables(self) -> Tables:
        return self.state.tables

    @property
    def records(self) -> Records:
        return self.state.records

    @property
    def accounts(self) -> Accounts:
        return self.state.accounts

    @cached_property
    def files(self) -> FileStore:
        """Where attachments' bytes are kept (``ATTACHMENTS_PATH``)."""
        return FileStore(
            resolve_attachments_path(
                str(self.config.get("ATTACHMENTS_PATH") or ""),
                str(self.config.get("INSTANCE_PATH") or "instance"),
            )
        )

    @property
    def attachments(self) -> Attachments:
        """The attachments of the pinned state's records."""
        limit = int(self.config.get("ATTACHMENT_MAX_BYTES") or 10 * 1024 * 1024)
        return Attachments(self.records, self.files, max_bytes=limit)

    def pin(self) -> State:
        """Check for a newer Model, then fix the state the current request uses to its end
        (call in a ``before_request`` hook)."""
        state = self.check()
        setattr(g, self._key, state)
        return state

    # --- following definition changes -----------------------------------------------------

    def check(self) -> State:
        """The latest state, after asking the database for a newer Model if the last check
        is ``MODEL_CHECK_SECONDS`` old. Until then it costs one clock reading: no lock and
        no query. While another thread compiles a new Model, the current one is returned."""
        now = time.monotonic()
        if now < self._next_check:
            return self._state
        # A plain float store: two threads passing at once just both check.
        self._next_check = now + self.check_seconds
        return self.refresh(wait=False)

    def refresh(self, *, wait: bool = True) -> State:
        """Ask the database now which Model was migrated last, and serve it if it is not
        the one served. A snapshot that does not compile is logged and skipped: the current
        Model stays. ``wait=False`` returns at once if another thread is swapping."""
        current = self._state
        latest = self._latest_snapshot(current)
        if latest is None:
            return current
        first, self._seen_history = not self._seen_history, True
        if latest[1] in (current.source, self._broken):
            return current
        if not self._swap.acquire(blocking=wait):
            return current
        try:
            current = self._state  # another thread may have swapped it in meanwhile
            if latest[1] == current.source:
                return current
            self._state = self._from_snapshot(current, *latest, files=first)
            return self._state
        finally:
            self._swap.release()

    def _latest_snapshot(self, state: State) -> tuple[int, str] | None:
        """(id, hash) of the last history row: an indexed look-up of one short row. None
        when there is none, or no history table yet (not migrated), or no database.

        The same statement reads the accounts' change counter (:data:`AUTH_COUNTER`): when
        a user was disabled or a token revoked in any process, this one forgets the
        tokens it trusted, so the change holds everywhere within a check."""
        history = state.tables.metadata.tables[HISTORY_TABLE]
        counters = state.tables.metadata.tables[SEQUENCE_TABLE]
        auth = sa.select(counters.c.value).where(counters.c.name == AUTH_COUNTER)
        last = (
            sa.select(history.c.id, history.c.hash)
            .order_by(history.c.id.desc())
            .limit(1)
            .subquery("last")
        )
        one = sa.select(sa.literal(1).label("one")).subquery("one")
        query = sa.select(auth.scalar_subquery().label("auth"), last.c.id, last.c.hash).select_from(
            one.outerjoin(last, sa.true())
        )
        try:
            with state.records.reader.connect() as conn:
                row = conn.execute(query).first()
        except sa.exc.SQLAlchemyError as exc:
            # Nothing to follow yet; /readyz reports a database that does not answer.
            log.debug("model check skipped: %s", exc.__class__.__name__)
            return None
        if row is None:  # pragma: no cover - the statement always gives one row
            return None
        if row.auth != self._auth_seen:
            self._auth_seen = row.auth
            self.tokens.clear()
        return (int(row.id), str(row.hash)) if row.id is not None else None

    def _from_snapshot(self, current: State, row_id: int, digest: str, *, files: bool) -> State:
        """A state for history row ``row_id``; ``current`` when it cannot be compiled.
        ``files``: the first migration found, so ``current`` is the files' Model."""
        history = current.tables.metadata.tables[HISTORY_TABLE]
        try:
            with current.records.reader.connect() as conn:
                text = conn.scalar(sa.select(history.c.model).where(history.c.id == row_id))
            model = model_from_json(str(text))
            state = self._build(model, digest)
        except Exception:
            # Whatever is wrong with a stored snapshot, the process must keep serving the
            # Model it has: log it (once) and leave the state alone.
            self._broken = digest
            log.exception(
                "the definitions migrated last (model %s, history row %s) cannot be loaded;"
                " still serving model %s — run `heddle migrate` again to record a good one",
                digest[:12],
                row_id,
                current.model.hash[:12],
            )
            return current
        extra = {"model_hash": model.hash, "previous_hash": current.model.hash}
        if files:
            # Files older or newer than the database (a deployment half done, a change made
            # on the admin screens): what the tables were migrated to wins, but say so.
            log.warning(
                "the definition files (model %s) are not the ones the database was migrated"
                " to: serving the migrated model %s; `heddle migrate` applies the files",
                current.model.hash[:12],
                model.hash[:12],
                extra=extra,
            )
        else:
            log.info(
                "definitions changed: serving model %s (was %s)",
                model.hash[:12],
                current.model.hash[:12],
                extra=extra,
            )
        return state

    # --- building ------------------------------------------------------------------------

    def _load_files(self) -> Model:
        load_plugins(str(self.config.get("PLUGINS") or ""))
        paths = [Path(p.strip()) for p in str(self.config["PACKAGES"]).split(",") if p.strip()]
        return load_packages(paths)

    def _build(self, model: Model, source: str) -> State:
        tables = build_tables(model)
        records = Records(self.engine, model, tables=tables, events=self.events)
        accounts = Accounts(tables)
        accounts.cache = self.tokens
        return State(model, tables, records, accounts, source)


def _seconds(value: Any) -> float:
    """``MODEL_CHECK_SECONDS`` as a number: 0 or more."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(
            f"HEDDLE_MODEL_CHECK_SECONDS must be a number of seconds, 0 or more "
            f"(0 checks on every request), not {value!r}"
        )
    return seconds
