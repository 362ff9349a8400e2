"""The ``webhook`` and ``enqueue`` actions: both write an outbox job in the change's
transaction (:func:`workflows.outbox.add`), so a rolled-back change calls no URL and runs
no job.

A webhook POSTs ``{"event", "entity", "id", "record", "source", "at"}`` as JSON, signed
with HMAC-SHA256 over the exact body bytes with the action's ``secret`` (``env:NAME``
reads it from the environment variable NAME when sent): header
``X-Heddle-Signature: sha256=<hex>``. ``X-Heddle-Delivery`` is the outbox key, the same on
every retry, so the receiver can ignore a delivery it has seen. A status other than 2xx,
or no answer within 10 seconds, is retried with the outbox's backoff.

>>> hmac.new(secret, body, hashlib.sha256).hexdigest() == signature.removeprefix("sha256=")
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from engine.records import jsonable
from metamodel import Action

from .actions import ACTIONS, ActionRunner, Run
from .errors import ActionUnavailable
from .outbox import JOBS, Job, JobRun, add

TIMEOUT = 10
USER_AGENT = "Heddle-Webhook/1"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Heddle-Signature`` header of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _plain(view: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own fields, JSON-ready (referenced records loaded for expressions are
    left as their ids)."""
    out: dict[str, Any] = {}
    for name, value in view.items():
        if name == "transition":
            continue
        if isinstance(value, Mapping):
            value = value.get("id")
        out[name] = jsonable(value)
    return out


def _webhook(run: Run, action: Action) -> None:
    transition = run.view.get("transition")
    body = {
        "event": run.event or ("transition" if isinstance(transition, Mapping) else "action"),
        "entity": run.entity.name,
        "id": run.record_id,
        "record": _plain({**run.view, **run.changes}),
        "source": run.source or (transition or {}).get("name"),
        "transition": dict(transition) if isinstance(transition, Mapping) else None,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    args = {"url": action.options["url"], "secret": action.options.get("secret", ""), "body": body}
    add(run.conn, run.records.tables, "webhook", args)


def thaw(value: Any) -> Any:
    """A frozen definition value (mappings, tuples) as plain JSON."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return jsonable(value)


def _secret(value: str) -> str:
    if value.startswith("env:"):
        found = os.environ.get(value[4:])
        if found is None:
            raise LookupError(f"the webhook's secret is read from ${value[4:]}, which is not set")
        return found
    return value


def _post(run: JobRun, args: Mapping[str, Any]) -> None:
    body = json.dumps(args["body"], ensure_ascii=False, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Heddle-Delivery": run.key,
        "X-Heddle-Attempt": str(run.attempt),
    }
    if args.get("secret"):
        headers["X-Heddle-Signature"] = signature(_secret(str(args["secret"])), body)
    request = urllib.request.Request(str(args["url"]), body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    if not 200 <= status < 300:
        raise RuntimeError(f"the webhook {args['url']} answered {status}")


def _enqueue(run: Run, action: Action) -> None:
    """The job gets the record (``entity``, ``record_id``) and the action's ``args``."""
    args = {
        "entity": run.entity.name,
        "record_id": run.record_id,
        "args": thaw(action.options.get("args")),
    }
    try:
        add(run.conn, run.records.tables, str(action.options["job"]), args)
    except LookupError as exc:
        raise ActionUnavailable(str(exc)) from None


ACTIONS.register(ActionRunner("webhook", _webhook))
ACTIONS.register(ActionRunner("enqueue", _enqueue))
JOBS.register(
    Job("webhook", _post, "POST a signed JSON body to a URL.", max_attempts=8, atomic=False)
)
