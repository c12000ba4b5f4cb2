"""Tests of dash_oauth_otel.core.token: OAuthToken redaction, serialisation and expiry."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from dash_oauth_otel.core.token import OAuthToken

ACCESS = "access-token-secret-AAAA"
REFRESH = "refresh-token-secret-RRRR"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.id-token-secret.sig"


def full_token(**changes: object) -> OAuthToken:
    token = OAuthToken(
        access_token=ACCESS,
        refresh_token=REFRESH,
        id_token=ID_TOKEN,
        expires_at=1_700_000_000.5,
        granted_scopes=("openid", "email"),
        id_token_claims={"sub": "user-1", "email": "a@example.com", "iss": "https://idp"},
        userinfo={"sub": "user-1", "name": "Ada"},
        id_token_validated=True,
    )
    return dataclasses.replace(token, **changes)  # type: ignore[arg-type]


# -- redaction ------------------------------------------------------------------


def test_repr_and_str_redact_every_token() -> None:
    token = full_token()
    for text in (repr(token), str(token), f"{token}", f"{token!r}", repr([token])):
        assert ACCESS not in text
        assert REFRESH not in text
        assert ID_TOKEN not in text
        assert "id-token-secret" not in text
        assert text.count("'<redacted>'") == 3


def test_repr_shows_non_secret_fields() -> None:
    text = repr(full_token())
    assert text.startswith("OAuthToken(access_token='<redacted>'")
    assert "refresh_token='<redacted>'" in text
    assert "id_token='<redacted>'" in text
    assert "token_type='Bearer'" in text
    assert "expires_at=1700000000.5" in text
    assert "granted_scopes=['openid', 'email']" in text
    assert "subject='user-1'" in text


def test_repr_distinguishes_absent_tokens() -> None:
    text = repr(OAuthToken(access_token=ACCESS))
    assert "refresh_token=None" in text
    assert "id_token=None" in text
    assert "access_token='<redacted>'" in text


def test_repr_hides_claims_and_userinfo() -> None:
    text = repr(full_token())
    assert "a@example.com" not in text
    assert "Ada" not in text


# -- identity -------------------------------------------------------------------


def test_subject_prefers_id_token_claims() -> None:
    token = full_token(id_token_claims={"sub": "from-id"}, userinfo={"sub": "from-userinfo"})
    assert token.subject == "from-id"


def test_subject_falls_back_to_userinfo() -> None:
    assert full_token(id_token_claims=None).subject == "user-1"
    assert full_token(id_token_claims={"sub": 7}, userinfo={"sub": "u"}).subject == "u"


def test_subject_absent() -> None:
    assert OAuthToken(access_token=ACCESS).subject is None
    assert full_token(id_token_claims={}, userinfo={"id": 1}).subject is None


def test_claims_merge_userinfo_over_id_token() -> None:
    token = full_token(id_token_claims={"sub": "1", "name": "Old"}, userinfo={"name": "New"})
    assert token.claims == {"sub": "1", "name": "New"}
    assert OAuthToken(access_token=ACCESS).claims == {}


# -- serialisation --------------------------------------------------------------


def test_to_dict_is_json_serialisable_and_round_trips() -> None:
    token = full_token()
    data = json.loads(json.dumps(token.to_dict()))
    assert OAuthToken.from_dict(data) == token


def test_to_dict_members() -> None:
    data = full_token().to_dict()
    assert data["access_token"] == ACCESS
    assert data["refresh_token"] == REFRESH
    assert data["id_token"] == ID_TOKEN
    assert data["granted_scopes"] == ["openid", "email"]
    assert data["id_token_validated"] is True
    assert data["userinfo"] == {"sub": "user-1", "name": "Ada"}


def test_to_dict_copies_mappings() -> None:
    claims = {"sub": "1"}
    data = full_token(id_token_claims=claims).to_dict()
    data["id_token_claims"]["sub"] = "changed"
    assert claims == {"sub": "1"}


def test_minimal_round_trip() -> None:
    token = OAuthToken(access_token=ACCESS)
    assert OAuthToken.from_dict(token.to_dict()) == token


def test_from_dict_defaults() -> None:
    token = OAuthToken.from_dict({"access_token": ACCESS, "token_type": None})
    assert token.token_type == "Bearer"
    assert token.refresh_token is None
    assert token.expires_at is None
    assert token.granted_scopes == ()
    assert token.id_token_validated is False


def test_from_dict_requires_access_token() -> None:
    with pytest.raises(KeyError):
        OAuthToken.from_dict({"token_type": "Bearer"})


def test_token_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        full_token().access_token = "x"  # type: ignore[misc]


# -- expiry ---------------------------------------------------------------------


def test_expires_in_at_fixed_instant() -> None:
    token = full_token(expires_at=1000.0)
    assert token.expires_in(now=400.0) == 600.0
    assert token.expires_in(now=1300.0) == -300.0


def test_expires_in_uses_the_clock() -> None:
    token = full_token(expires_at=time.time() + 120)
    remaining = token.expires_in()
    assert remaining is not None
    assert 100 < remaining <= 120


def test_no_expiry_known() -> None:
    token = full_token(expires_at=None)
    assert token.expires_in() is None
    assert token.is_expired() is False
    assert token.is_expired(leeway=10**9) is False


@pytest.mark.parametrize(
    ("now", "leeway", "expired"),
    [
        (900.0, 0.0, False),
        (999.9, 0.0, False),
        (1000.0, 0.0, True),
        (1100.0, 0.0, True),
        (939.0, 60.0, False),
        (940.0, 60.0, True),
    ],
)
def test_is_expired(now: float, leeway: float, expired: bool) -> None:
    assert full_token(expires_at=1000.0).is_expired(leeway=leeway, now=now) is expired
