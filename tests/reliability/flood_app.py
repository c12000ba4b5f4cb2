"""WSGI app of the anonymous-flood tests: the example app with ``form_post`` and ``Strict`` cookies.

Configured from the environment (:mod:`tests.env_client`): the real
``DiskcacheStore`` or ``RedisStore``.
"""

from __future__ import annotations

from examples.basic_app import create_app
from tests.env_client import client_from_test_env

_client = client_from_test_env(response_mode="form_post")
server = create_app(_client, cookie_samesite="Strict").server
