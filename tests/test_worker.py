"""`Synchronizer.run(should_stop=...)`: a graceful stop after the batch in hand."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from catalogsync import (
    EventStatus,
    Item,
    ItemType,
    MemoryCatalog,
    SyncOptions,
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
