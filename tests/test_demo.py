"""`triage demo` as a new user runs it: no server, a fresh folder.

In-process through :func:`support.cli.run_triage` (click's CliRunner).
"""

from __future__ import annotations

import json
import re
from email import message_from_bytes, policy
from pathlib import Path

from click.testing import Result
from support.cli import run_triage


def run(*args: str, cwd: Path) -> Result:
    return run_triage(*args, cwd=cwd)


def test_demo_runs_the_main_job_and_prints_the_queue(tmp_path: Path) -> None:
    done = run("demo", cwd=tmp_path)
    assert done.exit_code == 0, done.stderr
    out = done.stdout
    work = tmp_path / "triage-demo"
    assert (work / "triage.db").exists()
    assert "The prioritized queue" in out
    # the summary names how each ticket was routed and why acknowledgments were not sent
    routed = re.search(r"routed: (\d+) by rule, (\d+) by model, (\d+) by fallback", out)
    assert routed, out
    by_rule, by_model, by_fallback = (int(g) for g in routed.groups())
    assert by_rule > 0
    assert by_model > 0
    assert by_fallback > 0
    acks = int(re.search(r"acknowledgments: (\d+) written", out).group(1))  # type: ignore[union-attr]
    for reason in ("auto reply", "follow up", "mailing list", "no reply sender"):
        assert reason in out
    assert "opened none (bounce)" in out
    # acknowledgments really are .eml files, one per ack, threaded to the client's mail
    written = sorted((work / "outbox").glob("*.eml"))
    ack_files = [p for p in written if "-ack." in p.name]
    assert len(ack_files) == acks
    for path in ack_files:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["In-Reply-To"]
        assert re.match(r"Re: \[#\d+\]", str(msg["Subject"]))
    # the Hungarian legacy-charset mail decoded right and was acknowledged in Hungarian
    hungarian = [
        m
        for m in (message_from_bytes(p.read_bytes(), policy=policy.default) for p in ack_files)
        if "Kovács Ödön" in str(m["To"])
    ]
    assert len(hungarian) == 1
    assert "Köszönjük" in hungarian[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # escalations went to the owner only
    for path in written:
        if "-escalation." in path.name:
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert str(msg["To"]).endswith("owner@example.com>") or str(msg["To"]) == (
                "owner@example.com"
            )


def test_demo_database_answers_the_other_commands(tmp_path: Path) -> None:
    assert run("demo", "--dir", "d", cwd=tmp_path).exit_code == 0
    config = str(tmp_path / "d" / "triage.toml")
    listing = run("--config", config, "queue", "--json", cwd=tmp_path)
    assert listing.exit_code == 0, listing.stderr
    tickets = json.loads(listing.stdout)
    assert {"ref", "queue", "priority", "status", "subject", "from", "assignee", "received_at",
            "due_at", "breached", "decided_by"} <= set(tickets[0])  # fmt: skip
    assert {t["decided_by"] for t in tickets} == {"rule", "model", "fallback"}
    legal = [t for t in tickets if "legal action" in t["subject"]]
    assert legal[0]["priority"] == "urgent"
    shown = run("--config", config, "show", str(legal[0]["ref"]), cwd=tmp_path)
    assert shown.exit_code == 0
    assert "rule 'legal-threat'" in shown.stdout
    # replaying the configured rules over the mail they routed changes nothing
    replay = run("--config", config, "rules", "test", cwd=tmp_path)
    assert replay.exit_code == 0, replay.stderr
    assert ": 0 would change" in replay.stdout
    # running the demo again starts afresh (no duplicate tickets)
    assert run("demo", "--dir", "d", cwd=tmp_path).exit_code == 0
    again = json.loads(run("--config", config, "queue", "--json", cwd=tmp_path).stdout)
    assert len(again) == len(tickets)


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "real"
    mine.mkdir()
    (mine / "triage.db").write_bytes(b"my tickets")
    done = run("demo", "--dir", "real", cwd=tmp_path)
    assert done.exit_code == 2
    assert "is not a triage demo folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert (mine / "triage.db").read_bytes() == b"my tickets"


def test_demo_in_an_impossible_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    done = run("demo", "--dir", "afile/sub", cwd=tmp_path)
    assert done.exit_code == 2
    assert done.stderr.startswith("error: cannot use afile/sub for the demo")
    assert "Traceback" not in done.stderr
