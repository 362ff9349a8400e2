"""Security headers on every response: JSON, errors, files and the docs page (issue 9)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from heddle.security import HTML_POLICY, OTHER_POLICY

Headers = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/records/account", 200),
        ("GET", "/api/v1/records/account/999", 404),
        ("GET", "/api/v1/nowhere", 404),
        ("DELETE", "/api/v1/meta/entities", 405),
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/healthz", 200),
    ],
)
def test_every_response_has_the_security_headers(
    client: FlaskClient, token: Headers, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method, headers=token("root"))
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Content-Security-Policy"] == OTHER_POLICY


def test_unauthenticated_answers_have_them_too(client: FlaskClient) -> None:
    response = client.get("/api/v1/records/account")
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_page_works_under_its_policy(client: FlaskClient) -> None:
    """Swagger UI is served from the installed package: every file the page loads comes
    from Heddle itself (what 'self' allows), with no inline script or style to block."""
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == HTML_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    html = page.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and "style=" not in html and " on" not in html.lower()
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded and all(url.startswith("/api/v1/") for url in loaded), loaded
    kind = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    stylesheet = ""
    for url in loaded:
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            assert asset.headers["X-Content-Type-Options"] == "nosniff"
            assert asset.mimetype == kind[url[url.rindex(".") :]], url
            if url.endswith(".css"):
                stylesheet = asset.get_data(as_text=True)
    # the stylesheet's only images are data: URLs, which img-src allows
    for target in re.findall(r"url\(\"?([^\")]+)", stylesheet):
        assert target.startswith("data:image/"), target
    assert "img-src 'self' data:" in HTML_POLICY


def test_a_view_keeps_a_header_it_sets(client: FlaskClient) -> None:
    from heddle.security import add_headers
    from werkzeug.wrappers import Response

    response = Response("x", mimetype="text/html", headers={"X-Frame-Options": "SAMEORIGIN"})
    assert add_headers(response).headers["X-Frame-Options"] == "SAMEORIGIN"
