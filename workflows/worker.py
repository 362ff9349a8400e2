"""``heddle worker`` and ``heddle scheduler``: an RQ worker that also relays the outbox,
and RQ's own cron scheduler driving the automations.

The worker is RQ's :class:`~rq.SimpleWorker` (each job runs in the worker process: no
fork, so a database pool is never shared across processes). Between two jobs, and every
``RELAY_SECONDS`` while idle, it relays the outbox's due rows — jobs written while Redis
was down, retries whose delay has passed, jobs whose worker died — so nothing waits for a
web request to be sent.

The scheduler is :class:`rq.cron.CronScheduler`: one cron job, every minute, enqueues
:func:`tick`, which runs the registered ticks (:data:`workflows.outbox.TICKS`). The
automations' tick asks croniter which scheduled automations and reminders are due in
that minute and writes one outbox job per automation and minute (the key makes two
schedulers, or a tick run twice, one run).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from .outbox import JobQueue, run_ticks, serving

log = logging.getLogger("heddle.worker")

RELAY_SECONDS = 2


class HeddleWorker(SimpleWorker):
    """An RQ worker that relays the outbox while it waits for jobs."""

    jobs: JobQueue

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> Any:
        while True:
            self.jobs.flush()
            if timeout is None:  # burst: take what is there, then stop
                return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
            found = super().dequeue_job_and_maintain_ttl(min(timeout, RELAY_SECONDS), RELAY_SECONDS)
            if found is not None:
                return found


def worker(jobs: JobQueue, *, name: str | None = None) -> HeddleWorker:
    """A worker serving ``jobs``' queue; ``.work()`` runs it until it is stopped."""
    jobs.serve()
    client = jobs.redis()
    found = HeddleWorker([Queue(jobs.queue_name, connection=client)], connection=client, name=name)
    found.jobs = jobs
    return found


def tick() -> int:
    """What the cron scheduler enqueues every minute: every registered tick (the
    automations and reminders due now, :func:`automations.enqueue_due`), by the queue
    this worker serves."""
    return run_ticks(serving(), dt.datetime.now(dt.UTC))


def scheduler(jobs: JobQueue) -> CronScheduler:
    """RQ's cron scheduler with one cron job: :func:`tick`, every minute."""
    found = CronScheduler(connection=jobs.redis())
    found.register(tick, jobs.queue_name, cron="* * * * *", name="heddle.tick")
    return found
