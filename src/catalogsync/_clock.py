"""
Time, injectable everywhere.

Rule 1: no module reads the wall clock or sleeps except through a `Clock`. Backends use
``clock.now()`` for visibility deadlines; the synchronizer and channel transports use
``clock.sleep()`` for pacing and backoff. Tests pass a `catalogsync.testing.ManualClock`.

Rule 2: every timestamp is a timezone-aware UTC `datetime`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


__all__ = ["Clock", "SystemClock", "ensure_utc", "utcnow"]


@runtime_checkable
class Clock(Protocol):
    """
    **Protocol:** the source of time for a backend, synchronizer or channel.

    .. versionadded:: 0.1.0
    """

    def now(self) -> datetime:
        """Return the current time as an aware UTC `datetime`."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards (for pacing)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for *seconds* (a `ManualClock` advances instead)."""
        ...


class SystemClock:
    """
    The real clock: `datetime.now(UTC)`, `time.monotonic` and `time.sleep`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


def utcnow() -> datetime:
    """Return the wall-clock time as an aware UTC `datetime` (for defaults only)."""
    return datetime.now(UTC)


def ensure_utc(value: datetime, *, field: str) -> datetime:
    """Return *value* in UTC; naive datetimes are rejected with an error naming *field*."""
    from ._errors import InvalidArgumentError  # noqa: PLC0415 - keep this module import-light

    if not isinstance(value, datetime):
        raise InvalidArgumentError(
            f"{field} must be a datetime, got {type(value).__name__}", field=field
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{field} must be timezone-aware (catalogsync keeps every time in UTC)", field=field
        )
    return value.astimezone(UTC)
