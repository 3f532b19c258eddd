"""
What a JSON request body cannot carry: the check every channel validator runs on its payload.

Rule 1: a rendered payload is hashed with catalogsync's canonical encoding, which accepts
Decimals, dates and the like; the request body is plain ``json.dumps``, which does not, nor NaN
or infinities. A value that slips through would make the body fail to build *inside* ``push``,
failing every operation sent alongside; validators report it on its own item instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


__all__ = ["unencodable"]

_SCALARS = (str, int, bool, type(None))


def unencodable(value: Any, root: str = "") -> tuple[str, str] | None:
    """
    Return ``(path, problem)`` for the first value plain JSON cannot carry, else ``None``.

    Paths read ``a.b[2].c`` below *root*.

    Example:
        >>> from decimal import Decimal
        >>> unencodable({"title": "ok", "price": [Decimal("1.5")]})
        ('price[0]', 'a Decimal cannot be sent as JSON')
        >>> unencodable({"weight": float("nan")}, "input")
        ('input.weight', 'nan is not a JSON number')
    """
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, _SCALARS):
            continue
        if isinstance(current, float):
            if math.isfinite(current):
                continue
            return path, f"{current} is not a JSON number"
        if isinstance(current, Mapping):
            bad_key = next((k for k in current if not isinstance(k, str)), None)
            if bad_key is not None:
                return path, f"the key {bad_key!r} is not text"
            items = list(current.items())
            stack.extend((f"{path}.{k}" if path else k, v) for k, v in reversed(items))
            continue
        if isinstance(current, (list, tuple)):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(current))))
            continue
        return path, f"a {type(current).__name__} cannot be sent as JSON"
    return None
