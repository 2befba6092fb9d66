"""The seam between the outbox and the technology that delivers mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["OutgoingMail", "SendReceipt", "Sender"]


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One mail ready to hand over: the SMTP envelope and the message bytes.

    Attributes:
        message_id: the Message-ID header's value (``<...>``), fixed before the
            first attempt so every retry carries the same one.
        mail_from: envelope sender (RFC 5321 MAIL FROM), a bare address.
        rcpt_to: envelope recipients (RCPT TO), bare addresses. Only these get
            the mail, whatever the headers say.
        raw: the complete message, CRLF line ends.
        outbox_id: the outbox row it comes from (names the .eml file in folder mode).
    """

    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes
    outbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """What the receiving side said when it accepted a mail.

    Attributes:
        reply: the server's reply to DATA (e.g. ``"250 2.0.0 Ok: queued as 4F1"``),
            or where the file was written in folder mode.
        refused: recipients the server refused while accepting the others,
            as ``address -> "550 ..."``.
    """

    reply: str
    refused: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    """Hands one mail at a time to the world. Implementations: SmtpSender, FolderSender.

    ``send`` either returns a receipt (the mail was accepted: never send it again)
    or raises :class:`~triage.errors.TemporarySendError` /
    :class:`~triage.errors.PermanentSendError`. ``aclose`` ends any open session;
    the sender reconnects on the next ``send``.
    """

    async def send(self, mail: OutgoingMail) -> SendReceipt:
        """Deliver ``mail``; raise a SendError subclass when it was not accepted."""
        ...

    async def aclose(self) -> None:
        """Close any open connection (politely: QUIT)."""
        ...
