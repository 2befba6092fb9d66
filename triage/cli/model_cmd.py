"""Classifier commands: ``triage train`` and ``triage evaluate``.

The work is in :mod:`triage.training.commands`, imported when a command runs,
so that other commands start without loading scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import click

from triage.cli.context import AppContext, pass_app
from triage.cli.main import cli

_TARGETS = ("queue", "priority")  # classifiers.model.TARGETS, without importing scikit-learn
_FROM_HELP = (
    "Labeled data instead of the database: a CSV file (columns subject, body and the"
    " label column), JSON Lines mail records (a .jsonl file or a directory of them, e.g."
    " benchmarks/heldout) or a directory whose folders are the labels (20 Newsgroups,"
    " Maildir)."
)
_LABEL_HELP = "Label column of a CSV file (default: the target, i.e. queue or priority)."
_TARGET_HELP = "What the model predicts: the queue (routing) or the priority."


@cli.command("train")
@click.option("--from", "source", type=click.Path(path_type=Path), help=_FROM_HELP)
@click.option("--label", metavar="COLUMN", help=_LABEL_HELP)
@click.option("--target", type=click.Choice(_TARGETS), default="queue", help=_TARGET_HELP)
@click.option(
    "--force",
    is_flag=True,
    help="Activate the new model even if it scores worse, or if its labels are not"
    " configured queues (priorities with --target priority).",
)
@click.option(
    "--shipped/--no-shipped",
    default=None,
    help="Also learn from the office-mail set shipped with triage (default: yes without"
    " --from, no with it).",
)
@pass_app
def train_command(  # noqa: PLR0917 - click passes every option as an argument
    app: AppContext,
    source: Path | None,
    label: str | None,
    target: str,
    force: bool,
    shipped: bool | None,
) -> None:
    """Train a routing model and make it the active one.

    Without --from it learns from the office-mail set shipped with triage (Hungarian
    and English client mail) and the database's labels (`triage move` corrections,
    which win over a shipped mail with the same text); --no-shipped: corrections only.
    Keeps a stratified 20 % aside, trains on the rest and scores both the new and
    the active model on it: the new model becomes active only if it is at least as
    good (macro-F1), unless --force. The saved model is refitted on all examples.
    """
    from triage.training.commands import run_train  # noqa: PLC0415 - keeps startup fast

    run_train(app, source=source, label=label, target=target, force=force, shipped=shipped)


@cli.command("evaluate")
@click.option("--from", "source", type=click.Path(path_type=Path), help=_FROM_HELP)
@click.option("--label", metavar="COLUMN", help=_LABEL_HELP)
@click.option("--target", type=click.Choice(_TARGETS), default="queue", help=_TARGET_HELP)
@click.option(
    "--plot",
    metavar="FILE.png",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("confusion-matrix.png"),
    show_default=True,
    help="Where to write the confusion matrix picture.",
)
@click.option("--folds", default=5, show_default=True, help="Folds of cross-validation.")
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    help="Accuracy wanted on automatically routed mail: report the threshold and coverage"
    " it implies (default: routing.target_accuracy, else 0.90).",
)
@pass_app
def evaluate_command(  # noqa: PLR0917 - click passes every option as an argument
    app: AppContext,
    source: Path | None,
    label: str | None,
    target: str,
    plot: Path,
    folds: int,
    target_accuracy: float | None,
) -> None:
    """Score the active model on labeled data (--from), or cross-validate on the database's labels.

    Prints accuracy and macro-F1, per-class precision/recall/support, the confusion
    matrix, the reliability table of the model's confidence and, for a target
    accuracy, the threshold and the share of mail routed automatically it implies;
    writes the confusion matrix as a PNG picture. For the shipped held-out set:
    `triage evaluate --from benchmarks/heldout`.
    """
    from triage.training.commands import run_evaluate  # noqa: PLC0415 - keeps startup fast

    run_evaluate(
        app,
        source=source,
        label=label,
        target=target,
        plot=plot,
        folds=folds,
        target_accuracy=target_accuracy,
    )
