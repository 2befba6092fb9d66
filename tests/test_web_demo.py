"""The README's way in: `triage demo --serve`, log in with a printed account, work a
ticket from the queue to done in a real browser."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from support.daemonproc import triage_command
from support.ports import free_port

from triage.clock import utcnow
from triage.config import load_config
from triage.escalation import mail_mentions
from triage.store import Database
from triage.store.models import OutboxMail


@pytest.mark.slow
def test_demo_serve_to_done(tmp_path: Path, pages: Any) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *triage_command(),
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--serve",
            "--port",
            str(port),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 240
        password = ""
        while time.monotonic() < deadline and not password:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            found = re.match(r"\s+anna\s+(\S+)\s+\(assistant\)", line)
            if found:
                password = found.group(1)
        assert password, "".join(printed)
        assert f"http://127.0.0.1:{port}/" in "".join(printed)
        page = pages.new(locale="en-GB")
        for _ in range(100):  # the server starts right after printing the accounts
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                time.sleep(0.2)
        page.locator("input[name=name]").fill("anna")
        page.locator("input[name=password]").fill(password)
        page.locator("form.card button[type=submit]").click()
        rows = page.locator("#rows > li.row")
        expect(rows.first).to_be_visible()
        assert rows.count() > 10
        rows.first.locator("a.open").click()
        page.get_by_role("button", name="Claim").click()
        expect(page.locator("#flash")).to_have_text("You have the ticket.")
        page.locator("#reply-body").fill("Dear client, it is done.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.locator("#flash")).to_contain_text("Reply queued")
        page.locator("#note-body").fill("Look at this, @bela")
        page.get_by_role("button", name="Add note").click()
        expect(page.locator(".thread .msg.note")).to_contain_text("@bela")
        page.get_by_role("button", name="Done").click()
        expect(page.locator(".facts .status")).to_have_text("solved")
        page.close()
        # the mention mail links to the page as served (--port), not [web]'s default 8025
        settings = load_config(tmp_path / "demo" / "triage.toml")
        assert settings.web.origin() == f"http://127.0.0.1:{port}"
        db = Database.open(settings.database_url)
        try:
            with db.session() as session:
                assert mail_mentions(session, settings, utcnow()) == 1
                mail = session.scalars(select(OutboxMail).where(OutboxMail.kind == "mention")).one()
                text = message_from_bytes(mail.raw, policy=policy.default)
                assert f"http://127.0.0.1:{port}/t/" in text.get_content()  # type: ignore[attr-defined]
        finally:
            db.dispose()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0
