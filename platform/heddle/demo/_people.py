"""The demo company's people: three sales teams with their managers, and one user of every
other role of the CRM. They log in with :data:`DEMO_PASSWORD` (README, docs/demo.md)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..accounts import Accounts

#: Every demo user's password: a local demonstration, documented like admin's.
DEMO_PASSWORD = "demo-heddle"


@dataclass(frozen=True, slots=True)
class DemoPerson:
    username: str
    name: str
    role: str
    team: str | None
    manager: str | None
    locale: str
    #: the sales team whose customers they own ("east", "north", "japan"), if any
    territory: str | None = None


TEAMS = {"east": "East China Sales", "north": "North China Sales", "japan": "Japan Sales"}

PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("wang.fang", "王芳", "sales_manager", TEAMS["east"], None, "zh", "east"),
    DemoPerson("li.wei", "李伟", "sales_rep", TEAMS["east"], "wang.fang", "zh", "east"),
    DemoPerson("chen.jing", "陈静", "sales_rep", TEAMS["east"], "wang.fang", "zh", "east"),
    DemoPerson("zhao.lei", "赵磊", "sales_manager", TEAMS["north"], None, "zh", "north"),
    DemoPerson("liu.yang", "刘洋", "sales_rep", TEAMS["north"], "zhao.lei", "zh", "north"),
    DemoPerson("sun.hao", "孙浩", "sales_rep", TEAMS["north"], "zhao.lei", "zh", "north"),
    DemoPerson("sato.yuki", "佐藤 由紀", "sales_manager", TEAMS["japan"], None, "ja", "japan"),
    DemoPerson("tanaka.ken", "田中 健", "sales_rep", TEAMS["japan"], "sato.yuki", "ja", "japan"),
    DemoPerson("emma.clark", "Emma Clark", "finance", "Finance", None, "en"),
    DemoPerson("zhou.min", "周敏", "service_agent", "Customer Service", None, "zh"),
    DemoPerson("mori.aya", "森 彩", "marketing", "Marketing", None, "ja"),
    DemoPerson("david.miller", "David Miller", "viewer", None, None, "en"),
)


@dataclass(frozen=True, slots=True)
class Member:
    """A demo person as stored: their user id and team id."""

    person: DemoPerson
    id: int
    team_id: int | None


def ensure_people(conn: sa.Connection, accounts: Accounts) -> dict[str, Member]:
    """The demo users by username, created when missing (a second load reuses them)."""
    found: dict[str, Member] = {}
    for person in PEOPLE:  # managers come before their reps
        user = accounts.by_username(conn, person.username)
        if user is None:
            user = accounts.create_user(
                conn,
                person.username,
                DEMO_PASSWORD,
                [person.role],
                team=person.team,
                manager=person.manager,
                name=person.name,
                email=f"{person.username}@demo.heddle.example",
                locale=person.locale,
            )
        found[person.username] = Member(person, user.id, user.team_id)
    return found
