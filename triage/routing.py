"""Routing: which queue and priority a new message gets, and why. Pure; no I/O.

The order is fixed (DESIGN.md, "Route"):

1. A message that could not be parsed goes to the fallback queue: a person sorts it.
2. The rule engine (``rules/``): the first rule that sets a queue decides it.
3. Mailing-list mail (RFC 2369 / RFC 2919 List-* headers) goes to ``routing.bulk_queue``
   when one is configured, unless its List-Id is one of ``routing.own_list_ids``.
4. The classifier (``classifiers/``): its top queue when the calibrated probability
   reaches ``routing.confidence_threshold``.
5. Otherwise the fallback queue.

Priority: the highest a rule set, else the priority model's answer when it is at
least as confident as the threshold, else ``routing.default_priority`` (bulk mail:
low). Every decision carries sentences an owner can read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from rules.model import RuleDecision
from triage.config import RoutingSettings
from triage.domain import DecidedBy, InboundMessage, MessageKind, ParseStatus, Priority

__all__ = [
    "DEFAULT_TARGET_ACCURACY",
    "PredictionLike",
    "Route",
    "ThresholdModel",
    "route",
    "routing_threshold",
]

DEFAULT_TARGET_ACCURACY = 0.90
"""The accuracy ``triage evaluate`` reports a threshold for when none is configured."""


class PredictionLike(Protocol):
    """What routing needs of a classifier prediction (``classifiers.model.Prediction``)."""

    @property
    def label(self) -> str:
        """The most probable class."""
        ...

    @property
    def confidence(self) -> float:
        """Its calibrated probability, 0..1."""
        ...

    @property
    def top(self) -> tuple[tuple[str, float], ...]:
        """The most probable classes with their probabilities, best first."""
        ...

    @property
    def model_version(self) -> str:
        """The version of the model that answered."""
        ...


class OperatingPointLike(Protocol):
    """A threshold and what it gave (``classifiers.calibration.OperatingPoint``)."""

    @property
    def threshold(self) -> float:
        """The confidence threshold."""
        ...

    @property
    def coverage(self) -> float:
        """The share routed automatically at it."""
        ...

    @property
    def accuracy(self) -> float:
        """How often those were right."""
        ...


class ThresholdModel(Protocol):
    """What :func:`routing_threshold` needs of a model (``classifiers.model.TrainedModel``)."""

    def threshold_for(self, target_accuracy: float) -> OperatingPointLike | None:
        """The threshold reaching ``target_accuracy`` on the model's training folds."""
        ...


def routing_threshold(settings: RoutingSettings, model: ThresholdModel | None) -> tuple[float, str]:
    """The confidence threshold routing uses with ``model``, and where it came from.

    ``routing.target_accuracy`` (when set) asks the model for the threshold that
    reached that accuracy with the most coverage on its out-of-fold answers; when
    the model has no such figures or no threshold reached it, the model routes
    nothing automatically (threshold 1.0: everything it answers goes to the
    fallback queue), which the second element says. Otherwise it is
    ``routing.confidence_threshold``.
    """
    target = settings.target_accuracy
    if target is None:
        return settings.confidence_threshold, "routing.confidence_threshold"
    point = model.threshold_for(target) if model is not None else None
    if point is None:
        return 1.0, (
            f"routing.target_accuracy {target:.2f}: the model reached it at no threshold"
            " on its training folds"
        )
    return point.threshold, (
        f"routing.target_accuracy {target:.2f}: estimated coverage {point.coverage:.2f}"
    )


@dataclass(frozen=True, slots=True)
class Route:
    """The routing decision for one message, with its explanation.

    Attributes:
        queue: the queue the ticket goes to.
        priority: its priority.
        decided_by: what chose the queue (rule, model or fallback).
        confidence: the model's probability for its top queue (None when no model ran).
        model_version: the queue model's version ("" when none ran).
        rules_matched: names of the rules that matched, in order.
        probabilities: the model's top (queue, probability) pairs.
        explanation: sentences an owner can read, in the order things were decided.
        tags, escalate, suppress_ack, ack_template, assignee: what rules asked for.
    """

    queue: str
    priority: Priority
    decided_by: DecidedBy
    confidence: float | None = None
    model_version: str = ""
    rules_matched: tuple[str, ...] = ()
    probabilities: tuple[tuple[str, float], ...] = ()
    explanation: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    escalate: tuple[str, ...] = ()
    suppress_ack: bool = False
    ack_template: str | None = None
    assignee: str | None = None


def _stage(prediction: PredictionLike) -> str:
    # classifiers.model.Prediction.stage: 2 when the cascade's second stage answered
    return " (second stage)" if getattr(prediction, "stage", 1) == 2 else ""


def _top(prediction: PredictionLike) -> str:
    return ", ".join(f"{label} {p:.2f}" for label, p in prediction.top[:3])


def route(
    message: InboundMessage,
    *,
    settings: RoutingSettings,
    queues: Collection[str],
    rules: RuleDecision | None = None,
    prediction: PredictionLike | None = None,
    priority_prediction: PredictionLike | None = None,
    model_note: str = "",
    threshold: float | None = None,
) -> Route:
    """Decide queue and priority for ``message``.

    Args:
        message: the parsed message.
        settings: the ``[routing]`` settings (fallback queue, threshold, bulk queue, ...).
        queues: the configured queue names; a model answer outside them is not used.
        rules: the rule engine's decision for this message (None: no rules loaded).
        prediction: the queue model's prediction (None: no model active).
        priority_prediction: the priority model's prediction, if one is active.
        model_note: why no model answered (e.g. a refused model file), for the explanation.
        threshold: the queue model's confidence threshold (:func:`routing_threshold`);
            default ``settings.confidence_threshold``.

    Returns:
        A :class:`Route`; never raises.
    """
    rules = rules or RuleDecision()
    explanation: list[str] = list(rules.explanation)
    fallback = settings.fallback_queue
    threshold = settings.confidence_threshold if threshold is None else threshold
    confidence = prediction.confidence if prediction is not None else None
    version = prediction.model_version if prediction is not None else ""
    probabilities = tuple(prediction.top) if prediction is not None else ()

    bulk = (
        message.kind == MessageKind.MAILING_LIST
        and bool(settings.bulk_queue)
        and message.list_id not in settings.own_list_ids
    )
    if message.parse_status == ParseStatus.ERROR:
        queue, decided_by = fallback, DecidedBy.FALLBACK
        explanation.insert(
            0, f"the message could not be parsed ({message.parse_error}): a person sorts it"
        )
        confidence, version, probabilities = None, "", ()
    elif rules.queue is not None:
        queue, decided_by = rules.queue, DecidedBy.RULE
    elif bulk:
        queue, decided_by = settings.bulk_queue, DecidedBy.RULE
        explanation.append(
            f"mailing-list mail (List-Id {message.list_id or 'unknown'}, RFC 2919) goes to"
            f" the bulk queue {queue!r}"
        )
    elif prediction is not None and prediction.label not in queues:
        queue, decided_by = fallback, DecidedBy.FALLBACK
        explanation.append(
            f"model {version} answered {prediction.label!r}, which is not a configured queue;"
            f" fallback queue {fallback!r}"
        )
    elif prediction is not None and prediction.confidence >= threshold:
        queue, decided_by = prediction.label, DecidedBy.MODEL
        explanation.append(
            f"model {version}{_stage(prediction)}: {queue} with probability"
            f" {prediction.confidence:.2f}"
            f" (threshold {threshold:.2f}; top: {_top(prediction)})"
        )
    elif prediction is not None:
        queue, decided_by = fallback, DecidedBy.FALLBACK
        explanation.append(
            f"model {version}{_stage(prediction)} unsure: {prediction.label}"
            f" {prediction.confidence:.2f} is under"
            f" the threshold {threshold:.2f} (top: {_top(prediction)}); fallback queue"
            f" {fallback!r}"
        )
    else:
        queue, decided_by = fallback, DecidedBy.FALLBACK
        why = model_note or "no classifier model is active"
        explanation.append(f"no rule chose a queue and {why}; fallback queue {fallback!r}")

    if rules.priority is not None:
        priority = rules.priority
    elif bulk and decided_by == DecidedBy.RULE and rules.queue is None:
        priority = Priority.LOW
    elif (
        priority_prediction is not None
        and priority_prediction.confidence >= threshold
        and priority_prediction.label in {p.value for p in Priority}
    ):
        priority = Priority(priority_prediction.label)
        explanation.append(
            f"priority model {priority_prediction.model_version}: {priority} with probability"
            f" {priority_prediction.confidence:.2f}"
        )
    else:
        priority = settings.default_priority

    return Route(
        queue=queue,
        priority=priority,
        decided_by=decided_by,
        confidence=confidence,
        model_version=version,
        rules_matched=rules.matched,
        probabilities=probabilities,
        explanation=tuple(explanation),
        tags=rules.tags,
        escalate=rules.escalate,
        suppress_ack=rules.suppress_ack,
        ack_template=rules.ack_template,
        assignee=rules.assignee,
    )
