"""The WSGI entry point for production servers: ``gunicorn 'heddle.wsgi:app'``.

The app reads its settings from the ``HEDDLE_*`` environment variables.
"""

from __future__ import annotations

from .app import create_app

app = create_app()
