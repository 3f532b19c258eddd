"""
Load campaign: changes enqueued from several threads and several processes while an event runs
on SQLite join it (rule R04), and every one of them is delivered.

Two worker threads run the event against a slow channel (it takes its time per push, so the
event is still running while the producers write). Meanwhile two producer processes
(``_campaignproducer.py``) and three producer threads enqueue the rest of the catalog in small
chunks, with overlapping keys (coalescing), and the threads also edit products as they go (a
change arriving while its item is being pushed must survive the ack: the fenced-ack rule).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _campaignchannels import invalid_refs, make_catalog
from catalogsync import (
    Change,
    Connector,
    EventStatus,
    Item,
    ItemAction,
    ItemState,
    ItemType,
    SQLiteQueue,
    SQLiteStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import MemoryChannel

from _campaign import FIGURES, size, timed


pytestmark = pytest.mark.campaign

HERE = Path(__file__).resolve().parent
C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
PRODUCTS = size(50, 300)
THREADS = 3
PROCESSES = 2
EDITS = size(20, 150)


class CountingChannel(MemoryChannel):
    """A slow memory channel that counts the deliveries it accepted."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.delivered = 0
        self._count_lock = threading.Lock()

    def push(self, operations, params):
        outcomes = super().push(operations, params)
        with self._count_lock:
            self.delivered += sum(
                1 for o in outcomes if o.ok and o.action in (ItemAction.CREATE, ItemAction.UPDATE)
            )
        return outcomes


def test_enqueues_from_threads_and_processes_join_the_running_event(tmp_path):
    """Producers in 3 threads and 2 processes enqueue (and edit) while 2 workers run the event:
    the one event absorbs them all (its pending count grows), completes, holds a final status
    for every item, counts exactly the deliveries the channel accepted, and the channel ends
    with the latest version of every item, none created twice.
    """
    db = tmp_path / "load.db"
    catalog = make_catalog("kv", PRODUCTS)
    rng = random.Random(4)
    keys = [(t, i.ref) for t in (C, P, V) for i in catalog.items(t)]
    products = [k for k in keys if k[0] is P]
    cut = len(products) // 2
    first = {k for k in keys if k[0] is C} | set(products[:cut])
    first |= {(V, v.ref) for v in catalog.items(V) if (P, v.parents[0]) in first}
    rest = [k for k in keys if k not in first]
    rng.shuffle(rest)
    # a slice of the rest each, plus a tenth of everybody's: the same change from several
    # producers (coalesced by the queue)
    shares = [
        rest[n :: THREADS + PROCESSES] + rng.sample(rest, len(rest) // 10)
        for n in range(THREADS + PROCESSES)
    ]

    queue, store = SQLiteQueue(db), SQLiteStore(db)
    channel = CountingChannel(latency=0.04)
    connector = Connector("load", channel.name)
    seeder = Synchronizer(connector, catalog=catalog, channel=channel, queue=queue, store=store)
    written = {"first": seeder.enqueue(Change(r, t) for t, r in sorted(first))}

    producers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_campaignproducer.py"),
                json.dumps(
                    {
                        "db": str(db),
                        "connector": "load",
                        "products": PRODUCTS,
                        "refs": [[t.value, r] for t, r in share],
                    }
                ),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares[THREADS:]
    ]
    for proc in producers:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()

    done = threading.Event()
    errors: list[BaseException] = []
    pending_seen: list[int] = []
    edited: dict[str, int] = {}
    edit_lock = threading.Lock()

    def worker() -> None:
        sync = Synchronizer(
            "load",
            catalog=catalog,
            channel=channel,
            queue=queue,
            store=store,
            options=SyncOptions(batch_size=5, lease_ttl=30, poll_interval=0.02),
        )
        try:
            while True:
                result = sync.run()
                finished = result.reason in {"completed", "idle"}
                if done.is_set() and finished and queue.counts("load").total == 0:
                    return
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    def produce(share: list[tuple[ItemType, str]], seed: int) -> None:
        sync = Synchronizer("load", catalog=catalog, channel=channel, queue=queue, store=store)
        local = random.Random(seed)
        try:
            writes = 0
            for start in range(0, len(share), 7):
                writes += sync.enqueue([Change(r, t) for t, r in share[start : start + 7]])
            for _ in range(EDITS // THREADS):  # edit products already delivered or in flight
                _, ref = local.choice(products)
                with edit_lock:
                    revision = edited[ref] = edited.get(ref, 0) + 1
                    item = catalog.get(P, [ref])[ref]
                    catalog.put(
                        Item(ref, P, fields={**item.fields, "rev": revision}, parents=item.parents)
                    )
                writes += sync.enqueue([Change(ref, P)])
                time.sleep(0.003)
            with edit_lock:
                written[f"thread {seed}"] = writes
        except BaseException as exc:
            errors.append(exc)

    with timed("load"):
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for t in workers:
            t.start()
        while store.active_event("load") is None:
            time.sleep(0.005)
        event_id = store.active_event("load").id
        start_pending = store.get_event(event_id).pending.total

        def monitor() -> None:
            # until the event ends: the register's pending count moves after each batch, and
            # the producers may be done before the first batch with their changes reports it
            while True:
                event = store.get_event(event_id)
                pending_seen.append(event.pending.total)
                stopped = done.is_set() and not any(t.is_alive() for t in workers)
                if event.status is not EventStatus.IN_PROGRESS or stopped:
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=monitor)
        watcher.start()
        for proc in producers:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        threads = [threading.Thread(target=produce, args=(shares[n], n)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proc in producers:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            written[f"process {proc.pid}"] = json.loads(out.splitlines()[-1])["written"]
        producers_done_at = store.get_event(event_id)
        done.set()
        for t in workers:
            t.join(timeout=300)
        watcher.join()

    assert errors == []
    events = seeder.register.events("load", limit=10)
    event = store.get_event(event_id)
    statuses = {
        (s.type.value, s.ref): s
        for s in seeder.register.items("load", event_id=event_id, limit=1_000_000)
    }
    wanted = {(t.value, r) for t, r in keys}
    bad = invalid_refs("kv", catalog)
    final = dict(channel.listings)
    queue.close()
    store.close()
    FIGURES.add(
        "load",
        runs=1,
        producer_threads=THREADS,
        producer_processes=PROCESSES,
        worker_threads=2,
        changes_enqueued=sum(len(s) for s in shares) + len(first) + EDITS // THREADS * THREADS,
        queue_writes=sum(written.values()),
        deliveries=channel.delivered,
        items=len(keys),
        items_lost=len(wanted - bad - {(t.value, r) for t, r in final}),
        pending_at_start=start_pending,
        pending_peak=max(pending_seen),
    )

    assert producers_done_at.status is EventStatus.IN_PROGRESS, "producers outlasted the event"
    assert events.total == 1, [(e.trigger, e.status) for e in events.items]
    assert event.status is EventStatus.COMPLETED
    assert max(pending_seen) > start_pending, "the pending count never grew (R04)"
    assert set(statuses) == wanted
    assert {k for k, s in statuses.items() if s.state is ItemState.ERROR} == bad
    assert {(t.value, r) for t, r in final} == wanted - bad
    assert channel.duplicates() == {}
    assert event.synchronized.total == channel.delivered
    assert event.pending.total == 0
    for ref, revision in edited.items():
        if ("product", ref) not in bad:
            assert final[(P, ref)]["fields"]["rev"] == revision, ref
