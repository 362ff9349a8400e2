"""Settings are declared once, and every one is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from heddle.settings import SETTINGS, database_url, import_workers, package_paths, setting

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for item in SETTINGS:
        assert f"`{item.env}`" in text, f"{item.env} is missing from docs/configuration.md"
        assert item.help, item.name


def test_defaults_and_overrides() -> None:
    assert setting("LOCALE", {}) == "en"
    assert setting("LOCALE", {"HEDDLE_LOCALE": "ja"}) == "ja"
    assert package_paths({}) == [Path("crm")]  # the installed CRM, by name
    assert package_paths({"HEDDLE_PACKAGES": "a, b,"}) == [Path("a"), Path("b")]


def test_the_cap_on_an_import_s_processes() -> None:
    """HEDDLE_IMPORT_WORKERS: empty leaves the engine's cap (8, an import's options may ask
    up to it); anything but a whole number from 1 to 8 stops the start, saying so."""
    assert [import_workers(v) for v in ("", " ", "1", " 4 ", "8")] == [8, 8, 1, 4, 8]
    for bad in ("0", "9", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=f"HEDDLE_IMPORT_WORKERS is '{bad}'"):
            import_workers(bad)


def test_the_job_worker_and_the_api_take_the_cap(tmp_path: Path) -> None:
    """The cap reaches the imports of the API and of ``heddle worker`` (the job queue's
    options, which workflows.data_jobs reads)."""
    from heddle.app import create_app

    package = tmp_path / "tiny.yaml"
    package.write_text("kind: package\nname: tiny\n---\nkind: entity\nname: thing\n"
                       "fields:\n  name: {type: string}\n", encoding="utf-8")  # fmt: skip
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cap.db'}", "PACKAGES": str(package),
              "INSTANCE_PATH": str(tmp_path), "IMPORT_WORKERS": "2"}  # fmt: skip
    app = create_app(config)
    assert app.extensions["heddle_jobs"].options["import_workers"] == 2
    with app.test_request_context():
        from heddle.data_api import _imports

        assert _imports().max_workers == 2
    with pytest.raises(ValueError, match="HEDDLE_IMPORT_WORKERS is '12'"):
        create_app({**config, "IMPORT_WORKERS": "12"})


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "sqlite:///instance/heddle.db"),  # ./dev start, from the repository root
        ({"HEDDLE_INSTANCE_PATH": "/srv/x"}, "sqlite:////srv/x/heddle.db"),
        ({"HEDDLE_INSTANCE_PATH": "var/run"}, "sqlite:///var/run/heddle.db"),
        (
            {"HEDDLE_INSTANCE_PATH": "/srv/x", "HEDDLE_DATABASE_URL": "postgresql+psycopg://h/db"},
            "postgresql+psycopg://h/db",
        ),
    ],
)
def test_the_default_database_is_in_the_instance_folder(environ: dict[str, str], url: str) -> None:
    assert database_url(environ) == url


def test_app_and_cli_open_the_same_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEDDLE_INSTANCE_PATH alone moves the database: the CLI migrates the file the app uses."""
    from click.testing import CliRunner
    from heddle.app import create_app
    from heddle.cli import main

    instance = tmp_path / "instance"
    package = tmp_path / "tiny.yaml"
    package.write_text("kind: package\nname: tiny\n---\nkind: entity\nname: thing\n"
                       "fields:\n  name: {type: string}\n", encoding="utf-8")  # fmt: skip
    monkeypatch.delenv("HEDDLE_DATABASE_URL", raising=False)
    monkeypatch.setenv("HEDDLE_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("HEDDLE_PACKAGES", str(package))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (instance / "heddle.db").is_file()

    app = create_app({"SECRET_KEY": "test", "TESTING": True})
    assert app.config["DATABASE_URL"] == f"sqlite:///{instance / 'heddle.db'}"
    ready = app.test_client().get("/readyz")
    app.extensions["heddle"].engine.dispose()
    assert ready.status_code == 200, ready.json  # the app found what the CLI migrated


def test_gunicorn_reads_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing
    import runpy

    conf = Path(__file__).resolve().parent.parent / "platform" / "gunicorn.conf.py"
    for name in ("BIND", "WORKERS", "THREADS", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(f"HEDDLE_{name}", raising=False)
    defaults = runpy.run_path(str(conf))
    assert defaults["bind"] == "0.0.0.0:8000"
    assert defaults["workers"] == multiprocessing.cpu_count()
    assert defaults["threads"] == 4
    assert defaults["forwarded_allow_ips"] == "127.0.0.1"
    monkeypatch.setenv("HEDDLE_BIND", "127.0.0.1:9000")
    monkeypatch.setenv("HEDDLE_WORKERS", "3")
    monkeypatch.setenv("HEDDLE_THREADS", "8")
    monkeypatch.setenv("HEDDLE_FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2")
    chosen = runpy.run_path(str(conf))
    assert (chosen["bind"], chosen["workers"], chosen["threads"]) == ("127.0.0.1:9000", 3, 8)
    assert chosen["forwarded_allow_ips"] == "10.0.0.1,10.0.0.2"
