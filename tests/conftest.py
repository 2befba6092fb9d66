"""Shared fixtures: real Dovecot, real aiosmtpd, SQLite and PostgreSQL databases, shared data.

Every later test module reuses these. Servers run on free loopback ports; the
Dovecot instance is shared by the session (stopping it costs ~2.5 s) and each
test gets its own mailbox user.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from browser import browser, page, pages  # noqa: F401 - fixtures of the browser tests
from support.dovecot import Dovecot, ImapAccount, missing_binaries
from support.postgres import postgres_unavailable_reason, throwaway_database
from support.smtp import SmtpServer

from triage.store import Database


@pytest.fixture(autouse=True)
def _logging_config_restored() -> Iterator[None]:
    """Put structlog's configuration and the root logger back after each test.

    A test that calls :func:`triage.logs.configure_logging` (at info level, say) would
    otherwise filter the debug events a later test captures with ``capture_logs``.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIAGE_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
CASES = SHARED / "cases"


def _missing(what: str) -> None:
    """Fail in CI (the test command installs everything), skip on a developer machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must install it: run the README's test command)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """../shared/corpus, or skip when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """../shared/cases, or skip when it is absent."""
    if not CASES.is_dir():
        pytest.skip(f"shared cases not found at {CASES}")
    return CASES


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the session, on free loopback ports."""
    missing = missing_binaries()
    if missing:
        _missing(
            f"Dovecot's IMAP server is not installed (apt-get install dovecot-imapd):"
            f" missing {', '.join(missing)}"
        )
    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A fresh, empty mailbox user on the session's Dovecot."""
    return dovecot.add_user()


@pytest.fixture
def smtp_server(dovecot: Dovecot) -> Iterator[SmtpServer]:
    """A real aiosmtpd server recording what it receives (STARTTLS offered, test CA)."""
    tls = dovecot.dir / "tls"
    server = SmtpServer(certfile=str(tls / "cert.pem"), keyfile=str(tls / "key.pem"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'triage.db'}"


@pytest.fixture(scope="session")
def _pg_reason() -> str | None:
    return postgres_unavailable_reason()


@pytest.fixture
def pg_url(_pg_reason: str | None) -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped afterwards; skipped without PostgreSQL."""
    if _pg_reason:
        pytest.skip(_pg_reason)
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind: SQLite always, PostgreSQL when it answers."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'triage.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """An open, migrated database of each kind."""
    db = Database.open(db_url)
    try:
        yield db
    finally:
        db.dispose()
