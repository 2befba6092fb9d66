"""Start-up: commands that need no model do not import scikit-learn or skops."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from classifiers.model import TARGETS
from triage.modelstore import MODEL_TARGETS

ROOT = Path(__file__).resolve().parents[1]

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
