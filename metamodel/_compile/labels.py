"""Labels: every locale a label is written in must be one its package declares.

A label keyed ``jp:`` where the package's locales are ``[en, zh, ja]`` would be accepted
and never shown. Where labels may stand is read from the JSON Schema (every place it
refers to ``#/$defs/label``), so a view kind or field type a plugin registers is
covered too. The check applies to packages that declare ``locales`` (themselves or
through the package they extend); one that declares none accepts any locale code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from .._errors import did_you_mean
from .._merge import Document
from .._yaml import Location
from ..schema import kind_schema, registries_version
from ._context import Checker

#: A key or index of any name, in a label path.
ANY = None
Pattern = tuple[str | None, ...]

#: Country codes often written for a language: jp is Japan, ja is Japanese.
COUNTRY_FOR_LANGUAGE = {
    "jp": "ja",
    "cn": "zh",
    "tw": "zh-TW",
    "hk": "zh-HK",
    "kr": "ko",
    "gr": "el",
    "dk": "da",
    "se": "sv",
    "cz": "cs",
    "ua": "uk",
    "vn": "vi",
    "us": "en",
    "gb": "en",
    "br": "pt-BR",
    "il": "he",
    "ir": "fa",
    "in": "hi",
}


def check_label_locales(
    checker: Checker, declared: Mapping[str, tuple[str, ...]], doc: Document
) -> None:
    """Report each label key of ``doc`` that the package which wrote it does not declare.

    ``declared`` maps a package name to its locales (own or inherited); a package not in
    it declares none, and is not checked."""
    for path, texts in _label_paths(doc.value, label_patterns(doc.kind)):
        for key in texts:
            where = (*path, key)
            package = doc.key_origin(where).package or doc.package
            locales = declared.get(package)
            if locales is None or key in locales:
                continue
            checker.error(
                doc,
                where,
                f"locale '{key}' is not among the locales of package '{package}'"
                f" ({', '.join(locales)}): this text would never be shown",
                _locale_hint(key, locales)
                or f"add '{key}' to the locales of package '{package}', or remove the text",
                at_key=True,
            )


def _locale_hint(key: str, locales: tuple[str, ...]) -> str:
    lower = {locale.lower(): locale for locale in locales}
    guesses = [
        COUNTRY_FOR_LANGUAGE.get(key.lower(), ""),
        key.lower(),
        key.split("-")[0].lower(),
    ]
    for guess in guesses:
        if guess.lower() in lower:
            return f"did you mean '{lower[guess.lower()]}'?"
    return did_you_mean(key, locales)


def _label_paths(
    value: Any, patterns: tuple[Pattern, ...]
) -> Iterator[tuple[Location, Mapping[str, Any]]]:
    """The labels written per locale in ``value``, where a pattern allows one, with paths."""
    for pattern in patterns:
        yield from _walk(value, pattern, ())


def _walk(
    value: Any, pattern: Pattern, path: Location
) -> Iterator[tuple[Location, Mapping[str, Any]]]:
    if not pattern:
        if isinstance(value, dict):
            yield path, value
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(value, dict):
        keys = list(value) if head is ANY else [head] if head in value else []
        for key in keys:
            yield from _walk(value[key], rest, (*path, key))
    elif isinstance(value, list) and head is ANY:
        for index, item in enumerate(value):
            yield from _walk(item, rest, (*path, index))


def label_patterns(kind: str) -> tuple[Pattern, ...]:
    """Where a document of ``kind`` may hold labels, as paths with ``ANY`` steps."""
    return _patterns(kind, registries_version())


@cache
def _patterns(kind: str, _version: tuple[int, ...]) -> tuple[Pattern, ...]:
    schema = kind_schema(kind)
    found: set[Pattern] = set()
    _collect(schema, schema["$defs"], (), frozenset(), found)
    return tuple(sorted(found, key=lambda p: [str(s) for s in p]))


def _collect(
    node: Any, defs: Mapping[str, Any], path: Pattern, refs: frozenset[str], found: set[Pattern]
) -> None:
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name == "label":
            found.add(path)
        elif name not in refs and name in defs:
            _collect(defs[name], defs, path, refs | {name}, found)
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in node.get(key, ()):
            _collect(branch, defs, path, refs, found)
    for key in ("if", "then", "else"):
        _collect(node.get(key), defs, path, refs, found)
    for key, sub in (node.get("properties") or {}).items():
        _collect(sub, defs, (*path, key), refs, found)
    for sub in (node.get("patternProperties") or {}).values():
        _collect(sub, defs, (*path, ANY), refs, found)
    for key in ("additionalProperties", "items"):
        _collect(node.get(key), defs, (*path, ANY), refs, found)
