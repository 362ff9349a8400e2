"""Languages of the screens: the locale of a request, the interface catalogs and the
formatting of values (Flask-Babel and Babel).

- The locale is the one the user picked with the language switch (kept in the session),
  else the one saved on the user's account when it is not the platform's default, else
  the browser's best match among the Model's locales, else ``HEDDLE_LOCALE``.
- Interface text is gettext, from ``ui_renderer/translations/<locale>/LC_MESSAGES/
  messages.po``; the catalogs are compiled in memory when first used, so no ``.mo`` file
  is built or shipped. Labels come from the Model's locale maps, not from here.
- Numbers, money, percentages, dates and times go through Babel's formatters.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import flask_babel
from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import current_app, request, session
from flask_login import current_user

import ui_renderer

from .extensions import runtime

CATALOGS = Path(ui_renderer.__file__).resolve().parent / "translations"


class Catalogs(flask_babel.Domain):  # type: ignore[misc]
    """The interface catalogs, compiled from their ``.po`` files once per process."""

    def __init__(self, folder: Path = CATALOGS) -> None:
        super().__init__(translation_directories=[str(folder)])
        self.folder = folder
        self._compiled: dict[str, NullTranslations] = {}
        self._lock = threading.Lock()

    def catalog(self, locale: str) -> NullTranslations:
        found = self._compiled.get(locale)
        if found is None:
            with self._lock:
                found = self._compiled.get(locale) or self._compile(locale)
                self._compiled[locale] = found
        return found

    def _compile(self, locale: str) -> NullTranslations:
        path = self.folder / locale / "LC_MESSAGES" / "messages.po"
        if not path.is_file():
            return NullTranslations()
        with path.open("rb") as source:
            catalog = read_po(source, locale=locale)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return Translations(fp=buffer)

    def get_translations(self) -> NullTranslations:
        return self.catalog(current_locale())


catalogs = Catalogs()


def gettext(text: str, **variables: Any) -> str:
    """Interface text in the request's locale."""
    return str(catalogs.gettext(text, **variables))


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    return str(catalogs.ngettext(singular, plural, num, **variables))


def supported() -> tuple[str, ...]:
    return runtime().model.locales


def select_locale() -> str:
    """The request's locale (see the module's docstring for the order)."""
    locales = supported()
    default = str(current_app.config.get("LOCALE") or "en")
    chosen = session.get("locale")
    if chosen in locales:
        return str(chosen)
    user = current_user
    if user and user.is_authenticated and user.locale in locales and user.locale != default:
        return str(user.locale)
    best = request.accept_languages.best_match(locales) if request else None
    return best or (default if default in locales else locales[0])


def current_locale() -> str:
    locale = flask_babel.get_locale()
    return str(locale) if locale is not None else "en"


def native_name(code: str) -> str:
    """A language's name in itself: English, 中文, 日本語."""
    try:
        name = Locale.parse(code).get_language_name(code) or code
    except (UnknownLocaleError, ValueError):
        return code
    return name[:1].upper() + name[1:]


class BabelFormatter:
    """:class:`ui_renderer.Formatter` with Babel, in the request's locale and time zone."""

    def number(self, value: Any, scale: int | None = None) -> str:
        number = _decimal(value)
        if number is None:
            return str(value)
        if scale is not None and scale > 0:
            pattern = "#,##0." + "0" * min(scale, 2) + "#" * max(scale - 2, 0)
            return str(flask_babel.format_decimal(number, format=pattern))
        return str(flask_babel.format_decimal(number))

    def money(self, value: Any, currency: str | None) -> str:
        number = _decimal(value)
        if number is None:
            return str(value)
        return str(flask_babel.format_currency(number, currency or "USD"))

    def percent(self, value: Any) -> str:
        number = _decimal(value)
        if number is None:
            return str(value)
        return str(flask_babel.format_percent(number / 100, format="#,##0.##%"))

    def date(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                return str(value)
        if isinstance(value, dt.datetime):  # its day in the deployment's time zone
            value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone().date()
        return str(flask_babel.format_date(value, format="medium"))

    def datetime(self, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return str(value)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.datetime):  # shown in the deployment's time zone
            value = value.astimezone()
        return str(flask_babel.format_datetime(value, format="medium", rebase=False))


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def init_app(app: Any) -> None:
    """Flask-Babel with Heddle's locale selector and catalogs."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", str(app.config.get("LOCALE") or "en"))
    flask_babel.Babel(app, locale_selector=select_locale)
