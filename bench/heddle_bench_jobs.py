"""The job ``bench/bench_jobs.py`` measures the start of: it does nothing (the delay
from the commit to the worker claiming the job is what is timed)."""

from __future__ import annotations

from workflows import JOBS, Job

if "bench_noop" not in JOBS:
    JOBS.register(Job("bench_noop", lambda run, args: None, "Nothing: a benchmark's probe."))
