"""The routing explanation's model sentences in the page's language (issue 15 leftover).

The routing stores its explanation in English; the Hungarian page tells the model's
sentences again from its catalog. The lines here come from the real
:func:`triage.routing.route`, so a change of wording there fails this test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from triage.config import RoutingSettings
from triage.domain import InboundMessage
from triage.routing import route
from triage.web.i18n import translator

QUEUES = {"billing", "records", "unsorted"}
SETTINGS = RoutingSettings(fallback_queue="unsorted", confidence_threshold=0.6)
ZONE = ZoneInfo("Europe/Budapest")


@dataclass(frozen=True)
class Answer:
    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]
    model_version: str = "queue-20261203-1"
    stage: int = 1


def _lines(**kw: object) -> tuple[str, ...]:
    message = InboundMessage(
        message_id="<m@x>", subject="Számla", received_at=datetime(2026, 12, 3, tzinfo=UTC)
    )
    return route(message, settings=SETTINGS, queues=QUEUES, **kw).explanation  # type: ignore[arg-type]


CASES = [
    (
        {"prediction": Answer("billing", 0.83, (("billing", 0.83), ("records", 0.1)))},
        (
            "queue-20261203-1 modell: billing, 0,83 valószínűséggel (küszöb: 0,60;"
            " legvalószínűbbek: billing 0,83; records 0,10)"
        ),
    ),
    (
        {"prediction": Answer("billing", 0.91, (("billing", 0.91),), stage=2)},
        "queue-20261203-1 modell (második lépcső): billing, 0,91 valószínűséggel",
    ),
    (
        {"prediction": Answer("records", 0.41, (("records", 0.41), ("billing", 0.3)))},
        "queue-20261203-1 modell bizonytalan: records 0,41, a 0,60 küszöb alatt",
    ),
    (
        {"prediction": Answer("sales", 0.9, (("sales", 0.9),))},
        "queue-20261203-1 modell válasza 'sales', ami nem beállított sor; tartaléksor: 'unsorted'",
    ),
    ({}, "Egy szabály sem választott sort, és nincs aktív osztályozó modell"),
    (
        {
            "prediction": Answer("billing", 0.83, (("billing", 0.83),)),
            "priority_prediction": Answer("urgent", 0.77, (("urgent", 0.77),), "prio-7"),
        },
        "prio-7 prioritásmodell: sürgős, 0,77 valószínűséggel",
    ),
]


@pytest.mark.parametrize(("kw", "hungarian"), CASES)
def test_model_sentences_are_told_in_hungarian(kw: dict[str, object], hungarian: str) -> None:
    lines = _lines(**kw)
    hu = [translator("hu", ZONE).explanation(line) for line in lines]
    assert any(hungarian in line for line in hu), (lines, hu)
    assert not any(line.startswith(("model ", "priority model", "no rule")) for line in hu), hu
    # the English page shows the stored sentence unchanged
    assert [translator("en", ZONE).explanation(line) for line in lines] == list(lines)


def test_other_lines_are_shown_as_stored() -> None:
    line = "rule 'vip-client': from domain example.com is in vip_clients"
    assert translator("hu", ZONE).explanation(line) == line


def test_hungarian_numbers_have_a_decimal_comma() -> None:
    hu, en = translator("hu", ZONE), translator("en", ZONE)
    assert hu.number(0.6) == "0,6"
    assert hu.number(0.8333, 2) == "0,83"
    assert en.number(0.6) == "0.6"
    assert en.number(0.8333, 2) == "0.83"
    assert hu.number(12) == "12"


REFUSALS = [
    ("#1018 is already claimed by anna", "A(z) #1018 jegyet már anna vállalta."),
    ("the reply is empty: nothing was sent", "A válasz üres: nem ment el semmi."),
    ("the time to wait until has already passed", "A várakozás vége már elmúlt."),
    ("the note is empty: nothing was added", "A megjegyzés üres: nem került fel semmi."),
    (
        (
            "#1018 is solved (assigned to bela): there is nothing to claim;"
            " a new message from the client reopens it"
        ),
        "A(z) #1018 jegy állapota: megoldva (bela kezeli); nincs mit vállalni.",
    ),
    ("#1018 changed since version 3", "A(z) #1018 jegy megváltozott a(z) 3. változat óta."),
]


@pytest.mark.parametrize(("english", "hungarian"), REFUSALS)
def test_refusals_are_told_in_hungarian_with_their_details(english: str, hungarian: str) -> None:
    assert translator("hu", ZONE).refusal(english).startswith(hungarian)
    assert translator("en", ZONE).refusal(english) == english  # English: as the desk said


def test_unknown_refusals_are_shown_as_raised() -> None:
    assert translator("hu", ZONE).refusal("something new") == "something new"
