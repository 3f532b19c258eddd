"""A clock that only moves when told to."""

from __future__ import annotations

import threading
from collections.abc import Callable
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
        self._watchers: dict[int, tuple[float, Callable[[], None]]] = {}
        self._next_watcher = 0

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
        """
        Move time forward.

        With watchers (`watch`), time moves in steps no longer than the shortest watcher
        period, and the watchers run after each step, so something that must happen every
        *n* seconds (a lease heartbeat) happens before a long jump carries past its deadline.
        """
        total = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        while total > 0:
            with self._lock:
                watchers = list(self._watchers.values())
            step = min([total, *(period for period, _ in watchers)])
            with self._lock:
                self._now += timedelta(seconds=step)
                self._mono += step
            total -= step
            for _, callback in watchers:
                callback()

    def watch(self, period: float, callback: Callable[[], None]) -> Callable[[], None]:
        """
        Run *callback* each time the clock has moved (at most) *period* seconds; return a
        function that stops it. The Synchronizer's lease heartbeat uses this on manual clocks,
        where time jumps instead of passing.
        """
        if period <= 0:
            msg = "period must be > 0"
            raise ValueError(msg)
        with self._lock:
            token = self._next_watcher
            self._next_watcher += 1
            self._watchers[token] = (period, callback)

        def stop() -> None:
            with self._lock:
                self._watchers.pop(token, None)

        return stop

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
