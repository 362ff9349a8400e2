"""The record's path of states and the workflow diagram, from the CRM's workflows:
which states are done, current, to do or final, and an arc diagram whose boxes and arcs
stay inside its drawing."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from metamodel import load_packages
from metamodel.model import Model
from ui_renderer import timeline as T
from ui_renderer import workflow_path as W


@pytest.fixture(scope="module")
def model() -> Model:
    return load_packages(["apps/crm_definitions"])


def statuses(path: W.Path) -> dict[str, str]:
    return {s.name: s.status for s in (*path.steps, *path.finals)}


def test_the_states_before_the_current_one_are_done(model: Model) -> None:
    pipeline = model.workflow("opportunity_pipeline")
    path = W.path(pipeline, "proposal", [], "en")
    assert statuses(path) == {
        "initial": "done",
        "needs_analysis": "done",
        "proposal": "current",
        "negotiation": "todo",
        "won": "todo",
        "lost": "todo",
    }
    assert [s.final for s in path.finals] == [True, True] and path.current == "Proposal"
    assert path.label == "Sales pipeline"
    assert W.path(pipeline, "proposal", [], "zh").current == "方案报价"


def test_a_final_state_checks_only_the_states_the_record_passed(model: Model) -> None:
    pipeline = model.workflow("opportunity_pipeline")
    lost = W.path(pipeline, "lost", ["initial", "needs_analysis", "lost"], "en")
    assert statuses(lost) == {
        "initial": "done",
        "needs_analysis": "done",
        "proposal": "todo",
        "negotiation": "todo",
        "won": "todo",
        "lost": "current",
    }
    unknown = W.path(pipeline, None, [], "en")  # a record from before the workflow
    assert "current" not in statuses(unknown).values() and unknown.current == ""


@pytest.mark.parametrize("name", ["opportunity_pipeline", "contract_approval", "lead_lifecycle"])
def test_the_diagram_draws_every_state_and_move_inside_its_box(model: Model, name: str) -> None:
    workflow = model.workflow(name)
    drawn = W.diagram(workflow, "en", current=workflow.initial.name)
    assert [n.name for n in drawn.nodes][-1] in {s.name for s in workflow.states if s.final}
    assert {n.name for n in drawn.nodes} == {s.name for s in workflow.states}
    assert [n.name for n in drawn.nodes if n.current] == [workflow.initial.name]
    moves = {(a.source, a.target) for a in drawn.arcs if a.kind == "transition"}
    for transition in workflow.transitions:
        for state in workflow.states:
            if transition.allowed_from(state.name) and state.name != transition.to:
                assert (state.name, transition.to) in moves
    for arc in drawn.arcs:
        numbers = [int(n) for n in re.findall(r"-?\d+", arc.d)]
        assert all(0 <= x <= drawn.width for x in numbers[0::2]), arc
        start, control = numbers[1], numbers[3]
        apex = start + (control - start) * 3 / 4  # where a cubic with both controls there peaks
        assert 0 <= apex <= drawn.height and 0 <= start <= drawn.height, arc
        assert 0 < arc.label_y < drawn.height
        assert arc.forward == (numbers[1] == drawn.nodes[0].y)  # forward: above the boxes


def test_an_approvals_outcomes_are_drawn_apart(model: Model) -> None:
    drawn = W.diagram(model.workflow("contract_approval"), "ja")
    kinds = {a.kind for a in drawn.arcs}
    assert {"approved", "rejected"} <= kinds
    outcomes = {(a.source, a.target, a.label) for a in drawn.arcs if a.kind != "transition"}
    assert outcomes == {
        ("pending_approval", "approved", "契約審査"),
        ("pending_approval", "draft", "契約審査"),
    }


def test_comments_and_activities_merge_into_the_timeline_newest_first(model: Model) -> None:
    activity = model.entity("activity")
    spec = activity.views["timeline"]
    at = dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC)
    comments = T.comment_events([{"body": "Call them back", "author": "Ann", "created_at": at}])
    rows = [
        {"id": 4, "subject": "Visit", "notes": "Samples", "kind": "visit", "created_by": 2,
         "occurred_at": at + dt.timedelta(hours=1)},
        {"id": 5, "subject": "No time", "kind": "call", "occurred_at": None},
    ]  # fmt: skip
    activities = T.activity_events(activity, spec, rows, {2: "Bob"}, "zh")
    assert len(activities) == 1  # one without a time is left out
    merged = T.merge(comments, activities)
    assert [e.kind for e in merged] == ["activity", "comment"]
    first = merged[0]
    assert (first.who, first.title, first.comment, first.link) == (
        "Bob",
        "Visit",
        "Samples",
        ("activity", 4),
    )
    assert first.badge == ("拜访", "green") and first.icon == "phone-call"
    assert merged[1].comment == "Call them back" and merged[1].who == "Ann"
