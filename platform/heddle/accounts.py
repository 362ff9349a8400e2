"""Users, teams and API tokens: the people who act, and how they prove it.

Passwords are hashed with Argon2id at OWASP's first recommended cost (19 MiB of memory,
2 passes, 1 lane: about 25 ms on one core of these machines; argon2-cffi's default, RFC
9106's 64 MiB and 4 lanes, took 150-400 ms on two shared cores, with no lane to spare).
A hash made at another cost is redone at the next login. API tokens are random, shown
once, and stored only as their SHA-256 digest, with an expiry and a revocation time.
Roles are names of the package's role definitions (``admin`` is built in).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from marshmallow import ValidationError
from marshmallow.validate import Email
from sqlalchemy.dialects import postgresql, sqlite

from engine import Actor, Tables
from engine.pipeline import Batch
from engine.tables import SEQUENCE_TABLE, TEAM_TABLE, TOKEN_TABLE, USER_TABLE, system_tables

TOKEN_PREFIX = "hdl_"
#: The counter (in the sequence table) of changes that may end someone's access.
AUTH_COUNTER = "heddle:auth"
#: Argon2id: memory in KiB, passes, lanes (docs/configuration.md says why these).
ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES = 19 * 1024, 2, 1
_hasher = PasswordHasher(
    time_cost=ARGON2_PASSES, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_LANES
)
# Compared against when the username is unknown, so a wrong name costs as long as a
# wrong password and timing does not reveal which names exist. Made on first need:
# hashing at import time slowed the start of every command, `heddle --help` included.
_DUMMY_HASH = ""


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if not _DUMMY_HASH:
        _DUMMY_HASH = _hasher.hash("not a password")
    return _DUMMY_HASH


class AccountError(ValueError):
    """Bad input for an account: an unknown role, a taken username, an unknown manager.

    ``field`` names what was wrong (``username``, ``roles``…), for an API's field errors.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Keep(enum.Enum):
    KEEP = "keep"


#: An argument of :meth:`Accounts.update_user` left as it is.
KEEP: Final = _Keep.KEEP

#: A username: 1-150 letters, digits and ``_ . @ + -`` (any script), starting with a letter,
#: digit or underscore. No spaces or control characters: it is typed at logins, in
#: commands and in ``--manager`` options, and shown in audit history.
USERNAME_PATTERN = r"\w[\w.@+-]{0,149}"
_USERNAME = re.compile(USERNAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # JSON may hold one ("\ud800"); UTF-8 cannot
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
_EMAIL = Email()


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be a username, or None.

    >>> username_problem("li.lei@example.com") is None, username_problem("Test Person") is None
    (True, False)
    """
    if _USERNAME.fullmatch(username):
        return None
    if not username:
        return "a username cannot be empty"
    if len(username) > 150:
        return "a username has at most 150 characters"
    return (
        "a username may hold only letters, digits and _ . @ + - (no spaces or control"
        " characters), and starts with a letter, digit or _"
    )


def text_problem(value: str, *, what: str, size: int, empty: bool = False) -> str | None:
    """Why ``value`` cannot be stored as a name or label of at most ``size`` characters."""
    if not empty and not value.strip():
        return f"{what} cannot be empty"
    if len(value) > size:
        return f"{what} has at most {size} characters"
    if _CONTROL.search(value):
        return f"{what} cannot contain control characters"
    if _SURROGATE.search(value):
        return f"{what} cannot contain unpaired surrogates (not text)"
    return None


def token_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name an API token (what it is for), or None."""
    if not isinstance(name, str):
        return "Not a valid string."
    return text_problem(name, what="a token's name", size=200, empty=True)


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an email address (as an ``email`` field of a record checks
    it), or None."""
    try:
        _EMAIL(email)
    except ValidationError:
        return "not an email address"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if _SURROGATE.search(password):
        return "a password cannot contain unpaired surrogates (not text)"
    return None


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
    #: A digest of the password hash: a session carries it, so a new password ends the
    #: sessions opened with the old one ("" when the row read had no hash).
    stamp: str = ""

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
        """The session's user id: ``<id>.<stamp>`` (:func:`session_user_id` reads it)."""
        return f"{self.id}.{self.stamp}"


def session_user_id(value: str) -> tuple[int, str] | None:
    """(user id, password stamp) from a session's user id, or None if it is not one."""
    user_id, _dot, stamp = value.partition(".")
    if not (user_id.isascii() and user_id.isdigit()) or len(user_id) > 19 or not stamp:
        return None
    return int(user_id), stamp


def password_stamp(password_hash: str | None) -> str:
    """What a session keeps of the password hash: enough to notice it changed."""
    if not password_hash:
        return ""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:24]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _usable(row: Any, now: dt.datetime) -> bool:
    """Whether a token's row (:attr:`Accounts._token_query`) lets its user in at ``now``."""
    if row is None or row.revoked_at is not None or not row.active:
        return False
    return row.expires_at is None or row.expires_at > now


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        name=row.name,
        team_id=row.team_id,
        roles=frozenset(row.roles or ()),
        locale=row.locale,
        active=bool(row.active),
        stamp=password_stamp(getattr(row, "password_hash", None)),
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

    def discard(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Accounts:
    """Users, teams and tokens in the database. ``tables``: the Model's tables, whose roles
    users may be given; None (the commands that give no role) skips compiling the Model
    and refuses to set roles."""

    def __init__(self, tables: Tables | None = None, *, token_cache_seconds: float = 5.0) -> None:
        self.tables = tables
        self.cache = TokenCache(token_cache_seconds)
        if tables is None:
            metadata = sa.MetaData()
            system_tables(metadata)
        else:
            metadata = tables.metadata
        system = metadata.tables
        self.users = system[USER_TABLE]
        self.teams = system[TEAM_TABLE]
        self.tokens = system[TOKEN_TABLE]
        self.counters = system[SEQUENCE_TABLE]

    # users and teams --------------------------------------------------------------------

    def team_id(self, conn: sa.Connection, name: str, *, create: bool = True) -> int:
        """The id of the team called ``name``, created when missing."""
        found = conn.scalar(sa.select(self.teams.c.id).where(self.teams.c.name == name))
        if found is not None:
            return int(found)
        if not create:
            raise AccountError(f"no team called '{name}'", "team")
        now = dt.datetime.now(dt.UTC)
        return int(
            conn.execute(
                self.teams.insert().values(name=name, created_at=now).returning(self.teams.c.id)
            ).scalar_one()
        )

    def set_team_parent(self, conn: sa.Connection, name: str, parent: str | None) -> int:
        """Put team ``name`` under ``parent`` (None: at the top); both created if missing."""
        team = self.team_id(conn, name)
        parent_id = self._parent_id(conn, team, parent, create=True)
        conn.execute(self.teams.update().where(self.teams.c.id == team).values(parent_id=parent_id))
        return team

    def _parent_id(
        self, conn: sa.Connection, team: int, parent: str | None, *, create: bool
    ) -> int | None:
        """The id of team ``parent``, checked not to be ``team`` or under it: a team may
        not end up under itself, which would make "team and below" endless."""
        parent_id = self.team_id(conn, parent, create=create) if parent else None
        ancestor = parent_id
        while ancestor is not None:
            if ancestor == team:
                raise AccountError("a team cannot be placed under itself", "parent")
            ancestor = conn.scalar(
                sa.select(self.teams.c.parent_id).where(self.teams.c.id == ancestor)
            )
        return parent_id

    def create_user(
        self,
        conn: sa.Connection,
        username: str,
        password: str,
        roles: Sequence[str],
        *,
        team: str | None = None,
        manager: str | None = None,
        name: str = "",
        email: str | None = None,
        locale: str = "en",
    ) -> User:
        problem = username_problem(username)
        if problem:
            raise AccountError(problem, "username")
        roles = self._roles(roles)
        self._check_password(password)
        self._check_profile(name, email, locale)
        if self.by_username(conn, username) is not None:
            raise AccountError(f"user '{username}' already exists", "username")
        new_id = conn.execute(
            self.users.insert()
            .values(
                username=username,
                name=name or username,
                email=email or None,
                team_id=self.team_id(conn, team) if team else None,
                manager_id=self._manager_id(conn, manager, None),
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

    def update_user(
        self,
        conn: sa.Connection,
        user_id: int,
        *,
        username: str | _Keep = KEEP,
        password: str | _Keep = KEEP,
        roles: Sequence[str] | _Keep = KEEP,
        team: str | _Keep | None = KEEP,
        manager: str | _Keep | None = KEEP,
        name: str | _Keep = KEEP,
        email: str | _Keep | None = KEEP,
        locale: str | _Keep = KEEP,
        active: bool | _Keep = KEEP,
    ) -> User:
        """Change what is given of user ``user_id`` (the rest is kept). Every process stops
        trusting the user's cached tokens: a disabled user's tokens and sessions fail at
        once here, and elsewhere at their next write (reads: within the token cache time).
        """
        values: dict[str, Any] = {}
        if not isinstance(username, _Keep):
            problem = username_problem(username)
            if problem:
                raise AccountError(problem, "username")
            other = self.by_username(conn, username)
            if other is not None and other.id != user_id:
                raise AccountError(f"user '{username}' already exists", "username")
            values["username"] = username
        if not isinstance(password, _Keep):
            self._check_password(password)
            values["password_hash"] = hash_password(password)
        if not isinstance(roles, _Keep):
            values["roles"] = sorted(self._roles(roles))
        if not isinstance(team, _Keep):
            values["team_id"] = self.team_id(conn, team, create=False) if team else None
        if not isinstance(manager, _Keep):
            values["manager_id"] = self._manager_id(conn, manager, user_id)
        self._check_profile(
            None if isinstance(name, _Keep) else name,
            None if isinstance(email, _Keep) else email,
            None if isinstance(locale, _Keep) else locale,
        )
        for key, value in (("name", name), ("email", email), ("locale", locale)):
            if not isinstance(value, _Keep):
                values[key] = value or None if key == "email" else value
        if not isinstance(active, _Keep):
            values["active"] = active
        if values:
            conn.execute(self.users.update().where(self.users.c.id == user_id).values(**values))
            self.cache.clear()
            self.changed(conn)
        user = self.by_id(conn, user_id)
        if user is None:
            raise AccountError(f"no user with id {user_id}")
        return user

    def _roles(self, roles: Sequence[str]) -> list[str]:
        if self.tables is None:
            raise TypeError("Accounts needs the Model's schema to give roles")
        known = {"admin", *self.tables.model.roles}
        unknown = [role for role in roles if role not in known]
        if unknown:
            raise AccountError(
                f"unknown role '{unknown[0]}'; the package defines: {', '.join(sorted(known))}",
                "roles",
            )
        if not roles:
            raise AccountError("give a user at least one role", "roles")
        return sorted(set(roles))

    @staticmethod
    def _check_password(password: str) -> None:
        problem = password_problem(password)
        if problem:
            raise AccountError(problem, "password")

    @staticmethod
    def _check_profile(name: str | None, email: str | None, locale: str | None) -> None:
        checks = (
            ("name", name, "a name", 200, True),
            ("email", email, "an email address", 255, True),
            ("locale", locale, "a locale", 16, False),
        )
        for field, value, what, size, empty in checks:
            problem = (
                None if value is None else text_problem(value, what=what, size=size, empty=empty)
            )
            if problem:
                raise AccountError(problem, field)
        if email and email_problem(email):
            raise AccountError(f"'{email}' is not an email address", "email")

    def _manager_id(
        self, conn: sa.Connection, manager: str | None, user_id: int | None
    ) -> int | None:
        """The id of the user called ``manager``; a user may not manage themselves, even
        through others (the "my team's people" scope would never end)."""
        if manager is None:
            return None
        boss = self.by_username(conn, manager)
        if boss is None:
            raise AccountError(f"no user called '{manager}' to be the manager", "manager")
        ancestor: int | None = boss.id
        while ancestor is not None and user_id is not None:
            if ancestor == user_id:
                raise AccountError(f"'{manager}' is managed by this user", "manager")
            ancestor = conn.scalar(
                sa.select(self.users.c.manager_id).where(self.users.c.id == ancestor)
            )
        return boss.id

    def list_users(
        self,
        conn: sa.Connection,
        *,
        active: bool | None = None,
        team: str | None = None,
        role: str | None = None,
        user_id: int | None = None,
    ) -> list[UserInfo]:
        """Users with what an administrator sees of them (never the password hash), by
        username; filtered by activity, team name, role and id when given."""
        u, t = self.users, self.teams
        boss = u.alias("boss")
        query = (
            sa.select(
                u.c.id, u.c.username, u.c.name, u.c.email, t.c.name.label("team"),
                boss.c.username.label("manager"), u.c.roles, u.c.locale, u.c.active,
                u.c.created_at,
            )
            .outerjoin(t, t.c.id == u.c.team_id)
            .outerjoin(boss, boss.c.id == u.c.manager_id)
            .order_by(u.c.username)
        )  # fmt: skip
        if active is not None:
            query = query.where(u.c.active == active)
        if team is not None:
            query = query.where(t.c.name == team)
        if user_id is not None:
            query = query.where(u.c.id == user_id)
        found = [
            UserInfo(
                **{**row._mapping, "roles": sorted(row.roles or ()), "active": bool(row.active)}
            )
            for row in conn.execute(query)
        ]
        # roles is a JSON list: filtered here, the same on SQLite and PostgreSQL
        return [user for user in found if role is None or role in user.roles]

    def list_teams(self, conn: sa.Connection, team_id: int | None = None) -> list[TeamInfo]:
        """Teams by name, with their parent and how many users (active or not) each has."""
        t, u = self.teams, self.users
        parent = t.alias("parent")
        members = sa.select(sa.func.count()).where(u.c.team_id == t.c.id).scalar_subquery()
        query = (
            sa.select(t.c.id, t.c.name, parent.c.name.label("parent"), members.label("users"),
                      t.c.created_at)
            .outerjoin(parent, parent.c.id == t.c.parent_id)
            .order_by(t.c.name)
        )  # fmt: skip
        if team_id is not None:
            query = query.where(t.c.id == team_id)
        return [TeamInfo(**row._mapping) for row in conn.execute(query)]

    def create_team(self, conn: sa.Connection, name: str, parent: str | None = None) -> int:
        """A new team called ``name`` (under ``parent``, which must exist)."""
        self._check_team_name(conn, name, None)
        team = self.team_id(conn, name)
        if parent:
            self.update_team(conn, team, parent=parent)
        return team

    def update_team(
        self,
        conn: sa.Connection,
        team_id: int,
        *,
        name: str | _Keep = KEEP,
        parent: str | _Keep | None = KEEP,
    ) -> None:
        """Rename team ``team_id`` or move it under another (never under itself)."""
        values: dict[str, Any] = {}
        if not isinstance(name, _Keep):
            self._check_team_name(conn, name, team_id)
            values["name"] = name
        if not isinstance(parent, _Keep):
            values["parent_id"] = self._parent_id(conn, team_id, parent, create=False)
        if values:
            conn.execute(self.teams.update().where(self.teams.c.id == team_id).values(**values))
            self.cache.clear()  # the "team and below" scopes of cached users may change

    def _check_team_name(self, conn: sa.Connection, name: str, team_id: int | None) -> None:
        problem = text_problem(name, what="a team name", size=200)
        if problem:
            raise AccountError(problem, "name")
        other = conn.scalar(sa.select(self.teams.c.id).where(self.teams.c.name == name))
        if other is not None and other != team_id:
            raise AccountError(f"team '{name}' already exists", "name")

    def by_id(self, conn: sa.Connection, user_id: int) -> User | None:
        row = conn.execute(sa.select(self.users).where(self.users.c.id == user_id)).first()
        return _user(row) if row is not None else None

    def by_username(self, conn: sa.Connection, username: str) -> User | None:
        row = conn.execute(sa.select(self.users).where(self.users.c.username == username)).first()
        return _user(row) if row is not None else None

    def authenticate(self, conn: sa.Connection, username: str, password: str) -> User | None:
        """The active user with this username and password, or None."""
        row = None
        # no username holds NUL or an unpaired surrogate, and the database refuses both
        if "\x00" not in username and not _SURROGATE.search(username):
            row = conn.execute(
                sa.select(self.users).where(self.users.c.username == username)
            ).first()
        stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
        try:  # as bytes: a JSON string may hold a surrogate, which UTF-8 cannot encode
            _hasher.verify(stored, password.encode("utf-8", "surrogatepass"))
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.active:
            return None
        user = _user(row)
        if _hasher.check_needs_rehash(stored):
            redone = hash_password(password)
            conn.execute(
                self.users.update().where(self.users.c.id == row.id).values(password_hash=redone)
            )
            user = dataclasses.replace(user, stamp=password_stamp(redone))
        return user

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

    def user_for_token(
        self, conn: sa.Connection, token: str, *, fresh: bool = False
    ) -> User | None:
        """The active user a valid, unexpired, unrevoked token belongs to; ``fresh``: from
        the database even when the token was checked a moment ago (before a write)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _digest(token)
        cached = None if fresh else self.cache.get(digest)
        if cached is not None:
            return cached
        row = conn.execute(self._token_query, {"digest": digest}).first()
        now = dt.datetime.now(dt.UTC)
        if row is None or not _usable(row, now):
            return None
        if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5):
            # once per token every few minutes, in a transaction of its own: the connection
            # may be a reader's, and on SQLite its read transaction cannot become a write
            # once another writer has committed ("database is locked" at once, no waiting)
            conn.commit()
            t = self.tokens
            conn.execute(t.update().where(t.c.id == row.token_id).values(last_used_at=now))
            conn.commit()
        user = _user(row)
        lifetime = (row.expires_at - now).total_seconds() if row.expires_at else None
        if lifetime is None or lifetime > self.cache.seconds:
            self.cache.put(digest, user)
        return user

    @functools.cached_property
    def _token_query(self) -> sa.Select[Any]:
        """A token's row with its user's, by the token's digest (bound as ``digest``)."""
        t, u = self.tokens, self.users
        return (
            sa.select(
                t.c.id.label("token_id"), t.c.expires_at, t.c.revoked_at, t.c.last_used_at,
                u.c.id, u.c.username, u.c.name, u.c.team_id, u.c.roles, u.c.locale, u.c.active,
            )
            .join(u, u.c.id == t.c.user_id)
            .where(t.c.token_hash == sa.bindparam("digest", type_=t.c.token_hash.type))
        )  # fmt: skip

    def check_in(self, batch: Batch, token: str, user: User) -> Callable[[], bool]:
        """A token the cache trusts checked again inside a write's transaction, its
        statement sent with the write's first ones (:class:`engine.pipeline.Batch`: no
        round trip of its own). What it returns says, once the batch ran, whether the
        token is still valid and its user still the one cached (active, same roles and
        team); if not, the token leaves the cache.

        The database compares all but the roles: the statement finds the token's row only
        when it is unrevoked, unexpired and its user the cached one, and returns just the
        roles (a set: compared here) — a create reads one value, not the token's row."""
        digest = _digest(token)
        params = {
            "digest": digest, "now": dt.datetime.now(dt.UTC), "user_id": user.id,
            "username": user.username, "name": user.name, "team_id": user.team_id,
            "locale": user.locale,
        }  # fmt: skip
        found = batch.single(self._check_in_query, params)

        def still_valid() -> bool:
            rows = found.rows
            if user.active and rows and frozenset(rows[0][0] or ()) == user.roles:
                return True
            self.cache.discard(digest)
            return False

        return still_valid

    @functools.cached_property
    def _check_in_query(self) -> sa.Select[Any]:
        """:meth:`check_in`'s statement: the user's roles, when the token (bound as
        ``digest``) is usable at ``now`` and its user active and still ``user_id``,
        ``username``, ``name``, ``team_id`` and ``locale``."""
        t, u = self.tokens, self.users

        def bound(column: sa.Column[Any], name: str) -> Any:
            return sa.bindparam(name, type_=column.type)

        return (
            sa.select(u.c.roles)
            .join(t, u.c.id == t.c.user_id)
            .where(
                t.c.token_hash == bound(t.c.token_hash, "digest"),
                t.c.revoked_at.is_(None),
                sa.or_(t.c.expires_at.is_(None), t.c.expires_at > bound(t.c.expires_at, "now")),
                u.c.active.is_(sa.true()),
                u.c.id == bound(u.c.id, "user_id"),
                u.c.username == bound(u.c.username, "username"),
                u.c.name == bound(u.c.name, "name"),
                u.c.team_id.is_not_distinct_from(bound(u.c.team_id, "team_id")),
                u.c.locale == bound(u.c.locale, "locale"),
            )
        )

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

    def changed(self, conn: sa.Connection) -> None:
        """Count a change that may end someone's access (a user disabled or changed, a
        token revoked): every process reads the counter with its once-a-second definition
        check and forgets the tokens it trusted (:meth:`heddle.runtime.Runtime.check`)."""
        counters = self.counters
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(counters)
            .values(name=AUTH_COUNTER, value=1)
            .on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})
        )

    def revoke_token_id(self, conn: sa.Connection, token_id: int) -> bool:
        """Revoke a token by its id (``heddle token list``); False if none is active."""
        self.cache.clear()
        self.changed(conn)
        t = self.tokens
        done = conn.execute(
            t.update()
            .where(t.c.id == token_id, t.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return done.rowcount == 1

    def revoke_tokens_of(self, conn: sa.Connection, user_id: int) -> int:
        """Revoke every active token of user ``user_id`` (their password changed); how many."""
        self.cache.clear()
        self.changed(conn)
        t = self.tokens
        done = conn.execute(
            t.update()
            .where(t.c.user_id == user_id, t.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return int(done.rowcount)

    def revoke_token(self, conn: sa.Connection, token: str) -> bool:
        self.cache.clear()
        self.changed(conn)
        t = self.tokens
        done = conn.execute(
            t.update()
            .where(t.c.token_hash == _digest(token), t.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        return done.rowcount == 1


@dataclass(frozen=True)
class UserInfo:
    """What an administrator sees of a user: everything but the password hash."""

    id: int
    username: str
    name: str
    email: str | None
    team: str | None
    manager: str | None
    roles: list[str]
    locale: str
    active: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class TeamInfo:
    id: int
    name: str
    parent: str | None
    users: int
    created_at: dt.datetime


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
