"""One renderer for every error: ``{"error": {"code", "message", "fields"}}``.

The engine's errors carry their status and code; HTTP errors (unknown route, wrong method,
body too large, too many requests) get the same shape; anything unexpected is logged and
answered with a 500 that says nothing about the internals.

The screens register an HTML page for the same errors (:func:`register_page`): it answers
for the screens' own URLs, and for any other URL outside the API that a browser asks for
(``Accept: text/html``); the API and the health checks always get JSON.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from flask import Flask, current_app, jsonify, request
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


#: Renders an error as an HTML page: (status, code, message) → response.
PageRenderer = Callable[[int, str, str], ResponseReturnValue]
JSON_ONLY = ("/api/", "/healthz", "/readyz")


def register_page(app: Flask, render: PageRenderer) -> None:
    """Answer browsers with ``render``'s page instead of the JSON body (see above)."""
    app.extensions["heddle_error_page"] = render


def _page(status: int, code: str, message: str) -> ResponseReturnValue | None:
    render: PageRenderer | None = current_app.extensions.get("heddle_error_page")
    if render is None or request.path.startswith(JSON_ONLY) or request.path == "/api":
        return None
    if request.blueprint != "ui" and not request.accept_mimetypes.accept_html:
        return None
    try:
        return render(status, code, message)
    except Exception:  # the page itself failed: the JSON body still says what happened
        log.exception("the error page could not be rendered")
        return None


def init_app(app: Flask) -> None:
    @app.errorhandler(EngineError)
    def engine_error(exc: EngineError) -> ResponseReturnValue:
        shown = _page(exc.status, exc.code, exc.message)
        if shown is not None:
            return shown
        response = jsonify(exc.to_dict())
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="heddle"'
        return response, exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        body = {"error": {"code": _code(exc), "message": exc.description or exc.name}}
        shown = _page(status, body["error"]["code"], body["error"]["message"])
        response = jsonify(body) if shown is None else current_app.make_response(shown)
        # e.g. 405 with its Allow header, 429 with Retry-After
        headers = exc.response.headers if exc.response is not None else dict(exc.get_headers())
        for key in ("Allow", "Retry-After"):
            if key in headers:
                response.headers[key] = headers[key]
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unexpected error")
        shown = _page(500, "internal_error", "an unexpected error occurred")
        if shown is not None:
            return shown
        body = {"error": {"code": "internal_error", "message": "an unexpected error occurred"}}
        return jsonify(body), 500
