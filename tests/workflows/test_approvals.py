"""Multi-step approvals on the record service, on SQLite and PostgreSQL: steps in sequence
and in parallel, N of M, conditional steps, reject to a state, recall, delegation,
reminders and escalation with the clock moved, and two approvers deciding at once.

The package is the example of docs/workflows.md's "Approvals" section, loaded from there.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from sqlalchemy.engine import Engine

from engine import SYSTEM, Actor, Forbidden, Records, StaleVersion, ValidationFailed, build_tables
from engine.tables import TEAM_TABLE, TRANSITION_TABLE, USER_TABLE
from metamodel import load_packages
from workflows import (
    APPROVAL_HOOKS,
    ApprovalDecided,
    ApprovalEvent,
    Approvals,
    Delegations,
    NoApprover,
    StateMachines,
    attach,
    run_due,
)
from workflows._approvers import Directory

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
HEADER = "kind: package\nname: example\n---\n"
# username, roles, team, manager
PEOPLE = [
    ("dan", ["manager"], "HQ", None),
    ("mia", ["manager"], "East", "dan"),
    ("ann", ["buyer"], "East", "mia"),
    ("fay", ["finance"], "HQ", None),
    ("fred", ["finance"], "HQ", None),
    ("lea", ["legal"], "HQ", None),
    ("rex", ["buyer"], "East", "mia"),
    ("solo", ["buyer"], "West", None),
]


def docs_example() -> str:
    """The first YAML block of the Approvals section of docs/workflows.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("\n## Approvals") :]
    found = re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M)
    assert found, "docs/workflows.md: the Approvals section has no example"
    return found.group(1)


class World:
    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        path = tmp_path / "example.yaml"
        path.write_text(HEADER + docs_example(), encoding="utf-8")
        model = load_packages([path])
        tables = build_tables(model)
        tables.metadata.create_all(engine)
        self.records = Records(engine, model, tables=tables)
        attach(self.records.events)
        self.machines = StateMachines(self.records)
        self.approvals = Approvals(self.records)
        self.ids: dict[str, int] = {}
        self.actors: dict[str, Actor] = {}
        users, teams = tables.metadata.tables[USER_TABLE], tables.metadata.tables[TEAM_TABLE]
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            team_ids: dict[str, int] = {}
            for name in dict.fromkeys(team for _, _, team, _ in PEOPLE):
                team_ids[name] = conn.execute(
                    teams.insert().values(name=name, created_at=now).returning(teams.c.id)
                ).scalar_one()
            hq = team_ids["HQ"]
            conn.execute(teams.update().where(teams.c.id != hq).values(parent_id=hq))
            for username, roles, team, manager in PEOPLE:
                self.ids[username] = conn.execute(
                    users.insert()
                    .values(
                        username=username,
                        roles=roles,
                        team_id=team_ids[team],
                        manager_id=self.ids.get(manager or ""),
                        created_at=now,
                    )
                    .returning(users.c.id)
                ).scalar_one()
                self.actors[username] = Actor(
                    user_id=self.ids[username], team_id=team_ids[team], roles=frozenset(roles)
                )

    def purchase(self, who: str = "ann", **values: Any) -> dict[str, Any]:
        data = {"title": "Laptops", "amount": "20000", **values}
        return self.records.create(self.actors[who], "purchase", data)

    def submit(self, record: dict[str, Any], who: str = "ann") -> dict[str, Any]:
        return self.machines.fire(
            self.actors[who],
            "purchase",
            record["id"],
            "submit",
            version=record["version"],
            comment="please",
        )

    def pending(self, who: str) -> list[dict[str, Any]]:
        return self.approvals.listing(self.actors[who], "pending")

    def only(self, who: str) -> dict[str, Any]:
        (found,) = self.pending(who)
        return found

    def state(self, record: dict[str, Any]) -> str:
        return str(self.records.get(SYSTEM, "purchase", record["id"])["status"])

    def decide(self, who: str, approval_id: int, **body: Any) -> dict[str, Any]:
        return self.approvals.approve(self.actors[who], approval_id, **body)


@pytest.fixture
def world(db_engine: Engine, tmp_path: Path) -> World:
    return World(db_engine, tmp_path)


@pytest.fixture
def events() -> Iterator[list[ApprovalEvent]]:
    seen: list[ApprovalEvent] = []
    APPROVAL_HOOKS.append(seen.append)
    yield seen
    APPROVAL_HOOKS.remove(seen.append)


def kinds(approval: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["step"]) for e in approval["history"]]


def test_a_multi_step_approval_end_to_end(world: World, events: list[ApprovalEvent]) -> None:
    ids = world.ids
    record = world.submit(world.purchase(reviewer=ids["rex"]))
    assert record["status"] == "in_review"
    first = world.only("mia")
    assert (first["approval"], first["status"], first["waiting_for"]) == (
        "purchase_review",
        "pending",
        [ids["mia"]],
    )
    assert first["record"] == {
        "entity": "purchase",
        "id": record["id"],
        "label": "Purchase",
        "title": "Laptops",
    }
    assert world.pending("fay") == []  # finance's turn comes after the manager's
    with pytest.raises(Forbidden):
        world.decide("fay", first["id"])
    # the manager approves: finance (2 of 2) and legal (any) start together
    after = world.decide("mia", first["id"], comment="ok")
    current = {s["name"]: s for s in after["steps"] if s["status"] == "pending"}
    assert set(current) == {"finance", "legal"} and current["finance"]["needed"] == 2
    assert sorted(after["waiting_for"]) == sorted([ids["fay"], ids["fred"], ids["lea"]])
    world.decide("fay", first["id"])
    with pytest.raises(ApprovalDecided):  # fay's vote counts once
        world.decide("fay", first["id"])
    world.decide("lea", first["id"])
    assert world.state(record) == "in_review"  # finance needs fred too
    after = world.decide("fred", first["id"])
    assert after["waiting_for"] == [ids["rex"]]
    done = world.decide("rex", first["id"], comment="checked the specs")
    assert done["status"] == "approved" and world.state(record) == "approved"
    assert kinds(done) == [
        ("submitted", None),
        ("requested", "manager"),
        ("approved", "manager"),
        ("requested", "finance"),
        ("requested", "legal"),
        ("approved", "finance"),
        ("approved", "legal"),
        ("approved", "finance"),
        ("requested", "reviewer"),
        ("approved", "reviewer"),
        ("completed", None),
    ]
    assert done["history"][0]["comment"] == "please"
    assert done["history"][-2]["actor_id"] == ids["rex"]
    # the hooks saw the same, with the people each event concerns
    requested = [e for e in events if e.kind == "requested"]
    assert [e.recipients for e in requested][:1] == [(ids["mia"],)]
    assert [e.kind for e in events][-1] == "completed" and events[-1].recipients == (ids["ann"],)
    # the record's history shows the approval settling it
    with world.records.engine.connect() as conn:
        moves = conn.execute(
            sa.select(sa.column("transition"), sa.column("to_state")).select_from(
                sa.table(TRANSITION_TABLE)
            )
        ).all()
    assert [tuple(m) for m in moves] == [
        ("submit", "in_review"),
        ("purchase_review:approved", "approved"),
    ]
    assert (
        world.approvals.for_record(world.actors["ann"], "purchase", record["id"])[0]["status"]
        == "approved"
    )
    assert [a["id"] for a in world.approvals.listing(world.actors["fay"], "decided")] == [
        first["id"]
    ]
    assert [a["id"] for a in world.approvals.listing(world.actors["ann"], "mine")] == [first["id"]]


def test_conditional_steps_are_skipped(world: World) -> None:
    record = world.submit(world.purchase(amount="500"))
    approval = world.only("mia")
    done = world.decide("mia", approval["id"])
    assert done["status"] == "approved" and world.state(record) == "approved"
    assert ("skipped", "finance") in kinds(done) and ("skipped", "reviewer") in kinds(done)


def test_reject_needs_a_comment_and_goes_to_its_state(world: World) -> None:
    record = world.submit(world.purchase(amount="500"))
    approval = world.only("mia")
    mia = world.actors["mia"]
    with pytest.raises(ValidationFailed) as refused:
        world.approvals.reject(mia, approval["id"], comment="  ")
    assert refused.value.fields == {"comment": ["A comment is required to reject."]}
    with pytest.raises(StaleVersion):
        world.approvals.reject(mia, approval["id"], comment="too dear", version=99)
    rejected = world.approvals.reject(
        mia, approval["id"], comment="too dear", version=approval["version"]
    )
    assert rejected["status"] == "rejected" and world.state(record) == "rejected"
    assert rejected["history"][-1]["comment"] == "too dear"
    with pytest.raises(ApprovalDecided):
        world.decide("mia", approval["id"])
    # resubmitted from the rejected state: a new approval
    record = world.records.get(SYSTEM, "purchase", record["id"])
    world.submit(record)
    assert world.only("mia")["id"] != approval["id"]


def test_the_submitter_may_recall(world: World) -> None:
    record = world.submit(world.purchase(amount="500"))
    approval = world.only("mia")
    with pytest.raises(Forbidden):
        world.approvals.recall(world.actors["rex"], approval["id"])
    recalled = world.approvals.recall(world.actors["ann"], approval["id"], comment="wrong amount")
    assert recalled["status"] == "recalled" and world.state(record) == "draft"
    assert world.pending("mia") == []
    with pytest.raises(ApprovalDecided):
        world.decide("mia", approval["id"])


def test_self_approval_is_refused(world: World) -> None:
    # rex names himself reviewer of his own purchase: nobody else could approve that step
    record = world.purchase("rex", amount="500", reviewer=world.ids["rex"])
    world.submit(record, "rex")
    approval = world.only("mia")
    with pytest.raises(NoApprover) as refused:
        world.decide("mia", approval["id"])
    assert "the submitter may not approve their own request" in refused.value.message
    assert world.state(record) == "in_review"  # mia's approval was undone with it
    with pytest.raises(Forbidden) as own:
        world.decide("rex", approval["id"])
    assert "their own request" in own.value.message


def test_nobody_to_approve_refuses_the_submit(world: World) -> None:
    record = world.purchase("solo", amount="500")  # solo has no manager
    with pytest.raises(NoApprover) as refused:
        world.submit(record, "solo")
    assert refused.value.message == (
        "nobody can approve step 'manager' of purchase_review: the owner has no active manager"
    )
    assert world.state(record) == "draft"


def test_a_delegate_decides_on_behalf_of_the_approver(world: World) -> None:
    ids = world.ids
    delegations = Delegations(world.records)
    today = dt.date.today()
    with pytest.raises(ValidationFailed) as bad:
        delegations.set(
            world.actors["mia"],
            {"delegate_id": ids["dan"], "starts_on": "soon", "ends_on": today.isoformat()},
        )
    assert list(bad.value.fields) == ["starts_on"]
    with pytest.raises(Forbidden):
        delegations.set(
            world.actors["ann"],
            {
                "user_id": ids["mia"],
                "delegate_id": ids["ann"],
                "starts_on": today.isoformat(),
                "ends_on": today.isoformat(),
            },
        )
    given = delegations.set(
        world.actors["mia"],
        {
            "delegate_id": ids["dan"],
            "starts_on": today.isoformat(),
            "ends_on": (today + dt.timedelta(days=3)).isoformat(),
            "note": "on leave",
        },
    )
    record = world.submit(world.purchase(amount="500"))
    waiting = world.only("dan")  # mia's, on her behalf
    assert waiting["waiting_for"] == [ids["mia"]]
    done = world.decide("dan", waiting["id"], comment="for Mia")
    (task,) = done["steps"][0]["tasks"]
    assert (task["decided_by"], task["on_behalf_of"]) == (ids["dan"], ids["mia"])
    (approved,) = [e for e in done["history"] if e["kind"] == "approved"]
    assert (approved["actor_id"], approved["on_behalf_of"]) == (ids["dan"], ids["mia"])
    assert world.state(record) == "approved"
    assert [d["id"] for d in delegations.list(world.actors["dan"])] == [given["id"]]
    delegations.clear(world.actors["mia"], given["id"])
    world.submit(world.records.get(SYSTEM, "purchase", world.purchase(amount="600")["id"]))
    assert world.pending("dan") == []  # cleared: dan no longer stands in


def test_reminder_then_escalation_when_the_clock_moves(
    world: World, events: list[ApprovalEvent]
) -> None:
    ids = world.ids
    start = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        world.submit(world.purchase(amount="500"))
        approval = world.only("mia")
        assert run_due(world.records) == {"reminders": 0, "escalations": 0}
    with time_machine.travel(start + dt.timedelta(days=1, minutes=1), tick=False):
        assert run_due(world.records) == {"reminders": 1, "escalations": 0}
        assert run_due(world.records) == {"reminders": 0, "escalations": 0}  # once
    assert [(e.kind, e.recipients) for e in events][-1] == ("reminder", (ids["mia"],))
    with time_machine.travel(start + dt.timedelta(days=2, hours=1), tick=False):
        assert run_due(world.records) == {"reminders": 0, "escalations": 1}
        assert run_due(world.records) == {"reminders": 0, "escalations": 0}
    assert [(e.kind, e.recipients) for e in events][-1] == ("escalated", (ids["dan"],))
    assert world.only("dan")["id"] == approval["id"]  # mia's manager now, mia still may
    done = world.decide("dan", approval["id"])
    assert done["status"] == "approved"
    (mia, dan) = done["steps"][0]["tasks"]
    assert (mia["status"], dan["status"], dan["escalated"]) == ("closed", "approved", True)
    assert [k for k, _ in kinds(done)].count("escalated") == 1


def _at_once(world: World, approval_id: int, *people: str) -> list[str]:
    """Each of ``people`` approves in a thread of their own, all at the same moment."""
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def approve(who: str) -> None:
        barrier.wait()
        try:
            outcomes.append(world.decide(who, approval_id)["status"])
        except ApprovalDecided:
            outcomes.append("decided")

    threads = [threading.Thread(target=approve, args=(who,)) for who in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_approvers_at_once_settle_the_record_once(world: World) -> None:
    """finance needs fay and fred; both approve at the same moment, many times over."""
    if world.records.dialect != "postgresql":
        pytest.skip("SQLite serialises every write: the race needs PostgreSQL")
    for _ in range(3):
        record = world.submit(world.purchase())
        approval = world.only("mia")
        world.decide("mia", approval["id"])
        world.decide("lea", approval["id"])
        outcomes = _at_once(world, approval["id"], "fay", "fred")
        assert sorted(outcomes) == ["approved", "pending"]
        assert world.state(record) == "approved"
        with world.records.engine.connect() as conn:
            settled = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM heddle_transition WHERE record_id = :id"
                    " AND transition = 'purchase_review:approved'"
                ),
                {"id": record["id"]},
            )
        assert settled == 1


def test_a_rejection_in_parallel_cancels_the_sibling_step(world: World) -> None:
    record = world.submit(world.purchase())
    approval = world.only("mia")
    world.decide("mia", approval["id"])
    world.decide("fay", approval["id"])
    done = world.approvals.reject(world.actors["lea"], approval["id"], comment="no contract")
    steps = {s["name"]: s["status"] for s in done["steps"]}
    assert steps == {"manager": "approved", "finance": "cancelled", "legal": "rejected"}
    fred = next(
        t for s in done["steps"] for t in s["tasks"] if t["approver_id"] == world.ids["fred"]
    )
    assert fred["status"] == "cancelled" and world.state(record) == "rejected"
    assert world.pending("fred") == []


def test_who_each_approver_names(world: World) -> None:
    ids, directory = world.ids, Directory(world.records)
    purchase = world.purchase(reviewer=ids["rex"])
    ent = world.records.model.entity("purchase")
    with world.records.engine.connect() as conn:

        def names(approver: str, relative_to: int | None = None) -> tuple[list[int], str]:
            return directory.resolve(conn, approver, ent, purchase, ids["ann"], relative_to)

        assert names("manager")[0] == [ids["mia"]]
        assert names("manager:2")[0] == [ids["dan"]]
        assert names("manager:3") == ([], "the owner has no active manager 3 levels up")
        assert names("manager", relative_to=ids["mia"])[0] == [ids["dan"]]
        assert names("role:finance")[0] == [ids["fay"], ids["fred"]]
        assert names("user:lea")[0] == [ids["lea"]]
        assert names("user:nobody") == ([], "there is no active user 'nobody'")
        assert names("field:reviewer")[0] == [ids["rex"]]
        # a manager sees only their team's (and below) purchases
        assert names("role:manager")[0] == [ids["dan"], ids["mia"]]
        solo = world.purchase("solo")
        assert directory.resolve(conn, "role:manager", ent, solo, None)[0] == [ids["dan"]]
