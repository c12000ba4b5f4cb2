"""The application's registration at a provider: :class:`OAuthClient`.

Misconfiguration is refused at construction with a :class:`ConfigError` whose
message says what to change.  ``repr`` never shows the secret or the state key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit

from dash_oauth_otel._types import Clock
from dash_oauth_otel._types import Store
from dash_oauth_otel.core.provider import OAuthProvider
from dash_oauth_otel.core.sealing import Sealer
from dash_oauth_otel.core.sealing import normalize_secret
from dash_oauth_otel.core.urls import check_endpoint_url
from dash_oauth_otel.errors import ConfigError
from dash_oauth_otel.telemetry import attributes as attr
from dash_oauth_otel.telemetry.redact import digest

__all__ = [
    "DEFAULT_OIDC_SCOPES",
    "RESERVED_AUTH_PARAMS",
    "RESERVED_TOKEN_PARAMS",
    "AuthStyle",
    "OAuthClient",
    "ResponseMode",
]

AuthStyle = Literal["client_secret_basic", "client_secret_post", "none"]
ResponseMode = Literal["query", "form_post"]

RESERVED_AUTH_PARAMS = frozenset(
    {
        "response_type",
        "response_mode",
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "request",
        "request_uri",
        "claims",
        "max_age",
    }
)
"""Authorization parameters the package sets itself; extra params may not override them."""

RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "refresh_token",
        "token",
        "token_type_hint",
    }
)
"""Token-endpoint parameters the package sets itself."""

_AUTH_STYLES = ("client_secret_basic", "client_secret_post", "none")

DEFAULT_OIDC_SCOPES = ("openid", "profile", "email")
"""Scopes asked of an OpenID provider when the client names none (OIDC Core §5.4)."""


@dataclass(frozen=True, eq=False)
class OAuthClient:
    """A client registered at an :class:`OAuthProvider`.

    :param provider: The provider.
    :param client_id: The client identifier.
    :param redirect_uri: The exact, absolute callback URL registered at the
        provider (built from your configured external URL; never from request
        headers).
    :param client_secret: The secret of a confidential client; ``None`` for a
        public client (PKCE only).
    :param scopes: Requested scopes; ``openid`` is added for OpenID providers.
        None given asks an OpenID provider for :data:`DEFAULT_OIDC_SCOPES`
        (the claims :func:`~dash_oauth_otel.adapter.current_user` shows); pass
        ``("openid",)`` for the bare minimum.
    :param auth_style: ``client_secret_basic`` (default with a secret),
        ``client_secret_post``, or ``none`` (public client; default without one).
    :param response_mode: ``None`` (the provider's default, query), ``"query"``
        or ``"form_post"``.
    :param extra_auth_params: Extra authorization parameters (reserved ones refused).
    :param extra_token_params: Extra token-request parameters (reserved ones refused).
    :param state_ttl: Seconds a login may take, from redirect to callback.
    :param state_key: At least 32 bytes of secret material sealing the state; it
        must be the same on every process serving the app.  ``None`` draws a
        random key, which only works with a single process.
    :param state_store: Where one-time login values live (a
        :class:`~dash_oauth_otel._types.Store`); the Dash module supplies its
        store when this is ``None``.
    :param max_age: OpenID ``max_age`` to request (``auth_time`` is then checked).
    :param use_par: Push authorization requests (RFC 9126): ``None`` uses PAR when
        the provider offers it.
    :param fetch_userinfo: Fetch userinfo at login when the provider has an
        endpoint (its ``sub`` must match the ID token's).
    :param enforce_issuer_parameter: Refuse callbacks without RFC 9207 ``iss``;
        ``None`` enforces it when the provider advertises it.  A present ``iss``
        is compared with the issuer whatever this says.
    :param clock: The time source of state issue and expiry checks.
    """

    provider: OAuthProvider
    client_id: str
    redirect_uri: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    auth_style: AuthStyle | None = None
    response_mode: ResponseMode | None = None
    extra_auth_params: Mapping[str, str] = field(default_factory=dict)
    extra_token_params: Mapping[str, str] = field(default_factory=dict)
    state_ttl: float = 300.0
    state_key: str | bytes | None = field(default=None, repr=False)
    state_store: Store | None = field(default=None, repr=False)
    max_age: int | None = None
    use_par: bool | None = None
    fetch_userinfo: bool = True
    enforce_issuer_parameter: bool | None = None
    clock: Clock = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        p = self.provider
        if not isinstance(p, OAuthProvider):
            raise ConfigError("OAuthClient.provider must be an OAuthProvider.")
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ConfigError("OAuthClient.client_id must be a non-empty string.")
        check_endpoint_url(
            self.redirect_uri,
            what="redirect_uri",
            allow_insecure_loopback=p.http.allow_insecure_loopback or _is_http(self.redirect_uri),
        )
        if urlsplit(self.redirect_uri).query:
            raise ConfigError(
                "redirect_uri must not carry a query; register the exact callback path."
            )
        scopes = _scopes(self.scopes)
        if p.is_oidc and not scopes:
            scopes = DEFAULT_OIDC_SCOPES
        if p.is_oidc and "openid" not in scopes:
            scopes = ("openid", *scopes)
        object.__setattr__(self, "scopes", scopes)
        style = self.auth_style or ("client_secret_basic" if self.client_secret else "none")
        if style not in _AUTH_STYLES:
            raise ConfigError(f"auth_style must be one of {list(_AUTH_STYLES)}, got {style!r}.")
        if style != "none" and not self.client_secret:
            raise ConfigError(
                f"auth_style {style!r} needs client_secret; pass it, or use "
                "auth_style='none' for a public client (PKCE protects the code)."
            )
        if style == "none" and self.client_secret:
            raise ConfigError(
                "A client_secret was given with auth_style='none'; choose "
                "client_secret_basic or client_secret_post, or drop the secret."
            )
        advertised = p.token_endpoint_auth_methods_supported
        if advertised is not None and style not in advertised:
            raise ConfigError(
                f"{p.name} does not advertise the client authentication method {style!r} "
                f"(it lists {list(advertised)}); set auth_style to one of those."
            )
        object.__setattr__(self, "auth_style", style)
        if self.response_mode is not None:
            if self.response_mode not in ("query", "form_post"):
                raise ConfigError("response_mode must be None, 'query' or 'form_post'.")
            if not p.supports_response_mode(self.response_mode):
                raise ConfigError(
                    f"{p.name} does not advertise response_mode {self.response_mode!r}."
                )
        _check_extra(self.extra_auth_params, RESERVED_AUTH_PARAMS, "extra_auth_params")
        _check_extra(p.extra_auth_params, RESERVED_AUTH_PARAMS, "provider extra_auth_params")
        _check_extra(self.extra_token_params, RESERVED_TOKEN_PARAMS, "extra_token_params")
        if not 30 <= float(self.state_ttl) <= 3600:
            raise ConfigError("state_ttl must be between 30 and 3600 seconds.")
        if self.max_age is not None and (
            isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0
        ):
            raise ConfigError("max_age must be a non-negative integer of seconds.")
        if self.use_par is False and p.par_required:
            raise ConfigError(f"{p.name} requires PAR; use_par=False cannot work.")
        if self.use_par and p.pushed_authorization_request_endpoint is None:
            raise ConfigError(f"use_par=True but {p.name} has no PAR endpoint.")
        ephemeral = self.state_key is None
        key = secrets.token_bytes(32) if self.state_key is None else self.state_key
        normalize_secret(key, what="state_key")
        object.__setattr__(self, "state_key", key)
        object.__setattr__(self, "_ephemeral_key", ephemeral)
        context = self.record_context
        object.__setattr__(self, "_state_sealer", Sealer(key, "state", context=context))
        object.__setattr__(self, "_store_sealer", Sealer(key, "state-store", context=context))

    def __repr__(self) -> str:
        secret = "'<redacted>'" if self.client_secret else "None"
        return (
            f"OAuthClient(provider={self.provider.name!r}, client_id={self.client_id!r}, "
            f"redirect_uri={self.redirect_uri!r}, scopes={list(self.scopes)!r}, "
            f"auth_style={self.auth_style!r}, client_secret={secret})"
        )

    def with_state_store(self, store: Store) -> OAuthClient:
        """This client with ``store`` for its one-time values.

        The copy keeps the state key, and remembers whether it was drawn at
        random: such a key still only works in the process that drew it.
        """
        copy = replace(self, state_store=store)
        object.__setattr__(copy, "_ephemeral_key", self.state_key_is_ephemeral)
        return copy

    @property
    def issuer_id(self) -> str:
        """The provider's issuer, or its authorization endpoint for plain OAuth 2.0."""
        return self.provider.issuer or self.provider.authorization_endpoint

    @property
    def namespace(self) -> str:
        """A short name for this client's records: a digest of issuer, client id and redirect URI.

        Two apps differing in any of the three get different store locations,
        keys and cookie names by default, so they never see each other's records.
        """
        material = json.dumps([self.issuer_id, self.client_id, self.redirect_uri])
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    @property
    def record_context(self) -> str:
        """What every sealed record of this client is bound to (issuer and client id)."""
        return json.dumps([self.issuer_id, self.client_id], separators=(",", ":"))

    @property
    def uses_par(self) -> bool:
        """Whether authorization requests are pushed (RFC 9126)."""
        if self.use_par is not None:
            return self.use_par
        return self.provider.pushed_authorization_request_endpoint is not None

    @property
    def enforces_issuer_parameter(self) -> bool:
        """Whether callbacks must carry RFC 9207 ``iss``."""
        if self.enforce_issuer_parameter is not None:
            return self.enforce_issuer_parameter and self.provider.issuer is not None
        return self.provider.iss_parameter_supported and self.provider.issuer is not None

    @property
    def state_key_is_ephemeral(self) -> bool:
        """Whether the state key was drawn at random (valid in this process only)."""
        return bool(object.__getattribute__(self, "_ephemeral_key"))

    @property
    def state_sealer(self) -> Sealer:
        """The sealer of the ``state`` parameter."""
        sealer: Sealer = object.__getattribute__(self, "_state_sealer")
        return sealer

    @property
    def store_sealer(self) -> Sealer:
        """The sealer of one-time values kept in the state store."""
        sealer: Sealer = object.__getattribute__(self, "_store_sealer")
        return sealer

    def policy_fingerprint(self) -> str:
        """A digest of the client's security policy, sealed into login state."""
        material = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": sorted(self.scopes),
            "auth_style": self.auth_style,
            "response_mode": self.response_mode,
            "max_age": self.max_age,
            "par": self.uses_par,
            "iss": self.enforces_issuer_parameter,
            "userinfo": self.fetch_userinfo,
            "extra_auth_params": dict(sorted(self.extra_auth_params.items())),
        }
        blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def telemetry_attributes(self) -> dict[str, str]:
        """Provider and client span attributes (the client id only as a digest)."""
        out = self.provider.telemetry_attributes()
        out[attr.OAUTH_CLIENT_ID_DIGEST] = digest(self.client_id) or ""
        return out

    def audit_fields(self) -> dict[str, str | None]:
        """The fields every audit event about this client carries."""
        return {
            "provider": self.provider.name,
            "issuer": self.provider.issuer,
            "client_id_digest": digest(self.client_id),
        }


def _is_http(url: str) -> bool:
    return isinstance(url, str) and url.startswith("http://")


def _scopes(value: Iterable[str] | str) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item or any(c in item for c in ' "\\'):
            raise ConfigError(f"Invalid scope {item!r}: scopes are non-empty tokens.")
        if item not in out:
            out.append(item)
    return tuple(out)


def _check_extra(params: Mapping[str, str], reserved: frozenset[str], what: str) -> None:
    for key, value in params.items():
        if key in reserved:
            raise ConfigError(
                f"{what} may not set {key!r}: the package sets it itself (remove it, or use "
                "the dedicated option)."
            )
        if not isinstance(value, str):
            raise ConfigError(f"{what}[{key!r}] must be a string.")
