"""engine.pipeline.fetch: the rows SQLAlchemy would give, of every column type the
engine stores, the cursor events fired and a refusal raised as SQLAlchemy raises it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.pipeline import Batch, array_text, fetch, write_transaction
from engine.sqltypes import ID, JSON, UTCDateTime

metadata = sa.MetaData()
thing = sa.Table(
    "thing",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(20), unique=True),
    sa.Column("note", sa.Text()),
    sa.Column("count", sa.Integer()),
    sa.Column("amount", sa.Numeric(18, 2)),
    sa.Column("total", sa.Numeric()),
    sa.Column("ratio", sa.Float()),
    sa.Column("active", sa.Boolean(create_constraint=False)),
    sa.Column("day", sa.Date()),
    sa.Column("at", UTCDateTime()),
    sa.Column("tags", JSON),
    sa.Column("ids", JSON),
)
insert = (
    thing.insert()
    .values({c.name: sa.bindparam(f"v_{c.name}", type_=c.type) for c in thing.c if c.name != "id"})
    .returning(*thing.c)
)
CST = dt.timezone(dt.timedelta(hours=8))


def _values(code: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "code": code,
        "note": "x",
        "count": 3,
        "amount": Decimal("1000.50"),
        "total": Decimal("12.345678"),
        "ratio": 0.25,
        "active": True,
        "day": dt.date(2026, 3, 1),
        "at": dt.datetime(2026, 3, 1, 9, 30, tzinfo=CST),  # stored and returned in UTC
        "tags": ["vip", "new"],
        "ids": None,
    }
    values.update(changes)
    return {f"v_{name}": value for name, value in values.items()}


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    metadata.create_all(db_engine)
    return db_engine


def test_the_rows_are_those_sqlalchemy_gives(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # psycopg returns times in this zone
            conn.execute(sa.text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
        (fetched,) = fetch(conn, insert, _values("A-1"))
        given = dict(conn.execute(insert, _values("A-2")).mappings().one())
        empty = fetch(conn, insert, _values("A-3", **dict.fromkeys(["note", "amount", "at"])))
    assert fetched.keys() == given.keys() == set(thing.c.keys())
    for name in (column.name for column in thing.c):
        if name not in ("id", "code"):
            assert fetched[name] == given[name], name
            assert type(fetched[name]) is type(given[name]), name
    assert fetched["at"] == dt.datetime(2026, 3, 1, 1, 30, tzinfo=dt.UTC)
    assert fetched["at"].utcoffset() == dt.timedelta(0)
    assert fetched["tags"] == ["vip", "new"] and fetched["ids"] is None
    assert fetched["amount"] == Decimal("1000.50") and fetched["active"] is True
    assert empty[0]["note"] is None and empty[0]["at"] is None
    with engine.connect() as conn:
        stored = conn.execute(sa.select(thing.c.tags, thing.c.ids).where(thing.c.code == "A-1"))
        assert stored.one() == (["vip", "new"], None)  # JSON null, stored as SQL NULL


def test_the_cursor_events_see_the_statement(engine: Engine) -> None:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append("before " + statement.split()[0])

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append("after " + statement.split()[0])

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        with engine.begin() as conn:
            fetch(conn, insert, _values("B-1"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
    assert seen == ["before INSERT", "after INSERT"]


def test_a_refusal_is_sqlalchemys_error(engine: Engine) -> None:
    with engine.begin() as conn:
        fetch(conn, insert, _values("C-1"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        fetch(conn, insert, _values("C-1"))
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(thing)) == 1


def test_a_statement_twice_in_one_batch_gives_each_its_rows(engine: Engine) -> None:
    """A cursor is kept per statement and connection (engine.pipeline._Cursors); the same
    statement twice in one pipeline needs two."""
    by_code = sa.select(thing.c.code, thing.c.count).where(thing.c.code == sa.bindparam("code"))
    with engine.begin() as conn:
        fetch(conn, insert, _values("D-1", count=1))
        fetch(conn, insert, _values("D-2", count=2))
    for n in range(3):  # the kept cursors run again
        with write_transaction(engine) as conn:
            batch = Batch(conn)
            first = batch.add(by_code, {"code": "D-1"})
            second = batch.add(by_code, {"code": "D-2"})
            batch.run()
            (third,) = fetch(conn, insert, _values(f"D-3{n}", count=3))
        assert first.rows == [("D-1", 1)] and second.rows == [("D-2", 2)]
        assert third["count"] == 3


def test_a_write_transaction_gives_its_connection_back_as_it_was(engine: Engine) -> None:
    """Committed or refused, the pooled connection is back out of autocommit mode and
    begins its transactions itself again."""
    with write_transaction(engine) as conn:
        fetch(conn, insert, _values("E-1"))
    with pytest.raises(sa.exc.IntegrityError), write_transaction(engine) as conn:
        fetch(conn, insert, _values("E-1"))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            assert conn.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
        conn.execute(insert, _values("E-2"))
        conn.rollback()  # the insert was in a transaction: undone
        codes = conn.scalars(sa.select(thing.c.code).where(thing.c.code.like("E-%")))
        assert list(codes) == ["E-1"]
    with write_transaction(engine) as conn:  # the cursor kept for the refused statement
        (third,) = fetch(conn, insert, _values("E-3"))
        batch = Batch(conn)
        found = batch.add(sa.select(thing.c.code).where(thing.c.code.like("E-%")))
        batch.run()
    assert third["code"] == "E-3" and sorted(found.rows) == [("E-1",), ("E-3",)]


def test_array_text_comes_back_as_the_list(pg_engine: Engine) -> None:
    texts = ['a "b"', "c,d", "{e}", "back\\slash", "", " spaced ", "NULL", "顧客", "'q'"]
    with pg_engine.connect() as conn:
        query = sa.text("SELECT CAST(:t AS text[]), CAST(:n AS bigint[]), CAST(:e AS text[])")
        row = conn.execute(query, {"t": array_text(texts), "n": array_text([-1, 2**62]), "e": "{}"})
        assert row.one() == (texts, [-1, 2**62], [])
    assert array_text([]) == "{}"


def test_the_kept_cursors_serve_again_after_a_failed_batch(pg_engine: Engine) -> None:
    engine = pg_engine  # (SQLite divides by zero without an error)
    metadata.create_all(engine)
    divide = sa.text("SELECT 1 / :zero AS q")
    count = sa.select(sa.func.count()).select_from(thing)
    with pytest.raises(sa.exc.DBAPIError), write_transaction(engine) as conn:
        batch = Batch(conn)
        batch.add(count)
        batch.add(divide, {"zero": 0})
        batch.run()
    for zero in (1, 1):
        with write_transaction(engine) as conn:
            batch = Batch(conn)
            counted = batch.add(count)
            divided = batch.add(divide, {"zero": zero})
            batch.run()
        assert counted.scalar_one() == 0 and divided.scalar_one() == 1


def test_single_rows_go_as_one_statement_and_each_gets_its_own(engine: Engine) -> None:
    """Batch.single: statements of at most one row sent as one on PostgreSQL (their
    parameters kept apart though they share names), run before the batch's other
    statements; a part that finds no row gets none, and a literal percent sign stays."""
    by_code = sa.select(thing.c.code, thing.c.count).where(thing.c.code == sa.bindparam("code"))
    percent = sa.text("SELECT :code || '%' AS marked").columns(sa.column("marked"))
    with engine.begin() as conn:
        fetch(conn, insert, _values("F-1", count=1))
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for n in range(3):  # the joined statement and its kept cursor serve again
            sent.clear()
            with write_transaction(engine) as conn:
                batch = Batch(conn)
                later = batch.add(sa.select(sa.func.count()).select_from(thing))
                first = batch.single(by_code, {"code": "F-1"})
                missing = batch.single(by_code, {"code": "nothing"})
                marked = batch.single(percent, {"code": f"F{n}"})
                batch.run()
            assert first.mappings() == [{"code": "F-1", "count": 1}]
            assert missing.rows == []
            assert marked.scalar_one() == f"F{n}%"
            assert later.scalar_one() == 1
            if engine.dialect.name == "postgresql":
                statements = [s for s in sent if not s.startswith("BEGIN")]
                assert len(statements) == 2 and statements[0].startswith("SELECT * FROM"), sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_single_row_statement_that_returns_two_rows_is_an_error(engine: Engine) -> None:
    with engine.begin() as conn:
        fetch(conn, insert, _values("G-1"))
        fetch(conn, insert, _values("G-2"))
    both = sa.select(thing.c.code).where(thing.c.code.like("G-%"))
    one = sa.select(sa.literal(1).label("one"))
    for others in ([], [one]):  # sent as it is, or joined to another
        with pytest.raises(RuntimeError, match="several rows"), write_transaction(engine) as c:
            batch = Batch(c)
            batch.single(both)
            for other in others:
                batch.single(other)
            batch.run()
    with write_transaction(engine) as conn, pytest.raises(TypeError, match="its columns"):
        Batch(conn).single(sa.text("SELECT 1"))


def test_a_fetched_statement_runs_last_and_gives_what_fetch_gives(engine: Engine) -> None:
    """Batch.fetch: sent with the batch's other statements (one round trip on PostgreSQL)
    after them, its parameters and values processed as fetch() processes them."""
    count = sa.select(sa.func.count()).select_from(thing)
    for n in range(2):  # and again, on the kept cursors
        with write_transaction(engine) as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
            batch = Batch(conn)
            written = batch.fetch(insert, _values(f"H-{n}"))
            before = batch.add(count)  # added later, run before it
            single = batch.single(sa.select(sa.literal(7).label("seven")))
            batch.run()
            (alone,) = fetch(conn, insert, _values(f"H-{n}b"))
        assert before.scalar_one() == 2 * n and single.scalar_one() == 7
        (row,) = written.mappings()
        assert row.keys() == alone.keys()
        for name in row.keys() - {"id", "code"}:
            assert row[name] == alone[name] and type(row[name]) is type(alone[name]), name
        assert row["code"] == f"H-{n}" and row["tags"] == ["vip", "new"]
        assert row["at"] == dt.datetime(2026, 3, 1, 1, 30, tzinfo=dt.UTC)


def test_a_refused_fetch_leaves_the_statements_before_it_their_rows(engine: Engine) -> None:
    """A create's INSERT refused by a constraint: SQLAlchemy's IntegrityError, and the
    statements before it (the numbers drawn, the token's check) can still be read, to
    explain the refusal; the refused statement itself has no rows."""
    with engine.begin() as conn:
        fetch(conn, insert, _values("I-1"))
    by_code = sa.select(thing.c.code, thing.c.count).where(thing.c.code == sa.bindparam("code"))
    with pytest.raises(sa.exc.IntegrityError), write_transaction(engine) as conn:
        batch = Batch(conn)
        first = batch.single(by_code, {"code": "I-1"})
        second = batch.single(sa.select(sa.literal("x").label("x")))
        counted = batch.add(sa.select(sa.func.count()).select_from(thing))
        refused = batch.fetch(insert, _values("I-1"))
        try:
            batch.run()
        finally:
            assert first.ran and first.mappings() == [{"code": "I-1", "count": 3}]
            assert second.scalar_one() == "x" and counted.scalar_one() == 1
            assert not refused.ran
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(thing)) == 1
    with write_transaction(engine) as conn:  # the connection and its cursors serve again
        batch = Batch(conn)
        again = batch.fetch(insert, _values("I-2"))
        batch.run()
    assert again.mappings()[0]["code"] == "I-2"


def test_fetch_sends_a_literal_percent_and_a_name_used_twice_as_they_are(
    engine: Engine,
) -> None:
    """On PostgreSQL fetch() numbers the placeholders itself ($1 …, a name used twice given
    one number) for psycopg's raw cursor: the text around them is sent unchanged."""
    n = sa.bindparam("n", type_=sa.Integer())
    query = sa.select(
        (n + n).label("twice"),
        sa.literal_column("'100%'").label("percent"),
        sa.bindparam("word", type_=sa.String()).label("word"),
    )
    with write_transaction(engine) as conn:
        for value in (2, 3):  # and again, on the kept cursor
            (row,) = fetch(conn, query, {"n": value, "word": "%(n)s $1"})
            assert row == {"twice": 2 * value, "percent": "100%", "word": "%(n)s $1"}
