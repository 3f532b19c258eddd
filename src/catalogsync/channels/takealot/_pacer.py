"""
Pacing from Takealot's ``x-RateLimit-Limit / -Remaining / -Reset`` headers.

Takealot publishes no numbers: "rate limits are flexible and vary by endpoint; details are
included in response headers". So the pacer learns each endpoint class's budget from the
responses and spends it, and nothing else.

Theory of operation, per endpoint class (`Route`):

* **Unknown** until the first response: one request at a time, to learn the budget.
* **Unlimited** when responses carry no rate-limit headers (an emulator with limits off).
* **Budget**: ``remaining`` requests may start before ``reset``. Each start spends one; each
  response re-reads the header and keeps the *smaller* of the two views within a window
  (requests still in flight are subtracted from the header's count, because the server may not
  have seen them yet). A later ``reset`` means a new window: the header's count is adopted.
  When the budget is spent, one thread sleeps on the injected clock until the reset and the
  others wait for it, so several requests stay in flight while the budget allows and none
  starts once it is gone. A 429 empties the window.

Time comes from the injected `Clock` only (threads waiting for a sleeper use a condition
variable, which is synchronisation, not time).
"""

from __future__ import annotations

import enum
import threading
from typing import Final

from ..._clock import Clock
from ._sansio import RateLimit, Route


__all__ = ["RatePacer"]

# A reset later than the known one by more than this starts a new window.
_NEW_WINDOW: Final = 0.5
# Real seconds a waiting thread re-checks at most (it is normally woken by a notify).
_POLL: Final = 0.05


class _Mode(enum.Enum):
    UNKNOWN = "unknown"
    UNLIMITED = "unlimited"
    BUDGET = "budget"


class _Budget:
    __slots__ = ("in_flight", "limit", "mode", "remaining", "reset_at", "sleeping")

    def __init__(self) -> None:
        self.mode = _Mode.UNKNOWN
        self.limit: int | None = None
        self.remaining = 0.0
        self.reset_at: float | None = None
        self.in_flight = 0
        self.sleeping = False


class RatePacer:
    """
    A per-endpoint-class budget read from rate-limit headers, on an injected clock.

    Args:
        clock: Sleeps and the monotonic time go through it.
        default_wait: Seconds to wait when a budget is spent and no reset time is known.

    .. versionadded:: 0.1.0
    """

    def __init__(self, clock: Clock, *, default_wait: float = 1.0) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._budgets = {route: _Budget() for route in Route}
        self.default_wait = default_wait
        #: Seconds spent waiting for budget, per route (for tests and benchmarks).
        self.waited = dict.fromkeys(Route, 0.0)

    def _roll(self, budget: _Budget, now: float) -> None:
        if budget.reset_at is not None and now >= budget.reset_at:
            budget.remaining = float(budget.limit or 1)
            budget.reset_at = None

    def acquire(self, route: Route) -> None:
        """Block until a request of *route* may start, then count it as in flight."""
        with self._cond:
            budget = self._budgets[route]
            while True:
                now = self._clock.monotonic()
                self._roll(budget, now)
                if budget.mode is _Mode.UNKNOWN:
                    if budget.in_flight == 0:
                        break
                    self._cond.wait(_POLL)
                    continue
                if budget.mode is _Mode.UNLIMITED or budget.remaining >= 1:
                    break
                if budget.sleeping:
                    self._cond.wait(_POLL)
                    continue
                probe = budget.reset_at is None
                wait = self.default_wait if probe else max(0.0, budget.reset_at - now)  # type: ignore[operator]
                budget.sleeping = True
                self._cond.release()
                try:
                    self._clock.sleep(wait)
                finally:
                    self._cond.acquire()
                    budget.sleeping = False
                    self.waited[route] += wait
                    if probe and budget.reset_at is None and budget.remaining < 1:
                        budget.remaining = 1.0  # no reset known: let one request probe
                    self._cond.notify_all()
            if budget.mode is _Mode.BUDGET:
                budget.remaining -= 1
            budget.in_flight += 1

    def observe(self, route: Route, rate: RateLimit | None, *, throttled: bool = False) -> None:
        """Account for the response of a request started with `acquire`."""
        with self._cond:
            budget = self._budgets[route]
            budget.in_flight = max(0, budget.in_flight - 1)
            if rate is None or rate.remaining is None:
                if budget.mode is _Mode.UNKNOWN:
                    budget.mode = _Mode.UNLIMITED
                if throttled and budget.mode is _Mode.BUDGET:
                    budget.remaining = min(budget.remaining, 0.0)
                self._cond.notify_all()
                return
            now = self._clock.monotonic()
            reset_at = now + rate.reset_in if rate.reset_in is not None else None
            fresh = float(rate.remaining - budget.in_flight)
            new_window = budget.mode is not _Mode.BUDGET or (
                reset_at is not None
                and (budget.reset_at is None or reset_at > budget.reset_at + _NEW_WINDOW)
            )
            budget.mode = _Mode.BUDGET
            if rate.limit is not None:
                budget.limit = rate.limit
            if new_window or reset_at is None:
                # A new window, or no window at all: the server's count is the truth.
                budget.remaining = fresh
                budget.reset_at = reset_at
            else:
                budget.remaining = min(budget.remaining, fresh)
            if throttled:
                budget.remaining = min(budget.remaining, 0.0)
            self._cond.notify_all()

    def release(self, route: Route) -> None:
        """Account for a request started with `acquire` that got no response."""
        with self._cond:
            budget = self._budgets[route]
            budget.in_flight = max(0, budget.in_flight - 1)
            self._cond.notify_all()

    def remaining(self, route: Route) -> float | None:
        """The requests *route* may still start in this window (``None`` when not limited)."""
        with self._cond:
            budget = self._budgets[route]
            self._roll(budget, self._clock.monotonic())
            return budget.remaining if budget.mode is _Mode.BUDGET else None

    def __repr__(self) -> str:
        return f"RatePacer(default_wait={self.default_wait})"
