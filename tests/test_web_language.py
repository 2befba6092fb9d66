"""The Hungarian page: the language chosen at login (or the browser's) for users who
chose none, refusals in the page's language, and decimal commas (tester's notes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, Site, make_site

from triage.store.models import RoutingDecision, User
from triage.web.auth import accepted_language

SAME = {"sec-fetch-site": "same-origin"}
ORIGIN = "http://testserver"
NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


def _client(site: Site, **headers: str) -> TestClient:
    return TestClient(
        site.app(origin=ORIGIN), base_url=ORIGIN, follow_redirects=False, headers=headers
    )


def _log_in(client: TestClient, name: str = "anna", lang: str | None = None) -> None:
    page = client.get("/login" + (f"?lang={lang}" if lang else ""))
    chosen = re.findall(r'name="lang" value="(\w+)"', page.text)
    data = {"name": name, "password": PASSWORD, "lang": chosen[0] if chosen else ""}
    assert client.post("/login", data=data, headers=SAME).status_code == 303


def _language(client: TestClient) -> str:
    return re.findall(r'<html lang="(\w+)"', client.get("/").text)[0]


def test_the_language_chosen_on_the_login_page_is_the_apps(site: Site) -> None:
    client = _client(site)
    _log_in(client, lang="hu")
    assert _language(client) == "hu"
    assert "Nyitott" in client.get("/").text
    english = _client(site)
    _log_in(english, "bela")
    assert _language(english) == "en"  # [web] default_language


def test_the_browsers_language_without_a_choice_and_a_saved_one_wins(site: Site) -> None:
    client = _client(site, **{"accept-language": "hu-HU,hu;q=0.9,en;q=0.8"})
    assert 'lang="hu"' in client.get("/login").text
    _log_in(client)
    assert _language(client) == "hu"
    with site.db.session() as session:  # a language saved in the settings wins
        session.execute(update(User).where(User.name == "anna").values(language="en"))
    assert _language(client) == "en"


def test_accept_language_is_read_by_quality() -> None:
    assert accepted_language("en;q=0.5, hu;q=0.8") == "hu"
    assert accepted_language("de-DE, en-GB;q=0.7, hu;q=0.3") == "en"
    assert accepted_language("de, fr") is None
    assert accepted_language("") is None


def test_refusals_on_the_hungarian_page_are_hungarian_with_the_details(site: Site) -> None:
    ref = site.ticket("Időpont")
    anna, bela = _client(site), _client(site)
    _log_in(anna, lang="hu")
    _log_in(bela, "bela")
    seen = re.findall(r'name="version" value="(\d+)"', anna.get(f"/t/{ref}").text)[0]
    assert bela.post(f"/t/{ref}/claim", data={"version": seen}, headers=SAME).status_code == 303
    fresh = re.findall(r'name="version" value="(\d+)"', anna.get(f"/t/{ref}").text)[0]
    where = anna.post(f"/t/{ref}/claim", data={"version": fresh}, headers=SAME).headers["location"]
    shown = anna.get(where).text
    assert f"A(z) #{ref} jegyet már bela vállalta." in shown
    assert "already claimed" not in shown
    data = {"version": fresh, "body": "  "}
    where = anna.post(f"/t/{ref}/reply", data=data, headers=SAME).headers["location"]
    shown = anna.get(where).text
    assert "A válasz üres: nem ment el semmi." in shown
    assert "nothing was sent" not in shown


def test_the_model_threshold_has_a_decimal_comma_in_hungarian(site: Site) -> None:
    ref = site.ticket("Számla")
    with site.db.session() as session:
        session.execute(
            update(RoutingDecision).values(
                decided_by="model",
                model_version="queue-1",
                probabilities=[["billing", 0.8333], ["records", 0.1]],
            )
        )
    client = _client(site)
    _log_in(client, lang="hu")
    text = client.get(f"/t/{ref}").text
    assert "küszöb: 0,6" in text
    assert "0,83" in text
    assert "küszöb: 0.6" not in text


def test_status_names_in_the_hungarian_trail_are_hungarian(site: Site) -> None:
    ref = site.ticket("Várakozás")
    client = _client(site)
    _log_in(client, lang="hu")
    seen = re.findall(r'name="version" value="(\d+)"', client.get(f"/t/{ref}").text)[0]
    data = {"version": seen, "until": ""}
    assert client.post(f"/t/{ref}/wait", data=data, headers=SAME).status_code == 303
    text = client.get(f"/t/{ref}").text
    assert re.findall(r"az állapotot[^<]*", text) == [
        "az állapotot új helyett várakozik értékre állította"
    ]  # not the stored names "new" and "waiting"
