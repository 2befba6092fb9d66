"""A UID the server lists but does not deliver is never skipped (issue 12 point 1).

Some servers (Exchange Online among them) now and then answer a FETCH without
one of the messages asked for. A loopback proxy between triage and the real
Dovecot (tests/support/proxy.py) injects that fault and its neighbours: no
``BODY[]``, ``BODY[] NIL``, an empty literal, the same UID twice (equal or
different bodies), a UID never asked for, an unsolicited flags-only FETCH, a
FETCH answered NO with part of the data, an RFC822.SIZE answer leaving a UID
out, a literal cut short by a dropped connection, and a message expunged
between the search and the fetch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import TicketPipeline, message, settings_for
from support.proxy import (
    FaultProxy,
    Response,
    Rule,
    answer_no,
    cut_in_literal,
    drop_fetch,
    duplicate_fetch,
    inject_before,
    replace_body,
    strip_body,
)

from triage.config import Settings
from triage.services.intake import FolderResult, Poller
from triage.services.status import Status, read_status
from triage.store import Database
from triage.store.models import Folder, Message, MissingUid, Ticket

pytestmark = pytest.mark.imap

ARRIVED = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    database = Database.open(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def proxy(imap_account: ImapAccount) -> Iterator[FaultProxy]:
    with FaultProxy(imap_account.host, imap_account.port) as p:
        yield p


def _settings(
    account: ImapAccount, url: str, tmp_path: Path, proxy: FaultProxy, **over: Any
) -> Settings:
    return settings_for(account, url, tmp_path, port=proxy.port, missing_retry=0.05, **over)


def _fill(dovecot: Dovecot, account: ImapAccount, count: int) -> list[bytes]:
    raws = [message(n) for n in range(1, count + 1)]
    client = dovecot.client(account)
    try:
        for raw in raws:
            client.append("INBOX", raw, flags=(), msg_time=ARRIVED)
    finally:
        client.logout()
    return raws


def _rows(db: Database) -> list[Message]:
    with db.session() as s:
        return list(s.scalars(select(Message).order_by(Message.uid)).all())


def _folder(db: Database) -> Folder:
    with db.session() as s:
        return s.scalars(select(Folder)).one()


def _missing_rows(db: Database) -> list[MissingUid]:
    with db.session() as s:
        return list(s.scalars(select(MissingUid).order_by(MissingUid.uid)).all())


def _status(db: Database, settings: Settings) -> Status:
    with db.read_session() as s:
        return read_status(s, datetime.now(UTC), watched=["INBOX"])


def _poll(poller: Poller) -> FolderResult:
    [result] = poller.poll_once()
    assert result.error == "", result.error
    assert result.report is not None
    return result


def _poll_until_due(poller: Poller, db: Database) -> FolderResult:
    """One more pass once the retry of every recorded missing UID is due."""
    import time  # noqa: PLC0415 - only here: waiting for a wall-clock retry time

    for row in _missing_rows(db):
        wait = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait + 0.01)
    return _poll(poller)


def test_a_uid_left_out_of_the_fetch_answer_is_retried_and_the_mark_waits_below_it(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    raws = _fill(dovecot, imap_account, 5)
    rule = proxy.add(drop_fetch(3))
    settings = _settings(imap_account, sqlite_url, tmp_path, proxy)
    poller = Poller(settings, db, pipeline=TicketPipeline())

    with capture_logs() as logs:
        first = _poll(poller)
    assert rule.hits == 1
    assert first.report is not None
    assert first.report.stored == 4
    assert first.report.missing == (3,)
    assert [r.uid for r in _rows(db)] == [1, 2, 4, 5]
    # the high-water mark never passes the UID that was listed and not delivered
    assert _folder(db).last_uid == 2
    [record] = _missing_rows(db)
    assert (record.uid, record.attempts, record.message_id) == (3, 1, None)
    assert record.reason == "the FETCH answer left it out"
    missed = [e for e in logs if e["event"] == "message_missing"]
    assert missed[0]["uid"] == 3
    assert missed[0]["log_level"] == "warning"
    # triage status is unhealthy meanwhile, and says which UID waits
    health = _status(db, settings)
    assert not health.healthy
    assert health.folders[0].missing == 1
    assert "UID 3 listed by the server but not delivered" in health.folders[0].last_error

    # the next pass, once the UID's own back-off has passed, fetches it (alone) and
    # stores it; the mark catches up over 4 and 5, which are not fetched again
    fetches = proxy.count("FETCH")
    with capture_logs() as logs:
        second = _poll_until_due(poller, db)
    assert second.report is not None
    assert second.report.stored == 1
    assert second.report.missing == ()
    assert proxy.count("FETCH") - fetches == 1  # UID 3 alone; 4 and 5 are skipped
    rows = _rows(db)
    assert [r.uid for r in rows] == [1, 2, 3, 4, 5]
    assert [r.raw for r in rows] == raws
    assert _folder(db).last_uid == 5
    assert _missing_rows(db) == []
    assert any(e["event"] == "message_recovered" and e["uids"] == [3] for e in logs)
    health = _status(db, settings)
    assert health.healthy, health.folders
    # and nothing was stored twice: the pipeline saw each message once
    assert len(poller.intake.pipeline.calls) == 5  # type: ignore[attr-defined]


def test_a_uid_never_delivered_becomes_a_placeholder_after_the_last_attempt(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    _fill(dovecot, imap_account, 3)
    proxy.add(drop_fetch(2, times=None))
    settings = _settings(imap_account, sqlite_url, tmp_path, proxy, missing_attempts=3)
    poller = Poller(settings, db, pipeline=TicketPipeline())

    reports = [_poll(poller).report]
    reports.append(_poll_until_due(poller, db).report)
    assert [r.missing for r in reports if r] == [(2,), (2,)]
    assert _folder(db).last_uid == 1
    assert _missing_rows(db)[0].attempts == 2
    with capture_logs() as logs:
        last = _poll_until_due(poller, db).report
    assert last is not None
    assert last.errors == 1
    assert last.placeholders == 1
    assert last.missing == ()
    assert any(e["event"] == "message_undelivered" and e["attempts"] == 3 for e in logs)

    rows = _rows(db)
    assert [r.uid for r in rows] == [1, 2, 3]
    placeholder = rows[1]
    assert placeholder.raw == b""
    assert placeholder.parse_status == "error"
    assert "did not deliver it in 3 attempts" in placeholder.parse_error
    assert "the FETCH answer left it out" in placeholder.parse_error
    assert "UID 2" in placeholder.subject
    assert placeholder.message_id_synthetic
    # received when it was first missed: the SLA clock runs from then
    [record] = _missing_rows(db)
    assert placeholder.received_at == record.first_missed_at
    assert record.message_id == placeholder.id
    assert _folder(db).last_uid == 3
    with db.session() as s:
        ticket = s.get_one(Ticket, placeholder.ticket_id)
        assert ticket.queue == "fallback"

    # status stays unhealthy until someone has dealt with the placeholder's ticket
    health = _status(db, settings)
    assert health.folders[0].undelivered == 1
    assert health.folders[0].missing == 0
    assert not health.healthy
    with db.session() as s:
        s.get_one(Ticket, placeholder.ticket_id).status = "solved"
    assert _status(db, settings).healthy

    # later passes neither retry it nor store it again
    _poll(poller)
    assert len(_rows(db)) == 3


def test_a_message_expunged_between_search_and_fetch_is_not_retried(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    _fill(dovecot, imap_account, 3)

    def expunge(_response: Response) -> None:
        # another client deletes UID 2 while our FETCH is under way
        other = dovecot.client(imap_account)
        try:
            other.select_folder("INBOX")
            other.delete_messages([2])
            other.expunge()
        finally:
            other.logout()

    rule = proxy.add(drop_fetch(2))
    rule.on_hit = expunge
    poller = Poller(_settings(imap_account, sqlite_url, tmp_path, proxy), db)

    with capture_logs() as logs:
        report = _poll(poller).report
    assert report is not None
    assert report.vanished == 1
    assert report.missing == ()
    assert [r.uid for r in _rows(db)] == [1, 3]
    assert _folder(db).last_uid == 3
    assert _missing_rows(db) == []
    assert any(e["event"] == "message_vanished" and e["uid"] == 2 for e in logs)


def _size_answer_without(uid: int) -> Rule:
    """Drop ``uid``'s response from the RFC822.SIZE answer (not from the body answer)."""
    return Rule(lambda r: r.fetch_uid == uid and not r.has_body, lambda _r: [])


NEIGHBOURS: dict[str, Any] = {
    "no BODY[] (flags only)": lambda: [strip_body(2)],
    "BODY[] NIL": lambda: [replace_body(2, b"NIL")],
    "empty literal": lambda: [replace_body(2, b"{0}\r\n")],
    "two different bodies": lambda: [duplicate_fetch(2, second=b"Subject: forged\r\n\r\nx\r\n")],
    "NO with part of the data": lambda: [drop_fetch(2), answer_no("FETCH", times=2)],
}


@pytest.mark.parametrize("fault", list(NEIGHBOURS))
def test_a_body_not_delivered_whole_is_retried_like_a_missing_uid(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    fault: str,
) -> None:
    raws = _fill(dovecot, imap_account, 3)
    for rule in NEIGHBOURS[fault]():
        proxy.add(rule)
    poller = Poller(_settings(imap_account, sqlite_url, tmp_path, proxy), db)

    first = _poll(poller).report
    assert first is not None
    assert first.missing == (2,)
    assert _folder(db).last_uid == 1
    assert _missing_rows(db)[0].attempts == 1
    second = _poll_until_due(poller, db).report
    assert second is not None
    assert second.missing == ()
    rows = _rows(db)
    assert [r.raw for r in rows] == raws  # the real message, never a forged or empty one
    assert _folder(db).last_uid == 3
    assert _missing_rows(db) == []


FORGED = b"Subject: not yours\r\n\r\nx\r\n"
HARMLESS: dict[str, Any] = {
    "the same response twice": lambda: [duplicate_fetch(2)],
    "a UID never asked for": lambda: [
        inject_before("FETCH", b"* 9 FETCH (UID 99 BODY[] {%d}\r\n%s)\r\n" % (len(FORGED), FORGED))
    ],
    "an unsolicited flags-only FETCH": lambda: [
        inject_before("FETCH", b"* 2 FETCH (FLAGS (\\Seen))\r\n", times=None)
    ],
    "the size answer leaves a UID out": lambda: [_size_answer_without(2)],
}


@pytest.mark.parametrize("fault", list(HARMLESS))
def test_answers_with_extra_or_repeated_items_store_each_asked_message_once(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    fault: str,
) -> None:
    raws = _fill(dovecot, imap_account, 3)
    rules = [proxy.add(rule) for rule in HARMLESS[fault]()]
    poller = Poller(_settings(imap_account, sqlite_url, tmp_path, proxy), db)

    report = _poll(poller).report
    assert all(rule.hits for rule in rules)
    assert report is not None
    assert report.stored == 3
    assert report.missing == ()
    rows = _rows(db)
    assert [r.uid for r in rows] == [1, 2, 3]
    assert [r.raw for r in rows] == raws
    assert _folder(db).last_uid == 3


def test_a_literal_cut_short_by_a_dropped_connection_stores_nothing_of_the_batch(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    raws = _fill(dovecot, imap_account, 3)
    proxy.add(cut_in_literal(2))
    poller = Poller(_settings(imap_account, sqlite_url, tmp_path, proxy), db)

    [failed] = poller.poll_once()
    assert "connection dropped" in failed.error or "connection failed" in failed.error
    assert _rows(db) == []  # no half message, and UID 1 not stored past a gap either
    assert _folder(db).last_uid == 0
    again = _poll(poller).report
    assert again is not None
    assert again.stored == 3
    assert [r.raw for r in _rows(db)] == raws


def test_an_answer_garbled_for_one_message_costs_only_that_message(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    raws = _fill(dovecot, imap_account, 3)
    # "BODY[] )": an item without its value, every time UID 2 is fetched
    proxy.add(replace_body(2, b"", times=None))
    settings = _settings(imap_account, sqlite_url, tmp_path, proxy, missing_attempts=2)
    poller = Poller(settings, db)

    first = _poll(poller).report
    assert first is not None
    assert first.missing == (1, 2, 3)  # the whole answer is unreadable
    assert "could not be read" in _missing_rows(db)[0].reason
    second = _poll_until_due(poller, db).report  # retried one by one
    assert second is not None
    assert (second.stored, second.placeholders) == (2, 1)
    rows = _rows(db)
    assert [r.raw for r in rows] == [raws[0], b"", raws[2]]
    assert rows[1].parse_status == "error"
    assert _folder(db).last_uid == 3
