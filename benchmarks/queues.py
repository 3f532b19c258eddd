"""
Throughput of the scale-out queues: coalescing enqueue, and lease+ack with 1 and N worker processes.

    python benchmarks/queues.py --backend postgres --dsn postgresql://postgres@127.0.0.1/test
    python benchmarks/queues.py --backend redis --url redis://127.0.0.1:6379/0

Enqueue: ``--items`` changes in batches, half of them re-enqueueing a key already pending (so the
coalescing path is measured). Lease+ack: the queue is filled with ``--items`` distinct entries,
then each worker process loops ``lease(batch)`` + ``ack(all)`` until the queue is empty; the rate
is items over the wall time from the common start to the last worker's finish. Each measurement
uses a fresh connector; the schema or key prefix is dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import uuid
from datetime import timedelta

import psycopg
import redis

from catalogsync import Change, ItemType
from catalogsync.backends.postgres import PostgresQueue
from catalogsync.backends.redis import RedisQueue


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark invariant broken: {what}")


def make_queue(args):
    if args.backend == "postgres":
        return PostgresQueue(args.dsn, schema=args.schema, max_size=2)
    return RedisQueue(args.url, prefix=args.prefix)


def enqueue_rate(args, batch: int) -> float:
    cid = f"bench-{uuid.uuid4().hex[:8]}"
    distinct = args.items // 2
    refs = [f"SKU-{i % distinct:07d}" for i in range(args.items)]  # second half re-enqueues
    with make_queue(args) as q:
        q.counts(cid)  # connect and migrate outside the timing
        start = time.perf_counter()
        for i in range(0, len(refs), batch):
            q.enqueue(cid, [Change(r, ItemType.VARIANT) for r in refs[i : i + batch]])
        elapsed = time.perf_counter() - start
        check(q.counts(cid).total == distinct, "coalesced count")
        q.replace_all(cid, [])
    return args.items / elapsed


def _drain(args, cid: str, batch: int, start_at: float, results) -> None:
    owner = f"w-{uuid.uuid4().hex[:6]}"
    ttl = timedelta(seconds=120)
    done = 0
    with make_queue(args) as q:
        q.counts(cid)
        time.sleep(max(0.0, start_at - time.time()))
        while True:
            leases = q.lease(cid, owner=owner, limit=batch, ttl=ttl)
            if not leases:
                break
            done += q.ack(cid, leases)
    results.put((done, time.time()))


def lease_ack_rate(args, batch: int, workers: int) -> float:
    cid = f"bench-{uuid.uuid4().hex[:8]}"
    with make_queue(args) as q:
        for i in range(0, args.items, 5000):
            q.enqueue(cid, [Change(f"SKU-{j:07d}", ItemType.VARIANT) for j in range(i, i + 5000)])
        check(q.counts(cid).total == args.items, "filled count")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 2.0 + 0.5 * workers
    procs = [
        ctx.Process(target=_drain, args=(args, cid, batch, start_at, results))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    acked = sum(n for n, _ in outcomes)
    check(acked == args.items, f"acked {acked} of {args.items}")
    return acked / (max(t for _, t in outcomes) - start_at)


def cleanup(args) -> None:
    if args.backend == "postgres":
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE')
    else:
        client = redis.Redis.from_url(args.url)
        keys = list(client.scan_iter(match="{" + args.prefix + ":*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "redis"], required=True)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--batches", default="100,1000")
    parser.add_argument("--workers", default="1,4")
    args = parser.parse_args()
    args.schema = f"bench_{uuid.uuid4().hex[:8]}"
    args.prefix = f"bench-{uuid.uuid4().hex[:8]}"
    batches = [int(b) for b in args.batches.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{args.backend}: {args.items} items per measurement")
    try:
        for batch in batches:
            print(
                f"  enqueue, batch {batch:>5}, 50% coalesced: {enqueue_rate(args, batch):>9,.0f} /s"
            )
        for batch in batches:
            for n in workers:
                rate = lease_ack_rate(args, batch, n)
                print(f"  lease+ack, batch {batch:>5}, {n} worker(s):   {rate:>9,.0f} items/s")
    finally:
        cleanup(args)


if __name__ == "__main__":
    main()
