"""The synchronization rules R01-R15 (DESIGN §2), each against the memory and SQLite backends."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from catalogsync import (
    Change,
    ChangeKind,
    ConnectorParams,
    DeletionMode,
    Endpoint,
    ErrorKind,
    EventStatus,
    ExportStatus,
    Item,
    ItemAction,
    ItemState,
    Mode,
    SyncOptions,
    Trigger,
    Visibility,
)
from catalogsync.testing import MemoryChannel
from catalogsync.typing import Capabilities

from _syncenv import (
    C,
    P,
    V,
    everything,
    keys,
    make_sync,
    pushed,
    shoe_catalog,
)


@pytest.fixture
def catalog():
    """The shoe catalog."""
    return shoe_catalog()


@pytest.fixture
def channel(clock):
    """A memory channel."""
    return MemoryChannel(clock=clock)


@pytest.fixture
def sync(backends, clock, catalog, channel):
    """A synchronizer over the shoe catalog, already fully synchronized once."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    assert s.run().reason == "completed"
    channel.log.clear()
    clock.advance(60)
    return s


# -- R01 ----------------------------------------------------------------------------------------


def test_r01_variant_change_rerenders_its_product(sync, catalog, channel):
    """Changing a variant re-renders its product; unchanged siblings are not sent again."""
    catalog.put(Item("V1", V, fields={"sku": "TS-40", "price": 95}, parents=["P1"]))
    sync.enqueue([Change("V1", V)])
    result = sync.run()

    assert sorted(pushed(channel)) == [("update", "product", "P1"), ("update", "variant", "V1")]
    assert channel.listings[(P, "P1")]["variants"][0]["fields"]["price"] == 95
    assert result.synchronized.product == 1
    assert result.synchronized.variant == 1
    assert result.unchanged.variant == 0


def test_r01_category_rename_rerenders_products_naming_it(sync, catalog, channel):
    """Renaming a category re-renders the products whose payload names it, and only those."""
    catalog.put(
        Item("C1", C, fields={"title": {"en": "Footwear", "es": "Calzado"}}, tags={"launch"})
    )
    sync.enqueue([Change("C1", C)])
    result = sync.run()

    assert sorted(pushed(channel)) == [
        ("update", "category", "C1"),
        ("update", "product", "P1"),
        ("update", "product", "P3"),
    ]
    assert channel.listings[(P, "P3")]["categories"][0]["title"] == "Footwear"
    assert result.unchanged.variant == 0  # variants do not read categories: never expanded


def test_r01_deleted_variant_uses_remembered_relations(sync, catalog, channel):
    """A variant removed from the PIM re-renders the product it belonged to when it was sent."""
    catalog.remove(V, "V2")
    sync.enqueue([Change("V2", V, ChangeKind.DELETE)])
    sync.run()

    assert ("delete", "variant", "V2") in pushed(channel)
    assert [v["ref"] for v in channel.listings[(P, "P1")]["variants"]] == ["V1"]


def test_r01_moved_variant_rerenders_old_and_new_product(sync, catalog, channel):
    """A variant moved to another product re-renders both products."""
    catalog.put(Item("V2", V, fields={"sku": "TS-41", "price": 92}, parents=["P2"]))
    sync.enqueue([Change("V2", V)])
    sync.run()

    assert [v["ref"] for v in channel.listings[(P, "P1")]["variants"]] == ["V1"]
    assert [v["ref"] for v in channel.listings[(P, "P2")]["variants"]] == ["V3", "V2"]


# -- R02 ----------------------------------------------------------------------------------------


def test_r02_unchanged_items_are_not_sent(sync, catalog, channel):
    """Re-enqueueing an unchanged catalog sends nothing and counts everything unchanged."""
    sync.enqueue(everything(catalog))
    result = sync.run()

    assert channel.log == []
    assert result.unchanged.total == 8
    assert result.synchronized.total == 0
    assert result.event.status is EventStatus.COMPLETED


def test_r02_irrelevant_items_are_not_sent(backends, clock, catalog, channel):
    """Items outside the connector's filter are not sent and get no status."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, params=ConnectorParams(families={"socks"}))
    s.enqueue(everything(catalog))
    result = s.run()

    assert channel.refs(P) == {"P2"}
    assert channel.refs(V) == {"V3"}
    assert channel.refs(C) == {"C2"}  # C1 has no exportable product
    assert keys(s.register.items("shop", limit=100)) == {
        ("category", "C2"),
        ("product", "P2"),
        ("variant", "V3"),
    }
    assert result.skipped.total == 5


# -- R03 ----------------------------------------------------------------------------------------


def test_r03_editing_a_connector_starts_nothing(backends, clock, catalog, channel):
    """Saving new settings creates no event and sends nothing."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel)
    s.update_connector(params=ConnectorParams(language="es", overwrite_stock=True))
    s.set_active(False)
    s.set_active(True)

    assert s.register.events("shop").total == 0
    assert channel.pushes == 0
    assert s.run().reason == "idle"
    assert s.register.events("shop").total == 0


# -- R04 ----------------------------------------------------------------------------------------


def test_r04_changes_during_an_event_join_it(backends, clock, catalog, channel):
    """Changes enqueued while an event runs raise its pending counts and are done in it."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=2))
    s.enqueue([Change("C1", C), Change("P3", P)])
    first = s.run(max_batches=1)
    assert first.reason == "limit"
    event_id = first.event.id

    catalog.put(Item("P4", P, fields={"title": "Insole", "price": 5}, parents=["C2"]))
    s.enqueue([Change("P4", P)])
    assert s.register.event(event_id).pending.product >= 1
    final = s.run()

    assert final.event.id == event_id
    assert final.reason == "completed"
    assert ("product", "P4") in keys(s.register.items("shop", event_id=event_id, limit=100))
    assert len(s.register.events("shop").items) == 1


# -- R05 ----------------------------------------------------------------------------------------


def test_r05_force_refresh_sends_everything_and_deletes_nothing(sync, catalog, channel, clock):
    """Force refresh replaces the queue, resends unchanged items, stores hashes, deletes nothing."""
    catalog.remove(P, "P2")
    catalog.remove(V, "V3")
    sync.enqueue([Change("P2", P, ChangeKind.DELETE), Change("V3", V, ChangeKind.DELETE)])
    before = channel.pushes
    event = sync.force_refresh()

    assert event.trigger is Trigger.FORCE_REFRESH
    assert event.status is EventStatus.IN_PROGRESS
    assert channel.pushes == before  # queued like any other work, never instant
    result = sync.run()

    assert result.event.id == event.id
    assert {a for a, _, _ in pushed(channel)} <= {"create", "update"}
    assert {(t, r) for _, t, r in pushed(channel)} >= {
        ("product", "P1"),
        ("product", "P3"),
        ("variant", "V1"),
    }
    assert (P, "P2") in channel.listings  # never deleted by a force refresh
    assert result.synchronized.total == 5  # C1, P1, P3, V1, V2 (C2 is now empty: not exported)
    channel.log.clear()
    sync.enqueue([Change(r, t) for t, r in [(C, "C1"), (P, "P1"), (P, "P3"), (V, "V1"), (V, "V2")]])
    assert sync.run().unchanged.total == 5  # hashes were stored


def test_r05_force_refresh_supersedes_a_running_event(backends, clock, catalog, channel):
    """A force refresh closes the running event as superseded and starts its own."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=1))
    s.enqueue(everything(catalog))
    running = s.run(max_batches=1).event
    forced = s.force_refresh()
    old = s.register.event(running.id)

    assert old.status is EventStatus.COMPLETED
    assert old.superseded_by == forced.id
    assert s.run().event.id == forced.id
    assert channel.refs(P) == {"P1", "P2", "P3"}


def test_r05_force_refresh_does_not_deactivate(sync, catalog, channel):
    """With status mapping, invisible items (and the variants of an invisible product, which
    channels disable with it) are not deactivated by a force refresh.
    """
    sync.update_connector(params=ConnectorParams(map_status=True))
    catalog.put(attrs.evolve(catalog.get(P, ["P3"])["P3"], visibility=Visibility.INVISIBLE))
    catalog.put(attrs.evolve(catalog.get(P, ["P1"])["P1"], visibility=Visibility.INVISIBLE))
    sync.force_refresh()
    result = sync.run()

    assert channel.listings[(P, "P3")]["status"] == "active"
    sent = {(t, r) for _, t, r in pushed(channel)}
    assert not sent & {("product", "P3"), ("product", "P1"), ("variant", "V1"), ("variant", "V2")}
    assert result.skipped.variant == 2


# -- R06 ----------------------------------------------------------------------------------------


def test_r06_hash_is_stored_only_after_the_channel_accepted(backends, clock, catalog):
    """A rejected item keeps no hash, so the next run sends it again."""
    queue, store = backends
    channel = MemoryChannel(clock=clock, reject={"P3": "SKU already exists"})
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    first = s.run()
    assert first.failed.product == 1
    channel.reject.clear()
    s.enqueue([Change("P3", P)])
    second = s.run()

    assert second.synchronized.product == 1
    assert store.sent_states("shop", P, ["P3"])["P3"].hash.startswith("v1:")


def test_r06_redelivery_is_not_counted_twice(backends, clock, catalog, channel):
    """An item delivered and queued again in the same event is neither resent nor recounted."""
    queue, store = backends
    once = {"done": False}

    def requeue(progress):
        if not once["done"]:
            once["done"] = True
            queue.enqueue("shop", [Change("P3", P)])  # a duplicate delivery of the same change

    s = make_sync(
        queue,
        store,
        clock,
        catalog,
        channel,
        options=SyncOptions(batch_size=1),
        on_progress=requeue,
    )
    queue.enqueue("shop", [Change("P3", P), Change("P1", P)])
    result = s.run()

    assert [r for _, t, r in pushed(channel) if t == "product"] == ["P3", "P1"]
    assert result.event.synchronized.product == 2
    assert result.event.unchanged.product == 0


# -- R07 ----------------------------------------------------------------------------------------


def test_r07_filter_change_during_an_event_applies_next_time(backends, clock, catalog, channel):
    """A running event keeps the filter of its snapshot; the new filter applies to the next."""
    queue, store = backends
    s = make_sync(
        queue,
        store,
        clock,
        catalog,
        channel,
        options=SyncOptions(batch_size=3),
        params=ConnectorParams(tags={"launch"}),
    )
    s.enqueue(everything(catalog))
    first = s.run(max_batches=1)
    s.update_connector(params=ConnectorParams(families={"socks"}))
    done = s.run()

    assert done.event.id == first.event.id
    assert done.event.snapshot.params.tags == {"launch"}
    assert channel.refs(P) == {"P1"}
    catalog.put(
        Item("P2", P, fields={"title": "Wool sock 2", "price": 9}, parents=["C2"], family="socks")
    )
    s.enqueue([Change("P2", P)])
    nxt = s.run()
    assert nxt.event.id != first.event.id
    assert "P2" in channel.refs(P)


# -- R08 / R09 ----------------------------------------------------------------------------------


def test_r08_deactivation_pauses_after_the_current_batch(backends, clock, catalog):
    """Deactivating mid-run lets the batch in flight finish, then the event is PAUSED."""
    queue, store = backends
    holder = {}

    def deactivate(ops):
        if not holder.get("done"):
            holder["done"] = True
            holder["sync"].set_active(False)

    channel = MemoryChannel(clock=clock, on_push=deactivate)
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=2))
    holder["sync"] = s
    s.enqueue(everything(catalog))
    result = s.run()

    assert result.reason == "paused"
    assert result.event.status is EventStatus.PAUSED
    assert result.synchronized.total == 2  # the batch in flight finished
    assert result.event.pending.total == 6
    assert s.run().reason == "paused"  # stays paused while inactive


def test_r09_resume_continues_the_same_event_with_its_snapshot(backends, clock, catalog, channel):
    """Reactivating resumes the same event, IN_PROGRESS again, with the original settings."""
    queue, store = backends
    s = make_sync(
        queue,
        store,
        clock,
        catalog,
        channel,
        options=SyncOptions(batch_size=2),
        params=ConnectorParams(language="en"),
    )
    s.enqueue(everything(catalog))
    s.run(max_batches=1)
    s.set_active(False)
    paused = s.run()
    assert paused.event.status is EventStatus.PAUSED
    s.update_connector(params=ConnectorParams(language="es"), active=True)
    resumed = s.run()

    assert resumed.event.id == paused.event.id
    assert resumed.event.status is EventStatus.COMPLETED
    assert resumed.event.snapshot.params.language == "en"
    assert channel.listings[(P, "P1")]["fields"]["title"] == "Trail shoe"


def test_r09_force_refresh_applies_new_settings_to_an_interrupted_event(
    backends, clock, catalog, channel
):
    """A force refresh is how new settings reach an interrupted synchronization."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=2))
    s.enqueue(everything(catalog))
    s.run(max_batches=1)
    s.update_connector(params=ConnectorParams(language="es"))
    s.force_refresh()
    s.run()

    assert channel.listings[(P, "P1")]["fields"]["title"] == "Zapatilla"


# -- R10 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("map_status", "expected"),
    [
        (False, {"P1": "active", "P2": "active", "P3": "active"}),
        (True, {"P1": "active", "P2": "draft", "P3": "archived"}),
    ],
)
def test_r10_status_mapping(backends, clock, catalog, channel, map_status, expected):
    """Without mapping everything is active; with it visible/draft/invisible -> active/draft/archived."""
    queue, store = backends
    catalog.put(attrs.evolve(catalog.get(P, ["P2"])["P2"], visibility=Visibility.DRAFT))
    catalog.put(attrs.evolve(catalog.get(P, ["P3"])["P3"], visibility=Visibility.INVISIBLE))
    s = make_sync(
        queue,
        store,
        clock,
        catalog,
        channel,
        params=ConnectorParams(export_status=ExportStatus.ALL, map_status=map_status),
    )
    s.enqueue(everything(catalog))
    s.run()

    assert {r: channel.listings[(P, r)]["status"] for r in expected} == expected


# -- R11 ----------------------------------------------------------------------------------------


def test_r11_test_mode_uses_the_test_surface_and_keeps_no_state(backends, clock, catalog, channel):
    """TEST mode flags every status with the test endpoint and never records sent state."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, params=ConnectorParams(mode=Mode.TEST))
    s.enqueue(everything(catalog))
    first = s.run()
    statuses = s.register.items("shop", limit=100)

    assert first.synchronized.total == 8
    assert {st.endpoint for st in statuses} == {Endpoint.TEST}
    assert channel.listings == {}
    assert store.sent_states("shop", P, ["P1"]) == {}
    s.enqueue([Change("P1", P)])
    assert s.run().synchronized.product == 1  # not skipped as unchanged: nothing was stored


# -- R12 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        ConnectorParams(tags={"launch"}, disable_deletions=True, export_status="only_visible"),
        ConnectorParams(refs={"P1", "C1"}, disable_deletions=True, export_status="only_visible"),
    ],
)
def test_r12_first_sync_narrowed_to_a_tag_or_one_item(backends, clock, catalog, channel, params):
    """A first sync can be narrowed to a tag or a single item, with deletions disabled."""
    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, params=params)
    s.enqueue(everything(catalog))
    s.run()

    assert channel.refs(P) == {"P1"}
    assert channel.refs(V) == {"V1", "V2"}  # variants follow their product
    assert channel.refs(C) == {"C1"}
    catalog.remove(P, "P1")
    s.enqueue([Change("P1", P, ChangeKind.DELETE)])
    s.run()
    assert (P, "P1") in channel.listings  # deletions disabled


# -- R13 ----------------------------------------------------------------------------------------


def test_r13_every_problem_of_an_item_is_reported_at_once(backends, clock, catalog, channel):
    """An item with two problems gets both errors; the rest of the event completes."""
    queue, store = backends
    catalog.put(Item("P3", P, fields={"title": " ", "price": -1}, parents=["C1"]))
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    result = s.run()
    [failed] = s.register.items("shop", state="error").items

    assert failed.ref == "P3"
    assert {(e.kind, e.field) for e in failed.errors} == {
        (ErrorKind.VALIDATION, "title"),
        (ErrorKind.VALIDATION, "price"),
    }
    assert result.event.status is EventStatus.COMPLETED
    assert result.event.has_errors
    assert channel.refs(P) == {"P1", "P2"}


# -- R14 ----------------------------------------------------------------------------------------


def test_r14_failed_items_can_be_retried_without_force_refresh(backends, clock, catalog):
    """A RETRY event re-sends the failed items of an event, and only those."""
    queue, store = backends
    channel = MemoryChannel(clock=clock, reject={"P2": "barcode taken", "V1": "bad option"})
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    first = s.run().event
    assert first.failed.total == 2
    channel.reject.clear()
    channel.log.clear()
    retry = s.retry(first.id)
    result = s.run()

    assert retry.trigger is Trigger.RETRY
    assert retry.retry_of == first.id
    assert result.event.id == retry.id
    assert result.event.failed.total == 0
    assert {("product", "P2"), ("variant", "V1")} <= {(t, r) for _, t, r in pushed(channel)}
    assert ("product", "P3") not in {(t, r) for _, t, r in pushed(channel)}


def test_r14_retry_refuses_while_an_event_runs_or_without_failures(
    backends, clock, catalog, channel
):
    """Retry needs failed items and no running event."""
    from catalogsync import ConflictError

    queue, store = backends
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=1))
    s.enqueue(everything(catalog))
    running = s.run(max_batches=1).event
    with pytest.raises(ConflictError):
        s.retry(running.id)
    done = s.run().event
    with pytest.raises(ConflictError, match="no failed items"):
        s.retry(done.id)


# -- R15 ----------------------------------------------------------------------------------------


def test_r15_deleted_items_are_deleted(sync, catalog, channel):
    """An item deleted from the PIM is deleted in the channel, with its carried state forgotten."""
    catalog.remove(P, "P3")
    sync.enqueue([Change("P3", P, ChangeKind.DELETE)])
    result = sync.run()

    assert ("delete", "product", "P3") in pushed(channel)
    assert (P, "P3") not in channel.listings
    assert result.synchronized.product == 1


def test_r15_unexportable_items_are_removed(sync, catalog, channel):
    """An item made unexportable (invisible under only-visible) is removed like a deletion."""
    sync.update_connector(params=ConnectorParams(export_status="only_visible"))
    catalog.put(attrs.evolve(catalog.get(P, ["P3"])["P3"], visibility=Visibility.INVISIBLE))
    sync.enqueue([Change("P3", P)])
    sync.run()

    assert (P, "P3") not in channel.listings


def test_r15_archive_mode_and_disable_deletions(sync, catalog, channel):
    """deletion=archive archives; disable_deletions keeps the item and says so."""
    sync.update_connector(params=ConnectorParams(deletion=DeletionMode.ARCHIVE))
    catalog.remove(P, "P3")
    sync.enqueue([Change("P3", P, ChangeKind.DELETE)])
    sync.run()
    assert channel.listings[(P, "P3")]["status"] == "archived"

    sync.update_connector(params=ConnectorParams(disable_deletions=True))
    catalog.remove(P, "P2")
    sync.enqueue([Change("P2", P, ChangeKind.DELETE)])
    result = sync.run()
    [status] = sync.register.items("shop", ref="P2", item_type="product").items
    assert (P, "P2") in channel.listings
    assert status.action is ItemAction.SKIP
    assert "deletions are disabled" in status.message
    assert result.skipped.product == 1


def test_r15_channel_without_delete_archives_instead(backends, clock, catalog):
    """When the channel cannot delete, the removal archives and the status says why."""
    queue, store = backends
    channel = MemoryChannel(clock=clock, capabilities=Capabilities(removals={ItemAction.ARCHIVE}))
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    s.run()
    catalog.remove(P, "P3")
    s.enqueue([Change("P3", P, ChangeKind.DELETE)])
    s.run()
    [status] = s.register.items("shop", ref="P3", item_type="product").items

    assert channel.listings[(P, "P3")]["status"] == "archived"
    assert status.action is ItemAction.ARCHIVE
    assert "cannot delete" in status.message


def test_r15_never_during_force_refresh(sync, catalog, channel):
    """A deletion queued before a force refresh is dropped by it, not exported."""
    catalog.remove(P, "P3")
    sync.enqueue([Change("P3", P, ChangeKind.DELETE)])
    sync.force_refresh()
    sync.run()

    assert (P, "P3") in channel.listings
    assert all(a != "delete" for a, _, _ in pushed(channel))


def test_r15_expired_lease_is_redelivered_after_a_crash(backends, clock, catalog):
    """A worker that dies between push and commit leaves items that the next worker completes,
    with no duplicate in the channel.
    """
    queue, store = backends
    crash = {"armed": True}

    class Crash(BaseException):
        pass

    def die(ops):
        if crash["armed"] and any(o.ref == "P2" for o in ops):
            crash["armed"] = False
            for op in ops:  # the channel applies the batch, then the process dies
                channel._apply(op, Endpoint.PRODUCTION)
            raise Crash

    channel = MemoryChannel(clock=clock, on_push=die)
    s = make_sync(
        queue, store, clock, catalog, channel, options=SyncOptions(batch_size=2, lease_ttl=30)
    )
    s.enqueue(everything(catalog))
    with pytest.raises(Crash):
        s.run()
    clock.advance(timedelta(seconds=31))
    s2 = make_sync(queue, store, clock, catalog, channel)
    result = s2.run()

    assert result.reason == "completed"
    assert channel.duplicates() == {}
    assert channel.refs(P) == {"P1", "P2", "P3"}
    assert all(st.state is ItemState.DONE for st in s2.register.items("shop", limit=100))


def test_r15_a_delete_change_wins_over_a_stale_catalog(sync, catalog, channel):
    """A DELETE change removes the item even while the PIM still returns it; a later UPSERT of
    the same item coalesces over it and brings it back.
    """
    sync.enqueue([Change("P3", P, ChangeKind.DELETE)])  # the catalog still has P3
    sync.run()
    assert (P, "P3") not in channel.listings

    sync.enqueue([Change("P3", P, ChangeKind.DELETE), Change("P3", P)])
    sync.run()
    assert (P, "P3") in channel.listings
