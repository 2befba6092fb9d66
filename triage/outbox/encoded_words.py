"""Header values for outgoing mail: RFC 2047 encoded-words only where needed, folded.

Pure. Python's ``email`` was not used for this on purpose: ``email.header.Header``
(the compat32 API) encodes a whole value once it holds one non-ASCII character
(``Re: [#1042]`` disappears into base64, which people reading the raw header and
simple filters cannot see) and makes a display name one encoded-word of any
length; the modern policy keeps some ASCII words, but also pulls ASCII words into
encoded-words, leaves an ASCII word that looks like an encoded-word (``=?x?q?y?=``)
as it is (the receiver then decodes it: no exact round trip), and on Python 3.11
can fold a long value into an unclosed encoded-word.

The rules kept here:

- Words are taken apart at single spaces (the text comes through
  :func:`~triage.outbox.headers.header_safe`: no control characters, no runs of
  white space). A word that is printable ASCII stays as it is; a run of words that
  are not (non-ASCII, or ASCII that looks like an encoded-word, or a word too long
  for a line) becomes encoded-words, the spaces inside the run encoded with it, so
  decoding (which drops white space between adjacent encoded-words, RFC 2047 §6.2)
  gives the text back exactly.
- An encoded-word is at most 75 characters (§2) and never splits a UTF-8
  character (§5: each encoded-word must be self-contained). Q encoding (§4.2,
  readable for Latin scripts) or B (§4.1, shorter for others), whichever is
  shorter for the run.
- In a display name (a ``phrase``, RFC 5322 §3.2.5; RFC 2047 §5(3)) Q encoding
  keeps only letters, digits and ``!*+-/`` literal, and an ASCII word with
  characters a phrase cannot hold (``Kft.``, ``"``, ``,``) goes into the encoded run
  (or, in an all-ASCII name, the name is quoted).
- Lines are folded at the spaces between words and encoded-words so none is
  longer than 78 characters (RFC 5322 §2.1.1), the field name included.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

__all__ = ["MAX_ENCODED_WORD", "MAX_LINE", "fold_field", "mailbox_tokens", "unstructured_tokens"]

MAX_ENCODED_WORD = 75
"""RFC 2047 §2: an encoded-word may not be more than 75 characters long."""
MAX_LINE = 78
"""RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters."""

_CHARSET = "utf-8"
_OVERHEAD = len(f"=?{_CHARSET}?q?") + len("?=")
_MAX_PAYLOAD = MAX_ENCODED_WORD - _OVERHEAD
_MAX_PLAIN_WORD = 60
"""ASCII words longer than this are encoded too: a line cannot be folded inside a word."""
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
"""RFC 5322 §3.2.3 atext: what an atom in a display name may hold."""
_PHRASE_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
"""RFC 2047 §5(3): the characters Q encoding may leave literal inside a phrase."""
_TEXT_Q_SAFE = frozenset(range(0x21, 0x7F)) - set(b'=?_,;"()<>@:\\[].')
"""Printable ASCII left literal in Q encoding of unstructured text (§5(1)); also without
the characters of structured fields, so a value never folds inside an encoded-word."""


def _looks_encoded(word: str) -> bool:
    return "=?" in word or "?=" in word


def _q_piece(text: str, safe: frozenset[int]) -> str:
    return "".join(
        "_" if ch == " " else "".join(chr(b) if b in safe else f"={b:02X}" for b in ch.encode())
        for ch in text
    )


def _b_piece(text: str) -> str:
    return base64.b64encode(text.encode(_CHARSET)).decode("ascii")


def _pack(text: str, fits: Callable[[str, bool], bool]) -> list[str]:
    """``text`` cut into pieces that each ``fits`` one encoded-word: at the spaces before
    words where it can (the space starts the next piece), inside a word (at a character
    boundary) only when one word is too long for an encoded-word of its own.

    Decoders that wrongly keep the white space between two encoded-words in a display
    name (Python's ``email.headerregistry`` does) then show at most a double space,
    never a word cut in two.
    """
    words = text.split(" ")
    pieces = [words[0], *(" " + w for w in words[1:])]
    out: list[str] = []
    current = ""
    for piece in pieces:
        if fits(current + piece, not out):
            current += piece
            continue
        if current:
            out.append(current)
            current = ""
        if fits(piece, not out):
            current = piece
            continue
        for ch in piece:  # one word longer than an encoded-word
            if current and not fits(current + ch, not out):
                out.append(current)
                current = ""
            current += ch
    if current:
        out.append(current)
    return out


def encode_run(text: str, *, phrase: bool = False, first: int = MAX_ENCODED_WORD) -> list[str]:
    """``text`` as encoded-words, each at most 75 characters (the first at most ``first``:
    the room left on the field's first line), no character split.

    Q encoding (readable for Latin scripts: ``Sz=C3=A1mla``) unless B is less than two
    thirds of its length (Cyrillic, Greek, Chinese ...).
    """
    safe = _PHRASE_Q_SAFE if phrase else _TEXT_Q_SAFE

    def room(is_first: bool) -> int:
        return min(first, MAX_ENCODED_WORD) - _OVERHEAD if is_first else _MAX_PAYLOAD

    q = [
        f"=?{_CHARSET}?q?{_q_piece(p, safe)}?="
        for p in _pack(text, lambda t, f: len(_q_piece(t, safe)) <= room(f))
    ]
    b = [
        f"=?{_CHARSET}?b?{_b_piece(p)}?="
        for p in _pack(text, lambda t, f: len(_b_piece(t)) <= room(f))
    ]
    return b if 3 * sum(map(len, b)) < 2 * sum(map(len, q)) else q


def _tokens(words: list[str], literal: list[bool], *, phrase: bool, first: int) -> list[str]:
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(
                encode_run(" ".join(run), phrase=phrase, first=MAX_ENCODED_WORD if out else first)
            )
            run.clear()

    for word, plain in zip(words, literal, strict=True):
        if plain:
            flush()
            out.append(word)
        else:
            run.append(word)
    flush()
    return out


def unstructured_tokens(text: str, *, first: int = MAX_ENCODED_WORD) -> list[str]:
    """The tokens of an unstructured value (Subject; RFC 5322 §3.2.5 unstructured),
    to be joined by single spaces or folds: ASCII words as they are, the rest encoded.

    ``text`` must have no control characters and no runs of white space. ``first``
    bounds an encoded-word that starts the value (the room after ``Name: ``).
    """
    words = text.split(" ")
    literal = [
        w.isascii() and w.isprintable() and not _looks_encoded(w) and len(w) <= _MAX_PLAIN_WORD
        for w in words
    ]
    return _tokens(words, literal, phrase=False, first=first)


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_tokens(name: str, addr: str, *, first: int = MAX_ENCODED_WORD) -> list[str]:
    """The tokens of ``name <addr>`` (RFC 5322 §3.4): an all-ASCII name as atoms or one
    quoted string; otherwise atoms as they are and the other words as encoded-words.
    ``addr`` must be a plain ASCII address; an empty name gives just the address.
    """
    if not name:
        return [addr]
    words = name.split(" ")
    if name.isascii() and not _looks_encoded(name):
        if all(_ATEXT.fullmatch(w) for w in words) and len(name) <= _MAX_PLAIN_WORD:
            return [*words, f"<{addr}>"]
        if len(name) <= _MAX_PLAIN_WORD:
            return [_quoted(name), f"<{addr}>"]
    literal = [
        bool(_ATEXT.fullmatch(w)) and not _looks_encoded(w) and len(w) <= _MAX_PLAIN_WORD
        for w in words
    ]
    return [*_tokens(words, literal, phrase=True, first=first), f"<{addr}>"]


def fold_field(name: str, tokens: list[str], *, separators: list[str] | None = None) -> str:
    """The value of field ``name`` from ``tokens``, folded (CRLF + space) so that no line
    is longer than :data:`MAX_LINE` where a token allows it.

    ``separators[i]`` goes between token ``i`` and ``i + 1`` (default one space; ``","``
    for address lists, followed by the space or the fold). The result has no
    leading space; the field name and ``": "`` count on the first line.
    """
    seps = separators if separators is not None else [""] * max(0, len(tokens) - 1)
    lines: list[str] = []
    line = ""
    used = len(name) + 2
    for i, token in enumerate(tokens):
        if i == 0:
            line = token
            continue
        joined = line + seps[i - 1]
        if used + len(joined) + 1 + len(token) <= MAX_LINE:
            line = f"{joined} {token}"
            continue
        lines.append(joined)
        used = 0
        line = f" {token}"
    lines.append(line)
    return "\r\n".join(lines)
