"""A worker killed at a random point mid-event; a second process completes the same event."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from catalogsync import Connector, ItemState, SQLiteQueue, SQLiteStore, Synchronizer
from catalogsync._demo import all_changes, sample_catalog

from _kvchannel import KVChannel, KVEmulator


HERE = Path(__file__).parent
PRODUCTS = 40


def _worker(db: Path, url: str) -> subprocess.Popen[str]:
    sqlite = {"kind": "sqlite", "path": str(db)}
    config = {"store": sqlite, "queue": sqlite, "url": url, "products": PRODUCTS}
    return subprocess.Popen(
        [sys.executable, str(HERE / "_crashworker.py"), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_killed_worker_leaves_a_resumable_event(tmp_path, seed):
    """SIGKILL mid-event: the next process completes the same event; every item is in the
    channel exactly once (re-sends only as idempotent updates) and has a final status.
    """
    rng = random.Random(seed)
    db = tmp_path / "state.db"
    emulator = KVEmulator(latency=0.004)
    catalog = sample_catalog(PRODUCTS)
    queue, store = SQLiteQueue(db), SQLiteStore(db)
    with emulator.serve() as url:
        channel = KVChannel(url)
        seeder = Synchronizer(
            Connector("crash", "kv"), catalog=catalog, channel=channel, queue=queue, store=store
        )
        total = seeder.enqueue(all_changes(catalog))

        first = _worker(db, url)
        kill_at = rng.randint(5, total - 20)
        deadline = time.monotonic() + 60
        while emulator.count("PUT") < kill_at and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))  # land anywhere: mid-push, before or after a commit
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
        assert first.returncode == -signal.SIGKILL
        assert emulator.count("PUT") < total, "the worker finished before it could be killed"

        second = _worker(db, url)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        done_by = json.loads(out)
        reason, event_id = done_by["reason"], done_by["results"][0][1]
        state = httpx.get(f"{url}/state").json()
        channel.http.close()

    events = seeder.register.events("crash")
    statuses = seeder.register.items("crash", event_id=event_id, limit=10_000)
    done = {(s.type.value, s.ref) for s in statuses if s.state is ItemState.DONE}
    failed = {s.ref for s in statuses if s.state is ItemState.ERROR}
    queue.close()
    store.close()

    assert reason == "completed"
    assert events.total == 1, "the second process continued the same event"
    assert events.items[0].id == event_id
    assert {s.state for s in statuses} <= {ItemState.DONE, ItemState.ERROR}
    assert {k: n for k, n in state["creates"].items() if n > 1} == {}, "an item was created twice"
    assert {tuple(k.split("/")) for k in state["items"]} == done, "channel and statuses agree"
    assert failed == {"P0011", "P0023"}  # the deliberately invalid demo items, nothing else
    assert len(done) + len(failed) == statuses.total
