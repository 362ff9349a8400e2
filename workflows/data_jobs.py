"""Imports and exports as jobs of the outbox: ``heddle worker`` runs them (docs/import-export.md).

:func:`job_executor` is the :data:`engine.imports.Executor` of a deployment with Redis: a
run started in the background (an upload, ``heddle import --background``, a big export)
becomes a ``data_run`` job, written to the outbox and relayed to RQ. The worker that
takes it runs the import batch by batch, each batch committed with the run's checkpoint,
for at most half the queue's lease; then it queues the run again and ends, so no job
outlives its lease, and another worker may go on with it. A worker killed in the middle
leaves the run's last checkpoint: the job, sent again when its lease runs out, goes on
from there (once the run's checkpoint is old enough to show that nothing runs it) and
writes no row twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import Conflict
from engine.imports import MAX_WORKERS, Executor, Imports

from .outbox import JOBS, Job, JobQueue, JobRun, add

JOB = "data_run"


def _run(run: JobRun, args: Mapping[str, Any]) -> None:
    """One turn of a run: done, or queued again for the next turn. A run another worker
    holds now raises, and the outbox tries again later (with growing delays)."""
    run_id = int(args["run"])
    workers = int(run.queue.options.get("import_workers") or MAX_WORKERS)  # HEDDLE_IMPORT_WORKERS
    imports = Imports(run.records, max_workers=workers)
    with run.records.engine.connect() as conn:
        status = imports.store.run(conn, run_id)["status"]
    if status in ("done", "failed"):
        return  # a job delivered twice: its run is over
    try:
        over = imports.execute(run_id, seconds=run.queue.lease_seconds / 2)
    except Conflict:
        raise RuntimeError(f"import run {run_id} is being run by another worker") from None
    if not over:
        enqueue(run.queue, run_id)


JOBS.register(
    Job(
        JOB,
        _run,
        "Run an import or an export (engine.imports) in the background.",
        max_attempts=10,  # a crashed worker's run waits until its checkpoint is stale
        atomic=False,  # the import commits batch by batch, with its checkpoint
    )
)


def enqueue(queue: JobQueue, run_id: int) -> None:
    """Write the run's job to the outbox, and hand it to RQ."""
    records = queue.records()
    with queue.engine.begin() as conn:
        add(conn, records.tables, JOB, {"run": run_id}, key=f"{JOB}:{run_id}:{uuid.uuid4().hex}")
    queue.flush()


def job_executor(queue: JobQueue) -> Executor:
    """Background runs as jobs of ``queue`` (the run's own work function is not used:
    the worker rebuilds the run from the database)."""

    def executor(run_id: int, _work: Callable[[], None]) -> None:
        enqueue(queue, run_id)

    return executor
