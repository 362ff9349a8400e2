"""A field type registered from outside Heddle's packages works in every layer.

``heddle_rating`` (beside this file) registers ``rating`` in the language, the engine and
the API's JSON; a package using it validates, migrates, creates, updates, refuses a bad
value with a field error, filters, sorts and appears in OpenAPI — on SQLite and
PostgreSQL, with no change to Heddle's code.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from heddle.app import create_app
from heddle.cli import main
from sqlalchemy.engine import Engine

from engine import migrate
from metamodel import DefinitionError, load_packages

HERE = Path(__file__).parent

PACKAGE = """\
kind: package
name: reviews
---
kind: entity
name: review
fields:
  title: {type: string, required: true}
  score: {type: rating, required: true, index: true}
  taste: {type: rating, stars: 3, default: 2}
"""


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``heddle_rating`` imported (so registered), and unregistered afterwards."""
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop("heddle_rating", None)
    module = importlib.import_module("heddle_rating")
    try:
        yield module
    finally:
        module.unregister()
        sys.modules.pop("heddle_rating", None)


def _package(tmp_path: Path, text: str = PACKAGE) -> Path:
    path = tmp_path / "reviews.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_packages([_package(tmp_path)])
    assert "fields.score.type: unknown type 'rating'" in str(caught.value)


def test_the_language_checks_its_options(plugin: ModuleType, tmp_path: Path) -> None:
    model = load_packages([_package(tmp_path)])
    score = model.entity("review").field("score")
    assert (score.type, score.value_type, score.settings["stars"]) == ("rating", "integer", 5)
    assert model.entity("review").field("taste").settings["stars"] == 3
    too_many = PACKAGE.replace("required: true, index: true", "required: true, stars: 20")
    with pytest.raises(DefinitionError) as caught:
        load_packages([_package(tmp_path, too_many)])
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "fields.score.stars: 20 is greater than the maximum of 10"
    ]
    bad = PACKAGE.replace("stars: 3, default: 2", "stars: 3, default: 4").replace(
        "required: true, index: true", "required: true, max_length: 3"
    )
    with pytest.raises(DefinitionError) as caught:
        load_packages([_package(tmp_path, bad)])
    assert {f"{p.path}: {p.message}" for p in caught.value.problems} == {
        "fields.taste.default: default 4 is not 1 to 3 stars",
        "fields.score.max_length: 'max_length' does not apply to a rating field",
    }


def test_validate_from_the_command_line(
    plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEDDLE_PLUGINS", "heddle_rating")
    result = CliRunner().invoke(main, ["validate", str(_package(tmp_path))])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("HEDDLE_PLUGINS", "heddle_ratings")
    result = CliRunner().invoke(main, ["validate", str(_package(tmp_path))])
    assert result.exit_code == 1
    assert "cannot import plugin 'heddle_ratings'" in result.output


@pytest.fixture
def client(
    plugin: ModuleType, db_url: str, db_engine: Engine, tmp_path: Path
) -> Iterator[FlaskClient]:
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "PACKAGES": str(_package(tmp_path)),
            "PLUGINS": "heddle_rating",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")  # a real migration, not create_all
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "root", "a long password", ["admin"])
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/token", json={"username": "root", "password": "a long password"}
    )
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {response.json['token']}"
    yield client
    runtime.engine.dispose()


def test_records_with_a_plugin_type(client: FlaskClient) -> None:
    created = client.post("/api/v1/records/review", json={"title": "Noodles", "score": 4})
    assert created.status_code == 201, created.json
    assert created.json["data"]["score"] == 4
    assert created.json["data"]["taste"] == 2  # the default
    for title, score in (("Dumplings", 2), ("Tea", 5), ("Rice", 1)):
        assert (
            client.post("/api/v1/records/review", json={"title": title, "score": score}).status_code
            == 201
        )

    record = created.json["data"]
    changed = client.patch(
        f"/api/v1/records/review/{record['id']}", json={"score": 5, "version": record["version"]}
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["data"]["score"] == 5

    for bad, message in (
        (6, "Give 1 to 5 stars."),
        (0, "Give 1 to 5 stars."),
        ("four", "Not a valid integer."),
        (4.5, "Give a whole number of stars."),
        (True, "Give a whole number of stars."),
    ):
        refused = client.post("/api/v1/records/review", json={"title": "Bad", "score": bad})
        assert refused.status_code == 422, (bad, refused.json)
        assert refused.json["error"]["fields"] == {"score": [message]}, bad
    missing = client.post("/api/v1/records/review", json={"title": "None"})
    assert missing.json["error"]["fields"] == {"score": ["Missing data for required field."]}
    assert client.get("/api/v1/records/review?count=1").status_code == 400  # no such field

    listed = client.get("/api/v1/records/review?score__gte=2&sort=-score,title")
    assert listed.status_code == 200, listed.json
    assert [(r["title"], r["score"]) for r in listed.json["data"]] == [
        ("Noodles", 5),
        ("Tea", 5),
        ("Dumplings", 2),
    ]
    assert client.get("/api/v1/records/review?score__in=1,2").json["count"] == 2
    refused = client.get("/api/v1/records/review?score__between=1,3")
    assert refused.status_code == 400
    assert (
        "operator 'between' does not apply" in refused.json["error"]["fields"]["score__between"][0]
    )


def test_the_plugin_type_in_openapi(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    score = schemas["Review"]["properties"]["score"]
    assert (score["x-field-type"], score["maximum"], score["type"]) == (
        "rating",
        5,
        ["integer", "null"],
    )
    taste = schemas["ReviewInput"]["properties"]["taste"]
    assert (taste["minimum"], taste["maximum"], taste["default"]) == (1, 3, 2)
    assert "score" in schemas["ReviewInput"]["required"]
    parameters = {p["name"] for p in document["paths"]["/records/review"]["get"]["parameters"]}
    assert {"score", "score__gte", "score__in"} <= parameters
    assert "score__between" not in parameters
