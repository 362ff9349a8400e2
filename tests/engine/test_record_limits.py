"""Limits the record service keeps on SQLite and PostgreSQL alike: unique values under a
race between two transactions, and decimals that read back exactly as they were written."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.context import SYSTEM
from engine.errors import Conflict, ValidationFailed
from engine.records import Records
from engine.records._validate import Validator
from engine.tables import build_tables
from metamodel import load_packages

LIMITS = """\
kind: package
name: limits
---
kind: entity
name: ledger
fields:
  number: {type: autonumber, format: "L-{seq:04}"}
  code: {type: string, unique: true}
  region: {type: string}
  year: {type: integer}
  amount: {type: money}
  rate: {type: decimal}
  yen: {type: money, scale: 0}
  fine: {type: decimal, precision: 38, scale: 18}
  share: {type: percent}
  total: {type: rollup, of: entry, via: ledger, aggregate: sum, field: amount}
indexes:
  - name: one_per_region_and_year
    fields: [region, year]
    unique: true
---
kind: entity
name: entry
fields:
  ledger: {type: reference, to: ledger, required: true, on_delete: cascade}
  amount: {type: money, required: true}
"""

Rival = Callable[[sa.Connection], None]


class RacedValidator(Validator):
    """A validator before whose guarded write a rival writes, once: the interleaving of
    two transactions that both pass the checks before either writes."""

    rival: Rival | None = None

    def guarded_write(self, conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival(conn)
        return super().guarded_write(conn, *args, **kwargs)


class RacedRecords(Records):
    """Records whose validator lets a rival write right after the unique check."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validator = self.writer.validator = RacedValidator(
            self.tables, self.dialect, self.computer, self.permissions, self.reader.connect
        )

    @property
    def rival(self) -> Rival | None:
        return self.validator.rival  # type: ignore[attr-defined,no-any-return]

    @rival.setter
    def rival(self, value: Rival | None) -> None:
        self.validator.rival = value  # type: ignore[attr-defined]


@pytest.fixture
def ledgers(db_engine: Engine, tmp_path: Path) -> RacedRecords:
    path = tmp_path / "limits.yaml"
    path.write_text(textwrap.dedent(LIMITS), encoding="utf-8")
    model = load_packages([path])
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    return RacedRecords(db_engine, model, tables=tables)


def rival_inserts(records: Records, **values: Any) -> Rival:
    """A rival that inserts a ledger with ``values`` and commits.

    On PostgreSQL it is another transaction, which commits before the checked write. SQLite
    lets one writer at a time (the checked transaction holds the lock), so there the rival's
    row appears inside the same transaction: still after the check, before the write.
    """
    table = records.tables.table("ledger")
    now = dt.datetime.now(dt.UTC)
    insert = table.insert().values(created_at=now, updated_at=now, **values)

    def write(conn: sa.Connection) -> None:
        if conn.dialect.name == "sqlite":
            conn.execute(insert)
        else:
            with records.engine.begin() as other:
                other.execute(insert)

    return write


def errors_of(call: Callable[[], Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    assert caught.value.status == 422
    return caught.value.fields


def codes(records: Records) -> list[str]:
    table = records.tables.table("ledger")
    with records.engine.connect() as conn:
        return list(conn.scalars(sa.select(table.c.code).order_by(table.c.code)))


# --- unique values under a race ----------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "data", "expected"),
    [
        ({"code": "A"}, {"code": "A"}, {"code": ["Already exists."]}),
        (
            {"region": "east", "year": 2025},
            {"region": "east", "year": 2025},
            {"region": ["This combination of region, year already exists."]},
        ),
    ],
    ids=["field", "index"],
)
def test_a_unique_value_taken_after_the_check_is_a_field_error_on_create(
    ledgers: RacedRecords,
    taken: dict[str, Any],
    data: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    ledgers.rival = rival_inserts(ledgers, **taken)
    assert errors_of(lambda: ledgers.create(SYSTEM, "ledger", data)) == expected


def test_the_transaction_stays_usable_after_the_refused_write(ledgers: RacedRecords) -> None:
    with ledgers.transaction() as conn:
        ledgers.rival = rival_inserts(ledgers, code="A")
        found = errors_of(lambda: ledgers.create(SYSTEM, "ledger", {"code": "A"}, conn=conn))
        assert found == {"code": ["Already exists."]}
        ledgers.create(SYSTEM, "ledger", {"code": "B"}, conn=conn)
    assert codes(ledgers) == ["A", "B"]  # the rival's and the second one


def test_a_unique_value_taken_after_the_check_is_a_field_error_on_update(
    ledgers: RacedRecords,
) -> None:
    ledger = ledgers.create(SYSTEM, "ledger", {"code": "A"})
    ledgers.rival = rival_inserts(ledgers, code="B")
    found = errors_of(
        lambda: ledgers.update(SYSTEM, "ledger", ledger["id"], {"code": "B"}, version=1)
    )
    assert found == {"code": ["Already exists."]}
    kept = ledgers.get(SYSTEM, "ledger", ledger["id"])
    assert (kept["code"], kept["version"]) == ("A", 1)


def test_an_autonumber_a_rival_took_is_a_conflict(ledgers: RacedRecords) -> None:
    # the rival takes the autonumber the write will use: no field of the client's is at
    # fault, so no field error — a conflict naming the number's field, not a crash
    ledgers.rival = rival_inserts(ledgers, number="L-0001")
    with pytest.raises(Conflict) as clash:
        ledgers.create(SYSTEM, "ledger", {"code": "A"})
    assert clash.value.status == 409 and clash.value.details["field"] == "number"


# --- decimals on SQLite's doubles and PostgreSQL's numerics ------------------------------

#: field -> the largest value SQLite stores exactly (15 digits in all), and the largest the
#: declared precision allows (what PostgreSQL stores).
LARGEST = {
    "amount": ("9999999999999.99", "9999999999999999.99"),  # money: precision 18, scale 2
    "rate": ("999999999.999999", "999999999999.999999"),  # decimal: 18, 6
    "yen": ("999999999999999", "999999999999999999"),  # money, scale 0: 18, 0
    "fine": ("0.000999999999999999", "99999999999999999999.999999999999999999"),  # 38, 18
    "share": ("9999999.99", "9999999.99"),  # percent: 9, 2, within a double's digits
}

SQLITE_REFUSES = {
    "amount": "at most 13 digits before the point",
    "rate": "at most 9 digits before the point",
    "yen": "at most 15 digits before the point",
    "fine": "less than 0.001",
}

#: Values every database stores exactly: at SQLite's limit, and the ones doubles get wrong
#: when they are one digit longer.
EVERYWHERE = [
    ("amount", "1234567890123.45"),
    ("amount", "-9999999999999.99"),
    ("amount", "0.01"),
    ("amount", "0"),
    ("rate", "0.000001"),
    ("rate", "123456789.123456"),
    ("yen", "-999999999999999"),
    ("fine", "0.000000000000000001"),
    ("fine", "0.000123456789012345"),
    ("share", "-0.01"),
    *((name, largest) for name, (largest, _) in LARGEST.items()),
]

#: Values beyond 15 digits: refused on SQLite (a double would round them), kept exactly on
#: PostgreSQL up to the declared precision.
BEYOND_A_DOUBLE = [
    ("amount", "10000000000000"),
    ("amount", "99999999999999.9"),  # a double reads it back as ….91
    ("amount", "1234567890123456.78"),  # … as ….75
    ("amount", "-9999999999999999.99"),  # … as 10000000000000000.00
    ("rate", "1000000000"),
    ("yen", "1000000000000000"),
    ("fine", "0.001"),
    ("fine", "-12345678901234567890.123456789012345678"),
    *((name, largest) for name, (_, largest) in LARGEST.items() if name in SQLITE_REFUSES),
]


def sqlite_message(field: str) -> str:
    return (
        "Too large for SQLite, which keeps decimals as doubles (15 digits exactly): "
        f"{SQLITE_REFUSES[field]}. Use PostgreSQL for larger values."
    )


def round_trip(records: Records, field: str, value: str) -> Decimal:
    created = records.create(SYSTEM, "ledger", {field: value})
    assert created[field] == Decimal(value)
    stored: Decimal = records.get(SYSTEM, "ledger", created["id"])[field]
    return stored


@pytest.mark.parametrize(("field", "value"), EVERYWHERE)
def test_decimals_within_15_digits_read_back_exactly_everywhere(
    ledgers: Records, field: str, value: str
) -> None:
    assert round_trip(ledgers, field, value) == Decimal(value)


@pytest.mark.parametrize(("field", "value"), BEYOND_A_DOUBLE)
def test_decimals_beyond_15_digits_are_refused_on_sqlite_and_exact_on_postgresql(
    ledgers: Records, field: str, value: str
) -> None:
    if ledgers.dialect == "sqlite":
        found = errors_of(lambda: ledgers.create(SYSTEM, "ledger", {field: value}))
        assert found == {field: [sqlite_message(field)]}
    else:
        assert round_trip(ledgers, field, value) == Decimal(value)


@pytest.mark.parametrize(
    ("field", "value", "digits"),
    [
        ("amount", "10000000000000000", 16),
        ("rate", "1000000000000", 12),
        ("yen", "1" + "0" * 18, 18),
    ],
)
def test_the_declared_precision_is_the_limit_everywhere(
    ledgers: Records, field: str, value: str, digits: int
) -> None:
    found = errors_of(lambda: ledgers.create(SYSTEM, "ledger", {field: value}))
    assert found == {field: [f"Too large: at most {digits} digits before the point."]}


def test_the_sqlite_limit_applies_to_updates_too(ledgers: Records) -> None:
    ledger = ledgers.create(SYSTEM, "ledger", {"amount": "1"})
    change = {"amount": "12345678901234.5"}
    if ledgers.dialect == "sqlite":
        found = errors_of(lambda: ledgers.update(SYSTEM, "ledger", ledger["id"], change, version=1))
        assert found == {"amount": [sqlite_message("amount")]}
    else:
        changed = ledgers.update(SYSTEM, "ledger", ledger["id"], change, version=1)
        assert changed["amount"] == Decimal("12345678901234.5")


@pytest.mark.parametrize(
    "amounts",
    [
        ["4999999999999.99", "4999999999999.99", "0.01"],  # a total at SQLite's limit
        ["0.10"] * 30,  # 0.1 is no double; thirty of them still total 3.00
        ["1234567890.12", "-1234567890.12", "0.07", "-0.02"],
    ],
    ids=["at-the-limit", "tenths", "cancelling"],
)
def test_rollup_totals_within_15_digits_are_exact(ledgers: Records, amounts: list[str]) -> None:
    ledger = ledgers.create(SYSTEM, "ledger", {"code": "A"})
    for amount in amounts:
        ledgers.create(SYSTEM, "entry", {"ledger": ledger["id"], "amount": amount})
    total = ledgers.get(SYSTEM, "ledger", ledger["id"])["total"]
    assert total == sum((Decimal(a) for a in amounts), Decimal(0))
