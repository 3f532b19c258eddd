"""
api-calls: requests an incremental synchronization makes when 1% of the items changed.

Each channel runs on its emulator with limits off. The whole catalog is synchronized once; then
1% of the products are edited (their price moves, so the product and every variant of it
change), the PIM enqueues those products and variants, and a second event runs. Its requests,
counted by the emulator (connection checks and token grants included), are compared with what a
naive script makes for the same sync: one request per catalog item, every time, since it cannot
tell what changed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from catalogsync import Change, Connector, ItemType, Synchronizer, SyncOptions
from catalogsync.backends import SQLiteQueue, SQLiteStore

from ._catalog import GeneratedCatalog
from ._channels import CHANNELS, build
from ._core import Context, Result


TARGET_RATIO = 50  #: 1% of the items changed: at most 2% of the naive requests


def measure(name: str, products: int) -> dict[str, int]:
    catalog = GeneratedCatalog(products)
    rig = build(name, catalog)
    try:
        with tempfile.TemporaryDirectory(prefix="catalogsync-bench-") as tmp:
            path = Path(tmp) / "state.db"
            with SQLiteQueue(path) as queue, SQLiteStore(path) as store:
                sync = Synchronizer(
                    Connector(f"bench-{name}", rig.channel.name, account="b", params=rig.params),
                    catalog=catalog,
                    channel=rig.channel,
                    queue=queue,
                    store=store,
                    options=SyncOptions(batch_size=100),
                )
                sync.enqueue(catalog.changes())
                first = sync.run()
                if first.reason != "completed" or first.failed.total:
                    msg = f"{name}: first sync {first.reason}, {first.failed.total} failed"
                    raise RuntimeError(msg)
                first_calls = rig.emulator_calls
                touched = range(0, products, 100)  # 1% of the products
                changes = catalog.touch(touched)
                for n in touched:
                    ref = f"P{n:07d}"
                    changes += [
                        Change(f"{ref}-V{v}", ItemType.VARIANT)
                        for v in range(1, catalog.variant_count(n) + 1)
                    ]
                sync.enqueue(changes)
                second = sync.run()
                if second.reason != "completed" or second.failed.total:
                    msg = f"{name}: incremental sync {second.reason}, {second.failed.total} failed"
                    raise RuntimeError(msg)
                return {
                    "items": len(catalog),
                    "changed_items": len(changes),
                    "first_sync_calls": first_calls,
                    "incremental_calls": rig.emulator_calls - first_calls,
                    "synchronized": second.synchronized.total,
                }
    finally:
        rig.close()


def run(ctx: Context) -> list[Result]:
    # full: 4,000 products (17,600 items), which keeps the run short (each channel needs a first
    # sync before the incremental one). The Shopify emulator no longer limits the size: its
    # lookups are indexed, so a request costs the same in a bigger shop.
    products = ctx.size(4_000, 2_000, 300)
    results = []
    for name in CHANNELS:
        m = measure(name, products)
        naive = m["items"]
        calls = m["incremental_calls"]
        ratio = naive / calls
        results.append(
            Result(
                "api-calls",
                f"{name}: incremental sync, 1% of {m['items']:,} items changed",
                calls,
                "requests",
                reference=naive,
                reference_name="naive: one request per item",
                ratio=ratio,
                ratio_note="naive / value: how many times fewer requests",
                target=f">= {TARGET_RATIO}x fewer than naive",
                met=ratio >= TARGET_RATIO,
                details=m,
            )
        )
    return results
