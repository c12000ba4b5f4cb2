"""Glewlwyd (Debian's ``glewlwyd`` package) as a second, independent OpenID provider.

:class:`Glewlwyd` starts ``/usr/bin/glewlwyd`` on a free loopback port with
its own sqlite database (built from Debian's schema), its own copy of the web
app and its own log, then configures it through its admin REST API: a user
with a name, an email and ``groups``; the scopes ``openid profile email``;
the OIDC plugin (PAR, ``iss`` in authorization responses, short access
tokens, refresh rotation, revocation and introspection, end-session); and
two confidential clients (Basic and Post client authentication).
:meth:`Glewlwyd.register_client` registers more clients per test.

Glewlwyd's login pages are a JavaScript app, so :func:`browser_login` drives
them in Chromium and returns the callback URL the browser was sent to.
"""

from __future__ import annotations

import atexit
import datetime
import gzip
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import Route

__all__ = [
    "ADMIN",
    "BINARY",
    "CONF_BASIC",
    "CONF_POST",
    "DEFAULT_POST_LOGOUT_REDIRECT_URI",
    "DEFAULT_REDIRECT_URI",
    "PASSWORD",
    "USERNAME",
    "CallbackResult",
    "Glewlwyd",
    "GlewlwydClient",
    "GlewlwydError",
    "browser_login",
    "missing_packages",
]

BINARY = Path("/usr/bin/glewlwyd")
SCHEMA = Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz")
WEBAPP = Path("/usr/share/glewlwyd/webapp")
WEBAPP_CONFIG = Path("/etc/glewlwyd/config-2.7.json/config.json")
MODULES = Path("/usr/lib/glewlwyd")

ADMIN = ("admin", "password")
USERNAME = "alice"
PASSWORD = "alice-password-Qx7"
USER_NAME = "Alice Liddell"
USER_EMAIL = "alice@example.test"
USER_GROUPS = ("admins", "analysts")

DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/cb"
DEFAULT_POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:9/logged-out"
ACCESS_TOKEN_SECONDS = 120

_MIME_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "application/javascript",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".eot": "application/vnd.ms-fontobject",
    ".ico": "image/x-icon",
    ".map": "application/octet-stream",
}


class GlewlwydError(RuntimeError):
    """Glewlwyd could not be started or refused a set-up operation."""


@dataclass(frozen=True)
class GlewlwydClient:
    """A client registered at Glewlwyd."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    token_endpoint_auth_method: str = "client_secret_basic"


CONF_BASIC = GlewlwydClient("gl-conf-basic", "gl-conf-basic-secret-4Rt8")
CONF_POST = GlewlwydClient(
    "gl-conf-post", "gl-conf-post-secret-9Kd2", token_endpoint_auth_method="client_secret_post"
)


def missing_packages() -> list[str]:
    """The Debian files the harness needs that are not installed."""
    return [str(p) for p in (BINARY, SCHEMA, WEBAPP, WEBAPP_CONFIG, MODULES) if not p.exists()]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _key_and_cert() -> tuple[str, str]:
    """A fresh RSA signing key and a self-signed certificate for it (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "glewlwyd-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _config_text(port: int, root: Path) -> str:
    mime = ",\n".join(
        f'  {{ extension = "{ext}" mime_type = "{kind}" }}' for ext, kind in _MIME_TYPES.items()
    )
    # No use_secure_connection line: even "false" makes 2.7.5 demand certificates.
    return f"""port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
login_url="login.html"
static_files_path="{root / "webapp"}"
api_prefix="api"
allow_origin="*"
log_mode="file"
log_level="INFO"
log_file="{root / "glewlwyd.log"}"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
add_x_frame_option_header_deny=true
max_post_size=16778240
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{MODULES / "user"}"
client_module_path="{MODULES / "client"}"
user_auth_scheme_module_path="{MODULES / "scheme"}"
plugin_module_path="{MODULES / "plugin"}"
hash_algorithm="SHA512"
database = {{ type = "sqlite3" path = "{root / "glewlwyd.db"}" }};
static_files_mime_types = (
{mime}
);
"""


class Glewlwyd:
    """Glewlwyd as a child process, configured for the module's tests."""

    def __init__(self, *, root: Path | None = None, startup_timeout: float = 20.0) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="glewlwyd-"))
        self.log_path = self.root / "glewlwyd.log"
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: httpx.Client | None = None
        self.port = 0
        self.metadata: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The OIDC plugin's issuer identifier."""
        return f"{self.origin}/api/oidc"

    def endpoint(self, name: str) -> str:
        """An endpoint from discovery, e.g. ``endpoint("token")``."""
        return str(self.metadata[f"{name}_endpoint"])

    def start(self) -> Glewlwyd:
        """Build the database and web app, start the server and configure it."""
        missing = missing_packages()
        if missing:
            raise GlewlwydError(
                f"Glewlwyd is not installed ({', '.join(missing)} missing): "
                "apt-get install glewlwyd sqlite3"
            )
        self._prepare_files()
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            (self.root / "glewlwyd.conf").write_text(_config_text(self.port, self.root))
            if self._launch():
                break
        else:
            raise GlewlwydError(f"Glewlwyd did not start; its log:\n{self.log_tail()}")
        atexit.register(self.stop)
        self._configure()
        self.metadata = self.discovery()
        return self

    def _prepare_files(self) -> None:
        database = self.root / "glewlwyd.db"
        database.unlink(missing_ok=True)
        with gzip.open(SCHEMA, "rt", encoding="utf-8") as schema, sqlite3.connect(database) as db:
            db.executescript(schema.read())
        webapp = self.root / "webapp"
        if webapp.exists():
            shutil.rmtree(webapp)
        # Debian's web app links into other packages: copy the targets.
        shutil.copytree(WEBAPP, webapp, symlinks=False)
        config = webapp / "config.json"
        if config.is_dir() or config.is_symlink():
            shutil.rmtree(config) if config.is_dir() else config.unlink()
        shutil.copyfile(WEBAPP_CONFIG, config)

    def _launch(self) -> bool:
        log = (self.root / "stdout.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [str(BINARY), f"--config-file={self.root / 'glewlwyd.conf'}"],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        self._admin = httpx.Client(base_url=self.origin, timeout=15.0)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                response = self._admin.post(
                    "/api/auth/", json={"username": ADMIN[0], "password": ADMIN[1]}
                )
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                return True
            raise GlewlwydError(f"admin login refused: HTTP {response.status_code}")
        self.stop()
        raise GlewlwydError(f"Glewlwyd did not become ready; its log:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        atexit.unregister(self.stop)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of Glewlwyd's log and console output."""
        text = ""
        for path in (self.root / "stdout.log", self.log_path):
            if path.exists():
                text += path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- admin API -----------------------------------------------------------

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        if self._admin is None:
            raise GlewlwydError("Glewlwyd is not running")
        response = self._admin.request(method, f"/api/{path}", json=body)
        if response.status_code != 200:
            raise GlewlwydError(
                f"{method} /api/{path} refused: HTTP {response.status_code} {response.text[:500]}"
            )
        return response.json() if response.content else None

    def _add_properties(self, kind: str, properties: dict[str, dict[str, bool]]) -> None:
        module = self._api("GET", f"mod/{kind}/database")
        module["parameters"]["data-format"].update(properties)
        self._api("PUT", f"mod/{kind}/database", module)
        self._api("PUT", f"mod/{kind}/database/reset")

    def _configure(self) -> None:
        rw = {"read": True, "write": True}
        self._add_properties("user", {"groups": {"multiple": True, **rw, "profile-read": True}})
        # The OIDC plugin reads the plural field; the shipped format has the singular.
        self._add_properties("client", {"post_logout_redirect_uris": {"multiple": True, **rw}})
        for scope in ("profile", "email", "groups"):
            self._api(
                "POST",
                "scope/",
                {
                    "name": scope,
                    "display_name": scope,
                    "description": f"The user's {scope}",
                    "password_required": True,
                    "password_max_age": 0,
                    "scheme": {},
                },
            )
        key, cert = _key_and_cert()
        self._api("POST", "mod/plugin/", self._oidc_plugin(key, cert))
        self._api(
            "POST",
            "user/",
            {
                "username": USERNAME,
                "password": PASSWORD,
                "name": USER_NAME,
                "email": USER_EMAIL,
                "enabled": True,
                "scope": ["openid", "profile", "email", "groups"],
                "groups": list(USER_GROUPS),
            },
        )
        for client in (CONF_BASIC, CONF_POST):
            self._create_client(
                client, post_logout_redirect_uris=[DEFAULT_POST_LOGOUT_REDIRECT_URI]
            )

    def _oidc_plugin(self, key: str, cert: str) -> dict[str, Any]:
        return {
            "module": "oidc",
            "name": "oidc",
            "display_name": "OpenID Connect",
            "enabled": True,
            "parameters": {
                "iss": self.issuer,
                "jwt-type": "rsa",
                "jwt-key-size": "256",
                "key": key,
                "cert": cert,
                "access-token-duration": ACCESS_TOKEN_SECONDS,
                "refresh-token-duration": 3600,
                "code-duration": 300,
                "refresh-token-rolling": True,
                "refresh-token-one-use": "always",
                "client-refresh-token-one-use-parameter": "refresh-token-one-use",
                "allow-non-oidc": False,
                "auth-type-code-enabled": True,
                "auth-type-code-revoke-replayed": False,
                "auth-type-token-enabled": False,
                "auth-type-id-token-enabled": True,
                "auth-type-none-enabled": True,
                "auth-type-password-enabled": False,
                "auth-type-client-enabled": False,
                "auth-type-device-enabled": False,
                "auth-type-refresh-enabled": True,
                "scope": [],
                "additional-parameters": [],
                "claims": [
                    {
                        "name": "groups",
                        "user-property": "groups",
                        "type": "string",
                        "mandatory": True,
                        "on-demand": False,
                        "scope": ["profile", "groups"],
                    }
                ],
                "jwks-show": True,
                "jwks-x5c": [],
                "request-parameter-allow": True,
                "request-uri-allow-https-non-secure": False,
                "request-parameter-allow-encrypted": False,
                "request-parameter-ietf-strict": False,
                "secret-type": "public",
                "address-claim": {"type": "no"},
                "name-claim": "mandatory",
                "name-claim-scope": ["profile"],
                "email-claim": "mandatory",
                "email-claim-scope": ["email"],
                "scope-claim": "no",
                "scope-claim-scope": [],
                "allowed-scope": ["openid", "profile", "email", "groups"],
                "pkce-allowed": True,
                "pkce-method-plain-allowed": False,
                "pkce-required": False,
                "pkce-required-public-client": False,
                "pkce-scopes": [],
                "introspection-revocation-allowed": True,
                "introspection-revocation-auth-scope": [],
                "introspection-revocation-allow-target-client": True,
                "register-client-allowed": False,
                "session-management-allowed": True,
                "session-cookie-name": "GLEWLWYD2_OIDC_SID",
                "session-cookie-expiration": 3600,
                "front-channel-logout-allowed": True,
                "back-channel-logout-allowed": True,
                "client-pubkey-parameter": "",
                "client-jwks-parameter": "jwks",
                "client-jwks_uri-parameter": "jwks_uri",
                "request-maximum-exp": 3600,
                "encrypt-out-token-allow": False,
                "oauth-dpop-allowed": False,
                "resource-allowed": False,
                "oauth-rar-allowed": False,
                "oauth-par-allowed": True,
                "oauth-par-duration": 90,
                "oauth-par-required": False,
                "oauth-par-request_uri-prefix": "urn:ietf:params:oauth:request_uri:",
                "oauth-ciba-allowed": False,
                "oauth-as-iss-id": True,
            },
        }

    def _create_client(
        self,
        client: GlewlwydClient,
        *,
        post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._api(
            "POST",
            "client/",
            {
                "client_id": client.client_id,
                "name": client.client_id,
                "enabled": True,
                "confidential": client.client_secret is not None,
                "client_secret": client.client_secret,
                "redirect_uri": list(client.redirect_uris),
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
                "authorization_type": ["code", "refresh_token"],
                "token_endpoint_auth_method": [client.token_endpoint_auth_method],
                "scope": [],
            },
        )

    def register_client(
        self,
        redirect_uris: list[str] | tuple[str, ...],
        *,
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107
        post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
        **_ignored: Any,
    ) -> GlewlwydClient:
        """Register a confidential client for one test (through the admin API).

        Takes the arguments of the npm harness's ``register_client``; the ones
        Glewlwyd has no per-client equivalent for (``access_token_ttl``,
        back-channel logout) are ignored.
        """
        client = GlewlwydClient(
            client_id=f"gl-{secrets.token_hex(6)}",
            client_secret=secrets.token_urlsafe(24),
            redirect_uris=tuple(redirect_uris),
            token_endpoint_auth_method=token_endpoint_auth_method,
        )
        self._create_client(client, post_logout_redirect_uris=post_logout_redirect_uris)
        return client

    def discovery(self) -> dict[str, Any]:
        """The OIDC plugin's discovery document."""
        response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=15.0)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


# -- the browser's part --------------------------------------------------------------


@dataclass(frozen=True)
class CallbackResult:
    """Where Glewlwyd sent the browser back to: a redirect (query) or a form post."""

    url: str
    method: str
    params: dict[str, str]

    @property
    def code(self) -> str | None:
        """The authorization code, if any."""
        return self.params.get("code")


def sign_in(page: Page, username: str = USERNAME, password: str = PASSWORD) -> None:
    """Fill in Glewlwyd's login form (its JavaScript app) and submit it."""
    page.wait_for_selector("input#username")
    page.fill("input#username", username)
    page.fill("input#password", password)
    page.click("button#loginbut")


def grant_and_continue(page: Page) -> bool:
    """Grant every scope asked ("Grant access") or press "Continue"; False if neither shows."""
    grant = page.locator("button:has-text('Grant access')")
    boxes = [b for b in page.locator("input[id^='grant-']").all() if not b.is_checked()]
    if boxes and grant.count() and grant.first.is_visible():
        for box in boxes:
            box.check()
        grant.first.click()
        return True
    proceed = page.locator("button[title='Continue to client application']")
    if proceed.count() and proceed.first.is_visible() and proceed.first.is_enabled():
        proceed.first.click()
        return True
    return False


def browser_login(
    context: BrowserContext,
    authorization_url: str,
    redirect_uri: str,
    *,
    username: str = USERNAME,
    password: str = PASSWORD,
    timeout: float = 15.0,
) -> CallbackResult:
    """Sign in at Glewlwyd in Chromium; return the request it sent to ``redirect_uri``.

    The request to the redirect URI is intercepted with ``page.route`` (and
    answered with an empty page), so the authorization code is not used.
    """
    seen: list[CallbackResult] = []

    def intercept(route: Route) -> None:
        request = route.request
        params = dict(parse_qsl(urlsplit(request.url).query))
        if request.method == "POST":
            params = dict(parse_qsl(request.post_data or ""))
        seen.append(CallbackResult(request.url, request.method, params))
        route.fulfill(status=200, content_type="text/html", body="<p>callback</p>")

    pattern = redirect_uri.split("?", 1)[0] + "*"
    page = context.new_page()
    context.route(pattern, intercept)
    try:
        page.goto(authorization_url)
        deadline = time.monotonic() + timeout
        while not seen and time.monotonic() < deadline:
            password_field = page.locator("input#password")
            if password_field.count() and password_field.first.is_visible():
                sign_in(page, username, password)
            elif not grant_and_continue(page):
                page.wait_for_timeout(100)
                continue
            page.wait_for_timeout(300)
        if not seen:
            raise GlewlwydError(f"Glewlwyd did not send the browser back; at {page.url}")
        return seen[0]
    finally:
        context.unroute(pattern, intercept)
        page.close()
