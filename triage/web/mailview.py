"""A stored mail for the page: its HTML made harmless, its attachments by hash.

Pure (bytes in, values out). The raw message is read with triage's own MIME
reader (:mod:`triage.mail.mime`, bounded against mail bombs).

The HTML is cleaned by nh3 (the Ammonia sanitizer): no script, style, event
handler, form, frame or ``javascript:`` link survives; relative URLs are
dropped. Images:

- ``cid:`` images (RFC 2392) of this message become ``data:`` URLs. The page
  shows the HTML in an ``<iframe sandbox>`` with an empty sandbox, an opaque
  origin that gets no cookies, so a link to our authenticated attachment route
  could not load there; a ``cid:`` naming no part of the message (forged) is
  dropped;
- remote images are removed unless the person asked for them for this message
  ("load images"); even then the frame's CSP allows images only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

from triage.mail.headers import TextDecoder
from triage.mail.html import html_charset
from triage.mail.mime import Limits, Part, decode_transfer, parse_structure

__all__ = [
    "MAX_INLINE_IMAGE",
    "CleanHtml",
    "MailPart",
    "clean_html",
    "find_attachment",
    "html_of",
    "safe_filename",
]

MAX_INLINE_IMAGE = 2 * 1024 * 1024
"""Bytes of one ``cid:`` image embedded as a data: URL; a larger one is left out."""

_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
"""Types shown inline (SVG is not: it can carry script)."""

_TAGS = set(nh3.ALLOWED_TAGS) - {"map", "area"}


@dataclass(frozen=True)
class MailPart:
    """One leaf of a message: its decoded bytes and what it says it is."""

    filename: str
    content_type: str
    content_id: str
    data: bytes

    @property
    def sha256(self) -> str:
        """Hex sha256 of the decoded bytes (the attachment's stored identity)."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class CleanHtml:
    """Sanitized HTML and what was held back.

    Attributes:
        html: safe to put in an empty-sandbox iframe.
        remote_images: how many remote images were removed (0 when they were kept).
    """

    html: str
    remote_images: int


def _leaves(raw: bytes) -> list[Part]:
    if raw.startswith(b"From "):  # an mbox envelope line, as the parser skips it
        raw = raw.partition(b"\n")[2]
    root = parse_structure(raw, TextDecoder(), Limits())
    return [p for p in root.walk() if not p.children and p.maintype != "multipart"]


def _content_id(part: Part) -> str:
    raw = part.block.get("content-id") or b""
    return raw.decode("latin-1").strip().strip("<>").strip()


def _part(part: Part) -> MailPart:
    return MailPart(
        filename=part.filename,
        content_type=part.content_type,
        content_id=_content_id(part),
        data=decode_transfer(part),
    )


def html_of(raw: bytes) -> str | None:
    """The message's HTML body (the first text/html part that is not an attachment)."""
    for part in _leaves(raw):
        if part.content_type == "text/html" and part.disposition != "attachment":
            data = decode_transfer(part)
            return TextDecoder().decode_bytes(
                data, part.charset or html_charset(data), "text/html body"
            )
    return None


def find_attachment(raw: bytes, sha256: str) -> MailPart | None:
    """The part of ``raw`` whose decoded bytes hash to ``sha256``; None when none does."""
    for part in _leaves(raw):
        found = _part(part)
        if found.sha256 == sha256:
            return found
    return None


def _inline_images(raw: bytes) -> dict[str, str]:
    """Content-ID (lowercased) -> data: URL, for the message's inline images."""
    out: dict[str, str] = {}
    for part in _leaves(raw):
        cid = _content_id(part).lower()
        if not cid or part.content_type not in _IMAGE_TYPES:
            continue
        data = decode_transfer(part)
        if len(data) <= MAX_INLINE_IMAGE:
            out[cid] = f"data:{part.content_type};base64,{base64.b64encode(data).decode()}"
    return out


def clean_html(html: str, raw: bytes, *, remote_images: bool = False) -> CleanHtml:
    """Sanitize ``html`` (the HTML body of message ``raw``) for the page.

    Args:
        remote_images: keep ``http(s)`` images (the person clicked "load images").
    """
    inline = _inline_images(raw) if "cid:" in html.lower() else {}
    removed = 0

    def attribute(tag: str, name: str, value: str) -> str | None:
        nonlocal removed
        if name == "src":
            if tag != "img":
                return None
            low = value.strip().lower()
            if low.startswith("cid:"):
                return inline.get(unquote(value.strip()[4:]).strip("<>").lower())
            if low.startswith(("http://", "https://", "//")):
                if remote_images and not low.startswith("//"):
                    return value
                removed += 1
                return None
            return None  # relative or other schemes: nothing to load
        if name == "href" and tag == "a":
            low = value.strip().lower()
            return value if low.startswith(("http://", "https://", "mailto:")) else None
        return value

    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "template", "noscript"},
        url_schemes={"http", "https", "mailto", "cid"},
        attribute_filter=attribute,
        link_rel="noopener noreferrer nofollow",
    )
    return CleanHtml(html=cleaned, remote_images=removed)


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|]+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A download name without directories, control or bidi characters: ``../../x.html``
    becomes ``x.html``; an empty result becomes ``fallback``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _BIDI.sub("", _UNSAFE_NAME.sub("_", base)).strip(" .")
    return base[:200] or fallback
