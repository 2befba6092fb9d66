"""Logging through structlog, configured once at start-up.

Console output in a terminal, JSON lines otherwise (or as configured). A
processor masks any value whose key looks like a secret, so a password passed to
a log call by mistake never reaches the output. Event names are snake_case past
tense (``message_routed``, ``ack_sent``) with stable keys (``uid``, ``folder``,
``ticket``, ``queue``).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from triage.logtap import event_tap

__all__ = ["configure_logging", "get_logger", "redact_secrets"]

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|credential|auth_?key|api_?key", re.IGNORECASE)
_REDACTED = "[redacted]"


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace the value of every secret-looking key by ``[redacted]``."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = _REDACTED
    return event_dict


def _drop_below(level: int) -> Any:
    """A processor dropping events under ``level`` (after the metrics tap saw them).

    An event marked ``quiet=True`` (a repeat inside a failure episode the first line
    already announced, e.g. the dispatcher's deferrals) is written only at debug level.
    """
    names = logging.getLevelNamesMapping()

    def drop(_logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        # "exception" logs at error level; "warn" is warning's old name
        name = {"exception": "ERROR", "warn": "WARNING"}.get(method, method.upper())
        if names.get(name, logging.ERROR) < level:
            raise structlog.DropEvent
        if event_dict.pop("quiet", False) and level > logging.DEBUG:
            raise structlog.DropEvent
        return event_dict

    return drop


class _StderrProxy:
    """Writes to whatever ``sys.stderr`` is at the time of writing (not at configuration)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and stdlib logging of libraries) once for the process.

    Args:
        fmt: ``console`` for people, ``json`` for machines; ``auto`` picks console
            when ``stream`` is a terminal.
        level: minimum level name (debug, info, warning, error).
        stream: where logs go; stderr by default (stdout is the CLI's output).
    """
    if fmt not in {"auto", "console", "json"}:
        raise ValueError(f"log format must be auto, console or json, not {fmt!r}")
    out: Any = stream if stream is not None else _StderrProxy()
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    # Events down to info reach the processors whatever the level, so the metrics
    # that follow them (triage.logtap) do not depend on it; below the level they are
    # dropped right after the tap.
    tapped = min(numeric, logging.INFO)
    shared: list[Any] = [
        event_tap,
        _drop_below(numeric),
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(tapped),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging: keep them quiet below warnings, and render
    # what they do log like every other line (one JSON object, or the console form),
    # e.g. urllib3's "Retrying ..." warning, with its logger's name.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact_secrets,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.format_exc_info] if use_json else []),
                renderer,
            ],
        )
    )
    logging.basicConfig(handlers=[handler], level=max(numeric, logging.WARNING), force=True)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger, optionally carrying a ``logger_name``.

    Lazy: it takes the configuration in force when it first logs, not when it is
    created, so module-level loggers obey :func:`configure_logging`.
    """
    if name:
        # "logger" would clash with wrap_logger's own argument; renderers show either key
        return structlog.get_logger(logger_name=name)
    return structlog.get_logger()
