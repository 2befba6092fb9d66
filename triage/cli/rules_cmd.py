"""``triage rules check`` and ``triage rules test``: rule files checked and replayed.

``check`` validates rule files and prints every problem at once (exit status 2
on any). ``test`` replays stored inbound mail through candidate rule files and
prints the decisions that would change; it only reads the database (short
read transactions, always rolled back, never migrated).

:func:`~triage.rule_files.load_configured_rules` loads the rule files a config names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click
from sqlalchemy import func, or_, select

from rules import load_rules
from rules.conditions import describe_condition
from rules.replay import ReplayTotals, RuleAccuracy, StoredDecision, compare, deciding_rule
from triage.cli.context import AppContext, config_option, pass_app
from triage.cli.main import cli
from triage.cli.terminal import terminal_safe
from triage.domain import ParseStatus
from triage.errors import ModelError, RuleFileError
from triage.mail import parse_message
from triage.routing import routing_threshold
from triage.rule_files import load_configured_rules
from triage.store import Database
from triage.store.models import Message, RoutingDecision, TrainingLabel

if TYPE_CHECKING:  # scikit-learn loads only when `rules test` replays with a model
    from classifiers.model import TrainedModel

__all__ = ["rules"]

REPLAY_BATCH = 100
_T = TypeVar("_T")
"""Messages read per (short, rolled back) read transaction during replay."""


class _ProblemsFound(click.ClickException):
    """Rule files have problems (already printed, one a line): exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the summary line (the problems themselves are printed before)."""
        click.echo(self.message, err=True, file=file)


@cli.group()
@config_option
def rules() -> None:
    """Check rule files and replay stored mail through them."""


@rules.command("check", short_help="Check rule files; print every problem at once.")
@click.argument("files", nargs=-1, metavar="[FILE]...", type=click.Path(path_type=Path))
@click.option("--list", "show", is_flag=True, help="Also print each rule in words.")
@pass_app
def check(app: AppContext, files: tuple[Path, ...], show: bool) -> None:
    """Check rule FILEs (default: the config's routing.rule_files); print every problem.

    With a config (--config or TRIAGE_CONFIG), queue, list and assistant names are
    checked against it; without one, everything else is checked. Exit status 2
    when any problem is found.
    """
    try:
        if app.config_path is not None:
            ruleset = load_configured_rules(app.settings, files or None)
            checked = len(files) if files else len(app.settings.routing.rule_files)
        else:
            if not files:
                raise click.UsageError(
                    "name the rule files to check, or give a config (--config or TRIAGE_CONFIG)"
                )
            click.echo(
                "note: no configuration given, so queue, list and assistant names were not checked"
            )
            ruleset = load_rules(files, queues=None, lists=None)
            checked = len(files)
    except RuleFileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        count = len(exc.problems)
        raise _ProblemsFound(f"{count} problem{'s' if count != 1 else ''} found") from None
    if show:
        for rule in ruleset.rules:
            actions = ", ".join(rule.actions.describe())
            when = describe_condition(rule.condition, zone_name=ruleset.timezone)
            click.echo(f"{rule.name}: when {when} → {actions}")
    noun = "file" if checked == 1 else "files"
    click.echo(f"ok: {len(ruleset)} rules in {checked} {noun}")


def _since(value: str | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param_hint="--since"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _stored_messages(
    db: Database, since: datetime | None, *, on_total: Callable[[int], None] | None = None
) -> Iterator[tuple[Message, RoutingDecision | None]]:
    """Routed inbound messages (oldest first) with their decisions, read in short batches.

    ``on_total`` is told how many there are before the first one (the progress bar).

    Read-only: nothing is added or changed, every transaction is rolled back, and
    each batch's transaction ends before its messages are replayed (on SQLite a
    transaction holds the write lock, which the daemon needs).
    """
    query = select(Message.id).where(Message.direction == "in")
    if since is not None:
        query = query.where(Message.received_at >= since)
    query = query.order_by(Message.received_at, Message.id)
    # Only mail that was routed: the first message of each ticket. Follow-ups join
    # their ticket and bounces of unknown mail open none: rules do not route those.
    first_of_ticket = (
        select(func.min(Message.id))
        .where(Message.ticket_id.is_not(None))
        .group_by(Message.ticket_id)
    )
    query = query.where(
        or_(Message.ticket_id.is_(None), Message.id.in_(first_of_ticket)),
        # a decision without a queue: stored only (a bounce of unknown mail, history)
        ~Message.id.in_(select(RoutingDecision.message_id).where(RoutingDecision.queue == "")),
    )
    with db.read_session() as session:
        ids = list(session.scalars(query))
    if on_total is not None:
        on_total(len(ids))
    for start in range(0, len(ids), REPLAY_BATCH):
        batch = ids[start : start + REPLAY_BATCH]
        with db.read_session() as session:
            rows = session.execute(
                select(Message, RoutingDecision)
                .outerjoin(RoutingDecision, RoutingDecision.message_id == Message.id)
                .where(Message.id.in_(batch))
                .order_by(Message.received_at, Message.id)
            ).all()
            pairs = [(message, decision) for message, decision in rows]
            session.expunge_all()
        yield from pairs


def _stored(decision: RoutingDecision) -> StoredDecision:
    # A queue chosen "by rule" with no rule matched was routing's own rule (mailing
    # lists to the bulk queue): the rule engine did not decide it.
    by_rules = decision.decided_by != "rule" or bool(decision.rules_matched)
    return StoredDecision(
        queue=decision.queue,
        priority=decision.priority,
        decided_by=decision.decided_by if by_rules else "routing",
        escalate=tuple(str(e) for e in decision.escalate or ()),
        rules_matched=tuple(str(r) for r in decision.rules_matched or ()),
    )


def _heading(message: Message) -> str:
    received = message.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subject = message.subject if len(message.subject) <= 60 else message.subject[:59] + "…"
    sender = message.from_addr or "(no sender)"
    return terminal_safe(f"message {message.id}  {received}  {sender}  {subject!r}")


@rules.command("test", short_help="Replay stored mail; show the decisions that would change.")
@click.option(
    "--rules",
    "rule_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Candidate rule file (repeat for several; default: the config's routing.rule_files).",
)
@click.option(
    "--since",
    metavar="DATE",
    help="Only mail received on or after DATE (YYYY-MM-DD in the business time zone,"
    " or an ISO 8601 time).",
)
@pass_app
def replay(app: AppContext, rule_files: tuple[Path, ...], since: str | None) -> None:
    """Replay stored mail through candidate rules; print the decisions that would change.

    Compares queue, priority and escalation with each message's stored routing
    decision, then prints totals. Nothing is written to the database.
    """
    settings = app.settings
    zone = ZoneInfo(settings.calendar.timezone)
    start = _since(since, zone)
    ruleset = load_configured_rules(settings, rule_files or None)
    db = app.db
    totals = ReplayTotals()
    accuracy = RuleAccuracy()
    corrections = _corrections(db)
    model, threshold = _confident_model(app, db)
    if model is not None:
        from classifiers.features import example_from_message  # noqa: PLC0415 - scikit-learn
    default_priority = settings.routing.default_priority
    bar = _ReplayBar(show=not app.verbose)
    for message, decision in bar.track(_stored_messages(db, start, on_total=bar.set_total)):
        totals.messages += 1
        parsed = parse_message(message.raw, received_at=message.received_at)
        if parsed.parse_status is not ParseStatus.OK:
            totals.unparsed += 1
        candidate = ruleset.evaluate(parsed)
        rule = deciding_rule(candidate)
        if rule is not None and candidate.queue is not None:
            answer = None
            if model is not None and parsed.parse_status is ParseStatus.OK:
                prediction = model.predict([example_from_message(parsed)])[0]
                answer = (prediction.label, prediction.confidence)
            accuracy.add(
                rule,
                candidate.queue,
                corrected=corrections.get(message.id),
                model=answer,
                threshold=threshold,
            )
        if decision is None:
            totals.without_decision += 1
            if candidate.queue is not None:
                click.echo(_heading(message))
                click.echo(f"  no stored decision; the rules would choose queue {candidate.queue}")
            continue
        changes = compare(_stored(decision), candidate, default_priority=default_priority)
        totals.add(changes)
        if changes:
            click.echo(_heading(message))
            for change in changes:
                click.echo(f"  {terminal_safe(str(change))}")
    if start is not None:
        click.echo(f"since {start.strftime('%Y-%m-%d %H:%M UTC')}")
    for line in totals.lines():
        click.echo(line)
    if model is None:
        click.echo("note: no active model, so only corrections check the rules")
    for line in accuracy.lines():
        click.echo(terminal_safe(line))


class _ReplayBar:
    """A progress bar on stderr while mail is replayed, when stderr is a terminal:
    messages replayed of how many (rich; the lines printed meanwhile go above it)."""

    def __init__(self, *, show: bool) -> None:
        from rich.console import Console  # noqa: PLC0415 - rich is slow to import

        self.console = Console(stderr=True)
        self.show = show and self.console.is_terminal
        self._total: int | None = None
        self._set: Callable[[int], None] = lambda _n: None

    def set_total(self, total: int) -> None:
        """How many messages the replay reads (before the first one)."""
        self._total = total
        self._set(total)

    def track(self, items: Iterator[_T]) -> Iterator[_T]:
        """``items``, advancing the bar by one for each (a plain pass-through when hidden)."""
        if not self.show:
            yield from items
            return
        from rich.progress import (  # noqa: PLC0415 - only on a terminal
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task("replay", total=self._total)
            self._set = lambda n: progress.update(task, total=n)
            for item in items:
                yield item
                progress.advance(task)


def _corrections(db: Database) -> dict[int, str]:
    """The latest corrected queue of each corrected message (``triage move``)."""
    with db.read_session() as session:
        rows = session.execute(
            select(TrainingLabel.message_id, TrainingLabel.queue)
            .where(TrainingLabel.source == "correction", TrainingLabel.message_id.is_not(None))
            .order_by(TrainingLabel.id)
        ).all()
    return {int(message_id): str(queue) for message_id, queue in rows if message_id is not None}


def _confident_model(app: AppContext, db: Database) -> tuple[TrainedModel | None, float]:
    """The active queue model and the threshold routing uses with it (None when none)."""
    if not app.settings.classifier.enabled:
        return None, 1.0
    from triage.modelstore import load_active_model  # noqa: PLC0415 - loads skops on use

    try:
        with db.read_session() as session:
            model = load_active_model(session, "queue")
    except ModelError as exc:
        click.echo(f"note: the active model is refused ({exc})")
        return None, 1.0
    return model, routing_threshold(app.settings.routing, model)[0]
