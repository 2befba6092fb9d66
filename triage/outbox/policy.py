"""Whether a message gets an acknowledgment: a pure decision with a stable reason code.

The checks, in order (the first that applies decides):

===================  =========================================================
reason               when
===================  =========================================================
``disabled``         acknowledgments.enabled is false, or there is no [smtp]
``bounce``           kind bounce; or a null Return-Path (``<>``) or a
                     multipart/report delivery-status (RFC 3464, RFC 6522)
``auto_reply``       kind auto_reply; or ``Auto-Submitted`` other than ``no``
                     (RFC 3834 section 5), ``Precedence: auto_reply``,
                     ``X-Autoreply``, ``X-Autorespond``
``suppressed``       the sender asked for no automatic answers
                     (``X-Auto-Response-Suppress`` with All, AutoReply or OOF)
``mailing_list``     kind mailing_list; or List-Id / List-Unsubscribe /
                     List-Post (RFC 2369, RFC 2919), ``Precedence: bulk|list|junk``
                     -- unless the List-Id is one of routing.own_list_ids
``no_address``       no usable reply address (Reply-To, else From)
``own_address``      From or the reply address is ours: smtp.from_address,
                     team.addresses, team.assistants
``no_reply_sender``  From or the reply address matches
                     acknowledgments.no_reply_patterns (MAILER-DAEMON, no-reply)
``follow_up``        the message joined an existing ticket
``rule``             a rule said no acknowledgment
``too_old``          the message reached the mailbox more than
                     acknowledgments.max_age before it was processed (the
                     first start against an inbox full of old mail; a long
                     outage): a "we received your mail" days later misleads
``rate_limited``     the reply address already got max_per_sender_per_hour
                     acknowledgments in the last hour (RFC 3834 section 2:
                     a machine writing in a loop is answered a bounded number
                     of times)
===================  =========================================================

The header checks repeat what the parser's ``kind`` says on purpose: they are
the last guard against a mail loop (RFC 3834 section 2), so they hold even when
kind detection misses a case. A message that passes every check gets
``AckDecision(send=True, reason="")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase

from triage.config import Settings
from triage.domain import InboundMessage, MessageKind
from triage.outbox.headers import ascii_address, parse_mailbox, valid_address

__all__ = ["AckDecision", "AckReason", "history_age", "our_addresses", "plan_ack"]


class AckReason(StrEnum):
    """Why no acknowledgment is sent (stored in routing_decisions.ack)."""

    DISABLED = "disabled"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    SUPPRESSED = "suppressed"
    MAILING_LIST = "mailing_list"
    NO_ADDRESS = "no_address"
    OWN_ADDRESS = "own_address"
    NO_REPLY_SENDER = "no_reply_sender"
    FOLLOW_UP = "follow_up"
    RULE = "rule"
    TOO_OLD = "too_old"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class AckDecision:
    """The acknowledgment decision for one message.

    Attributes:
        send: True when an acknowledgment is to be written.
        reason: "" when ``send``; otherwise an :class:`AckReason` value.
        detail: one sentence a person can read: what exactly decided it.
    """

    send: bool
    reason: str = ""
    detail: str = ""

    @classmethod
    def no(cls, reason: AckReason, detail: str) -> AckDecision:
        """A decision not to acknowledge, for ``reason``."""
        return cls(send=False, reason=reason.value, detail=detail)


def our_addresses(settings: Settings) -> frozenset[str]:
    """Our own addresses, lowercased: smtp.from_address, team.addresses, team.assistants."""
    found = set()
    if settings.smtp is not None:
        _, addr = parse_mailbox(settings.smtp.from_address)
        if addr:
            found.add(addr.lower())
    for text in [*settings.team.addresses, *settings.team.assistants.values()]:
        _, addr = parse_mailbox(text)
        if addr:
            found.add(addr.lower())
    return frozenset(found)


def _first_token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _list_ids(message: InboundMessage) -> set[str]:
    ids = set()
    if message.list_id:
        ids.add(message.list_id.strip().strip("<>").lower())
    for value in message.header_all("List-Id"):
        match = re.search(r"<([^<>]+)>", value)
        ids.add((match.group(1) if match else value).strip().lower())
    return ids


def _bounce(message: InboundMessage) -> str:
    if message.kind == MessageKind.BOUNCE or message.delivery_report is not None:
        return "the parser classified it as a delivery status notification (RFC 3464)"
    for value in message.header_all("Return-Path"):
        if value.strip() in {"<>", ""}:
            return "null Return-Path <> (RFC 5321 section 4.5.5: a bounce)"
    content_type = (message.header("Content-Type") or "").lower()
    if content_type.startswith("multipart/report") and "delivery-status" in content_type:
        return "multipart/report; report-type=delivery-status (RFC 3464)"
    return ""


def _auto_reply(message: InboundMessage) -> str:
    if message.kind == MessageKind.AUTO_REPLY:
        return "the parser classified it as an automatic reply"
    for value in message.header_all("Auto-Submitted"):
        if _first_token(value) not in {"", "no"}:
            return f"Auto-Submitted: {_first_token(value)} (RFC 3834 section 5)"
    if any(_first_token(v) == "auto_reply" for v in message.header_all("Precedence")):
        return "Precedence: auto_reply"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.header(name) is not None:
            return f"{name} header"
    return ""


def _suppressed(message: InboundMessage) -> str:
    for value in message.header_all("X-Auto-Response-Suppress"):
        words = {w.strip().lower() for w in value.split(",")}
        if words & {"all", "autoreply", "oof"}:
            return f"X-Auto-Response-Suppress: {' '.join(value.split())}"
    return ""


def _mailing_list(message: InboundMessage, own_list_ids: set[str]) -> str:
    ids = _list_ids(message)
    if ids and ids <= own_list_ids:
        return ""
    if message.kind == MessageKind.MAILING_LIST:
        return "the parser classified it as mailing-list mail"
    if ids:
        return f"List-Id {min(ids)} (RFC 2919)"
    for name in ("List-Unsubscribe", "List-Post"):
        if message.header(name) is not None:
            return f"{name} header (RFC 2369)"
    for value in message.header_all("Precedence"):
        if _first_token(value) in {"bulk", "list", "junk"}:
            return f"Precedence: {_first_token(value)}"
    return ""


def history_age(message: InboundMessage, settings: Settings, now: datetime) -> float | None:
    """Seconds since ``message`` reached the mailbox, when that is more than
    ``acknowledgments.max_age`` (mail triage first sees as history: no acknowledgment,
    no escalation mail); None otherwise, or when max_age is 0 (no limit).

    ``now`` is the processing time, timezone-aware.
    """
    max_age = settings.acknowledgments.max_age
    age = (now - message.received_at).total_seconds()
    return age if max_age > 0 and age > max_age else None


def plan_ack(
    message: InboundMessage,
    settings: Settings,
    *,
    follow_up: bool = False,
    rule_no_ack: bool = False,
    recent_acks: int = 0,
    now: datetime | None = None,
) -> AckDecision:
    """Decide whether ``message`` gets an acknowledgment (see the module docstring).

    Args:
        message: the parsed message.
        settings: the configuration.
        follow_up: the message joined an existing ticket.
        rule_no_ack: a rule marked it "no acknowledgment".
        recent_acks: acknowledgments written to the reply address in the last
            hour (:func:`~triage.outbox.enqueue.recent_ack_count`).
        now: the processing time (timezone-aware), for the ``too_old`` check
            against ``message.received_at``; None skips that check.

    Returns:
        An :class:`AckDecision`; ``reason`` is "" when ``send`` is True.
    """
    ack = settings.acknowledgments
    if not ack.enabled:
        return AckDecision.no(AckReason.DISABLED, "acknowledgments.enabled is false")
    if settings.smtp is None:
        return AckDecision.no(AckReason.DISABLED, "there is no [smtp] section")
    checks = (
        (AckReason.BOUNCE, _bounce(message)),
        (AckReason.AUTO_REPLY, _auto_reply(message)),
        (AckReason.SUPPRESSED, _suppressed(message)),
        (
            AckReason.MAILING_LIST,
            _mailing_list(message, {i.lower() for i in settings.routing.own_list_ids}),
        ),
    )
    for reason, detail in checks:
        if detail:
            return AckDecision.no(reason, detail)
    recipient = message.reply_address
    if recipient is None or not valid_address(recipient.addr):
        return AckDecision.no(AckReason.NO_ADDRESS, "no usable Reply-To or From address")
    if ascii_address(recipient.addr) is None:
        return AckDecision.no(
            AckReason.NO_ADDRESS,
            f"{recipient.addr} has a non-ASCII local part (needs SMTPUTF8, RFC 6531)"
            " or an invalid international domain",
        )
    candidates = [recipient.key]
    if message.from_ is not None and message.from_.key not in candidates:
        candidates.append(message.from_.key)
    ours = our_addresses(settings)
    for address in candidates:
        if address in ours:
            return AckDecision.no(AckReason.OWN_ADDRESS, f"{address} is one of our addresses")
    for address in candidates:
        for pattern in ack.no_reply_patterns:
            if fnmatchcase(address, pattern.lower()):
                return AckDecision.no(
                    AckReason.NO_REPLY_SENDER,
                    f"{address} matches acknowledgments.no_reply_patterns {pattern!r}",
                )
    if follow_up:
        return AckDecision.no(AckReason.FOLLOW_UP, "the message joined an existing ticket")
    if rule_no_ack:
        return AckDecision.no(AckReason.RULE, "a rule marked it: no acknowledgment")
    if now is not None and (age := history_age(message, settings, now)) is not None:
        return AckDecision.no(
            AckReason.TOO_OLD,
            f"it reached the mailbox {age / 3600:.0f} h before it was processed"
            f" (acknowledgments.max_age = {ack.max_age / 3600:.0f} h)",
        )
    if recent_acks >= ack.max_per_sender_per_hour:
        return AckDecision.no(
            AckReason.RATE_LIMITED,
            f"{recipient.key} already got {recent_acks} acknowledgment(s) in the last hour"
            f" (acknowledgments.max_per_sender_per_hour = {ack.max_per_sender_per_hour})",
        )
    return AckDecision(send=True)
