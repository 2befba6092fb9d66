"""Message-ID normalisation (issue 12.2): one normal form for storage and lookup alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import select, text

from triage.mail import parse_message
from triage.mail.ids import msg_ids, normalize_msg_id
from triage.store import Database
from triage.store.db import alembic_config
from triage.store.models import Message, OutboxMail, Ticket
from triage.tickets import find_ticket

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc.123@example.com>", "<abc.123@example.com>"),
        ("abc.123@example.com", "<abc.123@example.com>"),  # bare (some clients, list software)
        ("<abc.123@EXAMPLE.Com>", "<abc.123@example.com>"),  # domain case (RFC 5321 2.4)
        ("<ABC.123@example.com>", "<ABC.123@example.com>"),  # the id-left is case-sensitive
        ("<<abc@example.com>>", "<abc@example.com>"),  # doubled brackets
        ("< abc@example.com >", "<abc@example.com>"),  # white space inside the brackets
        ("<abc@ example.com>", "<abc@example.com>"),  # folded after the @ and unfolded
        ("<CAKx7Yq-long-part1 part2@mail.gmail.com>", "<CAKx7Yq-long-part1part2@mail.gmail.com>"),
        ("<abc@example.com> (Kovacs Odon's message of 14 May)", "<abc@example.com>"),
        ("(a comment (nested <x@y>)) <abc@example.com>", "<abc@example.com>"),
        ('Your message of "Tue, 14 May 2024 09:12" <abc@example.com>', "<abc@example.com>"),
        ("<abc@example.com> from odon@client.example", "<abc@example.com>"),
        ('<"abc"@example.com>', "<abc@example.com>"),  # obsolete quoted id-left
        ('<"a b"@example.com>', '<"a b"@example.com>'),
        ("<abc@example.com", "<abc@example.com>"),  # unclosed
        ("abc@example.com.", "<abc@example.com>"),  # sentence punctuation
        ("<1234567>", "<1234567>"),  # no @: kept as written
        ("", ""),
        ("<>", ""),
        ("<@example.com>", ""),
        ("not an id", ""),
    ],
)
def test_one_normal_form(value, expected):
    assert normalize_msg_id(value) == expected


def test_several_ids_with_commas_junk_and_repeats_keep_their_order():
    value = "<a@x.example>,<b@Y.example>\t<c@z.example> ; <A@X.EXAMPLE> <b@y.example>"
    assert msg_ids(value) == ["<a@x.example>", "<b@y.example>", "<c@z.example>", "<A@x.example>"]


def test_bare_ids_in_references_count_when_no_id_is_bracketed():
    assert msg_ids("a@x.example b@y.example") == ["<a@x.example>", "<b@y.example>"]


def test_the_parser_stores_every_threading_header_in_the_normal_form():
    raw = (
        b"From: odon@client.example\r\nSubject: Re: invoice\r\n"
        b"Message-ID: <Reply.1@Client.Example>\r\n"
        b"In-Reply-To: ack.1042.ff@Example.Test (our acknowledgment)\r\n"
        b"References: <first@client.example>\r\n <ack.1042.ff@\r\n EXAMPLE.test>\r\n\r\nthanks\r\n"
    )
    parsed = parse_message(raw, received_at=T0)
    assert parsed.message_id == "<Reply.1@client.example>"
    assert parsed.in_reply_to == "<ack.1042.ff@example.test>"
    assert parsed.references == ("<first@client.example>", "<ack.1042.ff@example.test>")


def _ticket_with(session, message_id: str) -> Ticket:
    ticket = Ticket(queue="billing", priority="normal", opened_at=T0, ref=1042)
    session.add(ticket)
    session.flush()
    session.add(
        Message(
            source="imap", direction="in", message_id=message_id, raw_sha256="0" * 64,
            raw=b"x", raw_size=1, received_at=T0, ticket_id=ticket.id, from_addr="o@c.example",
        )
    )  # fmt: skip
    return ticket


@pytest.mark.parametrize(
    "written",
    ["first@Client.Example", "<first@client.example> (comment)", "< first@CLIENT.example >"],
)
def test_find_ticket_looks_up_the_normal_form(database: Database, written):
    with database.session() as s:
        _ticket_with(s, "<first@client.example>")
    with database.session() as s:
        assert find_ticket(s, in_reply_to=written) is not None
        assert find_ticket(s, references=["<other@x.example>", written]) is not None


def test_the_migration_normalises_ids_stored_by_older_versions(sqlite_url):
    """Rows written at revision 0002 (plain SQL: the models have moved on since)."""
    db = Database.open(sqlite_url, migrate=False)
    try:
        cfg = alembic_config(db.engine)
        command.upgrade(cfg, "0002")
        common = (
            "source, direction, message_id_synthetic, raw_sha256, raw, raw_size, received_at,"
            " from_addr, from_name, to_addrs, cc_addrs, reply_to, subject, body_text,"
            " quoted_text, signature, attachments, language, kind, list_id, parse_status,"
            " parse_error, charset_fallback, body_missing, created_at"
        )
        values = (
            "'imap', 'in', 0, :sha, x'00', 1, '2024-05-14 09:00:00', 'o@c.example', '',"
            " '[]', '[]', '[]', '', '', '', '', '[]', '', 'normal', '', 'ok', '', 0, 0,"
            " '2024-05-14 09:00:00'"
        )
        insert_message = " ".join(
            [
                'INSERT INTO messages (message_id, in_reply_to, "references",',
                f"delivery_report, ticket_id, {common})",
                f"VALUES (:mid, :irt, :refs, :dr, 1, {values})",
            ]
        )
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tickets (id, ref, queue, priority, status, subject, client_addr,"
                    " client_name, decided_by, tags, created_at, updated_at, opened_at, version)"
                    " VALUES (1, 1042, 'billing', 'normal', 'new', '', '', '', 'fallback', '[]',"
                    " '2024-05-14 09:00:00', '2024-05-14 09:00:00', '2024-05-14 09:00:00', 1)"
                )
            )
            conn.execute(
                text(insert_message),
                [
                    {"mid": "<first@CLIENT.example>", "irt": "", "refs": "[]", "dr": None,
                     "sha": "0" * 64},
                    {"mid": "<reply@Client.Example>", "irt": "<first@CLIENT.example>",
                     "refs": '["<first@CLIENT.example>", "junk", "<ack.1@Example.Test>"]',
                     "dr": '{"status": "5.1.1", "original_message_id": "<x@Y.example>"}',
                     "sha": "1" * 64},
                ],
            )  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO outbox (kind, ticket_id, message_id, mail_from, rcpt_to,"
                    " rcpt_key, raw, status, attempts, next_attempt_at, last_error, created_at)"
                    " VALUES ('ack', 1, '<ack.1@Example.Test>', 'a@example.test', '[]', '',"
                    " x'00', 'sent', 1, '2024-05-14 09:00:00', '', '2024-05-14 09:00:00')"
                )
            )
        db.migrate()
        with db.read_session() as s:
            first, reply = s.scalars(select(Message).order_by(Message.id)).all()
            assert first.message_id == "<first@client.example>"
            assert reply.message_id == "<reply@client.example>"
            assert reply.in_reply_to == "<first@client.example>"
            assert reply.references == ["<first@client.example>", "<ack.1@example.test>"]
            assert reply.delivery_report == {
                "status": "5.1.1",
                "original_message_id": "<x@y.example>",
            }
            assert s.scalars(select(OutboxMail.message_id)).one() == "<ack.1@example.test>"
            # and a client writing the id in another case still finds the old ticket
            assert find_ticket(s, in_reply_to="<first@client.EXAMPLE>") is not None
            assert find_ticket(s, in_reply_to="<ack.1@EXAMPLE.test>") is not None
    finally:
        db.dispose()
