"""ManualClock details that pacing code depends on."""

from __future__ import annotations

import pytest

from catalogsync.channels import TokenBucket
from catalogsync.testing import ManualClock


def test_tiny_sleeps_still_move_time():
    """A sleep shorter than the clock's resolution advances by one microsecond, not by nothing."""
    clock = ManualClock()
    start = clock.monotonic()

    clock.sleep(1e-12)

    assert clock.monotonic() > start
    assert clock.slept == 1e-6


@pytest.mark.timeout(10)
def test_bucket_waiting_for_a_float_sliver_terminates():
    """A token bucket short by a rounding sliver does not spin forever on a manual clock."""
    clock = ManualClock()
    bucket = TokenBucket(rate=2000.0, burst=100.0, clock=clock)
    bucket.update(available=100.0 - 1e-9)

    waited = bucket.acquire(100.0)

    assert 0 < waited < 1e-3


def test_watchers_see_time_move_in_steps():
    """A watcher with a period sees a long jump as steps no longer than its period."""
    clock = ManualClock()
    start = clock.monotonic()
    seen = []
    stop = clock.watch(30, lambda: seen.append(clock.monotonic() - start))

    clock.sleep(100)
    stop()
    clock.sleep(100)

    assert seen == [30, 60, 90, 100]
    assert clock.monotonic() - start == 200


def test_watch_rejects_a_non_positive_period():
    """A watcher needs a positive period."""
    with pytest.raises(ValueError, match="period"):
        ManualClock().watch(0, lambda: None)
