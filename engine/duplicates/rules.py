"""Match keys and duplicate rules: what two records must share to be the same customer.

A rule lists fields and normalizers. Each field's value goes through the normalizers in
order and becomes that field's *key*; a rule with ``match: all`` needs every field's key
to agree, one with ``match: any`` needs one of them. Exact keys can be stored and indexed,
so finding a duplicate is a lookup (see docs/duplicates.md); ``fuzzy`` (a similarity from
0 to 1) compares keys with RapidFuzz for near misses the normalizers cannot fold away.

Nothing here reads a database: the engine stores :meth:`MatchRule.keys` and hands the
records it finds back to :meth:`MatchRule.score` or :func:`find_duplicates`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Generic, Literal, Protocol, TypeVar, cast

from rapidfuzz.distance import Indel

from ._registry import Normalizer, get_normalizer

#: Joins the parts of a key (the unit separator, a control character no key keeps).
SEPARATOR = "\x1f"

Match = Literal["all", "any"]
K = TypeVar("K", bound=Hashable)


class RuleDefinition(Protocol):
    """What a rule needs from a definition; ``metamodel.DuplicateRule`` has it."""

    @property
    def name(self) -> str: ...
    @property
    def fields(self) -> tuple[str, ...]: ...
    @property
    def normalize(self) -> tuple[str, ...]: ...
    @property
    def match(self) -> str: ...


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone read from a spreadsheet cell as 13800138000.0
    return value if isinstance(value, str) else str(value)


def _apply(chain: Sequence[Normalizer], value: object) -> str:
    text = _text(value)
    for fn in chain:
        text = fn(text)
    return text.replace(SEPARATOR, " ").strip()


#: The values whose keys are remembered (a tuple: ``str | int`` would be made per call).
_REMEMBERED = (str, int)
#: How many values' keys each chain remembers; then it forgets them all at once and starts
#: again (:func:`remember_up_to` raises it).
_limit = 16_384


def remember_up_to(count: int) -> None:
    """Let each chain remember up to ``count`` values' keys: a process writing an import,
    which ends with it, computes its rows' keys first and then again twice per row
    (:mod:`engine.imports._parallel`)."""
    global _limit  # the size of the process's caches, as a maxsize is
    _limit = max(_limit, count)


@cache
def _remembered(chain: tuple[Normalizer, ...]) -> Callable[[str | int], str]:
    """:func:`_apply` for one chain, remembered per value: an import computes a row's keys
    for its in-file check and again for the key table's (normalizing a company name is
    the costly part). One dictionary per chain, so a lookup hashes the value alone; an
    ``int`` is kept with its type (``True`` apart from ``1``)."""
    known: dict[object, str] = {}

    def key(value: str | int) -> str:
        remembered = value if value.__class__ is str else (value.__class__, value)
        found = known.get(remembered)
        if found is None:
            if len(known) >= _limit:
                known.clear()
            found = known[remembered] = _apply(chain, value)
        return found

    return key


def match_key(value: object, normalizers: Sequence[str] = ()) -> str:
    """``value`` passed through the named normalizers in order; ``""`` for no value.

    Non-strings are formatted with ``str`` first (a phone stored as a number; a whole
    float without its ``.0``). An empty key means "nothing to compare": rules never match
    on it.

    >>> match_key("ACME  Corporation", ["case", "space", "company_suffix"])
    'acme'
    >>> match_key("ｿﾆｰ(株)", ["width", "company_suffix"])
    'ソニー'
    """
    return _apply([get_normalizer(name) for name in normalizers], value)


def similarity(a: str, b: str) -> float:
    """How alike two keys are, from 0.0 to 1.0: RapidFuzz's normalized Indel similarity
    (``fuzz.ratio / 100``), character by character, so it suits Chinese and Japanese names
    as well as Latin ones. Empty keys are alike to nothing.

    >>> similarity("字节跳动科技", "字节跳动科技")
    1.0
    >>> round(similarity("acme trading", "acme tradng"), 2)
    0.96
    """
    if not a or not b:
        return 0.0
    return float(Indel.normalized_similarity(a, b))


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A compiled duplicate rule: its normalizers are looked up once, when it is made.

    ``fuzzy`` is the similarity (0 < fuzzy ≤ 1) two keys need to count as the same;
    ``None`` asks for equal keys, which is what an index can find.

    >>> rule = MatchRule("same_name", ("name",), ("case", "space", "company_suffix"))
    >>> rule.keys({"name": "Acme Corp."}) == rule.keys({"name": "ACME  corporation"})
    True
    """

    name: str
    fields: tuple[str, ...]
    normalize: tuple[str, ...] = ()
    match: Match = "all"
    fuzzy: float | None = None
    _chain: tuple[Normalizer, ...] = field(init=False, repr=False, compare=False)
    _key: Callable[[str | int], str] = field(init=False, repr=False, compare=False)
    _space: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError(f"duplicate rule '{self.name}' needs at least one field")
        if self.match not in ("all", "any"):
            raise ValueError(
                f"duplicate rule '{self.name}': match must be 'all' or 'any', not {self.match!r}"
            )
        if self.fuzzy is not None and not 0 < self.fuzzy <= 1:
            raise ValueError(
                f"duplicate rule '{self.name}': fuzzy must be a similarity above 0 and at "
                f"most 1 (like 0.9), not {self.fuzzy!r}"
            )
        chain = tuple(get_normalizer(name) for name in self.normalize)
        object.__setattr__(self, "_chain", chain)
        object.__setattr__(self, "_key", _remembered(chain))
        kind = f"all{len(self.fields)}" if self._joined else "each"
        object.__setattr__(self, "_space", f"{kind}:{','.join(self.normalize)}")

    @classmethod
    def from_definition(cls, rule: RuleDefinition, *, fuzzy: float | None = None) -> MatchRule:
        """Compile a rule of the definition language (``metamodel.DuplicateRule``)."""
        match = cast(Match, rule.match)  # checked by __post_init__
        return cls(rule.name, tuple(rule.fields), tuple(rule.normalize), match, fuzzy)

    @property
    def key_space(self) -> str:
        """Rules whose keys can be compared share a key space: the same normalizers, and
        for ``match: all`` over several fields the same number of fields (on one field,
        ``all`` and ``any`` are the same thing).

        It is what lets ``also_check`` work across entities whose fields are named
        differently: the account rule ``same_name`` (``fields: [name]``) and the lead rule
        ``same_company`` (``fields: [company]``) normalize alike, so their keys meet.

        >>> MatchRule("same_phone", ("mobile", "phone"), ("phone",), match="any").key_space
        'each:phone'
        >>> MatchRule("same_phone", ("phone",), ("phone",)).key_space
        'each:phone'
        """
        return self._space

    @property
    def _joined(self) -> bool:
        """True when every field must agree, so a record has one key joining them all."""
        return self.match == "all" and len(self.fields) > 1

    def field_keys(self, record: Mapping[str, object]) -> tuple[str, ...]:
        """Each field's key in the rule's order; ``""`` where the record has no value (a
        missing field counts as empty)."""
        key = self._key
        return tuple(
            key(value) if isinstance(value := record.get(name), _REMEMBERED)
            else _apply(self._chain, value)
            for name in self.fields
        )  # fmt: skip

    def keys(self, record: Mapping[str, object]) -> tuple[str, ...]:
        """The keys to store and look up for ``record``: two records are duplicates under
        an exact rule when they share one.

        ``match: all`` over several fields gives one key joining every field's key, or none
        when a field is empty. Otherwise each distinct non-empty field key is one: under
        ``match: any`` a lead whose mobile is another lead's phone shares a number with it,
        whichever field holds it.
        """
        if len(self.fields) == 1:  # most rules: one field, one key at most
            value = record.get(self.fields[0])
            one = self._key(value) if isinstance(value, _REMEMBERED) else _apply(self._chain, value)
            return (one,) if one else ()
        parts = self.field_keys(record)
        if self._joined:
            return (SEPARATOR.join(parts),) if all(parts) else ()
        return tuple(dict.fromkeys(key for key in parts if key))

    def score(self, a: Mapping[str, object], b: Mapping[str, object]) -> float:
        """How well ``b`` matches ``a`` from 0.0 to 1.0, against the rule's fields.

        Exact rules score 1.0 or 0.0. Fuzzy ones score the fields' similarities: for
        ``match: all`` the weakest of field against same field, for ``match: any`` the
        strongest of any field against any field.
        """
        return self.score_keys(self.field_keys(a), self.field_keys(b))

    def score_keys(self, a: Sequence[str], b: Sequence[str]) -> float:
        """:meth:`score` for keys made by :meth:`field_keys`, possibly by another rule of
        the same :attr:`key_space` (``also_check`` on another entity)."""
        if self._joined:
            if not len(a) == len(b) == len(self.fields):
                raise ValueError(f"rule '{self.name}' compares {len(self.fields)} keys at once")
            return min(self._compare(x, y) for x, y in zip(a, b, strict=True))
        return max((self._compare(x, y) for x in a for y in b), default=0.0)

    def matches(self, a: Mapping[str, object], b: Mapping[str, object]) -> bool:
        """True when ``a`` and ``b`` are duplicates under this rule."""
        return self.score(a, b) >= self.threshold

    @property
    def threshold(self) -> float:
        """The score a match needs: ``fuzzy``, or 1.0 for an exact rule."""
        return 1.0 if self.fuzzy is None else self.fuzzy

    def _compare(self, a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        if a == b:
            return 1.0
        return 0.0 if self.fuzzy is None else similarity(a, b)


@dataclass(frozen=True, slots=True)
class Duplicate(Generic[K]):
    """A candidate found by :func:`find_duplicates`: its id and how well it matched."""

    id: K
    score: float


def find_duplicates(
    rule: MatchRule,
    record: Mapping[str, object],
    candidates: Iterable[tuple[K, Mapping[str, object]]],
    *,
    exclude: K | None = None,
    candidate_rule: MatchRule | None = None,
) -> list[Duplicate[K]]:
    """The candidates that duplicate ``record`` under ``rule``, best first.

    ``candidates`` are ``(id, record)`` pairs: the rows an indexed lookup returned, or the
    earlier rows of an import file. ``exclude`` skips the record itself on update.
    ``candidate_rule`` reads the candidates' fields when they are records of another
    entity (``also_check``); it must share ``rule``'s :attr:`~MatchRule.key_space`.

    >>> rule = MatchRule("same_phone", ("phone",), ("phone",))
    >>> rows = [(1, {"phone": "+86 138-0013-8000"}), (2, {"phone": "021-5555-0000"})]
    >>> find_duplicates(rule, {"phone": "13800138000"}, rows)
    [Duplicate(id=1, score=1.0)]
    """
    other_rule = candidate_rule or rule
    if other_rule.key_space != rule.key_space:
        raise ValueError(
            f"rule '{other_rule.name}' ({other_rule.key_space}) cannot be compared with "
            f"rule '{rule.name}' ({rule.key_space}): give them the same normalizers "
            "(and, for match: all, the same number of fields)"
        )
    keys = rule.field_keys(record)
    found = []
    for key, other in candidates:
        if exclude is not None and key == exclude:
            continue
        score = rule.score_keys(keys, other_rule.field_keys(other))
        if score >= rule.threshold:
            found.append(Duplicate(key, score))
    found.sort(key=lambda d: d.score, reverse=True)
    return found
