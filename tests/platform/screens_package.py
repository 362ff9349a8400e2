"""A small package for the screens' tests: a form with sections, a tab and a related list,
two list views, labels in three languages, and roles that scope and hide."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from sqlalchemy.engine import Engine

PACKAGE = """\
kind: package
name: shop
locales: [en, zh, ja]
currency: CNY
---
kind: entity
name: account
label: {en: Account, zh: 客户, ja: 顧客}
plural_label: {en: Accounts, zh: 客户, ja: 顧客}
icon: building
ownable: true
title_field: name
search_fields: [name]
fields:
  name: {type: string, label: {en: Account name, zh: 客户名称, ja: 顧客名}, required: true, max_length: 100}
  grade:
    type: choice
    label: {en: Grade, zh: 客户等级, ja: 顧客ランク}
    options:
      - {value: A, label: {en: Key, zh: 重点, ja: 重要}, color: red}
      - {value: B, label: {en: Regular, zh: 普通, ja: 一般}}
  revenue: {type: money, label: {en: Revenue, zh: 营业额, ja: 売上高}, min: 0}
  cost: {type: money, label: {en: Cost, zh: 成本, ja: 原価}}
  website: {type: url, label: {en: Website, zh: 网址, ja: ウェブサイト}}
  active: {type: boolean, label: {en: Active, zh: 有效, ja: 有効}, default: true}
  since: {type: date, label: {en: Customer since, zh: 合作日期, ja: 取引開始日}}
  notes: {type: text, label: {en: Notes, zh: 备注, ja: 備考}}
form:
  sections:
    - name: basic
      label: {en: Basics, zh: 基本信息, ja: 基本情報}
      columns: 2
      fields: [name, grade, revenue, cost, website, active, since]
  tabs:
    - name: more
      label: {en: More, zh: 更多, ja: その他}
      sections:
        - {name: notes, label: {en: Remarks, zh: 说明, ja: 説明}, fields: [notes]}
  related:
    - name: deals
      label: {en: Deals, zh: 商机, ja: 商談}
      entity: deal
      via: account
      columns: [title, amount]
list_views:
  - name: all
    label: {en: All accounts, zh: 全部客户, ja: すべての顧客}
    columns: [name, grade, revenue, owner_id]
    sort: name
    default: true
  - name: key
    label: {en: Key accounts, zh: 重点客户, ja: 重要顧客}
    columns: [name, revenue]
    filter: "grade == 'A'"
---
kind: entity
name: deal
label: {en: Deal, zh: 商机, ja: 商談}
plural_label: {en: Deals, zh: 商机, ja: 商談}
ownable: true
title_field: title
fields:
  title: {type: string, label: {en: Deal name, zh: 商机名称, ja: 商談名}, required: true}
  account: {type: reference, to: account, on_delete: cascade, required: true, label: {en: Account, zh: 客户, ja: 顧客}}
  amount: {type: money, label: {en: Amount, zh: 金额, ja: 金額}}
---
kind: role
name: rep
permissions:
  account:
    read: own
    create: own
    update: own
    fields: {cost: hidden}
  deal: {read: own, create: own, update: own}
---
kind: role
name: viewer
permissions:
  "*": {read: all}
"""

PASSWORD = "correct horse battery"
PEOPLE = [("root", ["admin"]), ("ann", ["rep"]), ("bob", ["rep"]), ("vic", ["viewer"])]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(db_url: str, tmp_path: Path, text: str = PACKAGE, **config: Any) -> Flask:
    package = tmp_path / "shop.yaml"
    package.write_text(textwrap.dedent(text), encoding="utf-8")
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "PACKAGES": str(package),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TESTING": True,
            **config,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        for username, roles in PEOPLE:
            runtime.accounts.create_user(conn, username, PASSWORD, roles, team="Sales")
    return app


def app_fixture(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(db_url, tmp_path)
    yield app
    app.extensions["heddle"].engine.dispose()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in(client: FlaskClient, username: str) -> None:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
