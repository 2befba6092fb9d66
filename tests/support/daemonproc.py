"""`triage run` as a real separate process: its TOML config, its JSON log, its signals.

Used by the end-to-end tests (tests/test_e2e_daemon.py) and the daemon benchmark
(benchmarks/daemon_bench.py). The process is the installed ``triage`` console
script, started the way an operator (or systemd) would: ``triage --config FILE run``,
logs as JSON lines on stderr, which go to a file here so they can be read while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from support.dovecot import ImapAccount
from support.mailtest import imap_table

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = ROOT / "rules" / "default.toml"
QUEUES = ("billing", "scheduling", "records", "client-support", "unsorted")


def triage_command() -> list[str]:
    """The installed ``triage`` console script (beside this Python), as an argv prefix."""
    beside = Path(sys.executable).with_name("triage")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("triage")
    if found is None:
        raise RuntimeError("the `triage` console script is not installed (pip install -e .)")
    return [found]


# -- configuration --------------------------------------------------------------------


def _toml_value(value: object) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML
    return json.dumps(value, ensure_ascii=False)


def to_toml(data: Mapping[str, Any]) -> str:
    """Nested dicts of scalars and lists as TOML text (tables for the nested dicts)."""
    lines: list[str] = []

    def table(prefix: str, values: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in values.items() if isinstance(v, Mapping)}
        if prefix and (scalars or not nested):
            lines.append(f"[{prefix}]")
        lines.extend(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in scalars.items())
        if scalars:
            lines.append("")
        for key, sub in nested.items():
            table(f"{prefix}.{_toml_value(key)}" if prefix else _toml_value(key), sub)

    table("", data)
    return "\n".join(lines) + "\n"


def daemon_config(
    account: ImapAccount,
    smtp_port: int,
    db_url: str,
    tmp_path: Path,
    *,
    rule_files: list[str] | None = None,
    **overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """A whole configuration for `triage run` against the test Dovecot and aiosmtpd.

    IMAP plain on loopback with the password in a file; short timeouts and back-off
    so a restarted server is found again within seconds; SMTP ``security = "none"``;
    the repo's default rules with the queues, team and lists they name; business
    hours around the clock (deadlines never wait for a Monday); JSON logs at info.
    ``overrides`` replace or extend whole tables (shallow merge per table).
    """
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "imap": imap_table(
            account,
            tmp_path,
            poll_interval=1,
            fallback_poll=3,
            timeout=5,
            reconnect_initial=0.5,
            reconnect_max=2,
            idle_renew=60,
        ),
        "smtp": {
            "mode": "send",
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from_address": "Office <inbox@example.test>",
            "timeout": 5,
            "retry_initial": 1,
            "retry_max": 2,
        },
        "team": {"name": "Office", "assistants": {"anna": "anna@example.test"}},
        "queues": {q: {} for q in QUEUES} | {"bulk": {"no_sla": True}},
        "routing": {
            "rule_files": rule_files if rule_files is not None else [str(DEFAULT_RULES)],
            "bulk_queue": "bulk",
        },
        "lists": {"vip_clients": [], "blocked_senders": []},
        "calendar": {
            "timezone": "Europe/Budapest",
            "hours": {
                d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
        },
        "logging": {"format": "json", "level": "info"},
        "monitoring": {"port": 0},  # a free port (logged): test runs may overlap
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return data


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as TOML to ``path``; return the path."""
    path.write_text(to_toml(data), encoding="utf-8")
    return path


# -- the process ------------------------------------------------------------------------


class DaemonProcess:
    """One `triage run` process; stderr (JSON log lines) appended to ``log_path``.

    Several processes in a row (a restart after SIGKILL) may share one log file;
    :meth:`events` reads only this process's part of it.
    """

    def __init__(self, config: Path, log_path: Path, *, env: Mapping[str, str] | None = None):
        self.config = config
        self.log_path = log_path
        self._start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*triage_command(), "--config", str(config), "run"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.pid = self.proc.pid

    # -- the log --

    def lines(self) -> list[str]:
        """This process's log lines so far."""
        with self.log_path.open("rb") as f:
            f.seek(self._start)
            return f.read().decode("utf-8", "replace").splitlines()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Parsed JSON log events of this process (named ``name`` when given)."""
        out = []
        for line in self.lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def wait_for(
        self, condition: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.05
    ) -> float:
        """Poll ``condition`` until true; return seconds waited. Raises AssertionError with
        the log's tail on timeout or when the process ended meanwhile."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if condition():
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"triage run ended (status {self.proc.returncode}) before {what}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}:\n" + self.tail()
                )
            time.sleep(interval)

    def wait_event(
        self, name: str, timeout: float = 30.0, *, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` events named ``name`` were logged; return them."""
        self.wait_for(lambda: len(self.events(name)) >= count, timeout, f"{count} x {name}")
        return self.events(name)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])

    # -- signals --

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; wait for the exit. Returns (exit status, seconds from signal to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"triage run ignored SIGTERM for {timeout} s:\n" + self.tail()
            ) from None
        return status, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL and reap (a no-op when it already ended)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    @property
    def rss_peak_kib(self) -> int:
        """VmHWM (peak resident set) of the running process, KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc status")
