"""Domain types passed between the stages of triage: pure, immutable values.

This module imports nothing but the standard library, so ``rules/`` and
``classifiers/`` may use it without learning about IMAP, SMTP or the database.
All datetimes are timezone-aware; stored and compared in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "PRIORITIES",
    "Address",
    "Attachment",
    "DecidedBy",
    "DeliveryReport",
    "InboundMessage",
    "MessageKind",
    "ParseStatus",
    "Priority",
    "TicketStatus",
]


class Priority(StrEnum):
    """Ticket priority, most urgent first. ``rank`` orders them (0 = urgent)."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for urgent up to 3 for low."""
        return PRIORITIES.index(self)


PRIORITIES: tuple[Priority, ...] = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)


class MessageKind(StrEnum):
    """What a message is, for routing and acknowledgment decisions.

    - ``auto_reply``: RFC 3834 ``Auto-Submitted`` other than ``no``, X-Autoreply,
      ``Precedence: auto_reply``, out-of-office subjects.
    - ``bounce``: RFC 3464 delivery status notification, MAILER-DAEMON, null Return-Path.
    - ``mailing_list``: RFC 2369/2919 List-* headers, ``Precedence: bulk/list``.
    - ``feedback_report``: an abuse/feedback loop report (RFC 5965 ARF).
    - ``read_receipt``: a message disposition notification (RFC 8098 MDN).
    - ``notification``: mail from a machine's address that takes no answer (no-reply
      variants, a VERP or ``bounces+`` return address).

    The last three, auto-replies and bounces are machine mail: never acknowledged;
    the last three never open a ticket of their own (filed on the ticket they
    concern when one is found).
    """

    NORMAL = "normal"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    MAILING_LIST = "mailing_list"
    FEEDBACK_REPORT = "feedback_report"
    READ_RECEIPT = "read_receipt"
    NOTIFICATION = "notification"


class ParseStatus(StrEnum):
    """How completely a message was parsed."""

    OK = "ok"
    ERROR = "error"
    """The parser failed; raw bytes are kept and the message goes to fallback."""
    TRUNCATED_DEPTH = "truncated_depth"
    """MIME nesting deeper than the limit; parts below it were not read."""
    TRUNCATED_SIZE = "truncated_size"
    """Larger than the size limit; only the first part of the raw bytes was parsed."""


class DecidedBy(StrEnum):
    """What chose a ticket's queue."""

    RULE = "rule"
    MODEL = "model"
    FALLBACK = "fallback"


class TicketStatus(StrEnum):
    """Ticket life cycle: new -> open (claimed) -> waiting (on client) -> solved -> closed."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    SOLVED = "solved"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed mail address. ``addr`` is as written; compare with :attr:`key`."""

    name: str
    addr: str

    @property
    def key(self) -> str:
        """The address lowercased, for comparisons and lookups."""
        return self.addr.lower()

    @property
    def domain(self) -> str:
        """The part after the last ``@``, lowercased; "" when there is none."""
        return self.addr.rpartition("@")[2].lower() if "@" in self.addr else ""

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment's metadata; its bytes stay in the raw message.

    Attributes:
        filename: decoded per RFC 2231/2047; "" when the part has none.
        content_type: lowercased ``type/subtype``.
        size: decoded size in bytes.
        sha256: hex digest of the decoded bytes.
        content_id: the Content-ID without angle brackets, for an inline part the body
            shows through a ``cid:`` URL (RFC 2392); "" for an attachment.
    """

    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a bounce (RFC 3464 DSN) says about the mail that failed.

    Attributes:
        failed_recipients: addresses whose delivery failed.
        status: the first DSN status code (``"5.1.1"``), "" when unknown.
        original_message_id: Message-ID of the mail that bounced, if the report
            includes its headers (text/rfc822-headers or message/rfc822).
    """

    failed_recipients: tuple[str, ...] = ()
    status: str = ""
    original_message_id: str = ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One received message, parsed. Immutable; produced by :mod:`triage.mail`.

    Attributes:
        message_id: ``<...>`` form; synthesized (``message_id_synthetic``) when missing.
        from_: the sender (``None`` when the From header is absent or unparsable).
        subject: decoded; CR, LF and control characters replaced by spaces.
        sent_at: the Date header (timezone-aware UTC) or ``None`` when missing or absurd.
        received_at: when the mailbox received it (IMAP INTERNALDATE; the Date header
            for imports), UTC. The SLA clock starts here.
        body_text: the new text of the message (HTML converted to text).
        quoted_text: quoted history separated from the new text.
        signature: the sender's signature block, if recognized.
        attachments: the files the sender attached (inline parts not among them).
        inline_parts: parts the HTML body shows inline (``cid:`` images), with their
            Content-ID; never counted as attachments (rules, the ticket view).
        headers: every header as decoded (name, value) pairs, in order.
        size: size of the raw message in bytes.
        language: ISO 639-1 code (``"hu"``, ``"en"``) or "" when not detectable.
        charset_fallback: a charset was missing, unknown or wrong and was guessed.
        body_missing: the body could not be recovered (e.g. undecodable TNEF).
        list_id: RFC 2919 List-Id without angle brackets, "" when none.
        delivery_report: set for bounces.
        parse_error: why parsing failed or was truncated; "" when it did not.
        kind_reason: the signal that decided ``kind`` (``"Auto-Submitted: auto-replied"``,
            ``"multipart/report; report-type=delivery-status"``); "" for normal mail.
    """

    message_id: str
    subject: str
    received_at: datetime
    from_: Address | None = None
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    sent_at: datetime | None = None
    body_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    attachments: tuple[Attachment, ...] = ()
    inline_parts: tuple[Attachment, ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    size: int = 0
    language: str = ""
    kind: MessageKind = MessageKind.NORMAL
    message_id_synthetic: bool = False
    charset_fallback: bool = False
    body_missing: bool = False
    list_id: str = ""
    delivery_report: DeliveryReport | None = None
    parse_status: ParseStatus = ParseStatus.OK
    parse_error: str = ""
    defects: tuple[str, ...] = field(default=())
    kind_reason: str = ""

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        """Every header called ``name`` (case-insensitive), in order."""
        lower = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == lower)

    @property
    def reply_address(self) -> Address | None:
        """Where an answer goes: the first Reply-To, else From."""
        return self.reply_to[0] if self.reply_to else self.from_
