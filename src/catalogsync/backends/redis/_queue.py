"""
`RedisQueue`: the `QueueBackend` on Redis (hash + sorted set + Lua, see ``_scripts``).

Rule 1: every operation is one Lua script over the keys of one connector, which share a hash
tag, so each is atomic and the queue runs unchanged on Redis Cluster. Scripts are registered
with ``register_script`` (``EVALSHA``, reloaded automatically after a server restart).

Rule 2: time comes from the injected clock and reaches the scripts as microseconds in their
arguments; the server's clock is never read, so a `catalogsync.testing.ManualClock` drives
visibility exactly as it does for the memory queue.

Rule 3: every script may run twice (a client retry after a lost reply): ``enqueue`` coalesces,
``lease`` remembers its result under a per-call token for a short while and replays it,
``ack``/``release``/``extend`` are fenced (a repeat finds nothing left to do, so its count may
under-report), and ``replace_all`` is staged under a token and swapped once. The queue retries
each step once after a lost connection; a second failure is a retryable `BackendError`.

Rule 4 (durability): Redis acknowledges writes before they reach the disk unless the server runs
``appendonly yes`` with ``appendfsync always``; replication is asynchronous. See docs/scaling.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from ..._clock import Clock, SystemClock
from ..._errors import (
    BackendError,
    CatalogSyncError,
    ConflictError,
    InvalidArgumentError,
    MissingDependencyError,
)
from ..._models import Change, ChangeKind, Counts, ItemKey, ItemType
from ...typing import Lease, Page, QueueEntry
from .._common import check_lease_args, check_ttl
from . import _scripts


if TYPE_CHECKING:
    from types import ModuleType, TracebackType


__all__ = ["RedisQueue"]

T = TypeVar("T")

#: Changes per script call (each call is atomic; a large enqueue is several calls).
ENQUEUE_CHUNK: Final = 1000
#: Entries read per script call when `RedisQueue.entries` filters.
PEEK_CHUNK: Final = 1000
#: How long a crashed ``replace_all`` leaves its staging keys behind (refreshed per chunk).
STAGE_TTL_MS: Final = 15 * 60 * 1000
#: How long a lease call's result is kept for a replay (capped by the lease ttl).
REPLAY_MS: Final = 30_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_TYPE_CODE: Final = {ItemType.CATEGORY: "c", ItemType.PRODUCT: "p", ItemType.VARIANT: "v"}
_CODE_TYPE: Final = {code: item_type for item_type, code in _TYPE_CODE.items()}
_KIND_CODE: Final = {ChangeKind.UPSERT: "u", ChangeKind.DELETE: "d"}
_CODE_KIND: Final = {code: kind for kind, code in _KIND_CODE.items()}


def _import_redis() -> ModuleType:
    try:
        import redis  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError as exc:
        msg = "the Redis queue needs redis-py: pip install 'catalogsync[redis]'"
        raise MissingDependencyError(msg) from exc
    return redis


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(item_type: ItemType, ref: str) -> str:
    return _TYPE_CODE[item_type] + ref


def _check_connector(connector_id: object) -> str:
    if not isinstance(connector_id, str) or not connector_id:
        raise InvalidArgumentError("connector_id must be a non-empty str", field="connector_id")
    return connector_id


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise InvalidArgumentError(
            f"prefix must be a non-empty str without braces, got {prefix!r}", field="prefix"
        )
    return prefix


class _Keys:
    """The key names of one connector (one hash slot)."""

    __slots__ = ("base", "live", "n", "q", "st", "stage", "v", "z")

    def __init__(self, prefix: str, connector_id: str) -> None:
        # "}:" always follows the connector id and no suffix contains "}", so two different
        # (connector, suffix) pairs never make the same key, whatever the connector id holds.
        self.base = f"{{{prefix}:{connector_id}}}:"
        b = self.base
        self.q, self.z, self.n, self.v = b + "q", b + "z", b + "n", b + "v"
        self.st = b + "st"
        self.live = [self.q, self.z, self.n]
        self.stage = [b + "sq", b + "sz", b + "sn"]

    def token(self, kind: str, token: str) -> str:
        return f"{self.base}{kind}:{token}"


class RedisQueue:
    """
    A `catalogsync.typing.QueueBackend` on Redis (``catalogsync[redis]``).

    Fast and simple to run, with Redis's durability: an acknowledged enqueue can be lost on a
    crash unless the server fsyncs every write (``appendfsync always``), and a failover may lose
    recent writes (replication is asynchronous). Pair it with a durable state store; see
    docs/scaling.md for the trade-offs and measured rates.

    Example:
        >>> from datetime import timedelta
        >>> from catalogsync import Change, ItemType
        >>> from catalogsync.backends.redis import RedisQueue
        >>> with RedisQueue("redis://localhost:6379/0") as q:  # doctest: +SKIP
        ...     q.enqueue("shop", [Change("P1", ItemType.PRODUCT)])
        ...     [lease] = q.lease("shop", owner="w1", limit=100, ttl=timedelta(seconds=60))
        ...     q.ack("shop", [lease])
        1
        1

    Args:
        url_or_client: A ``redis://`` URL, for which the queue makes (and `close` closes) its
            own client, or a ``redis.Redis`` / ``redis.cluster.RedisCluster`` client that you
            own. Either ``decode_responses`` setting works.
        prefix: The first part of every key (``{prefix:connector}:...``); no braces.
        clock: Source of time for visibility deadlines.

    Raises:
        ImportError: redis-py is not installed (install ``catalogsync[redis]``).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = "catalogsync",
        clock: Clock | None = None,
    ) -> None:
        self._redis = _import_redis()
        self._prefix = _check_prefix(prefix)
        self._clock = clock or SystemClock()
        if isinstance(url_or_client, str):
            from redis.backoff import NoBackoff  # noqa: PLC0415
            from redis.retry import Retry  # noqa: PLC0415

            # The queue retries once itself, knowing which scripts are safe to repeat.
            self._client = self._redis.Redis.from_url(url_or_client, retry=Retry(NoBackoff(), 0))
            self._owns_client = True
        elif callable(getattr(url_or_client, "register_script", None)):
            self._client = url_or_client
            self._owns_client = False
        else:
            raise InvalidArgumentError(
                f"expected a redis:// URL or a redis client, got {type(url_or_client).__name__}",
                field="url_or_client",
            )
        register = self._client.register_script
        self._enqueue = register(_scripts.ENQUEUE)
        self._lease = register(_scripts.LEASE)
        self._ack = register(_scripts.ACK)
        self._move = register(_scripts.MOVE)
        self._peek = register(_scripts.PEEK)
        self._begin = register(_scripts.BEGIN)
        self._swap = register(_scripts.SWAP)

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    def close(self) -> None:
        """Close the client the queue made for a URL (a client you passed stays open)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _keys(self, connector_id: str) -> _Keys:
        return _Keys(self._prefix, _check_connector(connector_id))

    def _wrap(self, exc: Exception, action: str, *, lost: bool = False) -> CatalogSyncError:
        if isinstance(exc, self._redis.ResponseError) and "SUPERSEDED" in str(exc):
            return ConflictError(f"Redis {action}: another replace_all of this connector started")
        retryable = lost or isinstance(
            exc,
            self._redis.ConnectionError | self._redis.TimeoutError | self._redis.ReadOnlyError,
        )
        what = "connection lost during " if lost else ""
        return BackendError(f"Redis {what}{action} failed: {exc}", retryable=retryable)

    def _run(self, action: str, fn: Callable[[], T]) -> T:
        """Run one script call; once more after a lost connection (every script may repeat)."""
        redis = self._redis
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            first = exc
        except redis.RedisError as exc:
            raise self._wrap(exc, action) from exc
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._wrap(exc, action, lost=True) from first
        except redis.RedisError as exc:
            raise self._wrap(exc, action) from first

    def _write_chunk(
        self, keys: _Keys, batch: Sequence[object], *, force: bool, token: str, now: int
    ) -> None:
        args: list[Any] = [now, "1" if force else "0", token, STAGE_TTL_MS]
        for change in batch:
            if not isinstance(change, Change):
                raise InvalidArgumentError(
                    f"queues take Change values, got {type(change).__name__}", field="changes"
                )
            args += (_field(change.type, change.ref), _KIND_CODE[change.kind])
        all_keys = [keys.q, keys.z, keys.n, keys.v, keys.st, *keys.stage]
        self._run("enqueue", lambda: self._enqueue(keys=all_keys, args=args))

    # -- QueueBackend ---------------------------------------------------------------------------

    def enqueue(self, connector_id: str, changes: Iterable[Change]) -> int:
        """
        Add or coalesce *changes*; return how many were consumed.

        The iterable is consumed in chunks of `ENQUEUE_CHUNK`, each one atomic script call.
        """
        keys = self._keys(connector_id)
        written = 0
        batch: list[object] = []
        for change in changes:
            batch.append(change)
            if len(batch) >= ENQUEUE_CHUNK:
                self._write_chunk(keys, batch, force=False, token="", now=_us(self._clock.now()))
                written += len(batch)
                batch = []
        if batch:
            self._write_chunk(keys, batch, force=False, token="", now=_us(self._clock.now()))
            written += len(batch)
        return written

    def lease(self, connector_id: str, *, owner: str, limit: int, ttl: timedelta) -> list[Lease]:
        """Lease up to *limit* visible entries for *owner* until ``now + ttl``, oldest first."""
        check_lease_args(owner, limit, ttl)
        keys = self._keys(connector_id)
        now = self._clock.now()
        deadline = now + ttl
        replay = min(REPLAY_MS, max(1, ttl // timedelta(milliseconds=1)))
        args = [_us(now), _us(deadline), owner, limit, replay]
        lease_keys = [keys.q, keys.z, keys.token("lt", uuid.uuid4().hex)]
        flat = self._run("lease", lambda: self._lease(keys=lease_keys, args=args))
        deadline = deadline.astimezone(UTC)
        out = []
        for i in range(0, len(flat), 5):
            field = _text(flat[i])
            out.append(
                Lease(
                    _CODE_TYPE[field[0]],
                    field[1:],
                    _CODE_KIND[_text(flat[i + 3])],
                    int(flat[i + 1]),
                    int(flat[i + 2]),
                    _text(flat[i + 4]) == "1",
                    owner,
                    deadline,
                )
            )
        return out

    @staticmethod
    def _latest(leases: Sequence[Lease]) -> list[Lease]:
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
        return list(latest.values())

    def ack(self, connector_id: str, leases: Sequence[Lease]) -> int:
        """Remove the entries of *leases* that are still validly held; return how many."""
        keys = self._keys(connector_id)
        chosen = self._latest(leases)
        if not chosen:
            return 0
        args: list[Any] = [_us(self._clock.now())]
        for lease in chosen:
            args += (_field(lease.item_type, lease.ref), str(lease.version), lease.owner)
        return int(self._run("ack", lambda: self._ack(keys=keys.live, args=args)))

    def _move_leases(
        self, action: str, connector_id: str, leases: Sequence[Lease], at: datetime, now: datetime
    ) -> int:
        keys = self._keys(connector_id)
        chosen = self._latest(leases)
        if not chosen:
            return 0
        args: list[Any] = [_us(now), _us(at), action]
        for lease in chosen:
            args += (_field(lease.item_type, lease.ref), lease.owner)
        return int(self._run(action, lambda: self._move(keys=[keys.q, keys.z], args=args)))

    def release(
        self, connector_id: str, leases: Sequence[Lease], *, delay: timedelta = timedelta(0)
    ) -> int:
        """Make the entries of *leases* (same owner) visible again after *delay*."""
        if not isinstance(delay, timedelta) or delay < timedelta(0):
            raise InvalidArgumentError(
                f"delay must be a non-negative timedelta, got {delay!r}", field="delay"
            )
        now = self._clock.now()
        return self._move_leases("release", connector_id, leases, now + delay, now)

    def extend(self, connector_id: str, leases: Sequence[Lease], *, ttl: timedelta) -> int:
        """Push the deadline of validly held *leases* to ``now + ttl`` (a heartbeat)."""
        check_ttl(ttl)
        now = self._clock.now()
        return self._move_leases("extend", connector_id, leases, now + ttl, now)

    def counts(self, connector_id: str) -> Counts:
        """Entries per item type, leased ones included (counters kept by the scripts)."""
        keys = self._keys(connector_id)
        raw = self._run("counts", lambda: self._client.hgetall(keys.n))
        return Counts.of({_CODE_TYPE[_text(code)]: int(n) for code, n in raw.items()})

    def replace_all(
        self, connector_id: str, changes: Iterable[Change], *, force: bool = True
    ) -> int:
        """
        Atomically replace the connector's queue with *changes*; return how many were consumed.

        The new set is built under staging keys as the iterable streams (readers keep seeing the
        old set), then one script renames it into place. Changes enqueued meanwhile go to both
        sets. A concurrent `replace_all` of the same connector supersedes this one, which then
        raises `ConflictError`.
        """
        keys = self._keys(connector_id)
        token = uuid.uuid4().hex
        now = _us(self._clock.now())
        self._run(
            "replace_all",
            lambda: self._begin(keys=[keys.st, *keys.stage], args=[token, STAGE_TTL_MS]),
        )
        written = 0
        batch: list[object] = []
        for change in changes:
            batch.append(change)
            if len(batch) >= ENQUEUE_CHUNK:
                self._write_chunk(keys, batch, force=force, token=token, now=now)
                written += len(batch)
                batch = []
        if batch:
            self._write_chunk(keys, batch, force=force, token=token, now=now)
            written += len(batch)
        swap_keys = [keys.st, *keys.stage, *keys.live, keys.token("done", token)]
        self._run("replace_all", lambda: self._swap(keys=swap_keys, args=[token, written]))
        return written

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
        Peek at pending entries in line order, filtered, without leasing them.

        Without filters this is one script call. With filters the line is read in chunks of
        `PEEK_CHUNK` (each atomic, so Redis is never blocked long); entries that move while the
        chunks are read may be missed or seen twice, as with any paged peek at a live queue.
        """
        keys = self._keys(connector_id)
        for name, value in (("offset", offset), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(f"{name} must be an int >= 0", field=name)
        wanted = None if item_type is None else ItemType(item_type)
        now = _us(self._clock.now())

        def peek(start: int, stop: int) -> list[Any]:
            return list(
                self._run("entries", lambda: self._peek(keys=[keys.q, keys.z], args=[start, stop]))
            )

        if wanted is None and not ref_contains:
            if limit == 0:
                return Page((), int(peek(1, 0)[0]), offset, limit)  # ZRANGE 1 0: size only
            flat = peek(offset, offset + limit - 1)
            return Page(tuple(_entries(flat[1:], now)), int(flat[0]), offset, limit)
        matched: list[QueueEntry] = []
        total = 0
        for entry in _scan(peek, now):
            if (wanted is None or entry.item_type is wanted) and (
                not ref_contains or ref_contains in entry.ref
            ):
                if offset <= total < offset + limit:
                    matched.append(entry)
                total += 1
        return Page(tuple(matched), total, offset, limit)

    def __repr__(self) -> str:
        return f"RedisQueue(prefix={self._prefix!r})"


def _scan(peek: Callable[[int, int], list[Any]], now: int) -> Iterator[QueueEntry]:
    """Every entry in line order, read `PEEK_CHUNK` at a time."""
    start = 0
    while True:
        flat = peek(start, start + PEEK_CHUNK - 1)
        yield from _entries(flat[1:], now)
        start += PEEK_CHUNK
        if start >= int(flat[0]):
            return


def _entries(flat: Sequence[Any], now: int) -> list[QueueEntry]:
    out = []
    for i in range(0, len(flat), 3):
        field = _text(flat[i])[16:]
        visible_at = int(float(_text(flat[i + 1])))
        ver, _seq, att, kind, force, enq, owner = _text(flat[i + 2]).split("|", 6)
        out.append(
            QueueEntry(
                _CODE_TYPE[field[0]],
                field[1:],
                _CODE_KIND[kind],
                int(ver),
                int(att),
                force == "1",
                _at(int(enq)),
                _at(visible_at) if owner and visible_at > now else None,
            )
        )
    return out
