"""
`Worker`: the main loop of a long-running worker process.

Many worker processes, on one host or many, share one queue and one store; for each connector
they join the same event (`StateStore.open_event` lets only one be active) and lease its items
between them. This module is only the loop around `Synchronizer.run` that every such process
needs: take turns over the connectors, sleep when there is nothing to do, back off after
failures, and stop gracefully.

Rule 1 (graceful stop): a stop request (`Worker.stop`, SIGTERM, SIGINT) is a flag that
`Synchronizer.run` reads before every batch, so the batch in hand is pushed, committed and acked
and no lease is left behind. A second signal acts as it would without the worker (a second
Ctrl-C raises `KeyboardInterrupt`; a second SIGTERM terminates), for an impatient operator.

Rule 2 (no head-of-line blocking): the worker calls ``run(wait=False)``, so a connector whose
last items are held by other workers (or by a crashed one, until its leases expire) returns
``"waiting"`` and the worker moves on to its other connectors.

Rule 3 (back off, never spin): a connection check that fails (an ``ERROR`` event) or a channel
that rejects the credentials mid-run waits *retry_interval* before that connector is tried
again, so a broken channel does not open an error event every round. A retryable
`BackendError` (a lost database connection) is retried with a doubling delay capped by
*retry_interval*; any other exception ends `Worker.run` (let your supervisor restart the
process: every item it held comes back after its lease ttl).

Rule 4: sleeps go through the injected clock, in short slices so a stop request is seen soon.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Final

from ._clock import Clock
from ._errors import BackendError, InvalidArgumentError
from ._secrets import get_logger
from ._sync import RunResult, Synchronizer


__all__ = ["Worker"]

_log = get_logger("catalogsync.worker")

#: Longest single sleep, so a stop request is noticed within about this many seconds.
_SLICE: Final = 0.25
#: `RunResult.reason` values after which a connector waits *retry_interval*.
_FAILED: Final = frozenset({"error", "stopped"})
#: Reasons that mean "more work may be there right now".
_AGAIN: Final = frozenset({"superseded", "limit"})

_Handler = Callable[[int, FrameType | None], object] | int | None


def _seconds(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise InvalidArgumentError(
            f"{name} must be a number of seconds >= 0, got {value!r}", field=name
        )
    return float(value)


class Worker:
    """
    Runs synchronizers until stopped: the main loop of a worker process.

    Start one per process and as many processes as you need, on one host or many, all with the
    same queue and store (PostgreSQL, or a PostgreSQL store with a Redis queue). Each round
    calls `Synchronizer.run` for every synchronizer in turn: the processes join the running
    event of a connector and share its batches, the last one to find the queue empty completes
    it, and changes enqueued meanwhile join it (rule R04). When no connector had work, the
    worker sleeps *idle_interval* and looks again.

    `stop`, SIGTERM and SIGINT end `run` gracefully: the batch in hand is finished (pushed,
    committed, acked), so nothing is left leased. A crash or SIGKILL is safe too, only slower:
    the items the process held come back to the others after their lease ttl
    (`SyncOptions.lease_ttl`). See docs/scaling.md.

    Example:
        >>> from catalogsync import (Change, Connector, Item, ItemType, MemoryCatalog,
        ...                          MemoryQueue, MemoryStore, Synchronizer, Worker)
        >>> from catalogsync.testing import MemoryChannel
        >>> catalog = MemoryCatalog([Item("P1", ItemType.PRODUCT, fields={"title": "Shoe"})])
        >>> sync = Synchronizer(Connector("demo", "memory"), catalog=catalog,
        ...                     channel=MemoryChannel(), queue=MemoryQueue(), store=MemoryStore())
        >>> sync.enqueue([Change("P1", ItemType.PRODUCT)])
        1
        >>> results = []
        >>> Worker(sync, on_result=results.append).run(until_idle=True)
        'idle'
        >>> [(r.reason, r.synchronized.product) for r in results]
        [('completed', 1), ('idle', 0)]

    Args:
        synchronizers: One `Synchronizer` or several (one per connector this process serves).
            They are used from the thread that calls `run`.
        idle_interval: Seconds to sleep when no connector had anything to do.
        retry_interval: Seconds before a connector is tried again after its connection check
            failed or the channel rejected the credentials; also the cap of the doubling delay
            after a retryable `BackendError`.
        on_result: Called with the `RunResult` of every `Synchronizer.run` (for logs and
            metrics); an exception it raises is logged and ignored.
        clock: Time for the sleeps (default: the first synchronizer's clock).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        synchronizers: Synchronizer | Iterable[Synchronizer],
        *,
        idle_interval: float = 5.0,
        retry_interval: float = 60.0,
        on_result: Callable[[RunResult], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        syncs = [synchronizers] if isinstance(synchronizers, Synchronizer) else list(synchronizers)
        if not syncs or not all(isinstance(s, Synchronizer) for s in syncs):
            raise InvalidArgumentError(
                "Worker takes a Synchronizer or a non-empty iterable of them",
                field="synchronizers",
            )
        self.synchronizers: tuple[Synchronizer, ...] = tuple(syncs)
        self.idle_interval = _seconds("idle_interval", idle_interval)
        self.retry_interval = _seconds("retry_interval", retry_interval)
        self.on_result = on_result
        self.clock: Clock = clock or syncs[0].clock
        self._stopping = False
        self._previous: dict[int, _Handler] = {}

    def __repr__(self) -> str:
        names = ", ".join(repr(s.connector_id) for s in self.synchronizers)
        return f"Worker(connectors=[{names}], stopping={self._stopping})"

    # -- stopping -------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stopping

    def stop(self) -> None:
        """
        Ask `run` to return after the current batch (safe from any thread or signal handler).

        A stopped worker stays stopped: a later `run` returns at once.
        """
        self._stopping = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        # A second signal of the same kind acts as it would have without the worker.
        previous = self._previous.pop(signum, signal.SIG_DFL)
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        _log.info("signal %d: stopping after the current batch", signum)

    def _install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False  # signal handlers can only be set from the main thread
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return True

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    # -- the loop -------------------------------------------------------------------------------

    def run(self, *, until_idle: bool = False, handle_signals: bool = True) -> str:
        """
        Work until stopped (or, with *until_idle*, until no connector has anything to do).

        Args:
            until_idle: Return ``"idle"`` after a round in which no connector had work, none
                was waiting for other workers' leases and none failed with a retryable
                `BackendError` (for scheduled jobs and tests); otherwise sleep and go on.
            handle_signals: Install SIGTERM and SIGINT handlers that call `stop` for the time
                of the call (only possible in the main thread; elsewhere call `stop` yourself).

        Returns:
            ``"stopped"`` or ``"idle"``.

        Raises:
            BackendError: A backend failure that is not retryable (a schema mismatch, a
                refused statement).
            Exception: Anything else a synchronizer raised (a bug, a broken catalog source).
        """
        installed = handle_signals and self._install()
        try:
            return self._loop(until_idle=until_idle)
        finally:
            if installed:
                self._restore()

    def _loop(self, *, until_idle: bool) -> str:
        count = len(self.synchronizers)
        not_before = [0.0] * count  # monotonic time before which a connector is not tried
        backend_failures = [0] * count  # consecutive retryable BackendErrors per connector
        while not self._should_stop():
            busy = again = waiting = False
            for index, sync in enumerate(self.synchronizers):
                if self._should_stop():
                    break
                if self.clock.monotonic() < not_before[index]:
                    # backing off: after a backend error there is work to retry; after a failed
                    # connection check there is nothing this worker can do for now
                    again = again or backend_failures[index] > 0
                    continue
                try:
                    result = sync.run(wait=False, should_stop=self._should_stop)
                except BackendError as exc:
                    if not exc.retryable:
                        raise
                    backend_failures[index] += 1
                    delay = min(self.retry_interval, 2.0 ** (backend_failures[index] - 1))
                    not_before[index] = self.clock.monotonic() + delay
                    again = True
                    _log.warning(
                        "connector %s: %s; trying again in %.1f s", sync.connector_id, exc, delay
                    )
                    continue
                backend_failures[index] = 0
                self._report(result)
                if result.reason in _FAILED:
                    not_before[index] = self.clock.monotonic() + self.retry_interval
                    _log.warning(
                        "connector %s: %s; trying again in %.0f s",
                        sync.connector_id,
                        "the connection check failed"
                        if result.reason == "error"
                        else "the channel rejected the credentials",
                        self.retry_interval,
                    )
                elif result.batches or result.reason in _AGAIN:
                    busy = True
                elif result.reason == "waiting":
                    again = waiting = True
            if self._should_stop():
                break
            if busy:
                continue
            if not again:
                if until_idle:
                    return "idle"
                self._sleep(self.idle_interval)
                continue
            # Waiting for other workers' leases, or retrying after a backend error: look again
            # after the shortest poll interval, or when the first back-off ends.
            now = self.clock.monotonic()
            delays = [t - now for t, n in zip(not_before, backend_failures, strict=True) if n]
            if waiting:
                delays += [s.options.poll_interval for s in self.synchronizers]
            self._sleep(max(min(delays), 0.0))
        return "stopped"

    def _should_stop(self) -> bool:
        return self._stopping

    def _report(self, result: RunResult) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(result)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the worker
            _log.warning("on_result callback raised", exc_info=True)

    def _sleep(self, seconds: float) -> None:
        deadline = self.clock.monotonic() + seconds
        while not self._should_stop():
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return
            self.clock.sleep(min(left, _SLICE))
