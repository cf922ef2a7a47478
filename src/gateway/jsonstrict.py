"""JSON as the HTTP API and the policy accept it: finite numbers only, bounded depth.

Python's :mod:`json` reads ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON)
and recurses once per nesting level. Every document that comes from outside
(request bodies, policy files, settings stored in Redis) is read here, so a
non-finite number or a pathologically nested body is a clear error, never a
stored poison value or a traceback.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import JsonError

#: Deeper documents are refused before parsing (a budget setting is two levels deep).
MAX_DEPTH = 64
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError("numbers must be finite")
    return value


def loads(raw: str | bytes) -> Any:
    """Parse ``raw``; :class:`JsonError` for bad JSON, non-finite numbers or deep nesting."""
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    if _depth(text) > MAX_DEPTH:
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JsonError(f"not valid JSON: {exc}") from None


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (what the parser would recurse)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Where ``value`` (already parsed) holds a NaN or an infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path or "(root)"]
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    return [p for k, v in items for p in non_finite_paths(v, f"{path}/{k}".lstrip("/"))]
