"""
The Synchronizer: the small driver that turns queued changes into channel operations.

Theory of operation (docs/architecture.md has the picture):

1. ``enqueue`` adds changes and, in the same write, the items whose payload reads them (R01).
2. A worker (``run``) joins the connector's active event or opens one after a connection check,
   then loops: lease a batch, decide per item, push, commit state, ack, check for deactivation.
3. Per item the decision is one of: push (create/update/delete/archive), unchanged (equal hash,
   R06), skip with a status (channel does not take it, deletions disabled, force refresh never
   deactivates), silent skip (irrelevant and never sent, R02), defer (a carried item whose
   carrier will deliver it), invalid (R13), or give up (leased too often: a poison item).

Rule 1 (commit order): the state is committed only after the channel acknowledged the item, and
the queue entry is acked only after the state is committed. A crash re-delivers, never loses.

Rule 2: the event's configuration snapshot, not the connector's current parameters, drives every
decision of that event (R07, R09).

Rule 3: nothing raised by the catalog, a channel's render/validate, or the hasher stops a batch;
it becomes an `ItemError` on that item.

Rule 4: every text of a status is passed through `catalogsync.redact` before it is stored, so a
channel that echoes a credential in an error message cannot put it in the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Final

import attrs
from attrs import field, frozen

from . import _validators as v
from ._clock import Clock, SystemClock
from ._errors import (
    ChannelAuthError,
    ChannelError,
    ConflictError,
    InvalidArgumentError,
    InvalidItemError,
    NotFoundError,
    UnhashablePayloadError,
)
from ._hashing import ChangeHasher, UnknownHashSchemeError
from ._ids import new_id, worker_name
from ._models import (
    Change,
    ChangeKind,
    ConfigSnapshot,
    Connector,
    ConnectorParams,
    Counts,
    DeletionMode,
    Endpoint,
    ErrorKind,
    EventStatus,
    GeneralError,
    Item,
    ItemAction,
    ItemError,
    ItemKey,
    ItemState,
    ItemStatus,
    ItemType,
    Iteration,
    ListingStatus,
    Mode,
    SyncEvent,
    Trigger,
)
from ._pipeline import Exportability, Loader, expand, reader_changes, render_context, type_order
from ._register import ActivityRegister
from ._secrets import get_logger, redact
from .typing import (
    CatalogSource,
    Channel,
    EventQuery,
    ItemQuery,
    ItemRecord,
    Lease,
    Operation,
    Outcome,
    Payload,
    QueueBackend,
    RenderContext,
    SentState,
    StateStore,
)


__all__ = ["Plan", "PlannedItem", "Progress", "RunResult", "SyncOptions", "Synchronizer"]

_log = get_logger("catalogsync.sync")

_ACTIVE: Final = frozenset({EventStatus.IN_PROGRESS, EventStatus.PAUSED})


def _positive_int(inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    v.instance_of(int)(inst, attribute, value)
    if value < 1:
        raise InvalidArgumentError(
            f"SyncOptions.{attribute.name} must be >= 1, got {value}",
            field=f"SyncOptions.{attribute.name}",
        )


def _c_ttl(value: timedelta | float) -> timedelta:
    converted = v.optional_timedelta("SyncOptions.lease_ttl")(value)
    if converted is None:
        raise InvalidArgumentError(
            "SyncOptions.lease_ttl is required", field="SyncOptions.lease_ttl"
        )
    return converted


@frozen
class SyncOptions:
    """
    How a worker paces its work.

    Attributes:
        batch_size: Items leased, pushed and committed together; the connector's active flag is
            checked after every batch (rule R08).
        lease_ttl: Visibility timeout of a lease; a crashed worker's items come back after it.
            A running push keeps its leases alive with a heartbeat.
        iteration_size: Items after which a worker closes its iteration and opens the next.
        max_attempts: Leases of one queue entry before it is given up as a poison item (a worker
            died or timed out on it every time) and recorded as an error.
        poll_interval: Seconds between checks while other workers hold the last leases.
        heartbeat: Extend leases while the channel works on a batch.

    Example:
        >>> SyncOptions(batch_size=50, lease_ttl=30).lease_ttl
        datetime.timedelta(seconds=30)

    .. versionadded:: 0.1.0
    """

    batch_size: int = field(default=100, validator=_positive_int)
    lease_ttl: timedelta = field(default=timedelta(minutes=2), converter=_c_ttl)
    iteration_size: int = field(default=1000, validator=_positive_int)
    max_attempts: int = field(default=5, validator=_positive_int)
    poll_interval: float = field(default=0.5, validator=v.instance_of(int, float))
    heartbeat: bool = field(default=True, validator=v.instance_of(bool))


@frozen
class Progress:
    """
    What a progress callback receives after each batch.

    .. versionadded:: 0.1.0
    """

    event_id: str
    iteration: int
    synchronized: Counts
    failed: Counts
    unchanged: Counts
    skipped: Counts
    pending: Counts


@frozen
class RunResult:
    """
    What one `Synchronizer.run` call did.

    Attributes:
        event: The event worked on (as stored at the end of the call), or ``None``.
        reason: Why the call returned: ``"completed"``, ``"paused"``, ``"error"``, ``"idle"``
            (nothing to do), ``"inactive"`` (connector inactive, nothing running),
            ``"limit"`` (``max_batches`` reached), ``"superseded"`` (a force refresh replaced the
            event), ``"waiting"`` (other workers hold the last items and ``wait=False``),
            ``"stopped"`` (the channel rejected the credentials mid-run), ``"interrupted"``
            (*should_stop* returned true).
        batches: Batches processed by this call.
        synchronized: Items this call delivered, per type.
        failed: Items this call recorded as errors, per type.
        unchanged: Items this call skipped as unchanged, per type.
        skipped: Items this call deliberately did not send, per type.

    .. versionadded:: 0.1.0
    """

    event: SyncEvent | None
    reason: str
    batches: int = 0
    synchronized: Counts = field(factory=Counts)
    failed: Counts = field(factory=Counts)
    unchanged: Counts = field(factory=Counts)
    skipped: Counts = field(factory=Counts)

    @property
    def status(self) -> EventStatus | None:
        """The event's status at the end of the call."""
        return None if self.event is None else self.event.status


@frozen
class PlannedItem:
    """
    What `Synchronizer.plan` expects to do with one pending item.

    Attributes:
        type: The item type.
        ref: The PIM reference.
        action: ``CREATE``, ``UPDATE``, ``DELETE``, ``ARCHIVE`` or ``SKIP``; ``None`` when the item
            would not be touched (unchanged, invalid, irrelevant, or left to its carrier).
        outcome: ``"send"``, ``"unchanged"``, ``"skip"``, ``"invalid"``, ``"ignore"`` or
            ``"carried"``.
        reason: A sentence for a person.
        errors: Validation errors, when ``outcome == "invalid"``.

    .. versionadded:: 0.1.0
    """

    type: ItemType
    ref: str
    action: ItemAction | None
    outcome: str
    reason: str
    errors: tuple[ItemError, ...] = ()


@frozen
class Plan:
    """
    A dry run over the pending queue: what would be created, updated, deleted, archived or
    skipped, without any channel call (`Synchronizer.plan`).

    .. versionadded:: 0.1.0
    """

    items: tuple[PlannedItem, ...]
    pending: int
    truncated: bool

    def count(self, outcome: str, action: ItemAction | None = None) -> Counts:
        """Counts per type of planned items with *outcome* (and *action*, if given)."""
        tally = dict.fromkeys(ItemType, 0)
        for p in self.items:
            if p.outcome == outcome and (action is None or p.action is action):
                tally[p.type] += 1
        return Counts.of(tally)

    def summary(self) -> dict[str, int]:
        """``{"create": n, "update": n, "delete": n, "archive": n, "skip": n, "unchanged": n,
        "invalid": n, "ignore": n, "carried": n}``.
        """
        out: dict[str, int] = {}
        for p in self.items:
            name = p.action.value if p.outcome == "send" and p.action else p.outcome
            out[name] = out.get(name, 0) + 1
        return out


class _Iterations:
    """A worker's iterations: opened when a batch first records something, closed by size."""

    __slots__ = ("_clock", "_current", "_event_id", "_items", "_owner", "_store")

    def __init__(self, store: StateStore, event_id: str, owner: str, clock: Clock) -> None:
        self._store, self._event_id, self._owner, self._clock = store, event_id, owner, clock
        self._current: Iteration | None = None
        self._items = 0

    def current(self) -> Iteration:
        """The open iteration, opening one if needed."""
        if self._current is None:
            self._current = self._store.start_iteration(
                self._event_id, worker=self._owner, at=self._clock.now()
            )
            self._items = 0
        return self._current

    @property
    def number(self) -> int:
        """The open iteration's number (0 before the first one)."""
        return 0 if self._current is None else self._current.number

    def processed(self, items: int, *, limit: int) -> None:
        """Count *items* towards the open iteration; close it once it reaches *limit*."""
        if self._current is None:
            return
        self._items += items
        if self._items >= limit:
            self.finish()

    def finish(self) -> None:
        """Close the open iteration, if any."""
        if self._current is not None:
            self._store.finish_iteration(self._current, at=self._clock.now())
            self._current = None


class _Tally:
    """Mutable per-type counters for one batch or run."""

    __slots__ = ("failed", "skipped", "synchronized", "unchanged")

    def __init__(self) -> None:
        self.synchronized = dict.fromkeys(ItemType, 0)
        self.failed = dict.fromkeys(ItemType, 0)
        self.unchanged = dict.fromkeys(ItemType, 0)
        self.skipped = dict.fromkeys(ItemType, 0)

    def add(self, other: _Tally) -> None:
        for name in self.__slots__:
            mine, theirs = getattr(self, name), getattr(other, name)
            for t in ItemType:
                mine[t] += theirs[t]

    def counts(self) -> tuple[Counts, Counts, Counts, Counts]:
        return (
            Counts.of(self.synchronized),
            Counts.of(self.failed),
            Counts.of(self.unchanged),
            Counts.of(self.skipped),
        )

    @property
    def total(self) -> int:
        return sum(sum(getattr(self, n).values()) for n in self.__slots__)


@attrs.define
class _Work:
    """One leased item on its way through a batch (internal, mutable)."""

    key: ItemKey
    lease: Lease | None
    item: Item | None
    state: SentState | None
    decision: str = "pending"  # push/unchanged/skip/silent/defer/invalid/already/carried
    action: ItemAction | None = None
    payload: Payload | None = None
    digest: str | None = None
    errors: tuple[ItemError, ...] = ()
    message: str | None = None
    op: Operation | None = None
    carried: list[_Work] = attrs.field(factory=list)

    @property
    def force(self) -> bool:
        return self.lease is not None and self.lease.force


class Synchronizer:
    """
    Keeps one connector's channel in step with the catalog.

    Compose it from a connector, a `CatalogSource`, a `Channel`, a `QueueBackend` and a
    `StateStore`. Several synchronizers (threads, processes, hosts) sharing the same queue and
    store work on the same event together; give each thread its own instance.

    Example:
        >>> from catalogsync import (Change, Connector, Item, ItemType, MemoryCatalog,
        ...                          MemoryQueue, MemoryStore, Synchronizer)
        >>> from catalogsync.testing import MemoryChannel
        >>> catalog = MemoryCatalog([Item("P1", ItemType.PRODUCT, fields={"title": "Shoe"})])
        >>> sync = Synchronizer(Connector("demo", "memory"), catalog=catalog,
        ...                     channel=MemoryChannel(), queue=MemoryQueue(), store=MemoryStore())
        >>> sync.enqueue([Change("P1", ItemType.PRODUCT)])
        1
        >>> result = sync.run()
        >>> result.reason, result.synchronized.product
        ('completed', 1)

    Args:
        connector: A `Connector` (saved to the store: its current configuration) or the id of a
            connector already saved.
        catalog: Where items are read from.
        channel: Where they are sent.
        queue: Pending changes (shared by all workers of the connector).
        store: Events, statuses and sent state (shared by all workers).
        hasher: The change hasher (the default uses orjson when installed).
        clock: Time for events, leases and waits.
        options: Batch size, lease duration and the like.
        on_progress: Called with a `Progress` after every batch.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        connector: Connector | str,
        *,
        catalog: CatalogSource,
        channel: Channel,
        queue: QueueBackend,
        store: StateStore,
        hasher: ChangeHasher | None = None,
        clock: Clock | None = None,
        options: SyncOptions | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if isinstance(connector, Connector):
            store.save_connector(connector)
            self.connector_id = connector.id
        elif isinstance(connector, str) and connector:
            store.get_connector(connector)  # fail early on an unknown id
            self.connector_id = connector
        else:
            raise InvalidArgumentError(
                "connector must be a Connector or a connector id", field="connector"
            )
        self.catalog = catalog
        self.channel = channel
        self.queue = queue
        self.store = store
        self.hasher = hasher or ChangeHasher()
        self.clock = clock or SystemClock()
        self.options = options or SyncOptions()
        self.on_progress = on_progress
        self.worker = worker_name()

    def __repr__(self) -> str:
        return (
            f"Synchronizer(connector={self.connector_id!r}, channel={self.channel.name!r}, "
            f"worker={self.worker!r})"
        )

    # =============================================================================================
    # configuration
    # =============================================================================================

    @property
    def connector(self) -> Connector:
        """The connector as currently stored."""
        return self.store.get_connector(self.connector_id)

    def update_connector(self, **changes: object) -> Connector:
        """
        Save new connector settings (``params=``, ``active=``, ``schedule=``...).

        Editing a connector never starts a synchronization (rule R03); a running event keeps its
        snapshot (R07) and the next event uses the new settings. Deactivating pauses a running
        event after its current batch (R08); reactivating lets the next `run` resume it (R09).
        """
        connector = attrs.evolve(self.connector, **changes)  # type: ignore[arg-type]
        self.store.save_connector(connector)
        return connector

    def set_active(self, active: bool) -> Connector:
        """Activate or deactivate the connector (see `update_connector`)."""
        return self.update_connector(active=bool(active))

    @property
    def register(self) -> ActivityRegister:
        """The activity register over this synchronizer's store and queue."""
        return ActivityRegister(self.store, self.queue, clock=self.clock)

    def next_run_at(self) -> datetime | None:
        """
        When the next scheduled run is due: the last event's start plus the connector's schedule
        (now, if it never ran); ``None`` without a schedule.
        """
        connector = self.connector
        if connector.schedule is None:
            return None
        last = self.store.events(EventQuery(connector_id=self.connector_id, limit=1))
        if not last.items:
            return self.clock.now()
        return last.items[0].started_at + connector.schedule

    # =============================================================================================
    # enqueueing
    # =============================================================================================

    def enqueue(self, changes: Iterable[Change]) -> int:
        """
        Queue *changes*, with the items whose channel payload reads them (rule R01).

        A variant's change also queues its product; a category's change the products that name
        it; and so on, as the channel declares in ``capabilities.reads``. The hash decides later
        what is really sent. Changes enqueued while an event runs join it (R04). Large iterables
        are streamed in chunks.

        Returns:
            The number of queue writes (changes plus expanded dependents).
        """
        written = 0
        for chunk in expand(
            _checked(changes),
            self.channel.capabilities,
            self.catalog,
            self.store,
            self.connector_id,
        ):
            written += self.queue.enqueue(self.connector_id, chunk)
        return written

    # =============================================================================================
    # events
    # =============================================================================================

    def _snapshot_and_check(
        self, connector: Connector
    ) -> tuple[ConfigSnapshot, GeneralError | None]:
        params = connector.params
        try:
            info = self.channel.check_connection(params)
        except Exception as exc:  # noqa: BLE001 - any failure to start is the event's ERROR
            code = "auth" if isinstance(exc, ChannelAuthError) else "connection"
            message = redact(str(exc)) or type(exc).__name__
            if not isinstance(exc, ChannelError):
                _log.warning("check_connection raised %s", type(exc).__name__, exc_info=True)
                message = f"{type(exc).__name__}: {message}"
            snapshot = ConfigSnapshot(params, self.channel.name)
            return snapshot, GeneralError(message, code=code, at=self.clock.now())
        snapshot = ConfigSnapshot(
            params,
            self.channel.name,
            api_version=info.api_version,
            served_version=info.served_version,
            deprecation=info.deprecation,
            details=dict(info.details),
        )
        return snapshot, None

    def _open(
        self, connector: Connector, trigger: Trigger, *, retry_of: str | None = None
    ) -> tuple[SyncEvent, bool]:
        snapshot, failure = self._snapshot_and_check(connector)
        now = self.clock.now()
        if failure is not None:
            event = SyncEvent(
                new_id(now),
                connector.id,
                trigger,
                EventStatus.ERROR,
                now,
                snapshot,
                finished_at=now,
                errors=(failure,),
                retry_of=retry_of,
                pending=self.queue.counts(connector.id),
            )
            self.store.open_event(event)
            _log.warning("event %s could not start: %s", event.id, failure.message)
            return event, True
        event = SyncEvent(
            new_id(now),
            connector.id,
            trigger,
            EventStatus.IN_PROGRESS,
            now,
            snapshot,
            retry_of=retry_of,
            pending=self.queue.counts(connector.id),
        )
        return self.store.open_event(event)

    def _supersede(self, event: SyncEvent, by: str) -> None:
        self.store.transition(
            event.id,
            expected=_ACTIVE,
            status=EventStatus.COMPLETED,
            at=self.clock.now(),
            finished=True,
            superseded_by=by,
        )

    def force_refresh(self) -> SyncEvent:
        """
        Start a force refresh (rule R05) and return its event.

        The pending queue is replaced, atomically, by every item that passes the connector's
        *current* filters and is exportable; each is sent with all fields whether changed or not
        (hashes are ignored, then stored), and nothing is deleted or deactivated. A running or
        paused event is closed as superseded: a force refresh is how new settings reach an
        interrupted synchronization (R09). The work is queued like any other; `run` does it.
        """
        connector = self.connector
        snapshot, failure = self._snapshot_and_check(connector)
        now = self.clock.now()
        if failure is not None:
            event = SyncEvent(
                new_id(now),
                connector.id,
                Trigger.FORCE_REFRESH,
                EventStatus.ERROR,
                now,
                snapshot,
                finished_at=now,
                errors=(failure,),
            )
            self.store.open_event(event)
            return event
        # Order matters for crashes: close the running event, replace the queue, then open the
        # refresh event. A crash before the replace leaves the old queue and no refresh event
        # (the caller's force_refresh() did not return: it calls again); a crash after it leaves
        # forced entries, which any next event sends as a refresh would (hashes ignored, no
        # removal). Never a refresh event over the old queue, completed with nothing sent.
        event_id = new_id(now)
        active = self.store.active_event(connector.id)
        if active is not None:
            self._supersede(active, event_id)
        self.queue.replace_all(connector.id, self._exportable_changes(connector), force=True)
        refresh = SyncEvent(
            event_id, connector.id, Trigger.FORCE_REFRESH, EventStatus.IN_PROGRESS, now, snapshot
        )
        for _ in range(5):
            event, created = self.store.open_event(refresh)
            if created:
                break
            # another worker opened an event on the forced queue meanwhile: it yields to ours
            self._supersede(event, event_id)
        else:  # pragma: no cover - five lost races in a row
            raise ConflictError("could not open a force refresh event: other workers keep racing")
        self.store.set_pending(event.id, self.queue.counts(connector.id))
        return self.store.get_event(event.id)

    def _exportable_changes(self, connector: Connector) -> Iterator[Change]:
        loader = Loader(self.catalog, self.store, connector.id)
        exportable = Exportability(connector.params, loader)
        accepts = self.channel.capabilities.accepts
        for item_type in (ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT):
            if item_type not in accepts:
                continue
            for batch in self.catalog.scan(item_type, batch_size=500):
                for item in batch:
                    if isinstance(item, Item) and exportable(item):
                        yield Change(item.ref, item.type)
            # the loader memoises; a fresh one per type keeps memory bounded
            loader = Loader(self.catalog, self.store, connector.id)
            exportable = Exportability(connector.params, loader)

    def retry(self, event_id: str) -> SyncEvent:
        """
        Retry the failed items of *event_id* without a force refresh (rule R14).

        Opens a ``RETRY`` event (with the connector's current settings) and queues the failed
        items with their dependents.

        Raises:
            NotFoundError: unknown event.
            ConflictError: another event is running, or the event has no failed items.
        """
        source = self.store.get_event(event_id)
        if source.connector_id != self.connector_id:
            raise NotFoundError(f"event {event_id!r} belongs to connector {source.connector_id!r}")
        keys = self.store.failed_keys(event_id)
        if not keys:
            raise ConflictError(f"event {event_id} has no failed items to retry")
        if self.store.active_event(self.connector_id) is not None:
            raise ConflictError(
                "another event of this connector is running; retry when it has finished"
            )
        event, _ = self._open(self.connector, Trigger.RETRY, retry_of=event_id)
        if event.status is not EventStatus.ERROR:
            self.enqueue(Change(ref, t) for t, ref in keys)
            self.store.set_pending(event.id, self.queue.counts(self.connector_id))
        return self.store.get_event(event.id)

    # =============================================================================================
    # running
    # =============================================================================================

    def run(
        self,
        *,
        max_batches: int | None = None,
        wait: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunResult:
        """
        Work on the connector's event until it completes, pauses or *max_batches* are done.

        Joins the running event if there is one (several workers can), resumes a paused event
        when the connector is active again (R09), or opens a new ``INCREMENTAL`` event when
        changes are pending and the channel's connection check passes (``ERROR`` otherwise,
        with nothing sent).

        Args:
            max_batches: Stop after this many batches (for your own loops); ``None``: no limit.
            wait: When other workers hold the last leased items, wait for them (polling) instead
                of returning ``"waiting"``.
            should_stop: Asked before every batch (and every poll while waiting); when it
                returns true the call returns ``"interrupted"``. The batch in hand is finished
                first, so no lease is left behind (a graceful shutdown, see `Worker`).
        """
        if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
            raise InvalidArgumentError("max_batches must be an int >= 1", field="max_batches")
        connector = self.connector
        event = self.store.active_event(connector.id)
        if event is None:
            if not connector.active:
                return RunResult(None, "inactive")
            if self.queue.counts(connector.id).total == 0:
                return RunResult(None, "idle")
            event, _ = self._open(connector, Trigger.INCREMENTAL)
            if event.status is EventStatus.ERROR:
                return RunResult(self.store.get_event(event.id), "error")
        if event.status is EventStatus.PAUSED:
            if not connector.active:
                return RunResult(event, "paused")
            self.store.transition(
                event.id,
                expected={EventStatus.PAUSED},
                status=EventStatus.IN_PROGRESS,
                at=self.clock.now(),
            )
        elif not connector.active:
            self._pause(event)
            return RunResult(self.store.get_event(event.id), "paused")
        return self._work(event, max_batches=max_batches, wait=wait, should_stop=should_stop)

    def _pause(self, event: SyncEvent) -> None:
        self.store.transition(
            event.id,
            expected={EventStatus.IN_PROGRESS},
            status=EventStatus.PAUSED,
            at=self.clock.now(),
        )

    def _work(
        self,
        event: SyncEvent,
        *,
        max_batches: int | None,
        wait: bool,
        should_stop: Callable[[], bool] | None,
    ) -> RunResult:
        opts = self.options
        owner = f"{self.worker}:{threading.get_ident() % 100000}"
        run_tally = _Tally()
        iterations = _Iterations(self.store, event.id, owner, self.clock)
        batches = 0
        reason = "limit"
        try:
            while True:
                if should_stop is not None and should_stop():
                    reason = "interrupted"
                    break
                status = self.store.event_status(event.id)
                if status is not EventStatus.IN_PROGRESS:
                    reason = _reason_for(status, event, self.store)
                    break
                leases = self.queue.lease(
                    self.connector_id, owner=owner, limit=opts.batch_size, ttl=opts.lease_ttl
                )
                if not leases:
                    pending = self.queue.counts(self.connector_id)
                    if pending.total == 0:
                        self.store.transition(
                            event.id,
                            expected={EventStatus.IN_PROGRESS},
                            status=EventStatus.COMPLETED,
                            at=self.clock.now(),
                            finished=True,
                        )
                        reason = "completed"
                        break
                    self.store.set_pending(event.id, pending)
                    if not wait:
                        reason = "waiting"
                        break
                    self.clock.sleep(opts.poll_interval)
                    continue
                try:
                    tally = self._batch(event, iterations, leases)
                except ChannelAuthError as exc:
                    self._stop_on_auth(event, leases, exc)
                    reason = "stopped"
                    break
                except BaseException:
                    # A lost database, a crash in a hook: hand the batch back at once instead of
                    # after the lease TTL (what was committed stays; the rest is re-delivered).
                    self._release_quietly(leases)
                    raise
                run_tally.add(tally)
                batches += 1
                pending = self.queue.counts(self.connector_id)
                self.store.set_pending(event.id, pending)
                if self.on_progress is not None:
                    self._progress(event, iterations.number, run_tally, pending)
                iterations.processed(len(leases), limit=opts.iteration_size)
                # R08: the active flag is checked after every batch
                if not self.store.get_connector(self.connector_id).active:
                    self._pause(event)
                    reason = "paused"
                    break
                if max_batches is not None and batches >= max_batches:
                    reason = "limit"
                    break
        finally:
            try:
                iterations.finish()
            except Exception:  # noqa: BLE001 - never mask the error that ended the run
                _log.warning("could not close the iteration", exc_info=True)
        synchronized, failed, unchanged, skipped = run_tally.counts()
        return RunResult(
            self.store.get_event(event.id),
            reason,
            batches,
            synchronized,
            failed,
            unchanged,
            skipped,
        )

    def _release_quietly(self, leases: Sequence[Lease]) -> None:
        try:
            self.queue.release(self.connector_id, leases)
        except Exception:  # noqa: BLE001 - the leases then expire after their TTL instead
            _log.warning("could not release the batch's leases", exc_info=True)

    def _progress(self, event: SyncEvent, iteration: int, tally: _Tally, pending: Counts) -> None:
        synchronized, failed, unchanged, skipped = tally.counts()
        try:
            assert self.on_progress is not None  # noqa: S101 - checked by the caller
            self.on_progress(
                Progress(event.id, iteration, synchronized, failed, unchanged, skipped, pending)
            )
        except Exception:  # noqa: BLE001 - a broken callback must not break the sync
            _log.warning("progress callback raised", exc_info=True)

    def _stop_on_auth(
        self, event: SyncEvent, leases: Sequence[Lease], exc: ChannelAuthError
    ) -> None:
        self.queue.release(self.connector_id, leases)
        now = self.clock.now()
        self.store.add_errors(
            event.id,
            [
                GeneralError(
                    f"stopped: the channel rejected the credentials mid-run ({redact(str(exc))}); "
                    "the remaining items stay queued for the next event",
                    code="auth",
                    at=now,
                )
            ],
        )
        self.store.transition(
            event.id,
            expected={EventStatus.IN_PROGRESS},
            status=EventStatus.COMPLETED,
            at=now,
            finished=True,
        )

    # =============================================================================================
    # one batch
    # =============================================================================================

    def _batch(self, event: SyncEvent, iterations: _Iterations, leases: Sequence[Lease]) -> _Tally:
        """
        Process one leased batch in type phases: categories, then products, then variants
        (carried items go with their carrier). Each phase pushes and commits before the next
        renders, so a product sees the channel ids its categories got in the same batch.
        """
        caps = self.channel.capabilities
        phases: dict[int, list[Lease]] = {}
        for lease in leases:
            phase_type = caps.carried.get(lease.item_type, lease.item_type)
            phases.setdefault(type_order((phase_type, "")), []).append(lease)
        later = {lease.key for lease in leases}
        tally = _Tally()
        for order in sorted(phases):
            phase = phases[order]
            later -= {lease.key for lease in phase}
            tally.add(self._phase(event, iterations, phase, later))
        self.queue.ack(self.connector_id, leases)
        return tally

    def _phase(
        self,
        event: SyncEvent,
        iterations: _Iterations,
        leases: Sequence[Lease],
        later: set[ItemKey],
    ) -> _Tally:
        works = self._decide(event, leases)
        tally = _Tally()
        ops = [w.op for w in works if w.decision == "push" and w.op is not None]
        outcomes: dict[ItemKey, Outcome] = {}
        new_ids: set[ItemKey] = set()
        if ops:
            # Readers that embed a new item's channel id must be rendered after it exists.
            # Queue them before the push (so a crash after the commit cannot lose them) and
            # again after the commit (so those rendered meanwhile are rendered again); readers
            # later in this same batch are rendered after this phase's commit anyway.
            if event.snapshot.params.mode is not Mode.TEST:  # test runs store no channel ids
                creating = [o.key for o in ops if o.action is ItemAction.CREATE]
                self._enqueue_id_readers(creating, exclude=later)
            outcomes = self._push(ops, event, leases)
        records = [_scrubbed(r) for r in self._records(event, works, outcomes, tally, new_ids)]
        if not records and not tally.total:
            return tally  # only items already delivered in this event: nothing to record
        synchronized, failed, unchanged, skipped = tally.counts()
        self.store.commit(
            iterations.current(),
            records,
            synchronized=synchronized,
            failed=failed,
            unchanged=unchanged,
            skipped=skipped,
        )
        self._enqueue_id_readers(new_ids, exclude=later)
        return tally

    def _enqueue_id_readers(self, keys: Iterable[ItemKey], *, exclude: set[ItemKey]) -> None:
        """
        Queue the readers of *keys*' channel ids (``capabilities.reads_ids``) as upserts, a
        bounded list at a time (`reader_changes`): a new category's readers are all its products.
        """
        pairs = self.channel.capabilities.reads_ids
        sources = {source for _, source in pairs}
        wanted = [k for k in keys if k[0] in sources]
        if not wanted:
            return
        new_loader = partial(Loader, self.catalog, self.store, self.connector_id)
        for changes in reader_changes(pairs, wanted, new_loader, exclude=exclude):
            self.queue.enqueue(self.connector_id, changes)

    def _push(
        self, ops: list[Operation], event: SyncEvent, leases: Sequence[Lease]
    ) -> dict[ItemKey, Outcome]:
        stop_heartbeat = self._start_heartbeat(leases) if self.options.heartbeat else None
        try:
            result = self.channel.push(ops, event.snapshot.params)
        except ChannelAuthError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing channel fails its items, not the event
            if not isinstance(exc, ChannelError):
                _log.error("channel %s push raised", self.channel.name, exc_info=True)
            error = ItemError(
                ErrorKind.TRANSPORT,
                f"the channel could not take the batch: {redact(str(exc)) or type(exc).__name__}",
                "push_failed",
            )
            result = [
                Outcome(o.item_type, o.ref, ok=False, errors=(error,))
                for op in ops
                for o in (op, *op.carried)
            ]
        finally:
            if stop_heartbeat is not None:
                stop_heartbeat()
        outcomes: dict[ItemKey, Outcome] = {}
        for outcome in result or ():
            if isinstance(outcome, Outcome):
                outcomes[outcome.key] = outcome
        return outcomes

    def _start_heartbeat(self, leases: Sequence[Lease]) -> Callable[[], None]:
        """
        Keep *leases* alive while the channel works: extend them every third of their TTL.

        On the wall clock a thread does it. A clock that offers ``watch`` (a manual clock, whose
        time jumps when a paced push sleeps) calls the heartbeat as its time moves instead, so
        simulated pacing longer than the TTL does not lose the leases either.
        """
        period = max(0.05, self.options.lease_ttl.total_seconds() / 3)

        def beat() -> None:
            try:
                self.queue.extend(self.connector_id, leases, ttl=self.options.lease_ttl)
            except Exception:  # noqa: BLE001 - a missed heartbeat only risks a re-delivery
                _log.warning("lease heartbeat failed", exc_info=True)

        watch = getattr(self.clock, "watch", None)
        if callable(watch):
            stop_watching: Callable[[], None] = watch(period, beat)
            return stop_watching
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(period):
                beat()

        thread = threading.Thread(target=run, name="catalogsync-heartbeat", daemon=True)
        thread.start()

        def stop_thread() -> None:
            stop.set()
            thread.join()

        return stop_thread

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, event: SyncEvent, leases: Sequence[Lease]) -> list[_Work]:
        params = event.snapshot.params
        caps = self.channel.capabilities
        loader = Loader(self.catalog, self.store, self.connector_id)
        exportable = Exportability(params, loader)
        by_type: dict[ItemType, list[str]] = {}
        for lease in leases:
            by_type.setdefault(lease.item_type, []).append(lease.ref)
        for item_type, refs in by_type.items():
            found = loader.items(item_type, refs)
            loader.states(item_type, refs)
            if item_type is ItemType.VARIANT:
                # a variant is exportable only with its product: read the batch's products in
                # one catalog call, not one call per product (N+1 reads against the PIM)
                loader.items(ItemType.PRODUCT, [v.parents[0] for v in found.values()])

        works: dict[ItemKey, _Work] = {}
        for lease in leases:
            key = lease.key
            works[key] = _Work(key, lease, loader.item(*key), loader.state(*key))

        upserts: list[_Work] = []
        for work in works.values():
            self._classify(work, exportable, upserts)

        # carriers in this batch adopt their carried items
        carrier_of = caps.carried
        for work in works.values():
            if work.key[0] in carrier_of and work.decision in {"upsert", "remove"}:
                carrier_key = (carrier_of[work.key[0]], _parent_ref(work))
                carrier = works.get(carrier_key)
                if carrier is not None and carrier.decision in {"upsert", "remove"}:
                    work.decision = "carried"

        items = [w.item for w in upserts if w.item is not None and w.decision == "upsert"]
        ctx = render_context(params, caps, loader, exportable, items)
        carrier_types = set(carrier_of.values())
        for work in upserts:
            if work.decision == "upsert":
                self._render(work, ctx, event, loader)
        for work in works.values():
            if work.decision == "remove":
                self._removal(work, params)
        for work in works.values():
            if work.key[0] in carrier_types:
                self._carrier(work, ctx, loader, works, event)
        for work in works.values():
            if work.decision == "push":
                self._validate(work, ctx)
        for work in works.values():
            if work.decision == "carried":
                self._orphan(work, works)
            elif work.decision == "push":
                work.op = self._operation(work)
        return list(works.values())

    def _orphan(self, work: _Work, works: dict[ItemKey, _Work]) -> None:
        """Settle a carried item its carrier did not cover (carrier invalid or skipped)."""
        carrier = works.get((self.channel.capabilities.carried[work.key[0]], _parent_ref(work)))
        if carrier is None or carrier.decision in {"push", "unchanged", "already"}:
            return  # covered: by a carried operation, or unchanged with its carrier
        if carrier.decision == "invalid":
            work.decision, work.errors = "invalid", carrier.errors
            work.message = f"not sent: {carrier.key[0].value} {carrier.key[1]} is invalid"
        elif carrier.decision == "skip":
            work.decision, work.action = "skip", ItemAction.SKIP
            work.message = (
                f"not sent with {carrier.key[0].value} {carrier.key[1]}: {carrier.message}"
            )
        else:
            work.decision = "silent"

    def _classify(self, work: _Work, exportable: Exportability, upserts: list[_Work]) -> None:
        caps = self.channel.capabilities
        lease = work.lease
        assert lease is not None  # noqa: S101 - leased works only here
        item_type = work.key[0]
        loader_error = exportable.loader.errors.get(work.key)
        if lease.attempts > self.options.max_attempts:
            work.decision = "invalid"
            work.errors = (
                ItemError(
                    ErrorKind.TRANSPORT,
                    f"gave up after {lease.attempts - 1} attempts: a worker stopped or timed out "
                    "every time it processed this item",
                    "poison",
                ),
            )
        elif loader_error is not None:
            work.decision = "invalid"
            work.errors = (loader_error,)
        elif item_type not in caps.accepts:
            work.decision = "skip"
            work.action = ItemAction.SKIP
            work.message = f"{self.channel.name} does not take {item_type.value} items"
        elif lease.kind is ChangeKind.DELETE or work.item is None or not exportable(work.item):
            work.decision = "remove"
        else:
            work.decision = "upsert"
            upserts.append(work)

    def _render(self, work: _Work, ctx: RenderContext, event: SyncEvent, loader: Loader) -> None:
        item = work.item
        assert item is not None  # noqa: S101
        if work.force and self._deactivating(item, ctx, loader):
            work.decision, work.action = "skip", ItemAction.SKIP
            work.message = "a force refresh does not export deactivations"
            return
        payload, digest, errors = self._payload(item, ctx)
        if errors:
            work.decision, work.errors = "invalid", errors
            return
        work.payload, work.digest = payload, digest
        if item.type in self.channel.capabilities.carried:
            # its carrier is not in this batch: unchanged, or left to the carrier (which the
            # enqueue-time expansion queued with it)
            state = work.state
            if work.force:
                same_event = state is not None and state.event_id == event.id
                work.decision = "already" if same_event else "defer"
            elif not self._same(work, event):
                work.decision = "defer"
            return
        if work.force:
            # A force refresh ignores hashes from earlier events, not its own deliveries: an
            # item it already sent with this payload (a re-delivery after a crash between
            # commit and ack) is "already" done, as carried items are above.
            state = work.state
            if state is not None and state.event_id == event.id and self._same(work, event):
                return  # "already"
        elif self._same(work, event):
            return  # decision set by _same
        work.decision = "push"
        work.action = ItemAction.CREATE if work.state is None else ItemAction.UPDATE

    @staticmethod
    def _deactivating(item: Item, ctx: RenderContext, loader: Loader) -> bool:
        """
        Whether sending *item* would deactivate something: it maps to archived, or it is a
        variant of a product that does (channels disable the offers of an archived product).
        """
        if ctx.status(item) is ListingStatus.ARCHIVED:
            return True
        if item.type is ItemType.VARIANT:
            product = loader.item(ItemType.PRODUCT, item.parents[0])
            return product is not None and ctx.status(product) is ListingStatus.ARCHIVED
        return False

    def _payload(
        self, item: Item, ctx: RenderContext
    ) -> tuple[Payload | None, str | None, tuple[ItemError, ...]]:
        """Render and hash *item*: ``(payload, digest, ())`` or ``(None, None, errors)``."""
        try:
            payload = self.channel.render(item, ctx)
        except InvalidItemError as exc:
            return None, None, exc.errors or (ItemError(ErrorKind.VALIDATION, str(exc), "invalid"),)
        except Exception as exc:  # noqa: BLE001 - rule 3
            message = (
                f"the channel could not render this item: {type(exc).__name__}: "
                f"{redact(str(exc))[:500]}"
            )
            return None, None, (ItemError(ErrorKind.VALIDATION, message, "render_failed"),)
        try:
            digest = self.hasher.digest(payload)
        except UnhashablePayloadError as exc:
            error = ItemError(
                ErrorKind.VALIDATION,
                f"the rendered payload cannot be hashed: {exc}",
                "unhashable",
                exc.path,
            )
            return None, None, (error,)
        return payload, digest, ()

    def _same(self, work: _Work, event: SyncEvent) -> bool:
        """Rule R06: equal hash -> unchanged (or already delivered earlier in this event)."""
        state = work.state
        if state is None or work.digest is None:
            return False
        try:
            same = self.hasher.matches(state.hash, work.digest)
        except UnknownHashSchemeError as exc:
            _log.warning("%s/%s: %s; sending it again", work.key[0], work.key[1], exc)
            return False
        if same:
            work.decision = "already" if state.event_id == event.id else "unchanged"
            work.payload = None  # not sent: free it now rather than with the batch
        return same

    def _removal(self, work: _Work, params: ConnectorParams) -> None:
        state = work.state
        if state is None:
            work.decision = "silent"  # irrelevant and never sent (R02)
            return
        if work.key[0] in self.channel.capabilities.carried:
            work.decision = "defer"  # removed by its carrier's next operation
            return
        if work.force:
            work.decision, work.action = "skip", ItemAction.SKIP
            work.message = "a force refresh does not export deletions"
            return
        if params.disable_deletions:
            work.decision, work.action = "skip", ItemAction.SKIP
            work.message = "deletions are disabled for this connector"
            return
        if state.hash is None and params.deletion is DeletionMode.ARCHIVE:
            work.decision = "silent"  # already archived
            return
        removals = self.channel.capabilities.removals
        wanted = ItemAction.DELETE if params.deletion is DeletionMode.DELETE else ItemAction.ARCHIVE
        other = ItemAction.ARCHIVE if wanted is ItemAction.DELETE else ItemAction.DELETE
        if wanted in removals:
            work.action = wanted
        elif other in removals:
            work.action = other
            work.message = f"{self.channel.name} cannot {wanted.value}; used {other.value} instead"
        else:
            work.decision, work.action = "skip", ItemAction.SKIP
            work.message = f"{self.channel.name} cannot remove {work.key[0].value} items"
            return
        if work.action is ItemAction.ARCHIVE and state.hash is None:
            work.decision = "silent"
            return
        work.decision = "push"

    def _carry(
        self,
        work: _Work,
        ctx: RenderContext,
        loader: Loader,
        works: dict[ItemKey, _Work],
        event: SyncEvent,
    ) -> None:
        """Attach the carried operations of a carrier (a product carrying its variants)."""
        caps = self.channel.capabilities
        carrier_type = work.key[0]
        for carried_type, type_carrier in caps.carried.items():
            if type_carrier is not carrier_type:
                continue
            stored = set(loader.stored_children(carried_type, [work.key[1]])[work.key[1]])
            current: list[Item] = []
            if (
                work.action in (ItemAction.CREATE, ItemAction.UPDATE)
                or work.decision == "unchanged"
            ):
                assert work.item is not None  # noqa: S101
                current = list(
                    ctx.variants_of(work.item) if carried_type is ItemType.VARIANT else ()
                )
            seen: set[str] = set()
            for child in current:
                seen.add(child.ref)
                state = loader.state(carried_type, child.ref)
                cw = _Work(child.key, work.lease, child, state)  # the carrier's change
                cw.payload, cw.digest, errors = self._payload(child, ctx)
                if errors:
                    cw.decision, cw.errors = "invalid", errors
                elif work.force or state is None or not self._same(cw, event):
                    cw.decision = "push"
                    cw.action = ItemAction.CREATE if state is None else ItemAction.UPDATE
                leased = works.get(child.key)
                if cw.decision in {"invalid", "push"}:
                    work.carried.append(cw)
                    if leased is not None and leased.decision == "carried":
                        leased.decision = "covered"  # its carrier's operation records it
                elif leased is not None and leased.decision == "carried":
                    leased.decision = cw.decision  # unchanged (or already) with its carrier
            removal = (
                work.action if work.action in (ItemAction.DELETE, ItemAction.ARCHIVE) else None
            )
            for ref in sorted(stored - seen):
                state = loader.state(carried_type, ref)
                cw = _Work((carried_type, ref), work.lease, loader.item(carried_type, ref), state)
                cw.decision = "push"
                cw.action = removal or ItemAction.DELETE
                if removal is None:
                    cw.message = f"removed from {carrier_type.value} {work.key[1]}"
                work.carried.append(cw)
                leased = works.get(cw.key)
                if leased is not None and leased.decision == "carried":
                    leased.decision = "covered"
        if work.decision == "unchanged" and work.carried:
            # a carried item changed while its carrier's hash did not: send the carrier anyway
            work.decision = "push"
            work.action = ItemAction.UPDATE

    def _carrier(
        self,
        work: _Work,
        ctx: RenderContext,
        loader: Loader,
        works: dict[ItemKey, _Work],
        event: SyncEvent,
    ) -> None:
        if work.decision in {"push", "unchanged"}:
            self._carry(work, ctx, loader, works, event)
        elif work.decision == "invalid" and work.item is not None:
            self._strand(work, ctx, loader, works, event)

    def _strand(
        self,
        work: _Work,
        ctx: RenderContext,
        loader: Loader,
        works: dict[ItemKey, _Work],
        event: SyncEvent,
    ) -> None:
        """
        Record the changed carried items of a carrier that could not be rendered as not sent.

        Without this, a carried item leased in a later batch than its failed carrier would be
        deferred to it ("its carrier delivers it") and end the event with no status at all.
        Carried items leased in this batch are settled by `_orphan`; unchanged ones need nothing.
        """
        assert work.item is not None  # noqa: S101 - checked by the caller
        if work.key[0] is not ItemType.PRODUCT:
            return
        for carried_type, carrier_type in self.channel.capabilities.carried.items():
            if carrier_type is not ItemType.PRODUCT or carried_type is not ItemType.VARIANT:
                continue
            for child in ctx.variants_of(work.item):
                if child.key in works:
                    continue
                cw = _Work(child.key, None, child, loader.state(*child.key))
                cw.payload, cw.digest, errors = self._payload(child, ctx)
                if not errors and not work.force and self._same(cw, event):
                    continue  # unchanged: the channel already holds it
                cw.decision = "invalid"
                cw.errors = errors or work.errors
                cw.message = f"not sent: {work.key[0].value} {work.key[1]} is invalid"
                work.carried.append(cw)

    def _validate(self, work: _Work, ctx: RenderContext) -> None:
        if (
            work.payload is None
            or work.item is None
            or work.action
            not in (
                ItemAction.CREATE,
                ItemAction.UPDATE,
            )
        ):
            return
        errors = list(self._errors_of(work.item, work.payload, ctx))
        carried_errors = False
        for cw in work.carried:
            if cw.decision == "invalid":
                carried_errors = True
            elif (
                cw.payload is not None
                and cw.item is not None
                and cw.action
                in (
                    ItemAction.CREATE,
                    ItemAction.UPDATE,
                )
            ):
                cw_errors = tuple(self._errors_of(cw.item, cw.payload, ctx))
                if cw_errors:
                    cw.decision, cw.errors = "invalid", cw_errors
                    carried_errors = True
        if errors or carried_errors:
            work.decision = "invalid"
            work.errors = tuple(errors) or (
                ItemError(
                    ErrorKind.VALIDATION, "some of its carried items are invalid", "carried_invalid"
                ),
            )
            for cw in work.carried:
                if cw.decision == "push":
                    cw.decision = "invalid"
                    cw.errors = work.errors
                    cw.message = f"not sent: {work.key[0].value} {work.key[1]} is invalid"

    def _errors_of(self, item: Item, payload: Payload, ctx: RenderContext) -> Sequence[ItemError]:
        try:
            return tuple(self.channel.validate(item, payload, ctx))
        except Exception as exc:  # noqa: BLE001 - rule 3
            return (
                ItemError(
                    ErrorKind.VALIDATION,
                    f"the channel's validator failed: {type(exc).__name__}: "
                    f"{redact(str(exc))[:300]}",
                    "validator_failed",
                ),
            )

    def _operation(self, work: _Work) -> Operation:
        assert work.action is not None  # noqa: S101
        state = work.state
        carried = tuple(
            self._operation(cw) for cw in work.carried if cw.decision == "push" and cw.action
        )
        return Operation(
            work.key[0],
            work.key[1],
            work.action,
            payload=work.payload if work.action is not ItemAction.DELETE else None,
            item=work.item,
            channel_id=None if state is None else state.channel_id,
            digest=work.digest,
            memo={} if state is None else dict(state.memo),
            carried=carried,
        )

    # -- records --------------------------------------------------------------------------------

    def _records(
        self,
        event: SyncEvent,
        works: list[_Work],
        outcomes: dict[ItemKey, Outcome],
        tally: _Tally,
        new_ids: set[ItemKey],
    ) -> list[ItemRecord]:
        now = self.clock.now()
        records: list[ItemRecord] = []

        def status(work: _Work, state: ItemState, **kw: object) -> ItemStatus:
            return ItemStatus(
                event.id,
                self.connector_id,
                work.key[1],
                work.key[0],
                state,
                now,
                **kw,  # type: ignore[arg-type]
            )

        def settle(work: _Work) -> None:
            t = work.key[0]
            d = work.decision
            if d == "push":
                records.append(
                    self._pushed(work, outcomes.get(work.key), event, now, tally, new_ids)
                )
                for cw in work.carried:
                    settle(cw)
            elif d == "invalid":
                if not self._recorded_before(event, work, ItemState.ERROR):
                    tally.failed[t] += 1
                records.append(
                    ItemRecord(
                        status(
                            work,
                            ItemState.ERROR,
                            errors=work.errors,
                            message=work.message,
                            action=work.action,
                        )
                    )
                )
                for cw in work.carried:
                    settle(cw)
            elif d == "skip":
                if not self._recorded_before(event, work, ItemState.DONE):
                    tally.skipped[t] += 1
                records.append(
                    ItemRecord(
                        status(work, ItemState.DONE, action=ItemAction.SKIP, message=work.message)
                    )
                )
            elif d == "silent":
                tally.skipped[t] += 1
            elif d == "unchanged":
                tally.unchanged[t] += 1
            # "already", "defer", "carried" and "covered" count nothing: another record covers it

        for work in works:
            settle(work)
        return records

    def _recorded_before(self, event: SyncEvent, work: _Work, state: ItemState) -> bool:
        """
        Whether a re-delivered item (its lease expired, or it was released) already has a status
        in *state* in this event: the same change failing or being skipped again after a crash
        is not a second failure or skip.
        """
        lease = work.lease
        if lease is None or lease.attempts <= 1:
            return False
        t, ref = work.key
        found = self.store.item_statuses(
            ItemQuery(
                self.connector_id,
                event_id=event.id,
                ref_contains=ref,
                item_type=t,
                state=state,
                limit=100,
            )
        )
        return any(s.ref == ref and s.action is work.action for s in found)

    def _pushed(
        self,
        work: _Work,
        outcome: Outcome | None,
        event: SyncEvent,
        now: datetime,
        tally: _Tally,
        new_ids: set[ItemKey],
    ) -> ItemRecord:
        t, ref = work.key
        action = work.action
        assert action is not None  # noqa: S101
        if outcome is None:
            tally.failed[t] += 1
            error = ItemError(
                ErrorKind.TRANSPORT, "the channel returned no outcome for this item", "no_outcome"
            )
            return ItemRecord(
                ItemStatus(
                    event.id,
                    self.connector_id,
                    ref,
                    t,
                    ItemState.ERROR,
                    now,
                    action=action,
                    errors=(error,),
                )
            )
        if not outcome.ok:
            tally.failed[t] += 1
            errors = outcome.errors or (
                ItemError(ErrorKind.CHANNEL, outcome.message or "rejected by the channel"),
            )
            return ItemRecord(
                ItemStatus(
                    event.id,
                    self.connector_id,
                    ref,
                    t,
                    ItemState.ERROR,
                    now,
                    action=action,
                    errors=errors,
                    warnings=outcome.warnings,
                    endpoint=outcome.endpoint,
                    request_id=outcome.request_id,
                    channel_id=outcome.channel_id,
                    channel_url=outcome.channel_url,
                    message=outcome.message or work.message,
                )
            )
        done = outcome.action or action
        old = work.state
        channel_id = outcome.channel_id or (None if old is None else old.channel_id)
        channel_url = outcome.channel_url or (None if old is None else old.channel_url)
        if done is ItemAction.SKIP:
            tally.skipped[t] += 1
        else:
            tally.synchronized[t] += 1
        status = ItemStatus(
            event.id,
            self.connector_id,
            ref,
            t,
            ItemState.DONE,
            now,
            action=done,
            warnings=outcome.warnings,
            endpoint=outcome.endpoint,
            request_id=outcome.request_id,
            channel_id=channel_id,
            channel_url=channel_url,
            message=outcome.message or work.message,
        )
        if outcome.endpoint is Endpoint.TEST:
            return ItemRecord(status)  # test runs never touch the sent state
        if done is ItemAction.SKIP and old is None:
            # The channel took nothing for this payload (a Takealot product whose variants are
            # the offers): remember its hash so an unchanged payload is not pushed again (R06).
            parents = work.item.parents if work.item is not None else ()
            skipped = SentState(t, ref, work.digest, None, None, parents, event.id, now, {})
            return ItemRecord(status, state=skipped)
        if done is ItemAction.SKIP:
            assert old is not None  # noqa: S101 - the branch above took the None case
            return ItemRecord(status, state=attrs.evolve(old, hash=work.digest, event_id=event.id))
        if done is ItemAction.DELETE:
            return ItemRecord(status, forget=True)
        memo = dict(outcome.memo) if outcome.memo else ({} if old is None else dict(old.memo))
        parents = (
            work.item.parents if work.item is not None else (() if old is None else old.parents)
        )
        digest = None if action is ItemAction.ARCHIVE else work.digest
        if (
            channel_id
            and (old is None or old.channel_id != channel_id)
            and t not in self.channel.capabilities.carried  # its readers: the carrier that sent it
        ):
            new_ids.add(work.key)
        state = SentState(t, ref, digest, channel_id, channel_url, parents, event.id, now, memo)
        return ItemRecord(status, state=state)

    # =============================================================================================
    # dry run
    # =============================================================================================

    def plan(self, *, limit: int = 10_000) -> Plan:
        """
        A dry run over the pending queue (up to *limit* entries): what would be created,
        updated, deleted, archived or skipped. No channel call, no lease, no write.
        """
        connector = self.connector
        event = self.store.active_event(connector.id)
        params = event.snapshot.params if event is not None else connector.params
        snapshot = ConfigSnapshot(params, self.channel.name)
        probe = SyncEvent(
            event.id if event else "plan",
            connector.id,
            Trigger.INCREMENTAL,
            EventStatus.IN_PROGRESS,
            self.clock.now(),
            snapshot,
        )
        planned: list[PlannedItem] = []
        total = self.queue.entries(connector.id, limit=1).total
        offset = 0
        page_size = min(self.options.batch_size, limit) or 1
        while offset < min(total, limit):
            page = self.queue.entries(connector.id, offset=offset, limit=page_size)
            if not page.items:
                break
            offset += len(page.items)
            leases = [
                Lease(
                    e.item_type,
                    e.ref,
                    e.kind,
                    e.version,
                    e.attempts,
                    e.force,
                    "plan",
                    self.clock.now(),
                )
                for e in page.items
            ]
            works = self._decide(probe, leases)
            planned.extend(_planned(w, self.channel.name) for w in works)
        return Plan(tuple(planned), total, total > limit)


def _scrubbed(record: ItemRecord) -> ItemRecord:
    """
    Rule 4 (defence in depth): the texts of a status come from the channel, and a channel may
    echo a credential in an error message; redact them before they are stored.
    """
    status = record.status
    errors = tuple(_scrub_error(e) for e in status.errors)
    warnings = tuple(_scrub_error(e) for e in status.warnings)
    message = redact(status.message) if status.message else status.message
    if errors == status.errors and warnings == status.warnings and message == status.message:
        return record
    clean = attrs.evolve(status, errors=errors, warnings=warnings, message=message)
    return attrs.evolve(record, status=clean)


def _scrub_error(error: ItemError) -> ItemError:
    message = redact(error.message)
    code = redact(error.code) if error.code else error.code
    field = redact(error.field) if error.field else error.field
    if (message, code, field) == (error.message, error.code, error.field):
        return error
    return attrs.evolve(error, message=message, code=code, field=field)


def _planned(work: _Work, channel: str) -> PlannedItem:
    t, ref = work.key
    d = work.decision
    if d == "push":
        carried = f" (carrying {len(work.carried)} items)" if work.carried else ""
        return PlannedItem(
            t,
            ref,
            work.action,
            "send",
            (work.message or f"{work.action.value if work.action else 'send'} in {channel}")
            + carried,
        )
    if d == "invalid":
        return PlannedItem(t, ref, None, "invalid", "fails validation", work.errors)
    if d == "skip":
        return PlannedItem(t, ref, ItemAction.SKIP, "skip", work.message or "skipped")
    if d in {"unchanged", "already"}:
        return PlannedItem(t, ref, None, "unchanged", "payload unchanged since the last push")
    if d in {"carried", "defer"}:
        return PlannedItem(t, ref, None, "carried", "delivered with its carrier item")
    return PlannedItem(t, ref, None, "ignore", "not exported and never sent")


def _parent_ref(work: _Work) -> str:
    if work.item is not None and work.item.parents:
        return work.item.parents[0]
    if work.state is not None and work.state.parents:
        return work.state.parents[0]
    return ""


def _reason_for(status: EventStatus, event: SyncEvent, store: StateStore) -> str:
    if status is EventStatus.PAUSED:
        return "paused"
    if status is EventStatus.COMPLETED:
        current = store.get_event(event.id)
        return "superseded" if current.superseded_by else "completed"
    return status.value


def _checked(changes: Iterable[Change]) -> Iterator[Change]:
    if isinstance(changes, (str, bytes, Change)):
        raise InvalidArgumentError("enqueue takes an iterable of Change values", field="changes")
    for change in changes:
        if not isinstance(change, Change):
            raise InvalidArgumentError(
                f"enqueue takes Change values, got {type(change).__name__}", field="changes"
            )
        yield change
