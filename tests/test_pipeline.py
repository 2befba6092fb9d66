"""The routing pipeline inside intake's per-message transaction, on real mail.

Each test stores real raw messages (the shared cases, the demo's sample mail)
through :class:`Intake` with the :class:`RoutingPipeline` and checks the rows that
committed: message, routing decision, ticket, escalation, outbox.
"""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from classifiers.model import TrainedModel, train
from rules import parse_rules
from triage.assembly import assemble
from triage.cli.ticket_text import render_ticket
from triage.clock import FixedClock
from triage.config import Settings, load_config
from triage.desk import TicketDesk
from triage.imap.responses import FetchedMessage
from triage.imap.watch import StoreOutcome, SyncPlan
from triage.outbox import AckReason
from triage.services.pipeline import ModelHolder, RoutingPipeline, RulesHolder
from triage.store import Database
from triage.store.models import Escalation, Message, OutboxMail, RoutingDecision, Ticket
from triage.training.sources import load_csv

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # Tuesday 11:00 in Budapest


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    data = load_csv(ROOT / "triage" / "demo" / "data" / "training.csv")
    return train(list(data.examples), list(data.labels), trained_at=NOW)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///triage.db"', f'url = "{db_url}"')
    text = text.replace('mode = "send"', 'mode = "folder"')
    path = tmp_path / "triage.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


class Inbox:
    """Stores raw mail as if fetched from INBOX (UIDs 1, 2, ...), through the pipeline."""

    def __init__(self, db: Database, settings: Settings, model: TrainedModel | None) -> None:
        self.clock = FixedClock(NOW)
        # The composition root, as `triage run` and `triage import` assemble it.
        parts = assemble(
            settings, db, clock=self.clock, models=ModelHolder(queue=model), poll=False
        )
        assert parts.pipeline is not None
        self.pipeline: RoutingPipeline = parts.pipeline
        self.intake = parts.intake
        self.db = db
        self.uid = 0

    def deliver(self, raw: bytes, *, at: datetime = NOW) -> Message:
        self.uid += 1
        plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=self.uid)
        outcome = self.intake.store(plan, FetchedMessage(self.uid, raw, at, len(raw)))
        assert outcome in {StoreOutcome.STORED, StoreOutcome.ERROR}
        with self.db.session() as s:
            return s.scalars(select(Message).where(Message.uid == self.uid)).one()


@pytest.fixture
def inbox(database: Database, settings: Settings, model: TrainedModel) -> Inbox:
    return Inbox(database, settings, model)


def mail(frm: str, subject: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = "Example Office <inbox@example.com>"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 +0000"
    msg["Message-ID"] = headers.pop(
        "message_id", f"<{abs(hash((frm, subject, body)))}@client.example>"
    )
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def rows(db: Database, model: type, **where: object) -> list:
    with db.session() as s:
        query = select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return list(s.scalars(query))


def test_new_client_mail_opens_a_ticket_with_deadline_decision_and_ack(
    inbox: Inbox, database: Database
) -> None:
    raw = mail(
        "Emma Walker <emma.walker@bakery-example.com>",
        "Question about invoice 2026112",
        "Hello, the amount on invoice 2026112 is wrong. Could you check it?",
    )
    row = inbox.deliver(raw)
    [ticket] = rows(database, Ticket)
    assert row.ticket_id == ticket.id
    assert ticket.ref == 1000 + ticket.id
    assert ticket.queue == "billing"
    assert ticket.decided_by == "rule"  # the shipped 'invoice' rule
    # 11:00 Budapest + 4 business hours, with the 12:00-13:00 lunch break: 16:00 Budapest
    assert ticket.first_response_due == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    [decision] = rows(database, RoutingDecision)
    assert decision.message_id == row.id
    assert decision.ticket_id == ticket.id
    assert decision.rules_matched[0] == "invoice"
    assert any("rule 'invoice'" in line for line in decision.explanation)
    assert decision.ack == ""
    [ack] = rows(database, OutboxMail)
    assert ack.kind == "ack"
    assert ack.dedupe_key == f"ack:{row.id}"
    assert ack.rcpt_to == ["emma.walker@bakery-example.com"]
    sent = email.message_from_bytes(ack.raw, policy=policy.default)
    assert f"#{ticket.ref}" in str(sent["Subject"])
    assert sent["In-Reply-To"] == row.message_id
    assert sent["Auto-Submitted"] == "auto-replied"


def test_model_routes_when_no_rule_decides(inbox: Inbox, database: Database) -> None:
    inbox.deliver(
        mail(
            "Oliver Hale <oliver.hale@nordwind.example>",
            "Documents for the accountant",
            "Hello, please prepare the annual records folder for the accountant: receipts,"
            " statements and contracts.",
        )
    )
    [decision] = rows(database, RoutingDecision)
    assert decision.decided_by == "model"
    assert decision.queue == "records"
    assert decision.confidence is not None
    assert decision.confidence >= 0.6
    assert decision.model_version.startswith("queue-")
    assert decision.probabilities[0][0] == "records"


def test_unsure_model_goes_to_fallback_with_its_reason(
    database: Database, settings: Settings, model: TrainedModel
) -> None:
    strict = settings.model_copy(
        update={"routing": settings.routing.model_copy(update={"confidence_threshold": 0.9})}
    )
    inbox = Inbox(database, strict, model)
    # German: the model knows neither the words nor the sender, so it is unsure
    inbox.deliver(
        mail("Jonas Becker <j.becker@beispiel.example>", "Rückruf", "Bitte rufen Sie mich zurück.")
    )
    [ticket] = rows(database, Ticket)
    assert (ticket.queue, ticket.decided_by) == ("unsorted", "fallback")
    [decision] = rows(database, RoutingDecision)
    assert decision.confidence is not None
    assert decision.confidence < 0.9
    assert "under the threshold 0.90" in decision.explanation[-1]


def test_no_model_routes_by_rules_and_fallback(database: Database, settings: Settings) -> None:
    inbox = Inbox(database, settings, model=None)
    inbox.deliver(mail("A <a@client.example>", "Hello", "Can you call me?"))
    [decision] = rows(database, RoutingDecision)
    assert decision.decided_by == "fallback"
    assert "no classifier model is active" in decision.explanation[-1]


def test_reply_joins_its_ticket_without_ack(inbox: Inbox, database: Database) -> None:
    first = inbox.deliver(
        mail(
            "Emma Walker <emma.walker@bakery-example.com>",
            "Invoice 17 looks wrong",
            "Please check invoice 17.",
            message_id="<first@bakery-example.com>",
        )
    )
    inbox.deliver(
        mail(
            "Emma Walker <emma.walker@bakery-example.com>",
            "Re: Invoice 17 looks wrong",
            "One more detail.",
            In_Reply_To="<first@bakery-example.com>",
            References="<first@bakery-example.com>",
        )
    )
    [ticket] = rows(database, Ticket)
    messages = rows(database, Message)
    assert {m.ticket_id for m in messages} == {ticket.id}
    assert len(rows(database, OutboxMail)) == 1  # only the first mail's ack
    decisions = {d.message_id: d for d in rows(database, RoutingDecision)}
    second = next(m for m in messages if m.id != first.id)
    assert decisions[second.id].ack == "follow_up"
    assert (
        decisions[second.id]
        .explanation[0]
        .startswith(f"joined ticket #{ticket.ref} by in_reply_to")
    )


def test_client_replying_to_our_ack_joins_by_its_message_id(
    inbox: Inbox, database: Database
) -> None:
    inbox.deliver(mail("C <c@client.example>", "Invoice 5", "Check invoice 5 please."))
    [ack] = rows(database, OutboxMail)
    inbox.deliver(mail("C <c@client.example>", "Re: thanks", "Thanks!", In_Reply_To=ack.message_id))
    assert len(rows(database, Ticket)) == 1
    assert len(rows(database, OutboxMail)) == 1


def test_b13_auto_reply_threads_as_a_note_no_ack_no_reopen(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    raw = (cases_dir / "B13-out-of-office-autoreply.eml").read_bytes()
    # a ticket #4711 exists (the auto-reply answers its acknowledgment)
    with database.session() as s:
        ticket = Ticket(
            id=3711, ref=4711, queue="billing", priority="normal", status="waiting",
            subject="Számla kérdés – sürgős", client_addr="client@example.net",
            opened_at=NOW - timedelta(days=1), waiting_since=NOW - timedelta(hours=2),
        )  # fmt: skip
        s.add(ticket)
    inbox.deliver(raw)
    [ticket] = rows(database, Ticket)
    assert ticket.ref == 4711
    assert ticket.status == "waiting"  # no reopen, no SLA change
    [message] = rows(database, Message)
    assert message.kind == "auto_reply"
    assert message.ticket_id == ticket.id
    assert rows(database, OutboxMail) == []
    [decision] = rows(database, RoutingDecision)
    assert decision.ack == "auto_reply"


def test_b15_bounce_opens_no_ticket_and_gets_no_ack(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    inbox.deliver((cases_dir / "B15-dsn-bounce.eml").read_bytes())
    [message] = rows(database, Message)
    assert message.kind == "bounce"
    assert message.ticket_id is None
    assert rows(database, Ticket) == []
    assert rows(database, OutboxMail) == []
    [decision] = rows(database, RoutingDecision)
    assert decision.ack == "bounce"
    assert "nincs.ilyen@example.net" in decision.explanation[0]


def test_b15_bounce_of_our_ack_is_a_note_on_its_ticket(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    raw = (cases_dir / "B15-dsn-bounce.eml").read_bytes()
    from triage.mail import parse_message  # noqa: PLC0415

    report = parse_message(raw).delivery_report
    assert report is not None
    assert report.original_message_id
    with database.session() as s:
        s.add(
            Ticket(
                id=3713, ref=4713, queue="billing", priority="normal", status="new",
                client_addr="nincs.ilyen@example.net", opened_at=NOW - timedelta(hours=1),
            )
        )  # fmt: skip
        s.flush()
        s.add(
            OutboxMail(
                kind="ack", ticket_id=3713, message_id=report.original_message_id,
                mail_from="inbox@example.com", rcpt_to=["nincs.ilyen@example.net"], raw=b"x",
                status="sent",
            )
        )  # fmt: skip
    inbox.deliver(raw)
    [message] = rows(database, Message)
    assert message.ticket_id == 3713
    assert len(rows(database, Ticket)) == 1
    assert len(rows(database, OutboxMail)) == 1  # no new mail


def test_b16_list_post_goes_to_bulk_without_sla_or_ack(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    inbox.deliver((cases_dir / "B16-mailing-list-post.eml").read_bytes())
    [ticket] = rows(database, Ticket)
    assert (ticket.queue, ticket.priority) == ("bulk", "low")
    assert ticket.first_response_due is None
    assert rows(database, OutboxMail) == []
    [decision] = rows(database, RoutingDecision)
    assert decision.ack == "mailing_list"


def test_b25_header_injection_cannot_reach_our_ack(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    inbox.deliver((cases_dir / "B25-subject-crlf-injection.eml").read_bytes())
    [ticket] = rows(database, Ticket)
    [ack] = rows(database, OutboxMail)
    head = ack.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    assert head.lower().count(b"\nsubject:") + head.lower().startswith(b"subject:") == 1
    assert b"\nbcc:" not in head.lower()
    [message] = rows(database, Message)
    assert ack.rcpt_to == [message.from_addr.lower()] or ack.rcpt_to == [message.from_addr]
    sent = email.message_from_bytes(ack.raw, policy=policy.default)
    assert "Jelszó visszaállítás Bcc: leak@example.net" in str(sent["Subject"])
    assert f"[#{ticket.ref}]" in str(sent["Subject"])
    assert sent["Bcc"] is None


def test_legal_threat_escalates_to_owners_at_once(inbox: Inbox, database: Database) -> None:
    inbox.deliver(
        mail(
            "Angry <angry@dispute.example>",
            "Final notice",
            "If you do not refund this week, our lawyer will start legal action.",
        )
    )
    [ticket] = rows(database, Ticket)
    assert ticket.priority == "urgent"
    [escalation] = rows(database, Escalation)
    assert escalation.kind == "rule"
    assert "legal" in escalation.reason


def test_unparsable_mail_is_kept_raw_and_goes_to_fallback(
    inbox: Inbox, database: Database, cases_dir: Path
) -> None:
    raw = (cases_dir / "B21-deeply-nested-mime.eml").read_bytes()
    inbox.deliver(raw)
    [message] = rows(database, Message)
    assert message.raw == raw
    assert message.parse_status == "truncated_depth"
    [ticket] = rows(database, Ticket)  # a ticket is created, a person sorts it
    assert message.ticket_id == ticket.id


def test_a_failing_step_rolls_the_message_back_and_keeps_it_raw(
    database: Database, settings: Settings, model: TrainedModel
) -> None:
    inbox = Inbox(database, settings, model)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("template store unreachable")

    inbox.pipeline._acknowledge = boom  # type: ignore[method-assign]
    raw = mail("D <d@client.example>", "Invoice 9", "Check invoice 9.")
    inbox.deliver(raw)
    [message] = rows(database, Message)
    assert message.raw == raw
    assert message.parse_status == "error"
    assert "template store unreachable" in message.parse_error
    # the error record went through the pipeline again: routed to fallback, no ack
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMail)) == 0


def test_a_busy_clients_distinct_requests_are_all_acknowledged(
    inbox: Inbox, database: Database
) -> None:
    """Issue 12.6: 20 separate requests in an hour, each its own ticket and its own ack
    (the old 3-per-hour limit silenced 17 of them and told nobody)."""
    for i in range(20):
        inbox.deliver(
            mail("Busy Client <busy@client.example>", f"Request {i}", f"Please do task {i}."),
            at=NOW + timedelta(minutes=3 * i),
        )
    assert len(rows(database, Ticket)) == 20
    assert len(rows(database, OutboxMail, kind="ack")) == 20
    assert {d.ack for d in rows(database, RoutingDecision)} == {""}


def test_a_machine_repeating_itself_is_acknowledged_once_and_the_ticket_says_why(
    inbox: Inbox, database: Database, settings: Settings
) -> None:
    for i in range(6):
        inbox.deliver(
            mail(
                "Robot <robot@machine.example>",
                "Status report",
                "All systems nominal.",
                message_id=f"<status.{i}@machine.example>",
            ),
            at=NOW + timedelta(minutes=i),
        )
    assert len(rows(database, OutboxMail, kind="ack")) == 1
    decisions = rows(database, RoutingDecision)
    assert [d.ack for d in decisions] == [""] + ["repeat"] * 5
    assert any("no acknowledgment: the same subject and text as message" in line
               for line in decisions[1].explanation)  # fmt: skip
    with database.read_session() as s:
        ref = s.get_one(Ticket, decisions[-1].ticket_id).ref or 0
    desk = TicketDesk(database, settings, clock=FixedClock(NOW))
    shown = render_ticket(desk.show(ref), ZoneInfo(settings.calendar.timezone))
    assert "no acknowledgment: repeat" in shown
    assert "no acknowledgment: the same subject and text as message" in shown


def test_no_reply_notifications_open_no_ticket_unless_a_rule_sends_them_to_a_queue(
    inbox: Inbox, database: Database
) -> None:
    """Issue 12.5: a no-reply sender's mail is stored without a ticket and never
    acknowledged; a rule can still route it (a bank's payment notice is billing work)."""
    inbox.pipeline.rules = RulesHolder(
        rules=parse_rules(
            "[[rule]]\nname = 'bank-notice'\nwhen.all = [\n"
            "  { field = 'kind', equals = 'notification' },\n"
            "  { field = 'subject', contains = 'payment received' },\n]\n"
            "then = { queue = 'billing' }\n"
        )
    )
    shop = inbox.deliver(mail("Shop <noreply-7f3a91@shop.example>", "Your order", "Shipped."))
    bank = inbox.deliver(
        mail("Bank <no.reply@bank.example>", "Payment received", "EUR 120 from Kovacs.")
    )
    assert shop.kind == bank.kind == "notification"
    assert shop.ticket_id is None
    assert bank.ticket_id is not None
    [ticket] = rows(database, Ticket)
    assert ticket.queue == "billing"
    assert {d.ack for d in rows(database, RoutingDecision)} == {"no_reply_sender"}
    assert rows(database, OutboxMail, kind="ack") == []


def test_old_mail_found_at_first_start_gets_a_ticket_but_no_ack(
    inbox: Inbox, database: Database
) -> None:
    """An inbox full of week-old mail: every one filed, none answered (acknowledgments.max_age)."""
    week_old = inbox.deliver(
        mail("Old Client <old@client.example>", "Invoice question", "From last week."),
        at=NOW - timedelta(days=7),
    )
    fresh = inbox.deliver(
        mail("New Client <new@client.example>", "Invoice question", "From this morning."),
        at=NOW - timedelta(hours=1),
    )
    assert week_old.ticket_id is not None
    assert fresh.ticket_id is not None
    decisions = {d.message_id: d.ack for d in rows(database, RoutingDecision)}
    assert decisions == {week_old.id: "too_old", fresh.id: ""}
    [ack] = rows(database, OutboxMail, kind="ack")
    assert ack.rcpt_to == ["new@client.example"]


def test_the_same_mail_delivered_twice_is_one_ticket_and_one_ack(
    inbox: Inbox, database: Database
) -> None:
    raw = mail("Emma <emma@bakery-example.com>", "Invoice 77", "Is invoice 77 paid?")
    first = inbox.deliver(raw)
    second = inbox.deliver(raw.replace(b"Subject:", b"Received: from relay2\r\nSubject:"))
    assert first.id != second.id  # both copies are kept
    [ticket] = rows(database, Ticket)
    assert first.ticket_id == second.ticket_id == ticket.id
    decisions = {d.message_id: d for d in rows(database, RoutingDecision)}
    assert decisions[second.id].ack == "duplicate"
    assert f"a second copy of message {first.id}" in decisions[second.id].explanation[0]
    assert len(rows(database, OutboxMail, kind="ack")) == 1


def test_a_stranger_reusing_a_message_id_cannot_take_over_the_thread(
    inbox: Inbox, database: Database
) -> None:
    """Mallory sends a mail with Alice's Message-ID; Alice's reply still joins Alice's ticket."""
    alice = inbox.deliver(
        mail("Alice <alice@client.example>", "Invoice question", "Hi", message_id="<x-42@c.ex>")
    )
    mallory = inbox.deliver(
        mail("Mallory <m@evil.example>", "Hello", "Hi there", message_id="<x-42@c.ex>")
    )
    assert mallory.ticket_id is not None
    assert mallory.ticket_id != alice.ticket_id  # not a duplicate: another sender
    follow_up = inbox.deliver(
        mail(
            "Alice <alice@client.example>",
            "Re: Invoice question",
            "My account number is in the attachment.",
            In_Reply_To="<x-42@c.ex>",
            References="<x-42@c.ex>",
        )
    )
    assert follow_up.ticket_id == alice.ticket_id


def test_a_stranger_who_used_the_message_id_first_cannot_capture_the_clients_reply(
    inbox: Inbox, database: Database
) -> None:
    """The reused Message-ID arrives BEFORE the client's own mail: her reply still joins hers."""
    mallory = inbox.deliver(
        mail("Mallory <m@evil.example>", "Hello", "Hi there", message_id="<orig-1@c.ex>")
    )
    client = inbox.deliver(
        mail(
            "Client One <c1@client.example>", "Invoice", "Where is it?", message_id="<orig-1@c.ex>"
        )
    )
    assert client.ticket_id != mallory.ticket_id
    reply = inbox.deliver(
        mail(
            "Client One <c1@client.example>",
            "Re: Invoice",
            "Any news?",
            In_Reply_To="<orig-1@c.ex>",
            References="<orig-1@c.ex>",
        )
    )
    assert reply.ticket_id == client.ticket_id


def test_a_legal_threat_in_old_mail_is_recorded_but_not_mailed_to_the_owners(
    inbox: Inbox, database: Database
) -> None:
    """History (mail older than max_age when first seen) must not flood the owners."""
    threat = "If you do not refund this week, our lawyer will start legal action."
    inbox.deliver(
        mail("Old <old@dispute.example>", "Final notice", threat), at=NOW - timedelta(days=30)
    )
    inbox.deliver(mail("New <new@dispute.example>", "Final notice", threat))
    escalations = {e.ticket_id: e for e in rows(database, Escalation)}
    tickets = {t.client_addr: t.id for t in rows(database, Ticket)}
    old, new = (
        escalations[tickets["old@dispute.example"]],
        escalations[tickets["new@dispute.example"]],
    )
    assert old.kind == new.kind == "rule"
    assert old.notified_at is not None  # marked: the outbox will not mail it
    assert new.notified_at is None  # mailed by the next SLA pass


def test_a_rules_ack_template_is_the_acknowledgment_sent(
    database: Database, settings: Settings, model: TrainedModel, tmp_path: Path
) -> None:
    """Issue 14: ``ack_template`` chose the template shown on the ticket but the queue's
    default was mailed. Now the rule's template is mailed; one that does not exist
    falls back to the queue's, and the ticket's explanation says so."""
    (tmp_path / "ack").mkdir()
    (tmp_path / "ack" / "vip.en.j2").write_text(
        "{% block body %}Dear valued client, ticket {{ ticket }} is ours.{% endblock %}\n",
        encoding="utf-8",
    )
    own = settings.acknowledgments.model_copy(update={"templates_dir": str(tmp_path)})
    inbox = Inbox(database, settings.model_copy(update={"acknowledgments": own}), model)
    inbox.pipeline.rules = RulesHolder(
        rules=parse_rules(
            "[[rule]]\nname = 'vip'\nwhen = { field = 'from', contains = 'vip.example' }\n"
            "then = { ack_template = 'vip' }\n"
            "[[rule]]\nname = 'gold'\nwhen = { field = 'from', contains = 'gold.example' }\n"
            "then = { ack_template = 'gold' }\n"
        )
    )
    vip = inbox.deliver(mail("Vera <vera@vip.example>", "Invoice 5", "Is invoice 5 paid?"))
    gold = inbox.deliver(mail("Gabor <gabor@gold.example>", "Invoice 6", "Is invoice 6 paid?"))
    acks = {a.cause_message_id: a for a in rows(database, OutboxMail, kind="ack")}

    def body(raw: bytes) -> str:
        return email.message_from_bytes(raw, policy=policy.default).get_content()  # type: ignore[attr-defined,no-any-return]

    assert "Dear valued client" in body(acks[vip.id].raw)
    assert "thank you for your message" in body(acks[gold.id].raw)
    decisions = {d.message_id: d for d in rows(database, RoutingDecision)}
    assert decisions[vip.id].ack_template == "vip"
    assert decisions[gold.id].ack == ""
    assert (
        "acknowledgment template gold not found: acknowledged with ack/default.en.j2"
        in decisions[gold.id].explanation
    )


def test_every_ack_value_written_is_an_ack_reason(
    database: Database, settings: Settings, model: TrainedModel
) -> None:
    """Issue 14: ``routing_decisions.ack`` held ad-hoc strings beside the enum. Each path
    that writes one of them is taken here; every value written is "" or an AckReason."""
    inbox = Inbox(database, settings, model)
    written: dict[str, str] = {}

    def last_ack() -> str:
        with database.session() as s:
            query = select(RoutingDecision.ack).order_by(RoutingDecision.id.desc()).limit(1)
            return s.scalars(query).one()

    emma = "Emma <emma@bakery-example.com>"
    raw = mail(emma, "Invoice 77", "Is it paid?", message_id="<e77@bakery.example>")
    inbox.deliver(raw)
    inbox.deliver(raw.replace(b"Subject:", b"Received: from relay2\r\nSubject:"))
    written["duplicate"] = last_ack()
    inbox.deliver(
        mail(
            "Shop <noreply@shop.example>",
            "Re: Invoice 77",
            "Order noted.",
            in_reply_to="<e77@bakery.example>",
        )
    )
    written["notification note"] = last_ack()

    calls = []
    original = inbox.pipeline._acknowledge

    def fail_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        # twice: the batch's transaction without savepoints, then its retry with them
        # (issue 18.2); the third call is the raw error record's
        if len(calls) <= 2:
            raise RuntimeError("template store unreachable")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    inbox.pipeline._acknowledge = fail_once  # type: ignore[method-assign]
    inbox.deliver(mail("D <d@client.example>", "Invoice 9", "Check invoice 9."))
    written["parse error"] = last_ack()
    inbox.pipeline._acknowledge = original  # type: ignore[method-assign]

    inbox.intake.import_message(mail("I <i@client.example>", "Invoice 10", "Old mail."))
    written["import"] = last_ack()
    inbox.pipeline.open_import_tickets = False
    inbox.intake.import_message(mail("J <j@client.example>", "Invoice 11", "Old mail."))
    written["import, stored only"] = last_ack()

    no_smtp = Inbox(database, settings.model_copy(update={"smtp": None}), model)
    no_smtp.uid = 100
    no_smtp.deliver(mail("K <k@client.example>", "Invoice 12", "New mail."))
    written["no smtp"] = last_ack()

    assert written == {
        "duplicate": AckReason.DUPLICATE,
        "notification note": AckReason.NO_REPLY_SENDER,
        "parse error": AckReason.PARSE_ERROR,
        "import": AckReason.IMPORT,
        "import, stored only": AckReason.IMPORT,
        "no smtp": AckReason.NO_SMTP,
    }
    with database.session() as s:
        values = set(s.scalars(select(RoutingDecision.ack)))
    assert values <= {"", *AckReason}
