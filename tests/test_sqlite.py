"""The SQLite queue and store: conformance, files shared by both, processes, migrations, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from catalogsync import (
    BackendError,
    Change,
    ChangeKind,
    ConfigSnapshot,
    ConflictError,
    Connector,
    Counts,
    EventStatus,
    InvalidArgumentError,
    ItemState,
    ItemStatus,
    ItemType,
    MemoryStore,
    SchemaVersionError,
    SyncEvent,
    Trigger,
)
from catalogsync._ids import new_id
from catalogsync.backends import SQLiteQueue, SQLiteStore, _sqlite_db, _sqlite_queue, _sqlite_schema
from catalogsync.testing import ManualClock, QueueConformance, StoreConformance
from catalogsync.typing import HistoryQuery, ItemQuery, ItemRecord, SentState


P, V, C = ItemType.PRODUCT, ItemType.VARIANT, ItemType.CATEGORY
TTL = timedelta(seconds=30)
POSIX = sys.platform != "win32"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a fresh database file."""
    return tmp_path / "catalogsync.db"


@pytest.fixture
def opened():
    """Backends made by a test, closed after it."""
    made: list[SQLiteQueue | SQLiteStore] = []
    yield made
    for backend in made:
        backend.close()


def _queue(opened, path, **kw) -> SQLiteQueue:
    q = SQLiteQueue(path, **kw)
    opened.append(q)
    return q


def _store(opened, path, **kw) -> SQLiteStore:
    s = SQLiteStore(path, **kw)
    opened.append(s)
    return s


# =================================================================================================
# conformance
# =================================================================================================


class TestSQLiteQueue(QueueConformance):
    @pytest.fixture
    def make_queue(self, opened, db):
        """SQLite queues on one file per test, on the test's clock."""
        return lambda clock: _queue(opened, db, clock=clock)


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def make_store(self, opened, db):
        """SQLite stores on one file per test."""
        return lambda clock: _store(opened, db, clock=clock)


class TestSharedFileQueue(QueueConformance):
    @pytest.fixture
    def make_queue(self, opened, db):
        """A FULL-durability queue on a file that a store created and is using."""

        def make(clock):
            store = _store(opened, db, clock=clock)
            store.save_connector(Connector("shared", "shopify"))
            return _queue(opened, db, clock=clock, synchronous="FULL")

        return make


class TestSharedFileStore(StoreConformance):
    @pytest.fixture
    def make_store(self, opened, db):
        """A store on a file that a queue created and holds entries in."""

        def make(clock):
            queue = _queue(opened, db, clock=clock)
            queue.enqueue("shared", [Change("P1", P), Change("V1", V)])
            return _store(opened, db, clock=clock)

        return make


def test_queue_and_store_share_one_file(opened, db, clock):
    """A queue and a store on the same file each see their own data, one schema for both."""
    queue = _queue(opened, db, clock=clock)
    store = _store(opened, db, clock=clock)
    queue.enqueue("shop", [Change("P1", P)])
    store.save_connector(Connector("shop", "shopify", account="acme"))

    assert queue.migrate() == store.migrate() == _sqlite_schema.LATEST
    assert queue.counts("shop") == Counts(product=1)
    assert store.get_connector("shop").account == "acme"
    assert store.list_connectors()[0].id == "shop"


# =================================================================================================
# construction, pragmas, errors
# =================================================================================================


@pytest.mark.parametrize("cls", [SQLiteQueue, SQLiteStore])
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"path": ":memory:"}, "path"),
        ({"path": ""}, "path"),
        ({"path": "file:x.db?mode=memory"}, "path"),
        ({"path": 42}, "path"),
        ({"synchronous": "OFF"}, "synchronous"),
        ({"synchronous": 2}, "synchronous"),
        ({"busy_timeout": 0}, "busy_timeout"),
        ({"busy_timeout": -1.0}, "busy_timeout"),
        ({"busy_timeout": True}, "busy_timeout"),
        ({"busy_timeout": "30"}, "busy_timeout"),
        ({"clock": object()}, "clock"),
    ],
)
def test_constructor_arguments_are_checked(db, cls, kwargs, field):
    """Bad constructor arguments raise InvalidArgumentError naming the argument."""
    args = {"path": db, **kwargs}
    with pytest.raises(InvalidArgumentError) as info:
        cls(args.pop("path"), **args)
    assert info.value.field == field


def test_constructor_opens_nothing(opened, db):
    """The file is created on first use, not by the constructor."""
    queue = _queue(opened, db, synchronous="full")

    assert not db.exists()
    assert queue.synchronous == "FULL"
    assert queue.counts("shop").total == 0
    assert db.exists()


@pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
def test_pragmas_are_set_on_every_connection(opened, db, synchronous, level):
    """WAL mode and the chosen synchronous level hold on each thread's connection."""
    store = _store(opened, db, synchronous=synchronous)
    seen: list[tuple[str, int]] = []

    def probe() -> None:
        conn = store._conn()
        seen.append(
            (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
            )
        )

    probe()
    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()

    assert seen == [("wal", level), ("wal", level)]


def test_each_thread_has_its_own_connection(opened, db):
    """Threads get separate connections; those of finished threads are closed and dropped."""
    queue = _queue(opened, db)
    main = queue._conn()
    others: list[sqlite3.Connection] = []

    def grab() -> None:
        others.append(queue._conn())

    thread = threading.Thread(target=grab)
    thread.start()
    thread.join()
    assert others[0] is not main
    assert queue._conn() is main

    def grab_again() -> None:
        queue._conn()

    thread = threading.Thread(target=grab_again)
    thread.start()
    thread.join()
    with pytest.raises(sqlite3.ProgrammingError):  # the dead thread's connection was closed
        others[0].execute("SELECT 1")


def test_old_sqlite_is_refused(opened, db, monkeypatch):
    """A Python linked against SQLite < 3.35 gets a clear BackendError at first use."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    queue = _queue(opened, db)

    with pytest.raises(BackendError, match=r"SQLite >= 3\.35\.0.*3\.31\.1"):
        queue.counts("shop")


def test_busy_database_is_a_retryable_backend_error(opened, db):
    """A write lock held elsewhere beyond busy_timeout is a retryable BackendError, not sqlite3's."""
    queue = _queue(opened, db, busy_timeout=0.05)
    queue.migrate()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendError) as info:
            queue.enqueue("shop", [Change("P1", P)])
        assert info.value.retryable
        assert not isinstance(info.value, sqlite3.Error)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert queue.enqueue("shop", [Change("P1", P)]) == 1  # and it works once the lock is gone


def test_unopenable_and_corrupt_files_are_backend_errors(opened, tmp_path):
    """A missing directory or a file that is not a database raise non-retryable BackendErrors."""
    with pytest.raises(BackendError) as info:
        _queue(opened, tmp_path / "no" / "such" / "dir.db").counts("shop")
    assert not info.value.retryable

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database, just text " * 200)
    with pytest.raises(BackendError) as info:
        _store(opened, junk).list_connectors()
    assert not info.value.retryable


def test_closed_backend_refuses_work(db):
    """After close() (or leaving the with block) every call raises BackendError."""
    with SQLiteQueue(db) as queue:
        queue.enqueue("shop", [Change("P1", P)])
    with pytest.raises(BackendError, match="closed"):
        queue.counts("shop")


def test_translate_classifies_busy_and_locked_codes():
    """SQLITE_BUSY and SQLITE_LOCKED (and their extended codes) are retryable; others are not."""
    busy = sqlite3.OperationalError("database is locked")
    snapshot = sqlite3.OperationalError("x")
    snapshot.sqlite_errorcode = 517  # type: ignore[attr-defined]  # SQLITE_BUSY_SNAPSHOT
    shared_cache = sqlite3.OperationalError("y")
    shared_cache.sqlite_errorcode = 262  # type: ignore[attr-defined]  # SQLITE_LOCKED_SHAREDCACHE
    plain = sqlite3.IntegrityError("UNIQUE constraint failed: events.id")

    assert _sqlite_db.translate(busy, "lease").retryable
    assert _sqlite_db.translate(snapshot, "lease").retryable
    assert _sqlite_db.translate(shared_cache, "lease").retryable
    assert not _sqlite_db.translate(plain, "commit").retryable
    assert "commit" in str(_sqlite_db.translate(plain, "commit"))


# =================================================================================================
# queue specifics
# =================================================================================================


def _plan(conn: sqlite3.Connection, sql: str, params) -> str:
    return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_lease_and_counts_queries_use_their_indexes(opened, db):
    """The lease pick walks the line index in order (no sort step); counts read their table."""
    queue = _queue(opened, db)
    queue.enqueue("shop", [Change(str(i), P) for i in range(100)])
    conn = queue._conn()
    conn.execute("ANALYZE")

    pick = _plan(conn, _sqlite_queue._LEASE_SELECT, ("shop", 0, 10))
    assert "queue_entries_line" in pick
    assert "TEMP B-TREE" not in pick
    counts = _plan(conn, _sqlite_queue._COUNTS, ("shop",))
    assert "queue_counts USING PRIMARY KEY" in counts  # kept by triggers: no scan of the queue


def _counted(conn: sqlite3.Connection, connector: str) -> Counts:
    rows = conn.execute(
        "SELECT item_type, count(*) FROM queue_entries WHERE connector = ? GROUP BY item_type",
        (connector,),
    ).fetchall()
    return Counts.of({ItemType(t): n for t, n in rows})


def test_migrating_a_version_1_file_counts_its_queue(opened, db):
    """A file written before the counts table gets its counts from the entries it holds."""
    conn = sqlite3.connect(db, isolation_level=None)
    _sqlite_schema.migrate(conn, _sqlite_schema.MIGRATIONS[:1])
    conn.executemany(
        "INSERT INTO queue_entries (connector, item_type, ref, kind, version, seq, visible_at, "
        "enqueued_at) VALUES (?, ?, ?, 'upsert', ?, ?, 0, 0)",
        [("shop", t.value, f"{t.value}{n}", n, n) for t, k in ((P, 3), (V, 5)) for n in range(k)],
    )
    conn.close()
    queue = _queue(opened, db)

    assert queue.counts("shop") == Counts(product=3, variant=5)
    leases = queue.lease("shop", owner="w", limit=8, ttl=TTL)
    queue.ack("shop", leases[:2])
    after = queue.counts("shop")
    assert after == _counted(queue._conn(), "shop")
    assert after.total == 6


def test_ref_filter_is_case_sensitive(opened, db):
    """entries(ref_contains=...) matches like `in`: case-sensitive, like the memory queue."""
    queue = _queue(opened, db)
    queue.enqueue("shop", [Change("SKU-1", P), Change("sku-2", P)])

    assert [e.ref for e in queue.entries("shop", ref_contains="SKU")] == ["SKU-1"]
    assert queue.entries("shop", ref_contains="").total == 2


def test_entries_arguments_are_checked(opened, db):
    """Negative paging and unknown item types are typed errors naming the argument."""
    queue = _queue(opened, db)
    for kwargs, field in [
        ({"offset": -1}, "offset"),
        ({"limit": -5}, "limit"),
        ({"item_type": "sku"}, "item_type"),
    ]:
        with pytest.raises(InvalidArgumentError) as info:
            queue.entries("shop", **kwargs)
        assert info.value.field == field
    with pytest.raises(InvalidArgumentError) as info:
        queue.release("shop", [], delay=timedelta(seconds=-1))
    assert info.value.field == "delay"
    with pytest.raises(InvalidArgumentError) as info:
        queue.ack("shop", ["not a lease"])  # type: ignore[list-item]
    assert info.value.field == "leases"
    assert queue.entries("shop", item_type="product").total == 0


def _bad_tail(n: int):
    yield from (Change(f"g{i}", V) for i in range(n))
    yield ("g-last", "variant")


def test_large_generator_is_atomic(opened, db, clock):
    """A generator longer than one staging chunk is written whole or, on a bad item, not at all."""
    queue = _queue(opened, db, clock=clock)
    queue.enqueue("shop", [Change("keep", P)])

    with pytest.raises(InvalidArgumentError):
        queue.enqueue("shop", _bad_tail(2500))
    assert queue.counts("shop") == Counts(product=1)

    def boom():
        yield from (Change(f"b{i}", V) for i in range(1800))
        raise RuntimeError("the PIM went away")

    with pytest.raises(RuntimeError, match="PIM"):
        queue.replace_all("shop", boom())
    assert [e.ref for e in queue.entries("shop")] == ["keep"]

    assert queue.enqueue("shop", (Change(f"g{i % 1500}", V) for i in range(3000))) == 3000
    assert queue.counts("shop") == Counts(product=1, variant=1500)
    staged = queue._conn().execute("SELECT count(*) FROM temp.catalogsync_stage").fetchone()
    assert staged == (0,)


def test_staged_generator_coalesces_in_order(opened, db, clock):
    """Through the staging table, duplicates coalesce (last kind wins) and keep their first place."""
    queue = _queue(opened, db, clock=clock)
    first = queue.enqueue("shop", [Change("A", P)])
    changes = [Change(f"r{i}", P) for i in range(1200)]
    changes.append(Change("r0", P, ChangeKind.DELETE))
    queue.enqueue("shop", iter(changes))
    entries = {e.ref: e for e in queue.entries("shop", limit=2000)}

    assert first == 1
    assert len(entries) == 1201
    assert entries["r0"].kind is ChangeKind.DELETE
    assert entries["r0"].version > entries["r1199"].version > entries["A"].version
    leased = queue.lease("shop", owner="w", limit=3, ttl=TTL)
    assert [lease.ref for lease in leased] == ["A", "r0", "r1"]


def test_staging_does_not_hold_the_write_lock(opened, db):
    """While a long generator is being read, other writers are not blocked."""
    queue = _queue(opened, db)
    other = _queue(opened, db, busy_timeout=0.05)
    other.migrate()
    wrote: list[int] = []

    def slow_producer():
        for i in range(2500):
            if i == 1500:  # past the first chunk: staging, not yet moving
                wrote.append(other.enqueue("shop", [Change("from-other", C)]))
            yield Change(f"s{i}", P)

    assert queue.enqueue("shop", slow_producer()) == 2500
    assert wrote == [1]
    assert queue.counts("shop") == Counts(category=1, product=2500)


def test_queue_matches_the_memory_queue(opened, db):
    """Random operation sequences give the same leases, counts and entries as the memory queue."""
    from catalogsync import MemoryQueue

    rng = random.Random(20261122)
    clock = ManualClock()
    mem, sql = MemoryQueue(clock=clock), _queue(opened, db, clock=clock)
    held: list = []
    for step in range(600):
        op = rng.random()
        if op < 0.35:
            changes = [
                Change(f"r{rng.randrange(30)}", rng.choice([P, V, C]), rng.choice(list(ChangeKind)))
                for _ in range(rng.randrange(1, 8))
            ]
            assert mem.enqueue("c", changes) == sql.enqueue("c", iter(changes))
        elif op < 0.55:
            owner, limit = f"w{rng.randrange(3)}", rng.randrange(1, 6)
            got = sql.lease("c", owner=owner, limit=limit, ttl=TTL)
            assert mem.lease("c", owner=owner, limit=limit, ttl=TTL) == got, step
            held.extend(got)
        elif op < 0.7 and held:
            batch = [held.pop(rng.randrange(len(held))) for _ in range(min(len(held), 3))]
            assert mem.ack("c", batch) == sql.ack("c", batch), step
        elif op < 0.8 and held:
            batch = [held.pop()]
            delay = timedelta(seconds=rng.choice([0, 5, 50]))
            assert mem.release("c", batch, delay=delay) == sql.release("c", batch, delay=delay)
        elif op < 0.87 and held:
            assert mem.extend("c", held[-2:], ttl=TTL) == sql.extend("c", held[-2:], ttl=TTL)
        elif op < 0.9:
            changes = [Change(f"r{rng.randrange(30)}", P) for _ in range(rng.randrange(0, 10))]
            assert mem.replace_all("c", changes) == sql.replace_all("c", changes)
        clock.advance(rng.choice([0, 0, 1, 7, 31]))
        assert mem.counts("c") == sql.counts("c"), step
        assert mem.entries("c", limit=100) == sql.entries("c", limit=100), step


def test_threads_lease_each_entry_once(opened, db):
    """Threads sharing one queue object never lease the same entry twice while leases run."""
    queue = _queue(opened, db)
    queue.enqueue("shop", [Change(f"r{i}", P) for i in range(1500)])
    taken: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while leases := queue.lease("shop", owner=name, limit=25, ttl=timedelta(minutes=5)):
            assert queue.ack("shop", leases) == len(leases)
            with lock:
                taken.extend(lease.ref for lease in leases)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(taken) == 1500
    assert len(set(taken)) == 1500
    assert queue.counts("shop").total == 0


# =================================================================================================
# store specifics
# =================================================================================================


def _event(connector_id: str, clock: ManualClock, status=EventStatus.IN_PROGRESS) -> SyncEvent:
    return SyncEvent(
        new_id(clock.now()),
        connector_id,
        Trigger.INCREMENTAL,
        status,
        clock.now(),
        ConfigSnapshot(Connector(connector_id, "shopify").params, "shopify"),
    )


def test_second_active_event_is_a_conflict(opened, db, clock):
    """Resuming an old event while another is active violates the one-active rule: ConflictError."""
    store = _store(opened, db)
    old, _ = store.open_event(_event("shop", clock))
    store.transition(
        old.id,
        expected={EventStatus.IN_PROGRESS},
        status=EventStatus.COMPLETED,
        at=clock.now(),
        finished=True,
    )
    store.open_event(_event("shop", clock))

    with pytest.raises(ConflictError):
        store.transition(
            old.id, expected={EventStatus.COMPLETED}, status=EventStatus.PAUSED, at=clock.now()
        )
    assert store.get_event(old.id).status is EventStatus.COMPLETED
    with pytest.raises(ConflictError):
        store.open_event(attrs.evolve(old, status=EventStatus.ERROR))  # same id again


def _status(event: SyncEvent, ref: str, clock: ManualClock, item_type=V) -> ItemStatus:
    return ItemStatus(event.id, event.connector_id, ref, item_type, ItemState.DONE, clock.now())


def _state(event: SyncEvent, ref: str, parents, clock: ManualClock) -> SentState:
    return SentState(V, ref, f"v1:{ref}", None, None, tuple(parents), event.id, clock.now())


def test_commit_matches_the_memory_store(opened, db, clock):
    """Random commit batches (states, forgets, relinks, repeats of one key) end as in memory."""
    rng = random.Random(7)
    sqlite_store = _store(opened, db)
    memory_store = MemoryStore()
    results = []
    opened_event = _event("shop", clock)
    for store in (sqlite_store, memory_store):
        rng.seed(7)
        store.save_connector(Connector("shop", "shopify"))
        event, _ = store.open_event(opened_event)
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        for _ in range(60):
            records = []
            for _ in range(rng.randrange(1, 6)):
                ref = f"V{rng.randrange(8)}"
                roll = rng.random()
                status = _status(event, ref, clock)
                if roll < 0.5:
                    parents = rng.sample(["P1", "P2", "P3"], rng.randrange(0, 3))
                    records.append(ItemRecord(status, state=_state(event, ref, parents, clock)))
                elif roll < 0.75:
                    records.append(ItemRecord(status, forget=True))
                else:
                    records.append(ItemRecord(status))
            store.commit(
                it,
                records,
                synchronized=Counts(variant=len(records)),
                failed=Counts(),
                unchanged=Counts(),
                skipped=Counts(),
            )
        refs = [f"V{i}" for i in range(8)]
        results.append(
            (
                dict(store.sent_states("shop", V, refs)),
                dict(store.sent_children("shop", V, ["P1", "P2", "P3", "P4"])),
                store.get_event(event.id).synchronized,
                store.item_statuses(ItemQuery("shop", limit=100)).total,
            )
        )

    assert results[0] == results[1]


def test_commit_rejects_a_state_for_another_item(opened, db, clock):
    """A record whose sent state is not the status's item is a typed error; nothing is written."""
    store = _store(opened, db)
    event, _ = store.open_event(_event("shop", clock))
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    wrong = ItemRecord(_status(event, "V1", clock), state=_state(event, "V2", ["P1"], clock))

    with pytest.raises(InvalidArgumentError):
        store.commit(
            it,
            [wrong],
            synchronized=Counts(),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )
    assert store.item_statuses(ItemQuery("shop")).total == 0


def test_history_without_a_saved_connector_uses_the_snapshot(opened, db, clock):
    """Statuses of a connector that was never saved show the snapshot's platform, no account."""
    store = _store(opened, db)
    event, _ = store.open_event(_event("ghost", clock))
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    store.commit(
        it,
        [ItemRecord(_status(event, "V1", clock))],
        synchronized=Counts(variant=1),
        failed=Counts(),
        unchanged=Counts(),
        skipped=Counts(),
    )

    [record] = store.history(HistoryQuery(platform="shopify", account=""))
    assert (record.platform, record.account, record.status.ref) == ("shopify", "", "V1")


def test_status_ref_filter_is_case_sensitive(opened, db, clock):
    """ItemQuery.ref_contains matches case-sensitively, like the memory store."""
    store = _store(opened, db)
    event, _ = store.open_event(_event("shop", clock))
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    store.commit(
        it,
        [ItemRecord(_status(event, "SKU-1", clock)), ItemRecord(_status(event, "sku-2", clock))],
        synchronized=Counts(variant=2),
        failed=Counts(),
        unchanged=Counts(),
        skipped=Counts(),
    )

    assert [s.ref for s in store.item_statuses(ItemQuery("shop", ref_contains="SKU"))] == ["SKU-1"]


def test_many_refs_in_one_lookup(opened, db, clock):
    """sent_states and sent_children take thousands of refs in one call."""
    store = _store(opened, db)
    event, _ = store.open_event(_event("shop", clock))
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    records = [
        ItemRecord(
            _status(event, f"V{i}", clock), state=_state(event, f"V{i}", [f"P{i % 7}"], clock)
        )
        for i in range(3000)
    ]
    store.commit(
        it,
        records,
        synchronized=Counts(variant=3000),
        failed=Counts(),
        unchanged=Counts(),
        skipped=Counts(),
    )
    refs = [f"V{i}" for i in range(5000)]

    assert len(store.sent_states("shop", V, refs)) == 3000
    children = store.sent_children("shop", V, [f"P{i}" for i in range(8)])
    assert sum(len(c) for c in children.values()) == 3000
    assert children["P7"] == ()
    with pytest.raises(InvalidArgumentError):
        store.sent_states("shop", V, "V1")


# =================================================================================================
# migrations
# =================================================================================================


def _schema_rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT version, description, applied_at FROM catalogsync_schema"
        ).fetchall()
    finally:
        conn.close()


def test_fresh_file_is_migrated_once(opened, db):
    """A fresh file gets every migration; reopening it changes nothing and keeps the data."""
    queue = _queue(opened, db)
    assert queue.migrate() == _sqlite_schema.LATEST
    queue.enqueue("shop", [Change("P1", P)])
    rows = _schema_rows(db)
    assert [r[0] for r in rows] == list(range(1, _sqlite_schema.LATEST + 1))

    again = _queue(opened, db)
    assert again.migrate() == _sqlite_schema.LATEST
    assert again.counts("shop") == Counts(product=1)
    assert _schema_rows(db) == rows


def test_newer_schema_is_refused(opened, db):
    """A file migrated by a newer catalogsync raises SchemaVersionError, on use and on migrate()."""
    _store(opened, db).migrate()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO catalogsync_schema VALUES (?, 'from the future', '2030-01-01')",
            (_sqlite_schema.LATEST + 1,),
        )
    conn.close()
    queue = _queue(opened, db)

    with pytest.raises(SchemaVersionError, match="newer"):
        queue.counts("shop")
    with pytest.raises(SchemaVersionError):  # and again: a refused file stays refused
        queue.enqueue("shop", [Change("P1", P)])
    with pytest.raises(SchemaVersionError):
        queue.migrate()
    assert isinstance(SchemaVersionError("x"), BackendError)


NEXT = _sqlite_schema.LATEST + 1


def _next(statements) -> list[_sqlite_schema.Migration]:
    step = _sqlite_schema.Migration(NEXT, "test step", tuple(statements))
    return [*_sqlite_schema.MIGRATIONS, step]


def test_pending_migrations_apply_in_order(opened, db, monkeypatch):
    """An older file is brought forward by the migrations it lacks, and only those."""
    _store(opened, db).migrate()
    monkeypatch.setattr(
        _sqlite_schema,
        "MIGRATIONS",
        _next(["CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)"]),
    )
    store = _store(opened, db)

    assert store.migrate() == NEXT
    assert store._conn().execute("SELECT x FROM extra").fetchall() == [(1,)]
    assert [r[0] for r in _schema_rows(db)] == list(range(1, NEXT + 1))


def test_failed_migration_leaves_the_previous_version(opened, db, monkeypatch):
    """A migration that fails part-way is rolled back whole: no half-applied schema."""
    _store(opened, db).migrate()
    monkeypatch.setattr(
        _sqlite_schema, "MIGRATIONS", _next(["CREATE TABLE extra (x INTEGER)", "NOT SQL AT ALL"])
    )
    store = _store(opened, db)

    with pytest.raises(BackendError):
        store.migrate()
    assert [r[0] for r in _schema_rows(db)] == list(range(1, _sqlite_schema.LATEST + 1))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    finally:
        conn.close()


# =================================================================================================
# several processes
# =================================================================================================

_PRELUDE = """
import json, os, sys, time
from datetime import timedelta
from catalogsync import Change, ItemType
from catalogsync.backends import SQLiteQueue, SQLiteStore

def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.005)
"""


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    code = _PRELUDE + textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


_MIGRATE = """
path, go = sys.argv[1], sys.argv[2]
backend = (SQLiteQueue if os.getpid() % 2 else SQLiteStore)(path)
wait_for(go)
print(backend.migrate())
backend.close()
"""


def test_processes_migrating_a_fresh_file_at_once(tmp_path, db):
    """Four processes opening a fresh file together: all succeed, each migration applied once."""
    go = tmp_path / "go"
    procs = [_spawn(_MIGRATE, db, go) for _ in range(4)]
    time.sleep(0.3)  # let them import and reach the barrier
    go.touch()
    outs = [_finish(p) for p in procs]

    assert {o.strip() for o in outs} == {str(_sqlite_schema.LATEST)}
    assert [r[0] for r in _schema_rows(db)] == list(range(1, _sqlite_schema.LATEST + 1))


_OPEN_EVENT = """
from catalogsync import ConfigSnapshot, ConnectorParams, EventStatus, SyncEvent, SystemClock, Trigger
from catalogsync._ids import new_id
path, go = sys.argv[1], sys.argv[2]
store = SQLiteStore(path)
store.migrate()
now = SystemClock().now()
mine = SyncEvent(new_id(now), "shop", Trigger.INCREMENTAL, EventStatus.IN_PROGRESS, now,
                 ConfigSnapshot(ConnectorParams(), "shopify"))
wait_for(go)
event, created = store.open_event(mine)
print(json.dumps([event.id, created]))
store.close()
"""


def test_processes_open_one_event(tmp_path, db):
    """Processes opening an event for one connector at once create exactly one."""
    go = tmp_path / "go"
    procs = [_spawn(_OPEN_EVENT, db, go) for _ in range(4)]
    time.sleep(0.3)
    go.touch()
    results = [json.loads(_finish(p)) for p in procs]

    assert sum(created for _, created in results) == 1
    assert len({eid for eid, _ in results}) == 1


_PRODUCE = """
path, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
queue = SQLiteQueue(path)
for start in range(0, n, batch):
    queue.enqueue("shop", [Change(f"r{i}", ItemType.PRODUCT) for i in range(start, start + batch)])
    time.sleep(0.002)
queue.close()
"""

_CONSUME = """
path, done, out = sys.argv[1], sys.argv[2], sys.argv[3]
queue = SQLiteQueue(path)
name = f"worker-{os.getpid()}"
taken, acked = [], 0
while True:
    leases = queue.lease("shop", owner=name, limit=50, ttl=timedelta(minutes=5))
    if leases:
        acked += queue.ack("shop", leases)
        taken.extend(lease.ref for lease in leases)
    elif os.path.exists(done) and queue.counts("shop").total == 0:
        break
    else:
        time.sleep(0.002)
json.dump({"taken": taken, "acked": acked}, open(out, "w"))
queue.close()
"""


def test_processes_share_a_queue(tmp_path, db):
    """Four consumer processes and one producer: every change delivered once, counts end at 0."""
    with SQLiteQueue(db) as queue:  # schema first, so the producer's first batch is not delayed
        queue.migrate()
    n, batch = 6000, 200
    done = tmp_path / "done"
    consumers = [_spawn(_CONSUME, db, done, tmp_path / f"out{i}.json") for i in range(4)]
    producer = _spawn(_PRODUCE, db, n, batch)
    _finish(producer)
    done.touch()
    for c in consumers:
        _finish(c)
    reports = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(4)]
    taken = [ref for r in reports for ref in r["taken"]]

    assert sorted(taken) == sorted(f"r{i}" for i in range(n))  # each exactly once
    assert sum(r["acked"] for r in reports) == n
    assert sum(1 for r in reports if r["taken"]) >= 2  # the work was actually shared
    with SQLiteQueue(db) as queue:
        assert queue.counts("shop").total == 0


# =================================================================================================
# crashes
# =================================================================================================

_CRASH_ENQUEUE = """
path, batch, sync = sys.argv[1], int(sys.argv[2]), sys.argv[3]
queue = SQLiteQueue(path, synchronous=sync)
b = 0
while True:
    changes = [Change(f"b{b}-{i}", ItemType.VARIANT) for i in range(batch)]
    # odd batches come from a generator longer than a staging chunk: the staged path
    queue.enqueue("shop", changes if b % 2 == 0 else iter(changes))
    print(b, flush=True)
    b += 1
"""


def _wait_lines(proc: subprocess.Popen[str], at_least: int) -> None:
    assert proc.stdout is not None
    for _ in range(at_least):
        if not proc.stdout.readline():
            break


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
@pytest.mark.parametrize("sync", ["NORMAL", "FULL"])
def test_kill_9_loses_no_returned_enqueue(tmp_path, sync):
    """SIGKILL mid-enqueue: the file is intact, every returned batch is there, none is partial."""
    rng = random.Random()
    batch = 1200
    for trial in range(6):
        path = tmp_path / f"crash-{trial}.db"
        with SQLiteQueue(path) as queue:
            queue.migrate()
        proc = _spawn(_CRASH_ENQUEUE, path, batch, sync)
        _wait_lines(proc, 2)
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        returned = {int(line) for line in out.split()}  # after the two already read
        returned |= {0, 1}

        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = conn.execute(
                "SELECT substr(ref, 2, instr(ref, '-') - 2), count(*) FROM queue_entries GROUP BY 1"
            ).fetchall()
        finally:
            conn.close()
        present = {int(b): n for b, n in rows}
        assert returned <= set(present), f"trial {trial}: a returned batch is missing"
        assert set(present.values()) == {batch}, f"trial {trial}: a partial batch is visible"
        assert set(present) - returned <= {max(returned) + 1}  # at most the one in flight


_CRASH_REPLACE = """
path = sys.argv[1]
queue = SQLiteQueue(path)
g = 0
while True:
    g += 1
    queue.replace_all("shop", (Change(f"g{g}-{i}", ItemType.PRODUCT) for i in range(3000)))
    print(g, flush=True)
"""


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_kill_9_during_replace_all_keeps_one_whole_set(tmp_path, db):
    """SIGKILL mid-refresh: the queue holds exactly one complete generation."""
    with SQLiteQueue(db) as queue:
        queue.migrate()
    proc = _spawn(_CRASH_REPLACE, db)
    _wait_lines(proc, 1)
    time.sleep(random.uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    with SQLiteQueue(db) as queue:
        entries = queue.entries("shop", limit=10_000)
        generations = {e.ref.split("-")[0] for e in entries}
        assert len(generations) == 1
        assert entries.total == 3000
        assert queue._conn().execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(opened, db):
    """A child forked after use gets a fresh connection; the parent's keeps working."""
    queue = _queue(opened, db)
    queue.enqueue("shop", [Change("parent-1", P)])
    parent_conn = queue._conn()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            fresh = queue._conn() is not parent_conn
            queue.enqueue("shop", [Change("child", P)])
            code = 0 if fresh else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert queue._conn() is parent_conn
    queue.enqueue("shop", [Change("parent-2", P)])
    assert {e.ref for e in queue.entries("shop")} == {"parent-1", "child", "parent-2"}


@pytest.mark.parametrize(
    "refs",
    [(), ("P1",), ('say "hi"',), ("back\\slash",), ("a", "b"), ("ñandú",), ('["',), ("",)],
)
def test_stored_ref_lists_decode_exactly(refs):
    from catalogsync.backends._sqlite_store import _decode_refs

    text = json.dumps(list(refs), ensure_ascii=False)
    assert _decode_refs(text) == refs


@pytest.mark.parametrize("decoder", ["default", "json"])
def test_stored_memos_and_parents_decode_exactly(decoder, monkeypatch):
    """The orjson decoder (the `fast` extra) and the standard library decode stored states alike."""
    from catalogsync.backends import _sqlite_store

    if decoder == "json":
        monkeypatch.setattr(_sqlite_store, "_json_loads", json.loads)
    memo = {"inventory": 'gid://x/"1"', "note": "ñandú \\ \u2028 \U0001f600", "": ""}
    parents = ["C1", 'say "hi"', "ñ"]
    row = (
        "shop", "product", "P1", "v1:ab", None, None,
        json.dumps(parents, ensure_ascii=False),
        json.dumps(memo, ensure_ascii=False, sort_keys=True),
        "ev", 0,
    )  # fmt: skip
    state = _sqlite_store._sent_state(row)
    assert state.memo == memo
    assert state.parents == tuple(parents)
