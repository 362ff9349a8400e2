"""Importing users and teams (administrators only): the same files, options and report
as a record import, written through :class:`~heddle.accounts.Accounts`.

Users: ``username`` (the key), ``name``, ``email``, ``roles`` (separated by commas),
``team``, ``manager`` (a username), ``locale``, ``active``, ``password`` (a user imported
without one cannot log in until an administrator sets one). Teams: ``name`` (the key)
and ``parent``. Headers may be these names or their English, Chinese or Japanese words.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from engine import Actor, Forbidden, ValidationFailed
from engine.imports import ImportOptions, Imports, Report
from engine.imports._convert import LIST_SEPARATORS, CellError, boolean, empty, fold, text
from engine.imports._run import Outcome

from .accounts import KEEP, AccountError, Accounts

PEOPLE = ("user", "team")
WORDS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "user": {
        "username": ("username", "login", "用户名", "账号", "ユーザー名", "ログインid"),
        "name": ("name", "full name", "姓名", "名称", "氏名", "名前"),
        "email": ("email", "e-mail", "mail", "邮箱", "电子邮件", "メールアドレス", "メール"),
        "roles": ("roles", "role", "角色", "ロール", "役割"),
        "team": ("team", "团队", "部门", "チーム", "部署"),
        "manager": ("manager", "上级", "经理", "上司"),
        "locale": ("locale", "language", "语言", "言語"),
        "active": ("active", "enabled", "启用", "有効"),
        "password": ("password", "密码", "パスワード"),
    },
    "team": {
        "name": ("name", "team", "团队", "团队名称", "チーム", "チーム名"),
        "parent": ("parent", "parent team", "上级团队", "親チーム"),
    },
}


def _columns(
    kind: str, headers: list[str], given: Mapping[str, str | None] | None
) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        target: str | None = None
        for name, words in WORDS[kind].items():
            if fold(header) in {fold(w) for w in words}:
                target = name
        if given is not None and header in given:
            target = given[header]
        if target is not None and target not in WORDS[kind]:
            raise ValidationFailed(
                f"{kind}s have no field '{target}'", {header: ["Unknown field."]}
            )
        if target is not None:
            found.setdefault(target, index)
    key = "username" if kind == "user" else "name"
    if key not in found:
        raise ValidationFailed(f"the file needs a {key} column", {key: ["Missing column."]})
    return found


def import_people(
    imports: Imports,
    accounts: Accounts,
    actor: Actor,
    kind: str,
    content: bytes,
    filename: str,
    options: ImportOptions,
) -> dict[str, Any]:
    """Import users or teams; the stored run with its report."""
    if not actor.is_admin:
        raise Forbidden(f"only administrators may import {kind}s")
    sheet = imports.read(content, filename, options)
    columns = _columns(kind, sheet.headers, options.mapping)
    mapping = [{"column": i + 1, "header": h,
                "field": next((n for n, c in columns.items() if c == i), None)}
               for i, h in enumerate(sheet.headers)]  # fmt: skip
    report = Report(mapping, len(sheet.rows), options.dry_run, options.all_or_nothing)
    engine = imports.records.engine
    with engine.connect() as conn, conn.begin() as outer:
        for number, cells in sheet.rows:
            values = {name: cells[index] for name, index in columns.items()}
            try:
                with conn.begin_nested():
                    status = _write(accounts, conn, kind, values, options)
                report.add(Outcome(number, status))
            except (AccountError, CellError) as exc:
                field = getattr(exc, "field", None)
                header = sheet.headers[columns[field]] if field in columns else None
                error = {"row": number, "message": str(exc), "field": field, "column": header}
                report.counts["error"] += 1
                report.rows.append({"row": number, "status": "error", "errors": [error]})
        failed = report.counts["error"] > 0
        report.done = len(sheet.rows)
        if options.dry_run or (failed and options.all_or_nothing):
            outer.rollback()
        else:
            report.committed = True
    with engine.begin() as conn:
        run_id = imports.store.create_run(conn, kind="import", entity=kind, actor=actor,
                                          options=options.to_json(), filename=filename,
                                          content=content, total=len(sheet.rows))  # fmt: skip
        imports.store.update_run(conn, run_id, status="done", done=report.done,
                                 report=report.to_dict())  # fmt: skip
    return imports.status(actor, run_id)


def _write(
    accounts: Accounts, conn: sa.Connection, kind: str, values: Mapping[str, Any],
    options: ImportOptions,
) -> str:  # fmt: skip
    given = {k: text(v) for k, v in values.items() if not empty(v)}
    if kind == "team":
        name = given.get("name", "")
        exists = conn.scalar(sa.select(accounts.teams.c.id).where(accounts.teams.c.name == name))
        if exists is None and options.mode == "update":
            raise AccountError(f"no team called '{name}'", "name")
        if exists is not None and options.mode == "insert":
            raise AccountError(f"team '{name}' already exists", "name")
        team_id = exists if exists is not None else accounts.create_team(conn, name)
        if "parent" in given:
            accounts.update_team(conn, team_id, parent=given["parent"])
        return "created" if exists is None else "updated"
    username = given.get("username", "")
    user = accounts.by_username(conn, username)
    roles = [r for r in LIST_SEPARATORS.split(given.get("roles", "")) if r]
    active = boolean(values["active"]) if "active" in given else KEEP
    if user is None:
        if options.mode == "update":
            raise AccountError(f"no user '{username}'", "username")
        for team in (given.get("team"),):
            if team:
                accounts.team_id(conn, team)
        created = accounts.create_user(
            conn, username, given.get("password") or secrets.token_urlsafe(24), roles,
            team=given.get("team"), manager=given.get("manager"), name=given.get("name", ""),
            email=given.get("email"), locale=given.get("locale", "en"),
        )  # fmt: skip
        if active is False:
            accounts.update_user(conn, created.id, active=False)
        return "created"
    if options.mode == "insert":
        raise AccountError(f"user '{username}' already exists", "username")
    if given.get("team"):
        accounts.team_id(conn, given["team"])
    accounts.update_user(
        conn, user.id,
        roles=roles or KEEP, team=given.get("team", KEEP), manager=given.get("manager", KEEP),
        name=given.get("name", KEEP), email=given.get("email", KEEP),
        locale=given.get("locale", KEEP), active=active,
        password=given.get("password", KEEP),
    )  # fmt: skip
    return "updated"
