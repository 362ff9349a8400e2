"""What the demo company has besides its customers: the product catalogue, the marketing
campaigns and each channel's running spend, the public pools, sales targets set from how
each rep actually sells, daily reports, announcements and knowledge-base articles."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine import Tables

from ._rows import RowSink
from ._world import CAMPAIGN_SOURCE, DAY, Campaign, Product, World, money

# name, code, category, unit, list price, cost
CATALOGUE = (
    ("智能网关 Smart Gateway G200", "HW-G200", "hardware", "piece", 8_800, 5_200),
    ("边缘服务器 Edge Server E10", "HW-E10", "hardware", "set", 46_000, 31_000),
    ("工业传感器套件 Sensor Kit", "HW-SK4", "hardware", "box", 3_600, 1_900),
    ("扫码终端 Handheld Scanner", "HW-HS2", "hardware", "piece", 2_400, 1_450),
    ("CRM 企业版 Enterprise (per user/year)", "SW-CRM-E", "software", "user", 1_800, 200),
    ("ERP 标准版 Standard licence", "SW-ERP-S", "software", "license", 68_000, 9_000),
    ("数据分析平台 Analytics licence", "SW-BI", "software", "license", 24_000, 3_000),
    ("云存储 Cloud Storage 1TB (year)", "SUB-CS1", "subscription", "year", 4_200, 1_300),
    ("协同办公 Workspace (per user/year)", "SUB-WS", "subscription", "user", 600, 90),
    ("安全防护 Security Suite (year)", "SUB-SEC", "subscription", "year", 15_000, 4_000),
    ("实施服务 Implementation (day)", "SV-IMP", "service", "day", 3_200, 1_500),
    ("培训服务 Training (day)", "SV-TRN", "service", "day", 2_800, 1_100),
    ("定制开发 Custom development (day)", "SV-DEV", "service", "day", 4_000, 2_100),
    ("年度维保 Annual maintenance", "MT-ANN", "maintenance", "year", 12_000, 4_500),
    ("驻场支持 On-site support (month)", "MT-ONS", "maintenance", "month", 18_000, 9_500),
    ("打印耗材 Printer supplies", "CS-PRT", "consumable", "box", 480, 260),
    ("标签纸 Label rolls", "CS-LBL", "consumable", "box", 220, 95),
    ("旧型号网关 Gateway G100 (retired)", "HW-G100", "hardware", "piece", 6_500, 4_100),
)

CAMPAIGN_TYPES = (
    ("trade_show", "展会"),
    ("seminar", "研讨会"),
    ("webinar", "Webinar"),
    ("online_ad", "Online ads"),
    ("email", "EDM"),
    ("social_media", "WeChat"),
    ("content", "Whitepaper"),
)
CAMPAIGN_NAMES = (
    "{year} 春季新品发布会",
    "Tokyo IT Week {year}",
    "{year} 智能制造峰会",
    "Q{q} {year} CRM webinar series",
    "{year} 年末感谢祭キャンペーン",
    "华南渠道伙伴大会 {year}",
    "{year} 秋季数字化转型研讨会",
    "Singapore Tech Expo {year}",
)


def products(sink: RowSink, tables: Tables, at: dt.datetime, actor: int) -> list[Product]:
    """The catalogue: read when it is there (a second load), else written."""
    table = tables.table("product")
    with sink.engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.active.is_(True))).mappings().all()
    if rows:
        return [
            Product(r["id"], r["name"], r["category"], r["list_price"], r["cost"]) for r in rows
        ]
    found = []
    for name, code, category, unit, price, cost in CATALOGUE:
        active = not name.endswith("(retired)")
        row = sink.add(
            "product",
            {
                "name": name,
                "code": code,
                "category": category,
                "unit": unit,
                "list_price": money(price),
                "cost": money(cost),
                "active": active,
                "description": None,
            },
            at=at,
            actor=actor,
        )
        if active:
            found.append(Product(row["id"], name, category, row["list_price"], row["cost"]))
    return found


def campaigns(sink: RowSink, world: World, count: int, rng: random.Random) -> list[Campaign]:
    """``count`` campaigns spread over the 18 months (and one coming up), oldest first."""
    marketing = world.role("marketing")
    found = []
    for n in range(count):
        start = world.start.date() + dt.timedelta(
            days=int((world.span_days + 30) * (n + 0.5) / count)
        )
        start -= dt.timedelta(days=start.weekday())  # campaigns start on Mondays
        kind, label = CAMPAIGN_TYPES[n % len(CAMPAIGN_TYPES)]
        end = start + dt.timedelta(days=rng.choice((1, 2, 3, 14, 30)))
        status = (
            "completed"
            if end < world.today
            else "in_progress"
            if start <= world.today
            else "planned"
        )
        budget = money(rng.uniform(20_000, 300_000), 1_000)
        name = rng.choice(CAMPAIGN_NAMES).format(year=start.year, q=(start.month - 1) // 3 + 1)
        created = world.at(max(start - 30 * DAY, world.start.date()), rng)
        row = sink.add(
            "campaign",
            {
                "name": f"{name} · {label} #{n + 1}",
                "type": kind,
                "source": CAMPAIGN_SOURCE[kind],
                "status": status,
                "start_date": start,
                "end_date": end,
                "budget": budget,
                "actual_cost": (budget * Decimal(str(round(rng.uniform(0.7, 1.1), 2)))).quantize(
                    Decimal("0.01")
                )
                if status != "planned"
                else None,
                "expected_revenue": budget * rng.randrange(3, 9),
                "description": None,
                "owner_id": marketing.id,
            },
            at=min(created, world.now - DAY),
            actor=marketing.id,
        )
        found.append(Campaign(row["id"], kind, CAMPAIGN_SOURCE[kind], start, end))
    return sorted(found, key=lambda c: c.start)


# The spend of the lead sources no campaign buys, per quarter at scale 1 (yuan, low-high):
# the website's upkeep and search ads, referral rewards, the outsourced call team,
# partners' commissions. Each is a campaign record of type "other" with its source, so
# lead_source_roi has a cost for every source.
CHANNELS = (
    ("website", "官网与搜索推广 Website & SEO", 20_000, 60_000),
    ("referral", "老客户转介绍奖励 Referral rewards", 10_000, 40_000),
    ("cold_call", "电话外呼外包 Outsourced calling", 30_000, 80_000),
    ("partner", "渠道伙伴佣金 Partner commissions", 40_000, 120_000),
)


def channel_costs(sink: RowSink, world: World, factor: float, rng: random.Random) -> None:
    """Each channel's spend, one record a quarter over the 18 months (the current
    quarter's cost so far), ``factor`` times scale 1's."""
    marketing = world.role("marketing")
    first = world.start.date()
    quarter = dt.date(first.year, 3 * ((first.month - 1) // 3) + 1, 1)
    while quarter <= world.today:
        following = dt.date(quarter.year + quarter.month // 10, (quarter.month + 2) % 12 + 1, 1)
        start, end = max(quarter, first), following - DAY
        ran = (min(end, world.today) - start).days + 1
        share = Decimal(ran) / Decimal((end - start).days + 1)
        for source, name, low, high in CHANNELS:
            budget = money(rng.uniform(low, high) * factor, 100)
            sink.add(
                "campaign",
                {
                    "name": f"{name} {quarter.year} Q{(quarter.month - 1) // 3 + 1}",
                    "type": "other",
                    "source": source,
                    "status": "completed" if end < world.today else "in_progress",
                    "start_date": start,
                    "end_date": end,
                    "budget": budget,
                    "actual_cost": (budget * share).quantize(Decimal("0.01")),
                    "expected_revenue": None,
                    "description": None,
                    "owner_id": marketing.id,
                },
                at=min(world.at(start, rng), world.now - DAY),
                actor=marketing.id,
            )
        quarter = following


POOLS = {
    "east": "华东公海 East China pool",
    "north": "华北公海 North China pool",
    "japan": "日本・海外プール Japan & overseas pool",
}


def pools(
    sink: RowSink, world: World, tables: Tables, at: dt.datetime, actor: int
) -> dict[str, int]:
    """One public pool per sales team, with recycle rules by grade; reused when present."""
    table = tables.table("pool")
    with sink.engine.connect() as conn:
        existing = {name: id_ for name, id_ in conn.execute(sa.select(table.c.name, table.c.id))}
    found = {}
    for territory, name in POOLS.items():
        if name in existing:
            found[territory] = existing[name]
            continue
        sellers = world.sellers(territory)
        managers = [m.id for m in sellers if m.person.role == "sales_manager"]
        pool_id = sink.add(
            "pool",
            {
                "name": name,
                "description": None,
                "admins": managers,
                "members": [m.id for m in sellers],
                "member_teams": [sellers[0].team_id],
                "hidden_fields": ["phone"],
                "max_owned_accounts": 300,
            },
            at=at,
            actor=actor,
        )["id"]
        found[territory] = pool_id
        for condition, grade, days in (
            ("no_follow_up", "A", 90),
            ("no_follow_up", "B", 60),
            ("no_follow_up", "C", 30),
            ("no_follow_up", "D", 20),
            ("no_opportunity", None, 90),
            ("not_won", None, 180),
        ):
            sink.add(
                "pool_rule",
                {"pool": pool_id, "condition": condition, "grade": grade, "days": days},
                at=at,
                actor=actor,
            )
    return found


def targets(sink: RowSink, world: World, rng: random.Random, actor: int) -> None:
    """Monthly targets for this year and last, per seller, per team and for the company,
    of each metric: set a little above what each actually won and collected."""
    sellers = [m for m in world.people.values() if m.person.territory]
    # contracts are signed for won deals: won and contract amounts share their actuals
    metrics = (
        ("won_amount", world.won),
        ("contract_amount", world.won),
        ("payment_amount", world.paid),
    )
    for year in (world.today.year - 1, world.today.year):
        at = world.at(max(dt.date(year, 1, 5), world.start.date()), rng)  # set in January
        for metric, actuals in metrics:
            company = [Decimal(0)] * 12
            teams: dict[int, tuple[str, list[Decimal]]] = {}
            for member in sellers:
                total = sum(
                    (v for (who, _y, _m), v in actuals.items() if who == member.id), Decimal(0)
                )
                monthly = float(total) / 18 if total else 50_000.0
                months = [money(monthly * rng.uniform(0.9, 1.35), 1_000) for _ in range(12)]
                name = f"{member.person.name} {year}"
                values = _target(name, year, "user", metric, months, user=member.id)
                sink.add("sales_target", values, at=at, actor=actor)
                team_name = member.person.team or ""
                _, team = teams.setdefault(member.team_id or 0, (team_name, [Decimal(0)] * 12))
                for i, value in enumerate(months):
                    team[i] += value
                    company[i] += value
            for team_id, (team_name, months) in teams.items():
                values = _target(f"{team_name} {year}", year, "team", metric, months, team=team_id)
                sink.add("sales_target", values, at=at, actor=actor)
            values = _target(f"Company {year}", year, "company", metric, company)
            sink.add("sales_target", values, at=at, actor=actor)


def _target(
    name: str,
    year: int,
    scope: str,
    metric: str,
    months: list[Decimal],
    user: int | None = None,
    team: int | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": name,
        "year": year,
        "scope": scope,
        "user": user,
        "team": team,
        "metric": metric,
        "level": "target",
        "notes": None,
    }
    values.update({f"m{i + 1:02d}": v for i, v in enumerate(months)})
    return values


def daily_reports(sink: RowSink, world: World, rng: random.Random) -> None:
    """The sellers' daily reports of the last three weeks' workdays."""
    texts = {
        "zh": ("拜访客户2家，电话跟进5个", "明天准备报价方案", "客户预算审批较慢"),
        "ja": ("顧客訪問2件、電話フォロー5件", "明日は見積書を作成", "先方の稟議が遅れている"),
        "en": (
            "Two visits, five follow-up calls",
            "Prepare the quote tomorrow",
            "Their approval is slow",
        ),
    }
    for member in world.people.values():
        if not member.person.territory:
            continue
        done, plan, problem = texts[member.person.locale]
        for back in range(1, 22):
            day = world.today - dt.timedelta(days=back)
            if day.weekday() >= 5 or rng.random() < 0.15:
                continue
            at = dt.datetime(day.year, day.month, day.day, 10, tzinfo=dt.UTC)  # 18:00 in Beijing
            sink.add(
                "daily_report",
                {
                    "date": day,
                    "done": done,
                    "plan": plan,
                    "problems": problem if rng.random() < 0.3 else None,
                    "owner_id": member.id,
                    "cc_users": None,
                },
                at=at,
                actor=member.id,
            )


def notices(sink: RowSink, world: World, rng: random.Random, actor: int) -> None:
    """A few announcements and knowledge-base articles."""
    for title, body, audience, days_ago, pinned in (
        (
            "Welcome to Heddle CRM · 欢迎使用 · ようこそ",
            "This demo company has 18 months of history: explore the cockpit.",
            "everyone",
            540,
            True,
        ),
        (
            "Q4 sales push: 冲刺季度目标",
            "Every deal in negotiation gets a manager review.",
            "sales",
            60,
            False,
        ),
        (
            "回款提醒 Collections",
            "Please follow up overdue instalments this week.",
            "finance",
            10,
            False,
        ),
        (
            "New price list",
            "List prices for the G200 gateway change next month.",
            "everyone",
            25,
            False,
        ),
    ):
        at = world.at(world.today - dt.timedelta(days=days_ago), rng)
        sink.add(
            "announcement",
            {
                "title": title,
                "body": body,
                "audience": audience,
                "published_at": at,
                "pinned": pinned,
                "expires_at": None,
                "audience_teams": None,
            },
            at=at,
            actor=actor,
        )
    for title, category, body in (
        (
            "How to run a discovery call · 需求挖掘话术",
            "sales_playbook",
            "Ask about budget, authority, need and timing.",
        ),
        ("G200 gateway FAQ", "faq", "Reset: hold the button for ten seconds."),
        ("Case study: 华信智软件", "case_study", "From spreadsheets to one pipeline in six weeks."),
        ("Expense policy · 报销制度", "policy", "Claims within 30 days, receipts attached."),
        ("Onboarding training", "training", "Day one: the CRM, the pipeline and the pool rules."),
    ):
        at = world.at(world.start.date() + dt.timedelta(days=rng.randrange(0, 200)), rng)
        sink.add(
            "article",
            {"title": title, "category": category, "body": body, "keywords": None, "product": None},
            at=at,
            actor=actor,
        )
