"""Duplicate rules (查重): normalizers, match keys and similarity, without a database.

The definition language declares rules on entities::

    duplicate_rules:
      - name: same_name
        fields: [name]
        normalize: [case, space, width, company_suffix, region_prefix, punctuation]

and this package turns them into keys that agree for "北京字节跳动科技有限公司" and
"字节跳动科技", "株式会社ソニー" and "ｿﾆｰ(株)", "+86 138-0013-8000" and "13800138000"::

    >>> rule = MatchRule("same_name", ("name",), ("case", "space", "width", "company_suffix"))
    >>> rule.matches({"name": "Acme Corporation"}, {"name": "ACME  corp."})
    True

Normalizers form a registry: a package adds its own with :func:`register_normalizer`, the
way the built-ins (``case``, ``space``, ``width``, ``punctuation``, ``company_suffix``,
``region_prefix``, ``phone``) are added. See docs/duplicates.md.
"""

from __future__ import annotations

# Imported for their registrations: the built-ins use the public registry like any package.
from . import _company, _regions, _text  # noqa: F401
from ._registry import (
    Normalizer,
    UnknownNormalizer,
    get_normalizer,
    normalizer_names,
    normalizer_version,
    register_normalizer,
    unregister_normalizer,
)
from .rules import (
    SEPARATOR,
    Duplicate,
    MatchRule,
    RuleDefinition,
    find_duplicates,
    match_key,
    similarity,
)

__all__ = [
    "SEPARATOR",
    "Duplicate",
    "MatchRule",
    "Normalizer",
    "RuleDefinition",
    "UnknownNormalizer",
    "find_duplicates",
    "get_normalizer",
    "match_key",
    "normalizer_names",
    "normalizer_version",
    "register_normalizer",
    "similarity",
    "unregister_normalizer",
]
