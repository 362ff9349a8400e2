"""Heddle's definition language: load packages of YAML/JSON definitions into a Model.

>>> from metamodel import load_packages
>>> model = load_packages(["apps/crm_definitions"])
>>> model.entity("account").label.get("zh")
'客户'

Nothing here touches a database or HTTP. The language's extension points are registries
(docs/architecture.md): field types (:data:`FIELD_TYPES`), view kinds
(:data:`VIEW_KINDS`), automation actions and triggers (:data:`ACTION_TYPES`,
:data:`TRIGGER_TYPES`) and report measures (:data:`MEASURES`).
"""

from __future__ import annotations

from ._errors import DefinitionError, Origin, Problem, UnknownName, did_you_mean
from .expressions import Expression, ExpressionError, parse
from .fieldtypes import FIELD_TYPES, FieldContext, FieldType
from .functions import local_midnight, local_today, local_zone
from .loader import load_packages, model_from_json, report_from_value
from .model import (
    POOL_SETTINGS,
    Action,
    Approval,
    ApprovalStep,
    Assignment,
    Automation,
    Choice,
    Cycle,
    Dashboard,
    Dimension,
    DuplicateRule,
    Entity,
    Field,
    Funnel,
    Label,
    Model,
    Package,
    Permission,
    PublicPool,
    Recycle,
    RecycleKind,
    Report,
    ReportMeasure,
    ReportParam,
    Role,
    State,
    Transition,
    ValueRange,
    Workflow,
)
from .processes import ACTION_TYPES, MEASURES, TRIGGER_TYPES, ActionType, Measure, TriggerType
from .registry import Registry, RegistryError
from .schema import KINDS, definition_schema, schema_json
from .views import VIEW_KINDS, ViewContext, ViewKind

__all__ = [
    "ACTION_TYPES",
    "FIELD_TYPES",
    "KINDS",
    "MEASURES",
    "POOL_SETTINGS",
    "TRIGGER_TYPES",
    "VIEW_KINDS",
    "Action",
    "ActionType",
    "Approval",
    "ApprovalStep",
    "Assignment",
    "Automation",
    "Choice",
    "Cycle",
    "Dashboard",
    "DefinitionError",
    "Dimension",
    "DuplicateRule",
    "Entity",
    "Expression",
    "ExpressionError",
    "Field",
    "FieldContext",
    "FieldType",
    "Funnel",
    "Label",
    "Measure",
    "Model",
    "Origin",
    "Package",
    "Permission",
    "Problem",
    "PublicPool",
    "Recycle",
    "RecycleKind",
    "Registry",
    "RegistryError",
    "Report",
    "ReportMeasure",
    "ReportParam",
    "Role",
    "State",
    "Transition",
    "TriggerType",
    "UnknownName",
    "ValueRange",
    "ViewContext",
    "ViewKind",
    "Workflow",
    "definition_schema",
    "did_you_mean",
    "load_packages",
    "local_midnight",
    "local_today",
    "local_zone",
    "model_from_json",
    "parse",
    "report_from_value",
    "schema_json",
]
