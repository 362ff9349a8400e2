"""Definition packages installed with Python: a name in ``HEDDLE_PACKAGES`` (``crm``) as
well as a path.

A distribution declares its packages as entry points of the ``heddle.packages`` group,
each a name and the Python package whose folder holds the definitions (or
``module:attribute``, an attribute holding the folder's path)::

    [project.entry-points."heddle.packages"]
    crm = "crm_definitions"
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

GROUP = "heddle.packages"


def installed_packages() -> dict[str, str]:
    """Name → entry point value of every installed definition package."""
    return {point.name: point.value for point in entry_points(group=GROUP)}


def installed_path(name: str) -> Path | None:
    """The folder of the installed definition package ``name``, or None when there is no
    such package (or its module cannot be found)."""
    value = installed_packages().get(name)
    if value is None:
        return None
    module, _, attribute = value.partition(":")
    try:
        if attribute:
            return Path(getattr(importlib.import_module(module.strip()), attribute.strip()))
        spec = importlib.util.find_spec(module.strip())
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None
