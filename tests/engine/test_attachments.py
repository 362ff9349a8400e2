"""Attachments (engine.attachments): stored by SHA-256, sniffed, named safely, checked
against the record's permissions and the file field's rules, archived with the record."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import (
    Conflict,
    EventBus,
    Forbidden,
    NotFound,
    Records,
    ValidationFailed,
    build_tables,
    migrate,
)
from engine.attachments import (
    ATTACHMENT_TABLE,
    Attachments,
    FileStore,
    TooLarge,
    ascii_filename,
    attach,
    clean_filename,
    sniff,
)
from engine.context import Actor
from engine.imports import export_all, import_all
from engine.tables import USER_TABLE
from metamodel import load_packages

PACKAGE = """\
kind: package
name: files
---
kind: role
name: rep
permissions:
  contract: {read: all, create: all, update: own, delete: own}
  expense: {read: all, create: all, update: all, delete: all}
---
kind: entity
name: contract
ownable: true
fields:
  title: {type: string, required: true}
  scan: {type: file, accept: [application/pdf, image/*], max_size: 2000}
---
kind: entity
name: expense
fields:
  purpose: {type: string}
  receipts: {type: file, multiple: true}
"""

PDF = b"%PDF-1.4\n% a small contract scan\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
ANN = Actor(user_id=1, roles=frozenset({"rep"}))
BOB = Actor(user_id=2, roles=frozenset({"rep"}))


@pytest.fixture
def setup(db_engine: Engine, tmp_path: Path) -> tuple[Records, Attachments]:
    source = tmp_path / "files.yaml"
    source.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    model = load_packages([source])
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    now = dt.datetime.now(dt.UTC)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [
                {"username": "ann", "name": "Ann 安", "roles": ["rep"], "created_at": now},
                {"username": "bob", "name": "", "roles": ["rep"], "created_at": now},
            ],
        )
    bus = EventBus()
    attach(bus)
    records = Records(db_engine, model, tables=tables, events=bus)
    return records, Attachments(records, FileStore(tmp_path / "store"), max_bytes=4096)


def test_upload_list_download_and_dedupe(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    contract = records.create(ANN, "contract", {"title": "Supply", "owner_id": 1})
    first = files.add(ANN, "contract", contract["id"], "合同 扫描件.pdf", PDF)
    second = files.add(ANN, "contract", contract["id"], "copy.pdf", PDF)
    assert first["sha256"] == second["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert first["content_type"] == "application/pdf" and first["size"] == len(PDF)
    stored = list((files.store.root).rglob("*"))
    assert [p.name for p in stored if p.is_file()] == [first["sha256"]]  # kept once
    listed = files.list(BOB, "contract", contract["id"])
    assert [row["filename"] for row in listed] == ["copy.pdf", "合同 扫描件.pdf"]
    assert listed[0]["uploader"] == "Ann 安" and listed[0]["size"] == len(PDF)
    row, path = files.get(BOB, "contract", contract["id"], first["id"])
    assert path.read_bytes() == PDF and row["filename"] == "合同 扫描件.pdf"


def test_permissions_and_wrong_record(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    mine = records.create(ANN, "contract", {"title": "Mine", "owner_id": 1})
    other = records.create(ANN, "contract", {"title": "Other", "owner_id": 1})
    with pytest.raises(Forbidden):  # bob reads all contracts but updates his own only
        files.add(BOB, "contract", mine["id"], "x.pdf", PDF)
    kept = files.add(ANN, "contract", mine["id"], "x.pdf", PDF)
    with pytest.raises(Forbidden):
        files.remove(BOB, "contract", mine["id"], kept["id"])
    with pytest.raises(NotFound):  # an attachment of another record is not this one's
        files.get(ANN, "contract", other["id"], kept["id"])
    with pytest.raises(NotFound):
        files.list(ANN, "contract", 999)
    with pytest.raises(NotFound):  # no such record, however large the file
        files.add(ANN, "contract", 999, "x.pdf", PDF * 1000)
    files.remove(ANN, "contract", mine["id"], kept["id"])
    assert files.list(ANN, "contract", mine["id"]) == []
    with pytest.raises(NotFound):
        files.get(ANN, "contract", mine["id"], kept["id"])


def test_limits_and_accepted_types(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    contract = records.create(ANN, "contract", {"title": "Supply", "owner_id": 1})
    with pytest.raises(TooLarge) as too_big:
        files.add(ANN, "contract", contract["id"], "big.bin", b"x" * 4097)
    assert too_big.value.status == 413
    with pytest.raises(TooLarge):  # the field's max_size is lower than the platform's
        files.add(ANN, "contract", contract["id"], "big.pdf", PDF + b" " * 2000, field="scan")
    with pytest.raises(ValidationFailed) as wrong:  # named .pdf, but it is a web page
        files.add(
            ANN, "contract", contract["id"], "scan.pdf", b"<html><script>x</script>", field="scan"
        )
    assert "text/html" in wrong.value.message
    with pytest.raises(ValidationFailed):
        files.add(ANN, "contract", contract["id"], "a.pdf", PDF, field="title")
    assert (
        files.add(ANN, "contract", contract["id"], "p.png", PNG, field="scan")["content_type"]
        == "image/png"
    )


def test_file_field_takes_uploaded_ids(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    staged = files.add(ANN, "contract", None, "scan.pdf", PDF, field="scan")
    with pytest.raises(ValidationFailed) as foreign:  # staged by ann: not bob's to use
        records.create(BOB, "contract", {"title": "T", "scan": staged["id"]})
    assert "scan" in foreign.value.fields
    contract = records.create(ANN, "contract", {"title": "T", "owner_id": 1, "scan": staged["id"]})
    assert contract["scan"] == staged["id"]
    assert [r["id"] for r in files.list(ANN, "contract", contract["id"])] == [staged["id"]]
    other = records.create(ANN, "contract", {"title": "U", "owner_id": 1})
    with pytest.raises(ValidationFailed):  # bound to the first contract now
        records.update(ANN, "contract", other["id"], {"scan": staged["id"]}, version=1)
    with pytest.raises(ValidationFailed):  # an id nobody uploaded
        records.update(ANN, "contract", other["id"], {"scan": 424242}, version=1)
    with pytest.raises(Exception, match="holds this file"):
        files.remove(ANN, "contract", contract["id"], staged["id"])
    expense = records.create(ANN, "expense", {"purpose": "Taxi"})
    receipts = [
        files.add(ANN, "expense", expense["id"], f"r{n}.png", PNG + bytes([n]), field="receipts")[
            "id"
        ]
        for n in range(2)
    ]
    changed = records.update(ANN, "expense", expense["id"], {"receipts": receipts}, version=1)
    assert changed["receipts"] == receipts


def test_deleting_the_record_archives_its_files(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    contract = records.create(ANN, "contract", {"title": "Gone", "owner_id": 1})
    kept = files.add(ANN, "contract", contract["id"], "a.pdf", PDF)
    records.delete(ANN, "contract", contract["id"], version=1)
    table = records.tables.metadata.tables[ATTACHMENT_TABLE]
    with records.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == kept["id"])).mappings().one()
    assert row["archived_at"] is not None and row["record_id"] == contract["id"]
    assert files.store.has(row["sha256"])  # archived, not erased


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\报价单 2024.xlsx", "报价单 2024.xlsx"),
        ("見積書\u202egpj.exe", "見積書gpj.exe"),  # a right-to-left override removed
        ("  .hidden\tname\n.txt ", "hidden name .txt"),
        ("<script>alert(1)</script>.txt", "script>.txt"),  # a "/" always separates folders
        ("<script>alert(1).txt", "<script>alert(1).txt"),  # kept: shown as text
        ("", "file"),
        ("...", "file"),
        ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
    ],
)
def test_clean_filename(given: str, kept: str) -> None:
    assert clean_filename(given) == kept


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (PDF, "x.txt", "application/pdf"),
        (PNG, "x.pdf", "image/png"),
        (
            b"PK\x03\x04rest",
            "book.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (b"<!DOCTYPE html><p>hi", "note.txt", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.png", "image/svg+xml"),
        ("名前,金額\n安,1\n".encode(), "list.csv", "text/csv"),
        ("見積もり".encode("shift_jis"), "memo.txt", "text/plain"),
        (b"\x00\x01\x02binary", "x.bin", "application/octet-stream"),
    ],
)
def test_sniff(data: bytes, name: str, expected: str) -> None:
    assert sniff(data, name) == expected


def test_ascii_fallback_name() -> None:
    assert ascii_filename('合同"x".pdf') == "___x_.pdf"
    assert ascii_filename("") == "file"


def test_export_all_and_import_all_carry_the_files(
    setup: tuple[Records, Attachments], tmp_path: Path
) -> None:
    records, files = setup
    staged = files.add(ANN, "contract", None, "扫描件.pdf", PDF, field="scan")
    contract = records.create(ANN, "contract", {"title": "T", "owner_id": 1, "scan": staged["id"]})
    note = files.add(ANN, "contract", contract["id"], "メモ.txt", "見積もり".encode())
    gone = records.create(ANN, "contract", {"title": "Gone", "owner_id": 1})
    files.add(ANN, "contract", gone["id"], "old.png", PNG)
    records.delete(ANN, "contract", gone["id"], version=1)  # archived, still backed up
    before = files.list(ANN, "contract", contract["id"])

    folder = tmp_path / "backup"
    written = export_all(records.engine, records.tables, folder, files.store)
    assert written[ATTACHMENT_TABLE] == 3
    assert sorted(p.name for p in (folder / "attachments").iterdir()) == sorted(
        hashlib.sha256(b).hexdigest() for b in (PDF, "見積もり".encode(), PNG)
    )

    # a new deployment: the same definitions, an empty database and an empty store
    records.tables.metadata.drop_all(records.engine)
    migrate(records.engine, records.model)
    restored_store = FileStore(tmp_path / "restored")
    with pytest.raises(Conflict, match="attachments"):  # the files need somewhere to go
        import_all(records.engine, records.tables, folder)
    import_all(records.engine, records.tables, folder, restored_store)
    again = Attachments(records, restored_store, max_bytes=4096)
    assert again.list(ANN, "contract", contract["id"]) == before
    row, path = again.get(ANN, "contract", contract["id"], note["id"])
    assert path.read_bytes() == "見積もり".encode() and row["filename"] == "メモ.txt"
    assert records.get(ANN, "contract", contract["id"])["scan"] == staged["id"]

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    (tampered / "attachments" / hashlib.sha256(PNG).hexdigest()).write_bytes(b"evil")
    with pytest.raises(Conflict, match="altered"):  # checked before anything is written
        import_all(records.engine, records.tables, tampered, restored_store)


def test_a_merge_hands_the_losers_files_to_the_survivor(
    setup: tuple[Records, Attachments],
) -> None:
    records, files = setup
    survivor = records.create(ANN, "contract", {"title": "Kept", "owner_id": 1})
    staged = files.add(ANN, "contract", None, "scan.pdf", PDF, field="scan")
    loser = records.create(ANN, "contract", {"title": "Twin", "owner_id": 1, "scan": staged["id"]})
    note = files.add(ANN, "contract", loser["id"], "note.txt", b"call back")
    removed = files.add(ANN, "contract", loser["id"], "old.txt", b"old")
    files.remove(ANN, "contract", loser["id"], removed["id"])
    merged = records.merge(ANN, "contract", survivor["id"], loser["id"], version=1, loser_version=1)
    assert merged["scan"] == staged["id"]  # the survivor had none: it takes the loser's
    kept = files.list(ANN, "contract", survivor["id"])
    assert {row["id"] for row in kept} == {staged["id"], note["id"]}  # not the removed one


def test_staged_files_left_unused_are_archived(setup: tuple[Records, Attachments]) -> None:
    records, files = setup
    old = files.add(ANN, "contract", None, "abandoned.pdf", PDF, field="scan")
    table = records.tables.metadata.tables[ATTACHMENT_TABLE]
    with records.engine.begin() as conn:  # as if uploaded two days ago
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        conn.execute(table.update().where(table.c.id == old["id"]).values(uploaded_at=earlier))
    fresh = files.add(ANN, "contract", None, "today.pdf", PDF, field="scan")
    with pytest.raises(ValidationFailed):  # archived when ann staged the next one
        records.create(ANN, "contract", {"title": "T", "owner_id": 1, "scan": old["id"]})
    made = records.create(ANN, "contract", {"title": "T", "owner_id": 1, "scan": fresh["id"]})
    assert made["scan"] == fresh["id"]
