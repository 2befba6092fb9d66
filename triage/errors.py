"""The one exception hierarchy of triage.

Every error triage raises on purpose derives from :class:`TriageError`. Errors a
caller may retry also derive from the matching stdlib class, so retry code can
catch broadly (``except ConnectionError``) without knowing triage; errors that
retrying will not cure never do (as aiosmtplib's)::

    TriageError
    ├── UserError                 the person at the CLI can fix it; one line, exit 2
    │   ├── ConfigError           bad or missing config key (names the key and the file)
    │   ├── NotFoundError         no such ticket, message, queue or file
    │   ├── ImportSourceError     a file given to ``triage import`` / ``--from`` is unusable
    │   ├── RuleFileError         a rule file has errors (all of them, listed)
    │   ├── ConflictError         someone else changed the ticket first (e.g. claimed it)
    │   └── LoginError            wrong name or password, disabled user, or throttled
    ├── ModelError                a classifier file is refused (version, tampering) or missing
    ├── StoreError                the database failed or its schema is not ours
    ├── MailParseError            internal to parsing; never escapes ingestion
    ├── MailboxError              IMAP failed: a command refused, no such folder, TLS refused
    │   ├── MailboxConnectionError  (also ConnectionError) unreachable, dropped, timed out, BYE
    │   └── MailboxAuthError      login refused: retrying will not help
    ├── OAuth2Error               the token endpoint refused, or the token cache is unusable
    │   ├── OAuth2UnreachableError  (also ConnectionError) the token endpoint cannot be reached
    │   └── SignInRequiredError   the OAuth2 sign-in expired or was revoked: `triage auth login`
    ├── BackupError               a backup or restore failed (tool missing, target not empty)
    └── SendError                 SMTP delivery failed
        ├── TemporarySendError    (also ConnectionError) 4xx, refused connection, timeout: retry
        ├── PermanentSendError    5xx: the row is marked failed
        └── SendAuthError         login or its security refused: sending stops until reload

Outcomes such as "discard", "hold" or "no acknowledgment" are values, not
exceptions. Messages never contain a secret: code that reads a password names
the config key or environment variable it came from, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "BackupError",
    "Change",
    "ConfigError",
    "ConflictError",
    "ImportSourceError",
    "LoginError",
    "MailParseError",
    "MailboxAuthError",
    "MailboxConnectionError",
    "MailboxError",
    "ModelError",
    "NotFoundError",
    "OAuth2Error",
    "OAuth2UnreachableError",
    "PermanentSendError",
    "RuleFileError",
    "SendAuthError",
    "SendError",
    "SignInRequiredError",
    "StoreError",
    "TemporarySendError",
    "TriageError",
    "UserError",
]


class TriageError(Exception):
    """Root of every error triage raises on purpose."""


class UserError(TriageError):
    """An error the person running the CLI can fix; shown as one line, exit status 2."""


class ConfigError(UserError):
    """The configuration is missing, unreadable or invalid.

    The message names the file and the dotted key (``imap.port``) and the problem.
    """


class NotFoundError(UserError):
    """A ticket, message, queue or file named by the user does not exist."""


class ImportSourceError(UserError):
    """A file or directory given for import or training cannot be read as mail or data."""


class RuleFileError(UserError):
    """A rule file has one or more errors.

    Attributes:
        problems: every problem found, each one line naming the file and the rule.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "rule file error")


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a ticket that someone else made (an audit row), for a conflict.

    Attributes:
        actor: who made it (an assistant's name, ``triage`` for the service).
        action: the audit action (``claimed``, ``moved``, ``replied``, ...).
        at: when (UTC).
        version: the ticket's version after it.
        detail: the audit row's detail (``from``/``to`` of a move, ...).
    """

    actor: str
    action: str
    at: datetime
    version: int
    detail: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class ConflictError(UserError):
    """A concurrent change won: e.g. another assistant claimed the ticket first.

    The message names who changed what. Attributes:
        current_version: the ticket's version now (None when not known).
        changes: the changes made since the version the caller expected, oldest first.
    """

    def __init__(
        self,
        message: str,
        *,
        current_version: int | None = None,
        changes: Sequence[Change] = (),
    ) -> None:
        super().__init__(message)
        self.current_version = current_version
        self.changes = tuple(changes)


class LoginError(UserError):
    """A web login is refused: unknown name, wrong password, disabled user, or throttled.

    The message never says which of the first three it was (no user enumeration).

    Attributes:
        retry_after: seconds until a throttled name or address may try again (0 otherwise).
    """

    def __init__(self, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelError(TriageError):
    """A classifier model cannot be used: missing, tampered, or from another scikit-learn."""


class StoreError(TriageError):
    """The database cannot be opened, migrated or written."""


class MailParseError(TriageError):
    """A message could not be parsed; ingestion records it and routes the message to fallback."""


class MailboxError(TriageError):
    """Talking to the IMAP server failed: it refused a command, has no such folder, or
    TLS could not be set up; the subclasses say when retrying helps."""


class MailboxConnectionError(MailboxError, ConnectionError):
    """The IMAP server is unreachable, dropped the connection, timed out or said BYE:
    retry later."""


class MailboxAuthError(MailboxError):
    """The IMAP server refused the credentials; retrying with the same ones will not help
    (so not a ConnectionError)."""


class OAuth2Error(TriageError):
    """An OAuth2 access token could not be obtained: the token endpoint answered with an
    error, or the token cache cannot be read."""


class OAuth2UnreachableError(OAuth2Error, ConnectionError):
    """The OAuth2 token endpoint cannot be reached: retry later."""


class SignInRequiredError(OAuth2Error):
    """The OAuth2 sign-in is missing, expired or revoked (``invalid_grant``).

    Retrying will not help until someone runs ``triage auth login`` again (so not a
    ConnectionError); the daemon keeps retrying at back-off pace so it recovers by
    itself afterwards.
    """


class BackupError(TriageError):
    """A backup or restore could not be made: a tool is missing or refused, the file is
    not a triage backup, or the target database is not empty."""


class SendError(TriageError):
    """Handing a message to the SMTP server failed; the subclasses say whether to retry."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporarySendError(SendError, ConnectionError):
    """A transient SMTP failure (4xx reply, refused connection, timeout): retry later."""


class PermanentSendError(SendError):
    """A permanent SMTP failure (5xx reply): the outbox row is marked failed. Not a
    ConnectionError: retrying would send the same refused mail again."""


class SendAuthError(SendError):
    """The SMTP server refused the configured login or the security it needs.

    A 5xx (or 432) reply to AUTH (535 bad credentials, 534 mechanism too weak or an
    app password needed, 538 encryption needed; RFC 4954 section 6), 530 (AUTH or
    STARTTLS required) to MAIL, no AUTH offered while ``smtp.username`` is set,
    STARTTLS not offered or refused with ``security = "starttls"``, an XOAUTH2 token
    refused or the sign-in gone, or the password's source unreadable. Retrying with
    the same configuration cannot help (so not a ConnectionError) and repeated
    failed logins get accounts locked: the dispatcher stops sending and reports it
    until the configuration is reloaded (SIGHUP). 454 (temporary authentication
    failure) is a TemporarySendError instead.
    """
