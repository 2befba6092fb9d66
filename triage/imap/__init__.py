"""IMAP adapter (imapclient): connections, the Mailbox seam, and watching folders.

- :mod:`triage.imap.connect`: :class:`ImapConnector`, the one connection factory
  (TLS / STARTTLS / plain, LOGIN / XOAUTH2).
- :mod:`triage.imap.mailbox`: the :class:`Mailbox` role and :class:`ImapMailbox`.
- :mod:`triage.imap.responses`: pure helpers, :class:`FetchedMessage`, :class:`FetchBatch`.
- :mod:`triage.imap.watch`: :class:`FolderWatcher` (passes, IDLE, fallback polls,
  reconnects) writing through a :class:`FolderSink`.
- :mod:`triage.imap.backoff`: reconnect delays.
"""

from triage.imap.backoff import Backoff
from triage.imap.connect import ImapConnector
from triage.imap.mailbox import FolderState, ImapMailbox, Mailbox
from triage.imap.responses import FetchBatch, FetchedMessage
from triage.imap.watch import (
    FolderSink,
    FolderWatcher,
    MissingUid,
    PassReport,
    StoreOutcome,
    SyncPlan,
    WatchedMailbox,
)

__all__ = [
    "Backoff",
    "FetchBatch",
    "FetchedMessage",
    "FolderSink",
    "FolderState",
    "FolderWatcher",
    "ImapConnector",
    "ImapMailbox",
    "Mailbox",
    "MissingUid",
    "PassReport",
    "StoreOutcome",
    "SyncPlan",
    "WatchedMailbox",
]
