"""Composing outgoing mail: acknowledgments here, escalations in :mod:`.escalations`. Pure.

Every mail triage writes itself is marked as automatic (RFC 3834 section 5:
``Auto-Submitted: auto-replied`` for an answer to a client's mail,
``auto-generated`` otherwise) and asks Microsoft Exchange not to answer it
(``X-Auto-Response-Suppress: All``), so auto-responders do not loop with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.message import Message
from email.policy import compat32
from email.utils import format_datetime
from typing import Any, Literal

from triage.config import Settings
from triage.domain import InboundMessage
from triage.errors import ConfigError
from triage.outbox.dates import format_local, to_local
from triage.outbox.encoded_words import (
    MAX_LINE,
    fold_field,
    mailbox_tokens,
    unstructured_tokens,
)
from triage.outbox.headers import (
    MAX_REFERENCES,
    ascii_address,
    header_safe,
    make_message_id,
    message_id_domain,
    message_ids,
    parse_mailbox,
    reply_subject,
)
from triage.outbox.templates import MailTemplates

__all__ = [
    "ComposedMail",
    "ack_candidates",
    "ack_language",
    "build_mail",
    "compose_ack",
    "our_mailbox",
]

_WIRE = compat32.clone(linesep="\r\n", max_line_length=0)
"""Generator policy: CRLF line ends, no folding of its own: every header value is folded
here (:mod:`.encoded_words`), so the generator never folds inside or before a word."""


@dataclass(frozen=True, slots=True)
class ComposedMail:
    """A mail ready for the outbox.

    Attributes:
        message_id: its Message-ID (``<...>``), fixed now: every attempt sends this one.
        mail_from: envelope sender, a bare address (smtp.from_address's).
        rcpt_to: envelope recipients, bare addresses; the only ones who get it.
        raw: the RFC 5322 message, CRLF line ends.
        subject: the Subject as written (for logs and ``triage outbox``).
        template: the template it was rendered from ("" when none).
    """

    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes
    subject: str = ""
    template: str = ""


def our_mailbox(settings: Settings) -> tuple[str, str]:
    """(display name, address) of ``smtp.from_address``.

    Raises:
        ConfigError: there is no [smtp] section or its from_address is not an address.
    """
    if settings.smtp is None:
        raise ConfigError("no [smtp] section: triage has no address to send from")
    name, addr = parse_mailbox(settings.smtp.from_address)
    if not addr:
        raise ConfigError(
            f"smtp.from_address: {settings.smtp.from_address!r} is not a mail address"
        )
    return name, addr


def build_mail(
    *,
    message_id: str,
    sender: tuple[str, str],
    to: Sequence[tuple[str, str]],
    subject: str,
    body: str,
    now: datetime,
    auto_submitted: Literal["auto-replied", "auto-generated"] | None,
    in_reply_to: str = "",
    references: Sequence[str] = (),
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """Build the bytes of one mail (UTF-8 text body, CRLF line ends).

    Args:
        message_id: ``<...>`` from :func:`~triage.outbox.headers.make_message_id`.
        sender: (display name, address) for From.
        to: (display name, address) pairs for To; addresses must pass
            :func:`~triage.outbox.headers.valid_address`.
        subject: made header-safe here; non-ASCII is RFC 2047-encoded.
        body: plain text.
        now: the Date header (timezone-aware).
        auto_submitted: RFC 3834 section 5 value for mail triage writes itself (it
            also adds ``X-Auto-Response-Suppress: All``); None for a person's mail
            (``triage reply``), which carries neither.
        in_reply_to, references: Message-IDs; anything not ``<...>`` is dropped.
        extra_headers: more headers (names and values made header-safe).

    Raises:
        ValueError: an address is invalid or ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("build_mail needs a timezone-aware time for the Date header")
    # The header values are encoded and folded by triage.outbox.encoded_words (ASCII
    # words stay ASCII; see there why not email.header); the compat32 generator keeps
    # folds whose lines fit, and the body is encoded by email.charset.
    msg: Message[str, str] = Message(policy=_WIRE)
    msg["From"] = _mailboxes("From", [sender])
    msg["To"] = _mailboxes("To", to)
    msg["Subject"] = _unstructured("Subject", header_safe(subject) or "(no subject)")
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    parents = message_ids(in_reply_to)
    if parents:
        msg["In-Reply-To"] = parents[0]
    refs = message_ids(references)
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
    if refs:
        msg["References"] = fold_field("References", refs)
    if auto_submitted is not None:
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        field = header_safe(name, limit=76).replace(" ", "-")
        msg[field] = _unstructured(field, header_safe(value))
    msg["MIME-Version"] = "1.0"
    charset = Charset("utf-8")
    charset.body_encoding = QP  # readable in the .eml files of folder mode
    msg.set_payload(body, charset)  # sets Content-Type and Content-Transfer-Encoding
    return msg.as_bytes(policy=_WIRE)


def _unstructured(name: str, text: str) -> str:
    """An unstructured value (RFC 5322 §3.2.5): ASCII words as they are, the rest as RFC 2047
    encoded-words of at most 75 characters, folded at 78 (:mod:`.encoded_words`)."""
    room = MAX_LINE - len(name) - 2
    return fold_field(name, unstructured_tokens(text, first=room)) if text else ""


def _mailboxes(name: str, boxes: Sequence[tuple[str, str]]) -> str:
    """``Name <addr>, ...`` with each display name encoded only where it needs to be.

    Raises:
        ValueError: an address is not usable.
    """
    tokens: list[str] = []
    separators: list[str] = []
    for display, addr in boxes:
        plain = ascii_address(addr)
        if plain is None:
            raise ValueError(f"not a usable mail address: {addr!r}")
        if tokens:
            separators.append(",")
        room = MAX_LINE - len(name) - 2 if not tokens else MAX_LINE - 1
        box = mailbox_tokens(header_safe(display, limit=200), plain, first=room)
        tokens.extend(box)
        separators.extend([""] * (len(box) - 1))
    return fold_field(name, tokens, separators=separators)


def ack_language(
    message: InboundMessage,
    queue: str,
    settings: Settings,
    t: MailTemplates,
    *,
    template: str = "",
) -> str:
    """The language of the acknowledgment: the message's if a template speaks it.

    Otherwise ``acknowledgments.default_language`` if a template speaks that,
    else English. ``template`` is a rule's ``ack_template`` ("" for none): its
    ``ack/<template>.<language>.j2`` count too.
    """
    names = [f"{template}", queue, "default"] if template else [queue, "default"]
    for language in (message.language.lower(), settings.acknowledgments.default_language):
        if language and any(t.exists(f"ack/{name}.{language}.j2") for name in names):
            return language
    return "en"


def ack_candidates(queue: str, language: str, template: str = "") -> list[str]:
    """The template names tried for an acknowledgment, best first.

    A rule's ``ack_template`` T comes first: ``ack/T.<language>.j2``, then ``ack/T.j2``
    (a name that carries its language, such as ``default.hu``); then the queue's
    ``ack/<queue>.<language>.j2``, ``ack/default.<language>.j2`` and ``ack/default.en.j2``.
    """
    chosen = [f"ack/{template}.{language}.j2", f"ack/{template}.j2"] if template else []
    return [
        *chosen,
        f"ack/{queue}.{language}.j2",
        f"ack/default.{language}.j2",
        "ack/default.en.j2",
    ]


def compose_ack(
    message: InboundMessage,
    *,
    ticket_ref: int,
    queue: str,
    due_at: datetime | None,
    settings: Settings,
    now: datetime,
    templates: MailTemplates | None = None,
    template: str = "",
) -> ComposedMail:
    """The acknowledgment of ``message``, which opened ticket ``#ticket_ref``.

    Call it only after :func:`~triage.outbox.policy.plan_ack` said to send.

    Headers: Subject ``Re: [#ref] <original subject>`` (header-safe whatever the
    parser gave: one Subject line, no injected headers); In-Reply-To and
    References to the client's message (RFC 5322 section 3.6.4; left out for a
    synthesized Message-ID); ``Auto-Submitted: auto-replied`` (RFC 3834 section
    5); ``X-Auto-Response-Suppress: All``; Message-ID from our domain; From =
    smtp.from_address; To = the client's reply address (Reply-To, else From),
    which is also the only envelope recipient.

    Template: a rule's ``ack_template`` T when given (``ack/T.<lang>.j2`` or ``ack/T.j2``),
    else ``ack/<queue>.<lang>.j2`` or ``ack/default.<lang>.j2``, in the message's
    language when one exists, else acknowledgments.default_language
    (:func:`ack_candidates`). The returned mail's ``template`` says which one was used:
    a rule's template that does not exist falls back to the queue's.

    Args:
        message: the client's message.
        ticket_ref: the ticket's human reference (shown as ``#1042``).
        queue: the ticket's queue.
        due_at: the first-response deadline (UTC), shown in calendar.timezone;
            None for a queue without SLA.
        settings: the configuration.
        now: the Date header (timezone-aware).
        templates: the template set (built from settings when None).
        template: the ``ack_template`` a rule chose ("" for the queue's default).

    Raises:
        ValueError: the message has no usable reply address.
        ConfigError: no [smtp] section, or a template is missing or broken.
    """
    recipient = message.reply_address
    recipient_addr = ascii_address(recipient.addr) if recipient is not None else None
    if recipient is None or recipient_addr is None:
        raise ValueError("the message has no usable reply address (plan_ack says no_address)")
    t = templates if templates is not None else MailTemplates.from_settings(settings)
    sender = our_mailbox(settings)
    language = ack_language(message, queue, settings, t, template=template)
    name = t.pick(ack_candidates(queue, language, template))
    timezone = settings.calendar.timezone
    queue_settings = settings.queues.get(queue)
    variables: dict[str, Any] = {
        "team_name": settings.team.name,
        "ticket": f"#{ticket_ref}",
        "ref": ticket_ref,
        "client_name": header_safe(recipient.name, limit=200)
        or header_safe(message.from_.name if message.from_ else "", limit=200),
        "original_subject": header_safe(message.subject),
        "queue": queue,
        "queue_description": queue_settings.description if queue_settings else "",
        "due": to_local(due_at, timezone) if due_at is not None else None,
        "due_text": format_local(due_at, timezone, language) if due_at is not None else "",
        "timezone": timezone,
        "language": language,
    }
    rendered = t.render(name, variables)
    subject = header_safe(rendered.subject) or reply_subject(message.subject, ticket_ref)
    domain = message_id_domain(settings.team.message_id_domain, sender[1])
    message_id = make_message_id(domain, "ack", ticket_ref)
    parent = "" if message.message_id_synthetic else message.message_id
    references = [*message.references, parent] if parent else list(message.references)
    raw = build_mail(
        message_id=message_id,
        sender=sender,
        to=[(recipient.name, recipient_addr)],
        subject=subject,
        body=rendered.body,
        now=now,
        auto_submitted="auto-replied",
        in_reply_to=parent,
        references=references,
    )
    return ComposedMail(
        message_id=message_id,
        mail_from=sender[1],
        rcpt_to=(recipient_addr,),
        raw=raw,
        subject=subject,
        template=name,
    )
