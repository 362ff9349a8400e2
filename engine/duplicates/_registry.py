"""The normalizer registry: names a duplicate rule may list, each a small ``str -> str``.

The built-in normalizers register through :func:`register_normalizer`, the same function a
company package calls for its own, so nothing here knows which names exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import overload

Normalizer = Callable[[str], str]

_REGISTRY: dict[str, Normalizer] = {}
#: Each name's version: raised by whoever changes what the normalizer returns, so the keys
#: it made are rebuilt (engine.dedupe's fingerprints).
_VERSIONS: dict[str, int] = {}


class UnknownNormalizer(LookupError):
    """A rule names a normalizer nobody registered."""

    def __init__(self, name: str) -> None:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        super().__init__(
            f"unknown normalizer '{name}'{hint}; known normalizers: {', '.join(known)}"
        )
        self.name = name


@overload
def register_normalizer(
    name: str, func: None = None, *, replace: bool = False, version: int = 1
) -> Callable[[Normalizer], Normalizer]: ...
@overload
def register_normalizer(
    name: str, func: Normalizer, *, replace: bool = False, version: int = 1
) -> Normalizer: ...
def register_normalizer(
    name: str, func: Normalizer | None = None, *, replace: bool = False, version: int = 1
) -> Normalizer | Callable[[Normalizer], Normalizer]:
    """Register ``func`` under ``name``; usable as a call or a decorator.

    A second registration of a name is refused unless ``replace=True``, so two packages
    cannot silently override each other. ``version``: raise it when the function's output
    changes, so ``heddle migrate`` rebuilds the keys it made::

        @register_normalizer("kana", version=2)
        def kana(value: str) -> str:
            return hiragana_to_katakana(value)
    """

    def add(fn: Normalizer) -> Normalizer:
        if not name.isidentifier() or not name.islower():
            raise ValueError(f"normalizer name '{name}' must be a lower-case identifier")
        if name in _REGISTRY and not replace and _REGISTRY[name] is not fn:
            raise ValueError(
                f"normalizer '{name}' is already registered; pass replace=True to override it"
            )
        _REGISTRY[name] = fn
        _VERSIONS[name] = version
        return fn

    return add if func is None else add(func)


def unregister_normalizer(name: str) -> None:
    """Forget ``name`` (for tests and packages that withdraw a normalizer)."""
    if _REGISTRY.pop(name, None) is None:
        raise UnknownNormalizer(name)
    _VERSIONS.pop(name, None)


def get_normalizer(name: str) -> Normalizer:
    """The function registered as ``name``; :class:`UnknownNormalizer` if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNormalizer(name) from None


def normalizer_version(name: str) -> str:
    """What identifies the output of ``name``: the function registered and its version
    (a package replacing a built-in makes other keys, so another identity)."""
    fn = get_normalizer(name)
    where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    return f"{where}@{_VERSIONS.get(name, 1)}"


def normalizer_names() -> tuple[str, ...]:
    """Every registered name, sorted."""
    return tuple(sorted(_REGISTRY))
