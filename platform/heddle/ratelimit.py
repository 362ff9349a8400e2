"""Rate limits on logging in: so many attempts per client address, then ``429``.

Counted in Redis when ``HEDDLE_REDIS_URL`` is set (every process and machine shares one
count), else in the process's memory (each process counts on its own). The rule is the
``limits`` library's notation, ``10 per minute`` or ``100/hour``.

Only the endpoints that take a password call :meth:`LoginLimit.hit`; every other request
pays nothing for it (a before-request hook on the whole app, as Flask-Limiter installs,
cost about a fifth of a single-record GET's time).

>>> limit = LoginLimit("")
>>> limit.hit("2 per minute", "127.0.0.1"); limit.hit("2 per minute", "127.0.0.1")
>>> limit.hit("2 per minute", "127.0.0.1")
Traceback (most recent call last):
werkzeug.exceptions.TooManyRequests: 429 Too Many Requests: ...
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger("heddle.ratelimit")

NAMESPACE = "heddle-login"


@lru_cache(maxsize=32)
def _rule(text: str) -> RateLimitItem:
    return parse(text)


class LoginLimit:
    def __init__(self, redis_url: str) -> None:
        self.storage = storage_from_string(redis_url or "memory://")
        self.window = FixedWindowRateLimiter(self.storage)

    def hit(self, rule: str, client: str) -> None:
        """Count one attempt by ``client``; :class:`TooManyRequests` (with ``Retry-After``)
        once ``rule`` is used up. A counter that cannot be reached lets the attempt through:
        logging in must not depend on Redis; the failure is logged."""
        item = _rule(rule)
        try:
            if self.window.hit(item, NAMESPACE, client):
                return
            reset = self.window.get_window_stats(item, NAMESPACE, client)[0]
        except Exception:  # the storage's own errors differ by backend (redis, memory)
            log.exception("the login rate limit could not be counted; letting it through")
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise TooManyRequests(
            f"too many login attempts: at most {rule}; try again in {wait} s",
            retry_after=wait,
        )
