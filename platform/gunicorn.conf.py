"""Gunicorn settings for Heddle's web processes.

    gunicorn -c platform/gunicorn.conf.py heddle.wsgi:app

``HEDDLE_BIND``, ``HEDDLE_WORKERS``, ``HEDDLE_THREADS`` and ``HEDDLE_FORWARDED_ALLOW_IPS``
are settings like any other (declared in :mod:`heddle.settings`, listed in
docs/configuration.md); every value can also be overridden from the environment
(``GUNICORN_CMD_ARGS``) or the command line.

Web processes keep no state of their own: run as many as the machine has cores, on as
many machines as needed, all pointing at one PostgreSQL and one Redis. Each follows a
definition change migrated elsewhere by itself (``HEDDLE_MODEL_CHECK_SECONDS``).
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
max_requests = 2000  # recycle workers now and then: bounded memory, no restarts needed
max_requests_jitter = 200
preload_app = True  # load and check the definitions once, before forking
forwarded_allow_ips = setting("FORWARDED_ALLOW_IPS")
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'


def post_fork(server: object, worker: object) -> None:
    """Each worker opens its own database connections: the pool must not cross a fork."""
    from heddle.wsgi import app

    app.extensions["heddle"].engine.dispose(close=False)
