"""The documented systemd install writes only where the unit lets it (tester-ops F1).

The unit makes ``/var/lib/triage`` the only writable place (``ProtectSystem=strict``,
``ReadWritePaths=``) and ``/etc/triage`` is read-only to the daemon, while relative
paths in the config resolve against ``/etc/triage``. So the README's install step
(the very command it prints) must put the database and the outbox folder in
``/var/lib/triage``; and ``triage init`` names the key whose directory it cannot
write, shown here on a really read-only directory (a read-only bind mount).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from support.daemonproc import triage_command

from triage.config import load_config

ROOT = Path(__file__).resolve().parents[1]
STATE = "/var/lib/triage"


def _install_command(text: str) -> str:
    """The README's `sed ... | install ... /etc/triage/triage.toml` step, as printed."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("# ").startswith("sed -e "))
    end = next(i for i in range(start, len(lines)) if "/etc/triage/triage.toml" in lines[i])
    return "\n".join(line.lstrip("#").strip() for line in lines[start : end + 1])


def _run_install_step(text: str, out: Path) -> Path:
    step = _install_command(text)
    assert "install -m 0640 -o root -g triage /dev/stdin /etc/triage/triage.toml" in step
    command = step.replace(
        "install -m 0640 -o root -g triage /dev/stdin /etc/triage/triage.toml", f"cat > {out}"
    )
    subprocess.run(["sh", "-c", command], cwd=ROOT, check=True, timeout=30)
    return out


def test_the_readme_install_step_puts_every_written_path_in_the_state_directory(
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    systemd_part = readme[readme.index("deploy/triage.service` is a systemd unit") :]
    config = _run_install_step(systemd_part, tmp_path / "triage.toml")
    settings = load_config(config)
    # as if installed in /etc/triage: relative paths would resolve there
    assert settings.database_url == f"sqlite:///{STATE}/triage.db"
    assert settings.smtp is not None
    assert settings.resolve(settings.smtp.folder) == Path(STATE) / "outbox"
    assert settings.smtp.journal == ""  # beside the SQLite file: in the state directory too
    # the example's OAuth2 blocks (commented out) keep the token cache there as well
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    caches = re.findall(r'^# token_cache = "([^"]+)"', example, re.MULTILINE)
    assert caches
    assert all(c.startswith(f"{STATE}/") for c in caches)
    # and the example says so
    assert 'url = "sqlite:////var/lib/triage/triage.db"' in example
    # the unit's comment shows the same step, and both units let exactly that be written
    unit = (ROOT / "deploy" / "triage.service").read_text(encoding="utf-8")
    assert _install_command(unit) == _install_command(systemd_part)
    for name in ("triage.service", "triage-backup.service"):
        text = (ROOT / "deploy" / name).read_text(encoding="utf-8")
        assert re.findall(r"^ReadWritePaths=(.*)$", text, re.MULTILINE) == [STATE], name
        assert "StateDirectory=triage" in text
        assert "ProtectSystem=strict" in text
    backup = (ROOT / "deploy" / "triage-backup.service").read_text(encoding="utf-8")
    assert f"--to {STATE}/backups" in backup


def _init_with_read_only(config_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    script = (
        f"mount --bind {config_dir} {config_dir} && mount -o remount,bind,ro {config_dir}"
        f" && exec {' '.join(triage_command())} --config {config} init"
    )
    env = {**os.environ, "TRIAGE_IMAP_PASSWORD": "x", "TRIAGE_SMTP_PASSWORD": "y"}
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_init_names_the_key_whose_directory_the_daemon_cannot_write(tmp_path: Path) -> None:
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {tmp_path} {tmp_path}"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("needs root and mount namespaces for a read-only bind mount")
    etc = tmp_path / "etc"
    etc.mkdir()
    # the example as it is: the database next to the config, in a read-only directory
    (etc / "triage.toml").write_text(
        (ROOT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    done = _init_with_read_only(etc, etc / "triage.toml")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"error: {etc / 'triage.toml'}: database.url: cannot write in {etc}, where the SQLite"
        f" file {etc / 'triage.db'} and its journal files go; under systemd it must be in"
        " /var/lib/triage (the only place the daemon may write),"
        " e.g. sqlite:////var/lib/triage/triage.db"
    )
    # the README's step, with the state directory moved into this test's directory
    state = tmp_path / "state"
    state.mkdir()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    installed = _run_install_step(
        readme[readme.index("deploy/triage.service` is a systemd unit") :], etc / "triage.toml"
    )
    installed.write_text(
        installed.read_text(encoding="utf-8").replace(STATE, str(state)), encoding="utf-8"
    )
    done = _init_with_read_only(etc, installed)
    assert done.returncode == 0, done.stderr
    assert (state / "triage.db").is_file()
    assert not (etc / "triage.db").exists()
