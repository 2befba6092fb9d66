"""Composing the team's reply to a client: headers that thread and stay safe.

Pure (no I/O); the Message-ID is passed in so the result is reproducible.

- ``From``: the shared address (``smtp.from_address``).
- ``Subject``: ``Re: [#1042] <subject>``, prefixes and older references removed, CR/LF
  and control characters replaced by spaces (no header injection).
- ``In-Reply-To`` and ``References`` (RFC 5322 section 3.6.4): the client's message,
  and its references followed by its Message-ID.
- ``Message-ID`` from our domain (``team.message_id_domain``, else the domain of
  ``smtp.from_address``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from triage.domain import Address
from triage.tickets.refs import subject_with_ref

__all__ = ["compose_reply", "envelope_address", "message_id_domain", "new_message_id"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_REFERENCES = 20
"""References kept: the first (thread root) and the latest ones (RFC 5322 3.6.4 allows trimming)."""


def _header_safe(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def envelope_address(from_address: str) -> str:
    """The bare address in ``"Office <inbox@example.com>"``: ``inbox@example.com``."""
    return parseaddr(from_address)[1]


def message_id_domain(from_address: str, configured: str = "") -> str:
    """The domain for our Message-IDs: ``configured`` if set, else ``from_address``'s domain.

    Raises:
        ValueError: neither gives a domain.
    """
    if configured.strip():
        return configured.strip().lower()
    domain = envelope_address(from_address).rpartition("@")[2]
    if not domain:
        raise ValueError(f"{from_address!r} has no domain for Message-IDs")
    return domain.lower()


def new_message_id(domain: str) -> str:
    """A fresh, globally unique Message-ID: ``<hex@domain>``."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def _references(in_reply_to: str, references: Sequence[str]) -> list[str]:
    chain = [r for r in references if r]
    if in_reply_to and (not chain or chain[-1] != in_reply_to):
        chain.append(in_reply_to)
    if len(chain) > _MAX_REFERENCES:
        chain = [chain[0], *chain[-(_MAX_REFERENCES - 1) :]]
    return chain


def compose_reply(
    *,
    from_address: str,
    to: Address,
    subject: str,
    ref: int,
    body: str,
    in_reply_to: str,
    references: Sequence[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The reply as a MIME message (text/plain, UTF-8); ``bytes(msg)`` gives CRLF lines.

    Args:
        from_address: ``smtp.from_address``, e.g. ``"Office <inbox@example.com>"``.
        to: the client (Reply-To or From of their message).
        subject: the ticket's or client's subject; gets ``Re: [#ref]``.
        ref: the ticket reference number.
        body: the assistant's text.
        in_reply_to: Message-ID of the client's message answered ("" for none).
        references: that message's References.
        message_id: our Message-ID for this mail (see :func:`new_message_id`).
        date: when it is written (aware).
    """
    msg = EmailMessage(policy=SMTP)
    name, addr = parseaddr(from_address)
    msg["From"] = HeaderAddress(display_name=_header_safe(name), addr_spec=addr)
    msg["To"] = HeaderAddress(display_name=_header_safe(to.name), addr_spec=to.addr)
    msg["Subject"] = _header_safe(subject_with_ref(subject, ref))
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = _header_safe(in_reply_to)
    chain = _references(_header_safe(in_reply_to), [_header_safe(r) for r in references])
    if chain:
        msg["References"] = " ".join(chain)
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    return msg
