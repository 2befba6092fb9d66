"""Fixes from a fresh tester's notes: an over-long reply or note is refused by the
desk's documented limit (web page and CLI alike), "Why is this here?" does not
contradict itself, and the web audit trail names a priority change and a wake time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Update, select, update
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, Site, make_site

from triage.desk import MAX_BODY_BYTES, TicketDesk
from triage.errors import UserError
from triage.store.models import OutboxMail, RoutingDecision, TicketNote, User

SAME = {"sec-fetch-site": "same-origin"}
ORIGIN = "http://testserver"
NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


def _client(site: Site, name: str = "anna") -> TestClient:
    client = TestClient(site.app(origin=ORIGIN), base_url=ORIGIN, follow_redirects=False)
    response = client.post("/login", data={"name": name, "password": PASSWORD}, headers=SAME)
    assert "set-cookie" in response.headers
    return client


def _version(client: TestClient, ref: int) -> str:
    page = client.get(f"/t/{ref}")
    return page.text.split('name="version" value="', 1)[1].split('"', 1)[0]


def _desk(site: Site) -> TicketDesk:
    return TicketDesk(site.db, site.settings, clock=site.clock)


def test_the_desk_refuses_a_reply_or_note_over_its_limit(site: Site) -> None:
    ref = site.ticket()
    desk = _desk(site)
    with pytest.raises(UserError, match="over the limit of 1,048,576 bytes"):
        desk.reply(ref, "a" * (MAX_BODY_BYTES + 1), actor="anna")
    with pytest.raises(UserError, match="over the limit of 1,048,576 bytes"):
        desk.note(ref, "é" * (MAX_BODY_BYTES // 2 + 1), actor="anna")  # bytes, not characters
    with site.db.read_session() as session:
        assert session.scalars(select(OutboxMail)).all() == []
        assert session.scalars(select(TicketNote)).all() == []
    desk.note(ref, "ok " * 1000, actor="anna")  # a long but allowed note goes in


@pytest.mark.parametrize(
    ("size", "kept"),
    [(MAX_BODY_BYTES + 10, True), (5 * MAX_BODY_BYTES, False)],
    ids=["just-over", "far-over"],
)
def test_an_over_long_reply_on_the_web_gets_the_apps_refusal(
    site: Site, size: int, kept: bool
) -> None:
    ref = site.ticket()
    anna = _client(site)
    body = "x" * size
    refused = anna.post(
        f"/t/{ref}/reply", data={"version": _version(anna, ref), "body": body}, headers=SAME
    )
    assert refused.status_code == 303  # not Starlette's plain-text 400
    page = anna.get(refused.headers["location"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="error"' in page.text
    if kept:
        assert "over the limit of 1,048,576 bytes" in page.text
        assert "cut to the first 1 MiB" in page.text
        assert "x" * MAX_BODY_BYTES + "</textarea>" in page.text
    else:
        assert "too long to send or to keep here" in page.text
        assert "1 MiB" in page.text
    with site.db.read_session() as session:
        assert session.scalars(select(OutboxMail)).all() == []


def test_why_names_no_queue_choice_when_a_rule_only_set_the_priority(site: Site) -> None:
    ref = site.ticket("Ügyvédünk", queue="unsorted", priority="urgent")
    with site.db.session() as session:
        session.execute(
            update(RoutingDecision).values(decided_by="fallback", rules_matched=["legal-threat"])
        )
    anna = _client(site)
    page = anna.get(f"/t/{ref}").text
    assert "legal-threat" in page
    assert "No rule matched" not in page
    assert "No rule chose a queue and the model was unsure" in page
    with site.db.session() as session:
        session.execute(update_language("hu"))
    page = anna.get(f"/t/{ref}").text
    assert "Egyik szabály sem választott sort" in page


def update_language(language: str) -> Update:
    """Anna's page language set to ``language``."""
    return update(User).where(User.name == "anna").values(language=language)


def test_the_trail_names_a_priority_correction_and_a_wake_time(site: Site) -> None:
    ref = site.ticket(priority="normal")
    other = site.ticket("Second")
    desk = _desk(site)
    desk.move(ref, priority="urgent", actor="anna")
    desk.move(ref, queue="scheduling", priority="low", actor="anna")
    wake = NOW + timedelta(days=2)  # 12 March 2026 10:00 in Budapest (09:00 UTC)
    desk.wait(ref, until=wake, actor="anna")
    desk.wait(other, actor="anna")  # no alarm
    anna = _client(site)
    page = anna.get(f"/t/{ref}").text
    assert "anna changed the priority from normal to urgent" in page
    assert "and changed its priority from urgent to low" in page
    assert "to waiting until Thu 12 Mar 2026 10:00" in page
    rows = anna.get("/?view=waiting").text
    assert "paused (waiting until Thu 12 Mar 2026 10:00)" in rows
    assert "paused (waiting)" in rows  # the one without an alarm
    with site.db.session() as session:
        session.execute(update_language("hu"))
    page = anna.get(f"/t/{ref}").text
    assert "a prioritást normál helyett sürgős értékre állította" in page
    assert "eddig: 2026. márc. 12. (cs) 10:00" in page
    rows = anna.get("/?view=waiting").text
    assert "szünetel (várakozik eddig: 2026. márc. 12. (cs) 10:00)" in rows


def test_an_over_long_note_is_refused_in_hungarian_on_the_hungarian_page(site: Site) -> None:
    ref = site.ticket()
    anna = _client(site)
    with site.db.session() as session:
        session.execute(update(User).where(User.name == "anna").values(language="hu"))
    body = "x" * (MAX_BODY_BYTES + 10)
    refused = anna.post(
        f"/t/{ref}/note", data={"version": _version(anna, ref), "note": body}, headers=SAME
    )
    page = anna.get(refused.headers["location"]).text
    assert (
        "A megjegyzés 1\u00a0048\u00a0586 bájt, több a megengedett 1\u00a0048\u00a0576 bájtnál"
        " (1 MiB): nem került be semmi. Az alábbi szöveget az első 1 MiB után levágtuk."
    ) in page
    assert "over the limit" not in page
    with site.db.read_session() as session:
        assert session.scalars(select(TicketNote)).all() == []
