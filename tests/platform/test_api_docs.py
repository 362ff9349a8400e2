"""docs/api.md runs as written: every ``curl`` block that uses ``$HEDDLE`` is executed, in
order, against a live server with the CRM package, and its answer is compared with the
JSON block after it (``…`` matches any value; objects may have more keys than shown;
lists shown must be a prefix of the answer)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
from flask import Flask
from heddle.app import create_app
from werkzeug.serving import make_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
ANY = "…"


def examples() -> list[tuple[int, str, Any]]:
    """(line, shell command, expected JSON) for each runnable example, in order."""
    text = DOC.read_text(encoding="utf-8")
    blocks = [
        (m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)
    ]
    found = []
    for (kind, body, line), following in zip(blocks, [*blocks[1:], ("", "", 0)], strict=True):
        if kind == "sh" and '"$HEDDLE' in body:
            assert following[0] == "json", (
                f"api.md:{line}: a runnable example needs a json block after it"
            )
            found.append((line, body, json.loads(following[1])))
    return found


def matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) >= len(expected)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=False))
        )
    if isinstance(expected, str) and ANY in expected and isinstance(actual, str):
        prefix, _, suffix = expected.partition(ANY)
        return actual.startswith(prefix) and actual.endswith(suffix)
    return bool(expected == actual)


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    app = create_app(
        {
            "DATABASE_URL": sqlite_url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "docs",
            "TOKEN_CACHE_SECONDS": 0,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.schema.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "admin", "admin-pass", ["admin"])
        runtime.accounts.create_user(
            conn, "ann", "s3cret-pass", ["sales_rep"], team="Shanghai", name="Ann"
        )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", app
    finally:
        http.shutdown()
        runtime.engine.dispose()


def test_the_doc_has_examples() -> None:
    assert len(examples()) >= 12


def test_every_example_answers_as_documented(server: tuple[str, Flask]) -> None:
    url, _app = server
    token = ""
    for line, command, expected in examples():
        env = {**os.environ, "HEDDLE": url, "TOKEN": token}
        done = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"api.md:{line}: {done.stderr}"
        answer = json.loads(done.stdout)
        assert matches(expected, answer), f"api.md:{line}:\nexpected {expected}\ngot      {answer}"
        if not token and "token" in answer:
            token = answer["token"]
