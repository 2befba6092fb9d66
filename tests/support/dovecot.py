"""A real Dovecot IMAP server on loopback, with a throwaway config, users and Maildirs.

Follows ../shared/MAILSERVERS.md: runs as root (login processes as ``dovenull``,
mail as ``dovecot``) or as an ordinary user. Users can be added while it runs;
Dovecot re-reads the passwd-file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from support.ports import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
BINARIES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dovecot-binaries"


def missing_binaries() -> list[str]:
    """The Dovecot programs the tests need that are not installed (``scripts/dovecot-binaries``:
    dovecot, doveadm, and the imap and imap-login services of dovecot-imapd)."""
    done = subprocess.run(
        [str(BINARIES_SCRIPT)], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.split() if done.returncode else []


@dataclass(frozen=True)
class ImapAccount:
    """Where and how to log in to one test mailbox."""

    host: str
    port: int
    tls_port: int
    username: str
    password: str
    cafile: str


class Dovecot:
    """One Dovecot instance. ``start()`` waits for the IMAP greeting; ``stop()`` for exit."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-test."))  # not tmp_path: 0700 parents
        self.port = free_port()
        self.tls_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.root = os.geteuid() == 0
        self._users: dict[str, str] = {}
        self._make_cert()
        self._write_config()
        self._pool = [f"pool-{i:03d}-{uuid.uuid4().hex[:6]}@example.test" for i in range(300)]
        for pooled in self._pool:
            self._write_user(pooled, uuid.uuid4().hex)

    @property
    def cafile(self) -> str:
        return str(self.dir / "tls" / "cert.pem")

    def _make_cert(self) -> None:
        tls = self.dir / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("mail", "run", "state"):
            (d / sub).mkdir(exist_ok=True)
        (d / "users").write_text("")
        if self.root:
            login_user, login_chroot, mail_user, mail_group = (
                "dovenull",
                "login",
                "dovecot",
                "dovecot",
            )
            d.chmod(0o755)
            shutil.chown(d / "mail", "dovecot", "dovecot")
            user = group = "root"
        else:
            import grp  # noqa: PLC0415
            import pwd  # noqa: PLC0415

            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            login_user, login_chroot, mail_user, mail_group = user, "", user, group
        (d / "dovecot.conf").write_text(
            f"""
base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-test-{self.port}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{d}/mail/%u/Maildir
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = home={d}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
protocol imap {{
  imap_idle_notify_interval = 2 mins
}}
service imap-login {{
  chroot = {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait for a real ``* OK`` greeting."""
        with (self.dir / "dovecot.stderr").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")],
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        log = ""
        for name in ("dovecot.stderr", "dovecot.log"):
            p = self.dir / name
            if p.exists():
                log += p.read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"dovecot did not start:\n{log}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the master and wait until it (and its listeners) are gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop, then start again on the same ports."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete every file of this instance."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write_user(self, name: str, password: str) -> None:
        with (self.dir / "users").open("a") as f:
            f.write(f"{name}:{{PLAIN}}{password}::::::\n")
        self._users[name] = password

    def add_user(self, name: str | None = None, password: str | None = None) -> ImapAccount:
        """A fresh mailbox user, usable at once.

        Unnamed users come from a pool written before the server started: Dovecot
        notices changes to its passwd-file only about once a second, so a user
        added while it runs may be refused for a moment (then we wait for it).
        """
        if name is None and password is None and self._pool:
            return self.account(self._pool.pop())
        name = name or f"user-{uuid.uuid4().hex[:10]}@example.test"
        password = password or uuid.uuid4().hex
        self._write_user(name, password)
        account = self.account(name)
        if self.proc is not None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.client(account).logout()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        return account

    def account(self, name: str) -> ImapAccount:
        return ImapAccount(
            host="127.0.0.1",
            port=self.port,
            tls_port=self.tls_port,
            username=name,
            password=self._users[name],
            cafile=self.cafile,
        )

    def client(self, account: ImapAccount) -> IMAPClient:
        """A logged-in plain-text IMAP client (loopback) for setting up tests."""
        c = IMAPClient(account.host, port=account.port, ssl=False, timeout=30)
        try:
            if account.password.isascii():
                c.login(account.username, account.password)
            else:  # LOGIN is ASCII-only in imaplib; PLAIN carries UTF-8
                c.plain_login(account.username, account.password)
        except BaseException:
            c.shutdown()
            raise
        return c

    def append(
        self, account: ImapAccount, raw: bytes, folder: str = "INBOX", msg_time: object = None
    ) -> int:
        """APPEND ``raw`` to ``folder`` (created when missing); return the new UID."""
        c = self.client(account)
        try:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            reply = c.append(folder, raw, flags=(), msg_time=msg_time)
        finally:
            c.logout()
        # the reply is: [APPENDUID <uidvalidity> <uid>] Append completed
        return int(reply.split(b"]")[0].split()[-1])

    def doveadm(self, *args: str) -> str:
        """Run doveadm against this instance; return stdout."""
        done = subprocess.run(
            [DOVEADM, "-c", str(self.dir / "dovecot.conf"), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def set_uidvalidity(self, account: ImapAccount, folder: str, value: int) -> None:
        """Change a folder's UIDVALIDITY (as a mailbox migration would)."""
        self.doveadm(
            "mailbox", "update", "-u", account.username, "--uid-validity", str(value), folder
        )


def tls_client_context(cafile: str) -> ssl.SSLContext:
    """A verifying client TLS context that trusts the test CA."""
    return ssl.create_default_context(cafile=cafile)
