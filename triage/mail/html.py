"""HTML bodies to readable text, with inscriptis.

Rendering follows a browser's default style sheet (inscriptis' strict profile)
with mail-specific changes: ``<p>`` has no blank lines around it (Outlook and
most mail clients write ``p {margin: 0}``, and HTML mail uses one ``<p>`` per
line); ``<hr>`` breaks the line (clients separate the quoted reply with it);
``<head>``, ``<title>``, ``<style>`` and ``<script>`` are dropped (B11).
"""

from __future__ import annotations

import re
from html import unescape

from inscriptis import Inscriptis
from inscriptis.css_profiles import STRICT_CSS_PROFILE
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from lxml.etree import ParserError
from lxml.html import HTMLParser, document_fromstring

__all__ = ["MAX_HTML", "html_charset", "html_to_text"]

MAX_HTML = 512 * 1024
"""Characters of HTML converted; the rest of a larger body is not read."""

_CSS = dict(STRICT_CSS_PROFILE)
_CSS["p"] = HtmlElement(display=Display.block, margin_before=0, margin_after=0)
_CSS["hr"] = HtmlElement(display=Display.block, margin_before=1)  # replies are split at <hr>
for _hidden in ("head", "title", "style", "script", "noscript", "template", "xml", "o:p"):
    _CSS[_hidden] = HtmlElement(display=Display.none)
_CONFIG = ParserConfig(css=_CSS, display_links=False, display_images=False)

_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{1,40})""", re.IGNORECASE
)
_PARSER = HTMLParser(huge_tree=True)
"""libxml2 stops reading below 256 nesting levels unless told otherwise: everything after
the deep part of the document was lost (``<blockquote>`` * 300 in a long reply chain)."""
_XML_DECLARATION = re.compile(r"^<\?xml [^>]*>")
_TAGS = re.compile(r"<[^>]{0,2000}>")
_LEADING = re.compile(r"^[ \t]+", re.MULTILINE)


def html_charset(data: bytes) -> str | None:
    """The charset a ``<meta>`` tag declares in the first 4 KB of an HTML body, if any."""
    match = _META_CHARSET.search(data, 0, 4096)
    return match.group(1).decode("ascii") if match else None


def _render(html: str) -> str:
    """inscriptis' ``get_text`` on a tree parsed without libxml2's depth limit."""
    html = _XML_DECLARATION.sub("", html.strip(), count=1)
    try:
        tree = document_fromstring(html, parser=_PARSER)
    except ParserError:
        tree = document_fromstring("<pre>" + html + "</pre>", parser=_PARSER)
    return str(Inscriptis(tree, _CONFIG).get_text())


def html_to_text(html: str) -> tuple[str, str]:
    """Readable text of an HTML document, and a defect ("" when none).

    Lines lose the indentation the renderer adds; nesting deeper than libxml2's
    default 256 levels is read too (``huge_tree``); when inscriptis fails (deeper
    than Python's recursion allows), tags are stripped instead and the failure is
    returned as the defect.
    """
    if len(html) > MAX_HTML:
        html = html[:MAX_HTML]
    if not html.strip():
        return "", ""
    try:
        text = _render(html)
        defect = ""
    except Exception as exc:  # noqa: BLE001 - a third-party renderer must not fail the parse
        text = unescape(_TAGS.sub(" ", html))
        defect = f"HTML conversion failed ({type(exc).__name__}); tags stripped"
    return _LEADING.sub("", text.replace("\xa0", " ")), defect
