"""The pure parts of the IMAP adapter and intake planning: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from triage.imap.backoff import Backoff
from triage.imap.responses import (
    batches_by_size,
    classify_idle,
    fetched_message,
    uid_set,
    uids_from,
)
from triage.services.intake import FolderProgress, plan_sync
from triage.services.mailsource import parse_from_line_date

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def test_uid_set_compresses_runs() -> None:
    assert uid_set([9, 1, 2, 3, 7, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    assert uid_set([4, 4, 5]) == "4:5"
    with pytest.raises(ValueError):
        uid_set([])
    with pytest.raises(ValueError):
        uid_set([0, 1])


def test_uids_from_drops_the_highest_uid_that_star_always_matches() -> None:
    # UID SEARCH UID 43:* on a folder whose highest UID is 42 answers [42] (RFC 3501 6.4.8)
    assert uids_from([42], 43) == []
    assert uids_from([45, 43, 44, 43], 43) == [43, 44, 45]


def test_batches_respect_count_and_bytes() -> None:
    sizes = {1: 10, 2: 10, 3: 10, 4: 10, 5: 10}
    assert list(batches_by_size(sizes, max_count=2, max_bytes=1000)) == [[1, 2], [3, 4], [5]]
    assert list(batches_by_size(sizes, max_count=10, max_bytes=25)) == [[1, 2], [3, 4], [5]]
    # a message bigger than the byte cap travels alone
    assert list(batches_by_size({1: 5, 2: 500, 3: 5}, max_count=10, max_bytes=100)) == [
        [1],
        [2],
        [3],
    ]
    assert list(batches_by_size({}, max_count=1, max_bytes=1)) == []


def test_fetched_message_converts_internaldate_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    item = {
        b"BODY[]": b"Subject: x\r\n\r\nbody\r\n",
        b"INTERNALDATE": datetime(2025, 6, 1, 12, 0, tzinfo=cest),
        b"RFC822.SIZE": 21,
    }
    m = fetched_message(7, item, fallback_date=NOW)
    assert m is not None
    assert m.uid == 7
    assert m.internal_date == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert m.internal_date.tzinfo is UTC
    assert m.size == 21
    assert fetched_message(7, {b"INTERNALDATE": NOW}, fallback_date=NOW) is None
    no_date = fetched_message(8, {b"BODY[]": b"x"}, fallback_date=NOW)
    assert no_date is not None
    assert no_date.internal_date == NOW
    assert no_date.size == 1


def test_classify_idle_responses() -> None:
    news = classify_idle([(b"OK", b"Still here"), (7, b"EXISTS"), (4, b"RECENT")])
    assert news.news
    assert not news.bye
    assert not classify_idle([(b"OK", b"Still here"), (3, b"EXPUNGE")]).news
    bye = classify_idle([(b"BYE", b"Server", b"shutting", b"down.")])
    assert bye.bye
    assert bye.text == "Server shutting down."
    assert classify_idle([]) == classify_idle([b"junk"])


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    b = Backoff(1.0, 300.0, uniform=lambda _low, high: high)
    assert [b.next_delay() for _ in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    lows = Backoff(1.0, 300.0, uniform=lambda low, _high: low)
    assert [lows.next_delay() for _ in range(3)] == [0.5, 1, 2]
    b.reset()
    assert b.next_delay() == 1
    real = Backoff(2.0, 10.0)
    for _ in range(20):
        d = real.next_delay()
        assert 0 < d <= 10
    with pytest.raises(ValueError):
        Backoff(0, 1)
    assert Backoff(1, 300).ceiling(10_000) == 300


def test_plan_first_pass_same_and_changed_uidvalidity() -> None:
    first = plan_sync("INBOX", FolderProgress(None, 0), 100)
    assert (first.first_uid, first.rescan) == (1, False)
    same = plan_sync("INBOX", FolderProgress(100, 42), 100)
    assert (same.first_uid, same.rescan, same.last_uid) == (43, False, 42)
    # B27: a new UIDVALIDITY discards the high-water mark: never UID SEARCH 43:*
    changed = plan_sync("INBOX", FolderProgress(1738166580, 42), 1738166710)
    assert changed.rescan
    assert changed.first_uid == 1
    assert changed.previous_uidvalidity == 1738166580
    assert changed.uidvalidity == 1738166710


def test_mbox_from_line_dates() -> None:
    assert parse_from_line_date(b"From MAILER-DAEMON Sat Jan  3 01:05:34 1996\n") == datetime(
        1996, 1, 3, 1, 5, 34, tzinfo=UTC
    )
    assert parse_from_line_date(b"From someone@example.com  Thu Aug 22 12:36:23 2002") == (
        datetime(2002, 8, 22, 12, 36, 23, tzinfo=UTC)
    )
    assert parse_from_line_date(b"From nobody\n") is None
