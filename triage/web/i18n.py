"""The page's two languages (Hungarian, English): messages, dates and business-time countdowns.

Messages live in ``locales/<lang>.toml`` as ``key = "text with {placeholders}"``;
both files have the same keys (a test checks). Dates are shown in the business's
time zone (``[calendar] timezone``); amounts of time left are business time
counted by the :class:`~triage.sla.calendar.BusinessCalendar`.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from triage.sla.calendar import BusinessCalendar

__all__ = ["LANGUAGES", "Translator", "catalog", "translator"]

LANGUAGES = ("hu", "en")

_WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "hu": ("h", "k", "sze", "cs", "p", "szo", "v"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "hu": (
        "jan.",
        "febr.",
        "márc.",
        "ápr.",
        "máj.",
        "jún.",
        "júl.",
        "aug.",
        "szept.",
        "okt.",
        "nov.",
        "dec.",
    ),
}


_SECOND = " (second stage)"
_EXPLAINED = (
    # the model sentences of triage.routing.route, stored in English with the decision
    (
        "why.line_model",
        re.compile(
            r"model (?P<version>\S+?)(?P<second> \(second stage\))?: (?P<queue>\S+) with"
            r" probability (?P<p>[\d.]+) \(threshold (?P<threshold>[\d.]+); top: (?P<top>.*)\)"
        ),
    ),
    (
        "why.line_model_unsure",
        re.compile(
            r"model (?P<version>\S+?)(?P<second> \(second stage\))? unsure: (?P<label>\S+)"
            r" (?P<p>[\d.]+) is under the threshold (?P<threshold>[\d.]+) \(top: (?P<top>.*)\);"
            r" fallback queue '(?P<fallback>[^']*)'"
        ),
    ),
    (
        "why.line_model_unknown",
        re.compile(
            r"model (?P<version>\S+) answered '(?P<label>[^']*)', which is not a configured"
            r" queue; fallback queue '(?P<fallback>[^']*)'"
        ),
    ),
    (
        "why.line_no_model",
        re.compile(
            r"no rule chose a queue and no classifier model is active;"
            r" fallback queue '(?P<fallback>[^']*)'"
        ),
    ),
    (
        "why.line_priority_model",
        re.compile(
            r"priority model (?P<version>\S+): (?P<priority>\S+) with probability (?P<p>[\d.]+)"
        ),
    ),
)


_REFUSALS = (
    # the desk's refusals (triage.desk, triage.tickets), raised in English for the CLI;
    # the page tells them again from the catalog with their details (refs, names)
    ("refusal.claimed", re.compile(r"#(?P<ref>\d+) is already claimed by (?P<who>.+)")),
    (
        "refusal.closed_claim",
        re.compile(
            r"#(?P<ref>\d+) is (?P<status>\w+)(?: \(assigned to (?P<who>[^)]*)\))?: there is"
            r" nothing to claim; a new message from the client reopens it"
        ),
    ),
    ("refusal.changed", re.compile(r"#(?P<ref>\d+) changed since version (?P<version>\d+)")),
    (
        "refusal.changed_meanwhile",
        re.compile(r"the ticket was changed by someone else meanwhile; try again"),
    ),
    ("refusal.empty_reply", re.compile(r"the reply is empty: nothing was sent")),
    ("refusal.empty_note", re.compile(r"the note is empty: nothing was added")),
    ("refusal.wait_past", re.compile(r"the time to wait until has already passed")),
    ("refusal.wait_zone", re.compile(r"the time to wait until needs a time zone")),
    (
        "refusal.wait_max",
        re.compile(r"a ticket waits at most (?P<days>\d+) days: choose an earlier time"),
    ),
    (
        "refusal.wait_closed",
        re.compile(r"#(?P<ref>\d+) is (?P<status>\w+): reopen it before waiting on the client"),
    ),
    ("refusal.no_address", re.compile(r"ticket #(?P<ref>\d+) has no client address to answer")),
    ("refusal.move_empty", re.compile(r"move needs a queue or a priority")),
    (
        "refusal.no_assistant",
        re.compile(r"no assistant '(?P<name>[^']*)' in \[team\.assistants\] \((?P<known>.*)\)"),
    ),
    ("refusal.no_queue", re.compile(r"no queue '(?P<name>[^']*)' \(queues: (?P<known>.*)\)")),
    (
        "refusal.no_priority",
        re.compile(r"no priority '(?P<name>[^']*)' \(priorities: (?P<known>.*)\)"),
    ),
    (
        "refusal.reply_too_big",
        re.compile(
            r"the reply is (?P<size>[\d,]+) bytes, over the limit of (?P<limit>[\d,]+) bytes"
            r" \(1 MiB\): nothing was sent"
        ),
    ),
    (
        "refusal.note_too_big",
        re.compile(
            r"the note is (?P<size>[\d,]+) bytes, over the limit of (?P<limit>[\d,]+) bytes"
            r" \(1 MiB\): nothing was added"
        ),
    ),
)

_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")


class _Blank(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return ""


@cache
def catalog(language: str) -> dict[str, str]:
    """The messages of ``language`` (``hu`` or ``en``), read once from the package.

    Raises:
        KeyError: an unknown language.
    """
    if language not in LANGUAGES:
        raise KeyError(language)
    text = (files("triage.web") / "locales" / f"{language}.toml").read_text(encoding="utf-8")
    return {str(k): str(v) for k, v in tomllib.loads(text).items()}


@dataclass(frozen=True)
class Translator:
    """Messages, dates and countdowns in one language for one time zone.

    Attributes:
        language: ``hu`` or ``en``.
        zone: the business's time zone.
    """

    language: str
    zone: ZoneInfo

    def __call__(self, key: str, **values: object) -> str:
        """The message ``key`` with ``{placeholders}`` filled; the key itself when unknown.

        A placeholder without a value becomes empty.
        """
        text = catalog(self.language).get(key)
        if text is None:
            return key
        return text.format_map(_Blank(values)) if "{" in text else text

    def event(self, action: str, actor: str, detail: Mapping[str, object] | None = None) -> str:
        """One audit event as a sentence ("anna claimed the ticket").

        A move that changed the priority names both changes (``priority_from`` /
        ``priority_to``, as ``triage show`` does); a wait or snooze with an alarm
        (``until``, ISO 8601) names it in the business's time zone."""
        values = {str(k): "" if v is None else str(v) for k, v in (detail or {}).items()}
        values.update(actor=actor, action=action)
        key = f"event.{action}" if self.has(f"event.{action}") else "event.other"
        if action == "moved" and values.get("priority_to"):
            # a correction may change the priority too (or only it)
            for name in ("priority_from", "priority_to"):
                values[name] = self.priority(values.get(name, ""))
            key = "event.moved_priority" if values.get("to") else "event.priority_changed"
        elif values.get("until") and self.has(f"event.{action}_until"):
            # a wait with an alarm: when it wakes, on the business's clock
            with contextlib.suppress(ValueError):  # else shown as stored
                values["until"] = self.local(datetime.fromisoformat(values["until"]))
            key = f"event.{action}_until"
        if action == "status_changed":  # "from waiting to open" in this language
            for name in ("from", "to"):
                values[name] = self.status(values.get(name, ""))
        return self(key, **values)

    def status(self, value: str) -> str:
        """A ticket status's name in this language (an unknown one as it is)."""
        return self(f"status.{value}") if self.has(f"status.{value}") else value

    def priority(self, value: str) -> str:
        """A priority's name in this language (an unknown one as it is)."""
        return self(f"priority.{value}") if self.has(f"priority.{value}") else value

    def explanation(self, line: str) -> str:
        """One sentence of a stored routing explanation in this language.

        The routing stores its explanation in English (it is also logged and shown by
        the CLI); the model's sentences (:func:`triage.routing.route`: answered,
        unsure, an unknown queue, no model, the priority model) are recognized and
        told again from the catalog (``why.line_*``). Any other line (a rule's own
        text) is returned as stored.
        """
        for key, pattern in _EXPLAINED:
            match = pattern.fullmatch(line)
            if match is None:
                continue
            values: dict[str, object] = dict(match.groupdict(default=""))
            if values.get("second"):
                values["second"] = self("why.second_stage")
            if "priority" in values:
                values["priority"] = self(f"priority.{values['priority']}")
            for name in ("p", "threshold"):
                if name in values:
                    values[name] = self.decimals(str(values[name]))
            if values.get("top") and self.language == "hu":  # "a 0,83; b 0,10"
                values["top"] = "; ".join(self.decimals(x) for x in str(values["top"]).split(", "))
            return self(key, **values)
        return line

    def refusal(self, message: str) -> str:
        """A refusal of the desk (a :class:`~triage.errors.UserError`'s English text) in
        this language, keeping its details (the ticket's ref, who holds it, the names);
        ``refusal.*`` in the catalog. A message not recognized is returned as it is.
        """
        for key, pattern in _REFUSALS:
            match = pattern.fullmatch(message.strip())
            if match is None:
                continue
            values: dict[str, object] = dict(match.groupdict(default=""))
            if values.get("status") and self.has(f"status.{values['status']}"):
                values["status"] = self(f"status.{values['status']}")
            if values.get("who"):
                values["held"] = self("refusal.held_by", who=values["who"])
            if self.language == "hu":  # 1,048,576 -> 1 048 576 (no-break spaces)
                for name in ("size", "limit"):
                    if name in values:
                        values[name] = str(values[name]).replace(",", "\u00a0")
            return self(key, **values)
        return message

    def number(self, value: float, digits: int | None = None) -> str:
        """``value`` with ``digits`` after the decimal separator (None: as short as
        exact, ``0.6``), which is a comma in Hungarian (``0,6``) and a point in English."""
        text = f"{value:.{digits}f}" if digits is not None else f"{value:g}"
        return self.decimals(text)

    def decimals(self, text: str) -> str:
        """``text`` with the decimal points between digits made commas in Hungarian."""
        return _DECIMAL.sub(",", text) if self.language == "hu" else text

    def has(self, key: str) -> bool:
        """True when ``key`` is a message."""
        return key in catalog(self.language)

    def local(self, t: datetime | None) -> str:
        """A moment in the business's time zone.

        ``Wed 3 Dec 2026 14:05`` in English, ``2026. dec. 3. (sze) 14:05`` in Hungarian.
        """
        if t is None:
            return "–"
        local = t.astimezone(self.zone)
        day = _WEEKDAYS[self.language][local.weekday()]
        month = _MONTHS[self.language][local.month - 1]
        if self.language == "hu":
            return f"{local.year}. {month} {local.day}. ({day}) {local:%H:%M}"
        return f"{day} {local.day} {month} {local.year} {local:%H:%M}"

    def iso_local(self, t: datetime | None) -> str:
        """ISO 8601 in the business's time zone (for ``<time datetime=...>``)."""
        return "" if t is None else t.astimezone(self.zone).isoformat(timespec="minutes")

    def amount(self, seconds: float) -> str:
        """Hours and minutes: ``1 h 20 m`` / ``1 ó 20 p``; under a minute ``<1 m``."""
        minutes = int(abs(seconds) // 60)
        h_unit, m_unit = ("ó", "p") if self.language == "hu" else ("h", "m")
        if minutes == 0:
            return f"<1 {m_unit}"
        hours, minutes = divmod(minutes, 60)
        if hours and minutes:
            return f"{hours} {h_unit} {minutes} {m_unit}"
        return f"{hours} {h_unit}" if hours else f"{minutes} {m_unit}"

    def countdown(self, calendar: BusinessCalendar, due: datetime, now: datetime) -> str:
        """Business time until ``due``: "1 h 20 m of office time left" or "overdue by ..."."""
        if now <= due:
            return self("due.left", amount=self.amount(calendar.elapsed(now, due)))
        return self("due.overdue", amount=self.amount(calendar.elapsed(due, now)))


def translator(language: str, zone: ZoneInfo) -> Translator:
    """A :class:`Translator`; an unknown language falls back to English."""
    return Translator(language if language in LANGUAGES else "en", zone)
