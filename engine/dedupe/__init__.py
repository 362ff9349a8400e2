"""Duplicate rules enforced: every write is checked against stored, indexed keys.

:mod:`engine.duplicates` turns values into keys without a database; this package keeps
those keys in ``heddle_duplicate_key`` — one row per key, rule and record, indexed by
``(key_space, key, …)`` — inside the transaction of every create, update, delete and
merge, and checks a record's new keys there before it is written (see docs/duplicates.md):

- ``block`` refuses with :class:`~engine.errors.DuplicateFound`;
- ``warn`` refuses the same way unless the writer confirms the rule;
- ``claim`` refuses while a record of the entity itself matches (the customer exists:
  claim it from its pool, or ask its owner) and warns for the ``also_check`` entities'.

On PostgreSQL a ``block`` or ``claim`` rule takes an advisory lock per new key before
looking it up, so two writers of the same name cannot both pass. Fuzzy rules find their
candidates through a trigram index on the key column. ``migrate`` rebuilds the keys of a
rule that is new or changed (:func:`sync`).

>>> index = DuplicateIndex(tables, "postgresql", computer)
>>> keys = index.check(conn, actor, account, {"name": "ACME  corporation"}, None)
Traceback (most recent call last):
engine.errors.DuplicateFound: Same account name: this account already exists as …
"""

from __future__ import annotations

from ._index import FOUND, MAX_CANDIDATES, DuplicateIndex, Keys
from ._rebuild import Pending, pending, rebuild, sync
from ._rules import MAX_KEY, CompiledRule, RuleSet, Target, lock_id, stored_key

__all__ = [
    "FOUND",
    "MAX_CANDIDATES",
    "MAX_KEY",
    "CompiledRule",
    "DuplicateIndex",
    "Keys",
    "Pending",
    "RuleSet",
    "Target",
    "lock_id",
    "pending",
    "rebuild",
    "stored_key",
    "sync",
]
