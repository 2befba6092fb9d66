"""`[web]` settings and the page's two languages."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from triage.config import parse_config
from triage.errors import ConfigError
from triage.sla.calendar import BusinessCalendar
from triage.store import Database
from triage.web.i18n import catalog, translator

BASE = """
[smtp]
mode = "folder"
from_address = "office@example.com"
"""


def settings(web: str):
    return parse_config(tomllib.loads(BASE + "[web]\n" + web), source="t.toml", base_dir=Path())


def test_web_defaults_listen_on_loopback_only() -> None:
    web = settings("").web
    assert web.host == "127.0.0.1"
    assert web.enabled is False
    assert web.origin() == "http://127.0.0.1:8025"


def test_base_url_is_the_origin() -> None:
    web = settings('base_url = "https://Desk.Example.com/"\nport = 9000').web
    assert web.origin() == "https://desk.example.com"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'base_url = "desk.example.com"',
            "t.toml: web.base_url: 'desk.example.com' is not an origin",
        ),
        ('base_url = "https://desk.example.com/app"', "web.base_url:"),
        ("port = 0", "web.port: Input should be greater than or equal to 1"),
        ('default_language = "de"', "web.default_language: Input should be 'hu' or 'en'"),
        ('enabled = "yes"', "web.enabled: Input should be a valid boolean"),
        ('host = "0.0.0.0/8"', "web.host:"),
        ("colour = 1", "web.colour: unknown key"),
        ('password = "x"', "web.password: secrets are never written in the config file"),
    ],
)
def test_bad_web_settings_name_the_key(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(line)
    assert message in str(caught.value)


def test_both_languages_have_the_same_messages() -> None:
    assert set(catalog("hu")) == set(catalog("en"))
    assert all(catalog("hu")[k].strip() for k in catalog("hu"))


def test_countdowns_are_business_time_in_both_languages() -> None:
    cal = BusinessCalendar.from_settings(settings("").calendar)
    zone = ZoneInfo("Europe/Budapest")
    now = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)  # a Friday, 16:00 in Budapest
    due = datetime(2026, 3, 16, 9, 20, tzinfo=UTC)  # Monday 10:20: 1 h + 20 m of office time
    assert translator("en", zone).countdown(cal, due, now) == "2 h 20 m of office time left"
    assert translator("hu", zone).countdown(cal, due, now) == "2 ó 20 p munkaidő van hátra"
    assert translator("en", zone).countdown(cal, now, due).startswith("overdue by 2 h 20 m")
    assert translator("hu", zone).local(due) == "2026. márc. 16. (h) 10:20"
    assert translator("en", zone).local(due) == "Mon 16 Mar 2026 10:20"


def test_saved_replies_are_validated() -> None:
    good = settings(
        '[[web.saved_replies]]\nname = "Thanks"\ntext = "Dear {client_name}, {ref} {{ok}}"\n'
    )
    assert good.web.saved_replies[0].text.startswith("Dear {client_name}")
    with pytest.raises(ConfigError) as caught:
        settings('[[web.saved_replies]]\nname = "x"\ntext = "Hi {clientname}"\n')
    assert "web.saved_replies.0.text: unknown variable {clientname}" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        settings('[[web.saved_replies]]\nname = "x"\ntext = "Hi {"\n')
    assert "web.saved_replies.0.text:" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        settings('[[web.saved_replies]]\nname = "x"\ntext = "Hi"\nqueues = ["nope"]\n')
    assert "web.saved_replies.0.queues: 'nope' is not in [queues]" in str(caught.value)


def test_trusted_proxies_are_addresses_or_networks_and_reach_uvicorn(tmp_path: Path) -> None:
    from triage.web.serve import build  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"web\.trusted_proxies\.1: .*'proxy\.example' is not"):
        parse_config(
            {"web": {"trusted_proxies": ["10.0.0.5", "proxy.example"]}},
            source="t.toml",
            base_dir=tmp_path,
        )
    settings = parse_config(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
            "web": {"base_url": "https://desk.example.com", "trusted_proxies": ["10.0.0.0/8"]},
        },
        source="t.toml",
        base_dir=tmp_path,
    )
    db = Database.open(settings.database_url)
    _app, config = build(settings, db)
    assert config.proxy_headers
    assert config.forwarded_allow_ips == ["10.0.0.0/8"]
