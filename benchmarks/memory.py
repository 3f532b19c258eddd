"""
memory: peak RSS of a full synchronization of 1,000,000 items against one of 100,000 items.

Each size runs in a fresh subprocess (``python -m benchmarks.memory --child PRODUCTS``) that
synchronizes a `GeneratedCatalog` (items built on demand, nothing held) into a channel that
keeps nothing (`SinkChannel`), with the SQLite backends on disk, and reports its peak resident
set size (``VmHWM`` from ``/proc/self/status``). Whatever grows with the catalog is therefore
the library's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalogsync import Connector, ConnectorParams, Synchronizer, SyncOptions
from catalogsync.backends import SQLiteQueue, SQLiteStore

from ._catalog import GeneratedCatalog
from ._core import Context, Result, peak_rss_mb
from ._sink import SinkChannel


ITEMS_PER_PRODUCT = 4.4  #: GeneratedCatalog: a product and 3.4 variants on average
TARGET_MB = 300
TARGET_RATIO = 1.5


def child(products: int) -> dict[str, float]:
    baseline = peak_rss_mb()
    catalog = GeneratedCatalog(products)
    channel = SinkChannel()
    with tempfile.TemporaryDirectory(prefix="catalogsync-bench-") as tmp:
        path = Path(tmp) / "state.db"
        with SQLiteQueue(path) as queue, SQLiteStore(path) as store:
            sync = Synchronizer(
                Connector("bench-mem", channel.name, account="bench", params=ConnectorParams()),
                catalog=catalog,
                channel=channel,
                queue=queue,
                store=store,
                options=SyncOptions(batch_size=500, iteration_size=10_000),
            )
            start = time.perf_counter()
            chunk: list = []
            for change in catalog.changes():  # stream the changes in, as a PIM would
                chunk.append(change)
                if len(chunk) == 10_000:
                    sync.enqueue(chunk)
                    chunk = []
            sync.enqueue(chunk)
            enqueued = time.perf_counter()
            result = sync.run()
            finished = time.perf_counter()
            if result.reason != "completed" or result.synchronized.total != len(catalog):
                msg = f"the sync did not complete: {result.reason}, {result.synchronized}"
                raise RuntimeError(msg)
            db_mb = path.stat().st_size / 2**20
    return {
        "products": products,
        "items": result.synchronized.total,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "baseline_rss_mb": round(baseline, 1),
        "enqueue_seconds": round(enqueued - start, 1),
        "run_seconds": round(finished - enqueued, 1),
        "items_per_s": round(result.synchronized.total / (finished - enqueued)),
        "db_mb": round(db_mb, 1),
    }


def measure(products: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", str(products)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode:
        msg = f"memory child ({products} products) failed:\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> list[Result]:
    large_items = ctx.size(1_000_000, 100_000, 10_000)
    small_items = large_items // 10
    small = measure(round(small_items / ITEMS_PER_PRODUCT))
    large = measure(round(large_items / ITEMS_PER_PRODUCT))
    ctx.log(f"   small {small}\n   large {large}")
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    met = large["peak_rss_mb"] <= TARGET_MB and ratio <= TARGET_RATIO
    return [
        Result(
            "memory",
            f"peak RSS, full sync of {large['items']:,} items",
            large["peak_rss_mb"],
            "MiB",
            reference=small["peak_rss_mb"],
            reference_name=f"peak RSS at {small['items']:,} items, MiB",
            ratio=ratio,
            target=f"<= {TARGET_MB} MiB and <= {TARGET_RATIO}x the 10x smaller run",
            met=met,
            details={"large": large, "small": small},
        )
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        sys.exit("usage: python -m benchmarks.memory --child PRODUCTS")
