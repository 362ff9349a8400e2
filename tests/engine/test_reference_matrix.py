"""Every reference of the CRM, for every role: a record of the target the role cannot read
can be neither linked to nor reached by a filter or a sort through the reference.

For each (entity, reference field → target) and each CRM role that does not read every
record of the target: a target row owned by someone out of the role's sight, a source
row pointing at it, then the record service's reference check and the list query's
joins, as a user of that role. (The title of the target stays visible through ``expand``:
docs/api.md.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import crm_definitions
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import Actor, Records
from engine.paths import Resolver
from engine.permissions import Permissions
from engine.tables import TEAM_TABLE, USER_TABLE, build_tables
from metamodel import Entity, Field, Model, load_packages
from metamodel.expressions import Context

MODEL: Model = load_packages([Path(crm_definitions.PATH)])
ROLES = sorted(name for name in MODEL.roles if name != "admin")
ACTOR_ID, OTHER_ID = 1, 2  # the actor in team 1, someone else in team 2


def _actor(role: str) -> Actor:
    return Actor(user_id=ACTOR_ID, team_id=1, roles=frozenset({role}))


def _cases() -> list[tuple[str, str, str]]:
    """Every reference, with every role that does not read every record of its target."""
    grants = Permissions(build_tables(MODEL))
    cases = []
    for entity in MODEL:
        for field in entity.fields_of_type("reference"):
            if field.settings.get("link") == "any":
                continue
            target = MODEL.entity(field.to or "")
            for role in ROLES:
                if grants.grant(_actor(role), target, "read").scope != "all":
                    cases.append((role, entity.name, field.name))
    return cases


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Records:
    path = tmp_path_factory.mktemp("matrix") / "crm.db"
    engine: Engine = sa.create_engine(f"sqlite:///{path}")
    tables = build_tables(MODEL)
    tables.metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        system = tables.metadata.tables
        conn.execute(system[TEAM_TABLE].insert(), [
            {"id": 1, "name": "East", "created_at": now},
            {"id": 2, "name": "West", "created_at": now},
        ])  # fmt: skip
        conn.execute(system[USER_TABLE].insert(), [
            {"id": ACTOR_ID, "username": "actor", "roles": [], "team_id": 1, "created_at": now},
            {"id": OTHER_ID, "username": "other", "roles": [], "team_id": 2, "created_at": now},
        ])  # fmt: skip
    return Records(engine, MODEL, tables=tables)


def _row(records: Records, conn: sa.Connection, entity: Entity, **values: object) -> int:
    """A bare row of ``entity`` made by (and owned by) the other user; its parent too, for
    a child entity."""
    now = dt.datetime.now(dt.UTC)
    row: dict[str, object] = {"created_at": now, "updated_at": now, "created_by": OTHER_ID}
    if entity.ownable:
        row.update(owner_id=OTHER_ID, team_id=2)
    if entity.child and entity.parent and entity.parent_field:
        parent = MODEL.entity(entity.parent)
        row[entity.parent_field] = _row(records, conn, parent)
    row.update(values)
    table = records.tables.table(entity.name)
    return int(conn.execute(table.insert().values(row).returning(table.c.id)).scalar_one())


@pytest.mark.parametrize(("role", "entity", "field"), _cases())
def test_no_reference_reaches_a_record_out_of_sight(
    records: Records, role: str, entity: str, field: str
) -> None:
    source: Entity = MODEL.entity(entity)
    reference: Field = source.field(field)
    target = MODEL.entity(reference.to or "")
    actor = _actor(role)
    with records.engine.begin() as conn:
        hidden = _row(records, conn, target)
        # linking to it is refused exactly as linking to no record
        for wanted in (hidden, 987654321):
            errors: dict[str, list[str]] = {}
            records.validator.check_references(
                conn, actor, source, {field: wanted}, errors, {field}
            )
            assert errors == {field: [f"No {target.name} with id {wanted}."]}
        # a filter or sort through the reference finds nothing there
        pointing = _row(records, conn, source, **{field: hidden})
        paths = Resolver(
            records.tables, source.name, "sqlite", Context(), sight=records.permissions.sight(actor)
        )
        through = paths.column((field, "id"))
        found = conn.execute(
            sa.select(paths.base.c.id)
            .select_from(paths.from_clause())
            .where(paths.base.c.id == pointing, through.is_not(None))
        ).all()
        assert found == []
        conn.rollback()
