"""The message parser (first cut: stdlib email with policy.default).

:func:`parse_message` never raises on bad input: a message it cannot handle comes
back with ``parse_status = error`` and the error text, so ingestion can store the
raw bytes and route it to the fallback queue.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

from triage.domain import Address, InboundMessage, ParseStatus

__all__ = ["parse_message", "synthetic_message_id"]


def synthetic_message_id(raw: bytes, *, scope: str = "") -> str:
    """A stable Message-ID for a message that has none: a hash of its raw bytes and scope.

    ``scope`` distinguishes identical bytes in different places (mailbox,
    UIDVALIDITY, UID). Never built from From/Subject/Date alone (two different
    mails can share those).
    """
    digest = hashlib.sha256(scope.encode() + b"\0" + raw).hexdigest()[:32]
    return f"<synthetic.{digest}@triage.invalid>"


def _addresses(values: list[str]) -> tuple[Address, ...]:
    return tuple(Address(name=n, addr=a) for n, a in getaddresses(values) if a)


def parse_message(
    raw: bytes, *, received_at: datetime | None = None, scope: str = ""
) -> InboundMessage:
    """Parse raw message bytes.

    Args:
        raw: the message as received (CRLF or LF line ends).
        received_at: when the mailbox received it (IMAP INTERNALDATE), aware.
        scope: distinguishes identical raw bytes when a Message-ID must be synthesized.

    Returns:
        An :class:`InboundMessage`; on failure ``parse_status`` is ``error``.
    """
    try:
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)  # noqa: S101 - policy.default makes EmailMessage
        sent_at: datetime | None = None
        if msg["Date"]:
            try:
                sent_at = parsedate_to_datetime(str(msg["Date"])).astimezone(UTC)
            except (TypeError, ValueError):
                sent_at = None
        mid = str(msg["Message-ID"] or "").strip()
        body = msg.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        froms = _addresses([str(v) for v in msg.get_all("From", [])])
        return InboundMessage(
            message_id=mid or synthetic_message_id(raw, scope=scope),
            message_id_synthetic=not mid,
            subject=" ".join(str(msg["Subject"] or "").split()),
            received_at=received_at or sent_at or datetime.now(UTC),
            sent_at=sent_at,
            from_=froms[0] if froms else None,
            to=_addresses([str(v) for v in msg.get_all("To", [])]),
            cc=_addresses([str(v) for v in msg.get_all("Cc", [])]),
            reply_to=_addresses([str(v) for v in msg.get_all("Reply-To", [])]),
            body_text=text,
            in_reply_to=str(msg["In-Reply-To"] or "").strip(),
            references=tuple(str(msg["References"] or "").split()),
            headers=tuple((k, str(v)) for k, v in msg.items()),
            size=len(raw),
        )
    except Exception as exc:  # noqa: BLE001 - the parser must never fail ingestion
        return InboundMessage(
            message_id=synthetic_message_id(raw, scope=scope),
            message_id_synthetic=True,
            subject="",
            received_at=received_at or datetime.now(UTC),
            size=len(raw),
            parse_status=ParseStatus.ERROR,
            parse_error=f"{type(exc).__name__}: {exc}",
        )
