"""Argument checks and helpers shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from .._errors import InvalidArgumentError
from ..typing import Page


T = TypeVar("T")


def check_ttl(ttl: timedelta) -> None:
    """Reject a non-positive or non-timedelta lease duration."""
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise InvalidArgumentError(f"ttl must be a positive timedelta, got {ttl!r}", field="ttl")


def check_lease_args(owner: str, limit: int, ttl: timedelta) -> None:
    """Validate the arguments of `QueueBackend.lease`."""
    if not isinstance(owner, str) or not owner:
        raise InvalidArgumentError("owner must be a non-empty str", field="owner")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidArgumentError(f"limit must be an int >= 1, got {limit!r}", field="limit")
    check_ttl(ttl)


def page(items: Sequence[T], offset: int, limit: int) -> Page[T]:
    """Cut one page out of a fully materialised, ordered result."""
    return Page(tuple(items[offset : offset + limit]), len(items), offset, limit)


def like_pattern(text: str) -> str:
    """Return a SQL ``LIKE`` pattern matching *text* literally as a substring (escape ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
