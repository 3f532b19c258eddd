"""
Many worker processes on one connector, through the Synchronizer, on PostgreSQL (and Redis).

Every test starts real processes (``_crashworker.py``) that share one PostgreSQL store and one
queue; the channel is the KV emulator on a loopback port (``_kvchannel.py``), so what the channel
holds outlives any process and its creation counts show a duplicate. The expected outcome comes
from one in-memory synchronizer over the same catalog (the oracle).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalogsync import (
    Change,
    Connector,
    EventStatus,
    ItemState,
    ItemType,
    MemoryQueue,
    MemoryStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync._demo import sample_catalog
from catalogsync.backends.postgres import PostgresQueue, PostgresStore, migrate
from catalogsync.testing import MemoryChannel
from catalogsync.typing import EventQuery, ItemQuery

from _kvchannel import KVEmulator
from _services import postgres, redis_server
from _support import require


HERE = Path(__file__).parent
PRODUCTS = 600  # 6 categories, 600 products, 2342 variants
SEEDED = 500  # products (with their variants) enqueued before the workers start
CONNECTOR = "fleet"
WORKERS = 4


# -- what should happen ---------------------------------------------------------------------------


def _changes(first: int, last: int) -> list[list[str]]:
    catalog = sample_catalog(PRODUCTS)
    refs = {f"P{n:04d}" for n in range(first, last + 1)}
    out = [["product", ref] for ref in sorted(refs)]
    out += [["variant", v.ref] for v in catalog.items(ItemType.VARIANT) if v.parents[0] in refs]
    return out


SEED = [["category", c.ref] for c in sample_catalog(6).items(ItemType.CATEGORY)]
SEED += _changes(1, SEEDED)
# The producer: the rest of the catalog, and 100 products already seeded (they coalesce with a
# pending entry, fence a leased one, or are found already delivered in this event).
PRODUCED = _changes(SEEDED + 1, PRODUCTS) + [["product", f"P{n:04d}"] for n in range(1, 400, 4)]


@functools.cache
def oracle() -> tuple[frozenset[str], frozenset[str]]:
    """("type/ref" delivered, "type/ref" failed) by one in-memory synchronizer."""
    catalog = sample_catalog(PRODUCTS)
    sync = Synchronizer(
        Connector("oracle", "memory"),
        catalog=catalog,
        channel=MemoryChannel(),
        queue=MemoryQueue(),
        store=MemoryStore(),
        options=SyncOptions(batch_size=500),
    )
    sync.enqueue(Change(ref, ItemType(t)) for t, ref in SEED + PRODUCED)
    assert sync.run().reason == "completed"
    statuses = sync.register.items("oracle", limit=100_000)
    done = {f"{s.type.value}/{s.ref}" for s in statuses if s.state is ItemState.DONE}
    failed = {f"{s.type.value}/{s.ref}" for s in statuses if s.state is ItemState.ERROR}
    return frozenset(done), frozenset(failed)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_dsn() -> str:
    """The PostgreSQL server (skipped when unreachable; a failure under CI)."""
    dsn, reason = postgres()
    require(dsn is not None, reason)
    assert dsn is not None
    return dsn


@pytest.fixture
def schema(pg_dsn):
    """A fresh, migrated schema, dropped after the test."""
    name = f"cstest_{uuid.uuid4().hex[:12]}"
    migrate(pg_dsn, schema=name)
    yield name
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def redis_prefix():
    """A unique key prefix on the Redis server, its keys deleted after the test."""
    url, reason = redis_server()
    require(url is not None, reason)
    import redis

    prefix = f"cstest-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def emulator():
    """The KV emulator on a loopback port: ``(emulator, url)``."""
    kv = KVEmulator()
    with kv.serve() as url:
        yield kv, url


# -- running a fleet ------------------------------------------------------------------------------


class Fleet:
    """Worker processes and a producer, started together, their JSON reports collected."""

    def __init__(self, tmp_path: Path, base: dict[str, Any]) -> None:
        self.tmp = tmp_path
        self.base = base
        self.go = tmp_path / "go"
        self.procs: list[subprocess.Popen[str]] = []
        self.names: list[str] = []

    def start(self, name: str, **config: Any) -> subprocess.Popen[str]:
        """Start a process; it waits at the gate until `go`."""
        full = {**self.base, **config, "ready_file": str(self.tmp / f"{name}.ready")}
        full["go_file"] = str(self.go)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_crashworker.py"), json.dumps(full)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        self.names.append(name)
        return proc

    def go_when_ready(self) -> None:
        """Open the gate once every process is ready (imports and connections done)."""
        deadline = time.monotonic() + 60
        ready = [self.tmp / f"{name}.ready" for name in self.names]
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in self.procs), self._errors()
            time.sleep(0.01)
        self.go.touch()

    def finish(self) -> dict[str, dict[str, Any]]:
        """Wait for every process; return the reports of those that exited normally."""
        reports: dict[str, dict[str, Any]] = {}
        try:
            for name, proc in zip(self.names, self.procs, strict=True):
                out, err = proc.communicate(timeout=120)
                if proc.returncode == 0:
                    reports[name] = json.loads(out)
                elif proc.returncode != -signal.SIGKILL:
                    pytest.fail(f"{name} exited with {proc.returncode}: {err[-3000:]}")
        finally:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        return reports

    def _errors(self) -> str:
        return "; ".join(p.stderr.read()[-2000:] for p in self.procs if p.poll() is not None)


def _fleet(tmp_path, queue_spec, pg_dsn, schema, url, **options) -> Fleet:
    base = {
        "store": {"kind": "postgres", "dsn": pg_dsn, "schema": schema},
        "queue": queue_spec,
        "url": url,
        "batch": True,
        "products": PRODUCTS,
        "connector": CONNECTOR,
        "options": {"batch_size": 25, "lease_ttl": 10, "poll_interval": 0.05, **options},
    }
    return Fleet(tmp_path, base)


def _seed(store, queue) -> None:
    sync = Synchronizer(
        Connector(CONNECTOR, "kv"),
        catalog=sample_catalog(PRODUCTS),
        channel=MemoryChannel(),
        queue=queue,
        store=store,
    )
    sync.enqueue(Change(ref, ItemType(t)) for t, ref in SEED)


def _run(fleet: Fleet, during: Callable[[Fleet], None] | None = None) -> dict[str, dict]:
    for i in range(WORKERS):
        fleet.start(f"w{i}", role="worker")
    fleet.start("producer", role="produce", changes=PRODUCED)
    fleet.go_when_ready()
    if during is not None:
        during(fleet)
    return fleet.finish()


# -- checking the outcome -------------------------------------------------------------------------


def _check(store, queue, url: str, reports: dict[str, dict]) -> tuple[Any, int]:
    """The invariants every fleet run must keep; returns the event and the channel's writes."""
    events = store.events(_query())
    assert events.total == 1, [(e.id, e.status) for e in events.items]
    event = store.get_event(events.items[0].id)
    assert event.status is EventStatus.COMPLETED
    assert queue.counts(CONNECTOR).total == 0

    # R04: the producer enqueued into the running event, and its items were delivered in it
    producer = reports["producer"]
    assert producer["written"] >= len(PRODUCED)
    assert producer["event"] == producer["event_after"] == event.id

    # every item has its final status, exactly as one synchronizer would have it
    statuses = store.item_statuses(ItemQuery(CONNECTOR, event_id=event.id, limit=100_000)).items
    done = {f"{s.type.value}/{s.ref}" for s in statuses if s.state is ItemState.DONE}
    failed = {f"{s.type.value}/{s.ref}" for s in statuses if s.state is ItemState.ERROR}
    expected_done, expected_failed = oracle()
    assert len(statuses) == len(done) + len(failed)
    assert done == expected_done
    assert failed == expected_failed

    # the channel holds each delivered item once, created once
    state = httpx.get(f"{url}/state").json()
    assert set(state["items"]) == done
    assert {k: n for k, n in state["creates"].items() if n != 1} == {}, "created twice"

    # counts: iterations vs statuses vs the channel's writes
    puts = state["writes"]
    assert event.synchronized.total >= len(done)  # re-renders (new category ids) count again
    assert puts >= event.synchronized.total
    assert event.failed.total >= len(failed)
    assert event.unchanged.total == 0  # a first event: nothing was sent before
    assert event.pending.total == 0
    return event, puts


def _query():
    return EventQuery(connector_id=CONNECTOR, limit=10)


def _worker_results(reports: dict[str, dict], event_id: str) -> list[list[Any]]:
    rows = []
    for name, report in reports.items():
        if name.startswith("w"):
            assert {r[1] for r in report["results"] if r[1] is not None} <= {event_id}
            rows.extend(report["results"])
    return rows


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_four_workers_share_one_event_on_postgres(tmp_path, pg_dsn, schema, emulator):
    """4 worker processes + a producer on PostgreSQL: one event, every item once, counts agree."""
    _, url = emulator
    store = PostgresStore(pg_dsn, schema=schema)
    queue = PostgresQueue(pg_dsn, schema=schema)
    try:
        _seed(store, queue)
        spec = {"kind": "postgres", "dsn": pg_dsn, "schema": schema}
        reports = _run(_fleet(tmp_path, spec, pg_dsn, schema, url))
        event, puts = _check(store, queue, url, reports)

        results = _worker_results(reports, event.id)
        assert all(reports[f"w{i}"]["reason"] == "idle" for i in range(WORKERS))
        # every worker joined the event and did part of it; nothing was lost in a crash here,
        # so the workers' own tallies, the iterations and the channel's log agree exactly
        for i in range(WORKERS):
            assert sum(r[2] for r in reports[f"w{i}"]["results"]) > 0, f"w{i} did nothing"
        workers = {reports[f"w{i}"]["worker"] for i in range(WORKERS)}
        assert {it.worker.rsplit(":", 1)[0] for it in event.iterations} == workers
        assert all(it.finished_at is not None for it in event.iterations)
        assert sum(r[3] for r in results) == event.synchronized.total == puts
        assert sum(r[4] for r in results) == event.failed.total
        assert [r[0] for r in results].count("completed") >= 1
    finally:
        store.close()
        queue.close()


def _owned_by(pg_dsn: str, schema: str, pid: int) -> list[tuple[str, str]]:
    """Queue rows currently leased by the worker process *pid*."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT item_type, ref FROM "{schema}".queue'
            " WHERE connector = %s AND owner LIKE %s AND visible_at > now()",
            [CONNECTOR, f"%:{pid}:%"],
        ).fetchall()
    return sorted(rows)


def _frozen_holding(proc: subprocess.Popen[str], pg_dsn: str, schema: str) -> list:
    """SIGSTOP *proc* at a moment it holds leases (mid-batch); return them."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        os.kill(proc.pid, signal.SIGSTOP)
        held = _owned_by(pg_dsn, schema, proc.pid)
        if held:
            return held
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    pytest.fail("the worker never held a lease")


@pytest.mark.postgres
def test_killed_and_stopped_workers_lose_nothing(tmp_path, pg_dsn, schema, emulator):
    """SIGKILL one worker and SIGTERM another mid-batch: nothing lost, no lease left, one event."""
    kv, url = emulator
    store = PostgresStore(pg_dsn, schema=schema)
    queue = PostgresQueue(pg_dsn, schema=schema)
    seen: dict[str, Any] = {}

    def during(fleet: Fleet) -> None:
        victim, stopped = fleet.procs[0], fleet.procs[1]
        while kv.writes < 600:
            time.sleep(0.01)
        seen["killed_pid"] = victim.pid
        seen["killed_held"] = _frozen_holding(victim, pg_dsn, schema)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        seen["killed_at"] = time.time()
        # nobody takes them before their deadline (at most lease_ttl away)
        seen["killed_still_held"] = _owned_by(pg_dsn, schema, victim.pid)
        seen["stopped_held"] = _frozen_holding(stopped, pg_dsn, schema)
        os.kill(stopped.pid, signal.SIGTERM)
        os.kill(stopped.pid, signal.SIGCONT)
        stopped.wait(timeout=60)
        seen["stopped_after"] = _owned_by(pg_dsn, schema, stopped.pid)
        seen["pending_after"] = queue.counts(CONNECTOR).total

    try:
        _seed(store, queue)
        spec = {"kind": "postgres", "dsn": pg_dsn, "schema": schema}
        reports = _run(_fleet(tmp_path, spec, pg_dsn, schema, url, lease_ttl=2), during)
        event, puts = _check(store, queue, url, reports)

        assert "w0" not in reports  # killed
        assert seen["killed_held"], "the killed worker held a batch"
        assert seen["killed_still_held"] == seen["killed_held"]
        # ... and the queue is empty now: another worker leased and acked them after the ttl
        assert event.finished_at.timestamp() > seen["killed_at"]
        assert seen["pending_after"] > 0, "the stop happened while the event ran"

        stopped = reports["w1"]
        assert stopped["reason"] == "stopped"
        assert stopped["results"][-1][0] == "interrupted"
        assert seen["stopped_held"], "the stopped worker held a batch when asked to stop"
        assert seen["stopped_after"] == [], "a gracefully stopped worker leaves no lease"

        results = _worker_results(reports, event.id)
        assert sum(r[3] for r in results) <= event.synchronized.total <= puts
        killed = [it for it in event.iterations if it.finished_at is None]
        assert len(killed) == 1  # the killed worker's iteration stays open; the rest closed
        assert f":{seen['killed_pid']}:" in killed[0].worker
    finally:
        store.close()
        queue.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_four_workers_share_one_event_on_redis_queue(
    tmp_path, pg_dsn, schema, redis_prefix, emulator
):
    """The same fleet on a Redis queue with the PostgreSQL store: one event, every item once."""
    from catalogsync.backends.redis import RedisQueue

    url_redis, prefix = redis_prefix
    _, url = emulator
    store = PostgresStore(pg_dsn, schema=schema)
    queue = RedisQueue(url_redis, prefix=prefix)
    try:
        _seed(store, queue)
        spec = {"kind": "redis", "url": url_redis, "prefix": prefix}
        reports = _run(_fleet(tmp_path, spec, pg_dsn, schema, url))
        event, puts = _check(store, queue, url, reports)

        results = _worker_results(reports, event.id)
        for i in range(WORKERS):
            assert sum(r[2] for r in reports[f"w{i}"]["results"]) > 0, f"w{i} did nothing"
        assert sum(r[3] for r in results) == event.synchronized.total == puts
        assert sum(r[4] for r in results) == event.failed.total
    finally:
        store.close()
        queue.close()
