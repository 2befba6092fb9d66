"""What the classifier sees of a message: an :class:`Example`, and its feature columns.

A message becomes an :class:`Example` (subject, the new body text, the sender);
:func:`feature_columns` turns a batch of examples into the text columns the
scikit-learn pipeline in :mod:`classifiers.model` vectorizes:

==========  ================================================================
column      content
==========  ================================================================
``text``    subject and body: word TF-IDF (exact words, any language)
``stems``   the same text lowercased with accents folded; the pipeline keeps
            the first :data:`STEM_LENGTH` letters of each word
            (:data:`STEM_PATTERN`): a cheap stemmer that works across
            languages, so Hungarian ``számlát``, ``számlával`` and ``szamla``
            share a feature with ``számla``
``subject`` the subject alone: character 3-5-grams (short, often the best clue)
``sender``  the sender's domain and its parent domains (``d:mail.example.hu``,
            ``d:example.hu``, ``d:hu``): ``d:-`` when unknown
==========  ================================================================

Quoted history is left out on purpose: a reply quoting an invoice is not about
billing because of the quote. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from triage.domain import InboundMessage

__all__ = [
    "COLUMNS",
    "ENCODER_MAX_CHARS",
    "STEM_LENGTH",
    "STEM_PATTERN",
    "Example",
    "encoder_text",
    "example_from_message",
    "feature_columns",
    "fold_accents",
    "sender_domain",
]

STEM_LENGTH = 5
"""Letters kept of each word in the ``stems`` column."""

COLUMNS: tuple[str, ...] = ("text", "stems", "subject", "sender")
"""The columns of :func:`feature_columns`, in order."""

STEM_PATTERN = rf"\b(\w{{2,{STEM_LENGTH}}})\w*"
"""Token pattern of the ``stems`` column: the capturing group (the first letters) is the token."""


def _fold_table() -> dict[int, str]:
    # Latin letters with diacritics (Latin-1 Supplement and Latin Extended-A/B:
    # Hungarian ő/ű, German ä/ß, French é, Portuguese ã ...) mapped to their
    # base letters, once, so folding is one C-level str.translate per text.
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        char = chr(code)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if base and base != char and base.isascii():
            table[code] = base
    table[ord("ß")] = "ss"
    return table


_FOLD = _fold_table()


def fold_accents(text: str) -> str:
    """``text`` with accented Latin letters replaced by their base letters (``ő`` -> ``o``)."""
    return text.translate(_FOLD)


@dataclass(frozen=True, slots=True)
class Example:
    """One message as the classifier sees it.

    Attributes:
        subject: the decoded subject.
        body: the new text of the message, quoted history excluded.
        sender: the sender's address or domain (``anna@example.hu`` or ``example.hu``);
            "" when unknown. Only the domain is used.
    """

    subject: str
    body: str
    sender: str = ""


def sender_domain(sender: str) -> str:
    """The lowercased domain of an address or domain; "" when there is none."""
    domain = sender.rpartition("@")[2] if "@" in sender else sender
    return domain.strip().strip(">").strip(".").lower()


def example_from_message(msg: InboundMessage) -> Example:
    """The :class:`Example` of a parsed message: subject, new text, sender domain.

    The new text is ``msg.body_text`` followed by ``msg.signature`` when the
    parser separated one (a signature names the client's company: a good clue).
    ``msg.quoted_text`` (the history of the thread) is not used.
    """
    body = f"{msg.body_text}\n{msg.signature}" if msg.signature else msg.body_text
    return Example(
        subject=msg.subject,
        body=body,
        sender=msg.from_.domain if msg.from_ is not None else "",
    )


ENCODER_MAX_CHARS = 600
"""Characters of a mail's text a sentence encoder reads (the cascade's second stage)."""


def encoder_text(subject: str, body: str) -> str:
    """What a sentence encoder reads of a mail: subject, then new text, cut to
    :data:`ENCODER_MAX_CHARS` characters (the start says what a mail is about, and
    the encoder's cost grows with the length)."""
    return f"{subject}\n{body}".strip()[:ENCODER_MAX_CHARS]


def _sender_tokens(sender: str) -> str:
    domain = sender_domain(sender)
    if not domain:
        return "d:-"
    labels = domain.split(".")
    return " ".join("d:" + ".".join(labels[i:]) for i in range(len(labels)))


def _folded(text: str) -> str:
    return fold_accents(text.lower())


def feature_columns(examples: Iterable[Example]) -> npt.NDArray[np.object_]:
    """The feature columns of ``examples``: an object array of shape (n, len(COLUMNS)).

    Each row holds the strings named by :data:`COLUMNS` for one example.
    """
    rows: list[Sequence[str]] = []
    for ex in examples:
        text = f"{ex.subject}\n{ex.body}"
        rows.append((text, _folded(text), ex.subject, _sender_tokens(ex.sender)))
    out = np.empty((len(rows), len(COLUMNS)), dtype=object)
    for i, row in enumerate(rows):
        out[i, :] = row
    return out
