"""An import's problems in the user's language, said the same way on the run's page and
in the error file the API and the screens hand out (the rejected rows to correct)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flask_babel

from engine import Actor
from engine.imports import Imports, Say
from metamodel import Entity, Model

from . import i18n
from .extensions import runtime


def said(
    problem: Mapping[str, Any],
    ent: Entity,
    here: str,
    *,
    model: Model | None = None,
    gettext: Callable[[str], str] | None = None,
) -> str:
    """A problem of an import's row in the user's language: its template translated with
    its params (a field, entity or duplicate rule named by its label), else its message
    if the catalogs know it, else the engine's English. ``gettext``: the catalog to say
    it from (the request's by default); ``model``: the definitions (the app's)."""
    say = gettext or i18n.gettext
    template = problem.get("template")
    if not template:
        return str(say(problem.get("message", "")))
    params = dict(problem.get("params") or {})
    model = model if model is not None else runtime().model
    if "what" in params:
        what = params["what"]
        found = model.entities.get(what)
        params["what"] = found.label.get(here) if found is not None else say(what)
    if params.get("key") in ent.fields:
        params["key"] = ent.fields[params["key"]].label.get(here)
    rule = next((r for r in ent.duplicate_rules if r.name == params.get("rule")), None)
    if rule is not None:
        params["rule"] = rule.label.get(here)
    try:
        return str(say(template)) % params
    except (KeyError, TypeError, ValueError):  # a catalog's entry that does not fit
        return str(problem.get("message", ""))


def wording(model: Model, here: str, gettext: Callable[[str], str]) -> tuple[Say, tuple[str, str]]:
    """How the error file words its problems in ``here`` from the catalog ``gettext``, and
    its first two headers (:meth:`engine.imports.Imports.error_file`)."""

    def say(entity: str, problem: Mapping[str, Any]) -> str:
        ent = model.entities.get(entity)
        if ent is None:  # users or teams
            return str(gettext(str(problem.get("message", ""))))
        return said(problem, ent, here, model=model, gettext=gettext)

    return say, (str(gettext("Row")), str(gettext("Errors")))


def error_file(
    imports: Imports, actor: Actor, run_id: int, format: str, locale: str | None = None
) -> bytes:
    """In a request: the run's rejected rows as CSV or XLSX, its headers and messages in
    ``locale`` (the API passes the caller's own language), else the request's (the
    screens'); the file's own column headers and cells as they were."""
    if locale is not None and locale in i18n.supported():
        with flask_babel.force_locale(locale):
            return error_file(imports, actor, run_id, format)
    say, labels = wording(runtime().model, i18n.current_locale(), i18n.gettext)
    return imports.error_file(actor, run_id, format, say=say, labels=labels)


def error_file_in(imports: Imports, actor: Actor, run_id: int, format: str, locale: str) -> bytes:
    """Outside a request (``heddle import --errors``): the same file in ``locale``, from
    the catalogs themselves."""
    catalog = i18n.catalogs.catalog(locale)
    say, labels = wording(imports.records.model, locale, catalog.gettext)
    return imports.error_file(actor, run_id, format, say=say, labels=labels)
