"""Imports and exports through the REST API: uploads, reports, error files, templates,
exports with the caller's permissions and language, bad files answered with 4xx JSON, and
users and teams imported by an administrator."""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from openpyxl import Workbook, load_workbook
from sqlalchemy.engine import Engine

PACKAGE = """\
kind: package
name: shop
locales: [en, zh, ja]
---
kind: entity
name: account
label: {en: Account, zh: 客户, ja: 顧客}
ownable: true
fields:
  name: {type: string, required: true, max_length: 100, label: {en: Name, zh: 客户名称, ja: 顧客名}}
  external_id: {type: string, unique: true, label: {en: External ID, zh: 外部编号, ja: 外部ID}}
  grade:
    type: choice
    label: {en: Grade, zh: 等级, ja: ランク}
    options:
      - {value: A, label: {en: Key, zh: 重点, ja: 重要}}
      - {value: B, label: {en: Regular, zh: 普通, ja: 一般}}
  cost: {type: money, label: {en: Cost, zh: 成本, ja: 原価}}
  rating: {type: integer, min: 1, max: 5, label: {en: Rating, zh: 评分, ja: 評価}}
  since: {type: date, label: {en: Customer since, zh: 签约日期, ja: 取引開始日}}
---
kind: role
name: rep
permissions:
  account:
    read: own
    create: own
    update: own
    import: own
    export: own
    fields: {cost: hidden, rating: readonly}
---
kind: role
name: clerk
permissions:
  account: {read: all, create: all}
"""
PASSWORD = "correct horse battery"
PEOPLE = [("root", ["admin"], "en"), ("ann", ["rep"], "zh"), ("bob", ["rep"], "ja"),
          ("cal", ["clerk"], "en")]  # fmt: skip


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher
    from heddle import accounts

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("not a password"))


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    package = tmp_path / "shop.yaml"
    package.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    app = create_app({
        "DATABASE_URL": db_url, "PACKAGES": str(package), "INSTANCE_PATH": str(tmp_path / "i"),
        "SECRET_KEY": "test", "LOGIN_LIMIT": "1000 per minute", "TOKEN_CACHE_SECONDS": 0,
        "TESTING": True, "IMPORT_MAX_BYTES": 8000, "EXPORT_BACKGROUND_ROWS": 3,
    })  # fmt: skip
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        for username, roles, locale in PEOPLE:
            runtime.accounts.create_user(conn, username, PASSWORD, roles, team="East",
                                         locale=locale)  # fmt: skip
    yield app
    runtime.engine.dispose()


Call = Callable[..., Any]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def headers(client: FlaskClient) -> Callable[[str], dict[str, str]]:
    def make(user: str) -> dict[str, str]:
        answer = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        return {"Authorization": f"Bearer {answer.json['token']}"}

    return make


def upload(client: FlaskClient, who: dict[str, str], content: bytes, name: str = "a.csv",
           path: str = "/api/v1/imports", **fields: Any) -> Any:  # fmt: skip
    data = {"file": (io.BytesIO(content), name), **{k: str(v) for k, v in fields.items()}}
    return client.post(path, data=data, headers=who, content_type="multipart/form-data")


def error_of(response: Any) -> dict[str, Any]:
    body = response.json
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


JAPANESE = "顧客名,外部ID,ランク,評価,取引開始日\n株式会社ソニー,J-1,重要,,2026年12月7日\nｿﾆｰ(株),J-2,一般,,\n任天堂,J-3,特別,,2026/13/01\n"


def test_upload_report_error_file_and_templates(client: FlaskClient, headers: Call) -> None:
    bob = headers("bob")
    content = JAPANESE.encode("shift_jis")
    dry = upload(client, bob, content, "顧客.csv", entity="account", dry_run="true")
    assert dry.status_code == 201, dry.json
    assert dry.json["data"]["report"]["counts"]["created"] == 2
    assert client.get("/api/v1/records/account", headers=bob).json["data"] == []

    answer = upload(client, bob, content, "顧客.csv", entity="account", mode="upsert",
                    key="external_id", duplicates='{"same_name": "skip"}')  # fmt: skip
    assert answer.status_code == 201, answer.json
    run = answer.json["data"]
    assert run["status"] == "done" and run["report"]["counts"]["created"] == 2
    mapping = {c["header"]: c for c in run["report"]["mapping"]}
    assert mapping["評価"]["problem"] == "you may not write rating (read-only for your role)"
    errors = [e for r in run["report"]["rows"] for e in r.get("errors", [])]
    assert {(e["row"], e["column"]) for e in errors} == {(4, "ランク"), (4, "取引開始日")}

    again = client.get(f"/api/v1/imports/{run['id']}", headers=bob)
    assert again.status_code == 200 and again.json["data"]["progress"] == {"done": 3, "total": 3}
    assert client.get(f"/api/v1/imports/{run['id']}", headers=headers("ann")).status_code == 404
    file = client.get(f"/api/v1/imports/{run['id']}/errors", headers=bob)
    assert file.status_code == 200 and file.mimetype == "text/csv"
    lines = file.data.decode("utf-8-sig").splitlines()
    # in the caller's language (bob reads Japanese); the file's own headers as they were
    assert lines[0] == "行,エラー,顧客名,外部ID,ランク,評価,取引開始日" and lines[1].startswith(
        "4,"
    )
    assert "ランク: 不明な選択肢「特別」" in lines[1] and "取引開始日: 存在しない日付" in lines[1]
    xlsx = client.get(f"/api/v1/imports/{run['id']}/errors?format=xlsx", headers=bob)
    assert load_workbook(io.BytesIO(xlsx.data)).active["A2"].value == 4

    template = {"name": "Japanese accounts", "entity": "account",
                "mapping": {"会社": "name", "コード": "external_id"},
                "options": {"mode": "upsert", "key": "external_id"}}  # fmt: skip
    made = client.post("/api/v1/import-templates", json=template, headers=bob)
    assert made.status_code == 201, made.json
    assert client.post("/api/v1/import-templates", json=template, headers=bob).status_code == 409
    listed = client.get("/api/v1/import-templates?entity=account", headers=bob).json["data"]
    assert [t["name"] for t in listed] == ["Japanese accounts"]
    renamed = client.put(f"/api/v1/import-templates/{made.json['data']['id']}",
                         json={**template, "name": "JP"}, headers=bob)  # fmt: skip
    assert renamed.status_code == 200 and renamed.json["data"]["name"] == "JP"
    theirs = client.put(f"/api/v1/import-templates/{made.json['data']['id']}",
                        json=template, headers=headers("ann"))  # fmt: skip
    assert theirs.status_code == 403
    other = "会社,コード\nソニーグループ,J-1\n".encode("shift_jis")
    used = upload(client, bob, other, "b.csv", entity="account", template="JP")
    assert used.status_code == 201 and used.json["data"]["report"]["counts"]["updated"] == 1
    preview = upload(client, bob, other, "b.csv", "/api/v1/imports/preview", entity="account")
    assert preview.status_code == 200 and preview.json["data"]["encoding"] in ("shift_jis", "cp932")
    assert client.delete(f"/api/v1/import-templates/{made.json['data']['id']}",
                         headers=bob).status_code == 204  # fmt: skip


def test_bad_files_and_options_are_4xx_json(client: FlaskClient, headers: Call) -> None:
    ann = headers("ann")
    cases = [
        (b"", "a.csv", {}, 422, "empty"),
        (b"PK\x03\x04broken", "a.xlsx", {}, 422, "XLSX"),
        ("客户名称\n华为\n".encode("gb18030"), "a.csv", {"encoding": "utf-8"}, 422, "not utf-8"),
        (b"name\n" + b"x" * 9000, "a.csv", {}, 413, "7.8 KB"),
        (b"name\nAcme\n", "a.csv", {"mode": "sideways"}, 400, "mode"),
        (b"name\nAcme\n", "a.csv", {"mode": "update"}, 400, "key"),
        (b"name\nAcme\n", "a.csv", {"mapping": "{not json"}, 400, "mapping"),
        (b"name\nAcme\n", "a.csv", {"mapping": '{"name": "cost"}'}, 422, "name"),
    ]
    for content, name, options, status, words in cases:
        answer = upload(client, ann, content, name, entity="account", **options)
        assert answer.status_code == status, (options, answer.json)
        assert words in error_of(answer)["message"], answer.json
    missing = client.post("/api/v1/imports", data={"entity": "account"}, headers=ann,
                          content_type="multipart/form-data")  # fmt: skip
    assert missing.status_code == 400 and error_of(missing)["fields"]["file"]
    not_multipart = client.post("/api/v1/imports", json={"entity": "account"}, headers=ann)
    assert not_multipart.status_code == 400
    clerk = upload(client, headers("cal"), b"name\nAcme\n", entity="account")
    assert clerk.status_code == 403 and "import" in error_of(clerk)["message"]
    unknown = upload(client, ann, b"name\nAcme\n", entity="nothing")
    assert unknown.status_code == 404


def test_exports_honour_permissions_language_and_types(client: FlaskClient, headers: Call) -> None:
    root, ann = headers("root"), headers("ann")
    for n, grade in enumerate(["A", "B", "A"]):
        body = {"name": f"客户{n}", "grade": grade, "cost": "10.50", "rating": 3,
                "since": "2026-12-07", "owner_id": 2}  # fmt: skip
        assert client.post("/api/v1/records/account", json=body, headers=root).status_code == 201
    answer = client.get("/api/v1/records/account/export?format=csv&grade=A", headers=ann)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    lines = answer.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "ID,客户名称,外部编号,等级,评分,签约日期,负责人"  # no 成本: cost is hidden
    assert len(lines) == 3 and lines[1].endswith(",重点,3,2026-12-07,ann")
    xlsx = client.get("/api/v1/records/account/export?format=xlsx&grade=A", headers=ann)
    cells = list(load_workbook(io.BytesIO(xlsx.data)).active.iter_rows(values_only=True))
    assert cells[1][4] == 3 and cells[1][5].year == 2026  # a number, a date
    data = client.get("/api/v1/records/account/export?format=json&sort=name", headers=ann).json
    assert [r["name"] for r in data] == ["客户0", "客户1", "客户2"] and "cost" not in data[0]
    assert (
        client.get("/api/v1/records/account/export?format=json", headers=headers("bob")).json == []
    )
    # text a workbook cannot hold (control characters) is dropped, not a failed download
    nasty = {"name": "Acme\x01\x1f Co", "grade": "A", "owner_id": 2}
    assert client.post("/api/v1/records/account", json=nasty, headers=root).status_code == 201
    xlsx = client.get(
        "/api/v1/records/account/export?format=xlsx&name__startswith=Acme", headers=ann
    )
    assert xlsx.status_code == 200
    names = [r[1] for r in load_workbook(io.BytesIO(xlsx.data)).active.iter_rows(values_only=True)]
    assert "Acme Co" in names
    refused = client.get("/api/v1/records/account/export", headers=headers("cal"))
    assert refused.status_code == 403
    bad = client.get("/api/v1/records/account/export?format=pdf", headers=ann)
    assert bad.status_code == 400 and error_of(bad)["fields"]["format"]
    unknown = client.get("/api/v1/records/account/export?nosuch=1", headers=ann)
    assert unknown.status_code == 400
    # more than EXPORT_BACKGROUND_ROWS (3) records: a job, then the file
    client.post("/api/v1/records/account", json={"name": "客户3", "owner_id": 2}, headers=root)
    job = client.get("/api/v1/records/account/export?format=csv", headers=ann)
    assert job.status_code == 202, job.json
    run_id = job.json["data"]["id"]
    for _ in range(100):
        status = client.get(f"/api/v1/exports/{run_id}", headers=ann).json["data"]["status"]
        if status == "done":
            break
        time.sleep(0.05)
    file = client.get(f"/api/v1/exports/{run_id}/file", headers=ann)
    assert file.status_code == 200 and len(file.data.decode("utf-8-sig").splitlines()) == 6


def test_users_and_teams_are_imported_by_administrators(client: FlaskClient, headers: Call) -> None:
    root = headers("root")
    teams = "团队,上级团队\nSales,\nSales-North,Sales\n".encode()
    answer = upload(client, root, teams, "teams.csv", entity="team")
    assert answer.status_code == 201 and answer.json["data"]["report"]["counts"]["created"] == 2
    book = Workbook()
    for row in (["Username", "Name", "Email", "Roles", "Team"],
                ["li.lei", "李雷", "li@example.com", "rep", "Sales-North"],
                ["bad name", "Bad", "", "rep", ""],
                ["han.mei", "韩梅梅", "", "nosuchrole", ""]):  # fmt: skip
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    users = upload(client, root, out.getvalue(), "users.xlsx", entity="user")
    assert users.status_code == 201, users.json
    report = users.json["data"]["report"]
    assert report["counts"]["created"] == 1 and report["counts"]["error"] == 2
    assert {r["row"] for r in report["rows"] if r["status"] == "error"} == {3, 4}
    listed = client.get("/api/v1/users", headers=root).json["data"]
    assert {u["username"]: u["team"] for u in listed}["li.lei"] == "Sales-North"
    assert upload(client, headers("ann"), teams, "t.csv", entity="team").status_code == 403
