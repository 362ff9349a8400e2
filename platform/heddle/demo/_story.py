"""One account's story over the 18 months: how it came (a converted lead or a rep's own
find), its people, the deals that moved stage by stage and were won or lost, then quotes,
the contract, the order, instalments paid on time or late, invoices, the activities,
visits and tasks of its rep, its cases, expenses, and — for some — the public pool.

Each story draws from a random generator seeded by the demo's seed and the account's
ordinal, so the same seed tells the same stories.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from . import _names as names
from ._base import Deal, Line, Scene, by_time, pick, poisson
from ._orders import Orders
from ._people import Member
from ._rows import Change, RowSink
from ._work import RepWork
from ._world import CENT, DAY, World, money

STAGES = ("initial", "needs_analysis", "proposal", "negotiation")
PROBABILITY = {
    "initial": 10,
    "needs_analysis": 30,
    "proposal": 50,
    "negotiation": 70,
    "won": 100,
    "lost": 0,
}
TRANSITION_TO = {
    "needs_analysis": "analyze_needs",
    "proposal": "propose",
    "negotiation": "negotiate",
    "won": "win",
    "lost": "lose",
}
# chance, on leaving a stage, that the deal is lost / won there instead of moving on
LOSE_AT = {"initial": 0.22, "needs_analysis": 0.2, "proposal": 0.22, "negotiation": 0.3}
DWELL = {"initial": 45, "needs_analysis": 40, "proposal": 35, "negotiation": 30}  # days, at most
WIN_AT = {"initial": 0.0, "needs_analysis": 0.0, "proposal": 0.1, "negotiation": 0.7}
LOST_REASONS = (
    ("price", 30),
    ("competitor", 25),
    ("no_budget", 12),
    ("timing", 10),
    ("no_decision", 10),
    ("product_fit", 8),
    ("relationship", 3),
    ("other", 2),
)
COMPETITORS = ("Salesforce", "纷享销客", "销售易", "Zoho", "HubSpot", "eセールスマネージャー")
GRADES = (("A", 10), ("B", 25), ("C", 40), ("D", 25))
BUDGET = {
    "A": (150_000, 900_000),
    "B": (60_000, 300_000),
    "C": (15_000, 90_000),
    "D": (3_000, 25_000),
}
DEALS = {"A": 4.0, "B": 2.8, "C": 1.7, "D": 1.0}  # deals per account, on average
TOUCHES = {"A": 14, "B": 9, "C": 5, "D": 3}  # activities per account-year
SOURCES = (
    ("website", 18),
    ("referral", 16),
    ("campaign", 12),
    ("trade_show", 12),
    ("cold_call", 14),
    ("advertisement", 8),
    ("partner", 10),
    ("social_media", 8),
    ("other", 2),
)
PROJECTS = {
    "zh": (
        "ERP升级项目",
        "CRM系统采购",
        "年度维保续约",
        "数据中心扩容",
        "生产线改造",
        "办公设备采购",
    ),
    "ja": ("基幹システム刷新", "CRM導入", "年間保守更新", "データセンター増強", "生産ライン改修"),
    "en": (
        "ERP upgrade",
        "CRM rollout",
        "Annual maintenance renewal",
        "Data centre expansion",
        "Plant retrofit",
    ),
}
TERRITORY = {
    "east_china": "east",
    "central_china": "east",
    "south_china": "east",
    "north_china": "north",
    "northeast_china": "north",
    "northwest_china": "north",
    "southwest_china": "north",
    "japan": "japan",
    "overseas": "japan",
    "hk_macao_taiwan": "japan",
}


class AccountStory(Orders, RepWork):
    """Tells the story of one account into ``sink``."""

    def __init__(self, world: World, sink: RowSink, companies: names.CompanyNames) -> None:
        super().__init__(world, sink)
        self.companies = companies

    # --- the account ----------------------------------------------------------------------------

    def tell(self, ordinal: int, earlier: list[dict[str, Any]]) -> dict[str, Any]:
        """Write account ``ordinal`` and all that happened around it; ``earlier`` holds
        accounts of the same batch it may name as its parent or relation."""
        w = self.world
        rng = random.Random(f"{w.seed}:account:{ordinal}")
        culture = pick(rng, (("zh", 65), ("ja", 20), ("en", 15)))
        if culture == "zh":
            region = pick(rng, names.CHINA_REGIONS)
        elif culture == "ja":
            region = "japan"
        else:
            region = pick(rng, (("overseas", 70), ("hk_macao_taiwan", 30)))
        sellers = w.sellers(TERRITORY[region])
        owner = rng.choices(
            sellers, [0.4 if m.person.role == "sales_manager" else 1.0 for m in sellers]
        )[0]
        industry = rng.choice(names.INDUSTRIES)
        grade = pick(rng, GRADES)
        company = self.company(culture, industry, rng)
        created = w.at(w.created_day(rng, latest_gap=3), rng)
        account_id = self.sink.new_id("account")
        source = pick(rng, SOURCES)
        province, city, street = rng.choice(names.PLACES[region])
        lead = None
        changes: list[Change] = []
        profile = self.profile(
            rng, culture, region, province, city, street, grade, company, ordinal
        )
        account: dict[str, Any] = {
            "id": account_id,
            "name": company,
            "type": "prospect",
            "industry": industry,
            "source": source,
            "owner_id": owner.id,
        }
        scene = Scene(rng, culture, account, region, grade, created, owner, location="")
        if rng.random() < 0.3:  # a lead marketing brought in, converted by the rep
            account["phone"] = profile.pop("phone")
            account["address"] = profile.pop("address")
            changes.append(Change(created + dt.timedelta(hours=1), owner.id, profile))
            lead = self.converted_lead(scene)
        else:
            account.update(profile)
        scene.location = profile.get("address") or profile.get("city") or region
        scene.contacts = self.contacts(scene, lead)
        scene.deals = deals = self.deals(scene, lead)
        won = [d for d in deals if d.stage == "won"]
        if won:
            first = min(d.closed for d in won if d.closed)
            changes.append(Change(first, owner.id, {"deal_status": "won", "type": "customer"}))
        for deal in won:
            self.contract(scene, deal)
        end = w.now
        pooled = (
            not won
            and not any(d.stage not in ("won", "lost") for d in deals)
            and created < w.now - 150 * DAY
            and grade in ("C", "D")
            and rng.random() < 0.35
        )
        if pooled:
            end = w.later(created, rng, 60, 120)
        scene.end = end
        last = self.activities(scene)
        if last is not None:
            changes.append(
                Change(
                    last[0], owner.id, {"last_activity_at": last[0], "next_follow_up_at": last[1]}
                )
            )
        if not pooled:
            self.tasks(scene)
        self.visits(scene)
        if won:
            since = min(d.closed for d in won if d.closed)
            self.cases(scene, since, [ln.product for d in won for ln in d.lines])
        self.expenses(scene)
        if pooled:
            pooled_at = min(w.later(end, rng, 30, 60), w.now - DAY)
            changes.append(
                Change(
                    pooled_at,
                    None,
                    {
                        "owner_id": None,
                        "team_id": None,
                        "pool": w.pools[TERRITORY[region]],
                        "pooled_at": pooled_at,
                        "previous_owner": owner.id,
                    },
                )
            )
        if grade == "A" and rng.random() < 0.4:
            account["locked"] = True
        same = [a for a in earlier if a["culture"] == culture and a["id"] != account_id]
        if same and rng.random() < 0.04:
            account["parent_account"] = rng.choice(same)["id"]
        row = self.sink.add(
            "account", account, at=created, actor=owner.id, changes=sorted(changes, key=by_time)
        )
        if same and rng.random() < 0.05:
            other = rng.choice(same)
            self.sink.add(
                "account_relation",
                {
                    "from_account": account_id,
                    "to_account": other["id"],
                    "relation_type": rng.choice(("peer", "supplier", "distributor", "partner")),
                    "note": None,
                },
                at=created,
                actor=owner.id,
            )
        for _ in range(rng.choice((0, 1, 1, 2))):
            self.open_lead(rng, owner)
        return {"id": row["id"], "culture": culture}

    def company(self, culture: str, industry: str, rng: random.Random) -> str:
        ordinal = self.world.ordinals.get(culture, 0)
        self.world.ordinals[culture] = ordinal + 1
        return self.companies.name(ordinal, culture, industry, rng)

    def profile(
        self,
        rng: random.Random,
        culture: str,
        region: str,
        province: str,
        city: str,
        street: str,
        grade: str,
        company: str,
        ordinal: int,
    ) -> dict[str, Any]:
        size = {
            "A": ("large", "enterprise"),
            "B": ("medium", "large"),
            "C": ("small", "medium"),
            "D": ("micro", "small"),
        }[grade]
        revenue = {"A": 5e8, "B": 1e8, "C": 2e7, "D": 3e6}[grade] * rng.uniform(0.3, 3)
        tags = []
        if grade == "A":
            tags.append(rng.choice(("vip", "strategic", "listed_company")))
        if culture == "zh" and rng.random() < 0.15:
            tags.append("state_owned")
        if grade == "D":
            tags.append("smb")
        return {
            "grade": grade,
            "heat": rng.choice(("hot", "warm", "warm", "cold")),
            "region": region,
            "province": province,
            "city": city,
            "address": f"{province}{city}{street}{rng.randrange(1, 999)}号"
            if culture == "zh"
            else f"{street} {rng.randrange(1, 300)}, {city}",
            "phone": names.phone(culture, rng, mobile=False),
            "website": f"https://www.{names.domain(company, ordinal, culture)}",
            "size": rng.choice(size),
            "annual_revenue": money(revenue, 10_000),
            "credit_rating": rng.choice(("AAA", "AA", "A", "A", "B", "B", "C")),
            "tags": sorted(set(tags)),
            "description": None,
        }

    # --- leads ---------------------------------------------------------------------------------

    def _lead_values(
        self, rng: random.Random, culture: str, company: str, owner: Member, created: dt.datetime
    ) -> dict[str, Any]:
        name, local = names.person(culture, rng)
        source = pick(rng, SOURCES)
        campaign = None
        if source in ("campaign", "trade_show", "advertisement", "social_media"):
            found = self.world.campaign_near(created.date(), rng)
            if found is not None:
                campaign, source = found.id, found.source
        title, _ = rng.choice(names.TITLES[culture])
        return {
            "name": name,
            "company": company,
            "title": title,
            "mobile": names.phone(culture, rng, mobile=True),
            "email": f"{local}@{names.domain(company, rng.randrange(10**6), culture)}",
            "industry": rng.choice(names.INDUSTRIES),
            "source": source,
            "campaign": campaign,
            "score": rng.randrange(20, 95),
            "owner_id": owner.id,
            "address": None,
        }

    def converted_lead(self, scene: Scene) -> dict[str, Any]:
        """The lead the account was converted from; its ids are filled by the story."""
        rng, culture, account, owner = scene.rng, scene.culture, scene.account, scene.owner
        converted = scene.created
        created = max(self.world.start, converted - dt.timedelta(days=rng.uniform(3, 40)))
        values = self._lead_values(rng, culture, account["name"], owner, created)
        values["industry"], values["source"] = account["industry"], account["source"]
        values["phone"], values["address"] = None, account["address"]
        account["phone"] = values["mobile"]  # the workflow's coalesce(phone, mobile)
        values.update(id=self.sink.new_id("lead"), status="new")
        contacted = created + (converted - created) / 3
        qualified = created + (converted - created) * 2 / 3
        return {
            "values": values,
            "created": created,
            "steps": [
                (contacted, "contact", "new", "contacted"),
                (qualified, "qualify", "contacted", "qualified"),
            ],
            "converted": converted,
        }

    def write_converted_lead(
        self, lead: dict[str, Any], account_id: int, contact_id: int, deal_id: int, owner: Member
    ) -> None:
        changes = [
            Change(at, owner.id, {"status": target}, ("lead_lifecycle", name, src, target))
            for at, name, src, target in lead["steps"]
        ]
        at = lead["converted"]
        changes.append(
            Change(
                at,
                owner.id,
                {
                    "status": "converted",
                    "converted": True,
                    "converted_at": at,
                    "converted_account": account_id,
                    "converted_contact": contact_id,
                    "converted_opportunity": deal_id,
                    "last_activity_at": at,
                },
                ("lead_lifecycle", "convert", "qualified", "converted"),
            )
        )
        self.sink.add(
            "lead", lead["values"], at=lead["created"], actor=self.marketing.id, changes=changes
        )

    def open_lead(self, rng: random.Random, owner: Member) -> None:
        """A lead not (yet) converted: worked, waiting, or disqualified."""
        w = self.world
        culture = pick(rng, (("zh", 65), ("ja", 20), ("en", 15)))
        created = w.at(w.created_day(rng, latest_gap=0), rng)
        company = self.company(culture, rng.choice(names.INDUSTRIES), rng)
        assignee = owner if rng.random() < 0.7 else self.marketing
        values = self._lead_values(rng, culture, company, assignee, created)
        values["status"] = "new"
        age = (w.now - created).days
        changes: list[Change] = []
        path = rng.random()
        steps: list[tuple[str, str, str]] = []
        if age > 45:
            if path < 0.45:
                steps = [
                    ("contact", "new", "contacted"),
                    ("disqualify", "contacted", "disqualified"),
                ]
            elif path < 0.75:
                steps = [("contact", "new", "contacted")]
            elif path < 0.85:
                steps = [("contact", "new", "contacted"), ("qualify", "contacted", "qualified")]
        elif age > 5 and path < 0.5:
            steps = [("contact", "new", "contacted")]
            if path < 0.15:
                steps.append(("qualify", "contacted", "qualified"))
        at = created
        for name, source, target in steps:
            at = min(w.later(at, rng, 1, 20), w.now - DAY / 24)
            update: dict[str, Any] = {"status": target, "last_activity_at": at}
            if target == "disqualified":
                update["disqualified_reason"] = rng.choice(
                    (
                        "No budget this year",
                        "Not a fit: too small",
                        "Duplicate enquiry",
                        "无采购计划",
                        "予算なし",
                    )
                )
            changes.append(
                Change(at, assignee.id, update, ("lead_lifecycle", name, source, target))
            )
        if values["status"] != "disqualified" and not any(
            c.values.get("status") == "disqualified" for c in changes
        ):
            values["next_follow_up_at"] = w.later(at, rng, 2, 14)
        row = self.sink.add("lead", values, at=created, actor=self.marketing.id, changes=changes)
        if steps and rng.random() < 0.6:
            self.sink.add(
                "activity",
                {
                    "kind": "call",
                    "subject": names.ACTIVITY_SUBJECTS[culture]["call"][0],
                    "occurred_at": changes[0].at,
                    "lead": row["id"],
                    "account": None,
                    "contact": None,
                    "opportunity": None,
                    "owner_id": assignee.id,
                },
                at=changes[0].at,
                actor=assignee.id,
            )

    # --- contacts --------------------------------------------------------------------------------

    def contacts(self, scene: Scene, lead: dict[str, Any] | None) -> list[int]:
        rng, culture, owner, created = scene.rng, scene.culture, scene.owner, scene.created
        account_id = scene.id
        ids = []
        count = rng.choice((1, 2, 2, 3, 3, 4))
        for n in range(count):
            title, department = rng.choice(names.TITLES[culture])
            name, local = names.person(culture, rng)
            born = self.world.today - dt.timedelta(days=rng.randrange(25 * 365, 60 * 365))
            values: dict[str, Any] = {
                "id": self.sink.new_id("contact"),
                "name": name,
                "account": account_id,
                "title": title,
                "department": department,
                "mobile": names.phone(culture, rng, mobile=True),
                "phone": names.phone(culture, rng, mobile=False) if rng.random() < 0.5 else None,
                "email": f"{local}@{names.domain('', account_id, culture)}",
                "wechat": f"wx_{local}" if culture == "zh" and rng.random() < 0.6 else None,
                "birthday": born if rng.random() < 0.6 else None,
                "is_primary": n == 0,
                "decision_role": rng.choice(("decision_maker", "evaluator", "influencer", "user")),
                "owner_id": owner.id,
            }
            at = created + dt.timedelta(minutes=n + 1)
            if n == 0 and lead is not None:  # made by the conversion from the lead's fields
                lv = lead["values"]
                values.update(
                    name=lv["name"],
                    title=lv["title"],
                    mobile=lv["mobile"],
                    phone=lv["phone"],
                    email=lv["email"],
                    department=None,
                    wechat=None,
                    birthday=None,
                    decision_role=None,
                )
                at = created
            elif n > 0:
                at = self.world.later(created, rng, 0, 60)
                at = min(at, self.world.now - DAY)
            ids.append(self.sink.add("contact", values, at=at, actor=owner.id)["id"])
        return ids

    # --- deals -----------------------------------------------------------------------------------

    def deals(self, scene: Scene, lead: dict[str, Any] | None) -> list[Deal]:
        w, rng, created = self.world, scene.rng, scene.created
        count = max(1 if lead else 0, poisson(rng, DEALS[scene.grade]))
        deals: list[Deal] = []
        for n in range(count):
            day = (created + dt.timedelta(days=rng.uniform(5, 400))).date()
            if n > 0 and day > w.today:
                continue  # not yet: this account's next deal lies in the future
            opened = created if n == 0 else w.at(day, rng)
            customer = any(d.stage == "won" for d in deals)
            deal = self.deal(scene, opened, lead if n == 0 else None, customer)
            deals.append(deal)
        return deals

    def plan_lines(self, rng: random.Random, grade: str) -> tuple[list[Line], Decimal]:
        low, high = BUDGET[grade]
        budget = rng.uniform(low, high)
        products = rng.sample(self.world.products, k=rng.choice((1, 1, 2, 2, 3)))
        lines = []
        for product in products:
            share = budget / len(products)
            quantity = max(1, round(share / float(product.list_price)))
            lines.append(
                Line(
                    product,
                    Decimal(quantity),
                    product.list_price,
                    Decimal(rng.choice((0, 0, 0, 5, 10))),
                )
            )
        discount = Decimal(rng.choice((0, 0, 3, 5, 5, 8, 10, 12, 15, 18, 20)))
        return lines, discount

    @staticmethod
    def total(lines: list[Line], discount: Decimal) -> Decimal:
        subtotal = sum((ln.amount for ln in lines), Decimal(0)).quantize(CENT, ROUND_HALF_UP)
        return (subtotal * (100 - discount) / 100).quantize(CENT, ROUND_HALF_UP)

    def deal(
        self, scene: Scene, opened: dt.datetime, lead: dict[str, Any] | None, customer: bool
    ) -> Deal:
        """One opportunity, moved stage by stage from ``opened`` until it is won or lost or
        now comes; ``customer``: the account has won a deal before."""
        w, rng, culture, owner, grade = (
            self.world,
            scene.rng,
            scene.culture,
            scene.owner,
            scene.grade,
        )
        account, contacts = scene.account, scene.contacts
        lines, discount = self.plan_lines(rng, grade)
        amount = self.total(lines, discount)
        deal_id = self.sink.new_id("opportunity")
        short = account["name"][:40]
        expected = (opened + dt.timedelta(days=rng.uniform(45, 150))).date()
        plan = {
            "amount": amount,
            "expected_close_date": expected,
            "type": ("upsell" if rng.random() < 0.6 else "renewal") if customer else "new_business",
            "next_step": rng.choice(names.NEXT_STEPS[culture]),
            "competitor": rng.choice(COMPETITORS) if rng.random() < 0.3 else None,
        }
        values: dict[str, Any] = {
            "id": deal_id,
            "account": account["id"],
            "stage": "initial",
            "probability": 10,
            "stage_changed_at": opened,
            "owner_id": owner.id,
        }
        changes: list[Change] = []
        if lead is not None:  # the conversion made it with the lead's fields; the rep adds the rest
            lv = lead["values"]
            values.update(
                name=account["name"],
                source=lv["source"],
                campaign=lv["campaign"],
                description=lv.get("description"),
            )
            changes.append(Change(opened + dt.timedelta(hours=2), owner.id, plan))
        else:
            source = "existing_customer" if customer else account["source"]
            values.update(
                plan,
                name=f"{short} {rng.choice(PROJECTS[culture])}"[:200],
                source=source,
                campaign=None,
            )
        deal = Deal(deal_id, opened, "initial", amount, lines, discount)
        stage, entered, at = "initial", opened, opened + dt.timedelta(hours=3)
        odds = {"A": 1.25, "B": 1.1, "C": 1.0, "D": 0.8}[grade]
        while True:
            at = w.later(at, rng, 7, DWELL[stage])
            if at > w.now:
                break
            roll = rng.random()
            lose, win = LOSE_AT[stage] / odds, WIN_AT[stage] * odds
            if roll < lose:
                target = "lost"
            elif roll < lose + win or stage == "negotiation":
                target = (
                    "won"
                    if stage in ("proposal", "negotiation")
                    else STAGES[STAGES.index(stage) + 1]
                )
            else:
                target = STAGES[STAGES.index(stage) + 1]
            update: dict[str, Any] = {
                "stage": target,
                "probability": PROBABILITY[target],
                "stage_changed_at": at,
            }
            if target in ("won", "lost"):
                update["closed_date"] = at.date()
            if target == "lost":
                reason = pick(rng, LOST_REASONS)
                update.update(
                    lost_reason=reason,
                    stage_lost_at=stage,
                    lost_note=_LOST_NOTES[culture] if rng.random() < 0.5 else None,
                )
                if reason == "competitor":
                    update["competitor"] = rng.choice(COMPETITORS)
            self.sink.add(
                "stage_history",
                {
                    "opportunity": deal_id,
                    "from_stage": stage,
                    "to_stage": target,
                    "changed_at": at,
                    "changed_by": owner.id,
                    "days_in_stage": (at.date() - entered.date()).days,
                    "amount": amount,
                    "probability": PROBABILITY[stage],
                },
                at=at,
                actor=owner.id,
            )
            changes.append(
                Change(
                    at,
                    owner.id,
                    update,
                    ("opportunity_pipeline", TRANSITION_TO[target], stage, target),
                )
            )
            if target == "proposal":
                deal.reached_proposal = at
            stage, entered = target, at
            if target in ("won", "lost"):
                deal.closed = at
                break
        deal.stage = stage
        overdue = stage not in ("won", "lost") and expected < w.today
        if overdue and rng.random() < 0.8:
            # still open after its expected close: the rep (mostly) moves the date out
            moved = max(entered, w.now - dt.timedelta(days=rng.uniform(1, 14)))
            later = w.today + dt.timedelta(days=rng.randrange(7, 75))
            changes.append(Change(moved, owner.id, {"expected_close_date": later}))
        # who is involved, with their role: the opportunity's contacts (children rows)
        for contact in rng.sample(contacts, k=min(len(contacts), rng.choice((1, 1, 2)))):
            self.sink.add(
                "opportunity_contact",
                {
                    "opportunity": deal_id,
                    "contact": contact,
                    "role": rng.choice(("decision_maker", "evaluator", "influencer")),
                    "note": None,
                },
                at=opened,
                actor=owner.id,
            )
        self.sink.add(
            "opportunity", values, at=opened, actor=owner.id, changes=sorted(changes, key=by_time)
        )
        if lead is not None:
            self.write_converted_lead(lead, account["id"], contacts[0], deal_id, owner)
        if deal.reached_proposal is not None:
            self.quote(scene, deal)
        if stage == "won" and deal.closed is not None:
            key = (owner.id, deal.closed.year, deal.closed.month)
            w.won[key] = w.won.get(key, Decimal(0)) + amount
        return deal


_LOST_NOTES = {
    "zh": "客户最终选择了其他方案",
    "ja": "最終的に他社案が採用された",
    "en": "They went with another offer in the end",
}
