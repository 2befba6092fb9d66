"""The web page in a real browser (Debian's Chromium through Playwright).

Each test fails on any console error (CSP violations included): see tests/browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import screenshot
from playwright.sync_api import expect
from support.tickets import local
from support.web import PASSWORD, Site, make_site, serve

NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    site = make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)
    site.ticket(
        "Számla hiba",
        queue="billing",
        priority="urgent",
        from_name="Kovács Péter",
        received_at=local(2026, 3, 9, 9, 0),
    )
    site.ticket("Időpont egyeztetés", queue="scheduling", from_name="Nagy Éva")
    site.ticket("Invoice copy please", queue="billing", assignee="anna", from_name="Ann Smith")
    return site


@pytest.fixture
def base(site: Site) -> Iterator[str]:
    """The served site's URL. Request it before ``page``/``pages``, so that the browser
    closes before the server stops (an open live stream would log a console error)."""
    with serve(site.app()) as url:
        yield url


def log_in(pg: Any, base: str, name: str = "anna") -> None:
    pg.goto(base + "/")
    expect(pg).to_have_url(re.compile(r"/login\?next="))
    pg.get_by_label(re.compile("Name|Név")).fill(name)
    pg.get_by_label(re.compile("Password|Jelszó")).fill(PASSWORD)
    pg.get_by_role("button", name=re.compile("Log in|Belépés")).click()
    expect(pg.locator("#rows")).to_be_visible()


def test_login_shows_the_queue_in_urgency_order(base: str, page: Any) -> None:
    log_in(page, base)
    refs = page.locator("#rows > li.row .ref")
    expect(refs).to_have_count(3)
    first = page.locator("#rows > li.row").first
    expect(first).to_contain_text("Számla hiba")  # breached urgent first
    expect(first).to_have_class(re.compile("breached"))
    expect(first.locator(".due")).to_contain_text("overdue by")
    screenshot(page, "queue")
    page.get_by_role("link", name="Mine").click()
    expect(page.locator("#rows > li.row")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Invoice copy please")


def test_a_wrong_password_shows_the_form_again_without_a_console_error(
    base: str, pages: Any
) -> None:
    page = pages.new()
    page.goto(base + "/")
    page.get_by_label(re.compile("Name|Név")).fill("anna")
    page.get_by_label(re.compile("Password|Jelszó")).fill("not her password")
    page.get_by_role("button", name=re.compile("Log in|Belépés")).click()
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    expect(page.get_by_label(re.compile("Name|Név"))).to_have_value("anna")
    expect(page.get_by_label(re.compile("Password|Jelszó"))).to_have_value("")
    assert "not her password" not in page.url
    assert pages.errors == []  # a 401 page would be "Failed to load resource"
    # and the right password still goes to the page first asked for
    page.get_by_label(re.compile("Password|Jelszó")).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Log in|Belépés")).click()
    expect(page.locator("#rows")).to_be_visible()


def test_keyboard_moves_through_the_queue_and_opens_help(base: str, page: Any) -> None:
    log_in(page, base)
    page.keyboard.press("j")
    expect(page.locator("#rows > li.row").nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("j")
    expect(page.locator("#rows > li.row").nth(1)).to_have_class(re.compile("selected"))
    page.keyboard.press("k")
    expect(page.locator("#rows > li.row").nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")


def test_shortcuts_can_be_turned_off(base: str, page: Any) -> None:
    log_in(page, base)
    page.goto(base + "/settings")
    page.get_by_label(re.compile("keyboard shortcuts")).uncheck()
    page.get_by_role("button", name="Save").click()
    page.goto(base + "/")
    page.keyboard.press("j")
    expect(page.locator("#rows > li.row.selected")).to_have_count(0)


def test_hungarian_page_with_business_time_countdowns(base: str, page: Any) -> None:
    log_in(page, base)
    page.goto(base + "/settings")
    page.get_by_label("Language").select_option("hu")
    page.get_by_role("button", name="Save").click()
    page.goto(base + "/")
    expect(page.get_by_role("button", name="Kilépés")).to_be_visible()
    expect(page.locator("#rows > li.row").first.locator(".due")).to_contain_text(
        "munkaidővel lejárt"
    )
    expect(page.locator("#rows")).to_contain_text("munkaidő van hátra")


def test_phone_sized_queue_fits_the_screen(base: str, pages: Any) -> None:
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    log_in(phone, base)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width}px"
    expect(phone.locator("#rows > li.row").first).to_be_visible()
    screenshot(phone, "queue-phone")


def test_search_without_accents_finds_hungarian_mail(base: str, page: Any) -> None:
    log_in(page, base)
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("szamla kovacs")  # typing in a field is not a shortcut
    page.keyboard.press("Enter")
    expect(page.locator("#rows > li.row")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Számla hiba")
    page.locator("#search").fill("#1002")
    page.locator("#search").press("Enter")
    expect(page.locator("h1")).to_contain_text("Időpont egyeztetés")
