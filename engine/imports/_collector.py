"""Fewer full garbage collections while an import runs.

CPython starts a full collection — a walk over every object of the process: the Model,
SQLAlchemy's tables and caches, the file's rows — each time a quarter as many objects as
the last one left have survived the young generations. An import's rows survive them by
the thousand (a batch of 500 records lives through several young collections), so a run
of 20,000 rows started five or six full collections, 80 to 150 ms each on the shared
development machine, a sixth of the import's time, and each found almost nothing to free
(docs/performance.md, "Import"): the rows die young or stay for the run.

While at least one import runs in the process the oldest generation waits for
:data:`FULL_AFTER` collections of the middle one instead of ten. The young generations
are collected as before, so garbage with cycles among the rows is still freed soon; a
full collection still comes, only rarely. The collector's thresholds belong to the
process: the first run in sets them, the last one out puts back what it found.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Collections of the middle generation before a full one is considered (CPython's: 10).
FULL_AFTER = 1000


class _Runs:
    """How many runs want fewer full collections, and the thresholds from before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.saved: tuple[int, int, int] = gc.get_threshold()


_RUNS = _Runs()


@contextmanager
def fewer_full_collections() -> Iterator[None]:
    """Defer the garbage collector's full collections for the ``with`` block (see the
    module's documentation)."""
    with _RUNS.lock:
        if _RUNS.count == 0:
            _RUNS.saved = young, middle, oldest = gc.get_threshold()
            gc.set_threshold(young, middle, max(oldest, FULL_AFTER))
        _RUNS.count += 1
    try:
        yield
    finally:
        with _RUNS.lock:
            _RUNS.count -= 1
            if _RUNS.count == 0:
                gc.set_threshold(*_RUNS.saved)
