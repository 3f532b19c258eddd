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
