"""Start-up: commands that need no model do not import scikit-learn or skops."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.tickets import write_config
from test_classifier_data import dataset

from classifiers.model import TARGETS, train
from triage.modelstore import MODEL_TARGETS, save_model
from triage.store import Database

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

PROBE = """
import sys
from triage.cli.main import main
try:
    main(sys.argv[1:])
finally:  # `status` exits 1 on an unpolled inbox
    heavy = sorted(m for m in ("sklearn", "skops", "scipy") if m in sys.modules)
    print("HEAVY", ",".join(heavy) or "-")
"""


def loaded_by(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "HEAVY" in done.stdout, done.stdout + done.stderr
    return done.stdout.split("HEAVY", 1)[1].strip()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", path)
    subprocess.run(
        [sys.executable, "-m", "triage", "--config", str(path), "init"],
        capture_output=True,
        check=True,
    )
    return path


@pytest.mark.parametrize("command", [["queue"], ["queue", "--json"], ["status"], ["outbox"]])
def test_commands_without_a_model_import_no_scikit_learn(config: Path, command: list[str]) -> None:
    assert loaded_by(config, *command) == "-"


def test_the_model_targets_read_without_scikit_learn_match_the_classifiers() -> None:
    assert MODEL_TARGETS == TARGETS


def test_poll_once_with_nothing_new_loads_no_model_even_with_one_active(tmp_path: Path) -> None:
    # the daemon's pass loads the active model when the first new message needs it
    # (triage.assembly.LazyModels); with nothing new it never imports scikit-learn
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    config = write_config(tmp_path / "triage.toml", url)  # no [imap]: nothing to fetch
    db = Database.open(url, migrate=True)
    examples, labels = dataset(3)
    with db.session() as s:
        save_model(s, train(examples, labels, trained_at=NOW), activate=True)
    db.dispose()
    assert loaded_by(config, "poll", "--once") == "-"
    # the probe does see scikit-learn when a message is routed by the model
    box = tmp_path / "one.mbox"
    box.write_bytes(
        b"From client@example.com Tue Nov 24 09:55:00 2026\n"
        b"From: client@example.com\nTo: inbox@example.com\nSubject: Invoice 5\n"
        b"Message-ID: <i5@example.com>\n\nIs invoice 5 paid?\n"
    )
    assert "sklearn" in loaded_by(config, "import", str(box), "--open-tickets")


LAZY = (
    "triage.tickets.assignment",  # the write side of the ticket desk
    "triage.tickets.lifecycle",
    "triage.tickets.reply",
    "triage.outbox",  # the reply's outbox and its Jinja2 templates
    "jinja2",
    "holidays.countries",  # no country's calendar is built for an empty queue
)

LAZY_PROBE = """
import sys
from triage.cli.main import main
main(sys.argv[1:])
print("LOADED", ",".join(m for m in {lazy!r} if m in sys.modules) or "-")
"""


@pytest.mark.parametrize("command", [["queue"], ["queue", "--json"]])
def test_an_empty_queue_loads_no_write_side_and_builds_no_holiday_calendar(
    config: Path, command: list[str]
) -> None:
    # config.example.toml names a country (holidays = "HU"): it is validated at load
    # from the holidays package's registry, and its calendar built only for a deadline
    done = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE.format(lazy=LAZY), "--config", str(config), *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "LOADED" in done.stdout, done.stdout + done.stderr
    assert done.stdout.split("LOADED", 1)[1].strip() == "-"
    assert 'holidays = "HU"' in (ROOT / "config.example.toml").read_text()
