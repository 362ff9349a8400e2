"""API responses are written by orjson, the same text the standard library would write."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from flask import Flask
from heddle import jsonio

TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")
MOMENT = dt.datetime(2026, 12, 1, 21, 4, 31, 123456, tzinfo=dt.UTC)

VALUES: list[Any] = [
    Decimal("1000.00"),
    Decimal("0E-8"),
    Decimal("1E+3"),
    Decimal("-12.50"),
    MOMENT,
    MOMENT.replace(microsecond=0),
    MOMENT.astimezone(TOKYO),
    dt.datetime(2026, 12, 1, 9, 30),
    dt.date(2026, 12, 1),
    dt.time(9, 30, 5),
    '顧客 客户 \u2028 "quoted" \\ \n',
    [1, 2.5, None, True, False],
    2**63 - 1,
    -(2**63),
]


def _standard(value: Any) -> str:
    return json.dumps(value, default=jsonio.default, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_orjson_writes_what_the_standard_library_writes(value: Any) -> None:
    assert json.loads(jsonio.dumps(value)) == json.loads(_standard(value))
    if not isinstance(value, str):  # escapes of control characters may differ, not the data
        assert jsonio.dumps(value) == _standard(value)


def test_decimals_are_plain_and_row_keys_are_taken() -> None:
    row = {sa.sql.elements.quoted_name("amount", None): Decimal("0E-8")}
    with pytest.raises(TypeError):
        orjson.dumps(row)  # a str subclass as a key needs OPT_NON_STR_KEYS
    assert jsonio.dumps(row) == '{"amount":"0.00000000"}'


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    huge = {"n": 2**70, "when": dt.date(2026, 1, 2)}  # beyond 64 bits: a formula may make it
    with pytest.raises(TypeError):
        orjson.dumps(huge, default=jsonio.default, option=jsonio.OPTIONS)
    assert jsonio.dumps(huge) == '{"n":1180591620717411303424,"when":"2026-01-02"}'


def test_flask_responses_use_it(app: Flask) -> None:
    with app.app_context():
        response = app.json.response(data={"amount": Decimal("0E-8"), "name": "顧客"})
        assert response.mimetype == "application/json"
        assert response.get_data() == '{"data":{"amount":"0.00000000","name":"顧客"}}\n'.encode()
        app.debug = True  # readable output while debugging, as Flask does
        assert app.json.response(a=1).get_data() == b'{\n  "a": 1\n}\n'
