"""The queue page through the desk: keyset pages, view counts, breached rows."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, make_site

NOW = local(2026, 3, 10, 10, 0)
SAME = {"sec-fetch-site": "same-origin"}


def test_the_queue_pages_with_a_cursor_and_counts_its_views(tmp_path: Path) -> None:
    site = make_site(f"sqlite:///{tmp_path / 'q.db'}", tmp_path, now=NOW)
    for i in range(60):
        site.ticket(f"Ticket {i}", received_at=NOW - timedelta(minutes=5 + i))
    site.ticket("Mine", assignee="anna")
    client = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    client.post("/login", data={"name": "anna", "password": PASSWORD}, headers=SAME)
    first = client.get("/")
    refs = re.findall(r'id="row-(\d+)"', first.text)
    assert len(refs) == 50
    assert "61 tickets in this view" in first.text
    assert re.search(r'Mine <span class="count">1</span>', first.text)
    link = re.search(r'href="(/\?view=all&amp;cursor=[^"]+)"', first.text)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&"))
    more = re.findall(r'id="row-(\d+)"', second.text)
    assert len(more) == 11
    assert not set(refs) & set(more)
    assert 'id="next-page"' not in second.text
    # a mangled cursor shows the first page, not an error
    assert re.findall(r'id="row-(\d+)"', client.get("/?cursor=garbage").text) == refs
    rows = client.get("/queue/rows?view=mine")
    assert re.findall(r'id="row-(\d+)"', rows.text) == ["1061"]
