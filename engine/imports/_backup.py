"""Every table at once: ``heddle export --all DIR`` and ``heddle import --all DIR``.

A deployment's data — every entity's records with their ids, autonumbers and rollups,
users, teams, tokens, the definitions migrated (customizations: the schema history),
audit history, counters — is written as one JSON Lines file per table with a manifest,
and read back into an empty deployment migrated to the same definitions, to the same
rows. Rows go in dependency order; references between rows of the same or of later tables
are written in a second pass, so cycles (a parent account, a user's manager) need no
ordering. On PostgreSQL the id sequences are moved past the restored ids.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..dedupe import RuleSet, rebuild
from ..errors import Conflict
from ..migrations import applied_hash
from ..tables import DUPLICATE_KEY_TABLE, DUPLICATE_RULE_TABLE, HISTORY_TABLE, Tables

MANIFEST = "manifest.json"
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


def export_all(engine: sa.Engine, tables: Tables, folder: Path) -> dict[str, int]:
    """Write every table of ``tables`` to ``folder``; the rows written, by table."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for table in _saved(tables):
            key = table.primary_key.columns.values()
            count = 0
            with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
                for row in conn.execute(sa.select(table).order_by(*key)).mappings():
                    out.write(json.dumps({k: _plain(v) for k, v in row.items()},
                                         ensure_ascii=False) + "\n")  # fmt: skip
                    count += 1
            counts[table.name] = count
    manifest = {"format": FORMAT, "model_hash": tables.model.hash,
                "exported_at": dt.datetime.now(dt.UTC).isoformat(), "tables": counts}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return counts


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


def import_all(engine: sa.Engine, tables: Tables, folder: Path) -> dict[str, int]:
    """Restore ``folder`` (written by :func:`export_all`) into an empty database migrated
    to the same definitions; the rows restored, by table. Refused (nothing written) when
    the database holds records or users, or was migrated to other definitions."""
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
        for rule in RuleSet(tables.model):  # the duplicate keys of the rows restored
            rebuild(conn, tables, rule)
        if engine.dialect.name == "postgresql":
            for table in order:
                column = table.c.get("id")
                if column is not None and column.autoincrement is True and counts.get(table.name):
                    conn.execute(sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"))  # fmt: skip
    return counts
