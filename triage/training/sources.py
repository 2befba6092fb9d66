"""Reading labeled examples for training and evaluation.

Three sources, one result (:class:`Dataset`):

- a CSV file (:func:`load_csv`) with a header row and the columns ``subject``,
  ``body`` and the label column (``queue`` by default); an optional ``sender``
  (or ``from``) column gives the sender's address or domain. Rows with the same
  subject and body are kept once (the first), rows with an empty label skipped.
- a directory tree of raw messages (:func:`load_tree`) whose first-level folder
  names are the labels: the 20 Newsgroups layout (``train/sci.med/58045``) or
  Maildir folders (``.billing/cur/...``; the leading dot is dropped, files in
  ``tmp/`` and Dovecot's own files are ignored). Each file is one RFC 5322
  message, parsed by :func:`triage.mail.parse_message`.
- the database (:func:`load_database`): the ``training_labels`` table, where
  ``triage move`` records an assistant's correction and imports record labels.

Unusable input raises :class:`~triage.errors.ImportSourceError` with one line
naming the file and the problem.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifiers.features import Example, example_from_message
from triage.domain import ParseStatus
from triage.errors import ImportSourceError
from triage.mail import parse_message
from triage.store.models import Message, TrainingLabel

__all__ = ["Dataset", "combine", "load_csv", "load_database", "load_path", "load_tree"]

_MAX_CSV_FIELD = 16 * 1024 * 1024
_MAILDIR_PARTS = {"cur", "new", "tmp"}
_IGNORED_FILES = ("dovecot", "maildirfolder", "subscriptions", "courier")


@dataclass(frozen=True, slots=True)
class Dataset:
    """Labeled examples read from one source.

    Attributes:
        examples: the examples, in source order.
        labels: the label of each example (same length as ``examples``).
        source: where they came from (a path, or ``database``), for messages.
        skipped: rows or files left out (no label, no text).
        duplicates: rows left out because an earlier one had the same subject and body.
    """

    examples: tuple[Example, ...]
    labels: tuple[str, ...]
    source: str
    skipped: int = 0
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.examples)


def combine(*datasets: Dataset) -> Dataset:
    """One dataset from several, keeping the first of examples with the same subject and body.

    (The ticket corpus's files overlap: the same ticket appears in two of them.)
    """
    examples: list[Example] = []
    labels: list[str] = []
    seen: set[tuple[str, str]] = set()
    duplicates = sum(d.duplicates for d in datasets)
    for data in datasets:
        for example, label in zip(data.examples, data.labels, strict=True):
            key = (example.subject, example.body)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            examples.append(example)
            labels.append(label)
    return Dataset(
        tuple(examples),
        tuple(labels),
        " + ".join(d.source for d in datasets),
        sum(d.skipped for d in datasets),
        duplicates,
    )


def load_path(path: Path, *, label: str = "queue") -> Dataset:
    """A CSV file (``*.csv``), JSON Lines mail records (``*.jsonl``, or a directory
    holding them; :mod:`triage.training.corpus`) or a directory tree of labeled raw
    messages.

    ``label`` names the CSV's label column (for JSON Lines: ``queue`` or
    ``priority``); a directory tree's labels are its folder names.

    Raises:
        ImportSourceError: missing path, another kind of file, or unusable content.
    """
    from triage.training.corpus import load_corpus  # noqa: PLC0415 - corpus imports this module

    if path.is_dir():
        if any(p.is_file() for p in path.glob("*.jsonl")):
            return load_corpus([path], target=label)
        return load_tree(path)
    if not path.exists():
        raise ImportSourceError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".csv":
        return load_csv(path, label=label)
    if path.suffix.lower() == ".jsonl":
        return load_corpus([path], target=label)
    raise ImportSourceError(
        f"{path}: expected a .csv file, a .jsonl file of mail records (or a directory of"
        " them), or a directory with one folder of messages per label"
    )


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(max(csv.field_size_limit(), min(_MAX_CSV_FIELD, sys.maxsize)))
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise ImportSourceError(f"{path}: empty file, expected a CSV header row")
            yield 0, {name: name for name in reader.fieldnames if name is not None}
            for row in reader:
                yield reader.line_num, {k: (v or "") for k, v in row.items() if isinstance(k, str)}
    except UnicodeDecodeError as exc:
        raise ImportSourceError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except csv.Error as exc:
        raise ImportSourceError(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise ImportSourceError(f"{path}: cannot read ({exc.strerror})") from None


def load_csv(path: Path, *, label: str = "queue") -> Dataset:
    """Labeled examples from a CSV file with a header row.

    Columns: ``subject``, ``body`` and ``label`` (required; names compared
    without case and surrounding spaces), ``sender`` or ``from`` (optional).

    Raises:
        ImportSourceError: unreadable, not UTF-8, no header, a required column missing,
            or no labeled row at all.
    """
    rows = _rows(path)
    header = next(rows)[1]
    by_name = {name.strip().lower(): name for name in header}
    wanted = label.strip().lower()
    missing = [c for c in ("subject", "body", wanted) if c not in by_name]
    if missing:
        raise ImportSourceError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}"
            f" (columns: {', '.join(header) or 'none'})"
        )
    sender_col = by_name.get("sender") or by_name.get("from")
    examples: list[Example] = []
    labels: list[str] = []
    seen: set[tuple[str, str]] = set()
    skipped = duplicates = 0
    for _line, row in rows:
        value = row.get(by_name[wanted], "").strip()
        subject = row.get(by_name["subject"], "").strip()
        body = row.get(by_name["body"], "")
        if not value or not (subject or body.strip()):
            skipped += 1
            continue
        key = (subject, body)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        sender = row.get(sender_col, "").strip() if sender_col else ""
        examples.append(Example(subject=subject, body=body, sender=sender))
        labels.append(value)
    if not examples:
        raise ImportSourceError(f"{path}: no row has a {label!r} label and some text")
    return Dataset(tuple(examples), tuple(labels), str(path), skipped, duplicates)


def _message_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if not path.is_file() or "tmp" in rel[:-1]:
            continue
        name = path.name
        if name.startswith(".") or name.startswith(_IGNORED_FILES):
            continue
        yield path


def load_tree(path: Path) -> Dataset:
    """Labeled examples from a directory whose first-level folders are the labels.

    Every file below a label folder is one raw message. Maildir's own ``cur``,
    ``new`` and ``tmp`` at the top level (the unlabeled inbox) are not labels.

    Raises:
        ImportSourceError: not a directory, unreadable, or no label folder with messages.
    """
    if not path.is_dir():
        raise ImportSourceError(f"{path}: not a directory")
    examples: list[Example] = []
    labels: list[str] = []
    skipped = 0
    try:
        folders = sorted(p for p in path.iterdir() if p.is_dir() and p.name not in _MAILDIR_PARTS)
        for folder in folders:
            label = folder.name.lstrip(".").strip()
            if not label:
                continue
            for file in _message_files(folder):
                rel = file.relative_to(path).as_posix()
                msg = parse_message(file.read_bytes(), scope=rel)
                example = example_from_message(msg)
                if not (example.subject.strip() or example.body.strip()):
                    skipped += 1
                    continue
                examples.append(example)
                labels.append(label)
    except OSError as exc:
        raise ImportSourceError(f"{path}: cannot read ({exc.strerror}: {exc.filename})") from None
    if not examples:
        raise ImportSourceError(
            f"{path}: no labeled messages: expected one folder per label holding"
            " raw messages (e.g. PATH/billing/1.eml, or Maildir folders)"
        )
    return Dataset(tuple(examples), tuple(labels), str(path), skipped, 0)


def load_database(session: Session, *, target: str = "queue") -> Dataset:
    """Labeled examples from the ``training_labels`` table.

    The latest label of a message wins (an assistant's correction overrides an
    earlier label). A label of a stored message learns from that message as
    routing saw it (its raw bytes parsed again: subject, new text and signature,
    sender domain); a label without one (or whose raw mail does not parse) from
    the row's subject, body and sender, else the stored message's.
    With ``target = "priority"`` only rows with a priority count.
    """
    if target not in ("queue", "priority"):
        raise ValueError(f"unknown target {target!r}")
    query = (
        select(TrainingLabel, Message)
        .outerjoin(Message, TrainingLabel.message_id == Message.id)
        .order_by(TrainingLabel.id.desc())
    )
    examples: list[Example] = []
    labels: list[str] = []
    seen_messages: set[int] = set()
    seen_text: set[tuple[str, str]] = set()
    skipped = duplicates = 0
    for row, msg in session.execute(query):
        if row.message_id is not None:
            if row.message_id in seen_messages:
                duplicates += 1
                continue
            seen_messages.add(row.message_id)
        value = (row.queue if target == "queue" else row.priority) or ""
        parsed = parse_message(bytes(msg.raw)) if msg is not None and msg.raw else None
        if parsed is not None and parsed.parse_status == ParseStatus.OK:
            # The stored mail, parsed again: the same example routing made of it
            # (new text and signature, no quoted history).
            example = example_from_message(parsed)
            subject, body, sender = example.subject, example.body, example.sender
        else:
            subject = row.subject or (msg.subject if msg is not None else "")
            body = row.body or (msg.body_text if msg is not None else "")
            sender = row.sender or (msg.from_addr if msg is not None else "")
        if not value.strip() or not (subject.strip() or body.strip()):
            skipped += 1
            continue
        if (subject, body) in seen_text:
            duplicates += 1
            continue
        seen_text.add((subject, body))
        examples.append(Example(subject=subject, body=body, sender=sender))
        labels.append(value.strip())
    examples.reverse()
    labels.reverse()
    return Dataset(tuple(examples), tuple(labels), "database", skipped, duplicates)
