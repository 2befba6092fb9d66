"""Real mail from ../shared/corpus (and ../shared/cases) as raw bytes to APPEND.

SpamAssassin files start with an mbox ``From `` envelope line, which is framing,
not a header: it is cut off. A selection is deterministic (sorted file names), has
unique Message-IDs, and mixes ordinary client-like mail with mailing-list mail,
bounces and auto-replies, each classified by the real parser at selection time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from triage.mail import parse_message

CASES_SPECIAL = (
    "B13-out-of-office-autoreply.eml",
    "B15-dsn-bounce.eml",
    "B16-mailing-list-post.eml",
)
"""Shared cases: an auto-reply (RFC 3834), a bounce (RFC 3464), a list post (RFC 2369)."""


@dataclass(frozen=True)
class CorpusMail:
    """One message to append: where it came from, its bytes, what the parser says it is."""

    name: str
    raw: bytes
    kind: str
    message_id: str


def without_envelope(raw: bytes) -> bytes:
    """``raw`` without a leading mbox ``From `` line."""
    if raw.startswith(b"From "):
        return raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return raw


def read_mail(path: Path) -> CorpusMail:
    """One file as a :class:`CorpusMail` (parsed once to learn its kind and Message-ID)."""
    raw = without_envelope(path.read_bytes())
    parsed = parse_message(raw)
    return CorpusMail(
        name=f"{path.parent.name}/{path.name}",
        raw=raw,
        kind=str(parsed.kind),
        message_id="" if parsed.message_id_synthetic else parsed.message_id,
    )


def spamassassin_files(corpus_dir: Path, folders: tuple[str, ...]) -> Iterator[Path]:
    """Files of the given SpamAssassin folders, in sorted order (no ``cmds`` index files)."""
    for folder in folders:
        for path in sorted((corpus_dir / "spamassassin" / folder).iterdir()):
            if path.is_file() and path.name != "cmds":
                yield path


def select_mail(
    corpus_dir: Path,
    cases_dir: Path | None,
    *,
    normal: int,
    lists: int,
    skip: int = 0,
) -> list[CorpusMail]:
    """A mixed selection: ``normal`` ordinary and ``lists`` mailing-list messages from the
    SpamAssassin ham folders, and every bounce in them, then the shared cases
    B13/B15/B16. Messages without a Message-ID or with one already selected are left out
    (the tests match acknowledgments by In-Reply-To). ``skip`` of each kind are passed
    over first (two tests in one session use different mail)."""
    want = {"normal": normal, "mailing_list": lists}
    skipped = {"normal": 0, "mailing_list": 0}
    chosen: list[CorpusMail] = []
    seen: set[str] = set()
    for path in spamassassin_files(corpus_dir, ("easy_ham", "hard_ham", "easy_ham_2")):
        if not any(want.values()):
            head = path.read_bytes()[:20000].lower()
            if b"multipart/report" not in head and b"mailer-daemon" not in head:
                continue  # only bounces are still wanted: parse just the likely ones
        mail = read_mail(path)
        if not mail.message_id or mail.message_id in seen:
            continue
        if mail.kind in want:
            if skipped[mail.kind] < skip:
                skipped[mail.kind] += 1
                continue
            if want[mail.kind] == 0:
                continue
            want[mail.kind] -= 1
        elif mail.kind != "bounce":
            continue
        seen.add(mail.message_id)
        chosen.append(mail)
    if cases_dir is not None:
        chosen.extend(read_mail(cases_dir / name) for name in CASES_SPECIAL)
    return chosen


def backlog(corpus_dir: Path, count: int) -> list[bytes]:
    """``count`` raw messages from every SpamAssassin folder (ham and spam), in order."""
    out: list[bytes] = []
    folders = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
    for path in spamassassin_files(corpus_dir, folders):
        out.append(without_envelope(path.read_bytes()))
        if len(out) == count:
            break
    return out
