"""Classifier commands: ``triage train`` and ``triage evaluate``.

The work is in :mod:`triage.cli.training_run`, imported when a command runs,
so that other commands start without loading scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    "--from-imap",
    "imap_folders",
    multiple=True,
    metavar="FOLDER=QUEUE",
    help="Learn from mail already sorted into IMAP folders on the configured server, e.g."
    " --from-imap 'Számlák=billing' --from-imap 'Időpontok=scheduling' (read only: nothing"
    " is moved or marked read). Repeat for each folder.",
)
@click.option(
    "--cascade",
    is_flag=True,
    help="Also train the cascade's second stage (a multilingual sentence embedding for the"
    " mail the first stage is unsure of); needs the optional embedding package"
    " (requirements/embeddings.txt). Slow: every example is embedded once.",
)
@click.option(
    "--shipped/--no-shipped",
    default=None,
    help="Also learn from the office-mail set shipped with triage (default: yes without"
    " --from or --from-imap, no with them).",
)
@pass_app
def train_command(  # noqa: PLR0917 - click passes every option as an argument
    app: AppContext,
    source: Path | None,
    label: str | None,
    target: str,
    force: bool,
    imap_folders: tuple[str, ...],
    cascade: bool,
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
    from triage.cli.training_run import run_train  # noqa: PLC0415 - keeps startup fast

    run_train(
        app,
        source=source,
        label=label,
        target=target,
        force=force,
        shipped=shipped,
        imap_folders=imap_folders,
        cascade=cascade,
    )


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
    from triage.cli.training_run import run_evaluate  # noqa: PLC0415 - keeps startup fast

    run_evaluate(
        app,
        source=source,
        label=label,
        target=target,
        plot=plot,
        folds=folds,
        target_accuracy=target_accuracy,
    )


@cli.group("model")
def model_group() -> None:
    """List the stored models, switch between them, retrain on corrections."""


def _figures(metrics: dict[str, Any]) -> str:
    parts = []
    if "accuracy" in metrics:
        parts.append(
            f"held-out accuracy {metrics['accuracy']:.3f} macro-F1 {metrics.get('macro_f1', 0):.3f}"
        )
    retrain = metrics.get("retrain") or {}
    if retrain.get("candidate") and retrain.get("incumbent"):
        parts.append(
            f"on {retrain['evaluated_on']} corrected mails: accuracy"
            f" {retrain['candidate']['accuracy']:.3f} (then active"
            f" {retrain.get('incumbent_version', '')}: {retrain['incumbent']['accuracy']:.3f})"
        )
    return "; ".join(parts) or "-"


@model_group.command("list")
@click.option("--target", type=click.Choice(_TARGETS), help="Only this target's models.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_app
def model_list(app: AppContext, target: str | None, as_json: bool) -> None:
    """The stored models, newest first, with their figures (the active one marked *)."""
    from triage.modelstore import list_models  # noqa: PLC0415 - keeps startup fast

    with app.db.read_session() as session:
        models = list_models(session, target)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "version": m.version,
                        "target": m.target,
                        "active": m.active,
                        "trained_at": m.trained_at.isoformat(),
                        "n_train": m.n_train,
                        "size": m.size,
                        "metrics": m.metrics,
                    }
                    for m in models
                ],
                ensure_ascii=False,
            )
        )
        return
    if not models:
        click.echo("no models yet: run `triage train`")
        return
    for m in models:
        mark = "*" if m.active else " "
        click.echo(
            f"{mark} {m.version}  {m.target:<8} trained {m.trained_at:%Y-%m-%d %H:%M}"
            f" on {m.n_train} examples, {m.size / 1_000_000:.1f} MB; {_figures(m.metrics)}"
        )


@model_group.command("activate")
@click.argument("version")
@pass_app
def model_activate(app: AppContext, version: str) -> None:
    """Make model VERSION the active one of its target (the daemon picks it up within a minute)."""
    from triage.modelstore import activate_model  # noqa: PLC0415 - keeps startup fast

    with app.db.session() as session:
        info = activate_model(session, version)
    click.echo(f"activated {info.version} ({info.target})")


@model_group.command("rollback")
@click.option("--target", type=click.Choice(_TARGETS), default="queue", show_default=True)
@pass_app
def model_rollback(app: AppContext, target: str) -> None:
    """Activate the model that was active before the current one."""
    from triage.modelstore import active_model_info, rollback_model  # noqa: PLC0415

    with app.db.session() as session:
        current = active_model_info(session, target)
        info = rollback_model(session, target)
    was = f" (was {current.version})" if current is not None else ""
    click.echo(f"rolled back: {info.version} is the active {target} model again{was}")


@model_group.command("retrain")
@pass_app
def model_retrain(app: AppContext) -> None:
    """Retrain on the shipped set and the corrections now, as the daemon does on its schedule.

    The new model becomes active only if it is at least as good as the active one on
    corrected mail the active model never saw.
    """
    from triage.clock import utcnow  # noqa: PLC0415
    from triage.services.retrain import retrain  # noqa: PLC0415 - keeps startup fast

    outcome = retrain(app.db, app.settings, utcnow(), reason="triage model retrain")
    if outcome.version:
        state = "activated" if outcome.activated else "saved, not activated"
        click.echo(f"{outcome.version}: {state}: {outcome.reason}")
    else:
        click.echo(outcome.reason)
