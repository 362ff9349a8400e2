"""Imports and exports of the CRM's records (engine.imports), on SQLite and PostgreSQL,
with files made here the way people make them: a Chinese CSV in GB18030 and a Japanese
one in Shift_JIS with labels as headers, an XLSX of opportunities naming accounts and
owners, quotes with their lines, broken rows of every kind."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
import sqlalchemy as sa
from openpyxl import Workbook, load_workbook
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from engine import (
    SYSTEM,
    Actor,
    Conflict,
    DuplicateFound,
    EventBus,
    Forbidden,
    Records,
    ValidationFailed,
)
from engine.database import connect
from engine.imports import (
    BadFile,
    FileTooLarge,
    ImportOptions,
    Imports,
    export_all,
    import_all,
    read_sheet,
)
from engine.imports._collector import FULL_AFTER, fewer_full_collections
from engine.imports._run import LOCKS_PER_BATCH, Runner, prepare
from engine.migrations import migrate
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import Model, load_packages
from workflows import attach as attach_workflows


class Crash(BaseException):
    """The worker dying between two batches (not an error the import could catch)."""


@pytest.fixture(scope="module")
def crm() -> Model:
    return load_packages([crm_definitions.PATH])


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def records(
    request: pytest.FixtureRequest, crm: Model, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Records]:
    """The CRM on a fresh database with a rep (ann), another rep (bob) and an admin."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('imports') / 'heddle.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = connect(url)
    tables = build_tables(crm)
    tables.metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "East", "created_at": now}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {"username": u, "name": n, "email": e, "roles": r, "team_id": 1, "created_at": now}
                for u, n, e, r in (
                    ("ann", "Ann Lee", "ann@example.com", ["sales_rep"]),
                    ("bob", "Bob Wu", "bob@example.com", ["sales_rep"]),
                    ("root", "Root", None, ["admin"]),
                )
            ],
        )
    events = EventBus()
    attach_workflows(events)
    yield Records(engine, crm, tables=tables, events=events)
    tables.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def imports(records: Records) -> Imports:
    return Imports(records)


ANN = Actor(user_id=1, team_id=1, roles=frozenset({"sales_rep"}), locale="zh", label="ann")
BOB = Actor(user_id=2, team_id=1, roles=frozenset({"sales_rep"}), locale="ja", label="bob")


def count(records: Records, entity: str, **where: Any) -> int:
    table = records.tables.table(entity)
    query = sa.select(sa.func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with records.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def one(records: Records, entity: str, **where: Any) -> dict[str, Any]:
    table = records.tables.table(entity)
    query = sa.select(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with records.engine.connect() as conn:
        return dict(conn.execute(query).mappings().one())


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rows_of(run: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["row"]: row for row in run["report"]["rows"]}


# --- encodings, labels, conversions ---------------------------------------------------------

CHINESE = [
    ["客户名称", "外部编号", "客户等级", "所属行业", "电话", "年营业额", "下次联系时间", "标签"],
    ["北京字节跳动科技有限公司", "CN-001", "A类（重点客户）", "IT/软件", "+86 138-0013-8000",
     "1,250,000.50", "2026年12月7日", "VIP、上市公司"],
    ["深圳市腾讯计算机系统有限公司", "CN-002", "B", "通信", "0755-8601-3388", "９８０", "2026/12/07 14:30", ""],
]  # fmt: skip
JAPANESE = [
    ["顧客名", "外部ID", "顧客ランク", "業種", "電話番号", "年間売上高", "ロック"],
    ["株式会社ソニー", "JP-001", "Aランク（重要顧客）", "製造業", "03-1234-5678", "12,000,000", "はい"],
    ["トヨタ自動車株式会社", "JP-002", "C", "運輸・物流", "0565-28-2121", "", "いいえ"],
]  # fmt: skip


def test_a_chinese_gb18030_and_a_japanese_shift_jis_file(
    records: Records, imports: Imports
) -> None:
    run = imports.run(ANN, "account", csv_bytes(CHINESE, "gb18030"), "客户.csv", ImportOptions())
    assert run["status"] == "done", run
    assert run["report"]["counts"]["created"] == 2, run["report"]
    fields = [c["field"] for c in run["report"]["mapping"]]
    assert fields == ["name", "external_id", "grade", "industry", "phone", "annual_revenue",
                      "next_follow_up_at", "tags"]  # fmt: skip
    bytedance = one(records, "account", external_id="CN-001")
    assert bytedance["name"] == "北京字节跳动科技有限公司"
    assert (bytedance["grade"], bytedance["industry"]) == ("A", "it_software")
    assert bytedance["annual_revenue"] == Decimal("1250000.50")
    assert bytedance["next_follow_up_at"].date() == dt.date(2026, 12, 7)
    assert bytedance["tags"] == ["vip", "listed_company"]
    assert bytedance["owner_id"] == 1  # the importing rep owns what they import
    tencent = one(records, "account", external_id="CN-002")
    assert tencent["annual_revenue"] == Decimal("980")  # full-width digits
    assert tencent["next_follow_up_at"].hour == 14

    run = imports.run(BOB, "account", csv_bytes(JAPANESE, "shift_jis"), "顧客.csv", ImportOptions())
    assert run["report"]["counts"]["created"] == 2, run["report"]
    sony = one(records, "account", external_id="JP-001")
    assert (sony["name"], sony["grade"], sony["industry"], sony["locked"]) == (
        "株式会社ソニー", "A", "manufacturing", True,
    )  # fmt: skip
    assert one(records, "account", external_id="JP-002")["industry"] == "logistics"


def test_encodings_detected_or_chosen_and_bad_files(imports: Imports) -> None:
    text = "客户名称,客户等级\n华为技术有限公司,A\n"
    for encoding in ("utf-8", "utf-8-sig", "gb18030"):
        sheet = read_sheet(text.encode(encoding), "a.csv")
        assert (
            sheet.headers == ["客户名称", "客户等级"] and sheet.rows[0][1][0] == "华为技术有限公司"
        )
    assert read_sheet("顧客名\nソニー\n".encode("shift_jis"), "a.csv").rows[0][1] == ["ソニー"]
    with pytest.raises(BadFile, match="not utf-8"):
        read_sheet(text.encode("gb18030"), "a.csv", encoding="utf-8")
    with pytest.raises(BadFile, match="empty"):
        read_sheet(b"  \n", "a.csv")
    with pytest.raises(BadFile, match="no rows"):
        read_sheet(b"name,grade\n", "a.csv")
    whole = xlsx_bytes([["name"], ["Acme"]])
    with pytest.raises(BadFile, match="XLSX"):
        read_sheet(whole[: len(whole) // 2], "a.xlsx")  # truncated
    with pytest.raises(BadFile, match="XLSX"):
        read_sheet(b"PK\x03\x04 not really", "a.xlsx")
    with pytest.raises(BadFile, match="list of objects"):
        read_sheet(b'{"name": "x"}', "a.json")
    with pytest.raises(FileTooLarge):
        Imports(imports.records, max_bytes=10).read(b"name\nAcme Corporation\n", "a.csv",
                                                    ImportOptions())  # fmt: skip


# --- modes, dry run, transactions, row errors ------------------------------------------------

BROKEN = [
    ["Account name", "External ID", "Grade", "Annual revenue", "Next follow-up", "Parent account"],
    ["Globex Corporation", "EN-001", "B (important)", "2,500", "07.12.2026", ""],
    ["Initech", "EN-002", "Z", "12", "31.02.2026", ""],  # unknown choice, impossible date
    ["", "EN-003", "A", "abc", "", ""],  # missing name, not a number
    ["Umbrella Ltd", "EN-004", "C", "-5", "", "No Such Parent"],  # below min, unknown ref
    ["Hooli Inc.", "EN-005", "A", "1 000", "01.01.2027", "Globex Corporation"],
]  # fmt: skip


def test_dry_run_writes_nothing_and_reports_every_row(records: Records, imports: Imports) -> None:
    before = count(records, "account")
    options = ImportOptions(dry_run=True, date_order="dmy")
    run = imports.run(ANN, "account", csv_bytes(BROKEN), "en.csv", options)
    assert count(records, "account") == before
    report = run["report"]
    assert (report["dry_run"], report["committed"]) == (True, False)
    assert report["counts"]["created"] == 2 and report["counts"]["error"] == 3
    rows = rows_of(run)
    assert sorted(rows) == [2, 3, 4, 5, 6]
    assert rows[2]["status"] == "created" and "id" not in rows[2]
    errors = {
        (e["row"], e.get("column")): e["message"]
        for r in rows.values()
        for e in r.get("errors", [])
    }
    assert "Unknown choice 'Z'" in errors[(3, "Grade")]
    assert "No such date" in errors[(3, "Next follow-up")]
    assert "Not a number" in errors[(4, "Annual revenue")]
    assert "Unknown account 'No Such Parent'" in errors[(5, "Parent account")]
    # a row whose cells convert is checked by the record service too: the name required
    run2 = imports.run(ANN, "account", csv_bytes([BROKEN[0], ["", "EN-009", "A", "", "", ""]]),
                       "en.csv", ImportOptions(dry_run=True))  # fmt: skip
    error = run2["report"]["rows"][0]["errors"][0]
    assert (error["row"], error["column"], error["message"]) == (
        2, "Account name", "Missing data for required field.")  # fmt: skip


def test_all_or_nothing_rolls_back_and_per_row_keeps_the_good_rows(
    records: Records, imports: Imports
) -> None:
    before = count(records, "account")
    options = ImportOptions(all_or_nothing=True, date_order="dmy")
    run = imports.run(ANN, "account", csv_bytes(BROKEN), "en.csv", options)
    assert run["report"]["committed"] is False
    assert count(records, "account") == before

    run = imports.run(ANN, "account", csv_bytes(BROKEN), "en.csv", ImportOptions(date_order="dmy"))
    assert run["report"]["committed"] is True
    assert count(records, "account") == before + 2
    assert one(records, "account", external_id="EN-001")["next_follow_up_at"].date() == dt.date(
        2026, 12, 7
    )
    hooli = one(records, "account", external_id="EN-005")
    assert hooli["parent_account"] == one(records, "account", external_id="EN-001")["id"]
    assert hooli["annual_revenue"] == Decimal("1000")
    error_file = imports.error_file(ANN, run["id"], "csv").decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(error_file)))
    assert table[0] == ["Row", "Errors", *BROKEN[0]]
    assert [r[0] for r in table[1:]] == ["3", "4", "5"]
    assert table[1][2:] == BROKEN[2] and "Grade: Unknown choice 'Z'" in table[1][1]
    xlsx = load_workbook(io.BytesIO(imports.error_file(ANN, run["id"], "xlsx")))
    assert [c.value for c in next(xlsx.active.iter_rows(min_row=2, max_row=2))][:1] == [3]


def test_upsert_by_external_id_twice_makes_no_doubles(records: Records, imports: Imports) -> None:
    rows = [["Account name", "External ID", "Grade"], ["Wayne Enterprises", "UP-1", "A"],
            ["Stark Industries", "UP-2", "B"]]  # fmt: skip
    options = ImportOptions(mode="upsert", key="external_id")
    first = imports.run(ANN, "account", csv_bytes(rows), "up.csv", options)
    assert first["report"]["counts"]["created"] == 2
    again = imports.run(ANN, "account", csv_bytes(rows), "up.csv", options)
    assert again["report"]["counts"]["unchanged"] == 2, again["report"]
    assert count(records, "account", external_id="UP-1") == 1
    rows[2][2] = "C"
    third = imports.run(ANN, "account", csv_bytes(rows), "up.csv", options)
    assert third["report"]["counts"] == {**third["report"]["counts"], "updated": 1, "unchanged": 1}
    stark = one(records, "account", external_id="UP-2")
    assert (stark["grade"], stark["version"]) == ("C", 2)
    missing = imports.run(ANN, "account", csv_bytes([rows[0], ["Nobody", "UP-404", "A"]]), "u.csv",
                          ImportOptions(mode="update", key="external_id"))  # fmt: skip
    assert (
        "No account with external_id 'UP-404'"
        in missing["report"]["rows"][0]["errors"][0]["message"]
    )


# --- references, XLSX, children ---------------------------------------------------------------


def test_xlsx_opportunities_name_accounts_and_owners_by_email(
    records: Records, imports: Imports
) -> None:
    book = xlsx_bytes([
        ["Opportunity name", "Account", "Amount", "Expected close date", "Owner", "Stage"],
        ["ERP rollout", "北京字节跳动科技有限公司", 125000.5, dt.datetime(2026, 12, 7), "ann@example.com", "Initial contact"],
        ["CRM seats", "CN-002", 8000, "2027/01/15", "Ann Lee", "初步接洽"],
        ["Lost cause", "Nobody Inc", 10, "2027-01-01", "ann", "initial"],
    ])  # fmt: skip
    run = imports.run(ANN, "opportunity", book, "deals.xlsx", ImportOptions())
    rows = rows_of(run)
    assert [rows[n]["status"] for n in (2, 3, 4)] == ["created", "created", "error"], rows
    erp = one(records, "opportunity", name="ERP rollout")
    assert erp["account"] == one(records, "account", external_id="CN-001")["id"]
    assert (erp["amount"], erp["expected_close_date"]) == (
        Decimal("125000.50"),
        dt.date(2026, 12, 7),
    )
    assert erp["owner_id"] == 1 and erp["stage"] == "initial"
    assert one(records, "opportunity", name="CRM seats")["account"] == one(
        records, "account", external_id="CN-002")["id"]  # fmt: skip
    assert rows[4]["errors"][0]["column"] == "Account"


def test_quotes_with_their_lines_from_one_file(records: Records, imports: Imports) -> None:
    with records.engine.begin() as conn:
        for code, name, price in (
            ("P-100", "CRM licence", "1200.00"),
            ("P-200", "Onboarding", "800.00"),
        ):
            records.create(
                SYSTEM, "product", {"name": name, "code": code, "list_price": price}, conn=conn
            )
    rows = [
        ["External ID", "Title", "Account", "Quote date", "Product", "Quantity", "Unit price"],
        ["Q-1", "First quote", "CN-001", "2026-12-01", "P-100", "10", ""],
        ["Q-1", "", "", "", "Onboarding", "2", "750"],
        ["Q-2", "Second quote", "CN-002", "2026-12-02", "P-200", "-1", ""],
    ]  # fmt: skip
    run = imports.run(SYSTEM, "quote", csv_bytes(rows), "quotes.csv",
                      ImportOptions(mode="upsert", key="external_id"))  # fmt: skip
    report = run["report"]
    assert report["counts"]["created"] == 1 and report["counts"]["error"] == 1, report
    quote = one(records, "quote", external_id="Q-1")
    lines = records.get(SYSTEM, "quote", quote["id"])["lines"]
    assert [(Decimal(line["quantity"]), Decimal(line["unit_price"])) for line in lines] == [
        (10, 1200), (2, 750)]  # fmt: skip
    error = rows_of(run)[4]["errors"][0]
    assert (error["row"], error["column"]) == (4, "Quantity")
    again = imports.run(SYSTEM, "quote", csv_bytes(rows[:3]), "quotes.csv",
                        ImportOptions(mode="upsert", key="external_id"))  # fmt: skip
    assert count(records, "quote", external_id="Q-1") == 1
    assert again["report"]["counts"]["error"] == 0


# --- duplicates --------------------------------------------------------------------------------


def test_repeats_inside_the_file_by_the_duplicate_rules(records: Records, imports: Imports) -> None:
    rows = [["客户名称", "电话"], ["阿里巴巴（中国）网络技术有限公司", "0571-1111"],
            ["阿里巴巴网络技术", "0571-2222"], ["ＡＬＩＢＡＢＡ Cloud Inc.", ""],
            ["Alibaba Group Holding", "+86 0571 1111"]]  # fmt: skip
    options = ImportOptions(duplicates={"same_name": "skip", "same_phone": "refuse"})
    run = imports.run(BOB, "account", csv_bytes(rows), "dups.csv", options)
    rows_ = rows_of(run)
    assert [rows_[n]["status"] for n in (2, 3, 4, 5)] == ["created", "skipped", "created", "error"]
    assert rows_[3]["duplicate"]["row"] == 2 and "Repeats row 2" in rows_[3]["errors"][0]["message"]
    assert rows_[5]["duplicate"] == {"rule": "same_phone", "row": 2, "id": rows_[2]["id"]}
    merged = imports.run(BOB, "account", csv_bytes([rows[0], ["Umbrella Corp", ""],
                                                    ["UMBRELLA  corporation", "021-555"]]),
                         "m.csv", ImportOptions(duplicates={"*": "merge"}))  # fmt: skip
    statuses = rows_of(merged)
    assert statuses[3]["status"] == "merged" and statuses[3]["id"] == statuses[2]["id"]
    assert one(records, "account", id=statuses[2]["id"])["phone"] == "021-555"


def test_duplicates_the_database_finds_skip_merge_or_refuse(
    records: Records, imports: Imports
) -> None:
    """The record service raises DuplicateFound for a duplicate rule's refusal; here a
    handler stands in for the rule's check against the database."""
    existing = one(records, "account", external_id="UP-1")

    def refuse(event: Any) -> None:
        if str(event.values.get("name", "")).casefold().startswith("wayne"):
            raise DuplicateFound("a duplicate of Wayne Enterprises", details={
                "rule": "same_name", "action": "warn",
                "candidates": [{"id": existing["id"], "entity": "account",
                                "title": existing["name"], "owner": "ann", "pool": None}]})  # fmt: skip

    records.events.subscribe("before_create", refuse, "account")
    try:
        rows = [["Account name", "Phone"], ["WAYNE enterprises", "010-1234"]]
        outcomes = {}
        for choice in ("skip", "refuse", "merge"):
            run = imports.run(ANN, "account", csv_bytes(rows), "d.csv",
                              ImportOptions(duplicates={"same_name": choice}))  # fmt: skip
            outcomes[choice] = run["report"]["rows"][0]
        # bob may not update ann's account: his merge is refused, with the reason
        bobs = imports.run(BOB, "account", csv_bytes(rows), "d.csv",
                           ImportOptions(duplicates={"same_name": "merge"}))  # fmt: skip
        # an update that would make a record a duplicate is skipped (never merged)
        records.events.subscribe("before_update", refuse, "account")
        renamed = imports.run(ANN, "account", csv_bytes([["Account name", "External ID"],
                              ["Wayne Corp", "UP-2"]]), "r.csv",
                              ImportOptions(mode="upsert", key="external_id",
                                            duplicates={"*": "merge"}))  # fmt: skip
    finally:
        records.events._handlers["before_create"].remove(("account", refuse))
        if ("account", refuse) in records.events._handlers["before_update"]:
            records.events._handlers["before_update"].remove(("account", refuse))
    assert renamed["report"]["rows"][0]["status"] == "skipped"
    assert one(records, "account", external_id="UP-2")["name"] == "Stark Industries"
    assert outcomes["skip"]["status"] == "skipped"
    assert outcomes["skip"]["duplicate"]["candidates"][0]["id"] == existing["id"]
    assert outcomes["refuse"]["status"] == "error"
    assert outcomes["merge"] == {**outcomes["merge"], "status": "merged", "id": existing["id"]}
    assert one(records, "account", id=existing["id"])["phone"] == "010-1234"
    assert bobs["report"]["rows"][0]["status"] == "error"
    assert "cannot be merged" in bobs["report"]["rows"][0]["errors"][0]["message"]


def test_rows_written_together_keep_every_guarantee(records: Records, imports: Imports) -> None:
    """New records are created a batch at a time (Records.create_many): a row a
    constraint refuses, a row the key table finds, a row repeating another of the same
    batch, each ends as it would alone, and the good rows of the batch are all written,
    with their audit rows, their duplicate keys and autonumbers of their own."""
    taken = records.create(ANN, "account", {"name": "Batch Kept Holdings", "external_id": "BT-0"})
    header = ["Account name", "External ID", "Phone"]
    good = [[f"Batch Co {n:02d}", f"BT-{n}", f"0571-77{n:02d}"] for n in range(1, 9)]
    rows = [header, *good[:3],
            ["Another Batch Co", "BT-0", "0571-7800"],  # external ID taken: unique constraint
            ["BATCH KEPT holdings", "BT-90", "0571-7801"],  # the key table has its name
            *good[3:],
            ["Batch Co 01 Inc.", "BT-91", "0571-7802"]]  # fmt: skip  # repeats row 2's name
    before = count(records, "account")
    for dry, whole in ((True, False), (False, True)):  # a dry run; all or nothing
        tried = imports.run(ANN, "account", csv_bytes(rows), "batch.csv",
                            ImportOptions(batch_size=50, dry_run=dry, all_or_nothing=whole))  # fmt: skip
        assert tried["report"]["committed"] is False and count(records, "account") == before
        assert tried["report"]["counts"] == {**tried["report"]["counts"], "created": 8,
                                             "error": 3}  # fmt: skip
    run = imports.run(ANN, "account", csv_bytes(rows), "batch.csv", ImportOptions(batch_size=50))
    found = rows_of(run)
    assert run["report"]["counts"]["created"] == 8, run["report"]
    assert found[5] == {**found[5], "status": "error"}
    assert found[5]["errors"][0]["field"] == "external_id"
    assert found[5]["errors"][0]["message"] == "Already exists."
    assert found[6]["status"] == "error" and found[6]["duplicate"]["rule"] == "same_name"
    assert found[6]["duplicate"]["candidates"][0]["id"] == taken["id"]
    assert found[12]["status"] == "error" and found[12]["duplicate"]["row"] == 2
    made = [found[n]["id"] for n in (2, 3, 4, 7, 8, 9, 10, 11)]
    table = records.tables.table("account")
    with records.engine.connect() as conn:
        stored = conn.execute(sa.select(table).where(table.c.id.in_(made))).mappings().all()
        audited = conn.scalars(sa.text(
            "SELECT record_id FROM heddle_audit WHERE entity = 'account' AND action = 'create'"
        )).all()  # fmt: skip
        keys = conn.execute(sa.text(
            "SELECT record_id, rule FROM heddle_duplicate_key WHERE entity = 'account'"
        )).all()  # fmt: skip
    assert sorted(r["external_id"] for r in stored) == sorted(f"BT-{n}" for n in range(1, 9))
    assert all(r["owner_id"] == ANN.user_id and r["team_id"] == 1 for r in stored)
    codes = [r["code"] for r in stored]
    assert len(set(codes)) == 8 and all(c.startswith("AC-") for c in codes)
    assert sorted(audited.count(i) for i in made) == [1] * 8
    assert {(i, rule) for i in made for rule in ("same_name", "same_phone")} <= set(keys)
    with pytest.raises(DuplicateFound):  # the keys written with the batch are found
        records.create(BOB, "account", {"name": "batch co 03"})


def test_an_upsert_finds_a_batch_s_records_at_once_and_those_it_made(
    records: Records, imports: Imports
) -> None:
    rows = [["Account name", "External ID", "Grade"], ["Upsert One", "UB-1", "A"],
            ["Upsert Two", "UB-2", "A"], ["Upsert One", "UB-1", "B"]]  # fmt: skip
    options = ImportOptions(mode="upsert", key="external_id", batch_size=10)
    first = imports.run(ANN, "account", csv_bytes(rows), "ub.csv", options)
    assert [r["status"] for r in first["report"]["rows"]] == ["created", "created", "updated"]
    assert one(records, "account", external_id="UB-1")["grade"] == "B"
    again = imports.run(ANN, "account", csv_bytes(rows[:3]), "ub.csv", options)
    assert again["report"]["counts"] == {**again["report"]["counts"], "unchanged": 1,
                                         "updated": 1}  # fmt: skip
    assert count(records, "account", external_id="UB-1") == 1


def test_create_many_gives_each_row_its_record_or_its_refusal(records: Records) -> None:
    made = records.create_many(ANN, "account", [
        {"name": "Many Co A", "grade": "A"},
        {"name": "Many Co B", "grade": "nope"},
        {"name": "Many Co C", "owner_id": 2},
        {"name": "Many Co A."},
    ])  # fmt: skip
    assert isinstance(made[0], dict) and made[0]["grade"] == "A" and made[0]["version"] == 1
    assert isinstance(made[1], ValidationFailed) and "grade" in made[1].fields
    assert isinstance(made[2], ValidationFailed) and "owner_id" in made[2].fields  # not hers
    with pytest.raises(ValidationFailed, match="leave what you may manage"):
        records.create(ANN, "account", {"name": "Many Co C", "owner_id": 2})  # as alone
    assert isinstance(made[3], DuplicateFound)  # repeats the first row: found as alone
    assert count(records, "account", name="Many Co A.") == 0
    given = records.create_many(SYSTEM, "account", [{"name": "Many Co D", "owner_id": 2}])
    assert isinstance(given[0], dict) and (given[0]["owner_id"], given[0]["team_id"]) == (2, 1)
    # the database refuses the batch's write (a user who does not exist, which the checks
    # leave to the foreign key): undone, then each row alone — the good one is written
    refused = records.create_many(SYSTEM, "account", [
        {"name": "Many Co E", "external_id": "MANY-E"}, {"name": "Many Co F", "owner_id": 999},
    ])  # fmt: skip
    assert isinstance(refused[0], dict) and refused[0]["external_id"] == "MANY-E"
    assert isinstance(refused[1], ValidationFailed)
    assert refused[1].fields == {"owner_id": ["No user with id 999."]}
    assert count(records, "account", external_id="MANY-E") == 1


def test_batches_written_at_once_by_two_writers(records: Records) -> None:
    """Two imports at the same moment (PostgreSQL: two connections for real): their
    autonumbers never collide, and of two batches holding the same name under a rule
    that locks its keys, one writes it and the other is refused as its duplicate."""
    if records.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    import threading

    start = threading.Barrier(2)
    made: list[list[Any]] = [[], []]

    def write(slot: int) -> None:
        rows = [{"name": f"Race Co {slot}-{n}"} for n in range(40)] + [{"name": "Race Holdings"}]
        with records.transaction() as conn:
            start.wait()
            made[slot] = records.create_many(ANN, "account", rows, conn=conn)

    threads = [threading.Thread(target=write, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = [r["code"] for results in made for r in results if isinstance(r, dict)]
    assert len(codes) == 81 and len(set(codes)) == 81
    last = [results[-1] for results in made]
    assert sorted(type(r).__name__ for r in last) == ["DuplicateFound", "dict"]
    assert count(records, "account", name="Race Holdings") == 1


def _advisory_locks_here(records: Records) -> int:
    """Advisory locks granted in this test's database (other workers' are elsewhere)."""
    with records.engine.connect() as conn:
        return int(conn.scalar(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND"
            " database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )))  # fmt: skip


@pytest.mark.parametrize("dry", [True, False], ids=["dry run", "all or nothing"])
def test_a_run_of_one_transaction_locks_key_spaces_not_keys(
    records: Records, imports: Imports, dry: bool
) -> None:
    """A dry run or an all-or-nothing run is one transaction for the whole file: it holds
    the key space of the account's claim rule whole — not a lock per name to its end,
    which ran PostgreSQL's shared lock table out at 20,000 accounts — and a dry run,
    undone anyway, locks nothing."""
    if records.dialect != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    tag = "dry" if dry else "whole"
    rows = [["Account name", "Phone"],
            *([f"Spacelock {tag} {n:03d} Trading", f"0571-66{n:04d}"] for n in range(60))]  # fmt: skip
    held: list[int] = []
    run = imports.run(ANN, "account", csv_bytes(rows), "held.csv",
                      ImportOptions(batch_size=20, dry_run=dry, all_or_nothing=not dry),
                      progress=lambda done, total: held.append(_advisory_locks_here(records)))  # fmt: skip
    assert run["report"]["counts"]["created"] == 60
    assert held and set(held) == {0 if dry else 1}, held
    assert count(records, "account", name=f"Spacelock {tag} 000 Trading") == (0 if dry else 1)


def test_a_batch_takes_at_most_its_share_of_locks(records: Records) -> None:
    """Per-row runs lock each key of a rule that locks until their batch commits: a batch
    holds at most LOCKS_PER_BATCH of them, whatever batch_size asks for."""
    sheet = read_sheet(csv_bytes([["Account name"], ["Only Trading"]]), "one.csv")
    plan, _ = prepare(records, ANN, "account", sheet, ImportOptions(batch_size=10_000))
    keys = sum(1 for rule in records.dedupe.of("account") if rule.locks)  # one field each
    assert keys == 1  # the claim rule on the name; the phone's is a warning
    assert Runner(plan).batch_size == LOCKS_PER_BATCH // keys
    plan, _ = prepare(records, ANN, "account", sheet, ImportOptions(batch_size=300))
    assert Runner(plan).batch_size == 300


# --- permissions -------------------------------------------------------------------------------


def test_a_rep_imports_only_what_they_may_write(records: Records, imports: Imports) -> None:
    rows = [
        ["Account name", "Public pool", "Lifetime value"],
        ["Cyberdyne Systems", "Pool A", "99"],
    ]
    run = imports.run(ANN, "account", csv_bytes(rows), "p.csv", ImportOptions(dry_run=True))
    problems = {c["header"]: c.get("problem") for c in run["report"]["mapping"]}
    assert problems["Public pool"] == "pool is read-only"
    assert "computed" in problems["Lifetime value"]
    assert run["report"]["counts"]["created"] == 1  # the other columns were left out
    with pytest.raises(ValidationFailed, match="Public pool") as refused:
        imports.run(ANN, "account", csv_bytes(rows), "p.csv",
                    ImportOptions(mapping={"Public pool": "pool"}))  # fmt: skip
    assert refused.value.fields == {"Public pool": ["pool is read-only"]}
    with pytest.raises(Forbidden, match="import"):
        imports.run(ANN, "product", csv_bytes([["Product name"], ["X"]]), "p.csv", ImportOptions())


# --- resuming after a crash --------------------------------------------------------------------


def test_a_crashed_run_resumes_without_doubling_rows(records: Records, imports: Imports) -> None:
    rows = [["Account name", "External ID"]] + [[f"Resume Co {n}", f"RS-{n}"] for n in range(7)]
    options = ImportOptions(batch_size=3, workers=1)  # several: test_import_processes.py

    def crash(done: int) -> None:
        if done == 3:
            raise Crash()

    with pytest.raises(Crash):
        imports.run(ANN, "account", csv_bytes(rows), "big.csv", options, after_batch=crash)
    with records.engine.connect() as conn:
        run_id = int(conn.scalar(sa.text("SELECT max(id) FROM heddle_import_run")))
    status = imports.status(ANN, run_id)
    assert status["status"] == "running" and status["progress"] == {"done": 3, "total": 7}
    with pytest.raises(Conflict, match="running"):
        imports.resume(run_id)  # its checkpoint is recent: it may be running elsewhere
    imports = Imports(records, stale_seconds=0)  # ... until it is old enough
    assert imports.status(ANN, run_id)["status"] == "interrupted"
    assert count(records, "account") - count(records, "account", external_id=None) >= 3
    imports.resume(run_id)
    done = imports.status(ANN, run_id)
    assert done["status"] == "done" and done["report"]["counts"]["created"] == 7
    for n in range(7):
        assert count(records, "account", external_id=f"RS-{n}") == 1


def test_a_background_run_reports_progress(records: Records, imports: Imports) -> None:
    rows = [["Account name"]] + [[f"Background Co {n}"] for n in range(5)]
    run_id = imports.start(ANN, "account", csv_bytes(rows), "bg.csv", ImportOptions(batch_size=2))
    for _ in range(200):
        status = imports.status(ANN, run_id)
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "done", status
    assert status["progress"] == {"done": 5, "total": 5}
    with pytest.raises(Exception, match="no import run"):
        imports.status(BOB, run_id)  # another user's run is not theirs to see


def test_a_worker_turn_stops_after_its_time_and_the_next_goes_on(
    records: Records, imports: Imports
) -> None:
    """A job runs an import for a while (``execute(seconds=…)``), then leaves it queued
    with its checkpoint for the next job: no row twice, none left out."""
    rows = [["Account name", "External ID"]] + [[f"Turn Co {n}", f"TN-{n}"] for n in range(7)]
    run_id = imports.create(ANN, "account", csv_bytes(rows), "turns.csv",
                            ImportOptions(batch_size=3, workers=1))  # fmt: skip
    assert imports.execute(run_id, seconds=0) is False  # one batch, then its time is up
    paused = imports.status(ANN, run_id)
    assert paused["status"] == "queued" and paused["progress"] == {"done": 3, "total": 7}
    assert imports.execute(run_id, seconds=0) is False
    assert imports.execute(run_id) is True
    done = imports.status(ANN, run_id)
    assert done["status"] == "done" and done["report"]["counts"]["created"] == 7
    assert [count(records, "account", external_id=f"TN-{n}") for n in range(7)] == [1] * 7


# --- export --------------------------------------------------------------------------------------


def test_export_then_import_changes_what_was_edited(records: Records, imports: Imports) -> None:
    content = imports.export(ANN, "account", {"external_id__startswith": "UP-"}, "csv")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    header = table[0]
    assert header[:3] == ["ID", "客户名称", "外部编号"]  # ann reads Chinese
    grade = header.index("客户等级")
    assert {row[grade] for row in table[1:]} >= {"A类（重点客户）"}
    wayne = next(row for row in table[1:] if row[2] == "UP-1")
    wayne[header.index("城市")] = "Gotham"
    run = imports.run(
        ANN, "account", csv_bytes(table), "back.csv", ImportOptions(mode="update", key="id")
    )
    counts = run["report"]["counts"]
    assert (
        counts["updated"] == 1 and counts["unchanged"] == len(table) - 2 and counts["error"] == 0
    ), run
    assert one(records, "account", external_id="UP-1")["city"] == "Gotham"

    book = load_workbook(io.BytesIO(imports.export(BOB, "account", {"sort": "name"}, "xlsx")))
    cells = list(book.active.iter_rows(values_only=True))
    assert cells[0][1] == "顧客名"  # bob reads Japanese
    revenue = cells[0].index("年間売上高")
    assert all(
        isinstance(r[revenue], int | float | Decimal) for r in cells[1:] if r[revenue] is not None
    )
    assert any(r[revenue] is not None for r in cells[1:])
    with pytest.raises(Forbidden, match="export"):
        imports.export(ANN, "product", {}, "csv")

    # JSON out and back in: the API's values, field names as keys
    data = json.loads(imports.export(ANN, "account", {"external_id": "UP-2"}, "json"))
    assert data[0]["grade"] == "C" and "cost" not in data[0]
    data[0]["grade"] = "特级"
    back = json.dumps(data, ensure_ascii=False).encode()
    run = imports.run(ANN, "account", back, "back.json", ImportOptions(
        mode="update", key="id", value_map={"grade": {"特级": "A"}}))  # fmt: skip
    assert run["report"]["counts"]["updated"] == 1, run["report"]["rows"]
    assert one(records, "account", external_id="UP-2")["grade"] == "A"


def test_export_leaves_out_hidden_fields(
    records: Records, imports: Imports, crm: Model, tmp_path: Path
) -> None:
    manager = Actor(user_id=1, team_id=1, roles=frozenset({"finance"}), locale="en")
    grant = records.permissions.grant(manager, crm.entity("account"), "read")
    product = {"name": "Export probe", "code": "P-EXP", "list_price": "10.00", "cost": "6.00"}
    records.create(SYSTEM, "product", product)  # its own: not another test's products
    exported = imports.export(SYSTEM, "product", {}, "json")
    assert b'"cost"' in exported  # the admin sees cost
    # a role that may export products but not see their cost (made for this test)
    from dataclasses import replace

    from metamodel import Permission

    rep_role = crm.roles["sales_rep"]
    role = replace(rep_role, permissions={**rep_role.permissions, "product": Permission(
        read="all", export="all", fields={"cost": "hidden"})})  # fmt: skip
    model = replace(crm, roles={**crm.roles, "sales_rep": role})
    other = Records(records.engine, model, tables=build_tables(model))
    assert grant is not None
    content = Imports(other).export(ANN, "product", {}, "json").decode()
    assert '"list_price"' in content and '"cost"' not in content
    sheet = Imports(other).export(ANN, "product", {}, "csv").decode("utf-8-sig")
    assert "成本价" not in sheet and "标准价格" in sheet


# --- every table at once -------------------------------------------------------------------------


def test_export_all_restores_an_empty_deployment_to_the_same_data(
    records: Records, crm: Model, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "export"
    written = export_all(records.engine, records.tables, source)
    assert written["account"] > 10 and written["heddle_user"] == 3 and written["quote_line"] == 2
    if records.dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'restored.db'}"
        server = None
    else:
        name = f"heddle_test_restore_{secrets.token_hex(4)}"
        server = sa.create_engine(make_url(request.getfixturevalue("pg_url")).set(
            database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)  # fmt: skip
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(request.getfixturevalue("pg_url")).set(database=name).render_as_string(
            hide_password=False)  # fmt: skip
    target = connect(url)
    try:
        migrate(target, crm)
        tables = build_tables(crm)
        restored = import_all(target, tables, source)
        assert restored["account"] == written["account"]
        again = tmp_path / "again"
        export_all(target, tables, again)
        for path in sorted(source.glob("*.jsonl")):
            if path.name != "heddle_schema_history.jsonl":
                assert (again / path.name).read_text() == path.read_text(), path.name
        with pytest.raises(Conflict, match="not empty"):
            import_all(target, tables, source)  # once is enough: nothing is doubled
        # the restored deployment goes on: new ids after the restored ones
        later = Records(target, crm, tables=tables).create(SYSTEM, "account", {"name": "After"})
        lines = (source / "account.jsonl").read_text(encoding="utf-8").splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert later["id"] > max(ids)
    finally:
        target.dispose()
        if server is not None:
            with server.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            server.dispose()


def test_full_collections_wait_while_an_import_runs(records: Records, imports: Imports) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []
    rows = [["Account name", "External ID"], *([f"GC {n}", f"GC-{n}"] for n in range(5))]
    run = imports.run(ANN, "account", csv_bytes(rows), "gc.csv", ImportOptions(batch_size=2),
                      after_batch=lambda done: during.append(gc.get_threshold()))  # fmt: skip
    assert run["report"]["counts"]["created"] == 5
    assert len(during) == 3 and all(oldest >= FULL_AFTER for _, _, oldest in during)
    assert gc.get_threshold() == before  # put back once the run is over
    with pytest.raises(BadFile):
        imports.run(ANN, "account", b"", "empty.csv", ImportOptions())
    assert gc.get_threshold() == before  # and after a refusal
    with fewer_full_collections():  # two runs at once: the first one out leaves them
        with pytest.raises(ZeroDivisionError), fewer_full_collections():
            print(1 / 0)
        assert gc.get_threshold()[2] >= FULL_AFTER
    assert gc.get_threshold() == before
