"""Parsing raw RFC 5322 messages into :class:`~triage.domain.InboundMessage` values.

Pure: bytes in, an immutable value out; never raises for bad input (the error is
recorded on the value instead).
"""

from triage.mail.parse import parse_message

__all__ = ["parse_message"]
