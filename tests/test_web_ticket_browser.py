"""Working tickets in a real browser: queue to done, reply to the SMTP server, two
assistants colliding, live updates, hostile mail."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import Pages, screenshot
from playwright.sync_api import expect
from sqlalchemy import select
from support.smtp import SmtpServer
from support.tickets import local
from support.web import PASSWORD, Site, make_site, serve

from triage.services.dispatch import Dispatcher
from triage.smtp.sender import SmtpSender
from triage.store.models import Model, OutboxMail, TicketEvent, TrainingLabel
from triage.tickets import claim, get_ticket

NOW = local(2026, 3, 10, 10, 0)


SAVED = (
    "[[web.saved_replies]]\n"
    'name = "Számla újraküldve"\n'
    'language = "hu"\n'
    'queues = ["billing"]\n'
    'text = "Kedves {client_name}! A(z) {ref} jegyére válaszolva: {assistant}, {team}.'
    ' Határidő: {deadline}"\n'
    "[[web.saved_replies]]\n"
    'name = "Appointment"\n'
    'queues = ["scheduling"]\n'
    'text = "Dear {client_name}, about {subject}"\n'
)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=NOW, extra=SAVED)


@pytest.fixture
def base(site: Site) -> Iterator[str]:
    with serve(site.app()) as url:
        yield url


def log_in(pg: Any, base: str, name: str = "anna", path: str = "/") -> None:
    pg.goto(base + path)
    pg.locator("input[name=name]").fill(name)
    pg.locator("input[name=password]").fill(PASSWORD)
    pg.locator("form.card button[type=submit]").click()
    expect(pg).not_to_have_url(re.compile("/login"))


@pytest.mark.smtp
def test_work_a_ticket_from_queue_to_done_and_the_reply_reaches_smtp(
    site: Site, base: str, page: Any, smtp_server: SmtpServer
) -> None:
    ref = site.ticket(
        "Számla hiba",
        from_name="Kovács Péter",
        from_addr="peter@client.example",
        body="A számlán rossz az összeg.",
    )
    log_in(page, base)
    page.locator(f"#row-{ref} a.open").click()
    expect(page.locator("h1")).to_contain_text("Számla hiba")
    expect(page.locator(".why")).to_contain_text("invoice-words")
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#flash")).to_have_text("You have the ticket.")
    expect(page.locator(".facts .assignee")).to_have_text("anna")
    page.locator("#reply-body").fill("Kedves Péter, a javított számlát csatoltuk.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#flash")).to_contain_text("Reply queued")
    expect(page.locator(".thread .msg.out")).to_contain_text("a javított számlát")
    screenshot(page, "ticket")
    page.get_by_role("button", name="Done").click()
    expect(page.locator(".facts .status")).to_have_text("solved")

    sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
    dispatcher = Dispatcher(site.db, sender, clock=site.clock, rng=random.Random(1))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        pool.submit(asyncio.run, dispatcher.run_once()).result(timeout=60)
    received = smtp_server.sink.wait_for(1)
    assert received[0].rcpt_tos == ["peter@client.example"]
    message = received[0].message
    assert f"[#{ref}]" in str(message["Subject"])
    assert "a javított számlát" in message.get_content()
    with site.db.read_session() as session:
        assert session.scalars(select(OutboxMail.status)).all() == ["sent"]


def test_two_assistants_collide_and_the_stale_reply_is_refused_with_text_kept(
    site: Site, base: str, pages: Pages
) -> None:
    ref = site.ticket("Időpont", queue="scheduling")
    anna = pages.new()
    bela = pages.new()
    log_in(anna, base, "anna", f"/t/{ref}")
    log_in(bela, base, "bela", f"/t/{ref}")
    # each sees the other on the ticket
    expect(anna.locator(f".facts [data-presence='{ref}']")).to_contain_text("bela")
    expect(bela.locator(f".facts [data-presence='{ref}']")).to_contain_text("anna")
    # ... and on the ticket's queue row; typing a reply shows as ✎
    olga = pages.new()
    log_in(olga, base, "olga", "/?view=all")  # an owner lands on Escalated
    expect(olga.locator(f"#row-{ref} .presence")).to_contain_text("anna")
    expect(olga.locator(f"#row-{ref} .presence")).to_contain_text("bela")
    anna.locator("#reply-body").fill("Kedd")
    expect(bela.locator(f".facts [data-presence='{ref}']")).to_contain_text("anna ✎")
    expect(anna.locator(f".facts [data-presence='{ref}']")).to_have_text("Also here: bela")
    expect(olga.locator(f"#row-{ref} .presence")).to_contain_text("anna ✎")
    bela.get_by_role("button", name="Claim").click()
    expect(bela.locator("#flash")).to_have_text("You have the ticket.")
    # anna's page hears of it live
    expect(anna.locator("#changed")).to_be_visible()
    expect(anna.locator("#changed .what")).to_contain_text("bela claimed the ticket")
    # anna's reply was typed on the old version: refused, her text kept
    anna.locator("#reply-body").fill("Kedd 10 óra megfelel?")
    anna.get_by_role("button", name="Send reply").click()
    expect(anna.locator("#stale")).to_contain_text("bela claimed the ticket")
    expect(anna.locator("#reply-body")).to_have_value("Kedd 10 óra megfelel?")
    assert pages.errors == []  # the refusal is a page (200), not a failed load
    with site.db.read_session() as session:
        assert session.scalars(select(OutboxMail)).all() == []
    # sent again from the fresh page, it goes through
    anna.get_by_role("button", name="Send reply").click()
    expect(anna.locator("#flash")).to_contain_text("Reply queued")


def test_a_claim_made_elsewhere_appears_in_the_open_queue_live(
    site: Site, base: str, page: Any
) -> None:
    ref = site.ticket("Live one")
    log_in(page, base)
    expect(page.locator(f"#row-{ref} .assignee")).to_have_text("unassigned")
    with site.db.session() as session:  # another process (the CLI) claims it
        claim(session, get_ticket(session, ref), "bela", now=NOW)
    expect(page.locator(f"#row-{ref} .assignee")).to_have_text("bela", timeout=5000)
    new = site.ticket("Brand new mail")
    expect(page.locator(f"#row-{new}")).to_be_visible(timeout=5000)


def test_a_claim_made_elsewhere_updates_the_view_counts_live(
    site: Site, base: str, page: Any
) -> None:
    refs = [site.ticket("Count one"), site.ticket("Count two")]
    log_in(page, base, path="/?view=unassigned")
    unassigned = page.locator("#views a[href='/?view=unassigned'] .count").first
    mine = page.locator("#views a[href='/?view=mine'] .count").first
    expect(unassigned).to_have_text("2")
    expect(mine).to_have_text("0")
    with site.db.session() as session:  # another process (the CLI) claims it for anna
        claim(session, get_ticket(session, refs[0]), "anna", now=NOW)
    expect(page.locator(f"#row-{refs[0]}")).to_have_count(0, timeout=5000)
    expect(unassigned).to_have_text("1", timeout=5000)  # without a reload
    expect(mine).to_have_text("1")
    expect(page.locator("#views")).to_have_count(1)  # swapped in place, not added


def test_one_click_correction_becomes_a_training_label(site: Site, base: str, page: Any) -> None:
    ref = site.ticket("Wrongly routed")
    log_in(page, base, path=f"/t/{ref}")
    page.locator("form.correct select[name=queue]").select_option("scheduling")
    page.locator("form.correct button").click()
    expect(page.locator(".facts .queue-name")).to_have_text("scheduling")
    with site.db.read_session() as session:
        label = session.scalars(select(TrainingLabel)).one()
        assert (label.queue, label.source, label.actor) == ("scheduling", "correction", "anna")
        actions = session.scalars(select(TicketEvent.action)).all()
    assert "moved" in actions
    expect(page.locator(".why .correction")).to_contain_text(
        "Correction recorded: scheduling (anna, Tue 10 Mar 2026 10:00)."
    )
    expect(page.locator(".why .correction")).to_contain_text("No model trained on it")
    with site.db.session() as session:  # `triage train` later makes a model from the labels
        session.add(
            Model(
                version="queue-20260310-1",
                target="queue",
                active=True,
                sklearn_version="1",
                trained_at=NOW + timedelta(hours=1),
                n_train=1,
                classes=["billing", "scheduling"],
                metrics={},
                blob=b"",
                sha256="0" * 64,
            )
        )
    page.reload()
    expect(page.locator(".why .correction")).to_contain_text("Used by model queue-20260310-1.")


def test_keyboard_claims_and_focuses_the_reply(site: Site, base: str, page: Any) -> None:
    ref = site.ticket("Keys")
    log_in(page, base)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/t/{ref}$"))
    page.keyboard.press("c")
    expect(page.locator("#flash")).to_have_text("You have the ticket.")
    page.keyboard.press("r")
    expect(page.locator("#reply-body")).to_be_focused()
    page.keyboard.type("dn")  # letters typed in the reply are text, not shortcuts
    expect(page.locator("#reply-body")).to_have_value("dn")
    expect(page.locator(".facts .status")).to_have_text("open")


LONG_RULE = (
    "rule 'invoice': subject matches /(könyvel|\\bbook|áfa|\\bvat\\b|\\bnav\\b|reverse charge|"
    "fordított|szállító|beszállító|alvállalkoz|supplier|kimenő|bejövő|hiányz|missing|nyugt|receipt|"
    "kivonat|statement)/ at 'Számla_" + "x" * 120 + "'"
)


def test_phone_sized_ticket_and_reply(site: Site, base: str, pages: Pages) -> None:
    """Nothing on the ticket page scrolls sideways on a phone, nor on a desktop: not a
    long rule explanation (a regex has no break opportunity), a long word, or a URL."""
    ref = site.ticket(
        "On the phone " + "Nagyonhosszúszóközöknélküli" * 6,
        body="Hosszú szöveg " * 80 + "https://example.com/" + "a" * 300,
        from_name="Kovács" * 20,
        explanation=LONG_RULE,
    )
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    log_in(phone, base, path=f"/t/{ref}")
    expect(phone.locator(".why")).to_contain_text("kivonat")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    desktop = pages.new(viewport={"width": 1280, "height": 900})
    log_in(desktop, base, path=f"/t/{ref}")
    assert desktop.evaluate("document.documentElement.scrollWidth") <= 1280
    phone.locator("#reply-body").fill("Rendben.")
    phone.get_by_role("button", name="Send reply").click()
    expect(phone.locator("#flash")).to_contain_text("Reply queued")
    screenshot(phone, "ticket-phone")


def test_a_saved_reply_is_inserted_with_its_variables_filled(
    site: Site, base: str, page: Any
) -> None:
    ref = site.ticket("Számla", from_name="Kovács Péter", queue="billing")
    log_in(page, base, path=f"/t/{ref}")
    options = page.locator("#saved-replies option")
    expect(options).to_have_count(2)  # the prompt and the billing reply, not scheduling's
    page.locator("#reply-body").fill("Jó napot! ")
    page.locator("#reply-body").press("End")
    page.locator("#saved-replies").select_option(label="Számla újraküldve (hu)")
    expect(page.locator("#reply-body")).to_have_value(
        re.compile(
            rf"^Jó napot! Kedves Kovács Péter! A\(z\) #{ref} jegyére válaszolva: anna,"
            r" Example Office\. Határidő: 2026\. márc\. \d+\. \(\w+\) \d\d:\d\d$"
        )
    )


def test_note_with_mention_snooze_and_priority_correction(site: Site, base: str, page: Any) -> None:
    ref = site.ticket("Needs a colleague")
    log_in(page, base, path=f"/t/{ref}")
    page.keyboard.press("n")
    expect(page.locator("#note-body")).to_be_focused()
    page.keyboard.type("Can you check this, @bela?")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#flash")).to_have_text("Note added.")
    note = page.locator(".thread .msg.note")
    expect(note).to_contain_text("Can you check this, @bela?")
    expect(note).to_contain_text("→ bela")
    page.keyboard.press("n")
    page.keyboard.type("and @nobody <b>too</b>")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#flash")).to_have_text(
        "Note added. @nobody: no such assistant, nobody was told."
    )
    expect(page.locator(".thread .msg.note").first).to_contain_text("and @nobody <b>too</b>")
    with site.db.read_session() as session:
        assert session.scalars(select(OutboxMail)).all() == []  # never mailed to the client
    page.locator("form.snooze input[name=until]").fill("2026-03-12T09:30")
    page.locator("form.snooze button").click()
    expect(page.locator(".facts .status")).to_have_text("waiting")
    expect(page.locator(".facts .snoozed")).to_have_text("snoozed until Thu 12 Mar 2026 09:30")
    page.locator("form.correct select[name=priority]").select_option("urgent")
    page.locator("form.correct button").click()
    expect(page.locator(".facts .priority")).to_have_text("urgent")


def test_a_half_typed_reply_survives_another_action_and_is_forgotten_when_sent(
    site: Site, base: str, page: Any
) -> None:
    ref = site.ticket("Draft keeping")
    log_in(page, base, path=f"/t/{ref}")
    page.locator("#reply-body").fill("Kedves Ügyfél, még dolgozom rajta")
    page.locator("#note-body").fill("félkész jegyzet")
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#flash")).to_have_text("You have the ticket.")
    expect(page.locator("#reply-body")).to_have_value("Kedves Ügyfél, még dolgozom rajta")
    expect(page.locator("#note-body")).to_have_value("félkész jegyzet")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#flash")).to_contain_text("Reply queued")
    expect(page.locator("#reply-body")).to_have_value("")
    expect(page.locator("#note-body")).to_have_value("félkész jegyzet")
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, path=f"/t/{ref}")
    expect(page.locator("#note-body")).to_have_value("")
