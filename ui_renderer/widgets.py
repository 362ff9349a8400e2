"""Field widgets: how a value of each field type is shown and edited.

One :class:`Widget` per field type, under the type's name (the names of
:data:`metamodel.FIELD_TYPES`). A widget names two Jinja2 macros of a template: ``input``
renders the form control of a :class:`~ui_renderer.pages.Slot`, ``display`` its value on a
record page or in a list cell. The built-ins live in ``templates/widgets.html`` and register
through the same door as a plugin's::

    from ui_renderer import WIDGETS, Widget

    WIDGETS.register(Widget("rating", input="rating_input", display="rating_stars",
                            template="rating_widgets.html"))

A plugin's template is found through :meth:`ui_renderer.Screens.add_templates`.
"""

from __future__ import annotations

from dataclasses import dataclass

from metamodel import Registry


@dataclass(frozen=True)
class Widget:
    """The macros that edit (``input``) and show (``display``) one field type."""

    name: str
    input: str
    display: str = "plain"
    template: str = "widgets.html"


WIDGETS: Registry[Widget] = Registry("widget")


def register_widget(widget: Widget, *, replace: bool = False) -> Widget:
    """Add (or, with ``replace``, change) the widget of a field type."""
    return WIDGETS.register(widget, replace=replace)


for _widget in (
    Widget("string", "text_input"),
    Widget("text", "textarea", "multiline"),
    Widget("integer", "number_input", "number"),
    Widget("decimal", "number_input", "number"),
    Widget("money", "number_input", "money"),
    Widget("percent", "number_input", "percent"),
    Widget("boolean", "checkbox", "yes_no"),
    Widget("date", "date_input", "date"),
    Widget("datetime", "datetime_input", "datetime"),
    Widget("choice", "select", "badge"),
    Widget("multichoice", "checkboxes", "badges"),
    Widget("reference", "reference_select", "reference"),
    Widget("children", "child_rows_input", "child_rows"),
    Widget("email", "text_input", "email"),
    Widget("phone", "text_input", "phone"),
    Widget("url", "text_input", "url"),
    Widget("file", "file_input", "file_links"),
    Widget("autonumber", "readonly", "plain"),
    Widget("formula", "readonly", "computed"),
    Widget("rollup", "readonly", "number"),
    Widget("user", "user_select", "title"),
    Widget("team", "user_select", "title"),
):
    WIDGETS.register(_widget)
