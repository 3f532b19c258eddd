"""
Broken database connections under a running Synchronizer (PostgreSQL, Redis).

A killer thread terminates the synchronizer's server connections again and again
(``pg_terminate_backend``, ``CLIENT KILL``) while it runs. Each `Synchronizer.run` either
completes or raises a retryable `BackendError` that says what failed; once the connections are
left alone, the next `run` completes the same event. Nothing is lost, nothing created twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from catalogsync import (
    BackendError,
    Connector,
    EventStatus,
    ItemState,
    MemoryQueue,
    MemoryStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync._demo import all_changes, sample_catalog
from catalogsync.backends.postgres import PostgresQueue, PostgresStore, migrate
from catalogsync.testing import MemoryChannel

from _services import postgres, redis_server
from _support import require


PRODUCTS = 150  # 6 categories, 150 products, about 590 variants
OPTIONS = SyncOptions(batch_size=20, lease_ttl=1.0, poll_interval=0.05)


def _keys(statuses, state: ItemState) -> set[tuple[str, str]]:
    return {(s.type.value, s.ref) for s in statuses if s.state is state}


def _expected() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(delivered, failed) keys of one undisturbed in-memory run over the same catalog."""
    catalog = sample_catalog(PRODUCTS)
    sync = Synchronizer(
        Connector("oracle", "memory"),
        catalog=catalog,
        channel=MemoryChannel(),
        queue=MemoryQueue(),
        store=MemoryStore(),
    )
    sync.enqueue(all_changes(catalog))
    assert sync.run().reason == "completed"
    statuses = sync.register.items("oracle", limit=10_000)
    return _keys(statuses, ItemState.DONE), _keys(statuses, ItemState.ERROR)


def _run_under_fire(
    sync: Synchronizer, kill: Callable[[], int], message: str, *, every: float
) -> list[object]:
    """Run while *kill* fires every *every* s; then once more in peace. Returns what each did."""
    kills: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            kills.append(kill())
            time.sleep(every)

    outcomes: list[object] = []
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            try:
                result = sync.run()
            except BackendError as exc:
                assert exc.retryable, exc
                assert message in str(exc), exc
                outcomes.append(exc)
                continue
            outcomes.append(result.reason)
            if result.reason == "completed":
                break
    finally:
        stop.set()
        thread.join()
    assert sum(kills) >= 3, "the connections were really killed under the synchronizer"
    outcomes.append(sync.run().reason)
    return outcomes


def _check(sync: Synchronizer, channel: MemoryChannel, outcomes: list[object]) -> None:
    assert outcomes[-1] in {"completed", "idle"}  # "idle": a run under fire already completed
    assert "completed" in outcomes
    events = sync.register.events(sync.connector_id)
    assert events.total == 1  # every run worked on the same event
    assert events.items[0].status is EventStatus.COMPLETED
    assert sync.queue.counts(sync.connector_id).total == 0
    statuses = sync.register.items(sync.connector_id, limit=10_000)
    done, failed = _expected()
    assert _keys(statuses, ItemState.DONE) == done
    assert _keys(statuses, ItemState.ERROR) == failed
    assert {(t.value, r) for t, r in channel.listings} == done
    assert channel.duplicates() == {}


@pytest.mark.postgres
def test_terminated_postgres_connections_under_a_run():
    """pg_terminate_backend under a run: retryable errors only, then the event completes once."""
    dsn, reason = postgres()
    require(dsn is not None, reason)
    assert dsn is not None
    import psycopg
    import psycopg_pool

    schema = f"cstest_{uuid.uuid4().hex[:12]}"
    app = f"cstest-{uuid.uuid4().hex[:8]}"
    migrate(dsn, schema=schema)
    pool = psycopg_pool.ConnectionPool(
        dsn,
        min_size=2,
        max_size=4,
        kwargs={"autocommit": True, "application_name": app},
        open=False,
    )
    admin = psycopg.connect(dsn, autocommit=True)

    def kill() -> int:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [app],
        ).fetchall()
        return len(rows)

    try:
        pool.open(wait=True)
        catalog = sample_catalog(PRODUCTS)
        channel = MemoryChannel()
        sync = Synchronizer(
            Connector("pg-kill", "memory"),
            catalog=catalog,
            channel=channel,
            queue=PostgresQueue(pool, schema=schema),
            store=PostgresStore(pool, schema=schema),
            options=OPTIONS,
        )
        sync.enqueue(all_changes(catalog))
        outcomes = _run_under_fire(sync, kill, "PostgreSQL ", every=0.05)
        _check(sync, channel, outcomes)
    finally:
        pool.close()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_killed_redis_connections_under_a_run():
    """CLIENT KILL under a run (Redis queue, PostgreSQL store): the event completes once."""
    url, reason = redis_server()
    require(url is not None, reason)
    dsn, reason = postgres()
    require(dsn is not None, reason)
    assert url is not None
    assert dsn is not None
    import psycopg
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from catalogsync.backends.redis import RedisQueue

    name = f"cstest-{uuid.uuid4().hex[:8]}"
    prefix = f"cstest-{uuid.uuid4().hex[:12]}"
    schema = f"cstest_{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(url, client_name=name, retry=Retry(NoBackoff(), 0))
    admin = redis.Redis.from_url(url)

    def kill() -> int:
        return sum(
            admin.client_kill_filter(_id=info["id"])
            for info in admin.client_list()
            if info.get("name") == name
        )

    store = PostgresStore(dsn, schema=schema)
    try:
        catalog = sample_catalog(PRODUCTS)
        channel = MemoryChannel()
        sync = Synchronizer(
            Connector("redis-kill", "memory"),
            catalog=catalog,
            channel=channel,
            queue=RedisQueue(client, prefix=prefix),
            store=store,
            options=OPTIONS,
        )
        sync.enqueue(all_changes(catalog))
        outcomes = _run_under_fire(sync, kill, "Redis ", every=0.002)
        _check(sync, channel, outcomes)
    finally:
        store.close()
        keys = list(admin.scan_iter(match=f"{{{prefix}:*"))
        if keys:
            admin.delete(*keys)
        client.close()
        admin.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
