"""``heddle import`` and ``heddle export`` on the CRM: a dry run, a real run with its
error file and progress, a resume, users and teams, an export read back."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from heddle.cli import main
from openpyxl import load_workbook


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("HEDDLE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("HEDDLE_PACKAGES", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    done = runner.invoke(main, ["user", "create", "li.lei", "--password", "long-enough",
                                "--role", "sales_rep", "--team", "Shanghai",
                                "--email", "li@example.com", "--locale", "zh"])  # fmt: skip
    assert done.exit_code == 0, done.output
    return runner


ACCOUNTS = (
    "客户名称,外部编号,客户等级,下次联系时间\n"
    "北京字节跳动科技有限公司,K3-1,A类（重点客户）,2026年12月7日\n"
    "华为技术有限公司,K3-2,特级,2026-13-01\n"
    "腾讯科技（深圳）,K3-3,B,\n"
)


def test_import_export_teams_and_users(cli: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "客户.csv"
    file.write_bytes(ACCOUNTS.encode("gb18030"))
    args = ["import", "account", str(file), "--as", "li.lei", "--mode", "upsert",
            "--key", "external_id"]  # fmt: skip
    dry = cli.invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 1, dry.output
    assert "row 3, 客户等级: error: Unknown choice '特级'" in dry.output
    assert "row 3, 下次联系时间: error: No such date: '2026-13-01'." in dry.output
    assert "2 created, 1 error (dry run, nothing written)" in dry.output
    errors = tmp_path / "rejected.xlsx"
    done = cli.invoke(main, [*args, "--errors", str(errors)])
    assert "2 created, 1 error (committed)" in done.output
    sheet = load_workbook(errors).active
    # in the language of the user it imports as (li.lei reads Chinese)
    assert [c.value for c in sheet[1]][:3] == ["行", "错误", "客户名称"]
    assert sheet["A2"].value == 3 and sheet["C2"].value == "华为技术有限公司"
    assert "Unknown choice" not in sheet["B2"].value and "特级" in sheet["B2"].value
    english = tmp_path / "rejected.csv"
    told = cli.invoke(main, [*args, "--errors", str(english), "--language", "en"])
    assert told.exit_code == 1, told.output
    lines = english.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "Row,Errors,客户名称,外部编号,客户等级,下次联系时间"
    assert "客户等级: Unknown choice '特级'" in lines[1], lines[1]
    unknown = cli.invoke(main, [*args, "--errors", str(english), "--language", "fr"])
    assert unknown.exit_code == 2 and "--language is one of en, zh, ja" in unknown.output
    again = cli.invoke(main, [*args, "--workers", "2"])  # SQLite: one process all the same
    assert "2 unchanged, 1 error (committed)" in again.output
    too_many = cli.invoke(main, [*args, "--workers", "9"])
    assert too_many.exit_code == 2 and "--workers" in too_many.output
    misset = cli.invoke(main, args, env={"HEDDLE_IMPORT_WORKERS": "many"})
    assert misset.exit_code == 2 and "HEDDLE_IMPORT_WORKERS is 'many'" in misset.output

    exported = cli.invoke(main, ["export", "account", "--as", "li.lei", "--fields",
                                 "name,external_id,grade", "--filter", "grade=A"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    rows = list(csv.reader(io.StringIO(exported.output.lstrip("\ufeff"))))
    assert rows[0] == ["ID", "客户名称", "外部编号", "客户等级"]
    assert rows[1][1:] == ["北京字节跳动科技有限公司", "K3-1", "A类（重点客户）"]
    refused = cli.invoke(main, ["import", "product", str(file), "--as", "li.lei"])
    assert refused.exit_code == 1 and "may not import" in refused.output
    unknown = cli.invoke(main, ["import", "account", str(file), "--as", "nobody"])
    assert unknown.exit_code == 2 and "no active user 'nobody'" in unknown.output
    teams_and_users(cli, tmp_path)
    backup = tmp_path / "backup"
    written = cli.invoke(main, ["export", "--all", str(backup)])
    assert written.exit_code == 0 and (backup / "account.jsonl").is_file(), written.output
    refused = cli.invoke(main, ["import", "--all", str(backup)])
    assert refused.exit_code == 1 and "not empty" in refused.output


def teams_and_users(cli: CliRunner, tmp_path: Path) -> None:
    """Teams, then users in them (one CRM database for the whole module: migrating the
    CRM is the slow part)."""
    teams = tmp_path / "teams.csv"
    teams.write_text("团队,上级团队\n华东,\n华东-上海,华东\n", encoding="utf-8")
    done = cli.invoke(main, ["import", "team", str(teams)])
    assert "2 created" in done.output, done.output
    users = tmp_path / "users.csv"
    users.write_text("用户名,姓名,角色,团队\nhan.mei,韩梅梅,sales_rep,华东-上海\n",
                     encoding="utf-8")  # fmt: skip
    done = cli.invoke(main, ["import", "user", str(users)])
    assert "1 created" in done.output, done.output
    listed = cli.invoke(main, ["user", "list"]).output
    assert "han.mei" in listed and "华东-上海" in listed


def test_import_in_the_background_by_a_worker(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis: Any, redis_url: str
) -> None:
    """``--background``: the run is a job of a real ``heddle worker``; the command shows
    its progress until it ends, then its report."""
    file = tmp_path / "客户.csv"
    file.write_bytes(ACCOUNTS.encode("gb18030"))
    args = ["import", "account", str(file), "--as", "li.lei", "--background"]
    alone = cli.invoke(main, args)
    assert alone.exit_code == 2 and "--background needs HEDDLE_REDIS_URL" in alone.output
    monkeypatch.setenv("HEDDLE_REDIS_URL", redis_url)
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "heddle", "worker"], env=dict(os.environ),
                              stdout=log, stderr=log)  # fmt: skip
    log.close()
    try:
        done = cli.invoke(main, args)
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:  # RQ's warm shutdown may hang on its pub/sub
            worker.kill()
            worker.wait()
    assert done.exit_code == 1, done.output + (tmp_path / "worker.log").read_text()
    assert "queued for heddle worker" in done.output
    assert "row 3, 客户等级: error: Unknown choice '特级'" in done.output
    assert "2 created, 1 error (committed)" in done.output
