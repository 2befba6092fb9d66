"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's second profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from triage.errors import UserError

__all__ = ["MIN_PASSWORD_LENGTH", "hash_password", "needs_rehash", "verify_password"]

MIN_PASSWORD_LENGTH = 10
"""Characters a password needs at least (NIST SP 800-63B asks for 8; we ask a little more)."""

MAX_PASSWORD_LENGTH = 1024
"""Longer input is refused before hashing (argon2 would hash it, but it is never a password)."""

_HASHER = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4

DUMMY_HASH = _HASHER.hash("triage: a password nobody has")
"""Verified against when the user does not exist, so a wrong name takes as long as a
wrong password (no user enumeration by timing)."""


def check_password_rules(password: str) -> None:
    """Refuse a password that is too short, too long, or only spaces.

    Raises:
        UserError: naming the rule broken (never the password).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise UserError("the password is only spaces")


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string format, salt included) of ``password``.

    Raises:
        UserError: the password breaks :func:`check_password_rules`.
    """
    check_password_rules(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False otherwise (never raises)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True
