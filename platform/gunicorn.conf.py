"""Gunicorn settings for Heddle's web processes.

    gunicorn -c platform/gunicorn.conf.py heddle.wsgi:app

Every value can be overridden from the environment (``GUNICORN_CMD_ARGS``) or the
command line. Web processes keep no state of their own: run as many as the machine has
cores, on as many machines as needed, all pointing at one PostgreSQL and one Redis.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("HEDDLE_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("HEDDLE_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("HEDDLE_THREADS", "4"))
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 2000  # recycle workers now and then: bounded memory, no restarts needed
max_requests_jitter = 200
preload_app = True  # load and check the definitions once, before forking
forwarded_allow_ips = os.environ.get("HEDDLE_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'


def post_fork(server: object, worker: object) -> None:
    """Each worker opens its own database connections: the pool must not cross a fork."""
    from heddle.wsgi import app

    app.extensions["heddle"].engine.dispose(close=False)
