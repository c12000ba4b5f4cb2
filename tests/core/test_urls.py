"""Tests of dash_oauth_otel.core.urls: endpoint policy, allowlist and return-to paths."""

from __future__ import annotations

import pytest

from dash_oauth_otel.core.urls import check_endpoint_url
from dash_oauth_otel.core.urls import host_allowed
from dash_oauth_otel.core.urls import is_loopback_host
from dash_oauth_otel.core.urls import same_origin_path
from dash_oauth_otel.core.urls import strip_query
from dash_oauth_otel.errors import ConfigError

# -- is_loopback_host -------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.8.9.10", "::1", "[::1]"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "0.0.0.0",
        "10.0.0.1",
        "example.com",
        "localhost.example.com",
        "127.0.0.1.evil.com",
        "my-localhost",
        "::2",
    ],
)
def test_not_loopback_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


# -- host_allowed -----------------------------------------------------------------


def test_empty_allowlist_allows_every_host() -> None:
    assert host_allowed("anything.example", ())


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("login.example.com", True),
        ("LOGIN.Example.COM", True),
        ("login.example.com.", True),
        ("example.com", False),
        ("evil-login.example.com", False),
        ("login.example.com.evil.net", False),
    ],
)
def test_exact_entry(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["login.example.com"]) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("login.example.com", True),
        ("a.b.example.com", True),
        ("evilexample.com", False),
        ("example.com.evil.net", False),
        ("example.org", False),
    ],
)
def test_domain_entry(host: str, allowed: bool) -> None:
    assert host_allowed(host, [".example.com"]) is allowed


def test_any_entry_may_match() -> None:
    assert host_allowed("b.example", ["a.example", "b.example"])
    assert not host_allowed("c.example", ["a.example", "b.example"])


# -- check_endpoint_url -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example",
        "https://idp.example/oauth2/token",
        "https://idp.example:8443/token?tenant=1",
        "https://[2001:db8::1]/token",
    ],
)
def test_https_endpoint_accepted_unchanged(url: str) -> None:
    assert check_endpoint_url(url, what="token endpoint") == url


def test_http_loopback_needs_opt_in() -> None:
    url = "http://127.0.0.1:9000/token"
    with pytest.raises(ConfigError) as caught:
        check_endpoint_url(url, what="token endpoint")
    assert "allow_insecure_loopback" in caught.value.message
    assert check_endpoint_url(url, what="token endpoint", allow_insecure_loopback=True) == url
    assert check_endpoint_url(
        "http://localhost/token", what="token endpoint", allow_insecure_loopback=True
    )


@pytest.mark.parametrize("url", ["http://idp.example/token", "http://10.0.0.1/token"])
def test_http_off_loopback_refused_even_with_opt_in(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_endpoint_url(url, what="token endpoint", allow_insecure_loopback=True)
    assert "must use https" in caught.value.message
    assert caught.value.message.startswith("The token endpoint")


@pytest.mark.parametrize(
    "url",
    [
        "",
        None,
        3,
        "/token",
        "idp.example/token",
        "//idp.example/token",
        "ftp://idp.example/token",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://",
        "https:///token",
    ],
)
def test_not_absolute_http_url(url: object) -> None:
    with pytest.raises(ConfigError):
        check_endpoint_url(url, what="token endpoint")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["https://user:pass@idp.example/token", "https://user@idp.example/", "https://@idp.example/"],
)
def test_user_info_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_endpoint_url(url, what="token endpoint")
    assert "user info" in caught.value.message
    assert "pass" not in caught.value.message.replace("password", "")


def test_fragment_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        check_endpoint_url("https://idp.example/token#frag", what="token endpoint")
    assert "fragment" in caught.value.message


@pytest.mark.parametrize(
    "url", ["https://idp.example:99999/token", "https://idp.example:port/token"]
)
def test_invalid_port_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        check_endpoint_url(url, what="token endpoint")


def test_allowlist_applies() -> None:
    hosts = ("idp.example", ".apis.example")
    assert check_endpoint_url("https://idp.example/a", what="x", allowed_hosts=hosts)
    assert check_endpoint_url("https://keys.apis.example/a", what="x", allowed_hosts=hosts)
    with pytest.raises(ConfigError) as caught:
        check_endpoint_url("https://evil.example/a", what="JWKS URI", allowed_hosts=hosts)
    assert "'evil.example'" in caught.value.message
    assert "allowed_hosts" in caught.value.message


def test_allowlist_also_applies_to_loopback() -> None:
    with pytest.raises(ConfigError):
        check_endpoint_url(
            "http://127.0.0.1/token",
            what="x",
            allow_insecure_loopback=True,
            allowed_hosts=("idp.example",),
        )


# -- strip_query ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://idp.example/token?code=secret#frag", "https://idp.example/token"),
        ("https://user:pw@idp.example:8443/a?b=c", "https://idp.example:8443/a"),
        ("https://[::1]:9000/x?y", "https://[::1]:9000/x"),
        ("https://IDP.example/Path", "https://idp.example/Path"),
    ],
)
def test_strip_query(url: str, expected: str) -> None:
    assert strip_query(url) == expected


# -- same_origin_path -------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/dashboard", "/dashboard"),
        ("/a/b/?tab=2&x=y", "/a/b/?tab=2&x=y"),
        ("/path#fragment", "/path"),
        ("/@evil.com", "/@evil.com"),
        ("/a//b", "/a//b"),
        ("/a%2Fb", "/a%2Fb"),
        ("/" + "a" * 2047, "/" + "a" * 2047),
    ],
)
def test_same_origin_paths_kept(target: str, expected: str) -> None:
    assert same_origin_path(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "dashboard",
        "//evil.com",
        "//evil.com/path",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/\\/evil.com",
        "/%5Cevil.com",
        "/%5cevil.com",
        "/%2F%2Fevil.com",
        # Each of these starts with "//" once percent-decoded.
        "/%2Fevil.com",
        "/%2f/evil.com",
        "/%2f/%2fevil.com",
        "https://evil.com",
        "https://evil.com/",
        "HTTPS://evil.com",
        "http:/evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        " /path",
        "/\tevil",
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r\nSet-Cookie: a=b",
        "/\x00",
        "/path\x7f",
        "/" + "a" * 2048,
        "/" + "a" * 100_000,
    ],
)
def test_foreign_or_unsafe_targets_fall_back(target: str | None) -> None:
    assert same_origin_path(target) == "/"
    assert same_origin_path(target, default="/home") == "/home"


@pytest.mark.parametrize("target", [b"/bytes", 12, ["/list"]])
def test_non_string_targets_fall_back(target: object) -> None:
    assert same_origin_path(target, default="/d") == "/d"  # type: ignore[arg-type]


@pytest.mark.parametrize("control", [chr(c) for c in range(0x20)] + ["\x7f"])
def test_every_control_character_refused(control: str) -> None:
    assert same_origin_path(f"/a{control}b") == "/"
