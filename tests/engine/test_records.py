"""The record service on SQLite and PostgreSQL: input, checks, defaults, autonumbers,
formulas, rollups, children, locking, deletes, audit and events."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from engine.context import SYSTEM, Actor
from engine.errors import BadRequest, NotFound, Restricted, StaleVersion, ValidationFailed
from engine.events import RecordEvent
from engine.records import Records


def count_rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def make_account(records: Records, actor: Actor, **values: Any) -> dict[str, Any]:
    return records.create(actor, "account", {"name": "Acme", **values})


def make_contract(records: Records, actor: Actor, account: int, **values: Any) -> dict[str, Any]:
    return records.create(
        actor, "contract", {"title": "Support", "account": account, "amount": "1000", **values}
    )


def errors_of(call: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    assert caught.value.status == 422
    return caught.value.fields


def test_create_fills_defaults_ownership_and_numbers(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    assert account["id"] > 0 and account["version"] == 1
    assert account["grade"] == "B"  # constant default
    assert account["code"] == "AC-0001"
    assert (account["owner_id"], account["team_id"]) == (1, 1)
    assert account["created_by"] == 1 and account["created_at"].tzinfo is not None
    assert account["lifetime_value"] == 0 and account["contracts"] == 0
    second = make_account(records, ann, name="Beta", email="b@beta.example")
    assert second["code"] == "AC-0002"
    contract = make_contract(records, ann, account["id"])
    assert contract["number"] == f"CT-{dt.date.today().year}-00001"
    assert contract["start_date"] == dt.date.today()  # expression default
    assert contract["amount"] == Decimal("1000.00")
    contact = records.create(ann, "contact", {"name": "Li Lei", "account": account["id"]})
    assert contact["owner"] == 1  # "=current_user()"


def test_formulas_are_computed_on_read_through_references(records: Records, ann: Actor) -> None:
    account = make_account(records, ann, grade="A")
    contract = make_contract(records, ann, account["id"], amount="2500.50")
    assert contract["outstanding"] == Decimal("2500.50")
    assert contract["grade_of_account"] == "A"
    records.update(ann, "account", account["id"], {"grade": "C"}, version=account["version"])
    assert records.get(ann, "contract", contract["id"])["grade_of_account"] == "C"


def test_input_errors_come_back_per_field(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    found = errors_of(
        lambda: records.create(
            ann,
            "contract",
            {
                "account": 999,
                "amount": "10.005",
                "end_date": "2020-13-01",
                "received": 5,
                "number": "X",
                "id": 3,
                "colour": "red",
            },
        )
    )
    assert found == {
        "account": ["No account with id 999."],
        "amount": ["At most 2 decimal places."],
        "end_date": ["Not a valid date."],
        "received": ["Read-only field."],
        "number": ["Read-only field."],
        "id": ["Set by the system."],
        "colour": ["Unknown field."],
        "title": ["Missing data for required field."],
    }
    found = errors_of(
        lambda: records.create(
            ann, "account", {"name": "x" * 101, "grade": "Z", "email": "nope", "tags": ["vip"]}
        )
    )
    assert found == {
        "name": ["Longer than maximum length 100."],
        "grade": ["Must be one of: A, B, C."],
        "email": ["Not a valid email address."],
        "vip_note": ["Missing data for required field."],  # required_when 'vip' in tags
    }
    with pytest.raises(BadRequest):
        records.create(ann, "account", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert count_rows(records.engine, records.tables.table("contract")) == 0
    assert records.get(ann, "account", account["id"])["version"] == 1


def test_validation_rules_speak_the_actors_language(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    data = {"start_date": "2024-05-01", "end_date": "2024-04-01"}
    found = errors_of(lambda: make_contract(records, ann, account["id"], **data))
    assert found == {"end_date": ["The end date is before the start date"]}
    zh = Actor(user_id=1, team_id=1, roles=frozenset({"sales_rep"}), locale="zh")
    assert errors_of(lambda: make_contract(records, zh, account["id"], **data)) == {
        "end_date": ["结束日期早于开始日期"]
    }


def test_unique_values_are_field_errors(records: Records, ann: Actor) -> None:
    make_account(records, ann, email="sales@acme.example")
    found = errors_of(lambda: make_account(records, ann, name="Other", email="sales@acme.example"))
    assert found == {"email": ["Already exists."]}


def test_stale_versions_are_refused(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    changed = records.update(ann, "account", account["id"], {"grade": "A"}, version=1)
    assert changed["version"] == 2 and changed["grade"] == "A"
    with pytest.raises(StaleVersion) as caught:
        records.update(ann, "account", account["id"], {"grade": "C"}, version=1)
    assert caught.value.status == 409 and caught.value.details == {"current_version": 2}
    with pytest.raises(StaleVersion):
        records.delete(ann, "account", account["id"], version=1)
    with pytest.raises(BadRequest):
        records.update(ann, "account", account["id"], {"grade": "C"}, version=None)
    assert records.get(ann, "account", account["id"])["grade"] == "A"
    # an update that changes nothing keeps the version
    assert records.update(ann, "account", account["id"], {"grade": "A"}, version=2)["version"] == 2


def test_missing_records_and_entities(records: Records, ann: Actor) -> None:
    with pytest.raises(NotFound):
        records.get(ann, "account", 12345)
    with pytest.raises(NotFound, match="unknown entity 'acount'"):
        records.get(ann, "acount", 1)


def test_rollups_follow_every_change(records: Records, ann: Actor) -> None:
    acme = make_account(records, ann)
    beta = make_account(records, ann, name="Beta")
    one = make_contract(records, ann, acme["id"])
    two = make_contract(records, ann, beta["id"])
    p1 = records.create(
        ann, "payment", {"contract": one["id"], "amount": "300", "status": "confirmed"}
    )
    p2 = records.create(ann, "payment", {"contract": one["id"], "amount": "200"})  # pending

    def received(contract: dict[str, Any]) -> Decimal:
        return Decimal(records.get(ann, "contract", contract["id"])["received"])

    assert received(one) == Decimal("300")
    assert records.get(ann, "contract", one["id"])["outstanding"] == Decimal("700")
    # rollup of a rollup: the account's lifetime value follows its contracts' received
    assert records.get(ann, "account", acme["id"])["lifetime_value"] == Decimal("300")
    assert records.get(ann, "account", acme["id"])["contracts"] == 1
    records.update(ann, "payment", p2["id"], {"status": "confirmed"}, version=1)
    assert received(one) == Decimal("500")
    records.update(ann, "payment", p1["id"], {"amount": "350"}, version=1)
    assert received(one) == Decimal("550")
    records.update(ann, "payment", p1["id"], {"contract": two["id"]}, version=2)  # moved
    assert (received(one), received(two)) == (Decimal("200"), Decimal("350"))
    assert records.get(ann, "account", beta["id"])["lifetime_value"] == Decimal("350")
    records.delete(ann, "payment", p2["id"], version=2)
    assert received(one) == Decimal("0")
    assert records.get(ann, "account", acme["id"])["lifetime_value"] == Decimal("0")


def test_children_are_written_with_their_parent(records: Records, ann: Actor) -> None:
    quote = records.create(
        ann,
        "quote",
        {
            "title": "Q1",
            "lines": [
                {"product": "Licence", "quantity": 3, "price": "100"},
                {"product": "Setup", "price": "50.50"},
            ],
        },
    )
    assert [line["amount"] for line in quote["lines"]] == [Decimal("300.00"), Decimal("50.50")]
    assert quote["subtotal"] == Decimal("350.50")  # a rollup over a formula
    first = quote["lines"][0]
    changed = records.update(
        ann,
        "quote",
        quote["id"],
        {"lines": [{"id": first["id"], "quantity": 4}, {"product": "Training", "price": "80"}]},
        version=quote["version"],
    )
    assert [(line["product"], line["amount"]) for line in changed["lines"]] == [
        ("Licence", Decimal("400.00")),
        ("Training", Decimal("80.00")),
    ]
    assert changed["subtotal"] == Decimal("480.00")
    found = errors_of(
        lambda: records.update(
            ann,
            "quote",
            quote["id"],
            {"lines": [{"product": "X", "quantity": 0}]},
            version=changed["version"],
        )
    )
    assert found == {
        "lines[0].price": ["Missing data for required field."],
        "lines[0].quantity": ["Must be greater than or equal to 1."],
    }
    assert errors_of(lambda: records.create(ann, "quote", {"title": "empty", "lines": []})) == {
        "lines": ["Missing data for required field."]
    }
    records.delete(ann, "quote", quote["id"], version=changed["version"])
    assert count_rows(records.engine, records.tables.table("quote_line")) == 0


def test_deletes_follow_on_delete(records: Records, ann: Actor) -> None:
    parent = make_account(records, ann, name="Parent")
    child = make_account(records, ann, name="Child", parent_account=parent["id"])
    records.create(ann, "contact", {"name": "Li", "account": parent["id"]})
    contract = make_contract(records, ann, parent["id"])
    with pytest.raises(Restricted) as caught:
        records.delete(ann, "account", parent["id"], version=1)
    assert caught.value.status == 409
    assert caught.value.details == {
        "referrers": [
            {"entity": "contract", "field": "account", "count": 1, "ids": [contract["id"]]}
        ]
    }
    assert "1 contract record(s) by account" in caught.value.message
    assert count_rows(records.engine, records.tables.table("contact")) == 1  # nothing changed
    records.delete(ann, "contract", contract["id"], version=1)
    records.delete(ann, "account", parent["id"], version=1)
    assert count_rows(records.engine, records.tables.table("contact")) == 0  # cascade
    orphan = records.get(ann, "account", child["id"])
    assert orphan["parent_account"] is None and orphan["version"] == 2  # set_null


def test_audit_history_and_records_as_they_were(records: Records, ann: Actor) -> None:
    account = make_account(records, ann, grade="A")
    between = dt.datetime.now(dt.UTC)
    records.update(ann, "account", account["id"], {"grade": "C", "name": "Acme Ltd"}, version=1)
    history = records.history(ann, "account", account["id"])
    assert [entry["action"] for entry in history] == ["create", "update"]
    assert history[0]["changes"]["name"] == [None, "Acme"]
    assert history[1]["changes"] == {"grade": ["A", "C"], "name": ["Acme", "Acme Ltd"]}
    assert history[1]["actor_id"] == 1 and history[1]["version"] == 2
    before = records.as_of(ann, "account", account["id"], between)
    assert before is not None and (before["name"], before["grade"]) == ("Acme", "A")
    after = records.as_of(ann, "account", account["id"], dt.datetime.now(dt.UTC))
    assert after is not None and after["name"] == "Acme Ltd" and after["version"] == 2
    assert (
        records.as_of(
            ann, "account", account["id"], account["created_at"] - dt.timedelta(seconds=1)
        )
        is None
    )
    records.delete(ann, "account", account["id"], version=2)
    assert records.as_of(ann, "account", account["id"], dt.datetime.now(dt.UTC)) is None
    assert records.history(ann, "account", account["id"])[-1]["action"] == "delete"


def test_events_run_in_the_transaction(records: Records, ann: Actor) -> None:
    seen: list[tuple[str, frozenset[str]]] = []

    @records.events.on("before_create", "account")
    def upper_name(event: RecordEvent) -> None:
        event.values["name"] = event.values["name"].upper()

    @records.events.on("after_update")
    def remember(event: RecordEvent) -> None:
        seen.append((event.entity, event.changed))

    account = make_account(records, ann, name="acme")
    assert account["name"] == "ACME"
    records.update(ann, "account", account["id"], {"grade": "A"}, version=1)
    assert seen == [("account", frozenset({"grade"}))]

    @records.events.on("before_delete", "account")
    def refuse(event: RecordEvent) -> None:
        raise Restricted("accounts are kept")

    with pytest.raises(Restricted):
        records.delete(ann, "account", account["id"], version=2)
    assert records.get(ann, "account", account["id"])["version"] == 2


def test_every_event_with_what_it_carries(records: Records, ann: Actor) -> None:
    seen: list[tuple[Any, ...]] = []

    def log(event: RecordEvent) -> None:
        previous = None if event.previous is None else event.previous.get("name")
        seen.append((event.action, event.entity, event.record_id is not None,
                     event.values.get("name"), previous, event.changed, event.actor))  # fmt: skip

    for action in ("before_create", "after_create", "before_update", "after_update",
                   "before_delete", "after_delete"):  # fmt: skip
        records.events.subscribe(action, log, "account")

    @records.events.on("after_create", "account")
    def first_contact(event: RecordEvent) -> None:
        # writes made by a handler share the change's transaction
        records.create(event.actor, "contact", {"name": "Reception", "account": event.record_id},
                       conn=event.conn)  # fmt: skip

    account = make_account(records, ann, name="Acme")
    records.update(ann, "account", account["id"], {"name": "Acme Ltd"}, version=1)
    records.delete(ann, "account", account["id"], version=2)
    assert seen == [
        ("before_create", "account", False, "Acme", None, frozenset(), ann),
        ("after_create", "account", True, "Acme", None, frozenset(), ann),
        ("before_update", "account", True, "Acme Ltd", "Acme", frozenset({"name"}), ann),
        ("after_update", "account", True, "Acme Ltd", "Acme", frozenset({"name"}), ann),
        ("before_delete", "account", True, "Acme Ltd", "Acme Ltd", frozenset(), ann),
        ("after_delete", "account", True, "Acme Ltd", "Acme Ltd", frozenset(), ann),
    ]
    assert count_rows(records.engine, records.tables.table("contact")) == 0  # cascaded

    @records.events.on("after_create", "contact")
    def refuse(event: RecordEvent) -> None:
        raise Restricted("no contacts today")

    with pytest.raises(Restricted):
        make_account(records, ann, name="Rolled back")  # its handler's contact is refused
    assert count_rows(records.engine, records.tables.table("account")) == 0


def test_one_transaction_for_several_calls_rolls_back_together(
    records: Records, ann: Actor
) -> None:
    with pytest.raises(ValidationFailed), records.transaction() as conn:
        account = records.create(ann, "account", {"name": "Kept?"}, conn=conn)
        records.create(ann, "contract", {"account": account["id"]}, conn=conn)
    assert count_rows(records.engine, records.tables.table("account")) == 0


def test_trusted_callers_may_set_read_only_fields(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    changed = records.update(
        SYSTEM, "account", account["id"], {"owner_id": 2}, version=None, trusted=True
    )
    assert changed["owner_id"] == 2


def test_a_field_is_locked_while_its_readonly_when_holds(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    deal = make_contract(records, ann, account["id"], amount="500", signed_by="Li")

    def change(values: dict[str, Any]) -> dict[str, Any]:
        current = records.get(ann, "contract", deal["id"])
        return records.update(ann, "contract", deal["id"], values, version=current["version"])

    change({"signed_by": "Wang"})
    locked = change({"amount": "2000"})
    # 2,000 locks signed_by: a change is refused beside the field, the same value is not
    assert errors_of(lambda: change({"signed_by": "Zhao"})) == {
        "signed_by": ["This field cannot be changed now."]
    }
    same = change({"signed_by": "Wang"})
    assert same["signed_by"] == "Wang" and same["version"] == locked["version"]
    # unlocking and changing in one save: the stored record decides, so it is refused
    assert "signed_by" in errors_of(lambda: change({"amount": "900", "signed_by": "Zhao"}))
    # the Model's own writes (a transition's set) are trusted
    moved = records.update(
        SYSTEM, "contract", deal["id"], {"signed_by": "Zhao"}, version=None, trusted=True
    )
    assert moved["signed_by"] == "Zhao"


def test_concurrent_autonumbers_are_unique(records: Records, ann: Actor) -> None:
    account = make_account(records, ann)
    numbers: list[str] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                numbers.append(make_contract(records, ann, account["id"])["number"])
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(numbers) == 20 and len(set(numbers)) == 20
    year = dt.date.today().year
    assert sorted(numbers) == [f"CT-{year}-{n:05d}" for n in range(1, 21)]
    with records.engine.connect() as conn:
        table = records.tables.table("contract")
        assert conn.scalar(sa.select(sa.func.count(sa.distinct(table.c.number)))) == 20


def test_a_required_children_field_left_out_is_missing(records: Records, ann: Actor) -> None:
    assert errors_of(lambda: records.create(ann, "quote", {"title": "no lines"})) == {
        "lines": ["Missing data for required field."]
    }
    quote = records.create(ann, "quote", {"title": "Q", "lines": [{"product": "P", "price": "1"}]})
    # on update a missing list means "unchanged"
    assert records.update(ann, "quote", quote["id"], {"title": "Q2"}, version=1)["title"] == "Q2"


class _Refused(Exception):
    pass


@pytest.mark.parametrize("passes", [False, True])
def test_a_guard_is_judged_before_the_database_refusal_is_explained(
    records: Records, ann: Actor, passes: bool
) -> None:
    """The caller's check (a token the cache trusts) travels with the create's statements
    — on PostgreSQL with the record's own, which the database may refuse: its verdict
    comes first, so a caller it refuses learns nothing of the records stored (here, that
    the email is taken), and nothing is written either way."""
    records.create(ann, "account", {"name": "Acme", "email": "a@acme.example"})
    judged: list[Any] = []

    def guard(batch: Any) -> Any:
        found = batch.single(sa.select(sa.literal(passes).label("ok")))

        def judge() -> None:
            judged.append(found.scalar_one())
            if not found.scalar_one():
                raise _Refused

        return judge

    expected = ValidationFailed if passes else _Refused
    with pytest.raises(expected) as refused:
        records.create(ann, "account", {"name": "Copy", "email": "a@acme.example"}, guard=guard)
    assert judged == [passes]
    if passes:
        assert refused.value.fields == {"email": ["Already exists."]}
    with records.engine.connect() as conn:
        table = records.tables.table("account")
        assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 1
    if passes:  # the refused create's number stays a gap on PostgreSQL only
        created = records.create(ann, "account", {"name": "Beta"}, guard=guard)
        assert created["code"] == ("AC-0003" if records.dialect == "postgresql" else "AC-0002")
