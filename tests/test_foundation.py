"""Cross-cutting foundations: the error tree, log redaction, the import boundaries."""

from __future__ import annotations

import ast
import dataclasses
import imaplib
import io
import json
import ssl
from pathlib import Path

import pytest
import structlog

from triage import errors
from triage.imap.connect import as_mailbox_error
from triage.logs import configure_logging

ROOT = Path(__file__).resolve().parents[1]

# What the pure packages may never import (DESIGN.md: no I/O inside rules/ and classifiers/).
FORBIDDEN_IN_PURE = {
    "imapclient",
    "aiosmtplib",
    "sqlalchemy",
    "alembic",
    "structlog",
    "smtplib",
    "imaplib",
    "socket",
    "triage.store",
    "triage.imap",
    "triage.smtp",
    "triage.services",
    "triage.cli",
    "triage.daemon",
}


def test_every_error_derives_from_triage_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, BaseException):
            assert issubclass(cls, errors.TriageError), name
        else:  # a value an error carries (ConflictError's Change), not an error
            assert dataclasses.is_dataclass(cls), name


def test_retryable_errors_are_connection_errors() -> None:
    assert issubclass(errors.MailboxConnectionError, ConnectionError)
    assert issubclass(errors.TemporarySendError, ConnectionError)
    assert issubclass(errors.OAuth2UnreachableError, ConnectionError)
    assert issubclass(errors.ConfigError, errors.UserError)


def test_errors_retrying_will_not_cure_are_not_connection_errors() -> None:
    """Issue 14: a 5xx and a refused login inherited ConnectionError, so retry code that
    catches it broadly would have retried them. Only retryable errors mix it in; the
    bases do not either (their plain instances are not known to be retryable)."""
    not_retryable = [
        errors.PermanentSendError,
        errors.MailboxAuthError,
        errors.SignInRequiredError,
        errors.SendError,
        errors.MailboxError,
        errors.OAuth2Error,
    ]
    for cls in not_retryable:
        assert not issubclass(cls, OSError), cls.__name__  # ConnectionError is an OSError
    with pytest.raises(errors.PermanentSendError):
        try:
            raise errors.PermanentSendError("550 no such user", code=550)
        except ConnectionError:  # a retry loop's catch must let it through
            pytest.fail("a permanent SMTP failure was caught as a connection error")
    # Every class in the module that mixes in ConnectionError is a retryable one.
    retryable = {"MailboxConnectionError", "TemporarySendError", "OAuth2UnreachableError"}
    mixed = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), ConnectionError)
    }
    assert mixed == retryable


def test_imap_failures_are_retryable_only_when_the_connection_failed() -> None:
    assert isinstance(as_mailbox_error(TimeoutError(), "fetching"), ConnectionError)
    assert isinstance(as_mailbox_error(ConnectionResetError(), "fetching"), ConnectionError)
    assert isinstance(as_mailbox_error(EOFError(), "fetching"), ConnectionError)
    refused = as_mailbox_error(imaplib.IMAP4.error("NO [AUTHENTICATIONFAILED]"), "login")
    assert isinstance(refused, errors.MailboxError)
    assert not isinstance(refused, ConnectionError)
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate"
    assert not isinstance(as_mailbox_error(untrusted, "tls"), ConnectionError)


def test_logs_are_json_when_not_a_tty_and_secrets_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("auto", "info", stream=out)
    structlog.get_logger().info("imap_connected", host="h", password="hunter2", api_token="t0k")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "imap_connected"
    assert line["host"] == "h"
    assert line["password"] == "[redacted]"
    assert line["api_token"] == "[redacted]"
    assert "hunter2" not in out.getvalue()


def test_console_format_on_request() -> None:
    out = io.StringIO()
    configure_logging("console", "info", stream=out)
    structlog.get_logger().info("ack_sent", ticket=1042)
    assert "ack_sent" in out.getvalue()
    assert "ticket=1042" in out.getvalue()
    assert not out.getvalue().lstrip().startswith("{")


def test_debug_is_filtered_at_info() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.get_logger().debug("noisy")
    assert out.getvalue() == ""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["rules", "classifiers", "triage/handling"])
def test_pure_packages_do_no_io(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, f"{package}/ has no Python files"
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PURE)
    ]
    assert offenders == []


def test_domain_types_use_only_the_standard_library() -> None:
    allowed_prefixes = ("__future__", "dataclasses", "datetime", "enum", "typing")
    names = _imports(ROOT / "triage" / "domain.py")
    assert all(n.startswith(allowed_prefixes) for n in names), names
