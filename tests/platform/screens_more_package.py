"""The screens' package (``screens_package``) with what the kanban, calendar, report and
dashboard pages need: a deal pipeline whose stage a workflow moves (a guard, a transition
that needs a field), tasks on a calendar with a plain choice kanban, a report with a
period and an owner parameter, and a dashboard for reps."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import screens_package
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from screens_package import PACKAGE, log_in

MORE = """\
---
kind: entity
name: opportunity
label: {en: Opportunity, zh: 商机, ja: 商談}
plural_label: {en: Opportunities, zh: 商机, ja: 商談}
icon: target
ownable: true
title_field: name
search_fields: [name]
fields:
  name: {type: string, label: {en: Opportunity name, zh: 商机名称, ja: 商談名}, required: true}
  amount: {type: money, label: {en: Amount, zh: 金额, ja: 金額}}
  margin: {type: money, label: {en: Margin, zh: 毛利, ja: 粗利}}
  lost_reason: {type: string, label: {en: Lost reason, zh: 输单原因, ja: 失注理由}}
  close_date: {type: date, label: {en: Close date, zh: 成交日期, ja: 受注予定日}}
  stage:
    type: choice
    label: {en: Stage, zh: 阶段, ja: フェーズ}
    options:
      - {value: new, label: {en: New, zh: 新建, ja: 新規}, color: blue}
      - {value: proposal, label: {en: Proposal, zh: 方案, ja: 提案}, color: orange}
      - {value: won, label: {en: Won, zh: 赢单, ja: 受注}, color: green}
      - {value: lost, label: {en: Lost, zh: 输单, ja: 失注}, color: red}
list_views:
  - {name: all, columns: [name, stage, amount, close_date, owner_id], sort: name, default: true}
kanban:
  field: stage
  title: name
  card_fields: [amount, margin, close_date, owner_id]
  sum: amount
---
kind: workflow
name: pipeline
label: {en: Pipeline, zh: 销售流程, ja: パイプライン}
entity: opportunity
field: stage
states:
  - {name: new, initial: true, label: {en: New, zh: 新建, ja: 新規}}
  - {name: proposal, label: {en: Proposal, zh: 方案, ja: 提案}}
  - {name: won, final: true, label: {en: Won, zh: 赢单, ja: 受注}}
  - {name: lost, final: true, label: {en: Lost, zh: 输单, ja: 失注}}
transitions:
  - {name: propose, label: {en: Propose, zh: 提交方案, ja: 提案へ}, from: [new], to: proposal}
  - name: win
    label: {en: Mark won, zh: 赢单, ja: 受注}
    from: [proposal]
    to: won
    guard: amount > 0
  - name: lose
    label: {en: Mark lost, zh: 输单, ja: 失注}
    from: [new, proposal]
    to: lost
    required_fields: [lost_reason]
---
kind: entity
name: task
label: {en: Task, zh: 任务, ja: タスク}
plural_label: {en: Tasks, zh: 任务, ja: タスク}
icon: checkbox
ownable: true
title_field: subject
fields:
  subject: {type: string, label: {en: Subject, zh: 主题, ja: 件名}, required: true}
  due: {type: datetime, label: {en: Due, zh: 截止时间, ja: 期限}}
  status:
    type: choice
    label: {en: Status, zh: 状态, ja: ステータス}
    default: todo
    options:
      - {value: todo, label: {en: To do, zh: 待办, ja: 未着手}}
      - {value: doing, label: {en: Doing, zh: 进行中, ja: 対応中}}
      - {value: done, label: {en: Done, zh: 已完成, ja: 完了}}
  priority:
    type: choice
    label: {en: Priority, zh: 优先级, ja: 優先度}
    options:
      - {value: high, label: {en: High, zh: 高, ja: 高}, color: red}
      - {value: low, label: {en: Low, zh: 低, ja: 低}, color: green}
kanban: {field: status, title: subject, card_fields: [due, priority]}
calendar: {start: due, title: subject, color: priority}
---
kind: report
name: deals_by_stage
label: {en: Deals by stage, zh: 各阶段商机, ja: フェーズ別商談}
entity: opportunity
params:
  - {name: period, type: period, label: {en: Closing, zh: 成交时间, ja: 受注時期}}
  - {name: owner, type: integer, label: {en: Owner, zh: 负责人, ja: 担当者}}
filter: >
  (is_empty(params.period.start)
   or (close_date >= params.period.start and close_date <= params.period.end))
  and (is_empty(params.owner) or owner_id == params.owner)
group_by: [stage]
measures:
  - {name: deals, aggregate: count, label: {en: Deals, zh: 商机数, ja: 件数}}
  - {name: amount, aggregate: sum, field: amount, label: {en: Amount, zh: 金额, ja: 金額}}
  - {name: margin, aggregate: sum, field: margin, label: {en: Margin, zh: 毛利, ja: 粗利}}
chart: {type: bar, x: stage, y: [amount, margin]}
---
kind: report
name: deal_funnel
label: {en: Deal funnel, zh: 商机漏斗, ja: 商談ファネル}
entity: opportunity
group_by: [stage]
measures:
  - {name: deals, aggregate: count, label: {en: Deals, zh: 商机数, ja: 件数}}
chart: {type: funnel, x: stage, y: deals}
---
kind: dashboard
name: rep_desk
label: {en: Rep desk, zh: 销售工作台, ja: 営業デスク}
roles: [rep]
widgets:
  - {name: stages, type: report, report: deals_by_stage, width: 8}
  - name: total
    label: {en: Pipeline total, zh: 商机总额, ja: 商談総額}
    type: metric
    report: deals_by_stage
    width: 4
  - name: open_tasks
    label: {en: Open tasks, zh: 未完成任务, ja: 未完了のタスク}
    type: list
    entity: task
    filter: status != 'done'
    width: 6
"""

ROLES = {
    "rep": "  opportunity: {read: own, create: own, update: own, fields: {margin: hidden}}\n"
    "  task: {read: own, create: own, update: own}\n",
}


def package_text() -> str:
    text = textwrap.dedent(PACKAGE)
    anchor = "  deal: {read: own, create: own, update: own}\n"
    assert anchor in text
    return text.replace(anchor, anchor + ROLES["rep"]) + MORE


def make_app(db_url: str, tmp_path: Path, **config: Any) -> Flask:
    return screens_package.make_app(db_url, tmp_path, package_text(), **config)


def actor_of(app: Flask, username: str) -> Any:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        return runtime.accounts.by_username(conn, username).actor()


def module_app(
    request: Any, tmp_path_factory: Any, seed: Callable[[Flask], None]
) -> Iterator[Flask]:
    """An app for a whole test module on the database ``request.param`` names (``sqlite``
    or ``postgresql``), seeded; PostgreSQL's schema is emptied afterwards."""
    folder = tmp_path_factory.mktemp("screens")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'heddle.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    app = make_app(url, folder)
    seed(app)
    yield app
    app.extensions["heddle"].engine.dispose()
    if request.param == "postgresql":
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()


#: The databases a module-scoped app runs on (``@pytest.fixture(params=BACKENDS)``).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def client_of(app: Flask, username: str) -> FlaskClient:
    """A test client logged in as ``username``."""
    client = app.test_client()
    log_in(client, username)
    return client


def text_of(response: Any) -> str:
    return str(response.get_data(as_text=True))
