"""The hand-written server ``bench_http.py`` measures Heddle against.

What a careful developer writes by hand for the same three endpoints: Flask 3 and
SQLAlchemy 2 Core, one statement per request, no authentication, no validation beyond
what the database enforces, no count. The caller's scope is fixed by the URL instead of a
token: ``/admin/…`` reads every account, ``/rep/…`` only the rows the benchmark's sales rep
may read (``BENCH_REP_WHERE``: ``own`` or ``team``), the same WHERE Heddle's permissions
produce, so both servers return the same rows.

    BENCH_URL=postgresql+psycopg://… gunicorn -w 2 --chdir bench/http baseline:app
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request

engine = sa.create_engine(os.environ["BENCH_URL"], pool_size=5)
account = sa.Table("account", sa.MetaData(), autoload_with=engine)
USERS = {
    "admin": (int(os.environ["BENCH_ADMIN_ID"]), int(os.environ["BENCH_ADMIN_TEAM"])),
    "rep": (int(os.environ["BENCH_REP_ID"]), int(os.environ["BENCH_REP_TEAM"])),
}
REP_WHERE = os.environ.get("BENCH_REP_WHERE", "team")
# the columns a client may send on create (what Heddle's API accepts for these fields)
WRITABLE = [
    "name", "type", "industry", "source", "grade", "heat", "region", "province", "city",
    "address", "phone", "website", "size", "annual_revenue", "credit_rating", "tags",
    "locked", "deal_status", "next_follow_up_at", "description",
]  # fmt: skip
# the account code from a sequence of its own, in the INSERT itself: still one statement
CODE = sa.literal("HW-") + sa.func.lpad(sa.cast(sa.func.nextval("bench_hw_code"), sa.Text), 6, "0")
app = Flask("baseline")


def _scope(who: str) -> Any:
    if who == "admin":
        return sa.true()
    if who != "rep":
        abort(404)
    user, team = USERS["rep"]
    if REP_WHERE == "own":
        return account.c.owner_id == user
    return sa.or_(account.c.owner_id == user, account.c.team_id == team)


def _json(row: Any) -> dict[str, Any]:
    return {
        k: str(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, dt.date) else v
        for k, v in row.items()
    }


@app.get("/<who>/accounts/<int:pk>")
def get(who: str, pk: int) -> Any:
    query = sa.select(account).where(account.c.id == pk, _scope(who))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return jsonify(error={"code": "not_found"}), 404
    return jsonify(data=_json(row))


@app.get("/<who>/accounts")
def listing(who: str) -> Any:
    limit = min(int(request.args.get("limit", 50)), 500)
    query = (
        sa.select(account)
        .where(account.c.grade == request.args.get("grade", "A"), _scope(who))
        .order_by(account.c.annual_revenue.desc().nulls_first(), account.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return jsonify(data=[_json(r) for r in rows])


@app.post("/<who>/accounts")
def create(who: str) -> Any:
    _scope(who)
    body = request.get_json()
    user, team = USERS[who]
    now = dt.datetime.now(dt.UTC)
    values = {k: body[k] for k in WRITABLE if k in body}
    values.update(
        code=CODE, owner_id=user, team_id=team, created_by=user, updated_by=user,
        created_at=now, updated_at=now, version=1,
    )  # fmt: skip
    with engine.begin() as conn:
        row = conn.execute(account.insert().values(values).returning(account)).mappings().one()
    return jsonify(data=_json(row)), 201
