"""The Jinja2 environment the screens are drawn with.

:class:`Screens` owns the templates of ``ui_renderer/templates`` and the two registries
(widgets and view renderers). The platform gives it what only the platform can know —
how to build URLs (:class:`Links`), how to format values in the user's locale
(:class:`Formatter`) and the interface catalogs (``gettext``) — and hands each page its
data::

    screens = Screens(links=FlaskLinks(), formatter=BabelFormatter(),
                      gettext=domain.gettext, ngettext=domain.ngettext)
    html = screens.render("list.html", chrome=chrome, screen=screen)

Templates call ``widget(slot)`` (a field's value) or ``widget(slot, "input")`` (its form
control) and ``view("form", screen)``; both find their macro through the registries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jinja2
from markupsafe import Markup

from .pages import Slot
from .views import VIEW_RENDERERS
from .widgets import WIDGETS, Widget


class Links(Protocol):
    """The URLs of the screens, built by the platform."""

    def home(self) -> str: ...

    def login(self) -> str: ...

    def logout(self) -> str: ...

    def language(self) -> str: ...

    def settings(self) -> str: ...

    def entity_list(self, entity: str, params: Mapping[str, Any] | None = None) -> str: ...

    def record(
        self, entity: str, record_id: Any, params: Mapping[str, Any] | None = None
    ) -> str: ...

    def opens(self, entity: str) -> bool:
        """Whether the user may open records of ``entity``: a reference to one of an entity
        they may not read shows as its number, with no link to a 404."""
        ...

    def edit(self, entity: str, record_id: Any) -> str: ...

    def transition(self, entity: str, record_id: Any, name: str) -> str: ...

    def new(self, entity: str, params: Mapping[str, Any] | None = None) -> str: ...

    def options(self, entity: str) -> str: ...

    def kanban(self, entity: str, params: Mapping[str, Any] | None = None) -> str: ...

    def calendar(self, entity: str, params: Mapping[str, Any] | None = None) -> str: ...

    def move(self, entity: str, record_id: Any) -> str: ...

    def bulk(self, entity: str) -> str: ...

    def save_view(self, entity: str) -> str: ...

    def delete_view(self, entity: str, view_id: Any) -> str: ...

    def search(self) -> str: ...

    def reports(self) -> str: ...

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str: ...

    def report_csv(self, name: str, params: Mapping[str, Any] | None = None) -> str: ...

    def report_xlsx(self, name: str, params: Mapping[str, Any] | None = None) -> str: ...

    def dashboard(self, name: str, params: Mapping[str, Any] | None = None) -> str: ...

    def approvals(self, tab: str = "pending") -> str: ...

    def approval(self, entity: str, record_id: Any, approval_id: Any, action: str) -> str: ...

    def notifications(self, params: Mapping[str, Any] | None = None) -> str: ...

    def notification_read(self, notification_id: Any) -> str: ...

    def notifications_read_all(self) -> str: ...

    def comments(self, entity: str, record_id: Any) -> str: ...

    def comment(self, entity: str, record_id: Any, comment_id: Any, action: str) -> str: ...

    def log_activity(self, entity: str, record_id: Any, other: str) -> str: ...

    def asset(self, name: str) -> str: ...

    def static(self, filename: str) -> str: ...


class Formatter(Protocol):
    """Values as text in the user's locale (the platform uses Babel)."""

    def number(self, value: Any, scale: int | None = None) -> str: ...

    def money(self, value: Any, currency: str | None) -> str: ...

    def percent(self, value: Any) -> str: ...

    def date(self, value: Any) -> str: ...

    def datetime(self, value: Any) -> str: ...


FALLBACK_WIDGET = Widget("string", "text_input")


class Screens:
    """Renders the screens' templates with the registries' widgets and view renderers."""

    def __init__(
        self,
        *,
        links: Links,
        formatter: Formatter,
        gettext: Callable[..., str],
        ngettext: Callable[..., str],
        auto_reload: bool = False,
    ) -> None:
        self._loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("ui_renderer", "templates")]
        # macros found, by template and name: a list page draws hundreds of widgets, and
        # each lookup would otherwise ask the loader again (unless templates reload)
        self._macros: dict[tuple[str, str], Any] = {}
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(self._loaders),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=auto_reload,
        )
        self.env.install_gettext_callables(  # type: ignore[attr-defined]
            gettext, ngettext, newstyle=True
        )
        self.env.globals.update(
            links=links,
            fmt=formatter,
            widget=self.widget,
            view=self.view,
            colour=colour,
            merged=merged,
        )

    def add_templates(self, loader: jinja2.BaseLoader) -> None:
        """Let a plugin's widgets and views find their templates (searched first)."""
        self._loaders.insert(0, loader)
        self._macros.clear()

    def _macro(self, template: str, name: str) -> Any:
        macro = self._macros.get((template, name))
        if macro is not None:
            return macro
        module = self.env.get_template(template).module
        macro = getattr(module, name, None)
        if macro is None:
            raise LookupError(f"template {template!r} has no macro {name!r}")
        if not self.env.auto_reload:
            self._macros[(template, name)] = macro
        return macro

    def widget(self, slot: Slot, mode: str = "display") -> Markup:
        """The field's value (``display``) or its form control (``input``)."""
        found = WIDGETS.get(slot.type) or FALLBACK_WIDGET
        if mode == "input" and slot.readonly:
            return Markup(self._macro("widgets.html", "readonly")(slot, self.widget(slot)))
        if mode != "input" and slot.shown_as in WIDGETS:
            found = WIDGETS[slot.shown_as]
        name = found.input if mode == "input" else found.display
        return Markup(self._macro(found.template, name)(slot))

    def view(self, kind: str, screen: Any, **options: Any) -> Markup:
        """A view kind's screen, drawn by its registered renderer."""
        renderer = VIEW_RENDERERS[kind]
        return Markup(self._macro(renderer.template, renderer.macro)(screen, **options))

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)


#: Tabler's colour classes for the colours a choice may name.
COLOURS = {
    "red": "red",
    "orange": "orange",
    "yellow": "yellow",
    "green": "green",
    "teal": "teal",
    "blue": "blue",
    "cyan": "cyan",
    "purple": "purple",
    "pink": "pink",
    "gray": "secondary",
    "grey": "secondary",
}


def colour(name: str | None) -> str:
    """The badge classes for a choice colour (a light badge when it has none)."""
    if not name or name not in COLOURS:
        return "bg-secondary-lt"
    return f"bg-{COLOURS[name]}-lt"


def merged(params: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters with some changed; a change to ``None`` or ``""`` removes one.

    >>> merged({"q": "acme", "cursor": "x"}, {"sort": "-name", "cursor": None})
    {'q': 'acme', 'sort': '-name'}
    """
    result = dict(params or {})
    for key, value in changes.items():
        if value is None or value == "":
            result.pop(key, None)
        else:
            result[key] = value
    return result
