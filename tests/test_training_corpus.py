"""The shipped office-mail set: records rendered as real mail, parsed as live mail is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.errors import ImportSourceError
from triage.mail import parse_message
from triage.training.corpus import (
    CorpusRecord,
    load_corpus,
    read_records,
    render,
    shipped_corpus_files,
    shipped_dataset,
)
from triage.training.sources import load_path

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "benchmarks" / "heldout"
QUEUES = {"billing", "scheduling", "records", "client-support"}
PRIORITIES = {"urgent", "high", "normal", "low"}

REPLY = {
    "id": "hu-billing-9001",
    "lang": "hu",
    "queue": "billing",
    "priority": "high",
    "topic": "invoice dispute",
    "from_name": "Kovács Ödön",
    "from_addr": "odon.kovacs@kovacsbt.example",
    "subject": "Re: 2024/0312 számla – rossz összeg",
    "body": (
        "Jó napot!\n\nA 2024/0312 számlán 54 000 Ft szerepel, de 45 000 Ft-ban"
        " állapodtunk meg. Kérem, küldjenek helyesbítő számlát.\n\n"
        "Üdvözlettel:\nKovács Ödön\nKovács Bt.\n+36 30 123 4567\n\n"
        "2024. márc. 3. 10:12 Könyvelőiroda <iroda@konyveloiroda.example> írta:\n"
        "> Tisztelt Ügyfelünk!\n> Mellékelten küldjük a bérszámfejtés időpontjait.\n"
    ),
}
FORWARD = {
    "id": "en-records-9001",
    "lang": "en",
    "queue": "records",
    "priority": "",
    "topic": "forwarded supplier invoice",
    "from_name": "",
    "from_addr": "not an address",
    "subject": "",
    "body": (
        "please book this one\n\n---------- Forwarded message ---------\n"
        "From: Supplier <billing@supplier.example>\nSubject: Invoice 123\n\n"
        "Dear customer, attached is invoice 123.\n"
    ),
}


def _write(path: Path, *records: dict[str, object]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def test_a_record_is_rendered_as_mail_and_parsed_like_live_mail(tmp_path: Path) -> None:
    (record,) = read_records(_write(tmp_path / "hu-billing.jsonl", REPLY))
    raw = render(record, index=3)
    assert raw.isascii()  # encoded-words and quoted-printable, as mail programs send it
    assert b"\r\nContent-Transfer-Encoding: quoted-printable\r\n" in raw
    parsed = parse_message(raw)
    assert parsed.parse_status == "ok"
    assert parsed.subject == REPLY["subject"]
    assert parsed.from_ is not None
    assert parsed.from_.addr == "odon.kovacs@kovacsbt.example"
    assert parsed.from_.name == "Kovács Ödön"
    assert parsed.message_id == "<hu-billing-9001@corpus.triage.invalid>"
    # The parser separated the quoted history: the classifier never sees the quote's
    # "bérszámfejtés időpontjait" (payroll dates) as part of this billing mail.
    assert "helyesbítő számlát" in parsed.body_text
    assert "bérszámfejtés" not in parsed.body_text
    assert "bérszámfejtés" in parsed.quoted_text


def test_load_corpus_gives_examples_without_quoted_history(tmp_path: Path) -> None:
    path = _write(tmp_path / "mixed.jsonl", REPLY, FORWARD)
    data = load_corpus([path])
    assert data.labels == ("billing", "records")
    first, second = data.examples
    assert "bérszámfejtés" not in first.body
    assert first.sender == "kovacsbt.example"
    # The forwarded invoice is what the client asks to have booked: it stays.
    assert "invoice 123" in second.body
    # An unusable address is no address: the sender is unknown, not invented.
    assert second.sender == "invalid"


def test_priority_labels_and_records_without_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "mixed.jsonl", REPLY, FORWARD)
    data = load_path(path, label="priority")
    assert data.labels == ("high",)
    assert data.skipped == 1
    with pytest.raises(ImportSourceError, match="queue and priority"):
        load_path(path, label="category")


def test_a_directory_of_jsonl_files_is_a_corpus(tmp_path: Path) -> None:
    _write(tmp_path / "hu-billing.jsonl", REPLY)
    _write(tmp_path / "en-records.jsonl", FORWARD)
    data = load_path(tmp_path)
    assert sorted(data.labels) == ["billing", "records"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"id": "x", "queue": "billing", "body": "b"}), "missing 'subject'"),
        (json.dumps({"id": "x", "queue": "", "subject": "s", "body": "b"}), "missing 'queue'"),
        (json.dumps({"id": "x", "queue": "q", "subject": 5, "body": "b"}), "'subject' must be"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(REPLY, ensure_ascii=False) + "\n\n" + line + "\n", "utf-8")
    with pytest.raises(ImportSourceError, match=problem) as caught:
        read_records(path)
    assert f"{path}:3:" in str(caught.value)


def test_an_id_used_twice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.jsonl", REPLY, {**REPLY, "body": "other"})
    with pytest.raises(ImportSourceError, match=r"id 'hu-billing-9001' already used at .*:1"):
        read_records(path)


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps(REPLY, ensure_ascii=False).encode("iso-8859-2", "replace"))
    with pytest.raises(ImportSourceError, match="not UTF-8"):
        read_records(path)


def test_every_shipped_record_is_usable_mail() -> None:
    """Each shipped mail parses cleanly, with a known queue and priority."""
    files = shipped_corpus_files()
    if not files:
        pytest.skip("no shipped corpus files yet")
    for path in files:
        lang, _, queue = path.stem.partition("-")
        for index, record in enumerate(read_records(path)):
            assert record.queue == queue, record.where
            assert record.lang == lang, record.where
            assert record.priority in PRIORITIES, record.where
            parsed = parse_message(render(record, index=index))
            assert parsed.parse_status == "ok", (record.where, parsed.parse_error)
            assert (parsed.body_text or parsed.quoted_text).strip(), record.where


def test_the_shipped_set_covers_every_queue() -> None:
    data = shipped_dataset()
    assert set(data.labels) == QUEUES
    assert min(data.labels.count(q) for q in QUEUES) >= 20


def test_the_held_out_set_shares_no_mail_with_the_training_set() -> None:
    """benchmarks/heldout measures generalisation: none of its mails may be trained on."""
    held = sorted(HELDOUT.glob("*.jsonl")) if HELDOUT.is_dir() else []
    files = shipped_corpus_files()
    if not held or not files:
        pytest.skip("the held-out or the training set has not landed yet")
    training: list[CorpusRecord] = [r for f in files for r in read_records(f)]
    bodies = {r.body.strip() for r in training}
    ids = {r.id for r in training}
    for path in held:
        for record in read_records(path):
            assert record.queue in QUEUES, record.where
            assert record.id not in ids, record.where
            assert record.body.strip() not in bodies, record.where
