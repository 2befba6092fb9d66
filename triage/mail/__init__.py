"""Parsing raw RFC 5322 messages into :class:`~triage.domain.InboundMessage` values.

Pure: bytes in, an immutable value out; never raises for bad input (the error is
recorded on the value instead). See :func:`parse_message`.
"""

from triage.mail.parse import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    UNKNOWN_RECEIVED_AT,
    parse_message,
    synthetic_message_id,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "UNKNOWN_RECEIVED_AT",
    "parse_message",
    "synthetic_message_id",
]
