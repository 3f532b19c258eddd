"""
The connection layer shared by `PostgresQueue` and `PostgresStore`.

Rule 1: psycopg is imported lazily, so ``import catalogsync`` works without the ``postgres`` extra;
constructing a backend without it raises an `ImportError` that names the extra.

Rule 2: every statement runs on a connection borrowed from a `psycopg_pool.ConnectionPool` for
one short unit of work and is committed before the connection goes back. No transaction is ever
held open while the caller works (a pinned MVCC horizon bloats the hot queue table).

Rule 3: every psycopg error leaves as a `catalogsync.BackendError`; ``retryable`` is set for lost
connections, pool timeouts, serialization failures and deadlocks. An operation that is safe to
repeat is retried once, on a fresh connection, when the connection was lost under it; the others
raise the retryable error and leave the decision to the caller. Each operation says which it is.

Rule 4: the schema name is validated and quoted once, then substituted for ``{s}`` in every
statement template; values always travel as parameters.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ..._clock import Clock, SystemClock
from ..._errors import (
    BackendError,
    InvalidArgumentError,
    MissingDependencyError,
    SchemaVersionError,
)


if TYPE_CHECKING:
    from types import ModuleType

    from psycopg import Connection
    from psycopg_pool import ConnectionPool


T = TypeVar("T")

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def import_psycopg() -> tuple[ModuleType, ModuleType]:
    """Return ``(psycopg, psycopg_pool)`` or raise `MissingDependencyError` naming the extra."""
    try:
        import psycopg  # noqa: PLC0415 - optional dependency, imported on first use
        import psycopg_pool  # noqa: PLC0415
    except ImportError as exc:
        msg = (
            "the PostgreSQL backends need psycopg 3 and psycopg-pool: "
            "pip install 'catalogsync[postgres]'"
        )
        raise MissingDependencyError(msg) from exc
    return psycopg, psycopg_pool


def check_schema(schema: object) -> str:
    """Return *schema* if it is a plain SQL identifier (letters, digits, ``_``; <= 63 chars)."""
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise InvalidArgumentError(
            f"schema must be a plain identifier (letters, digits, '_', at most 63), got {schema!r}",
            field="schema",
        )
    return schema


def check_text(value: str, field: str) -> str:
    """
    Reject NUL characters in identifiers and references (PostgreSQL ``text`` cannot hold them).

    Free text (messages, errors, snapshots) is stored in ``json`` columns, where a NUL travels as
    the escape ``\\u0000`` and round-trips; keys and references are plain columns.
    """
    if "\x00" in value:
        raise InvalidArgumentError(
            f"{field} contains a NUL character, which PostgreSQL cannot store", field=field
        )
    return value


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for *parts*."""
    digest = hashlib.blake2b("\x1f".join(("catalogsync", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def chunks(iterable: Iterable[T], size: int) -> Iterable[list[T]]:
    """Yield lists of up to *size* items, consuming *iterable* lazily."""
    batch: list[T] = []
    for item in iterable:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _LostConnectionError(Exception):
    """Internal: the connection broke under an operation (carries the psycopg error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """
    A pool, a schema and the rules above. One per backend object; several may share a pool.

    Args:
        dsn_or_pool: A libpq connection string (the `Database` then owns a pool) or a
            `psycopg_pool.ConnectionPool` the caller owns.
        schema: Where the tables live.
        clock: Source of the migration timestamps.
        auto_migrate: Migrate on first use when the schema is missing or older.
        max_size: Size of an owned pool.
        timeout: Seconds to wait for a pooled connection before a retryable `BackendError`.
    """

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str,
        clock: Clock | None,
        auto_migrate: bool,
        max_size: int,
        timeout: float,
    ) -> None:
        self.psycopg, pool_module = import_psycopg()
        self.schema = check_schema(schema)
        self.clock = clock or SystemClock()
        self.auto_migrate = auto_migrate
        self._quoted = f'"{self.schema}"'
        self._ready = False
        self._ready_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._closed = False
        if isinstance(dsn_or_pool, str):
            if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
                raise InvalidArgumentError("max_size must be an int >= 1", field="max_size")
            self.pool: ConnectionPool[Any] = pool_module.ConnectionPool(
                dsn_or_pool,
                min_size=1,
                max_size=max_size,
                timeout=timeout,
                kwargs={"autocommit": True},
                name=f"catalogsync-{self.schema}",
                open=False,  # opened on first use: constructing a backend connects nothing
            )
            self.owns_pool = True
        elif isinstance(dsn_or_pool, pool_module.ConnectionPool):
            self.pool = dsn_or_pool
            self.owns_pool = False
        else:
            raise InvalidArgumentError(
                "expected a PostgreSQL connection string or a psycopg_pool.ConnectionPool, "
                f"got {type(dsn_or_pool).__name__}",
                field="dsn_or_pool",
            )
        self._needs_open = self.owns_pool

    # -- SQL ---------------------------------------------------------------------------------

    def sql(self, template: str) -> str:
        """Render a statement template: ``{s}`` becomes the quoted schema name."""
        return template.replace("{s}", self._quoted)

    @property
    def qualified_version_table(self) -> str:
        """``"schema".schema_version``, for ``to_regclass``."""
        return f"{self._quoted}.schema_version"

    # -- errors ------------------------------------------------------------------------------

    def wrap(self, exc: BaseException, action: str, *, lost: bool = False) -> BackendError:
        """Translate a psycopg error into a `BackendError` with the right ``retryable`` flag."""
        if isinstance(exc, BackendError):
            return exc
        psycopg = self.psycopg
        retryable = lost or isinstance(
            exc,
            psycopg.OperationalError  # connection, pool timeout, admin shutdown, lock timeout
            | psycopg.InterfaceError
            | psycopg.errors.TransactionRollback,  # serialization failure, deadlock
        )
        sqlstate = getattr(exc, "sqlstate", None)
        code = f" [{sqlstate}]" if sqlstate else ""
        what = "connection lost during " if lost else ""
        return BackendError(
            f"PostgreSQL {what}{action} failed{code}: {_first_line(exc)}", retryable=retryable
        )

    # -- running -----------------------------------------------------------------------------

    def _attempt(self, fn: Callable[[Connection[Any]], T]) -> T:
        conn: Connection[Any] | None = None
        try:
            with self.pool.connection() as conn:
                return fn(conn)
        except self.psycopg.Error as exc:
            if conn is not None and conn.closed:
                raise _LostConnectionError(exc) from exc
            raise

    def run(
        self,
        action: str,
        fn: Callable[[Connection[Any]], T],
        *,
        retry: Callable[[Connection[Any]], T] | None = None,
    ) -> T:
        """
        Run *fn* on a pooled connection (after making sure the schema is current).

        When the connection is lost under *fn* and *retry* is given, the idle connections of the
        pool are checked and *retry* runs once on a fresh one. *retry* must be safe whether or
        not the first attempt's work was committed.
        """
        self.ensure_schema()
        return self._run(action, fn, retry)

    def _run(
        self,
        action: str,
        fn: Callable[[Connection[Any]], T],
        retry: Callable[[Connection[Any]], T] | None,
    ) -> T:
        if self._needs_open or self._closed:
            self._open(action)
        try:
            return self._attempt(fn)
        except _LostConnectionError as lost:
            if retry is None:
                raise self.wrap(lost.error, action, lost=True) from lost.error
            first = lost.error
        except self.psycopg.Error as exc:
            raise self.wrap(exc, action) from exc
        try:
            self.pool.check()  # the other idle connections probably died with this one
            return self._attempt(retry)
        except _LostConnectionError as lost:
            raise self.wrap(lost.error, action, lost=True) from first
        except self.psycopg.Error as exc:
            raise self.wrap(exc, action) from first

    # -- schema ------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Check (and with *auto_migrate*, bring up to date) the schema once per object."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self._check_schema()

    def _check_schema(self) -> None:
        from ._migrations import SCHEMA_VERSION, read_version  # noqa: PLC0415

        # Both steps may run twice: the read trivially, the migration under its advisory lock.
        def read(conn: Connection[Any]) -> int:
            return read_version(self, conn)

        current = self._run("schema check", read, read)
        if current > SCHEMA_VERSION:
            raise too_new(self.schema, current, SCHEMA_VERSION)
        if current < SCHEMA_VERSION:
            if not self.auto_migrate:
                raise BackendError(
                    f"the catalogsync schema {self.schema!r} is at version {current}, this "
                    f"catalogsync needs version {SCHEMA_VERSION}: run migrate() first"
                )
            self._run("migration", self._migrate_on, self._migrate_on)
        self._ready = True

    def _migrate_on(self, conn: Connection[Any]) -> int:
        from ._migrations import apply_migrations  # noqa: PLC0415

        return apply_migrations(self, conn)

    def migrate(self) -> int:
        """Bring the schema up to date now; return its version."""
        with self._ready_lock:
            version = self._run("migration", self._migrate_on, self._migrate_on)
            self._ready = True
            return version

    def _open(self, action: str) -> None:
        with self._open_lock:
            if self._closed:
                raise BackendError(f"PostgreSQL {action} failed: the backend was closed")
            if self._needs_open:
                self.pool.open()
                self._needs_open = False

    def close(self) -> None:
        """Close the pool if this object owns it; later calls raise `BackendError`."""
        with self._open_lock:
            if self.owns_pool and not self._closed:
                self._closed = True
                self._needs_open = False
                self.pool.close()


def too_new(schema: str, found: int, known: int) -> SchemaVersionError:
    """The error for a schema migrated by a newer catalogsync."""
    return SchemaVersionError(
        f"the catalogsync schema {schema!r} is at version {found}, newer than the {known} this "
        "catalogsync knows: upgrade catalogsync"
    )


class PostgresBackend:
    """
    What the PostgreSQL queue and store share: their pool, schema, migrations and lifecycle.

    Args:
        dsn_or_pool: A connection string (the backend then owns its pool) or a
            `psycopg_pool.ConnectionPool` the caller owns and may share.
        schema: The schema holding the tables.
        clock: Source of time for everything the backend stores.
        auto_migrate: Migrate on first use (else `migrate` must run first).
        max_size: Size of an owned pool.
        timeout: Seconds to wait for a pooled connection.
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
        self._db = Database(
            dsn_or_pool,
            schema=schema,
            clock=clock,
            auto_migrate=auto_migrate,
            max_size=max_size,
            timeout=timeout,
        )

    @property
    def schema(self) -> str:
        """The schema holding the tables."""
        return self._db.schema

    def migrate(self) -> int:
        """
        Create or upgrade the tables now; return the schema version.

        Raises:
            SchemaVersionError: The schema was migrated by a newer catalogsync.
        """
        return self._db.migrate()

    def close(self) -> None:
        """Close the pool opened for a connection string (a pool you passed stays open)."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
