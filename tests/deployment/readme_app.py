"""WSGI entry point: the README's integration block, as written, against the test provider.

Only its literal values change: the issuer, client id, secret and redirect URI
of a client registered at the loopback provider (the env ``README_*``); the
state key comes from ``DASH_OAUTH_SECRET_KEY`` as the README says.  With
``README_DROP_STATE_KEY=1`` the block runs without its ``state_key=`` line, as
a reader who skips it would.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block() -> str:
    """The README's first Python block: the five-line integration."""
    found = re.search(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert found is not None, "the README has no Python block"
    return found.group(1)


def configured(block: str, env: dict[str, str]) -> str:
    """``block`` with its example values replaced by the test deployment's."""
    replacements = {
        'oidc_discover("https://login.example.com/realms/analytics")': (
            f'oidc_discover("{env["README_ISSUER"]}", allow_insecure_loopback=True)'
        ),
        'client_id="dash-app"': f'client_id="{env["README_CLIENT_ID"]}"',
        'client_secret="…"': f'client_secret="{env["README_CLIENT_SECRET"]}"',
        'redirect_uri="https://dash.example.com/oauth/callback"': (
            f'redirect_uri="{env["README_REDIRECT_URI"]}"'
        ),
    }
    for old, new in replacements.items():
        assert block.count(old) == 1, f"the README block no longer has {old!r}"
        block = block.replace(old, new)
    if env.get("README_DROP_STATE_KEY") == "1":
        block, dropped = re.subn(r"\n\s*state_key=.*", "", block)
        assert dropped == 1, "the README block no longer sets state_key"
    return block


_namespace: dict[str, object] = {"__name__": "readme_app"}
exec(compile(configured(readme_block(), dict(os.environ)), "README.md", "exec"), _namespace)  # noqa: S102
server = _namespace["app"].server  # type: ignore[attr-defined]
