"""The examples of docs/reports.md load, and run.

The first ```yaml block holds the examples' entities; every other one is a report on them
(loaded together with them), or, when its first line is ``# invalid: <text>``, a package
of its own that must fail with a problem containing ``<text>``. The ```json blocks are
ad-hoc reports. Every report runs, on SQLite and PostgreSQL, for an admin and for the
documented ``rep`` role.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine import SYSTEM, Forbidden
from engine.context import Actor
from engine.records import Records
from engine.reports import Reports
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import DefinitionError, Model, load_packages, report_from_value

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
HEADER = "kind: package\nname: example\n---\n"
BLOCK = re.compile(r"^```(yaml|json)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
INVALID = re.compile(r"# invalid: (.+)")


def _blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text("utf-8")) if lang == language]


BASE, *REPORTS = _blocks("yaml")
INVALID_BLOCKS = [b for b in REPORTS if INVALID.match(b)]
VALID_BLOCKS = [b for b in REPORTS if not INVALID.match(b)]


def _load(tmp_path: Path, text: str) -> Model:
    path = tmp_path / "example.yaml"
    path.write_text(HEADER + text, encoding="utf-8")
    return load_packages([path])


def test_the_page_has_examples() -> None:
    assert len(VALID_BLOCKS) >= 7 and len(INVALID_BLOCKS) >= 3 and _blocks("json")


@pytest.mark.parametrize("block", INVALID_BLOCKS, ids=lambda b: b.split("\n", 1)[0][11:50])
def test_invalid_examples_fail_as_documented(tmp_path: Path, block: str) -> None:
    match = INVALID.match(block)
    assert match is not None
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, block)
    assert any(match[1] in str(p) for p in caught.value.problems), caught.value.problems


@pytest.fixture
def reports(tmp_path: Path, db_engine: Engine) -> Reports:
    model = _load(tmp_path, BASE + "".join("---\n" + b for b in VALID_BLOCKS))
    tables = build_tables(model)
    tables.metadata.create_all(db_engine)
    now = dt.datetime.now(dt.UTC)
    with db_engine.begin() as conn:
        conn.execute(
            tables.metadata.tables[TEAM_TABLE].insert(), [{"name": "T", "created_at": now}]
        )
        conn.execute(
            tables.metadata.tables[USER_TABLE].insert(),
            [{"username": "ann", "name": "Ann", "roles": ["rep"], "team_id": 1, "created_at": now}],
        )
    records = Records(db_engine, model, tables=tables)
    north = records.create(SYSTEM, "account", {"name": "N", "region": "north"})["id"]
    today = dt.date.today()
    for i, stage in enumerate(["open", "proposal", "won", "won", "lost"]):
        records.create(
            SYSTEM,
            "deal",
            {
                "name": f"d{i}",
                "account": north,
                "amount": str(1000 * (i + 1)),
                "probability": 50,
                "stage": stage,
                "closed": (today - dt.timedelta(days=20 * i)).isoformat(),
                "due": (today - dt.timedelta(days=25 * i)).isoformat(),
                "owner_id": 1 if i % 2 else None,
            },
            trusted=True,
        )
    return Reports(records)


ADMIN = Actor(roles=frozenset({"admin"}))
REP = Actor(user_id=1, team_id=1, roles=frozenset({"rep"}))


def test_every_documented_report_runs(reports: Reports) -> None:
    for name in reports.model.reports:
        result = reports.run(ADMIN, name)
        assert result.totals is not None and result.columns, name
        mine = reports.run(REP, name)
        assert mine.totals is not None
    funnel = reports.run(ADMIN, "funnel")
    assert [r["stage"] for r in funnel.rows] == ["open", "proposal", "won"]
    assert funnel.totals == {"deals": 4, "amount": Decimal("10000.00")}
    assert reports.run(REP, "funnel").totals == {"deals": 2, "amount": Decimal("6000.00")}


def test_the_json_examples_run_as_ad_hoc_reports(reports: Reports) -> None:
    for body in _blocks("json"):
        report = report_from_value(reports.model, json.loads(body))
        assert reports.run(ADMIN, report, adhoc=True).totals is not None


def test_a_hidden_field_is_refused_as_documented(reports: Reports) -> None:
    hidden = report_from_value(
        reports.model,
        {
            "entity": "deal",
            "filter": "account.credit_limit > 0",
            "measures": [{"name": "deals", "aggregate": "count"}],
        },
    )
    assert reports.run(ADMIN, hidden).totals == {"deals": 0}
    with pytest.raises(Forbidden):
        reports.run(REP, hidden)


def test_the_documented_layouts_and_dashboard(reports: Reports) -> None:
    from engine.reports.dashboards import run_dashboard

    pivot = reports.run(ADMIN, "pipeline_by_owner")
    assert pivot.pivot is not None and [v["value"] for v in pivot.pivot["values"]] == [
        "open",
        "proposal",
    ]
    assert pivot.totals is not None and pivot.totals["deals"] == 2
    funnel = reports.run(ADMIN, "deal_conversion")
    assert [r["deals"] for r in funnel.rows] == [4, 3, 2]  # lost at no stage: left out
    subtotals = reports.run(ADMIN, "region_and_stage")
    assert [r.get("_subtotal") for r in subtotals.rows][-1] == 1
    for actor in (ADMIN, REP):
        found = run_dashboard(reports, actor, "manager", {})
        assert not [w for w in found["widgets"] if "error" in w], found
    assert run_dashboard(reports, REP, "default", {})["name"] == "manager"
