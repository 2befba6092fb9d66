"""Routing order: parse error -> rules -> mailing list -> model (threshold) -> fallback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rules.model import RuleDecision
from triage.config import RoutingSettings
from triage.domain import DecidedBy, InboundMessage, MessageKind, ParseStatus, Priority
from triage.routing import route, routing_threshold

QUEUES = {"billing", "scheduling", "records", "client-support", "unsorted", "bulk"}
SETTINGS = RoutingSettings(fallback_queue="unsorted", confidence_threshold=0.6, bulk_queue="bulk")
AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    """A classifier answer as a value (the shape of classifiers.model.Prediction)."""

    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]
    model_version: str = "queue-test"


def msg(**kw) -> InboundMessage:
    return InboundMessage(message_id="<m@x>", subject="Invoice 12", received_at=AT, **kw)


def answer(label: str, p: float) -> Answer:
    return Answer(label, p, ((label, p), ("records", round(1 - p, 2))))


def test_rule_queue_wins_over_a_confident_model() -> None:
    rules = RuleDecision(queue="records", priority=Priority.HIGH)
    r = route(
        msg(), settings=SETTINGS, queues=QUEUES, rules=rules, prediction=answer("billing", 0.99)
    )
    assert (r.queue, r.decided_by, r.priority) == ("records", DecidedBy.RULE, Priority.HIGH)
    assert r.confidence == 0.99  # the model's view is still recorded


def test_confident_model_routes() -> None:
    r = route(msg(), settings=SETTINGS, queues=QUEUES, prediction=answer("billing", 0.8))
    assert (r.queue, r.decided_by) == ("billing", DecidedBy.MODEL)
    assert r.model_version == "queue-test"
    assert r.probabilities[0] == ("billing", 0.8)
    assert "billing with probability 0.80 (threshold 0.60" in r.explanation[-1]
    assert r.priority == Priority.NORMAL


def test_unsure_model_goes_to_fallback_with_reason() -> None:
    r = route(msg(), settings=SETTINGS, queues=QUEUES, prediction=answer("billing", 0.59))
    assert (r.queue, r.decided_by) == ("unsorted", DecidedBy.FALLBACK)
    assert "under the threshold 0.60" in r.explanation[-1]


def test_threshold_is_inclusive() -> None:
    r = route(msg(), settings=SETTINGS, queues=QUEUES, prediction=answer("billing", 0.6))
    assert r.decided_by == DecidedBy.MODEL


def test_model_answer_outside_the_configured_queues_is_not_used() -> None:
    r = route(msg(), settings=SETTINGS, queues=QUEUES, prediction=answer("sales", 0.95))
    assert (r.queue, r.decided_by) == ("unsorted", DecidedBy.FALLBACK)
    assert "not a configured queue" in r.explanation[-1]


def test_no_model_no_rule_is_fallback_and_says_why() -> None:
    r = route(msg(), settings=SETTINGS, queues=QUEUES, model_note="the model file was refused")
    assert (r.queue, r.decided_by) == ("unsorted", DecidedBy.FALLBACK)
    assert "the model file was refused" in r.explanation[-1]


def test_unparsable_message_goes_to_fallback_even_if_a_rule_matched() -> None:
    broken = msg(parse_status=ParseStatus.ERROR, parse_error="MIME structure too deep")
    r = route(
        broken,
        settings=SETTINGS,
        queues=QUEUES,
        rules=RuleDecision(queue="billing"),
        prediction=answer("billing", 0.9),
    )
    assert (r.queue, r.decided_by) == ("unsorted", DecidedBy.FALLBACK)
    assert "could not be parsed (MIME structure too deep)" in r.explanation[0]
    assert r.confidence is None


def test_mailing_list_goes_to_bulk_with_low_priority_unless_our_own_list() -> None:
    post = msg(kind=MessageKind.MAILING_LIST, list_id="hirlevel.lists.example.net")
    r = route(post, settings=SETTINGS, queues=QUEUES, prediction=answer("billing", 0.9))
    assert (r.queue, r.decided_by, r.priority) == ("bulk", DecidedBy.RULE, Priority.LOW)
    assert "hirlevel.lists.example.net" in r.explanation[-1]
    ours = SETTINGS.model_copy(update={"own_list_ids": ["hirlevel.lists.example.net"]})
    r = route(post, settings=ours, queues=QUEUES, prediction=answer("billing", 0.9))
    assert (r.queue, r.decided_by) == ("billing", DecidedBy.MODEL)


def test_priority_model_used_only_when_confident_and_rules_silent() -> None:
    sure = Answer("urgent", 0.9, (("urgent", 0.9),), "priority-test")
    unsure = Answer("urgent", 0.3, (("urgent", 0.3),), "priority-test")
    q = answer("billing", 0.9)
    assert (
        route(
            msg(), settings=SETTINGS, queues=QUEUES, prediction=q, priority_prediction=sure
        ).priority
        == Priority.URGENT
    )
    assert (
        route(
            msg(), settings=SETTINGS, queues=QUEUES, prediction=q, priority_prediction=unsure
        ).priority
        == Priority.NORMAL
    )
    rules = RuleDecision(priority=Priority.LOW)
    assert (
        route(
            msg(),
            settings=SETTINGS,
            queues=QUEUES,
            rules=rules,
            prediction=q,
            priority_prediction=sure,
        ).priority
        == Priority.LOW
    )


def test_rule_actions_are_carried() -> None:
    rules = RuleDecision(
        tags=("vip",),
        escalate=("rule 'legal': legal threat",),
        suppress_ack=True,
        ack_template="vip",
        assignee="anna",
    )
    r = route(
        msg(), settings=SETTINGS, queues=QUEUES, rules=rules, prediction=answer("billing", 0.9)
    )
    assert r.tags == ("vip",)
    assert r.escalate == ("rule 'legal': legal threat",)
    assert r.suppress_ack
    assert r.ack_template == "vip"
    assert r.assignee == "anna"


@dataclass(frozen=True)
class Point:
    threshold: float
    coverage: float
    accuracy: float


@dataclass(frozen=True)
class ModelWithPoints:
    """A model whose training folds reached 0.90 at threshold 0.42 (coverage 0.83)."""

    def threshold_for(self, target_accuracy: float) -> Point | None:
        return Point(0.42, 0.83, 0.91) if target_accuracy <= 0.91 else None


def test_target_accuracy_takes_the_models_threshold() -> None:
    settings = RoutingSettings(fallback_queue="unsorted", target_accuracy=0.9)
    threshold, why = routing_threshold(settings, ModelWithPoints())
    assert threshold == 0.42
    assert "routing.target_accuracy 0.90" in why
    assert "coverage 0.83" in why
    r = route(
        msg(), settings=settings, queues=QUEUES, prediction=answer("billing", 0.5), threshold=0.42
    )
    assert (r.queue, r.decided_by) == ("billing", DecidedBy.MODEL)
    assert "(threshold 0.42;" in r.explanation[-1]


def test_a_target_accuracy_no_threshold_reached_routes_nothing_automatically() -> None:
    settings = RoutingSettings(fallback_queue="unsorted", target_accuracy=0.99)
    threshold, why = routing_threshold(settings, ModelWithPoints())
    assert threshold == 1.0
    assert "reached it at no threshold" in why
    assert routing_threshold(settings, None)[0] == 1.0


def test_without_target_accuracy_the_configured_threshold_is_used() -> None:
    assert routing_threshold(SETTINGS, ModelWithPoints()) == (0.6, "routing.confidence_threshold")
