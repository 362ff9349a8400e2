"""Built-in normalizers for letters, spaces, punctuation and phone numbers.

Each is a plain ``str -> str`` registered by name; a rule applies them in the order it
lists them. Each one works whichever normalizers ran before it, so a rule may list them in
any order, though ``case, space, width`` first is what the CRM package does.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from ._registry import register_normalizer

#: Scripts written without spaces between words: Han, kana, CJK punctuation and the
#: full-width forms. A space next to one of these separates nothing. (Korean puts spaces
#: between words, so Hangul is not here.)
CJK = (
    "\u2e80-\u2fdf"  # CJK and Kangxi radicals
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u312f\u3190-\u31ff"  # bopomofo, kanbun, CJK strokes, katakana extensions
    "\u3200-\u9fff"  # enclosed CJK, CJK extension A, unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    # full-width punctuation and half-width katakana, but not full-width Latin letters and
    # digits: they spell words, and "Ｓｏｎｙ　Ｃｏｒｐ" keeps its space
    "\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uffef"
    "\U00020000-\U0003134f"  # CJK extensions B to G
)

_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_SPACE_BY_CJK = re.compile(f"(?<=[{CJK}]) | (?=[{CJK}])")


#: Whether :func:`tidy` has anything to do (most names, Chinese ones above all, have no
#: space at all): ``\s`` and ``str.strip`` agree on what whitespace is.
_UNTIDY = re.compile("[\\s\u200b-\u200d\u2060\ufeff]")


def tidy(value: str) -> str:
    """Collapse whitespace to one space, drop it next to CJK text, trim the ends."""
    if _UNTIDY.search(value) is None:
        return value
    value = _SPACES.sub(" ", _INVISIBLE.sub("", value)).strip()
    return _SPACE_BY_CJK.sub("", value)


@register_normalizer("case")
def case(value: str) -> str:
    """Fold case the Unicode way (``"ACME"``, ``"Ａｃｍｅ"`` and ``"acme"`` agree in kind).

    >>> case("ACME Straße")
    'acme strasse'
    """
    return value.casefold()


@register_normalizer("space")
def space(value: str) -> str:
    """Collapse runs of whitespace (the ideographic space U+3000 too) into one space.

    Spaces beside Chinese or Japanese characters are dropped: those scripts do not separate
    words, so ``"字节 跳动"`` is ``"字节跳动"`` and ``"ソニー　株式会社"`` is ``"ソニー株式会社"``.

    >>> space("  ACME \\t  corporation ")
    'ACME corporation'
    """
    return tidy(value)


@register_normalizer("width")
def width(value: str) -> str:
    """Unicode NFKC: full-width Latin and digits to half-width, half-width katakana to
    full-width, ``㈱`` to ``(株)``, ligatures and circled digits to plain characters.

    >>> width("ＡＣＭＥ ｿﾆｰ ㈱")
    'ACME ソニー (株)'
    """
    return unicodedata.normalize("NFKC", value)


# Dropped outright so "A.B.C." is "ABC" and "O'Brien" is "OBrien"; other punctuation
# becomes a space so "Coca-Cola" and "Coca Cola" agree.
_JOINERS = ".'\u2018\u2019\uff0e\uff07"
_SYMBOLS = "~\uff5e|\u00a6\u00ae\u00a9\u2122\u2120"
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P") or ch in _SYMBOLS


@functools.cache
def _punctuation_table() -> dict[int, str | None]:
    """The Basic Multilingual Plane's punctuation as a ``str.translate`` table, made on
    first use (a scan of 65,536 code points; the other planes are checked one by one)."""
    table: dict[int, str | None] = {cp: " " for cp in range(0x10000) if _is_punctuation(chr(cp))}
    table.update(dict.fromkeys(map(ord, _JOINERS)))
    return table


@register_normalizer("punctuation")
def punctuation(value: str) -> str:
    """Remove punctuation, ASCII and CJK alike: brackets (``()【】（）「」『』``), commas
    and ideographic full stops, middle dots (``・``), dashes and wave dashes.

    The katakana long-vowel mark ``ー`` is a letter, not a dash, and stays.

    >>> punctuation("【北京】字节跳动（科技）")
    '北京字节跳动科技'
    >>> punctuation("Coca-Cola, Inc.")
    'Coca Cola Inc'
    """
    if value.isalnum():
        return value  # letters and digits alone: no punctuation, symbol or space to drop
    value = value.translate(_punctuation_table())
    if _ASTRAL.search(value):
        value = "".join(" " if _is_punctuation(ch) else ch for ch in value)
    return tidy(value)


# A trailing extension: "ext. 12", "x12", "#12", "转8001", "分机 8001", "内線123".
_EXTENSION = re.compile(
    r"(?:ext\.?|extension|x|#|转|轉|分机|分機|内线|內線|内線)\s*\d{1,6}\s*$", re.IGNORECASE
)
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_PLUS = re.compile(r"^[^0-9]*\+")
_NOT_DIGITS = re.compile(r"[^0-9]+")


def _national(country: str, number: str) -> str:
    """The number as dialled inside China or Japan: with its trunk 0, mobiles in China
    without one."""
    if number.startswith("0"):
        return number  # written "+86 (0)10 …": the trunk 0 is already there
    if country == "86" and _CN_MOBILE.fullmatch(number):
        return number
    return "0" + number


@register_normalizer("phone", version=2)  # 2: "+00…" loses its exit code too
def phone(value: str) -> str:
    """Digits only, Chinese and Japanese numbers in their domestic form.

    ``+86``/``0086`` and ``+81``/``0081`` are replaced by the trunk ``0`` (Chinese mobiles
    have none), so the same line written two ways gets one key. Other international numbers
    keep their country code; a trailing extension is dropped (one switchboard, one company).

    >>> phone("+86 138-0013-8000"), phone("0086 138 0013 8000"), phone("13800138000")
    ('13800138000', '13800138000', '13800138000')
    >>> phone("+81 3 1234 5678"), phone("03-1234-5678")
    ('0312345678', '0312345678')
    """
    # Repeated until nothing changes, so a key is its own key (``+8600`` → ``00`` → ``''``).
    found = _phone_once(value)
    for _ in range(4):
        again = _phone_once(found)
        if again == found:
            break
        found = again
    return found


def _phone_parts(value: str) -> tuple[str, bool]:
    """A number's digits as written (less an extension), and whether it is written as an
    international one."""
    text = _EXTENSION.sub("", unicodedata.normalize("NFKC", value)).strip()
    digits = _NOT_DIGITS.sub("", text)
    return digits, bool(_PLUS.match(text))  # "+81 …", "(+81) …", "Tel: +81 …"


def _phone_once(value: str) -> str:
    if value.isascii() and value.isdigit():  # digits alone (the second pass): as they are
        digits, international = value, False
    else:
        digits, international = _phone_parts(value)
    while digits.startswith("00"):  # the exit code, "0086 …" (or "+0086 …")
        digits, international = digits[2:], True
    if not international and len(digits) == 13 and _CN_MOBILE.fullmatch(digits[2:]):
        international = digits.startswith("86")  # "86 138 0013 8000" without the plus
    if international:
        for country in ("86", "81"):
            if digits.startswith(country):
                return _national(country, digits[len(country) :])
        return digits
    if len(digits) == 12 and digits.startswith("0") and _CN_MOBILE.fullmatch(digits[1:]):
        return digits[1:]  # a mobile dialled from another city with a leading 0
    return digits
