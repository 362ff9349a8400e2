"""``/settings``: the logged-in user's own profile, language, password, API tokens and —
when the Model has approvals — who decides their approvals while they are away.

Each part is its own form posting to its own URL with the CSRF token (the blueprint's
``before_request`` checks it). A refused form comes back with its errors beside their
fields and what was typed; a saved one redirects back with a flash message. The language
is saved on the account, so it follows the user to other browsers. A new password ends
the user's other sessions (a session carries a digest of the password hash, see
:func:`heddle.accounts.password_stamp`) and revokes their API tokens; this session goes
on with the new password. A new token is shown once, on the page that created it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import current_app, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_user
from werkzeug.wrappers import Response

from engine import NotFound, ValidationFailed
from workflows.delegations import Delegations

from . import i18n
from ._approval_counts import has_approvals
from ._screens import MAX_ID, locale, page, ui
from .accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    AccountError,
    TokenInfo,
    User,
    email_problem,
    password_problem,
    text_problem,
    token_name_problem,
)
from .extensions import runtime
from .i18n import gettext as _
from .ratelimit import LoginLimit

#: How long a token made here may live, in days (the setting's default is offered too).
TOKEN_DAYS = (7, 30, 90, 365)
SECTIONS = ("profile", "language", "password", "tokens", "away")

Errors = dict[str, list[str]]


# --- the page ----------------------------------------------------------------------------------


def _profile(user_id: int) -> dict[str, Any]:
    heddle = runtime()
    with heddle.engine.connect() as conn:
        info = heddle.accounts.list_users(conn, user_id=user_id)[0]
    return {"username": info.username, "name": info.name, "email": info.email or ""}


def _token_rows(user: User) -> list[dict[str, Any]]:
    """The user's tokens, newest first, with their dates formatted for the reader."""
    heddle = runtime()
    with heddle.engine.connect() as conn:
        tokens = heddle.accounts.tokens_of(conn, user.username)
    now = dt.datetime.now(dt.UTC)
    return [_token_row(t, now) for t in reversed(tokens)]


def _token_row(token: TokenInfo, now: dt.datetime) -> dict[str, Any]:
    when = i18n.BabelFormatter().datetime
    status = token.status(now)
    labels = {"active": _("Active"), "expired": _("Expired"), "revoked": _("Revoked")}
    return {
        "id": token.id,
        "name": token.name,
        "created": when(token.created_at),
        "last_used": when(token.last_used_at) if token.last_used_at else "",
        "expires": when(token.expires_at) if token.expires_at else "",
        "status": status,
        "status_label": labels[status],
        "revoke_url": url_for("ui.revoke_own_token", token_id=token.id),
    }


def _day_choices() -> list[dict[str, Any]]:
    default = int(current_app.config["TOKEN_DAYS"])
    days = sorted({*TOKEN_DAYS, default})
    return [
        {
            "value": d,
            "label": i18n.ngettext("%(num)d day", "%(num)d days", d),
            "default": d == default,
        }
        for d in days
    ]


def _settings_page(
    *,
    errors: Mapping[str, Errors] | None = None,
    typed: Mapping[str, Mapping[str, str]] | None = None,
    new_token: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    user: User = g.user
    errors = errors or {}
    typed = typed or {}
    here = locale()
    languages = [
        {"value": c, "label": i18n.native_name(c), "selected": c == user.locale}
        for c in i18n.supported()
    ]
    away = _away(user, typed.get("away", {})) if has_approvals() else None
    return page(
        "settings.html",
        _("Settings"),
        "settings",
        status,
        profile={**_profile(user.id), **typed.get("profile", {})},
        languages=languages,
        current_locale=here,
        tokens=_token_rows(user),
        token_days=_day_choices(),
        token_typed=typed.get("tokens", {}),
        new_token=new_token,
        errors={s: errors.get(s, {}) for s in SECTIONS},
        min_password=MIN_PASSWORD,
        away=away,
        actions={
            "away": url_for("ui.set_away"),
            "profile": url_for("ui.save_profile"),
            "language": url_for("ui.save_language"),
            "password": url_for("ui.change_password"),
            "tokens": url_for("ui.create_own_token"),
        },
    )


@ui.get("/settings")
def settings() -> ResponseReturnValue:
    return _settings_page()


def _refused(section: str, errors: Errors, typed: Mapping[str, str] | None = None) -> Response:
    return _settings_page(errors={section: errors}, typed={section: dict(typed or {})}, status=422)


def _done(message: str, section: str) -> Response:
    flash(message, "success")
    return redirect(url_for("ui.settings", _anchor=section))


# --- profile and language ----------------------------------------------------------------------


@ui.post("/settings/profile")
def save_profile() -> ResponseReturnValue:
    name = request.form.get("name", "").strip()
    email = request.form.get("email", "").strip()
    errors = _profile_errors(name, email)
    if errors:
        return _refused("profile", errors, {"name": name, "email": email})
    heddle = runtime()
    try:
        with heddle.engine.begin() as conn:
            heddle.accounts.update_user(conn, g.user.id, name=name, email=email or None)
    except AccountError as exc:  # what the checks above let through, as the API says it
        return _refused(
            "profile", {exc.field or "name": [str(exc)]}, {"name": name, "email": email}
        )
    return _done(_("Your profile was saved."), "profile")


def _profile_errors(name: str, email: str) -> Errors:
    """The users API's checks (:meth:`Accounts.update_user`), in the reader's language."""
    errors: Errors = {}
    if not name:
        errors["name"] = [_("Enter your name.")]
    elif text_problem(name, what="a name", size=200):
        errors["name"] = [_("A name has at most 200 characters and no control characters.")]
    if email and (
        text_problem(email, what="an email address", size=255, empty=True) or email_problem(email)
    ):
        errors["email"] = [_("Enter an email address such as name@example.com.")]
    return errors


@ui.post("/settings/language")
def save_language() -> ResponseReturnValue:
    chosen = request.form.get("locale", "")
    if chosen not in i18n.supported():
        return _refused("language", {"locale": [_("Choose one of the languages offered.")]})
    save_locale(g.user, chosen)
    session["locale"] = chosen
    return _done(_("Your language was saved."), "language")


def save_locale(user: User, chosen: str) -> None:
    """Keep ``chosen`` on the user's account (the language switch calls this too)."""
    if user.locale == chosen:
        return
    heddle = runtime()
    with heddle.engine.begin() as conn:
        heddle.accounts.update_user(conn, user.id, locale=chosen)


# --- password ----------------------------------------------------------------------------------


@ui.post("/settings/password")
def change_password() -> ResponseReturnValue:
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    again = request.form.get("confirm_password", "")
    limit: LoginLimit = current_app.extensions["heddle_login_limit"]
    limit.hit(str(current_app.config["LOGIN_LIMIT"]), request.remote_addr or "unknown")
    errors = _new_password_errors(new, again)
    heddle = runtime()
    user = None
    with heddle.engine.begin() as conn:
        if not current or heddle.accounts.authenticate(conn, g.user.username, current) is None:
            errors["current_password"] = [_("That is not your current password.")]
        if not errors:
            user = heddle.accounts.update_user(conn, g.user.id, password=new)
            heddle.accounts.revoke_tokens_of(conn, user.id)
    if user is None:
        current_app.logger.warning("refused password change for %r", g.user.username)
        return _refused("password", errors)
    login_user(user)  # this session goes on with the new password; the others end
    current_app.logger.info("password changed by %r", user.username)
    return _done(
        _("Your password was changed. Your other sessions and your API tokens have ended."),
        "password",
    )


def _new_password_errors(new: str, again: str) -> Errors:
    """The CLI's and the API's password rules (:func:`password_problem`), translated."""
    errors: Errors = {}
    if len(new) < MIN_PASSWORD:
        errors["new_password"] = [
            _("A password needs at least %(num)d characters.", num=MIN_PASSWORD)
        ]
    elif len(new) > MAX_PASSWORD:
        errors["new_password"] = [_("A password has at most %(num)d characters.", num=MAX_PASSWORD)]
    elif password_problem(new):
        errors["new_password"] = [_("This password cannot be used.")]
    if new != again:
        errors["confirm_password"] = [_("The two new passwords differ.")]
    return errors


# --- API tokens --------------------------------------------------------------------------------


# --- away: a delegation of the user's approvals --------------------------------------------


def _away(user: User, typed: Mapping[str, str]) -> dict[str, Any]:
    """The delegations the user gave or received, running or to come, and the colleagues
    who may decide for them."""
    heddle = runtime()
    with heddle.engine.connect() as conn:
        people = heddle.accounts.list_users(conn, active=True)
    names = {p.id: p.name or p.username for p in people}
    shown = i18n.BabelFormatter()
    rows = []
    for d in Delegations(heddle.records).list(user.actor()):
        given = d["user_id"] == user.id
        rows.append({
            "given": given,
            "other": names.get(d["delegate_id"] if given else d["user_id"], "—"),
            "starts": shown.date(d["starts_on"]),
            "ends": shown.date(d["ends_on"]),
            "note": d["note"],
            "clear_url": url_for("ui.clear_away", delegation_id=d["id"]) if given else None,
        })  # fmt: skip
    chosen = typed.get("delegate_id", "")
    others = sorted((p for p in people if p.id != user.id), key=lambda p: names[p.id])
    colleagues: list[dict[str, Any]] = [
        {"value": str(p.id), "label": f"{names[p.id]} ({p.username})"} for p in others
    ]
    for colleague in colleagues:
        colleague["selected"] = colleague["value"] == chosen
    return {"delegations": rows, "colleagues": colleagues, "typed": typed}


@ui.post("/settings/away")
def set_away() -> ResponseReturnValue:
    """While the user is away (both dates included), a colleague decides their approvals."""
    if not has_approvals():
        raise NotFound("the Model has no approvals")
    form = request.form
    typed = {name: form.get(name, "").strip()
             for name in ("delegate_id", "starts_on", "ends_on", "note")}  # fmt: skip
    errors: Errors = {}
    delegate = int(typed["delegate_id"]) if typed["delegate_id"].isdigit() else None
    if delegate is None or len(typed["delegate_id"]) > 10:
        errors["delegate_id"] = [_("Choose who decides for you.")]
    data = {"delegate_id": delegate, "starts_on": typed["starts_on"] or None,
            "ends_on": typed["ends_on"] or None, "note": typed["note"]}  # fmt: skip
    if not errors:
        try:
            Delegations(runtime().records).set(g.user.actor(), data)
        except ValidationFailed as exc:
            errors = {name: [i18n.gettext(m) for m in messages]
                      for name, messages in exc.fields.items()}  # fmt: skip
            errors = errors or {"delegate_id": [i18n.gettext(exc.message)]}
    if errors:
        return _refused("away", errors, typed)
    heddle = runtime()
    with heddle.engine.connect() as conn:
        chosen = heddle.accounts.list_users(conn, user_id=delegate)[0]
    who = f"{chosen.name or chosen.username} ({chosen.username})"
    return _done(_("%(name)s decides your approvals while you are away.", name=who), "away")


@ui.post("/settings/away/<int:delegation_id>/clear")
def clear_away(delegation_id: int) -> ResponseReturnValue:
    if delegation_id > MAX_ID:
        raise NotFound(f"no delegation with id {delegation_id}")
    Delegations(runtime().records).clear(g.user.actor(), delegation_id)
    return _done(_("The delegation was cleared."), "away")


@ui.post("/settings/tokens")
def create_own_token() -> ResponseReturnValue:
    name = request.form.get("name", "").strip()
    days_text = request.form.get("days", "")
    allowed = {str(d["value"]) for d in _day_choices()}
    errors: Errors = {}
    if not name:
        errors["name"] = [_("Say what the token is for.")]
    elif token_name_problem(name):
        errors["name"] = [_("A name has at most 200 characters and no control characters.")]
    if days_text not in allowed:
        errors["days"] = [_("Choose one of the periods offered.")]
    if errors:
        return _refused("tokens", errors, {"name": name, "days": days_text})
    heddle = runtime()
    with heddle.engine.begin() as conn:
        value, expires = heddle.accounts.issue_token(conn, g.user, days=int(days_text), name=name)
    current_app.logger.info("token %r issued to %r from the settings", name, g.user.username)
    shown = {"name": name, "value": value, "expires": i18n.BabelFormatter().datetime(expires)}
    return _settings_page(new_token=shown, status=201)


@ui.post("/settings/tokens/<int:token_id>/revoke")
def revoke_own_token(token_id: int) -> ResponseReturnValue:
    heddle = runtime()
    with heddle.engine.begin() as conn:
        mine = {t.id: t for t in heddle.accounts.tokens_of(conn, g.user.username)}
        if token_id > MAX_ID or token_id not in mine:
            raise NotFound(f"no token with id {token_id}")
        heddle.accounts.revoke_token_id(conn, token_id)
    return _done(_("The token “%(name)s” was revoked.", name=mine[token_id].name), "tokens")
