"""A model's answer for one message, and the routing decision taken from it.

Pure and light (no numpy, no scikit-learn): the pipeline, the intake and their
callers name these types without loading a model's libraries; only
:mod:`classifiers.model` (training, predicting) imports scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from triage.domain import DecidedBy

__all__ = ["Prediction", "choose"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's answer for one example.

    Attributes:
        label: the most probable class (a queue, or a priority).
        confidence: its calibrated probability, 0..1.
        top: up to :data:`classifiers.model.TOP_K` ``(label, probability)`` pairs, most
            probable first.
        model_version: the version of the model that answered.
        stage: 1 for the fast first stage, 2 when the cascade's second stage answered.
    """

    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]
    model_version: str
    stage: int = 1


def choose(prediction: Prediction, threshold: float, fallback: str) -> tuple[str, DecidedBy]:
    """The routing decision: the predicted queue when confident enough, else ``fallback``.

    Returns ``(prediction.label, DecidedBy.MODEL)`` when ``prediction.confidence >=
    threshold`` (``[routing] confidence_threshold``), ``(fallback, DecidedBy.FALLBACK)``
    otherwise.
    """
    if prediction.confidence >= threshold:
        return prediction.label, DecidedBy.MODEL
    return fallback, DecidedBy.FALLBACK
