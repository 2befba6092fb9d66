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
from sqlalchemy.orm import Session

from rules import RuleSet, load_rules
from rules.conditions import describe_condition
from rules.model import RuleDecision
from rules.replay import RuleAccuracy, deciding_rule
from triage.cli.context import AppContext, config_option, pass_app
from triage.cli.main import cli
from triage.cli.terminal import terminal_safe
from triage.domain import InboundMessage, ParseStatus
from triage.errors import ModelError, RuleFileError
from triage.handling import (
    Action,
    Decision,
    EarlierCopy,
    Facts,
    Predictions,
    SentAck,
    ThreadFact,
    TicketFact,
    decide,
)
from triage.handling.replay import ReplayCounts, StoredOutcome, compare_decisions, stored_action
from triage.mail import parse_message
from triage.outbox.enqueue import ACK_WINDOW, answered_ack, earlier_repeat
from triage.routing import routing_threshold
from triage.rule_files import load_configured_rules
from triage.store import Database
from triage.store.models import Message, OutboxMail, RoutingDecision, Ticket, TrainingLabel

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
    """Inbound messages (oldest first) with their decisions, read in short batches.

    ``on_total`` is told how many there are before the first one (the progress bar).

    Read-only: nothing is added or changed, every transaction is rolled back, and
    each batch's transaction ends before its messages are replayed (on SQLite a
    transaction holds the write lock, which the daemon needs).
    """
    query = select(Message.id).where(Message.direction == "in")
    if since is not None:
        query = query.where(Message.received_at >= since)
    query = query.order_by(Message.received_at, Message.id)
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
    """Replay the whole decision over stored mail; print the decisions that would change.

    Each stored inbound message goes through the same decision as new mail
    (triage.handling.decide: duplicates, threads, machine mail, the candidate rules,
    mailing lists, the active model, the fallback queue, the acknowledgment policy)
    with the facts as they were when it was decided: its thread as stored, the
    acknowledgments and mail stored before it. What would change (what becomes of it,
    queue, priority, escalation, acknowledgment) is printed per message, then the
    totals. Nothing is written to the database.
    """
    settings = app.settings
    zone = ZoneInfo(settings.calendar.timezone)
    start = _since(since, zone)
    ruleset = load_configured_rules(settings, rule_files or None)
    db = app.db
    totals = ReplayCounts()
    accuracy = RuleAccuracy()
    corrections = _corrections(db)
    model, threshold = _confident_model(app, db)
    priority_model = _priority_model(app, db)
    bar = _ReplayBar(show=not app.verbose)
    for message, stored in bar.track(_stored_messages(db, start, on_total=bar.set_total)):
        totals.messages += 1
        parsed = parse_message(message.raw, received_at=message.received_at)
        if parsed.parse_status is not ParseStatus.OK:
            totals.unparsed += 1
        outcome = _outcome(stored) if stored is not None else None
        now = stored.created_at if stored is not None else message.received_at
        with db.read_session() as session:
            source = _ReplayFacts(
                session, message, parsed, ruleset, (model, priority_model), outcome, now
            )
            decided = decide(
                Facts(
                    message=parsed,
                    settings=settings,
                    now=now,
                    source=source,
                    imported=message.source == "import",
                    # how `triage import` was run is not stored: told by its decision
                    acknowledge_imports=outcome is not None and outcome.ack != "import",
                    open_import_tickets=not _stored_as_history(outcome),
                    can_send=settings.smtp is not None,
                    model_note="" if model is not None else "no classifier model is active",
                    threshold=threshold,
                )
            )
        candidate = source.evaluated if decided.action is Action.OPEN else None
        rule = deciding_rule(candidate) if candidate is not None else None
        if rule is not None and candidate is not None and candidate.queue is not None:
            answer = None
            if model is not None and parsed.parse_status is ParseStatus.OK:
                prediction = source.predictions()[0]
                answer = (prediction.label, prediction.confidence) if prediction else None
            accuracy.add(
                rule,
                candidate.queue,
                corrected=corrections.get(message.id),
                model=answer,
                threshold=threshold,
            )
        if outcome is None:
            totals.without_decision += 1
            click.echo(_heading(message))
            click.echo(f"  no stored decision; it would be: {_describe(decided)}")
            continue
        changes = compare_decisions(outcome, decided)
        totals.add(decided, changes)
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


def _describe(decision: Decision) -> str:
    """``open in billing (rule), acknowledged`` and the like, for a message never decided."""
    what = str(decision.action)
    if decision.route.queue:
        what += f" in {decision.route.queue} ({decision.route.decided_by})"
    reason = decision.ack_reason
    return f"{what}, {'acknowledged' if reason is None else f'no acknowledgment: {reason}'}"


def _stored_as_history(outcome: StoredOutcome | None) -> bool:
    """The message was imported as history that opens no ticket (``triage import``
    without tickets): stored only, not acknowledged because imported."""
    return outcome is not None and outcome.action is Action.STORE and outcome.ack == "import"


def _outcome(stored: RoutingDecision) -> StoredOutcome:
    explanation = tuple(str(e) for e in stored.explanation or ())
    return StoredOutcome(
        action=stored_action(stored.queue, stored.ack, explanation),
        queue=stored.queue,
        priority=stored.priority,
        decided_by=stored.decided_by,
        escalate=tuple(str(e) for e in stored.escalate or ()),
        ack=stored.ack,
    )


class _ReplayFacts:
    """The :class:`~triage.handling.FactSource` of a stored message, read-only: the facts
    as they were when it was decided. Its thread is the one stored (a message that
    joined a ticket joins it again); an earlier copy, our acknowledgments and repeats
    are looked for among the rows stored before it; the recent acknowledgments are
    those queued in the hour before its decision, its own excepted."""

    def __init__(  # noqa: PLR0917 - private; the arguments are the message in hand
        self,
        session: Session,
        row: Message,
        parsed: InboundMessage,
        ruleset: RuleSet,
        models: tuple[TrainedModel | None, TrainedModel | None],
        outcome: StoredOutcome | None,
        now: datetime,
    ) -> None:
        self.session, self.row, self.parsed = session, row, parsed
        self.ruleset, self.models, self.outcome, self.now = ruleset, models, outcome, now
        self.evaluated: RuleDecision | None = None
        self._answers: Predictions | None = None

    def _ticket(self, ticket_id: int | None) -> TicketFact | None:
        ticket = self.session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is None:
            return None
        return TicketFact(
            id=ticket.id,
            ref=ticket.ref,
            queue=ticket.queue,
            priority=ticket.priority,
            decided_by=ticket.decided_by,
            client_addr=ticket.client_addr or "",
        )

    def earlier_copy(self) -> EarlierCopy | None:
        row = self.row
        if self.parsed.message_id_synthetic or self.parsed.parse_status == ParseStatus.ERROR:
            return None
        if not row.message_id or not row.from_addr:
            return None
        original = self.session.execute(
            select(Message.id, Message.ticket_id)
            .where(
                Message.message_id == row.message_id,
                Message.id < row.id,
                Message.direction == "in",
                func.lower(Message.from_addr) == row.from_addr.lower(),
            )
            .order_by(Message.id)
            .limit(1)
        ).first()
        if original is None:
            return None
        return EarlierCopy(int(original.id), self._ticket(original.ticket_id))

    def thread(self) -> ThreadFact | None:
        if self.outcome is None or self.outcome.action is not Action.JOIN:
            return None
        ticket = self._ticket(self.row.ticket_id)
        return ThreadFact(ticket, "the thread as stored", "") if ticket is not None else None

    def sent_ack(self, message_id: str) -> SentAck | None:
        sent = self.session.execute(
            select(OutboxMail.sent_at).where(
                OutboxMail.message_id == message_id, OutboxMail.kind == "ack"
            )
        ).first()
        return SentAck(sent.sent_at) if sent is not None else None

    def rules(self) -> RuleDecision | None:
        self.evaluated = self.ruleset.evaluate(self.parsed)
        return self.evaluated

    def predictions(self) -> Predictions:
        if self._answers is None:
            self._answers = _predict(self.models, self.parsed)
        return self._answers

    def recent_acks(self) -> int:
        recipient = self.parsed.reply_address
        if recipient is None:
            return 0
        now = self.now
        count = self.session.scalar(
            select(func.count(OutboxMail.id)).where(
                OutboxMail.kind == "ack",
                OutboxMail.rcpt_key == recipient.addr.lower(),
                OutboxMail.created_at >= now - ACK_WINDOW,
                OutboxMail.created_at < now,
                or_(
                    OutboxMail.cause_message_id.is_(None),
                    OutboxMail.cause_message_id != self.row.id,
                ),
            )
        )
        return int(count or 0)

    def answered_ack(self) -> str:
        return answered_ack(self.session, self.parsed)

    def repeat_of(self) -> str:
        return earlier_repeat(
            self.session, self.parsed, self.now - ACK_WINDOW, before_id=self.row.id
        )


def _predict(
    models: tuple[TrainedModel | None, TrainedModel | None], message: InboundMessage
) -> Predictions:
    """(queue model's, priority model's) answer for ``message``; None where no model."""
    queue_model, priority_model = models
    if message.parse_status == ParseStatus.ERROR or (
        queue_model is None and priority_model is None
    ):
        return None, None
    from classifiers.features import example_from_message  # noqa: PLC0415 - scikit-learn

    example = [example_from_message(message)]
    return (
        queue_model.predict(example)[0] if queue_model is not None else None,
        priority_model.predict(example)[0] if priority_model is not None else None,
    )


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


def _priority_model(app: AppContext, db: Database) -> TrainedModel | None:
    """The active priority model when ``classifier.predict_priority`` is on, else None."""
    if not (app.settings.classifier.enabled and app.settings.classifier.predict_priority):
        return None
    from triage.modelstore import load_active_model  # noqa: PLC0415 - loads skops on use

    try:
        with db.read_session() as session:
            return load_active_model(session, "priority")
    except ModelError as exc:
        click.echo(f"note: the active priority model is refused ({exc})")
        return None
