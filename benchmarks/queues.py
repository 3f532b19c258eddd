"""
queue-sqlite, queue-postgres, queue-redis: coalescing enqueue and lease+ack throughput.

    python -m benchmarks --only queue-sqlite queue-postgres queue-redis [--quick]

Enqueue: N changes over N/2 keys, in batches of 100 and of 1000; the second half re-enqueues
every key, so half the writes coalesce. Lease+ack: a queue filled with N distinct entries is
drained by worker processes (spawned once per benchmark and reused) that loop ``lease(batch)``
and ``ack(all)`` until it is empty; the rate is items over the wall time from the common start
(every worker connected and waiting) to the last worker's finish. PostgreSQL and Redis are
drained by 1 and by 4 workers; SQLite by one (and, for information, by 4 processes sharing the
file).

The floor of each figure is the same work done with the bare driver, in the simplest correct way,
on the same database with the same settings, measured in the same run:

* enqueue: one transaction per batch with one ``executemany`` of ``INSERT ... ON CONFLICT DO
  UPDATE`` (SQLite, PostgreSQL), or one pipeline of ``HSET`` + ``ZADD NX`` (Redis);
* lease+ack: one ``UPDATE ... RETURNING`` that leases the oldest visible rows (on PostgreSQL
  ``WHERE ctid = ANY(ARRAY(SELECT ctid ... FOR UPDATE SKIP LOCKED))``, whose plan does not depend
  on the table's statistics), then one transaction with an ``executemany`` of ``DELETE`` by key
  and owner (SQLite, PostgreSQL); on Redis ``ZPOPMIN`` off a ready set, a pipeline of ``ZADD`` to
  a leased set (deadline) + ``HMGET``, and a pipeline of ``HDEL`` + ``ZREM``.

The floors keep no version counter, no fencing of acks by version and deadline, no per-type counts,
no line order beyond the visibility time, and (Redis) no atomicity across a lease's commands: the
ratio library / floor is what those guarantees cost over the raw store.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self

from catalogsync import Change, ItemType
from catalogsync.backends import SQLiteQueue

from ._core import Context, Result, Timer


TTL = timedelta(minutes=5)
TYPES = (ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT)
BATCHES = (100, 1000)
WORKERS = 4
TYPE_CODES = {ItemType.CATEGORY: "c", ItemType.PRODUCT: "p", ItemType.VARIANT: "v"}

SQLITE_ENQUEUE_TARGET = 100_000
SQLITE_LEASE_TARGET = 40_000
POSTGRES_LEASE_TARGET = 20_000


def check(condition: bool, what: str) -> None:
    if not condition:
        msg = f"queue benchmark invariant broken: {what}"
        raise RuntimeError(msg)


def changes(n: int, distinct: int) -> list[Change]:
    """*n* changes over *distinct* keys (types in turn): every write after the first *distinct*
    re-enqueues a pending key."""
    return [Change(f"SKU-{i % distinct:08d}", TYPES[(i % distinct) % 3]) for i in range(n)]


def batched(items: Sequence[Change], size: int) -> list[Sequence[Change]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- where a queue lives (picklable, handed to the worker processes) -------------------------------


@dataclass(frozen=True)
class Spec:
    backend: str  #: "sqlite", "postgres" or "redis"
    where: str  #: file path, DSN or URL
    namespace: str = ""  #: PostgreSQL schema or Redis key prefix
    floor: bool = False  #: the bare-driver floor instead of the library


class Queue(Protocol):
    def setup(self) -> None: ...
    def enqueue(self, cid: str, batch: Sequence[Change]) -> None: ...
    def fill(self, cid: str, items: Sequence[Change]) -> None: ...
    def drain(self, cid: str, owner: str, batch: int) -> tuple[int, int]:
        """Lease and ack until nothing is visible; return (leased, acked)."""

    def count(self, cid: str) -> int: ...
    def close(self) -> None: ...


def open_queue(spec: Spec) -> Queue:
    if not spec.floor:
        return Library(spec)
    floors: dict[str, Callable[[Spec], Queue]] = {
        "sqlite": SQLiteFloor,
        "postgres": PostgresFloor,
        "redis": RedisFloor,
    }
    return floors[spec.backend](spec)


class Library:
    """The catalogsync queue through its public API."""

    def __init__(self, spec: Spec) -> None:
        if spec.backend == "sqlite":
            self.q: Any = SQLiteQueue(spec.where)  # default synchronous=NORMAL
        elif spec.backend == "postgres":
            from catalogsync.backends.postgres import PostgresQueue  # noqa: PLC0415

            self.q = PostgresQueue(spec.where, schema=spec.namespace, max_size=2)
        else:
            from catalogsync.backends.redis import RedisQueue  # noqa: PLC0415

            self.q = RedisQueue(spec.where, prefix=spec.namespace)

    def setup(self) -> None:
        self.q.counts("warm-up")  # connect (and migrate) outside the timings

    def enqueue(self, cid: str, batch: Sequence[Change]) -> None:
        self.q.enqueue(cid, batch)

    def fill(self, cid: str, items: Sequence[Change]) -> None:
        self.q.enqueue(cid, items)  # chunked by the queue itself (SQLite: one transaction)

    def drain(self, cid: str, owner: str, batch: int) -> tuple[int, int]:
        q, leased, acked = self.q, 0, 0
        while leases := q.lease(cid, owner=owner, limit=batch, ttl=TTL):
            leased += len(leases)
            acked += q.ack(cid, leases)
        return leased, acked

    def count(self, cid: str) -> int:
        return int(self.q.counts(cid).total)

    def close(self) -> None:
        self.q.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def now_us() -> int:
    return time.time_ns() // 1000


class SQLiteFloor:
    """Bare ``sqlite3`` with the library's connection settings (WAL, synchronous=NORMAL)."""

    def __init__(self, spec: Spec) -> None:
        self.conn = sqlite3.connect(spec.where, isolation_level=None, timeout=30.0)
        (mode,) = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()
        check(str(mode).lower() == "wal", f"floor database in WAL mode (got {mode})")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def setup(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS q (connector TEXT NOT NULL, item_type TEXT NOT NULL, "
            "ref TEXT NOT NULL, kind TEXT NOT NULL, visible_at INTEGER NOT NULL, owner TEXT, "
            "PRIMARY KEY (connector, item_type, ref))"
        )
        self.conn.execute("CREATE INDEX IF NOT EXISTS q_line ON q (connector, visible_at)")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def enqueue(self, cid: str, batch: Sequence[Change]) -> None:
        now = now_us()
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO q (connector, item_type, ref, kind, visible_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (connector, item_type, ref) DO UPDATE SET kind = excluded.kind",
                [(cid, c.type.value, c.ref, c.kind.value, now) for c in batch],
            )

    def fill(self, cid: str, items: Sequence[Change]) -> None:
        self.enqueue(cid, items)

    def drain(self, cid: str, owner: str, batch: int) -> tuple[int, int]:
        leased, acked, ttl = 0, 0, TTL // timedelta(microseconds=1)
        while True:
            now = now_us()
            with self.write() as conn:
                rows = conn.execute(
                    "UPDATE q SET owner = ?1, visible_at = ?2 WHERE rowid IN (SELECT rowid FROM q "
                    "WHERE connector = ?3 AND visible_at <= ?4 ORDER BY visible_at LIMIT ?5) "
                    "RETURNING item_type, ref, kind",
                    (owner, now + ttl, cid, now, batch),
                ).fetchall()
            if not rows:
                return leased, acked
            leased += len(rows)
            with self.write() as conn:
                acked += conn.executemany(
                    "DELETE FROM q WHERE connector = ? AND item_type = ? AND ref = ? AND owner = ?",
                    [(cid, t, r, owner) for t, r, _ in rows],
                ).rowcount

    def count(self, cid: str) -> int:
        return int(
            self.conn.execute("SELECT count(*) FROM q WHERE connector = ?", (cid,)).fetchone()[0]
        )

    def close(self) -> None:
        self.conn.close()


class PostgresFloor:
    """Bare psycopg (autocommit; one explicit transaction per enqueue batch)."""

    def __init__(self, spec: Spec) -> None:
        import psycopg  # noqa: PLC0415

        self.conn = psycopg.connect(spec.where, autocommit=True)
        self.t = f'"{spec.namespace}".q'

    def setup(self) -> None:
        self.conn.execute(
            f'CREATE TABLE IF NOT EXISTS {self.t} (connector text COLLATE "C" NOT NULL, '
            'item_type text COLLATE "C" NOT NULL, ref text COLLATE "C" NOT NULL, '
            "kind text NOT NULL, visible_at timestamptz NOT NULL, owner text, "
            "PRIMARY KEY (connector, item_type, ref))"
        )
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS q_line ON {self.t} (connector, visible_at)")

    def enqueue(self, cid: str, batch: Sequence[Change]) -> None:
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.t} (connector, item_type, ref, kind, visible_at) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (connector, item_type, ref) DO UPDATE SET kind = EXCLUDED.kind",
                [(cid, c.type.value, c.ref, c.kind.value, now) for c in batch],
            )

    def fill(self, cid: str, items: Sequence[Change]) -> None:  # not timed: one statement
        self.conn.execute(
            f"INSERT INTO {self.t} (connector, item_type, ref, kind, visible_at) "
            "SELECT %s, t, r, k, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS u (t, r, k)",
            (
                cid,
                datetime.now(UTC),
                [c.type.value for c in items],
                [c.ref for c in items],
                [c.kind.value for c in items],
            ),
        )

    def drain(self, cid: str, owner: str, batch: int) -> tuple[int, int]:
        # The ctid form keeps both plans independent of the table's statistics: an index scan of
        # the line for the lease, one primary-key probe per acked row.
        lease = (
            f"UPDATE {self.t} SET owner = %(o)s, visible_at = %(d)s WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {self.t} WHERE connector = %(c)s AND visible_at <= %(now)s "
            "ORDER BY visible_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)) RETURNING item_type, ref, kind"
        )
        ack = (
            f"DELETE FROM {self.t} "
            "WHERE connector = %s AND item_type = %s AND ref = %s AND owner = %s"
        )
        conn, leased, acked = self.conn, 0, 0
        while True:
            now = datetime.now(UTC)
            params = {"o": owner, "d": now + TTL, "c": cid, "now": now, "n": batch}
            rows = conn.execute(lease, params).fetchall()
            if not rows:
                return leased, acked
            leased += len(rows)
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(ack, [(cid, t, r, owner) for t, r, _ in rows])
                acked += cur.rowcount

    def count(self, cid: str) -> int:
        row = self.conn.execute(
            f"SELECT count(*) FROM {self.t} WHERE connector = %s", (cid,)
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


class RedisFloor:
    """Bare redis-py: a hash of kinds, a ready sorted set (by enqueue time), a leased sorted set
    (by deadline)."""

    def __init__(self, spec: Spec) -> None:
        import redis  # noqa: PLC0415

        self.r = redis.Redis.from_url(spec.where)
        self.prefix = spec.namespace

    def keys(self, cid: str) -> tuple[str, str, str]:
        base = f"{{{self.prefix}:{cid}}}:"
        return base + "q", base + "z", base + "l"

    def setup(self) -> None:
        self.r.ping()

    def enqueue(self, cid: str, batch: Sequence[Change]) -> None:
        q, z, _ = self.keys(cid)
        now, codes = now_us(), TYPE_CODES
        kinds = {codes[c.type] + c.ref: c.kind.value for c in batch}
        p = self.r.pipeline(transaction=False)
        p.hset(q, mapping=kinds)
        p.zadd(z, dict.fromkeys(kinds, now), nx=True)
        p.execute()

    def fill(self, cid: str, items: Sequence[Change]) -> None:
        for chunk in batched(items, 5000):
            self.enqueue(cid, chunk)

    def drain(self, cid: str, owner: str, batch: int) -> tuple[int, int]:
        q, z, lz = self.keys(cid)
        r, leased, acked, ttl = self.r, 0, 0, TTL // timedelta(microseconds=1)
        while popped := r.zpopmin(z, batch):
            fields = [m for m, _ in popped]
            p = r.pipeline(transaction=False)
            leased += len(fields)
            p.zadd(lz, dict.fromkeys(fields, now_us() + ttl))
            p.hmget(q, fields)
            _, kinds = p.execute()
            check(None not in kinds, "floor lease found no record")
            p.hdel(q, *fields)
            p.zrem(lz, *fields)
            deleted, _ = p.execute()
            acked += deleted
        return leased, acked

    def count(self, cid: str) -> int:
        return int(self.r.hlen(self.keys(cid)[0]))

    def close(self) -> None:
        self.r.close()


# -- worker processes ------------------------------------------------------------------------------

_ready: Any = None
_go: Any = None


def _init_worker(ready: Any, go: Any) -> None:
    global _ready, _go
    _ready, _go = ready, go


def _hello(_: int) -> None:
    _ready.put("hello")
    if not _go.wait(60):
        msg = "no start signal"
        raise RuntimeError(msg)


def _drain_task(spec: Spec, cid: str, batch: int, owner: str) -> tuple[int, int, float]:
    """Connect, report ready, wait for the common start, drain: (leased, acked, end time)."""
    queue = open_queue(spec)
    try:
        queue.count(cid)  # connect outside the timing
        _ready.put(owner)
        if not _go.wait(120):
            msg = "no start signal"
            raise RuntimeError(msg)
        leased, acked = queue.drain(cid, owner, batch)
        return leased, acked, time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
    finally:
        queue.close()


class Workers:
    """A pool of spawned worker processes that drain a queue from a common start."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self.ready = ctx.Queue()
        self.go = ctx.Event()
        self.pool = ctx.Pool(n, initializer=_init_worker, initargs=(self.ready, self.go))
        self.n = n
        # Wait until every process is up and has imported this module: processes still starting
        # would compete with the first measurements for the CPUs.
        try:
            hello = self.pool.map_async(_hello, range(n))
            self.start(hello, n)
            hello.get(timeout=60)
        except BaseException:
            self.pool.terminate()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.pool.close()
        else:
            self.pool.terminate()  # workers may still wait for a start that will not come
        self.pool.join()

    def start(self, pending: Any, tasks: int) -> float:
        """Wait until *tasks* tasks are ready, give them the start signal together; return when."""
        self.go.clear()
        deadline = time.monotonic() + 120
        ready = 0
        while ready < tasks:
            try:
                self.ready.get(timeout=0.2)
                ready += 1
            except queue_module.Empty:
                if pending.ready():
                    pending.get()  # a task failed: raise its error
                check(time.monotonic() < deadline, "workers ready within 120 s")
        start = time.monotonic()
        self.go.set()
        return start

    def drain(self, spec: Spec, cid: str, batch: int, workers: int) -> Drained:
        """Drain *cid* with *workers* processes started together."""
        check(workers <= self.n, "enough worker processes")
        # A task blocks until the start signal, so each of them holds a process of its own.
        pending = self.pool.starmap_async(
            _drain_task,
            [(spec, cid, batch, f"w{i}-{uuid.uuid4().hex[:6]}") for i in range(workers)],
        )
        start = self.start(pending, workers)
        outcomes = pending.get(timeout=900)
        return Drained(
            leased=sum(o[0] for o in outcomes),
            acked=sum(o[1] for o in outcomes),
            wall=max(o[2] for o in outcomes) - start,
            per_worker=[o[1] for o in outcomes],
        )


@dataclass
class Drained:
    leased: int
    acked: int
    wall: float
    per_worker: list[int]
    cpu: float | None = None  #: CPU seconds, when drained in this process


# -- the measurements ------------------------------------------------------------------------------


def enqueue_rate(
    spec: Spec, n: int, batch: int, reset: Callable[[Spec], None]
) -> tuple[float, float]:
    """Enqueue *n* changes over *n*/2 keys in batches; (wall rate, CPU rate of this process)."""
    distinct = n // 2
    batches = batched(changes(n, distinct), batch)
    cid = f"enq-{uuid.uuid4().hex[:8]}"
    queue = open_queue(spec)
    try:
        queue.setup()
        queue.count(cid)
        with Timer() as t:
            for b in batches:
                queue.enqueue(cid, b)
        got = queue.count(cid)
        check(got == distinct, f"coalesced to {distinct} entries, found {got} ({spec})")
    finally:
        queue.close()
    reset(spec)
    return n / t.wall, n / t.cpu if t.cpu else float("nan")


def fill(spec: Spec, cid: str, n: int) -> None:
    queue = open_queue(spec)
    try:
        queue.setup()
        queue.fill(cid, changes(n, n))
        got = queue.count(cid)
        check(got == n, f"filled {n} entries, found {got} ({spec})")
    finally:
        queue.close()


def drain_in_process(spec: Spec, cid: str, batch: int) -> Drained:
    queue = open_queue(spec)
    try:
        queue.count(cid)
        with Timer() as t:
            leased, acked = queue.drain(cid, "w0", batch)
    finally:
        queue.close()
    return Drained(leased, acked, t.wall, [acked], t.cpu)


def check_drained(spec: Spec, cid: str, n: int, drained: Drained) -> None:
    """Every entry leased exactly once and acked, none left."""
    check(drained.leased == n, f"leased {drained.leased} entries of {n} ({spec})")
    check(drained.acked == n, f"acked {drained.acked} of {n} ({spec})")
    queue = open_queue(spec)
    try:
        left = queue.count(cid)
    finally:
        queue.close()
    check(left == 0, f"{left} entries left after the drain ({spec})")


def rate_result(  # noqa: PLR0917
    benchmark: str,
    name: str,
    value: float,
    unit: str,
    floor: float,
    floor_name: str,
    target: float | None,
    details: dict[str, Any],
) -> Result:
    return Result(
        benchmark=benchmark,
        name=name,
        value=value,
        unit=unit,
        reference=floor,
        reference_name=floor_name,
        ratio=value / floor,
        ratio_note="library / floor",
        target=f">= {target:,.0f} {unit}" if target else "",
        met=None if target is None else value >= target,
        details=details,
    )


def scaling_result(
    benchmark: str, name: str, value: float, one: float, details: dict[str, Any], *, target: bool
) -> Result:
    return Result(
        benchmark=benchmark,
        name=name,
        value=value,
        unit="items/s",
        reference=one,
        reference_name="1 worker, same run",
        ratio=value / one,
        ratio_note=f"scaling factor ({WORKERS} workers / 1 worker)",
        target=f"scales with {WORKERS} workers (ratio > 1)" if target else "",
        met=value > one if target else None,
        details=details,
    )


ENQUEUE_FLOOR = {
    "sqlite": "sqlite3: executemany INSERT ON CONFLICT DO UPDATE, 1 txn/batch",
    "postgres": "psycopg: executemany INSERT ON CONFLICT DO UPDATE, 1 txn/batch",
    "redis": "redis-py: pipeline HSET + ZADD NX per batch",
}
LEASE_FLOOR = {
    "sqlite": "sqlite3: UPDATE..RETURNING lease + executemany DELETE ack",
    "postgres": "psycopg: UPDATE..SKIP LOCKED RETURNING lease + executemany DELETE ack",
    "redis": "redis-py: ZPOPMIN, pipeline ZADD+HMGET, pipeline HDEL+ZREM",
}


def measure(
    ctx: Context,
    benchmark: str,
    lib: Callable[[], Spec],
    floor: Callable[[], Spec],
    *,
    n: int,
    enqueue_target: float | None,
    lease_target: float | None,
    scaling_target: bool,
    reset: Callable[[Spec], None],
    workers: Workers | None,
    common: dict[str, Any],
) -> list[Result]:
    """Enqueue and lease+ack of one backend against its floors.

    *lib* and *floor* name where each measurement runs (SQLite: a fresh file every time). With
    *workers*, lease+ack runs in the worker processes, with 1 and `WORKERS` of them; without, the
    single drain runs in this process (SQLite).
    """
    results: list[Result] = []
    backend = lib().backend
    repeats = ctx.size(2, 2, 1)
    for batch in BATCHES:
        runs: dict[str, list[tuple[float, float]]] = {"floor": [], "lib": []}
        for which in palindrome(["floor", "lib"], repeats):
            make = floor if which == "floor" else lib
            runs[which].append(enqueue_rate(make(), n, batch, reset))
        (rate, cpu), (floor_rate, floor_cpu) = max(runs["lib"]), max(runs["floor"])
        results.append(
            rate_result(
                benchmark,
                f"enqueue, batches of {batch} (half coalesce)",
                rate,
                "changes/s",
                floor_rate,
                ENQUEUE_FLOOR[backend],
                enqueue_target,
                {
                    **common,
                    "changes": n,
                    "distinct_keys": n // 2,
                    "batch": batch,
                    "best_of": repeats,
                    "runs": [round(r) for r, _ in runs["lib"]],
                    "floor_runs": [round(r) for r, _ in runs["floor"]],
                    "cpu_rate": round(cpu),
                    "floor_cpu_rate": round(floor_cpu),
                },
            )
        )
        ctx.log(f"   enqueue/{batch}: {rate:,.0f}/s (floor {floor_rate:,.0f}/s)")

    def lease_ack(make: Callable[[], Spec], batch: int, count: int) -> tuple[float, dict[str, Any]]:
        spec = make()
        cid = f"la-{uuid.uuid4().hex[:8]}"
        fill(spec, cid, n)
        if workers is None:
            drained = drain_in_process(spec, cid, batch)
            info: dict[str, Any] = {"cpu_rate": round(n / drained.cpu) if drained.cpu else None}
        else:
            drained = workers.drain(spec, cid, batch, count)
            info = {"acked_per_worker": drained.per_worker}
        check_drained(spec, cid, n, drained)
        reset(spec)
        return n / drained.wall, info

    kinds = ["floor", "one"] + (["many"] if workers is not None else [])
    for batch in BATCHES:
        measured: dict[str, list[tuple[float, dict[str, Any]]]] = {k: [] for k in kinds}
        for which in palindrome(kinds, repeats):
            make = floor if which == "floor" else lib
            measured[which].append(lease_ack(make, batch, WORKERS if which == "many" else 1))
        best = {k: max(v, key=lambda run: run[0]) for k, v in measured.items()}
        every = {k: [round(r) for r, _ in v] for k, v in measured.items()}
        (one, info), (floor_rate, floor_info) = best["one"], best["floor"]
        results.append(
            rate_result(
                benchmark,
                f"lease+ack, batches of {batch}, 1 worker",
                one,
                "items/s",
                floor_rate,
                LEASE_FLOOR[backend] + (", 1 worker" if workers else ""),
                lease_target,
                {
                    **common,
                    "items": n,
                    "batch": batch,
                    "workers": 1,
                    "separate_process": workers is not None,
                    "best_of": repeats,
                    "runs": every["one"],
                    "floor_runs": every["floor"],
                    **info,
                    **{f"floor_{k}": v for k, v in floor_info.items()},
                },
            )
        )
        ctx.log(f"   lease+ack/{batch}, 1 worker: {one:,.0f}/s (floor {floor_rate:,.0f}/s)")
        if workers is not None:
            many, info = best["many"]
            results.append(
                scaling_result(
                    benchmark,
                    f"lease+ack, batches of {batch}, {WORKERS} workers",
                    many,
                    one,
                    {
                        **common,
                        "items": n,
                        "batch": batch,
                        "workers": WORKERS,
                        "best_of": repeats,
                        "runs": every["many"],
                        **info,
                    },
                    target=scaling_target,
                )
            )
            ctx.log(f"   lease+ack/{batch}, {WORKERS} workers: {many:,.0f}/s ({many / one:.2f}x)")
    return results


def palindrome(kinds: list[str], repeats: int) -> list[str]:
    """*kinds* in turn, every other round reversed (A B C C B A ...): a drift in the machine's
    load weighs on each kind alike."""
    return [k for i in range(repeats) for k in (kinds if i % 2 == 0 else kinds[::-1])]


# -- SQLite ----------------------------------------------------------------------------------------


def _fs_type(path: str) -> str:
    best, kind = "", "unknown"
    with suppress(OSError), Path("/proc/mounts").open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def run_sqlite(ctx: Context) -> list[Result]:
    n = ctx.size(100_000, 20_000, 2_000)
    bench = "queue-sqlite"
    with tempfile.TemporaryDirectory(prefix="catalogsync-bench-queue-") as tmp:
        files = iter(range(1_000_000))

        def fresh(*, floor: bool) -> Spec:  # every measurement on a new file
            return Spec("sqlite", str(Path(tmp) / f"q{next(files)}.db"), floor=floor)

        def remove(spec: Spec) -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(spec.where + suffix).unlink(missing_ok=True)

        common = {
            "synchronous": "NORMAL (the default)",
            "journal_mode": "WAL",
            "filesystem": _fs_type(os.path.realpath(tmp)),
            "sqlite": sqlite3.sqlite_version,
        }
        results = measure(
            ctx,
            bench,
            lambda: fresh(floor=False),
            lambda: fresh(floor=True),
            n=n,
            enqueue_target=SQLITE_ENQUEUE_TARGET,
            lease_target=SQLITE_LEASE_TARGET,
            scaling_target=False,
            reset=remove,
            workers=None,
            common=common,
        )
        # For information: processes sharing one file take turns at its write lock.
        batch = BATCHES[-1]
        [one] = [r for r in results if r.name == f"lease+ack, batches of {batch}, 1 worker"]
        spec = fresh(floor=False)
        fill(spec, "shop", n)
        with Workers(WORKERS) as workers:
            drained = workers.drain(spec, "shop", batch, WORKERS)
        check_drained(spec, "shop", n, drained)
        wall, per = drained.wall, drained.per_worker
        results.append(
            scaling_result(
                bench,
                f"lease+ack, batches of {batch}, {WORKERS} processes",
                n / wall,
                one.value,
                {
                    **common,
                    "items": n,
                    "batch": batch,
                    "acked_per_worker": per,
                    "note": "one file: writers take turns; the 1-worker reference ran in-process",
                },
                target=False,
            )
        )
        ctx.log(f"   lease+ack/{batch}, {WORKERS} processes: {n / wall:,.0f}/s")
        results.append(
            replace_all_result(bench, fresh(floor=False).where, fresh(floor=True).where, n, common)
        )
    return results


def replace_all_result(
    bench: str, path: str, floor_path: str, n: int, common: dict[str, Any]
) -> Result:
    def gen() -> Iterator[Change]:
        return (Change(f"R-{i:08d}", TYPES[i % 3]) for i in range(n))

    floor = SQLiteFloor(Spec("sqlite", floor_path, floor=True))
    try:
        floor.setup()
        with Timer() as ft, floor.write() as conn:
            now = now_us()
            conn.execute("DELETE FROM q WHERE connector = ?", ("shop",))
            conn.executemany(
                "INSERT INTO q (connector, item_type, ref, kind, visible_at) VALUES (?, ?, ?, ?, ?)",
                (("shop", c.type.value, c.ref, c.kind.value, now) for c in gen()),
            )
        check(floor.count("shop") == n, "floor replace_all count")
    finally:
        floor.close()
    with SQLiteQueue(path) as q:
        q.migrate()
        with Timer() as t:
            q.replace_all("shop", gen())
        check(q.counts("shop").total == n, "replace_all count")
    return Result(
        benchmark=bench,
        name=f"replace_all from a generator of {n:,}",
        value=n / t.wall,
        unit="changes/s",
        reference=n / ft.wall,
        reference_name="sqlite3: DELETE + executemany INSERT from the generator, 1 txn",
        ratio=ft.wall / t.wall,
        ratio_note="library / floor",
        details={**common, "changes": n, "cpu_rate": round(n / t.cpu) if t.cpu else None},
    )


# -- PostgreSQL ------------------------------------------------------------------------------------


def run_postgres(ctx: Context) -> list[Result]:
    try:
        import psycopg  # noqa: PLC0415
    except ImportError as exc:
        msg = "psycopg is not installed (pip install 'catalogsync[postgres]')"
        raise RuntimeError(msg) from exc
    dsn = ctx.postgres_dsn
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        msg = f"PostgreSQL is not reachable at {dsn}: {exc}"
        raise RuntimeError(msg) from exc
    n = ctx.size(100_000, 20_000, 2_000)
    tag = uuid.uuid4().hex[:8]
    lib = Spec("postgres", dsn, f"bench_queue_{tag}")
    floor = Spec("postgres", dsn, f"bench_floor_{tag}", floor=True)
    settings = {
        name: admin.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
        for name in ("server_version", "synchronous_commit", "fsync")
    }
    # TRUNCATE fires no DELETE trigger: empty the library's counts with its queue
    tables = {
        lib: f'"{lib.namespace}".queue, "{lib.namespace}".queue_counts',
        floor: f'"{floor.namespace}".q',
    }

    def reset(spec: Spec) -> None:
        admin.execute(f"TRUNCATE {tables[spec]}")

    try:
        admin.execute(f'CREATE SCHEMA "{floor.namespace}"')
        with Library(lib) as queue:
            queue.setup()  # the library's schema exists before the first reset
        with Workers(WORKERS) as workers:
            return measure(
                ctx,
                "queue-postgres",
                lambda: lib,
                lambda: floor,
                n=n,
                enqueue_target=None,
                lease_target=POSTGRES_LEASE_TARGET,
                scaling_target=True,
                reset=reset,
                workers=workers,
                common=settings,
            )
    finally:
        for spec in (lib, floor):
            admin.execute(f'DROP SCHEMA IF EXISTS "{spec.namespace}" CASCADE')
        admin.close()


# -- Redis -----------------------------------------------------------------------------------------


def run_redis(ctx: Context) -> list[Result]:
    try:
        import redis  # noqa: PLC0415
    except ImportError as exc:
        msg = "redis-py is not installed (pip install 'catalogsync[redis]')"
        raise RuntimeError(msg) from exc
    url = ctx.redis_url
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
        info = client.info("server")
        persistence: dict[str, Any] = {"redis_version": info.get("redis_version")}
        for name in ("appendonly", "appendfsync"):
            persistence[name] = client.config_get(name).get(name)
    except redis.RedisError as exc:
        client.close()
        msg = f"Redis is not reachable at {url}: {exc}"
        raise RuntimeError(msg) from exc
    n = ctx.size(100_000, 20_000, 2_000)
    tag = uuid.uuid4().hex[:8]
    lib = Spec("redis", url, f"bench-queue-{tag}")
    floor = Spec("redis", url, f"bench-floor-{tag}", floor=True)

    def reset(spec: Spec) -> None:
        delete_keys(client, spec.namespace)

    try:
        with Workers(WORKERS) as workers:
            return measure(
                ctx,
                "queue-redis",
                lambda: lib,
                lambda: floor,
                n=n,
                enqueue_target=None,
                lease_target=None,
                scaling_target=True,
                reset=reset,
                workers=workers,
                common=persistence,
            )
    finally:
        for spec in (lib, floor):
            delete_keys(client, spec.namespace)
        client.close()


def delete_keys(client: Any, prefix: str) -> None:
    """Every key of the library's and the floor's layout starts with ``{prefix:``."""
    keys = list(client.scan_iter(match="{" + prefix + ":*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
