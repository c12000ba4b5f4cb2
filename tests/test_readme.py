"""The README's Python blocks are valid code that uses only the public API."""

from __future__ import annotations

import ast
import re
import secrets
import tempfile
from pathlib import Path

import dash_oauth_otel
import dash_oauth_otel.adapter

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def test_blocks_parse_and_import_public_names_only():
    public = {
        "dash_oauth_otel": set(dash_oauth_otel.__all__),
        "dash_oauth_otel.adapter": set(dash_oauth_otel.adapter.__all__),
    }
    for block in BLOCKS:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in public:
                for alias in node.names:
                    assert alias.name in public[node.module], (node.module, alias.name)


def test_the_integration_block_runs(monkeypatch, tmp_path):
    # The first block is the five-line integration; only discovery (a network
    # call to the documented issuer) is replaced by the provider it would build.
    def discovered(issuer: str, **_: object) -> dash_oauth_otel.OAuthProvider:
        return dash_oauth_otel.OAuthProvider(
            name="example",
            issuer=issuer,
            authorization_endpoint=f"{issuer}/protocol/openid-connect/auth",
            token_endpoint=f"{issuer}/protocol/openid-connect/token",
            jwks_uri=f"{issuer}/protocol/openid-connect/certs",
        )

    monkeypatch.setattr(dash_oauth_otel, "oidc_discover", discovered)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the default store goes
    monkeypatch.setenv("DASH_OAUTH_SECRET_KEY", secrets.token_urlsafe(32))
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(BLOCKS[0], "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    auth = namespace["auth"]
    assert isinstance(auth, dash_oauth_otel.adapter.DashOAuth)
    rules = {rule.rule for rule in namespace["app"].server.url_map.iter_rules()}
    assert {"/oauth/login", "/oauth/callback", "/oauth/logout"} <= rules
