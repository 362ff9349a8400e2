"""Plugins: Python modules that register field types, view kinds, actions or measures in
Heddle's registries before the definitions are loaded (docs/architecture.md).

A deployment names them in ``HEDDLE_PLUGINS`` (module names, separated by commas); an
installed distribution may also declare them as entry points of the ``heddle.plugins``
group. Importing a plugin is all it takes: a plugin registers at import time::

    # acme_rating.py
    from metamodel import FIELD_TYPES, FieldType
    FIELD_TYPES.register(FieldType("rating", "integer", …))
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

log = logging.getLogger("heddle.plugins")

GROUP = "heddle.plugins"


class PluginError(ValueError):
    """A plugin that cannot be imported; the message names it and why."""


def load_plugins(names: str) -> list[str]:
    """Import the plugins named in ``names`` (comma-separated module names) and those of
    installed distributions; returns the modules imported, each once per process."""
    loaded: list[str] = []
    for point in entry_points(group=GROUP):
        importlib.import_module(point.value.split(":")[0])
        loaded.append(point.value)
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(
                f"HEDDLE_PLUGINS: cannot import plugin '{name}': {exc}"
                " (is it installed, or on PYTHONPATH?)"
            ) from exc
        loaded.append(name)
    if loaded:
        log.debug("plugins loaded: %s", ", ".join(loaded))
    return loaded
