"""The CLI as a user runs it: arguments, exit statuses and messages.

In-process through :func:`support.cli.run_triage` (click's CliRunner); the help and
import-time checks run the installed `triage` command in a real subprocess."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from support.cli import run_triage

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = shutil.which("triage", path=str(Path(sys.executable).parent)) or "triage"


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    return run_triage(*args, cwd=cwd, env=env)


def test_help_lists_commands() -> None:
    # the installed console script, in a real process: its entry point works
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_CONFIG"}
    done = subprocess.run([TRIAGE, "--help"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0
    assert "init" in done.stdout
    assert "Usage: triage" in done.stdout


def test_init_creates_and_migrates_the_database(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    done = run("--config", str(config), "init")
    assert done.exit_code == 0, done.stderr
    assert "applied migrations: 0001" in done.stdout
    db = tmp_path / "triage.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        mode = conn.execute("pragma journal_mode").fetchone()[0]
    assert {"folders", "messages", "tickets", "routing_decisions", "outbox", "ticket_events"} <= (
        tables
    )
    assert mode == "wal"
    again = run("--config", str(config), "init")
    assert again.exit_code == 0
    assert "schema already current" in again.stdout


def test_config_from_environment_variable(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    done = run("init", env={"TRIAGE_CONFIG": str(config)})
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "triage.db").exists()


def test_typo_in_config_is_one_line_naming_the_key_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(
        (ROOT / "config.example.toml")
        .read_text(encoding="utf-8")
        .replace("fallback_queue =", "falback_queue =")
    )
    done = run("--config", str(config), "init")
    assert done.exit_code == 2
    assert "routing.falback_queue: unknown key" in done.stderr
    assert str(config) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "triage.db").exists()


def test_no_config_is_a_clear_error(tmp_path: Path) -> None:
    done = run("init", cwd=tmp_path)
    assert done.exit_code == 2
    assert "no configuration" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_postgres_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://postgres@127.0.0.1:1/none"\n')
    done = run("--config", str(config), "init")
    assert done.exit_code == 1
    assert done.stderr.startswith("error: cannot open database")
    assert "Traceback" not in done.stderr


def test_init_checks_rule_files_and_warns_about_missing_secrets(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    config.write_text(text, encoding="utf-8")
    env = {"TRIAGE_IMAP_PASSWORD": "", "TRIAGE_SMTP_PASSWORD": ""}
    done = run("--config", str(config), "init", env=env)
    assert done.exit_code == 0, done.stderr
    assert "rules: 11 rules loaded" in done.stdout
    assert "TRIAGE_IMAP_PASSWORD is not set" in done.stderr
    broken = tmp_path / "rules.toml"
    broken.write_text('[[rule]]\nname = "x"\nwhen = { field = "subjet", equals = "a" }\n')
    config.write_text(
        text.replace('rule_files = ["shipped:default.toml"]', 'rule_files = ["rules.toml"]'),
        encoding="utf-8",
    )
    done = run("--config", str(config), "init", env=env)
    assert done.exit_code == 2
    assert f"{broken}: rule 'x'" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_option_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    """`triage init --config FILE` (the issue's acceptance criterion) as well as before it."""
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    after = run("init", "--config", str(config), cwd=tmp_path)
    assert after.exit_code == 0, after.stderr
    assert f"config ok: {config}" in after.stdout
    before = run("--config", str(config), "init", cwd=tmp_path)
    assert before.exit_code == 0, before.stderr
    # nested commands and the outbox group take it after their name too
    for args in (
        ("rules", "check", "--config", str(config)),
        ("rules", "--config", str(config), "check"),
        ("outbox", "--config", str(config)),
        ("outbox", "retry", "--all-failed", "--config", str(config)),
        ("queue", "--config", str(config)),
    ):
        done = run(*args, cwd=tmp_path)
        assert done.exit_code == 0, (args, done.stderr)
        assert "No such option" not in done.stderr


def test_subcommand_config_wins_over_group_config_and_environment(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    shutil.copy(ROOT / "config.example.toml", good)
    missing = tmp_path / "missing.toml"
    done = run("--config", str(missing), "init", "--config", str(good))
    assert done.exit_code == 0, done.stderr
    assert f"config ok: {good}" in done.stdout
    done = run("init", "--config", str(good), env={"TRIAGE_CONFIG": str(missing)})
    assert done.exit_code == 0, done.stderr
    # the group option still beats the environment, and a wrong one is named
    done = run("--config", str(missing), "init", env={"TRIAGE_CONFIG": str(good)})
    assert done.exit_code == 2
    assert f"{missing}: config file not found" in done.stderr
    done = run("init", "--config", str(missing), env={"TRIAGE_CONFIG": str(good)})
    assert done.exit_code == 2
    assert f"{missing}: config file not found" in done.stderr


def _example_with(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    config = tmp_path / "triage.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_init_refuses_what_run_and_poll_would_refuse(tmp_path: Path) -> None:
    """A missing templates_dir or CA file is an error in init, not a surprise in `run`."""
    config = _example_with(
        tmp_path,
        ('templates_dir = ""', 'templates_dir = "nope"'),
        ('ca_file = ""', 'ca_file = "nope.pem"'),  # the first is [imap]'s
        ('ca_file = ""', 'ca_file = "bad.pem"'),  # then [smtp]'s
    )
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    done = run("init", "--config", str(config), cwd=tmp_path)
    assert done.exit_code == 2
    assert "Traceback" not in done.stderr
    assert "config ok" not in done.stdout
    lines = [line.removeprefix("error: ") for line in done.stderr.splitlines()]
    assert f"{config}: acknowledgments.templates_dir: {tmp_path / 'nope'} is not a directory" in (
        lines
    )
    assert f"{config}: imap.ca_file: {tmp_path / 'nope.pem'} does not exist" in lines
    assert any(line.startswith(f"{config}: smtp.ca_file: cannot load") for line in lines)
    assert not (tmp_path / "triage.db").exists()


def test_init_says_a_ca_file_that_is_a_directory_is_one(tmp_path: Path) -> None:
    config = _example_with(tmp_path, ('ca_file = ""', 'ca_file = "certs"'))
    (tmp_path / "certs").mkdir()
    done = run("init", "--config", str(config), cwd=tmp_path)
    assert done.exit_code == 2
    assert f"imap.ca_file: {tmp_path / 'certs'} is a directory, not a PEM file" in done.stderr


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            'from_address = "Example Office <inbox@example.com>"',
            'from_address = "not an address"',
            "smtp.from_address",
        ),
        ('addresses = ["owner@example.com"]', 'addresses = ["not-an-email"]', "owners.addresses"),
    ],
)
def test_init_refuses_addresses_that_are_not_mail_addresses(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    config = _example_with(tmp_path, (old, new))
    done = run("init", "--config", str(config), cwd=tmp_path)
    assert done.exit_code == 2
    assert f"{config}: {key}" in done.stderr
    assert "is not a mail address" in done.stderr
    assert "Traceback" not in done.stderr


def test_init_only_warns_about_an_unset_password_variable(tmp_path: Path) -> None:
    config = _example_with(tmp_path)
    env = {"TRIAGE_IMAP_PASSWORD": "", "TRIAGE_SMTP_PASSWORD": "", "TRIAGE_CONFIG": ""}
    done = run("init", "--config", str(config), cwd=tmp_path, env=env)
    assert done.exit_code == 0, done.stderr
    assert "config ok" in done.stdout
    warning = done.stderr.strip()
    assert warning.startswith("warning: imap.password_env: environment variable")
    assert "`triage run` and `triage poll` refuse to start" in warning
    assert "service's environment" in warning


def test_init_notes_that_no_owner_would_hear_of_escalations(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("[owners]")
    assert "addresses" in text[start:]
    lines = text[start:].splitlines()
    owners_line = next(line for line in lines if line.startswith("addresses"))
    config.write_text(text.replace(owners_line, "addresses = []"), encoding="utf-8")
    done = run("init", "--config", str(config))
    assert done.exit_code == 0, done.stderr
    assert "note: [owners] addresses is empty" in done.stdout
    shutil.copy(ROOT / "config.example.toml", config)
    assert "[owners] addresses is empty" not in run("init", "--config", str(config)).stdout


def test_the_command_table_names_each_command_and_its_module() -> None:
    # `triage` imports a command's module only when it runs; the table must be whole
    from triage.cli import main as cli_main  # noqa: PLC0415

    for module in cli_main.COMMAND_MODULES:
        __import__(f"triage.cli.{module}")
    defined = {
        name: (command.callback.__module__ if command.callback else "")
        for name, command in cli_main.cli.commands.items()
    }
    assert defined == {name: f"triage.cli.{m}" for name, m in cli_main.COMMANDS.items()}


READ_ONLY_COMMANDS = (["queue", "--json"], ["status"], ["outbox"], ["rules", "check"])
NOT_FOR_READING = ("sklearn", "triage.web", "starlette", "uvicorn", "imapclient", "aiosmtplib")
# nor the mail parser with icalendar (the ORM models import only triage.mail.parts),
# but for `rules check`, which compiles the rules that read parsed mail
NOT_PARSING = ("triage.mail.parse", "icalendar")


@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS, ids=" ".join)
def test_reading_commands_import_no_model_web_or_mail_client(
    tmp_path: Path, argv: list[str]
) -> None:
    # every command paid ~1 s of imports it never used (scikit-learn, the web page)
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    assert run("--config", str(config), "init").exit_code == 0
    done = subprocess.run(
        [sys.executable, "-X", "importtime", TRIAGE, "--config", str(config), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "triage.store" in imported  # the check itself sees imports
    avoid = NOT_FOR_READING + (NOT_PARSING if argv[0] != "rules" else ())
    unwanted = sorted(m for m in imported if any(m == u or m.startswith(f"{u}.") for u in avoid))
    assert unwanted == []


def test_help_lists_each_command_with_its_own_summary_without_importing_it() -> None:
    # `triage --help` lists the commands from SUMMARIES; it must print what click
    # prints from the commands themselves, at any width
    import click  # noqa: PLC0415

    from triage.cli import main as cli_main  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_CONFIG"}
    lazy = subprocess.run(
        [TRIAGE, "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    for module in cli_main.COMMAND_MODULES:
        __import__(f"triage.cli.{module}")
    assert set(cli_main.SUMMARIES) == set(cli_main.COMMANDS) == set(cli_main.cli.commands)
    for name, command in cli_main.cli.commands.items():
        assert command.short_help is None, name
        assert not command.hidden, name
        assert (command.help or "").split("\n\n")[0] == cli_main.SUMMARIES[name], name
    for width in (40, 80, 100):
        ctx = click.Context(cli_main.cli, info_name="triage", max_content_width=width)
        loaded = click.HelpFormatter(width=width)
        click.Group.format_commands(cli_main.cli, ctx, loaded)
        from_table = click.HelpFormatter(width=width)
        saved, cli_main.cli.commands = cli_main.cli.commands, {}
        try:
            cli_main.cli.format_commands(ctx, from_table)
        finally:
            cli_main.cli.commands = saved
        assert from_table.getvalue() == loaded.getvalue()
        assert "queue" in loaded.getvalue()
    # end to end: the same text as when every command module is imported first
    eager = subprocess.run(
        [sys.executable, "-c", EAGER_HELP],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "queue" in lazy
    assert lazy == eager


EAGER_HELP = """
import importlib, sys
from triage.cli.main import COMMAND_MODULES, main
for module in COMMAND_MODULES:
    importlib.import_module(f"triage.cli.{module}")
sys.exit(main(["--help"]))
"""


def test_help_imports_no_command_module_nor_sqlalchemy() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", TRIAGE, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "triage.cli.main" in imported  # the check itself sees imports
    heavy = ("sqlalchemy", "pydantic", "structlog", "triage.store", "triage.config")
    from triage.cli.main import COMMAND_MODULES  # noqa: PLC0415

    commands = tuple(f"triage.cli.{m}" for m in ("context", *COMMAND_MODULES))
    unwanted = sorted(
        m for m in imported if any(m == u or m.startswith(f"{u}.") for u in heavy + commands)
    )
    assert unwanted == []


def test_a_database_error_is_still_recognised_without_a_top_level_sqlalchemy_import() -> None:
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from triage.cli.main import _is_database_error  # noqa: PLC0415

    assert _is_database_error(OperationalError("SELECT 1", {}, Exception("disk I/O error")))
    assert not _is_database_error(ValueError("not a database error"))
