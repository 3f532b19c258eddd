"""
Queue and state-store backends.

Memory and SQLite backends ship with the core; the PostgreSQL and Redis backends live in
`catalogsync.backends.postgres` and `catalogsync.backends.redis` and need the ``postgres`` and
``redis`` extras.
"""

from ._memory import MemoryQueue, MemoryStore
from ._sqlite_queue import SQLiteQueue
from ._sqlite_store import SQLiteStore


__all__ = ["MemoryQueue", "MemoryStore", "SQLiteQueue", "SQLiteStore"]
