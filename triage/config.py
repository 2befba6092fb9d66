"""Configuration: one TOML file validated at start-up into frozen, typed settings.

Each TOML table maps one-to-one to a settings class below. Unknown keys, wrong
types and missing required values are refused with :class:`~triage.errors.ConfigError`
naming the file and the dotted key. Secrets are never in the file: a section names
the environment variable (``password_env``) or the file (``password_file``) that
holds them, read by :mod:`triage.secrets` when the connection is made.

Relative paths in the file (database file, rule files, folders, CA files, secret
files) are relative to the directory of the config file.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
import tomllib
from datetime import date, time
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Group, HeaderRegistry
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from triage.domain import PRIORITIES, Priority
from triage.durations import BusinessDuration, parse_business_duration, parse_seconds
from triage.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "MAX_NESTING",
    "SAVED_REPLY_VARIABLES",
    "AcknowledgmentSettings",
    "CalendarSettings",
    "ClassifierSettings",
    "DatabaseSettings",
    "ImapSettings",
    "LoggingSettings",
    "MonitoringSettings",
    "OAuth2Settings",
    "OwnerSettings",
    "QueueSettings",
    "RoutingSettings",
    "SavedReply",
    "Settings",
    "SlaTarget",
    "SmtpSettings",
    "TeamSettings",
    "WebSettings",
    "find_config_path",
    "load_config",
    "parse_config",
    "too_deep",
]

CONFIG_ENV = "TRIAGE_CONFIG"

_SECRET_KEYS = {
    "password",
    "secret",
    "token",
    "access_token",
    "api_key",
    "oauth2_token",
    "client_secret",
    "refresh_token",
}


MAX_SECONDS = 366 * 86400.0
"""Longest wall-clock duration in the config (a year): longer ones are typos, and
they overflow timers and date arithmetic."""

MAX_BUSINESS_DAYS = 365
"""Most working days an SLA target may have."""

MAX_BUSINESS_SECONDS = 365 * 24 * 3600
"""Most working time (hours, minutes) an SLA target may have on top of its days.

The calendar's own limit is tighter: :meth:`Settings` refuses a target needing more
working time than one year of ``[calendar.hours]`` holds (deadlines are computed
within a few years)."""


def _seconds(value: Any) -> float:
    seconds = parse_seconds(value)
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{value!r} is longer than a year")
    return seconds


def _business(value: Any) -> BusinessDuration:
    if isinstance(value, BusinessDuration):
        duration = value
    elif not isinstance(value, str):
        raise ValueError("write a duration as a string, e.g. '4h' or '2d'")  # noqa: TRY004 - pydantic reports ValueError
    else:
        duration = parse_business_duration(value)
    if duration.days > MAX_BUSINESS_DAYS:
        raise ValueError(
            f"{duration} is more than {MAX_BUSINESS_DAYS} working days; an SLA target is at"
            " most a year (use no_sla = true for a queue without deadlines)"
        )
    if duration.seconds > MAX_BUSINESS_SECONDS:
        raise ValueError(
            f"{duration} is more than {MAX_BUSINESS_SECONDS // 3600} hours of working time;"
            " an SLA target is at most a year (write working days, e.g. '5d')"
        )
    return duration


_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
"""A plain ``local@domain`` as the outbox accepts it (triage.outbox.headers.valid_address)."""


def _mailbox(value: str) -> str:
    """Check one mailbox, ``"Name <local@domain>"`` or ``local@domain`` (RFC 5322 section 3.4).

    Parsed with :mod:`email.headerregistry`; refused when it has parse defects, is not
    exactly one address (a list, a group), or its addr-spec is not a plain
    ``local@domain`` the outbox can put in a header and in RCPT TO. A display name
    with a period (``Iroda Kft. <iroda@example.hu>``) is RFC 5322 section 4.1's
    obsolete phrase: accepted (the outbox writes the name quoted).
    """
    problem = (
        f"{value!r} is not a mail address (write 'name@example.com' or 'Name <name@example.com>')"
    )
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > 400:
        raise ValueError(problem)
    try:
        header = HeaderRegistry()("To", value)
        defects = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
        groups: list[Group] = list(getattr(header, "groups", ()))  # an AddressHeader
    except Exception:  # noqa: BLE001 - the email parser raises assorted errors on odd input
        raise ValueError(problem) from None
    if defects or len(groups) != 1 or groups[0].display_name is not None:
        raise ValueError(problem)
    addresses = groups[0].addresses
    if len(addresses) != 1 or not _ADDR_SPEC.fullmatch(addresses[0].addr_spec):
        raise ValueError(problem)
    return value


def _network(value: str) -> str:
    """Check an IP address or network (``10.0.0.5``, ``10.0.0.0/8``, ``::1``)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an address or network such as '10.0.0.5' or '10.0.0.0/8'"
        ) from None
    return value


Network = Annotated[str, AfterValidator(_network)]
"""An IP address or network in CIDR form."""

Mailbox = Annotated[str, AfterValidator(_mailbox)]
"""A mail address with an optional display name: ``"Office <office@example.com>"``."""

Seconds = Annotated[float, BeforeValidator(_seconds)]
"""A wall-clock duration in seconds; config accepts a number or a string like '5m'."""

Business = Annotated[BusinessDuration, BeforeValidator(_business)]
"""A business-time duration; config accepts '4h', '30m', '2d', '1d4h'."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DatabaseSettings(_Section):
    """``[database]``: where tickets live.

    ``url`` is an SQLAlchemy URL: ``sqlite:///triage.db`` (a file relative to the
    config file's directory; WAL mode and foreign keys are switched on) or
    ``postgresql+psycopg://user@host/db`` for several workers. A password in the
    URL is refused; use ``password_env``.
    """

    url: str = "sqlite:///triage.db"
    password_env: str = ""
    password_file: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if re.match(r"^[a-z+]+://[^/@]*:[^/@]+@", value):
            raise ValueError(
                "contains a password; put it in an environment variable named by"
                " database.password_env instead"
            )
        return value


class _Tls(_Section):
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: str = ""
    tls_verify: StrictBool = True
    """Certificate verification. Turning it off is logged as a warning at every connection."""


class _Login(_Section):
    username: str = ""
    password_env: str = ""
    password_file: str = ""

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self


_ACCOUNT_OWN = frozenset(
    {
        "name",
        "username",
        "password_env",
        "password_file",
        "auth",
        "oauth2_token_file",
        "oauth2_token_command",
        "folders",
        "sent_folder",
        "accounts",
    }
)
"""Keys an ``[[imap.accounts]]`` entry does not take over from ``[imap]``."""


class ImapSettings(_Tls, _Login):
    """``[imap]``: the shared inbox that triage watches, and optionally more mailboxes.

    ``accounts`` (``[[imap.accounts]]``) adds mailboxes with their own login and
    folders; a configuration without it watches the ``[imap]`` account alone.
    """

    host: str
    port: StrictInt = Field(default=993, ge=1, le=65535)
    auth: Literal["password", "xoauth2"] = "password"
    oauth2_token_file: str = ""
    """File holding an OAuth2 access token (XOAUTH2, for Gmail and Microsoft 365)."""
    oauth2_token_command: str = ""
    """Command printing a fresh OAuth2 access token on stdout (run at each login)."""
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    sent_folder: str = ""
    """A Sent folder watched for the team's replies (stops the first-response clock)."""
    idle: StrictBool = True
    idle_renew: Seconds = 25 * 60
    """IDLE is re-issued after this many seconds (RFC 2177 asks for < 29 minutes)."""
    poll_interval: Seconds = 60.0
    """Seconds between polls when the server lacks IDLE or idle = false."""
    fallback_poll: Seconds = 300.0
    """A UID SEARCH runs at least this often even while IDLE reports nothing."""
    keepalive: Seconds = 20.0
    """A connection the server has said nothing on for this long is checked with a
    round trip (DONE while idling, NOOP while polling) that must answer within
    ``timeout``: a link dropped without FIN or RST is found within about
    keepalive + timeout seconds. Also the TCP keepalive idle time."""
    missing_attempts: int = Field(default=5, ge=1, le=100)
    """Passes in which a UID the server lists may be left out of its FETCH answers
    before a placeholder is stored for it (the mail is never skipped silently)."""
    missing_retry: Seconds = 30.0
    """Seconds before such a UID is fetched again; doubles with each attempt."""
    batch_size: int = Field(default=200, ge=1, le=5000)
    batch_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    """Bytes fetched per round trip at most (a single larger message is fetched alone)."""
    timeout: Seconds = 30.0
    reconnect_initial: Seconds = 1.0
    """First delay before reconnecting after a failure; doubles per attempt (with jitter)."""
    reconnect_max: Seconds = 300.0
    """Longest delay between two reconnect attempts."""
    after_ingest: Literal["keep", "keyword", "move"] = "keep"
    keyword: str = "$Triaged"
    move_to: str = ""
    max_message_size: int = Field(default=25 * 1024 * 1024, ge=1024)
    """Bytes; larger messages are stored but parsed only up to this size."""
    accounts: list[ImapAccountSettings] = Field(default_factory=list)
    """More mailboxes (``[[imap.accounts]]``), each with its own login and folders."""
    _key: str = PrivateAttr(default="imap")

    @property
    def key(self) -> str:
        """This mailbox's config section for messages: ``imap``, or ``imap.accounts.N``
        for the N-th ``[[imap.accounts]]`` entry (0-based, as validation errors name it)."""
        return self._key

    @field_validator("idle_renew")
    @classmethod
    def _idle_renew(cls, value: float) -> float:
        if value >= 29 * 60:
            raise ValueError("must be under 29 minutes (RFC 2177 section 3)")
        return value

    @model_validator(mode="after")
    def _auth(self) -> Self:
        if self.auth == "password" and not (self.password_env or self.password_file):
            raise ValueError("auth = 'password' needs password_env or password_file")
        if self.oauth2_token_file and self.oauth2_token_command:
            raise ValueError("give oauth2_token_file or oauth2_token_command, not both")
        if not self.username:
            raise ValueError("username is required")
        if self.after_ingest == "move" and not self.move_to:
            raise ValueError("after_ingest = 'move' needs move_to")
        if self.timeout <= 0:
            raise ValueError("timeout must be more than 0 seconds")
        if self.keepalive <= 0:
            raise ValueError("keepalive must be more than 0 seconds")
        if self.reconnect_initial <= 0 or self.reconnect_max < self.reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        return self

    @model_validator(mode="before")
    @classmethod
    def _accounts_inherit(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
            return data
        shared = {k: v for k, v in data.items() if k not in _ACCOUNT_OWN}
        accounts = [{**shared, **a} if isinstance(a, dict) else a for a in data["accounts"]]
        return {**data, "accounts": accounts}

    @model_validator(mode="after")
    def _account_names(self) -> Self:
        seen: set[str] = set()
        for i, account in enumerate(self.accounts):
            account._key = f"imap.accounts.{i}"  # noqa: SLF001 - set by its parent
            if account.name in seen:
                raise ValueError(f"accounts: the name {account.name!r} is used twice")
            seen.add(account.name)
        return self

    def mailboxes(self) -> list[tuple[str, ImapSettings]]:
        """Every account to watch as ``(name, settings)``: ``[imap]`` first, named ""."""
        return [("", self), *((a.name, a) for a in self.accounts)]

    def folder_keys(self) -> list[str]:
        """The ``folders.name`` of every watched folder: ``INBOX`` for ``[imap]``'s,
        ``sales:INBOX`` for the account named ``sales``; Sent folders included."""
        keys: list[str] = []
        for name, mailbox in self.mailboxes():
            prefix = f"{name}:" if name else ""
            folders = [*mailbox.folders, *filter(None, [mailbox.sent_folder])]
            keys.extend(prefix + f for f in dict.fromkeys(folders))
        return keys


class ImapAccountSettings(ImapSettings):
    """One more mailbox, ``[[imap.accounts]]``: its own login and folders.

    Keys it leaves out that are not about the login or the folders (host, port,
    security, ca_file, timing, batch sizes, after_ingest, ...) are taken from
    ``[imap]``, so a second mailbox on the same server needs only ``name``,
    ``username``, a password source and ``folders``. Its folders are stored as
    ``name:FOLDER`` (``sales:INBOX``) beside the ``[imap]`` account's own.
    """

    name: str

    @model_validator(mode="after")
    def _no_nesting(self) -> Self:
        if self.accounts:
            raise ValueError("an account cannot have accounts of its own")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", value):
            raise ValueError(
                f"{value!r}: use 1-40 lowercase letters, digits, - and _ (it prefixes the"
                " account's folder names)"
            )
        return value


ImapSettings.model_rebuild()


class SmtpSettings(_Tls, _Login):
    """``[smtp]``: how acknowledgments and escalations leave.

    ``mode = "folder"`` writes each outgoing mail as an .eml file into ``folder``
    instead of sending it (dry run; used by ``triage demo``).
    """

    mode: Literal["send", "folder"] = "send"
    host: str = ""
    port: StrictInt = Field(default=587, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "starttls"
    auth: Literal["password", "xoauth2"] = "password"
    """``password``: AUTH PLAIN/LOGIN with password_env/password_file (when username is
    set); ``xoauth2``: SASL XOAUTH2 with a token from the ``[oauth2]`` sign-in."""
    from_address: Mailbox
    folder: str = "outbox"
    timeout: Seconds = 30.0
    max_attempts: int = Field(default=12, ge=1)
    retry_initial: Seconds = 30.0
    retry_max: Seconds = 3600.0
    journal: str = ""
    """The send journal (mail the server accepted, kept until the database has it):
    "" puts it beside an SQLite database file, else in ``$STATE_DIRECTORY`` (systemd)
    or the config file's directory. It must be on a local disk the daemon can write."""

    @model_validator(mode="after")
    def _host(self) -> Self:
        if self.mode == "send" and not self.host:
            raise ValueError("mode = 'send' needs host")
        if self.auth == "xoauth2" and not self.username:
            raise ValueError("auth = 'xoauth2' needs username (the mailbox to send as)")
        if self.auth == "xoauth2" and (self.password_env or self.password_file):
            raise ValueError("auth = 'xoauth2' takes no password_env or password_file")
        return self


OAuth2Provider = Literal["microsoft", "google"]
OAuth2Flow = Literal["device_code", "client_credentials", "installed", "service_account"]

_FLOWS: dict[str, tuple[str, ...]] = {
    "microsoft": ("device_code", "client_credentials"),
    "google": ("installed", "service_account"),
}


class OAuth2Settings(_Section):
    """``[oauth2]``: signing in to Microsoft 365 or Google for XOAUTH2 (``imap.auth`` /
    ``smtp.auth = "xoauth2"``), done once with ``triage auth login``.

    Flows (``flow``, default the first of each provider):

    - ``microsoft``: ``device_code`` (a person signs in once on any device; the
      daemon then refreshes silently from ``token_cache``) or
      ``client_credentials`` (app-only; the app's secret from ``client_secret_env``
      or ``client_secret_file``).
    - ``google``: ``installed`` (the installed-app loopback flow with PKCE, a
      browser on this machine or through ``ssh -L``; needs ``client_secrets_file``,
      the OAuth client JSON from the Google Cloud console) or ``service_account``
      (Workspace domain-wide delegation; ``service_account_file`` is the key JSON).

    Secrets (client secret, refresh token, key) are never in this file: they are
    in the files and variables named here, and ``token_cache`` is written with
    mode 0600.
    """

    provider: OAuth2Provider
    flow: OAuth2Flow | None = None
    client_id: str = ""
    """Microsoft: the application (client) id of the app registration."""
    tenant: str = "organizations"
    """Microsoft: the tenant id or domain (``contoso.onmicrosoft.com``); ``organizations``
    lets any work account sign in (device code flow only)."""
    authority: str = ""
    """Microsoft: the sign-in authority URL; "" is ``https://login.microsoftonline.com/<tenant>``
    (set it for a national cloud, e.g. ``https://login.microsoftonline.us/<tenant>``)."""
    client_secret_env: str = ""
    client_secret_file: str = ""
    client_secrets_file: str = ""
    """Google ``installed``: the OAuth client JSON downloaded from the Google Cloud console."""
    service_account_file: str = ""
    """Google ``service_account``: the service account's key JSON."""
    token_cache: str = "oauth2-token.json"  # noqa: S105 - a file name, not a secret
    """Where the sign-in is kept (refresh token; written with mode 0600)."""
    scopes: list[str] = Field(default_factory=list)
    """Override of the scopes asked for; [] for the provider's IMAP and SMTP scopes."""
    timeout: Seconds = 30.0
    """Network timeout of one request to the token endpoint."""

    @property
    def effective_flow(self) -> str:
        """``flow``, or the provider's default (device_code for microsoft, installed for google)."""
        return self.flow or _FLOWS[self.provider][0]

    @model_validator(mode="after")
    def _flow(self) -> Self:
        flow = self.effective_flow
        if flow not in _FLOWS[self.provider]:
            raise ValueError(
                f"flow {flow!r} is not a {self.provider} flow (use"
                f" {' or '.join(repr(f) for f in _FLOWS[self.provider])})"
            )
        if self.client_secret_env and self.client_secret_file:
            raise ValueError("give client_secret_env or client_secret_file, not both")
        if self.provider == "microsoft":
            if not self.client_id:
                raise ValueError("provider 'microsoft' needs client_id (the app registration's)")
            if self.authority and not self.authority.startswith("https://"):
                raise ValueError("authority must be an https:// URL")
        if flow == "client_credentials":
            if not (self.client_secret_env or self.client_secret_file):
                raise ValueError(
                    "flow 'client_credentials' needs client_secret_env or client_secret_file"
                )
            if self.tenant.lower() in {"organizations", "common", "consumers"}:
                raise ValueError(
                    "flow 'client_credentials' needs tenant set to your tenant id or domain"
                )
        if flow == "installed" and not self.client_secrets_file:
            raise ValueError("flow 'installed' needs client_secrets_file (the OAuth client JSON)")
        if flow == "service_account" and not self.service_account_file:
            raise ValueError("flow 'service_account' needs service_account_file (the key JSON)")
        if self.timeout <= 0:
            raise ValueError("timeout must be more than 0 seconds")
        return self


class MonitoringSettings(_Section):
    """``[monitoring]``: Prometheus metrics, the health check and the systemd watchdog.

    ``triage run`` serves ``/metrics`` and ``/health`` on ``host:port`` (the web
    page serves them too when it is on). ``stall_timeout`` is how long the
    intake, dispatch or SLA loop may go without progress before the daemon stops
    sending ``WATCHDOG=1`` to systemd (which then restarts it).
    """

    enabled: StrictBool = True
    host: str = "127.0.0.1"
    """Address of the metrics/health listener; keep it on loopback (no authentication)."""
    port: StrictInt = Field(default=9479, ge=0, le=65535)
    """0 picks a free port (logged as ``monitoring_listening``)."""
    stall_timeout: Seconds = 300.0

    @field_validator("stall_timeout")
    @classmethod
    def _stall(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1 second")
        return value


class BusinessHours(_Section):
    """``[calendar.hours]``: working intervals per weekday; a day left out is closed."""

    mon: list[str] = Field(default_factory=list)
    tue: list[str] = Field(default_factory=list)
    wed: list[str] = Field(default_factory=list)
    thu: list[str] = Field(default_factory=list)
    fri: list[str] = Field(default_factory=list)
    sat: list[str] = Field(default_factory=list)
    sun: list[str] = Field(default_factory=list)

    @field_validator("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    @classmethod
    def _intervals(cls, value: list[str]) -> list[str]:
        previous_end: time | None = None
        for text in value:
            start, end = parse_interval(text)
            if previous_end is not None and start < previous_end:
                raise ValueError(f"{text!r} overlaps or is out of order")
            previous_end = end
        return value

    def as_weekly(self) -> tuple[tuple[tuple[time, time], ...], ...]:
        """Working intervals as 7 tuples (Monday first) of (start, end) local times."""
        days = (self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun)
        return tuple(tuple(parse_interval(t) for t in day) for day in days)


def parse_interval(text: str) -> tuple[time, time]:
    """Parse ``"08:00-12:00"`` into (start, end); ``"24:00"`` is allowed as an end.

    Raises ValueError when malformed or when the end is not after the start.
    """
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an interval like '08:00-12:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} has an impossible time")
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


def _seconds_of_day(moment: time) -> int:
    """Seconds since midnight; ``time.max`` (an interval ending at 24:00) counts as 86400."""
    if moment == time.max:
        return 86400
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _default_hours() -> BusinessHours:
    day = ["09:00-17:00"]
    return BusinessHours(mon=day, tue=day, wed=day, thu=day, fri=day)


class CalendarSettings(_Section):
    """``[calendar]``: the business's working time, in its own time zone."""

    timezone: str = "UTC"
    holidays: str = ""
    """Country code for the ``holidays`` package (``"HU"``); ``""`` for none."""
    subdivision: str = ""
    hours: BusinessHours = Field(default_factory=_default_hours)
    closed_dates: list[date] = Field(default_factory=list)
    """Extra closed days (company holidays)."""
    open_dates: list[date] = Field(default_factory=list)
    """Extra working days (e.g. a Saturday worked in exchange for a bridge day)."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone such as 'Europe/Budapest'"
            ) from None
        return value

    @model_validator(mode="after")
    def _some_hours(self) -> Self:
        if not any(self.hours.as_weekly()):
            raise ValueError("calendar.hours has no working time at all")
        if self.holidays:
            import holidays as holidays_lib  # noqa: PLC0415
            from holidays.registry import COUNTRIES  # noqa: PLC0415

            # the names country_holidays() accepts (code, alpha-3, class name), read from
            # the package's registry: no calendar is imported or built at load
            if self.holidays not in {name for names in COUNTRIES.values() for name in names}:
                raise ValueError(
                    f"calendar.holidays: {self.holidays!r} is not a country code the holidays"
                    " package knows (e.g. 'HU', 'GB', 'DE')"
                )
            if self.subdivision:  # builds that one country's calendar (rarely set)
                try:
                    holidays_lib.country_holidays(self.holidays, subdiv=self.subdivision)
                except NotImplementedError:
                    raise ValueError(
                        f"calendar.subdivision: {self.holidays} has no subdivision"
                        f" {self.subdivision!r}"
                    ) from None
        return self


class SlaTarget(_Section):
    """``[sla.<priority>]``: response targets in business time."""

    first_response: Business
    next_response: Business
    resolution: Business
    warn_at: float = Field(default=0.8, gt=0, lt=1)
    """Fraction of a target elapsed at which the assignee is warned."""


def _default_sla() -> dict[Priority, SlaTarget]:
    def target(first: str, nxt: str, res: str) -> SlaTarget:
        return SlaTarget.model_validate(
            {"first_response": first, "next_response": nxt, "resolution": res}
        )

    return {
        Priority.URGENT: target("1h", "2h", "1d"),
        Priority.HIGH: target("2h", "4h", "2d"),
        Priority.NORMAL: target("4h", "8h", "3d"),
        Priority.LOW: target("1d", "2d", "5d"),
    }


class QueueSettings(_Section):
    """``[queues.<name>]``: one assistant queue."""

    description: str = ""
    assistants: list[str] = Field(default_factory=list)
    """Names (keys of ``[team.assistants]``) who work this queue and get its SLA warnings."""
    sla: dict[Priority, SlaTarget] = Field(default_factory=dict)
    """Per-priority overrides of the global ``[sla]`` targets for this queue."""
    no_sla: StrictBool = False
    """No deadlines at all (e.g. a bulk queue for newsletters)."""


class RoutingSettings(_Section):
    """``[routing]``: rules first, then the classifier, then the fallback queue."""

    rule_files: list[str] = Field(default_factory=list)
    fallback_queue: str = "unsorted"
    confidence_threshold: float = Field(default=0.6, ge=0, le=1)
    """The classifier's calibrated confidence must reach this to route; else fallback."""
    target_accuracy: float | None = Field(default=None, gt=0, le=1)
    """Instead of a threshold: the accuracy wanted on automatically routed mail; the
    threshold is the one that reached it, with the most coverage, on the active model's
    out-of-fold answers (``triage evaluate`` shows it)."""
    default_priority: Priority = Priority.NORMAL
    bulk_queue: str = ""
    """Queue for mailing-list mail (no acknowledgment, no SLA); "" routes it normally."""
    own_list_ids: list[str] = Field(default_factory=list)
    """List-Ids of the team's own groups, treated as normal mail rather than bulk."""

    @model_validator(mode="after")
    def _one_threshold(self) -> RoutingSettings:
        if self.target_accuracy is not None and "confidence_threshold" in self.model_fields_set:
            raise ValueError(
                "give confidence_threshold or target_accuracy, not both"
                " (target_accuracy chooses the threshold)"
            )
        return self


class ClassifierSettings(_Section):
    """``[classifier]``: the scikit-learn routing model."""

    enabled: StrictBool = True
    """False: route with rules and the fallback queue only."""
    predict_priority: StrictBool = False
    """Also predict the priority with a second model (``triage train --target priority``)."""
    second_stage: StrictBool = True
    """Use the cascade's second stage (a sentence embedding, for the mail the first stage is
    unsure of) when the active model has one (``triage train --cascade``) and the optional
    embedding package is installed; false: the first stage answers all mail."""
    second_stage_max_batch: int = Field(default=10, ge=0)
    """A fetched batch of more messages than this (a backlog after a pause, a first start)
    is routed by the first stage alone, so the backlog keeps its speed."""
    retrain: StrictBool = True
    """The daemon retrains on corrections (``triage move``) by itself and activates the new
    model only when it is at least as good on corrected mail the active model never saw."""
    retrain_after: int = Field(default=20, ge=0)
    """Retrain after this many new corrections (0: only at ``retrain_at``)."""
    retrain_at: str = "03:00"
    """Local time (calendar.timezone) of the nightly retraining when there are new
    corrections; "" for none."""

    @field_validator("retrain_at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"{value!r} is not a time of day like '03:00'")
        return value


class AcknowledgmentSettings(_Section):
    """``[acknowledgments]``: the automatic reply telling a client their ticket number."""

    enabled: StrictBool = True
    default_language: str = "en"
    templates_dir: str = ""
    """Directory of Jinja2 templates overriding the shipped ones; "" for the shipped ones."""
    max_per_sender_per_hour: int = Field(default=30, ge=0)
    """RFC 3834 section 2: the last bound on answers to one address in an hour. Loops are
    stopped before it (replies to our acknowledgments, identical repeats, machine signs);
    a busy client's distinct requests each get theirs, up to this many."""
    max_age: Seconds = 3 * 86400.0
    """Seconds: mail that reached the mailbox longer ago than this when triage first sees
    it gets no acknowledgment (the first start against an inbox full of old mail, a long
    outage). 0: no limit."""
    no_reply_patterns: list[str] = Field(
        default_factory=lambda: [
            "noreply@*",
            "no-reply@*",
            "no_reply@*",
            "donotreply@*",
            "do-not-reply@*",
            "mailer-daemon@*",
            "postmaster@*",
            "bounce*@*",
        ]
    )
    """Sender address globs that never get an acknowledgment."""


class OwnerSettings(_Section):
    """``[owners]``: who receives escalations (and nothing else)."""

    addresses: list[Mailbox] = Field(default_factory=list)
    digest: Literal["off", "hourly", "daily"] = "off"
    """One mail per escalation (off), or one digest per hour / per day."""
    digest_time: str = "08:00"
    """Local time (calendar.timezone) at which the daily digest goes out."""
    language: str = "en"
    """Language of escalation, warning and digest mail (a shipped or own template's)."""

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"{value!r} is not a time like '08:00'")
        return value


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")
"""A DNS host name with at least two labels (RFC 1123 section 2.1), in ASCII (IDNA)."""

MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this is refused (a mistaken path such as /dev/zero)."""


class TeamSettings(_Section):
    """``[team]``: the assistants and the shared addresses that are ours."""

    name: str = "Our office"
    assistants: dict[str, Mailbox] = Field(default_factory=dict)
    """Assistant name -> email address (for SLA warnings)."""
    addresses: list[Mailbox] = Field(default_factory=list)
    """Our own addresses besides smtp.from_address: mail from them is never acknowledged."""
    message_id_domain: str = ""
    """Domain for our Message-IDs; "" takes it from smtp.from_address."""

    @field_validator("message_id_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value:
            return value
        try:
            ascii_value = value.strip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            ascii_value = ""
        if not _DOMAIN.fullmatch(ascii_value):
            raise ValueError(f"{value!r} is not a domain name such as 'example.com'")
        return ascii_value


class LoggingSettings(_Section):
    """``[logging]``: console in a terminal, JSON lines otherwise (``format = "auto"``)."""

    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


SAVED_REPLY_VARIABLES = (
    "client_name",
    "client_address",
    "ref",
    "subject",
    "deadline",
    "assistant",
    "team",
)
"""What a saved reply's text may name in braces: ``{client_name}``, ``{ref}`` ..."""


class SavedReply(_Section):
    """``[[web.saved_replies]]``: a text an assistant inserts into a reply.

    ``text`` may name :data:`SAVED_REPLY_VARIABLES` in braces (``{client_name}``,
    ``{ref}``, ``{deadline}`` ...); ``{{`` and ``}}`` are literal braces.
    """

    name: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=20_000)
    queues: list[str] = Field(default_factory=list)
    """Queues where it is offered; empty for every queue."""
    language: Literal["hu", "en", ""] = ""
    """The language it is written in ("" for any); shown beside its name."""

    @field_validator("text")
    @classmethod
    def _variables(cls, value: str) -> str:
        import string  # noqa: PLC0415

        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
        for name in fields:
            if name not in SAVED_REPLY_VARIABLES:
                known = ", ".join("{" + v + "}" for v in SAVED_REPLY_VARIABLES)
                raise ValueError(f"unknown variable {{{name}}} (variables: {known})")
        return value


class WebSettings(_Section):
    """``[web]``: the assistants' web page (``triage web``; ``triage run`` when enabled).

    ``host`` defaults to loopback: put a TLS proxy (nginx, Caddy) in front of it and
    set ``base_url`` to the address people type. State-changing requests whose
    ``Origin`` is not ``base_url`` (and not same-origin by Fetch Metadata) are refused.
    """

    enabled: StrictBool = False
    """Serve the page from ``triage run`` as well (one process for a small office)."""
    host: str = "127.0.0.1"
    port: StrictInt = Field(default=8025, ge=1, le=65535)
    base_url: str = ""
    """The public address, e.g. ``https://desk.example.com``; "" means ``http://host:port``.
    An ``https`` address makes the session cookie ``Secure``."""
    default_language: Literal["hu", "en"] = "en"
    """Language of the page for users who have not chosen one."""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    """Hours a login lasts without activity."""
    saved_replies: list[SavedReply] = Field(default_factory=list)
    """Texts offered in the reply box (per queue, with variables)."""
    trusted_proxies: list[Network] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    """Addresses or networks (``10.0.0.0/8``) of the TLS proxy, whose
    ``X-Forwarded-For`` names the client (used when ``base_url`` is set). Login
    throttling and the loopback-only ``/metrics`` and ``/health`` go by that client
    address, so the proxy must send the header."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value or any(c.isspace() or c in "/@" for c in value):
            raise ValueError(f"{value!r} is not a host name or address such as '127.0.0.1'")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value:
            return value
        match = re.fullmatch(r"(https?)://([^/\s?#@]+)/?", value)
        if not match:
            raise ValueError(
                f"{value!r} is not an origin such as 'https://desk.example.com'"
                " (scheme and host, with an optional port, no path)"
            )
        return value.rstrip("/").lower()

    def origin(self) -> str:
        """The page's origin: ``base_url``, else ``http://host:port``."""
        if self.base_url:
            return self.base_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class Settings(_Section):
    """The whole configuration, one attribute per TOML table.

    Attributes:
        path: the config file it was read from (``None`` when built in code).
        base_dir: directory relative paths are resolved against.
    """

    path: Path | None = None
    base_dir: Path = Field(default_factory=Path.cwd)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    team: TeamSettings = Field(default_factory=TeamSettings)
    queues: dict[str, QueueSettings] = Field(
        default_factory=lambda: {"unsorted": QueueSettings(description="Uncertain mail")}
    )
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    lists: dict[str, list[str]] = Field(default_factory=dict)
    """Named lists for rules (``vip_clients``, ``blocked_senders``)."""
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    sla: dict[Priority, SlaTarget] = Field(default_factory=_default_sla)
    acknowledgments: AcknowledgmentSettings = Field(default_factory=AcknowledgmentSettings)
    owners: OwnerSettings = Field(default_factory=OwnerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    oauth2: OAuth2Settings | None = None
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: dict[str, QueueSettings]) -> dict[str, QueueSettings]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
                raise ValueError(f"queue name {name!r}: use lowercase letters, digits, - and _")
        return value

    @field_validator("sla")
    @classmethod
    def _all_priorities(cls, value: dict[Priority, SlaTarget]) -> dict[Priority, SlaTarget]:
        missing = [p.value for p in PRIORITIES if p not in value]
        if missing:
            defaults = _default_sla()
            value = {**{p: defaults[p] for p in PRIORITIES}, **value}
        return value

    @model_validator(mode="after")
    def _references(self) -> Self:
        if self.routing.fallback_queue not in self.queues:
            raise ValueError(
                f"routing.fallback_queue {self.routing.fallback_queue!r} is not in [queues]"
            )
        if self.routing.bulk_queue and self.routing.bulk_queue not in self.queues:
            raise ValueError(f"routing.bulk_queue {self.routing.bulk_queue!r} is not in [queues]")
        self._targets_fit_the_calendar()
        for i, saved in enumerate(self.web.saved_replies):
            for name in saved.queues:
                if name not in self.queues:
                    raise ValueError(f"web.saved_replies.{i}.queues: {name!r} is not in [queues]")
        self._xoauth2_sources()
        for qname, queue in self.queues.items():
            for person in queue.assistants:
                if person not in self.team.assistants:
                    raise ValueError(
                        f"queues.{qname}.assistants: {person!r} is not in [team.assistants]"
                    )
        return self

    def _xoauth2_sources(self) -> None:
        """``auth = "xoauth2"`` needs a token source: ``[oauth2]`` or a token file/command."""
        imap = self.imap
        if (
            imap is not None
            and imap.auth == "xoauth2"
            and self.oauth2 is None
            and not (imap.oauth2_token_file or imap.oauth2_token_command)
        ):
            raise ValueError(
                "imap.auth: 'xoauth2' needs an [oauth2] section (then run `triage auth login`),"
                " or imap.oauth2_token_file or imap.oauth2_token_command"
            )
        smtp = self.smtp
        if smtp is not None and smtp.mode == "send" and smtp.auth == "xoauth2" and not self.oauth2:
            raise ValueError(
                "smtp.auth: 'xoauth2' needs an [oauth2] section (then run `triage auth login`)"
            )

    def _targets_fit_the_calendar(self) -> None:
        """Refuse an SLA target needing more working time than a year of the calendar has."""
        weekly = self.calendar.hours.as_weekly()
        days_per_year = 52 * sum(1 for day in weekly if day)
        seconds_per_year = 52 * sum(
            _seconds_of_day(end) - _seconds_of_day(start) for day in weekly for start, end in day
        )
        tables: list[tuple[str, dict[Priority, SlaTarget]]] = [("sla", self.sla)]
        tables += [(f"queues.{name}.sla", q.sla) for name, q in self.queues.items()]
        for prefix, targets in tables:
            for priority, target in targets.items():
                for kind in ("first_response", "next_response", "resolution"):
                    duration: BusinessDuration = getattr(target, kind)
                    share = duration.days / days_per_year + duration.seconds / seconds_per_year
                    if share > 1:
                        raise ValueError(
                            f"{prefix}.{priority.value}.{kind}: {duration} is more working time"
                            f" than a year of [calendar.hours] has ({days_per_year} working days,"
                            f" {seconds_per_year // 3600} working hours)"
                        )

    def resolve(self, path: str) -> Path:
        """Resolve a path from the config file relative to its directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite file made absolute against ``base_dir``."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:" and not rest.startswith(":"):
                return prefix + str(self.resolve(rest))
        return url

    def sla_for(self, queue: str, priority: Priority) -> SlaTarget | None:
        """The SLA target for a queue and priority (queue override first); None for no_sla."""
        q = self.queues.get(queue)
        if q is not None and q.no_sla:
            return None
        if q is not None and priority in q.sla:
            return q.sla[priority]
        return self.sla[priority]


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    kind = error["type"]
    if kind == "extra_forbidden":
        last = str(error["loc"][-1]) if error["loc"] else ""
        if last.lower() in _SECRET_KEYS:
            return loc, (
                "secrets are never written in the config file; name an environment variable"
                " with password_env (or a file with password_file) instead"
            )
        return loc, "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if "input" in error and kind not in {"value_error", "assertion_error"}:
        shown = error["input"]
        if isinstance(shown, str | int | float | bool):
            message = f"{message} (got {shown!r})"
    return loc, message


MAX_NESTING = 16
"""Levels of tables and arrays a config may nest (``queues.<q>.sla.<priority>`` is 4)."""


def too_deep(data: Any, limit: int) -> str | None:
    """The dotted key under which ``data`` nests more than ``limit`` tables/arrays, or None.

    Walks iteratively (no recursion), so any depth the TOML parser returned is safe.
    Array items are named by index (``lists.blocked.0.0``).
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, dict):
            children: list[tuple[str, Any]] = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(str(i), v) for i, v in enumerate(node)]
        else:
            continue
        if depth >= limit:
            return where
        for key, child in children:
            stack.append((child, f"{where}.{key}" if where else key, depth + 1))
    return None


def parse_config(data: dict[str, Any], *, source: str, base_dir: Path) -> Settings:
    """Validate a parsed TOML mapping into :class:`Settings`.

    Raises:
        ConfigError: listing every problem as ``source: key: problem``.
    """
    for key in ("path", "base_dir"):
        if key in data:
            raise ConfigError(f"{source}: {key}: unknown key")
    deep = too_deep(data, MAX_NESTING)
    if deep is not None:
        parts = deep.split(".")
        while parts and parts[-1].isdigit():  # name the key, not the array items inside it
            parts.pop()
        deep = ".".join(parts)
        raise ConfigError(
            f"{source}: {deep or '(top level)'}: nesting too deep (more than {MAX_NESTING}"
            " levels of tables and arrays; no setting needs that many)"
        )
    try:
        return Settings.model_validate({**data, "path": source, "base_dir": base_dir})
    except ValidationError as exc:  # before ValueError: it is one
        lines = []
        for error in exc.errors():
            loc, message = _describe(dict(error))
            # checks across keys name their keys in the message itself
            if not loc or message.startswith(f"{loc}."):
                lines.append(f"{source}: {message}")
            else:
                lines.append(f"{source}: {loc}: {message}")
        raise ConfigError("\n".join(lines)) from None
    except RecursionError:
        raise ConfigError(f"{source}: nesting too deep") from None
    except (TypeError, ValueError, ArithmeticError) as exc:  # a validator surprised by odd input
        raise ConfigError(f"{source}: cannot validate: {type(exc).__name__}: {exc}") from None


def load_config(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is missing, not valid TOML (with line and column), or
            has invalid keys or values (each named).
    """
    p = Path(path)
    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(f"{p}: config file is {kind}")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{p}: config file is too large ({info.st_size:,} bytes; at most"
                f" {MAX_CONFIG_BYTES:,})"
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a byte-order mark (Notepad) is fine
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{p}: nesting too deep: arrays or tables nested hundreds of levels deep"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the parser must never end in a traceback
        raise ConfigError(f"{p}: cannot read the TOML: {type(exc).__name__}") from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)


def find_config_path(explicit: str | None) -> Path | None:
    """The config path from ``--config``, else ``$TRIAGE_CONFIG``, else None."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None
