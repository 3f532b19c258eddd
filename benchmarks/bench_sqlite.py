"""
Throughput of the SQLite backends (the numbers quoted in docs/backends.md).

    python benchmarks/bench_sqlite.py                      # defaults: NORMAL, batches of 1000/500
    python benchmarks/bench_sqlite.py --synchronous FULL --enqueue-batch 500 --lease-batch 100

Targets (benchmark issue): coalescing enqueue >= 100,000 changes/s in batches of 500-1000;
lease+ack >= 40,000 items/s in batches of 100-1000.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Self

from catalogsync import (
    Change,
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


class Timer:
    """Wall-clock and CPU time (this process) of a block: on a shared machine, CPU time is the
    steadier measure of the work done; wall-clock time is what a user sees."""

    def __enter__(self) -> Self:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        return n / self.wall, n / self.cpu


def changes(n: int, distinct: int) -> list[Change]:
    # n writes over `distinct` keys: every key after the first `distinct` writes coalesces
    return [Change(f"SKU-{i % distinct:08d}", TYPES[(i % distinct) % 3]) for i in range(n)]


def bench_enqueue(path: str, args: argparse.Namespace) -> tuple[float, float]:
    queue = SQLiteQueue(path, synchronous=args.synchronous)
    work = changes(args.n, args.distinct)
    batches = [work[i : i + args.enqueue_batch] for i in range(0, len(work), args.enqueue_batch)]
    queue.migrate()
    with Timer() as timer:
        for batch in batches:
            queue.enqueue("shop", batch)
    if queue.counts("shop").total != min(args.n, args.distinct):
        raise RuntimeError("coalescing went wrong")
    queue.close()
    return timer.rates(args.n)


def _warm(_: int) -> None:
    time.sleep(0.2)


def _drain(path: str, synchronous: str, batch: int, owner: str) -> int:
    queue = SQLiteQueue(path, synchronous=synchronous)
    done = 0
    while leases := queue.lease("shop", owner=owner, limit=batch, ttl=TTL):
        done += queue.ack("shop", leases)
    queue.close()
    return done


def bench_lease_ack(path: str, args: argparse.Namespace, workers: int) -> tuple[float, float]:
    queue = SQLiteQueue(path, synchronous=args.synchronous)
    queue.replace_all("shop", changes(args.distinct, args.distinct), force=False)
    total = queue.counts("shop").total
    queue.close()
    if workers == 1:
        with Timer() as timer:
            acked = _drain(path, args.synchronous, args.lease_batch, "w0")
        wall, cpu = timer.rates(total)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            pool.map(_warm, range(workers))  # start and import first: time the drain only
            with Timer() as timer:
                acked = sum(
                    pool.starmap(
                        _drain,
                        [
                            (path, args.synchronous, args.lease_batch, f"w{i}")
                            for i in range(workers)
                        ],
                    )
                )
        wall, cpu = timer.rates(total)[0], float("nan")  # the work is in other processes
    if acked != total:
        raise RuntimeError(f"acked {acked} of {total}")
    return wall, cpu


def bench_replace_all(path: str, args: argparse.Namespace) -> tuple[float, float]:
    queue = SQLiteQueue(path, synchronous=args.synchronous)
    queue.migrate()
    with Timer() as timer:
        queue.replace_all("shop", (Change(f"R-{i:08d}", ItemType.PRODUCT) for i in range(args.n)))
    queue.close()
    return timer.rates(args.n)


def bench_commit(path: str, args: argparse.Namespace) -> tuple[float, float]:
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
    with Timer() as timer:
        for records in batches:
            store.commit(
                iteration,
                records,
                synchronized=Counts(variant=len(records)),
                failed=Counts(),
                unchanged=Counts(),
                skipped=Counts(),
            )
    store.close()
    return timer.rates(n)


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

        print(f"SQLite backends, synchronous={args.synchronous}  (wall-clock rate / CPU-time rate)")
        report(
            f"enqueue, {args.n:,} changes over {args.distinct:,} keys, batches of "
            f"{args.enqueue_batch}",
            bench_enqueue(fresh("enqueue"), args),
            100_000,
        )
        report(
            f"lease+ack, 1 worker, batches of {args.lease_batch}",
            bench_lease_ack(fresh("lease1"), args, 1),
            40_000,
        )
        report(
            f"lease+ack, {args.workers} processes, batches of {args.lease_batch}",
            bench_lease_ack(fresh("leaseN"), args, args.workers),
        )
        report(
            f"replace_all from a generator of {args.n:,}",
            bench_replace_all(fresh("replace"), args),
        )
        report(
            "store commit (status + sent state + link), batches of 500",
            bench_commit(fresh("commit"), args),
        )


def report(label: str, rates: tuple[float, float], target: float | None = None) -> None:
    wall, cpu = rates
    line = f"  {label}: {wall:,.0f}/s wall"
    if not math.isnan(cpu):
        line += f", {cpu:,.0f}/s CPU"
    if target:
        line += f" (target {target:,.0f}: {wall / target:.1f}x wall, {cpu / target:.1f}x CPU)"
    print(line)


if __name__ == "__main__":
    main()
