"""HEDDLE_TIME_ZONE: the deployment's day and the times its screens show and take.

Each test runs in a zone whose date differs from UTC's at the moment it runs — UTC+14
(Kiritimati) or UTC-12 —, so a "today" still taken in UTC fails it whatever the hour.
The API keeps times in UTC, with their offset.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from babel.dates import format_datetime
from flask import Flask
from heddle.app import create_app
from screens_package import log_in

from engine import SYSTEM
from metamodel import local_today

PACKAGE = """\
kind: package
name: visits
---
kind: entity
name: visit
fields:
  title: {type: string, required: true}
  day: {type: date, default: "=today()"}
  at: {type: datetime}
  late: {type: formula, returns: boolean, expression: "day < today()"}
---
kind: report
name: by_day
entity: visit
group_by: [{field: at, bucket: day}]
measures:
  - {name: visits, aggregate: count}
"""


@pytest.fixture
def zone(off_utc: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """HEDDLE_TIME_ZONE, for the apps a test makes, naming a zone off UTC's day."""
    monkeypatch.setenv("HEDDLE_TIME_ZONE", off_utc)
    return off_utc


@pytest.fixture
def app(app_factory: Callable[..., Flask], zone: str) -> Flask:
    return app_factory(PACKAGE, people=[("root", ["admin"], "HQ", None)])


def test_today_is_the_deployments_day(
    app: Flask, zone: str, token: Callable[[str], dict[str, str]]
) -> None:
    local = dt.datetime.now(ZoneInfo(zone)).date()
    assert local_today() == local != dt.datetime.now(dt.UTC).date()
    client = app.test_client()
    headers = token("root")
    made = client.post("/api/v1/records/visit", headers=headers, json={"title": "Plant tour"})
    assert made.status_code == 201, made.json
    assert made.json["data"]["day"] == local.isoformat()  # the default, =today()
    assert made.json["data"]["late"] is False  # the formula's today() is the same day
    yesterday = (local - dt.timedelta(days=1)).isoformat()
    late = client.post(
        "/api/v1/records/visit", headers=headers, json={"title": "Old", "day": yesterday}
    )
    assert late.json["data"]["late"] is True
    # a list filtered on "today" (the relative date filters follow the same day)
    found = client.get("/api/v1/records/visit?day__eq=today", headers=headers)
    assert found.status_code == 200, found.json
    assert [r["title"] for r in found.json["data"]] == ["Plant tour"]


def test_the_screens_show_and_take_times_in_the_deployments_zone(app: Flask, zone: str) -> None:
    """A time typed in the form (no offset: the browser's datetime-local) is a time of
    the deployment's zone; the record page and the edit form show it as typed, and the
    API gives the same moment in UTC."""
    client = app.test_client()
    log_in(client, "root")
    page = client.get("/app/visit/new").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    posted = client.post(
        "/app/visit/new",
        data={"title": "Board meeting", "day": "2026-03-02", "at": "2026-03-02T09:30",
              "csrf_token": token},
    )  # fmt: skip
    assert posted.status_code == 302, posted.get_data(as_text=True)
    record = posted.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    runtime = app.extensions["heddle"]
    stored = runtime.records.get(SYSTEM, "visit", int(record))
    expected = dt.datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo(zone))
    assert stored["at"] == expected and stored["at"].utcoffset() == dt.timedelta(0)
    shown = client.get(f"/app/visit/{record}").get_data(as_text=True)
    in_zone, in_utc = (
        format_datetime(expected, "medium", tzinfo=tz, locale="en")
        for tz in (ZoneInfo(zone), dt.UTC)
    )
    assert in_zone != in_utc and in_zone in shown and in_utc not in shown, shown
    form = client.get(f"/app/visit/{record}/edit").get_data(as_text=True)
    assert 'value="2026-03-02T09:30"' in form, form


def test_an_unknown_zone_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.environ.get("TZ")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        create_app({"TIME_ZONE": "Mars/Olympus", "INSTANCE_PATH": str(tmp_path)})
    assert os.environ.get("TZ") == before  # nothing changed
    env = {**os.environ, "HEDDLE_TIME_ZONE": "Mars/Olympus"}
    done = subprocess.run(
        [sys.executable, "-m", "heddle", "validate", "-q"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "unknown time zone 'Mars/Olympus'" in done.stderr


def test_days_of_times_are_the_deployments_days(
    app: Flask, zone: str, token: Callable[[str], dict[str, str]]
) -> None:
    """A visit on the deployment's today at a time UTC puts on another day (half past
    midnight east of UTC, half past eleven at night west of it): the filters, the
    reports' day buckets and the exported files keep it on today; a workbook read back
    gives the same moment."""
    local = ZoneInfo(zone)
    today = dt.datetime.now(local).date()
    east = dt.datetime.now(local).utcoffset() > dt.timedelta(0)  # type: ignore[operator]
    moment = dt.datetime.combine(today, dt.time(0, 30) if east else dt.time(23, 30), local)
    assert moment.astimezone(dt.UTC).date() != today
    client, headers = app.test_client(), token("root")
    made = client.post(
        "/api/v1/records/visit", headers=headers,
        json={"title": "Early", "at": moment.isoformat()},
    )  # fmt: skip
    assert made.status_code == 201, made.json
    # the API keeps UTC
    assert dt.datetime.fromisoformat(made.json["data"]["at"]).utcoffset() == dt.timedelta(0)
    for query in ("at__eq=today", f"at__eq={today.isoformat()}"):
        found = client.get(f"/api/v1/records/visit?{query}", headers=headers)
        assert [r["title"] for r in found.json["data"]] == ["Early"], (query, found.json)
    report = client.get("/api/v1/reports/by_day", headers=headers)
    assert report.status_code == 200, report.json
    (row,) = report.json["rows"]
    assert str(row["at"]).startswith(today.isoformat()) and row["visits"] == 1, row
    csv = client.get("/api/v1/records/visit/export?format=csv", headers=headers)
    assert moment.isoformat() in csv.get_data(as_text=True)
    xlsx = client.get("/api/v1/records/visit/export?format=xlsx", headers=headers)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet is not None
    cells = [cell for row_ in sheet.iter_rows(values_only=True) for cell in row_]
    assert moment.replace(tzinfo=None) in cells  # the wall time a reader expects
    # the workbook imported again (no zone in it): the same moment
    path = f"/api/v1/records/visit/{made.json['data']['id']}?version=1"
    gone = client.delete(path, headers=headers)
    assert gone.status_code == 204, gone.json
    again = client.post(
        "/api/v1/imports", headers=headers,
        data={"entity": "visit", "file": (io.BytesIO(xlsx.data), "visit.xlsx")},
    )  # fmt: skip
    assert again.status_code in (200, 201), again.json
    back = client.get("/api/v1/records/visit?title=Early", headers=headers).json["data"]
    assert [dt.datetime.fromisoformat(r["at"]) for r in back] == [moment]
