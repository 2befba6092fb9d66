"""Test support for tickets and SLA: a config, a business calendar and stored messages."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from triage.config import Settings, parse_config
from triage.sla import BusinessCalendar, SlaPolicy
from triage.store.models import Message

BUDAPEST = ZoneInfo("Europe/Budapest")

CONFIG = """
[database]
url = "{url}"

[smtp]
mode = "folder"
from_address = "Example Office <inbox@office.example>"
folder = "outbox"

[team]
name = "Example Office"
message_id_domain = ""
[team.assistants]
anna = "anna@office.example"
bela = "bela@office.example"

[queues.billing]
assistants = ["anna"]
[queues.scheduling]
assistants = ["bela"]
[queues.unsorted]
assistants = ["anna", "bela"]
[queues.bulk]
no_sla = true

[queues.billing.sla.urgent]
first_response = "30m"
next_response = "1h"
resolution = "4h"
warn_at = 0.5

[routing]
fallback_queue = "unsorted"

[calendar]
timezone = "Europe/Budapest"
holidays = "HU"

[calendar.hours]
mon = ["08:00-12:00", "13:00-17:00"]
tue = ["08:00-12:00", "13:00-17:00"]
wed = ["08:00-12:00", "13:00-17:00"]
thu = ["08:00-12:00", "13:00-17:00"]
fri = ["08:00-12:00", "13:00-17:00"]

[sla.normal]
first_response = "4h"
next_response = "8h"
resolution = "3d"
warn_at = 0.75

[sla.urgent]
first_response = "1h"
next_response = "2h"
resolution = "1d"
warn_at = 0.8
"""


def config_text(url: str = "sqlite:///triage.db") -> str:
    """The test configuration as TOML, with the database at ``url``."""
    return CONFIG.format(url=url)


def make_settings(url: str = "sqlite:///triage.db", base_dir: Path | None = None) -> Settings:
    """The test configuration as settings."""
    return parse_config(
        tomllib.loads(config_text(url)), source="test.toml", base_dir=base_dir or Path()
    )


def write_config(path: Path, url: str) -> Path:
    """Write the test configuration to ``path`` and return it."""
    path.write_text(config_text(url), encoding="utf-8")
    return path


def make_policy(settings: Settings | None = None) -> SlaPolicy:
    """The SLA policy of the test configuration (Budapest, HU holidays, split hours)."""
    settings = settings or make_settings()
    return SlaPolicy(settings, BusinessCalendar.from_settings(settings.calendar))


def local(*args: int) -> datetime:
    """A Budapest wall-clock time: ``local(2026, 3, 13, 16, 30)``."""
    return datetime(*args, tzinfo=BUDAPEST)  # type: ignore[misc]


def store_message(
    session: Session,
    *,
    message_id: str,
    received_at: datetime,
    subject: str = "Invoice question",
    from_addr: str = "client@example.com",
    from_name: str = "Client",
    body: str = "Hello",
    quoted: str = "",
    in_reply_to: str = "",
    references: tuple[str, ...] = (),
    kind: str = "normal",
    direction: str = "in",
    reply_to: tuple[str, ...] = (),
    attachments: tuple[dict[str, object], ...] = (),
) -> Message:
    """Add a received message to the session (flushed, so it has an id)."""
    raw = f"Message-ID: {message_id}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
    message = Message(
        source="imap",
        direction=direction,
        message_id=message_id,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        raw_size=len(raw),
        received_at=received_at,
        internal_date=received_at,
        from_addr=from_addr,
        from_name=from_name,
        subject=subject,
        body_text=body,
        quoted_text=quoted,
        in_reply_to=in_reply_to,
        references=list(references),
        kind=kind,
        reply_to=[{"name": "", "addr": a} for a in reply_to],
        to_addrs=[{"name": "Example Office", "addr": "inbox@office.example"}],
        attachments=list(attachments),
    )
    session.add(message)
    session.flush()
    return message
