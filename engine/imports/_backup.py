"""Every table at once: ``heddle export --all DIR`` and ``heddle import --all DIR``.

A deployment's data — every entity's records with their ids, autonumbers and rollups,
users, teams, tokens, the definitions migrated (customizations: the schema history),
audit history, counters — is written as one JSON Lines file per table with a manifest,
and read back into an empty deployment migrated to the same definitions, to the same
rows. Rows go in dependency order; references between rows of the same or of later tables
are written in a second pass, so cycles (a parent account, a user's manager) need no
ordering. On PostgreSQL the id sequences, and the autonumbers' (:mod:`engine.counters`), are
moved past the restored ids and numbers.

Attachments go with their rows: given the :class:`~engine.attachments.FileStore`, the
export copies the bytes of every attachment (removed ones too: a restore of the record
brings them back) to ``attachments/<sha256>``, and the restore checks each file against
its digest before anything is written, then puts it back in the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..attachments import ATTACHMENT_TABLE, FileStore
from ..counters import Counters
from ..dedupe import RuleSet, rebuild
from ..errors import Conflict
from ..migrations import applied_hash
from ..tables import (
    DUPLICATE_KEY_TABLE,
    DUPLICATE_RULE_TABLE,
    HISTORY_TABLE,
    SEQUENCE_TABLE,
    Tables,
)

MANIFEST = "manifest.json"
FILES = "attachments"  # the folder of an export that holds the attachments' bytes
FORMAT = 1
CHUNK = 1000


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    return value


def _typed(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$decimal":
            return Decimal(inner)
        if key == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if key == "$date":
            return dt.date.fromisoformat(inner)
        if key == "$bytes":
            return base64.b64decode(inner)
    return value


def _order(tables: Tables) -> list[sa.Table]:
    """Tables with those they refer to first (cycles are broken by the second pass)."""
    done: list[sa.Table] = []
    seen: set[str] = set()

    def visit(table: sa.Table, path: frozenset[str]) -> None:
        if table.name in seen or table.name in path:
            return
        for key in table.foreign_keys:
            target = key.column.table
            if target is not table and isinstance(target, sa.Table):
                visit(target, path | {table.name})
        seen.add(table.name)
        done.append(table)

    for table in tables.metadata.tables.values():
        visit(table, frozenset())
    return done


#: Tables derived from the records, not exported: migrate writes the duplicate rules'
#: fingerprints, and a restore rebuilds their keys from the rows it restores.
DERIVED = frozenset({DUPLICATE_KEY_TABLE, DUPLICATE_RULE_TABLE})


def _saved(tables: Tables) -> list[sa.Table]:
    return [t for t in _order(tables) if t.name not in DERIVED]


def export_all(
    engine: sa.Engine, tables: Tables, folder: Path, files: FileStore | None = None
) -> dict[str, int]:
    """Write every table of ``tables`` to ``folder``, and the attachments' bytes from
    ``files``; the rows written, by table."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    copied = 0
    with engine.connect() as conn:
        # on PostgreSQL an autonumber's counter is a sequence: its rows get their values
        given = Counters(tables, engine.dialect.name).values(conn)
        for table in _saved(tables):
            key = table.primary_key.columns.values()
            count = 0
            with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
                for found in conn.execute(sa.select(table).order_by(*key)).mappings():
                    row = dict(found)
                    if table.name == SEQUENCE_TABLE:
                        row["value"] = given.get(row["name"], row["value"])
                    out.write(json.dumps({k: _plain(v) for k, v in row.items()},
                                         ensure_ascii=False) + "\n")  # fmt: skip
                    count += 1
            counts[table.name] = count
        if files is not None:  # after the rows: every row written finds its file
            copied = _export_files(conn, tables, files, folder / FILES)
    manifest = {"format": FORMAT, "model_hash": tables.model.hash,
                "exported_at": dt.datetime.now(dt.UTC).isoformat(), "tables": counts,
                "attachment_files": copied}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return counts


def _digests(conn: sa.Connection, tables: Tables) -> list[str]:
    table = tables.metadata.tables[ATTACHMENT_TABLE]
    return list(conn.scalars(sa.select(table.c.sha256).distinct().order_by(table.c.sha256)))


def _export_files(conn: sa.Connection, tables: Tables, files: FileStore, target: Path) -> int:
    """Copy the bytes of every attachment into ``target``; refused when one is missing
    from the store (a backup without it would not restore)."""
    digests = _digests(conn, tables)
    missing = [d for d in digests if not files.has(d)]
    if missing:
        raise Conflict(
            f"{len(missing)} attachment file(s) are missing from {files.root} (first: "
            f"{missing[0]}): copy the attachments folder back, or export without files"
        )
    target.mkdir(parents=True, exist_ok=True)
    for digest in digests:
        shutil.copyfile(files.path(digest), target / digest)
    return len(digests)


def _restore_files(folder: Path, files: FileStore | None) -> list[Path]:
    """The attachment files of an export, each checked against its name (its SHA-256);
    refused before anything is written when one is missing or altered, or when the export
    has files and no store is given."""
    rows = folder / f"{ATTACHMENT_TABLE}.jsonl"
    wanted = sorted({str(row["sha256"]) for row in _rows(rows)}) if rows.is_file() else []
    if not wanted:
        return []
    if files is None:
        raise Conflict("the export holds attachments: give the attachments folder to restore")
    found = []
    for digest in wanted:
        path = folder / FILES / digest
        if not path.is_file():
            raise Conflict(f"the export lacks the file of attachment {digest} in {FILES}/")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise Conflict(f"{FILES}/{digest} in the export is not the file it names: altered")
        found.append(path)
    return found


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield {k: _typed(v) for k, v in json.loads(line).items()}


def _later(table: sa.Table, placed: set[str]) -> list[str]:
    """The columns of ``table`` referring to rows that may not be there yet: its own
    table's, or a table restored after it."""
    return [
        c.name for c in table.columns
        for key in c.foreign_keys
        if key.column.table is table or key.column.table.name not in placed
    ]  # fmt: skip


def import_all(
    engine: sa.Engine, tables: Tables, folder: Path, files: FileStore | None = None
) -> dict[str, int]:
    """Restore ``folder`` (written by :func:`export_all`) into an empty database migrated
    to the same definitions, and its attachments' bytes into ``files``; the rows restored,
    by table. Refused (nothing written) when the database holds records or users, was
    migrated to other definitions, or an attachment's file is missing or altered."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise Conflict(f"{folder} is not an export: it has no {MANIFEST}")
    manifest: Mapping[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("model_hash") != applied_hash(engine):
        raise Conflict(
            "the database is not migrated to the definitions of the export (model "
            f"{str(manifest.get('model_hash'))[:12]}): migrate it to the same definitions first"
        )
    counts: dict[str, int] = {}
    order = _saved(tables)
    blobs = _restore_files(folder, files)
    with engine.begin() as conn:
        for table in order:
            if table.name == HISTORY_TABLE:
                continue
            if conn.scalar(sa.select(sa.func.count()).select_from(table)):
                raise Conflict(f"the database is not empty ({table.name} has rows): restore "
                               "into a new deployment")  # fmt: skip
        history = tables.metadata.tables[HISTORY_TABLE]
        kept = folder / f"{HISTORY_TABLE}.jsonl"
        if kept.is_file() and kept.stat().st_size:
            conn.execute(history.delete())  # the export's definitions and their history
        placed: set[str] = set()
        pending: list[tuple[sa.Table, list[str], list[dict[str, Any]]]] = []
        for table in order:
            path = folder / f"{table.name}.jsonl"
            if not path.is_file() or not path.stat().st_size:
                continue
            later = _later(table, placed)
            links: list[dict[str, Any]] = []
            batch: list[dict[str, Any]] = []
            count = 0
            for row in _rows(path):
                row = {k: v for k, v in row.items() if k in table.c}
                if later and any(row.get(c) is not None for c in later):
                    links.append({"_id": row["id"], **{c: row.get(c) for c in later}})
                    row.update(dict.fromkeys(later))
                batch.append(row)
                if len(batch) == CHUNK:
                    conn.execute(table.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
                count += len(batch)
            counts[table.name] = count
            placed.add(table.name)
            if links:
                pending.append((table, later, links))
        for table, later, links in pending:  # the references held back
            update = (
                table.update()
                .where(table.c.id == sa.bindparam("_id"))
                .values({c: sa.bindparam(c) for c in later})
            )
            conn.execute(update, links)
        if files is not None:  # in the transaction: a failure leaves no rows behind
            for blob in blobs:
                files.put(blob.read_bytes())
        for rule in RuleSet(tables.model):  # the duplicate keys of the rows restored
            rebuild(conn, tables, rule)
        counters = Counters(tables, engine.dialect.name)
        restored = conn.execute(sa.select(counters.table.c.name, counters.table.c.value))
        counters.restored(conn, [(str(name), int(value)) for name, value in restored])
        if engine.dialect.name == "postgresql":
            for table in order:
                column = table.c.get("id")
                if column is not None and column.autoincrement is True and counts.get(table.name):
                    conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"))  # fmt: skip
    return counts
