"""The one list of reasons why a message gets no acknowledgment (``routing_decisions.ack``).

Stable codes: stored with every decision, counted in metrics and shown to people, so a
value is never renamed. :mod:`triage.handling.builtin` says which check answers each.
"""

from __future__ import annotations

from enum import StrEnum

from triage.domain import MessageKind

__all__ = ["AckReason"]


class AckReason(StrEnum):
    """Why no acknowledgment is sent: every value ``routing_decisions.ack`` holds but ""
    (one was queued).

    Each is the outcome of one row of :mod:`triage.handling.builtin`'s tables: the
    acknowledgment policy's (``disabled`` ... ``rate_limited``), how the message came
    in (``no_smtp``: no [smtp] section; ``import``: imported history, not acknowledged
    unless the import asks; ``parse_error``: unparsable mail, we cannot tell whom or
    what we would answer), and what became of it (``duplicate``: a second copy of mail
    already stored; ``follow_up``: mail on a ticket already open; the machine kinds of
    mail that join a ticket as a note or open none).
    """

    DISABLED = "disabled"
    BOUNCE = "bounce"
    FEEDBACK_REPORT = "feedback_report"
    READ_RECEIPT = "read_receipt"
    AUTO_REPLY = "auto_reply"
    SUPPRESSED = "suppressed"
    MAILING_LIST = "mailing_list"
    NO_ADDRESS = "no_address"
    OWN_ADDRESS = "own_address"
    NO_REPLY_SENDER = "no_reply_sender"
    FOLLOW_UP = "follow_up"
    RULE = "rule"
    TOO_OLD = "too_old"
    REPLY_TO_ACK = "reply_to_ack"
    REPEAT = "repeat"
    RATE_LIMITED = "rate_limited"
    NO_SMTP = "no_smtp"
    IMPORT = "import"
    PARSE_ERROR = "parse_error"
    DUPLICATE = "duplicate"

    @classmethod
    def of_note(cls, kind: str) -> AckReason:
        """The reason for machine mail of ``kind`` (a ``MessageKind`` value) filed as a note:
        its own kind's reason, ``no_reply_sender`` for a no-reply notification.

        Raises:
            ValueError: ``kind`` is not a kind of machine mail.
        """
        if kind == MessageKind.NOTIFICATION:
            return cls.NO_REPLY_SENDER
        return cls(kind)
