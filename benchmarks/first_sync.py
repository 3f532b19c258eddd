"""
First synchronization: a whole generated catalog into each channel's emulator, end to end.

Every item of a `GeneratedCatalog` (categories, products, variants) is enqueued and synchronized
through the real `Synchronizer` (SQLite queue and store in a temporary file) into the channel
on its in-process emulator, with limits off and no latency: what is left is the library's own
cost (reading the catalog, hashing, rendering, validating, the queue and the store, the channel's
requests and answers) plus the emulator's.

* value: items per second end to end (items = the catalog's categories, products and variants,
  whether the channel takes them or skips them by design, as Takealot skips categories);
* reference: the same catalog synchronized into `catalogsync.testing.MemoryChannel` in the same
  run, the library's cost with a free channel; ratio = value / reference;
* details: the CPU time spent inside the emulator's handler (``emulator_cpu_s``: not the
  library's cost) and ``library_items_per_s`` = items / (wall time - emulator CPU time).

A full run synchronizes the issue's 100,000 products (about 440,000 items) into every channel.
On 2 cores it takes about 25 minutes: some 3 into the MemoryChannel reference, 9 each into
Shopify and Amazon (about 800 items/s, a quarter of the time in the emulator) and 2.5 into
Takealot (which skips categories and products: it takes variants only). Shopify used to be capped
at 8,000 products because its emulator looked products up by scanning the shop (0.6 ms per
request at 1,000 products, 2.2 ms at 6,000); its lookups are indexed now, so a request costs
about the same in a shop of any size.
"""

from __future__ import annotations

import time
from typing import Any

from ._catalog import GeneratedCatalog
from ._channels import CHANNELS, SyncRun, build, check_delivered, check_emulator, synchronize
from ._core import Context, Result


#: Products per channel in a full run: the issue's 100,000 for every channel (see the module
#: docstring). The MemoryChannel reference runs at each of these sizes too.
FULL = {"shopify": 100_000, "amazon": 100_000, "takealot": 100_000}
QUICK = {"shopify": 1_000, "amazon": 1_000, "takealot": 2_000}
TINY = 100


def _sync(name: str, catalog: GeneratedCatalog) -> tuple[SyncRun, float, float]:
    rig = build(name, catalog)
    cpu = time.process_time()
    try:
        result = synchronize(rig, catalog)
        check_delivered(name, catalog, result)
        check_emulator(rig, catalog)
    finally:
        rig.close()
    return result, time.process_time() - cpu, rig.emulator_cpu


def run(ctx: Context) -> list[Result]:
    references: dict[int, tuple[float, SyncRun]] = {}
    results: list[Result] = []
    _sync("memory", GeneratedCatalog(50))  # warm-up: imports and first-use costs, not measured
    for name in CHANNELS:
        products = ctx.size(FULL[name], QUICK[name], TINY)
        catalog = GeneratedCatalog(products)
        items = len(catalog)
        if products not in references:
            memory, _cpu, _emu = _sync("memory", catalog)
            references[products] = (items / memory.seconds, memory)
            ctx.log(f"   memory: {products} products, {items / memory.seconds:,.0f} items/s")
        reference, memory = references[products]
        result, cpu, emulator_cpu = _sync(name, catalog)
        rate = items / result.seconds
        library = items / max(1e-9, result.seconds - emulator_cpu)
        details: dict[str, Any] = {
            "channel": name,
            "products": products,
            "items": items,
            "synchronized": result.synchronized,
            "skipped": result.skipped,
            "seconds": round(result.seconds, 2),
            "cpu_s": round(cpu, 2),
            "enqueue_seconds": round(result.enqueue_seconds, 2),
            "emulator_cpu_s": round(emulator_cpu, 2),
            "library_items_per_s": round(library),
            "memory_channel_seconds": round(memory.seconds, 2),
            "limits": "off",
            "latency_s": 0.0,
            "batch_size": 100,
            "backends": "SQLite queue and store (temporary file)",
        }
        if products != 100_000 and not ctx.quick:
            details["size_note"] = (
                "the issue's 100,000 products do not fit about three minutes on this channel "
                "(see benchmarks/first_sync.py)"
            )
        ctx.log(
            f"   {name}: {products} products, {rate:,.0f} items/s end to end, "
            f"{library:,.0f} items/s without the emulator's {emulator_cpu:.1f} s"
        )
        results.append(
            Result(
                benchmark="first-sync",
                name=f"{name}, {products:,} products",
                value=round(rate, 1),
                unit="items/s",
                reference=round(reference, 1),
                reference_name="MemoryChannel, same catalog",
                ratio=round(rate / reference, 3),
                ratio_note="end-to-end rate / rate into MemoryChannel (the library with a free channel)",
                target="informative",
                met=None,
                details=details,
            )
        )
    return results
