"""Turning bytes of a declared (or undeclared) charset into text, without '?' or U+FFFD.

The order of trust (RFC 2045 §5.2 and RFC 2046 §4.1.2 give the label; real mail
often lies about it):

1. Pure ASCII bytes decode as ASCII whatever the label says (every charset we
   accept is an ASCII superset; UTF-16/32 and UTF-7 labels are honoured).
2. A known label decodes strictly. Labels are widened to the superset that real
   senders mean (WHATWG Encoding Standard): gb2312/gbk -> gb18030,
   iso-8859-1 -> windows-1252 (then latin-1), euc-kr -> cp949, shift_jis -> cp932,
   tis-620 -> cp874, big5 -> big5hkscs; iso-8859-2 -> windows-1250 when the bytes
   use 0x80-0x9F (C1 controls in iso-8859-2; quotes, dashes, Š ť ž in windows-1250).
   A single-byte label on bytes that are valid UTF-8 with multi-byte sequences is a
   mislabel: UTF-8 wins. Hungarian text under a Western label (ő ű read as õ û)
   is repaired when nothing but Hungarian letters occur and the language detector
   agrees; that counts as a guessed charset.
3. An unknown or missing label, or bytes the label cannot decode: strict UTF-8;
   then "mostly UTF-8" (valid multi-byte sequences with a few stray bytes, which
   are decoded one run at a time with the fallback charset); then the deployment
   default (windows-1250 for Hungarian mail) against windows-1252, scored by how
   many non-ASCII characters are letters or punctuation of European languages;
   then charset-normalizer over a fixed list of charsets seen in mail; finally
   latin-1, which decodes any byte.

Every step after 2 sets ``fallback=True`` (``InboundMessage.charset_fallback``).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import cache

__all__ = ["Decoded", "decode_text", "normalize_charset"]

_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "big5": "big5hkscs",
    "iso8859-9": "cp1254",
    "iso8859-1": "cp1252",
}
"""Codec name (as ``codecs.lookup`` spells it) -> the superset real senders mean."""

_EXTRA_ALIASES = {
    "x-gbk": "gb18030",
    "x-euc-cn": "gb18030",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "windows-874": "cp874",
    "x-sjis": "cp932",
    "x-mac-roman": "mac-roman",
    "x-mac-ce": "mac-latin2",
    "x-user-defined": "cp1252",
    "unicode-1-1-utf-8": "utf-8",
    "utf8mb4": "utf-8",
    "x-unicode20utf8": "utf-8",
    "ansi": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-1": "cp1252",
}

_NOT_TEXT = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "mbcs", "oem"}
)
"""Python codecs that are not mail charsets: decoding with them is refused."""

_UNICODE_WIDE = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
_NOT_ASCII_COMPATIBLE = _UNICODE_WIDE | {"utf-7"}

_SINGLE_BYTE_PREFIXES = ("cp12", "iso8859", "latin", "koi8", "mac-", "cp8", "cp43", "cp7", "cp874")

_DETECTOR_CHARSETS = [
    "utf_8",
    "cp1250",
    "cp1252",
    "iso8859_2",
    "cp1251",
    "koi8_r",
    "iso8859_5",
    "cp1253",
    "iso8859_7",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp874",
    "cp932",
    "euc_jp",
    "iso2022_jp",
    "gb18030",
    "big5hkscs",
    "cp949",
]
"""Charsets charset-normalizer may choose among: the ones real mail uses."""

# Letters and punctuation of the European languages triage expects (hu, en, de,
# fr, es, pt, it, pl, cs, ...): a decoding producing mostly these is plausible.
_PLAUSIBLE = frozenset(
    "áéíóöőúüűÁÉÍÓÖŐÚÜŰ"
    "àâäãåæçèêëìîïñòôõøùûÿÀÂÄÃÅÆÇÈÊËÌÎÏÑÒÔÕØÙÛŸßœŒ"
    "ąćęłńśźżĄĆĘŁŃŚŹŻčďěňřšťůžČĎĚŇŘŠŤŮŽ"
    "„“”‚‘’–—…•€«»°§©®™·¡¿\xa0×±µ¼½¾"
)
_PLAUSIBLE_MIN = 0.8


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text decoded from bytes.

    Attributes:
        text: the decoded text (no U+FFFD inserted by decoding).
        charset: the Python codec actually used (``"cp1250"``, ``"utf-8"``).
        fallback: True when the declared charset was missing, unknown or wrong
            and the charset was guessed.
    """

    text: str
    charset: str
    fallback: bool


@cache
def normalize_charset(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, widened to its superset; None if unknown.

    ``"gb2312"`` -> ``"gb18030"``, ``"windows-1250"`` -> ``"cp1250"``,
    ``"x-unknown"`` -> None. Labels naming non-text codecs (``base64``, ``zlib``,
    ``unicode_escape``) are unknown too.
    """
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    name = name.partition("*")[0]  # RFC 2231 language suffix: utf-8*hu
    if not name or len(name) > 40:
        return None
    name = _EXTRA_ALIASES.get(name, name)
    candidates = [name]
    if name.startswith("x-"):
        candidates.append(name[2:])
    for candidate in candidates:
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_TEXT:
            return None
        return _SUPERSETS.get(info.name, info.name)
    return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None


_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")


def _mostly_utf8(data: bytes, fallback: str) -> str | None:
    """Decode UTF-8 with a few stray bytes; each stray run decoded with ``fallback``.

    Returns None unless the bytes hold at least one valid multi-byte UTF-8
    sequence and the stray bytes are at most a tenth of the non-ASCII characters.
    """
    text = data.decode("utf-8", "surrogateescape")
    stray = sum(len(m) for m in _SURROGATE_RUN.findall(text))
    wide = sum(1 for ch in text if ord(ch) > 0x7F) - stray
    if wide <= 0 or stray > max(2, wide // 10):
        return None

    def repair(match: re.Match[str]) -> str:
        raw = match.group().encode("utf-8", "surrogateescape")
        return _strict(raw, fallback) or raw.decode("latin-1")

    return _SURROGATE_RUN.sub(repair, text)


def _plausibility(text: str) -> float:
    """Share of non-ASCII characters that are European letters or punctuation, standing
    alone or in pairs: double-byte CJK text read as a Latin charset gives long runs of
    accented letters ("°´ÕâÀï½øÈë"), which European words never have."""
    wide = 0
    plausible = 0
    run = 0
    for ch in text:
        if ord(ch) <= 0x7F:
            run = 0
            continue
        wide += 1
        run += 1
        if ch in _PLAUSIBLE and run <= 2:
            plausible += 1
    return plausible / wide if wide else 1.0


def _detect(data: bytes) -> tuple[str, str] | None:
    try:
        from charset_normalizer import from_bytes  # noqa: PLC0415 - imported only for the rare fallback

        best = from_bytes(data[:4096], cp_isolation=_DETECTOR_CHARSETS).best()
    except Exception:  # noqa: BLE001 - a detector failure means "no guess", never a crash
        return None
    if best is None:
        return None
    text = _strict(data, best.encoding)
    return (text, best.encoding) if text is not None else None


def _guess(data: bytes, default: str) -> Decoded:
    """Decode bytes whose charset is unknown (step 3 of the module docstring)."""
    text = _strict(data, "utf-8")
    if text is not None:
        return Decoded(text, "utf-8", fallback=True)
    default_codec = normalize_charset(default) or "cp1250"
    default_codec = _widened(default_codec, data)
    text = _mostly_utf8(data, default_codec)
    if text is not None:
        return Decoded(text, "utf-8", fallback=True)
    best: tuple[float, str, str] | None = None
    for codec in dict.fromkeys((default_codec, "cp1252")):
        candidate = _strict(data, codec)
        if candidate is None:
            continue
        score = _plausibility(candidate)
        if best is None or score > best[0]:
            best = (score, candidate, codec)
    if best is not None and best[0] >= _PLAUSIBLE_MIN:
        return Decoded(best[1], best[2], fallback=True)
    detected = _detect(data)
    if detected is not None:
        return Decoded(detected[0], detected[1], fallback=True)
    if best is not None:
        return Decoded(best[1], best[2], fallback=True)
    return Decoded(data.decode("latin-1"), "latin-1", fallback=True)


_C1_BYTES = re.compile(rb"[\x80-\x9f]")
_HU_MISREAD = str.maketrans("õûÕÛ", "őűŐŰ")
"""ő ű Ő Ű (0xF5 0xFB 0xD5 0xDB in iso-8859-2 and windows-1250) as Western charsets read them."""
_HU_LETTERS = frozenset("áéíóöúüÁÉÍÓÖÚÜõûÕÛ")
_HU_SAMPLE = 400


def _widened(codec: str, data: bytes) -> str:
    """The codec to decode ``data`` with: iso-8859-2 is read as windows-1250 when the
    bytes use 0x80-0x9F, which are C1 controls in iso-8859-2 but the quotes, dashes
    and Š ť ž of windows-1250 (as iso-8859-1 is read as windows-1252; WHATWG)."""
    if codec == "iso8859-2" and _C1_BYTES.search(data):
        return "cp1250"
    return codec


def _hungarian_misread(text: str) -> str:
    """Hungarian text in a Western charset (iso-8859-1/windows-1252 declared, but the bytes
    are iso-8859-2/windows-1250): its ő ű Ő Ű read as õ û Õ Û ("Sürgõs") are put back.

    Only when every non-ASCII letter is one Hungarian has in either charset (á é í ó ö ú
    ü, so no ã ç â ê ô à è ä of Portuguese, French or Estonian) and the language
    detector calls the repaired text Hungarian (ő and ű are Hungarian-only letters;
    "Põe o relatório" stays Portuguese, "sûr" French).
    """
    if not any(ch in text for ch in "õûÕÛ"):
        return text
    if any(ch.isalpha() and ord(ch) > 0x7F and ch not in _HU_LETTERS for ch in text):
        return text
    repaired = text.translate(_HU_MISREAD)
    first = min(i for i in (repaired.find(ch) for ch in "őűŐŰ") if i >= 0)
    sample = repaired[max(0, first - _HU_SAMPLE // 2) : first + _HU_SAMPLE // 2]
    try:
        from triage.mail.language import _detector  # noqa: PLC0415 - lingua, loaded on first use

        language = _detector().detect_language_of(sample)
    except Exception:  # noqa: BLE001 - no detector: leave the text as decoded
        return text
    if language is None or language.iso_code_639_1.name != "HU":
        return text
    return repaired


def _single_byte(codec: str) -> bool:
    return codec.startswith(_SINGLE_BYTE_PREFIXES)


def decode_text(data: bytes, label: str | None, default: str = "windows-1250") -> Decoded:
    """Decode ``data`` declared as charset ``label`` (None when undeclared).

    Args:
        data: the bytes, transfer encoding already removed.
        label: the MIME charset parameter or encoded-word charset, as written.
        default: the deployment's fallback charset for undeclared 8-bit text.

    Returns:
        :class:`Decoded`; never raises, never inserts U+FFFD.
    """
    codec = normalize_charset(label)
    if data.isascii() and codec not in _NOT_ASCII_COMPATIBLE:
        return Decoded(data.decode("ascii"), codec or "ascii", fallback=False)
    if codec is not None and codec != "ascii":
        wide = _widened(codec, data)
        text = _strict(data, wide)
        if text is None and wide != codec:  # bytes windows-1250 leaves undefined
            wide, text = codec, _strict(data, codec)
        codec = wide
        if text is None and codec == "cp1252":  # declared Western: latin-1 decodes every byte
            text, codec = data.decode("latin-1"), "latin-1"
        if text is not None:
            if _single_byte(codec):
                utf8 = _strict(data, "utf-8")
                if utf8 is not None:  # valid multi-byte UTF-8 under a single-byte label
                    return Decoded(utf8, "utf-8", fallback=True)
            if codec in {"cp1252", "latin-1"}:
                repaired = _hungarian_misread(text)
                if repaired is not text:
                    return Decoded(repaired, "cp1250", fallback=True)
            return Decoded(text, codec, fallback=False)
    return _guess(data, default)
