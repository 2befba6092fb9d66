"""A refused form (409 changed meanwhile, 422 a bad value) is POST-redirect-GET:
reloading the page that shows the refusal does not send the form again, and the
typed text is still there (issue 15 leftover)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, Site, make_site

from triage.clock import FixedClock
from triage.store.models import OutboxMail, TicketNote
from triage.web.refusals import KEEP

SAME = {"sec-fetch-site": "same-origin"}
ORIGIN = "http://testserver"
NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


def _client(site: Site, name: str) -> TestClient:
    client = TestClient(site.app(origin=ORIGIN), base_url=ORIGIN, follow_redirects=False)
    response = client.post("/login", data={"name": name, "password": PASSWORD}, headers=SAME)
    assert response.status_code == 303
    assert "set-cookie" in response.headers  # a refused login is a 303 too
    return client


def _version(client: TestClient, ref: int) -> str:
    return re.findall(r'name="version" value="(\d+)"', client.get(f"/t/{ref}").text)[0]


def _count(site: Site, model: type) -> int:
    with site.db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_stale_reply_redirects_and_a_reload_shows_it_again_without_sending(
    site: Site,
) -> None:
    ref = site.ticket("Időpont")
    anna = _client(site, "anna")
    bela = _client(site, "bela")
    seen = _version(anna, ref)
    assert bela.post(f"/t/{ref}/claim", data={"version": seen}, headers=SAME).status_code == 303
    refused = anna.post(
        f"/t/{ref}/reply", data={"version": seen, "body": "Kedd 10 óra megfelel?"}, headers=SAME
    )
    assert refused.status_code == 303
    where = refused.headers["location"]
    assert re.fullmatch(rf"/t/{ref}\?refused=[\w-]{{20,}}", where), where
    for _reload in range(2):  # the browser's reload is this GET, not the POST
        page = anna.get(where)
        assert page.status_code == 200  # a 4xx would be a console error in the browser
        assert 'id="stale"' in page.text
        assert "bela claimed the ticket" in page.text
        assert "Kedd 10 óra megfelel?</textarea>" in page.text
    assert _count(site, OutboxMail) == 0
    # another login cannot read anna's refusal (nor her text): the plain ticket page
    other = bela.get(where)
    assert other.status_code == 200
    assert "Kedd 10" not in other.text
    assert 'id="stale"' not in other.text
    # nor can the token be carried to another ticket
    second = site.ticket("Másik")
    assert anna.get(f"/t/{second}?{where.split('?')[1]}").status_code == 200


def test_a_bad_value_redirects_with_its_error_and_the_typed_note(site: Site) -> None:
    ref = site.ticket()
    anna = _client(site, "anna")
    refused = anna.post(
        f"/t/{ref}/wait",
        data={"version": _version(anna, ref), "until": "next tuesday", "note": "félig írt"},
        headers=SAME,
    )
    assert refused.status_code == 303
    page = anna.get(refused.headers["location"])
    assert page.status_code == 200
    assert 'id="error"' in page.text
    assert "félig írt</textarea>" in page.text
    assert _count(site, TicketNote) == 0


def test_a_refusal_is_kept_for_a_while_only(site: Site) -> None:
    ref = site.ticket()
    anna = _client(site, "anna")
    refused = anna.post(f"/t/{ref}/claim", data={"version": "x"}, headers=SAME)
    where = refused.headers["location"]
    shown = anna.get(where)
    assert shown.status_code == 200
    assert 'id="stale"' in shown.text
    clock = site.clock
    assert isinstance(clock, FixedClock)
    clock.advance(KEEP + timedelta(seconds=1))
    expired = anna.get(where)
    assert expired.status_code == 200
    assert 'id="stale"' not in expired.text
    made_up = anna.get(f"/t/{ref}?refused=made-up")
    assert made_up.status_code == 200
    assert 'id="stale"' not in made_up.text
