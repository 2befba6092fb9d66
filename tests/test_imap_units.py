"""The pure parts of the IMAP adapter and intake planning: no server, no database."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient.exceptions import ProtocolError

from triage.config import ImapSettings
from triage.imap.backoff import Backoff
from triage.imap.connect import enable_tcp_keepalive
from triage.imap.responses import (
    batches_by_size,
    classify_idle,
    read_fetch_answer,
    split_fetch_responses,
    uid_set,
    uids_from,
)
from triage.imap.watch import MISSING_RETRY_MAX, FolderWatcher, _Progress
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


def _answer(*responses: bytes | tuple[bytes, bytes]) -> list[tuple[int, dict[bytes, list[Any]]]]:
    """imaplib's raw FETCH data (a literal is a (line, bytes) pair followed by its trailer)."""
    data: list[Any] = []
    for r in responses:
        if isinstance(r, tuple):
            data += [r, b")"]
        else:
            data.append(r)
    return split_fetch_responses(data)


def test_a_fetch_answer_delivers_whole_bodies_with_internaldate_in_utc() -> None:
    body = b"Subject: x\r\n\r\nbody\r\n"
    answer = read_fetch_answer(
        _answer(
            (b'1 (UID 7 INTERNALDATE "01-Jun-2025 12:00:00 +0200" RFC822.SIZE 99 BODY[] {20}',
             body),
            (b"2 (UID 8 BODY[] {1}", b"x"),
        ),
        [7, 8],
        fallback_date=NOW,
    )  # fmt: skip
    first, second = answer.batch.messages
    assert (first.uid, first.raw, first.size) == (7, body, 99)  # the server's size, not checked
    assert first.internal_date == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert first.internal_date.tzinfo is UTC
    assert (second.internal_date, second.size) == (NOW, 1)  # no INTERNALDATE: the fallback
    assert answer.batch.missing == {}
    assert list(answer.batch) == [first, second]


def test_a_fetch_answer_names_each_uid_not_delivered_and_why() -> None:
    answer = read_fetch_answer(
        _answer(
            b"1 (UID 1 BODY[] NIL)",
            (b"2 (UID 2 BODY[] {0}", b""),
            b"3 (UID 3 FLAGS (\\Seen))",
            (b"4 (UID 4 BODY[] {1}", b"a"),
            (b"4 (UID 4 BODY[] {1}", b"b"),
        ),
        [1, 2, 3, 4, 5],
        fallback_date=NOW,
    )
    assert answer.batch.messages == ()
    assert answer.batch.missing == {
        1: "BODY[] was NIL",
        2: "BODY[] was empty",
        3: "the FETCH answer had no BODY[] for it",
        4: "the FETCH answer held 2 different bodies",
        5: "the FETCH answer left it out",
    }


def test_unsolicited_unrequested_and_repeated_fetch_responses_change_nothing() -> None:
    answer = read_fetch_answer(
        _answer(
            b"2 (FLAGS (\\Seen))",  # another client's flag change, by sequence number
            (b"9 (UID 99 BODY[] {3}", b"abc"),  # never asked for
            (b"2 (UID 2 BODY[] {3}", b"xyz"),
            (b"2 (UID 2 BODY[] {3}", b"xyz"),  # the same response twice
            b"2 (UID 2 FLAGS (\\Seen))",
        ),
        [2],
        fallback_date=NOW,
    )
    [message] = answer.batch.messages
    assert (message.uid, message.raw) == (2, b"xyz")
    assert answer.batch.missing == {}
    assert answer.unrequested == (99,)
    assert answer.unsolicited == 1


def test_an_answer_that_cannot_be_parsed_is_refused_as_a_whole() -> None:
    with pytest.raises(ProtocolError):
        split_fetch_responses([(b"1 (UID 7 BODY[] {30}", b"short"), b")"])


def test_sizes_are_read_from_a_size_only_answer() -> None:
    answer = read_fetch_answer(
        _answer(b"1 (UID 4 RFC822.SIZE 120)", b"2 (UID 5 RFC822.SIZE 80)"),
        [4, 5, 6],
        fallback_date=NOW,
    )
    assert answer.sizes == {4: 120, 5: 80}


def test_the_mark_stops_below_the_first_listed_uid_not_handled() -> None:
    progress = _Progress([3, 5, 9, 12], handled=[3, 100])
    assert progress.mark == 3
    assert progress.is_next(5)
    assert not progress.is_next(9)
    progress.handle(9)  # stored above a gap: the mark may not move
    assert progress.mark == 3
    progress.handle(5)  # the gap closes: the mark catches up over 9
    assert progress.mark == 9
    assert progress.is_next(12)
    assert _Progress([], handled=[]).mark == 0


def test_missing_uids_are_retried_after_a_doubling_delay(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    settings = ImapSettings(
        host="h", username="u", password_file=str(tmp_path / "pw"), missing_retry=30
    )
    watcher = FolderWatcher("INBOX", settings, sink=None, open_mailbox=None)  # type: ignore[arg-type]
    assert [watcher.missing_retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert watcher.missing_retry_delay(60) == MISSING_RETRY_MAX


def test_tcp_keepalive_probes_a_silent_peer() -> None:
    with socket.socket() as sock:
        enable_tcp_keepalive(sock, 20)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 20
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 6
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


def test_a_batch_of_an_unknown_size_travels_alone() -> None:
    sizes: dict[int, int | None] = {1: 10, 2: None, 3: 10}
    assert list(batches_by_size(sizes, max_count=10, max_bytes=100)) == [[1], [2], [3]]


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
