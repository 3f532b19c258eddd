"""
Crashes at each point of the commit order, in-process and deterministic (memory and SQLite).

A `Trap` raises `Crash` (a `BaseException` nothing in catalogsync catches) at a chosen point, the
way a killed process stops there; the test then lets the leases expire on the manual clock and a
new worker takes over. The subprocess campaign (``test_campaign_crash.py``) does the same with
real SIGKILLs at random hits; these tests pin each point down.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalogsync import (
    Change,
    Connector,
    Item,
    ItemAction,
    ItemState,
    MemoryQueue,
    MemoryStore,
    Synchronizer,
    SyncOptions,
    Trigger,
)
from catalogsync.testing import MemoryChannel

from _campaign import Crash, Trap, TrapChannel, TrapQueue, TrapStore
from _syncenv import BACKENDS, C, P, V, everything, make_backends, make_sync, shoe_catalog


TTL = timedelta(seconds=30)
OPTIONS = SyncOptions(batch_size=3, lease_ttl=TTL, heartbeat=False)
POINTS = ["lease:2", "push.before:2", "push.after:2", "commit.after:2", "ack.after:2"]


def worker(queue, store, clock, catalog, channel, trap=None):
    """A synchronizer whose queue, store and channel report to *trap*."""
    trap = trap or Trap(None)
    return make_sync(
        TrapQueue(queue, trap),
        TrapStore(store, trap),
        clock,
        catalog,
        TrapChannel(channel, trap),
        options=OPTIONS,
    )


def crash_then_finish(queue, store, clock, catalog, channel, armed, *, refresh=False):
    """Run a worker that dies at *armed*; let its leases expire; run another to the end."""
    first = worker(queue, store, clock, catalog, channel, Trap(armed))
    with pytest.raises(Crash):
        if refresh:
            first.force_refresh()
        first.run()
    clock.advance(TTL + timedelta(seconds=1))
    return worker(queue, store, clock, catalog, channel).run()


def statuses(sync, event_id):
    """The item statuses of an event, by (type, ref)."""
    page = sync.register.items("shop", event_id=event_id, limit=1000)
    return {s.key: s for s in page}


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("armed", POINTS)
def test_a_crash_at_any_commit_point_loses_and_duplicates_nothing(
    request, kind, armed, tmp_path, clock
):
    """Dying at any point of lease -> push -> commit -> ack costs at most a re-send: every item
    ends in the channel once, with a DONE status in the one event, and counted once.
    """
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock)
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    worker(queue, store, clock, catalog, channel).enqueue(everything(catalog))

    result = crash_then_finish(queue, store, clock, catalog, channel, armed)

    sync = worker(queue, store, clock, catalog, channel)
    done = statuses(sync, result.event.id)
    assert result.reason == "completed"
    assert sync.register.events("shop").total == 1
    assert channel.duplicates() == {}
    assert set(channel.listings) == {(t, i.ref) for t in (C, P, V) for i in catalog.items(t)}
    assert {s.state for s in done.values()} == {ItemState.DONE}
    assert len(done) == len(catalog)
    assert result.event.synchronized.total == len(catalog)
    assert queue.counts("shop").total == 0


@pytest.mark.parametrize("kind", BACKENDS)
def test_force_refresh_resends_nothing_it_delivered_before_a_crash(request, kind, tmp_path, clock):
    """A force refresh that died after a commit but before the ack does not send that batch
    again: the items were delivered in this very refresh, with the same payload. Each item is
    sent once by the refresh and counted once.
    """
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock)
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    setup = worker(queue, store, clock, catalog, channel)
    setup.enqueue(everything(catalog))
    assert setup.run().reason == "completed"
    sent_before = len(channel.log)

    result = crash_then_finish(
        queue, store, clock, catalog, channel, "commit.after:1", refresh=True
    )

    refreshed = channel.log[sent_before:]
    keys = [(t, ref) for _action, t, ref in refreshed]
    done = statuses(worker(queue, store, clock, catalog, channel), result.event.id)
    assert result.reason == "completed"
    assert result.event.trigger is Trigger.FORCE_REFRESH
    assert sorted(keys) == sorted(set(keys)), "an item was sent twice by one force refresh"
    assert set(keys) == set(channel.listings)
    assert result.event.synchronized.total == len(done) == len(catalog)
    assert all(s.action is ItemAction.UPDATE for s in done.values())


@pytest.mark.parametrize("kind", BACKENDS)
def test_failed_items_are_counted_once_after_a_crash_between_commit_and_ack(
    request, kind, tmp_path, clock
):
    """An invalid item re-delivered after a crash that followed its commit is one failure, not
    two: the event's failed count equals its ERROR statuses.
    """
    catalog = shoe_catalog()
    catalog.put(Item("P9", P, fields={"title": ""}))
    channel = MemoryChannel(clock=clock)
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    worker(queue, store, clock, catalog, channel).enqueue(everything(catalog))

    # batches of 3: [C1 C2 | P1] (two commits), then [P2 P3 P9]: die after its commit
    result = crash_then_finish(queue, store, clock, catalog, channel, "commit.after:3")

    done = statuses(worker(queue, store, clock, catalog, channel), result.event.id)
    errors = [s for s in done.values() if s.state is ItemState.ERROR]
    assert [s.ref for s in errors] == ["P9"]
    assert result.event.failed.total == len(errors)


@pytest.mark.parametrize("kind", BACKENDS)
def test_force_refresh_interrupted_while_queueing_still_refreshes(request, kind, tmp_path, clock):
    """A force refresh that died while its queue was being replaced leaves no refresh event
    behind (never one completed with nothing sent); the caller, whose call never returned, calls
    it again, and the refresh then restores the channel.
    """
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock)
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    setup = worker(queue, store, clock, catalog, channel)
    setup.enqueue(everything(catalog))
    assert setup.run().reason == "completed"
    channel.listings.clear()  # the channel lost everything: a force refresh is the cure

    first = worker(queue, store, clock, catalog, channel, Trap("replace:3"))
    with pytest.raises(Crash):
        first.force_refresh()
    events = setup.register.events("shop").items
    assert [e.trigger for e in events] == [Trigger.INCREMENTAL]  # no half-made refresh event

    again = worker(queue, store, clock, catalog, channel)
    again.force_refresh()
    result = again.run()

    assert result.event.trigger is Trigger.FORCE_REFRESH
    assert result.event.synchronized.total == len(catalog)
    assert set(channel.listings) == {(t, i.ref) for t in (C, P, V) for i in catalog.items(t)}


def test_shopify_products_rendered_before_their_collections_had_ids_are_sent_again(clock):
    """A worker dies after Shopify created the collections but before their GIDs were stored;
    the next worker sends products meanwhile, without those GIDs. Once the collections' GIDs are
    stored, the products are rendered again and end up in their collections.
    """
    from _campaignchannels import check_channel, make_catalog, make_channel, make_emulator

    catalog = make_catalog("shopify", 12, 1)
    emulator = make_emulator("shopify", catalog, clock=clock, sleep=clock.sleep)
    client = emulator.client()
    channel = make_channel("shopify", client=client, clock=clock, concurrency=1)
    queue, store = MemoryQueue(clock=clock), MemoryStore(clock=clock)
    options = SyncOptions(batch_size=4, lease_ttl=TTL, heartbeat=False, poll_interval=5)

    def shopify_worker(trap=None):
        trap = trap or Trap(None)
        return Synchronizer(
            Connector("shop", "shopify"),
            catalog=catalog,
            channel=TrapChannel(channel, trap),
            queue=TrapQueue(queue, trap),
            store=TrapStore(store, trap),
            clock=clock,
            options=options,
        )

    shopify_worker().enqueue(Change(i.ref, t) for t in (C, P, V) for i in catalog.items(t))
    with pytest.raises(Crash):
        shopify_worker(Trap("push.after:1")).run()  # the four collections exist in Shopify
    result = shopify_worker().run()  # products first; the collections' batch once it expires
    client.close()

    assert result.reason == "completed"
    assert check_channel("shopify", emulator, catalog) == []
