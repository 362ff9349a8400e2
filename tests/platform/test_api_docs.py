"""docs/api.md runs as written: every ``curl`` block that uses ``$HEDDLE`` is executed, in
order, against a live server with the CRM package, on both databases. Its answer must have
the status on the block's ``# → <status>`` line and match the JSON block after it (``…``
matches any value; objects may have more keys than shown; lists shown must be a prefix of
the answer); an example with no JSON block after it must answer with an empty body."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
from flask import Flask
from heddle.app import create_app
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
STATUS = re.compile(r"^# → ([1-5][0-9][0-9])\b", re.M)
ANY = "…"
NO_BODY = object()  # an example that documents no JSON: the answer must be empty
# Run the examples as written, with curl reporting each status on stderr.
CURL = "curl() { command curl --write-out '%{stderr}HTTP %{http_code}\\n' \"$@\"; }\n"


@dataclass(frozen=True)
class Example:
    line: int  # of the sh block in api.md
    command: str
    status: int
    expected: Any  # the JSON shown after it, or NO_BODY


def examples() -> list[Example]:
    """Each runnable example, in order."""
    text = DOC.read_text(encoding="utf-8")
    blocks = [
        (m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)
    ]
    found = []
    for (kind, body, line), following in zip(blocks, [*blocks[1:], ("", "", 0)], strict=True):
        if kind == "sh" and '"$HEDDLE' in body:
            statuses = STATUS.findall(body)
            assert len(statuses) == 1, (
                f"api.md:{line}: a runnable example needs one line '# → <status>'"
            )
            expected = json.loads(following[1]) if following[0] == "json" else NO_BODY
            found.append(Example(line, body, int(statuses[0]), expected))
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
def server(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """A live server with the CRM package and the examples' users, on an empty database
    (``db_engine`` empties PostgreSQL afterwards), so ids start at 1 as the doc shows."""
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "docs",
            "TOKEN_CACHE_SECONDS": 0,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
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
    found = examples()
    text = DOC.read_text(encoding="utf-8")
    unrun = [m.group(1) for m in BLOCK.finditer(text) if "curl" in m.group(2) and
             "$HEDDLE" in m.group(2) and m.group(1) != "sh"]  # fmt: skip
    assert not unrun, f"curl examples in {unrun} blocks are never run: make them sh blocks"
    assert len(found) >= 12
    statuses = {example.status for example in found}
    assert {200, 201, 204, 400, 401, 403, 404, 409, 422} <= statuses
    # the token's revocation runs too; the examples after it that send the token show
    # that it is refused
    revoked = next(
        n for n, e in enumerate(found) if '-X DELETE "$HEDDLE/api/v1/auth/token' in e.command
    )
    assert found[revoked].status == 204
    after = [e.status for e in found[revoked + 1 :] if "$TOKEN" in e.command]
    assert after and set(after) == {401}


def run(example: Example, env: dict[str, str]) -> tuple[int, str]:
    """The status and body the example's command answers with."""
    done = subprocess.run(
        ["bash", "-c", CURL + example.command],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"api.md:{example.line}: {done.stderr}"
    reported = re.findall(r"^HTTP ([0-9]{3})$", done.stderr, re.M)
    assert len(reported) == 1, f"api.md:{example.line}: one request per example: {done.stderr}"
    return int(reported[0]), done.stdout


def test_every_example_answers_as_documented(server: tuple[str, Flask]) -> None:
    url, _app = server
    token = ""
    for example in examples():
        where = f"api.md:{example.line}"
        status, body = run(example, {**os.environ, "HEDDLE": url, "TOKEN": token})
        assert status == example.status, f"{where}: status {status}, documented {example.status}"
        if example.expected is NO_BODY:
            assert body == "", f"{where}: documents no body, got {body!r}"
            continue
        answer = json.loads(body)
        assert matches(example.expected, answer), (
            f"{where}:\nexpected {example.expected}\ngot      {answer}"
        )
        if not token and "token" in answer:
            token = answer["token"]
