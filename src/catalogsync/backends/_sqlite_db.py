"""
The SQLite plumbing shared by `SQLiteQueue` and `SQLiteStore`: connections, transactions, errors.

Rule 1: one connection per thread (and per process). `sqlite3` connections must not be shared
between threads that use them at once, and never across ``fork()``; each thread lazily opens its
own, and a forked child opens fresh ones instead of touching its parent's.

Rule 2: every write transaction starts with ``BEGIN IMMEDIATE``. A deferred transaction that
reads and then writes must upgrade its lock, and in WAL mode that upgrade fails at once with
``SQLITE_BUSY`` when another connection committed in between; the busy timeout does not help.
Taking the write lock up front is where the busy timeout does apply.

Rule 3: ``isolation_level=None``: the `sqlite3` module never opens a transaction by itself; reads
that need one consistent view open a deferred ``BEGIN`` explicitly.

Rule 4: no `sqlite3` exception leaves a public method: `translate` turns each into a
`BackendError` (``retryable`` for a busy or locked database).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Self

from .._clock import Clock, SystemClock
from .._errors import BackendError, InvalidArgumentError
from ._sqlite_schema import migrate


__all__ = ["MIN_SQLITE", "SQLiteBase", "from_us", "to_us", "translate"]

#: ``RETURNING`` arrived in SQLite 3.35.0 (2021-03-12).
MIN_SQLITE: Final = (3, 35, 0)

_SYNCHRONOUS: Final = ("NORMAL", "FULL")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
# Primary result codes (the low byte of an extended code).
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6

# Connections a forked child inherited from its parent. They are parked here, never used and never
# closed: closing one in the child could release locks or checkpoint on the parent's behalf.
_INHERITED: list[sqlite3.Connection] = []


def to_us(value: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (sorts correctly)."""
    return (value - _EPOCH) // _MICRO


def from_us(value: int) -> datetime:
    """Return integer microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def translate(exc: sqlite3.Error, what: str) -> BackendError:
    """Return the `BackendError` for a `sqlite3` error raised while doing *what*."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    busy = (isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)) or (
        "locked" in text or "busy" in text
    )
    if busy:
        return BackendError(f"SQLite {what}: the database is busy ({text})", retryable=True)
    return BackendError(f"SQLite {what} failed: {text}")


def check_sqlite_version(version: tuple[int, int, int]) -> None:
    """Raise `BackendError` unless the linked SQLite library is recent enough."""
    if tuple(version) < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        have = ".".join(map(str, version))
        msg = (
            f"catalogsync's SQLite backends need SQLite >= {need} (for RETURNING); this Python "
            f"is linked against SQLite {have}. Use a newer Python build, or the memory, "
            f"PostgreSQL or Redis backends."
        )
        raise BackendError(msg)


def _check_path(path: object) -> str:
    if isinstance(path, Path | os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise InvalidArgumentError(
            f"path must be a str or os.PathLike, got {type(path).__name__}", field="path"
        )
    if path in {"", ":memory:"} or path.startswith("file:"):
        # Each thread opens its own connection: an in-memory or temporary database would be a
        # different, empty database in every thread.
        raise InvalidArgumentError(
            f"path must name a database file, got {path!r}; in-memory databases are not "
            f"supported (use MemoryQueue / MemoryStore, or a file in a temporary directory)",
            field="path",
        )
    return path


def _check_synchronous(value: object) -> str:
    if not isinstance(value, str) or value.upper() not in _SYNCHRONOUS:
        raise InvalidArgumentError(
            f"synchronous must be 'NORMAL' or 'FULL', got {value!r}", field="synchronous"
        )
    return value.upper()


def _check_busy_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(
            f"busy_timeout must be a positive number of seconds, got {value!r}",
            field="busy_timeout",
        )
    return float(value)


def _check_clock(value: object) -> Clock:
    if value is None:
        return SystemClock()
    if not isinstance(value, Clock):
        raise InvalidArgumentError(
            f"clock must be a catalogsync Clock, got {type(value).__name__}", field="clock"
        )
    return value


class SQLiteBase:
    """
    Connections, transactions and migrations for one database file (private base class).

    Args:
        path: The database file (created if missing).
        clock: The source of time.
        synchronous: ``"NORMAL"`` or ``"FULL"``.
        busy_timeout: Seconds to wait for the write lock before failing (retryable).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        self._path = _check_path(path)
        self._clock = _check_clock(clock)
        self._synchronous = _check_synchronous(synchronous)
        self._busy_timeout = _check_busy_timeout(busy_timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        # thread ident -> (thread, connection), to close them all and prune dead threads' ones
        self._conns: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        self._pid = os.getpid()
        self._migrated = False
        self._closed = False

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def synchronous(self) -> str:
        """The ``synchronous`` setting of every connection (``"NORMAL"`` or ``"FULL"``)."""
        return self._synchronous

    # connections --------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, on a database whose schema is known to be current."""
        conn = self._connection()
        if not self._migrated:
            self._migrate(conn)
        return conn

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        return self._open()

    def _open(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise BackendError(f"this {type(self).__name__} is closed")
            pid = os.getpid()
            if pid != self._pid:  # a forked child: never use or close the parent's connections
                _INHERITED.extend(c for _, c in self._conns.values())
                self._conns.clear()
                self._pid = pid
            self._prune()
            check_sqlite_version(sqlite3.sqlite_version_info)
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise translate(exc, f"opening {self._path!r}") from exc
            thread = threading.current_thread()
            self._conns[thread.ident or 0] = (thread, conn)
            self._local.conn = conn
            self._local.pid = pid
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            # Each connection is used by its own thread only; close() may close it from another.
            check_same_thread=False,
            cached_statements=128,
        )
        try:
            _configure(conn, self._path, self._synchronous, self._busy_timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prune(self) -> None:
        # Connections of threads that ended: close them (their owner can no longer use them).
        for ident, (thread, conn) in list(self._conns.items()):
            if not thread.is_alive():
                del self._conns[ident]
                conn.close()

    def close(self) -> None:
        """
        Close every connection this backend opened; it cannot be used afterwards.

        Call it when no other thread is using the backend.
        """
        with self._lock:
            self._closed = True
            conns = [c for _, c in self._conns.values()]
            self._conns.clear()
            if self._pid != os.getpid():  # a forked child: park the parent's, never close them
                _INHERITED.extend(conns)
                conns = []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # transactions ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise translate(exc, what) from exc

    @contextlib.contextmanager
    def _read(self, what: str, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """
        A read. With *snapshot*, the statements inside see one consistent state of the database
        (a deferred transaction); otherwise each statement is its own snapshot.
        """
        conn = self._conn()
        try:
            if not snapshot or conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                _rollback(conn)  # nothing to keep: ending a read transaction either way
        except sqlite3.Error as exc:
            raise translate(exc, what) from exc

    # schema ---------------------------------------------------------------------------------------

    def migrate(self) -> int:
        """
        Bring the database schema up to date; return its version.

        Runs by itself on first use, so calling it is optional: do it at deploy time to fail
        early. Safe to call from several processes at once (one migrates, the others wait for it
        and find nothing left to do).

        Raises:
            SchemaVersionError: The file was migrated by a newer catalogsync.
            BackendError: The file could not be opened or migrated.
        """
        return self._migrate(self._connection())

    def _migrate(self, conn: sqlite3.Connection) -> int:
        try:
            version = migrate(conn)
        except sqlite3.Error as exc:
            raise translate(exc, "migrating the schema") from exc
        self._migrated = True
        return version

    def _now_us(self) -> int:
        """The clock's current time in microseconds since the epoch."""
        return to_us(self._clock.now())


def _configure(conn: sqlite3.Connection, path: str, synchronous: str, busy_timeout: float) -> None:
    # WAL persists in the file; asking again on an existing WAL database is a no-op.
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if str(mode).lower() != "wal":
        msg = (
            f"could not switch {path!r} to WAL mode (got {mode!r}); the SQLite backends need "
            f"a local file system"
        )
        raise BackendError(msg)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys=OFF")
    # Staging tables of large enqueues spill to a temporary file, not to memory.
    conn.execute("PRAGMA temp_store=FILE")
    try:
        conn.execute("SELECT json_valid('[]')").fetchone()
    except sqlite3.OperationalError:
        msg = "catalogsync's SQLite backends need SQLite's JSON functions (JSON1)"
        raise BackendError(msg) from None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back by itself (I/O error, full disk).
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
