"""Parsing raw RFC 5322 messages into :class:`~triage.domain.InboundMessage` values.

Pure: bytes in, an immutable value out; never raises for bad input (the error is
recorded on the value instead). See :func:`parse_message`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from triage.mail.parse import (
        DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_SIZE,
        UNKNOWN_RECEIVED_AT,
        parse_message,
        synthetic_message_id,
    )

# Every public member is :mod:`triage.mail.parse`'s, imported on first use (PEP 562):
# a module that needs only a light part (the ORM models use
# :func:`triage.mail.parts.has_html_body`) does not load the whole parser with
# icalendar (about 0.2 s of CPU at every command's start).
_FROM_PARSE = frozenset(
    {
        "DEFAULT_MAX_DEPTH",
        "DEFAULT_MAX_SIZE",
        "UNKNOWN_RECEIVED_AT",
        "parse_message",
        "synthetic_message_id",
    }
)


def __getattr__(name: str) -> Any:
    """The public member ``name`` of :mod:`triage.mail.parse`, imported on first use.

    Raises:
        AttributeError: ``name`` is not a public member of the package.
    """
    if name not in _FROM_PARSE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module("triage.mail.parse"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "UNKNOWN_RECEIVED_AT",
    "parse_message",
    "synthetic_message_id",
]
