"""Composing the team's reply to a client (``triage reply``): headers that thread and stay safe.

Pure (no I/O); the Message-ID is passed in so the result is reproducible. The
mail is built by :func:`triage.outbox.compose.build_mail`, like every mail triage
writes, but without the automatic-mail headers (RFC 3834): a person wrote it.

- ``From``: the shared address (``smtp.from_address``).
- ``Subject``: ``Re: [#1042] <subject>`` (:func:`triage.outbox.headers.reply_subject`).
- ``In-Reply-To`` and ``References`` (RFC 5322 section 3.6.4): the client's message,
  and its references followed by its Message-ID.
- ``Message-ID`` from our domain (``team.message_id_domain``, else the domain of
  ``smtp.from_address``; :func:`triage.outbox.headers.make_message_id`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from triage.domain import Address
from triage.outbox.compose import build_mail
from triage.outbox.headers import parse_mailbox, reply_subject

__all__ = ["compose_reply"]


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
) -> bytes:
    """The reply's bytes (text/plain, UTF-8, CRLF lines).

    Args:
        from_address: ``smtp.from_address``, e.g. ``"Office <inbox@example.com>"``.
        to: the client (Reply-To or From of their message).
        subject: the ticket's or client's subject; gets ``Re: [#ref]``.
        ref: the ticket reference number.
        body: the assistant's text.
        in_reply_to: Message-ID of the client's message answered ("" for none).
        references: that message's References (the answered one is appended).
        message_id: our Message-ID for this mail.
        date: when it is written (aware).

    Raises:
        ValueError: an address is invalid or ``date`` is naive.
    """
    chain = [r for r in references if r]
    if in_reply_to and (not chain or chain[-1] != in_reply_to):
        chain.append(in_reply_to)
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return build_mail(
        message_id=message_id,
        sender=parse_mailbox(from_address),
        to=[(to.name, to.addr)],
        subject=reply_subject(subject, ref),
        body=text,
        now=date,
        auto_submitted=None,
        in_reply_to=in_reply_to,
        references=chain,
    )
