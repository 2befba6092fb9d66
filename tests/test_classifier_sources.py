"""Reading labeled data: CSV files and folders of raw messages, good and bad."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_classifier_data import dataset, write_csv

from classifiers.features import Example
from triage.errors import ImportSourceError
from triage.training.sources import load_csv, load_path, load_tree


def _mail(subject: str, body: str, sender: str = "anna@ugyfel.example") -> bytes:
    return (
        f"From: Anna <{sender}>\r\nTo: office@example.com\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


def test_csv_with_queue_labels_sender_and_duplicates(tmp_path: Path) -> None:
    examples, labels = dataset(2)
    path = write_csv(tmp_path / "labels.csv", [*examples, examples[0]], [*labels, labels[0]])
    data = load_csv(path)
    assert data.examples == tuple(examples)
    assert data.labels == tuple(labels)
    assert data.duplicates == 1
    assert data.source == str(path)
    assert load_path(path).labels == data.labels


def test_csv_label_column_is_chosen_and_empty_labels_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "Subject,Body,Priority,queue\n"
        'Számla,"Hibás, az összeg\nmásodik sor",high,billing\n'
        "Meeting,Friday?,,scheduling\n",
        encoding="utf-8-sig",  # a BOM, as spreadsheet programs write it
    )
    data = load_csv(path, label="priority")
    assert data.examples == (Example("Számla", "Hibás, az összeg\nmásodik sor"),)
    assert data.labels == ("high",)
    assert data.skipped == 1


def test_csv_without_the_label_column_names_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("subject,body,category\nA,B,c\n", encoding="utf-8")
    with pytest.raises(
        ImportSourceError, match=r"no column 'queue' \(columns: subject, body, category\)"
    ):
        load_csv(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        ("subject,body,queue\nSzámla,x,billing\n".encode("latin-1"), "not UTF-8"),
        (b"subject,body,queue\n,,billing\n", "no row has a 'queue' label"),
    ],
)
def test_bad_csv_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportSourceError, match=message):
        load_path(path)


def test_missing_path_and_other_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportSourceError, match="no such file or directory"):
        load_path(tmp_path / "nope.csv")
    other = tmp_path / "inbox.mbox"
    other.write_bytes(b"From x\n")
    with pytest.raises(ImportSourceError, match=r"expected a \.csv file, a \.jsonl file"):
        load_path(other)


def test_newsgroup_layout_folders_are_labels_parsed_by_our_parser(tmp_path: Path) -> None:
    (tmp_path / "sci.med").mkdir()
    (tmp_path / "rec.autos").mkdir()
    (tmp_path / "sci.med" / "58045").write_bytes(_mail("Gaucher's disease", "Any info?"))
    (tmp_path / "rec.autos" / "101").write_bytes(
        _mail("Brakes", "Squeaking brakes", "b@car.example")
    )
    (tmp_path / "README").write_text("not a label")
    data = load_tree(tmp_path)
    assert data.labels == ("rec.autos", "sci.med")
    first = data.examples[0]
    # the parser's line ends are its business: compare the text
    assert (first.subject, first.body.strip(), first.sender) == (
        "Brakes",
        "Squeaking brakes",
        "car.example",
    )


def test_maildir_folders_are_labels_and_maildir_internals_are_skipped(tmp_path: Path) -> None:
    for folder in (
        "cur",
        "new",
        "tmp",
        ".billing/cur",
        ".billing/new",
        ".billing/tmp",
        ".records/cur",
    ):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "cur" / "1.host:2,S").write_bytes(_mail("Inbox", "unlabeled"))
    (tmp_path / ".billing" / "cur" / "2.host:2,S").write_bytes(_mail("Számla", "Fizetés"))
    (tmp_path / ".billing" / "new" / "3.host").write_bytes(_mail("Invoice", "Paid"))
    (tmp_path / ".billing" / "tmp" / "4.host").write_bytes(_mail("half", "delivered"))
    (tmp_path / ".billing" / "maildirfolder").write_bytes(b"")
    (tmp_path / ".billing" / "dovecot-uidlist").write_bytes(b"3 V1 N1\n")
    (tmp_path / ".records" / "cur" / "5.host:2,").write_bytes(_mail("Receipts", "Attached"))
    data = load_tree(tmp_path)
    assert sorted(zip(data.labels, (e.subject for e in data.examples), strict=True)) == [
        ("billing", "Invoice"),
        ("billing", "Számla"),
        ("records", "Receipts"),
    ]


def test_a_directory_without_labeled_messages_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty-label").mkdir()
    (tmp_path / "stray.eml").write_bytes(_mail("x", "y"))
    with pytest.raises(ImportSourceError, match="no labeled messages"):
        load_tree(tmp_path)
    with pytest.raises(ImportSourceError, match="not a directory"):
        load_tree(tmp_path / "stray.eml")
