"""Registries: the extension points of every layer.

A registry maps names to small objects (a field type, a view kind, a workflow action…).
Heddle's built-ins register through the same public :meth:`Registry.register` that a
package's plugin uses, so a plugin's field type is a first-class field type::

    from metamodel import FIELD_TYPES, FieldType

    FIELD_TYPES.register(FieldType("rating", "integer", options=frozenset({"required"})))

Each registry counts its changes (:attr:`Registry.version`), so what is built from it
once — the JSON Schema of definitions, say — can tell when to build again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from ._errors import UnknownName


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")


class RegistryError(ValueError):
    """A name registered twice, or an item that does not fit its registry."""


class Registry(Generic[T]):
    """Named items of one kind, in registration order.

    Iterating gives the names; :meth:`__getitem__` raises :class:`UnknownName` suggesting
    the closest name.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        self.version = 0

    def register(self, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under its name; ``replace=True`` overrides an existing one (a
        package may change a built-in, deliberately). Returns ``item``."""
        name = item.name
        if not isinstance(name, str) or not _SNAKE.fullmatch(name):
            raise RegistryError(f"{self.what} name {name!r} must be snake_case")
        if name in self._items and not replace:
            raise RegistryError(
                f"{self.what} '{name}' is already registered; pass replace=True to override it"
            )
        self._items[name] = item
        self.version += 1
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a plugin clean up with it)."""
        if self._items.pop(name, None) is not None:
            self.version += 1

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.what, name, self._items) from None

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> tuple[T, ...]:
        return tuple(self._items.values())

    def __repr__(self) -> str:
        return f"<Registry of {len(self._items)} {self.what}s>"
