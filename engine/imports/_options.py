"""What an import is asked to do: :class:`ImportOptions`, checked as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import BadRequest
from ._convert import DATE_ORDERS

MODES = ("insert", "update", "upsert")
DUPLICATE_CHOICES = ("skip", "merge", "refuse")
#: Records written per transaction (with the run's checkpoint): fewer, larger batches cost
#: PostgreSQL and Python less per row (docs/performance.md#import); a crash loses at most one.
BATCH_SIZE = 2000
#: The processes an import may write with (``workers``): each takes a core and a connection.
MAX_WORKERS = 8


@dataclass(frozen=True)
class ImportOptions:
    """``mode``: insert new records, update existing ones found by ``key``, or upsert (update
    when found, else insert). ``dry_run`` writes nothing; ``all_or_nothing`` writes every
    row or none (one transaction), else each valid row is written and the bad ones reported.
    ``mapping``: header → field (None leaves a column out) over the automatic one.
    ``duplicates``: per duplicate rule (``*`` for any), what to do with a row that repeats a
    record: ``skip`` it, ``merge`` it into the record it repeats, or ``refuse`` it (an error).
    ``workers``: the processes that write a large file on PostgreSQL (None: one per core,
    up to four; see docs/import-export.md#several-processes).
    """

    mode: str = "insert"
    key: str | None = None
    dry_run: bool = False
    all_or_nothing: bool = False
    mapping: Mapping[str, str | None] | None = None
    encoding: str | None = None
    format: str | None = None
    date_order: str = "ymd"
    value_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    duplicates: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = BATCH_SIZE
    workers: int | None = None

    def duplicate_choice(self, rule: str) -> str:
        return self.duplicates.get(rule) or self.duplicates.get("*") or "refuse"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportOptions:
        """Options from JSON-like input (an API body, a template, a stored run): every
        problem reported at once as :class:`BadRequest` with ``{option: [messages]}``."""
        known = {f for f in cls.__dataclass_fields__}
        problems: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                if name != "system":
                    problems[name] = [f"Unknown option (known: {', '.join(sorted(known))})."]
                continue
            problem = _problem(name, value)
            if problem:
                problems[name] = [problem]
            else:
                values[name] = value
        if values.get("mode", "insert") != "insert" and not values.get("key"):
            problems.setdefault("key", []).append(
                "update and upsert need a key: the field that finds the record (e.g. external_id)."
            )
        if problems:
            first = next(iter(problems.items()))
            raise BadRequest(f"invalid import option {first[0]}: {first[1][0]}", problems)
        return cls(**values)


def _problem(name: str, value: Any) -> str | None:
    if name == "mode":
        return None if value in MODES else f"One of {', '.join(MODES)}."
    if name in ("dry_run", "all_or_nothing"):
        return None if isinstance(value, bool) else "true or false."
    if name in ("key", "encoding", "format"):
        ok = value is None or (isinstance(value, str) and 0 < len(value) <= 63)
        return None if ok else "A name (text)."
    if name == "date_order":
        return None if value in DATE_ORDERS else f"One of {', '.join(DATE_ORDERS)}."
    if name == "batch_size":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10_000
        return None if ok else "A whole number from 1 to 10000."
    if name == "workers":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool)
                               and 1 <= value <= MAX_WORKERS)  # fmt: skip
        return None if ok else f"A whole number from 1 to {MAX_WORKERS}, or null (one per core)."
    if name == "mapping":
        ok = value is None or (
            isinstance(value, Mapping)
            and all(isinstance(k, str) and (v is None or isinstance(v, str))
                    for k, v in value.items())
        )  # fmt: skip
        return None if ok else "An object of column header → field name (or null)."
    if name == "value_map":
        ok = isinstance(value, Mapping) and all(
            isinstance(m, Mapping) and all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in m.items())
            for m in value.values()
        )  # fmt: skip
        return None if ok else "An object of field → {text: choice value}."
    if name == "duplicates":
        ok = isinstance(value, Mapping) and all(v in DUPLICATE_CHOICES for v in value.values())
        return None if ok else f"An object of rule → {' | '.join(DUPLICATE_CHOICES)}."
    return None  # pragma: no cover - every option is listed above
