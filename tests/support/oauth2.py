"""A Dovecot that accepts XOAUTH2 with JSON Web Tokens it validates itself.

Dovecot's ``oauth2`` passdb checks a bearer token either against a token
server (introspection URL) or locally: ``introspection_mode = local`` verifies a
JWT's signature with keys from a dict (here an HS256 shared secret in a file)
and takes the user from a claim. So XOAUTH2 is tested against the real server
with no fake token server: the tests mint tokens with the shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from support.dovecot import Dovecot

KEY = b"triage-test-oauth2-shared-secret-0123456789"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(subject: str, *, lifetime: int = 3600, key: bytes = KEY) -> str:
    """An HS256 JWT for ``subject`` that the OAuth2 Dovecot accepts (when signed with KEY)."""
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": subject, "iat": now, "nbf": now, "exp": now + lifetime, "iss": "triage-test"}
    payload = _b64url(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class OAuth2Dovecot(Dovecot):
    """Dovecot with AUTH=XOAUTH2 / OAUTHBEARER (oauth2 passdb, local JWT validation)
    besides PLAIN/LOGIN (passwd-file)."""

    def _write_config(self) -> None:
        super()._write_config()
        d = self.dir
        keys = d / "oauth2-keys" / "default" / "HS256"
        keys.mkdir(parents=True)
        (keys / "default").write_text(base64.b64encode(KEY).decode("ascii"))
        for p in (d / "oauth2-keys", d / "oauth2-keys" / "default", keys):
            p.chmod(0o755)
        (keys / "default").chmod(0o644)
        (d / "oauth2.conf.ext").write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={d}/oauth2-keys/\n"
            "username_attribute = sub\n"
        )
        conf = (d / "dovecot.conf").read_text()
        conf = conf.replace(
            "auth_mechanisms = plain login", "auth_mechanisms = plain login xoauth2 oauthbearer"
        )
        conf = conf.replace(
            "passdb {",
            "passdb {\n"
            "  driver = oauth2\n"
            "  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {d}/oauth2.conf.ext\n"
            "}\n"
            "passdb {",
            1,
        )
        (d / "dovecot.conf").write_text(conf)
