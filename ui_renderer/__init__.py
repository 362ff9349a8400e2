"""Screens rendered from the Model with Jinja2; the platform's views hand it data. Imports
:mod:`metamodel` (and Jinja2) only.

- :mod:`ui_renderer.pages` builds what a page shows (labels in the user's locale, the
  form's sections and tabs, list columns) from the Model and the rows a view read;
- :class:`Screens` draws it with the templates of ``templates/``;
- :data:`WIDGETS` (one per field type) and :data:`VIEW_RENDERERS` (one per view kind) are
  registries, keyed by the names of :data:`metamodel.FIELD_TYPES` and
  :data:`metamodel.VIEW_KINDS`, that plugins extend through the same door;
- :mod:`ui_renderer.assets` installs the front-end libraries (htmx, ECharts, SortableJS,
  Tabler) pinned in ``assets.json``.
"""

from __future__ import annotations

from .render import Formatter, Links, Screens
from .views import VIEW_RENDERERS, ViewRenderer, register_view
from .widgets import WIDGETS, Widget, register_widget

__all__ = [
    "VIEW_RENDERERS",
    "WIDGETS",
    "Formatter",
    "Links",
    "Screens",
    "ViewRenderer",
    "Widget",
    "register_view",
    "register_widget",
]
