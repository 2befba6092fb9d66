"""Server-side login sessions: the cookie carries a random token, the table its sha256.

A stolen database therefore holds no usable cookie; deleting the rows revokes the
logins at once (log out, password change, disabled user). A session ends after
``lifetime`` without use; use is written at most every :data:`TOUCH_EVERY`, so
reading pages does not write to the database on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from triage.store.models import User, WebSession

__all__ = [
    "TOUCH_EVERY",
    "end_session",
    "find_session",
    "needs_touch",
    "revoke_sessions",
    "start_session",
    "touch_session",
]

TOUCH_EVERY = timedelta(minutes=5)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(
    session: Session, user_id: int, *, now: datetime, lifetime: timedelta, address: str = ""
) -> str:
    """Start a login for ``user_id``; return the token for the cookie (32 random bytes)."""
    token = secrets.token_urlsafe(32)
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session.add(
        WebSession(
            token_sha256=_digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            address=address[:64],
        )
    )
    session.flush()
    return token


def find_session(session: Session, token: str, *, now: datetime) -> tuple[WebSession, User] | None:
    """The live session and its enabled user for a cookie token; None otherwise."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_sha256 == _digest(token))
    ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at <= now or user.disabled:
        return None
    return web_session, user


def needs_touch(web_session: WebSession, now: datetime) -> bool:
    """True when the session's last use should be written (sliding expiry)."""
    return now - web_session.last_seen_at >= TOUCH_EVERY


def touch_session(session: Session, session_id: int, *, now: datetime, lifetime: timedelta) -> None:
    """Record use of a session now: it expires ``lifetime`` from now."""
    row = session.get(WebSession, session_id)
    if row is not None:
        row.last_seen_at = now
        row.expires_at = now + lifetime


def end_session(session: Session, token: str) -> None:
    """Log out: delete the session of ``token`` (nothing happens when it is unknown)."""
    session.execute(delete(WebSession).where(WebSession.token_sha256 == _digest(token)))


def revoke_sessions(session: Session, user_id: int) -> int:
    """End every session of a user; return how many there were."""
    result = session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)
