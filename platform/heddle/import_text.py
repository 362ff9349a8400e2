"""An import's problems in the user's language, said the same way on the run's page and
in the error file the API and the screens hand out (the rejected rows to correct)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flask_babel

from engine import Actor
from engine.imports import Imports
from metamodel import Entity

from . import i18n
from .extensions import runtime


def said(problem: Mapping[str, Any], ent: Entity, here: str) -> str:
    """A problem of an import's row in the user's language: its template translated with
    its params (a field, entity or duplicate rule named by its label), else its message
    if the catalogs know it, else the engine's English."""
    template = problem.get("template")
    if not template:
        return i18n.gettext(problem.get("message", ""))
    params = dict(problem.get("params") or {})
    model = runtime().model
    if "what" in params:
        what = params["what"]
        found = model.entities.get(what)
        params["what"] = found.label.get(here) if found is not None else i18n.gettext(what)
    if params.get("key") in ent.fields:
        params["key"] = ent.fields[params["key"]].label.get(here)
    rule = next((r for r in ent.duplicate_rules if r.name == params.get("rule")), None)
    if rule is not None:
        params["rule"] = rule.label.get(here)
    try:
        return str(i18n.gettext(template)) % params
    except (KeyError, TypeError, ValueError):  # a catalog's entry that does not fit
        return str(problem.get("message", ""))


def error_file(
    imports: Imports, actor: Actor, run_id: int, format: str, locale: str | None = None
) -> bytes:
    """The run's rejected rows as CSV or XLSX, its headers and messages in ``locale`` (the
    API passes the caller's own language), else the request's (the screens'); the file's
    own column headers and cells as they were."""
    if locale is not None and locale in i18n.supported():
        with flask_babel.force_locale(locale):
            return error_file(imports, actor, run_id, format)
    here = i18n.current_locale()
    model = runtime().model

    def say(entity: str, problem: Mapping[str, Any]) -> str:
        ent = model.entities.get(entity)
        if ent is None:  # users or teams
            return i18n.gettext(str(problem.get("message", "")))
        return said(problem, ent, here)

    labels = (i18n.gettext("Row"), i18n.gettext("Errors"))
    return imports.error_file(actor, run_id, format, say=say, labels=labels)
