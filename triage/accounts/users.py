"""Users of the web page: add, change password, disable, log in (throttled).

Assistants are the names in ``[team.assistants]`` (the names tickets are assigned
to); owners may have any name. Login throttling (OWASP's authentication cheat
sheet), within :data:`THROTTLE_WINDOW`, whether the password is right or not:

- :data:`MAX_FAILURES_PER_NAME` failures for one name from one address lock that
  name from that address (a guesser), not from the others, so a stranger who types
  wrong passwords for ``anna`` does not lock anna out of her own desk;
- :data:`MAX_FAILURES_PER_ADDRESS` failures from one address lock that address;
- :data:`MAX_FAILURES_PER_NAME_ANYWHERE` failures for one name from all addresses
  together lock the name everywhere (guessing spread over many addresses).

``triage user unlock NAME`` (:func:`unlock_user`) forgets a name's failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from triage.accounts.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    verify_password,
)
from triage.accounts.sessions import revoke_sessions
from triage.config import Settings
from triage.errors import ConflictError, LoginError, NotFoundError, UserError
from triage.store.models import LoginFailure, User

__all__ = [
    "MAX_FAILURES_PER_ADDRESS",
    "MAX_FAILURES_PER_NAME",
    "MAX_FAILURES_PER_NAME_ANYWHERE",
    "ROLES",
    "THROTTLE_WINDOW",
    "Account",
    "add_user",
    "authenticate",
    "disable_user",
    "get_account",
    "set_password",
    "set_preferences",
    "unlock_user",
]

ROLES = ("assistant", "owner")
Role = Literal["assistant", "owner"]

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_ADDRESS = 30
MAX_FAILURES_PER_NAME_ANYWHERE = 50

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

WRONG = "wrong name or password"


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the page sees it (no password hash).

    Attributes:
        language: ``hu`` or ``en``; "" follows ``[web] default_language``.
        shortcuts: single-key keyboard shortcuts are on.
    """

    id: int
    name: str
    role: str
    language: str
    shortcuts: bool
    disabled: bool

    @classmethod
    def of(cls, user: User) -> Account:
        """The account of a ``users`` row."""
        return cls(
            id=user.id,
            name=user.name,
            role=user.role,
            language=user.language,
            shortcuts=user.shortcuts,
            disabled=user.disabled,
        )


def _find(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(func.lower(User.name) == name.lower())).first()


def get_account(session: Session, name: str) -> Account:
    """The account named ``name`` (case-insensitive).

    Raises:
        NotFoundError: no such user.
    """
    user = _find(session, name)
    if user is None:
        raise NotFoundError(f"no user {name!r} (add one with `triage user add`)")
    return Account.of(user)


def add_user(
    session: Session,
    settings: Settings,
    name: str,
    *,
    role: str,
    password: str,
    now: datetime,
) -> Account:
    """Create a user with an argon2id hash of ``password``.

    Raises:
        UserError: bad name or role, an assistant not in ``[team.assistants]``, or a
            password breaking the rules (:func:`~triage.accounts.passwords.check_password_rules`).
        ConflictError: the name is taken.
    """
    if role not in ROLES:
        raise UserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if not _NAME.fullmatch(name):
        raise UserError(
            f"user name {name!r}: use letters, digits, '.', '_' and '-' (at most 64 characters)"
        )
    if role == "assistant" and name not in settings.team.assistants:
        known = ", ".join(sorted(settings.team.assistants)) or "none"
        raise UserError(
            f"{name!r} is not in [team.assistants] (assistants: {known}); add them there first"
        )
    if _find(session, name) is not None:
        raise ConflictError(f"user {name!r} exists (change the password with `triage user passwd`)")
    user = User(
        name=name,
        role=role,
        password_hash=hash_password(password),
        disabled=False,
        language="",
        shortcuts=True,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    return Account.of(user)


def set_password(session: Session, name: str, password: str, *, now: datetime) -> Account:
    """Change ``name``'s password, enable the user again, and end all their sessions.

    Raises:
        NotFoundError: no such user.
        UserError: the password breaks the rules.
    """
    user = _find(session, name)
    if user is None:
        raise NotFoundError(f"no user {name!r} (add one with `triage user add`)")
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.disabled = False
    revoke_sessions(session, user.id)
    session.flush()
    return Account.of(user)


def disable_user(session: Session, name: str) -> Account:
    """Disable ``name``: no more logins, every session ended at once.

    Raises:
        NotFoundError: no such user.
    """
    user = _find(session, name)
    if user is None:
        raise NotFoundError(f"no user {name!r}")
    user.disabled = True
    revoke_sessions(session, user.id)
    session.flush()
    return Account.of(user)


def set_preferences(
    session: Session, user_id: int, *, language: str | None = None, shortcuts: bool | None = None
) -> Account:
    """Change a user's page language (``hu``, ``en`` or "" for the default) or shortcuts.

    Raises:
        NotFoundError: no such user.
        UserError: an unknown language.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    if language is not None:
        if language not in ("", "hu", "en"):
            raise UserError(f"language {language!r}: use hu or en")
        user.language = language
    if shortcuts is not None:
        user.shortcuts = shortcuts
    session.flush()
    return Account.of(user)


def _throttled(session: Session, name: str, address: str, now: datetime) -> int:
    """Seconds until ``name`` may try again from ``address``; 0 when not throttled."""
    since = now - THROTTLE_WINDOW
    waits = [0]
    name = name.lower()
    for where, limit in (
        ((LoginFailure.name == name, LoginFailure.address == address), MAX_FAILURES_PER_NAME),
        ((LoginFailure.address == address,), MAX_FAILURES_PER_ADDRESS),
        ((LoginFailure.name == name,), MAX_FAILURES_PER_NAME_ANYWHERE),
    ):
        times = session.scalars(
            select(LoginFailure.at)
            .where(*where, LoginFailure.at > since)
            .order_by(LoginFailure.at.desc())
            .limit(limit)
        ).all()
        if len(times) >= limit:
            free_at = times[-1] + THROTTLE_WINDOW
            waits.append(max(1, int((free_at - now).total_seconds()) + 1))
    return max(waits)


def unlock_user(session: Session, name: str) -> int:
    """Forget the failed logins recorded for ``name`` (any case); return how many.

    The name need not be a user: failures are recorded for any name typed.
    """
    result = session.execute(
        delete(LoginFailure).where(LoginFailure.name == name.strip().lower()[:200])
    )
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate(
    session: Session, name: str, password: str, *, address: str, now: datetime
) -> Account:
    """Check a login; record a failure for throttling when it is wrong.

    Unknown names cost as much time as wrong passwords, and the error does not say
    which it was. A hash made with older parameters is upgraded on success.

    A failure is recorded in ``session`` before LoginError is raised: the caller must
    commit the session anyway, or the failures would never count.

    Raises:
        LoginError: wrong name or password, a disabled user, or throttled (then
            ``retry_after`` is set and the password is not even checked).
    """
    name = name.strip()[:200]
    address = address[:64]
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - THROTTLE_WINDOW))
    wait = _throttled(session, name, address, now)
    if wait:
        raise LoginError(
            f"too many failed logins: try again in {(wait + 59) // 60} minutes",
            retry_after=wait,
        )
    user = _find(session, name) if name else None
    ok = verify_password(user.password_hash if user is not None else DUMMY_HASH, password)
    if user is None or not ok or user.disabled:
        session.add(LoginFailure(name=name.lower(), address=address, at=now))
        session.flush()
        raise LoginError(WRONG)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.execute(delete(LoginFailure).where(LoginFailure.name == name.lower()))
    session.flush()
    return Account.of(user)
