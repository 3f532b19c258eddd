"""
In-memory `QueueBackend` and `StateStore`: the reference implementations of both contracts.

They are thread-safe (one lock each) and keep nothing across processes; use them in tests,
notebooks and single-process tools. Their behaviour is what the conformance suite describes; the
SQLite, PostgreSQL and Redis backends are checked against the same suite.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from .._clock import Clock, SystemClock
from .._errors import InvalidArgumentError, NotFoundError
from .._ids import new_id
from .._models import (
    Change,
    ChangeKind,
    Connector,
    Counts,
    EventStatus,
    GeneralError,
    ItemKey,
    ItemState,
    ItemStatus,
    ItemType,
    Iteration,
    SyncEvent,
)
from ..typing import (
    EventQuery,
    HistoryQuery,
    HistoryRecord,
    ItemQuery,
    ItemRecord,
    Lease,
    Page,
    QueueEntry,
    SentState,
    StatusCounts,
)
from ._common import check_lease_args, check_ttl, page


__all__ = ["MemoryQueue", "MemoryStore"]


@attrs.define
class _Entry:
    item_type: ItemType
    ref: str
    kind: ChangeKind
    version: int
    attempts: int
    force: bool
    seq: int
    visible_at: datetime
    enqueued_at: datetime
    owner: str | None = None

    def leased(self, now: datetime) -> bool:
        return self.owner is not None and self.visible_at > now


class _ConnectorQueue:
    __slots__ = ("entries", "heap")

    def __init__(self) -> None:
        self.entries: dict[ItemKey, _Entry] = {}
        self.heap: list[tuple[datetime, int, ItemType, str]] = []

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self.heap, (entry.visible_at, entry.seq, entry.item_type, entry.ref))


class MemoryQueue:
    """
    An in-memory `catalogsync.typing.QueueBackend`.

    Example:
        >>> from datetime import timedelta
        >>> from catalogsync import Change, ItemType
        >>> q = MemoryQueue()
        >>> q.enqueue("shop", [Change("P1", ItemType.PRODUCT), Change("P1", ItemType.PRODUCT)])
        2
        >>> q.counts("shop").product
        1
        >>> [lease] = q.lease("shop", owner="w1", limit=10, ttl=timedelta(seconds=30))
        >>> q.ack("shop", [lease]), q.counts("shop").total
        (1, 0)

    Args:
        clock: Source of time for visibility deadlines.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._queues: dict[str, _ConnectorQueue] = {}
        self._seq = itertools.count(1)

    def _queue(self, connector_id: str) -> _ConnectorQueue:
        q = self._queues.get(connector_id)
        if q is None:
            q = self._queues[connector_id] = _ConnectorQueue()
        return q

    def enqueue(self, connector_id: str, changes: Iterable[Change]) -> int:
        now = self._clock.now()
        written = 0
        with self._lock:
            q = self._queue(connector_id)
            for change in changes:
                _check_change(change)
                self._write(q, change, force=False, now=now)
                written += 1
        return written

    def _write(self, q: _ConnectorQueue, change: Change, *, force: bool, now: datetime) -> None:
        key = (change.type, change.ref)
        version = next(self._seq)
        entry = q.entries.get(key)
        if entry is None:
            entry = _Entry(
                change.type, change.ref, change.kind, version, 0, force, version, now, now
            )
            q.entries[key] = entry
            q.push(entry)
        else:
            entry.kind = change.kind
            entry.force = force
            entry.version = version

    def lease(self, connector_id: str, *, owner: str, limit: int, ttl: timedelta) -> list[Lease]:
        check_lease_args(owner, limit, ttl)
        now = self._clock.now()
        deadline = now + ttl
        out: list[Lease] = []
        with self._lock:
            q = self._queue(connector_id)
            heap = q.heap
            while heap and len(out) < limit:
                visible_at, seq, item_type, ref = heap[0]
                entry = q.entries.get((item_type, ref))
                if entry is None or entry.seq != seq or entry.visible_at != visible_at:
                    heapq.heappop(heap)  # stale heap item
                    continue
                if visible_at > now:
                    break
                heapq.heappop(heap)
                entry.owner = owner
                entry.attempts += 1
                entry.visible_at = deadline
                q.push(entry)
                out.append(
                    Lease(
                        item_type,
                        ref,
                        entry.kind,
                        entry.version,
                        entry.attempts,
                        entry.force,
                        owner,
                        deadline,
                    )
                )
        return out

    def _held(self, q: _ConnectorQueue, lease: Lease, now: datetime) -> _Entry | None:
        entry = q.entries.get((lease.item_type, lease.ref))
        if entry is None or entry.owner != lease.owner or not entry.leased(now):
            return None
        return entry

    def ack(self, connector_id: str, leases: Sequence[Lease]) -> int:
        now = self._clock.now()
        acked = 0
        with self._lock:
            q = self._queue(connector_id)
            for lease in leases:
                entry = self._held(q, lease, now)
                if entry is None:
                    continue
                if entry.version == lease.version:
                    del q.entries[(lease.item_type, lease.ref)]
                    acked += 1
                else:  # a newer change arrived while leased: back in line at once
                    entry.owner = None
                    entry.visible_at = now
                    q.push(entry)
        return acked

    def release(
        self, connector_id: str, leases: Sequence[Lease], *, delay: timedelta = timedelta(0)
    ) -> int:
        now = self._clock.now()
        released = 0
        with self._lock:
            q = self._queue(connector_id)
            for lease in leases:
                entry = self._held(q, lease, now)
                if entry is None:
                    continue
                entry.owner = None
                entry.visible_at = now + delay
                q.push(entry)
                released += 1
        return released

    def extend(self, connector_id: str, leases: Sequence[Lease], *, ttl: timedelta) -> int:
        check_ttl(ttl)
        now = self._clock.now()
        extended = 0
        with self._lock:
            q = self._queue(connector_id)
            for lease in leases:
                entry = self._held(q, lease, now)
                if entry is None:
                    continue
                entry.visible_at = now + ttl
                q.push(entry)
                extended += 1
        return extended

    def counts(self, connector_id: str) -> Counts:
        with self._lock:
            tally = dict.fromkeys(ItemType, 0)
            for item_type, _ in self._queue(connector_id).entries:
                tally[item_type] += 1
        return Counts.of(tally)

    def replace_all(
        self, connector_id: str, changes: Iterable[Change], *, force: bool = True
    ) -> int:
        now = self._clock.now()
        fresh = _ConnectorQueue()
        # Build outside the swap so readers see the old set until the new one is complete.
        with self._lock:
            written = 0
            for change in changes:
                _check_change(change)
                self._write(fresh, change, force=force, now=now)
                written += 1
            self._queues[connector_id] = fresh
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
        now = self._clock.now()
        with self._lock:
            selected = [
                e
                for e in self._queue(connector_id).entries.values()
                if (item_type is None or e.item_type is item_type)
                and (not ref_contains or ref_contains in e.ref)
            ]
            selected.sort(key=lambda e: (e.visible_at, e.seq))
            out = [
                QueueEntry(
                    e.item_type,
                    e.ref,
                    e.kind,
                    e.version,
                    e.attempts,
                    e.force,
                    e.enqueued_at,
                    e.visible_at if e.leased(now) else None,
                )
                for e in selected
            ]
        return page(out, offset, limit)

    def __repr__(self) -> str:
        return f"MemoryQueue(connectors={len(self._queues)})"


def _check_change(change: object) -> None:
    if not isinstance(change, Change):
        raise InvalidArgumentError(
            f"queues take Change values, got {type(change).__name__}", field="changes"
        )


# =================================================================================================


class MemoryStore:
    """
    An in-memory `catalogsync.typing.StateStore`.

    Args:
        clock: Source of time (used for nothing but defaults; callers pass explicit times).

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._connectors: dict[str, Connector] = {}
        self._events: dict[str, SyncEvent] = {}
        self._iterations: dict[str, dict[str, Iteration]] = {}
        self._statuses: dict[str, dict[ItemKey, ItemStatus]] = {}
        self._states: dict[str, dict[ItemKey, SentState]] = {}
        # connector -> child type -> parent ref -> child refs
        self._links: dict[str, dict[ItemType, dict[str, set[str]]]] = {}

    # connectors -------------------------------------------------------------------------------

    def save_connector(self, connector: Connector) -> None:
        if not isinstance(connector, Connector):
            raise InvalidArgumentError("save_connector takes a Connector", field="connector")
        with self._lock:
            self._connectors[connector.id] = connector

    def get_connector(self, connector_id: str) -> Connector:
        with self._lock:
            try:
                return self._connectors[connector_id]
            except KeyError:
                raise NotFoundError(f"no connector {connector_id!r}") from None

    def list_connectors(self) -> Sequence[Connector]:
        with self._lock:
            return [self._connectors[k] for k in sorted(self._connectors)]

    # events -----------------------------------------------------------------------------------

    def open_event(self, event: SyncEvent) -> tuple[SyncEvent, bool]:
        with self._lock:
            if event.status.active:
                current = self._active(event.connector_id)
                if current is not None:
                    return self._with_iterations(current), False
            self._events[event.id] = event
            self._iterations.setdefault(event.id, {})
            self._statuses.setdefault(event.id, {})
            return event, True

    def _active(self, connector_id: str) -> SyncEvent | None:
        for event in self._events.values():
            if event.connector_id == connector_id and event.status.active:
                return event
        return None

    def _with_iterations(self, event: SyncEvent) -> SyncEvent:
        iterations = sorted(self._iterations.get(event.id, {}).values(), key=lambda i: i.number)
        return attrs.evolve(event, iterations=iterations)

    def get_event(self, event_id: str) -> SyncEvent:
        with self._lock:
            try:
                return self._with_iterations(self._events[event_id])
            except KeyError:
                raise NotFoundError(f"no event {event_id!r}") from None

    def event_status(self, event_id: str) -> EventStatus:
        with self._lock:
            return self._get(event_id).status

    def active_event(self, connector_id: str) -> SyncEvent | None:
        with self._lock:
            event = self._active(connector_id)
            return None if event is None else self._with_iterations(event)

    def events(self, query: EventQuery) -> Page[SyncEvent]:
        with self._lock:
            selected = [
                e
                for e in self._events.values()
                if (query.connector_id is None or e.connector_id == query.connector_id)
                and (query.status is None or e.status is query.status)
                and (query.since is None or e.started_at >= query.since)
                and (query.until is None or e.started_at < query.until)
            ]
            selected.sort(key=lambda e: (e.started_at, e.id), reverse=True)
            out = [self._with_iterations(e) for e in selected]
        return page(out, query.offset, query.limit)

    def transition(
        self,
        event_id: str,
        *,
        expected: Collection[EventStatus],
        status: EventStatus,
        at: datetime,
        finished: bool = False,
        superseded_by: str | None = None,
    ) -> bool:
        with self._lock:
            event = self._events.get(event_id)
            if event is None:
                raise NotFoundError(f"no event {event_id!r}")
            if event.status not in expected:
                return False
            changes: dict[str, object] = {"status": status, "finished_at": at if finished else None}
            if superseded_by is not None:
                changes["superseded_by"] = superseded_by
            if finished:
                changes["pending"] = Counts()
            self._events[event_id] = attrs.evolve(event, **changes)  # type: ignore[arg-type]
            return True

    def add_errors(self, event_id: str, errors: Sequence[GeneralError]) -> None:
        with self._lock:
            event = self._get(event_id)
            self._events[event_id] = attrs.evolve(event, errors=(*event.errors, *errors))

    def set_pending(self, event_id: str, pending: Counts) -> None:
        with self._lock:
            event = self._get(event_id)
            self._events[event_id] = attrs.evolve(event, pending=pending)

    def _get(self, event_id: str) -> SyncEvent:
        try:
            return self._events[event_id]
        except KeyError:
            raise NotFoundError(f"no event {event_id!r}") from None

    # iterations and batches -------------------------------------------------------------------

    def start_iteration(self, event_id: str, *, worker: str, at: datetime) -> Iteration:
        with self._lock:
            self._get(event_id)
            iterations = self._iterations.setdefault(event_id, {})
            iteration = Iteration(new_id(at), event_id, len(iterations) + 1, worker, at)
            iterations[iteration.id] = iteration
            return iteration

    def commit(
        self,
        iteration: Iteration,
        records: Sequence[ItemRecord],
        *,
        synchronized: Counts,
        failed: Counts,
        unchanged: Counts,
        skipped: Counts,
    ) -> None:
        with self._lock:
            iterations = self._iterations.get(iteration.event_id, {})
            current = iterations.get(iteration.id)
            if current is None:
                raise NotFoundError(f"no iteration {iteration.id!r}")
            for record in records:
                self._record(record)
            iterations[iteration.id] = attrs.evolve(
                current,
                synchronized=current.synchronized + synchronized,
                failed=current.failed + failed,
                unchanged=current.unchanged + unchanged,
                skipped=current.skipped + skipped,
            )

    def _record(self, record: ItemRecord) -> None:
        status = record.status
        self._statuses.setdefault(status.event_id, {})[status.key] = status
        states = self._states.setdefault(status.connector_id, {})
        links = self._links.setdefault(status.connector_id, {})
        key = status.key
        if record.forget or record.state is not None:
            old = states.pop(key, None)
            if old is not None:
                for parent in old.parents:
                    links.get(old.item_type, {}).get(parent, set()).discard(old.ref)
        if record.state is not None and not record.forget:
            states[key] = record.state
            by_parent = links.setdefault(record.state.item_type, {})
            for parent in record.state.parents:
                by_parent.setdefault(parent, set()).add(record.state.ref)

    def finish_iteration(self, iteration: Iteration, *, at: datetime) -> None:
        with self._lock:
            iterations = self._iterations.get(iteration.event_id, {})
            current = iterations.get(iteration.id)
            if current is None:
                raise NotFoundError(f"no iteration {iteration.id!r}")
            iterations[iteration.id] = attrs.evolve(current, finished_at=at)

    def sent_states(
        self, connector_id: str, item_type: ItemType, refs: Collection[str]
    ) -> Mapping[str, SentState]:
        with self._lock:
            states = self._states.get(connector_id, {})
            return {r: states[(item_type, r)] for r in refs if (item_type, r) in states}

    def sent_children(
        self, connector_id: str, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, tuple[str, ...]]:
        with self._lock:
            by_parent = self._links.get(connector_id, {}).get(child_type, {})
            return {p: tuple(sorted(by_parent.get(p, ()))) for p in parent_refs}

    # queries ----------------------------------------------------------------------------------

    def _matching(self, query: ItemQuery) -> list[ItemStatus]:
        if query.event_id is not None:
            pools = [self._statuses.get(query.event_id, {})]
        else:
            pools = [
                self._statuses.get(e.id, {})
                for e in self._events.values()
                if e.connector_id == query.connector_id
            ]
        return [
            s
            for pool in pools
            for s in pool.values()
            if s.connector_id == query.connector_id
            and (not query.ref_contains or query.ref_contains in s.ref)
            and (query.state is None or s.state is query.state)
            and (query.item_type is None or s.type is query.item_type)
            and (query.since is None or s.updated_at >= query.since)
        ]

    def item_statuses(self, query: ItemQuery) -> Page[ItemStatus]:
        with self._lock:
            selected = self._matching(query)
        selected.sort(key=_status_order)
        return page(selected, query.offset, query.limit)

    def status_counts(self, event_id: str) -> StatusCounts:
        with self._lock:
            done = dict.fromkeys(ItemType, 0)
            error = dict.fromkeys(ItemType, 0)
            for s in self._statuses.get(event_id, {}).values():
                if s.state is ItemState.DONE:
                    done[s.type] += 1
                elif s.state is ItemState.ERROR:
                    error[s.type] += 1
        return StatusCounts(done=Counts.of(done), error=Counts.of(error))

    def failed_keys(self, event_id: str) -> Sequence[ItemKey]:
        with self._lock:
            return sorted(
                k for k, s in self._statuses.get(event_id, {}).items() if s.state is ItemState.ERROR
            )

    def history(self, query: HistoryQuery) -> Page[HistoryRecord]:
        with self._lock:
            records: list[HistoryRecord] = []
            for event in self._events.values():
                connector = self._connectors.get(event.connector_id)
                platform = connector.channel if connector else event.snapshot.channel
                account = connector.account if connector else ""
                if query.platform is not None and platform != query.platform:
                    continue
                if query.account is not None and account != query.account:
                    continue
                records.extend(
                    HistoryRecord(s, platform, account)
                    for s in self._statuses.get(event.id, {}).values()
                    if (query.since is None or s.updated_at >= query.since)
                    and (query.until is None or s.updated_at < query.until)
                    and (query.state is None or s.state is query.state)
                    and (not query.ref_contains or query.ref_contains in s.ref)
                )
        records.sort(key=lambda r: _status_order(r.status))
        return page(records, query.offset, query.limit)

    def __repr__(self) -> str:
        return f"MemoryStore(connectors={len(self._connectors)}, events={len(self._events)})"


def _status_order(s: ItemStatus) -> tuple[float, str, str, str]:
    # newest first, then a stable tie-break
    return (-s.updated_at.timestamp(), s.event_id, s.type.value, s.ref)
