"""Hostile mail on the page: nothing runs, nothing remote loads, downloads never render.

Crafted mails cover each trick named in issue 15 (script, event handlers,
``javascript:`` links, CSS tricks, a remote tracking pixel, a forged ``cid:``, a
5 MB HTML body, bidi overrides in the subject and the sender's name, an
attachment named ``../../x.html`` with a lying type); the SpamAssassin spam
folder of the shared corpus is run through the sanitizer as well.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import asdict
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import Pages
from playwright.sync_api import expect
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, Site, make_site, serve

from triage.mail.parse import parse_message
from triage.mail.parts import html_body, part_by_content_id
from triage.web.mailview import CleanHtml, clean_html

NOW = local(2026, 3, 10, 10, 0)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
RLO = "\u202e"
HOSTILE_HTML = f"""<html><head><style>body {{ display: none }}</style>
<script>window.parent.document.title = 'pwned'</script>
<meta http-equiv="refresh" content="0; url=https://evil.example/">
<base href="https://evil.example/"></head>
<body onload="alert(1)">
<p style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">Overlay</p>
<img src="https://tracker.example/pixel.gif?id=42" width="1" height="1">
<img src="cid:logo@example" alt="logo" id="logo">
<img src="cid:forged@elsewhere" alt="forged">
<img src="/relative/path.png" alt="relative">
<a href="javascript:alert(2)">click me</a>
<a href="https://example.com/ok">fine link</a>
<svg><script>alert(3)</script></svg>
<iframe src="https://evil.example/"></iframe>
<form action="https://evil.example/"><input name="p"></form>
<object data="https://evil.example/x.swf"></object>
<img src=x onerror="alert(4)">
<div style="background:url(https://tracker.example/bg.png)">styled</div>
{"<p>padding " + "x" * 60 + "</p>" * 0}
</body></html>"""


def hostile_mail(*, big: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"Admin {RLO}fdp.exe" <attacker@evil.example>'
    msg["To"] = "inbox@office.example"
    msg["Subject"] = f"Invoice {RLO}gpj.exe"
    msg["Message-ID"] = "<hostile@evil.example>"
    msg.set_content("Plain text part.")
    html = HOSTILE_HTML
    if big:
        html = html.replace("</body>", "<p>" + ("lorem ipsum " * 440_000) + "</p></body>")
    msg.add_alternative(html, subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@example>")
    msg.add_attachment(
        b"<html><script>alert(5)</script></html>",
        maintype="image",
        subtype="png",
        filename="../../x.html",
    )
    msg.add_attachment(
        b"MZ", maintype="application", subtype="pdf", filename=f"invoice_{RLO}fdp.exe"
    )
    return msg.as_bytes()


def store(site: Site, raw: bytes) -> int:
    parsed = parse_message(raw, received_at=NOW)
    return site.ticket(
        parsed.subject,
        from_name=parsed.from_.name if parsed.from_ else "",
        from_addr=parsed.from_.addr if parsed.from_ else "",
        body=parsed.body_text,
        raw=raw,
        attachments=tuple(asdict(a) for a in parsed.attachments),
    )


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _assert_harmless(html: str) -> None:
    """Parse the cleaned HTML as a browser would and check every element and attribute."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    banned = {"script", "style", "iframe", "object", "embed", "form", "base", "meta", "link"}
    for tag, attrs in parser.tags:
        assert tag not in banned, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{tag} {name}"
            assert name != "style", tag
            if name in ("src", "href", "action", "background", "srcset"):
                low = value.strip().lower()
                assert not low.startswith("javascript:"), value
                if name != "href":
                    assert low.startswith(("data:image/", "cid:")) or not low, (
                        f"{tag} {name}={value}"
                    )


def _clean(raw: bytes, *, remote_images: bool = False) -> CleanHtml | None:
    if raw.startswith(b"From "):  # an mbox envelope line of the corpus files
        raw = raw.partition(b"\n")[2]
    html = html_body(raw)
    if html is None:
        return None
    return clean_html(html, lambda cid: part_by_content_id(raw, cid), remote_images=remote_images)


def test_crafted_mail_is_sanitized() -> None:
    raw = hostile_mail()
    clean = _clean(raw)
    assert clean is not None
    _assert_harmless(clean.html)
    assert clean.remote_images == 1
    assert 'src="data:image/png;base64,' in clean.html  # the real cid: image, inline
    assert "forged@elsewhere" not in clean.html
    assert "https://example.com/ok" in clean.html
    loaded = _clean(raw, remote_images=True)
    assert loaded is not None
    assert 'src="https://tracker.example/pixel.gif?id=42"' in loaded.html
    assert "onerror" not in loaded.html


@pytest.mark.corpus
def test_the_corpus_spam_folder_is_sanitized(corpus_dir: Path) -> None:
    checked = 0
    folders = [corpus_dir / "spamassassin" / "spam", corpus_dir / "spamassassin" / "spam_2"]
    for path in sorted(p for folder in folders for p in folder.iterdir()):
        clean = _clean(path.read_bytes())
        if clean is None:
            continue
        _assert_harmless(clean.html)
        checked += 1
    assert checked > 500


def test_attachment_with_path_and_lying_type_is_only_ever_a_download(site: Site) -> None:
    ref = store(site, hostile_mail())
    client = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    assert client.get(f"/t/{ref}").status_code == 303
    client.post(
        "/login",
        data={"name": "anna", "password": PASSWORD},
        headers={"sec-fetch-site": "same-origin"},
    )
    page = client.get(f"/t/{ref}")
    link = re.search(r'href="(/t/\d+/m/\d+/a/\d+)" download><bdi>\.\./\.\./x\.html', page.text)
    assert link is not None
    assert "(image/png, 38 B)" in page.text  # a small part's size, never "0 KB"
    response = client.get(link.group(1))
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith('attachment; filename="x.html"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.content == b"<html><script>alert(5)</script></html>"
    anonymous = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    assert anonymous.get(link.group(1)).status_code == 401
    assert client.get(link.group(1)[:-1] + "99").status_code == 404


@pytest.fixture
def base(site: Site) -> Iterator[str]:
    with serve(site.app()) as url:
        yield url


@pytest.mark.slow
def test_hostile_mail_in_the_browser_runs_nothing_and_loads_nothing_remote(
    site: Site, base: str, pages: Pages
) -> None:
    ref = store(site, hostile_mail())
    big = store(site, hostile_mail(big=True))
    pg = pages.new()
    remote: list[str] = []
    pg.on(
        "request",
        lambda r: None if r.url.startswith((base, "data:", "about:")) else remote.append(r.url),
    )
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(base + f"/t/{ref}")
    pg.locator("input[name=name]").fill("anna")
    pg.locator("input[name=password]").fill(PASSWORD)
    pg.locator("form.card button[type=submit]").click()
    expect(pg.locator("h1")).to_contain_text("Invoice")
    expect(pg.locator("h1 bdi")).to_have_count(1)  # client text is isolated
    # and explicit overrides are dropped: "invoice_<RLO>fdp.exe" never reads "invoice_exe.pdf"
    assert RLO not in pg.locator("h1").inner_text()
    assert RLO not in pg.locator(".facts .client").inner_text()
    expect(pg.locator(".attachments")).to_contain_text("invoice_fdp.exe")
    pg.locator(".html-version summary").first.click()
    frame = pg.frame_locator(f"#html-{pg.locator('.msg').first.get_attribute('id')[1:]}")
    expect(frame.locator("img[alt=logo]")).to_be_visible()
    assert frame.locator("img[alt=logo]").evaluate("img => img.naturalWidth") == 1
    expect(frame.locator("text=fine link")).to_be_visible()
    # the page stays usable
    pg.get_by_role("button", name="Claim").click()
    expect(pg.locator("#flash")).to_have_text("You have the ticket.")
    pg.goto(base + f"/t/{big}")
    expect(pg.locator("h1")).to_contain_text("Invoice")
    pg.get_by_role("button", name="Claim").click()
    expect(pg.locator("#flash")).to_have_text("You have the ticket.")
    assert pg.title() != "pwned"
    assert dialogs == []
    assert remote == []
