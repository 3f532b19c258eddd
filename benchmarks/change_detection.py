"""
change-detection: what an unchanged item costs.

A catalog is synchronized once into `catalogsync.testing.MemoryChannel` (products embed their
variants and name their categories, as on Shopify) through the real `Synchronizer` with the
SQLite backends on disk. The catalog is a `MemoryCatalog` filled from `GeneratedCatalog` before
the clock starts, so reading an item costs a dict lookup: what is measured is the library, not
the PIM. The fixture's objects (the in-memory catalog, the first event's leftovers) are moved
out of the garbage collector's sight (`gc.freeze`) before either side is timed: a real PIM
holds its catalog in a database, not in this process's heap. Then every item is enqueued again with nothing changed, and a second
event decides, item by item, that nothing has to be sent (rule R06). Its rate is compared with
the floor: the same items rendered by the same channel, canonically encoded and digested in a
tight loop, with no queue, no store and no register.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from catalogsync import (
    ChangeHasher,
    Connector,
    ConnectorParams,
    ItemType,
    MemoryCatalog,
    Synchronizer,
    SyncOptions,
)
from catalogsync.backends import SQLiteQueue, SQLiteStore
from catalogsync.testing import MemoryChannel
from catalogsync.typing import RenderContext

from ._catalog import GeneratedCatalog
from ._core import Context, Result, Timer


TARGET_RATE = 50_000
TARGET_RATIO = 4.0
BATCH = 500


def floor_rate(catalog: GeneratedCatalog, channel: MemoryChannel, params: ConnectorParams) -> float:
    """Items per second for render + canonical encode + digest alone (best of two passes)."""
    hasher = ChangeHasher()
    categories = {c.key: c for c in (catalog.category(i) for i in range(catalog.categories))}
    products, variants, related, children = catalog.families()
    related.update(categories)
    ctx = RenderContext(params, related, children, {k: f"mem:{k[1]}" for k in categories})
    items = [*categories.values(), *products, *variants]
    best = float("inf")
    for _ in range(2):
        with Timer() as t:
            for item in items:
                hasher.digest(channel.render(item, ctx))
        best = min(best, t.wall)
    return len(items) / best


def run(ctx: Context) -> list[Result]:
    products = ctx.size(20_000, 4_000, 300)
    catalog = GeneratedCatalog(products)
    pim = MemoryCatalog(item for t in ItemType for batch in catalog.scan(t) for item in batch)
    channel = MemoryChannel()
    params = ConnectorParams(language="en", map_status=True)
    with tempfile.TemporaryDirectory(prefix="catalogsync-bench-") as tmp:
        path = Path(tmp) / "state.db"
        with SQLiteQueue(path) as queue, SQLiteStore(path) as store:
            sync = Synchronizer(
                Connector("bench-cd", channel.name, account="bench", params=params),
                catalog=pim,
                channel=channel,
                queue=queue,
                store=store,
                options=SyncOptions(batch_size=BATCH, iteration_size=10_000),
            )
            sync.enqueue(catalog.changes())
            first = sync.run()
            items = first.synchronized.total
            if first.reason != "completed" or first.failed.total or items != len(catalog):
                msg = f"first sync did not complete cleanly: {first}"
                raise RuntimeError(msg)
            gc.collect()
            gc.freeze()
            with Timer() as enq:
                sync.enqueue(catalog.changes())
            with Timer() as t:
                second = sync.run()
            if second.unchanged.total != items or second.synchronized.total:
                msg = f"unchanged event: expected {items} unchanged, got {second}"
                raise RuntimeError(msg)
    floor = floor_rate(catalog, channel, params)
    gc.unfreeze()
    rate = items / t.wall
    ratio = floor / rate
    return [
        Result(
            "change-detection",
            f"unchanged items, SQLite, {products:,} products",
            rate,
            "items/s",
            reference=floor,
            reference_name="render+encode+digest floor, items/s",
            ratio=ratio,
            ratio_note="floor / value: how many times slower than the floor",
            target=f">= {TARGET_RATE:,} items/s and <= {TARGET_RATIO:g}x the floor",
            met=rate >= TARGET_RATE and ratio <= TARGET_RATIO,
            details={
                "items": items,
                "products": products,
                "batch_size": BATCH,
                "run_seconds": round(t.wall, 3),
                "run_cpu_seconds": round(t.cpu, 3),
                "enqueue_seconds": round(enq.wall, 3),
                "enqueue_rate": round(items / enq.wall),
            },
        )
    ]
