"""Whether a stored mail has an HTML body: found from the raw mail when the row is
inserted, filled for older rows by migration 0016, and the ticket page offers "Show
the HTML version" only for mail that has one (issue 15 leftover)."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support.tickets import local, store_message
from support.web import PASSWORD, make_site

from triage.mail.parts import has_html_body, html_body
from triage.store import Database
from triage.store.db import alembic_config
from triage.store.models import Message

PLAIN = b"From: a@example.com\r\nSubject: plain\r\n\r\nJust text.\r\n"
ALTERNATIVE = (
    b"From: a@example.com\r\nSubject: both\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--b--\r\n"
)
HTML_ONLY = (
    b"From: a@example.com\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Sz\xc3\xa1mla</p>\r\n"
)
HTML_ATTACHED = (
    b"From: a@example.com\r\nSubject: attached\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
    b"--m\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
    b"--m\r\nContent-Type: text/html\r\n"
    b'Content-Disposition: attachment; filename="page.html"\r\n\r\n<p>x</p>\r\n--m--\r\n'
)


def test_has_html_body_agrees_with_html_body() -> None:
    for raw, expected in (
        (PLAIN, False),
        (ALTERNATIVE, True),
        (HTML_ONLY, True),
        (HTML_ATTACHED, False),  # an attached page is a download, not the body
        (b"", False),
    ):
        assert has_html_body(raw) is expected, raw[:40]
        assert (html_body(raw) is not None) is expected


def test_inserted_rows_know_and_the_migration_fills_older_ones(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        ids = {}
        with db.session() as s:
            for name, raw in (("plain", PLAIN), ("alternative", ALTERNATIVE)):
                m = store_message(s, message_id=f"<{name}@x>", received_at=local(2026, 3, 2, 9))
                s.execute(update(Message).where(Message.id == m.id).values(raw=raw))
                ids[name] = m.id
        with db.read_session() as s:
            # the INSERT hook saw store_message's own plain raw mail
            assert set(s.scalars(select(Message.has_html))) == {False}
        # older rows: the column is added and filled from each stored raw mail
        command.downgrade(alembic_config(db.engine), "0015")
        db.migrate()
        with db.read_session() as s:
            got = dict(s.execute(select(Message.id, Message.has_html)).all())
    finally:
        db.dispose()
    assert got == {ids["plain"]: False, ids["alternative"]: True}


def test_the_ticket_page_offers_the_html_version_only_when_there_is_one(
    tmp_path: Path,
) -> None:
    site = make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=local(2026, 3, 10, 10))
    plain = site.ticket("Plain one", raw=PLAIN)
    html = site.ticket("HTML one", raw=ALTERNATIVE)
    unknown = site.ticket("Not known")
    with site.db.session() as s:  # e.g. raw mail written after its INSERT
        s.execute(update(Message).where(Message.subject == "Not known").values(has_html=None))
    client = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    client.post(
        "/login",
        data={"name": "anna", "password": PASSWORD},
        headers={"sec-fetch-site": "same-origin"},
    )
    offered = {
        ref: bool(re.search(r'class="html-version"', client.get(f"/t/{ref}").text))
        for ref in (plain, html, unknown)
    }
    assert offered == {plain: False, html: True, unknown: True}
    site.db.dispose()
