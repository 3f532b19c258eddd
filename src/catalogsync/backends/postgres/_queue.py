"""
`PostgresQueue`: the `QueueBackend` on PostgreSQL.

Theory of operation (see docs/scaling.md for the deployment side):

* One row per pending ``(connector, type, ref)`` in the small hot table ``queue``. Enqueueing is
  an ``INSERT ... ON CONFLICT DO UPDATE`` that bumps ``version`` from a sequence and keeps the
  row's place in line (``visible_at``, ``seq``).
* ``visible_at`` is both "ready since" and "leased until": a lease is one short statement
  (the ``claim`` function: ``SELECT ... WHERE visible_at <= now ORDER BY visible_at, seq LIMIT n
  FOR UPDATE SKIP LOCKED``, then ``UPDATE`` those rows to ``visible_at = deadline``), committed at
  once. Nothing holds a transaction while the caller works; a crashed worker's rows simply
  become visible again when their deadline passes.
* Acks, releases and extensions (the ``ack`` and ``move`` functions) are fenced: they touch a row
  only while the same owner holds an unexpired lease, and an ack deletes only the leased version
  (a newer version goes back in line at once). Why these are server-side functions is written
  next to them in ``_migrations``: plans independent of statistics, exactness, one round trip.
* Every statement that locks several existing rows locks them in ``(item_type, ref)`` order, so
  concurrent enqueues, acks and replace-alls cannot deadlock one another (leases skip locked rows
  and never wait).
* A change enqueued while a ``replace_all`` is writing is kept as the user's change: the forced
  upsert skips a row that is not forced (only a concurrent enqueue can have put it there, since
  ``replace_all`` deleted every row first).
* Time comes from the injected clock and travels as a parameter; ``now()`` is never used, so a
  `catalogsync.testing.ManualClock` drives visibility exactly as it does for the memory queue.

Retry policy after a lost connection (see `Database.run`): ``enqueue`` (coalescing makes a
repeat harmless), ``lease`` (each lease call carries a token; the retry first looks for rows the
lost attempt committed under it and returns those), ``ack``, ``release``, ``extend`` (fenced and
idempotent; after a lost connection their returned count may under-report work the lost attempt
committed) and the read-only ``counts`` and ``entries`` are retried once. ``replace_all`` is not:
its iterable was consumed, so it raises a retryable `BackendError` and the caller calls it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from ..._clock import Clock
from ..._errors import InvalidArgumentError
from ..._models import Change, ChangeKind, Counts, ItemKey, ItemType
from ...typing import Lease, Page, QueueEntry
from .._common import check_lease_args, check_ttl, like_pattern
from ._db import PostgresBackend, check_text, chunks, lock_key


if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool


__all__ = ["PostgresQueue"]

#: Rows per enqueue statement (each chunk of a large enqueue commits on its own).
ENQUEUE_CHUNK: Final = 1000
#: Rows per statement inside the single transaction of `replace_all`.
REPLACE_CHUNK: Final = 5000

_UPSERT = """
WITH u AS MATERIALIZED (
    SELECT t, r, k, nextval('{s}.queue_version') AS v
    FROM unnest(%(types)b::text[], %(refs)b::text[], %(kinds)b::text[]) AS u (t, r, k)
)
INSERT INTO {s}.queue AS q
    (connector, item_type, ref, kind, version, seq, force, visible_at, enqueued_at)
SELECT %(c)s, t, r, k, v, v, %(force)s, %(now)s, %(now)s
FROM u ORDER BY t COLLATE "C", r COLLATE "C"
ON CONFLICT (connector, item_type, ref) DO UPDATE
SET kind = EXCLUDED.kind, version = EXCLUDED.version, force = EXCLUDED.force
WHERE NOT (EXCLUDED.force AND NOT q.force)
"""

# Each is one statement, committed at once; see the functions in ``_migrations``.
_CLAIM = """
SELECT * FROM {s}.claim(%(c)s, %(now)s, %(n)s, %(owner)s, %(deadline)s, %(token)s)
"""

_RECLAIM = """
SELECT item_type, ref, kind, version, attempts, force, visible_at, seq FROM {s}.queue
WHERE connector = %(c)s AND lease_id = %(token)s AND owner = %(owner)s
    AND visible_at = %(deadline)s
"""

_ACK = """
SELECT {s}.ack(%(c)s, %(now)s, %(types)b::text[], %(refs)b::text[], %(versions)b::bigint[],
               %(owners)b::text[])
"""

_MOVE = """
SELECT {s}.move(%(c)s, %(now)s, %(at)s, %(release)s, %(types)b::text[], %(refs)b::text[],
                %(versions)b::bigint[], %(owners)b::text[])
"""

# deltas kept by the triggers of schema version 2, folded as they are read (see _migrations)
_COUNTS = "SELECT o_item_type, o_n FROM {s}.count_queue(%s)"

_ENTRIES_WHERE = """
FROM {s}.queue
WHERE connector = %(c)s
    AND (%(t)s::text IS NULL OR item_type = %(t)s::text)
    AND (%(p)s::text IS NULL OR ref LIKE %(p)s::text ESCAPE '\\')
"""

_ENTRIES_TOTAL = "SELECT count(*)" + _ENTRIES_WHERE

_ENTRIES = (
    """
SELECT item_type, ref, kind, version, attempts, force, enqueued_at,
    CASE WHEN owner IS NOT NULL AND visible_at > %(now)s THEN visible_at END,
    ("""
    + _ENTRIES_TOTAL
    + ")"
    + _ENTRIES_WHERE
    + "ORDER BY visible_at, seq OFFSET %(o)s LIMIT %(l)s"
)

_LOCK_ALL = """
SELECT count(*) FROM (
    SELECT 1 FROM {s}.queue WHERE connector = %s ORDER BY item_type, ref FOR UPDATE
) AS locked
"""

_DELETE_ALL = "DELETE FROM {s}.queue WHERE connector = %s"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _check_connector(connector_id: object) -> str:
    if not isinstance(connector_id, str) or not connector_id:
        raise InvalidArgumentError("connector_id must be a non-empty str", field="connector_id")
    return check_text(connector_id, "connector_id")


def _coalesce(batch: Sequence[object]) -> dict[ItemKey, ChangeKind]:
    """Validate a chunk and coalesce it: newest kind per key, in first-seen order."""
    out: dict[ItemKey, ChangeKind] = {}
    for change in batch:
        if not isinstance(change, Change):
            raise InvalidArgumentError(
                f"queues take Change values, got {type(change).__name__}", field="changes"
            )
        check_text(change.ref, "Change.ref")
        out[change.key] = change.kind
    return out


def _upsert_params(
    connector_id: str, batch: dict[ItemKey, ChangeKind], *, force: bool, now: datetime
) -> dict[str, Any]:
    return {
        "c": connector_id,
        "types": [t.value for t, _ in batch],
        "refs": [r for _, r in batch],
        "kinds": [k.value for k in batch.values()],
        "force": force,
        "now": now,
    }


def _held_params(
    connector_id: str,
    leases: Sequence[Lease],
    now: datetime,
    at: datetime | None = None,
    *,
    release: bool = False,
) -> dict[str, Any]:
    # One lease per key: a caller holding two leases of one key can only hold the newest.
    latest: dict[ItemKey, Lease] = {}
    for lease in leases:
        if not isinstance(lease, Lease):
            raise InvalidArgumentError(
                f"expected Lease values, got {type(lease).__name__}", field="leases"
            )
        seen = latest.get(lease.key)
        if seen is None or lease.version > seen.version:
            latest[lease.key] = lease
    chosen = list(latest.values())
    return {
        "c": connector_id,
        "types": [lease.item_type.value for lease in chosen],
        "refs": [lease.ref for lease in chosen],
        "versions": [lease.version for lease in chosen],
        "owners": [lease.owner for lease in chosen],
        "now": now,
        "at": at,
        "release": release,
    }


class PostgresQueue(PostgresBackend):
    """
    A `catalogsync.typing.QueueBackend` on PostgreSQL (``catalogsync[postgres]``).

    Several processes and hosts may share one queue: leases use ``FOR UPDATE SKIP LOCKED``, so
    workers never wait on each other, and every ack is fenced by owner, deadline and version.

    Example:
        >>> from datetime import timedelta
        >>> from catalogsync import Change, ItemType
        >>> from catalogsync.backends.postgres import PostgresQueue
        >>> with PostgresQueue("postgresql://app@db/pim") as q:  # doctest: +SKIP
        ...     q.enqueue("shop", [Change("P1", ItemType.PRODUCT)])
        ...     [lease] = q.lease("shop", owner="w1", limit=100, ttl=timedelta(seconds=60))
        ...     q.ack("shop", [lease])
        1
        1

    Args:
        dsn_or_pool: A libpq connection string, for which the queue opens (and `close`
            closes) its own pool, or a `psycopg_pool.ConnectionPool` that you own and close.
            A pool of your own may be shared with a `PostgresStore`.
        schema: The schema holding the tables (created and migrated on first use).
        clock: Source of time for visibility deadlines.
        auto_migrate: Migrate an older or missing schema on first use; with ``False`` the
            first operation raises `BackendError` until `migrate` (or
            `catalogsync.backends.postgres.migrate`) has run.
        max_size: Connections in the queue's own pool (ignored for a pool you pass).
        timeout: Seconds to wait for a free pooled connection (own pool only).

    Raises:
        ImportError: psycopg is not installed (install ``catalogsync[postgres]``).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "catalogsync",
        clock: Clock | None = None,
        auto_migrate: bool = True,
        max_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(
            dsn_or_pool,
            schema=schema,
            clock=clock,
            auto_migrate=auto_migrate,
            max_size=max_size,
            timeout=timeout,
        )
        self._clock = self._db.clock
        db = self._db
        self._upsert = db.sql(_UPSERT)
        self._claim = db.sql(_CLAIM)
        self._reclaim = db.sql(_RECLAIM)
        self._ack = db.sql(_ACK)
        self._move = db.sql(_MOVE)
        self._counts = db.sql(_COUNTS)
        self._entries = db.sql(_ENTRIES)
        self._entries_total = db.sql(_ENTRIES_TOTAL)
        self._lock_all = db.sql(_LOCK_ALL)
        self._delete_all = db.sql(_DELETE_ALL)

    # -- enqueue --------------------------------------------------------------------------------

    def enqueue(self, connector_id: str, changes: Iterable[Change]) -> int:
        """
        Add or coalesce *changes*; return how many were consumed.

        The iterable is consumed in chunks of `ENQUEUE_CHUNK`; each chunk is one statement and
        commits on its own, so a long generator never holds a transaction open. If a chunk
        fails, the earlier chunks stay enqueued (enqueueing them again is harmless).
        """
        connector_id = _check_connector(connector_id)
        written = 0
        for batch in chunks(changes, ENQUEUE_CHUNK):
            coalesced = _coalesce(batch)
            params = _upsert_params(connector_id, coalesced, force=False, now=self._clock.now())

            def write(conn: Connection[Any], params: dict[str, Any] = params) -> None:
                conn.execute(self._upsert, params)

            self._db.run("enqueue", write, retry=write)
            written += len(batch)
        return written

    # -- lease ----------------------------------------------------------------------------------

    def lease(self, connector_id: str, *, owner: str, limit: int, ttl: timedelta) -> list[Lease]:
        """Lease up to *limit* visible entries for *owner* until ``now + ttl``, oldest first."""
        check_lease_args(owner, limit, ttl)
        connector_id = _check_connector(connector_id)
        check_text(owner, "owner")
        now = self._clock.now()
        deadline = now + ttl
        params = {
            "c": connector_id,
            "now": now,
            "n": limit,
            "owner": owner,
            "deadline": deadline,
            "token": uuid.uuid4(),
        }

        def claim(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._claim, params).fetchall()

        def reclaim(conn: Connection[Any]) -> list[Any]:
            # The lost attempt either committed all its rows under this token, or none.
            rows = conn.execute(self._reclaim, params).fetchall()
            return rows or conn.execute(self._claim, params).fetchall()

        rows = self._db.run("lease", claim, retry=reclaim)
        rows.sort(key=lambda row: (row[6], row[7]))
        deadline = _utc(deadline)
        return [
            Lease(
                ItemType(row[0]),
                row[1],
                ChangeKind(row[2]),
                row[3],
                row[4],
                row[5],
                owner,
                deadline,
            )
            for row in rows
        ]

    # -- fenced writes --------------------------------------------------------------------------

    def ack(self, connector_id: str, leases: Sequence[Lease]) -> int:
        """Remove the entries of *leases* that are still validly held; return how many."""
        connector_id = _check_connector(connector_id)
        if not leases:
            return 0
        params = _held_params(connector_id, leases, self._clock.now())
        ack = self._scalar(self._ack, params)
        return self._db.run("ack", ack, retry=ack)

    def release(
        self, connector_id: str, leases: Sequence[Lease], *, delay: timedelta = timedelta(0)
    ) -> int:
        """Make the entries of *leases* (same owner) visible again after *delay*."""
        connector_id = _check_connector(connector_id)
        if not isinstance(delay, timedelta) or delay < timedelta(0):
            raise InvalidArgumentError(
                f"delay must be a non-negative timedelta, got {delay!r}", field="delay"
            )
        if not leases:
            return 0
        now = self._clock.now()
        params = _held_params(connector_id, leases, now, now + delay, release=True)
        move = self._scalar(self._move, params)
        return self._db.run("release", move, retry=move)

    def extend(self, connector_id: str, leases: Sequence[Lease], *, ttl: timedelta) -> int:
        """Push the deadline of validly held *leases* to ``now + ttl`` (a heartbeat)."""
        check_ttl(ttl)
        connector_id = _check_connector(connector_id)
        if not leases:
            return 0
        now = self._clock.now()
        params = _held_params(connector_id, leases, now, now + ttl, release=False)
        move = self._scalar(self._move, params)
        return self._db.run("extend", move, retry=move)

    @staticmethod
    def _scalar(statement: str, params: dict[str, Any]) -> Callable[[Connection[Any]], int]:
        def run(conn: Connection[Any]) -> int:
            row = conn.execute(statement, params).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        return run

    # -- reads ----------------------------------------------------------------------------------

    def counts(self, connector_id: str) -> Counts:
        """Entries per item type, leased ones included (counts kept by triggers, not a scan)."""
        connector_id = _check_connector(connector_id)

        def count(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._counts, [connector_id]).fetchall()

        rows = self._db.run("counts", count, retry=count)
        return Counts.of({ItemType(t): int(n) for t, n in rows})

    def entries(
        self,
        connector_id: str,
        *,
        item_type: ItemType | None = None,
        ref_contains: str | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[QueueEntry]:
        """Peek at pending entries in line order, filtered, without leasing them."""
        connector_id = _check_connector(connector_id)
        for name, value in (("offset", offset), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(f"{name} must be an int >= 0", field=name)
        params = {
            "c": connector_id,
            "t": None if item_type is None else ItemType(item_type).value,
            "p": like_pattern(check_text(ref_contains, "ref_contains")) if ref_contains else None,
            "now": self._clock.now(),
            "o": offset,
            "l": limit,
        }

        def peek(conn: Connection[Any]) -> tuple[list[Any], int]:
            rows = conn.execute(self._entries, params).fetchall()
            if rows:
                return rows, int(rows[0][8])
            row = conn.execute(self._entries_total, params).fetchone()
            return rows, int(row[0]) if row else 0

        rows, total = self._db.run("entries", peek, retry=peek)
        items = tuple(
            QueueEntry(
                ItemType(row[0]),
                row[1],
                ChangeKind(row[2]),
                row[3],
                row[4],
                row[5],
                _utc(row[6]),
                None if row[7] is None else _utc(row[7]),
            )
            for row in rows
        )
        return Page(items, total, offset, limit)

    # -- force refresh --------------------------------------------------------------------------

    def replace_all(
        self, connector_id: str, changes: Iterable[Change], *, force: bool = True
    ) -> int:
        """
        Atomically replace the connector's queue with *changes*; return how many were consumed.

        One transaction: a per-connector advisory lock (concurrent replace-alls serialize), the
        old rows locked in key order and deleted, then the new rows written in chunks of
        `REPLACE_CHUNK` as the iterable streams. Readers see the old set until the commit.
        Not retried on a lost connection: the iterable was consumed, so a retryable
        `BackendError` tells the caller to call again.

        The transaction stays open while the iterable produces each chunk: a server-side
        ``idle_in_transaction_session_timeout`` must exceed that time. Enqueues of entries that
        were pending wait until the swap commits, so do not enqueue to *connector_id* from
        inside *changes*.
        """
        connector_id = _check_connector(connector_id)
        now = self._clock.now()
        key = lock_key("replace", self._db.schema, connector_id)

        def replace(conn: Connection[Any]) -> int:
            written = 0
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
                conn.execute(self._lock_all, [connector_id])
                conn.execute(self._delete_all, [connector_id])
                for batch in chunks(changes, REPLACE_CHUNK):
                    coalesced = _coalesce(batch)
                    conn.execute(
                        self._upsert, _upsert_params(connector_id, coalesced, force=force, now=now)
                    )
                    written += len(batch)
            return written

        return self._db.run("replace_all", replace, retry=None)

    def __repr__(self) -> str:
        return f"PostgresQueue(schema={self._db.schema!r})"
