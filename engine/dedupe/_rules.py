"""The duplicate rules of one Model, compiled for the record service: each rule's
:class:`~engine.duplicates.MatchRule`, the rules whose keys it looks up (its own, and those
of its ``also_check`` entities in the same key space), and the fingerprint that says
whether the keys stored for it are still the keys it makes."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property

from metamodel import DuplicateRule, Model

from ..duplicates import MatchRule, normalizer_version

#: Raised when the way keys are stored changes (hashing, joining): every rule is rebuilt.
KEY_FORMAT = 1
#: Keys longer than this many characters are stored as a digest, which keeps the index's
#: entries small; the prefix (a control character no key starts with) keeps a digest from
#: ever equalling a real key.
MAX_KEY = 500
DIGEST = "\x1f#"

ACTIONS = ("block", "claim", "warn")


def stored_key(key: str) -> str:
    """``key`` as the key table holds it: itself, or a digest when it is long."""
    if len(key) <= MAX_KEY:
        return key
    return DIGEST + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Target:
    """A rule whose stored keys a check looks up: ``(entity, rule)`` rows of the key table,
    read with ``match`` (its own fields) and ``pool`` (the field naming a record's pool)."""

    entity: str
    rule: str
    match: MatchRule
    pool: str | None


@dataclass(frozen=True)
class CompiledRule:
    """One duplicate rule of one entity, ready to compute, look up and describe keys."""

    entity: str
    definition: DuplicateRule
    match: MatchRule
    #: its own keys first, then the also_check entities' rules of the same key space
    targets: tuple[Target, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def action(self) -> str:
        return self.definition.action

    @property
    def fields(self) -> tuple[str, ...]:
        return self.definition.fields

    @property
    def key_space(self) -> str:
        return self.match.key_space

    @property
    def fuzzy(self) -> float | None:
        return self.match.fuzzy

    @property
    def locks(self) -> bool:
        """Whether two writers must not both pass this rule at once (PostgreSQL takes an
        advisory lock on each new key): a rule that refuses for good (``block``, and
        ``claim`` against the entity's own records). A warning is advice: no lock."""
        return self.action in ("block", "claim")

    def keys(self, record: Mapping[str, object]) -> tuple[str, ...]:
        """The keys stored for ``record`` (long ones as digests)."""
        return tuple(stored_key(key) for key in self.match.keys(record))

    @cached_property
    def fingerprint(self) -> str:
        """What made this rule's keys: when it changes, the stored keys are rebuilt.

        The key space and fields, each normalizer's identity and version, the Unicode
        version (case folding and NFKC follow it) and :data:`KEY_FORMAT`. The action,
        label, ``also_check`` and ``fuzzy`` do not change the keys, so not the print.
        """
        parts = {
            "format": KEY_FORMAT,
            "key_space": self.key_space,
            "fields": list(self.fields),
            "match": self.definition.match,
            "normalizers": [normalizer_version(name) for name in self.definition.normalize],
            "unicode": unicodedata.unidata_version,
        }
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


class RuleSet:
    """Every duplicate rule of ``model``, by entity, compiled once."""

    def __init__(self, model: Model) -> None:
        self.model = model
        matches = {
            (entity.name, rule.name): MatchRule.from_definition(rule, fuzzy=rule.fuzzy)
            for entity in model
            for rule in entity.duplicate_rules
        }
        by_entity: dict[str, tuple[CompiledRule, ...]] = {}
        for entity in model:
            compiled = []
            for rule in entity.duplicate_rules:
                match = matches[(entity.name, rule.name)]
                targets = [Target(entity.name, rule.name, match, rule.pool)]
                for other in rule.also_check:
                    if other == entity.name or other not in model.entities:
                        continue
                    for candidate in model.entity(other).duplicate_rules:
                        found = matches[(other, candidate.name)]
                        if found.key_space == match.key_space:
                            targets.append(Target(other, candidate.name, found, candidate.pool))
                compiled.append(CompiledRule(entity.name, rule, match, tuple(targets)))
            if compiled:
                by_entity[entity.name] = tuple(compiled)
        self._by_entity = by_entity

    def of(self, entity: str) -> tuple[CompiledRule, ...]:
        """The rules of ``entity``, in definition order (none: an empty tuple)."""
        return self._by_entity.get(entity, ())

    def get(self, entity: str, name: str) -> CompiledRule | None:
        return next((rule for rule in self.of(entity) if rule.name == name), None)

    def __iter__(self) -> Iterator[CompiledRule]:
        for rules in self._by_entity.values():
            yield from rules

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(self._by_entity)

    @property
    def fuzzy(self) -> bool:
        """Whether some rule compares keys by similarity (and so needs a trigram index)."""
        return any(rule.fuzzy is not None for rule in self)


def lock_id(key_space: str, key: str) -> int:
    """The PostgreSQL advisory lock of one key: a signed 64-bit number from its digest."""
    digest = hashlib.blake2b(f"{key_space}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
