"""Browser fixtures (WEB.md's recipe): Playwright driving Debian's Chromium, no downloads.

Every page a test opens fails the test on any console error or page error (a CSP
violation is a console error). In CI (``CI=true``) a missing Chromium fails the
tests; on a developer machine it skips them with the install command.

Import the fixtures into a test module with ``from browser import browser, page, ...``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
ARTEFACTS = Path(__file__).resolve().parents[1] / "test-artefacts"
"""Screenshots the browser tests keep (a person can look at what assistants see)."""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        reason = "no chromium: apt-get install --no-install-recommends chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must install it: run scripts/test)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


class Pages:
    """Opens browser contexts (one per assistant) that record console errors."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.errors: list[str] = []
        self.expected: list[str] = []
        self._contexts: list[Any] = []

    def expect_error(self, text: str) -> None:
        """Allow console errors containing ``text`` (e.g. the 409 of a refused action)."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        """Console errors no test allowed."""
        return [e for e in self.errors if not any(x in e for x in self.expected)]

    def new(self, **options: Any) -> Any:
        """A new page in its own context (its own cookies): one assistant."""
        # English pages: a user with no saved language gets the browser's (Accept-Language)
        options.setdefault("locale", "en-GB")
        options.setdefault("timezone_id", "Europe/Budapest")
        ctx = self.browser.new_context(**options)
        self._contexts.append(ctx)
        pg = ctx.new_page()
        pg.set_default_timeout(15_000)
        pg.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        pg.on("pageerror", lambda e: self.errors.append(str(e)))
        return pg

    def close(self) -> None:
        for ctx in self._contexts:
            ctx.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
    assert opened.unexpected() == [], opened.errors  # CSP violations and JS errors fail the test


@pytest.fixture
def page(pages: Pages) -> Any:
    return pages.new()


def screenshot(pg: Any, name: str) -> Path:
    """Keep a screenshot under ``test-artefacts/``."""
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


Login = Callable[[Any, str], None]
