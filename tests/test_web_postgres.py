"""The page on PostgreSQL: login, queue, ticket, an action, search, live events."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, make_site

NOW = local(2026, 3, 10, 10, 0)
SAME = {"sec-fetch-site": "same-origin"}


@pytest.mark.postgres
def test_work_a_ticket_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    site = make_site(pg_url, tmp_path, now=NOW)
    ref = site.ticket("Számla hiba", from_name="Kovács Péter")
    client = TestClient(site.app(origin="http://testserver"), follow_redirects=False)
    assert (
        client.post("/login", data={"name": "anna", "password": PASSWORD}, headers=SAME).status_code
        == 303
    )
    assert "Számla hiba" in client.get("/").text
    page = client.get(f"/t/{ref}")
    assert page.status_code == 200
    version = page.text.split('name="version" value="', 1)[1].split('"', 1)[0]
    claimed = client.post(f"/t/{ref}/claim", data={"version": version}, headers=SAME)
    assert claimed.status_code == 303
    refused = client.post(f"/t/{ref}/done", data={"version": version}, headers=SAME)
    assert refused.status_code == 303  # POST-redirect-GET: a reload does not post again
    stale = client.get(refused.headers["location"])
    assert stale.status_code == 200
    assert "anna claimed the ticket" in stale.text
    found = client.get("/search?q=szamla+kovacs")
    assert f"#{ref}" in found.text
    site.db.dispose()
