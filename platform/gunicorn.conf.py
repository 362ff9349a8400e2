"""Gunicorn settings for Heddle's web processes.

    gunicorn -c platform/gunicorn.conf.py heddle.wsgi:app

``HEDDLE_BIND``, ``HEDDLE_WORKERS``, ``HEDDLE_THREADS`` and ``HEDDLE_FORWARDED_ALLOW_IPS``
are settings like any other (declared in :mod:`heddle.settings`, listed in
docs/configuration.md); every value can also be overridden from the environment
(``GUNICORN_CMD_ARGS``) or the command line.

Web processes keep no state of their own: run as many as the machine has cores, on as
many machines as needed, all pointing at one PostgreSQL and one Redis. Each follows a
definition change migrated elsewhere by itself (``HEDDLE_MODEL_CHECK_SECONDS``).

The defaults below were chosen by measuring them (``bench/bench_http.py --configs …``;
figures and the reasoning in docs/performance.md):

- threaded workers (``gthread``) keep a client's connection open between requests; sync
  workers close it after every response. With clients that reuse connections (API
  clients, browsers, a proxy with upstream keep-alive) one thread per worker already
  served 1.3–1.6× the single-record reads of sync workers, for no more CPU per request;
  creates, bound by their own work, came out the same.
- no access log: on sync workers it cost 7–13 % of the cheapest requests' throughput,
  and the reverse proxy in front logs the same requests. Turn it on with
  ``GUNICORN_CMD_ARGS="--access-logfile -"``.
- workers are recycled after ~50,000 requests, not ~2,000: a recycled worker starts with
  empty caches (compiled and prepared statements, checked tokens) and new database
  connections, and at 2,000 that happened every few seconds under load. The recycling
  stays as a guard against slow memory growth.
"""

from __future__ import annotations

import multiprocessing

from heddle.settings import setting

bind = setting("BIND")
workers = int(setting("WORKERS") or multiprocessing.cpu_count())  # empty: one per core
worker_class = "gthread"
threads = int(setting("THREADS"))
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 50_000  # a guard against slow memory growth, rare enough to cost nothing
max_requests_jitter = 5_000  # workers do not all restart at once
preload_app = True  # load and check the definitions once, before forking
forwarded_allow_ips = setting("FORWARDED_ALLOW_IPS")
accesslog = None  # off: see above; GUNICORN_CMD_ARGS="--access-logfile -" turns it on
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'


def post_fork(server: object, worker: object) -> None:
    """Each worker opens its own database connections: the pool must not cross a fork."""
    from heddle.wsgi import app

    app.extensions["heddle"].engine.dispose(close=False)
