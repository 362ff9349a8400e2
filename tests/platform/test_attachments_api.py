"""The attachments API (heddle.attachment_api) on SQLite and PostgreSQL: upload, list,
download as an attachment with an RFC 5987 name, delete; file fields take uploaded ids;
permissions, wrong records and the size limit answered with 4xx JSON."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from files_package import FILES, PDF, PNG
from flask import Flask
from flask.testing import FlaskClient
from screens_package import make_app
from sqlalchemy.engine import Engine

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    """ann and bob are reps (their own accounts), vic a viewer (reads every account)."""
    made = make_app(db_url, tmp_path, FILES, ATTACHMENT_MAX_BYTES=5000)
    yield made
    made.extensions["heddle"].engine.dispose()


def _account(client: FlaskClient, token: Headers, user: str = "ann") -> dict[str, Any]:
    response = client.post("/api/v1/records/account", json={"name": "Acme"}, headers=token(user))
    assert response.status_code == 201, response.json
    return dict(response.json["data"])


def _upload(
    client: FlaskClient,
    token: Headers,
    path: str,
    data: bytes,
    name: str,
    user: str = "ann",
    **form: str,
) -> Any:
    body = {"file": (io.BytesIO(data), name), **form}
    return client.post(
        f"/api/v1/records/{path}",
        data=body,
        headers=token(user),
        content_type="multipart/form-data",
    )


def test_upload_list_download_delete(client: FlaskClient, token: Headers) -> None:
    account = _account(client, token)
    base = f"account/{account['id']}/attachments"
    made = _upload(client, token, base, PDF, "合同 2024.pdf")
    assert made.status_code == 201, made.json
    file = made.json["data"]
    assert file["filename"] == "合同 2024.pdf" and file["content_type"] == "application/pdf"
    assert file["size"] == len(PDF) and file["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert file["uploaded_by"] == 2 and file["field"] is None
    listed = client.get(f"/api/v1/records/{base}", headers=token("ann")).json["data"]
    assert [row["id"] for row in listed] == [file["id"]]
    assert listed[0]["uploader"] == "ann"
    got = client.get(file["links"]["file"], headers=token("ann"))
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    got.close()
    assert got.headers["Content-Disposition"] == (
        f"attachment; filename=\"__ 2024.pdf\"; filename*=UTF-8''{quote('合同 2024.pdf')}"
    )
    assert client.delete(file["links"]["file"], headers=token("ann")).status_code == 204
    assert client.get(f"/api/v1/records/{base}", headers=token("ann")).json["data"] == []
    assert client.get(file["links"]["file"], headers=token("ann")).status_code == 404


def test_html_is_never_served_as_html(client: FlaskClient, token: Headers) -> None:
    account = _account(client, token)
    page = b"<!doctype html><script>alert(document.cookie)</script>"
    made = _upload(client, token, f"account/{account['id']}/attachments", page, "<script>x.html")
    assert made.status_code == 201
    assert made.json["data"]["content_type"] == "text/html"
    got = client.get(made.json["data"]["links"]["file"], headers=token("ann"))
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in got.headers["Content-Security-Policy"]
    got.close()


def test_refusals_are_json(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]]
) -> None:
    account = _account(client, token)
    base = f"account/{account['id']}/attachments"
    too_big = _upload(client, token, base, b"x" * 5001, "big.bin")
    assert too_big.status_code == 413 and error_of(too_big)["code"] == "file_too_large"
    huge = _upload(client, token, base, b"x" * 200_000, "huge.bin")  # past the body limit
    assert huge.status_code == 413 and error_of(huge)
    field_limit = _upload(client, token, base, PDF + b" " * 3000, "s.pdf", field="scan")
    assert field_limit.status_code == 413
    wrong_type = _upload(client, token, base, PNG, "scan.pdf", field="scan")
    assert wrong_type.status_code == 422 and "image/png" in error_of(wrong_type)["message"]
    no_field = _upload(client, token, base, PDF, "s.pdf", field="name")
    assert no_field.status_code == 422
    # bob cannot see ann's account: absent; vic reads it but may not change it
    assert _upload(client, token, base, PDF, "a.pdf", user="bob").status_code == 404
    assert _upload(client, token, base, PDF, "a.pdf", user="vic").status_code == 403
    kept = _upload(client, token, base, PDF, "a.pdf").json["data"]
    assert client.get(f"/api/v1/records/{base}", headers=token("bob")).status_code == 404
    assert client.get(f"/api/v1/records/{base}", headers=token("vic")).status_code == 200
    denied = client.delete(kept["links"]["file"], headers=token("vic"))
    assert denied.status_code == 403 and error_of(denied)["code"] == "forbidden"
    other = _account(client, token)
    elsewhere = f"/api/v1/records/account/{other['id']}/attachments/{kept['id']}"
    assert client.get(elsewhere, headers=token("ann")).status_code == 404
    huge_id = f"/api/v1/records/account/{account['id']}/attachments/{2**64}"
    assert error_of(client.get(huge_id, headers=token("ann")))["code"] == "not_found"
    not_multipart = client.post(f"/api/v1/records/{base}", json={}, headers=token("ann"))
    assert not_multipart.status_code == 400 and error_of(not_multipart)["fields"] == {
        "file": ["Missing data for required field."]
    }


def test_file_fields_take_uploaded_ids(client: FlaskClient, token: Headers) -> None:
    staged = _upload(client, token, "account/attachments", PDF, "scan.pdf", field="scan")
    assert staged.status_code == 201 and staged.json["data"]["record_id"] is None
    scan_id = staged.json["data"]["id"]
    stolen = client.post(
        "/api/v1/records/account", json={"name": "B", "scan": scan_id}, headers=token("bob")
    )
    assert stolen.status_code == 422 and "scan" in stolen.json["error"]["fields"]
    made = client.post(
        "/api/v1/records/account", json={"name": "A", "scan": scan_id}, headers=token("ann")
    )
    assert made.status_code == 201 and made.json["data"]["scan"] == scan_id
    record = made.json["data"]
    base = f"account/{record['id']}/attachments"
    listed = client.get(f"/api/v1/records/{base}", headers=token("ann")).json["data"]
    assert [(r["id"], r["field"]) for r in listed] == [(scan_id, "scan")]
    photos = [
        _upload(client, token, base, PNG + bytes([n]), f"p{n}.png", field="photos").json["data"][
            "id"
        ]
        for n in range(2)
    ]
    changed = client.patch(
        f"/api/v1/records/account/{record['id']}",
        json={"photos": photos, "version": record["version"]},
        headers=token("ann"),
    )
    assert changed.status_code == 200 and changed.json["data"]["photos"] == photos
    wrong = client.patch(
        f"/api/v1/records/account/{record['id']}",
        json={"scan": "scan.pdf", "version": changed.json["data"]["version"]},
        headers=token("ann"),
    )
    assert wrong.status_code == 422
    held = client.delete(f"/api/v1/records/{base}/{scan_id}", headers=token("ann"))
    assert held.status_code == 409
    gone = client.delete(  # reps may not delete accounts here: the administrator does
        f"/api/v1/records/account/{record['id']}?version={changed.json['data']['version']}",
        headers=token("root"),
    )
    assert gone.status_code == 204
    assert client.get(f"/api/v1/records/{base}", headers=token("ann")).status_code == 404


def test_openapi_lists_attachments(client: FlaskClient, token: Headers) -> None:
    spec = client.get("/api/v1/openapi.json", headers=token("ann")).json
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/records/account/{id}/attachments"])
    assert {"get", "delete"} <= set(paths["/records/account/{id}/attachments/{attachment_id}"])
    assert "post" in paths["/records/account/attachments"]
    assert "integer" in str(spec["components"]["schemas"]["Account"]["properties"]["scan"])
    viewer = client.get("/api/v1/openapi.json", headers=token("vic")).json["paths"]
    assert set(viewer["/records/account/{id}/attachments"]) - {"parameters"} == {"get"}
