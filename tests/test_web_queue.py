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
    assert '<a href="/?view=all" rel="first" id="first-page">' in second.text
    assert 'id="first-page"' not in first.text
    # a mangled cursor shows the first page, not an error
    assert re.findall(r'id="row-(\d+)"', client.get("/?cursor=garbage").text) == refs
    rows = client.get("/queue/rows?view=mine")
    assert re.findall(r'id="row-(\d+)"', rows.text) == ["1061"]


def test_owners_land_on_the_escalated_tickets_and_warnings_are_not_escalations(
    tmp_path: Path,
) -> None:
    """Owners receive escalations only (DESIGN): their queue page opens on the tickets
    escalated to them (a missed deadline or a rule), not on the assistants' warnings."""
    from sqlalchemy import select  # noqa: PLC0415

    from triage.desk import TicketDesk, View  # noqa: PLC0415
    from triage.store.models import Escalation, Ticket  # noqa: PLC0415

    site = make_site(f"sqlite:///{tmp_path / 'q.db'}", tmp_path, now=NOW)
    breached = site.ticket("Breached one")
    ruled = site.ticket("Owner must see")
    warned = site.ticket("Only a warning")
    site.ticket("Quiet one")
    with site.db.session() as s:
        ids = {int(r.ref or 0): r.id for r in s.execute(select(Ticket.ref, Ticket.id))}
        for ref, kind in (
            (breached, "first_response"),
            (ruled, "rule"),
            (warned, "warning_first_response"),
        ):
            s.add(Escalation(ticket_id=ids[ref], kind=kind, cycle=0, reason="", created_at=NOW))
    client = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    client.post("/login", data={"name": "olga", "password": PASSWORD}, headers=SAME)
    page = client.get("/")
    assert sorted(re.findall(r'id="row-(\d+)"', page.text)) == sorted([str(breached), str(ruled)])
    assert re.search(r'Escalated <span class="count">2</span>', page.text)
    assert len(re.findall(r'id="row-(\d+)"', client.get("/?view=all").text)) == 4
    desk = TicketDesk(site.db, site.settings, clock=site.clock)
    assert desk.counts().views[View.ESCALATED].total == 2
    # an assistant's page still opens on every open ticket, and offers the view
    client.cookies.clear()
    client.post("/login", data={"name": "anna", "password": PASSWORD}, headers=SAME)
    anna = client.get("/")
    assert len(re.findall(r'id="row-(\d+)"', anna.text)) == 4
    assert 'href="/?view=escalated"' in anna.text
