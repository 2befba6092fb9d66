"""Training data from IMAP folders a business already sorted: ``--from-imap 'Számlák=billing'``.

Each ``FOLDER=LABEL`` names a folder on the configured ``[imap]`` server and the
label its mail teaches. Every message of the folder is fetched with
``BODY.PEEK[]`` (RFC 3501 section 6.4.5: the ``\\Seen`` flag is left alone;
nothing is moved, flagged or deleted) and parsed as live mail is; a message the
server does not deliver in a batch is asked for alone, and one it never delivers
is counted as skipped. Folder names
are given as the user sees them (``Számlák``); imapclient writes them in
modified UTF-7 on the wire (RFC 3501 section 5.1.3).
"""

from __future__ import annotations

from collections.abc import Sequence

from classifiers.features import Example, example_from_message
from triage.config import Settings
from triage.errors import MailboxError, UserError
from triage.imap.connect import ImapConnector
from triage.imap.mailbox import ImapMailbox
from triage.imap.responses import FetchedMessage
from triage.mail import parse_message
from triage.training.sources import Dataset

__all__ = ["load_imap", "parse_folder_specs"]


def parse_folder_specs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["Számlák=billing", ...]`` as ``[(folder, label), ...]``.

    The label follows the last ``=`` (a folder name may contain one).

    Raises:
        UserError: a spec without ``=``, or with an empty folder or label.
    """
    out: list[tuple[str, str]] = []
    for spec in specs:
        folder, sep, label = spec.rpartition("=")
        if not sep or not folder.strip() or not label.strip():
            raise UserError(f"--from-imap {spec!r}: write FOLDER=LABEL, e.g. 'Számlák=billing'")
        out.append((folder.strip(), label.strip()))
    return out


def load_imap(settings: Settings, specs: Sequence[str]) -> Dataset:
    """The labeled examples of the folders named by ``specs`` (``FOLDER=LABEL``).

    Raises:
        UserError: no ``[imap]`` section, a bad spec, or a folder the server does
            not have (named).
        MailboxError: the server cannot be reached or refuses the login.
    """
    if settings.imap is None:
        raise UserError("--from-imap needs an [imap] section in the configuration")
    pairs = parse_folder_specs(specs)
    connector = ImapConnector(settings.imap, resolve=settings.resolve)
    examples: list[Example] = []
    labels: list[str] = []
    seen: set[tuple[str, str]] = set()
    skipped = duplicates = 0
    with ImapMailbox.open(connector) as mailbox:
        for folder, label in pairs:
            try:
                mailbox.select(folder)
            except MailboxError as exc:
                if mailbox.alive:
                    raise UserError(
                        f"--from-imap: cannot open IMAP folder {folder!r} ({exc})"
                    ) from None
                raise
            delivered: list[FetchedMessage] = []
            missing: set[int] = set()
            for batch in mailbox.fetch(mailbox.search_from(1)):
                delivered.extend(batch)
                missing.update(batch.missing)
            if missing:
                # A server that fails a batch over one message often delivers it alone.
                for batch in mailbox.fetch(sorted(missing), alone=True):
                    delivered.extend(batch)
                    missing.difference_update(m.uid for m in batch)
                skipped += len(missing)
            for fetched in delivered:
                parsed = parse_message(fetched.raw, received_at=fetched.internal_date)
                example = example_from_message(parsed)
                if not (example.subject.strip() or example.body.strip()):
                    skipped += 1
                    continue
                key = (example.subject, example.body)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                examples.append(example)
                labels.append(label)
    source = "IMAP " + ", ".join(f"{folder}={label}" for folder, label in pairs)
    return Dataset(tuple(examples), tuple(labels), source, skipped, duplicates)
