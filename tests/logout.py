"""What a completed logout answers, as a test client sees it."""

from __future__ import annotations

import httpx

__all__ = ["is_logout_answer"]


def is_logout_answer(response: httpx.Response) -> bool:
    """Whether ``response`` is a logout that went through.

    With provider logout, the module's page that POSTs the end-session request
    (200); without, a 303 to the signed-out page.
    """
    if response.status_code == 200:
        return "<form id=dash-oauth-end-session method=post" in response.text
    return response.status_code == 303 and "oauth/signed-out" in response.headers["location"]
