"""`Synchronizer.run(should_stop=...)` and `Worker`: graceful stops, idle rounds, back-off."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

import pytest

from catalogsync import (
    BackendError,
    Change,
    EventStatus,
    InvalidArgumentError,
    Item,
    ItemType,
    MemoryCatalog,
    SyncOptions,
    Worker,
)
from catalogsync.testing import MemoryChannel

from _syncenv import BACKENDS, everything, make_backends, make_sync


P = ItemType.PRODUCT


def _catalog(n: int = 30) -> MemoryCatalog:
    return MemoryCatalog([Item(f"P{i:02d}", P, fields={"title": f"t{i}"}) for i in range(n)])


@pytest.fixture(params=BACKENDS)
def backends(request, tmp_path, clock):
    """(queue, store) for each backend kind."""
    return make_backends(request.param, tmp_path, clock, request.addfinalizer)


@pytest.fixture
def memory(tmp_path, clock, request):
    """(queue, store) in memory."""
    return make_backends("memory", tmp_path, clock, request.addfinalizer)


def _leased(queue, connector_id="shop"):
    return [e.ref for e in queue.entries(connector_id, limit=1000) if e.leased_until is not None]


# -- Synchronizer.run(should_stop=...) ------------------------------------------------------------


def test_run_interrupted_finishes_its_batch_and_holds_no_lease(backends, clock):
    """should_stop turning true mid-batch: that batch is delivered and acked, nothing else."""
    queue, store = backends
    catalog = _catalog()
    asked: list[bool] = []
    stop_after_first_push = threading.Event()
    channel = MemoryChannel(clock=clock, on_push=lambda ops: stop_after_first_push.set())
    sync = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=10))
    sync.enqueue(everything(catalog))

    def should_stop():
        asked.append(stop_after_first_push.is_set())
        return stop_after_first_push.is_set()

    first = sync.run(should_stop=should_stop)

    assert first.reason == "interrupted"
    assert first.batches == 1
    assert first.synchronized.product == 10
    assert len(channel.listings) == 10
    assert asked == [False, True]  # asked before every batch
    assert first.status is EventStatus.IN_PROGRESS
    assert _leased(queue) == []
    assert queue.counts("shop").total == 20
    second = sync.run()
    assert second.reason == "completed"
    assert second.event.id == first.event.id
    assert len(channel.listings) == 30
    assert channel.duplicates() == {}


def test_run_interrupted_while_waiting_for_other_workers(memory, clock):
    """A worker polling for leases held by another returns "interrupted" when asked to stop."""
    queue, store = memory
    catalog = _catalog(3)
    sync = make_sync(
        queue, store, clock, catalog, options=SyncOptions(batch_size=1, poll_interval=1)
    )
    sync.enqueue(everything(catalog))
    assert sync.run(max_batches=1).reason == "limit"  # the event runs
    queue.lease("shop", owner="other", limit=10, ttl=timedelta(minutes=5))
    polls: list[float] = []

    def should_stop():
        polls.append(clock.monotonic())
        return len(polls) > 3

    result = sync.run(should_stop=should_stop)

    assert result.reason == "interrupted"
    assert result.batches == 0
    assert polls[-1] - polls[1] == pytest.approx(2.0)  # it polled once a second meanwhile


# -- Worker ---------------------------------------------------------------------------------------


def test_worker_serves_several_connectors_until_idle(memory, clock):
    """until_idle: every connector's event completes, then the worker returns "idle"."""
    queue, store = memory
    catalog = _catalog(12)
    channels = {cid: MemoryChannel(clock=clock) for cid in ("a", "b")}
    syncs = [
        make_sync(
            queue,
            store,
            clock,
            catalog,
            channels[cid],
            connector_id=cid,
            options=SyncOptions(batch_size=5),
        )
        for cid in channels
    ]
    for s in syncs:
        s.enqueue(everything(catalog))
    results = []

    reason = Worker(syncs, on_result=results.append).run(until_idle=True)

    assert reason == "idle"
    assert [len(c.listings) for c in channels.values()] == [12, 12]
    assert [r.reason for r in results] == ["completed", "completed", "idle", "idle"]
    assert [r.batches for r in results[:2]] == [3, 3]
    for s in syncs:
        [event] = s.register.events(s.connector_id).items
        assert event.status is EventStatus.COMPLETED


def test_worker_stop_finishes_the_batch(memory, clock):
    """stop() from a callback: the batch in hand is finished and acked, the worker returns."""
    queue, store = memory
    catalog = _catalog()
    holder: list[Worker] = []
    channel = MemoryChannel(clock=clock, on_push=lambda ops: holder[0].stop())
    sync = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=10))
    sync.enqueue(everything(catalog))
    results = []
    worker = Worker(sync, on_result=results.append)
    holder.append(worker)

    assert worker.run() == "stopped"
    assert worker.stopping
    assert [(r.reason, r.batches) for r in results] == [("interrupted", 1)]
    assert len(channel.listings) == 10
    assert _leased(queue) == []
    assert worker.run() == "stopped"  # a stopped worker stays stopped
    assert len(channel.listings) == 10


def test_sigterm_stops_gracefully_and_a_second_one_acts_as_before(memory, clock):
    """SIGTERM mid-push finishes the batch; a second SIGTERM reaches the previous handler."""
    queue, store = memory
    catalog = _catalog()
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:

        def on_push(ops):
            if not seen:
                os.kill(os.getpid(), signal.SIGTERM)  # the worker's handler: stop after this
                os.kill(os.getpid(), signal.SIGTERM)  # the handler from before the worker

        channel = MemoryChannel(clock=clock, on_push=on_push)
        sync = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=10))
        sync.enqueue(everything(catalog))
        results = []

        reason = Worker(sync, on_result=results.append).run()

        assert reason == "stopped"
        assert seen == [signal.SIGTERM]
        assert [(r.reason, r.batches) for r in results] == [("interrupted", 1)]
        assert len(channel.listings) == 10
        assert _leased(queue) == []
        installed = signal.getsignal(signal.SIGTERM)
        assert installed is not None
        assert getattr(installed, "__self__", None) is None  # the worker's handler is gone
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_worker_outside_the_main_thread_installs_no_handler(memory, clock):
    """In another thread the worker runs without signal handlers (stop() still works)."""
    queue, store = memory
    catalog = _catalog(4)
    sync = make_sync(queue, store, clock, catalog)
    sync.enqueue(everything(catalog))
    before = signal.getsignal(signal.SIGTERM)
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(Worker(sync).run(until_idle=True)))
    thread.start()
    thread.join()

    assert out == ["idle"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_failed_connection_check_backs_off(memory, clock):
    """A channel that fails its check opens one ERROR event per retry_interval, not per round."""
    queue, store = memory
    catalog = _catalog(3)
    sync = make_sync(queue, store, clock, catalog, MemoryChannel(clock=clock, auth_error=True))
    sync.enqueue(everything(catalog))
    start = clock.monotonic()
    holder: list[Worker] = []

    def on_result(result):
        if clock.monotonic() - start >= 300:
            holder[0].stop()

    worker = Worker(sync, idle_interval=5, retry_interval=60, on_result=on_result)
    holder.append(worker)

    assert worker.run() == "stopped"
    events = sync.register.events("shop")
    assert {e.status for e in events.items} == {EventStatus.ERROR}
    assert events.total == 6  # at 0, 60, ..., 300 s
    assert Worker(sync, retry_interval=60).run(until_idle=True) == "idle"  # nothing doable


class _FlakyQueue:
    """A queue whose first *n* leases fail with a BackendError."""

    def __init__(self, queue, n, *, retryable=True):
        self._queue = queue
        self.failures = n
        self.retryable = retryable
        self.failed_at: list[float] = []

    def __getattr__(self, name):
        return getattr(self._queue, name)

    def lease(self, *args, **kw):
        if self.failures:
            self.failures -= 1
            self.failed_at.append(self.clock.monotonic())
            raise BackendError("connection lost", retryable=self.retryable)
        return self._queue.lease(*args, **kw)


def test_retryable_backend_errors_are_retried_with_a_doubling_delay(memory, clock):
    """Lost connections: the worker retries after 1, 2, 4 s, then completes the event."""
    queue, store = memory
    flaky = _FlakyQueue(queue, 3)
    flaky.clock = clock
    catalog = _catalog(5)
    channel = MemoryChannel(clock=clock)
    sync = make_sync(flaky, store, clock, catalog, channel)
    sync.enqueue(everything(catalog))

    assert Worker(sync).run(until_idle=True) == "idle"
    gaps = [b - a for a, b in zip(flaky.failed_at, flaky.failed_at[1:], strict=False)]
    assert gaps == [pytest.approx(1.0), pytest.approx(2.0)]
    assert len(channel.listings) == 5
    [event] = sync.register.events("shop").items
    assert event.status is EventStatus.COMPLETED


def test_other_backend_errors_end_the_worker(memory, clock):
    """A BackendError that is not retryable propagates out of run()."""
    queue, store = memory
    flaky = _FlakyQueue(queue, 1, retryable=False)
    flaky.clock = clock
    catalog = _catalog(2)
    sync = make_sync(flaky, store, clock, catalog)
    sync.enqueue(everything(catalog))

    with pytest.raises(BackendError, match="connection lost"):
        Worker(sync).run(until_idle=True)


def test_worker_waits_for_a_crashed_workers_leases(memory, clock):
    """Items leased by a worker that died come back after their ttl and are delivered."""
    queue, store = memory
    catalog = _catalog(6)
    channel = MemoryChannel(clock=clock)
    sync = make_sync(
        queue, store, clock, catalog, channel, options=SyncOptions(batch_size=3, poll_interval=1)
    )
    sync.enqueue(everything(catalog))
    assert sync.run(max_batches=1).reason == "limit"  # the event runs
    dead = queue.lease("shop", owner="dead", limit=3, ttl=timedelta(seconds=30))
    start = clock.monotonic()

    assert Worker(sync).run(until_idle=True) == "idle"
    assert clock.monotonic() - start >= 30
    assert sorted(k[1] for k in channel.listings) == sorted(i.ref for i in catalog.items(P))
    assert {lease.ref for lease in dead} <= {k[1] for k in channel.listings}
    [event] = sync.register.events("shop").items
    assert event.status is EventStatus.COMPLETED


def test_worker_checks_its_arguments(memory, clock):
    """Bad arguments are typed errors naming the field."""
    queue, store = memory
    sync = make_sync(queue, store, clock, _catalog(1))
    for kwargs, field in [
        ({"synchronizers": []}, "synchronizers"),
        ({"synchronizers": [object()]}, "synchronizers"),
        ({"synchronizers": sync, "idle_interval": -1}, "idle_interval"),
        ({"synchronizers": sync, "retry_interval": "soon"}, "retry_interval"),
    ]:
        with pytest.raises(InvalidArgumentError) as info:
            Worker(**kwargs)
        assert info.value.field == field
    assert "'shop'" in repr(Worker(sync))


def test_a_broken_result_callback_does_not_stop_the_worker(memory, clock):
    """on_result raising is logged and ignored."""
    queue, store = memory
    catalog = _catalog(3)
    sync = make_sync(queue, store, clock, catalog)
    sync.enqueue([Change("P00", P)])

    def boom(result):
        raise RuntimeError("metrics are down")

    assert Worker(sync, on_result=boom).run(until_idle=True) == "idle"
    assert sync.register.events("shop").items[0].status is EventStatus.COMPLETED
