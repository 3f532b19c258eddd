"""Shared helpers for the synchronizer tests: backends per kind, a small shoe catalog."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from catalogsync import (
    Change,
    Connector,
    ConnectorParams,
    Item,
    ItemType,
    MemoryCatalog,
    MemoryQueue,
    MemoryStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import ManualClock, MemoryChannel

from _services import postgres
from _support import require


C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
BACKENDS = ["memory", "sqlite", "postgres"]


def make_backends(
    kind: str,
    tmp_path: Path,
    clock: ManualClock,
    finalizer: Callable[[Callable[[], None]], None],
) -> tuple[Any, Any]:
    """
    A (queue, store) pair of the given kind on the test's clock; *finalizer* (pytest's
    ``request.addfinalizer``) registers its cleanup.

    ``postgres`` gets a schema of its own on the server of `_services.postgres` (skipped when it
    is unreachable, a failure under CI), dropped after the test.
    """
    if kind == "memory":
        return MemoryQueue(clock=clock), MemoryStore(clock=clock)
    if kind == "sqlite":
        from catalogsync.backends import SQLiteQueue, SQLiteStore

        path = tmp_path / "catalogsync.db"
        return SQLiteQueue(path, clock=clock), SQLiteStore(path, clock=clock)
    if kind == "postgres":
        return _postgres_backends(clock, finalizer)
    raise ValueError(kind)


def _postgres_backends(
    clock: ManualClock, finalizer: Callable[[Callable[[], None]], None]
) -> tuple[Any, Any]:
    dsn, reason = postgres()
    require(dsn is not None, reason)
    assert dsn is not None
    import psycopg
    import psycopg_pool

    from catalogsync.backends.postgres import PostgresQueue, PostgresStore, migrate

    schema = f"cstest_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        pool.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    pool = psycopg_pool.ConnectionPool(
        dsn, min_size=1, max_size=8, kwargs={"autocommit": True}, open=True
    )
    finalizer(drop)
    migrate(pool, schema=schema)
    return (
        PostgresQueue(pool, schema=schema, clock=clock),
        PostgresStore(pool, schema=schema, clock=clock),
    )


def shoe_catalog() -> MemoryCatalog:
    """Two categories, three products (P1 with V1+V2, P2 with V3, P3 alone), localised titles."""
    return MemoryCatalog(
        [
            Item("C1", C, fields={"title": {"en": "Shoes", "es": "Zapatos"}}, tags={"launch"}),
            Item("C2", C, fields={"title": {"en": "Socks", "es": "Calcetines"}}),
            Item(
                "P1",
                P,
                fields={"title": {"en": "Trail shoe", "es": "Zapatilla"}, "price": 90},
                parents=["C1"],
                tags={"launch"},
                family="shoes",
            ),
            Item("V1", V, fields={"sku": "TS-40", "price": 90}, parents=["P1"]),
            Item("V2", V, fields={"sku": "TS-41", "price": 92}, parents=["P1"]),
            Item(
                "P2",
                P,
                fields={"title": {"en": "Wool sock", "es": "Calcetin"}, "price": 9},
                parents=["C2"],
                family="socks",
            ),
            Item("V3", V, fields={"sku": "WS-M", "price": 9}, parents=["P2"]),
            Item(
                "P3",
                P,
                fields={"title": {"en": "Lace", "es": "Cordon"}, "price": 2},
                parents=["C1"],
                family="shoes",
            ),
        ]
    )


def everything(catalog: MemoryCatalog) -> list[Change]:
    """A change for every item of the catalog."""
    return [Change(i.ref, t) for t in ItemType for i in catalog.items(t)]


def make_sync(
    queue: Any,
    store: Any,
    clock: ManualClock,
    catalog: MemoryCatalog,
    channel: MemoryChannel | None = None,
    *,
    params: ConnectorParams | None = None,
    connector_id: str = "shop",
    options: SyncOptions | None = None,
    **kwargs: Any,
) -> Synchronizer:
    """A synchronizer for a connector named *connector_id* (created on first use)."""
    connector = Connector(
        connector_id, "memory", account="acme", params=params or ConnectorParams()
    )
    return Synchronizer(
        connector,
        catalog=catalog,
        channel=channel or MemoryChannel(clock=clock),
        queue=queue,
        store=store,
        clock=clock,
        options=options or SyncOptions(batch_size=100),
        **kwargs,
    )


def pushed(channel: MemoryChannel) -> list[tuple[str, str, str]]:
    """The operations a memory channel received, as (action, type, ref) strings."""
    return [(a.value, t.value, r) for a, t, r in channel.log]


def keys(items: Iterable[Any]) -> set[tuple[str, str]]:
    """(type, ref) of statuses or planned items, as strings."""
    return {(i.type.value, i.ref) for i in items}
