"""What callbacks see: :func:`current_user`, :data:`auth` and :func:`require_groups`.

Inside any Dash callback (and any Flask view of the app), the guard has
already resolved the request's session.  Background callbacks receive the
same user through ``dash.hooks.custom_data`` (namespace ``dash_oauth_otel``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

import flask

from dash_oauth_otel.adapter.extension import get_module
from dash_oauth_otel.adapter.layout import user_claims
from dash_oauth_otel.adapter.sessions import SessionRecord
from dash_oauth_otel.core.token import OAuthToken
from dash_oauth_otel.errors import PermissionDeniedError
from dash_oauth_otel.telemetry import audit
from dash_oauth_otel.telemetry.redact import digest

__all__ = ["AuthState", "User", "auth", "current_user", "require_groups"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class User:
    """The signed-in user as the app sees it (no token, no session id).

    :param sub: The subject (stable user id at the provider).
    :param claims: Non-secret claims (name, email, ...).
    :param groups: The user's groups (from the configured groups claim).
    """

    sub: str
    claims: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        """A display name, if the provider gave one."""
        for key in ("name", "preferred_username", "email"):
            value = self.claims.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def email(self) -> str | None:
        """The email claim, if any."""
        value = self.claims.get("email")
        return value if isinstance(value, str) else None

    def in_groups(self, *groups: str) -> bool:
        """Whether the user is in any of ``groups``."""
        return bool(set(groups) & set(self.groups))


def _record() -> SessionRecord | None:
    if not flask.has_request_context():
        return None
    found: SessionRecord | None = flask.g.get("dash_oauth_session")
    return found


def current_user() -> User | None:
    """The signed-in user of the current request, or ``None``."""
    record = _record()
    if record is not None:
        module = get_module()
        if module is None:
            return None
        claims = user_claims(module, record)
        return User(sub=str(claims.get("sub", "")), claims=claims, groups=tuple(claims["groups"]))
    from dash_oauth_otel.adapter.background import user_from_context

    return user_from_context()


class AuthState:
    """Request-scoped view of the login state (use the :data:`auth` instance).

    ``auth.authenticated``, ``auth.user``, ``auth.token`` (server side only:
    never send it to the browser), ``auth.stale``, ``auth.error``.
    """

    @property
    def authenticated(self) -> bool:
        """Whether the request has a valid, non-stale session."""
        record = _record()
        return record is not None and not record.stale

    @property
    def user(self) -> User | None:
        """The signed-in user."""
        return current_user()

    @property
    def token(self) -> OAuthToken | None:
        """The session's token set (server side only)."""
        record = _record()
        return record.token if record is not None else None

    @property
    def stale(self) -> bool:
        """Whether the session is kept with an expired or unrefreshable token."""
        record = _record()
        return bool(record is not None and record.stale)

    @property
    def error(self) -> str | None:
        """Why the last session ended or is stale (``token_expired``, ...)."""
        record = _record()
        if record is not None:
            return record.error
        if flask.has_request_context():
            error: str | None = flask.g.get("dash_oauth_error")
            return error
        return None


auth = AuthState()
"""The login state of the current request."""


def require_groups(groups: Sequence[str]) -> Callable[[F], F]:
    """Let a callback run only for users in one of ``groups``.

    Checked on the server for every call, whatever the inputs (a public page
    path in an input does not bypass it).  Otherwise :class:`PermissionDeniedError`
    is raised, which Dash reports as a failed callback and no output changes.
    """
    allowed = tuple(groups)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None or not user.in_groups(*allowed):
                module = get_module() if flask.has_app_context() else None
                record = _record()
                audit.emit(
                    audit.ERROR,
                    **(module.client.audit_fields() if module is not None else {}),
                    phase="authorization",
                    reason="group_required",
                    required_groups=list(allowed),
                    sub_digest=digest(user.sub) if user is not None else None,
                    session_id_digest=record.sid_digest if record is not None else None,
                    message="A callback was refused: the user is not in a required group.",
                )
                raise PermissionDeniedError(
                    "You are not in a group allowed to do this.", reason="group_required"
                )
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
