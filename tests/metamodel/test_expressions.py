"""The expression language: checking, Python evaluation and SQL with the same meaning."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from engine.sqlexpr import to_sql
from metamodel.expressions import FUNCTIONS, ExpressionError, MappingScope, parse

SCOPE = MappingScope(
    {
        "amount": "decimal",
        "qty": "integer",
        "stage": "string",
        "name": "string",
        "closed": "date",
        "created": "datetime",
        "flag": "boolean",
        "tags": "list:string",
        "account.grade": "string",
        "account.name": "string",
        "account.parent": "integer",
    }
)

TODAY = dt.date.today()


def ev(source: str, **values: Any) -> Any:
    return parse(source, SCOPE).evaluate(values)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("amount >= 100000 and stage in ['won', 'lost']", {"amount": 100000, "stage": "won"}, True),
        ("amount >= 100000 and stage in ['won', 'lost']", {"amount": 5, "stage": "won"}, False),
        ("stage not in ['won', 'lost']", {"stage": "proposal"}, True),
        ("not flag", {"flag": False}, True),
        ("qty * 2 + 1", {"qty": 3}, 7),
        ("amount / 4", {"amount": Decimal("10")}, Decimal("2.5")),
        ("amount / qty", {"amount": Decimal("10"), "qty": 0}, None),
        ("qty % 4", {"qty": 10}, 2),
        ("-qty", {"qty": 3}, -3),
        ("1 < qty < 5", {"qty": 3}, True),
        ("1 < qty < 5", {"qty": 5}, False),
        ("name + '!'", {"name": "Acme"}, "Acme!"),
        ("'cm' in name", {"name": "Acme"}, True),
        ("'vip' in tags", {"tags": ["vip", "new"]}, True),
        ("'vip' not in tags", {"tags": []}, True),
        ("account.grade == 'A'", {"account": {"grade": "A"}}, True),
        ("account.grade == 'A'", {"account": None}, False),
        ("'big' if amount > 10 else 'small'", {"amount": 11}, "big"),
        ("days_between(closed, today())", {"closed": TODAY - dt.timedelta(days=3)}, 3),
        (
            "days_between(created, closed)",
            {"created": dt.datetime(2024, 1, 1, 23), "closed": dt.date(2024, 1, 3)},
            2,
        ),
        ("add_days(closed, 30)", {"closed": dt.date(2024, 1, 31)}, dt.date(2024, 3, 1)),
        ("year(closed) * 100 + month(closed)", {"closed": dt.date(2024, 7, 9)}, 202407),
        ("day(closed)", {"closed": dt.date(2024, 7, 9)}, 9),
        ("len(name) + len(tags)", {"name": "abc", "tags": ["x"]}, 4),
        ("upper(trim(name))", {"name": "  acme "}, "ACME"),
        ("lower(name)", {"name": "ACME"}, "acme"),
        ("startswith(name, 'Ac')", {"name": "Acme"}, True),
        ("concat(name, '-', stage)", {"name": "A", "stage": None}, "A-"),
        ("coalesce(amount, 0) + 1", {"amount": None}, 1),
        ("is_empty(name)", {"name": ""}, True),
        ("is_empty(tags)", {"tags": []}, True),
        ("round(amount, 1)", {"amount": Decimal("2.345")}, Decimal("2.3")),
        ("abs(qty)", {"qty": -4}, 4),
        ("min(qty, 3)", {"qty": 7}, 3),
        ("max(amount, qty)", {"amount": Decimal("1.5"), "qty": 2}, 2),
        (
            "closed >= created",
            {"closed": dt.date(2024, 1, 2), "created": dt.datetime(2024, 1, 1, 5)},
            True,
        ),
        ("amount == null", {"amount": None}, True),
        ("amount != null", {"amount": None}, False),
        ("amount > 5", {"amount": None}, False),
        ("amount + 1", {"amount": None}, None),
        ("true and not false", {}, True),
        ("flag == True", {"flag": True}, True),
        ("amount > 1.5", {"amount": 2.0}, True),
        # a reference loaded as its record compares as its id, at the end of a path too
        ("account.parent == qty", {"account": {"id": 1, "parent": {"id": 7}}, "qty": 7}, True),
        ("account.parent == qty", {"account": {"id": 1, "parent": 7}, "qty": 7}, True),
    ],
)
def test_evaluate(source: str, values: dict[str, Any], expected: Any) -> None:
    assert ev(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("amount > 'x'", "cannot compare decimal with string"),
        ("amout > 1", "unknown field 'amout' (did you mean 'amount'?)"),
        ("__import__('os')", "unknown function '__import__'"),
        ("name.__class__", "'name.__class__' is not a field"),
        ("(lambda: 1)()", "only the built-in functions may be called"),
        ("lambda: 1", "lambda is not allowed in expressions"),
        ("tags[0]", "indexing ([...]) is not allowed in expressions"),
        ("qty ** 2", "operator '**' is not allowed in expressions"),
        ("qty // 2", "operator '//' is not allowed in expressions"),
        ("[x for x in tags]", "a comprehension is not allowed in expressions"),
        ("{'a': 1}", "a mapping ({...}) is not allowed in expressions"),
        ("f'{name}'", "an f-string is not allowed in expressions"),
        ("(qty := 1)", "assignment (:=) is not allowed in expressions"),
        ("name.upper()", "only the built-in functions may be called"),
        ("len(qty)", "len() expects string, got integer"),
        ("len()", "len() takes 1 arguments, got 0"),
        ("round(amount, places=2)", "round() takes no keyword arguments"),
        ("todya()", "unknown function 'todya' (did you mean 'today'?)"),
        ("amount >", "syntax error: invalid syntax"),
        ("", "empty expression"),
        ("qty in tags", "cannot look for an integer in a list of string"),
        ("'a' in qty", "'in' needs a list or a text on its right, got integer"),
        ("flag < true", "cannot order boolean values with '<'"),
        ("name - 1", "cannot use '-' on string and integer"),
        ("-name", "cannot negate a string"),
        ("[1, 'a']", "a list's items must share one type"),
        ("1 if flag else 'x'", "both branches must have one type, got integer and string"),
        ("closed > 3", "cannot compare date with integer"),
        ("10 ** 100", "operator '**' is not allowed in expressions"),
        ("1" + "0" * 30, "is too large"),
        ("b'x' == name", "a bytes value is not allowed in expressions"),
    ],
)
def test_rejected(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source, SCOPE)
    assert message in str(caught.value)


def test_expected_type() -> None:
    assert parse("qty > 1", SCOPE, expect="boolean").type == "boolean"
    assert parse("qty * 2", SCOPE, expect="decimal").type == "integer"
    with pytest.raises(ExpressionError, match="expression gives an integer, expected a boolean"):
        parse("qty + 1", SCOPE, expect="boolean")


def test_limits() -> None:
    with pytest.raises(ExpressionError, match="longer than 2000 characters"):
        parse("qty + " * 400 + "1", SCOPE)
    with pytest.raises(ExpressionError, match="more than 300 parts"):
        parse(" and ".join(["qty > 1"] * 120), SCOPE)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("-" * 150 + "qty", SCOPE)
    with pytest.raises(ExpressionError, match="at most 100 items"):
        parse("qty in [" + ", ".join(str(i) for i in range(101)) + "]", SCOPE)


def test_fields_read_are_recorded() -> None:
    expression = parse("account.grade == 'A' and amount > qty", SCOPE)
    assert expression.fields == {("account", "grade"), ("amount",), ("qty",)}
    assert str(expression) == "account.grade == 'A' and amount > qty"


def test_every_function_has_a_doc() -> None:
    assert all(function.doc for function in FUNCTIONS.values())


# --- the same expressions in SQL, on SQLite and PostgreSQL ------------------------------

ROWS = [
    {"id": 1, "amount": Decimal("150000"), "qty": 3, "stage": "won", "name": "Acme Co",
     "closed": dt.date(2024, 3, 1), "created": dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC),
     "flag": True, "tags": ["vip", "new"]},
    {"id": 2, "amount": Decimal("90"), "qty": 0, "stage": "proposal", "name": "Beta 株式会社",
     "closed": None, "created": dt.datetime(2024, 2, 1, 23, tzinfo=dt.UTC),
     "flag": False, "tags": []},
    {"id": 3, "amount": None, "qty": None, "stage": None, "name": "",
     "closed": TODAY - dt.timedelta(days=10), "created": None, "flag": None, "tags": None},
    {"id": 4, "amount": Decimal("100000"), "qty": -2, "stage": "lost", "name": "gamma_%",
     "closed": TODAY, "created": dt.datetime(2023, 12, 31, tzinfo=dt.UTC),
     "flag": True, "tags": ["vip"]},
]  # fmt: skip

PARITY = [
    "amount >= 100000 and stage in ['won', 'lost']",
    "stage not in ['won', 'lost']",
    "stage != 'won'",
    "amount == null",
    "not flag",
    "flag == true",
    "amount / qty > 10",
    "qty % 2 == 1",
    "'cm' in name",
    "'%' in name",
    "'vip' in tags",
    "'vip' not in tags",
    "len(tags) >= 1",
    "days_between(closed, today()) >= 5",
    "days_between(created, closed) > 30",
    "add_days(closed, 30) > today()",
    "year(closed) == 2024 and month(closed) == 3",
    "startswith(name, 'Ac')",
    "concat(name, '/', stage) == 'Acme Co/won'",
    "name + '!' == 'Acme Co!'",
    "coalesce(amount, 0) < 1000",
    "is_empty(name)",
    "is_empty(closed)",
    "round(amount / 7, 2) > 10",
    "abs(qty) == 2",
    "min(qty, 1) == 0",
    "max(qty, 1) > 1",
    "upper(name) == 'ACME CO' or lower(stage) == 'lost'",
    "len(trim(name)) > 4",
    "('big' if amount > 1000 else 'small') == 'small'",
    "closed >= created",
    "1 < qty < 5",
    # Where SQL's own rules differ, the SQL form follows the language's:
    "amount == qty",  # two empty values are equal
    "amount != qty",
    "stage + name == ''",  # an empty side of text + text counts as ''
    "round(amount / 4) == 23",  # 22.5 rounds half away from zero
    "text(round(amount)) == '90'",
    "round(amount / 7, 2) > 12.85",
    "qty % 3 == -2",  # the remainder takes the dividend's sign
    "is_empty(tags)",  # an empty list is empty
    "startswith(name, 'gamma_')",
    "startswith(name, 'g_')",  # '_' is a character, not a wildcard
    "'x' not in tags",  # an empty or missing list holds nothing
    "'new' in tags",
    "min(amount, qty) < 1",  # empty arguments are ignored
    "max(amount, qty) > 100",
    "text(qty) == '3'",
    "text(flag) == 'true'",
    "text(closed) == '2024-03-01'",
]


@pytest.fixture
def table(db_engine: Engine) -> sa.Table:
    metadata = sa.MetaData()
    json_type = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    t = sa.Table(
        "expr_rows",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Numeric(18, 2)),
        sa.Column("qty", sa.Integer),
        sa.Column("stage", sa.String(50)),
        sa.Column("name", sa.String(50)),
        sa.Column("closed", sa.Date),
        sa.Column("created", sa.DateTime(timezone=True)),
        sa.Column("flag", sa.Boolean),
        sa.Column("tags", json_type),
    )
    metadata.create_all(db_engine)
    with db_engine.begin() as conn:
        conn.execute(t.insert(), ROWS)
    return t


@pytest.mark.parametrize("source", PARITY)
def test_sql_matches_python(db_engine: Engine, table: sa.Table, source: str) -> None:
    expression = parse(source, SCOPE, expect="boolean")
    expected = {row["id"] for row in ROWS if expression.evaluate(row)}
    clause = to_sql(expression, lambda path: table.c[path[0]], db_engine.dialect.name)
    with db_engine.connect() as conn:
        found = set(conn.scalars(sa.select(table.c.id).where(clause)))
    assert found == expected, f"SQL {clause} selected {found}, Python {expected}"


def test_a_path_to_a_loaded_reference_is_its_id() -> None:
    """``plan.contract == contract`` with both loaded as records compares their ids."""
    scope = MappingScope({"contract": "integer", "plan.contract": "integer"})
    same = parse("plan.contract == contract", scope)
    contract = {"id": 7, "number": "CT-1"}
    assert same.evaluate({"contract": contract, "plan": {"id": 2, "contract": contract}})
    assert same.evaluate({"contract": 7, "plan": {"id": 2, "contract": {"id": 7}}})
    assert not same.evaluate({"contract": 7, "plan": {"id": 2, "contract": {"id": 8}}})
