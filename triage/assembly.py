"""The composition root: triage assembled from its settings, in one place.

:func:`assemble` builds the parts every way of running triage needs, the same way
for all of them: ``triage run`` and ``triage poll --once`` (through
:class:`~triage.daemon.Daemon`), ``triage demo``, ``triage import`` and the tests.

- rules (:func:`load_rules`) and classifier models (:func:`load_models`);
- the routing pipeline, and the intake that stores mail through it (imports and
  anything handed to :meth:`~triage.services.intake.Intake.import_message`);
- the IMAP poller (with ``[imap]``), which stores fetched mail through the same pipeline;
- the outbox dispatcher (with ``[smtp]``, or a given sender);
- the escalation watch: the SLA watch's scan and the notifier (e-mail, with ``[smtp]``),
  run by :meth:`Assembly.escalation_pass`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import structlog

from triage.clock import Clock, SystemClock
from triage.config import Settings
from triage.errors import ModelError
from triage.escalation import EmailNotifier, Notifier, notify_escalations
from triage.escalation.sla import scan
from triage.imap.watch import WatchedMailbox
from triage.mail.parse import parse_message
from triage.modelstore import load_active_model
from triage.outbox.templates import MailTemplates
from triage.rule_files import load_configured_rules, rule_paths
from triage.services.dispatch import Dispatcher
from triage.services.intake import Intake, Poller
from triage.services.pipeline import ModelHolder, RoutingPipeline, RulesHolder, SentPipeline
from triage.services.workers import WorkerLeases
from triage.sla.calendar import BusinessCalendar
from triage.smtp.base import Sender
from triage.store import Database
from triage.store.models import Escalation

if TYPE_CHECKING:  # scikit-learn: only once a model is loaded
    from classifiers.cascade import Encoder
    from classifiers.model import TrainedModel

__all__ = ["Assembly", "LazyModels", "assemble", "load_models", "load_rules"]

log = structlog.get_logger("triage.daemon")


def load_rules(settings: Settings) -> RulesHolder:
    """The configured rule files, loaded and checked.

    Raises:
        RuleFileError: a rule file is broken (the daemon refuses to start).
    """
    paths = tuple(rule_paths(settings))
    if not paths:
        return RulesHolder()
    return RulesHolder(rules=load_configured_rules(settings), paths=paths)


def load_models(db: Database, settings: Settings) -> ModelHolder:
    """The active classifier models; a refused or missing model leaves a note, never raises.

    Routing then falls back to rules and the fallback queue (DESIGN.md).
    """
    if not settings.classifier.enabled:
        return ModelHolder(note="the classifier is disabled in the configuration")
    holder = ModelHolder()
    with db.read_session() as session:
        try:
            holder.queue = load_active_model(session, "queue")
        except ModelError as exc:
            holder.note = f"the active model was refused ({exc})"
            log.error("model_refused", target="queue", error=str(exc))  # noqa: TRY400
        if holder.queue is None and not holder.note:
            holder.note = "no classifier model is active (run `triage train`)"
        holder.second_stage_max_batch = settings.classifier.second_stage_max_batch
        if holder.queue is not None and holder.queue.second_stage is not None:
            if settings.classifier.second_stage:
                from triage.embeddings import load_encoder  # noqa: PLC0415 - numpy

                holder.encoder, why = load_encoder()
                if holder.encoder is None:
                    log.warning("second_stage_unavailable", reason=why)
            else:
                log.info("second_stage_disabled")
        if settings.classifier.predict_priority:
            try:
                holder.priority = load_active_model(session, "priority")
            except ModelError as exc:
                log.error("model_refused", target="priority", error=str(exc))  # noqa: TRY400
    log.info(
        "models_loaded",
        queue=holder.queue.version if holder.queue else None,
        priority=holder.priority.version if holder.priority else None,
    )
    return holder


class LazyModels(ModelHolder):
    """The active classifier models, loaded by :func:`load_models` when first read.

    ``triage poll --once`` with no new mail never reads them, so it never imports
    scikit-learn; the first message that is routed reads them (``queue``,
    ``priority``, ``note``, ``encoder``, or a prediction) and loads them then, once,
    under a lock (the intake's threads share the holder). What loading reports is
    what it reports at a daemon's start: a refused model is logged as
    ``model_refused`` and its reason becomes :attr:`note` (shown in every routing
    explanation). Setting an attribute (the daemon's model refresh) counts as loaded.

    Args:
        db: the store the active models are read from.
        settings: the configuration (``[classifier]``).
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        # no super().__init__(): its assignments would count as loaded
        self._db = db
        self._settings = settings
        self._lock = threading.Lock()
        self._values: dict[str, Any] | None = None
        self.second_stage_max_batch = settings.classifier.second_stage_max_batch

    @property
    def loaded(self) -> bool:
        """Whether the models have been read (or set) yet."""
        return self._values is not None

    def _get(self, name: str) -> Any:
        values = self._values
        if values is None:
            with self._lock:
                if self._values is None:
                    fresh = load_models(self._db, self._settings)
                    self._values = {
                        "queue": fresh.queue,
                        "priority": fresh.priority,
                        "note": fresh.note,
                        "encoder": fresh.encoder,
                    }
                values = self._values
        return values[name]

    def _set(self, name: str, value: Any) -> None:
        with self._lock:
            if self._values is None:
                self._values = {"queue": None, "priority": None, "note": "", "encoder": None}
            self._values[name] = value

    @property
    def queue(self) -> TrainedModel | None:
        """The queue model (loaded on first read)."""
        return cast("TrainedModel | None", self._get("queue"))

    @queue.setter
    def queue(self, value: TrainedModel | None) -> None:
        self._set("queue", value)

    @property
    def priority(self) -> TrainedModel | None:
        """The priority model (loaded on first read)."""
        return cast("TrainedModel | None", self._get("priority"))

    @priority.setter
    def priority(self, value: TrainedModel | None) -> None:
        self._set("priority", value)

    @property
    def note(self) -> str:
        """Why there is no queue model (loaded on first read)."""
        return str(self._get("note"))

    @note.setter
    def note(self, value: str) -> None:
        self._set("note", value)

    @property
    def encoder(self) -> Encoder | None:
        """The second stage's encoder (loaded on first read)."""
        return cast("Encoder | None", self._get("encoder"))

    @encoder.setter
    def encoder(self, value: Encoder | None) -> None:
        self._set("encoder", value)


@dataclass
class Assembly:
    """The parts of triage for one configuration and database (see :func:`assemble`).

    Attributes:
        settings, db, clock: what it was assembled from.
        rules, models: the rule set and classifier holders (the daemon swaps their
            contents on SIGHUP and when another model is activated).
        pipeline: the routing pipeline, None for an intake that stores only.
        intake: stores imported mail (and any raw mail handed to it) through ``pipeline``.
        poller: the IMAP folders' watchers, None without ``[imap]``.
        dispatcher: the outbox's sender loop, None without ``[smtp]`` or a sender.
        calendar: the business calendar.
        templates: the mail templates, None without ``[smtp]``.
        notifier: how people hear of escalations, None without ``[smtp]``.
    """

    settings: Settings
    db: Database
    clock: Clock
    rules: RulesHolder
    models: ModelHolder
    pipeline: RoutingPipeline | None
    intake: Intake
    poller: Poller | None
    dispatcher: Dispatcher | None
    calendar: BusinessCalendar
    templates: MailTemplates | None
    notifier: Notifier | None

    def escalation_pass(self, now: datetime | None = None) -> list[Escalation]:
        """One pass of the escalation watch, in one transaction: the SLA watch's new
        warning and breach rows, then the notifier tells of every un-notified one.

        Returns the rows the SLA watch made.

        Raises:
            StoreError: the database cannot be written.
            ConfigError: a mail template is missing or broken.
        """
        now = now or self.clock.now()
        with self.db.session() as session:
            made = scan(session, self.settings, self.calendar, now)
            if self.notifier is not None:
                notify_escalations(session, self.notifier, now)
        return made


def assemble(
    settings: Settings,
    db: Database,
    *,
    clock: Clock | None = None,
    rules: RulesHolder | None = None,
    models: ModelHolder | None = None,
    route: bool = True,
    acknowledge_imports: bool = False,
    open_import_tickets: bool = True,
    sender: Sender | None = None,
    open_mailbox: Callable[[], WatchedMailbox] | None = None,
    poll: bool = True,
    max_message_size: int | None = None,
    lazy_models: bool = False,
) -> Assembly:
    """Assemble triage from ``settings`` and the migrated ``db``.

    Args:
        settings: the configuration.
        db: the store.
        clock: the current time (default: the system's, UTC).
        rules: the rules (default: the configured rule files, :func:`load_rules`).
        models: the classifier models (default: the active ones, :func:`load_models`).
        route: False for an intake that stores only (``triage import`` without
            ``--open-tickets``): no pipeline, and neither rules nor models are loaded.
        acknowledge_imports: acknowledge imported mail too (the demo does).
        open_import_tickets: open tickets for imported mail.
        sender: outgoing mail sender (default: from ``[smtp]``); a dispatcher is made
            when there is one.
        open_mailbox: IMAP connection factory (tests); default from ``[imap]``.
        poll: False to leave out the IMAP poller even with ``[imap]``.
        max_message_size: the intake's limit in bytes (default: ``imap.max_message_size``
            with ``[imap]``, else none).
        lazy_models: load the default models when the first message needs them
            (:class:`LazyModels`: ``poll --once`` with nothing new never imports
            scikit-learn), not now.

    Raises:
        RuleFileError: a configured rule file is broken.
        ConfigError: a setting cannot be used (a mail template directory, ...).
    """
    clock = clock or SystemClock()
    calendar = BusinessCalendar.from_settings(settings.calendar)
    if rules is None:
        rules = load_rules(settings) if route else RulesHolder()
    if models is None:
        if not route:
            models = ModelHolder()
        elif lazy_models and settings.classifier.enabled:
            models = LazyModels(db, settings)
        else:
            models = load_models(db, settings)
    pipeline = (
        RoutingPipeline(
            settings,
            rules=rules,
            models=models,
            clock=clock,
            acknowledge_imports=acknowledge_imports,
            open_import_tickets=open_import_tickets,
        )
        if route
        else None
    )
    dispatcher = (
        Dispatcher.from_settings(db, settings, sender=sender, clock=clock)
        if settings.smtp is not None or sender is not None
        else None
    )
    if max_message_size is None and settings.imap is not None:
        max_message_size = settings.imap.max_message_size
    intake = Intake(
        db,
        pipeline=pipeline,
        clock=clock,
        max_message_size=max_message_size,
        parse=partial(parse_message, time_zone=settings.calendar.timezone),
    )
    poller = (
        Poller(
            settings,
            db,
            pipeline=pipeline,
            clock=clock,
            open_mailbox=open_mailbox,
            sent_pipeline=SentPipeline(settings, clock=clock),
            on_commit=dispatcher.wake if dispatcher is not None else None,
            leases=WorkerLeases(db),
        )
        if settings.imap is not None and poll
        else None
    )
    templates = MailTemplates.from_settings(settings) if settings.smtp is not None else None
    notifier: Notifier | None = (
        EmailNotifier(settings, templates=templates, calendar=calendar)
        if templates is not None
        else None
    )
    return Assembly(
        settings=settings,
        db=db,
        clock=clock,
        rules=rules,
        models=models,
        pipeline=pipeline,
        intake=intake,
        poller=poller,
        dispatcher=dispatcher,
        calendar=calendar,
        templates=templates,
        notifier=notifier,
    )
