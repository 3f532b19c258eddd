"""The Takealot pacer: a budget per endpoint class learnt from x-RateLimit-* headers."""

from __future__ import annotations

import threading

from catalogsync.channels.takealot._pacer import UNCOUNTED, RatePacer
from catalogsync.channels.takealot._sansio import RateLimit, Route


OFFER = Route.OFFER


def test_unknown_budget_probes_one_request_at_a_time(clock):
    """Before any answer, one request goes out; a second waits until the first answer arrives."""
    pacer = RatePacer(clock)
    first = pacer.acquire(OFFER)
    granted = []
    second = threading.Thread(target=lambda: granted.append(pacer.acquire(OFFER)))
    second.start()
    second.join(0.2)

    assert first == UNCOUNTED
    assert granted == []
    pacer.observe(OFFER, first, RateLimit(10, 9, 60.0))
    second.join(2)
    assert granted == [0]
    assert pacer.left(OFFER) == 10 - 1 - 1


def test_no_headers_means_no_limit(clock):
    """Answers without rate-limit headers turn pacing off for that endpoint class."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), None)

    tickets = [pacer.acquire(OFFER) for _ in range(100)]

    assert set(tickets) == {UNCOUNTED}
    assert pacer.left(OFFER) is None
    assert clock.slept == 0


def test_spent_budget_waits_for_the_reset(clock):
    """When the window is used up, the next request waits exactly until the header's reset."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(3, 2, 10.0))
    for remaining in (1, 0):
        pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(3, remaining, 10.0))

    pacer.acquire(OFFER)

    assert clock.slept == 10.0
    assert pacer.waited[OFFER] == 10.0
    assert pacer.left(OFFER) == 3 - 1
    assert pacer.left(Route.BATCH) is None  # other endpoint classes have their own budget


def test_requests_in_flight_and_out_of_order_answers(clock):
    """Unanswered requests count against the window; an older, higher count never raises it."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(5, 4, 10.0))
    a, b = pacer.acquire(OFFER), pacer.acquire(OFFER)
    assert pacer.left(OFFER) == 5 - 1 - 2

    pacer.observe(OFFER, b, RateLimit(5, 2, 10.0))  # the server counted a and b
    pacer.observe(OFFER, a, RateLimit(5, 3, 10.0))  # a's answer arrives late

    assert pacer.left(OFFER) == 2


def test_late_answers_from_a_past_window_do_not_spend_the_new_one(clock):
    """A request still unanswered at the reset is charged to the next window once, not twice."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(4, 3, 5.0))
    late = pacer.acquire(OFFER)
    clock.advance(5)

    assert pacer.left(OFFER) == 4 - 1  # the late request may land in this window
    pacer.observe(OFFER, late, RateLimit(4, 0, 0.0))  # it landed in the old one
    assert pacer.left(OFFER) == 4


def test_a_429_fills_the_window(clock):
    """A throttled answer (another tool spent the budget) blocks until the reset."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(10, 9, 30.0))
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(10, 0, 30.0), throttled=True)

    assert pacer.left(OFFER) == 0
    pacer.acquire(OFFER)
    assert clock.slept == 30.0


def test_the_server_opening_a_new_window_first(clock):
    """A reset later than the known one adopts the server's new count at once."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(5, 0, 10.0))
    assert pacer.left(OFFER) == 0

    clock.advance(9.9)  # our clock says 0.1 s to go; the server already reset
    pacer.observe(OFFER, UNCOUNTED, RateLimit(5, 4, 10.0))
    pacer.acquire(OFFER)

    assert clock.slept == 0


def test_without_reset_times_one_request_probes_after_the_default_wait(clock):
    """A spent budget with no reset header waits the default time, then lets one request probe."""
    pacer = RatePacer(clock, default_wait=2.0)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(2, 0, None))

    ticket = pacer.acquire(OFFER)

    assert clock.slept == 2.0
    pacer.observe(OFFER, ticket, RateLimit(2, 1, None))
    assert pacer.left(OFFER) == 1


def test_release_frees_a_slot(clock):
    """A request that got no answer (a transport error) gives its slot back."""
    pacer = RatePacer(clock)
    pacer.observe(OFFER, pacer.acquire(OFFER), RateLimit(3, 2, 10.0))
    ticket = pacer.acquire(OFFER)
    assert pacer.left(OFFER) == 1

    pacer.release(OFFER, ticket)

    assert pacer.left(OFFER) == 2
