"""ImapMailbox against the real Dovecot: select, search, fetch, IDLE."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_settings, message

from triage.imap import ImapConnector, ImapMailbox

pytestmark = pytest.mark.imap


def _open(account: ImapAccount, tmp_path: Path, **overrides: object) -> ImapMailbox:
    return ImapMailbox.open(ImapConnector(imap_settings(account, tmp_path, **overrides)))


@pytest.fixture
def mailbox(imap_account: ImapAccount, tmp_path: Path) -> Iterator[ImapMailbox]:
    with _open(imap_account, tmp_path) as mb:
        yield mb


def test_select_reports_uidvalidity_uidnext_and_capabilities(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    dovecot.append(imap_account, message(1))
    state = mailbox.select("INBOX")
    assert state.uidvalidity > 0
    assert state.uidnext == 2
    assert state.exists == 1
    assert {"IDLE", "MOVE", "UIDPLUS"} <= state.capabilities
    assert mailbox.can_idle


def test_fetch_returns_exact_bytes_and_leaves_seen_untouched(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    raws = [message(n) for n in range(3)]
    for raw in raws:
        dovecot.append(imap_account, raw)
    mailbox.select("INBOX")
    fetched = [m for batch in mailbox.fetch(mailbox.search_from(1)) for m in batch]
    assert [m.raw for m in fetched] == raws
    assert [m.size for m in fetched] == [len(r) for r in raws]
    check = dovecot.client(imap_account)
    try:
        check.select_folder("INBOX", readonly=True)
        flags = check.get_flags([m.uid for m in fetched])
        assert check.search(["UNSEEN"]) == [1, 2, 3]
        assert all(b"\\Seen" not in f for f in flags.values())
    finally:
        check.logout()


def test_internaldate_is_preserved_as_aware_utc(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    arrived = datetime(2025, 3, 14, 10, 47, 5, tzinfo=timezone(timedelta(hours=1)))
    dovecot.append(imap_account, message(1), msg_time=arrived)
    mailbox.select("INBOX")
    [[fetched]] = list(mailbox.fetch([1]))
    assert fetched.internal_date == arrived
    assert fetched.internal_date.tzinfo is UTC
    assert fetched.internal_date.hour == 9


def test_fetch_in_batches_by_count_and_by_bytes(
    dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    c = dovecot.client(imap_account)
    append_many(c, [message(n) for n in range(10)])
    c.logout()
    with _open(imap_account, tmp_path, batch_size=3) as mb:
        mb.select("INBOX")
        sizes = [len(batch) for batch in mb.fetch(mb.search_from(1))]
    assert sizes == [3, 3, 3, 1]
    with _open(imap_account, tmp_path, batch_size=100, batch_bytes=1024) as mb:
        mb.select("INBOX")
        batches = list(mb.fetch(mb.search_from(1)))
    per_message = len(message(0))
    assert all(sum(m.size for m in b) <= 1024 or len(b) == 1 for b in batches)
    assert sum(len(b) for b in batches) == 10
    assert len(batches) == -(-10 // (1024 // per_message))


def test_search_from_past_the_end_is_empty_not_the_last_message(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    for n in range(3):
        dovecot.append(imap_account, message(n))
    mailbox.select("INBOX")
    assert mailbox.search_from(2) == [2, 3]
    assert mailbox.search_from(4) == []  # the server itself answers [3] to UID SEARCH UID 4:*


def test_a_uid_expunged_between_search_and_fetch_is_left_out(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    for n in range(3):
        dovecot.append(imap_account, message(n))
    mailbox.select("INBOX")
    uids = mailbox.search_from(1)
    other = dovecot.client(imap_account)
    other.select_folder("INBOX")
    other.delete_messages([2])
    other.expunge()
    other.logout()
    fetched = [m.uid for batch in mailbox.fetch(uids) for m in batch]
    assert fetched == [1, 3]


def test_idle_reports_an_append_within_two_seconds(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    mailbox.select("INBOX")
    timer = threading.Timer(1.5, dovecot.append, (imap_account, message(1)))
    started = time.monotonic()
    timer.start()
    try:
        news = mailbox.wait(30, threading.Event())
    finally:
        timer.join()
    waited = time.monotonic() - started
    assert news
    assert waited < 1.5 + 2
    assert mailbox.search_from(1) == [1]


def test_mail_delivered_just_before_idle_is_noticed_within_a_couple_of_seconds(
    dovecot: Dovecot, imap_account: ImapAccount, mailbox: ImapMailbox
) -> None:
    mailbox.select("INBOX")
    assert mailbox.search_from(1) == []
    dovecot.append(imap_account, message(1))  # arrives while the connection is not idling
    started = time.monotonic()
    assert mailbox.wait(30, threading.Event())
    assert time.monotonic() - started < 2.5


def test_idle_is_reissued_after_idle_renew(imap_account: ImapAccount, tmp_path: Path) -> None:
    with _open(imap_account, tmp_path, idle_renew=1) as mb:
        mb.select("INBOX")
        calls = []
        real_idle = mb._client.idle

        def counting_idle() -> object:
            calls.append(time.monotonic())
            return real_idle()

        mb._client.idle = counting_idle
        assert not mb.wait(3.6, threading.Event())
        assert mb.alive
    # 1 s first IDLE, then 1 s IDLEs (idle_renew): at least 3 IDLE commands in 3.6 s
    assert len(calls) >= 3
    assert all(b - a < 1.6 for a, b in itertools.pairwise(calls))


def test_wait_returns_soon_after_stop(mailbox: ImapMailbox) -> None:
    mailbox.select("INBOX")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert not mailbox.wait(60, stop)
    assert time.monotonic() - started < 2
    assert mailbox.alive
    assert mailbox.search_from(1) == []  # IDLE was ended cleanly: the connection still works


def test_without_idle_wait_just_sleeps(imap_account: ImapAccount, tmp_path: Path) -> None:
    with _open(imap_account, tmp_path, idle=False) as mb:
        mb.select("INBOX")
        assert not mb.can_idle
        started = time.monotonic()
        assert not mb.wait(0.5, threading.Event())
        assert 0.45 < time.monotonic() - started < 2
