"""
Throughput of the SQLite backends (the numbers quoted in docs/backends.md).

    python benchmarks/bench_sqlite.py                      # defaults: NORMAL, batches of 1000/500
    python benchmarks/bench_sqlite.py --synchronous FULL --enqueue-batch 500 --lease-batch 100

Targets (benchmark issue): coalescing enqueue >= 100,000 changes/s in batches of 500-1000;
lease+ack >= 40,000 items/s in batches of 100-1000.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from catalogsync import (
    ConfigSnapshot,
    Connector,
    Counts,
    EventStatus,
    ItemState,
    ItemStatus,
    ItemType,
    SyncEvent,
    Trigger,
)
from catalogsync._ids import new_id
from catalogsync.backends import SQLiteQueue, SQLiteStore
from catalogsync.testing import ManualClock
from catalogsync.typing import ItemRecord, SentState


TYPES = (ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT)
TTL = timedelta(minutes=5)


def changes(n: int, distinct: int):
    from catalogsync import Change  # noqa: PLC0415

    # n writes over `distinct` keys: every key after the first `distinct` writes coalesces
    return [Change(f"SKU-{i % distinct:08d}", TYPES[(i % distinct) % 3]) for i in range(n)]


def bench_enqueue(path: str, args: argparse.Namespace) -> float:
    queue = SQLiteQueue(path, synchronous=args.synchronous)
    work = changes(args.n, args.distinct)
    batches = [work[i : i + args.enqueue_batch] for i in range(0, len(work), args.enqueue_batch)]
    queue.migrate()
    start = time.perf_counter()
    for batch in batches:
        queue.enqueue("shop", batch)
    elapsed = time.perf_counter() - start
    if queue.counts("shop").total != min(args.n, args.distinct):
        raise RuntimeError("coalescing went wrong")
    queue.close()
    return args.n / elapsed


def _warm(_: int) -> None:
    time.sleep(0.2)


def _drain(path: str, synchronous: str, batch: int, owner: str) -> int:
    queue = SQLiteQueue(path, synchronous=synchronous)
    done = 0
    while leases := queue.lease("shop", owner=owner, limit=batch, ttl=TTL):
        done += queue.ack("shop", leases)
    queue.close()
    return done


def bench_lease_ack(path: str, args: argparse.Namespace, workers: int) -> float:
    queue = SQLiteQueue(path, synchronous=args.synchronous)
    queue.replace_all("shop", changes(args.distinct, args.distinct), force=False)
    total = queue.counts("shop").total
    queue.close()
    start = time.perf_counter()
    if workers == 1:
        acked = _drain(path, args.synchronous, args.lease_batch, "w0")
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            pool.map(_warm, range(workers))  # start and import first: time the drain only
            start = time.perf_counter()
            acked = sum(
                pool.starmap(
                    _drain,
                    [(path, args.synchronous, args.lease_batch, f"w{i}") for i in range(workers)],
                )
            )
    elapsed = time.perf_counter() - start
    if acked != total:
        raise RuntimeError(f"acked {acked} of {total}")
    return total / elapsed


def bench_replace_all(path: str, args: argparse.Namespace) -> float:
    from catalogsync import Change  # noqa: PLC0415

    queue = SQLiteQueue(path, synchronous=args.synchronous)
    queue.migrate()
    start = time.perf_counter()
    queue.replace_all("shop", (Change(f"R-{i:08d}", ItemType.PRODUCT) for i in range(args.n)))
    elapsed = time.perf_counter() - start
    queue.close()
    return args.n / elapsed


def bench_commit(path: str, args: argparse.Namespace) -> float:
    clock = ManualClock()
    store = SQLiteStore(path, synchronous=args.synchronous)
    event = SyncEvent(
        new_id(clock.now()),
        "shop",
        Trigger.INCREMENTAL,
        EventStatus.IN_PROGRESS,
        clock.now(),
        ConfigSnapshot(Connector("shop", "shopify").params, "shopify"),
    )
    store.open_event(event)
    iteration = store.start_iteration(event.id, worker="w", at=clock.now())
    n, batch = 100_000, 500
    batches = []
    for start in range(0, n, batch):
        records = []
        for i in range(start, start + batch):
            ref = f"V{i:08d}"
            status = ItemStatus(
                event.id, "shop", ref, ItemType.VARIANT, ItemState.DONE, clock.now()
            )
            state = SentState(
                ItemType.VARIANT, ref, "v1:0123456789abcdef", "gid://x/1", None,
                (f"P{i // 3}",), event.id, clock.now(),
            )  # fmt: skip
            records.append(ItemRecord(status, state=state))
        batches.append(records)
    begin = time.perf_counter()
    for records in batches:
        store.commit(
            iteration,
            records,
            synchronized=Counts(variant=len(records)),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )
    elapsed = time.perf_counter() - begin
    store.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="changes enqueued")
    parser.add_argument("--distinct", type=int, default=100_000, help="distinct keys")
    parser.add_argument("--enqueue-batch", type=int, default=1000)
    parser.add_argument("--lease-batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4, help="processes for the shared drain")
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(name: str) -> str:
            return str(Path(tmp) / f"{name}.db")

        print(f"SQLite backends, synchronous={args.synchronous}")
        rate = bench_enqueue(fresh("enqueue"), args)
        print(
            f"  enqueue, {args.n:,} changes over {args.distinct:,} keys, batches of "
            f"{args.enqueue_batch}: {rate:,.0f} changes/s ({rate / 100_000:.1f}x target)"
        )
        rate = bench_lease_ack(fresh("lease1"), args, 1)
        print(
            f"  lease+ack, 1 worker, batches of {args.lease_batch}: {rate:,.0f} items/s "
            f"({rate / 40_000:.1f}x target)"
        )
        rate = bench_lease_ack(fresh("leaseN"), args, args.workers)
        print(
            f"  lease+ack, {args.workers} processes, batches of {args.lease_batch}: "
            f"{rate:,.0f} items/s"
        )
        rate = bench_replace_all(fresh("replace"), args)
        print(f"  replace_all from a generator of {args.n:,}: {rate:,.0f} changes/s")
        rate = bench_commit(fresh("commit"), args)
        print(f"  store commit (status + sent state + link), batches of 500: {rate:,.0f} items/s")


if __name__ == "__main__":
    main()
