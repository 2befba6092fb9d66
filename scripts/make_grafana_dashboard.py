"""Write deploy/grafana-dashboard.json from the panel list below (run after changing it).

The dashboard reads the metrics of triage/metrics.py; tests/test_metrics.py checks
that every metric it names exists. Import it in Grafana (Dashboards -> New ->
Import) and pick the Prometheus data source that scrapes triage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    title: str,
    kind: str,
    targets: list[dict[str, Any]],
    pos: tuple[int, int, int, int],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    x, y, w, h = pos
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {},
    }


OK_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ATTENTION", "color": "red"},
            "1": {"text": "ok", "color": "green"},
        },
    }
]

PANELS = [
    panel(
        "Health (triage status)",
        "stat",
        [target("min(triage_healthy)")],
        (0, 0, 4, 4),
        description="The verdict of `triage status` and /health: 0 when any reason is listed.",
        thresholds=[("red", None), ("green", 1)],
        mappings=OK_MAPPING,
    ),
    panel(
        "Reasons for attention",
        "stat",
        [target("max(triage_health_problems)")],
        (4, 0, 4, 4),
        description="Run `triage status` on the server to read them.",
        thresholds=[("green", None), ("red", 1)],
    ),
    panel(
        "Breached open tickets",
        "stat",
        [target("max(triage_tickets_breached)")],
        (8, 0, 4, 4),
        thresholds=[("green", None), ("orange", 1), ("red", 10)],
    ),
    panel(
        "Clients waiting for an answer",
        "stat",
        [target("max(triage_tickets_awaiting_answer)")],
        (12, 0, 4, 4),
    ),
    panel(
        "Outbox failed",
        "stat",
        [target('max(triage_outbox_mails{status="failed"})')],
        (16, 0, 4, 4),
        thresholds=[("green", None), ("red", 1)],
    ),
    panel(
        "Active model",
        "stat",
        [target("max by (target, version) (triage_model_info)", "{{target}}: {{version}}")],
        (20, 0, 4, 4),
        description="The classifier versions routing uses.",
    ),
    panel(
        "Messages stored per folder and outcome",
        "timeseries",
        [
            target(
                "sum by (folder, outcome) (rate(triage_messages_stored_total[5m])) * 60",
                "{{folder}} {{outcome}}",
            )
        ],
        (0, 4, 12, 8),
        unit="short",
        description="Messages per minute.",
    ),
    panel(
        "Routing decisions by queue and decided-by",
        "timeseries",
        [
            target(
                "sum by (queue, decided_by) (increase(triage_routing_decisions_total[1h]))",
                "{{queue}} ({{decided_by}})",
            )
        ],
        (12, 4, 12, 8),
        description="New tickets per hour.",
    ),
    panel(
        "APPEND to stored latency",
        "timeseries",
        [
            target(
                "histogram_quantile(0.5, sum by (le) (rate(triage_intake_latency_seconds_bucket[5m])))",
                "p50",
            ),
            target(
                "histogram_quantile(0.95, sum by (le) (rate(triage_intake_latency_seconds_bucket[5m])))",
                "p95",
            ),
        ],
        (0, 12, 8, 8),
        unit="s",
        description="From the IMAP INTERNALDATE to the message committed (IDLE: about a second).",
    ),
    panel(
        "Model confidence",
        "timeseries",
        [
            target(
                "histogram_quantile(0.1, sum by (le) (rate(triage_model_confidence_bucket[1h])))",
                "p10",
            ),
            target(
                "histogram_quantile(0.5, sum by (le) (rate(triage_model_confidence_bucket[1h])))",
                "p50",
            ),
            target(
                'sum(rate(triage_model_confidence_bucket{le="0.6"}[1h])) / sum(rate(triage_model_confidence_count[1h]))',
                "share under 0.6",
            ),
        ],
        (8, 12, 8, 8),
        unit="percentunit",
        description="The classifier's top probability; a falling median means new kinds of mail.",
    ),
    panel(
        "Last successful poll",
        "timeseries",
        [target("time() - triage_folder_last_poll_timestamp_seconds", "{{folder}}")],
        (16, 12, 8, 8),
        unit="s",
        thresholds=[("green", None), ("red", 600)],
        description="Unhealthy past 10 minutes.",
    ),
    panel(
        "IMAP connection per folder",
        "state-timeline",
        [target("max by (folder) (triage_imap_connected)", "{{folder}}")],
        (0, 20, 12, 6),
        mappings=[
            {
                "type": "value",
                "options": {
                    "0": {"text": "down", "color": "red"},
                    "1": {"text": "up", "color": "green"},
                },
            }
        ],
    ),
    panel(
        "IMAP reconnects",
        "timeseries",
        [target("sum by (folder) (increase(triage_imap_reconnects_total[15m]))", "{{folder}}")],
        (12, 20, 12, 6),
    ),
    panel(
        "Outbox",
        "timeseries",
        [
            target(
                'max by (status) (triage_outbox_mails{status=~"pending|retrying|failed"})',
                "{{status}}",
            )
        ],
        (0, 26, 8, 8),
    ),
    panel(
        "Oldest pending outgoing mail",
        "timeseries",
        [target("max(triage_outbox_oldest_pending_age_seconds)", "age")],
        (8, 26, 8, 8),
        unit="s",
        thresholds=[("green", None), ("red", 600)],
    ),
    panel(
        "Outgoing mail attempts",
        "timeseries",
        [
            target(
                "sum by (kind, result) (increase(triage_outbox_deliveries_total[1h]))",
                "{{kind}} {{result}}",
            )
        ],
        (16, 26, 8, 8),
    ),
    panel(
        "SLA warnings and breaches",
        "timeseries",
        [
            target(
                "sum by (type, target) (increase(triage_sla_escalations_total[1h]))",
                "{{type}} {{target}}",
            )
        ],
        (0, 34, 12, 8),
    ),
    panel(
        "Open tickets by queue",
        "timeseries",
        [target("max by (queue) (triage_tickets_open)", "{{queue}}")],
        (12, 34, 12, 8),
    ),
    panel(
        "Daemon loops: seconds since progress",
        "timeseries",
        [target("max by (loop) (triage_loop_seconds_since_progress)", "{{loop}}")],
        (0, 42, 12, 8),
        unit="s",
        description="Past monitoring.stall_timeout the systemd watchdog is withheld and the service restarted.",
    ),
    panel(
        "OAuth2 token requests",
        "timeseries",
        [
            target(
                "sum by (result) (increase(triage_oauth2_token_requests_total[1h]))", "{{result}}"
            )
        ],
        (12, 42, 12, 8),
        description="sign_in_required: run `triage auth login` again.",
    ),
]

DASHBOARD = {
    "__inputs": [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes triage's /metrics",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ],
    "__requires": [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ],
    "uid": "triage-overview",
    "title": "triage: shared inbox",
    "description": "Intake, routing, outbox, SLA and health of the triage daemon (deploy/grafana-dashboard.json).",
    "tags": ["triage", "email"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "1m",
    "time": {"from": "now-24h", "to": "now"},
    "templating": {"list": []},
    "annotations": {"list": []},
    "panels": [{**p, "id": i + 1} for i, p in enumerate(PANELS)],
}


def main() -> None:
    OUT.write_text(json.dumps(DASHBOARD, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(PANELS)} panels)")


if __name__ == "__main__":
    main()
