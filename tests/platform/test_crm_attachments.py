"""The CRM's files through the API: a sales rep attaches a signed contract scan to a
contract's files (a Word file by its extension, a program refused) and a receipt to an
expense line created with its claim."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_support import crm_app
from files_package import PDF, PNG
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

USERS = [("ann", ["sales_rep"], "East", None), ("bob", ["sales_rep"], "West", None)]
Headers = Callable[[str], dict[str, str]]
DOCX = b"PK\x03\x04" + b"\x00" * 40  # a zip: Word's format, told apart by its extension


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    made = crm_app(db_url, tmp_path, USERS)
    yield made
    made.extensions["heddle"].engine.dispose()


def _post(client: FlaskClient, token: Headers, path: str, body: dict[str, Any]) -> Any:
    response = client.post(f"/api/v1{path}", json=body, headers=token("ann"))
    assert response.status_code == 201, response.json
    return response.json["data"]


def _upload(client: FlaskClient, token: Headers, path: str, data: bytes, name: str,
            field: str, user: str = "ann") -> Any:  # fmt: skip
    return client.post(
        f"/api/v1/records/{path}",
        data={"file": (io.BytesIO(data), name), "field": field},
        headers=token(user),
        content_type="multipart/form-data",
    )


def test_contract_files_and_expense_receipts(client: FlaskClient, token: Headers) -> None:
    account = _post(client, token, "/records/account", {"name": "上海星辰科技有限公司"})
    contract = _post(client, token, "/records/contract",
                     {"title": "年度服务合同", "account": account["id"], "amount": "120000"})  # fmt: skip
    base = f"contract/{contract['id']}/attachments"
    scan = _upload(client, token, base, PDF, "合同扫描件.pdf", "attachments")
    word = _upload(client, token, base, DOCX, "条款.docx", "attachments")
    assert scan.status_code == word.status_code == 201
    assert word.json["data"]["content_type"].endswith("wordprocessingml.document")
    program = _upload(client, token, base, b"MZ\x90\x00" + b"\x00" * 60, "setup.exe", "attachments")
    assert program.status_code == 422
    assert _upload(client, token, base, PDF, "x.pdf", "attachments", "bob").status_code == 404
    ids = [scan.json["data"]["id"], word.json["data"]["id"]]
    changed = client.patch(
        f"/api/v1/records/contract/{contract['id']}",
        json={"attachments": ids, "version": contract["version"]},
        headers=token("ann"),
    )
    assert changed.status_code == 200 and changed.json["data"]["attachments"] == ids

    receipt = _upload(client, token, "expense_line/attachments", PNG, "发票.png", "receipt")
    assert receipt.status_code == 201, receipt.json
    claim = _post(client, token, "/records/expense_claim", {
        "purpose": "拜访客户", "lines": [{"date": dt.date.today().isoformat(),
        "category": "transport", "amount": "56.00", "receipt": [receipt.json["data"]["id"]]}],
    })  # fmt: skip
    line = claim["lines"][0]
    assert line["receipt"] == [receipt.json["data"]["id"]]
    files = client.get(f"/api/v1/records/expense_line/{line['id']}/attachments",
                       headers=token("ann")).json["data"]  # fmt: skip
    assert [f["filename"] for f in files] == ["发票.png"]
