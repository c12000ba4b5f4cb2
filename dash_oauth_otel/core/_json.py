"""Strict JSON parsing for everything received from a provider or read back from a store.

RFC 8259 §4 leaves duplicate member names undefined; parsers disagree on which
one wins, which is a classic confusion vector, so they are rejected outright.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["parse_json_object"]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate member {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a JSON number overflows to infinity")
    return value


def parse_json_object(content: bytes | str) -> dict[str, Any]:
    """Parse a JSON object strictly: duplicate members, NaN and non-objects rejected.

    :raises ValueError: On anything but a well-formed JSON object.
    """
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("the JSON document is not an object")
    return value
