"""Python side of the test OpenID provider (``tests/idp/server.mjs``).

:class:`TestProvider` starts the Node provider on a free loopback port,
registers clients on it and arms its test-only faults. The browser side of
the flows (:func:`login`, :func:`logout`) lives in ``browser.py`` and is
re-exported here, so tests import everything from this module.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from typing import Any
from typing import Literal
from typing import get_args
from urllib.parse import urlencode

import httpx

from tests.idp.browser import LoginError
from tests.idp.browser import LoginResult
from tests.idp.browser import LogoutResult
from tests.idp.browser import jwt_header
from tests.idp.browser import jwt_payload
from tests.idp.browser import login
from tests.idp.browser import logout
from tests.idp.browser import pkce_pair

__all__ = [
    "CONF_BASIC",
    "CONF_POST",
    "DEFAULT_POST_LOGOUT_REDIRECT_URI",
    "DEFAULT_REDIRECT_URI",
    "LOGOUT_TOKEN_DEFECTS",
    "PAR_REQUIRED",
    "PUBLIC",
    "STATIC_CLIENTS",
    "TAMPER_KINDS",
    "LoginError",
    "LoginResult",
    "LogoutResult",
    "LogoutTokenDefect",
    "RegisteredClient",
    "TamperKind",
    "TestProvider",
    "TestProviderError",
    "jwt_header",
    "jwt_payload",
    "login",
    "logout",
    "pkce_pair",
]

IDP_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = IDP_DIR / "server.mjs"

DEFAULT_REDIRECT_URI = "http://127.0.0.1:9/cb"
DEFAULT_POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:9/logged-out"

TamperKind = Literal["nonce", "aud", "iss", "sub", "exp", "signature"]
TAMPER_KINDS: tuple[TamperKind, ...] = ("nonce", "aud", "iss", "sub", "exp", "signature")

LogoutTokenDefect = Literal[
    "alg_none",
    "wrong_alg",
    "wrong_aud",
    "wrong_issuer",
    "no_event",
    "wrong_event",
    "with_nonce",
    "no_sid_sub",
    "no_jti",
    "no_iat",
    "wrong_typ",
    "bad_signature",
]
LOGOUT_TOKEN_DEFECTS: tuple[LogoutTokenDefect, ...] = get_args(LogoutTokenDefect)


class TestProviderError(RuntimeError):
    """The test provider could not be started or refused a test operation."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class RegisteredClient:
    """A client known to the provider: pre-registered or registered at run time."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    token_endpoint_auth_method: str = "client_secret_basic"


CONF_BASIC = RegisteredClient("conf-basic", "conf-basic-secret")
CONF_POST = RegisteredClient(
    "conf-post", "conf-post-secret", token_endpoint_auth_method="client_secret_post"
)
PUBLIC = RegisteredClient("public", None, token_endpoint_auth_method="none")
PAR_REQUIRED = RegisteredClient("par-required", "par-required-secret")
STATIC_CLIENTS = {c.client_id: c for c in (CONF_BASIC, CONF_POST, PUBLIC, PAR_REQUIRED)}


class TestProvider:
    """The Node test provider as a child process, with its test-only fault API."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        node: str = "node",
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self._node = node
        self._env = env or {}
        self._startup_timeout = startup_timeout
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="test-idp-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._issuer: str | None = None
        self._port: int | None = None
        self.metadata: dict[str, Any] = {}
        self.returncode: int | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> TestProvider:
        """Start the provider and wait for it to be ready; fail loudly if it can't start."""
        if self._process is not None:
            raise TestProviderError("the test provider is already running")
        node = shutil.which(self._node)
        if node is None:
            raise TestProviderError(
                f"{self._node!r} is not on PATH: the test OpenID provider needs Node.js 20 or later"
            )
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise TestProviderError(
                f"{IDP_DIR / 'node_modules'} is missing: run `npm ci` in {IDP_DIR}"
            )
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [node, str(SERVER_SCRIPT), "--port", "0"],
                cwd=IDP_DIR,
                env={**os.environ, **self._env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        atexit.register(self.stop)
        ready: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._pump_stdout, args=(self._process.stdout, ready), daemon=True
        )
        self._reader.start()
        try:
            line = ready.get(timeout=self._startup_timeout)
        except queue.Empty:
            line = None
        if line is None:
            self.stop()
            raise TestProviderError(
                f"the test provider did not become ready; its output:\n{self.log_tail()}"
            )
        self._issuer, self._port = str(line["issuer"]), int(line["port"])
        self._http = httpx.Client(timeout=15.0)
        self.metadata = self.discovery()
        return self

    def _pump_stdout(self, stream: IO[bytes], ready: queue.Queue[dict[str, Any] | None]) -> None:
        """Copy the child's stdout to the log, handing the ready line to start()."""
        announced = False
        with stream, self.log_path.open("ab") as log:
            for raw in stream:
                log.write(raw)
                log.flush()
                if not announced:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(message, dict) and message.get("ready") is True:
                        announced = True
                        ready.put(message)
        if not announced:
            ready.put(None)

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL) and release every resource."""
        atexit.unregister(self.stop)
        if self._http is not None:
            self._http.close()
            self._http = None
        self._issuer = self._port = None
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                self.returncode = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                self.returncode = process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None

    def __enter__(self) -> TestProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        """Return the last lines the provider printed (stdout and stderr)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- addresses -----------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier, ``http://127.0.0.1:<port>`` (no trailing slash)."""
        if self._issuer is None:
            raise TestProviderError("the test provider is not running")
        return self._issuer

    @property
    def port(self) -> int:
        """The TCP port the provider listens on."""
        if self._port is None:
            raise TestProviderError("the test provider is not running")
        return self._port

    @property
    def http(self) -> httpx.Client:
        """The harness's own HTTP client (no cookies shared with logins)."""
        if self._http is None:
            raise TestProviderError("the test provider is not running")
        return self._http

    def endpoint(self, name: str) -> str:
        """An endpoint from discovery, e.g. ``endpoint("token")`` for ``token_endpoint``."""
        return str(self.metadata[f"{name}_endpoint"])

    def discovery(self) -> dict[str, Any]:
        """Fetch the OpenID Provider metadata document."""
        response = self.http.get(f"{self.issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def authorization_url(
        self,
        client_id: str,
        *,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        scope: str = "openid profile email groups",
        state: str | None = None,
        nonce: str | None = None,
        code_challenge: str | None = None,
        response_mode: str | None = None,
        **extra: str,
    ) -> str:
        """Build an authorization-code request URL for ``login()``."""
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state or secrets.token_urlsafe(16),
            "nonce": nonce or secrets.token_urlsafe(16),
        }
        if code_challenge is not None:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        if response_mode is not None:
            params["response_mode"] = response_mode
        return f"{self.endpoint('authorization')}?{urlencode({**params, **extra})}"

    # -- clients -------------------------------------------------------------

    def register_client(
        self,
        redirect_uris: list[str] | tuple[str, ...],
        *,
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107
        require_par: bool = False,
        access_token_ttl: int | None = None,
        post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool = False,
    ) -> RegisteredClient:
        """Register a client through dynamic client registration (RFC 7591).

        With ``backchannel_logout_uri`` the provider POSTs a logout token there
        when a session of the client ends at its end-session endpoint; with
        ``backchannel_logout_session_required`` its ID tokens and logout tokens
        carry ``sid``.
        """
        metadata: dict[str, Any] = {
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "response_modes": ["query", "form_post"],
            "require_pushed_authorization_requests": require_par,
        }
        if access_token_ttl is not None:
            metadata["access_token_ttl"] = access_token_ttl
        if backchannel_logout_uri is not None:
            metadata["backchannel_logout_uri"] = backchannel_logout_uri
            metadata["backchannel_logout_session_required"] = backchannel_logout_session_required
        response = self.http.post(self.endpoint("registration"), json=metadata)
        if response.status_code != 201:
            raise TestProviderError(f"client registration refused: {response.text}")
        body = response.json()
        return RegisteredClient(
            client_id=body["client_id"],
            client_secret=body.get("client_secret"),
            redirect_uris=tuple(body["redirect_uris"]),
            token_endpoint_auth_method=body["token_endpoint_auth_method"],
        )

    # -- faults --------------------------------------------------------------

    def _test_api(self, operation: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.issuer}/__test/{operation}", json=body)
        if response.status_code != 200:
            raise TestProviderError(f"{operation} refused: {response.text}")
        state: dict[str, Any] = response.json()
        return state

    def fail_token_endpoint(self, times: int = 1) -> None:
        """Answer the next ``times`` token requests with HTTP 500, unprocessed."""
        self._test_api("token_error", times=times)

    def delay_token_endpoint(self, ms: int, times: int = 1) -> None:
        """Hold the next ``times`` token requests for ``ms`` milliseconds before processing."""
        self._test_api("token_delay", ms=ms, times=times)

    def tamper_next_id_token(self, what: TamperKind) -> None:
        """Alter one thing in the next ID token the token endpoint issues (re-signed)."""
        self._test_api("tamper_id_token", what=what)

    def fail_userinfo(self, times: int = 1) -> None:
        """Answer the next ``times`` userinfo requests with HTTP 503."""
        self._test_api("userinfo_error", times=times)

    def fail_jwks(self, times: int = 1) -> None:
        """Answer the next ``times`` JWKS requests with HTTP 503."""
        self._test_api("jwks_error", times=times)

    def rotate_keys(self, *, retire_old: bool = False) -> str:
        """Sign with a new key from now on; return its ``kid``.

        The old keys stay in the JWKS unless ``retire_old``. Sessions, grants,
        tokens and registered clients survive the rotation.
        """
        return str(self._test_api("rotate_keys", retire_old=retire_old)["signing_kid"])

    def logout_token(
        self,
        client: RegisteredClient,
        *,
        sub: str | None = None,
        sid: str | None = None,
        jti: str | None = None,
        defect: LogoutTokenDefect | None = None,
    ) -> str:
        """A back-channel logout token for ``client`` about ``sub`` and/or ``sid`` (test-only).

        Signed with the provider's current key, or carrying ``defect`` (see
        ``logout_tokens.mjs``; ``wrong_alg`` is HS256 keyed with the client
        secret). Pass the same ``jti`` twice to make a replay.
        """
        body: dict[str, Any] = {"client_id": client.client_id, "sub": sub, "sid": sid, "jti": jti}
        if defect is not None:
            body["defect"] = defect
        if defect == "wrong_alg":
            body["client_secret"] = client.client_secret
        return str(self._test_api("logout_token", **body)["logout_token"])

    def reset_faults(self) -> None:
        """Clear every armed fault (the signing keys stay as they are)."""
        self._test_api("reset")

    def received(self) -> dict[str, int]:
        """How many PAR and token requests the provider received (``{"par": n, "token": n}``)."""
        return {k: int(v) for k, v in self._test_api("received").items()}

    def reset_received(self) -> None:
        """Count PAR and token requests from zero again."""
        self._test_api("reset_received")

    def state(self) -> dict[str, Any]:
        """The armed faults and the published key ids, for diagnostics."""
        return self._test_api("state")
