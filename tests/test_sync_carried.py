"""Carried items (variants delivered inside their product) when the carrier cannot be sent."""

from __future__ import annotations

import pytest

from catalogsync import Change, Item, ItemState, MemoryCatalog, SyncOptions
from catalogsync.testing import MemoryChannel
from catalogsync.typing import Capabilities

from _syncenv import BACKENDS, C, P, V, make_backends, make_sync


CARRYING = Capabilities(reads={(P, V), (P, C)}, carried={V: P})


def catalog(vendor: object = "Acme") -> MemoryCatalog:
    """A category, a product with four variants, another product with one."""
    return MemoryCatalog(
        [
            Item("C1", C, fields={"title": "Shoes"}),
            Item("P1", P, fields={"title": "Trail", "vendor": vendor}, parents=["C1"]),
            *(Item(f"V{n}", V, fields={"price": 10 + n}, parents=["P1"]) for n in range(1, 5)),
            Item("P2", P, fields={"title": "Road"}, parents=["C1"]),
            Item("W1", V, fields={"price": 3}, parents=["P2"]),
        ]
    )


def changes(cat: MemoryCatalog) -> list[Change]:
    return [Change(i.ref, t) for t in (C, P, V) for i in cat.items(t)]


@pytest.mark.parametrize("kind", BACKENDS)
def test_variants_of_a_product_that_cannot_be_rendered_get_an_error_status(
    request, kind, tmp_path, clock
):
    """A product whose payload cannot be hashed fails, and each of its changed variants gets an
    ERROR status saying why it was not sent, even those leased in a later batch than it.
    """
    cat = catalog(vendor={"a set", "is not JSON"})
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    sync = make_sync(
        queue,
        store,
        clock,
        cat,
        MemoryChannel(clock=clock, capabilities=CARRYING),
        options=SyncOptions(batch_size=3, heartbeat=False),
    )
    sync.enqueue(changes(cat))

    result = sync.run()

    statuses = {s.key: s for s in sync.register.items("shop", event_id=result.event.id)}
    assert result.reason == "completed"
    assert statuses[(P, "P1")].state is ItemState.ERROR
    for ref in ("V1", "V2", "V3", "V4"):
        status = statuses[(V, ref)]
        assert status.state is ItemState.ERROR, ref
        assert status.message == "not sent: product P1 is invalid"
        assert status.errors == statuses[(P, "P1")].errors
    assert statuses[(V, "W1")].state is ItemState.DONE
    assert result.event.failed.variant == 4


@pytest.mark.parametrize("kind", BACKENDS)
def test_unchanged_variants_of_a_failing_product_get_no_new_status(request, kind, tmp_path, clock):
    """When a delivered product later fails to render, only its changed variants are recorded as
    not sent; the unchanged ones are still what the channel holds and get no status.
    """
    cat = catalog()
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    channel = MemoryChannel(clock=clock, capabilities=CARRYING)
    options = SyncOptions(batch_size=2, heartbeat=False)
    sync = make_sync(queue, store, clock, cat, channel, options=options)
    sync.enqueue(changes(cat))
    assert sync.run().reason == "completed"
    cat.put(Item("P1", P, fields={"title": "Trail", "vendor": {1, 2}}, parents=["C1"]))
    cat.put(Item("V3", V, fields={"price": 99}, parents=["P1"]))

    sync.enqueue([Change("P1", P), Change("V3", V)])
    result = sync.run()

    statuses = {s.key: s for s in sync.register.items("shop", event_id=result.event.id)}
    assert statuses[(P, "P1")].state is ItemState.ERROR
    assert statuses[(V, "V3")].state is ItemState.ERROR
    assert {k for k in statuses if k[0] is V} == {(V, "V3")}
