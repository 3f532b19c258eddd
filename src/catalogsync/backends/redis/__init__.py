"""
The Redis queue: `RedisQueue` (install ``catalogsync[redis]``).

A `QueueBackend` only: keep the state store on a durable database (PostgreSQL or SQLite).
redis-py is imported only when a queue is created. See docs/scaling.md for durability.

.. versionadded:: 0.1.0
"""

from ._queue import RedisQueue


__all__ = ["RedisQueue"]
