"""One renderer for every error: ``{"error": {"code", "message", "fields"}}``.

The engine's errors carry their status and code; HTTP errors (unknown route, wrong method,
body too large, too many requests) get the same shape; anything unexpected is logged and
answered with a 500 that says nothing about the internals.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine import EngineError

log = logging.getLogger("heddle.errors")


class Unauthorized(EngineError):
    status = 401
    code = "unauthorized"


class UnsupportedMediaType(EngineError):
    """A body that is not sent as JSON (``Content-Type: application/json``)."""

    status = 415
    code = "unsupported_media_type"


def _code(exc: HTTPException) -> str:
    if isinstance(exc, CSRFError):
        return "csrf_failed"
    return re.sub(r"[^a-z]+", "_", (exc.name or "error").lower()).strip("_")


def init_app(app: Flask) -> None:
    @app.errorhandler(EngineError)
    def engine_error(exc: EngineError) -> ResponseReturnValue:
        response = jsonify(exc.to_dict())
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="heddle"'
        return response, exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        body = {"error": {"code": _code(exc), "message": exc.description or exc.name}}
        response = jsonify(body)
        # e.g. 405 with its Allow header, 429 with Retry-After
        headers = exc.response.headers if exc.response is not None else dict(exc.get_headers())
        for key in ("Allow", "Retry-After"):
            if key in headers:
                response.headers[key] = headers[key]
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unexpected error")
        body = {"error": {"code": "internal_error", "message": "an unexpected error occurred"}}
        return jsonify(body), 500
