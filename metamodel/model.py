"""The compiled, immutable Model: what every other layer reads.

Definitions compile once into these frozen objects; hot paths look things up by name and
never re-read YAML. A Model is hashable by content (:attr:`Model.hash`) and round-trips
through JSON (:meth:`Model.to_json`, :func:`metamodel.model_from_json`), which is how the engine
stores each applied version.

>>> model = load_packages(["apps/crm_definitions"])
>>> model.entity("opportunity").field("amount").type
'money'
>>> ("contact", "account") in [(e.name, f.name) for e, f in model.references_to("account")]
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import Origin, UnknownName
from .expressions import DATETIME, INTEGER, NO_CONTEXT, STRING, Context, Expression

#: Columns every table has; ownable entities add ``owner_id`` and ``team_id``.
SYSTEM_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "id": INTEGER,
        "created_at": DATETIME,
        "updated_at": DATETIME,
        "created_by": INTEGER,
        "updated_by": INTEGER,
        "version": INTEGER,
        "owner_id": INTEGER,
        "team_id": INTEGER,
    }
)
# the system fields of an ownable entity, and of one without an owner
_OWNED_FIELDS = tuple(SYSTEM_FIELDS)
_UNOWNED_FIELDS = tuple(n for n in SYSTEM_FIELDS if n not in ("owner_id", "team_id"))

Frozen = Any  # a deep-frozen JSON value: MappingProxyType, tuple, str, number, bool, None


def freeze(value: Any) -> Frozen:
    """A read-only copy of a JSON value: mappings become proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON value of a frozen one."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Label:
    """Text in one or more locales; falls back to English, then to any text it has."""

    texts: Mapping[str, str]

    @classmethod
    def of(cls, value: Any, fallback: str = "") -> Label:
        if isinstance(value, Mapping):
            return cls(MappingProxyType(dict(value)))
        if isinstance(value, str):
            return cls(MappingProxyType({"*": value}))
        return cls(MappingProxyType({"*": fallback}))

    def get(self, locale: str = "en") -> str:
        texts = self.texts
        if locale in texts:
            return texts[locale]
        base = locale.split("-")[0]
        for key in (base, "*", "en"):
            if key in texts:
                return texts[key]
        return next(iter(texts.values()), "")

    def __str__(self) -> str:
        return self.get("en")

    def to_json(self) -> Any:
        if set(self.texts) == {"*"}:
            return self.texts["*"]
        return dict(self.texts)


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: Label
    color: str | None = None
    description: Label | None = None


@dataclass(frozen=True)
class Field:
    """One field of an entity, with its options and compiled expressions."""

    name: str
    type: str
    label: Label
    entity: str
    help: Label | None = None
    placeholder: Label | None = None
    required: bool = False
    unique: bool = False
    default: Any = None
    default_expression: Expression | None = None
    min: Any = None
    max: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    index: bool = False
    readonly: bool = False
    searchable: bool = False
    visible_when: Expression | None = None
    required_when: Expression | None = None
    readonly_when: Expression | None = None
    renamed_from: str | None = None
    options: tuple[Choice, ...] = ()
    to: str | None = None
    on_delete: str = "restrict"
    children: str | None = None
    via: str | None = None
    precision: int | None = None
    scale: int | None = None
    currency: str | None = None
    format: str | None = None
    expression: Expression | None = None
    returns: str | None = None
    of: str | None = None
    aggregate: str | None = None
    rollup_field: str | None = None
    filter: Expression | None = None
    accept: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    max_size: int | None = None
    multiple: bool = False
    #: The field's type as expressions see it (``string``, ``decimal``, ``date``…).
    value_type: str = STRING
    #: Set by the platform, never by input (formula, rollup, autonumber).
    computed: bool = False
    #: Options of the field's type that no built-in type has (a plugin type's own).
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def choice_values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.options)

    def choice(self, value: str) -> Choice:
        for choice in self.options:
            if choice.value == value:
                return choice
        raise UnknownName(f"option of {self.entity}.{self.name}", value, self.choice_values)


@dataclass(frozen=True, slots=True)
class Validation:
    name: str
    rule: Expression
    message: Label
    when: Expression | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    """When two records are probably the same company or person (docs/duplicates.md).

    ``fuzzy``: the similarity (0 < fuzzy ≤ 1) two keys need, or None for equal keys;
    ``pool``: the reference field that says which public pool holds a record (what a
    ``claim`` rule offers to claim from).
    """

    name: str
    label: Label
    fields: tuple[str, ...]
    normalize: tuple[str, ...] = ()
    action: str = "warn"
    match: str = "all"
    also_check: tuple[str, ...] = ()
    fuzzy: float | None = None
    pool: str | None = None


#: What a pool record may say about claiming (the ``settings`` of a ``public_pool``), and
#: the field type each needs — ``True`` for a field of several values (users, teams).
POOL_SETTINGS: Mapping[str, tuple[str, bool]] = MappingProxyType(
    {
        "active": ("boolean", False),
        "members": ("user", True),
        "member_teams": ("team", True),
        "admins": ("user", True),
        "daily_claim_limit": ("integer", False),
        "reclaim_cooldown_days": ("integer", False),
        "max_owned": ("integer", False),
        "count_won": ("boolean", False),
        "exempt_won": ("boolean", False),
        "hidden_fields": ("multichoice", False),
    }
)


@dataclass(frozen=True, slots=True)
class RecycleKind:
    """One kind of recycle rule: the moment its days count from (``since``, a date or
    datetime of the record) and when it does not apply (``unless``)."""

    since: Expression
    unless: Expression | None = None


@dataclass(frozen=True, slots=True)
class Recycle:
    """How a public pool's rules return owned records to it (``public_pool.recycle``).

    The pools hold their rules in the children field ``rules``; a rule's ``kind`` field
    (a choice) picks one of ``kinds``, ``days`` says after how many days a record returns,
    ``warn_days`` how many days before the owner is warned, ``active`` whether the rule
    holds. Each of ``match`` is a field of both the rule and the record: a rule that sets
    it applies only to records with the same value.
    """

    rules: str
    kind: str
    days: str
    kinds: Mapping[str, RecycleKind]
    warn_days: str | None = None
    active: str | None = None
    match: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicPool:
    """An ownable entity's public pool (公海, docs/pools.md): records without an owner,
    waiting in a pool — a record of the ``pools`` entity — to be claimed.

    ``field`` is the reference saying which pool holds a record; ``pooled_at``,
    ``previous_owner`` and ``claimed_at`` the fields a return and a claim stamp (None:
    not kept). ``won`` tells a won record (the owned-records cap leaves them out unless
    the pool counts them). ``carry`` holds ``(entity, reference field)`` pairs whose
    records follow the owner when a record is claimed or assigned (an account's
    contacts). ``settings`` maps each of :data:`POOL_SETTINGS` the pools declare to the
    pools' field holding it. ``exempt`` tells records never recycled, ``recycle`` how the
    pools' rules return owned records to them (None: nothing returns by itself).
    """

    field: str
    pools: str
    pooled_at: str | None = None
    previous_owner: str | None = None
    claimed_at: str | None = None
    won: Expression | None = None
    carry: tuple[tuple[str, str], ...] = ()
    settings: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    exempt: Expression | None = None
    recycle: Recycle | None = None


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    fields: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> SortKey:
        text = text.strip()
        return cls(text[1:], True) if text.startswith("-") else cls(text)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def parse_sort(value: Any) -> tuple[SortKey, ...]:
    """``"-amount, name"`` or ``["-amount", "name"]`` → sort keys."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(SortKey.parse(item) for item in items if item.strip())


@dataclass(frozen=True)
class Entity:
    """An entity: a table, a record schema and its screens' layout."""

    name: str
    label: Label
    plural_label: Label
    package: str
    fields: Mapping[str, Field]
    description: Label | None = None
    icon: str | None = None
    table: str = ""
    title_field: str | None = None
    search_fields: tuple[str, ...] = ()
    ownable: bool = False
    child: bool = False
    parent: str | None = None
    parent_field: str | None = None
    audit: bool = True
    validations: tuple[Validation, ...] = ()
    duplicate_rules: tuple[DuplicateRule, ...] = ()
    public_pool: PublicPool | None = None
    indexes: tuple[Index, ...] = ()
    default_sort: tuple[SortKey, ...] = ()
    form: Frozen = None
    #: the form's sections' ``visible_when``, compiled, by section name
    section_conditions: Mapping[str, Expression] = field(
        default_factory=lambda: MappingProxyType({})
    )
    list_views: Frozen = ()
    kanban: Frozen = None
    calendar: Frozen = None
    #: every view the entity declares, by view kind (form, list_views, a plugin's own…)
    views: Mapping[str, Frozen] = field(default_factory=lambda: MappingProxyType({}))

    def field(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            raise UnknownName(f"field of {self.name}", name, self.fields) from None

    @property
    def system_fields(self) -> tuple[str, ...]:
        return _OWNED_FIELDS if self.ownable else _UNOWNED_FIELDS

    def fields_of_type(self, *types: str) -> tuple[Field, ...]:
        """The fields of these types in declaration order, remembered per set of types
        (writes ask for the same few on every record; an entity never changes)."""
        known: dict[tuple[str, ...], tuple[Field, ...]] = self.__dict__.setdefault("_of_type", {})
        found = known.get(types)
        if found is None:
            found = known[types] = tuple(f for f in self.fields.values() if f.type in types)
        return found


@dataclass(frozen=True, slots=True)
class Assignment:
    """One field an action writes: a constant, or an expression (``'=today()'``) read from
    the record the action runs on."""

    field: str
    value: Any = None
    expression: Expression | None = None

    def evaluate(self, values: Mapping[str, Any], context: Context = NO_CONTEXT) -> Any:
        if self.expression is None:
            return self.value
        return self.expression.evaluate(values, context)


@dataclass(frozen=True, slots=True)
class Action:
    """An action of a workflow state or transition (or, later, an automation): a type of
    :data:`~metamodel.processes.ACTION_TYPES`, its options as written and, for ``set`` and
    ``create``, the compiled field values.

    ``entity`` is the entity the values are written to: the record's own for ``set``, the
    referenced record's for ``set`` with ``target``, the new record's for ``create``.
    """

    type: str
    options: Frozen
    values: tuple[Assignment, ...] = ()
    entity: str | None = None
    target: str | None = None
    link: str | None = None

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return tuple(a.expression for a in self.values if a.expression is not None)


@dataclass(frozen=True, slots=True)
class State:
    name: str
    label: Label
    initial: bool = False
    final: bool = False
    color: str | None = None
    #: read-only (and not deletable) while in this state, except through its transitions
    locked: bool = False
    on_enter: tuple[Action, ...] = ()
    on_exit: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    label: Label
    sources: tuple[str, ...]  # ("*",) means from any state
    to: str
    guard: Expression | None = None
    roles: tuple[str, ...] = ()
    comment: str = "optional"
    required_fields: tuple[str, ...] = ()
    set: Frozen = None
    approval: str | None = None
    #: fields the user may fill in when firing it, besides the required ones
    fields: tuple[str, ...] = ()
    #: ``set`` compiled, then the transition's ``actions``: run in order when it fires
    actions: tuple[Action, ...] = ()

    def allowed_from(self, state: str) -> bool:
        """Whether it may fire from ``state`` (``'*'``: from any other state)."""
        return state in self.sources or ("*" in self.sources and state != self.to)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The fields a request firing it may carry: required ones first."""
        return (*self.required_fields, *(f for f in self.fields if f not in self.required_fields))


@dataclass(frozen=True, slots=True)
class ApprovalStep:
    """One step of an approval: who approves (``approvers``: ``role:<role>``,
    ``user:<username>``, ``manager`` or ``manager:<levels>``, ``field:<user field>``),
    how many of them (``mode``: ``any``, ``all`` or a number N, "N of them") and when
    the step applies at all (``when``). A ``parallel`` step runs together with the step
    before it; the next step that is not parallel waits for all of them."""

    name: str
    label: Label
    approvers: tuple[str, ...]
    mode: str | int = "any"
    when: Expression | None = None
    parallel: bool = False


@dataclass(frozen=True, slots=True)
class Approval:
    """A multi-step approval a transition starts: the record waits in the transition's
    target state until every step has approved (then it moves to ``on_approve``) or one
    approver rejects it (``on_reject``, with a comment) or the submitter recalls it
    (``on_recall``; by default the state it was submitted from). Durations are seconds."""

    name: str
    label: Label
    steps: tuple[ApprovalStep, ...]
    on_approve: str | None = None
    on_reject: str | None = None
    on_recall: str | None = None
    allow_self_approval: bool = False
    recall: bool = True
    remind_after: int | None = None
    escalate_after: int | None = None
    escalate_to: str | None = None

    @property
    def stages(self) -> tuple[tuple[ApprovalStep, ...], ...]:
        """The steps grouped as they run: a step and the parallel steps after it."""
        found: list[tuple[ApprovalStep, ...]] = []
        for step in self.steps:
            if step.parallel and found:
                found[-1] = (*found[-1], step)
            else:
                found.append((step,))
        return tuple(found)


@dataclass(frozen=True)
class Workflow:
    name: str
    label: Label
    entity: str
    field: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    approvals: tuple[Approval, ...] = ()
    package: str = ""

    def approval(self, name: str) -> Approval:
        for approval in self.approvals:
            if approval.name == name:
                return approval
        raise UnknownName(f"approval of {self.name}", name, [a.name for a in self.approvals])

    @property
    def initial(self) -> State:
        return next((s for s in self.states if s.initial), self.states[0])

    def transition(self, name: str) -> Transition:
        for transition in self.transitions:
            if transition.name == name:
                return transition
        raise UnknownName(f"transition of {self.name}", name, [t.name for t in self.transitions])

    def state(self, name: str) -> State:
        for state in self.states:
            if state.name == name:
                return state
        raise UnknownName(f"state of {self.name}", name, [s.name for s in self.states])

    @property
    def expressions(self) -> tuple[Expression, ...]:
        """Every expression evaluated on the workflow's records: guards and action values
        (the engine loads the referenced records they read)."""
        found: list[Expression] = []
        for transition in self.transitions:
            if transition.guard is not None:
                found.append(transition.guard)
            for action in transition.actions:
                found += action.expressions
        for state in self.states:
            for action in (*state.on_enter, *state.on_exit):
                found += action.expressions
        for approval in self.approvals:
            found += [step.when for step in approval.steps if step.when is not None]
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Permission:
    """What one role may do on one entity: a scope per action and field rules."""

    read: str = "none"
    create: str = "none"
    update: str = "none"
    delete: str = "none"
    export: str = "none"
    import_: str = "none"
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def scope(self, action: str) -> str:
        scope: str = getattr(self, "import_" if action == "import" else action)
        return scope


@dataclass(frozen=True)
class Role:
    name: str
    label: Label
    description: Label | None
    permissions: Mapping[str, Permission]
    package: str = ""


@dataclass(frozen=True, slots=True)
class ReportParam:
    """An input of a report: ``?<name>=`` on its URL, ``params.<name>`` in its filter.

    A ``period`` is a span of days (``this_month``, ``2024-01-01..2024-03-31``); the
    filter reads its ``params.<name>.start`` and ``params.<name>.end`` (both included)."""

    name: str
    label: Label
    type: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class ValueRange:
    """One value bucket: values above the previous bucket's ``to`` up to this ``to``
    (included); the last bucket may leave ``to`` out (no upper bound)."""

    value: str
    label: Label
    to: Any = None


@dataclass(frozen=True)
class Dimension:
    """What a report groups by: a field path or an expression, maybe bucketed by time
    (``bucket``) or by value (``ranges``)."""

    name: str
    label: Label
    value_type: str
    path: tuple[str, ...] | None = None
    expression: Expression | None = None
    bucket: str | None = None
    ranges: tuple[ValueRange, ...] = ()
    fill: bool = False

    @property
    def result_type(self) -> str:
        """The type of the values in the report's rows."""
        if self.ranges:
            return STRING
        return "date" if self.bucket else self.value_type


@dataclass(frozen=True)
class ReportMeasure:
    """One number a report computes: an aggregate of a field or of a ``value`` computed
    per record (over the records its ``filter`` keeps), or an ``expression`` over other
    measures (``won / closed``), or the share of the total (``share_of``) a row holds."""

    name: str
    label: Label
    value_type: str
    aggregate: str | None = None
    path: tuple[str, ...] | None = None
    filter: Expression | None = None
    expression: Expression | None = None
    value: Expression | None = None  # what the aggregate reads, when not a field
    share_of: str | None = None  # a count or sum measure: each row's part of its total
    previous: bool = False  # computed over the previous period (a report's ``compare``)
    conversion: str | None = None  # a funnel's: "previous" (from the step before) or "first"
    conversion_of: str | None = None  # the measure a funnel's conversion divides


@dataclass(frozen=True)
class Funnel:
    """A report's funnel: the records that reached each of ``steps`` (values of the
    choice at ``path``, in order), a record at a later step counting in every earlier one;
    a record whose value is no step counts up to the step ``dropped_at`` holds, if any."""

    path: tuple[str, ...]
    steps: tuple[str, ...]
    dropped_at: tuple[str, ...] | None = None
    measure: str = ""  # the measure the conversions divide


@dataclass(frozen=True)
class Cycle:
    """A history entity's durations: ``cycle.days`` is the days from a row to the next row
    of the same ``record`` (by ``at``), ``cycle.total_days`` from its record's first row."""

    record: str
    at: str
    at_type: str


@dataclass(frozen=True)
class Report:
    name: str
    label: Label
    entity: str
    spec: Frozen
    filter: Expression | None = None
    package: str = ""
    params: tuple[ReportParam, ...] = ()
    dimensions: tuple[Dimension, ...] = ()
    measures: tuple[ReportMeasure, ...] = ()
    having: Expression | None = None
    sort: tuple[SortKey, ...] = ()
    limit: int | None = None
    others: bool = False
    totals: bool = True
    chart: Frozen = None
    compare: str | None = None  # a period parameter: measures also for the period before
    pivot: str | None = None  # a dimension whose values become columns
    subtotals: bool = False  # a row per group of each leading dimension
    funnel: Funnel | None = None
    cycle: Cycle | None = None
    parts: tuple[Report, ...] = ()  # ``union``: other entities' measures on the same rows
    unpivot: tuple[str, ...] = ()  # fields each record spreads over, one row each


@dataclass(frozen=True)
class Dashboard:
    """Widgets on a grid; ``params`` are shared by the widgets' reports (a report's
    parameter of the same name, or the one a widget's ``params`` maps to it), and the
    dashboard is the home of the roles of ``default_for``."""

    name: str
    label: Label
    spec: Frozen
    package: str = ""
    params: tuple[ReportParam, ...] = ()
    default_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class Automation:
    """An automation: what starts it (``trigger``: an ``event``, a ``schedule`` or a
    ``date_field``), the ``condition`` a record must meet, and its compiled ``actions``.
    ``run_async``: the actions run as a job after the change commits, not in its
    transaction."""

    name: str
    label: Label
    entity: str
    spec: Frozen
    condition: Expression | None = None
    package: str = ""
    actions: tuple[Action, ...] = ()
    run_async: bool = False
    enabled: bool = True

    @property
    def trigger(self) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self.spec["trigger"]
        return found

    @property
    def kind(self) -> str:
        """``event``, ``schedule`` or ``date_field``."""
        return next(k for k in ("event", "schedule", "date_field") if k in self.trigger)


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    label: Label
    version: str = "0"
    extends: str | None = None
    locales: tuple[str, ...] = ("en",)
    default_locale: str = "en"
    table_prefix: str = ""
    currency: str = "USD"
    path: str = ""


@dataclass(frozen=True)
class Model:
    """Everything the definitions say, compiled, frozen and cheap to query."""

    packages: tuple[Package, ...]
    entities: Mapping[str, Entity]
    workflows: Mapping[str, Workflow]
    roles: Mapping[str, Role]
    reports: Mapping[str, Report]
    dashboards: Mapping[str, Dashboard]
    automations: Mapping[str, Automation]
    documents: Frozen = field(repr=False)
    origins: Mapping[tuple[str, str], Mapping[tuple[str | int, ...], Origin]] = field(
        repr=False, default_factory=lambda: MappingProxyType({})
    )
    owners: Mapping[tuple[str, str], str] = field(
        repr=False, default_factory=lambda: MappingProxyType({})
    )
    hash: str = ""
    _refs_to: Mapping[str, tuple[tuple[Entity, Field], ...]] = field(
        repr=False, default_factory=lambda: MappingProxyType({})
    )

    def __hash__(self) -> int:
        # Hashable by content, so per-Model caches (input schemas, tables) can key on it.
        return hash(self.hash)

    # look-ups -------------------------------------------------------------------------

    def entity(self, name: str) -> Entity:
        try:
            return self.entities[name]
        except KeyError:
            raise UnknownName("entity", name, self.entities) from None

    def workflow(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise UnknownName("workflow", name, self.workflows) from None

    def role(self, name: str) -> Role:
        try:
            return self.roles[name]
        except KeyError:
            raise UnknownName("role", name, self.roles) from None

    def workflows_of(self, entity: str) -> tuple[Workflow, ...]:
        return tuple(w for w in self.workflows.values() if w.entity == entity)

    def references_to(self, entity: str) -> tuple[tuple[Entity, Field], ...]:
        """Every (entity, reference field) that points at ``entity``."""
        return self._refs_to.get(entity, ())

    def references_from(self, entity: str) -> tuple[Field, ...]:
        """The reference fields of ``entity``."""
        return self.entity(entity).fields_of_type("reference")

    @property
    def package(self) -> Package:
        """The last package loaded: the one a deployment is made of."""
        return self.packages[-1]

    @property
    def locales(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for package in self.packages:
            seen.update(dict.fromkeys(package.locales))
        return tuple(seen)

    def origin(self, kind: str, name: str, *path: str | int) -> Origin | None:
        """Which package, file and line set a property.

        ``model.origin("entity", "account", "fields", "name", "label")``
        """
        table = self.origins.get((kind, name))
        if not table:
            return None
        key = tuple(path)
        while key:
            if key in table:
                return table[key]
            key = key[:-1]
        return table.get(())

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities.values())

    # JSON form ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "hash": self.hash,
            "packages": [
                {
                    "name": p.name,
                    "label": p.label.to_json(),
                    "version": p.version,
                    "extends": p.extends,
                    "locales": list(p.locales),
                    "default_locale": p.default_locale,
                    "table_prefix": p.table_prefix,
                    "currency": p.currency,
                }
                for p in self.packages
            ],
            "documents": thaw(self.documents),
            "owners": [[kind, name, package] for (kind, name), package in self.owners.items()],
        }

    def to_json(self) -> str:
        """The definitions behind this Model as one JSON document (no file positions)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
