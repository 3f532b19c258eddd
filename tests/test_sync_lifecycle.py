"""Event lifecycle, carried items, bad catalog data, poison items, dry runs and many workers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta

import pytest

from catalogsync import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    ErrorKind,
    EventStatus,
    InvalidArgumentError,
    Item,
    ItemAction,
    ItemState,
    ItemType,
    MemoryCatalog,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import MemoryChannel
from catalogsync.typing import Capabilities

from _syncenv import C, P, V, everything, make_sync, pushed, shoe_catalog


CARRIED = Capabilities(
    reads={(P, V), (P, C)},
    reads_ids={(P, C)},
    carried={V: P},
)


# -- lifecycle ------------------------------------------------------------------------------------


def test_connection_failure_is_an_error_event_with_nothing_sent(backends, clock):
    """A failing connection check gives an ERROR event with the reason; the queue is kept."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, auth_error=True)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    result = s.run()

    assert result.reason == "error"
    assert result.event.status is EventStatus.ERROR
    assert result.event.errors[0].code == "auth"
    assert "invalid credentials" in result.event.errors[0].message
    assert channel.pushes == 0
    assert queue.counts("shop").total == 8
    channel.auth_error = False
    assert s.run().reason == "completed"


def test_snapshot_holds_params_version_and_deprecation(backends, clock):
    """The event records its parameters, the channel API version and its deprecation warning."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(
        clock=clock,
        api_version="2026-01",
        served_version="2026-04",
        deprecation="Shop.products is deprecated",
    )
    params = ConnectorParams(language="es", overwrite_stock=True)
    s = Synchronizer(
        Connector("shop", "memory", params=params, credentials="vault:shop"),
        catalog=catalog,
        channel=channel,
        queue=queue,
        store=store,
        clock=clock,
    )
    s.enqueue(everything(catalog))
    event = s.run().event

    assert event.snapshot.params == params
    assert event.snapshot.api_version == "2026-01"
    assert event.snapshot.served_version == "2026-04"
    assert event.snapshot.deprecation == "Shop.products is deprecated"
    assert "vault" not in repr(event.snapshot)


def test_iterations_are_visible_while_the_event_runs(backends, clock):
    """Iterations and their counts appear during the event; pending counts fall."""
    queue, store = backends
    catalog = shoe_catalog()
    seen = []

    def watch(progress):
        event = store.get_event(progress.event_id)
        seen.append(
            (
                event.status,
                [i.finished_at for i in event.iterations],
                event.synchronized.total,
                progress.pending.total,
            )
        )

    s = make_sync(
        queue,
        store,
        clock,
        catalog,
        options=SyncOptions(batch_size=3, iteration_size=6),
        on_progress=watch,
    )
    s.enqueue(everything(catalog))
    result = s.run()

    assert [row[0] for row in seen] == [EventStatus.IN_PROGRESS] * 3
    assert seen[0][1] == [None]  # the first iteration is open while it runs
    assert [row[2] for row in seen] == [3, 6, 8]
    assert [row[3] for row in seen] == [5, 2, 0]
    assert [i.number for i in result.event.iterations] == [1, 2]
    assert all(i.finished_at is not None for i in result.event.iterations)
    assert result.event.synchronized.total == 8


def test_completed_with_errors(backends, clock):
    """Item failures complete the event with has_errors."""
    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(queue, store, clock, catalog, MemoryChannel(clock=clock, reject={"P1": "no"}))
    s.enqueue(everything(catalog))
    event = s.run().event

    assert event.status is EventStatus.COMPLETED
    assert event.has_errors
    assert event.failed.product == 1
    assert event.finished_at is not None
    assert event.pending.total == 0


def test_auth_revoked_mid_run_stops_and_keeps_items_queued(backends, clock):
    """Credentials rejected mid-run end the event with a general error; nothing is lost."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock)
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=2))
    s.enqueue(everything(catalog))
    s.run(max_batches=1)
    channel.auth_error = True
    result = s.run()

    assert result.reason == "stopped"
    assert result.event.status is EventStatus.COMPLETED
    assert result.event.errors[-1].code == "auth"
    assert queue.counts("shop").total == 6
    channel.auth_error = False
    assert s.run().event.id != result.event.id


def test_transient_channel_failures_are_transport_errors_on_those_items(backends, clock):
    """A transport failure marks only the affected items; the others are delivered."""
    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(
        queue, store, clock, catalog, MemoryChannel(clock=clock, fail_transiently={"P2": 1})
    )
    s.enqueue(everything(catalog))
    s.run()
    [failed] = s.register.items("shop", state="error").items

    assert (failed.type, failed.ref) == (P, "P2")
    assert failed.errors[0].kind is ErrorKind.TRANSPORT


def test_channel_that_skips_categories_says_so(backends, clock):
    """A channel that does not take categories records them as skipped with a message."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, capabilities=Capabilities(accepts={P, V}, reads={(P, V)}))
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    result = s.run()
    skipped = s.register.items("shop", item_type="category").items

    assert result.skipped.category == 2
    assert {st.action for st in skipped} == {ItemAction.SKIP}
    assert all("does not take category items" in st.message for st in skipped)
    assert channel.refs(C) == set()


def test_next_run_at_follows_the_schedule(backends, clock):
    """next_run_at is the last start plus the schedule; None without a schedule."""
    queue, store = backends
    catalog = shoe_catalog()
    s = Synchronizer(
        Connector("shop", "memory", schedule=timedelta(hours=1)),
        catalog=catalog,
        channel=MemoryChannel(clock=clock),
        queue=queue,
        store=store,
        clock=clock,
    )
    assert s.next_run_at() == clock.now()
    s.enqueue(everything(catalog))
    started = s.run().event.started_at

    assert s.next_run_at() == started + timedelta(hours=1)
    s.update_connector(schedule=None)
    assert s.next_run_at() is None


# -- carried items (a Shopify-like channel) --------------------------------------------------------


def test_carried_variants_travel_with_their_product(backends, clock):
    """Variants go inside their product's operation and each gets its own status."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, capabilities=CARRIED)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    result = s.run()
    statuses = {(st.type, st.ref): st for st in s.register.items("shop", limit=100)}

    assert result.synchronized == result.synchronized.__class__(category=2, product=3, variant=3)
    assert statuses[(V, "V1")].state is ItemState.DONE
    assert statuses[(V, "V1")].channel_id == "mem:variant:V1"
    assert channel.pushes == 2  # categories, then products with their variants
    assert [v["ref"] for v in channel.listings[(P, "P1")]["variants"]] == ["V1", "V2"]


def test_carried_variant_change_sends_the_product_once(backends, clock):
    """A changed variant is sent inside its product; its siblings stay unchanged."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, capabilities=CARRIED)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    s.run()
    channel.log.clear()
    catalog.put(Item("V2", V, fields={"sku": "TS-41", "price": 80}, parents=["P1"]))
    s.enqueue([Change("V2", V)])
    result = s.run()

    assert pushed(channel) == [("update", "product", "P1"), ("update", "variant", "V2")]
    assert result.synchronized.variant == 1
    assert result.synchronized.product == 1
    assert result.unchanged.total == 0  # only V2 and its product were queued


def test_carried_variant_removal_is_done_by_the_product(backends, clock):
    """A variant removed from the PIM is removed through its product's operation."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, capabilities=CARRIED)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    s.run()
    catalog.remove(V, "V1")
    s.enqueue([Change("V1", V, ChangeKind.DELETE)])
    s.run()
    [status] = s.register.items("shop", ref="V1", item_type="variant").items

    assert status.action is ItemAction.DELETE
    assert "removed from product P1" in status.message
    assert [v["ref"] for v in channel.listings[(P, "P1")]["variants"]] == ["V2"]
    assert store.sent_states("shop", V, ["V1"]) == {}


def test_carried_variants_split_across_batches(backends, clock):
    """Variants leased without their product are delivered by it, never twice, never lost."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock, capabilities=CARRIED)
    s = make_sync(queue, store, clock, catalog, channel, options=SyncOptions(batch_size=1))
    # variants first, one per batch: none is with its product
    queue.enqueue("shop", [Change("V1", V), Change("V2", V), Change("V3", V)])
    s.enqueue([Change("C1", C), Change("C2", C), Change("P1", P), Change("P2", P)])
    result = s.run()
    statuses = {(st.type, st.ref): st for st in s.register.items("shop", limit=100)}

    assert result.reason == "completed"
    assert {k for k, st in statuses.items() if st.state is ItemState.DONE} >= {
        (V, "V1"),
        (V, "V2"),
        (V, "V3"),
    }
    assert channel.duplicates() == {}
    assert result.synchronized.variant == 3


def test_invalid_carried_variant_fails_its_product(backends, clock):
    """A product whose variant is invalid is not sent; both carry the errors."""
    queue, store = backends
    catalog = shoe_catalog()
    catalog.put(Item("V2", V, fields={"sku": "TS-41", "price": -3}, parents=["P1"]))
    channel = MemoryChannel(clock=clock, capabilities=CARRIED)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    s.run()
    errors = {(st.type, st.ref): st for st in s.register.items("shop", state="error").items}

    assert set(errors) == {(P, "P1"), (V, "V1"), (V, "V2")}
    assert errors[(V, "V2")].errors[0].field == "price"
    assert (P, "P1") not in channel.listings


# -- bad data ---------------------------------------------------------------------------------------


class BrokenCatalog(MemoryCatalog):
    """A catalog that fails or lies for chosen refs."""

    def __init__(self, items, *, raises=(), garbage=()):
        super().__init__(items)
        self.raises = set(raises)
        self.garbage = set(garbage)

    def get(self, item_type, refs) -> Mapping[str, Item]:
        refs = list(refs)
        if self.raises & set(refs):
            raise RuntimeError(
                "PIM timeout while reading " + ",".join(sorted(self.raises & set(refs)))
            )
        found = dict(super().get(item_type, refs))
        for ref in self.garbage & set(refs):
            found[ref] = {"ref": ref, "title": None}  # not an Item
        return found


def test_malformed_catalog_items_become_item_errors(backends, clock):
    """Refs the catalog cannot read or returns as garbage fail alone; the event completes."""
    queue, store = backends
    base = shoe_catalog()
    items = [i for t in ItemType for i in base.items(t)]
    items.append(Item("P9", P, fields={"title": "x" * 300, "price": "nine"}, parents=["C2"]))
    items.append(
        Item("P8", P, fields={"title": "\ud83c\udf89 \u202e\x00 ok \U0010ffff"}, parents=["C2"])
    )
    catalog = BrokenCatalog(items, raises={"P2"}, garbage={"P3"})
    s = make_sync(queue, store, clock, catalog)
    s.enqueue(everything(catalog))
    result = s.run()
    errors = {st.ref: st for st in s.register.items("shop", state="error", limit=100)}

    assert result.event.status is EventStatus.COMPLETED
    assert set(errors) == {"P2", "P3", "P9", "P8"}
    assert errors["P2"].errors[0].code == "catalog_read_failed"
    assert "PIM timeout" in errors["P2"].errors[0].message
    assert "instead of this item" in errors["P3"].errors[0].message
    assert {e.field for e in errors["P9"].errors} == {"title", "price"}
    assert errors["P8"].errors[0].code == "unhashable"  # a lone surrogate cannot be sent
    assert result.synchronized.product == 1  # P1


def test_render_bugs_become_item_errors(backends, clock):
    """A channel whose render raises fails that item with the reason, not the batch."""
    queue, store = backends
    catalog = shoe_catalog()

    class Buggy(MemoryChannel):
        def render(self, item, ctx):
            if item.ref == "P3":
                raise KeyError("missing 'handle'")
            return super().render(item, ctx)

    s = make_sync(queue, store, clock, catalog, Buggy(clock=clock))
    s.enqueue(everything(catalog))
    result = s.run()
    [err] = s.register.items("shop", state="error").items

    assert err.ref == "P3"
    assert err.errors[0].code == "render_failed"
    assert "KeyError" in err.errors[0].message
    assert result.synchronized.total == 7


def test_poison_items_are_given_up_after_max_attempts(backends, clock):
    """An item whose lease keeps expiring is recorded as an error after max_attempts."""
    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(queue, store, clock, catalog, options=SyncOptions(max_attempts=2, lease_ttl=10))
    queue.enqueue("shop", [Change("P3", P)])
    for _ in range(2):  # two workers die holding the lease
        queue.lease("shop", owner="doomed", limit=10, ttl=timedelta(seconds=10))
        clock.advance(11)
    result = s.run()
    [err] = s.register.items("shop", state="error").items

    assert result.reason == "completed"
    assert err.errors[0].code == "poison"
    assert "gave up after 2 attempts" in err.errors[0].message


def test_enqueue_rejects_bad_input(backends, clock):
    """Enqueue takes Change values only, with a typed error naming the argument."""
    queue, store = backends
    s = make_sync(queue, store, clock, shoe_catalog())
    with pytest.raises(InvalidArgumentError) as info:
        s.enqueue([("P1", "product")])
    assert info.value.field == "changes"
    with pytest.raises(InvalidArgumentError):
        s.enqueue(Change("P1", P))
    with pytest.raises(InvalidArgumentError):
        s.run(max_batches=0)


# -- dry run ------------------------------------------------------------------------------------------


def test_plan_is_a_dry_run(backends, clock):
    """plan() says what would be created, updated, deleted or skipped, without any channel call."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(clock=clock)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    first = s.plan()
    assert first.summary() == {"create": 8}
    s.run()
    catalog.put(Item("P3", P, fields={"title": "Lace v2", "price": 2}, parents=["C1"]))
    catalog.remove(P, "P2")
    catalog.remove(V, "V3")
    catalog.put(Item("P7", P, fields={"title": ""}, parents=["C1"]))
    s.enqueue(
        [
            Change("P3", P),
            Change("P2", P, ChangeKind.DELETE),
            Change("V3", V, ChangeKind.DELETE),
            Change("P1", P),
            Change("P7", P),
        ]
    )
    pushes = channel.pushes
    plan = s.plan()

    assert channel.pushes == pushes
    assert plan.summary() == {"update": 1, "delete": 3, "unchanged": 2, "invalid": 1}
    assert {p.ref for p in plan.items if p.action is ItemAction.DELETE} == {"P2", "V3", "C2"}
    assert queue.counts("shop").total == plan.pending
    assert s.run().synchronized.total == 4


# -- many workers --------------------------------------------------------------------------------------


def test_threads_share_one_event(backends, clock):
    """Four threads work on one event: everything delivered once, one event, counts consistent."""
    queue, store = backends
    items = [Item(f"C{i}", C, fields={"title": f"cat {i}"}) for i in range(5)]
    for i in range(120):
        items.append(
            Item(f"P{i}", P, fields={"title": f"product {i}", "price": i}, parents=[f"C{i % 5}"])
        )
        items.extend(
            Item(f"V{i}-{j}", V, fields={"sku": f"S{i}-{j}", "price": i}, parents=[f"P{i}"])
            for j in range(3)
        )
    catalog = MemoryCatalog(items)
    channel = MemoryChannel(clock=clock)
    make_sync(queue, store, clock, catalog, channel).enqueue(everything(catalog))
    results = []

    def worker():
        s = make_sync(
            queue,
            store,
            clock,
            catalog,
            channel,
            options=SyncOptions(batch_size=7, poll_interval=0),
        )
        results.append(s.run())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = make_sync(queue, store, clock, catalog, channel).register.events("shop")

    event = events.items[0]
    statuses = make_sync(queue, store, clock, catalog, channel).register.items("shop", limit=1000)

    assert events.total == 1
    assert event.status is EventStatus.COMPLETED
    # a thread that starts after the others finished finds nothing to do: "idle" is right
    assert {r.reason for r in results} <= {"completed", "idle"}
    assert {r.event.id for r in results if r.event is not None} == {event.id}
    assert channel.duplicates() == {}
    assert len(channel.listings) == 5 + 120 + 360
    assert statuses.total == 485
    assert {st.state for st in statuses} == {ItemState.DONE}
    # a product rendered by one thread before another created its category is sent again
    assert all(c["id"] for i in range(120) for c in channel.listings[(P, f"P{i}")]["categories"])
    assert event.synchronized.total == sum(r.synchronized.total for r in results) >= 485


def test_an_accepted_skip_is_remembered(backends, clock):
    """A channel that takes nothing for an item (an ok SKIP) sees it as unchanged next time."""
    queue, store = backends
    catalog = shoe_catalog()

    class SkipsP3(MemoryChannel):
        def push(self, operations, params):
            out = super().push([o for o in operations if o.ref != "P3"], params)
            from catalogsync.typing import Outcome

            return [
                *out,
                *(
                    Outcome(o.item_type, o.ref, ok=True, action=ItemAction.SKIP, message="no offer")
                    for o in operations
                    if o.ref == "P3"
                ),
            ]

    channel = SkipsP3(clock=clock)
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    first = s.run()
    s.enqueue([Change("P3", P)])
    second = s.run()

    assert first.skipped.product == 1
    assert second.unchanged.product == 1
    assert second.skipped.product == 0


def test_a_failing_batch_hands_its_leases_back(backends, clock, monkeypatch):
    """When the store fails mid-batch (a lost database), the run raises and its leases are
    released at once instead of after the lease TTL.
    """
    from catalogsync import BackendError

    queue, store = backends
    catalog = shoe_catalog()

    def lost(*args, **kwargs):
        raise BackendError("connection lost", retryable=True)

    s = make_sync(queue, store, clock, catalog, options=SyncOptions(batch_size=3, lease_ttl=600))
    s.enqueue(everything(catalog))
    monkeypatch.setattr(store, "commit", lost)
    with pytest.raises(BackendError, match="connection lost"):
        s.run()
    monkeypatch.undo()

    assert len(queue.lease("shop", owner="next", limit=100, ttl=timedelta(seconds=30))) == 8


def test_a_skip_redelivered_after_a_crash_is_counted_once(backends, clock, monkeypatch):
    """A crash between commit and ack re-delivers a skipped item; it is not counted twice."""
    from catalogsync import BackendError, ConnectorParams

    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(queue, store, clock, catalog, options=SyncOptions(lease_ttl=30))
    s.enqueue(everything(catalog))
    s.run()
    s.update_connector(params=ConnectorParams(disable_deletions=True))
    catalog.remove(P, "P3")
    s.enqueue([Change("P3", P, ChangeKind.DELETE)])

    def crash(*args, **kwargs):
        raise BackendError("the process died before the ack")

    monkeypatch.setattr(queue, "ack", crash)
    with pytest.raises(BackendError):
        s.run()
    monkeypatch.undo()
    clock.advance(timedelta(seconds=31))  # the lease expires: P3 comes back
    result = s.run()

    assert result.event.skipped.product == 1
    [status] = s.register.items(
        "shop", event_id=result.event.id, ref="P3", item_type="product"
    ).items
    assert status.action is ItemAction.SKIP
