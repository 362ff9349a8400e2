"""Security headers on every response, set in one ``after_request`` hook.

Every response: ``X-Content-Type-Options: nosniff`` (a browser never guesses a JSON body
or an upload to be HTML or script), ``X-Frame-Options: DENY`` and CSP's
``frame-ancestors 'none'`` (no page of Heddle inside another site's frame: no
clickjacking), ``Referrer-Policy: same-origin`` (record URLs never leak to other sites).

HTML pages get a Content-Security-Policy that allows scripts, styles, fonts and fetches
from Heddle itself only, images also as ``data:`` URLs (Swagger UI's icons are inline SVG
in its stylesheet), and no inline scripts or styles, plugins, ``<base>`` or foreign
form targets: an injected ``<script>`` does not run. Other responses (JSON, files) get
``default-src 'none'``: a body opened in a browser loads nothing at all.

A view that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from flask import Flask, Response

HTML_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def add_headers(response: Response) -> Response:
    """Set the security headers a response does not set itself (its headers read once:
    werkzeug's ``setdefault`` reads them all again for each, and ``mimetype`` parses the
    content type — most of the hook's cost on an API call)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in HEADERS.items() if name.lower() not in present]
    if "content-security-policy" not in present:
        kind = (response.content_type or "").partition(";")[0].strip().lower()
        policy = HTML_POLICY if kind == "text/html" else OTHER_POLICY
        added.append(("Content-Security-Policy", policy))
    headers.extend(added)
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
