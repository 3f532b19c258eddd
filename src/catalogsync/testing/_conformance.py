"""
Conformance suites for `QueueBackend` and `StateStore` implementations.

Mix a suite into a test class of your own and provide one fixture::

    from catalogsync.testing import QueueConformance

    class TestMyQueue(QueueConformance):
        @pytest.fixture
        def make_queue(self):
            def make(clock):
                return MyQueue(dsn, clock=clock)
            return make

Every test uses a fresh, random connector id, so a shared database needs no cleanup between tests.
The suites need pytest (and hypothesis for the model-based test).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from .._errors import InvalidArgumentError, NotFoundError
from .._models import (
    Change,
    ChangeKind,
    ConfigSnapshot,
    Connector,
    ConnectorParams,
    Counts,
    Endpoint,
    ErrorKind,
    EventStatus,
    GeneralError,
    ItemAction,
    ItemError,
    ItemState,
    ItemStatus,
    ItemType,
    SyncEvent,
    Trigger,
)
from ..typing import (
    EventQuery,
    HistoryQuery,
    ItemQuery,
    ItemRecord,
    QueueBackend,
    SentState,
    StateStore,
)
from ._clock import ManualClock


__all__ = ["QueueConformance", "StoreConformance"]

TTL = timedelta(seconds=30)
P, V, C = ItemType.PRODUCT, ItemType.VARIANT, ItemType.CATEGORY
_KINDS = (ChangeKind.UPSERT, ChangeKind.DELETE)


def _cid() -> str:
    return f"conf-{uuid.uuid4().hex[:12]}"


class QueueConformance:
    """
    The `QueueBackend` contract. Provide a ``make_queue`` fixture: ``(clock) -> QueueBackend``.

    .. versionadded:: 0.1.0
    """

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A manual clock shared by the queue and the test."""
        return ManualClock()

    @pytest.fixture
    def queue(
        self, make_queue: Callable[[ManualClock], QueueBackend], clock: ManualClock
    ) -> QueueBackend:
        """The queue under test."""
        return make_queue(clock)

    @pytest.fixture
    def cid(self) -> str:
        """A fresh connector id."""
        return _cid()

    # -- enqueue and coalescing ---------------------------------------------------------------

    def test_protocol(self, queue: QueueBackend) -> None:
        """The backend satisfies the runtime-checkable QueueBackend protocol."""
        assert isinstance(queue, QueueBackend)

    def test_enqueue_coalesces_per_key(self, queue: QueueBackend, cid: str) -> None:
        """One entry per (type, ref): re-enqueueing bumps the version and the newest kind wins."""
        assert queue.enqueue(cid, [Change("A", P), Change("B", P), Change("A", P)]) == 3
        first = {e.ref: e for e in queue.entries(cid, limit=100)}
        queue.enqueue(cid, [Change("A", P, ChangeKind.DELETE)])
        after = {e.ref: e for e in queue.entries(cid, limit=100)}

        assert sorted(after) == ["A", "B"]
        assert after["A"].kind is ChangeKind.DELETE
        assert after["A"].version > first["A"].version
        assert after["B"].version == first["B"].version
        assert queue.counts(cid) == Counts(product=2)

    def test_same_ref_different_types_are_distinct(self, queue: QueueBackend, cid: str) -> None:
        """Refs are unique per type only: ('1', product) and ('1', category) are two entries."""
        queue.enqueue(cid, [Change("1", P), Change("1", C), Change("1", V)])

        assert queue.counts(cid) == Counts(category=1, product=1, variant=1)

    def test_connectors_are_isolated(self, queue: QueueBackend, cid: str) -> None:
        """Entries of one connector are invisible to another."""
        other = _cid()
        queue.enqueue(cid, [Change("A", P)])

        assert queue.counts(other).total == 0
        assert queue.lease(other, owner="w", limit=10, ttl=TTL) == []

    def test_versions_are_unique_and_increasing(self, queue: QueueBackend, cid: str) -> None:
        """Every write gets a version greater than any before it, even across replace_all."""
        queue.enqueue(cid, [Change(str(i), P) for i in range(5)])
        v1 = max(e.version for e in queue.entries(cid, limit=100))
        queue.replace_all(cid, [Change("x", P)])
        [entry] = queue.entries(cid, limit=100)

        assert entry.version > v1

    def test_enqueue_rejects_non_changes(self, queue: QueueBackend, cid: str) -> None:
        """Anything but a Change is a typed error and writes nothing."""
        with pytest.raises(InvalidArgumentError):
            queue.enqueue(cid, [("A", "product")])  # type: ignore[list-item]

    def test_enqueue_streams_a_generator(self, queue: QueueBackend, cid: str) -> None:
        """A generator of changes is consumed whole."""
        assert queue.enqueue(cid, (Change(str(i), V) for i in range(2500))) == 2500
        assert queue.counts(cid).variant == 2500

    # -- leasing --------------------------------------------------------------------------------

    def test_lease_is_oldest_first_and_bounded(
        self, queue: QueueBackend, cid: str, clock: ManualClock
    ) -> None:
        """Leases come in enqueue order, up to the limit, and count an attempt."""
        for i in range(5):
            queue.enqueue(cid, [Change(f"r{i}", P)])
            clock.advance(1)
        leases = queue.lease(cid, owner="w1", limit=3, ttl=TTL)

        assert [l.ref for l in leases] == ["r0", "r1", "r2"]
        assert all(l.attempts == 1 and l.owner == "w1" for l in leases)
        assert leases[0].deadline == clock.now() + TTL

    def test_leased_entries_are_invisible(self, queue: QueueBackend, cid: str) -> None:
        """A leased entry is not handed to another worker while its lease runs."""
        queue.enqueue(cid, [Change("A", P), Change("B", P)])
        a = queue.lease(cid, owner="w1", limit=1, ttl=TTL)
        b = queue.lease(cid, owner="w2", limit=10, ttl=TTL)

        assert [l.ref for l in a] == ["A"]
        assert [l.ref for l in b] == ["B"]
        assert queue.lease(cid, owner="w3", limit=10, ttl=TTL) == []
        assert queue.counts(cid).total == 2  # leased entries still count

    def test_expired_lease_is_redelivered(
        self, queue: QueueBackend, cid: str, clock: ManualClock
    ) -> None:
        """At-least-once: after the visibility timeout the entry is leasable again, attempts+1."""
        queue.enqueue(cid, [Change("A", P)])
        [first] = queue.lease(cid, owner="w1", limit=1, ttl=TTL)
        clock.advance(TTL + timedelta(seconds=1))
        [second] = queue.lease(cid, owner="w2", limit=1, ttl=TTL)

        assert second.ref == "A"
        assert second.attempts == first.attempts + 1
        assert second.version == first.version

    def test_reenqueue_keeps_place_in_line(
        self, queue: QueueBackend, cid: str, clock: ManualClock
    ) -> None:
        """A pending entry that is enqueued again does not lose its turn."""
        queue.enqueue(cid, [Change("A", P)])
        clock.advance(1)
        queue.enqueue(cid, [Change("B", P)])
        clock.advance(1)
        queue.enqueue(cid, [Change("A", P)])

        assert [l.ref for l in queue.lease(cid, owner="w", limit=2, ttl=TTL)] == ["A", "B"]

    # -- fenced acks ----------------------------------------------------------------------------

    def test_ack_removes_entry(self, queue: QueueBackend, cid: str) -> None:
        """A valid ack removes the entry."""
        queue.enqueue(cid, [Change("A", P), Change("B", P)])
        leases = queue.lease(cid, owner="w", limit=10, ttl=TTL)

        assert queue.ack(cid, leases) == 2
        assert queue.counts(cid).total == 0
        assert queue.ack(cid, leases) == 0  # idempotent

    def test_old_ack_never_deletes_newer_change(self, queue: QueueBackend, cid: str) -> None:
        """Lease v1, enqueue v2, ack v1: v2 stays pending and is visible at once."""
        queue.enqueue(cid, [Change("A", P)])
        [v1] = queue.lease(cid, owner="w1", limit=1, ttl=TTL)
        queue.enqueue(cid, [Change("A", P, ChangeKind.DELETE)])

        assert queue.lease(cid, owner="w2", limit=1, ttl=TTL) == []  # still leased by w1
        assert queue.ack(cid, [v1]) == 0
        [v2] = queue.lease(cid, owner="w2", limit=1, ttl=TTL)
        assert v2.version > v1.version
        assert v2.kind is ChangeKind.DELETE
        assert queue.ack(cid, [v2]) == 1
        assert queue.counts(cid).total == 0

    def test_expired_lease_cannot_ack(
        self, queue: QueueBackend, cid: str, clock: ManualClock
    ) -> None:
        """A worker whose lease expired acks nothing, even if nobody re-leased the entry."""
        queue.enqueue(cid, [Change("A", P)])
        [lease] = queue.lease(cid, owner="w1", limit=1, ttl=TTL)
        clock.advance(TTL + timedelta(seconds=1))

        assert queue.ack(cid, [lease]) == 0
        assert queue.counts(cid).total == 1

    def test_zombie_ack_is_fenced(self, queue: QueueBackend, cid: str, clock: ManualClock) -> None:
        """A leases, expires, B leases: A's late ack and release do nothing; B's ack removes it."""
        queue.enqueue(cid, [Change("A", P)])
        [a] = queue.lease(cid, owner="wa", limit=1, ttl=TTL)
        clock.advance(TTL + timedelta(seconds=1))
        [b] = queue.lease(cid, owner="wb", limit=1, ttl=TTL)

        assert queue.ack(cid, [a]) == 0
        assert queue.release(cid, [a]) == 0
        assert queue.extend(cid, [a], ttl=TTL) == 0
        assert queue.lease(cid, owner="wc", limit=1, ttl=TTL) == []
        assert queue.ack(cid, [b]) == 1

    # -- release and extend ---------------------------------------------------------------------

    def test_release_with_delay(self, queue: QueueBackend, cid: str, clock: ManualClock) -> None:
        """Released entries come back after the delay, attempts kept."""
        queue.enqueue(cid, [Change("A", P)])
        leases = queue.lease(cid, owner="w", limit=1, ttl=TTL)

        assert queue.release(cid, leases, delay=timedelta(seconds=10)) == 1
        assert queue.lease(cid, owner="w", limit=1, ttl=TTL) == []
        clock.advance(10)
        [again] = queue.lease(cid, owner="w", limit=1, ttl=TTL)
        assert again.attempts == 2

    def test_extend_is_a_heartbeat(self, queue: QueueBackend, cid: str, clock: ManualClock) -> None:
        """Extending a held lease keeps the entry invisible past the original deadline."""
        queue.enqueue(cid, [Change("A", P)])
        leases = queue.lease(cid, owner="w", limit=1, ttl=TTL)
        clock.advance(20)

        assert queue.extend(cid, leases, ttl=TTL) == 1
        clock.advance(20)  # past the first deadline, within the extended one
        assert queue.lease(cid, owner="x", limit=1, ttl=TTL) == []
        assert queue.ack(cid, leases) == 1

    def test_lease_arguments_are_checked(self, queue: QueueBackend, cid: str) -> None:
        """Bad lease arguments are typed errors naming the argument."""
        with pytest.raises(InvalidArgumentError) as info:
            queue.lease(cid, owner="w", limit=0, ttl=TTL)
        assert info.value.field == "limit"
        with pytest.raises(InvalidArgumentError):
            queue.lease(cid, owner="", limit=1, ttl=TTL)
        with pytest.raises(InvalidArgumentError):
            queue.lease(cid, owner="w", limit=1, ttl=timedelta(0))

    # -- replace-all ----------------------------------------------------------------------------

    def test_replace_all_swaps_the_queue(self, queue: QueueBackend, cid: str) -> None:
        """Force refresh: the old entries are gone, the new ones carry the force flag."""
        queue.enqueue(cid, [Change("old", P), Change("keep", P, ChangeKind.DELETE)])
        assert queue.replace_all(cid, [Change("keep", P), Change("new", V)]) == 2
        entries = {e.ref: e for e in queue.entries(cid, limit=100)}

        assert sorted(entries) == ["keep", "new"]
        assert all(e.force for e in entries.values())
        assert entries["keep"].kind is ChangeKind.UPSERT
        assert queue.counts(cid) == Counts(product=1, variant=1)

    def test_replace_all_fences_old_leases(self, queue: QueueBackend, cid: str) -> None:
        """Acks of leases taken before a replace-all remove nothing from the new set."""
        queue.enqueue(cid, [Change("A", P)])
        old = queue.lease(cid, owner="w", limit=1, ttl=TTL)
        queue.replace_all(cid, [Change("A", P)])

        assert queue.ack(cid, old) == 0
        assert queue.counts(cid).total == 1
        [fresh] = queue.lease(cid, owner="w", limit=1, ttl=TTL)
        assert fresh.force

    def test_enqueue_after_replace_all_clears_force(self, queue: QueueBackend, cid: str) -> None:
        """A user change coalescing onto a force entry wins whole: the entry is no longer forced."""
        queue.replace_all(cid, [Change("A", P)])
        queue.enqueue(cid, [Change("A", P, ChangeKind.DELETE)])
        [entry] = queue.entries(cid, limit=10)

        assert not entry.force
        assert entry.kind is ChangeKind.DELETE

    def test_replace_all_is_atomic_for_readers(self, queue: QueueBackend, cid: str) -> None:
        """Concurrent readers see the old set or the new set, never a mix or an empty queue."""
        old = [Change(f"o{i}", P) for i in range(300)]
        new = [Change(f"n{i}", V) for i in range(300)]
        queue.enqueue(cid, old)
        seen: list[Counts] = []
        stop = threading.Event()
        started = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.append(queue.counts(cid))
                started.set()

        reader = threading.Thread(target=read)
        reader.start()
        started.wait(timeout=10)
        try:
            queue.replace_all(cid, iter(new))
        finally:
            stop.set()
            reader.join()

        assert seen
        assert set(seen) <= {Counts(product=300), Counts(variant=300)}

    # -- peeking and counts ---------------------------------------------------------------------

    def test_entries_filters_and_pages(self, queue: QueueBackend, cid: str) -> None:
        """Peek filters by type and literal ref substring and paginates with a total."""
        queue.enqueue(cid, [Change(f"SKU_{i}%", V) for i in range(30)] + [Change("SKUx1", P)])
        page = queue.entries(cid, item_type=V, ref_contains="_1", offset=0, limit=5)

        assert page.total == 11  # SKU_1%, SKU_10% .. SKU_19%
        assert len(page) == 5
        assert all(e.item_type is V and "_1" in e.ref for e in page)
        assert queue.entries(cid, ref_contains="%").total == 30
        assert queue.entries(cid, ref_contains="U_").total == 30

    def test_counts_match_a_recount_after_random_operations(
        self, queue: QueueBackend, cid: str, clock: ManualClock
    ) -> None:
        """
        After a random mix of enqueues (upserts and deletes, new and coalescing), leases, acks,
        releases, lease expiries and replace-alls, counts() equals a recount of the pending set.
        """
        rng = random.Random(20261122)
        held: list[Any] = []
        model: dict[tuple[ItemType, str], None] = {}
        for _ in range(400):
            op = rng.random()
            if op < 0.45:
                changes = [
                    Change(f"r{rng.randrange(40)}", rng.choice([P, V, C]), rng.choice(_KINDS))
                    for _ in range(rng.randrange(1, 6))
                ]
                queue.enqueue(cid, changes)
                for ch in changes:
                    model[ch.key] = None
            elif op < 0.7:
                held.extend(
                    queue.lease(
                        cid, owner=f"w{rng.randrange(3)}", limit=rng.randrange(1, 8), ttl=TTL
                    )
                )
            elif op < 0.85 and held:
                batch = [held.pop(rng.randrange(len(held))) for _ in range(min(len(held), 3))]
                queue.ack(cid, batch)
                pending = {e.key for e in queue.entries(cid, limit=10_000)}
                for lease in batch:
                    if lease.key not in pending:
                        model.pop(lease.key, None)
            elif op < 0.97 and held:
                queue.release(cid, [held.pop()])
            elif op >= 0.97:
                fresh = [Change(f"r{n}", rng.choice([P, V])) for n in range(rng.randrange(6))]
                queue.replace_all(cid, fresh)
                model = dict.fromkeys(ch.key for ch in fresh)
                held = []
            if rng.random() < 0.05:
                clock.advance(TTL)
            recount = dict.fromkeys(ItemType, 0)
            for item_type, _ in model:
                recount[item_type] += 1
            assert queue.counts(cid) == Counts.of(recount)
            assert queue.entries(cid, limit=10_000).total == len(model)


class StoreConformance:
    """
    The `StateStore` contract. Provide a ``make_store`` fixture: ``(clock) -> StateStore``.

    .. versionadded:: 0.1.0
    """

    @pytest.fixture
    def clock(self) -> ManualClock:
        """A manual clock."""
        return ManualClock()

    @pytest.fixture
    def store(
        self, make_store: Callable[[ManualClock], StateStore], clock: ManualClock
    ) -> StateStore:
        """The store under test."""
        return make_store(clock)

    @pytest.fixture
    def connector(self, store: StateStore) -> Connector:
        """A saved connector with a fresh id."""
        c = Connector(
            _cid(), "shopify", account=f"acct-{uuid.uuid4().hex[:6]}", credentials="env:TOKEN"
        )
        store.save_connector(c)
        return c

    def _event(self, connector: Connector, clock: ManualClock, **kw: Any) -> SyncEvent:
        from .._ids import new_id  # noqa: PLC0415

        defaults: dict[str, Any] = {
            "trigger": Trigger.INCREMENTAL,
            "status": EventStatus.IN_PROGRESS,
            "snapshot": ConfigSnapshot(connector.params, connector.channel, api_version="2026-10"),
        }
        defaults.update(kw)
        return SyncEvent(new_id(clock.now()), connector.id, started_at=clock.now(), **defaults)

    def _status(
        self, event: SyncEvent, ref: str, state: ItemState, clock: ManualClock, **kw: Any
    ) -> ItemStatus:
        kw.setdefault("type", P)
        return ItemStatus(
            event.id, event.connector_id, ref, state=state, updated_at=clock.now(), **kw
        )

    # -- connectors -----------------------------------------------------------------------------

    def test_protocol(self, store: StateStore) -> None:
        """The store satisfies the runtime-checkable StateStore protocol."""
        assert isinstance(store, StateStore)

    def test_connector_round_trip(self, store: StateStore) -> None:
        """A saved connector comes back equal, params and schedule included; saving replaces."""
        c = Connector(
            _cid(),
            "amazon",
            account="A1SELLER",
            params=ConnectorParams(
                tags={"x", "y"},
                language="es",
                export_status="only_visible",
                field_mapping={"item_name": "title"},
                mode="test",
            ),
            credentials="vault:amazon-eu",
            schedule=timedelta(minutes=30),
        )
        store.save_connector(c)
        assert store.get_connector(c.id) == c
        changed = attrs.evolve(c, active=False)
        store.save_connector(changed)
        assert store.get_connector(c.id) == changed
        assert c.id in [x.id for x in store.list_connectors()]

    def test_unknown_connector_and_event(self, store: StateStore) -> None:
        """Unknown ids raise NotFoundError."""
        with pytest.raises(NotFoundError):
            store.get_connector("nope-" + uuid.uuid4().hex)
        with pytest.raises(NotFoundError):
            store.get_event("nope-" + uuid.uuid4().hex)
        with pytest.raises(NotFoundError):
            store.event_status("nope-" + uuid.uuid4().hex)

    # -- events ---------------------------------------------------------------------------------

    def test_event_round_trip(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """An opened event comes back with its snapshot; times are aware UTC."""
        event = self._event(
            connector,
            clock,
            snapshot=ConfigSnapshot(
                connector.params,
                "shopify",
                api_version="2026-10",
                served_version="2026-10",
                deprecation="Shop.products is deprecated",
                details={"shop": "acme.myshopify.com"},
            ),
        )
        _, created = store.open_event(event)
        assert created
        back = store.get_event(event.id)
        assert back.snapshot == event.snapshot
        assert back.started_at == event.started_at
        assert back.started_at.tzinfo is not None
        assert back.started_at.utcoffset() == timedelta(0)
        assert back.status is EventStatus.IN_PROGRESS

    def test_one_active_event_per_connector(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """open_event returns the existing active event instead of creating a second one."""
        first, created1 = store.open_event(self._event(connector, clock))
        second, created2 = store.open_event(self._event(connector, clock))

        assert created1 and not created2
        assert second.id == first.id
        assert store.active_event(connector.id).id == first.id  # type: ignore[union-attr]

    def test_open_event_is_atomic_under_threads(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Many threads opening at once create exactly one active event."""
        results: list[tuple[SyncEvent, bool]] = []
        lock = threading.Lock()

        def go() -> None:
            r = store.open_event(self._event(connector, clock))
            with lock:
                results.append(r)

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert sum(created for _, created in results) == 1
        assert len({e.id for e, _ in results}) == 1

    def test_error_events_are_never_active(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """An ERROR event is stored as is and does not block the next event."""
        err, created = store.open_event(
            self._event(
                connector,
                clock,
                status=EventStatus.ERROR,
                errors=(GeneralError("bad token", code="auth"),),
            )
        )
        assert created
        assert store.active_event(connector.id) is None
        _, created2 = store.open_event(self._event(connector, clock))
        assert created2
        assert store.get_event(err.id).errors[0].message == "bad token"

    def test_transition_is_compare_and_set(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Transitions apply only from the expected statuses; finishing sets finished_at."""
        event, _ = store.open_event(self._event(connector, clock))
        assert store.transition(
            event.id, expected={EventStatus.IN_PROGRESS}, status=EventStatus.PAUSED, at=clock.now()
        )
        assert not store.transition(
            event.id,
            expected={EventStatus.IN_PROGRESS},
            status=EventStatus.COMPLETED,
            at=clock.now(),
        )
        assert store.active_event(connector.id).status is EventStatus.PAUSED  # type: ignore[union-attr]
        assert store.transition(
            event.id, expected={EventStatus.PAUSED}, status=EventStatus.IN_PROGRESS, at=clock.now()
        )
        clock.advance(5)
        assert store.transition(
            event.id,
            expected={EventStatus.IN_PROGRESS},
            status=EventStatus.COMPLETED,
            at=clock.now(),
            finished=True,
        )
        done = store.get_event(event.id)
        assert done.status is EventStatus.COMPLETED
        assert store.event_status(event.id) is EventStatus.COMPLETED
        assert done.finished_at == clock.now()
        assert store.active_event(connector.id) is None

    def test_errors_pending_and_supersession(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """General errors append, pending counts are recorded, superseded_by is kept."""
        event, _ = store.open_event(self._event(connector, clock))
        store.add_errors(event.id, [GeneralError("one", at=clock.now())])
        store.add_errors(event.id, [GeneralError("two", code="x")])
        store.set_pending(event.id, Counts(product=4, variant=9))
        store.transition(
            event.id,
            expected={EventStatus.IN_PROGRESS},
            status=EventStatus.COMPLETED,
            at=clock.now(),
            finished=True,
            superseded_by="E2",
        )
        got = store.get_event(event.id)

        assert [e.message for e in got.errors] == ["one", "two"]
        assert got.errors[0].at == clock.now()
        assert got.superseded_by == "E2"
        assert got.has_errors

    def test_events_query_newest_first(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Events of a connector list newest first, filtered by status and time, paginated."""
        ids = []
        for _ in range(4):
            e, _ = store.open_event(self._event(connector, clock))
            store.transition(
                e.id,
                expected={EventStatus.IN_PROGRESS},
                status=EventStatus.COMPLETED,
                at=clock.now(),
                finished=True,
            )
            ids.append(e.id)
            clock.advance(60)
        page = store.events(EventQuery(connector_id=connector.id, limit=3))

        assert page.total == 4
        assert [e.id for e in page] == ids[::-1][:3]
        since = store.events(
            EventQuery(connector_id=connector.id, since=clock.now() - timedelta(seconds=150))
        )
        assert [e.id for e in since] == ids[::-1][:2]

    # -- iterations and commits -----------------------------------------------------------------

    def test_iterations_accumulate_and_are_visible_while_running(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Counts add up per commit; an open iteration shows on the event before it finishes."""
        event, _ = store.open_event(self._event(connector, clock))
        it1 = store.start_iteration(event.id, worker="w1", at=clock.now())
        it2 = store.start_iteration(event.id, worker="w2", at=clock.now())
        store.commit(
            it1,
            [],
            synchronized=Counts(product=2),
            failed=Counts(variant=1),
            unchanged=Counts(category=3),
            skipped=Counts(),
        )
        store.commit(
            it1,
            [],
            synchronized=Counts(product=1),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(variant=2),
        )
        running = store.get_event(event.id)

        assert [i.number for i in running.iterations] == [1, 2]
        assert running.iterations[0].finished_at is None
        assert running.iterations[0].synchronized == Counts(product=3)
        assert running.iterations[0].skipped == Counts(variant=2)
        assert running.failed == Counts(variant=1)
        assert running.unchanged == Counts(category=3)
        assert {it1.id, it2.id} == {i.id for i in running.iterations}
        store.finish_iteration(it1, at=clock.now())
        assert store.get_event(event.id).iterations[0].finished_at == clock.now()

    def test_commit_upserts_statuses_and_states(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Statuses are one per (event, type, ref); sent states carry hash, ids and parents."""
        event, _ = store.open_event(self._event(connector, clock))
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        err = ItemError(
            ErrorKind.CHANNEL, "price: must be > 0", code="INVALID", field="variants[0].price"
        )
        state = SentState(
            P,
            "P1",
            "v1:aa",
            "gid://shopify/Product/1",
            "https://x/1",
            ("C1", "C2"),
            event.id,
            clock.now(),
            memo={"variant:V1": "gid://shopify/ProductVariant/7", "content": "v1:cc"},
        )
        store.commit(
            it,
            [
                ItemRecord(
                    self._status(
                        event,
                        "P1",
                        ItemState.ERROR,
                        clock,
                        errors=(err,),
                        endpoint=Endpoint.TEST,
                        request_id="rq-1",
                    )
                ),
                ItemRecord(
                    self._status(
                        event,
                        "P1",
                        ItemState.DONE,
                        clock,
                        action=ItemAction.CREATE,
                        channel_id="gid://shopify/Product/1",
                    ),
                    state=state,
                ),
                ItemRecord(
                    self._status(
                        event, "V1", ItemState.DONE, clock, type=V, action=ItemAction.CREATE
                    ),
                    state=SentState(V, "V1", "v1:bb", None, None, ("P1",), event.id, clock.now()),
                ),
            ],
            synchronized=Counts(product=1, variant=1),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )

        statuses = store.item_statuses(ItemQuery(connector.id, event_id=event.id))
        assert statuses.total == 2
        p1 = next(s for s in statuses if s.ref == "P1")
        assert p1.state is ItemState.DONE and p1.action is ItemAction.CREATE
        assert store.sent_states(connector.id, P, ["P1", "P2"]) == {"P1": state}
        assert store.sent_children(connector.id, V, ["P1", "P9"]) == {"P1": ("V1",), "P9": ()}
        assert store.sent_children(connector.id, P, ["C2"]) == {"C2": ("P1",)}

    def test_errors_round_trip_on_statuses(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Item errors, warnings, endpoint, request id and message survive storage."""
        event, _ = store.open_event(self._event(connector, clock))
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        status = self._status(
            event,
            "P1",
            ItemState.ERROR,
            clock,
            errors=(
                ItemError("validation", "title is required", code="required", field="title"),
                ItemError(
                    "channel", "'condition_type' is required but not supplied.", code="90220"
                ),
            ),
            warnings=(ItemError("channel", "image is small", code="W1"),),
            endpoint=Endpoint.PRODUCTION,
            request_id="b9c2-41",
            message="é漢 \x00 ok",
            action=ItemAction.UPDATE,
        )
        store.commit(
            it,
            [ItemRecord(status)],
            synchronized=Counts(),
            failed=Counts(product=1),
            unchanged=Counts(),
            skipped=Counts(),
        )

        [back] = store.item_statuses(ItemQuery(connector.id, event_id=event.id))
        assert back == status

    def test_forget_and_relink(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Forgetting removes the state and its links; a new state replaces old parents."""
        event, _ = store.open_event(self._event(connector, clock))
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        s1 = SentState(V, "V1", "v1:1", None, None, ("P1",), event.id, clock.now())
        store.commit(
            it,
            [ItemRecord(self._status(event, "V1", ItemState.DONE, clock, type=V), state=s1)],
            synchronized=Counts(),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )
        s2 = attrs.evolve(s1, parents=("P2",), hash="v1:2")
        store.commit(
            it,
            [ItemRecord(self._status(event, "V1", ItemState.DONE, clock, type=V), state=s2)],
            synchronized=Counts(),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )
        assert store.sent_children(connector.id, V, ["P1", "P2"]) == {"P1": (), "P2": ("V1",)}
        store.commit(
            it,
            [
                ItemRecord(
                    self._status(event, "V1", ItemState.DONE, clock, type=V, action="delete"),
                    forget=True,
                )
            ],
            synchronized=Counts(),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )

        assert store.sent_states(connector.id, V, ["V1"]) == {}
        assert store.sent_children(connector.id, V, ["P2"]) == {"P2": ()}

    def test_commit_is_atomic(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """A commit with an invalid iteration writes none of its records."""
        event, _ = store.open_event(self._event(connector, clock))
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        ghost = attrs.evolve(it, id="ghost-" + uuid.uuid4().hex)
        with pytest.raises(NotFoundError):
            store.commit(
                ghost,
                [ItemRecord(self._status(event, "P1", ItemState.DONE, clock))],
                synchronized=Counts(product=1),
                failed=Counts(),
                unchanged=Counts(),
                skipped=Counts(),
            )

        assert store.item_statuses(ItemQuery(connector.id, event_id=event.id)).total == 0

    # -- queries ----------------------------------------------------------------------------------

    def _populate(self, store: StateStore, connector: Connector, clock: ManualClock) -> SyncEvent:
        event, _ = store.open_event(self._event(connector, clock))
        it = store.start_iteration(event.id, worker="w", at=clock.now())
        records = []
        for i in range(40):
            clock.advance(1)
            state = ItemState.ERROR if i % 4 == 0 else ItemState.DONE
            item_type = [C, P, V][i % 3]
            records.append(
                ItemRecord(self._status(event, f"REF_{i:02d}%", state, clock, type=item_type))
            )
        records.append(
            ItemRecord(self._status(event, "o'brien\"; DROP TABLE x; --", ItemState.DONE, clock))
        )
        store.commit(
            it,
            records,
            synchronized=Counts(),
            failed=Counts(),
            unchanged=Counts(),
            skipped=Counts(),
        )
        return event

    def test_item_status_filters_and_pagination(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """Filter by state, type, literal substring and since; 25 per page by default; newest first."""
        event = self._populate(store, connector, clock)
        everything = store.item_statuses(ItemQuery(connector.id, event_id=event.id))
        assert everything.total == 41
        assert len(everything) == 25
        assert everything.has_more
        times = [s.updated_at for s in everything]
        assert times == sorted(times, reverse=True)

        errors = store.item_statuses(
            ItemQuery(connector.id, event_id=event.id, state="error", limit=100)
        )
        assert errors.total == 10
        assert all(s.state is ItemState.ERROR for s in errors)
        variants = store.item_statuses(ItemQuery(connector.id, item_type=V, limit=100))
        assert {s.type for s in variants} == {V}
        assert store.item_statuses(ItemQuery(connector.id, ref_contains="_1")).total == 10
        assert store.item_statuses(ItemQuery(connector.id, ref_contains="%")).total == 40
        assert store.item_statuses(ItemQuery(connector.id, ref_contains="'; DROP")).total == 0
        assert (
            store.item_statuses(ItemQuery(connector.id, ref_contains="o'brien\"; DROP")).total == 1
        )
        since = store.item_statuses(
            ItemQuery(connector.id, since=clock.now() - timedelta(seconds=4))
        )
        assert since.total == 6  # the last five REF_ records and the hostile ref, all >= now-4
        second = store.item_statuses(ItemQuery(connector.id, offset=25, limit=25))
        assert len(second) == 16
        assert not {s.ref for s in second} & {s.ref for s in everything}

    def test_status_counts_and_failed_keys(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """The overview counts per state and type; failed_keys lists the errors."""
        event = self._populate(store, connector, clock)
        counts = store.status_counts(event.id)

        assert counts.error.total == 10
        assert counts.done.total == 31
        keys = store.failed_keys(event.id)
        assert len(keys) == 10
        assert all(ref.startswith("REF_") for _, ref in keys)

    def test_history_across_connectors(
        self, store: StateStore, connector: Connector, clock: ManualClock
    ) -> None:
        """History filters by account, platform, time range and state, across connectors."""
        self._populate(store, connector, clock)
        other = Connector(_cid(), "takealot", account=f"acct-{uuid.uuid4().hex[:6]}")
        store.save_connector(other)
        self._populate(store, other, clock)

        mine = store.history(HistoryQuery(account=connector.account, limit=100))
        assert mine.total == 41
        assert {r.platform for r in mine} == {"shopify"}
        assert {r.account for r in mine} == {connector.account}
        tk = store.history(
            HistoryQuery(platform="takealot", account=other.account, state="error", limit=100)
        )
        assert tk.total == 10
        window = store.history(
            HistoryQuery(
                account=other.account, since=clock.now() - timedelta(seconds=10), until=clock.now()
            )
        )
        assert window.total == 10  # [now-10, now): the two records stamped `now` are excluded

    def test_timestamps_are_utc(self, store: StateStore, connector: Connector) -> None:
        """Times given in another offset come back as the same instant in UTC."""
        from datetime import timezone  # noqa: PLC0415

        clock = ManualClock(datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=2))))
        event, _ = store.open_event(self._event(connector, clock))
        back = store.get_event(event.id)

        assert back.started_at == datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
        assert back.started_at.tzinfo is not None
        assert back.started_at.utcoffset() == timedelta(0)
