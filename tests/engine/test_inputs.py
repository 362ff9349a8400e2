"""The compiled input loader gives what the entity's marshmallow schema gives: the same
values for good records, the same messages and valid values for bad ones."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import crm_definitions
import pytest
from marshmallow import Schema, ValidationError, fields, validate

from engine._coerce import SLOW, quick_loader
from engine.inputs import InputLoader, input_loader, input_schema
from metamodel import Model, load_packages


@pytest.fixture(scope="module")
def crm() -> Model:
    return load_packages([crm_definitions.PATH])


def outcome(load: Any, data: Any, partial: bool) -> tuple[str, Any, Any]:
    """("ok", values) or ("error", messages, valid_data) of one load."""
    try:
        return "ok", load(data, partial=partial), None
    except ValidationError as exc:
        return "error", exc.messages, exc.valid_data


# Good and bad values of every kind the CRM's entities take, per field name; each record
# below mixes them (a refused value next to good ones, keys no field takes, nulls).
ACCOUNTS: list[dict[str, Any]] = [
    {},
    {"name": "Acme"},
    {"name": "测试客户0000001科技有限公司", "external_id": "B-0000001", "grade": "A",
     "city": "上海", "phone": "021-00000001", "annual_revenue": "1000.50"},
    {"name": None, "grade": None, "annual_revenue": None, "tags": None, "locked": None},
    {"name": "x" * 201},  # too long
    {"name": "a\x00b"},  # NUL
    {"name": 12},  # not text
    {"name": b"bytes"},
    {"name": b"\xff\xfe"},  # not UTF-8
    {"grade": "Z"},  # not a choice
    {"grade": "a"},
    {"phone": "call me"},  # not a phone number
    {"phone": "+86 138-0013-8000", "website": "https://example.com"},
    {"website": "not a url"},
    {"website": "https://" + "x" * 300 + ".com"},
    {"annual_revenue": "1,000"},  # thousands separators are the import's, not the API's
    {"annual_revenue": "1000.555"},  # too many places
    {"annual_revenue": "-5"},  # under the minimum
    {"annual_revenue": 12.5},
    {"annual_revenue": True},
    {"annual_revenue": "1e3"},
    {"annual_revenue": "99999999999999999999"},
    {"tags": ["vip", "strategic"]},
    {"tags": ["vip", "nope", 3]},  # some items good: marshmallow keeps them as valid
    {"tags": "vip"},
    {"locked": True, "deal_status": "won"},
    {"locked": "yes"},
    {"next_follow_up_at": "2026-12-07T10:00:00+08:00"},
    {"next_follow_up_at": "2026-12-07T10:00:00"},
    {"next_follow_up_at": "yesterday"},
    {"next_follow_up_at": "0001-01-01T00:00:00+14:00"},  # no such time in UTC
    {"parent_account": 5, "owner_id": 1, "team_id": None},
    {"parent_account": "5", "owner_id": True},
    {"parent_account": 2**63},
    {"unknown": 1, "name": "Acme", "also_unknown": None},
    {"name": "x" * 201, "grade": "Z", "annual_revenue": "abc", "extra": 1},
]  # fmt: skip

OTHERS: list[tuple[str, dict[str, Any]]] = [
    ("opportunity", {"name": "ERP", "account": 1, "amount": "5000", "expected_close_date": "2026-12-31"}),
    ("opportunity", {"expected_close_date": "31/12/2026", "probability": "50"}),
    ("opportunity", {"probability": 150, "amount": "-1"}),
    ("contact", {"name": "Wang", "email": "wang@example.com", "mobile": "13800138000"}),
    ("contact", {"email": "not an email", "birthday": "2026-02-30"}),
    ("contact", {"email": "a" * 300 + "@example.com"}),
    ("quote", {"date": dt.date(2026, 12, 7).isoformat(), "discount": "10"}),
    ("quote", {"lines": [], "date": 20261207}),
    ("lead", {"name": "Li", "company": "字节跳动", "score": "42", "converted": False}),
    ("lead", {"score": 2**40, "status": "??", "email": None, "converted_at": "2026-12-07"}),
    ("lead", {"score": 1.5, "mobile": "１３８００１３８０００"}),
]  # fmt: skip


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("partial", [False, True])
def test_the_loader_gives_what_the_schema_gives(crm: Model, dialect: str, partial: bool) -> None:
    cases = [("account", data) for data in ACCOUNTS] + OTHERS
    errors = 0
    for entity, data in cases:
        schema = input_schema(crm, entity, dialect)
        loader = input_loader(crm, entity, dialect)
        for _ in range(2):  # the second time from the plan compiled the first
            got = outcome(loader.load, data, partial)
            assert got == outcome(schema.load, data, partial), (entity, data)
            # the same order too: the schema's
            if got[0] == "ok":
                assert list(got[1]) == list(outcome(schema.load, data, partial)[1])
        errors += got[0] == "error"
    assert errors > 20  # the bad records were refused (by both)


def test_required_fields_and_load_defaults_are_honoured() -> None:
    """The engine's own schemas have neither; the loader still does what marshmallow
    does with them, for a schema that has."""
    declared: dict[str, fields.Field[Any]] = {
        "name": fields.String(required=True, validate=validate.Length(max=3)),
        "size": fields.Integer(load_default=7),
        "kind": fields.String(load_default=lambda: "plain"),
    }
    instance = Schema.from_dict(declared)()
    loader = InputLoader(instance)
    for data in ({}, {"name": "abc"}, {"name": "abcd", "size": "x"}, {"size": 3}, {"x": 1}):
        for partial in (False, True):
            assert outcome(loader.load, data, partial) == outcome(instance.load, data, partial)
    assert loader.load({"name": "ab"}, partial=False) == {"name": "ab", "size": 7, "kind": "plain"}


def test_a_record_that_is_not_an_object_is_refused_as_the_schema_refuses_it(crm: Model) -> None:
    loader = input_loader(crm, "account", "postgresql")
    schema = input_schema(crm, "account", "postgresql")
    for data in (["name"], "name", None):
        assert outcome(loader.load, data, False) == outcome(schema.load, data, False)


VALUES: list[Any] = [
    "Acme", "", " ", "x" * 200, "x" * 201, "a\x00b", None, 5, -5, 0, 1.5, True, False,
    b"abc", ["a"], {"a": 1}, "021-5555-0000", "call me", "A", "Z", "vip", "https://example.com",
    "ftp:/x", "a@b.cn", "a@", "1250.50", " 12.5 ", "1,000", "1e3", "1000.555", "-0.01",
    "99999999999999999999", "NaN", Decimal("12.50"), Decimal("1E+2"), 2**31, 2**63, "42",
    "2026-12-07", "2026-02-30", "2026-12-07T10:00:00+08:00", "2026-12-07T10:00:00",
    "0001-01-01T00:00:00+14:00", dt.date(2026, 12, 7), dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
]  # fmt: skip


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("entity", ["account", "contact", "lead", "opportunity", "quote"])
def test_a_shortcut_gives_what_deserialize_gives_or_leaves_the_value_to_it(
    crm: Model, entity: str, dialect: str
) -> None:
    schema = input_schema(crm, entity, dialect)
    shortcuts = taken = 0
    for name, field in schema.load_fields.items():
        quick = quick_loader(field)
        if quick is None:
            continue
        shortcuts += 1
        for value in VALUES:
            fast = quick(value)
            if fast is SLOW:
                continue
            taken += 1
            # deserialize takes what the shortcut took, and gives the same (type, places)
            slow = field.deserialize(value, name, {name: value})
            assert (fast, type(fast), repr(fast)) == (slow, type(slow), repr(slow)), (name, value)
    assert shortcuts >= 4 and taken >= 4 * shortcuts


def test_lists_and_the_marshmallow_fields_have_no_shortcut(crm: Model) -> None:
    assert quick_loader(fields.Decimal()) is None
    assert quick_loader(fields.String()) is None  # not the engine's (NUL characters)
    assert quick_loader(fields.Integer(allow_none=True)) is None
    schema = input_schema(crm, "account", "sqlite")
    assert quick_loader(schema.load_fields["tags"]) is None  # a list: its items' errors
    quick = quick_loader(schema.load_fields["name"])
    assert quick is not None
    assert quick("Acme") == "Acme"
    assert quick("x" * 201) is SLOW  # refused: deserialize makes the error
    assert quick(Decimal(1)) is SLOW
    revenue = quick_loader(schema.load_fields["annual_revenue"])
    assert revenue is not None
    assert revenue("1250.50") == Decimal("1250.50")
    assert revenue("-1") is SLOW  # below the minimum: the Range's message
