"""Header fields: splitting a header block, RFC 2047 encoded-words, addresses, dates.

The stdlib ``email`` parsers are either slow (``policy.default``) or lossy on
broken input (``compat32`` replaces undecodable bytes); this module reads the
header block itself and decodes each value on demand:

- Field lines (RFC 5322 §2.2, §3.6); continuation lines are unfolded by dropping the
  line break (§2.2.3). A line that is neither a field nor a continuation ends the
  header block (a missing empty line is recorded as a defect).
- Raw 8-bit bytes in a value (RFC 6532 allows UTF-8) decode as UTF-8 when valid,
  else through :func:`triage.mail.charset.decode_text`'s fallback.
- Encoded-words (RFC 2047 §2-§6): adjacent words of the same charset are joined
  *before* their bytes are decoded, so a multi-byte character split across two
  words (B04) comes out whole; white space between encoded-words is dropped.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

from triage.domain import Address
from triage.mail.charset import decode_text
from triage.mail.sanitize import one_line

__all__ = [
    "MAX_HEADER_VALUE",
    "MAX_SUBJECT",
    "HeaderBlock",
    "RawHeader",
    "TextDecoder",
    "display_subject",
    "parse_date",
    "split_header_block",
]

MAX_HEADERS = 1000
"""Fields read per header block; more are ignored (recorded as a defect)."""

MAX_ADDRESS_FIELD = 65536
"""Bytes of one address field parsed (a longer To/Cc is a mail bomb, not a recipient list)."""
MAX_ADDRESSES = 1000
"""Addresses kept per field."""

_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:([^\n]*(?:\n[ \t]+[^\s][^\n]*)*)\n?")
"""A field (RFC 5322 §2.2): name, colon, value with its continuation lines (§2.2.3)."""
_ADDR_SPEC = r"[^<>\s\",;:()\\\[\]@]+@[^<>\s\",;:()\\\[\]@]+"
_ONE_ADDRESS = re.compile(
    r"\s*(?:(?:\"([^\"\\]*)\"|([^\"<>,;:\\()@\[\]]*?))\s*<("
    + _ADDR_SPEC
    + r")>|<?("
    + _ADDR_SPEC
    + r")>?)\s*"
)
"""One address without comments, escapes, groups or commas: the form nearly all mail uses."""
_DATE_YEAR = re.compile(r"\s*(?:[A-Za-z]+\s*,?\s*)?\d{1,2}[\s-]+[A-Za-z]+[\s-]+(\d+)\b")
"""The year as written in ``[day-of-week,] day month year`` (RFC 5322 §3.3)."""
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([qQbB])\?([^?]*)\?=")
_ADDRESS_TOKEN = re.compile(
    r'"(?P<quoted>(?:[^"\\]|\\.)*)"?'
    r"|<(?P<angle>[^>]*)>?"
    r"|(?P<sep>[,;:])"
    r"|(?P<word>=\?[^?\s]*\?[qQbB]\?[^?]*\?=|[^\"(<,;:=\s]+|=)"
    r"|(?P<space>\s+)",
    re.DOTALL,
)
"""One token of an address list; None at ``(`` (a comment, read by hand: they nest)."""
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


@dataclass(frozen=True, slots=True)
class RawHeader:
    """One header field as received: its name and its unfolded value bytes."""

    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """A header block and where its body starts.

    Attributes:
        headers: the fields in order.
        body_offset: index in the input where the body starts (len(input) if none).
        defects: what was wrong with the block's syntax.
    """

    headers: tuple[RawHeader, ...]
    body_offset: int
    defects: tuple[str, ...] = ()
    index: dict[str, list[bytes]] = field(default_factory=dict, repr=False)
    """Lowercased name -> values in order; built by :func:`split_header_block`."""

    def get(self, name: str) -> bytes | None:
        """The first field called ``name`` (case-insensitive), as bytes; None if absent."""
        values = self.index.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[bytes]:
        """Every field called ``name`` (case-insensitive), in order."""
        return list(self.index.get(name.lower(), ()))


def split_header_block(data: bytes, start: int = 0, end: int | None = None) -> HeaderBlock:
    """Read the header block of ``data[start:end]`` (a message or a MIME part).

    Never raises. CRLF and LF line ends are accepted. A field with its continuation
    lines is matched by one regular expression; a white-space-only line ends the block.
    """
    headers: list[RawHeader] = []
    defects: list[str] = []
    ignored = 0
    pos = start
    end = len(data) if end is None else end
    while pos < end:
        match = _FIELD.match(data, pos, end)
        if match is not None:
            pos = match.end()
            if len(headers) >= MAX_HEADERS:
                ignored += 1
                continue
            value = match.group(2)
            if b"\n" in value:
                value = value.replace(b"\r\n", b"").replace(b"\n", b"")
            headers.append(RawHeader(match.group(1).decode("ascii"), value.strip(b" \t\r")))
            continue
        eol = data.find(b"\n", pos, end)
        nxt = end if eol < 0 else eol + 1
        line = data[pos:nxt]
        if not line.strip():  # the empty line (white space tolerated) ends the block
            pos = nxt
            break
        if line[0] in b" \t":  # a continuation with no field before it
            defects.append("header block starts with a continuation line")
            pos = nxt
            continue
        defects.append("missing empty line between header block and body")
        break
    if ignored:
        defects.append(f"more than {MAX_HEADERS} header fields; {ignored} ignored")
    index: dict[str, list[bytes]] = {}
    for header in headers:
        index.setdefault(header.name.lower(), []).append(header.value)
    return HeaderBlock(tuple(headers), pos, tuple(defects), index)


def _b_decode(text: str) -> bytes | None:
    raw = text.encode("ascii", "ignore")
    if raw.strip(b"=") and not _BASE64_JUNK.sub(b"", raw):
        return None  # nothing of the base64 alphabet: not an encoded-word after all
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        cleaned = _BASE64_JUNK.sub(b"", raw)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return None


@dataclass
class TextDecoder:
    """Decodes header values for one message, remembering whether a charset was guessed.

    Attributes:
        default_charset: the deployment's fallback for undeclared 8-bit text.
        fallback: set once any value needed a guessed charset.
        defects: charset problems met, in order (no duplicates).
        truncated: what was cut to the limits (addresses past :data:`MAX_ADDRESSES`,
            a field past :data:`MAX_ADDRESS_FIELD`): the message is then parsed
            ``truncated_size``, with these sentences as its parse error.
    """

    default_charset: str = "windows-1250"
    fallback: bool = False
    defects: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    def _cut(self, what: str) -> None:
        if what not in self.truncated:
            self.truncated.append(what)

    def _note(self, what: str) -> None:
        if what not in self.defects:
            self.defects.append(what)

    def decode_bytes(self, data: bytes, label: str | None, where: str) -> str:
        """Decode ``data`` of charset ``label``; notes a fallback against ``where``."""
        result = decode_text(data, label, self.default_charset)
        if result.fallback:
            self.fallback = True
            self._note(f"{where}: charset {label or 'undeclared'} -> {result.charset}")
        return result.text

    def raw_value(self, value: bytes) -> str:
        """A raw header value as text (8-bit bytes decoded), encoded-words untouched."""
        if value.isascii():
            return value.decode("ascii")
        try:
            return value.decode("utf-8")  # RFC 6532: UTF-8 header fields are legitimate
        except UnicodeDecodeError:
            return self.decode_bytes(value, None, "8-bit header")

    def words(self, text: str) -> str:
        """Decode the RFC 2047 encoded-words in ``text`` (already unfolded).

        Adjacent words of one charset are joined before decoding; white space
        between two encoded-words is dropped (RFC 2047 §6.2). A word that cannot
        be decoded is kept as written.
        """
        if "=?" not in text:
            return text
        out: list[str] = []
        pending: bytearray = bytearray()
        pending_charset: str | None = None
        last_end = 0

        def flush() -> None:
            nonlocal pending, pending_charset
            if pending_charset is not None:
                out.append(self.decode_bytes(bytes(pending), pending_charset, "encoded-word"))
            pending = bytearray()
            pending_charset = None

        for match in _ENCODED_WORD.finditer(text):
            gap = text[last_end : match.start()]
            last_end = match.end()
            charset = match.group(1).partition("*")[0].lower()
            payload = match.group(3)
            decoded: bytes | None
            if match.group(2) in "qQ":
                decoded = binascii.a2b_qp(payload.encode("ascii", "ignore"), header=True)
            else:
                decoded = _b_decode(payload)
            if decoded is None:  # undecodable: keep the word as written
                flush()
                out.append(gap + match.group(0))
                continue
            if gap and (pending_charset is None or not gap.isspace()):
                flush()
                out.append(gap)
            # white space between two encoded-words is dropped (RFC 2047 §6.2)
            if pending_charset is not None and charset != pending_charset:
                flush()
            pending_charset = charset
            pending += decoded
        flush()
        out.append(text[last_end:])
        return "".join(out)

    def text(self, value: bytes) -> str:
        """An unstructured value (Subject, Comments) decoded, on one line (RFC 5322 §3.6.5)."""
        return one_line(self.words(self.raw_value(value)))

    def addresses(self, values: list[bytes], where: str = "address field") -> tuple[Address, ...]:
        """Address-list fields (To, Cc, Reply-To, From; RFC 5322 §3.4) parsed on the raw,
        undecoded value, then the display names decoded.

        Encoded-words (RFC 2047) are atoms while parsing: a comma, colon, ``@`` or
        ``<`` inside one (``=?utf-8?Q?M=C3=BCller,_Hans?=``, an encoded ``=0D=0ABcc:``)
        never splits the list nor makes an address. An entry with no address of its
        own (the ``Kovacs`` of an unquoted ``Kovacs, Odon <k@x>``) is part of the next
        entry's display name. An address with white space, ``=?`` or ``?=`` in it is
        never valid and is left out.

        Anything cut (more than :data:`MAX_ADDRESSES` addresses, a field longer than
        :data:`MAX_ADDRESS_FIELD` bytes) is noted in :attr:`truncated` against ``where``
        (the field's name), so a shortened recipient list is never silently taken for
        the whole.
        """
        return tuple(entry.address for entry in self._entries(values, where))

    def mailbox(self, values: list[bytes], where: str = "From") -> Address | None:
        """The one mailbox of a field that should hold one (From; RFC 5322 §3.6.2), or None.

        The first entry with an ``@`` in its address (a real addr-spec), else the first
        entry. Unquoted commas and encoded-words no longer split a display name into
        separate entries (see :meth:`addresses`), so the first entry is the author.
        """
        entries = self._entries(values, where)
        for entry in entries:
            if "@" in entry.address.addr:
                return entry.address
        return entries[0].address if entries else None

    def _entries(self, values: list[bytes], where: str) -> list[_Entry]:
        longest = max((len(v) for v in values), default=0)
        if longest > MAX_ADDRESS_FIELD:
            self._cut(
                f"{where}: a {longest:,}-byte field, only its first {MAX_ADDRESS_FIELD:,}"
                " bytes read for addresses"
            )
        raw = [self.raw_value(v[:MAX_ADDRESS_FIELD]) for v in values]
        result: list[_Entry] = []
        pairs = _address_pairs(raw)
        if len(pairs) > MAX_ADDRESSES:
            self._cut(f"{where}: {len(pairs):,} addresses, only the first {MAX_ADDRESSES:,} kept")
        for name, addr, angle in pairs[:MAX_ADDRESSES]:
            address = one_line(addr)
            if not _valid_address(address):
                continue
            decoded = Address(name=one_line(self.words(name))[:500], addr=address[:320])
            result.append(_Entry(decoded, angle))
        return result


@dataclass(frozen=True, slots=True)
class _Entry:
    address: Address
    angle: bool
    """Written in angle brackets (``Name <a@b>``, ``<a@b>``)."""


def _valid_address(address: str) -> bool:
    return (
        bool(address)
        and not any(ch.isspace() for ch in address)
        and "=?" not in address
        and "?=" not in address
        and not any(ch in address for ch in "<>,;")
    )


def _address_pairs(values: list[str]) -> list[tuple[str, str, bool]]:
    """(display name, address, in angle brackets) of each entry of address-list fields.

    The common one-address forms (``Name <a@b>``, ``"Name" <a@b>``, ``a@b``) are read
    by one regular expression; anything else by :func:`_scan_addresses`.
    """
    if not values:
        return []
    if len(values) == 1:
        match = _ONE_ADDRESS.fullmatch(values[0])
        if match is not None:
            if match.group(3) is not None:
                name = match.group(1) if match.group(1) is not None else match.group(2) or ""
                return [(name.strip(), match.group(3), True)]
            return [("", match.group(4), values[0].strip().startswith("<"))]
    return _scan_addresses(", ".join(values))


def _bare_address(words: str) -> tuple[str, str]:
    """(address, other words) of an entry written without brackets: its one word with an
    ``@`` (``luriem@alleg.edu The Liberalizer``); ("", "") when none or several."""
    parts = words.split()
    found = [w for w in parts if "@" in w]
    if len(found) != 1:
        return "", ""
    return found[0], " ".join(w for w in parts if w is not found[0])


def _scan_addresses(text: str) -> list[tuple[str, str, bool]]:
    """An address list (RFC 5322 §3.4) read leniently, token by token.

    Quoted strings (with ``\\`` escapes), comments (nested), angle brackets and
    RFC 2047 encoded-words are atoms; entries end at a top-level ``,`` or ``;``; a
    top-level ``:`` before any ``<`` ends a group name (``Team: a@b, c@d;``), which
    is dropped.

    An entry's address is its ``<...>`` (a route ``@a,@b:`` removed) and its display
    name the words before it, whatever they look like (``alice@x <bob@y>`` is Bob's
    address, shown as "alice@x"); ``a@b <Name>`` and ``a@b (Name)`` are the address
    ``a@b`` named "Name". A second ``<...>``, or one after ``a@b (comment)``, starts a
    new entry. An entry without brackets whose words hold no address is carried into
    the display name of the next entry with brackets (``Kovacs, Odon <k@x>``,
    ``K. Smith, PhD <k@x>``); if none follows, it is kept as written when it is one
    word (``MAILER-DAEMON``, a UUCP path), else dropped.
    """
    entries: list[tuple[str, str, bool]] = []
    raw: list[str] = []  # the words as written (quotes kept): a bare addr-spec
    shown: list[str] = []  # the words as a display name (quotes removed, comments kept)
    comments: list[str] = []
    angle: str | None = None
    carried: list[tuple[str, str, str]] = []  # (display words, raw words, comments)
    i, n = 0, len(text)

    def flush_carried() -> None:
        nonlocal carried
        for _shown, words, comment in carried:
            if words and not any(c.isspace() for c in words):
                entries.append((comment, words, False))
        carried = []

    def end_entry() -> None:
        nonlocal raw, shown, comments, angle, carried
        phrase = " ".join("".join(shown).split())
        comment = " ".join(" ".join(comments).split())
        if angle is not None:
            addr = angle.strip()
            if addr.startswith("@") and ":" in addr:  # obsolete route (RFC 5322 §4.4)
                addr = addr.rpartition(":")[2].strip()
            if carried:  # the pieces of an unquoted "Kovacs, Odon": empty ones dropped
                name = ", ".join(p for p in (*(c[0] for c in carried), phrase) if p.strip(", "))
            else:  # a quoted name keeps its commas ("," is a name a client may choose)
                name = phrase
            entries.append((name.strip(), addr, True))
            carried = []
        else:
            words = "".join(raw).strip()
            address, rest = _bare_address(words)
            if address:
                flush_carried()
                entries.append((comment or rest, address, False))
            elif phrase:
                carried.append((phrase, words, comment))
        raw, shown, comments, angle = [], [], [], None

    while i < n:
        token = _ADDRESS_TOKEN.match(text, i)
        if token is None:  # "(": a comment, nested comments allowed (RFC 5322 §3.2.2)
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
            comment = text[i + 1 : j - 1 if depth == 0 else j]
            comments.append(comment)
            shown.append(f"({comment})")
            i = j
            continue
        i = token.end()
        kind = token.lastgroup
        if kind == "angle":
            content = token.group("angle")
            bare = angle is None and _bare_address("".join(raw))[0]
            if angle is not None or (bare and comments):
                end_entry()  # "<a@b> <c@d>", "a@b (Name) <c@d>": two entries
            elif bare and "@" not in content:
                comments.append(content)  # "a@b <Name>": the brackets hold the name
                continue
            angle = content
        elif kind == "sep":
            if token.group() != ":":
                end_entry()
            elif angle is None:
                raw, shown, comments, carried = [], [], [], []  # a group name: dropped
        else:
            raw.append(token.group())
            if kind == "quoted":
                shown.append(_QUOTED_PAIR.sub(r"\1", token.group("quoted")))
            elif kind == "space":
                shown.append(" ")
            else:  # an encoded-word (an atom, whatever it holds) or a plain word
                shown.append(token.group())
    end_entry()
    flush_carried()
    return entries


def parse_date(value: str, *, not_after: datetime | None = None) -> datetime | None:
    """An RFC 5322 §3.3 date-time as an aware UTC datetime, or None when absent or absurd.

    Two-digit years are read as RFC 5322 §4.3 says (``02`` is 2002, ``99`` is 1999),
    three-digit years are added to 1900 (``124`` is 2024); a year written with four or
    more digits below 1000 (``0000``, ``0099``) is absurd.

    Absurd: fields out of range (B19: ``27:61``), a year before 1980 or after 2100,
    or (when ``not_after`` is given) more than a day later than ``not_after``.
    ``-0000`` and a missing zone are read as UTC.
    """
    if not value:
        return None
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        year, month, day, hour, minute, second = parts[:6]
        written = _DATE_YEAR.match(value)
        if written is not None:  # parsedate_tz reads any year below 100 as 19xx/20xx
            digits = written.group(1)
            if len(digits) == 3:  # RFC 5322 §4.3: a three-digit year is added to 1900
                year = 1900 + int(digits)
            elif len(digits) >= 4 and int(digits) < 1000:  # "0000", "0099": absurd
                return None
        offset = parts[9] or 0
        if not 1980 <= year <= 2100 or not -86400 < offset < 86400:
            return None
        second = min(second, 59)  # a leap second is still the same minute
        zone = timezone(timedelta(seconds=offset))
        result = datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError, TypeError, IndexError):
        return None
    if not_after is not None and result > not_after + timedelta(days=1):
        return None
    return result


MAX_SUBJECT = 998
"""Characters of the Subject kept for display, routing and the ticket (RFC 5322 §2.1.1's
line limit); a longer one is cut, noted as a defect, and stays whole in the raw message."""

MAX_HEADER_VALUE = 16384
"""Characters of one header field kept in :attr:`InboundMessage.headers` (rules read them)."""


def display_subject(value: bytes, decoder: TextDecoder) -> tuple[str, str]:
    """The Subject decoded and cut to :data:`MAX_SUBJECT` characters, and the defect
    sentence naming the cut ("" when nothing was cut).

    A 1 MB subject (a mail bomb, not a subject) is decoded once and never copied
    whole through language detection, rules, the classifier, the database and the
    page. (Decoded whole: a cut in the raw bytes could fall inside an encoded-word.)
    """
    text = decoder.text(value)
    if len(text) <= MAX_SUBJECT:
        return text, ""
    return text[:MAX_SUBJECT], (
        f"Subject: a {len(value):,}-byte field, its first {MAX_SUBJECT:,} characters kept"
        " (the whole is in the raw message)"
    )


def header_pairs(block: HeaderBlock, decoder: TextDecoder) -> tuple[tuple[str, str], ...]:
    """Every field as a decoded (name, value) pair, values on one line, each cut to
    :data:`MAX_HEADER_VALUE` characters."""
    return tuple((h.name, decoder.text(h.value)[:MAX_HEADER_VALUE]) for h in block.headers)
