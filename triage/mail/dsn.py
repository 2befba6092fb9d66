"""What a bounce says: the failed recipients, the status and the bounced Message-ID.

Also, for the other reports about mail we sent, the Message-ID they concern: an
RFC 5965 feedback report's attached original, an RFC 8098 read receipt's
``Original-Message-ID``.

From an RFC 3464 delivery-status part when there is one: per-recipient blocks
with ``Final-Recipient`` (or ``Original-Recipient``), ``Action`` and ``Status``
(§2.3); the bounced message's Message-ID from the returned headers
(text/rfc822-headers, RFC 6522 §3) or the returned message (message/rfc822).

Older bounces without a report (qmail, some Exchange and Postfix setups) are read
loosely: the first ``x.y.z`` status code in the text, the addresses named in
its first lines (not the daemon's own), and a ``Message-ID:`` line of the quoted
original.
"""

from __future__ import annotations

import re

from triage.domain import Address, DeliveryReport
from triage.mail.headers import TextDecoder, split_header_block
from triage.mail.ids import first_msg_id
from triage.mail.mime import Part, decode_transfer

__all__ = ["delivery_report"]

_STATUS_PARTS = frozenset({"message/delivery-status", "message/global-delivery-status"})
_NOTIFICATION_PARTS = frozenset(
    {"message/disposition-notification", "message/global-disposition-notification"}
)
_RETURNED = frozenset(
    {"text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers"}
)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63}")
_MESSAGE_ID_LINE = re.compile(r"^message-id:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_BLOCK_BREAK = re.compile(rb"\r?\n[ \t]*\r?\n")
_MAX_RECIPIENTS = 100
_RETURNED_START = re.compile(
    r"^\s*(?:(?:return-path|received|from|to|message-id|subject|date)\s*:|"
    r".*(?:copy\s+of\s+the\s+(?:original\s+)?message|original\s+message|"
    r"undelivered\s+message\s+(?:headers\s+)?follows))",
    re.IGNORECASE,
)
"""Where a bounce's text starts quoting the returned message: no failed recipients there."""


def _field(block_bytes: bytes, decoder: TextDecoder) -> dict[str, str]:
    block = split_header_block(block_bytes)
    return {h.name.lower(): decoder.raw_value(h.value).strip() for h in block.headers}


def _address(value: str) -> str:
    """``rfc822; someone@example.net`` -> ``someone@example.net`` (RFC 3464 §2.3.2)."""
    _kind, _sep, address = value.rpartition(";")
    return address.strip().strip("<>").strip()


def _from_status_part(part: Part, decoder: TextDecoder) -> tuple[list[str], str]:
    data = decode_transfer(part)
    blocks = [b for b in _BLOCK_BREAK.split(data) if b.strip()]
    failed: list[str] = []
    statuses: list[str] = []
    failed_status = ""
    for raw in blocks[1:]:  # the first block is per-message
        fields = _field(raw.strip(b"\r\n"), decoder)
        recipient = _address(fields.get("final-recipient") or fields.get("original-recipient", ""))
        action = fields.get("action", "").lower()
        status_match = _STATUS.search(fields.get("status", ""))
        status = status_match.group(1) if status_match else ""
        if status:
            statuses.append(status)
        if recipient and (action == "failed" or (not action and status.startswith("5"))):
            failed.append(recipient)
            failed_status = failed_status or status
    status = failed_status or (statuses[0] if statuses else "")
    return list(dict.fromkeys(failed))[:_MAX_RECIPIENTS], status


def _loose(text: str, own: set[str]) -> tuple[list[str], str]:
    lines: list[str] = []
    for line in text.split("\n")[:40]:
        if _RETURNED_START.match(line):
            break
        lines.append(line)
    head = "\n".join(lines)
    status_match = _STATUS.search(head)
    failed = [
        a
        for a in dict.fromkeys(_ADDRESS.findall(head))
        if a.lower() not in own
        and a.lower().partition("@")[0] not in {"mailer-daemon", "postmaster"}
    ]
    return failed[:_MAX_RECIPIENTS], status_match.group(1) if status_match else ""


def delivery_report(
    root: Part, decoder: TextDecoder, body_text: str, recipients: tuple[Address, ...]
) -> DeliveryReport:
    """The :class:`~triage.domain.DeliveryReport` of a bounce.

    Args:
        root: the parsed MIME tree.
        decoder: decodes the report's fields.
        body_text: the human-readable text, for bounces without a report.
        recipients: the bounce's own To/Cc (us), never reported as failed.
    """
    failed: list[str] = []
    status = ""
    original = ""
    have_report = False
    for part in root.walk():
        if part.content_type in _STATUS_PARTS and not have_report:
            have_report = True
            failed, status = _from_status_part(part, decoder)
        elif part.content_type in _NOTIFICATION_PARTS and not original:
            # RFC 8098 section 3.2.5: the MDN names the message it is about
            fields = _field(decode_transfer(part).strip(b"\r\n"), decoder)
            original = first_msg_id(fields.get("original-message-id", ""))
        elif part.content_type in _RETURNED and not original:
            data = decode_transfer(part)
            returned = split_header_block(data)
            value = returned.get("message-id")
            if value is not None:
                original = first_msg_id(decoder.raw_value(value))
    if not have_report and root.content_type != "multipart/report":
        failed, status = _loose(body_text, {a.key for a in recipients})
    if not original:
        match = _MESSAGE_ID_LINE.search(body_text)
        if match:
            original = first_msg_id(match.group(1))
    return DeliveryReport(
        failed_recipients=tuple(failed), status=status, original_message_id=original
    )
