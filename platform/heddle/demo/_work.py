"""What the rep (and the service desk) did around an account: activities, tasks, visits,
cases with their resolution and satisfaction, and expense claims."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from . import _names as names
from ._base import Scene, Teller, pick, poisson
from ._rows import Change
from ._world import DAY, Product, money

TOUCHES = {"A": 14, "B": 9, "C": 5, "D": 3}  # activities per account-year


class RepWork(Teller):
    """The activities, tasks, visits, cases and expenses of one account."""

    def activities(self, scene: Scene) -> tuple[dt.datetime, dt.datetime | None] | None:
        """The calls, visits and e-mails of the account's life; the last one and its
        follow-up date, which the account keeps."""
        rng, culture, owner, account_id = scene.rng, scene.culture, scene.owner, scene.id
        created, end, grade = scene.created, scene.until, scene.grade
        contacts, deals = scene.contacts, scene.deals
        years = max((end - created).days, 1) / 365
        count = max(1, poisson(rng, TOUCHES[grade] * years))
        moments = sorted(created + (end - created) * rng.random() for _ in range(count))
        last = None
        kinds = (
            ("call", 35),
            ("email", 20),
            ("visit", 15),
            ("meeting", 12),
            ("message", 12),
            ("note", 6),
        )
        for i, at in enumerate(moments):
            at = min(at, self.world.now - DAY / 24)
            kind = pick(rng, kinds)
            deal = next(
                (d for d in deals if d.created <= at and (d.closed is None or d.closed >= at)), None
            )
            follow = at + dt.timedelta(days=rng.randrange(3, 15)) if rng.random() < 0.6 else None
            if i == len(moments) - 1 and end >= self.world.now and follow is None:
                follow = at + dt.timedelta(days=rng.randrange(1, 12))
            self.sink.add(
                "activity",
                {
                    "kind": kind,
                    "subject": rng.choice(names.ACTIVITY_SUBJECTS[culture][kind]),
                    "occurred_at": at,
                    "account": account_id,
                    "contact": rng.choice(contacts),
                    "opportunity": deal.id if deal else None,
                    "lead": None,
                    "notes": None,
                    "next_step": rng.choice(names.NEXT_STEPS[culture]) if follow else None,
                    "next_follow_up_at": follow,
                    "owner_id": owner.id,
                },
                at=at,
                actor=owner.id,
            )
            last = (at, follow)
        return last

    def tasks(self, scene: Scene) -> None:
        rng, culture, owner, account_id = scene.rng, scene.culture, scene.owner, scene.id
        created, contacts, deals = scene.created, scene.contacts, scene.deals
        w = self.world
        manager = w.manager_of(owner)
        for _ in range(rng.choice((0, 1, 1, 2))):
            at = min(w.later(created, rng, 0, max((w.now - created).days, 1)), w.now - DAY / 24)
            due = w.later(at, rng, 1, 14)
            open_deal = next((d for d in deals if d.stage not in ("won", "lost")), None)
            values: dict[str, Any] = {
                "subject": rng.choice(names.NEXT_STEPS[culture]),
                "due": due,
                "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
                "status": "todo",
                "assignee": owner.id,
                "account": account_id,
                "contact": rng.choice(contacts),
                "lead": None,
                "case": None,
                "opportunity": open_deal.id if open_deal else None,
                "description": None,
                "cc_users": [manager.id] if manager and rng.random() < 0.3 else None,
                "owner_id": owner.id,
            }
            changes = []
            if due < w.now - 2 * DAY and rng.random() < 0.85:
                done = min(w.later(at, rng, 0, (due - at).days + 2), w.now - DAY / 24)
                changes.append(Change(done, owner.id, {"status": "done", "completed_at": done}))
            elif due > w.now and rng.random() < 0.3:
                values["status"] = "in_progress"
            self.sink.add("task", values, at=at, actor=owner.id, changes=changes)

    def visits(self, scene: Scene) -> None:
        rng, culture, owner, account_id = scene.rng, scene.culture, scene.owner, scene.id
        created, end, contacts, deals = scene.created, scene.until, scene.contacts, scene.deals
        w = self.world
        lat, lon = names.REGION_GEO[scene.region]
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            planned = created + (end - created) * rng.random() + dt.timedelta(days=2)
            booked = min(planned - dt.timedelta(days=rng.uniform(1, 5)), w.now - DAY)
            booked = max(booked, created)
            purpose = rng.choice(
                (
                    "first_visit",
                    "needs_survey",
                    "demo",
                    "negotiation",
                    "relationship",
                    "collection",
                    "after_sales",
                )
            )
            values: dict[str, Any] = {
                "subject": names.ACTIVITY_SUBJECTS[culture]["visit"][0],
                "account": account_id,
                "contact": rng.choice(contacts),
                "purpose": purpose,
                "status": "planned",
                "planned_at": planned,
                "owner_id": owner.id,
                "outcome": None,
                "cc_users": None,
                "opportunity": next((d.id for d in deals if d.created <= planned), None),
            }
            changes = []
            if planned < w.now - DAY / 6:
                if rng.random() < 0.85:
                    checked = planned + dt.timedelta(minutes=rng.randrange(-10, 30))
                    out = checked + dt.timedelta(minutes=rng.randrange(40, 150))
                    changes.append(
                        Change(
                            checked,
                            owner.id,
                            {
                                "status": "checked_in",
                                "checked_in_at": checked,
                                "location": scene.location,
                                "latitude": Decimal(f"{lat + rng.uniform(-0.3, 0.3):.6f}"),
                                "longitude": Decimal(f"{lon + rng.uniform(-0.3, 0.3):.6f}"),
                            },
                        )
                    )
                    changes.append(
                        Change(
                            min(out, w.now - DAY / 48),
                            owner.id,
                            {
                                "status": "completed",
                                "checked_out_at": min(out, w.now - DAY / 48),
                                "outcome": rng.choice(names.NEXT_STEPS[culture]),
                            },
                        )
                    )
                else:
                    changes.append(
                        Change(min(planned, w.now - DAY / 48), owner.id, {"status": "cancelled"})
                    )
            self.sink.add("visit", values, at=booked, actor=owner.id, changes=changes)

    def cases(self, scene: Scene, since: dt.datetime, products: list[Product]) -> None:
        """The won customer's cases from ``since``, about ``products`` it bought."""
        rng, culture, owner, account_id = scene.rng, scene.culture, scene.owner, scene.id
        contacts = scene.contacts
        w = self.world
        for _ in range(poisson(rng, 1.5)):
            opened = w.later(since, rng, 3, 300)
            if opened > w.now - DAY / 24:
                continue
            kind = pick(
                rng,
                (
                    ("inquiry", 35),
                    ("fault", 25),
                    ("complaint", 15),
                    ("return_refund", 8),
                    ("suggestion", 12),
                    ("other", 5),
                ),
            )
            priority = pick(rng, (("low", 20), ("normal", 50), ("high", 22), ("urgent", 8)))
            sla = {"urgent": 0.25, "high": 1, "normal": 3, "low": 7}[priority]
            # logged by the service desk (or the rep), owned by the account's rep: the
            # sales team sees its customers' cases, the service desk sees all
            agent = self.service if rng.random() < 0.8 else owner
            values = {
                "subject": names.CASE_SUBJECTS[kind][culture],
                "account": account_id,
                "contact": rng.choice(contacts),
                "product": rng.choice(products).id,
                "type": kind,
                "channel": rng.choice(("phone", "email", "web", "wechat", "on_site")),
                "priority": priority,
                "status": "open",
                "assignee": self.service.id,
                "sla_due": opened + dt.timedelta(days=sla),
                "owner_id": owner.id,
                "description": names.CASE_SUBJECTS[kind][culture],
                "feedback": None,
            }
            changes: list[Change] = []
            at = opened
            age = (w.now - opened).days
            steps = (
                ["start", "resolve", "close"]
                if age > 20 and rng.random() < 0.75
                else (
                    ["start", "resolve"]
                    if age > 5 and rng.random() < 0.6
                    else ["start"]
                    if rng.random() < 0.5
                    else []
                )
            )
            state = "open"
            for step in steps:
                at = min(w.later(at, rng, 0.1, sla * 3 + 2), w.now - DAY / 48)
                update: dict[str, Any]
                if step == "start":
                    update, target = {"status": "in_progress"}, "in_progress"
                elif step == "resolve":
                    update = {
                        "status": "resolved",
                        "resolved_at": at,
                        "resolution": rng.choice(names.RESOLUTIONS[culture]),
                    }
                    target = "resolved"
                else:
                    score = pick(rng, (("5", 40), ("4", 35), ("3", 15), ("2", 7), ("1", 3)))
                    update = {"status": "closed", "satisfaction": int(score)}
                    target = "closed"
                changes.append(
                    Change(at, self.service.id, update, ("case_lifecycle", step, state, target))
                )
                state = target
            self.sink.add("case", values, at=opened, actor=agent.id, changes=changes)

    def expenses(self, scene: Scene) -> None:
        rng, culture, owner, account_id = scene.rng, scene.culture, scene.owner, scene.id
        created, end, deals = scene.created, scene.until, scene.deals
        w = self.world
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
            at = min(created + (end - created) * rng.random(), w.now - DAY / 24)
            age = (w.now - at).days
            status = (
                pick(rng, (("paid", 70), ("approved", 12), ("rejected", 10), ("submitted", 8)))
                if age > 20
                else rng.choice(("draft", "submitted", "submitted", "approved"))
            )
            deal = next((d for d in deals if d.created <= at), None)
            values: dict[str, Any] = {
                "purpose": {
                    "zh": "客户拜访差旅费",
                    "ja": "顧客訪問の出張費",
                    "en": "Travel to visit the customer",
                }[culture],
                "account": account_id,
                "opportunity": deal.id if deal else None,
                "status": status,
                "owner_id": owner.id,
                "notes": None,
            }
            if status == "paid":
                values["paid_on"] = min(
                    (at + dt.timedelta(days=rng.randrange(7, 20))).date(), w.today
                )
            claim_id = self.sink.new_id("expense_claim")
            values["id"] = claim_id
            self.sink.add("expense_claim", values, at=at, actor=owner.id)
            for _line in range(rng.choice((1, 2, 3))):
                self.sink.add(
                    "expense_line",
                    {
                        "expense_claim": claim_id,
                        "date": (at - dt.timedelta(days=rng.randrange(0, 6))).date(),
                        "category": rng.choice(
                            ("transport", "travel", "accommodation", "meals", "entertainment")
                        ),
                        "amount": money(rng.uniform(60, 2500), 10),
                        "description": None,
                    },
                    at=at,
                    actor=owner.id,
                )
