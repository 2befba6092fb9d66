"""Text folding for case- and accent-insensitive matching, and the input bounds.

Every text a rule looks at is folded once per message and field, and each
condition's values are folded the same way when the rule file is loaded, so
matching itself is a plain substring, set or regular-expression test.

Folds:
    ``RAW``     the text as parsed (``ignore_case = false``).
    ``CASE``    Unicode NFC, then :meth:`str.casefold` (the default).
    ``ACCENTS`` NFKD with combining marks removed, case kept (regular expressions
                that ignore accents; RE2 itself ignores case).
    ``BOTH``    accents removed and casefolded: ``Számla``, ``SZÁMLA`` and
                ``szamla`` all become ``szamla``; ``ő`` and ``ű`` become ``o`` and ``u``.

Bounds (characters, applied before folding, so a huge body costs bounded work):
    :data:`MAX_BODY_CHARS` for each of the new text, quoted history and signature;
    :data:`MAX_SHORT_CHARS` for the subject, header values, names and addresses;
    :data:`MAX_VALUES` values per field (recipients, attachments, repeated headers).
"""

from __future__ import annotations

import re
import unicodedata
from enum import IntEnum

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_PATTERN_CHARS",
    "MAX_SHORT_CHARS",
    "MAX_VALUES",
    "Fold",
    "casefold_stripped",
    "fold",
    "strip_accents",
]

MAX_BODY_CHARS = 100_000
"""Characters of the new text, of the quoted history and of the signature looked at."""
MAX_SHORT_CHARS = 4_000
"""Characters of the subject, of each header value, name, address or file name looked at."""
MAX_VALUES = 200
"""Values of one field looked at: recipients, attachments, repeated headers."""
MAX_PATTERN_CHARS = 2_000
"""Longest regular expression or glob a rule file may contain."""

# Combining diacritical marks (U+0300-036F) and their supplements and extensions.
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


class Fold(IntEnum):
    """How a text is normalized before matching (see the module docstring)."""

    RAW = 0
    CASE = 1
    ACCENTS = 2
    BOTH = 3

    @classmethod
    def of(cls, *, ignore_case: bool, ignore_accents: bool) -> Fold:
        """The fold for a condition's two switches."""
        if ignore_accents:
            return cls.BOTH if ignore_case else cls.ACCENTS
        return cls.CASE if ignore_case else cls.RAW


def strip_accents(text: str) -> str:
    """Remove diacritics: NFKD decomposition without combining marks (``ő`` -> ``o``).

    Compatibility characters are decomposed too (``ﬁ`` -> ``fi``, ``²`` -> ``2``).
    """
    if text.isascii():
        return text
    return _MARKS.sub("", unicodedata.normalize("NFKD", text))


def fold(text: str, how: Fold) -> str:
    """``text`` normalized by ``how``."""
    if how is Fold.RAW:
        return text
    if how is Fold.CASE:
        if text.isascii():
            return text.lower()
        return unicodedata.normalize("NFC", text).casefold()
    if how is Fold.ACCENTS:
        return strip_accents(text)
    return casefold_stripped(strip_accents(text))


def casefold_stripped(stripped: str) -> str:
    """``fold(text, Fold.BOTH)`` given ``stripped = fold(text, Fold.ACCENTS)``.

    Lets a message's accent-stripped text be reused for the fully folded one.
    """
    if stripped.isascii():
        return stripped.lower()
    folded = stripped.casefold()
    # Full case folding can add a combining mark (İ -> i + U+0307): strip once more if so.
    if not folded.isascii() and _MARKS.search(folded):
        folded = _MARKS.sub("", folded)
    return folded
