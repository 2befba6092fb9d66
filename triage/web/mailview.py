"""A mail's HTML made harmless for the page; download names made safe.

Pure. The HTML and the parts come from the ticket desk
(:meth:`~triage.desk.TicketDesk.html`, :meth:`~triage.desk.TicketDesk.inline_part`).

The HTML is cleaned by nh3 (the Ammonia sanitizer): no script, style, event
handler, form, frame or ``javascript:`` link survives; relative URLs are
dropped. Images:

- ``cid:`` images (RFC 2392) of the message become ``data:`` URLs. The page
  shows the HTML in an ``<iframe sandbox>`` with an empty sandbox, an opaque
  origin that gets no cookies, so a link to our authenticated attachment route
  could not load there; a ``cid:`` naming no part of the message (forged) is
  dropped;
- remote images are removed unless the person asked for them for this message
  ("load images"); even then the frame's CSP allows images only.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

__all__ = ["MAX_INLINE_IMAGE", "CleanHtml", "InlinePart", "clean_html", "safe_filename"]

MAX_INLINE_IMAGE = 2 * 1024 * 1024
"""Bytes of one ``cid:`` image embedded as a data: URL; a larger one is left out."""

_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
"""Types shown inline (SVG is not: it can carry script)."""

_TAGS = set(nh3.ALLOWED_TAGS) - {"map", "area"}

InlinePart = Callable[[str], tuple[str, bytes] | None]
"""Looks up a ``cid:`` Content-ID in the message: (content type, bytes), or None."""


@dataclass(frozen=True)
class CleanHtml:
    """Sanitized HTML and what was held back.

    Attributes:
        html: safe to put in an empty-sandbox iframe.
        remote_images: how many remote images were removed (0 when they were kept).
    """

    html: str
    remote_images: int


def _data_url(found: tuple[str, bytes] | None) -> str | None:
    if found is None:
        return None
    kind, data = found
    if kind not in _IMAGE_TYPES or len(data) > MAX_INLINE_IMAGE:
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def clean_html(html: str, inline: InlinePart, *, remote_images: bool = False) -> CleanHtml:
    """Sanitize ``html`` (a message's HTML body) for the page.

    Args:
        inline: finds the message's part for a ``cid:`` URL.
        remote_images: keep ``http(s)`` images (the person clicked "load images").
    """
    removed = 0
    looked_up: dict[str, str | None] = {}

    def attribute(tag: str, name: str, value: str) -> str | None:
        nonlocal removed
        if name == "src":
            if tag != "img":
                return None
            low = value.strip().lower()
            if low.startswith("cid:"):
                cid = unquote(value.strip()[4:]).strip().strip("<>")
                if cid not in looked_up:
                    looked_up[cid] = _data_url(inline(cid)) if cid else None
                return looked_up[cid]
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
