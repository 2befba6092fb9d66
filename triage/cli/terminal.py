"""Text from mail, made safe to print on a terminal."""

from __future__ import annotations

import re

__all__ = ["terminal_safe"]

_TERMINAL_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
"""What a mail's text must not send to a terminal: control characters (ESC, the 8-bit
CSI U+009B) and the bidirectional marks and overrides that can make a line read
backwards."""


def terminal_safe(text: str) -> str:
    """``text`` for a terminal: tabs and line breaks kept, other controls removed."""
    return _TERMINAL_UNSAFE.sub("", text)
