"""Imports and exports run by a real ``heddle worker`` (workflows.data_jobs) with real
Redis: the API answers at once with the run's id, the worker writes the rows batch by
batch (GET shows the progress), and a big export's file is there to download when it is
ready. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from worker_process import spawn_worker, stop_worker

from engine.tables import OUTBOX_TABLE

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
  code: {type: autonumber, format: "A-{seq:04}", label: {en: Code, zh: 编号, ja: コード}}
duplicate_rules:
  - name: same_name
    label: {en: Same name, zh: 名称重复, ja: 名前の重複}
    fields: [name]
    normalize: [case, space, width, company_suffix]
    action: block
---
kind: role
name: rep
permissions:
  account: {read: own, create: own, update: own, import: own, export: own}
"""
PEOPLE = [("root", ["admin"], "East", None), ("ann", ["rep"], "East", None),
          ("bob", ["rep"], "East", None)]  # fmt: skip
PASSWORD = "correct horse battery"
ROWS = 60


@pytest.fixture
def app(app_factory: Callable[..., Flask], redis: Any, redis_url: str) -> Flask:
    made = app_factory(PACKAGE, PEOPLE)
    made.extensions["heddle_jobs"].redis_url = redis_url  # background runs are jobs
    made.config["EXPORT_BACKGROUND_ROWS"] = 5
    return made


@pytest.fixture
def worker(app: Flask, redis_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn_worker(app, redis_url, tmp_path / "worker.log",
                           HEDDLE_JOB_LEASE_SECONDS="30")  # fmt: skip
    yield process
    stop_worker(process)


def _token(client: FlaskClient, user: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    assert answer.status_code == 201, answer.json
    return {"Authorization": f"Bearer {answer.json['token']}"}


def _until(client: FlaskClient, who: dict[str, str], path: str, tmp_path: Path,
           seconds: float = 90) -> list[dict[str, Any]]:  # fmt: skip
    """Every state GET ``path`` showed until the run ended."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get(path, headers=who)
        assert answer.status_code == 200, answer.json
        seen.append(answer.json["data"])
        if seen[-1]["status"] in ("done", "failed"):
            return seen
        time.sleep(0.05)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    raise AssertionError(f"the run did not end in {seconds}s: {seen[-1]}\n{log[-3000:]}")


def test_an_upload_is_imported_by_the_worker_with_its_progress(
    app: Flask, worker: Any, tmp_path: Path
) -> None:
    client = app.test_client()
    ann = _token(client, "ann")
    lines = ["Name,External ID"] + [f"Worker Co {n},W-{n}" for n in range(ROWS)]
    lines.insert(11, "WORKER  co 3 Inc.,W-X")  # a repeat of row 5 under the rule
    content = ("\n".join(lines) + "\n").encode("utf-8")
    data = {"file": (io.BytesIO(content), "big.csv"), "entity": "account",
            "background": "true", "batch_size": "7"}  # fmt: skip
    answer = client.post("/api/v1/imports", data=data, headers=ann,
                         content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 202, answer.json
    queued = answer.json["data"]
    assert queued["status"] == "queued" and queued["progress"] == {"done": 0, "total": ROWS + 1}

    states = _until(client, ann, f"/api/v1/imports/{queued['id']}", tmp_path)
    done = [s["progress"]["done"] for s in states]
    assert done == sorted(done) and done[-1] == ROWS + 1
    final = states[-1]
    assert final["status"] == "done", final
    assert final["report"]["counts"] == {**final["report"]["counts"], "created": ROWS,
                                         "error": 1}  # fmt: skip
    (refused,) = [r for r in final["report"]["rows"] if r["status"] == "error"]
    assert refused["row"] == 12 and refused["duplicate"]["rule"] == "same_name"

    runtime = app.extensions["heddle"]
    # on PostgreSQL the worker's job wrote it with a process per core (engine.imports._parallel)
    cores = min(os.cpu_count() or 1, 4) if runtime.engine.dialect.name == "postgresql" else 1
    assert final["report"]["workers"] == cores
    outbox = runtime.tables.metadata.tables[OUTBOX_TABLE]

    def worker_done() -> bool:  # the run's own commit comes first, the job's mark after it
        with runtime.engine.connect() as conn:
            jobs = conn.execute(sa.select(outbox.c.job, outbox.c.args, outbox.c.status)).all()
        return ("data_run", {"run": queued["id"]}, "done") in jobs

    deadline = time.monotonic() + 30
    while not worker_done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_done()  # the worker's job, not a thread of the web process

    listing = client.get("/api/v1/records/account?limit=200", headers=ann).json["data"]
    assert sorted(r["external_id"] for r in listing) == sorted(f"W-{n}" for n in range(ROWS))
    assert len({r["code"] for r in listing}) == ROWS
    bob = _token(client, "bob")  # another user's run is not theirs to see
    assert client.get(f"/api/v1/imports/{queued['id']}", headers=bob).status_code == 404

    # a big export is a job too: its file is there to download when it is ready
    answer = client.get("/api/v1/records/account/export?format=csv", headers=ann)
    assert answer.status_code == 202, answer.json
    export = answer.json["data"]
    states = _until(client, ann, f"/api/v1/exports/{export['id']}", tmp_path)
    assert states[-1]["status"] == "done", states[-1]
    file = client.get(f"/api/v1/exports/{export['id']}/file", headers=ann)
    assert file.status_code == 200
    text = file.data.decode("utf-8-sig")
    assert text.count("\n") == ROWS + 1 and "Worker Co 59" in text
