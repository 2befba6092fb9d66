"""The built-in policy: what becomes of a message, and whether it is acknowledged.

Two tables of (name, check, outcome) rows, read top to bottom by :func:`first_match`:
the first row whose check matches decides, and every row looked at is recorded (the
hits and misses, :attr:`~triage.handling.decision.Decision.trail`), as GNU Mailman 3
reads its built-in chain (``src/mailman/chains/builtin.py``). A check is a pure
function of the :class:`~triage.handling.facts.Facts`; it returns the sentence a
person reads when it matches ("" when the outcome says it all), None when it does
not. Policy changes here, in the tables; :func:`decide` only assembles the value.

:data:`DISPOSITION` decides what becomes of the message; when it opens a ticket,
:data:`ACKNOWLEDGMENT` (:data:`INTAKE_ACK` then :data:`ACK_POLICY`) decides whether
the client hears from us. The header checks repeat what the parser's ``kind`` says
on purpose: they are the last guard against a mail loop (RFC 3834 section 2), so they
hold even when kind detection misses a case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Generic, TypeVar

from triage.domain import DecidedBy, MessageKind, ParseStatus, Priority
from triage.handling.checks import (
    auto_reply_sign,
    bounce_sign,
    history_age,
    list_sign,
    suppress_sign,
)
from triage.handling.decision import Acknowledge, Action, Decision, Hit, NoAck
from triage.handling.facts import Facts, TicketFact
from triage.handling.reasons import AckReason
from triage.mail.addresses import ascii_address, valid_address
from triage.mail.kind import machine_address
from triage.refs import format_ref
from triage.routing import Route, route

__all__ = [
    "ACKNOWLEDGMENT",
    "ACK_POLICY",
    "DISPOSITION",
    "INTAKE_ACK",
    "NOTE_KINDS",
    "STORED_ONLY_KINDS",
    "Link",
    "decide",
    "decide_acknowledgment",
    "first_match",
]

NOTE_KINDS = frozenset(
    {
        MessageKind.AUTO_REPLY.value,
        MessageKind.BOUNCE.value,
        MessageKind.FEEDBACK_REPORT.value,
        MessageKind.READ_RECEIPT.value,
        MessageKind.NOTIFICATION.value,
    }
)
"""Message kinds linked to a ticket as a note (machine mail): no reopening, no SLA change."""

STORED_ONLY_KINDS = frozenset(
    {
        MessageKind.BOUNCE.value,
        MessageKind.FEEDBACK_REPORT.value,
        MessageKind.READ_RECEIPT.value,
        MessageKind.NOTIFICATION.value,
    }
)
"""Machine mail that opens no ticket of its own when it concerns none (issue 12.5)."""

OutcomeT = TypeVar("OutcomeT")
Check = Callable[[Facts], "str | None"]


@dataclass(frozen=True, slots=True)
class Link(Generic[OutcomeT]):
    """One row of a table: when ``check`` matches, ``outcome`` decides.

    Attributes:
        name: a stable code, recorded in the trail.
        check: the facts in, the sentence a person reads (or "") when it matches, None
            when it does not.
        outcome: what the row decides (the table says what kind of value).
    """

    name: str
    check: Check
    outcome: OutcomeT


def first_match(
    table: str, links: Sequence[Link[OutcomeT]], facts: Facts
) -> tuple[Link[OutcomeT], str, tuple[Hit, ...]]:
    """The first row of ``links`` whose check matches ``facts``: (the row, its sentence,
    the trail of rows looked at). Each table ends with a row that always matches.

    Raises:
        LookupError: no row matched (a table without its last, catch-all row).
    """
    trail: list[Hit] = []
    for link in links:
        detail = link.check(facts)
        trail.append(Hit(table, link.name, detail is not None))
        if detail is not None:
            return link, detail, tuple(trail)
    raise LookupError(f"no row of the {table} table matched")


# -- what becomes of the message ---------------------------------------------------------


def _imported_history(facts: Facts) -> str | None:
    return "imported history" if facts.imported and not facts.open_import_tickets else None


def _earlier_copy(facts: Facts) -> str | None:
    copy = facts.earlier_copy
    if copy is None:
        return None
    if copy.ticket is None:
        return (
            f"a second copy of message {copy.id} (same Message-ID and sender),"
            " which has no ticket: kept without one"
        )
    return (
        f"a second copy of message {copy.id} (same Message-ID and sender):"
        f" filed with ticket {format_ref(copy.ticket.ref or 0)}, nothing else changes"
    )


def _joins_as_note(facts: Facts) -> str | None:
    return "" if facts.thread is not None and facts.kind in NOTE_KINDS else None


def _joins(facts: Facts) -> str | None:
    return "" if facts.thread is not None else None


def _failed(facts: Facts) -> str:
    report = facts.message.delivery_report
    if report is None or not report.failed_recipients:
        return ""
    return f" (failed: {', '.join(report.failed_recipients)})"


def _about_nothing(kind: MessageKind, what: str) -> Check:
    def check(facts: Facts) -> str | None:
        if facts.message.kind != kind:
            return None
        return f"{what} about mail no ticket knows{_failed(facts)}: kept without a ticket"

    return check


def _notification_no_rule_routes(facts: Facts) -> str | None:
    if facts.message.kind != MessageKind.NOTIFICATION:
        return None
    rules = facts.rules
    if rules is not None and rules.queue:
        return None  # a rule may send a no-reply sender's mail to a queue: a bank's notice
    return (
        f"machine mail ({facts.message.kind_reason}) about mail no ticket knows{_failed(facts)}:"
        " kept without a ticket"
    )


def _always(_facts: Facts) -> str | None:
    return ""


DISPOSITION: tuple[Link[tuple[Action, AckReason | None]], ...] = (
    # `triage import` of history that is to open no tickets: kept as it was, nothing else.
    Link("imported_history", _imported_history, (Action.STORE, AckReason.IMPORT)),
    # The same mail again (same Message-ID and sender, RFC 5322 section 3.6.4: delivered
    # twice, or imported and then fetched): filed with the first copy's ticket.
    Link("earlier_copy", _earlier_copy, (Action.DUPLICATE, AckReason.DUPLICATE)),
    # A machine's mail on a ticket (auto-reply RFC 3834, bounce RFC 3464, feedback report
    # RFC 5965, read receipt RFC 8098, a no-reply notification, an auto-responder's
    # answer to our acknowledgment): a note on the ticket; its kind is the reason (None).
    Link("joins_thread_as_note", _joins_as_note, (Action.JOIN, None)),
    # A client's reply (In-Reply-To/References, else [#ref] in the subject): a follow-up
    # that reopens a waiting or solved ticket.
    Link("joins_thread", _joins, (Action.JOIN, AckReason.FOLLOW_UP)),
    # Machine mail about nothing we know opens no ticket (issue 12.5).
    Link(
        "bounce_without_ticket",
        _about_nothing(MessageKind.BOUNCE, "a bounce (RFC 3464)"),
        (Action.STORE, AckReason.BOUNCE),
    ),
    Link(
        "feedback_report_without_ticket",
        _about_nothing(MessageKind.FEEDBACK_REPORT, "a feedback report (RFC 5965)"),
        (Action.STORE, AckReason.FEEDBACK_REPORT),
    ),
    Link(
        "read_receipt_without_ticket",
        _about_nothing(MessageKind.READ_RECEIPT, "a read receipt (RFC 8098)"),
        (Action.STORE, AckReason.READ_RECEIPT),
    ),
    # ... and a no-reply sender's notification, unless a rule sends it to a queue.
    Link(
        "notification_without_ticket",
        _notification_no_rule_routes,
        (Action.STORE, AckReason.NO_REPLY_SENDER),
    ),
    # Anything else: routed (rules, mailing lists, the model, the fallback queue), opens
    # a ticket; ACKNOWLEDGMENT decides the acknowledgment (None: that table's answer).
    Link("opens_ticket", _always, (Action.OPEN, None)),
)
"""What becomes of the message: (action, the no-ack reason it implies)."""


# -- whether a new ticket's client is acknowledged ---------------------------------------


def _no_smtp(facts: Facts) -> str | None:
    return "" if not facts.can_send else None


def _imported(facts: Facts) -> str | None:
    return "" if facts.imported and not facts.acknowledge_imports else None


def _parse_error(facts: Facts) -> str | None:
    return "" if facts.message.parse_status == ParseStatus.ERROR else None


def _sign(text: str) -> str | None:
    return text or None


def _disabled(facts: Facts) -> str | None:
    return None if facts.settings.acknowledgments.enabled else "acknowledgments.enabled is false"


def _no_smtp_section(facts: Facts) -> str | None:
    return "there is no [smtp] section" if facts.settings.smtp is None else None


def _kind_is(kind: MessageKind) -> Check:
    def check(facts: Facts) -> str | None:
        message = facts.message
        return _sign(message.kind_reason) if message.kind == kind else None

    return check


def _own_list_ids(facts: Facts) -> set[str]:
    return {i.lower() for i in facts.settings.routing.own_list_ids}


def _no_address(facts: Facts) -> str | None:
    recipient = facts.message.reply_address
    if recipient is None or not valid_address(recipient.addr):
        return "no usable Reply-To or From address"
    return None


def _non_ascii_address(facts: Facts) -> str | None:
    recipient = facts.message.reply_address
    if recipient is None or ascii_address(recipient.addr) is not None:
        return None
    return (
        f"{recipient.addr} has a non-ASCII local part (needs SMTPUTF8, RFC 6531)"
        " or an invalid international domain"
    )


def _candidates(facts: Facts) -> list[str]:
    """The reply address's key, then From's when it differs (lowercased)."""
    message = facts.message
    found = [message.reply_address.key] if message.reply_address is not None else []
    if message.from_ is not None and message.from_.key not in found:
        found.append(message.from_.key)
    return found


def _own_address(facts: Facts) -> str | None:
    ours = facts.our_addresses
    for address in _candidates(facts):
        if address in ours:
            return f"{address} is one of our addresses"
    return None


def _notification(facts: Facts) -> str | None:
    message = facts.message
    if message.kind != MessageKind.NOTIFICATION:
        return None
    return message.kind_reason or "a machine's mail"


def _machine_sender(facts: Facts) -> str | None:
    patterns = facts.settings.acknowledgments.no_reply_patterns
    for address in _candidates(facts):
        if why := machine_address(address):
            return why
        for pattern in patterns:
            if fnmatchcase(address, pattern.lower()):
                return f"{address} matches acknowledgments.no_reply_patterns {pattern!r}"
    return None


def _follow_up(facts: Facts) -> str | None:
    return "the message joined an existing ticket" if facts.follow_up else None


def _reply_to_ack(facts: Facts) -> str | None:
    answered = facts.answered_ack
    if not answered:
        return None
    return (
        f"it answers our acknowledgment {answered}: acknowledging it could start a"
        " mail loop (RFC 3834 section 2)"
    )


def _rule(facts: Facts) -> str | None:
    rules = facts.rules
    return "a rule marked it: no acknowledgment" if rules and rules.suppress_ack else None


def _too_old(facts: Facts) -> str | None:
    if facts.now is None:
        return None
    age = history_age(facts.message, facts.settings, facts.now)
    if age is None:
        return None
    max_age = facts.settings.acknowledgments.max_age
    return (
        f"it reached the mailbox {age / 3600:.0f} h before it was processed"
        f" (acknowledgments.max_age = {max_age / 3600:.0f} h)"
    )


def _repeat(facts: Facts) -> str | None:
    repeat = facts.repeat_of
    return f"the same subject and text as {repeat}: a repeat, not a request" if repeat else None


def _rate_limited(facts: Facts) -> str | None:
    limit = facts.settings.acknowledgments.max_per_sender_per_hour
    recent = facts.recent_acks
    if recent < limit:
        return None
    key = facts.message.reply_address.key if facts.message.reply_address else ""
    return (
        f"{key} already got {recent} acknowledgment(s) in the last hour"
        f" (acknowledgments.max_per_sender_per_hour = {limit})"
    )


INTAKE_ACK: tuple[Link[AckReason | None], ...] = (
    # No [smtp] section or no mail templates: nothing can be sent.
    Link("no_smtp", _no_smtp, AckReason.NO_SMTP),
    # History brought in by `triage import` is not acknowledged unless the import asks.
    Link("imported", _imported, AckReason.IMPORT),
    # Unparsable mail: we cannot tell whom or what we would answer.
    Link("parse_error", _parse_error, AckReason.PARSE_ERROR),
)
"""How the message came in (rows the pipeline adds before :data:`ACK_POLICY`)."""

ACK_POLICY: tuple[Link[AckReason | None], ...] = (
    Link("disabled", _disabled, AckReason.DISABLED),
    Link("no_smtp_section", _no_smtp_section, AckReason.DISABLED),
    # Machine mail, by the parser's kind and by the headers themselves.
    Link("feedback_report", _kind_is(MessageKind.FEEDBACK_REPORT), AckReason.FEEDBACK_REPORT),
    Link("read_receipt", _kind_is(MessageKind.READ_RECEIPT), AckReason.READ_RECEIPT),
    # RFC 3464 DSN, the null reverse path <> (RFC 5321 4.5.5), multipart/report (RFC 6522).
    Link("bounce", lambda f: _sign(bounce_sign(f.message)), AckReason.BOUNCE),
    # Auto-Submitted other than "no" (RFC 3834 section 5), X-Autoreply and kin,
    # Precedence: auto_reply, Exchange's inbox-rule forwarding.
    Link("auto_reply", lambda f: _sign(auto_reply_sign(f.message)), AckReason.AUTO_REPLY),
    # X-Auto-Response-Suppress: All, AutoReply or OOF (the sender asked for none).
    Link("suppressed", lambda f: _sign(suppress_sign(f.message)), AckReason.SUPPRESSED),
    # List-Id (RFC 2919), List-Unsubscribe / List-Post (RFC 2369), Precedence: bulk,
    # unless the List-Id is one of routing.own_list_ids.
    Link(
        "mailing_list",
        lambda f: _sign(list_sign(f.message, _own_list_ids(f))),
        AckReason.MAILING_LIST,
    ),
    # No reply address we can write to: Reply-To, else From.
    Link("no_address", _no_address, AckReason.NO_ADDRESS),
    Link("non_ascii_address", _non_ascii_address, AckReason.NO_ADDRESS),
    # Our own mail (smtp.from_address, team.addresses, team.assistants): never a loop.
    Link("own_address", _own_address, AckReason.OWN_ADDRESS),
    # A machine's address: kind notification, no-reply variants, mail daemons, VERP,
    # acknowledgments.no_reply_patterns.
    Link("notification", _notification, AckReason.NO_REPLY_SENDER),
    Link("machine_sender", _machine_sender, AckReason.NO_REPLY_SENDER),
    Link("follow_up", _follow_up, AckReason.FOLLOW_UP),
    # An answer to our acknowledgment that joined no ticket: answering starts a loop.
    Link("reply_to_ack", _reply_to_ack, AckReason.REPLY_TO_ACK),
    Link("rule", _rule, AckReason.RULE),
    # Older than acknowledgments.max_age when first seen: "we received it" days later
    # misleads.
    Link("too_old", _too_old, AckReason.TOO_OLD),
    # The same sender, subject and text within the hour: a machine repeating itself.
    Link("repeat", _repeat, AckReason.REPEAT),
    # The last bound on a loop no other row caught (acknowledgments per address per hour).
    Link("rate_limited", _rate_limited, AckReason.RATE_LIMITED),
    Link("acknowledge", _always, None),
)
"""The acknowledgment policy (:func:`~triage.outbox.plan_ack` runs it alone)."""

ACKNOWLEDGMENT = INTAKE_ACK + ACK_POLICY
"""Whether the client of a new ticket is acknowledged: a reason, or None to acknowledge."""


def decide_acknowledgment(
    facts: Facts, table: Sequence[Link[AckReason | None]] = ACKNOWLEDGMENT
) -> tuple[AckReason | None, str, tuple[Hit, ...]]:
    """(the no-ack reason or None to acknowledge, the sentence, the trail) by ``table``."""
    link, detail, trail = first_match("acknowledgment", table, facts)
    return link.outcome, detail, trail


# -- assembling the decision ------------------------------------------------------------


def _stored_only(facts: Facts, why: str) -> Route:
    """The route of a message that opens no ticket: no queue ("")."""
    return Route(
        queue="",
        priority=facts.settings.routing.default_priority,
        decided_by=DecidedBy.FALLBACK,
        explanation=(why,),
    )


def _ticket_route(
    ticket: TicketFact,
    explanation: tuple[str, ...],
    *,
    rules_matched: tuple[str, ...] = (),
    escalate: tuple[str, ...] = (),
) -> Route:
    """The route of a message filed with an existing ticket: the ticket's."""
    return Route(
        queue=ticket.queue,
        priority=Priority(ticket.priority),
        decided_by=DecidedBy(ticket.decided_by),
        rules_matched=rules_matched,
        explanation=explanation,
        escalate=escalate,
    )


def _undeliverable(facts: Facts, ticket: TicketFact) -> tuple[str, str | None] | None:
    """(failed address, status) when a bounce says the ticket's client cannot be reached."""
    report = facts.message.delivery_report
    if facts.message.kind != MessageKind.BOUNCE or report is None:
        return None
    client = ticket.client_addr.lower()
    failed = [a for a in report.failed_recipients if a.lower() == client]
    if not failed:
        return None
    return failed[0], report.status


def _join(facts: Facts, note: bool, trail: tuple[Hit, ...]) -> Decision:
    thread = facts.thread
    assert thread is not None  # noqa: S101 - the row matched on it
    responder = facts.responder
    explanation: list[str] = []
    undeliverable = _undeliverable(facts, thread.ticket)
    if undeliverable is not None:
        address, status = undeliverable
        explanation.append(
            f"the client's address {address} is undeliverable"
            f" ({status or 'no status code'}, RFC 3464)"
        )
    rules = facts.rules
    escalate: tuple[str, ...] = ()
    if rules is not None:
        explanation.extend(rules.explanation)
        if not note and rules.escalate:
            escalate = rules.escalate
    reason = AckReason.of_note(facts.kind) if note else AckReason.FOLLOW_UP
    return Decision(
        action=Action.JOIN,
        route=_ticket_route(
            thread.ticket,
            tuple(explanation),
            rules_matched=rules.matched if rules else (),
            escalate=escalate,
        ),
        ack=NoAck(reason),
        ticket_id=thread.ticket.id,
        via=thread.via + (f"; {responder}" if responder else ""),
        note=note,
        kind=MessageKind.AUTO_REPLY if responder else None,
        escalate=escalate,
        undeliverable=undeliverable,
        trail=trail,
    )


def _open(facts: Facts, trail: tuple[Hit, ...]) -> Decision:
    settings = facts.settings
    prediction, priority_prediction = facts.predictions
    routed = route(
        facts.message,
        settings=settings.routing,
        queues=settings.queues.keys(),
        rules=facts.rules,
        prediction=prediction,
        priority_prediction=priority_prediction,
        model_note=facts.model_note,
        threshold=facts.threshold,
    )
    reason, detail, ack_trail = decide_acknowledgment(facts)
    if reason is not None and detail:  # shown on the ticket with the routing explanation
        routed = replace(routed, explanation=(*routed.explanation, f"no acknowledgment: {detail}"))
    return Decision(
        action=Action.OPEN,
        route=routed,
        ack=Acknowledge(routed.ack_template or "") if reason is None else NoAck(reason, detail),
        escalate=routed.escalate,
        trail=trail + ack_trail,
    )


def decide(facts: Facts) -> Decision:
    """What to do with the message the ``facts`` describe, by :data:`DISPOSITION` and,
    for a new ticket, :data:`ACKNOWLEDGMENT`. Pure; reads a lazy fact only when a row
    needs it.

    Returns:
        The :class:`~triage.handling.decision.Decision`, with the trail of rows.
    """
    link, detail, trail = first_match("disposition", DISPOSITION, facts)
    action, reason = link.outcome
    if action is Action.OPEN:
        return _open(facts, trail)
    if action is Action.JOIN:
        return _join(facts, note=reason is None, trail=trail)
    assert reason is not None  # noqa: S101 - every other row names its reason
    if action is Action.DUPLICATE:
        copy = facts.earlier_copy
        assert copy is not None  # noqa: S101 - the row matched on it
        if copy.ticket is not None:
            return Decision(
                action=action,
                route=_ticket_route(copy.ticket, (detail,)),
                ack=NoAck(reason),
                ticket_id=copy.ticket.id,
                duplicate_of=copy.id,
                trail=trail,
            )
        return Decision(
            action=action,
            route=_stored_only(facts, detail),
            ack=NoAck(reason),
            duplicate_of=copy.id,
            trail=trail,
        )
    return Decision(
        action=action, route=_stored_only(facts, detail), ack=NoAck(reason), trail=trail
    )
