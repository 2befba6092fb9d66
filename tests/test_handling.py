"""The decision package: the tables, their trail, one reason, lazy facts. Pure; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rules.model import RuleDecision
from triage.config import Settings, parse_config
from triage.domain import Address, InboundMessage, MessageKind, ParseStatus
from triage.handling import (
    ACK_POLICY,
    ACKNOWLEDGMENT,
    DISPOSITION,
    NOTE_KINDS,
    Acknowledge,
    AckReason,
    Action,
    Decision,
    EarlierCopy,
    Facts,
    FixedFacts,
    NoAck,
    Predictions,
    SentAck,
    ThreadFact,
    TicketFact,
    decide,
)
from triage.handling.replay import StoredOutcome, compare_decisions, stored_action

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
TICKET = TicketFact(id=7, ref=1007, queue="billing", priority="high", decided_by="rule")


def make_settings(tmp_path: Path) -> Settings:
    return parse_config(
        {
            "team": {"addresses": ["Office <office@example.com>"]},
            "queues": {"billing": {}, "general": {}},
            "routing": {"fallback_queue": "general"},
            "smtp": {"mode": "folder", "from_address": "Support <support@example.org>"},
        },
        source="test.toml",
        base_dir=tmp_path,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def message(**fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "message_id": "<m1@mail.example.com>",
        "subject": "Invoice question",
        "received_at": NOW,
        "from_": Address("Ödön Kovács", "odon@example.com"),
    }
    values.update(fields)
    return InboundMessage(**values)


@dataclass
class Counting:
    """A FactSource answering like FixedFacts and counting each question."""

    fixed: FixedFacts = field(default_factory=FixedFacts)
    asked: list[str] = field(default_factory=list)

    def earlier_copy(self) -> EarlierCopy | None:
        self.asked.append("earlier_copy")
        return self.fixed.earlier_copy()

    def thread(self) -> ThreadFact | None:
        self.asked.append("thread")
        return self.fixed.thread()

    def sent_ack(self, message_id: str) -> SentAck | None:
        self.asked.append("sent_ack")
        return self.fixed.sent_ack(message_id)

    def rules(self) -> RuleDecision | None:
        self.asked.append("rules")
        return self.fixed.rules()

    def predictions(self) -> Predictions:
        self.asked.append("predictions")
        return self.fixed.predictions()

    def recent_acks(self) -> int:
        self.asked.append("recent_acks")
        return self.fixed.recent_acks()

    def answered_ack(self) -> str:
        self.asked.append("answered_ack")
        return self.fixed.answered_ack()

    def repeat_of(self) -> str:
        self.asked.append("repeat_of")
        return self.fixed.repeat_of()


def run(
    settings: Settings, msg: InboundMessage, source: Any = None, **facts: Any
) -> tuple[Decision, list[str]]:
    counting = source if isinstance(source, Counting) else Counting(source or FixedFacts())
    decision = decide(Facts(message=msg, settings=settings, now=NOW, source=counting, **facts))
    return decision, counting.asked


def test_a_new_client_mail_opens_a_ticket_and_is_acknowledged_with_a_full_trail(
    settings: Settings,
) -> None:
    decision, asked = run(settings, message())
    assert decision.action is Action.OPEN
    assert decision.ack == Acknowledge("")
    assert decision.route.queue == "general"  # no rule, no model: the fallback queue
    hits = [(h.table, h.check) for h in decision.trail if h.matched]
    assert hits == [("disposition", "opens_ticket"), ("acknowledgment", "acknowledge")]
    looked = [h.check for h in decision.trail]
    assert looked == [link.name for link in DISPOSITION] + [link.name for link in ACKNOWLEDGMENT]
    assert decision.checks[0] == ["disposition", "imported_history", False]
    # every fact was needed once, and no more
    assert sorted(asked) == sorted(set(asked))
    assert set(asked) == {
        "earlier_copy",
        "thread",
        "rules",
        "predictions",
        "answered_ack",
        "repeat_of",
        "recent_acks",
    }


def test_imported_history_that_opens_no_ticket_asks_the_store_nothing(
    settings: Settings,
) -> None:
    decision, asked = run(settings, message(), imported=True, open_import_tickets=False)
    assert decision.action is Action.STORE
    assert decision.ack == NoAck(AckReason.IMPORT)
    assert decision.route.explanation == ("imported history",)
    assert asked == []


def test_a_bounce_the_headers_refuse_costs_no_acknowledgment_lookups(
    settings: Settings,
) -> None:
    bounce = message(kind=MessageKind.BOUNCE, kind_reason="a DSN")
    decision, asked = run(settings, bounce)
    assert decision.action is Action.STORE
    assert decision.ack == NoAck(AckReason.BOUNCE)
    assert asked == ["earlier_copy", "thread"]  # no rules, model, counts or repeat check
    # a rule routing an auto-reply to a queue opens it, still without acknowledgment
    auto = message(kind=MessageKind.AUTO_REPLY, kind_reason="Auto-Submitted: auto-replied")
    opened, asked = run(settings, auto, FixedFacts(rule_decision=RuleDecision(queue="billing")))
    assert opened.action is Action.OPEN
    assert opened.ack_reason is AckReason.AUTO_REPLY
    assert "recent_acks" not in asked
    assert "repeat_of" not in asked


def test_a_duplicate_is_filed_with_the_first_copys_ticket_before_anything_else(
    settings: Settings,
) -> None:
    decision, asked = run(settings, message(), FixedFacts(copy=EarlierCopy(3, TICKET)))
    assert decision.action is Action.DUPLICATE
    assert (decision.ticket_id, decision.duplicate_of) == (7, 3)
    assert decision.ack == NoAck(AckReason.DUPLICATE)
    assert decision.route.queue == "billing"
    assert asked == ["earlier_copy"]
    alone, _ = run(settings, message(), FixedFacts(copy=EarlierCopy(3, None)))
    assert alone.action is Action.DUPLICATE
    assert alone.ticket_id is None
    assert alone.route.queue == ""


def test_a_reply_joins_and_a_rule_escalation_goes_with_it_but_not_with_a_note(
    settings: Settings,
) -> None:
    thread = ThreadFact(TICKET, "in_reply_to", "<ack.1007@example.org>")
    rules = RuleDecision(escalate=("rule 'legal': threat",))
    decision, _ = run(settings, message(), FixedFacts(joins=thread, rule_decision=rules))
    assert decision.action is Action.JOIN
    assert decision.ack == NoAck(AckReason.FOLLOW_UP)
    assert decision.escalate == ("rule 'legal': threat",)
    assert not decision.note
    auto = message(kind=MessageKind.AUTO_REPLY, kind_reason="out of office")
    note, _ = run(settings, auto, FixedFacts(joins=thread, rule_decision=rules))
    assert note.note
    assert note.ack == NoAck(AckReason.AUTO_REPLY)
    assert note.escalate == ()


def test_a_quick_answer_to_our_acknowledgment_is_an_auto_responders_note(
    settings: Settings,
) -> None:
    thread = ThreadFact(TICKET, "in_reply_to", "<ack.1007@example.org>")
    sent = (("<ack.1007@example.org>", SentAck(NOW - timedelta(seconds=20))),)
    reply = message(subject="Re: [#1007] Invoice question")
    decision, asked = run(settings, reply, FixedFacts(joins=thread, acks=sent))
    assert decision.action is Action.JOIN
    assert decision.note
    assert decision.kind is MessageKind.AUTO_REPLY
    assert decision.ack == NoAck(AckReason.AUTO_REPLY)
    assert "auto-responder" in decision.via
    assert asked.count("sent_ack") == 1
    person, _ = run(
        settings,
        reply,
        FixedFacts(
            joins=thread, acks=(("<ack.1007@example.org>", SentAck(NOW - timedelta(hours=2))),)
        ),
    )
    assert not person.note
    assert person.ack == NoAck(AckReason.FOLLOW_UP)


def test_the_rules_template_is_the_acknowledgment_and_their_no_ack_a_reason(
    settings: Settings,
) -> None:
    vip = RuleDecision(queue="billing", ack_template="vip")
    decision, _ = run(settings, message(), FixedFacts(rule_decision=vip))
    assert decision.ack == Acknowledge("vip")
    quiet = RuleDecision(queue="billing", suppress_ack=True)
    decision, _ = run(settings, message(), FixedFacts(rule_decision=quiet))
    assert decision.ack == NoAck(AckReason.RULE, "a rule marked it: no acknowledgment")
    assert (
        decision.route.explanation[-1] == "no acknowledgment: a rule marked it: no acknowledgment"
    )


def test_how_the_message_came_in_decides_before_the_policy(settings: Settings) -> None:
    unparsed = message(parse_status=ParseStatus.ERROR, parse_error="boom")
    decision, asked = run(settings, unparsed)
    assert decision.action is Action.OPEN
    assert decision.ack == NoAck(AckReason.PARSE_ERROR)
    assert decision.route.queue == "general"
    assert "thread" not in asked  # an unparsable mail's headers join nothing
    no_smtp, _ = run(settings, message(), can_send=False)
    assert no_smtp.ack == NoAck(AckReason.NO_SMTP)
    imported, _ = run(settings, message(), imported=True)
    assert imported.ack == NoAck(AckReason.IMPORT)
    demo, _ = run(settings, message(), imported=True, acknowledge_imports=True)
    assert demo.ack == Acknowledge("")


def test_every_ack_reason_is_the_outcome_of_a_row_or_a_notes_kind() -> None:
    outcomes = {link.outcome for link in ACKNOWLEDGMENT} | {link.outcome[1] for link in DISPOSITION}
    notes = {AckReason.of_note(kind) for kind in NOTE_KINDS}
    assert (outcomes | notes) - {None} == set(AckReason)
    assert ACK_POLICY[-1].outcome is None  # the last row acknowledges


# -- comparing a replayed decision with the stored one (triage rules test) --------------


def stored(action: Action, queue: str = "general", **fields: Any) -> StoredOutcome:
    values: dict[str, Any] = {"priority": "normal", "decided_by": "fallback", "ack": ""}
    values.update(fields)
    return StoredOutcome(action=action, queue=queue, **values)


def test_the_same_decision_replayed_is_no_change(settings: Settings) -> None:
    decision, _ = run(settings, message())
    assert compare_decisions(stored(Action.OPEN), decision) == ()


def test_a_rule_that_now_decides_changes_queue_priority_and_acknowledgment(
    settings: Settings,
) -> None:
    from rules import parse_rules  # noqa: PLC0415 - the rule file is the test's input

    rules = parse_rules(
        "[[rule]]\nname = 'inv'\nwhen = { field = 'subject', contains = 'invoice' }\n"
        "then = { queue = 'billing', priority = 'high', no_ack = true }\n"
    ).evaluate(message())
    decision, _ = run(settings, message(), FixedFacts(rule_decision=rules))
    changes = [str(c) for c in compare_decisions(stored(Action.OPEN), decision)]
    assert changes[0].startswith("queue: general -> billing  (rule 'inv': subject")
    assert changes[1].startswith("priority: normal -> high  (rule 'inv'")
    assert changes[2] == ("acknowledgment: queued -> rule  (a rule marked it: no acknowledgment)")


def test_what_became_of_it_is_compared_and_a_joined_messages_queue_is_not(
    settings: Settings,
) -> None:
    thread = ThreadFact(TICKET, "the thread as stored", "")
    joined, _ = run(settings, message(), FixedFacts(joins=thread))
    # the ticket was moved since: its queue is the ticket's, not a change of the decision
    before = stored(Action.JOIN, "records", ack="follow_up")
    assert compare_decisions(before, joined) == ()
    opened, _ = run(settings, message())
    assert [str(c) for c in compare_decisions(before, opened)] == [
        "action: join -> open",
        "acknowledgment: follow_up -> queued",
    ]
    assert stored_action("", "no_reply_sender", ()) is Action.STORE
    assert stored_action("billing", "duplicate", ()) is Action.DUPLICATE
    assert stored_action("billing", "follow_up", ("joined ticket #1007 by x",)) is Action.JOIN
    assert stored_action("billing", "", ("rule 'inv': ...",)) is Action.OPEN
