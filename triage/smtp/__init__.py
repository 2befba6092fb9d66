"""Sending outgoing mail: over SMTP (aiosmtplib) or, as a dry run, into a folder of .eml files.

Both senders implement :class:`Sender`; :func:`make_sender` picks one from ``[smtp]``.
Failures are classified for the dispatcher (:mod:`triage.services.dispatch`):

- :class:`~triage.errors.TemporarySendError`: a 4xx reply to MAIL, RCPT or DATA;
  retry later.
- :class:`SmtpSessionError` (a TemporarySendError): no usable session at all
  (connection refused or timed out, a TLS handshake failed, greeting/EHLO
  refused, 454 to AUTH, connection dropped). Every mail would fail
  the same way, so the dispatcher defers the rest of its pass.
- :class:`~triage.errors.SendAuthError`: the login or the security it needs was
  refused (535, no AUTH offered while a username is set, STARTTLS not offered,
  530 to MAIL, an XOAUTH2 sign-in gone). Not temporary: the dispatcher stops
  sending until the configuration is reloaded.
- :class:`~triage.errors.PermanentSendError`: a 5xx reply to MAIL, RCPT or DATA,
  or an address the protocol cannot carry; the outbox row is marked failed with
  the server's reply.
"""

from triage.smtp.base import OutgoingMail, Sender, SendReceipt
from triage.smtp.factory import make_sender
from triage.smtp.folder import FolderSender
from triage.smtp.sender import SmtpSender, SmtpSessionError, classify_reply

__all__ = [
    "FolderSender",
    "OutgoingMail",
    "SendReceipt",
    "Sender",
    "SmtpSender",
    "SmtpSessionError",
    "classify_reply",
    "make_sender",
]
