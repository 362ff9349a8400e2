"""Attachments on the screens (heddle._screen_files) through Flask's test client: the
record page's panel (upload, download, delete, the size limit, a ``<script>`` name shown
as text, CSRF) and the file widget of the create and edit forms."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from files_package import FILES, PDF
from flask import Flask
from flask.testing import FlaskClient
from screens_package import csrf_of, log_in, make_app
from sqlalchemy.engine import Engine

HTML = {"Accept": "text/html"}


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    made = make_app(db_url, tmp_path, FILES, ATTACHMENT_MAX_BYTES=2000)
    yield made
    made.extensions["heddle"].engine.dispose()


@pytest.fixture
def ann(app: Flask) -> FlaskClient:
    client = app.test_client()
    log_in(client, "ann")
    return client


def text_of(response: Any) -> str:
    return str(response.get_data(as_text=True))


def _new_account(client: FlaskClient, **form: Any) -> tuple[int, Any]:
    token = csrf_of(text_of(client.get("/app/account/new")))
    response = client.post(
        "/app/account/new",
        data={"csrf_token": token, "name": "Acme", **form},
        content_type="multipart/form-data",
    )
    return response.status_code, response


def _upload(client: FlaskClient, record: str, data: bytes, name: str, token: str = "") -> Any:
    token = token or csrf_of(text_of(client.get(record)))
    return client.post(
        f"{record}/attachments",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_the_panel_uploads_downloads_and_deletes(ann: FlaskClient) -> None:
    status, made = _new_account(ann)
    assert status == 302
    record = made.headers["Location"]
    page = text_of(ann.get(record))
    assert 'id="attachments"' in page and 'enctype="multipart/form-data"' in page
    done = _upload(ann, record, b"plain notes", "<script>alert(1).txt")
    assert done.status_code == 302 and done.headers["Location"].endswith("#attachments")
    page = text_of(ann.get(record))
    assert "&lt;script&gt;alert(1).txt" in page and "<script>alert(1)" not in page
    link = re.search(r'href="([^"]+/attachments/\d+)" download', page)
    assert link is not None
    got = ann.get(link.group(1))
    assert got.data == b"plain notes" and got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    got.close()
    token = csrf_of(page)
    gone = ann.post(link.group(1) + "/delete", data={"csrf_token": token})
    assert gone.status_code == 302
    assert "No files yet." in text_of(ann.get(record))


def test_refusals_on_the_panel(app: Flask, ann: FlaskClient) -> None:
    _, made = _new_account(ann)
    record = made.headers["Location"]
    too_big = _upload(ann, record, b"x" * 2001, "big.bin")
    assert too_big.status_code == 302
    page = text_of(ann.get(record))
    assert "The file is too large" in page and "No files yet." in page
    refused = ann.post(
        f"{record}/attachments",
        data={"file": (io.BytesIO(b"x"), "x.txt")},
        content_type="multipart/form-data",
        headers=HTML,
    )
    assert refused.status_code == 400  # no CSRF token
    vic = app.test_client()
    log_in(vic, "vic")
    assert 'name="file"' not in text_of(vic.get(record))  # reads, may not change
    assert _upload(vic, record, PDF, "a.pdf", csrf_of(text_of(vic.get(record)))).status_code == 403
    bob = app.test_client()
    log_in(bob, "bob")
    assert bob.get(record, headers=HTML).status_code == 404


def test_the_file_widget_on_create_and_edit(ann: FlaskClient) -> None:
    form = text_of(ann.get("/app/account/new"))
    assert 'type="file"' in form and 'name="scan__upload"' in form
    assert 'accept="application/pdf"' in form
    status, wrong = _new_account(ann, scan__upload=(io.BytesIO(b"<html>x"), "scan.pdf"))
    assert status == 422 and "This type of file is not accepted here." in text_of(wrong)
    status, made = _new_account(ann, scan__upload=(io.BytesIO(PDF), "合同.pdf"))
    assert status == 302
    record = made.headers["Location"]
    page = text_of(ann.get(record))
    assert page.count(">合同.pdf<") == 2  # in the field and in the attachments panel
    edit = text_of(ann.get(record + "/edit"))
    kept = re.search(r'name="scan" value="(\d+)" checked', edit)
    assert kept is not None
    token, version = csrf_of(edit), re.search(r'name="version" value="(\d+)"', edit)
    assert version is not None
    cleared = ann.post(
        record + "/edit",
        data={"csrf_token": token, "version": version.group(1), "name": "Acme"},
        content_type="multipart/form-data",
    )
    assert cleared.status_code == 302
    page = text_of(ann.get(record))
    assert page.count(">合同.pdf<") == 1  # the field is empty; the file stays attached


def test_a_form_never_names_someone_elses_file(app: Flask, ann: FlaskClient) -> None:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        bob = runtime.accounts.by_username(conn, "bob").actor()
    theirs = runtime.records.create(bob, "account", {"name": "Bob's"})
    secret = runtime.attachments.add(
        bob, "account", theirs["id"], "secret-bob.pdf", PDF, field="scan"
    )
    status, page = _new_account(ann, name="", scan=str(secret["id"]))  # a forged id
    assert status == 422
    assert "secret-bob.pdf" not in text_of(page)
