"""A local OAuth2 authorization server on 127.0.0.1 (HTTPS), standing in for Entra ID and Google.

No real identity provider is reachable from the test machines, so this is the one
place the suite uses a fake: it speaks the protocol triage's libraries (msal,
google-auth, google-auth-oauthlib) speak, over real HTTPS with a throwaway
certificate (point ``REQUESTS_CA_BUNDLE`` at :attr:`cafile`):

- OpenID discovery ``/{tenant}/v2.0/.well-known/openid-configuration`` (msal);
- the device authorization grant (RFC 8628): ``/{tenant}/oauth2/v2.0/devicecode``,
  ``authorization_pending`` until :meth:`approve_device` (the person typing the code);
- the authorization code grant with PKCE (RFC 7636, S256 checked): ``/authorize``
  redirects the "browser" back to the loopback ``redirect_uri`` with a code;
- refresh tokens (rotated on use; :meth:`revoke` makes them ``invalid_grant``),
  client credentials (the secret checked), and the JWT bearer grant of service
  accounts (RFC 7523; the RS256 signature checked with the account's public key).

Access tokens are JWTs minted by :func:`support.oauth2.mint_token`, so the OAuth2
Dovecot and the XOAUTH2 aiosmtpd accept them: a token from here logs in for real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.oauth2 import mint_token

TENANT = "tenant-1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


@dataclass
class Grant:
    """What the server handed out for one user."""

    user: str
    refresh_tokens: set[str] = field(default_factory=set)


class TokenEndpoint:
    """The server (see the module docstring). ``start()`` / ``stop()``; :attr:`base` is its URL.

    Attributes:
        client_id / client_secret: the registered client (public clients send no secret).
        lifetime: seconds access tokens live (``expires_in``).
        requests: ``(path, form)`` of every POST, for assertions (never logged).
        service_keys: ``client_email -> RSA public key`` of known service accounts.
    """

    def __init__(self, *, lifetime: int = 3600) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="triage-idp-"))
        self.client_id = "11111111-2222-3333-4444-555555555555"
        self.client_secret = "client-secret-" + secrets.token_hex(8)
        self.lifetime = lifetime
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.grants: dict[str, Grant] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.service_keys: dict[str, rsa.RSAPublicKey] = {}
        self.fail_with: tuple[int, dict[str, Any]] | None = None
        """Answer every token request with this (status, body) while set."""
        self._lock = threading.Lock()
        self._make_cert()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.dir / "cert.pem", self.dir / "key.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def cafile(self) -> str:
        return str(self.dir / "cert.pem")

    @property
    def authority(self) -> str:
        """The Entra-style authority URL (``oauth2.authority``)."""
        return f"{self.base}/{TENANT}"

    def _make_cert(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(self.dir / "key.pem"), "-out", str(self.dir / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what tests do ------------------------------------------------------------------

    def approve_device(self, user_code: str, user: str) -> None:
        """The person signs in on their device and enters ``user_code``."""
        with self._lock:
            for device in self.devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user
                    return
        raise KeyError(user_code)

    def revoke(self, user: str) -> None:
        """Revoke every refresh token issued to ``user`` so far (a password change, an
        admin's revocation); a new sign-in gets new ones that work."""
        with self._lock:
            self.grants.setdefault(user, Grant(user)).refresh_tokens.clear()

    def grant_types(self) -> list[str]:
        return [
            form.get("grant_type", "") for path, form in self.requests if path.endswith("token")
        ]

    def add_service_account(self, path: Path, email: str = "triage@project.iam.example") -> Path:
        """Write a service account key JSON (a fresh RSA key) whose token_uri is this server."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.service_keys[email] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "triage-test",
                    "private_key_id": "k1",
                    "private_key": pem,
                    "client_email": email,
                    "client_id": "1234567890",
                    "token_uri": f"{self.base}/token",
                }
            ),
            encoding="utf-8",
        )
        path.chmod(0o600)
        return path

    def google_client_secrets(self, path: Path) -> Path:
        """Write a Google "installed" OAuth client JSON pointing at this server."""
        path.write_text(
            json.dumps(
                {
                    "installed": {
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                        "auth_uri": f"{self.base}/authorize",
                        "token_uri": f"{self.base}/token",
                        "redirect_uris": ["http://localhost"],
                    }
                }
            ),
            encoding="utf-8",
        )
        path.chmod(0o600)
        return path

    # -- the protocol -------------------------------------------------------------------

    def _tokens(self, user: str, *, refresh: bool = True, scope: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope or "https://outlook.office.com/IMAP.AccessAsUser.All",
            "expires_in": self.lifetime,
            "ext_expires_in": self.lifetime,
            "access_token": mint_token(user, lifetime=max(self.lifetime, 60)),
        }
        if refresh:
            token = "rt-" + secrets.token_urlsafe(24)
            grant = self.grants.setdefault(user, Grant(user))
            grant.refresh_tokens.add(token)
            body["refresh_token"] = token
            now = int(time.time())
            uid = hashlib.sha256(user.encode()).hexdigest()[:32]
            body["id_token"] = _unsigned_jwt(
                {
                    "aud": self.client_id, "iss": f"{self.authority}/v2.0", "iat": now,
                    "nbf": now, "exp": now + 3600, "sub": uid, "oid": uid, "tid": TENANT,
                    "preferred_username": user, "name": user, "ver": "2.0",
                }
            )  # fmt: skip
            body["client_info"] = _b64url(json.dumps({"uid": uid, "utid": TENANT}).encode())
        return body

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with
        kind = form.get("grant_type", "")
        if kind == "urn:ietf:params:oauth:grant-type:device_code":
            device = self.devices.get(form.get("device_code", ""))
            if device is None:
                return 400, {"error": "expired_token", "error_description": "unknown device code"}
            if device.get("user") is None:
                return 400, {"error": "authorization_pending", "error_description": "pending"}
            del self.devices[form["device_code"]]
            return 200, self._tokens(device["user"], scope=device["scope"])
        if kind == "refresh_token":
            presented = form.get("refresh_token", "")
            for grant in self.grants.values():
                if presented in grant.refresh_tokens:
                    grant.refresh_tokens.discard(presented)  # rotation: one use each
                    return 200, self._tokens(grant.user, scope=form.get("scope", ""))
            return 400, {
                "error": "invalid_grant",
                "error_description": "AADSTS700082: The refresh token has expired due to"
                " inactivity.\r\nTrace ID: 0000",
            }
        if kind == "client_credentials":
            if form.get("client_secret") != self.client_secret:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                }
            body = self._tokens("app@" + TENANT, refresh=False, scope=form.get("scope", ""))
            return 200, body
        if kind == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if code is None or form.get("redirect_uri") != code["redirect_uri"]:
                return 400, {"error": "invalid_grant", "error_description": "Bad code."}
            verifier = form.get("code_verifier", "")
            challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
            if code["method"] != "S256" or challenge != code["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE check failed."}
            if form.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Bad secret."}
            return 200, self._tokens(code["user"], scope="https://mail.google.com/")
        if kind == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_bearer(form.get("assertion", ""))
        return 400, {"error": "unsupported_grant_type", "error_description": kind}

    def _jwt_bearer(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            header, payload, signature = assertion.split(".")
            claims = json.loads(_unb64url(payload))
            key = self.service_keys[claims["iss"]]
            key.verify(
                _unb64url(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        user = claims.get("sub") or claims["iss"]
        return 200, {
            "access_token": mint_token(user, lifetime=max(self.lifetime, 60)),
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                    base = endpoint.authority
                    self._send(
                        200,
                        {
                            "issuer": f"{base}/v2.0",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                        },
                    )
                    return
                if url.path == "/authorize":
                    # the person signs in as login_hint and consents: back to the app
                    code = "code-" + secrets.token_urlsafe(16)
                    with endpoint._lock:
                        endpoint.codes[code] = {
                            "redirect_uri": query.get("redirect_uri", ""),
                            "challenge": query.get("code_challenge", ""),
                            "method": query.get("code_challenge_method", ""),
                            "user": query.get("login_hint", "someone@example.test"),
                        }
                    target = (
                        query.get("redirect_uri", "")
                        + "?"
                        + urllib.parse.urlencode(
                            {
                                "code": code,
                                "state": query.get("state", ""),
                                "scope": query.get("scope", ""),
                            }
                        )
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):  # client_secret_basic (RFC 6749 section 2.3.1)
                    ident, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                    form.setdefault("client_id", urllib.parse.unquote_plus(ident))
                    form.setdefault("client_secret", urllib.parse.unquote_plus(secret))
                path = urllib.parse.urlsplit(self.path).path
                with endpoint._lock:
                    endpoint.requests.append((path, form))
                    if path.endswith("/devicecode"):
                        code = secrets.token_urlsafe(16)
                        user_code = secrets.token_hex(4).upper()
                        endpoint.devices[code] = {
                            "user_code": user_code,
                            "user": None,
                            "scope": form.get("scope", ""),
                        }
                        verify = f"{endpoint.base}/device"
                        status, body = (
                            200,
                            {
                                "device_code": code,
                                "user_code": user_code,
                                "verification_uri": verify,
                                "expires_in": 300,
                                "interval": 1,
                                "message": "To sign in, use a web browser to open the page"
                                f" {verify} and enter the code {user_code} to authenticate.",
                            },
                        )
                    elif path.endswith("token"):
                        status, body = endpoint._token(form)
                    else:
                        status, body = 404, {"error": "not_found"}
                self._send(status, body)

        return Handler
