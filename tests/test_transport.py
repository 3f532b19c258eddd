"""The shared channel transport and the emulator harness."""

from __future__ import annotations

import random

import httpx
import pytest

from catalogsync import ChannelAuthError, ChannelUnavailableError, RateLimitedError
from catalogsync.channels import HttpTransport, RetryPolicy, TokenBucket, Verdict, VerdictKind
from catalogsync.testing import Emulator, FaultKind, Faults, ManualClock


class Echo(Emulator):
    """Answers 200 with the path, or what the test queued."""

    def __init__(self, statuses=(), **kw):
        super().__init__(**kw)
        self.statuses = list(statuses)

    def handle(self, request):
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"retry-after": "1.5"} if status == 429 else {}
        return httpx.Response(status, json={"path": request.url.path}, headers=headers)


def make(emulator, clock, attempts=4):
    return HttpTransport(
        emulator.client(),
        channel="echo",
        clock=clock,
        retry=RetryPolicy(attempts=attempts, initial=1.0),
        rng=random.Random(1),
    )


def test_retries_5xx_with_backoff_then_succeeds(clock):
    """Two 503s are retried with jittered backoff on the injected clock; the third try wins."""
    emu = Echo([503, 503])
    transport = make(emu, clock)
    response = transport.send(lambda: httpx.Request("GET", "https://echo.invalid/x"))

    assert response.status_code == 200
    assert transport.stats["requests"] == 3
    assert transport.stats["retries"] == 2
    assert 0 < clock.slept <= 1.0 + 2.0  # full jitter under the 1 s and 2 s ceilings


def test_throttle_honours_retry_after(clock):
    """A 429 with Retry-After waits exactly that long."""
    emu = Echo([429])
    transport = make(emu, clock)
    transport.send(lambda: httpx.Request("GET", "https://echo.invalid/x"))

    assert clock.slept == 1.5
    assert transport.stats["throttled"] == 1


def test_gives_up_with_typed_errors(clock):
    """Exhausted retries raise RateLimitedError or ChannelUnavailableError; 401 raises at once."""
    with pytest.raises(RateLimitedError) as info:
        make(Echo([429] * 9), clock).send(lambda: httpx.Request("GET", "https://echo.invalid/x"))
    assert info.value.retry_after == 1.5
    with pytest.raises(ChannelUnavailableError, match="HTTP 502"):
        make(Echo([502] * 9), clock).send(lambda: httpx.Request("GET", "https://echo.invalid/x"))
    emu = Echo([401])
    with pytest.raises(ChannelAuthError):
        make(emu, clock).send(lambda: httpx.Request("GET", "https://echo.invalid/x"))
    assert emu.count() == 1


def test_transport_errors_are_retried(clock):
    """Timeouts and resets from the wire are retried, then reported."""
    faults = Faults(seed=3)
    faults.add(FaultKind.TIMEOUT, count=1)
    faults.add(FaultKind.RESET, count=1)
    emu = Echo(faults=faults)
    transport = make(emu, clock)

    assert transport.send(lambda: httpx.Request("GET", "https://echo.invalid/x")).status_code == 200
    assert transport.stats["transport_errors"] == 2
    faults.add(FaultKind.RESET)
    with pytest.raises(ChannelUnavailableError, match=r"RemoteProtocolError|reset"):
        transport.send(lambda: httpx.Request("GET", "https://echo.invalid/x"))


def test_custom_classify_sees_the_body(clock):
    """A channel's classify function can read a 200 body (Shopify's THROTTLED) and wait."""
    emu = Echo()
    calls = []

    def classify(response):
        calls.append(response.json())
        return (
            Verdict(VerdictKind.THROTTLED, wait=0.25, reason="THROTTLED")
            if len(calls) == 1
            else Verdict.ok()
        )

    make(emu, clock).send(
        lambda: httpx.Request("POST", "https://echo.invalid/graphql"), classify=classify
    )
    assert clock.slept == 0.25
    assert len(calls) == 2


def test_token_bucket_paces_and_follows_updates():
    """The bucket lets a burst through, then paces at the rate; updates change both."""
    clock = ManualClock()
    bucket = TokenBucket(rate=5, burst=5, clock=clock)
    for _ in range(10):
        bucket.acquire()
    assert clock.slept == pytest.approx(1.0)
    bucket.update(rate=10, available=0)
    bucket.acquire()
    assert clock.slept == pytest.approx(1.1)
    bucket.drain(2.0)
    assert bucket.available == pytest.approx(-20.0)


def test_loopback_server_and_socket_faults():
    """The same emulator serves a real port; a reset there drops the connection for real."""
    faults = Faults()
    emu = Echo(faults=faults)
    with emu.serve() as base, httpx.Client(base_url=base, timeout=2.0) as client:
        assert client.get("/hello").json() == {"path": "/hello"}
        faults.add(FaultKind.RESET, count=1)
        with pytest.raises(httpx.TransportError):
            client.get("/boom")
        faults.add(FaultKind.TRUNCATE, count=1)
        truncated = client.get("/cut")
        with pytest.raises(ValueError):
            truncated.json()
        faults.add(FaultKind.WRONG_CONTENT_TYPE, count=1)
        assert client.get("/ct").headers["content-type"] == "text/plain"
    assert emu.count("GET") == 4


def test_token_bucket_never_spins_on_rounding():
    """A bucket a hair short of a token after float arithmetic waits a tiny while, never loops."""
    clock = ManualClock()
    bucket = TokenBucket(rate=3.0, burst=1.0, clock=clock)
    bucket.acquire()
    clock.advance(1 / 3 - 1e-12)  # the refill lands a rounding error short of one token
    assert bucket.acquire() < 1e-6


def test_loopback_server_answers_without_a_nagle_stall():
    """Keep-alive requests to the loopback server do not wait for delayed ACKs (~40 ms each)."""
    import time

    emu = Echo()
    with emu.serve() as base, httpx.Client(base_url=base, timeout=2.0) as client:
        client.get("/warm-up")
        started = time.perf_counter()
        for n in range(20):
            client.put(f"/items/{n}", json={"n": n})
        elapsed = time.perf_counter() - started

    assert elapsed < 0.4, f"20 requests took {elapsed:.2f} s"
