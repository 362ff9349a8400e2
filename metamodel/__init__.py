"""Heddle's definition language: load packages of YAML/JSON definitions into a Model.

>>> from metamodel import load_packages
>>> model = load_packages(["apps/crm_definitions"])
>>> model.entity("account").label.get("zh")
'客户'

Nothing here touches a database or HTTP.
"""

from __future__ import annotations

from ._errors import DefinitionError, Origin, Problem
from .expressions import Expression, ExpressionError, parse
from .loader import load_packages
from .model import (
    Automation,
    Choice,
    Dashboard,
    Entity,
    Field,
    Label,
    Model,
    Package,
    Permission,
    Report,
    Role,
    Transition,
    UnknownName,
    Workflow,
)
from .schema import FIELD_TYPES, KINDS, definition_schema, schema_json

__all__ = [
    "FIELD_TYPES",
    "KINDS",
    "Automation",
    "Choice",
    "Dashboard",
    "DefinitionError",
    "Entity",
    "Expression",
    "ExpressionError",
    "Field",
    "Label",
    "Model",
    "Origin",
    "Package",
    "Permission",
    "Problem",
    "Report",
    "Role",
    "Transition",
    "UnknownName",
    "Workflow",
    "definition_schema",
    "load_packages",
    "parse",
    "schema_json",
]
