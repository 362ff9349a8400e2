"""Shared by the parts of the record service: the shape of field errors."""

from __future__ import annotations

from typing import Any

Errors = dict[str, list[str]]
REQUIRED = "Missing data for required field."
LOCKED = "This field cannot be changed now."  # its readonly_when holds
RECORD = "_record"  # where errors about the whole record go


def empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, [])
    if message not in errors[field]:
        errors[field].append(message)
