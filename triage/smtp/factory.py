"""Choosing the sender that ``[smtp]`` describes."""

from __future__ import annotations

from triage.config import Settings
from triage.errors import ConfigError
from triage.oauth2 import token_getter
from triage.secrets import read_secret
from triage.smtp.base import Sender
from triage.smtp.folder import FolderSender
from triage.smtp.sender import SmtpSender

__all__ = ["make_sender"]


def make_sender(settings: Settings) -> Sender:
    """The sender for ``settings.smtp``: FolderSender (mode = "folder") or SmtpSender.

    Paths (``folder``, ``ca_file``, ``password_file``) are resolved against the
    config file's directory. The password itself is read at each connection.

    Raises:
        ConfigError: there is no ``[smtp]`` section, or ``username`` is set without
            ``password_env``/``password_file``.
    """
    smtp = settings.smtp
    if smtp is None:
        raise ConfigError("no [smtp] section: outgoing mail cannot be sent")
    if smtp.mode == "folder":
        return FolderSender(settings.resolve(smtp.folder))
    password = None
    token = None
    if smtp.auth == "xoauth2":
        token = token_getter(settings, smtp.username)
        if token is None:
            raise ConfigError("smtp.auth: 'xoauth2' needs an [oauth2] section")
    elif smtp.username:
        if not (smtp.password_env or smtp.password_file):
            raise ConfigError("smtp.username is set: give smtp.password_env or smtp.password_file")
        env = smtp.password_env
        file = settings.resolve(smtp.password_file) if smtp.password_file else ""

        def password() -> str:
            return read_secret("smtp", env=env, file=file)

    return SmtpSender(
        smtp.host,
        smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=password,
        ca_file=str(settings.resolve(smtp.ca_file)) if smtp.ca_file else "",
        tls_verify=smtp.tls_verify,
        timeout=smtp.timeout,
        auth=smtp.auth,
        token=token,
    )
