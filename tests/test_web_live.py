"""Live updates over server-sent events: event ids, Last-Event-ID resume, login."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx2 as httpx
import pytest
from support.tickets import local
from support.web import PASSWORD, Site, make_site, serve

from triage.tickets import assign, claim, get_ticket

NOW = local(2026, 3, 10, 10, 0)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW)


def _read_events(client: httpx.Client, headers: dict[str, str], want: int) -> list[dict[str, str]]:
    """Read ``want`` ticket events from /events (each: id, data)."""
    got: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if not line:
                if current.get("event") == "ticket":
                    got.append(current)
                    if len(got) >= want:
                        return got
                current = {}
                continue
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return got


def test_a_stream_resumes_after_last_event_id(site: Site) -> None:
    first = site.ticket("First")
    second = site.ticket("Second")
    with site.db.session() as session:
        claim(session, get_ticket(session, first), "anna", now=NOW)
        assign(session, get_ticket(session, second), "bela", actor="anna", now=NOW)
    with serve(site.app()) as base, httpx.Client(base_url=base, timeout=20) as client:
        assert client.get("/events").status_code == 401
        client.post(
            "/login",
            data={"name": "bela", "password": PASSWORD},
            headers={"sec-fetch-site": "same-origin"},
        )
        # events 1, 2 opened the tickets; resume after the first: three come back in order
        events = _read_events(client, {"last-event-id": "1"}, 3)
        assert [int(e["id"]) for e in events] == [2, 3, 4]
        actions = [json.loads(e["data"])["action"] for e in events]
        assert actions == ["opened", "claimed", "assigned"]
        assert json.loads(events[1]["data"])["ref"] == first
        assert json.loads(events[2]["data"])["text"] == "anna assigned the ticket to bela"


def test_a_fresh_stream_gets_what_happens_next(site: Site) -> None:
    ref = site.ticket("Live")
    with serve(site.app()) as base, httpx.Client(base_url=base, timeout=20) as client:
        client.post(
            "/login",
            data={"name": "anna", "password": PASSWORD},
            headers={"sec-fetch-site": "same-origin"},
        )
        result: list[dict[str, str]] = []
        reader = threading.Thread(target=lambda: result.extend(_read_events(client, {}, 1)))
        reader.start()
        # the stream starts at the newest event: the 'opened' before it is not replayed.
        # Changes are made until one arrives (the stream may not have subscribed yet).
        names = ["anna", "bela"]
        for attempt in range(100):
            with site.db.session() as session:
                ticket = get_ticket(session, ref)
                assign(session, ticket, names[attempt % 2], actor="olga", now=NOW)
            reader.join(timeout=0.2)
            if result:
                break
        reader.join(timeout=10)
        assert [json.loads(e["data"])["action"] for e in result] == ["assigned"]
