"""A plugin for the job tests (HEDDLE_PLUGINS=heddle_test_jobs, with this folder on
PYTHONPATH for a worker process): the ``bump`` job adds one to a contract's ``hits`` in
the job's transaction, so its effect can be counted.

While the file named by ``HEDDLE_TEST_SLOW`` exists, ``bump`` first writes the file
``<it>.started`` and sleeps: a test kills the worker then, half-way through the job. While
``HEDDLE_TEST_FAIL`` is set, it raises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows import JOBS, Job, JobRun


def bump(run: JobRun, args: Mapping[str, Any]) -> None:
    table = run.records.tables.table("contract")
    run.db.execute(
        table.update().where(table.c.id == args["record_id"]).values(hits=table.c.hits + 1)
    )
    slow = os.environ.get("HEDDLE_TEST_SLOW", "")
    if slow and Path(slow).exists():
        Path(slow + ".started").write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(120)
    if os.environ.get("HEDDLE_TEST_FAIL"):
        raise RuntimeError("bump failed on purpose")


if "bump" not in JOBS:
    JOBS.register(Job("bump", bump, "Add one to a contract's hits.", max_attempts=3))
