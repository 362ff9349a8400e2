"""The import screen: a spreadsheet checked first, then imported from its run's page; and
a list exported as it shows."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crm_support import crm_fixture, csrf_token, logged_in
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

USERS = [
    ("root", ["admin"], "HQ", None),
    ("ann", ["sales_rep"], "East", None),
    ("bob", ["sales_rep"], "East", None),
    ("fay", ["finance"], "HQ", None),
    ("mo", ["marketing"], "HQ", None),
]
HEADER = ["客户名称", "客户等级", "电话"]
ROWS = [
    ["上海云帆科技有限公司", "A类（重点客户）", "021-6123 4567"],
    ["杭州青禾贸易有限公司", "重要", "0571-8888 1234"],  # no such grade
    ["", "B", "010-5555 0000"],  # no name
    ["深圳星河电子有限公司", "C类（普通客户）", "0755-2666 1888"],
]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    yield from crm_fixture(db_url, tmp_path, USERS)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([HEADER, *rows])
    return out.getvalue().encode("gb18030")  # as Excel saves it on a Chinese Windows


def _accounts(app: Flask) -> list[str]:
    runtime = app.extensions["heddle"]
    table = runtime.tables.table("account")
    with runtime.engine.connect() as conn:
        return list(conn.scalars(sa.select(table.c.name).order_by(table.c.id)))


def _upload(client: FlaskClient, content: bytes, do: str = "check", **form: str) -> Any:
    page = client.get("/app/account/import").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "do": do, "mode": "insert", **form,
            "file": (io.BytesIO(content), "客户.csv")}  # fmt: skip
    return client.post("/app/account/import", data=data, content_type="multipart/form-data")


def test_a_file_is_checked_then_its_valid_rows_imported(app: Flask) -> None:
    ann = logged_in(app, "ann")
    listing = ann.get("/app/account").get_data(as_text=True)
    assert 'href="/app/account/import"' in listing  # the list's Import button
    form = ann.get("/app/account/import")
    assert form.status_code == 200
    assert 'type="file"' in form.get_data(as_text=True)

    checked = _upload(ann, _csv(ROWS))
    assert checked.status_code == 303
    run_url = checked.headers["Location"]
    assert re.fullmatch(r"/app/imports/\d+", run_url)
    assert _accounts(app) == []  # a check writes nothing
    page = ann.get(run_url).get_data(as_text=True)
    assert "Checked: nothing was written" in page
    assert '<dd class="col-sm-9" data-count="created">2</dd>' in page
    assert '<dd class="col-sm-9" data-count="error">2</dd>' in page
    assert "重要" in page and "客户等级" in page  # the bad grade, at its column
    assert "Required." in page or "required" in page.lower()  # the missing name
    assert "Import the valid rows" in page

    rejected = ann.get(f"{run_url}/errors.xlsx")
    assert rejected.status_code == 200
    sheet = load_workbook(io.BytesIO(rejected.data)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert [r[0] for r in cells[1:]] == [3, 4]  # the spreadsheet's row numbers

    done = ann.post(f"{run_url}/import",
                    data={"csrf_token": csrf_token(page), "all_or_nothing": "false"})  # fmt: skip
    assert done.status_code == 303 and done.headers["Location"] != run_url
    assert _accounts(app) == ["上海云帆科技有限公司", "深圳星河电子有限公司"]
    page = ann.get(done.headers["Location"]).get_data(as_text=True)
    assert "Imported" in page and "Import the valid rows" not in page


def test_the_error_file_speaks_the_readers_language(app: Flask) -> None:
    """The rejected rows download with their headers and messages in the user's language
    (from the screens and from the API alike); the file's own headers and cells stay as
    they were."""
    ann = logged_in(app, "ann")
    page = ann.get("/app/account").get_data(as_text=True)
    ann.post("/language", data={"csrf_token": csrf_token(page), "locale": "zh", "next": "/"})
    checked = _upload(ann, _csv(ROWS))
    run_url = checked.headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    assert "客户等级" in page
    rejected = ann.get(f"{run_url}/errors.csv").data.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(rejected)))
    assert table[0] == ["行", "错误", *HEADER]
    assert [row[0] for row in table[1:]] == ["3", "4"]
    grade, name = table[1][1], table[2][1]
    assert grade.startswith("客户等级: ") and "重要" in grade, grade
    assert name == "客户名称: 此字段为必填项。", name
    assert "Unknown choice" not in grade and table[1][2:] == ROWS[1]
    # the same file from the API, for a token whose user reads Japanese
    run_id = run_url.rsplit("/", 1)[1]
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        users = runtime.accounts.users
        conn.execute(users.update().where(users.c.username == "ann").values(locale="ja"))
        ann_user = runtime.accounts.by_username(conn, "ann")
        token, _ = runtime.accounts.issue_token(conn, ann_user, days=1)
    api = app.test_client().get(
        f"/api/v1/imports/{run_id}/errors", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200
    header = api.data.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("行,エラー,"), header


def test_all_or_nothing_writes_nothing_when_a_row_is_rejected(app: Flask) -> None:
    ann = logged_in(app, "ann")
    run_url = _upload(ann, _csv(ROWS)).headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    done = ann.post(f"{run_url}/import",
                    data={"csrf_token": csrf_token(page), "all_or_nothing": "true"})  # fmt: skip
    page = ann.get(done.headers["Location"]).get_data(as_text=True)
    assert "one rejected row stops the import" in page
    assert _accounts(app) == []
    now = _upload(ann, _csv([ROWS[0]]), do="import")  # a clean file imported at once
    assert "Imported" in ann.get(now.headers["Location"]).get_data(as_text=True)
    assert _accounts(app) == ["上海云帆科技有限公司"]


def test_bad_uploads_come_back_with_a_message_and_change_nothing(app: Flask) -> None:
    ann = logged_in(app, "ann")
    page = ann.get("/app/account/import").get_data(as_text=True)
    empty = ann.post("/app/account/import", data={"csrf_token": csrf_token(page), "do": "check"},
                     content_type="multipart/form-data")  # fmt: skip
    assert empty.status_code == 400 and "Choose a file to import." in empty.get_data(as_text=True)
    broken = _upload(ann, b"\x00\x01not a sheet\xff" * 10)
    assert broken.status_code == 400 and 'id="import-problem"' in broken.get_data(as_text=True)
    no_key = _upload(ann, _csv(ROWS), mode="update")
    assert no_key.status_code == 400 and "key" in no_key.get_data(as_text=True)
    unsigned = ann.post("/app/account/import", data={"do": "check", "file": (io.BytesIO(_csv(ROWS)), "a.csv")},
                        content_type="multipart/form-data")  # fmt: skip
    assert unsigned.status_code == 400  # no CSRF token
    assert _accounts(app) == []


def test_only_importers_see_the_page_and_only_their_runs(app: Flask) -> None:
    fay = logged_in(app, "fay")  # finance: reads accounts, may not import them
    assert 'href="/app/account/import"' not in fay.get("/app/account").get_data(as_text=True)
    assert fay.get("/app/account/import").status_code == 404
    ann = logged_in(app, "ann")
    run_url = _upload(ann, _csv(ROWS)).headers["Location"]
    bob = logged_in(app, "bob")
    assert bob.get(run_url).status_code == 404
    assert bob.get(f"{run_url}/errors.csv").status_code == 404
    page = bob.get("/app/account/import").get_data(as_text=True)
    assert bob.post(f"{run_url}/import", data={"csrf_token": csrf_token(page)}).status_code == 404
    root = logged_in(app, "root")
    assert root.get(run_url).status_code == 200  # an administrator sees every run
    # "Your imports": ann's run is listed for her and the administrator, not for bob
    assert f'href="{run_url}"' in ann.get("/app/imports").get_data(as_text=True)
    assert f'href="{run_url}"' in root.get("/app/imports").get_data(as_text=True)
    assert f'href="{run_url}"' not in bob.get("/app/imports").get_data(as_text=True)
    assert "Nothing yet" in bob.get("/app/imports").get_data(as_text=True)


def test_a_large_file_runs_in_the_background_and_its_page_follows(app: Flask) -> None:
    app.config["IMPORT_BACKGROUND_ROWS"] = 3
    rows = [[f"背景测试{n:02d}有限公司", "B", f"021-6000 00{n:02d}"] for n in range(8)]
    ann = logged_in(app, "ann")
    ann.post("/language", data={"locale": "zh", "csrf_token": csrf_token(
        ann.get("/settings").get_data(as_text=True))})  # fmt: skip
    run_url = _upload(ann, _csv(rows), do="import").headers["Location"]
    deadline = time.monotonic() + 30
    while True:
        page = ann.get(run_url).get_data(as_text=True)
        if 'http-equiv="refresh"' not in page:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    assert "已导入" in page  # "Imported", in Chinese
    assert len(_accounts(app)) == 8


def test_a_column_the_file_names_otherwise_is_mapped_on_the_page(app: Flask) -> None:
    """A header no field's label matches is left out; the user maps it to a field on the
    checked run's page and checks again, then imports."""
    ann = logged_in(app, "ann")
    content = "公司全称,电话\r\n上海云帆科技有限公司,021-6123 4567\r\n".encode()
    run_url = _upload(ann, content).headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    assert '<option value="" selected>(not imported)</option>' in page  # 公司全称: no field
    assert '<dd class="col-sm-9" data-count="error">1</dd>' in page  # so no name
    again = ann.post(f"{run_url}/check", data={"csrf_token": csrf_token(page),
                                               "column-1": "name", "column-2": "phone"})  # fmt: skip
    assert again.status_code == 303
    page = ann.get(again.headers["Location"]).get_data(as_text=True)
    assert '<option value="name" selected>' in page
    assert '<dd class="col-sm-9" data-count="created">1</dd>' in page
    assert _accounts(app) == []
    done = ann.post(f"{again.headers['Location']}/import",
                    data={"csrf_token": csrf_token(page), "all_or_nothing": "false"})  # fmt: skip
    assert done.status_code == 303
    assert _accounts(app) == ["上海云帆科技有限公司"]
    # a field the rep may not write, chosen: refused on the run's page, nothing checked
    refused = ann.post(f"{run_url}/check", data={"csrf_token": csrf_token(page),
                                                 "column-1": "lifetime_value"})  # fmt: skip
    assert refused.status_code == 303 and "problem=" in refused.headers["Location"]


def test_an_unknown_choice_is_mapped_on_the_page(app: Flask) -> None:
    """A grade written in the company's own words (重要) names no choice: the checked
    run's page offers the grades for it, and the file checked again reads it as A."""
    ann = logged_in(app, "ann")
    run_url = _upload(ann, _csv(ROWS[:2])).headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    assert "Texts that name no choice" in page
    assert 'name="text-grade-0" value="重要"' in page
    again = ann.post(f"{run_url}/check", data={"csrf_token": csrf_token(page),
                                               "text-grade-0": "重要", "value-grade-0": "A"})  # fmt: skip
    page = ann.get(again.headers["Location"]).get_data(as_text=True)
    assert '<dd class="col-sm-9" data-count="created">2</dd>' in page
    assert "Texts that name no choice" not in page
    ann.post(f"{again.headers['Location']}/import",
             data={"csrf_token": csrf_token(page), "all_or_nothing": "true"})  # fmt: skip
    runtime = app.extensions["heddle"]
    table = runtime.tables.table("account")
    with runtime.engine.connect() as conn:
        grades = dict(conn.execute(sa.select(table.c.name, table.c.grade)).all())
    assert grades == {"上海云帆科技有限公司": "A", "杭州青禾贸易有限公司": "A"}


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("zh", ["未知选项“重要”；可选值：A, B, C, D（或将其映射到其中之一）。",
                "与第 2 行重复（查重规则：客户名称重复）。", "此字段为必填项。"]),
        ("ja", ["不明な選択肢「重要」です。選択肢：A, B, C, D（またはいずれかに対応付けてください）。",
                "2 行目と重複しています（重複ルール：顧客名の重複）。"]),
    ],
)  # fmt: skip
def test_a_checked_file_s_problems_are_said_in_the_user_s_language(
    app: Flask, language: str, said: list[str]
) -> None:
    """The reasons a row is refused — an unknown choice, a repeat of another row, a
    missing name — on the checked run's page in the user's language, the rule by its
    label; the API's report keeps the English message with its template and params."""
    ann = logged_in(app, "ann")
    ann.post("/language", data={"locale": language, "csrf_token": csrf_token(
        ann.get("/settings").get_data(as_text=True))})  # fmt: skip
    repeat = ["上海云帆科技股份有限公司", "B", "021-6000 0001"]  # row 2's name, another suffix
    run_url = _upload(ann, _csv([*ROWS, repeat]), duplicates="skip").headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    for text in said:
        assert text.replace("“", "&#34;").replace("”", "&#34;") in page or text in page, text
    assert "Unknown choice" not in page and "Repeats row" not in page
    run = ann.get(f"/api/v1/imports/{run_url.rsplit('/', 1)[1]}").get_json()["data"]
    errors = [e for row in run["report"]["rows"] for e in row.get("errors", [])]
    unknown = next(e for e in errors if e.get("value") == "重要")
    assert unknown["message"].startswith("Unknown choice '重要'")
    assert unknown["template"].startswith("Unknown choice '%(text)s'")
    assert unknown["params"]["text"] == "重要"


def test_the_form_offers_the_encoding_and_the_order_of_dates(app: Flask) -> None:
    """A CSV saved in Shift_JIS with dates written day first, read as the user says."""
    ann = logged_in(app, "ann")
    content = "顧客名,次回フォロー日時\r\n大阪商事株式会社,03/04/2027\r\n".encode("shift_jis")
    run_url = _upload(ann, content, do="import", encoding="shift_jis",
                      date_order="dmy").headers["Location"]  # fmt: skip
    assert "Imported" in ann.get(run_url).get_data(as_text=True)
    runtime = app.extensions["heddle"]
    table = runtime.tables.table("account")
    with runtime.engine.connect() as conn:
        when = conn.scalar(sa.select(table.c.next_follow_up_at))
    assert (when.year, when.month, when.day) == (2027, 4, 3)


def test_a_checked_file_s_reading_is_saved_as_a_template_for_the_next(app: Flask) -> None:
    """The columns and texts chosen for one file, saved as a template, read the next file
    of the same layout without choosing them again."""
    ann = logged_in(app, "ann")
    content = "公司全称,等级\r\n上海云帆科技有限公司,重要\r\n".encode()
    run_url = _upload(ann, content).headers["Location"]
    page = ann.get(run_url).get_data(as_text=True)
    again = ann.post(f"{run_url}/check", data={
        "csrf_token": csrf_token(page), "column-1": "name", "column-2": "grade",
        "text-grade-0": "重要", "value-grade-0": "A"})  # fmt: skip
    checked = again.headers["Location"]
    page = ann.get(checked).get_data(as_text=True)
    saved = ann.post(f"{checked}/template", data={"csrf_token": csrf_token(page),
                                                  "name": "旧系统导出"})  # fmt: skip
    assert saved.status_code == 303
    assert "旧系统导出" in ann.get(checked).get_data(as_text=True)  # the flash message
    form = ann.get("/app/account/import").get_data(as_text=True)
    found = re.search(r'<option value="(\d+)"[^>]*>旧系统导出</option>', form)
    assert found is not None
    later = "公司全称,等级\r\n杭州青禾贸易有限公司,重要\r\n".encode()
    run = _upload(ann, later, do="import", template=found.group(1)).headers["Location"]
    assert "Imported" in ann.get(run).get_data(as_text=True)
    assert _accounts(app) == ["杭州青禾贸易有限公司"]
    unnamed = ann.post(f"{checked}/template", data={"csrf_token": csrf_token(page), "name": " "})
    assert "problem=" in unnamed.headers["Location"]  # a name is needed


def _seed_accounts(app: Flask, rows: list[tuple[str, str]], owner: str = "ann") -> None:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        user = runtime.accounts.by_username(conn, owner)
    for name, grade in rows:
        runtime.records.create(user.actor(), "account", {"name": name, "grade": grade})


def test_a_list_is_exported_as_it_shows(app: Flask) -> None:
    """The list's filters and search, its view's columns (not a hidden one), every page,
    as XLSX or CSV — and a role without the export permission has no button."""
    _seed_accounts(app, [("甲公司", "A"), ("乙公司", "B"), ("丙公司", "A")])
    ann = logged_in(app, "ann")
    listing = ann.get("/app/account?grade=A").get_data(as_text=True)
    found = re.search(r'href="(/app/account/export\?[^"]*format=xlsx[^"]*)"', listing)
    assert found is not None
    xlsx = ann.get(found.group(1).replace("&amp;", "&"))
    assert xlsx.status_code == 200
    assert xlsx.headers["Content-Disposition"] == 'attachment; filename="account.xlsx"'
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][0] == "ID" and "Account name" in cells[0]
    names = sorted(row[cells[0].index("Account name")] for row in cells[1:])
    assert names == ["丙公司", "甲公司"]
    text = ann.get("/app/account/export?format=csv&q=乙").data.decode("utf-8-sig")
    assert "乙公司" in text and "甲公司" not in text
    # a view's own filter (key accounts: grade A) and its columns (no grade column)
    text = ann.get("/app/account/export?format=csv&view=key_accounts").data.decode("utf-8-sig")
    header, *lines = text.splitlines()
    assert "Grade" not in header and "Lifetime value" in header
    assert sorted(line.split(",")[1] for line in lines) == ["丙公司", "甲公司"]
    assert ann.get("/app/account/export?format=pdf").status_code == 404
    mo = logged_in(app, "mo")  # marketing reads accounts, may not export them
    assert "/app/account/export" not in mo.get("/app/account").get_data(as_text=True)
    assert mo.get("/app/account/export?format=csv").status_code == 404


def test_a_large_list_is_written_in_the_background(app: Flask) -> None:
    app.config["EXPORT_BACKGROUND_ROWS"] = 2
    _seed_accounts(app, [(f"导出{n}公司", "C") for n in range(5)])
    ann = logged_in(app, "ann")
    started = ann.get("/app/account/export?format=csv")
    assert started.status_code == 303 and "/app/imports#run-" in started.headers["Location"]
    deadline = time.monotonic() + 30
    while True:
        page = ann.get("/app/imports").get_data(as_text=True)
        link = re.search(r'href="(/app/exports/\d+/file)"', page)
        if link:
            break
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    assert "Ready to download" in page
    text = ann.get(link.group(1)).data.decode("utf-8-sig")
    assert sum("导出" in line for line in text.splitlines()) == 5
    assert logged_in(app, "bob").get(link.group(1)).status_code == 404
