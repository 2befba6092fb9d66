"""The daemon: runs intake, dispatch and the SLA watch together (parts from :mod:`triage.assembly`).

One process, one asyncio loop:

- IMAP intake (:class:`~triage.services.intake.Poller`) in threads, one per watched
  folder, with IDLE; each message is parsed, routed and stored with its ticket and
  outbox rows in one transaction (:class:`~triage.services.pipeline.RoutingPipeline`);
- the outbox dispatcher (:class:`~triage.services.dispatch.Dispatcher`) sending
  acknowledgments, replies and escalations, woken after each stored message, so a
  slow SMTP server never delays intake;
- the SLA watch every ``sla_interval`` seconds: warnings and breaches become
  escalation rows and then outbox mail (:mod:`triage.escalation.sla`,
  :func:`triage.escalation.notify_escalations`);
- the classifier models, reloaded when another process (``triage train``)
  activates a new one.

Signals: SIGTERM and SIGINT stop taking new work, finish or roll back the message
in hand, log out of IMAP, finish the SMTP attempt in progress, and return; SIGHUP
reloads the rule files, keeping the old rules when the new ones are broken, and
re-reads ``[smtp]``'s connection (host, port, security, login, password source):
sending that stopped because the server refused the login resumes with it
(:meth:`Daemon.reload`).

Under systemd (``Type=notify``) it reports ``READY=1`` once every loop runs,
``STATUS=`` lines, ``STOPPING=1``, and ``WATCHDOG=1`` only while the intake, dispatch
and SLA loops make progress (:mod:`triage.watchdog`, :mod:`triage.liveness`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from triage.assembly import LazyModels, assemble, load_models
from triage.clock import Clock, SystemClock, utcnow
from triage.config import Settings, load_config
from triage.errors import ConfigError
from triage.escalation import mail_mentions, notify_escalations
from triage.escalation.sla import scan_batch
from triage.failures import RepeatedFailure
from triage.health import Health, read_health
from triage.imap.watch import WatchedMailbox
from triage.liveness import Liveness
from triage.metrics import TriageMetrics
from triage.modelstore import active_model_info
from triage.monitoring import MonitoringServer
from triage.rule_files import load_configured_rules, reload_configured_rules
from triage.services.dispatch import DispatchStats
from triage.services.intake import FolderResult
from triage.services.retrain import RetrainOutcome, retrain, retrain_due
from triage.smtp.base import Sender
from triage.smtp.factory import make_sender
from triage.store import Database
from triage.store.notify import OUTBOX_CHANNEL, Listener
from triage.systemd import SystemdNotifier, watchdog_interval
from triage.watchdog import Watchdog

__all__ = ["Daemon", "PassSummary", "run_until_signalled"]

log = structlog.get_logger("triage.daemon")

GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits (Python's default is 0.005).

The daemon's event loop (dispatch) wakes for every SMTP reply and database result
while intake threads parse and route; at the default each wake-up could wait 5 ms
for the GIL, which capped acknowledgments at a few per second during a burst."""


@dataclass(frozen=True)
class PassSummary:
    """What one ``triage poll --once`` pass did.

    Attributes:
        folders: per-folder outcome of the fetch.
        escalations: warning and escalation rows the SLA watch made.
        sent: outgoing mail delivered, deferred and failed.
    """

    folders: list[FolderResult]
    escalations: int
    sent: DispatchStats


def _active_versions(db: Database) -> tuple[str | None, str | None]:
    with db.read_session() as session:
        queue = active_model_info(session, "queue")
        priority = active_model_info(session, "priority")
    return (queue.version if queue else None, priority.version if priority else None)


class Daemon:
    """Everything ``triage run`` does, for one configuration and database.

    Args:
        settings: the configuration (``[imap]`` and ``[smtp]`` present for a real run).
        db: the store, migrated.
        clock: the current time.
        sender: outgoing mail sender (default: from ``[smtp]``).
        open_mailbox: IMAP connection factory (tests); default from ``[imap]``.
        sla_interval: seconds between SLA watch passes.
        model_check_interval: seconds between checks for a newly activated model.
        lazy_models: load the models when the first message needs them
            (:class:`~triage.assembly.LazyModels`; ``poll --once``), not at start.

    Without ``[smtp]`` (and no ``sender``) there is no dispatcher: :meth:`poll_once`
    stores and routes without sending (acknowledgments are not queued, reason
    ``no_smtp``), and :meth:`run` refuses to start.

    Raises:
        RuleFileError: a configured rule file is broken.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        clock: Clock | None = None,
        sender: Sender | None = None,
        open_mailbox: Callable[[], WatchedMailbox] | None = None,
        sla_interval: float = 30.0,
        model_check_interval: float = 60.0,
        lazy_models: bool = False,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.parts = assemble(
            settings,
            db,
            clock=self.clock,
            sender=sender,
            open_mailbox=open_mailbox,
            lazy_models=lazy_models,
        )
        """The parts, assembled by the composition root (:func:`triage.assembly.assemble`)."""
        self.rules = self.parts.rules
        self.models = self.parts.models
        assert self.parts.pipeline is not None  # noqa: S101 - assembled with route=True
        self.pipeline = self.parts.pipeline
        self.dispatcher = self.parts.dispatcher
        self._fixed_sender = sender is not None
        self.poller = self.parts.poller
        self.calendar = self.parts.calendar
        self.notifier = self.parts.notifier
        self.templates = self.parts.templates
        self.sla_interval = sla_interval
        self.model_check_interval = model_check_interval
        # the versions in use: what was loaded, or (lazily) what will be loaded
        self._versions = (
            _active_versions(db)
            if isinstance(self.models, LazyModels) and not self.models.loaded
            else (
                self.models.queue.version if self.models.queue else None,
                self.models.priority.version if self.models.priority else None,
            )
        )
        self.liveness = Liveness()
        """Progress of the intake, dispatch and SLA loops (the watchdog and /metrics read it)."""
        self.metrics = TriageMetrics(
            health=self.health,
            liveness=self.liveness,
            folders=settings.imap.folder_keys() if settings.imap is not None else (),
        )
        """What ``/metrics`` serves (a web app mounts ``self.metrics.asgi_app()``)."""

    def health(self) -> Health:
        """The health verdict now: the same as ``triage status`` (what ``/health`` serves)."""
        return read_health(self.db, self.settings, self.clock.now())

    # -- rules -------------------------------------------------------------------------

    def reload_rules(self) -> bool:
        """Reload the rule files (SIGHUP). Keeps the old rules when the new are broken.

        Returns True when the new rules are in use.
        """
        current = self.rules.rules
        if current is None:
            try:
                self.rules.rules = load_configured_rules(self.settings)
            except Exception as exc:  # noqa: BLE001 - a reload never stops the daemon
                log.error("rules_reload_failed", problems=str(exc).splitlines())  # noqa: TRY400
                return False
            log.info("rules_reloaded")
            return True
        new, problems = reload_configured_rules(current, self.settings)
        if problems:
            log.error("rules_reload_failed", problems=problems)
            return False
        self.rules.rules = new
        log.info("rules_reloaded")
        return True

    def reload_smtp(self) -> bool:
        """Re-read ``[smtp]`` from the config file and let the dispatcher send with it (SIGHUP).

        Sending stopped by a refused login resumes after one login check with the
        new settings (:meth:`Dispatcher.resume`). A config file that cannot be read
        or whose ``[smtp]`` is invalid is refused (logged as ``smtp_reload_failed``)
        and the current sender kept. With a sender given to the constructor (tests)
        the same sender is kept and only the stop lifted.

        Returns True when the dispatcher was asked to resume.
        """
        if self.dispatcher is None:
            return False
        if self._fixed_sender or self.settings.path is None:
            self.dispatcher.resume()
            return True
        try:
            fresh = load_config(self.settings.path)
            sender = make_sender(fresh)
        except Exception as exc:  # noqa: BLE001 - a reload never stops the daemon
            log.error("smtp_reload_failed", error=str(exc))  # noqa: TRY400 - no traceback
            return False
        self.dispatcher.resume(sender)
        log.info("smtp_reloaded", sender=repr(sender))
        return True

    def reload(self) -> None:
        """What SIGHUP does: :meth:`reload_rules`, then :meth:`reload_smtp`."""
        self.reload_rules()
        self.reload_smtp()

    # -- periodic jobs -------------------------------------------------------------------

    def sla_pass(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """One SLA watch pass: new warnings and breaches, then their mail and the mail of
        new @mentions. Returns the escalation rows made plus the mention mails queued.

        Bounded batches (:data:`~triage.escalation.sla.SCAN_BATCH` tickets, then the
        mail of what they raised), each its own transaction: memory stays flat however
        large the backlog, the SQLite write lock is held only a batch at a time, and
        ``should_stop`` (SIGTERM) is obeyed between batches; the next pass goes on from
        where this one stopped. One summary line when the pass did anything.
        """
        now = self.clock.now()
        digest = self.settings.owners.digest != "off"
        made = looked_at = before_seen = failed = batches = 0
        after = None
        started = time.monotonic()
        while not should_stop():
            with self.db.session() as session:
                batch = scan_batch(session, self.settings, self.calendar, now, after=after)
                if self.notifier is not None and batch.created and not digest:
                    self._mail_escalations(session, now)
            batches += 1
            made += len(batch.created)
            looked_at += batch.looked_at
            before_seen += batch.before_seen
            failed += batch.failed
            if batch.after is None:
                break
            after = batch.after
        mentions = 0
        if self.templates is not None:
            # rule escalations written by intake, digests whose period ended, and
            # assistants named with @name in a note
            with self.db.session() as session:
                self._mail_escalations(session, now)
                mentions = mail_mentions(session, self.settings, now, templates=self.templates)
        if made or before_seen or failed or should_stop():
            log.info(
                "sla_pass_finished" if not should_stop() else "sla_pass_stopped",
                tickets=looked_at,
                escalations=made,
                breached_before_seen=before_seen,
                failed=failed,
                batches=batches,
                seconds=round(time.monotonic() - started, 2),
            )
        return made + mentions

    def _mail_escalations(self, session: Session, now: datetime) -> None:
        if self.notifier is not None:
            notify_escalations(session, self.notifier, now)

    async def _sla_loop(self, stop: asyncio.Event) -> None:
        failures = RepeatedFailure(log, "sla_watch")  # a disk-full minute: two lines, not 56
        while not stop.is_set():
            try:
                made = await asyncio.to_thread(self.sla_pass, stop.is_set)
                if made and self.dispatcher is not None:
                    self.dispatcher.wake()
            except Exception as exc:  # noqa: BLE001 - the loop goes on; logged per episode
                failures.failed(exc)
            else:
                failures.succeeded()
            await _sleep(stop, self.sla_interval)

    def refresh_models(self) -> bool:
        """Load newly activated models (another process ran ``triage train``)."""
        versions = _active_versions(self.db)
        if versions == self._versions:
            return False
        fresh = load_models(self.db, self.settings)
        self.models.queue, self.models.priority, self.models.note, self.models.encoder = (
            fresh.queue,
            fresh.priority,
            fresh.note,
            fresh.encoder,
        )
        self.models.second_stage_max_batch = fresh.second_stage_max_batch
        self._versions = versions
        return True

    def retrain_if_due(self) -> RetrainOutcome | None:
        """Retrain on corrections when the schedule says so (``[classifier] retrain_*``).

        The new model is activated only when at least as good on corrected mail the
        active model never saw (:mod:`triage.services.retrain`); then it is loaded.
        """
        now = self.clock.now()
        why = retrain_due(self.db, self.settings, now)
        if not why:
            return None
        outcome = retrain(self.db, self.settings, now, reason=why)
        if outcome.activated:
            self.refresh_models()
        return outcome

    async def _model_loop(self, stop: asyncio.Event) -> None:
        refresh = RepeatedFailure(log, "model_refresh")
        retraining = RepeatedFailure(log, "model_retrain")
        while not stop.is_set():
            await _sleep(stop, self.model_check_interval)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.refresh_models)
            except Exception as exc:  # noqa: BLE001 - the loop goes on; logged per episode
                refresh.failed(exc)
            else:
                refresh.succeeded()
            try:
                await asyncio.to_thread(self.retrain_if_due)
            except Exception as exc:  # noqa: BLE001 - the loop goes on; logged per episode
                retraining.failed(exc)
            else:
                retraining.succeeded()

    # -- one pass ------------------------------------------------------------------------

    def poll_once(self) -> PassSummary:
        """One full pass: fetch every folder, route, run the SLA watch, send what is due.

        Server or database failures of a folder are reported in the summary (and
        kept as the folder's last error), not raised.
        """
        results = self.poller.poll_once() if self.poller is not None else []
        try:
            escalations = self.sla_pass()
        except Exception:  # logged; the pass goes on to send what is queued
            log.exception("sla_watch_failed")
            escalations = 0
        sent = (
            asyncio.run(self.dispatcher.run_once())
            if self.dispatcher is not None
            else DispatchStats()
        )
        return PassSummary(folders=results, escalations=escalations, sent=sent)

    # -- the whole ---------------------------------------------------------------------

    def _expect_loops(self) -> None:
        """Tell the liveness tracker which loops must keep making progress, and how fast."""
        stall = self.settings.monitoring.stall_timeout
        self.liveness.expect("dispatch", stall)
        self.liveness.expect("sla-watch", self.sla_interval + stall)
        if self.poller is not None:
            imap = self.poller.settings
            if stall <= imap.timeout:
                log.warning(
                    "watchdog_stall_timeout_short",
                    stall_timeout=stall,
                    imap_timeout=imap.timeout,
                    hint="monitoring.stall_timeout should exceed imap.timeout",
                )
            for watcher in self.poller.watchers:
                self.liveness.expect(f"imap-{watcher.folder}", stall)

    def _start_monitoring(self) -> MonitoringServer | None:
        """``/metrics`` and ``/health`` on ``[monitoring]`` host:port, unless disabled or
        the web page (``[web] enabled``) serves them.

        An address that cannot be bound (the port taken) is logged as
        ``monitoring_failed`` and raised as the ``monitoring`` alert (``triage status``
        exits 1, systemd's ``STATUS=`` says it), cleared at the next start that binds;
        the daemon runs on without it (mail comes first).
        """
        settings = self.settings.monitoring
        if not settings.enabled or self.settings.web.enabled:
            return None
        server = MonitoringServer(self.metrics, self.health, settings.host, settings.port)
        try:
            server.start()
        except ConfigError as exc:
            log.error("monitoring_failed", error=str(exc))  # noqa: TRY400 - no traceback
            self._monitoring_alert(
                f"{exc}; /metrics and /health are not served by this daemon (whatever"
                " answers on that port is not it)"
            )
            return None
        self._monitoring_alert("")
        return server

    def _monitoring_alert(self, problem: str) -> None:
        from triage.store.alerts import clear_alert, raise_alert  # noqa: PLC0415

        try:
            with self.db.session() as session:
                if problem:
                    raise_alert(session, "monitoring", problem, utcnow())
                else:
                    clear_alert(session, "monitoring")
        except Exception as exc:  # noqa: BLE001 - monitoring must not stop the daemon
            log.warning("alert_not_recorded", alert="monitoring", error=str(exc))

    def _attention(self) -> str:
        """What needs a person now, for systemd's ``STATUS=`` line: a folder's last error
        or a standing alert (one small read), "" when nothing does or on a read error."""
        from sqlalchemy import select  # noqa: PLC0415

        from triage.store.alerts import read_alerts  # noqa: PLC0415
        from triage.store.models import Folder  # noqa: PLC0415

        try:
            with self.db.read_session() as session:
                found = [
                    f"{name}: {error}"
                    for name, error in session.execute(
                        select(Folder.name, Folder.last_error)
                        .where(Folder.last_error != "")
                        .order_by(Folder.name)
                    )
                ]
                found.extend(f"{name}: {problem}" for name, problem, _ in read_alerts(session))
        except Exception:  # noqa: BLE001 - the status line must never stop the watchdog
            return ""
        if not found:
            return ""
        more = f" (and {len(found) - 1} more: triage status)" if len(found) > 1 else ""
        return f"attention: {' '.join(found[0].split())[:200]}{more}; retrying"

    def _running_status(self) -> str:
        folders = ", ".join(w.folder for w in self.poller.watchers) if self.poller else "none"
        return f"running: watching {folders}"

    async def run(self, stop: asyncio.Event, *, notifier: SystemdNotifier | None = None) -> None:
        """Run until ``stop`` is set, then shut down gracefully and return.

        Args:
            stop: set to stop (SIGTERM, SIGINT).
            notifier: systemd notifications (default: ``$NOTIFY_SOCKET``, a no-op
                outside systemd); the watchdog pings every half ``$WATCHDOG_USEC``.

        Raises:
            ConfigError: there is no ``[smtp]`` section (nothing could be sent).
        """
        if self.dispatcher is None:
            raise ConfigError("no [smtp] section: outgoing mail cannot be sent")
        notifier = notifier if notifier is not None else SystemdNotifier()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        # The loops poll these stop signals between steps; each poll is a sign of progress.
        loops_stop = self.liveness.async_event()
        intake_stop = self.liveness.thread_event()
        self._expect_loops()
        watchdog = Watchdog(
            self.liveness,
            notifier,
            interval=watchdog_interval(),
            running_status=self._running_status(),
            attention=self._attention,
        )
        monitoring = self._start_monitoring()
        self.metrics.attach()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.dispatcher.run(loops_stop), name="dispatch"),
            asyncio.create_task(self._sla_loop(loops_stop), name="sla-watch"),
            asyncio.create_task(self._model_loop(loops_stop), name="models"),
            asyncio.create_task(watchdog.run(loops_stop), name="watchdog"),
        ]
        if self.poller is not None:
            poller = self.poller
            tasks.append(
                asyncio.create_task(asyncio.to_thread(poller.run, intake_stop), name="intake")
            )
        if self.db.engine.dialect.name == "postgresql":
            # another worker queued mail: send it now, not at the next poll (the fallback)
            dispatcher = self.dispatcher
            listener = Listener(self.db.engine, [OUTBOX_CHANNEL], lambda _: dispatcher.wake())
            tasks.append(
                asyncio.create_task(asyncio.to_thread(listener.run, intake_stop), name="listen")
            )
        log.info(
            "daemon_started",
            folders=[w.folder for w in self.poller.watchers] if self.poller else [],
            rules=len(self.rules.rules.rules) if self.rules.rules is not None else 0,
            model=self._versions[0],
            watchdog=watchdog.interval > 0,
        )
        notifier.ready(self._running_status())
        try:
            await stop.wait()
        finally:
            log.info("daemon_stopping")
            notifier.stopping("stopping: finishing the message in hand")
            loops_stop.set()
            intake_stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("task_failed", task=task.get_name(), error=repr(result))
            if monitoring is not None:
                monitoring.stop()
            self.metrics.detach()
            self.dispatcher.close()
            sys.setswitchinterval(switch_interval)
            log.info("daemon_stopped")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return


def run_until_signalled(
    daemon: Daemon, *, also: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None
) -> None:
    """Run ``daemon`` in a new event loop until SIGTERM or SIGINT; SIGHUP reloads rules
    and ``[smtp]`` (:meth:`Daemon.reload`).

    ``also`` (the web page, ``[web] enabled``) runs in the same loop and is given the
    same stop event.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, daemon.reload))
        if also is None:
            await daemon.run(stop)
            return
        extra = asyncio.create_task(also(stop), name="also")
        try:
            await daemon.run(stop)
        finally:
            stop.set()
            await extra

    asyncio.run(main())
