"""
`SQLiteQueue`: the embedded default `QueueBackend`, on the standard library's `sqlite3`.

Rule 1: SQLite serialises writers, so a lease is one short ``BEGIN IMMEDIATE`` transaction that
picks the oldest visible entries and marks them leased; no transaction stays open while the
caller works, and no ``SKIP LOCKED`` is needed.

Rule 2: every write of an entry takes a new version from one counter row, inside the write
transaction: versions are unique and increasing across the file, so acks are fenced by
``(version, owner, unexpired)`` and a replace-all fences every lease of the old set.

Rule 3: an ``enqueue`` or ``replace_all`` call is atomic: all its changes or none. A list is
written in one transaction; an iterator of unknown length is first streamed into a temporary
(per-connection) staging table, without holding the write lock while the caller's iterator
produces, and then moved in one short transaction.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Final

from .._clock import Clock
from .._errors import InvalidArgumentError
from .._models import Change, ChangeKind, Counts, ItemType
from ..typing import Lease, Page, QueueEntry
from ._common import check_lease_args, check_ttl
from ._sqlite_db import SQLiteBase, from_us, translate


__all__ = ["SQLiteQueue"]

#: Changes per ``executemany`` when staging an iterator.
_CHUNK: Final = 1000
_MICRO: Final = timedelta(microseconds=1)
_TYPES: Final = {t.value: t for t in ItemType}
_KINDS: Final = {k.value: k for k in ChangeKind}
_TYPE_VALUE: Final = {t: t.value for t in ItemType}
_KIND_VALUE: Final = {k: k.value for k in ChangeKind}

_UPSERT: Final = """
    INSERT INTO queue_entries
        (connector, item_type, ref, kind, version, force, seq, visible_at, enqueued_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (connector, item_type, ref) DO UPDATE SET
        kind = excluded.kind, version = excluded.version, force = excluded.force
"""
_STAGE_TABLE: Final = """
    CREATE TEMP TABLE IF NOT EXISTS catalogsync_stage (
        pos INTEGER PRIMARY KEY, item_type TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL
    )
"""
_STAGE: Final = "INSERT INTO temp.catalogsync_stage (pos, item_type, ref, kind) VALUES (?, ?, ?, ?)"
_UNSTAGE: Final = "DELETE FROM temp.catalogsync_stage"
# `WHERE true` resolves the parsing ambiguity between a join's ON and the upsert's ON CONFLICT.
_UPSERT_STAGED: Final = """
    INSERT INTO queue_entries
        (connector, item_type, ref, kind, version, force, seq, visible_at, enqueued_at)
    SELECT ?1, item_type, ref, kind, ?2 + pos, ?3, ?2 + pos, ?4, ?4
    FROM temp.catalogsync_stage WHERE true ORDER BY pos
    ON CONFLICT (connector, item_type, ref) DO UPDATE SET
        kind = excluded.kind, version = excluded.version, force = excluded.force
"""
_RESERVE: Final = "UPDATE queue_counter SET version = version + ? WHERE id = 0 RETURNING version"
_CLEAR: Final = "DELETE FROM queue_entries WHERE connector = ?"

# The oldest visible entries; served in order by the index (connector, visible_at, seq). The
# SELECT and the UPDATE pick the same rows: both run under the same write lock, and
# (visible_at, seq) is a total order (seq is a unique version).
_PICK: Final = (
    "FROM queue_entries WHERE connector = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3"
)
_LEASE_SELECT: Final = f"SELECT item_type, ref, kind, version, attempts, force {_PICK}"
_LEASE_UPDATE: Final = (
    "UPDATE queue_entries SET owner = ?4, attempts = attempts + 1, visible_at = ?5 "  # noqa: S608
    f"WHERE rowid IN (SELECT rowid {_PICK})"
)

# "validly held": same owner and an unexpired lease (visible_at is the deadline while leased)
_HELD: Final = "connector = ? AND item_type = ? AND ref = ? AND owner = ? AND visible_at > ?"
_ACK: Final = f"DELETE FROM queue_entries WHERE {_HELD} AND version = ?"  # noqa: S608
# A newer version arrived while the entry was leased: the old ack leaves it, visible at once.
_REREADY: Final = (
    f"UPDATE queue_entries SET owner = NULL, visible_at = ? WHERE {_HELD} AND version <> ?"  # noqa: S608
)
_RELEASE: Final = f"UPDATE queue_entries SET owner = NULL, visible_at = ? WHERE {_HELD}"  # noqa: S608
_EXTEND: Final = f"UPDATE queue_entries SET visible_at = ? WHERE {_HELD}"  # noqa: S608
# kept by the triggers of schema version 2: reading them costs the same at any queue size
_COUNTS: Final = "SELECT item_type, n FROM queue_counts WHERE connector = ? AND n > 0"


class SQLiteQueue(SQLiteBase):
    """
    A `catalogsync.typing.QueueBackend` in a local SQLite file: the default queue.

    Several threads and processes on one host may share the file: each thread opens its own
    connection, every write takes the write lock up front (``BEGIN IMMEDIATE``) and waits up to
    *busy_timeout* for it. The file may also hold a `SQLiteStore` (one file for both is the
    default deployment). WAL mode does not work on network file systems: keep the file local.

    Example:
        >>> import tempfile, os
        >>> from datetime import timedelta
        >>> from catalogsync import Change, ItemType
        >>> path = os.path.join(tempfile.mkdtemp(), "catalogsync.db")
        >>> with SQLiteQueue(path) as q:
        ...     q.enqueue("shop", [Change("P1", ItemType.PRODUCT), Change("P1", ItemType.PRODUCT)])
        ...     [lease] = q.lease("shop", owner="w1", limit=10, ttl=timedelta(seconds=30))
        ...     q.ack("shop", [lease]), q.counts("shop").total
        2
        (1, 0)

    Args:
        path: The database file (created, with its ``-wal`` and ``-shm`` companions, if
            missing). ``":memory:"`` is rejected: every thread has its own connection.
        clock: The source of time for visibility deadlines.
        synchronous: ``"NORMAL"`` (default) survives process crashes but may lose the last
            commits on power loss; ``"FULL"`` syncs the log on every commit and survives both.
        busy_timeout: Seconds a write waits for the write lock before failing with a retryable
            `BackendError`.

    Raises:
        InvalidArgumentError: A bad argument (nothing is opened by the constructor).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(path, clock=clock, synchronous=synchronous, busy_timeout=busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteQueue({self._path!r})"

    # writes ---------------------------------------------------------------------------------------

    def enqueue(self, connector_id: str, changes: Iterable[Change]) -> int:
        """Add or coalesce *changes* atomically; return how many were written."""
        return self._write_changes(connector_id, changes, force=False, replace=False)

    def replace_all(
        self, connector_id: str, changes: Iterable[Change], *, force: bool = True
    ) -> int:
        """Atomically replace the connector's queue with *changes*; return how many."""
        return self._write_changes(connector_id, changes, force=bool(force), replace=True)

    def _write_changes(
        self, connector_id: str, changes: Iterable[Change], *, force: bool, replace: bool
    ) -> int:
        _check_connector(connector_id)
        if isinstance(changes, Sequence):
            # Already in memory: no producer to wait for, write it in one transaction.
            return self._write_direct(connector_id, changes, force=force, replace=replace)
        it = iter(changes)
        first = list(itertools.islice(it, _CHUNK + 1))
        if len(first) <= _CHUNK:
            return self._write_direct(connector_id, first, force=force, replace=replace)
        return self._write_staged(connector_id, first, it, force=force, replace=replace)

    def _write_direct(
        self, connector_id: str, changes: Sequence[Change], *, force: bool, replace: bool
    ) -> int:
        n = len(changes)
        if n == 0 and not replace:
            return 0
        now = self._now_us()
        with self._write("enqueue") as conn:
            top = _reserve(conn, n)
            if replace:
                conn.execute(_CLEAR, (connector_id,))
            conn.executemany(_UPSERT, _rows(connector_id, changes, top - n, int(force), now))
        return n

    def _write_staged(
        self,
        connector_id: str,
        first: list[Change],
        rest: Iterator[Change],
        *,
        force: bool,
        replace: bool,
    ) -> int:
        conn = self._conn()
        try:
            conn.execute(_STAGE_TABLE)
            conn.execute(_UNSTAGE)
            n = 0
            for chunk in itertools.chain((first,), _batched(rest, _CHUNK)):
                # temp tables live outside the main database: this takes no lock other
                # processes could wait for
                conn.execute("BEGIN")
                conn.executemany(_STAGE, _staged(chunk, n))
                conn.execute("COMMIT")
                n += len(chunk)
        except sqlite3.Error as exc:
            _unstage(conn)
            raise translate(exc, "staging changes") from exc
        except BaseException:
            _unstage(conn)
            raise
        try:
            now = self._now_us()
            with self._write("enqueue") as wconn:
                top = _reserve(wconn, n)
                if replace:
                    wconn.execute(_CLEAR, (connector_id,))
                wconn.execute(_UPSERT_STAGED, (connector_id, top - n, int(force), now))
                wconn.execute(_UNSTAGE)
        finally:
            _unstage(conn)
        return n

    # leases ---------------------------------------------------------------------------------------

    def lease(self, connector_id: str, *, owner: str, limit: int, ttl: timedelta) -> list[Lease]:
        """Lease up to *limit* visible entries, oldest first, for *owner* until ``now + ttl``."""
        _check_connector(connector_id)
        check_lease_args(owner, limit, ttl)
        now = self._now_us()
        deadline_us = now + ttl // _MICRO
        with self._write("lease") as conn:
            rows = conn.execute(_LEASE_SELECT, (connector_id, now, limit)).fetchall()
            if rows:
                conn.execute(_LEASE_UPDATE, (connector_id, now, limit, owner, deadline_us))
        deadline = from_us(deadline_us)
        types, kinds = _TYPES, _KINDS
        return [
            Lease(types[t], ref, kinds[k], version, attempts + 1, bool(f), owner, deadline)
            for t, ref, k, version, attempts, f in rows
        ]

    def ack(self, connector_id: str, leases: Sequence[Lease]) -> int:
        """Remove the entries of *leases* still validly held (same version); return how many."""
        _check_connector(connector_id)
        held = _held_params(connector_id, leases)
        if not held:
            return 0
        now = self._now_us()
        with self._write("ack") as conn:
            acked = conn.executemany(
                _ACK, [(*h, now, lease.version) for h, lease in zip(held, leases, strict=True)]
            ).rowcount
            if acked < len(held):
                conn.executemany(
                    _REREADY,
                    [(now, *h, now, lease.version) for h, lease in zip(held, leases, strict=True)],
                )
        return acked

    def release(
        self, connector_id: str, leases: Sequence[Lease], *, delay: timedelta = timedelta(0)
    ) -> int:
        """Return the entries of validly held *leases* to the line after *delay*."""
        _check_connector(connector_id)
        if not isinstance(delay, timedelta) or delay < timedelta(0):
            raise InvalidArgumentError(
                f"delay must be a non-negative timedelta, got {delay!r}", field="delay"
            )
        held = _held_params(connector_id, leases)
        if not held:
            return 0
        now = self._now_us()
        visible = now + delay // _MICRO
        with self._write("release") as conn:
            return conn.executemany(_RELEASE, [(visible, *h, now) for h in held]).rowcount

    def extend(self, connector_id: str, leases: Sequence[Lease], *, ttl: timedelta) -> int:
        """Push the deadline of validly held *leases* to ``now + ttl``; return how many."""
        _check_connector(connector_id)
        check_ttl(ttl)
        held = _held_params(connector_id, leases)
        if not held:
            return 0
        now = self._now_us()
        deadline = now + ttl // _MICRO
        with self._write("extend") as conn:
            return conn.executemany(_EXTEND, [(deadline, *h, now) for h in held]).rowcount

    # reads ----------------------------------------------------------------------------------------

    def counts(self, connector_id: str) -> Counts:
        """Entries per item type, leased ones included."""
        _check_connector(connector_id)
        with self._read("counts") as conn:
            rows = conn.execute(_COUNTS, (connector_id,)).fetchall()
        return Counts.of({_TYPES[t]: n for t, n in rows})

    def entries(
        self,
        connector_id: str,
        *,
        item_type: ItemType | None = None,
        ref_contains: str | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[QueueEntry]:
        """
        Peek at pending entries in line order, without leasing them.

        *ref_contains* matches literally and case-sensitively (``%`` and ``_`` are text).
        """
        _check_connector(connector_id)
        _check_page(offset, limit)
        where = "connector = ?"
        params: list[object] = [connector_id]
        if item_type is not None:
            where += " AND item_type = ?"
            params.append(_item_type(item_type).value)
        if ref_contains:
            if not isinstance(ref_contains, str):
                raise InvalidArgumentError("ref_contains must be a str", field="ref_contains")
            where += " AND instr(ref, ?) > 0"
            params.append(ref_contains)
        now = self._now_us()
        with self._read("entries", snapshot=True) as conn:
            (total,) = conn.execute(
                f"SELECT count(*) FROM queue_entries WHERE {where}",  # noqa: S608
                params,
            ).fetchone()
            rows = conn.execute(
                "SELECT item_type, ref, kind, version, attempts, force, enqueued_at, "  # noqa: S608
                f"visible_at, owner FROM queue_entries WHERE {where} "
                "ORDER BY visible_at, seq LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        items = tuple(
            QueueEntry(
                _TYPES[t],
                ref,
                _KINDS[k],
                version,
                attempts,
                bool(f),
                from_us(enqueued),
                from_us(visible) if owner is not None and visible > now else None,
            )
            for t, ref, k, version, attempts, f, enqueued, visible, owner in rows
        )
        return Page(items, total, offset, limit)


# helpers ------------------------------------------------------------------------------------------


def _check_connector(connector_id: object) -> None:
    if not isinstance(connector_id, str) or not connector_id:
        raise InvalidArgumentError("connector_id must be a non-empty str", field="connector_id")


def _check_page(offset: object, limit: object) -> None:
    for name, value in (("offset", offset), ("limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgumentError(f"{name} must be an int >= 0, got {value!r}", field=name)


def _item_type(value: ItemType | str) -> ItemType:
    try:
        return ItemType(value)
    except ValueError:
        raise InvalidArgumentError(
            f"item_type must be an ItemType, got {value!r}", field="item_type"
        ) from None


def _bad_change(change: object) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"queues take Change values, got {type(change).__name__}", field="changes"
    )


def _rows(
    connector_id: str, changes: Iterable[Change], base: int, force: int, now: int
) -> Iterator[tuple[object, ...]]:
    # Hot path: one tuple per change, versions base+1, base+2, ... in order.
    types, kinds = _TYPE_VALUE, _KIND_VALUE
    version = base
    for change in changes:
        if type(change) is not Change and not isinstance(change, Change):
            raise _bad_change(change)
        version += 1
        yield (
            connector_id,
            types[change.type],
            change.ref,
            kinds[change.kind],
            version,
            force,
            version,
            now,
            now,
        )


def _staged(changes: Iterable[Change], start: int) -> Iterator[tuple[object, ...]]:
    types, kinds = _TYPE_VALUE, _KIND_VALUE
    pos = start
    for change in changes:
        if type(change) is not Change and not isinstance(change, Change):
            raise _bad_change(change)
        pos += 1
        yield (pos, types[change.type], change.ref, kinds[change.kind])


def _batched(it: Iterator[Change], size: int) -> Iterator[list[Change]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _reserve(conn: sqlite3.Connection, n: int) -> int:
    """Reserve *n* versions; return the highest (the block is ``top - n + 1 .. top``)."""
    (top,) = conn.execute(_RESERVE, (n,)).fetchone()
    return int(top)


def _unstage(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.execute(_UNSTAGE)
    except sqlite3.Error:  # pragma: no cover - best effort; the next staging clears it too
        pass


def _held_params(connector_id: str, leases: Sequence[Lease]) -> list[tuple[str, str, str, str]]:
    out = []
    for lease in leases:
        if not isinstance(lease, Lease):
            raise InvalidArgumentError(
                f"expected Lease values, got {type(lease).__name__}", field="leases"
            )
        out.append((connector_id, _TYPE_VALUE[lease.item_type], lease.ref, lease.owner))
    return out
