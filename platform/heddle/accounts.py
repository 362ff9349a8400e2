"""Users, teams and API tokens: the people who act, and how they prove it.

Passwords are hashed with Argon2id; API tokens are random, shown once, and stored only as
their SHA-256 digest, with an expiry and a revocation time. Roles are names of the
package's role definitions (``admin`` is built in).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine import Actor, Tables
from engine.tables import TEAM_TABLE, TOKEN_TABLE, USER_TABLE

TOKEN_PREFIX = "hdl_"
_hasher = PasswordHasher()
# Compared against when the username is unknown, so a wrong name costs as long as a
# wrong password and timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not a password")


class AccountError(ValueError):
    """Bad input for an account: an unknown role, a taken username, an unknown manager."""


@dataclass(frozen=True, slots=True)
class User:
    """A user as the platform needs it for one request."""

    id: int
    username: str
    name: str
    team_id: int | None
    roles: frozenset[str]
    locale: str
    active: bool

    def actor(self, today: dt.date | None = None) -> Actor:
        return Actor(
            user_id=self.id,
            team_id=self.team_id,
            roles=self.roles,
            locale=self.locale,
            today=today,
            label=self.username,
        )

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        name=row.name,
        team_id=row.team_id,
        roles=frozenset(row.roles or ()),
        locale=row.locale,
        active=bool(row.active),
    )


class TokenCache:
    """Recently checked tokens, for a few seconds: most API calls then need no query to
    know who is calling. A revocation or deactivation reaches every process within
    ``seconds`` (at once in the process that made it)."""

    def __init__(self, seconds: float = 5.0, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: OrderedDict[str, tuple[float, User]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> User | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, digest: str, user: User) -> None:
        with self._lock:
            self._entries[digest] = (time.monotonic() + self.seconds, user)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Accounts:
    def __init__(self, tables: Tables, *, token_cache_seconds: float = 5.0) -> None:
        self.tables = tables
        self.cache = TokenCache(token_cache_seconds)
        system = tables.metadata.tables
        self.users = system[USER_TABLE]
        self.teams = system[TEAM_TABLE]
        self.tokens = system[TOKEN_TABLE]

    # users and teams --------------------------------------------------------------------

    def team_id(self, conn: sa.Connection, name: str, *, create: bool = True) -> int:
        """The id of the team called ``name``, created when missing."""
        found = conn.scalar(sa.select(self.teams.c.id).where(self.teams.c.name == name))
        if found is not None:
            return int(found)
        if not create:
            raise AccountError(f"no team called '{name}'")
        now = dt.datetime.now(dt.UTC)
        return int(
            conn.execute(
                self.teams.insert().values(name=name, created_at=now).returning(self.teams.c.id)
            ).scalar_one()
        )

    def set_team_parent(self, conn: sa.Connection, name: str, parent: str | None) -> int:
        """Put team ``name`` under ``parent`` (None: at the top); both created if missing.

        A team may not end up under itself: that would make "team and below" endless.
        """
        team = self.team_id(conn, name)
        parent_id = self.team_id(conn, parent) if parent else None
        ancestor = parent_id
        while ancestor is not None:
            if ancestor == team:
                raise AccountError(f"team '{name}' cannot be placed under itself")
            ancestor = conn.scalar(
                sa.select(self.teams.c.parent_id).where(self.teams.c.id == ancestor)
            )
        conn.execute(self.teams.update().where(self.teams.c.id == team).values(parent_id=parent_id))
        return team

    def create_user(
        self,
        conn: sa.Connection,
        username: str,
        password: str,
        roles: list[str],
        *,
        team: str | None = None,
        manager: str | None = None,
        name: str = "",
        email: str | None = None,
        locale: str = "en",
    ) -> User:
        known = {"admin", *self.tables.model.roles}
        unknown = [role for role in roles if role not in known]
        if unknown:
            raise AccountError(
                f"unknown role '{unknown[0]}'; the package defines: {', '.join(sorted(known))}"
            )
        if not username.strip():
            raise AccountError("a username cannot be empty")
        if len(password) < 8:
            raise AccountError("a password needs at least 8 characters")
        if self.by_username(conn, username) is not None:
            raise AccountError(f"user '{username}' already exists")
        manager_id = None
        if manager is not None:
            boss = self.by_username(conn, manager)
            if boss is None:
                raise AccountError(f"no user called '{manager}' to be the manager")
            manager_id = boss.id
        new_id = conn.execute(
            self.users.insert()
            .values(
                username=username,
                name=name or username,
                email=email,
                team_id=self.team_id(conn, team) if team else None,
                manager_id=manager_id,
                roles=sorted(roles),
                locale=locale,
                active=True,
                password_hash=hash_password(password),
                created_at=dt.datetime.now(dt.UTC),
            )
            .returning(self.users.c.id)
        ).scalar_one()
        user = self.by_id(conn, int(new_id))
        assert user is not None
        return user

    def by_id(self, conn: sa.Connection, user_id: int) -> User | None:
        row = conn.execute(sa.select(self.users).where(self.users.c.id == user_id)).first()
        return _user(row) if row is not None else None

    def by_username(self, conn: sa.Connection, username: str) -> User | None:
        row = conn.execute(sa.select(self.users).where(self.users.c.username == username)).first()
        return _user(row) if row is not None else None

    def authenticate(self, conn: sa.Connection, username: str, password: str) -> User | None:
        """The active user with this username and password, or None."""
        row = None
        if "\x00" not in username:  # no username holds one, and PostgreSQL refuses it in text
            row = conn.execute(
                sa.select(self.users).where(self.users.c.username == username)
            ).first()
        stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.active:
            return None
        if _hasher.check_needs_rehash(stored):
            conn.execute(
                self.users.update()
                .where(self.users.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
        return _user(row)

    # tokens -----------------------------------------------------------------------------

    def issue_token(
        self, conn: sa.Connection, user: User, *, days: int, name: str = ""
    ) -> tuple[str, dt.datetime]:
        """A new API token for ``user``: the token (shown once) and when it expires."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        expires = now + dt.timedelta(days=days)
        conn.execute(
            self.tokens.insert().values(
                user_id=user.id,
                name=name,
                token_hash=_digest(token),
                created_at=now,
                expires_at=expires,
            )
        )
        return token, expires

    def cached_user(self, token: str) -> User | None:
        """The user of a token checked in the last few seconds, without a query."""
        return self.cache.get(_digest(token))

    def user_for_token(self, conn: sa.Connection, token: str) -> User | None:
        """The active user a valid, unexpired, unrevoked token belongs to."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _digest(token)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        t, u = self.tokens, self.users
        row = conn.execute(
            sa.select(
                t.c.id.label("token_id"), t.c.expires_at, t.c.revoked_at, t.c.last_used_at,
                u.c.id, u.c.username, u.c.name, u.c.team_id, u.c.roles, u.c.locale, u.c.active,
            )
            .join(u, u.c.id == t.c.user_id)
            .where(t.c.token_hash == digest)
        ).first()  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        if row is None or row.revoked_at is not None or not row.active:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
            # once per token every few minutes; commit: the connection may be a reader's
            conn.execute(t.update().where(t.c.id == row.token_id).values(last_used_at=now))
            conn.commit()
        user = _user(row)
        lifetime = (row.expires_at - now).total_seconds() if row.expires_at else None
        if lifetime is None or lifetime > self.cache.seconds:
            self.cache.put(digest, user)
        return user

    def tokens_of(self, conn: sa.Connection, username: str | None = None) -> list[TokenInfo]:
        """The tokens issued (to ``username``, or to anyone), oldest first."""
        t, u = self.tokens, self.users
        query = (
            sa.select(
                t.c.id, u.c.username, t.c.name, t.c.created_at, t.c.expires_at,
                t.c.last_used_at, t.c.revoked_at,
            )
            .join(u, u.c.id == t.c.user_id)
            .order_by(t.c.id)
        )  # fmt: skip
        if username is not None:
            query = query.where(u.c.username == username)
        return [TokenInfo(**row._mapping) for row in conn.execute(query)]

    def revoke_token_id(self, conn: sa.Connection, token_id: int) -> bool:
        """Revoke a token by its id (``heddle token list``); False if none is active."""
        self.cache.clear()
        t = self.tokens
        done = conn.execute(
            t.update()
            .where(t.c.id == token_id, t.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return done.rowcount == 1

    def revoke_token(self, conn: sa.Connection, token: str) -> bool:
        self.cache.clear()
        t = self.tokens
        done = conn.execute(
            t.update()
            .where(t.c.token_hash == _digest(token), t.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return done.rowcount == 1


@dataclass(frozen=True)
class TokenInfo:
    """What is known of an issued token (never the token itself: only its hash is kept)."""

    id: int
    username: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
