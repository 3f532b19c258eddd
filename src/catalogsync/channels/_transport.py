"""
The thin I/O shell every channel adapter shares: send, pace, retry.

Rule 1: this is the only module that calls ``httpx.Client.send`` for a channel. Request building
and response interpretation stay pure in each channel's ``_sansio`` module; the adapter passes a
*classify* function that reads a response and returns a `Verdict`.

Rule 2: time comes from the injected `Clock` (backoff and pacing sleep through it), randomness
from an injected `random.Random`, so tests run instantly and deterministically.

Rule 3: nothing here logs or raises a credential. Requests are described by method and path only;
headers are never logged.

Retries: transport errors (timeouts, connection errors, protocol errors), HTTP 5xx and throttles
are retried with exponential backoff and full jitter ("AWS Architecture Blog: Exponential Backoff
And Jitter"), honouring a channel-provided wait when there is one. Validation failures are not
retried. When attempts run out, `ChannelUnavailableError` (or `RateLimitedError`) is raised for the
caller to turn into ``TRANSPORT`` item errors.
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable
from typing import Final

import httpx
from attrs import field, frozen

from .._clock import Clock, SystemClock
from .._errors import (
    ChannelAuthError,
    ChannelUnavailableError,
    InvalidArgumentError,
    RateLimitedError,
)
from .._secrets import get_logger, redact


__all__ = ["HttpTransport", "RetryPolicy", "TokenBucket", "Verdict", "VerdictKind"]

_log = get_logger("catalogsync.channels.transport")

_RETRYABLE_STATUSES: Final = frozenset({500, 502, 503, 504, 520, 522, 524})


@frozen
class RetryPolicy:
    """
    How hard a channel transport tries before giving up.

    Attributes:
        attempts: Total tries per request (first try included).
        initial: Base delay in seconds for the first retry.
        maximum: Cap on any single delay, in seconds.
        multiplier: Growth factor per retry.

    Example:
        >>> policy = RetryPolicy(attempts=4, initial=0.5, maximum=8.0)
        >>> [policy.ceiling(n) for n in range(1, 5)]
        [0.5, 1.0, 2.0, 4.0]

    .. versionadded:: 0.1.0
    """

    attempts: int = field(default=6)
    initial: float = field(default=0.5)
    maximum: float = field(default=30.0)
    multiplier: float = field(default=2.0)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise InvalidArgumentError("attempts must be an int >= 1", field="RetryPolicy.attempts")
        if self.initial < 0 or self.maximum < 0 or self.multiplier < 1:
            raise InvalidArgumentError(
                "delays must be >= 0 and multiplier >= 1", field="RetryPolicy.initial"
            )

    def ceiling(self, retry: int) -> float:
        """The upper bound of the delay before retry number *retry* (1-based)."""
        return min(self.maximum, self.initial * self.multiplier ** (retry - 1))


class VerdictKind(enum.Enum):
    """What a response means for the transport."""

    OK = "ok"  # hand it to the caller (including 4xx validation failures)
    RETRY = "retry"  # transient (5xx): retry with backoff
    THROTTLED = "throttled"  # rate limited: retry after the hinted wait, else backoff
    AUTH = "auth"  # credentials rejected: stop, raise ChannelAuthError


@frozen
class Verdict:
    """
    A classification of one response.

    Attributes:
        kind: See `VerdictKind`.
        wait: Seconds the channel asked to wait (Retry-After, cost model), if known.
        reason: A short, secret-free description for errors and logs.
    """

    kind: VerdictKind
    wait: float | None = None
    reason: str = ""

    @classmethod
    def ok(cls) -> Verdict:
        """The response is final."""
        return _OK


_OK: Final = Verdict(VerdictKind.OK)


def default_classify(response: httpx.Response) -> Verdict:
    """Classify by status only: 401 auth, 429 throttled (Retry-After honoured), 5xx retry."""
    status = response.status_code
    if status == 401:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.AUTH, reason="HTTP 401")
    if status == 429:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.THROTTLED, retry_after(response), "HTTP 429")
    if status in _RETRYABLE_STATUSES or status >= 500:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, retry_after(response), f"HTTP {status}")
    return _OK


def retry_after(response: httpx.Response) -> float | None:
    """Parse a ``Retry-After`` header given in (possibly fractional) seconds."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


class TokenBucket:
    """
    A thread-safe token bucket on an injected clock: *rate* tokens per second, *burst* capacity.

    `acquire` blocks (through ``clock.sleep``) until the tokens are there; `update` follows a
    channel's headers (``x-amzn-RateLimit-Limit``, Shopify's ``throttleStatus``) at run time.

    Example:
        >>> from catalogsync.testing import ManualClock
        >>> clock = ManualClock()
        >>> bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
        >>> [bucket.acquire() for _ in range(4)]  # two from the burst, then 0.5 s apart
        [0.0, 0.0, 0.5, 0.5]

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, rate: float, burst: float, clock: Clock | None = None) -> None:
        if rate <= 0 or burst <= 0:
            raise InvalidArgumentError("rate and burst must be > 0", field="TokenBucket.rate")
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = self._clock.monotonic()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now

    def acquire(self, tokens: float = 1.0) -> float:
        """Take *tokens*, sleeping until they are available; return the seconds slept."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill(self._clock.monotonic())
                if self._tokens >= tokens or (tokens > self.burst and self._tokens >= self.burst):
                    self._tokens -= tokens
                    return waited
                wait = (min(tokens, self.burst) - self._tokens) / self.rate
            self._clock.sleep(wait)
            waited += wait

    def update(
        self,
        *,
        rate: float | None = None,
        burst: float | None = None,
        available: float | None = None,
    ) -> None:
        """Adopt the channel's view: a new *rate*, *burst*, or currently *available* tokens."""
        with self._lock:
            self._refill(self._clock.monotonic())
            if rate is not None and rate > 0:
                self.rate = float(rate)
            if burst is not None and burst > 0:
                self.burst = float(burst)
                self._tokens = min(self._tokens, self.burst)
            if available is not None:
                self._tokens = max(-self.burst, min(self.burst, float(available)))

    def drain(self, seconds: float) -> None:
        """Empty the bucket as if the channel said "wait *seconds*" (after a throttle)."""
        with self._lock:
            self._refill(self._clock.monotonic())
            self._tokens = min(self._tokens, -seconds * self.rate)

    @property
    def available(self) -> float:
        """Tokens available now (negative while in debt after a throttle)."""
        with self._lock:
            self._refill(self._clock.monotonic())
            return self._tokens

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst})"


class HttpTransport:
    """
    Sends requests for one channel with retries, backoff and jitter.

    Args:
        client: The injected `httpx.Client` (tests pass one on an `httpx.MockTransport`).
        channel: The channel name, for errors.
        retry: The retry policy.
        clock: Sleeps for backoff go through it.
        rng: Randomness for jitter.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        channel: str,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(client, httpx.Client):
            raise InvalidArgumentError(
                "client must be an httpx.Client (inject one; catalogsync never builds its own)",
                field="client",
            )
        self.client = client
        self.channel = channel
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._rng_lock = threading.Lock()
        #: Counters for tests and benchmarks: requests sent, retries, throttles seen.
        self.stats = {"requests": 0, "retries": 0, "throttled": 0, "transport_errors": 0}
        self._stats_lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def backoff(self, retry: int, hint: float | None) -> float:
        """The delay before retry *retry*: the channel's hint if given, else full jitter."""
        if hint is not None:
            return min(hint, self.retry.maximum) if hint > 0 else 0.0
        with self._rng_lock:
            return self._rng.uniform(0, self.retry.ceiling(retry))

    def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        classify: Callable[[httpx.Response], Verdict] = default_classify,
        before: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """
        Send the request made by *build* until *classify* accepts a response.

        *build* is called for every attempt (so a refreshed token or a new idempotency header
        goes into the retry); *before* runs before each attempt (pacing).

        Raises:
            ChannelAuthError: the channel rejected the credentials.
            RateLimitedError: still throttled after every attempt.
            ChannelUnavailableError: 5xx or transport errors after every attempt.
        """
        last: Verdict | None = None
        last_exc: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self._count("retries")
                delay = self.backoff(attempt - 1, last.wait if last else None)
                self.clock.sleep(delay)
            if before is not None:
                before()
            request = build()
            what = f"{request.method} {request.url.path}"
            self._count("requests")
            try:
                response = self.client.send(request)
                response.read()
            except httpx.TransportError as exc:  # timeouts, connect/read errors, bad HTTP
                self._count("transport_errors")
                last, last_exc = None, exc
                _log.debug("%s %s failed: %s", self.channel, what, type(exc).__name__)
                continue
            verdict = classify(response)
            if verdict.kind is VerdictKind.OK:
                return response
            request_id = _request_id(response)
            if verdict.kind is VerdictKind.AUTH:
                raise ChannelAuthError(
                    f"{self.channel} rejected the credentials ({verdict.reason})",
                    channel=self.channel,
                    status_code=response.status_code,
                    request_id=request_id,
                )
            if verdict.kind is VerdictKind.THROTTLED:
                self._count("throttled")
            last, last_exc = verdict, None
            _log.debug("%s %s: %s (attempt %d)", self.channel, what, verdict.reason, attempt)
        if last is not None and last.kind is VerdictKind.THROTTLED:
            raise RateLimitedError(
                f"{self.channel} kept throttling after {self.retry.attempts} attempts",
                channel=self.channel,
                retry_after=last.wait,
            )
        reason = last.reason if last is not None else type(last_exc).__name__
        detail = redact(str(last_exc)) if last_exc is not None and str(last_exc) else reason
        raise ChannelUnavailableError(
            f"{self.channel} unavailable after {self.retry.attempts} attempts: {detail}",
            channel=self.channel,
        )


def _request_id(response: httpx.Response) -> str | None:
    for name in ("x-request-id", "x-amzn-requestid"):
        value = response.headers.get(name)
        if value:
            return str(value)
    return None
