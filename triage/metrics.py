"""Prometheus metrics of the daemon (prometheus-client), in one registry.

Two sources, so that each number has one owner:

- **Events** (counters and histograms, since the process started): the daemon's
  log events are a stable vocabulary (``message_stored``, ``message_routed``,
  ``imap_reconnecting``, ``ticket_escalated``, ``mail_sent`` ...; STYLE.md), so a
  structlog processor (:func:`triage.logtap.event_tap`, installed by
  :func:`triage.logs.configure_logging` whatever the log level) hands every
  event to the attached :class:`TriageMetrics`, whose :data:`EVENTS` table
  says which metric each one moves. Nothing in the intake, routing or dispatch
  code knows about Prometheus.
- **State** (gauges, read at scrape time): :class:`StatusCollector` reads the
  same :class:`~triage.services.status.Status` as ``triage status`` (via
  :func:`triage.health.read_health`), so ``/metrics`` and ``triage status``
  agree by construction: last successful poll per folder, outbox pending /
  failed / oldest age, open and breached tickets, active model versions, the
  health verdict. :class:`LivenessCollector` adds the watchdog's view of each loop.

Mount on a web app: ``prometheus_client.make_asgi_app(metrics.registry)`` at
``/metrics`` (or :meth:`TriageMetrics.asgi_app`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_asgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from structlog.typing import EventDict

from triage import logtap
from triage.health import Health
from triage.liveness import Liveness

__all__ = [
    "EVENTS",
    "LivenessCollector",
    "StatusCollector",
    "TriageMetrics",
]

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
"""Seconds from APPEND (the IMAP INTERNALDATE) to the committed row; a day and more
is old mail found at the first start or after an outage."""


class TriageMetrics:
    """The registry ``/metrics`` serves, and the event counters in it.

    Args:
        health: reads the health verdict at scrape time (None: no state gauges,
            e.g. a process without a database).
        liveness: the daemon's loops (None: no loop gauges).
        process: include the standard process, platform and GC collectors.

    Use :meth:`attach` to receive log events (and :meth:`detach` when done).
    """

    def __init__(
        self,
        *,
        health: Callable[[], Health] | None = None,
        liveness: Liveness | None = None,
        process: bool = True,
        folders: Sequence[str] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.messages_stored = Counter(
            "triage_messages_stored",
            "Fetched messages by folder and outcome: stored, error (kept raw, routed to"
            " fallback), duplicate (same UID already stored), recognized (same mail).",
            ["folder", "outcome"],
            registry=r,
        )
        self.routing_decisions = Counter(
            "triage_routing_decisions",
            "New tickets by queue and what decided it (rule, model, fallback).",
            ["queue", "decided_by"],
            registry=r,
        )
        self.model_confidence = Histogram(
            "triage_model_confidence",
            "The classifier's top calibrated probability for each message it scored.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.intake_latency = Histogram(
            "triage_intake_latency_seconds",
            "From APPEND to the mailbox (IMAP INTERNALDATE) to the message committed.",
            ["folder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.imap_connected = Gauge(
            "triage_imap_connected",
            "1 while the folder's IMAP connection is up, else 0.",
            ["folder"],
            registry=r,
        )
        self.imap_connections = Counter(
            "triage_imap_connections", "IMAP connections made per folder.", ["folder"], registry=r
        )
        self.imap_reconnects = Counter(
            "triage_imap_reconnects",
            "Failures that made a folder's watcher reconnect (after back-off).",
            ["folder"],
            registry=r,
        )
        self.escalations = Counter(
            "triage_sla_escalations",
            "SLA warnings and breaches raised by the SLA watch, by type (warning, breach)"
            " and target (first_response, next_response, resolution).",
            ["type", "target"],
            registry=r,
        )
        self.deliveries = Counter(
            "triage_outbox_deliveries",
            "Outgoing mail attempts by kind (ack, reply, escalation ...) and result.",
            ["kind", "result"],
            registry=r,
        )
        self.oauth2_refreshes = Counter(
            "triage_oauth2_token_requests",
            "OAuth2 access tokens obtained (ok) or refused (sign_in_required, failed).",
            ["result"],
            registry=r,
        )
        self.loop_stalls = Counter(
            "triage_loop_stalls",
            "Times a daemon loop stopped making progress (the watchdog was withheld).",
            ["loop"],
            registry=r,
        )
        self._prime(folders)
        if health is not None:
            r.register(StatusCollector(health))
        if liveness is not None:
            r.register(LivenessCollector(liveness))

    def _prime(self, folders: Sequence[str]) -> None:
        """Create the known label sets at 0 from the start.

        Prometheus' ``increase()`` and ``rate()`` see nothing in a series' first
        sample: a counter that appears at 1 on the first sign-in failure, reconnect
        or failed delivery would never fire an alert on ``increase(...) > 0``.
        """
        for result in ("ok", "sign_in_required", "failed"):
            self.oauth2_refreshes.labels(result)
        for type_ in ("warning", "breach"):
            for target in ("first_response", "next_response", "resolution"):
                self.escalations.labels(type_, target)
        for kind in DELIVERY_KINDS:
            for result in ("sent", "deferred", "failed"):
                self.deliveries.labels(kind, result)
        for folder in folders:
            self.imap_connections.labels(folder)
            self.imap_reconnects.labels(folder)

    # -- events ---------------------------------------------------------------------

    def observe(self, event: str, fields: EventDict) -> None:
        """Update the metrics ``event`` moves (see :data:`EVENTS`); unknown events do nothing."""
        handler = EVENTS.get(event)
        if handler is not None:
            handler(self, fields)

    def attach(self) -> None:
        """Receive log events from now on (through :func:`triage.logtap.event_tap`)."""
        logtap.attach(self)

    def detach(self) -> None:
        """Stop receiving log events."""
        logtap.detach(self)

    # -- exposition -----------------------------------------------------------------

    def asgi_app(self) -> Any:
        """An ASGI app serving the registry (mount at ``/metrics``)."""
        return make_asgi_app(self.registry)


# -- the event table --------------------------------------------------------------------


def _label(value: Any, default: str = "") -> str:
    return str(value) if value is not None else default


def _stored(m: TriageMetrics, f: EventDict) -> None:
    if f.get("source") not in {"imap", "sent"}:
        return  # imports are history, not intake
    folder = _label(f.get("folder"))
    m.messages_stored.labels(folder, _label(f.get("outcome"), "stored")).inc()
    arrived = f.get("internal_date")
    if isinstance(arrived, str):
        try:
            when = datetime.fromisoformat(arrived)
        except ValueError:
            return
        if when.tzinfo is not None:
            m.intake_latency.labels(folder).observe(
                max(0.0, (datetime.now(UTC) - when).total_seconds())
            )


def _duplicate(m: TriageMetrics, f: EventDict) -> None:
    if f.get("source") not in {"imap", "sent"}:
        return
    outcome = "duplicate" if f.get("reason") == "same_uid" else "recognized"
    m.messages_stored.labels(_label(f.get("folder")), outcome).inc()


def _routed(m: TriageMetrics, f: EventDict) -> None:
    m.routing_decisions.labels(_label(f.get("queue")), _label(f.get("decided_by"))).inc()
    confidence = f.get("confidence")
    if isinstance(confidence, int | float):
        m.model_confidence.observe(float(confidence))


def _connected(m: TriageMetrics, f: EventDict) -> None:
    folder = _label(f.get("folder"))
    m.imap_connected.labels(folder).set(1)
    m.imap_connections.labels(folder).inc()


def _reconnecting(m: TriageMetrics, f: EventDict) -> None:
    folder = _label(f.get("folder"))
    m.imap_connected.labels(folder).set(0)
    m.imap_reconnects.labels(folder).inc()


def _watch_stopped(m: TriageMetrics, f: EventDict) -> None:
    m.imap_connected.labels(_label(f.get("folder"))).set(0)


def _escalated(m: TriageMetrics, f: EventDict) -> None:
    kind = _label(f.get("kind"))  # "warning_<target>" or "<target>" (a breach)
    if kind.startswith("warning_"):
        m.escalations.labels("warning", kind.removeprefix("warning_")).inc()
    else:
        m.escalations.labels("breach", kind).inc()


DELIVERY_KINDS = ("ack", "reply", "escalation", "digest", "mention")
"""Outgoing mail kinds whose delivery counters exist at 0 from the start."""


def _delivery(result: str) -> Callable[[TriageMetrics, EventDict], None]:
    def count(m: TriageMetrics, f: EventDict) -> None:
        m.deliveries.labels(_label(f.get("kind")), result).inc()

    return count


def _oauth2(result: str) -> Callable[[TriageMetrics, EventDict], None]:
    def count(m: TriageMetrics, _f: EventDict) -> None:
        m.oauth2_refreshes.labels(result).inc()

    return count


def _stalled(m: TriageMetrics, f: EventDict) -> None:
    m.loop_stalls.labels(_label(f.get("loop"))).inc()


EVENTS: dict[str, Callable[[TriageMetrics, EventDict], None]] = {
    "message_stored": _stored,  # intake: folder, outcome, source, internal_date
    "message_duplicate": _duplicate,  # intake: folder, reason (same_uid | same_content)
    "message_routed": _routed,  # pipeline: queue, decided_by, confidence
    "imap_connected": _connected,  # imap watcher: folder
    "imap_reconnecting": _reconnecting,  # imap watcher: folder
    "imap_watch_stopped": _watch_stopped,  # imap watcher: folder
    "ticket_escalated": _escalated,  # SLA watch: kind
    "mail_sent": _delivery("sent"),  # dispatcher: kind
    "mail_deferred": _delivery("deferred"),
    "mail_failed": _delivery("failed"),
    "oauth2_token_obtained": _oauth2("ok"),  # triage.oauth2
    "oauth2_sign_in_required": _oauth2("sign_in_required"),
    "oauth2_token_failed": _oauth2("failed"),
    "loop_stalled": _stalled,  # watchdog: loop
}
"""Log event -> the metric update it causes. An event renamed elsewhere breaks
tests/test_metrics.py, which runs the real daemon and reads /metrics."""

# -- collectors read at scrape time ----------------------------------------------------


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class StatusCollector(Collector):
    """Gauges from the health verdict (``triage status``), read at each scrape."""

    def __init__(self, health: Callable[[], Health]) -> None:
        self._health = health

    def describe(self) -> list[Metric]:
        """Nothing up front: the families depend on the database (no read at registration)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the verdict and yield its gauges."""
        verdict = self._health()
        up = GaugeMetricFamily(
            "triage_status_up", "1 when the database could be read for the status, else 0."
        )
        up.add_metric([], 0.0 if verdict.status is None else 1.0)
        yield up
        healthy = GaugeMetricFamily(
            "triage_healthy", "1 when `triage status` says ok (and /health answers 200), else 0."
        )
        healthy.add_metric([], 1.0 if verdict.healthy else 0.0)
        yield healthy
        problems = GaugeMetricFamily(
            "triage_health_problems", "Reasons `triage status` lists for attention."
        )
        problems.add_metric([], float(len(verdict.problems)))
        yield problems
        status = verdict.status
        if status is None:
            return
        yield from _folder_metrics(status)
        yield from _ticket_metrics(status)
        yield from _outbox_metrics(status)
        yield from _backup_metrics(status)
        models = GaugeMetricFamily(
            "triage_model_info",
            "The active classifier model per target (the value is always 1).",
            labels=["target", "version"],
        )
        for target, version in sorted(status.models.items()):
            if version:
                models.add_metric([target, version], 1.0)
        yield models


def _backup_metrics(status: Any) -> Iterator[Metric]:
    """The newest ``triage backup`` run (nothing when none ran)."""
    backup = status.backup
    if backup is None:
        return
    ok = GaugeMetricFamily(
        "triage_backup_last_run_ok", "1 when the newest `triage backup` worked, 0 when it failed."
    )
    ok.add_metric([], 1.0 if backup.last_ok else 0.0)
    yield ok
    last = GaugeMetricFamily(
        "triage_backup_last_run_timestamp_seconds",
        "When the newest `triage backup` finished or failed (Unix time).",
    )
    last.add_metric([], backup.last_at.timestamp())
    yield last
    if backup.last_ok_at is not None:
        good = GaugeMetricFamily(
            "triage_backup_last_success_timestamp_seconds",
            "When the newest successful `triage backup` finished (Unix time).",
        )
        good.add_metric([], backup.last_ok_at.timestamp())
        yield good


def _folder_metrics(status: Any) -> Iterator[Metric]:
    last = GaugeMetricFamily(
        "triage_folder_last_poll_timestamp_seconds",
        "Unix time of the last successful pass over the folder.",
        labels=["folder"],
    )
    stale = GaugeMetricFamily(
        "triage_folder_stale", "1 when the folder was not polled for 10 minutes.", labels=["folder"]
    )
    failing = GaugeMetricFamily(
        "triage_folder_failing", "1 when the folder's last pass or login failed.", labels=["folder"]
    )
    last_uid = GaugeMetricFamily(
        "triage_folder_last_uid",
        "The folder's high-water mark (last UID stored).",
        labels=["folder"],
    )
    missing = GaugeMetricFamily(
        "triage_folder_missing_mail",
        "Mail the server lists but has not delivered yet (retried), per folder.",
        labels=["folder"],
    )
    undelivered = GaugeMetricFamily(
        "triage_folder_undelivered_mail",
        "Mail the server never delivered, kept as placeholders with open tickets.",
        labels=["folder"],
    )
    for f in status.folders:
        ts = _timestamp(f.last_poll_at)
        if ts is not None:
            last.add_metric([f.name], ts)
        stale.add_metric([f.name], 1.0 if f.stale else 0.0)
        failing.add_metric([f.name], 1.0 if f.last_error else 0.0)
        last_uid.add_metric([f.name], float(f.last_uid))
        missing.add_metric([f.name], float(f.missing))
        undelivered.add_metric([f.name], float(f.undelivered))
    yield from (last, stale, failing, last_uid, missing, undelivered)


def _ticket_metrics(status: Any) -> Iterator[Metric]:
    open_ = GaugeMetricFamily(
        "triage_tickets_open", "Open tickets (new, open, waiting) per queue.", labels=["queue"]
    )
    for queue, count in sorted(status.open_by_queue.items()):
        open_.add_metric([queue], float(count))
    yield open_
    awaiting = GaugeMetricFamily(
        "triage_tickets_awaiting_answer", "Open tickets whose client waits for the team."
    )
    awaiting.add_metric([], float(status.awaiting_answer))
    yield awaiting
    breached = GaugeMetricFamily(
        "triage_tickets_breached", "Open tickets past a running SLA deadline."
    )
    breached.add_metric([], float(status.breached))
    yield breached
    oldest = GaugeMetricFamily(
        "triage_tickets_oldest_awaiting_timestamp_seconds",
        "Unix time the longest-waiting client mail arrived (absent when none waits).",
    )
    ts = _timestamp(status.oldest_awaiting)
    if ts is not None:
        oldest.add_metric([], ts)
    yield oldest


def _outbox_metrics(status: Any) -> Iterator[Metric]:
    out = status.outbox
    mails = GaugeMetricFamily(
        "triage_outbox_mails",
        "Outgoing mail by status: pending (retrying included), retrying, failed, sent.",
        labels=["status"],
    )
    for name in ("pending", "retrying", "failed", "sent"):
        mails.add_metric([name], float(getattr(out, name)))
    yield mails
    oldest = GaugeMetricFamily(
        "triage_outbox_oldest_pending_age_seconds",
        "Seconds the oldest pending outgoing mail has waited (0 when none).",
    )
    age = (status.now - out.oldest_pending_at).total_seconds() if out.oldest_pending_at else 0.0
    oldest.add_metric([], max(0.0, age))
    yield oldest
    stuck = GaugeMetricFamily(
        "triage_outbox_stuck", "1 when outgoing mail has been pending for 10 minutes."
    )
    stuck.add_metric([], 1.0 if status.outbox_stuck else 0.0)
    yield stuck


class LivenessCollector(Collector):
    """Seconds since each daemon loop last made progress, and whether it is stalled."""

    def __init__(self, liveness: Liveness) -> None:
        self._liveness = liveness

    def describe(self) -> list[Metric]:
        """Nothing up front (loops are known once the daemon runs)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the loops' silence and stall gauges."""
        silence = GaugeMetricFamily(
            "triage_loop_seconds_since_progress",
            "Seconds since the loop (intake per folder, dispatch, SLA watch) last progressed.",
            labels=["loop"],
        )
        stalled = GaugeMetricFamily(
            "triage_loop_stalled", "1 while the loop is past its stall limit.", labels=["loop"]
        )
        stuck = {s.loop for s in self._liveness.stalled()}
        for loop, seconds in sorted(self._liveness.silence().items()):
            silence.add_metric([loop], seconds)
            stalled.add_metric([loop], 1.0 if loop in stuck else 0.0)
        yield silence
        yield stalled
