"""The guard stays the last ``before_request`` hook, however others are added."""

from __future__ import annotations

from flask import Flask

from dash_oauth_otel.adapter.guard import _GuardLast


def guard() -> None:
    return None


def first() -> None:
    return None


def second() -> None:
    return None


def third() -> None:
    return None


def test_hooks_added_in_every_way_land_before_the_guard() -> None:
    hooks = _GuardLast([first, guard], guard)
    assert hooks == [first, guard]
    hooks.append(second)
    hooks.insert(0, third)
    assert hooks == [third, first, second, guard]
    hooks.insert(99, first)
    hooks.extend([second])
    hooks += [third]
    assert hooks[-1] is guard
    assert hooks == [third, first, second, first, second, third, guard]


def test_flask_runs_hooks_registered_after_the_guard_before_it() -> None:
    app = Flask(__name__)
    ran: list[str] = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            ran.append(name)

        return run

    app.before_request(hook("early"))
    the_guard = hook("guard")
    app.before_request_funcs[None] = _GuardLast(app.before_request_funcs[None], the_guard)
    app.before_request(hook("late"))
    app.before_request_funcs.setdefault(None, []).insert(0, hook("instrumentation"))
    with app.test_request_context("/"):
        assert app.preprocess_request() is None
    assert ran == ["instrumentation", "early", "late", "guard"]
