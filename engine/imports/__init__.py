"""Import and export: spreadsheets in, lists out, through the record service.

>>> imports = Imports(records)
>>> run = imports.run(actor, "account", content, "accounts.csv",
...                   ImportOptions(mode="upsert", key="external_id", dry_run=True))
>>> run["report"]["counts"]
{'created': 120, 'updated': 3, 'unchanged': 0, 'merged': 0, 'skipped': 1, 'error': 2}

Files are read by :mod:`._files` (CSV in any common encoding, XLSX, JSON), columns mapped
by :mod:`._mapping`, cells converted by :mod:`._convert` and :mod:`._lookup`, and rows
written by :mod:`._run` in batches with a checkpoint stored with the run (:mod:`._store`),
so a run can go on in the background (:meth:`Imports.start`), be watched
(:meth:`Imports.status`) and be resumed after a crash (:meth:`Imports.resume`) without
writing a row twice. Exports: :class:`Export`. See docs/import-export.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..context import Actor
from ..errors import BadRequest, Conflict, EngineError, NotFound
from . import _parallel
from ._backup import export_all, import_all
from ._collector import fewer_full_collections
from ._convert import MESSAGES
from ._errorfile import ERRORS, ROW, Say, rejected, to_csv, to_xlsx
from ._export import EXPORT_FORMATS, MEDIA_TYPES, Export
from ._files import BadFile, FileTooLarge, Sheet, read_sheet, size_text
from ._mapping import suggest
from ._options import DUPLICATE_CHOICES, MAX_WORKERS, MODES, ImportOptions
from ._run import Plan, Progress, Report, Runner, prepare
from ._store import Store

if TYPE_CHECKING:
    from ..records import Records

log = logging.getLogger("heddle.imports")

MAX_BYTES = 10 * 1024 * 1024
#: A run marked running whose checkpoint is older than this, and that no thread of this
#: process runs, is taken as interrupted: it may be resumed.
STALE_SECONDS = 15 * 60
#: Runs one job: the default starts a daemon thread; a job queue passes its own (it calls
#: :meth:`Imports.execute` with the run's id in a worker).
Executor = Callable[[int, Callable[[], None]], None]
# What runs in this process, by (database engine, run id): the thread, and the progress.
_LIVE: dict[tuple[int, int], threading.Thread] = {}
_PROGRESS: dict[tuple[int, int], tuple[int, int]] = {}
_LIVE_LOCK = threading.Lock()


def thread_executor(run_id: int, work: Callable[[], None]) -> None:
    thread = threading.Thread(target=work, name=f"heddle-import-{run_id}", daemon=True)
    thread.start()


class Imports:
    """Imports, exports and their runs for one record service."""

    def __init__(
        self,
        records: Records,
        *,
        max_bytes: int = MAX_BYTES,
        executor: Executor = thread_executor,
        stale_seconds: float = STALE_SECONDS,
        max_workers: int = MAX_WORKERS,
    ) -> None:
        """``max_workers``: the most processes one import is written with, whatever its
        options ask (docs/import-export.md#several-processes)."""
        self.records = records
        self.max_workers = max_workers
        self.stale_seconds = stale_seconds
        self.store = Store(records.tables)
        self.max_bytes = max_bytes
        self.executor = executor

    # --- reading and mapping -----------------------------------------------------------------

    def read(self, content: bytes, filename: str, options: ImportOptions) -> Sheet:
        if len(content) > self.max_bytes:
            raise FileTooLarge(
                f"the file is {size_text(len(content))}: at most {size_text(self.max_bytes)} "
                "may be imported at once — split it"
            )
        return read_sheet(content, filename, format=options.format, encoding=options.encoding)

    def preview(
        self, actor: Actor, entity: str, content: bytes, filename: str, options: ImportOptions
    ) -> dict[str, Any]:
        """The mapping an import would use, its problems, and the first rows."""
        sheet = self.read(content, filename, options)
        plan, report = prepare(self.records, actor, entity, sheet, options)
        return {
            "format": sheet.format,
            "encoding": sheet.encoding,
            "headers": sheet.headers,
            "mapping": report.mapping,
            "rows": len(sheet.rows),
            "records": len(plan.groups),
            "sample": [
                {"row": n, "cells": [_json_cell(c) for c in cells]} for n, cells in sheet.rows[:5]
            ],
        }

    def suggest(self, entity: str, headers: list[str]) -> dict[str, str | None]:
        ent = self.records.entity(entity)
        return suggest(self.records.model, ent, headers)

    # --- runs --------------------------------------------------------------------------------

    def run(
        self,
        actor: Actor,
        entity: str,
        content: bytes,
        filename: str,
        options: ImportOptions,
        *,
        progress: Progress | None = None,
        after_batch: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Import now, in this thread; the run (with its report) as :meth:`status` gives it."""
        with fewer_full_collections():
            run_id, plan = self._create(actor, entity, content, filename, options)
            self._execute(run_id, progress=progress, after_batch=after_batch, plan=plan)
        return self.status(actor, run_id)

    def create(
        self, actor: Actor, entity: str, content: bytes, filename: str, options: ImportOptions
    ) -> int:
        """Check the file and the mapping (refusing a bad one at once) and store a run."""
        return self._create(actor, entity, content, filename, options)[0]

    def _create(
        self, actor: Actor, entity: str, content: bytes, filename: str, options: ImportOptions
    ) -> tuple[int, Plan]:
        """The stored run's id, and its plan (the sheet read from ``content``)."""
        with fewer_full_collections():
            sheet = self.read(content, filename, options)
            plan, report = prepare(self.records, actor, entity, sheet, options)
            with self.records.engine.begin() as conn:
                run_id = self.store.create_run(
                    conn, kind="import", entity=plan.entity.name, actor=actor,
                    options=options.to_json(), filename=filename, content=content,
                    total=len(plan.groups),
                )  # fmt: skip
                self.store.update_run(conn, run_id, report=report.to_dict())
        return run_id, plan

    def start(
        self, actor: Actor, entity: str, content: bytes, filename: str, options: ImportOptions
    ) -> int:
        """Import in the background (see :data:`Executor`); the run's id, to watch."""
        run_id = self.create(actor, entity, content, filename, options)
        self._launch(run_id)
        return run_id

    def again(self, actor: Actor, run_id: int, *, background: bool = False, **changes: Any) -> int:
        """A new run of a stored run's file, with its options and ``changes`` (a file
        checked by a dry run, imported for real: ``dry_run=False``), run now or in the
        background; its id. Only the run's user, or an administrator."""
        self.status(actor, run_id)  # the same sight: NotFound otherwise
        with self.records.reader.connect() as conn:
            run = self.store.run(conn, run_id, content=True)
        if run["kind"] != "import":
            raise NotFound(f"no import run with id {run_id}")
        stored = {k: v for k, v in run["options"].items() if k != "system"}
        options = ImportOptions.from_json({**stored, **changes})
        content, filename = run["content"] or b"", run["filename"]
        if background:
            return self.start(actor, run["entity"], content, filename, options)
        return int(self.run(actor, run["entity"], content, filename, options)["id"])

    def resume(
        self,
        run_id: int,
        *,
        background: bool = False,
        progress: Progress | None = None,
        after_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Go on with a run that stopped (a crash, a restart) from its checkpoint."""
        with self.records.engine.connect() as conn:
            run = self.store.run(conn, run_id)
        if run["status"] == "done":
            raise Conflict(f"import run {run_id} is done: nothing to resume")
        if self.alive(run_id) or (run["status"] == "running" and not self._stale(run)):
            raise Conflict(
                f"import run {run_id} is running (its last checkpoint is recent): resume it "
                f"when it has written none for {self.stale_seconds:.0f} s"
            )
        if background:
            self._launch(run_id)
        else:
            self._execute(run_id, progress=progress, after_batch=after_batch)
        return run_id

    def execute(self, run_id: int, *, seconds: float | None = None) -> bool:
        """Run (or go on with) a stored run, import or export: what a background worker
        calls. ``seconds``: an import that writes batch by batch stops after the first
        batch that ends later than that (its status back to ``queued``, its checkpoint
        kept) and False is returned: the worker queues it again, so no job outlives its
        lease. True when the run is over (done or failed). :class:`Conflict` when another
        process runs it now."""
        with self.records.engine.connect() as conn:
            kind = self.store.run(conn, run_id)["kind"]
        if kind == "export":
            self._export(run_id)
            return True
        return self._execute(run_id, seconds=seconds)

    def _stale(self, run: Mapping[str, Any]) -> bool:
        age: dt.timedelta = dt.datetime.now(dt.UTC) - run["updated_at"]
        return age.total_seconds() >= self.stale_seconds

    def _claim(self, conn: sa.Connection, run_id: int) -> bool:
        """Mark a run as running, unless another process runs it (a recent checkpoint):
        two runners of one run would write its rows twice."""
        runs = self.store.runs
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.stale_seconds)
        claimed = conn.execute(
            runs.update()
            .where(runs.c.id == run_id, runs.c.status != "done")
            .where(sa.or_(runs.c.status != "running", runs.c.updated_at <= stale))
            .values(status="running", error=None, updated_at=dt.datetime.now(dt.UTC))
        )
        return bool(claimed.rowcount == 1)

    def _key(self, run_id: int) -> tuple[int, int]:
        return (id(self.records.engine), run_id)

    def alive(self, run_id: int) -> bool:
        with _LIVE_LOCK:
            thread = _LIVE.get(self._key(run_id))
        return thread is not None and thread.is_alive()

    def _launch(self, run_id: int) -> None:
        def work() -> None:
            with _LIVE_LOCK:
                _LIVE[self._key(run_id)] = threading.current_thread()
            try:
                self._execute(run_id)
            except EngineError as exc:  # another process runs it: leave it to that one
                log.warning("import run %s not started: %s", run_id, exc.message)

        self.executor(run_id, work)

    def _execute(
        self,
        run_id: int,
        *,
        progress: Progress | None = None,
        after_batch: Callable[[int], None] | None = None,
        seconds: float | None = None,
        plan: Plan | None = None,
    ) -> bool:
        """Run a stored import from its checkpoint; ``plan``: its plan made already
        (:meth:`run` has just read the file to check it), else made from the stored run."""
        with fewer_full_collections():
            return self._execute_run(run_id, progress, after_batch, seconds, plan)

    def _execute_run(
        self,
        run_id: int,
        progress: Progress | None,
        after_batch: Callable[[int], None] | None,
        seconds: float | None,
        plan: Plan | None,
    ) -> bool:
        deadline = None if seconds is None else time.monotonic() + seconds

        def batch_done(done: int) -> None:
            if after_batch is not None:
                after_batch(done)
            if deadline is not None and time.monotonic() >= deadline:
                raise _Pause()

        with self.records.engine.begin() as conn:
            run = self.store.run(conn, run_id, content=plan is None)
            if not self._claim(conn, run_id):
                raise Conflict(f"import run {run_id} is running or done")
        try:
            if plan is None:
                options = ImportOptions.from_json(run["options"])
                # its size was checked when it was stored (a worker may not share the limit)
                sheet = read_sheet(run["content"] or b"", run["filename"],
                                   format=options.format, encoding=options.encoding)  # fmt: skip
                plan, _ = prepare(self.records, self._actor(run), run["entity"], sheet, options)
            report = Report.from_dict(run["report"])
            report.total = len(plan.groups)

            def seen(done: int, total: int) -> None:
                _PROGRESS[self._key(run_id)] = (done, total)
                if progress is not None:
                    progress(done, total)

            def checkpoint(conn: sa.Connection, part: Report) -> None:
                stored = Report.from_dict(self.store.run(conn, run_id, lock=True)["report"])
                stored.merge(part)
                self.store.update_run(conn, run_id, done=stored.done, report=stored.to_dict())

            runner = Runner(plan, self.max_workers)
            _parallel.run(runner, report, checkpoint=checkpoint, progress=seen,
                          after_batch=batch_done)  # fmt: skip
        except _Pause:  # its time is up: the batches so far are committed
            with self.records.engine.begin() as conn:
                self.store.update_run(conn, run_id, status="queued")
            return False
        except EngineError as exc:
            with self.records.engine.begin() as conn:
                self.store.update_run(conn, run_id, status="failed", error=exc.message)
            return True
        except Exception as exc:
            log.exception("import run %s failed", run_id)
            with self.records.engine.begin() as conn:
                self.store.update_run(conn, run_id, status="failed", error=str(exc)[:2000])
            return True
        finally:
            _PROGRESS.pop(self._key(run_id), None)
        with self.records.engine.begin() as conn:
            self.store.update_run(conn, run_id, status="done", done=report.done,
                                  report=report.to_dict())  # fmt: skip
        return True

    def _actor(self, run: Mapping[str, Any]) -> Actor:
        with self.records.engine.connect() as conn:
            return self.store.actor_of(conn, run)

    # --- watching --------------------------------------------------------------------------

    def status(self, actor: Actor, run_id: int) -> dict[str, Any]:
        """A run as its user (or an administrator) may see it: status, progress, report."""
        with self.records.reader.connect() as conn:
            run = self.store.run(conn, run_id)
        if not actor.is_admin and run["user_id"] != actor.user_id:
            raise NotFound(f"no import run with id {run_id}")
        done, total = self.progress(run)
        status = self.status_of(run)
        return {
            "id": run["id"],
            "kind": run["kind"],
            "entity": run["entity"],
            "status": status,
            "filename": run["filename"],
            "progress": {"done": done, "total": total},
            "options": {k: v for k, v in run["options"].items() if k != "system"},
            "report": run["report"],
            "error": run["error"],
            "created_at": run["created_at"],
            "updated_at": run["updated_at"],
        }

    def status_of(self, run: Mapping[str, Any]) -> str:
        """A stored run's status as shown: ``interrupted`` for one marked running that
        nothing here runs and that has written no checkpoint for a while (resume it)."""
        status = str(run["status"])
        if status == "running" and not self.alive(run["id"]) and self._stale(run):
            return "interrupted"
        return status

    def progress(self, run: Mapping[str, Any]) -> tuple[int, int]:
        """Rows done and in all: this process's live count, else the last checkpoint's."""
        found: tuple[int, int] = _PROGRESS.get(self._key(run["id"]), (run["done"], run["total"]))
        return found

    def error_file(
        self,
        actor: Actor,
        run_id: int,
        format: str = "csv",
        *,
        say: Say | None = None,
        labels: tuple[str, str] = (ROW, ERRORS),
    ) -> bytes:
        """Each rejected row with its row number and messages, as CSV or XLSX. ``say``
        words each problem (given the run's entity and the problem as the report keeps
        it: its message, template and params), for a reader in another language; the
        engine's English otherwise. ``labels``: the headers of the number and messages."""
        if format not in ("csv", "xlsx"):
            raise BadRequest("the error file is csv or xlsx", {"format": ["csv or xlsx."]})
        self.status(actor, run_id)  # the same sight
        with self.records.reader.connect() as conn:
            run = self.store.run(conn, run_id, content=True)
        if run["kind"] != "import":
            raise NotFound(f"no import run with id {run_id}")
        options = ImportOptions.from_json(run["options"])
        sheet = self.read(run["content"] or b"", run["filename"], options)
        entity = run["entity"]
        words = None if say is None else (lambda problem: say(entity, problem))
        table = rejected(sheet, run["report"], say=words, labels=labels)
        return to_csv(table) if format == "csv" else to_xlsx(table)

    # --- exports ---------------------------------------------------------------------------

    def export(
        self, actor: Actor, entity: str, params: Mapping[str, Any], format: str = "csv"
    ) -> bytes:
        return Export(self.records, actor, entity, params).write(format)

    def start_export(
        self,
        actor: Actor,
        entity: str,
        params: Mapping[str, Any],
        format: str = "csv",
        *,
        where: str | None = None,
    ) -> int:
        """Export in the background; the file is kept with the run (:meth:`download`).
        ``where``: a list view's filter (:class:`Export`)."""
        job = Export(self.records, actor, entity, params, where=where)  # a bad query: now
        if format not in EXPORT_FORMATS:
            job.write(format)  # raises the error that names the formats
        options: dict[str, Any] = {"format": format, "params": dict(params)}
        if where:
            options["where"] = where
        with self.records.engine.begin() as conn:
            run_id = self.store.create_run(
                conn, kind="export", entity=job.entity.name, actor=actor,
                options=options, total=job.count(),
            )  # fmt: skip

        def work() -> None:
            with _LIVE_LOCK:
                _LIVE[self._key(run_id)] = threading.current_thread()
            self._export(run_id)

        self.executor(run_id, work)
        return run_id

    def _export(self, run_id: int) -> None:
        """Write a stored export run's file, as its user (with the permissions they have
        now) asked for it, and keep it with the run."""
        try:
            with self.records.engine.begin() as conn:
                run = self.store.run(conn, run_id)
                if run["status"] == "done":
                    return  # a job run twice: the file is there
                actor = self.store.actor_of(conn, run)
                self.store.update_run(conn, run_id, status="running")
            options = run["options"]
            format = str(options.get("format", "csv"))
            job = Export(self.records, actor, run["entity"], options.get("params", {}),
                         where=options.get("where"))  # fmt: skip
            content = job.write(format)
        except Exception as exc:
            log.exception("export run %s failed", run_id)
            message = exc.message if isinstance(exc, EngineError) else str(exc)[:2000]
            with self.records.engine.begin() as conn:
                self.store.update_run(conn, run_id, status="failed", error=message)
            return
        with self.records.engine.begin() as conn:
            self.store.update_run(conn, run_id, status="done", content=content,
                                  filename=f"{run['entity']}.{format}",
                                  done=job.count())  # fmt: skip

    def download(self, actor: Actor, run_id: int) -> tuple[bytes, str, str]:
        """A finished export's file, its name and media type."""
        status = self.status(actor, run_id)
        if status["kind"] != "export":
            raise NotFound(f"no export with id {run_id}")
        if status["status"] != "done":
            raise Conflict(f"export {run_id} is {status['status']}: not ready yet")
        with self.records.reader.connect() as conn:
            run = self.store.run(conn, run_id, content=True)
        format = str(run["options"].get("format", "csv"))
        return bytes(run["content"] or b""), run["filename"], MEDIA_TYPES[format]


class _Pause(Exception):
    """An import's time in this job is up (:meth:`Imports.execute`)."""


def _json_cell(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


__all__ = [
    "DUPLICATE_CHOICES",
    "EXPORT_FORMATS",
    "MAX_BYTES",
    "MAX_WORKERS",
    "MEDIA_TYPES",
    "MESSAGES",
    "MODES",
    "BadFile",
    "Executor",
    "Export",
    "FileTooLarge",
    "ImportOptions",
    "Imports",
    "Report",
    "Say",
    "Sheet",
    "Store",
    "export_all",
    "import_all",
    "read_sheet",
    "size_text",
    "thread_executor",
]
