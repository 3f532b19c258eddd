"""A clock that only moves when told to."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


__all__ = ["ManualClock"]


class ManualClock:
    """
    A `catalogsync.Clock` for tests: time stands still until `advance` or `sleep` moves it.

    ``sleep`` advances the clock instead of blocking, so backoff and pacing run instantly while
    the slept time is still accounted for (see `slept`).

    Example:
        >>> clock = ManualClock()
        >>> start = clock.now()
        >>> clock.sleep(1.5)
        >>> (clock.now() - start).total_seconds(), clock.slept
        (1.5, 1.5)

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._mono = 1000.0
        self.slept = 0.0

    def now(self) -> datetime:
        """Return the current (manual) time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return the manual monotonic time."""
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        """Advance by *seconds* (at least the clock's resolution, 1 µs) instead of blocking."""
        if seconds > 0:
            # A shorter sleep would round to no time at all, and a caller waiting for a bucket
            # to refill by a float sliver would spin forever.
            seconds = max(seconds, 1e-6)
            with self._lock:
                self.slept += seconds
            self.advance(seconds)

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        with self._lock:
            self._now += delta
            self._mono += delta.total_seconds()

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
