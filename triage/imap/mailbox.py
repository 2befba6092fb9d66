"""The mailbox seam: what intake needs from a mail server, and its IMAP implementation.

:class:`Mailbox` is the role (select a folder, find new UIDs, fetch them, wait
for news, act on ingested mail); :class:`ImapMailbox` plays it over one
imapclient connection. One connection per watched folder: an ImapMailbox
selects one folder and stays on it.

News: every untagged ``EXISTS`` or ``RECENT`` the server sends (RFC 3501
sections 7.3.1-7.3.2), whichever command it came with — SEARCH, FETCH, STORE,
NOOP, the end of IDLE — marks the folder as possibly grown (:meth:`take_news`),
so a watcher never goes back to IDLE on a folder that has more.
"""

from __future__ import annotations

import contextlib
import imaplib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, ProtocolError

from triage.clock import Clock, SystemClock
from triage.config import ImapSettings
from triage.errors import MailboxConnectionError, MailboxError
from triage.imap.connect import (
    ImapConnector,
    as_mailbox_error,
    is_connection_failure,
    shutdown_socket,
)
from triage.imap.responses import (
    FetchAnswer,
    FetchBatch,
    batches_by_size,
    classify_idle,
    read_fetch_answer,
    split_fetch_responses,
    uid_set,
    uids_from,
)

__all__ = ["AfterIngest", "FolderState", "ImapMailbox", "Mailbox"]

log = structlog.get_logger("triage.imap")

IDLE_SLICE = 0.5
"""Seconds per idle_check call: how quickly a stop request is noticed while idling."""
FIRST_IDLE = 1.0
"""Length of the first IDLE after other commands. Mail delivered between the last
command and the IDLE command is not announced during IDLE (Dovecot reports it only
when the next command completes), so the first IDLE is ended early to collect it."""
FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"
"""BODY.PEEK[] rather than BODY[]: fetching must not set \\Seen (RFC 3501 section 6.4.5)."""
SIZE_ITEMS = "(UID RFC822.SIZE)"
NEWS = ("EXISTS", "RECENT")
"""Untagged responses that can announce new mail (RFC 3501 sections 7.3.1, 7.3.2)."""
DISCARDED = ("EXPUNGE", "FETCH", "VANISHED", "FLAGS")
"""Untagged responses nothing here reads after the command they came with."""

SIZE_CHUNK = 1000
"""UIDs per RFC822.SIZE request (servers cap the command line; Dovecot: 64 kB)."""

AfterIngest = Literal["keep", "keyword", "move"]


@dataclass(frozen=True, slots=True)
class FolderState:
    """A folder as SELECT reports it.

    Attributes:
        folder: the folder name.
        uidvalidity: UIDVALIDITY (RFC 3501 section 2.3.1.1); UIDs are only
            comparable under the same value.
        uidnext: the UID the next message will get (None if the server omits it).
        exists: number of messages in the folder.
        capabilities: the server's capabilities, upper case (``"IDLE"``, ``"MOVE"``).
    """

    folder: str
    uidvalidity: int
    uidnext: int | None
    exists: int
    capabilities: frozenset[str]


class Mailbox(Protocol):
    """One selected folder on a mail server (the seam intake is written against)."""

    def select(self, folder: str) -> FolderState:
        """Select ``folder`` (read-write) and return its state. Raises MailboxError."""
        ...

    def search_from(self, first_uid: int) -> list[int]:
        """UIDs >= ``first_uid`` in the selected folder, ascending. Raises MailboxError."""
        ...

    def listed(self, uids: Sequence[int]) -> set[int]:
        """Which of ``uids`` the folder still holds (UID SEARCH). Raises MailboxError."""
        ...

    def fetch(self, uids: Sequence[int], *, alone: bool = False) -> Iterator[FetchBatch]:
        """Fetch ``uids`` in batches (UID order); each batch names the UIDs not delivered."""
        ...

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block up to ``timeout`` seconds for news; True when the server announced some."""
        ...

    def take_news(self) -> bool:
        """True when new mail was announced since the last call (then forgotten)."""
        ...

    def pending_after_ingest(self, last_uid: int) -> list[int]:
        """UIDs <= ``last_uid`` still waiting for the after-ingest action."""
        ...

    def after_ingest(self, uids: Sequence[int]) -> None:
        """Apply the configured after-ingest action to ``uids`` (already committed)."""
        ...

    def close(self) -> None:
        """Leave IDLE if needed and log out; never raises."""
        ...

    def interrupt(self) -> None:
        """From another thread: make a blocked read fail at once (shutdown)."""
        ...


class ImapMailbox:
    """:class:`Mailbox` over one imapclient connection.

    Create it with :meth:`open` (connects and logs in through
    :class:`ImapConnector`), then :meth:`select` one folder. Every failure is a
    :class:`MailboxError`; a connection found dead (timeout, EOF, ``* BYE``,
    reset) leaves the object unusable — open a new one.

    Args:
        client: a logged-in client (``normalise_times = False``).
        settings: the ``[imap]`` section (batching, IDLE, keepalive, after-ingest action).
        clock: gives INTERNALDATE's fallback when a server omits it.
        capabilities: override of the server's capabilities (tests use it to
            take the path a server without MOVE needs); None reads them.
    """

    def __init__(
        self,
        client: IMAPClient,
        settings: ImapSettings,
        *,
        clock: Clock | None = None,
        capabilities: frozenset[str] | None = None,
    ) -> None:
        self._client = client
        self.settings = settings
        self._clock = clock or SystemClock()
        self._capabilities = capabilities
        self._folder = ""
        self._idling = False
        self._closed = False
        self._news = False
        self._move_folder_checked = False
        self.last_round_trip = time.monotonic()
        """Monotonic time of the last successful exchange with the server (health)."""

    @classmethod
    def open(
        cls,
        connector: ImapConnector,
        *,
        clock: Clock | None = None,
        capabilities: frozenset[str] | None = None,
    ) -> ImapMailbox:
        """Connect and log in as configured. Raises MailboxError / MailboxAuthError."""
        return cls(connector.connect(), connector.settings, clock=clock, capabilities=capabilities)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- state -------------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities (or the override), upper case."""
        if self._capabilities is None:
            raw = self._call("reading capabilities", self._client.capabilities)
            self._capabilities = frozenset(c.decode("ascii", "replace").upper() for c in raw)
        return self._capabilities

    @property
    def alive(self) -> bool:
        """False once the connection was found dead or closed."""
        return not self._closed

    @property
    def can_idle(self) -> bool:
        """IDLE is configured and the server advertises it (RFC 2177)."""
        return self.settings.idle and "IDLE" in self.capabilities

    @property
    def _imap(self) -> imaplib.IMAP4:
        # imapclient keeps every untagged response imaplib reads in the imaplib
        # object's untagged_responses; it exposes no public way to see the EXISTS
        # that come with SEARCH or FETCH answers, nor a FETCH answer unmerged.
        imap: imaplib.IMAP4 = self._client._imap  # noqa: SLF001
        return imap

    def _call(self, doing: str, func: Callable[..., Any], *args: Any) -> Any:
        """Run one client call, translating failures; a dead connection closes this object.

        Afterwards the untagged EXISTS/RECENT that came with the answer are taken
        as news (:meth:`take_news`).
        """
        if self._closed:
            raise MailboxConnectionError(f"{doing}: the connection is closed")
        try:
            result = func(*args)
        except MailboxError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MailboxError
            if is_connection_failure(exc):
                self._abandon()
            raise as_mailbox_error(exc, doing) from None
        self.last_round_trip = time.monotonic()
        self._collect_news()
        return result

    def _collect_news(self, *, count: bool = True) -> None:
        untagged = self._imap.untagged_responses
        for name in NEWS:
            if untagged.pop(name, None) and count:
                self._news = True
        # imaplib keeps every untagged response until someone pops it: without this a
        # connection living for weeks would hoard each EXPUNGE (one per moved message)
        # and each flag change another client made
        for name in DISCARDED:
            untagged.pop(name, None)

    def take_news(self) -> bool:
        """True when the server announced new mail (EXISTS, RECENT) since the last call.

        Counts announcements that came with any command's answer (SEARCH, FETCH,
        STORE, NOOP, DONE) as well as during IDLE.
        """
        news, self._news = self._news, False
        return news

    # -- the Mailbox role -----------------------------------------------------

    def select(self, folder: str) -> FolderState:
        """SELECT ``folder`` read-write (the after-ingest actions need it).

        The EXISTS and RECENT of the SELECT answer are the folder's state, not news.

        Raises:
            MailboxError: no such folder, no UIDVALIDITY, or the connection failed.
        """
        info = self._call(f"selecting {folder!r}", self._client.select_folder, folder)
        self._collect_news(count=False)
        self._news = False
        uidvalidity = info.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise MailboxError(f"selecting {folder!r}: the server sent no UIDVALIDITY")
        uidnext = info.get(b"UIDNEXT")
        self._folder = folder
        return FolderState(
            folder=folder,
            uidvalidity=uidvalidity,
            uidnext=uidnext if isinstance(uidnext, int) else None,
            exists=int(info.get(b"EXISTS", 0)),
            capabilities=self.capabilities,
        )

    def search_from(self, first_uid: int) -> list[int]:
        """``UID SEARCH UID first:*``, filtered to UIDs really >= ``first_uid`` (see uids_from)."""
        found = self._call(
            f"searching {self._folder!r} from UID {first_uid}",
            self._client.search,
            ["UID", f"{max(1, first_uid)}:*"],
        )
        return uids_from(found, first_uid)

    def listed(self, uids: Sequence[int]) -> set[int]:
        """Which of ``uids`` the folder still holds: ``UID SEARCH UID <set>``.

        Tells a message expunged meanwhile (not listed) from one the server lists
        but would not deliver. A NOOP goes first: a server keeps an expunged
        message in the session's view until it has told the client (RFC 3501
        section 7.4.1), which it may put off during UID commands, and NOOP is
        where it catches up (Dovecot lists the message in UID SEARCH till then).
        """
        if not uids:
            return set()
        self._call(f"checking {self._folder!r} for expunged mail", self._client.noop)
        found = self._call(
            f"searching {self._folder!r} for {len(uids)} UIDs",
            self._client.search,
            ["UID", uid_set(uids)],
        )
        return {int(uid) for uid in found} & set(uids)

    def fetch(self, uids: Sequence[int], *, alone: bool = False) -> Iterator[FetchBatch]:
        """Fetch ``uids`` with BODY.PEEK[], INTERNALDATE and RFC822.SIZE, in batches.

        Batches hold at most ``batch_size`` messages and ``batch_bytes`` bytes
        (sizes are asked first), so memory stays bounded; a UID the size answer
        left out travels alone. ``alone``: one UID per FETCH (retries: a server
        that fails a batch over one message often delivers it by itself).

        Each :class:`FetchBatch` names the UIDs asked for but not delivered, with
        the reason (see :func:`~triage.imap.responses.read_fetch_answer`); whether
        they were expunged is the caller's question (:meth:`listed`).

        Raises:
            MailboxError: the connection failed or the server refused the command.
        """
        if not uids:
            return
        wanted = sorted(set(uids))
        if alone:
            for uid in wanted:
                yield self._fetch_batch([uid])
            return
        sizes: dict[int, int | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), SIZE_CHUNK):
            chunk = wanted[start : start + SIZE_CHUNK]
            answer = self._read_fetch(f"fetching sizes in {self._folder!r}", chunk, SIZE_ITEMS)
            sizes.update(answer.sizes)
        for batch in batches_by_size(
            sizes, max_count=self.settings.batch_size, max_bytes=self.settings.batch_bytes
        ):
            yield self._fetch_batch(batch)

    def _fetch_batch(self, batch: list[int]) -> FetchBatch:
        doing = f"fetching {len(batch)} messages from {self._folder!r}"
        return self._read_fetch(doing, batch, FETCH_ITEMS).batch

    def _read_fetch(self, doing: str, uids: list[int], items: str) -> FetchAnswer:
        """One ``UID FETCH``, every response read apart (read_fetch_answer)."""
        answer: FetchAnswer = self._call(doing, self._uid_fetch, uids, items)
        if answer.unrequested:
            log.warning(
                "imap_unrequested_fetch",
                folder=self._folder,
                uids=list(answer.unrequested[:20]),
                count=len(answer.unrequested),
            )
        return answer

    def _uid_fetch(self, uids: list[int], items: str) -> FetchAnswer:
        """``UID FETCH`` through imaplib: each response kept apart, a NO answer's data kept.

        Stale unsolicited FETCH responses from earlier commands (flag changes made
        by other clients, announced by sequence number) are dropped first, so they
        cannot be taken for part of this answer.
        """
        imap = self._imap
        imap.untagged_responses.pop("FETCH", None)
        typ, data = imap.uid("FETCH", uid_set(uids), items)
        refused = ""
        if typ != "OK":
            # RFC 3501 7.4.2 / Exchange, Dovecot: "NO Some messages could not be FETCHed"
            # comes with the messages that could; keep those, the rest is missing.
            refused = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
            data = imap.untagged_responses.pop("FETCH", [])
        try:
            responses = split_fetch_responses(data)
        except ProtocolError as exc:
            # the exchange itself completed (tagged answer read): the connection is
            # sound, the answer is not. Every UID of it counts as missing; retries go
            # one by one, so only a message the server always garbles ends up as a
            # placeholder instead of failing every pass for good.
            why = f"the FETCH answer could not be read ({str(exc)[:200]})"
            return FetchAnswer(batch=FetchBatch(missing=dict.fromkeys(uids, why)))
        answer = read_fetch_answer(responses, uids, fallback_date=self._clock.now())
        if refused and answer.batch.missing:
            reason = f"FETCH answered {typ} {refused}".strip()[:300]
            missing = {uid: f"{why} ({reason})" for uid, why in answer.batch.missing.items()}
            answer = replace(answer, batch=replace(answer.batch, missing=missing))
        return answer

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds for the server to announce new mail.

        With IDLE (RFC 2177): IDLE is issued and ended with DONE after at most
        ``keepalive`` seconds (the DONE's answer, due within ``timeout``, proves
        the link alive: a flow dropped without FIN or RST is found within about
        keepalive + timeout seconds; the server's own ``* OK Still here`` comes
        only every few minutes), and never later than ``idle_renew`` (RFC 2177
        section 3: before the server's 30-minute inactivity logout). Without
        IDLE it sleeps, checking the link with NOOP every ``keepalive`` seconds
        (whose answer also announces new mail). Returns early (False) when
        ``stop`` is set.

        Raises:
            MailboxError: ``* BYE``, EOF, no answer to DONE or NOOP within
                ``timeout`` (a half-open connection), or any socket error.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._news:
            return True
        cycle = max(0.05, min(self.settings.keepalive, self.settings.idle_renew))
        if not self.can_idle:
            while not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.wait(min(remaining, cycle)):
                    return False
                if deadline - time.monotonic() <= 0:
                    return False  # the caller's pass is due: it checks the link anyway
                self._call(f"checking the connection to {self._folder!r}", self._client.noop)
                if self._news:
                    return True
            return False
        length = FIRST_IDLE
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._idle_once(min(length, remaining, cycle), stop):
                return True
            length = cycle
        return False

    def _idle_once(self, length: float, stop: threading.Event) -> bool:
        """One IDLE ... DONE exchange of at most ``length`` seconds; True on news."""
        doing = f"idling on {self._folder!r}"
        self._call(doing, self._client.idle)
        self._idling = True
        news = False
        end = time.monotonic() + length
        try:
            while not stop.is_set():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                slice_ = min(IDLE_SLICE, remaining)
                started = time.monotonic()
                responses = self._call(doing, self._client.idle_check, slice_)
                signal = classify_idle(responses)
                if signal.bye:
                    self._abandon()
                    raise MailboxConnectionError(f"{doing}: the server said BYE: {signal.text}")
                if signal.news:
                    news = True
                    break
                if not responses and time.monotonic() - started < slice_ / 2:
                    # idle_check returns at once with nothing when the socket hit EOF;
                    # DONE below then fails and reports the dropped connection.
                    break
        finally:
            if self._idling and not self._closed:
                self._idling = False
                done = self._call(f"ending IDLE on {self._folder!r}", self._client.idle_done)
                signal = classify_idle(done[1] if isinstance(done, tuple) else [])
                news = news or signal.news
        if news:
            self._news = True
        return self._news

    def pending_after_ingest(self, last_uid: int) -> list[int]:
        """UIDs <= ``last_uid`` still in the folder that the after-ingest action has not reached.

        keyword: those without the keyword; move: all of them (stored mail still
        here was not moved); keep: none. Lets a crash between commit and action
        heal on the next connection.
        """
        action = self.settings.after_ingest
        if action == "keep" or last_uid < 1:
            return []
        criteria: list[str] = ["UID", f"1:{last_uid}"]
        if action == "keyword":
            criteria += ["UNKEYWORD", self.settings.keyword]
        found = self._call(
            f"searching {self._folder!r} for mail awaiting after_ingest",
            self._client.search,
            criteria,
        )
        return [uid for uid in uids_from(found, 1) if uid <= last_uid]

    def after_ingest(self, uids: Sequence[int]) -> None:
        """Apply ``after_ingest`` to committed ``uids``: keep, add ``keyword``, or move.

        move uses MOVE (RFC 6851) when offered, else COPY + STORE ``\\Deleted`` +
        ``UID EXPUNGE`` (RFC 4315 section 2.1, so only these UIDs are expunged);
        without UIDPLUS a plain EXPUNGE is used and logged, as it also removes
        other mail marked ``\\Deleted``.

        Raises:
            MailboxError: the connection failed, or the server refused the action
                (e.g. the target folder does not exist).
        """
        action = self.settings.after_ingest
        if action == "keep" or not uids:
            return
        target = uid_set(uids)
        if action == "keyword":
            self._call(
                f"adding keyword {self.settings.keyword} in {self._folder!r}",
                self._client.add_flags,
                target,
                [self.settings.keyword],
                True,  # noqa: FBT003 - imapclient's `silent`: no FETCH answer needed
            )
            return
        dest = self.settings.move_to
        doing = f"moving {len(uids)} messages from {self._folder!r} to {dest!r}"
        if not self._move_folder_checked:
            if not self._call(doing, self._client.folder_exists, dest):
                raise MailboxError(f"{doing}: folder {dest!r} does not exist")
            self._move_folder_checked = True
        if "MOVE" in self.capabilities:
            self._call(doing, self._client.move, target, dest)
            return
        self._call(doing, self._client.copy, target, dest)
        self._call(doing, self._client.add_flags, target, [b"\\Deleted"], True)  # noqa: FBT003
        if "UIDPLUS" in self.capabilities:
            self._call(doing, self._client.uid_expunge, target)
        else:
            log.warning("imap_expunge_without_uidplus", folder=self._folder)
            self._call(doing, self._client.expunge)

    def close(self) -> None:
        """Leave IDLE if needed and LOGOUT; a dead connection is just closed. Never raises."""
        if self._closed:
            return
        try:
            if self._idling:
                self._idling = False
                self._client.idle_done()
            self._client.logout()
        except (IMAPClientError, OSError, EOFError):
            pass
        finally:
            self._abandon()

    def interrupt(self) -> None:
        """Shut the socket down so a read blocked in another thread fails at once."""
        shutdown_socket(self._client)

    def _abandon(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._idling = False
        with contextlib.suppress(OSError, IMAPClientError, EOFError, AttributeError):
            self._client.shutdown()
