"""The desk's routing corrections: recorded, then learned by a later model."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.tickets import local, make_settings, store_message

from triage.clock import FixedClock
from triage.desk import TicketDesk
from triage.errors import NotFoundError
from triage.sla import SlaPolicy
from triage.store import Database
from triage.store.models import Model
from triage.tickets import open_ticket

NOW = local(2026, 3, 10, 10, 0)


def test_corrections_are_listed_and_marked_learned(database: Database) -> None:
    settings = make_settings()
    desk = TicketDesk(database, settings, clock=FixedClock(NOW))
    with database.session() as session:
        message = store_message(session, message_id="<c@x>", received_at=NOW)
        ticket = open_ticket(
            session,
            message,
            policy=SlaPolicy(settings),
            queue="billing",
            priority="normal",
            decided_by="model",
            now=NOW,
        )
        ref = ticket.ref or 0
    assert desk.corrections(ref) == ()
    desk.move(ref, actor="anna", queue="scheduling", priority="high")
    (first,) = desk.corrections(ref)
    assert (first.queue, first.priority, first.actor, first.used_by) == (
        "scheduling",
        "high",
        "anna",
        "",
    )
    with database.session() as session:
        for version, hours, active in (("old", -1, False), ("new", 1, True)):
            session.add(
                Model(
                    version=version,
                    target="queue",
                    active=active,
                    sklearn_version="1",
                    trained_at=NOW + timedelta(hours=hours),
                    n_train=1,
                    classes=[],
                    metrics={},
                    blob=b"",
                    sha256="0" * 64,
                )
            )
    assert desk.corrections(ref)[0].used_by == "new"
    with pytest.raises(NotFoundError):
        desk.corrections(99999)
