"""The shipped office-mail set: JSON Lines records rendered as real mail and parsed.

The training set lives in ``triage/training/corpus/<lang>-<queue>.jsonl`` (shipped
in the package) and a separately written held-out set in
``benchmarks/heldout/<lang>-<queue>.jsonl`` (never used for training). One line
is one mail the client typed, with its labels::

    {"id": "hu-billing-0001", "lang": "hu", "queue": "billing", "priority": "normal",
     "topic": "invoice dispute", "from_name": "Kiss Anna",
     "from_addr": "anna.kiss@kisskft.example", "subject": "Re: 2024/0312 számla",
     "body": "Jó napot!\\n\\n..."}

A record is not learned from as text: :func:`render` writes it as an RFC 5322
message (``From``, ``To``, ``Subject``, ``Date``, ``Message-ID``, a UTF-8
``text/plain`` body) and :func:`load_corpus` runs those bytes through
:func:`triage.mail.parse_message`, the same parser live mail goes through, so
quoted history, forwarded blocks and signatures are separated exactly as they
will be when the mail arrives. The classifier then sees what it sees of live
mail (:func:`classifiers.features.example_from_message`).

Unusable input raises :class:`~triage.errors.ImportSourceError` naming the file,
the line and the problem.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr
from importlib.resources import as_file, files
from pathlib import Path

from classifiers.features import Example, example_from_message
from triage.errors import ImportSourceError
from triage.mail import parse_message
from triage.training.sources import Dataset, combine, load_csv

__all__ = [
    "CORPUS_TO",
    "CorpusRecord",
    "corpus_files",
    "load_corpus",
    "read_records",
    "render",
    "shipped_corpus_files",
    "shipped_dataset",
]

CORPUS_TO = ("Könyvelőiroda", "iroda@konyveloiroda.example")
"""The shared inbox the rendered mail is addressed to: (display name, address)."""

_REQUIRED = ("id", "queue", "subject", "body")
_TEXT_FIELDS = (
    "id",
    "lang",
    "queue",
    "priority",
    "topic",
    "from_name",
    "from_addr",
    "subject",
    "body",
)
_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\.]+")
_EPOCH = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CorpusRecord:
    """One mail of the set, as written.

    Attributes:
        id: unique name (``hu-billing-0001``).
        lang: ISO 639-1 language the writer wrote in (``hu``, ``en``).
        queue: the queue it belongs to.
        priority: ``urgent``, ``high``, ``normal`` or ``low`` ("" when not given).
        topic: a short English phrase naming the scenario (never a feature).
        from_name, from_addr: the sender.
        subject: the subject as the client typed it ("" allowed).
        body: the whole plain text: new text, quoted history, forwards, signature.
        where: ``file:line`` the record came from, for messages.
    """

    id: str
    lang: str
    queue: str
    priority: str
    topic: str
    from_name: str
    from_addr: str
    subject: str
    body: str
    where: str = ""

    def label(self, target: str) -> str:
        """The label for ``target`` (``queue`` or ``priority``)."""
        if target == "queue":
            return self.queue
        if target == "priority":
            return self.priority
        raise ValueError(f"unknown target {target!r}")


def _record(value: object, where: str) -> CorpusRecord:
    if not isinstance(value, dict):
        raise ImportSourceError(f"{where}: expected a JSON object per line")
    fields: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        raw = value.get(name, "")
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raise ImportSourceError(f"{where}: {name!r} must be a string")
        fields[name] = raw
    missing = [name for name in _REQUIRED if not fields[name].strip() and name != "subject"]
    if "subject" not in value:
        missing.append("subject")
    if missing:
        raise ImportSourceError(f"{where}: missing {', '.join(repr(m) for m in missing)}")
    fields["queue"] = fields["queue"].strip()
    fields["priority"] = fields["priority"].strip()
    return CorpusRecord(**fields, where=where)


def read_records(path: Path) -> list[CorpusRecord]:
    """The records of one JSON Lines file (blank lines ignored).

    Raises:
        ImportSourceError: unreadable file, a line that is not JSON, a record
            without ``id``, ``queue``, ``subject`` or ``body``, a field that is not
            a string, or an ``id`` used twice; the message names ``file:line``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportSourceError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ImportSourceError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    out: list[CorpusRecord] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportSourceError(f"{where}: not JSON ({exc.msg})") from None
        record = _record(value, where)
        if record.id in seen:
            raise ImportSourceError(f"{where}: id {record.id!r} already used at {seen[record.id]}")
        seen[record.id] = where
        out.append(record)
    return out


def _date_of(index: int) -> datetime:
    # Working days spread over a year, at varying times: a plausible Date header.
    return _EPOCH + timedelta(days=(index * 7) % 360, minutes=(index * 37) % 540)


def _header_text(value: str) -> str:
    # RFC 2047 encoded-words for non-ASCII text, folded (RFC 5322 section 2.2.3).
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _from_header(name: str, addr: str) -> str:
    address = addr.strip()
    if not _ADDRESS.fullmatch(address):
        # Not an address a mail program would send: the sender is unknown.
        address = "unknown@invalid"
        name = name or addr
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    return f"{Header(name, 'utf-8').encode()} <{address}>"


def render(record: CorpusRecord, *, index: int = 0) -> bytes:
    """``record`` as the raw bytes of an RFC 5322 message, as a client's mail program sends it.

    ``From`` is ``from_name <from_addr>`` (an address that is not an addr-spec is
    replaced by ``unknown@invalid`` with the text as the display name), ``To`` is
    :data:`CORPUS_TO`, the ``Message-ID`` is derived from the record's id and the
    ``Date`` from ``index``. Non-ASCII header text is written as RFC 2047
    encoded-words; the body is one ``text/plain; charset=utf-8`` part in
    quoted-printable (RFC 2045 section 6.7); line ends are CRLF.
    """
    safe_id = "".join(c if c.isalnum() or c in "-._" else "_" for c in record.id) or "record"
    body = record.body.replace("\r\n", "\n").replace("\r", "\n")
    # quoprimime works on octets held in a str, as email.charset does it
    encoded = body_encode(body.encode("utf-8").decode("latin-1"), maxlinelen=76, eol="\r\n")
    headers = [
        f"From: {_from_header(record.from_name, record.from_addr)}",
        f"To: {_from_header(*CORPUS_TO)}",
        f"Subject: {_header_text(record.subject)}",
        f"Date: {format_datetime(_date_of(index))}",
        f"Message-ID: <{safe_id}@corpus.triage.invalid>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
    ]
    # An address with non-ASCII letters stays UTF-8 (RFC 6532), as SMTPUTF8 mail has it.
    return ("\r\n".join(headers) + "\r\n\r\n" + encoded + "\r\n").encode("utf-8")


def _dataset(records: Sequence[CorpusRecord], target: str, source: str) -> Dataset:
    examples: list[Example] = []
    labels: list[str] = []
    skipped = duplicates = 0
    seen: set[tuple[str, str]] = set()
    for index, record in enumerate(records):
        label = record.label(target)
        if not label:
            skipped += 1
            continue
        parsed = parse_message(render(record, index=index), scope=record.where or record.id)
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
    return Dataset(tuple(examples), tuple(labels), source, skipped, duplicates)


def corpus_files(path: Path) -> list[Path]:
    """The ``*.jsonl`` files of a directory (sorted), or ``[path]`` for one file.

    Raises:
        ImportSourceError: no such path, or a directory without ``*.jsonl`` files.
    """
    if path.is_dir():
        found = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not found:
            raise ImportSourceError(f"{path}: no *.jsonl files")
        return found
    if not path.is_file():
        raise ImportSourceError(f"{path}: no such file or directory")
    return [path]


def load_corpus(paths: Iterable[Path], *, target: str = "queue", source: str = "") -> Dataset:
    """Labeled examples from JSON Lines files or directories of them, each record
    rendered as a mail (:func:`render`) and parsed as live mail is.

    Args:
        paths: ``*.jsonl`` files, or directories whose ``*.jsonl`` files are read.
        target: ``queue`` or ``priority``: which field is the label. Records
            without that label are counted as skipped.
        source: the name the dataset carries (default: the paths).

    Returns:
        A :class:`~triage.training.sources.Dataset`; a record whose parsed subject
        and body are the same as an earlier one's counts as a duplicate.

    Raises:
        ImportSourceError: see :func:`read_records` and :func:`corpus_files`.
    """
    if target not in ("queue", "priority"):
        raise ImportSourceError(
            f"JSON Lines mail records have the labels queue and priority, not {target!r}"
        )
    given = list(paths)
    records: list[CorpusRecord] = []
    for path in given:
        for file in corpus_files(path):
            records.extend(read_records(file))
    return _dataset(records, target, source or " + ".join(str(p) for p in given))


LEGACY_FILL_MIN = 20
"""A label with fewer shipped corpus mails than this is filled in from the legacy rows."""


def shipped_dataset(*, target: str = "queue") -> Dataset:
    """The shipped training set: every ``triage/training/corpus/*.jsonl`` record.

    While the set is still being written, a label with fewer than
    :data:`LEGACY_FILL_MIN` records there is filled in from the older templated
    rows (``triage/demo/data/training.csv``), so that every queue can be learned.

    Raises:
        ImportSourceError: a shipped file is unusable (names the file and line).
    """
    found = shipped_corpus_files()
    corpus = load_corpus(found, target=target, source="shipped set") if found else None
    counts = Counter(corpus.labels) if corpus is not None else Counter[str]()
    # files("triage") / ...: naming the triage.demo package would import the whole demo
    legacy_path = files("triage") / "demo" / "data" / "training.csv"
    with as_file(legacy_path) as legacy_file:
        legacy = load_csv(Path(legacy_file), label=target)
    wanted = {label for label in legacy.labels if counts[label] < LEGACY_FILL_MIN}
    if corpus is not None and not wanted:
        return corpus
    keep = [(e, y) for e, y in zip(legacy.examples, legacy.labels, strict=True) if y in wanted]
    fill = Dataset(tuple(e for e, _ in keep), tuple(y for _, y in keep), "legacy templated rows")
    return combine(corpus, fill) if corpus is not None else fill


def shipped_corpus_files() -> list[Path]:
    """The shipped training files (``triage/training/corpus/*.jsonl``), [] when none."""
    root = files("triage.training") / "corpus"
    with as_file(root) as folder:
        path = Path(folder)
        if not path.is_dir():
            return []
        return sorted(p for p in path.glob("*.jsonl") if p.is_file())
