"""
PostgreSQL backends: `PostgresQueue` and `PostgresStore` (install ``catalogsync[postgres]``).

Both run on a `psycopg_pool.ConnectionPool`: give them a connection string (they open and close
their own pool) or a pool you own (they may share it). Their tables live in one schema
(``catalogsync`` by default) that is created and migrated on first use, or explicitly with
`migrate`. psycopg is imported only when a backend is created.

See docs/scaling.md for sizing, vacuum settings and the delivery guarantees.

.. versionadded:: 0.1.0
"""

from ._migrations import SCHEMA_VERSION, migrate
from ._queue import PostgresQueue
from ._store import PostgresStore


__all__ = ["SCHEMA_VERSION", "PostgresQueue", "PostgresStore", "migrate"]
