"""View renderers: the Jinja2 macro that draws each view kind an entity declares.

Keyed by the names of :data:`metamodel.VIEW_KINDS`: ``form`` (the record page and the
create/edit form: sections, tabs, related lists), ``list_views`` (a list's table),
``kanban`` (cards in columns), ``calendar`` (a month or week of days) and ``timeline``
(one entry of a record's timeline: an activity about it). A plugin's view
kind registers its renderer the same way::

    from ui_renderer import VIEW_RENDERERS, ViewRenderer

    VIEW_RENDERERS.register(ViewRenderer("gantt", macro="gantt", template="gantt.html"))
"""

from __future__ import annotations

from dataclasses import dataclass

from metamodel import Registry


@dataclass(frozen=True)
class ViewRenderer:
    """The macro (of ``template``) that renders one view kind's screen."""

    name: str
    macro: str
    template: str = "views.html"


VIEW_RENDERERS: Registry[ViewRenderer] = Registry("view renderer")


def register_view(renderer: ViewRenderer, *, replace: bool = False) -> ViewRenderer:
    """Add (or, with ``replace``, change) the renderer of a view kind."""
    return VIEW_RENDERERS.register(renderer, replace=replace)


VIEW_RENDERERS.register(ViewRenderer("form", "form_view"))
VIEW_RENDERERS.register(ViewRenderer("list_views", "list_view"))
VIEW_RENDERERS.register(ViewRenderer("kanban", "kanban_view", "kanban_board.html"))
VIEW_RENDERERS.register(ViewRenderer("calendar", "calendar_view", "calendar_grid.html"))
VIEW_RENDERERS.register(ViewRenderer("timeline", "timeline_entry", "timeline_parts.html"))
