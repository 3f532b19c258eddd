"""
The crash campaign's rig: an emulator served on a loopback port (the channel's state outlives
every worker), real backends in a file, worker processes killed at chosen or random points, and
the invariant checked at the end.

The invariant (`CrashRig.verify`), from the catalog and the emulator alone where it can be:

* the channel equals the exportable catalog (`_campaignchannels.check_channel`), and nothing was
  created twice in it;
* every item of the catalog has a final status (``DONE`` or ``ERROR``, never ``PENDING``), and the
  ``ERROR`` ones are exactly the deliberately invalid items;
* the event history is consistent: the expected events only, the last one ``COMPLETED`` with no
  pending count, the queue empty, and the synchronized count equal to the items delivered.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _campaignchannels import (
    check_channel,
    close_channel,
    connector_params,
    invalid_refs,
    make_catalog,
    make_channel,
    make_emulator,
)
from catalogsync import (
    Change,
    Connector,
    EventStatus,
    ItemAction,
    ItemState,
    ItemType,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import ManualClock

from _campaign import backend_spec, close_backends, open_backends


HERE = Path(__file__).resolve().parent
WORKER = HERE / "_campaignworker.py"
CONNECTOR = "crash"
BATCH = 7
TTL = 0.5  # seconds: a killed worker's leases come back this fast

#: Roughly how many write requests a batch of `BATCH` items makes, per channel kind (Shopify
#: carries variants inside their product; Takealot sends most batches to its batch endpoint).
WRITES_PER_BATCH = {"kv": BATCH, "shopify": 2, "takealot": 1, "amazon": BATCH}
#: Roughly how many batches make a channel call (Shopify delivers variants with their product,
#: so most variant batches send nothing of their own).
PUSHES_PER_BATCH = {"kv": 1.0, "shopify": 0.3, "takealot": 0.8, "amazon": 1.0}
#: Hooks hit once per batch (or per type phase of a batch).
PER_BATCH = ("lease", "push.before", "push.after", "commit.after", "ack.after")
#: Every kill point a campaign can aim at (see ``_campaignworker.py``), plus random-time kills.
HOOKS = (*PER_BATCH, "http", "random")


class CrashRig:
    """One crash scenario: a channel kind, a backend kind, a catalog size, a seed."""

    def __init__(self, tmp_path: Path, *, kind: str, backend: str, products: int, seed: int):
        self.kind, self.seed = kind, seed
        self.rng = random.Random(f"{kind}-{backend}-{seed}")
        self.products = products
        self.catalog = make_catalog(kind, products, seed)
        self.backend = backend_spec(backend, tmp_path)
        self.emulator = make_emulator(kind, self.catalog)
        self.url = ""
        self.kills = 0
        self.rounds = 0
        self.missed = 0  # rounds whose worker finished before the kill point came
        self.log: list[str] = []

    @contextmanager
    def serving(self) -> Iterator[CrashRig]:
        with self.emulator.serve() as url:
            self.url = url
            yield self

    # -- parent-side work (no crash) --------------------------------------------------------------

    def _sync(self) -> tuple[Synchronizer, Any, Any]:
        channel = make_channel(self.kind, url=self.url, clock=ManualClock(), seed=self.seed)
        queue, store = open_backends(self.backend)
        sync = Synchronizer(
            Connector(CONNECTOR, channel.name, params=connector_params(self.kind)),
            catalog=self.catalog,
            channel=channel,
            queue=queue,
            store=store,
            options=SyncOptions(batch_size=BATCH, lease_ttl=5, poll_interval=0.05),
        )
        return sync, queue, store

    def _close(self, sync: Synchronizer, queue: Any, store: Any) -> None:
        close_backends(queue, store)
        close_channel(sync.channel)

    def enqueue_all(self) -> int:
        """Queue a change for every catalog item (categories first), as a PIM would."""
        sync, queue, store = self._sync()
        try:
            return sync.enqueue(
                Change(i.ref, t)
                for t in (ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT)
                for i in self.catalog.items(t)
            )
        finally:
            self._close(sync, queue, store)

    def run_here(self) -> str:
        """Run an event to completion in this process (the setup before a force refresh)."""
        sync, queue, store = self._sync()
        try:
            return sync.run().reason
        finally:
            self._close(sync, queue, store)

    def pending(self) -> int:
        """Entries still queued."""
        queue, store = open_backends(self.backend)
        try:
            return queue.counts(CONNECTOR).total
        finally:
            close_backends(queue, store)

    # -- workers --------------------------------------------------------------------------------

    def spec(self, action: str = "run") -> dict[str, Any]:
        return {
            "backend": self.backend,
            "channel": self.kind,
            "url": self.url,
            "products": self.products,
            "seed": self.seed,
            "connector": CONNECTOR,
            "action": action,
            "options": {"batch_size": BATCH, "lease_ttl": TTL},
        }

    def start(self, *, kill: str | None = None, action: str = "run") -> subprocess.Popen[str]:
        env = dict(os.environ)
        env.pop("CATALOGSYNC_CRASH_AT", None)
        if kill:
            env["CATALOGSYNC_CRASH_AT"] = kill
        return subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(self.spec(action))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _finish(self, proc: subprocess.Popen[str], what: str) -> dict[str, Any] | None:
        out, err = proc.communicate(timeout=180)
        self.rounds += 1
        if proc.returncode == -signal.SIGKILL:
            self.kills += 1
            self.log.append(f"{what}: killed")
            return None
        if proc.returncode != 0:
            raise AssertionError(f"worker ({what}) failed with {proc.returncode}:\n{err[-3000:]}")
        self.missed += 1
        self.log.append(f"{what}: finished before the kill ({out.strip()})")
        return json.loads(out)

    def kill_at(self, hook: str, *, action: str = "run", refresh_items: int = 0) -> None:
        """Run a worker armed to die at *hook* (at a seeded hit number), or at a random time."""
        pending = max(self.pending(), refresh_items)
        batches = max(1, math.ceil(pending / BATCH))
        if hook == "random":
            self._random_kill(action, batches)
            return
        if hook == "replace":
            at = self.rng.randint(1, max(1, refresh_items - 1))
        elif hook == "http":
            at = self.rng.randint(1, max(1, batches * WRITES_PER_BATCH[self.kind] // 2))
        elif hook == "check":
            at = 1
        elif hook.startswith("push"):
            at = self.rng.randint(1, max(1, int(batches * PUSHES_PER_BATCH[self.kind]) // 2))
        else:
            at = self.rng.randint(1, max(1, batches // 2))
        self._finish(self.start(kill=f"{hook}:{at}", action=action), f"{hook}:{at}")

    def _random_kill(self, action: str, batches: int) -> None:
        before = self.emulator.count()
        proc = self.start(action=action)
        target = before + self.rng.randint(1, max(2, batches * 2))
        deadline = time.monotonic() + 60
        while (
            self.emulator.count() < target and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0, 0.03))  # land anywhere: mid-push, mid-commit, mid-lease
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        self._finish(proc, "random")

    def finish(self, action: str = "run") -> dict[str, Any]:
        """Run a last worker with no kill armed; it must complete the event."""
        proc = self.start(action=action)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["reason"] in {"completed", "idle"}, result
        return result

    # -- the invariant ---------------------------------------------------------------------------

    def verify(self, *, events: int = 1, strict_counts: bool = False) -> list[str]:
        """Every violation of the invariant (see the module docstring); ``[]`` when it holds."""
        problems = check_channel(self.kind, self.emulator, self.catalog)
        queue, store = open_backends(self.backend)
        channel = make_channel(self.kind, url=self.url, clock=ManualClock())
        try:
            sync = Synchronizer(
                CONNECTOR, catalog=self.catalog, channel=channel, queue=queue, store=store
            )
            register = sync.register
            history = register.events(CONNECTOR, limit=100)
            if history.total != events:
                problems.append(
                    f"{history.total} events, expected {events}: "
                    f"{[(e.trigger.value, e.status.value) for e in history.items]}"
                )
            event = history.items[0]
            if event.status is not EventStatus.COMPLETED or event.finished_at is None:
                problems.append(f"the last event is {event.status.value}")
            if event.pending.total or queue.counts(CONNECTOR).total:
                problems.append(
                    f"pending {event.pending.total}, queued {queue.counts(CONNECTOR).total}"
                )
            statuses = register.items(CONNECTOR, event_id=event.id, limit=1_000_000)
            states = {(s.type.value, s.ref): s for s in statuses}
            if len(states) != statuses.total:
                problems.append("an item has two statuses in one event")
            # a force refresh queues only the types the channel takes (R05); an incremental
            # event records the others as skipped
            types = channel.capabilities.accepts if events > 1 else set(ItemType)
            wanted = {(t.value, i.ref) for t in types for i in self.catalog.items(t)}
            missing = wanted - states.keys()
            if missing:
                problems.append(f"{len(missing)} items have no status: {sorted(missing)[:5]}")
            pending = [k for k, s in states.items() if s.state is ItemState.PENDING]
            if pending:
                problems.append(f"{len(pending)} items are still PENDING: {pending[:5]}")
            errors = {k for k, s in states.items() if s.state is ItemState.ERROR}
            bad = invalid_refs(self.kind, self.catalog) & wanted
            if errors != bad:
                detail = {
                    k: [e.message[:80] for e in states[k].errors] if k in states else "no status"
                    for k in sorted(errors ^ bad)[:5]
                }
                problems.append(f"ERROR items differ from the invalid ones: {detail}")
            delivered = sum(
                1 for s in statuses if s.state is ItemState.DONE and s.action is not ItemAction.SKIP
            )
            # An item is counted once per delivery. A product sent before its categories'
            # channel ids were stored is sent again with them (reads_ids): once more per
            # category at most.
            again = sum(
                len(i.parents)
                for reader, _source in channel.capabilities.reads_ids
                for i in self.catalog.items(reader)
            )
            if not delivered <= event.synchronized.total <= delivered + again:
                problems.append(
                    f"synchronized count {event.synchronized.total} for {delivered} delivered"
                )
            if event.failed.total < len(errors) or (
                strict_counts and event.failed.total != len(errors)
            ):
                problems.append(f"failed count {event.failed.total} != {len(errors)} errors")
        finally:
            close_backends(queue, store)
            close_channel(channel)
        return problems
