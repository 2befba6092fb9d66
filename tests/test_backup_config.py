"""``triage backup`` / ``restore`` against the configs admins actually have (tester-ops F4, F5).

- The shipped example config names ``shipped:default.toml``: the backup records it
  by reference (it comes with the package) instead of failing on a path next to
  the config; every other way a configured file can be unusable fails clearly.
- Every run is recorded: a failed backup shows in ``triage status`` (exit 1),
  ``/health`` and ``/metrics``, with the time of the last good one.
- A restore under a config in another place puts rule files and templates where
  that config reads them and warns that the locations differ.

All with the real CLI on real files and a real SQLite database.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import Result
from prometheus_client import generate_latest
from support.cli import run_triage
from support.daemonproc import DEFAULT_RULES

from triage.backup import restore_backup, run_backup
from triage.config import load_config
from triage.health import read_health
from triage.metrics import TriageMetrics
from triage.store import Database

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"


def triage(config: Path, *args: str) -> Result:
    env = {"TRIAGE_IMAP_PASSWORD": "x", "TRIAGE_SMTP_PASSWORD": "y"}
    return run_triage("--config", str(config), *args, env=env)


def example_config(directory: Path, *, rule_files: str | None = None) -> Path:
    """config.example.toml as shipped, with only its paths moved into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text(encoding="utf-8")
    text, n = re.subn(
        r'(?m)^url = "sqlite:///[^"]*"', f'url = "sqlite:///{directory / "triage.db"}"', text
    )
    assert n == 1, "config.example.toml has one database.url"
    if rule_files is not None:
        text, n = re.subn(r"(?m)^rule_files = .*$", f"rule_files = {rule_files}", text)
        assert n == 1
    path = directory / "triage.toml"
    path.write_text(text, encoding="utf-8")
    return path


def metrics_text(db: Database, config: Path) -> str:
    settings = load_config(config)
    m = TriageMetrics(health=lambda: read_health(db, settings), process=False)
    return generate_latest(m.registry).decode()


def test_the_example_config_backs_up_and_shipped_rule_files_are_recorded_by_name(
    tmp_path: Path,
) -> None:
    config = example_config(tmp_path / "etc")
    assert 'rule_files = ["shipped:default.toml"]' in config.read_text(encoding="utf-8")
    Database.open(f"sqlite:///{tmp_path / 'etc' / 'triage.db'}").dispose()
    done = triage(config, "backup", "--to", str(tmp_path / "backups"), "--keep", "3")
    assert done.exit_code == 0, done.stderr
    assert "shipped rule files (come with triage, not copied): shipped:default.toml" in done.stdout
    (archive,) = (tmp_path / "backups").glob("triage-backup-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names == ["config/triage.toml", "database.sqlite", "manifest.json"]
    assert manifest["shipped_rule_files"] == [
        {
            "entry": "shipped:default.toml",
            "sha256": __import__("hashlib").sha256(DEFAULT_RULES.read_bytes()).hexdigest(),
        }
    ]
    # the run is recorded: status shows the last backup and stays healthy about it
    status = triage(config, "status")
    assert "Backup: last " in status.stdout
    assert str(archive) in status.stdout
    assert "backup:" not in status.stdout  # no problem line


def test_a_failed_backup_shows_in_status_health_and_metrics_until_one_works(
    tmp_path: Path,
) -> None:
    config = example_config(tmp_path / "etc", rule_files='["shipped:default.toml", "office.toml"]')
    shutil.copyfile(DEFAULT_RULES, tmp_path / "etc" / "office.toml")
    db = Database.open(f"sqlite:///{tmp_path / 'etc' / 'triage.db'}")
    try:
        good = triage(config, "backup", "--to", str(tmp_path / "backups"))
        assert good.exit_code == 0, good.stderr
        text = metrics_text(db, config)
        assert "triage_backup_last_run_ok 1.0" in text
        # the rule file goes away after `init` checked it: the nightly backup fails
        (tmp_path / "etc" / "office.toml").unlink()
        bad = triage(config, "backup", "--to", str(tmp_path / "backups"))
        assert bad.exit_code == 1
        *logged, last = bad.stderr.strip().splitlines()
        assert last.startswith("error: routing.rule_files: cannot read ")
        assert last.endswith("office.toml: No such file or directory")
        # and the journal has it as a structured event
        assert json.loads(logged[-1])["event"] == "backup_failed"
        status = triage(config, "status")
        assert status.exit_code == 1
        assert "Backup: FAILED " in status.stdout
        assert "last good one " in status.stdout
        as_json = json.loads(triage(config, "status", "--json").stdout)
        assert any(
            p.startswith("backup: the last backup (") and "office.toml" in p
            for p in as_json["problems"]
        )
        assert as_json["backup"]["last_ok"] is False
        assert as_json["backup"]["last_ok_at"] is not None
        verdict = read_health(db, load_config(config))
        assert verdict.http()[0] == 503
        text = metrics_text(db, config)
        assert "triage_backup_last_run_ok 0.0" in text
        found = re.search(
            r"^triage_backup_last_success_timestamp_seconds (\S+)$", text, re.MULTILINE
        )
        assert found is not None
        last_ok = float(found[1])
        assert abs(last_ok - datetime.now(UTC).timestamp()) < 300
        # fixed: the next backup works and the problem is gone
        shutil.copyfile(DEFAULT_RULES, tmp_path / "etc" / "office.toml")
        assert triage(config, "backup", "--to", str(tmp_path / "backups")).exit_code == 0
        assert not [
            p for p in read_health(db, load_config(config)).problems if p.startswith("backup")
        ]
    finally:
        db.dispose()


def test_backup_names_the_key_of_a_missing_templates_dir_and_records_the_failure(
    tmp_path: Path,
) -> None:
    config = example_config(tmp_path / "etc")
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('templates_dir = ""', 'templates_dir = "nowhere"', 1), encoding="utf-8"
    )
    assert 'templates_dir = "nowhere"' in config.read_text(encoding="utf-8")
    db = Database.open(f"sqlite:///{tmp_path / 'etc' / 'triage.db'}")
    try:
        result: list[Any] = []
        try:
            result.append(run_backup(load_config(config), tmp_path / "b", database=lambda: db))
        except Exception as exc:  # the message is the point
            result.append(exc)
        assert str(result[0]) == (
            f"acknowledgments.templates_dir: {tmp_path / 'etc' / 'nowhere'} is not a directory"
        )
        assert not list((tmp_path / "b").glob("triage-backup-*"))
        problems = read_health(db, load_config(config)).problems
        assert next(p for p in problems if p.startswith("backup: ")).endswith(
            "failed: acknowledgments.templates_dir:"
            f" {tmp_path / 'etc' / 'nowhere'} is not a directory"
        )
    finally:
        db.dispose()


def test_restore_under_a_config_elsewhere_puts_files_where_it_reads_them_and_warns(
    tmp_path: Path,
) -> None:
    old = example_config(tmp_path / "old", rule_files='["rules.toml"]')
    shutil.copyfile(DEFAULT_RULES, tmp_path / "old" / "rules.toml")
    Database.open(f"sqlite:///{tmp_path / 'old' / 'triage.db'}").dispose()
    done = triage(old, "backup", "--to", str(tmp_path / "backups"))
    assert done.exit_code == 0, done.stderr
    (archive,) = (tmp_path / "backups").glob("triage-backup-*.tar.gz")
    # the "new machine": the same config in another directory, no rule file there yet
    new = example_config(tmp_path / "new", rule_files='["rules.toml"]')
    restored = triage(new, "restore", str(archive))
    assert restored.exit_code == 0, restored.stderr
    assert f"wrote: {tmp_path / 'new' / 'rules.toml'}" in restored.stdout
    assert (tmp_path / "new" / "rules.toml").read_bytes() == DEFAULT_RULES.read_bytes()
    taken, reads = tmp_path / "old" / "rules.toml", tmp_path / "new" / "rules.toml"
    assert (
        f"warning: rule file rules.toml: the archive took it from {taken};"
        f" this config reads it from {reads}: restored there"
    ) in restored.stderr
    assert triage(new, "rules", "check").exit_code == 0


def test_restore_warns_about_a_rule_file_the_config_names_but_the_archive_lacks(
    tmp_path: Path,
) -> None:
    old = example_config(tmp_path / "old")
    Database.open(f"sqlite:///{tmp_path / 'old' / 'triage.db'}").dispose()
    db = Database.open(f"sqlite:///{tmp_path / 'old' / 'triage.db'}")
    try:
        archive = run_backup(load_config(old), tmp_path / "b", database=lambda: db).path
    finally:
        db.dispose()
    new = example_config(tmp_path / "new", rule_files='["shipped:default.toml", "extra.toml"]')
    result = restore_backup(load_config(new), archive)
    assert result.warnings == [
        (
            f"rule file extra.toml of this config ({tmp_path / 'new' / 'extra.toml'}) is not in"
            " the archive; it is missing"
        )
    ]
