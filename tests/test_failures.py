"""A repeating failure is logged as an episode: one line when it starts, one when it ends."""

from __future__ import annotations

from structlog.testing import capture_logs

from triage.failures import RepeatedFailure
from triage.logs import get_logger


def _fail(episode: RepeatedFailure, error: Exception) -> None:
    try:
        raise error
    except OSError as exc:
        episode.failed(exc)


def test_a_disk_full_minute_is_two_lines_not_one_per_attempt() -> None:
    # a one-minute disk-full episode logged 56 full tracebacks
    episode = RepeatedFailure(get_logger("test"), "sla_watch")
    with capture_logs() as logs:
        for _ in range(56):
            _fail(episode, OSError(28, "No space left on device"))
        _fail(episode, OSError(5, "Input/output error"))  # a new error: one more line
        _fail(episode, OSError(28, "No space left on device"))
        episode.succeeded()
        episode.succeeded()  # a healthy pass after recovery logs nothing
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("sla_watch_failed", "error"),
        ("sla_watch_failed", "error"),
        ("sla_watch_recovered", "info"),
    ]
    assert isinstance(logs[0].get("exc_info"), OSError)  # the traceback, once
    assert "exc_info" not in logs[1]
    assert logs[1]["failures"] == 57
    assert logs[2]["failures"] == 58


def test_a_new_episode_after_recovery_logs_its_start_again() -> None:
    episode = RepeatedFailure(get_logger("test"), "model_refresh")
    with capture_logs() as logs:
        _fail(episode, OSError(28, "No space left on device"))
        episode.succeeded()
        _fail(episode, OSError(28, "No space left on device"))
    assert [e["event"] for e in logs] == [
        "model_refresh_failed",
        "model_refresh_recovered",
        "model_refresh_failed",
    ]
