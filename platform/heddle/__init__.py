"""Heddle, the running platform: configuration, the ``heddle`` command line and (soon) the
web application. The definition language lives in :mod:`metamodel`."""

from __future__ import annotations

__version__ = "0.1.0"
