"""The message fields a rule can test, and the per-message cache of their values.

A field is named in a rule file (``from.domain``, ``subject``, ``header.X-Priority``)
and has a type that decides which operators apply (:class:`FieldType`). Every
field yields a tuple of values: several for recipients, attachments and repeated
headers (a condition matches when any value does), none when the message has no
such value (a missing subject, no sender).

:class:`MessageView` computes each (field, fold) pair at most once per message,
on first use, in a slot numbered when the rule set is compiled; evaluating 200
rules therefore folds the body once, not 200 times.

Received day and time are in the business time zone (``[calendar] timezone``):
``received_at`` is UTC and converted with :mod:`zoneinfo`, so daylight saving
time is handled (a message at 17:30 UTC is 19:30 in Budapest in summer, 18:30 in
winter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from rules.patterns import PatternIndex
from rules.text import (
    MAX_BODY_CHARS,
    MAX_SHORT_CHARS,
    MAX_VALUES,
    Fold,
    casefold_stripped,
    fold,
)
from triage.domain import Address, InboundMessage, MessageKind

__all__ = [
    "FIELDS",
    "WEEKDAYS",
    "FieldSpec",
    "FieldType",
    "MessageView",
    "SlotTable",
    "field_spec",
]

WEEKDAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

MAX_HEADERS = 500
"""Header fields of one message looked at (the first ones, in order)."""


class FieldType(StrEnum):
    """What kind of values a field has; decides the operators allowed on it."""

    TEXT = "text"
    ADDRESS = "address"
    """Lowercased mail addresses; ``in_list`` also matches their domains."""
    DOMAIN = "domain"
    """Lowercased domains; ``in_list`` also matches parent domains."""
    CHOICE = "choice"
    """One of a fixed set of words (``kind``)."""
    NUMBER = "number"
    WEEKDAY = "weekday"
    """0 (Monday) to 6 (Sunday), in the business time zone."""
    TIME = "time"
    """Minutes after local midnight, in the business time zone."""


Filler = Callable[["MessageView"], Any]
"""Computes one slot's value for a message: a tuple of field values, or a frozenset."""


class MessageView:
    """One message being evaluated, with its field values cached per slot.

    Attributes:
        message: the message.
        zone: the business time zone.
        cache: slot number -> values, ``None`` until first computed.
    """

    __slots__ = ("_fillers", "_headers", "_local", "cache", "message", "zone")

    def __init__(
        self,
        message: InboundMessage,
        zone: ZoneInfo,
        fillers: Sequence[Filler],
    ) -> None:
        self.message = message
        self.zone = zone
        self._fillers = fillers
        self.cache: list[Any] = [None] * len(fillers)
        self._local: datetime | None = None
        self._headers: dict[str, tuple[str, ...]] | None = None

    def get(self, slot: int) -> Any:
        """The values in ``slot``, computing them on first use."""
        values = self.cache[slot]
        if values is None:
            values = self._fillers[slot](self)
            self.cache[slot] = values
        return values

    @property
    def local_received(self) -> datetime:
        """``received_at`` in the business time zone (a naive value is taken as UTC)."""
        if self._local is None:
            received = self.message.received_at
            if received.tzinfo is None:
                received = received.replace(tzinfo=UTC)
            self._local = received.astimezone(self.zone)
        return self._local

    def header(self, lower_name: str) -> tuple[str, ...]:
        """Values of every header named ``lower_name`` (lowercase), bounded."""
        if self._headers is None:
            index: dict[str, list[str]] = {}
            for key, value in self.message.headers[:MAX_HEADERS]:
                index.setdefault(key.lower(), []).append(value[:MAX_SHORT_CHARS])
            self._headers = {k: tuple(v[:MAX_VALUES]) for k, v in index.items()}
        return self._headers.get(lower_name, ())


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field rules can test.

    Attributes:
        name: as written in rule files.
        label: as written in explanations (``"from domain"``).
        type: decides the operators.
        extract: the field's raw values for a message (bounded, see :mod:`rules.text`).
        help: one line for documentation and error messages.
        show: quote the message's value in explanations (false for long text).
        choices: the allowed values of a ``CHOICE`` field.
        unit: shown after numbers (``"bytes"``).
    """

    name: str
    label: str
    type: FieldType
    extract: Callable[[MessageView], tuple[Any, ...]]
    help: str
    show: bool = True
    choices: tuple[str, ...] = ()
    unit: str = ""


def _short(text: str) -> tuple[str, ...]:
    return (text[:MAX_SHORT_CHARS],) if text else ()


def _addresses(addresses: Sequence[Address]) -> tuple[str, ...]:
    return tuple(a.key[:MAX_SHORT_CHARS] for a in addresses[:MAX_VALUES] if a.addr)


def _domains(addresses: Sequence[Address]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for a in addresses[:MAX_VALUES]:
        domain = a.domain[:MAX_SHORT_CHARS]
        if domain:
            seen[domain] = None
    return tuple(seen)


def _sender(view: MessageView) -> tuple[Address, ...]:
    sender = view.message.from_
    return (sender,) if sender is not None else ()


def _recipients(view: MessageView) -> tuple[Address, ...]:
    return (*view.message.to[:MAX_VALUES], *view.message.cc[:MAX_VALUES])


def _body_all(view: MessageView) -> tuple[str, ...]:
    m = view.message
    parts = [
        p[:MAX_BODY_CHARS] for p in (m.body_text, m.quoted_text, m.signature) if p and p.strip()
    ]
    return ("\n".join(parts),) if parts else ()


_JOINED = {"body.all": ("body", "body.quoted", "body.signature")}
"""Fields whose value is the parts' values joined by newlines (see ``_body_all``)."""


def _body(text: str) -> tuple[str, ...]:
    return (text[:MAX_BODY_CHARS],) if text else ()


def _minutes(view: MessageView) -> tuple[int, ...]:
    local = view.local_received
    return (local.hour * 60 + local.minute,)


def _build() -> dict[str, FieldSpec]:
    T, A, D = FieldType.TEXT, FieldType.ADDRESS, FieldType.DOMAIN  # noqa: N806 - table shorthand
    specs = [
        FieldSpec(
            "from",
            "from address",
            A,
            lambda v: _addresses(_sender(v)),
            "the sender's address (From)",
        ),
        FieldSpec(
            "from.domain",
            "from domain",
            D,
            lambda v: _domains(_sender(v)),
            "the sender's domain",
        ),
        FieldSpec(
            "from.name",
            "from name",
            T,
            lambda v: _short(v.message.from_.name) if v.message.from_ else (),
            "the sender's display name",
        ),
        FieldSpec(
            "reply_to", "reply-to address", A, lambda v: _addresses(v.message.reply_to), "Reply-To"
        ),
        FieldSpec("to", "to address", A, lambda v: _addresses(v.message.to), "every To address"),
        FieldSpec("to.domain", "to domain", D, lambda v: _domains(v.message.to), "every To domain"),
        FieldSpec("cc", "cc address", A, lambda v: _addresses(v.message.cc), "every Cc address"),
        FieldSpec("cc.domain", "cc domain", D, lambda v: _domains(v.message.cc), "every Cc domain"),
        FieldSpec(
            "recipients",
            "recipient address",
            A,
            lambda v: _addresses(_recipients(v)),
            "every To and Cc address (which shared address it was sent to)",
        ),
        FieldSpec(
            "recipients.domain",
            "recipient domain",
            D,
            lambda v: _domains(_recipients(v)),
            "every To and Cc domain",
        ),
        FieldSpec("subject", "subject", T, lambda v: _short(v.message.subject), "the subject"),
        FieldSpec(
            "body",
            "body",
            T,
            lambda v: _body(v.message.body_text),
            "the new text of the message (without quoted history)",
            show=False,
        ),
        FieldSpec(
            "body.quoted",
            "quoted history",
            T,
            lambda v: _body(v.message.quoted_text),
            "only the quoted history of earlier messages",
            show=False,
        ),
        FieldSpec(
            "body.signature",
            "signature",
            T,
            lambda v: _body(v.message.signature),
            "only the sender's signature block, when recognized",
            show=False,
        ),
        FieldSpec(
            "body.all",
            "body with quoted history",
            T,
            _body_all,
            "the new text, the quoted history and the signature",
            show=False,
        ),
        FieldSpec(
            "attachment.name",
            "attachment name",
            T,
            lambda v: tuple(
                a.filename[:MAX_SHORT_CHARS]
                for a in v.message.attachments[:MAX_VALUES]
                if a.filename
            ),
            "every attachment's file name",
        ),
        FieldSpec(
            "attachment.type",
            "attachment type",
            T,
            lambda v: tuple(
                a.content_type[:MAX_SHORT_CHARS]
                for a in v.message.attachments[:MAX_VALUES]
                if a.content_type
            ),
            "every attachment's content type, e.g. application/pdf",
        ),
        FieldSpec(
            "attachment.count",
            "attachment count",
            FieldType.NUMBER,
            lambda v: (len(v.message.attachments),),
            "how many attachments",
        ),
        FieldSpec(
            "attachment.size",
            "attachment size",
            FieldType.NUMBER,
            lambda v: tuple(a.size for a in v.message.attachments[:MAX_VALUES]),
            "every attachment's decoded size in bytes",
            unit="bytes",
        ),
        FieldSpec(
            "kind",
            "kind",
            FieldType.CHOICE,
            lambda v: (v.message.kind.value,),
            "normal, auto_reply (RFC 3834), bounce (RFC 3464), mailing_list (RFC 2369),"
            " feedback_report (RFC 5965), read_receipt (RFC 8098) or notification"
            " (a no-reply sender)",
            choices=tuple(k.value for k in MessageKind),
        ),
        FieldSpec(
            "language",
            "language",
            T,
            lambda v: _short(v.message.language),
            "ISO 639-1 code of the detected language (hu, en), empty when unknown",
        ),
        FieldSpec(
            "list_id",
            "List-Id",
            T,
            lambda v: _short(v.message.list_id),
            "RFC 2919 List-Id without angle brackets",
        ),
        FieldSpec(
            "size",
            "size",
            FieldType.NUMBER,
            lambda v: (v.message.size,),
            "size of the raw message in bytes",
            unit="bytes",
        ),
        FieldSpec(
            "received.weekday",
            "received on",
            FieldType.WEEKDAY,
            lambda v: (v.local_received.weekday(),),
            "the weekday it arrived, in the business time zone",
        ),
        FieldSpec(
            "received.time",
            "received at",
            FieldType.TIME,
            _minutes,
            "the local time of day it arrived (HH:MM), in the business time zone",
        ),
    ]
    return {spec.name: spec for spec in specs}


FIELDS: dict[str, FieldSpec] = _build()
"""Every field by name, except the open family ``header.<Name>``."""

_HEADER_FIELDS: dict[str, FieldSpec] = {}


def field_spec(name: str) -> FieldSpec | None:
    """The field called ``name`` (``header.<Name>`` for any header), or None if unknown."""
    spec = FIELDS.get(name)
    if spec is not None:
        return spec
    prefix, dot, header = name.partition(".")
    if prefix != "header" or not dot or not header or any(c in header for c in " :\t"):
        return None
    lower = header.lower()
    spec = _HEADER_FIELDS.get(lower)
    if spec is None:
        spec = FieldSpec(
            f"header.{lower}",
            f"header {header}",
            FieldType.TEXT,
            lambda v: v.header(lower),
            f"every value of the {header} header",
        )
        _HEADER_FIELDS[lower] = spec
    return spec


class SlotTable:
    """Numbers each (field, fold, encoding) a compiled rule set needs; one cache slot each.

    Attributes:
        fillers: slot number -> function computing that slot's values for a message.
    """

    def __init__(self) -> None:
        self._index: dict[tuple[str, Fold | None, bool | str], int] = {}
        self._patterns: dict[tuple[str, Fold | None, bool | str], PatternIndex] = {}
        self.fillers: list[Filler] = []

    def slot(self, spec: FieldSpec, how: Fold | None = None, *, encoded: bool = False) -> int:
        """The slot of ``spec``'s values folded by ``how`` (None: as extracted).

        ``encoded`` gives the UTF-8 bytes of the folded values (for RE2, which
        searches bytes without re-encoding them on every call).
        """
        if how is Fold.RAW:
            how = None
        key = (spec.name, how, encoded)
        found = self._index.get(key)
        if found is not None:
            return found
        filler: Filler
        if encoded:
            base = self.slot(spec, how)

            def filler(view: MessageView) -> tuple[Any, ...]:
                return tuple(v.encode("utf-8", "replace") for v in view.get(base))

        elif how is None:
            filler = spec.extract
        elif spec.name in _JOINED:
            # Folding works character by character and "\n" joins the parts, so the
            # folded whole is the join of the folded parts: reuse them, never fold twice.
            parts = tuple(
                (self.slot(FIELDS[name]), self.slot(FIELDS[name], how))
                for name in _JOINED[spec.name]
            )

            def filler(view: MessageView) -> tuple[Any, ...]:
                chosen = [
                    view.get(folded)[0]
                    for raw, folded in parts
                    if (text := view.get(raw)) and text[0].strip()
                ]
                return ("\n".join(chosen),) if chosen else ()

        elif how is Fold.BOTH:
            stripped = self.slot(spec, Fold.ACCENTS)

            def filler(view: MessageView) -> tuple[Any, ...]:
                return tuple([casefold_stripped(v) for v in view.get(stripped)])

        else:
            raw = self.slot(spec)
            folding = how

            def filler(view: MessageView) -> tuple[Any, ...]:
                values = view.get(raw)
                if len(values) == 1:
                    return (fold(values[0], folding),)
                return tuple([fold(v, folding) for v in values])

        return self._add(key, filler)

    def _add(self, key: tuple[str, Fold | None, bool | str], filler: Filler) -> int:
        number = len(self.fillers)
        self.fillers.append(filler)
        self._index[key] = number
        return number

    def patterns(self, spec: FieldSpec, how: Fold | None) -> tuple[int, PatternIndex]:
        """The pattern index of ``spec`` folded by ``how``, and the slot of its results.

        Conditions add their needles and regular expressions to the index (see
        :mod:`rules.patterns`); per message, the slot holds the frozenset of the
        numbers found. Call :meth:`finish` once every condition is compiled.
        """
        if how is Fold.RAW:
            how = None
        key = (spec.name, how, "patterns")
        index = self._patterns.get(key)
        if index is None:
            index = PatternIndex()
            self._patterns[key] = index
            text_slot = self.slot(spec, how)
            scanner = index

            def filler(view: MessageView) -> frozenset[int]:
                return scanner.present(view.get(text_slot))

            self._add(key, filler)
        return self._index[key], index

    def finish(self) -> None:
        """Compile the pattern indexes (after every condition has added its patterns)."""
        for index in self._patterns.values():
            index.compile()
