"""
Pacing from Takealot's ``x-RateLimit-Limit / -Remaining / -Reset`` headers.

Takealot publishes no numbers: "rate limits are flexible and vary by endpoint; details are
included in response headers". So the pacer learns each endpoint class's budget from the
responses and spends it, and nothing else.

Theory of operation, per endpoint class (`Route`):

* **Unknown** until the first answer: one request at a time, to learn the budget.
* **Unlimited** when answers carry no rate-limit headers (an emulator with limits off).
* **Budget**: a window has ``limit`` requests until ``reset``. The server's usage is the highest
  ``limit - remaining`` any answer of the window reported (answers may arrive out of order).
  A request may start while ``limit - used - in_flight - stale >= 1``:

  - ``in_flight``: started in this window and not answered yet (the server may not have
    counted them);
  - ``stale``: started in a past window and not answered yet; they may land in this one.

  Each start takes a *ticket* naming its local window, so a late answer from a past window
  only releases its stale slot and never counts as this window's usage. A ``reset`` later
  than the known one means the server opened a new window: its count is adopted, and requests
  still in flight become stale. A 429 fills the window.

  When the budget is spent, the answers still in flight are awaited, then one thread sleeps on
  the injected clock until the reset while the others wait for it: several requests stay in
  flight while the budget allows, and none starts once it is gone.

Time comes from the injected `Clock` only (threads waiting for the sleeper use a condition
variable, which is synchronisation, not time).
"""

from __future__ import annotations

import enum
import threading
from typing import Final

from ..._clock import Clock
from ._sansio import RateLimit, Route


__all__ = ["RatePacer"]

# A reset later than the known one by more than this is a new window.
_NEW_WINDOW: Final = 0.5
# Real seconds a waiting thread re-checks at most (it is normally woken by a notify).
_POLL: Final = 0.05
#: The ticket of a request that is not counted against a window budget.
UNCOUNTED: Final = -1


class _Mode(enum.Enum):
    UNKNOWN = "unknown"
    UNLIMITED = "unlimited"
    BUDGET = "budget"


class _Budget:
    __slots__ = (
        "generation",
        "in_flight",
        "limit",
        "mode",
        "probing",
        "reset_at",
        "sleeping",
        "stale",
        "used",
    )

    def __init__(self) -> None:
        self.mode = _Mode.UNKNOWN
        self.limit = 1
        self.used = 0  # the server's usage of the current window, as answers reported it
        self.reset_at: float | None = None
        self.generation = 0  # the local window; bumped when a window ends
        self.in_flight = 0
        self.stale = 0
        self.probing = 0  # requests started while the budget is unknown
        self.sleeping = False

    @property
    def left(self) -> int:
        return self.limit - self.used - self.in_flight - self.stale

    def roll(self, now: float) -> None:
        if self.reset_at is not None and now >= self.reset_at:
            self.new_window(used=0, reset_at=None)

    def new_window(self, *, used: int, reset_at: float | None) -> None:
        self.stale += self.in_flight
        self.in_flight = 0
        self.used = used
        self.reset_at = reset_at
        self.generation += 1


class RatePacer:
    """
    A per-endpoint-class budget read from rate-limit headers, on an injected clock.

    `acquire` returns a ticket; pass it back to `observe` with the answer, or to `release`
    when there was none.

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

    def acquire(self, route: Route) -> int:
        """Block until a request of *route* may start; return its ticket."""
        with self._cond:
            budget = self._budgets[route]
            while True:
                now = self._clock.monotonic()
                budget.roll(now)
                if budget.mode is _Mode.UNLIMITED:
                    return UNCOUNTED
                if budget.mode is _Mode.UNKNOWN:
                    if not budget.probing:
                        budget.probing += 1
                        return UNCOUNTED
                elif budget.left >= 1:
                    budget.in_flight += 1
                    return budget.generation
                elif not (budget.sleeping or budget.in_flight or budget.stale):
                    self._sleep_for_budget(route, budget, now)
                    continue
                # Someone sleeps until the reset, or answers in flight will tell us more first
                # (sleeping for the reset before they are in would only overshoot it).
                self._cond.wait(_POLL)

    def _sleep_for_budget(self, route: Route, budget: _Budget, now: float) -> None:
        # Called with the lock held: one thread sleeps on the clock, the others wait for it.
        known = budget.reset_at is not None
        wait = max(0.0, budget.reset_at - now) if budget.reset_at is not None else self.default_wait
        budget.sleeping = True
        self._cond.release()
        try:
            self._clock.sleep(wait)
        finally:
            self._cond.acquire()
            budget.sleeping = False
            self.waited[route] += wait
            if not known and budget.reset_at is None and budget.left < 1:
                # No reset time known: after the default wait, let one request probe.
                budget.used = max(0, budget.limit - 1 - budget.in_flight - budget.stale)
            self._cond.notify_all()

    @staticmethod
    def _settle(budget: _Budget, ticket: int) -> bool:
        """Release the slot of *ticket*; return whether it belongs to the current window."""
        if ticket == UNCOUNTED:
            budget.probing = max(0, budget.probing - 1)
            return True
        if ticket == budget.generation:
            budget.in_flight = max(0, budget.in_flight - 1)
            return True
        budget.stale = max(0, budget.stale - 1)
        return False

    def observe(
        self, route: Route, ticket: int, rate: RateLimit | None, *, throttled: bool = False
    ) -> None:
        """Account for the answer to the request of *ticket*."""
        with self._cond:
            budget = self._budgets[route]
            current = self._settle(budget, ticket)
            if rate is None or rate.remaining is None:
                if budget.mode is _Mode.UNKNOWN:
                    budget.mode = _Mode.UNLIMITED
                elif throttled and budget.mode is _Mode.BUDGET:
                    budget.used = budget.limit
            else:
                self._adopt(budget, rate, rate.remaining, current=current, throttled=throttled)
            self._cond.notify_all()

    def _adopt(
        self, budget: _Budget, rate: RateLimit, remaining: int, *, current: bool, throttled: bool
    ) -> None:
        if rate.limit is not None:
            budget.limit = rate.limit
        elif budget.mode is not _Mode.BUDGET:
            budget.limit = remaining + 1
        used = budget.limit if throttled else max(0, budget.limit - remaining)
        now = self._clock.monotonic()
        reset_at = now + rate.reset_in if rate.reset_in is not None else None
        later = reset_at is not None and (
            budget.reset_at is None or reset_at > budget.reset_at + _NEW_WINDOW
        )
        if budget.mode is not _Mode.BUDGET:
            budget.mode = _Mode.BUDGET
            budget.used, budget.reset_at = used, reset_at
        elif later and current and budget.reset_at is None:
            budget.used, budget.reset_at = max(budget.used, used), reset_at  # first answer
        elif later and (current or throttled):
            budget.new_window(used=used, reset_at=reset_at)  # the server moved on first
        elif reset_at is None and current:
            budget.used = used  # no windows to reason about: the server's count is the truth
        elif current or throttled:
            budget.used = max(budget.used, used)

    def release(self, route: Route, ticket: int) -> None:
        """Account for a request of *ticket* that got no answer."""
        with self._cond:
            self._settle(self._budgets[route], ticket)
            self._cond.notify_all()

    def left(self, route: Route) -> int | None:
        """The requests *route* may still start in this window (``None`` when not limited)."""
        with self._cond:
            budget = self._budgets[route]
            budget.roll(self._clock.monotonic())
            return budget.left if budget.mode is _Mode.BUDGET else None

    def __repr__(self) -> str:
        return f"RatePacer(default_wait={self.default_wait})"
