"""What automations and reports may name: action types, trigger types and report measures.

Three registries, the extension points the workflows and reports are built on:

- :data:`ACTION_TYPES` — what an automation (or a workflow state) may do: ``set`` fields,
  ``create`` a record, ``notify`` someone, call a ``webhook``, ``enqueue`` a job. Each has
  the JSON Schema of its options; the ``workflows`` layer keeps the code that runs each,
  under the same name.
- :data:`TRIGGER_TYPES` — what starts an automation: a record ``event``, a ``schedule``,
  a ``date_field`` reaching a day.
- :data:`MEASURES` — what a report computes: ``count``, ``sum``, ``avg``… with the value
  types each accepts and gives; the engine keeps the SQL of each under the same name.

A plugin registers its own::

    ACTION_TYPES.register(ActionType("sms", {"properties": {"to": {"type": "string"}}}))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .expressions import DATE, DATETIME, DECIMAL, INTEGER, NUMERIC, STRING
from .registry import Registry

Schema = dict[str, Any]


@dataclass(frozen=True)
class ActionType:
    """An action an automation may take: ``schema`` describes its options (besides
    ``type``), as JSON Schema ``properties`` and ``required``."""

    name: str
    schema: Schema
    description: str = ""


@dataclass(frozen=True)
class TriggerType:
    """A way to start an automation: the trigger option that names it, and its schema."""

    name: str
    schema: Schema
    description: str = ""


@dataclass(frozen=True)
class Measure:
    """A report aggregate: the value types it takes (empty: needs no field) and gives
    (``None``: the type of its field)."""

    name: str
    accepts: tuple[str, ...]
    gives: str | None
    needs_field: bool = True
    description: str = ""

    def result(self, field_type: str | None) -> str:
        return self.gives or field_type or INTEGER


ACTION_TYPES: Registry[ActionType] = Registry("action type")
TRIGGER_TYPES: Registry[TriggerType] = Registry("trigger type")
MEASURES: Registry[Measure] = Registry("measure")


def _label() -> Schema:
    return {"$ref": "#/$defs/label"}


_EXPRESSIONS = {
    "type": "object",
    "propertyNames": {"$ref": "#/$defs/identifier"},
    "additionalProperties": {},
    "description": "Field → a constant, or '=expression'.",
}

for _action in (
    ActionType(
        "set",
        {
            "properties": {
                "values": _EXPRESSIONS,
                "target": {
                    "$ref": "#/$defs/identifier",
                    "description": "A reference field: set the fields of the record it "
                    "points at instead.",
                },
            },
            "required": ["values"],
        },
        "Set fields of the record, or of the record a reference field points at.",
    ),
    ActionType(
        "create",
        {
            "properties": {
                "entity": {"$ref": "#/$defs/identifier"},
                "values": _EXPRESSIONS,
                "link": {
                    "$ref": "#/$defs/identifier",
                    "description": "A reference field of the record that receives the new "
                    "record's id.",
                },
            },
            "required": ["entity", "values"],
        },
        "Create a record of another entity from the record's fields.",
    ),
    ActionType(
        "notify",
        {
            "properties": {
                "to": {
                    "type": "string",
                    "minLength": 1,
                    "description": "owner (the default), manager (the owner's), "
                    "role:<name>, user:<username>, or a user field of the record.",
                },
                "message": _label(),
                "email": {"type": "boolean", "description": "Also by email (default true)."},
            },
        },
        "Tell a user, the owner, their manager or a role: in the application and by email.",
    ),
    ActionType(
        "webhook",
        {
            "properties": {
                "url": {"type": "string", "pattern": "^https?://"},
                "secret": {"type": "string"},
            },
            "required": ["url"],
        },
        "POST the change to a URL, signed and retried.",
    ),
    ActionType(
        "return_to_pool",
        {
            "properties": {
                "note": {"type": "string", "description": "Why, kept in the pool's log."},
            },
        },
        "Return the record to the public pool its owner belongs to (the entity's "
        "public_pool): the owner is cleared and kept as the previous owner.",
    ),
    ActionType(
        "enqueue",
        {
            "properties": {"job": {"type": "string", "minLength": 1}, "args": {}},
            "required": ["job"],
        },
        "Run a background job.",
    ),
):
    ACTION_TYPES.register(_action)

for _trigger in (
    TriggerType(
        "event",
        {"enum": ["created", "updated", "deleted", "transition"]},
        "A record is created, updated, deleted or moves through a transition.",
    ),
    TriggerType("schedule", {"type": "string", "minLength": 1}, "A cron schedule."),
    TriggerType(
        "date_field",
        {"$ref": "#/$defs/identifier"},
        "A date field of a record reaches today (with offset_days before or after).",
    ),
):
    TRIGGER_TYPES.register(_trigger)

_ORDERED = (*NUMERIC, DATE, DATETIME, STRING)
for _measure in (
    Measure("count", (), INTEGER, needs_field=False, description="How many records."),
    Measure(
        "count_distinct",
        (INTEGER, DECIMAL, STRING, DATE, DATETIME, "boolean"),
        INTEGER,
        description="How many different values.",
    ),
    Measure("sum", NUMERIC, None, description="The total of a number field."),
    Measure("avg", NUMERIC, DECIMAL, description="The average of a number field."),
    Measure("min", _ORDERED, None, description="The smallest value."),
    Measure("max", _ORDERED, None, description="The largest value."),
    Measure("median", NUMERIC, DECIMAL, description="The middle value of a number field."),
):
    MEASURES.register(_measure)
