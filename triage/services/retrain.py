"""Learning from corrections: retrain, and activate only what is at least as good on real mail.

Every correction (``triage move``, the web page's correction) is a training label
(``training_labels``, ``source = "correction"``). The daemon calls
:func:`retrain_due` on its model loop and :func:`retrain` when it is due:

- due after ``classifier.retrain_after`` new corrections since the newest model
  was trained (active or not: a rejected one waits for new corrections too), or
  at ``classifier.retrain_at`` (local time, daily) when there is at least one
  new correction;
- the new model learns from the shipped office-mail set plus every label in the
  database (corrections win over a shipped mail with the same text);
- it is compared with the active model on **real corrected mail the active model
  never saw** (fingerprints): each such mail is answered by the new recipe trained
  without it (stratified folds, so the new model is never scored on its own
  training data either), and by the active model as it is;
- it becomes active only when it is at least as good there
  (:func:`classifiers.evaluation.at_least_as_good`: macro-F1, then accuracy);
  with fewer than :data:`MIN_EVALUATION` such mails nothing is retrained yet.

Each model keeps its figures (``metrics["retrain"]``, shown by ``triage model
list``); ``triage model rollback`` activates the one active before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import structlog
from sqlalchemy import func, select

from classifiers.features import Example, example_from_message
from triage.config import Settings
from triage.mail import parse_message
from triage.modelstore import list_models, load_active_model, save_model
from triage.store import Database
from triage.store.models import Message, TrainingLabel
from triage.training.corpus import shipped_dataset
from triage.training.sources import Dataset, combine, load_database

if TYPE_CHECKING:  # scikit-learn is imported only when retraining runs (start-up)
    from classifiers.evaluation import Scores
    from classifiers.model import TrainedModel

__all__ = [
    "MIN_EVALUATION",
    "RetrainOutcome",
    "corrected_mail",
    "retrain",
    "retrain_due",
]

log = structlog.get_logger("triage.retrain")

MIN_EVALUATION = 10
"""Corrected mails the active model never saw, needed before a new model is judged."""

EVALUATION_FOLDS = 5
"""Folds over the evaluation mail (each fold's mail answered by a model trained without it)."""


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """What :func:`retrain` did.

    Attributes:
        version: the new model's version ("" when none was trained).
        activated: whether it became the active model.
        reason: a sentence for logs and the CLI.
        evaluated_on: corrected mails both models were scored on.
        candidate, incumbent: their scores there (None when not compared).
    """

    version: str
    activated: bool
    reason: str
    evaluated_on: int = 0
    candidate: Scores | None = None
    incumbent: Scores | None = None


def corrected_mail(db: Database) -> tuple[list[Example], list[str]]:
    """The real mail assistants corrected: the latest corrected queue of each message.

    The example is made from the stored raw message (parsed again, as routing saw it).
    """
    with db.read_session() as session:
        rows = session.execute(
            select(TrainingLabel.message_id, TrainingLabel.queue, Message.raw)
            .join(Message, Message.id == TrainingLabel.message_id)
            .where(TrainingLabel.source == "correction")
            .order_by(TrainingLabel.id)
        ).all()
    latest: dict[int, tuple[str, bytes]] = {}
    for message_id, queue, raw in rows:
        if message_id is not None:
            latest[int(message_id)] = (str(queue), bytes(raw))
    examples: list[Example] = []
    labels: list[str] = []
    for queue, raw in latest.values():
        examples.append(example_from_message(parse_message(raw)))
        labels.append(queue)
    return examples, labels


def _new_corrections(db: Database, since: datetime | None) -> int:
    with db.read_session() as session:
        query = select(func.count()).select_from(TrainingLabel)
        query = query.where(TrainingLabel.source == "correction")
        if since is not None:
            query = query.where(TrainingLabel.created_at > since)
        return int(session.scalar(query) or 0)


def retrain_due(db: Database, settings: Settings, now: datetime) -> str:
    """Why a retraining is due now ("" when it is not).

    Due when ``classifier.retrain_after`` (> 0) corrections arrived since the newest
    model (active or not) was trained, or when ``classifier.retrain_at`` (local time) has passed
    today, the active model is older than that moment, and a correction arrived since.
    """
    classifier = settings.classifier
    if not classifier.enabled or not classifier.retrain:
        return ""
    with db.read_session() as session:
        # The newest model, active or not: a rejected retraining waits for new corrections.
        models = list_models(session, "queue")
    trained = models[0].trained_at if models else None
    if trained is not None and trained.tzinfo is None:
        trained = trained.replace(tzinfo=now.tzinfo)
    new = _new_corrections(db, trained)
    if classifier.retrain_after and new >= classifier.retrain_after:
        return f"{new} corrections since the active model was trained"
    if classifier.retrain_at and new:
        zone = ZoneInfo(settings.calendar.timezone)
        local = now.astimezone(zone)
        hour, minute = (int(p) for p in classifier.retrain_at.split(":"))
        moment = datetime.combine(local.date(), time(hour, minute), tzinfo=zone)
        if local < moment:
            moment -= timedelta(days=1)
        if trained is None or trained < moment:
            return f"nightly retraining ({classifier.retrain_at}), {new} new corrections"
    return ""


def _candidate_scores(
    base: Dataset,
    corrections: tuple[list[Example], list[str]],
    evaluation: list[int],
    now: datetime,
) -> Scores:
    """Each evaluation mail answered by the new recipe trained without it (folds)."""
    from classifiers.evaluation import score  # noqa: PLC0415 - scikit-learn
    from classifiers.model import train  # noqa: PLC0415 - scikit-learn

    examples, labels = corrections
    order = sorted(evaluation)
    folds = max(2, min(EVALUATION_FOLDS, len(order)))
    predicted: dict[int, str] = {}
    for fold in range(folds):
        held = set(order[fold::folds])
        train_x = [e for i, e in enumerate(examples) if i not in held]
        train_y = [y for i, y in enumerate(labels) if i not in held]
        model = train(train_x + list(base.examples), train_y + list(base.labels), trained_at=now)
        answers = model.predict_labels([examples[i] for i in sorted(held)])
        predicted.update(zip(sorted(held), answers, strict=True))
    return score([labels[i] for i in order], [predicted[i] for i in order])


def retrain(db: Database, settings: Settings, now: datetime, *, reason: str = "") -> RetrainOutcome:
    """Train on the shipped set plus the database's labels; activate only if not worse.

    Args:
        db: the store.
        settings: the configuration (queues: labels of other queues are left out).
        now: aware current time (the model's training time).
        reason: why (logged and kept with the model).

    Returns:
        A :class:`RetrainOutcome`; a model is saved (active or not) whenever it
        was compared.

    Raises:
        UserError: the data cannot train a model (too few classes).
        ModelError: never; a refused active model counts as none.
    """
    from classifiers.evaluation import at_least_as_good, score  # noqa: PLC0415 - scikit-learn
    from classifiers.model import train  # noqa: PLC0415 - scikit-learn
    from triage.errors import ModelError  # noqa: PLC0415 - keeps the module's imports short

    corrections = corrected_mail(db)
    try:
        with db.read_session() as session:
            incumbent: TrainedModel | None = load_active_model(session, "queue")
    except ModelError:
        incumbent = None
    if incumbent is not None:
        seen = incumbent.has_seen(corrections[0]) if corrections[0] else np.zeros(0, bool)
        evaluation = [i for i in range(len(corrections[0])) if not seen[i]]
    else:
        evaluation = list(range(len(corrections[0])))
    if incumbent is not None and len(evaluation) < MIN_EVALUATION:
        return RetrainOutcome(
            "",
            activated=False,
            reason=(
                f"waiting: {len(evaluation)} corrected mails the active model has not seen,"
                f" {MIN_EVALUATION} needed to judge a new one"
            ),
        )
    queues = set(settings.queues)
    base = shipped_dataset()
    with db.read_session() as session:
        labels = load_database(session, target="queue")
    data = combine(labels, base) if labels.examples else base
    keep = [(e, y) for e, y in zip(data.examples, data.labels, strict=True) if y in queues]
    counts = Counter(y for _, y in keep)
    keep = [(e, y) for e, y in keep if counts[y] >= 5]
    candidate_scores = incumbent_scores = None
    activate = True
    why = reason or "retrained"
    if incumbent is not None:
        candidate_scores = _candidate_scores(base, corrections, evaluation, now)
        truth = [corrections[1][i] for i in evaluation]
        incumbent_scores = score(
            truth, incumbent.predict_labels([corrections[0][i] for i in evaluation])
        )
        activate = at_least_as_good(candidate_scores, incumbent_scores)
        why = (
            f"{why}; on {len(evaluation)} corrected mails the active model never saw: new"
            f" accuracy {candidate_scores.accuracy:.3f} macro-F1 {candidate_scores.macro_f1:.3f},"
            f" active {incumbent_scores.accuracy:.3f} / {incumbent_scores.macro_f1:.3f}"
        )
    metrics = {
        "retrain": {
            "reason": reason,
            "evaluated_on": len(evaluation) if incumbent is not None else 0,
            "candidate": candidate_scores.to_dict() if candidate_scores else None,
            "incumbent": incumbent_scores.to_dict() if incumbent_scores else None,
            "incumbent_version": incumbent.version if incumbent is not None else "",
            "corrections": len(corrections[0]),
        }
    }
    model = train([e for e, _ in keep], [y for _, y in keep], trained_at=now, metrics=metrics)
    with db.session() as session:
        save_model(session, model, activate=activate)
    outcome = RetrainOutcome(
        model.version,
        activated=activate,
        reason=why if activate else f"kept the active model: {why}",
        evaluated_on=len(evaluation) if incumbent is not None else 0,
        candidate=candidate_scores,
        incumbent=incumbent_scores,
    )
    log.info(
        "model_retrained",
        version=model.version,
        activated=activate,
        reason=outcome.reason,
        evaluated_on=outcome.evaluated_on,
    )
    return outcome
