"""The ``company_suffix`` normalizer: legal forms in Chinese, Japanese and English.

"北京字节跳动科技有限公司" and "北京字节跳动科技（有限公司）", "株式会社ソニー" and "ソニー(株)",
"Acme Corporation" and "Acme Corp." name one company each; the legal form says nothing
about which. The forms are removed from the end (and, for Japanese, the start) of a name,
repeatedly, so "Acme Co., Ltd." loses "Ltd." then "Co.". A name that is nothing but a
legal form ("有限公司", "Inc.") is left as it is rather than emptied.
"""

from __future__ import annotations

import re

from ._registry import register_normalizer

#: Chinese and Japanese legal forms, written after the name; no word boundary needed.
CJK_SUFFIXES = (
    "集团股份有限公司", "集團股份有限公司", "股份有限公司", "有限责任公司", "有限責任公司",
    "责任有限公司", "責任有限公司", "集团有限公司", "集團有限公司", "有限公司", "股份公司",
    "集团", "集團",
    "特殊普通合伙", "普通合伙", "有限合伙",
    "株式会社", "株式會社", "有限会社", "合同会社", "合資会社", "合名会社",
)  # fmt: skip

#: Latin legal forms (case-insensitive), only after a space or punctuation: "Acmeinc" keeps
#: its "inc". Each may end in a full stop; combined forms ("Co., Ltd.") fall away one word
#: at a time. A space stands for any run of whitespace.
LATIN_SUFFIXES = (
    "incorporated", "corporation", "company", "limited", "gmbh", "l.l.c", "llc", "llp", "plc",
    "inc", "corp", "ltd", "co", "ag", "s.a", "k.k", "pte", "pty", "bhd", "sdn",
    "kabushiki kaisha",
)  # fmt: skip

#: Japanese abbreviations written in brackets (or as one enclosed character) before or after
#: the name: (株) 株式会社, (有) 有限会社, (同) 合同会社, (資) 合資会社, (名) 合名会社.
_BRACKETED_JA = r"[(（]\s*[株有同資名]\s*[)）]|[㈱㈲]"
_JA_PREFIXES = (
    "株式会社", "株式會社", "有限会社", "合同会社", "合資会社", "合名会社",
    "一般社団法人", "一般財団法人", "公益社団法人", "公益財団法人", "特定非営利活動法人",
    "NPO法人", "医療法人社団", "医療法人財団", "医療法人", "学校法人", "社会福祉法人",
)  # fmt: skip


def _reversed(words: tuple[str, ...]) -> str:
    """An alternation matching ``words`` backwards, longest first (股份有限公司 before 公司)."""
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(w[::-1]).replace("\\ ", r"\s+") for w in ordered)


# Suffixes are matched on the reversed name, anchored at its start: one attempt per call
# instead of one per position, which a pattern ending in "$" costs.
_CJK_R = _reversed(CJK_SUFFIXES) + "|司公(?!分)"  # a branch (分公司) is not a legal form
_LATIN_R = rf"\.?(?:{_reversed(LATIN_SUFFIXES)})(?![a-z0-9])"
_BRACKETED_JA_R = r"[)）]\s*[株有同資名]\s*[(（]|[㈱㈲]"
_FORM_R = rf"{_CJK_R}|{_LATIN_R}|{_BRACKETED_JA_R}"
_SUFFIX_R = re.compile(
    rf"[\s.,，、。．]*(?:[)）]\s*(?:{_FORM_R})\s*[(（]|(?:{_FORM_R}))[\s,，、]*", re.IGNORECASE
)
_PREFIX = re.compile(
    rf"\s*(?:{_BRACKETED_JA}|{'|'.join(sorted(_JA_PREFIXES, key=len, reverse=True))})\s*",
    re.IGNORECASE,  # NPO法人, npo法人
)


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def _has_name(value: str) -> bool:
    return _LETTER_OR_DIGIT.search(value) is not None


@register_normalizer("company_suffix")
def company_suffix(value: str) -> str:
    """Remove legal-form suffixes and Japanese legal-form prefixes from a company name.

    >>> company_suffix("北京字节跳动科技股份有限公司")
    '北京字节跳动科技'
    >>> company_suffix("株式会社ソニー"), company_suffix("ソニー(株)")
    ('ソニー', 'ソニー')
    >>> company_suffix("Acme Co., Ltd."), company_suffix("Inc.")
    ('Acme', 'Inc.')
    """
    name = value
    while True:
        if found := _SUFFIX_R.match(name[::-1]):
            shorter = name[: len(name) - found.end()]
        elif found := _PREFIX.match(name):
            shorter = name[found.end() :]
        else:
            return name
        if not _has_name(shorter):
            return value  # nothing but legal forms ("Co., Ltd."): keep them all
        name = shorter
