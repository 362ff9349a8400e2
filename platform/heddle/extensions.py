"""The Flask extensions the platform uses, made once and bound to an app by
:func:`heddle.app.create_app` (``init_app``), and the accessor of the app's runtime.

Subsystems (the API, the API documents, and later the screens and the studio) import
what they need from here, never from :mod:`heddle.app`, which imports them.
"""

from __future__ import annotations

from flask import current_app
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from .runtime import Runtime

csrf = CSRFProtect()
login_manager = LoginManager()


def runtime() -> Runtime:
    """The current app's :class:`Runtime`; in a request, its ``model``, ``schema``,
    ``records`` and ``accounts`` are those of the state the request started with."""
    found: Runtime = current_app.extensions["heddle"]
    return found
