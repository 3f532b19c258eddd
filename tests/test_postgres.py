"""The PostgreSQL queue and store against a real server: conformance, migrations, lost connections."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from tests._services import OffsetClock, check_deliveries, postgres, run_processes, spawn

from catalogsync import (
    BackendError,
    Change,
    ChangeKind,
    Counts,
    InvalidArgumentError,
    ItemType,
    SchemaVersionError,
)
from catalogsync.testing import ManualClock, QueueConformance, StoreConformance

from _support import require


psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

from catalogsync.backends.postgres import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresQueue,
    PostgresStore,
    migrate,
)


pytestmark = pytest.mark.postgres

P, V, C = ItemType.PRODUCT, ItemType.VARIANT, ItemType.CATEGORY
TTL = timedelta(seconds=30)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The server's DSN; skips (fails under CI) when it is unreachable."""
    dsn, reason = postgres()
    require(dsn is not None, reason)
    assert dsn is not None
    return dsn


def _drop(dsn: str, *schemas: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def schemas(pg_dsn):
    """Hands out unique schema names and drops them all at the end of the session."""
    made: list[str] = []

    def new() -> str:
        name = f"cstest_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield new
    _drop(pg_dsn, *made)


@pytest.fixture(scope="session")
def schema(schemas) -> str:
    """The schema shared by the conformance tests (they use fresh connector ids)."""
    return schemas()


@pytest.fixture(scope="session")
def pool(pg_dsn):
    """A pool the tests own, shared by the conformance queues and stores."""
    p = psycopg_pool.ConnectionPool(
        pg_dsn, min_size=1, max_size=8, kwargs={"autocommit": True}, open=True
    )
    yield p
    p.close()


def _admin(pg_dsn):
    return psycopg.connect(pg_dsn, autocommit=True)


# -- conformance ----------------------------------------------------------------------------------


class TestPostgresQueue(QueueConformance):
    @pytest.fixture
    def make_queue(self, pool, schema):
        """Queues on the shared pool and schema, on the test's clock."""
        return lambda clock: PostgresQueue(pool, schema=schema, clock=clock)


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def make_store(self, pool, schema):
        """Stores on the shared pool and schema, on the test's clock."""
        return lambda clock: PostgresStore(pool, schema=schema, clock=clock)


# -- construction ---------------------------------------------------------------------------------


def test_missing_psycopg_names_the_extra(monkeypatch):
    """Without psycopg, creating a backend raises an ImportError that names the extra."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"catalogsync\[postgres\]"):
        PostgresQueue("postgresql://nowhere/db")


@pytest.mark.parametrize("bad", ["", "1abc", 'x"; DROP TABLE t; --', "a" * 64, None])
def test_schema_name_must_be_an_identifier(bad):
    """A schema that is not a plain identifier is refused before anything connects."""
    with pytest.raises(InvalidArgumentError) as info:
        PostgresQueue("postgresql://nowhere/db", schema=bad)
    assert info.value.field == "schema"


def test_dsn_or_pool_is_checked():
    """Anything but a DSN string or a ConnectionPool is a typed error."""
    with pytest.raises(InvalidArgumentError) as info:
        PostgresStore(42)  # type: ignore[arg-type]
    assert info.value.field == "dsn_or_pool"


def test_repr_never_shows_the_dsn():
    """The repr names the schema only: a DSN may carry a password."""
    with PostgresQueue("postgresql://app:hunter2@127.0.0.1:1/db", schema="shop") as q:
        assert "hunter2" not in repr(q)
        assert repr(q) == "PostgresQueue(schema='shop')"


def test_construction_connects_nothing_and_failures_are_retryable():
    """A DSN backend connects on first use; no server is retryable; after close() calls fail."""
    q = PostgresStore("postgresql://app@127.0.0.1:1/db", timeout=0.5)
    assert q._db.pool.closed
    with pytest.raises(BackendError) as info:
        q.list_connectors()
    assert info.value.retryable
    q.close()
    with pytest.raises(BackendError, match="closed") as info:
        q.list_connectors()
    assert not info.value.retryable


def test_owned_pool_is_closed_and_a_passed_pool_is_not(pg_dsn, pool, schemas):
    """A backend made from a DSN closes its own pool; a pool the caller passed stays open."""
    name = schemas()
    with PostgresQueue(pg_dsn, schema=name) as owned:
        owned.enqueue("c", [Change("A", P)])
        assert owned.counts("c") == Counts(product=1)
    assert owned._db.pool.closed
    borrowed = PostgresQueue(pool, schema=name)
    borrowed.close()
    assert not pool.closed
    assert borrowed.counts("c") == Counts(product=1)


def test_nul_in_references_is_a_typed_error(pool, schema):
    """PostgreSQL text cannot hold NUL: such refs are refused with the field named, nothing written."""
    q = PostgresQueue(pool, schema=schema)
    cid = f"c-{uuid.uuid4().hex}"
    with pytest.raises(InvalidArgumentError) as info:
        q.enqueue(cid, [Change("ok", P), Change("bad\x00ref", P)])
    assert info.value.field == "Change.ref"
    assert q.counts(cid).total == 0


def test_queue_and_store_share_one_pool_and_schema(pool, schema):
    """A queue and a store on the same pool and schema work side by side (one migration)."""
    q = PostgresQueue(pool, schema=schema)
    s = PostgresStore(pool, schema=schema)
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P)])

    assert q.counts(cid) == Counts(product=1)
    assert s.list_connectors() is not None


def test_changes_enqueued_during_replace_all_survive_it(pool, schema):
    """A change enqueued while replace_all streams survives the commit and is not forced."""
    q = PostgresQueue(pool, schema=schema, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("old", P)])

    def fresh():
        yield Change("new", P)
        q.enqueue(cid, [Change("meanwhile", P), Change("new", P, ChangeKind.DELETE)])
        # readers still see the old set, plus the changes enqueued to it
        assert sorted(e.ref for e in q.entries(cid)) == ["meanwhile", "new", "old"]
        yield Change("last", P)

    assert q.replace_all(cid, fresh()) == 2
    entries = {e.ref: e for e in q.entries(cid, limit=10)}
    assert sorted(entries) == ["last", "meanwhile", "new"]
    assert not entries["new"].force  # the user's change is newer than the refresh: it stays
    assert entries["new"].kind is ChangeKind.DELETE
    assert entries["last"].force


def test_large_batches(pool, schema):
    """Leases, acks and releases of thousands of entries in one call keep every guarantee."""
    q = PostgresQueue(pool, schema=schema, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, (Change(f"R{i:05d}", P) for i in range(2600)))
    leases = q.lease(cid, owner="w", limit=2500, ttl=TTL)

    assert [lease.ref for lease in leases] == [f"R{i:05d}" for i in range(2500)]
    assert q.extend(cid, leases, ttl=TTL * 2) == 2500
    assert q.release(cid, leases[2000:]) == 500
    q.enqueue(cid, [Change("R00007", P)])  # a newer version of one leased entry
    assert q.ack(cid, leases[:2000]) == 1999
    assert q.counts(cid) == Counts(product=601)
    assert q.lease(cid, owner="x", limit=10, ttl=TTL)[0].ref == "R00007"


# -- migrations -----------------------------------------------------------------------------------


def _versions(pg_dsn, name):
    with _admin(pg_dsn) as conn:
        return [r[0] for r in conn.execute(f'SELECT version FROM "{name}".schema_version')]


def test_first_use_creates_the_schema(pg_dsn, schemas):
    """First use creates the schema, every table, and records the version once."""
    name = schemas()
    with PostgresQueue(pg_dsn, schema=name) as q:
        assert q.counts("c") == Counts()
    with _admin(pg_dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [name]
            )
        }

    assert _versions(pg_dsn, name) == list(range(1, SCHEMA_VERSION + 1))
    assert tables == {
        "schema_version",
        "queue",
        "queue_counts",
        "connectors",
        "events",
        "iterations",
        "item_statuses",
        "sent_states",
        "sent_links",
    }


def test_migrate_is_idempotent(pg_dsn, schemas):
    """Running migrate() again on a current schema changes nothing and returns the version."""
    name = schemas()
    assert migrate(pg_dsn, schema=name) == SCHEMA_VERSION
    assert migrate(pg_dsn, schema=name) == SCHEMA_VERSION
    with PostgresStore(pg_dsn, schema=name) as store:
        assert store.migrate() == SCHEMA_VERSION

    assert _versions(pg_dsn, name) == list(range(1, SCHEMA_VERSION + 1))


def test_two_processes_migrating_at_once(pg_dsn, schemas):
    """Two processes migrating a fresh schema at the same instant both succeed; it is done once."""
    name = schemas()
    start_at = time.time() + 2.0
    config = {"role": "migrate", "dsn": pg_dsn, "schema": name, "start_at": start_at}
    procs = [
        subprocess.Popen(spawn(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outs
    assert [json.loads(out)["version"] for out, _ in outs] == [SCHEMA_VERSION] * 2
    assert _versions(pg_dsn, name) == list(range(1, SCHEMA_VERSION + 1))


def test_a_version_1_schema_gets_its_queue_counted(pg_dsn, schemas, monkeypatch):
    """Migrating to version 2 counts the entries already queued; the triggers keep it exact."""
    from catalogsync.backends.postgres import _migrations

    name = schemas()
    with monkeypatch.context() as m:
        m.setattr(_migrations, "MIGRATIONS", _migrations.MIGRATIONS[:1])
        m.setattr(_migrations, "SCHEMA_VERSION", 1)
        assert migrate(pg_dsn, schema=name) == 1
        with PostgresQueue(pg_dsn, schema=name) as old:
            old.enqueue("shop", [Change(f"P{n}", P) for n in range(3)])
            old.enqueue("shop", [Change(f"V{n}", V) for n in range(5)])
    assert _versions(pg_dsn, name) == [1]

    with PostgresQueue(pg_dsn, schema=name) as q:
        assert q.counts("shop") == Counts(product=3, variant=5)
        q.ack("shop", q.lease("shop", owner="w", limit=2, ttl=TTL))
        kept = {e.key for e in q.entries("shop", limit=100)}
        q.enqueue("shop", [Change("P0", P), Change("C1", C)])  # P0 coalesces or returns
        recount = Counts.of({t: q.entries("shop", item_type=t, limit=1).total for t in (P, V, C)})
        assert q.counts("shop") == recount
        assert recount.total == len(kept | {(P, "P0"), (C, "C1")})
    assert _versions(pg_dsn, name) == [1, 2]


def test_queue_counts_stay_folded(pool, schemas):
    """Counting folds the deltas: after many batches a connector keeps one row per type."""
    name = schemas()
    q = PostgresQueue(pool, schema=name)
    for n in range(30):
        q.enqueue("shop", [Change(f"P{n}-{i}", P) for i in range(10)] + [Change(f"V{n}", V)])
        q.ack("shop", q.lease("shop", owner="w", limit=7, ttl=TTL))
        q.counts("shop")
    with pool.connection() as conn:
        rows = conn.execute(
            f'SELECT item_type FROM "{name}".queue_counts WHERE connector = %s', ["shop"]
        ).fetchall()
    assert sorted(r[0] for r in rows) == ["product", "variant"]
    assert q.counts("shop").total == 30 * 11 - 30 * 7


def test_queue_counts_stay_exact_with_concurrent_workers(pool, schemas):
    """Workers enqueueing, acking and counting at once (folding concurrently) lose no count."""
    name = schemas()
    q = PostgresQueue(pool, schema=name)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                q.enqueue("shop", [Change(f"P{n}-{i}-{k}", P) for k in range(5)])
                q.enqueue("shop", [Change(f"V{i % 7}", V)])  # shared keys: coalescing
                q.ack("shop", q.lease("shop", owner=f"w{n}", limit=3, ttl=TTL))
                q.counts("shop")  # folds while the others append deltas and fold
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors, errors
    recount = Counts.of({t: q.entries("shop", item_type=t, limit=1).total for t in (P, V, C)})
    assert q.counts("shop") == recount
    assert recount.total > 0


def test_newer_schema_version_is_refused(pg_dsn, schemas):
    """A schema migrated by a newer catalogsync raises SchemaVersionError on use and on migrate."""
    name = schemas()
    migrate(pg_dsn, schema=name)
    with _admin(pg_dsn) as conn:
        conn.execute(
            f'INSERT INTO "{name}".schema_version VALUES (%s, %s, now())',
            [SCHEMA_VERSION + 1, "from the future"],
        )
    with PostgresQueue(pg_dsn, schema=name) as q:
        with pytest.raises(SchemaVersionError, match="newer"):
            q.counts("c")
        with pytest.raises(SchemaVersionError):
            q.migrate()
    with pytest.raises(SchemaVersionError):
        migrate(pg_dsn, schema=name)
    with PostgresStore(pg_dsn, schema=name) as store, pytest.raises(SchemaVersionError):
        store.list_connectors()


def test_schemas_are_isolated(pool, schemas):
    """The schema name is configurable; two schemas on one server hold separate queues."""
    a = PostgresQueue(pool, schema=schemas())
    b = PostgresQueue(pool, schema=schemas())
    a.enqueue("shop", [Change("A", P), Change("B", P)])
    b.enqueue("shop", [Change("Z", P)])

    assert a.counts("shop") == Counts(product=2)
    assert [e.ref for e in b.entries("shop")] == ["Z"]


def test_without_auto_migrate_first_use_asks_for_migrate(pool, schemas):
    """auto_migrate=False on a fresh schema fails clearly (not retryable) until migrate() runs."""
    q = PostgresQueue(pool, schema=schemas(), auto_migrate=False)
    with pytest.raises(BackendError, match=r"migrate\(\)") as info:
        q.counts("c")
    assert not info.value.retryable
    assert q.migrate() == SCHEMA_VERSION
    assert q.counts("c") == Counts()


# -- lost connections -----------------------------------------------------------------------------


@pytest.fixture
def app_pool(pg_dsn):
    """A pool of two connections tagged with a unique application_name, so tests can kill them."""
    app = f"cstest-{uuid.uuid4().hex[:8]}"
    p = psycopg_pool.ConnectionPool(
        pg_dsn,
        min_size=2,
        max_size=2,
        kwargs={"autocommit": True, "application_name": app},
        open=True,
    )
    p.wait()
    p.app = app  # type: ignore[attr-defined]
    yield p
    p.close()


def _pids(pg_dsn, app, *, waiting=False):
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting:
        query += " AND wait_event_type = 'Lock'"
    with _admin(pg_dsn) as conn:
        return [r[0] for r in conn.execute(query, [app])]


def _kill(pg_dsn, app, *, waiting=False) -> int:
    """Terminate the pool's backends (only those waiting on a lock, if asked); wait until gone."""
    pids = _pids(pg_dsn, app, waiting=waiting)
    with _admin(pg_dsn) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()
            if left == (0,):
                break
            time.sleep(0.01)
    return len(pids)


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail("condition not reached in time")


def test_killed_idle_connections_are_replaced(pg_dsn, app_pool, schema):
    """After every pooled connection is terminated, each next operation works (one retry)."""
    q = PostgresQueue(app_pool, schema=schema, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P), Change("B", P)])

    assert _kill(pg_dsn, app_pool.app) == 2
    assert q.counts(cid) == Counts(product=2)
    _kill(pg_dsn, app_pool.app)
    leases = q.lease(cid, owner="w", limit=10, ttl=TTL)
    assert [lease.ref for lease in leases] == ["A", "B"]
    _kill(pg_dsn, app_pool.app)
    assert q.ack(cid, leases) == 2
    _kill(pg_dsn, app_pool.app)
    assert q.enqueue(cid, [Change("C", P)]) == 1
    assert [e.ref for e in q.entries(cid)] == ["C"]


def _blocked(pg_dsn, schema, cid, target):
    """Hold every queue row of *cid* locked in an open transaction; run *target* in a thread."""
    admin = psycopg.connect(pg_dsn)
    admin.execute(f'SELECT 1 FROM "{schema}".queue WHERE connector = %s FOR UPDATE', [cid])
    result: dict = {}

    def run():
        try:
            result["value"] = target()
        except BackendError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return admin, thread, result


def test_connection_killed_while_acking_is_retried(pg_dsn, app_pool, schema):
    """An ack whose connection dies while it waits on a lock is retried and acks exactly once."""
    q = PostgresQueue(app_pool, schema=schema, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P)])
    leases = q.lease(cid, owner="w", limit=1, ttl=TTL)
    admin, thread, result = _blocked(pg_dsn, schema, cid, lambda: q.ack(cid, leases))
    try:
        _wait_until(lambda: _pids(pg_dsn, app_pool.app, waiting=True))
        assert _kill(pg_dsn, app_pool.app, waiting=True) == 1
        _wait_until(lambda: _pids(pg_dsn, app_pool.app, waiting=True))  # the retry waits too
    finally:
        admin.rollback()
        admin.close()
        thread.join(10)

    assert result == {"value": 1}
    assert q.counts(cid).total == 0
    assert q.ack(cid, leases) == 0


def test_replace_all_killed_midway_is_retryable_and_atomic(pg_dsn, app_pool, schema):
    """replace_all is not retried: a lost connection is a retryable BackendError, old set intact."""
    q = PostgresQueue(app_pool, schema=schema, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("old1", P), Change("old2", P)])
    admin, thread, result = _blocked(
        pg_dsn, schema, cid, lambda: q.replace_all(cid, iter([Change("new", P)]))
    )
    try:
        _wait_until(lambda: _pids(pg_dsn, app_pool.app, waiting=True))
        _kill(pg_dsn, app_pool.app, waiting=True)
        thread.join(10)
    finally:
        admin.rollback()
        admin.close()

    error = result["error"]
    assert error.retryable
    assert "connection lost during replace_all" in str(error)
    assert sorted(e.ref for e in q.entries(cid)) == ["old1", "old2"]
    assert q.replace_all(cid, [Change("new", P)]) == 1
    assert [e.ref for e in q.entries(cid)] == ["new"]


def _die_after_first(db, monkeypatch, *, before=False):
    """Make the first unit of work lose its connection, after (or before) its statements ran."""
    original = db._attempt
    state = {"first": True}

    def attempt(fn):
        if not state["first"]:
            return original(fn)
        state["first"] = False

        def doomed(conn):
            if before:
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            out = fn(conn)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return out

        return original(doomed)

    monkeypatch.setattr(db, "_attempt", attempt)


def test_lease_whose_reply_is_lost_is_recovered(pool, schema, monkeypatch):
    """If the connection dies after a lease committed, the retry returns those rows (same attempt)."""
    clock = ManualClock()
    q = PostgresQueue(pool, schema=schema, clock=clock)
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P), Change("B", P), Change("C", P)])
    q.counts(cid)  # migrated and checked before the fault is armed
    _die_after_first(q._db, monkeypatch)
    leases = q.lease(cid, owner="w", limit=2, ttl=TTL)

    assert [(lease.ref, lease.attempts) for lease in leases] == [("A", 1), ("B", 1)]
    assert [lease.ref for lease in q.lease(cid, owner="x", limit=10, ttl=TTL)] == ["C"]
    assert q.ack(cid, leases) == 2


def test_store_commit_is_not_retried_and_writes_nothing(pool, schema, monkeypatch):
    """A commit whose connection dies is a retryable BackendError; nothing of it was written."""
    from catalogsync import Connector, EventStatus, ItemState, ItemStatus, SyncEvent, Trigger
    from catalogsync._models import ConfigSnapshot
    from catalogsync.typing import ItemQuery, ItemRecord

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    connector = Connector(f"c-{uuid.uuid4().hex}", "shopify", account="acct")
    store.save_connector(connector)
    event, _ = store.open_event(
        SyncEvent(
            f"e-{uuid.uuid4().hex}",
            connector.id,
            Trigger.INCREMENTAL,
            EventStatus.IN_PROGRESS,
            clock.now(),
            ConfigSnapshot(connector.params, "shopify"),
        )
    )
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    record = ItemRecord(
        ItemStatus(event.id, connector.id, "P1", P, ItemState.DONE, updated_at=clock.now())
    )
    _die_after_first(store._db, monkeypatch, before=True)
    with pytest.raises(BackendError, match="connection lost during commit") as info:
        store.commit(it, [record], synchronized=Counts(product=1), **_zero())
    assert info.value.retryable
    assert store.item_statuses(ItemQuery(connector.id)).total == 0

    store.commit(it, [record], synchronized=Counts(product=1), **_zero())
    assert store.get_event(event.id).synchronized == Counts(product=1)
    assert store.item_statuses(ItemQuery(connector.id)).total == 1


def _zero():
    return {"failed": Counts(), "unchanged": Counts(), "skipped": Counts()}


def test_start_iteration_retry_finds_its_own_iteration(pool, schema, monkeypatch):
    """start_iteration retried after a lost reply returns the iteration it made, not a second one."""
    from catalogsync import EventStatus, SyncEvent, Trigger
    from catalogsync._models import ConfigSnapshot, ConnectorParams

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    event, _ = store.open_event(
        SyncEvent(
            f"e-{uuid.uuid4().hex}",
            f"c-{uuid.uuid4().hex}",
            Trigger.INCREMENTAL,
            EventStatus.IN_PROGRESS,
            clock.now(),
            ConfigSnapshot(ConnectorParams(), "shopify"),
        )
    )
    _die_after_first(store._db, monkeypatch)
    it = store.start_iteration(event.id, worker="w", at=clock.now())

    assert it.number == 1
    assert [i.id for i in store.get_event(event.id).iterations] == [it.id]
    assert store.start_iteration(event.id, worker="w", at=clock.now()).number == 2


def test_open_event_retry_recognises_its_own_event(pool, schema, monkeypatch):
    """open_event retried after a lost reply reports the event it inserted as created."""
    from catalogsync import EventStatus, SyncEvent, Trigger
    from catalogsync._models import ConfigSnapshot, ConnectorParams

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    event = SyncEvent(
        f"e-{uuid.uuid4().hex}",
        f"c-{uuid.uuid4().hex}",
        Trigger.INCREMENTAL,
        EventStatus.IN_PROGRESS,
        clock.now(),
        ConfigSnapshot(ConnectorParams(), "shopify"),
    )
    store.list_connectors()
    _die_after_first(store._db, monkeypatch)
    opened, created = store.open_event(event)

    assert created
    assert opened.id == event.id


def test_connections_killed_during_a_run_lose_nothing(pg_dsn, app_pool, schema):
    """Backends killed every 15 ms under a worker: retryable errors only, no loss, no double ack."""
    q = PostgresQueue(app_pool, schema=schema, clock=OffsetClock(timedelta(0)))
    cid = f"c-{uuid.uuid4().hex}"
    refs = [f"R{i:04d}" for i in range(600)]
    q.enqueue(cid, [Change(r, P) for r in refs])
    acked: dict[str, int] = {}
    leased_after_ack: list[str] = []
    seen: set[str] = set()
    errors: list[BackendError] = []
    stop = threading.Event()

    def work(queue, until_empty):
        idle = 0
        while not (until_empty and idle > 2) and not (not until_empty and stop.is_set()):
            try:
                leases = queue.lease(cid, owner="w", limit=20, ttl=TTL)
                if not leases:
                    idle += 1
                    time.sleep(0.01)
                    continue
                for lease in leases:
                    seen.add(lease.ref)
                    if acked.get(lease.ref):
                        leased_after_ack.append(lease.ref)
                    acked[lease.ref] = acked.get(lease.ref, 0) + queue.ack(cid, [lease])
            except BackendError as exc:
                errors.append(exc)

    kills = []

    def kill():
        while not stop.is_set():
            kills.append(_kill(pg_dsn, app_pool.app))
            time.sleep(0.015)

    killer = threading.Thread(target=kill)
    worker = threading.Thread(target=work, args=(q, False))
    killer.start()
    worker.start()
    time.sleep(2.0)
    stop.set()
    killer.join()
    worker.join()
    # Leases whose both attempts failed are stranded until their deadline: look past it.
    work(PostgresQueue(app_pool, schema=schema, clock=OffsetClock(TTL * 2)), True)

    assert sum(kills) > 10  # the worker really ran on connections that kept dying
    assert all(e.retryable for e in errors), errors
    assert not leased_after_ack
    assert max(acked.values()) == 1
    assert seen == set(refs)
    assert q.counts(cid).total == 0


# -- several processes ----------------------------------------------------------------------------


def test_four_worker_processes_and_a_producer(pg_dsn, schema):
    """4 workers and a producer: every change delivered once, counts consistent, queue drained."""
    cid = f"c-{uuid.uuid4().hex}"
    refs = [f"R{i:04d}" for i in range(1200)]
    produced = refs + refs[:300]  # the re-enqueued ones coalesce, some while leased
    q = PostgresQueue(pg_dsn, schema=schema)
    totals: list[int] = []

    def monitor():
        counts = q.counts(cid)
        assert counts.product == counts.total
        totals.append(counts.total)

    try:
        results = run_processes(
            {"backend": "postgres", "dsn": pg_dsn, "schema": schema, "cid": cid},
            workers=4,
            refs=produced,
            monitor=monitor,
        )
        assert results[0] == {"written": len(produced)}
        check_deliveries(results, refs)
        assert all(0 <= t <= len(refs) for t in totals)
        assert q.counts(cid) == Counts()
        assert q.entries(cid).total == 0
    finally:
        q.close()


# -- store specifics ------------------------------------------------------------------------------


def _event(connector_id, clock, **kw):
    from catalogsync import EventStatus, SyncEvent, Trigger
    from catalogsync._models import ConfigSnapshot, ConnectorParams

    kw.setdefault("status", EventStatus.IN_PROGRESS)
    return SyncEvent(
        f"e-{uuid.uuid4().hex}",
        connector_id,
        Trigger.INCREMENTAL,
        started_at=clock.now(),
        snapshot=ConfigSnapshot(ConnectorParams(), "shopify"),
        **kw,
    )


def test_transition_cannot_make_a_second_active_event(pool, schema):
    """Reviving a finished event while another is active is a ConflictError, nothing changes."""
    from catalogsync import ConflictError, EventStatus

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    cid = f"c-{uuid.uuid4().hex}"
    old, _ = store.open_event(_event(cid, clock))
    store.transition(
        old.id, expected={EventStatus.IN_PROGRESS}, status=EventStatus.COMPLETED, at=clock.now()
    )
    current, created = store.open_event(_event(cid, clock))
    assert created

    with pytest.raises(ConflictError):
        store.transition(
            old.id, expected={EventStatus.COMPLETED}, status=EventStatus.PAUSED, at=clock.now()
        )
    assert store.event_status(old.id) is EventStatus.COMPLETED
    assert store.active_event(cid).id == current.id  # type: ignore[union-attr]


def test_event_status_is_cheap_and_typed(pool, schema):
    """event_status reads one column; unknown ids raise NotFoundError."""
    from catalogsync import EventStatus, NotFoundError

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    event, _ = store.open_event(_event(f"c-{uuid.uuid4().hex}", clock))

    assert store.event_status(event.id) is EventStatus.IN_PROGRESS
    with pytest.raises(NotFoundError):
        store.event_status("nope\x00")


def test_store_refuses_nul_in_references(pool, schema):
    """A status ref with a NUL is a typed error; free text with a NUL round-trips."""
    from catalogsync import GeneralError, ItemState, ItemStatus
    from catalogsync.typing import ItemRecord

    clock = ManualClock()
    store = PostgresStore(pool, schema=schema, clock=clock)
    event, _ = store.open_event(_event(f"c-{uuid.uuid4().hex}", clock))
    it = store.start_iteration(event.id, worker="w", at=clock.now())
    bad = ItemStatus(event.id, event.connector_id, "P\x001", P, ItemState.DONE, clock.now())
    zero = {"synchronized": Counts(), "failed": Counts(), "unchanged": Counts()}

    with pytest.raises(InvalidArgumentError) as info:
        store.commit(it, [ItemRecord(bad)], skipped=Counts(), **zero)
    assert info.value.field == "ItemStatus.ref"
    store.add_errors(event.id, [GeneralError("bad\x00byte")])
    assert store.get_event(event.id).errors[0].message == "bad\x00byte"
