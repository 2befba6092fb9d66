"""The web page's login, sessions, headers and cross-origin refusal (HTTP level)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.tickets import local
from support.web import PASSWORD, Site, make_site

from triage.accounts import disable_user, set_password
from triage.accounts.users import MAX_FAILURES_PER_NAME
from triage.web.security import CSP

ORIGIN = "http://testserver"
SAME = {"sec-fetch-site": "same-origin"}
NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


@pytest.fixture
def client(site: Site) -> TestClient:
    return TestClient(site.app(origin=ORIGIN), base_url=ORIGIN, follow_redirects=False)


def login(client: TestClient, name: str = "anna", password: str = PASSWORD) -> None:
    response = client.post("/login", data={"name": name, "password": password}, headers=SAME)
    assert response.status_code == 303, response.text
    assert "set-cookie" in response.headers  # a refused login is a 303 too


def test_every_page_needs_a_login(client: TestClient, site: Site) -> None:
    ref = site.ticket()
    page = client.get("/")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F"
    assert client.get(f"/t/{ref}").status_code in (303, 404)  # TICKET-PAGE
    assert client.get("/queue/rows").status_code == 401  # not a page: no redirect
    assert client.get("/queue/rows", headers={"hx-request": "true"}).status_code == 401
    assert client.post("/settings", data={"language": "hu"}, headers=SAME).status_code == 401


def test_login_opens_the_queue_and_sets_a_strict_cookie(client: TestClient, site: Site) -> None:
    site.ticket("Számla kérdés")
    response = client.post(
        "/login", data={"name": "anna", "password": PASSWORD, "next": "/?view=mine"}, headers=SAME
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/?view=mine"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("triage=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    # the cookie outlives a working day; the server ends an idle login (next tests)
    from triage.web.auth import COOKIE_MAX_AGE  # noqa: PLC0415

    assert f"Max-Age={COOKIE_MAX_AGE}" in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert "Számla kérdés" in page.text


def test_https_base_url_makes_the_cookie_secure_with_host_prefix(
    tmp_path: Path, site: Site
) -> None:
    client = TestClient(
        site.app(origin="https://desk.example.com"),
        base_url="https://desk.example.com",
        follow_redirects=False,
    )
    response = client.post("/login", data={"name": "anna", "password": PASSWORD}, headers=SAME)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-triage=")
    assert "Secure" in cookie
    assert "Domain" not in cookie


def test_wrong_password_and_unknown_name_get_the_same_answer(client: TestClient) -> None:
    wrong = client.post("/login", data={"name": "anna", "password": "nope nope nope"}, headers=SAME)
    unknown = client.post("/login", data={"name": "zoe", "password": PASSWORD}, headers=SAME)
    # POST-redirect-GET: the page the browser lands on answers 200 (no console error)
    assert wrong.status_code == unknown.status_code == 303
    assert "set-cookie" not in wrong.headers
    assert "nope" not in wrong.headers["location"]  # never the password
    for refused, name in ((wrong, "anna"), (unknown, "zoe")):
        page = client.get(refused.headers["location"])
        assert page.status_code == 200
        assert "Wrong name or password." in page.text
        assert f'value="{name}"' in page.text
        assert "nope" not in page.text


def test_failed_logins_are_throttled_per_name(client: TestClient, site: Site) -> None:
    for _ in range(MAX_FAILURES_PER_NAME):
        client.post("/login", data={"name": "anna", "password": "guess guess 1"}, headers=SAME)
    # now even the right password is refused until the window passes
    refused = client.post("/login", data={"name": "anna", "password": PASSWORD}, headers=SAME)
    assert refused.status_code == 303
    assert "set-cookie" not in refused.headers
    page = client.get(refused.headers["location"])
    assert page.status_code == 200
    assert "Too many failed logins." in page.text
    # another user is not locked out by anna's failures
    login(client, "bela")
    site.clock.advance(timedelta(minutes=16))  # type: ignore[attr-defined]
    login(client, "anna")


def test_a_guesser_elsewhere_does_not_lock_a_user_out_but_many_addresses_do(site: Site) -> None:
    """Failures lock a name from the guessing address only (anna logs in from her own);
    failures for one name from many addresses together lock it everywhere, until
    `triage user unlock` forgets them."""
    from triage.accounts import authenticate, unlock_user  # noqa: PLC0415
    from triage.accounts.users import MAX_FAILURES_PER_NAME_ANYWHERE  # noqa: PLC0415
    from triage.errors import LoginError  # noqa: PLC0415

    now = site.clock.now()

    def attempt(password: str, address: str) -> str:
        with site.db.session() as session:
            try:
                return authenticate(session, "anna", password, address=address, now=now).name
            except LoginError as exc:
                return "throttled" if exc.retry_after else "wrong"

    for _ in range(MAX_FAILURES_PER_NAME):
        assert attempt("guess guess 1", "203.0.113.9") == "wrong"
    assert attempt(PASSWORD, "203.0.113.9") == "throttled"
    assert attempt(PASSWORD, "198.51.100.7") == "anna"
    for n in range(MAX_FAILURES_PER_NAME_ANYWHERE):
        attempt("guess guess 2", f"192.0.2.{n % 250}")
    assert attempt(PASSWORD, "198.51.100.7") == "throttled"
    with site.db.session() as session:
        assert unlock_user(session, " Anna ") >= MAX_FAILURES_PER_NAME_ANYWHERE
    assert attempt(PASSWORD, "198.51.100.7") == "anna"


def test_open_redirect_after_login_is_refused(client: TestClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = client.post(
            "/login", data={"name": "anna", "password": PASSWORD, "next": target}, headers=SAME
        )
        assert response.headers["location"] == "/"
        client.post("/logout", headers=SAME)


def test_logout_revokes_the_session_on_the_server(client: TestClient) -> None:
    login(client)
    stolen = dict(client.cookies)
    assert client.post("/logout", headers=SAME).status_code == 303
    thief = TestClient(client.app, base_url=ORIGIN, follow_redirects=False, cookies=stolen)
    assert thief.get("/").status_code == 303


def test_password_change_and_disabling_end_sessions(client: TestClient, site: Site) -> None:
    login(client)
    assert client.get("/").status_code == 200
    with site.db.session() as session:
        set_password(session, "anna", "a new password here", now=NOW)
    assert client.get("/").status_code == 303
    login(client, "anna", "a new password here")
    with site.db.session() as session:
        disable_user(session, "anna")
    assert client.get("/").status_code == 303
    refused = client.post(
        "/login", data={"name": "anna", "password": "a new password here"}, headers=SAME
    )
    assert refused.status_code == 303
    assert "set-cookie" not in refused.headers
    assert "failed=wrong" in refused.headers["location"]


def test_sessions_expire_after_the_configured_idle_time(client: TestClient, site: Site) -> None:
    login(client)
    site.clock.advance(timedelta(hours=11))  # type: ignore[attr-defined]
    assert client.get("/").status_code == 200  # use renews it
    site.clock.advance(timedelta(hours=11))  # type: ignore[attr-defined]
    assert client.get("/").status_code == 200
    site.clock.advance(timedelta(hours=12, minutes=1))  # type: ignore[attr-defined]
    assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"sec-fetch-site": "same-origin"}, True),
        ({"sec-fetch-site": "cross-site"}, False),
        ({"sec-fetch-site": "same-site"}, False),  # a sibling subdomain is another origin
        ({"sec-fetch-site": "none"}, False),
        ({"origin": ORIGIN}, True),  # an older browser without Fetch Metadata
        ({"origin": "http://evil.example"}, False),
        ({"origin": "null"}, False),
        ({}, False),
        ({"sec-fetch-site": "cross-site", "origin": ORIGIN}, False),
    ],
)
def test_state_changes_from_another_origin_are_refused(
    client: TestClient, headers: dict[str, str], allowed: bool
) -> None:
    login(client)
    response = client.post("/settings", data={"language": "hu"}, headers=headers)
    if allowed:
        assert response.status_code == 303
    else:
        assert response.status_code == 403
        assert "refused" in response.text
    page = client.get("/settings")
    assert ('value="hu" selected' in page.text) is allowed


def test_login_form_itself_is_protected_from_other_origins(client: TestClient) -> None:
    response = client.post(
        "/login",
        data={"name": "anna", "password": PASSWORD},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_every_response_carries_the_strict_csp_and_headers(client: TestClient) -> None:
    login(client)
    for path in ("/", "/login", "/settings", "/static/app.js", "/nowhere", "/queue/rows"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path
        assert response.headers["x-frame-options"] == "DENY", path
    refused = client.post("/settings", headers={"sec-fetch-site": "cross-site"})
    assert refused.headers["content-security-policy"] == CSP


def test_pages_have_no_inline_script_or_style(client: TestClient, site: Site) -> None:
    site.ticket()
    login(client)
    for path in ("/", "/settings", "/login"):
        text = client.get(path).text
        assert "<script>" not in text
        assert " style=" not in text
        assert " onclick=" not in text


def test_language_is_per_user_with_the_configured_default(client: TestClient) -> None:
    login(client)
    assert "Log out" in client.get("/").text
    client.post("/settings", data={"language": "hu", "shortcuts": "on"}, headers=SAME)
    page = client.get("/")
    assert "Kilépés" in page.text
    assert '<html lang="hu">' in page.text


@pytest.mark.parametrize("path", ["/t/99999", "/t/abc", "/t/" + "9" * 30])
def test_a_missing_ticket_is_a_page_in_the_users_language_with_a_way_back(
    client: TestClient, path: str
) -> None:
    login(client)
    client.post("/settings", data={"language": "hu"}, headers=SAME)
    page = client.get(path)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Nincs ilyen jegy" in page.text
    assert '<a href="/">Vissza a sorhoz</a>' in page.text
    assert page.headers["content-security-policy"] == CSP
    posted = client.post(path + "/claim", data={}, headers=SAME)
    assert posted.status_code == 404
    assert "Nincs ilyen jegy" in posted.text


def test_the_claim_button_is_offered_only_to_assistants(client: TestClient, site: Site) -> None:
    """An owner (not in [team.assistants]) cannot claim: the page does not offer it."""
    ref = site.ticket()
    login(client, "olga")
    page = client.get(f"/t/{ref}")
    assert page.status_code == 200
    assert f'action="/t/{ref}/claim"' not in page.text
    assert f'action="/t/{ref}/assign"' in page.text
    client.cookies.clear()
    login(client, "anna")
    assert f'action="/t/{ref}/claim"' in client.get(f"/t/{ref}").text


def test_pages_are_never_cached_but_static_files_may_be(client: TestClient, site: Site) -> None:
    """Back after logout on a shared computer must not show a ticket from the cache."""
    ref = site.ticket()
    login(client)
    for path in ("/", f"/t/{ref}", "/settings", "/search?q=x", "/login"):
        assert client.get(path).headers["cache-control"] == "no-store", path
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")


@pytest.mark.parametrize("version", ["9" * 30, "-1", "x"])
def test_a_mangled_ticket_version_is_refused_as_stale_not_a_server_error(
    client: TestClient, site: Site, version: str
) -> None:
    ref = site.ticket()
    login(client)
    response = client.post(f"/t/{ref}/claim", data={"version": version}, headers=SAME)
    assert response.status_code == 303
    stale = client.get(response.headers["location"])
    assert stale.status_code == 200
    assert 'id="stale"' in stale.text
    from triage.tickets import get_ticket  # noqa: PLC0415

    with site.db.read_session() as session:
        assert get_ticket(session, ref).assignee is None


def test_a_cursor_past_64_bits_reads_the_first_page(client: TestClient, site: Site) -> None:
    import base64  # noqa: PLC0415

    site.ticket("Only one")
    login(client)
    text = f"2026-03-10T10:00:00+00:00|2|2026-03-10T10:00:00+00:00|{'9' * 30}"
    cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    page = client.get(f"/?cursor={cursor}")
    assert page.status_code == 200
    assert "Only one" in page.text
