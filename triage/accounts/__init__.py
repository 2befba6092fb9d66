"""Web accounts: users with argon2id passwords, server-side sessions, login throttling.

The business rules of logging in live here, used by both ``triage user ...`` and
the web page (:mod:`triage.web`). Functions work inside the caller's transaction
(a SQLAlchemy ``Session``) and never commit.

- :mod:`~triage.accounts.passwords`: argon2id hashing (argon2-cffi, RFC 9106);
- :mod:`~triage.accounts.users`: add, change password, disable, authenticate (throttled);
- :mod:`~triage.accounts.sessions`: start, look up, end and revoke login sessions.
"""

from triage.accounts.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from triage.accounts.sessions import (
    end_session,
    find_session,
    revoke_sessions,
    start_session,
)
from triage.accounts.users import (
    ROLES,
    Account,
    add_user,
    authenticate,
    disable_user,
    get_account,
    set_password,
    set_preferences,
    unlock_user,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "Account",
    "add_user",
    "authenticate",
    "disable_user",
    "end_session",
    "find_session",
    "get_account",
    "hash_password",
    "revoke_sessions",
    "set_password",
    "set_preferences",
    "start_session",
    "unlock_user",
    "verify_password",
]
