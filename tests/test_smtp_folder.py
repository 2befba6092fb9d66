"""FolderSender: the dry run writes each mail as a complete, parseable .eml file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from triage.errors import TemporarySendError
from triage.outbox import build_mail
from triage.smtp import FolderSender, OutgoingMail


def hungarian_mail(outbox_id: int | None = 12) -> OutgoingMail:
    raw = build_mail(
        message_id="<ack.1042.f00d@example.com>",
        sender=("Példa Iroda", "inbox@example.com"),
        to=[("Kovács Ödön", "odon@example.net")],
        subject="Re: Számla kérdés – sürgős [#1042]",
        body="Köszönjük levelét, megkaptuk: #1042.\n",
        now=datetime(2024, 5, 14, 11, 0, tzinfo=UTC),
        auto_submitted="auto-replied",
    )
    return OutgoingMail(
        message_id="<ack.1042.f00d@example.com>",
        mail_from="inbox@example.com",
        rcpt_to=("odon@example.net",),
        raw=raw,
        outbox_id=outbox_id,
    )


def test_writes_a_parseable_eml_named_by_outbox_id_and_message_id(tmp_path: Path) -> None:
    sender = FolderSender(tmp_path / "outbox")
    receipt = asyncio.run(sender.send(hungarian_mail()))
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == ["00000012-ack.1042.f00d@example.com.eml"]
    assert str(files[0]) in receipt.reply
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Re: Számla kérdés – sürgős [#1042]"
    assert msg["To"] == "Kovács Ödön <odon@example.net>"
    assert msg["Message-ID"] == "<ack.1042.f00d@example.com>"
    body = msg.get_body()
    assert body is not None
    assert body.get_content().splitlines() == ["Köszönjük levelét, megkaptuk: #1042."]
    assert b"\r\n" in files[0].read_bytes()


def test_writing_again_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    sender = FolderSender(tmp_path)
    asyncio.run(sender.send(hungarian_mail()))
    asyncio.run(sender.send(hungarian_mail()))
    assert [f.name for f in tmp_path.iterdir()] == ["00000012-ack.1042.f00d@example.com.eml"]


def test_without_an_outbox_id_the_message_id_names_the_file(tmp_path: Path) -> None:
    asyncio.run(FolderSender(tmp_path).send(hungarian_mail(outbox_id=None)))
    assert [f.name for f in tmp_path.iterdir()] == ["ack.1042.f00d@example.com.eml"]


def test_unwritable_folder_is_a_temporary_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TemporarySendError, match="cannot write"):
        asyncio.run(FolderSender(blocker / "outbox").send(hungarian_mail()))
