"""Writing an import with several processes: one per core, each with its own connection,
so the import's Python (converting, checking, the duplicate rules) runs beside itself and
beside PostgreSQL's work instead of after it.

The groups still to write are split into as many runs of the file as there are processes
(``os.fork``: each starts with the plan, the file's rows and the Model already in memory).
Each process first works out the *marks* of its groups — their keys under the duplicate
rules, their import key, their unique values (:meth:`Runner.marks`) — and sends them here.
Groups tied by a shared mark, directly or through others, belong together; when such a set
spans the runs of two processes, none of its groups is written by them: this process
writes them afterwards, in the file's order, so a row that repeats another of the file is
found and reported as it is when one process writes them all ("Repeats row 12"), and no two
processes ever insert the same key, import key or unique value at once.

Each process writes its other groups in batches; a batch is committed with its checkpoint
(the batch's report added to the run's stored one, whose row is locked for that moment) and
its report is sent here for the progress. A run resumed after a crash writes the groups the
stored report does not list, in the same way. Asked to stop (an import's lease is up), each
process stops after its current batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import os
import pickle
import traceback
from collections.abc import Callable, Hashable, Sequence
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..duplicates.rules import remember_up_to
from ..errors import EngineError
from ..records._write import autonumber_counter

if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess

    from ._run import Checkpoint, Progress, Report, Runner

log = logging.getLogger(__name__)
#: A process collects its young objects after each batch, all of them after this many:
#: the collector's own rhythm (every 700 allocations) cost about a twelfth of its time,
#: and a batch leaves little garbage in cycles (some dozens of objects, 1–10 ms to find).
FULL_EVERY = 10


def run(
    runner: Runner,
    report: Report,
    *,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> Report:
    """:meth:`Runner.run`, with several processes where they pay (:meth:`Runner.workers`):
    the groups of each written by it, then those tied across processes here."""
    options = runner.options
    pending = report.pending()
    workers = runner.workers(len(pending))
    if options.dry_run or options.all_or_nothing or workers <= 1:
        return runner.run(report, checkpoint=checkpoint, progress=progress,
                          after_batch=after_batch)  # fmt: skip
    report.workers = workers
    _prepare_counters(runner)
    slices = _split(pending, workers)
    tied = _Processes(runner, report, slices, checkpoint, progress, after_batch).run()
    runner.write(tied, report, checkpoint, progress, after_batch)
    report.committed = True
    return report


def _prepare_counters(runner: Runner) -> None:
    """The counters of the autonumbers the run writes, ready before the processes start
    (:meth:`Counters.prepare`)."""
    records, now = runner.records, dt.datetime.now(dt.UTC)
    with records.engine.begin() as conn:
        for name in runner.written_entities():
            ent = records.entity(name)
            for auto in ent.fields_of_type("autonumber"):
                records.counters.prepare(conn, autonumber_counter(ent, auto, now)[0])


def _split(places: Sequence[int], parts: int) -> list[list[int]]:
    """``places`` in ``parts`` runs of (nearly) equal length, in order; none empty."""
    size, extra = divmod(len(places), parts)
    found, start = [], 0
    for number in range(parts):
        end = start + size + (1 if number < extra else 0)
        if end > start:
            found.append(list(places[start:end]))
        start = end
    return found


def ties(marks: Sequence[Sequence[tuple[int, Sequence[Hashable]]]]) -> tuple[set[int], set[int]]:
    """The groups that share a mark, directly or through others, with a group of another
    process; and all that share one with another group. ``marks``: per process, each of
    its groups' place with its marks."""
    parent: dict[int, int] = {}

    def root(place: int) -> int:
        while (up := parent.get(place, place)) != place:
            parent[place] = parent.get(up, up)  # halve the path
            place = up
        return place

    first: dict[Any, int] = {}  # mark → the first group holding it
    linked: set[int] = set()  # the groups that share a mark with another
    for places in marks:
        for place, found in places:
            for mark in found:
                other = first.setdefault(mark, place)
                if other != place:
                    linked.update((other, place))
                    a, b = root(other), root(place)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    process_of = {place: number for number, places in enumerate(marks) for place, _ in places}
    spans: dict[int, set[int]] = {}
    for place in linked:
        spans.setdefault(root(place), set()).add(process_of[place])
    return {place for place in linked if len(spans[root(place)]) > 1}, linked


class _Processes:
    """The processes of one run, and what this process does while they write."""

    def __init__(
        self,
        runner: Runner,
        report: Report,
        slices: list[list[int]],
        checkpoint: Checkpoint | None,
        progress: Progress | None,
        after_batch: Callable[[int], None] | None,
    ) -> None:
        self.runner = runner
        self.report = report
        self.slices = slices
        self.checkpoint = checkpoint
        self.progress = progress
        self.after_batch = after_batch
        self.parent = os.getpid()

    def run(self) -> list[int]:
        """Start the processes, have them write, wait for them; the places of the groups
        left to write here (tied across processes)."""
        context = get_context("fork")
        pipes: list[Connection] = []
        processes: list[ForkProcess] = []
        gc.freeze()  # the objects the processes start with: their collections skip them
        try:
            for places in self.slices:
                here, there = context.Pipe()
                process = context.Process(target=self._work, args=(places, there), daemon=True)
                process.start()
                there.close()
                pipes.append(here)
                processes.append(process)
            try:
                marks = [self._receive(pipe) for pipe in pipes]
                tied, linked = ties(marks)
                for pipe in pipes:
                    pipe.send((tied, linked))
                self._follow(pipes)
            except BaseException:
                for process in processes:
                    process.terminate()
                raise
            finally:
                for process in processes:
                    process.join()
                for pipe in pipes:
                    pipe.close()
        finally:
            gc.unfreeze()
        return sorted(tied)

    def _follow(self, pipes: list[Connection]) -> None:
        """Merge each batch's report as it comes; ask everyone to stop when ``after_batch``
        raises (its time is up), and raise it again once all have stopped."""
        stopped: BaseException | None = None
        open_pipes = list(pipes)
        while open_pipes:
            for pipe in wait(open_pipes):
                assert isinstance(pipe, Connection)
                message = self._receive(pipe)
                if message == "done":
                    open_pipes.remove(pipe)
                    continue
                self.report.merge(type(self.report).from_dict(message))
                if self.progress is not None:
                    self.progress(self.report.done, self.report.total)
                if self.after_batch is not None and stopped is None:
                    try:
                        self.after_batch(self.report.done)
                    except BaseException as exc:
                        stopped = exc
                        for other in open_pipes:
                            # a process may have ended meanwhile (its "done" unread yet)
                            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                                other.send("stop")
        if stopped is not None and self.report.done < self.report.total:
            raise stopped  # (all written meanwhile: nothing to go on with)

    @staticmethod
    def _receive(pipe: Connection) -> Any:
        """A process's next message; its error raised here."""
        try:
            message = pipe.recv()
        except EOFError:
            raise RuntimeError("an import process ended without a word") from None
        if isinstance(message, tuple) and message and message[0] == "error":
            if isinstance(message[1], BaseException):
                raise message[1]
            raise RuntimeError(f"an import process failed:\n{message[1]}")
        return message

    # --- in each process ---------------------------------------------------------------------

    def _work(self, places: list[int], pipe: Connection) -> None:
        runner = self.runner
        try:
            runner.records.engine.dispose(close=False)  # the connections are this process's
            gc.disable()  # collected between batches instead: see FULL_EVERY
            remember_up_to(len(places) + 1024)  # each row's keys: marked, then checked twice
            groups = runner.plan.groups
            with runner.records.engine.connect() as conn:
                # as hashes: a fraction of the pickle (the processes share the parent's
                # hash seed); two marks of one hash only leave a group more to this one
                pipe.send([(p, [hash(m) for m in runner.marks(conn, groups[p])])
                           for p in places])  # fmt: skip
            tied, linked = pipe.recv()
            todo = [p for p in places if p not in tied]
            # a group no other shares a mark with repeats nothing and is repeated by none:
            # its keys need no in-file check
            runner.unshared = {groups[p].number for p in todo if p not in linked}
            for number, begin in enumerate(range(0, len(todo), runner.batch_size), start=1):
                if os.getppid() != self.parent or (pipe.poll() and pipe.recv() == "stop"):
                    break  # asked to stop, or the process that started it is gone
                part = runner.write_batch(todo[begin : begin + runner.batch_size], self.report,
                                          self.checkpoint)  # fmt: skip
                pipe.send(part.to_dict())
                gc.collect(2 if number % FULL_EVERY == 0 else 1)
            pipe.send("done")
        except BaseException as exc:
            text = traceback.format_exc()
            try:  # the engine's errors as they are: the run fails with their message
                pipe.send(("error", exc if isinstance(exc, EngineError) else text))
            except (pickle.PicklingError, TypeError, AttributeError):  # not picklable
                pipe.send(("error", text))
        finally:
            pipe.close()
