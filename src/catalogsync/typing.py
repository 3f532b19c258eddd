"""
Extension points and the values that cross them.

catalogsync is composed from four parts, each a `typing.Protocol` you can implement yourself:

* `CatalogSource`: reads current items from your PIM.
* `Channel`: renders, validates and pushes items to one marketplace.
* `QueueBackend`: holds pending changes per connector, coalesced, leased, fenced.
* `StateStore`: connectors, events, iterations, item statuses, last-sent hashes and channel ids.

The contracts below are normative: the conformance suites in `catalogsync.testing` check them,
and the synchronizer relies on nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from attrs import field, frozen

from . import _validators as v
from ._errors import InvalidArgumentError
from ._models import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    Counts,
    Endpoint,
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
    SyncEvent,
    Visibility,
)


__all__ = [
    "Capabilities",
    "CatalogSource",
    "Channel",
    "ConnectionInfo",
    "EventQuery",
    "HistoryQuery",
    "HistoryRecord",
    "ItemQuery",
    "ItemRecord",
    "Lease",
    "Operation",
    "Outcome",
    "Page",
    "Payload",
    "QueueBackend",
    "QueueEntry",
    "RenderContext",
    "SentState",
    "StateStore",
    "StatusCounts",
]

T = TypeVar("T")

#: A rendered channel payload: JSON-like data, hashed by `catalogsync.ChangeHasher`.
Payload = Mapping[str, Any]


# =================================================================================================
# Catalog
# =================================================================================================


@runtime_checkable
class CatalogSource(Protocol):
    """
    **Protocol:** how catalogsync reads current item data from your PIM.

    Implementations must be safe to call from several threads. `catalogsync.MemoryCatalog` is the
    reference implementation.

    .. versionadded:: 0.1.0
    """

    def get(self, item_type: ItemType, refs: Collection[str]) -> Mapping[str, Item]:
        """
        Return the current items of *item_type* among *refs*.

        A ref that is absent from the result no longer exists (it is handled as a deletion).
        Only live items may be returned: a soft-deleted record must be left out.
        """
        ...

    def children(
        self, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, Sequence[str]]:
        """
        Return, for each parent ref, the refs of items of *child_type* that name it in ``parents``.

        ``children(VARIANT, ["P1"])`` lists the variants of product P1;
        ``children(PRODUCT, ["C1"])`` the products in category C1;
        ``children(CATEGORY, ["C1"])`` its subcategories. Order is the catalog's display order.
        """
        ...

    def scan(self, item_type: ItemType, *, batch_size: int = 1000) -> Iterator[Sequence[Item]]:
        """Yield every item of *item_type* in batches (used by force refresh; must stream)."""
        ...


# =================================================================================================
# Channel
# =================================================================================================


def _c_types(value: Iterable[ItemType]) -> frozenset[ItemType]:
    return frozenset(ItemType(t) for t in value)


def _c_pairs(value: Iterable[tuple[ItemType, ItemType]]) -> frozenset[tuple[ItemType, ItemType]]:
    return frozenset((ItemType(a), ItemType(b)) for a, b in value)


def _c_actions(value: Iterable[ItemAction]) -> frozenset[ItemAction]:
    return frozenset(ItemAction(a) for a in value)


@frozen
class Capabilities:
    """
    What a channel accepts and how its payloads depend on one another.

    Attributes:
        accepts: Item types the channel takes. Items of other types are recorded as ``SKIP``
            with a message saying the channel does not accept them (never failed silently).
        reads: ``(reader, source)`` pairs: the payload of a *reader* item includes data of its
            related *source* items. ``(PRODUCT, VARIANT)``: a product's payload lists its
            variants; ``(PRODUCT, CATEGORY)``: it names its categories; ``(VARIANT, PRODUCT)``:
            a variant's payload uses its product's data. A change to a source re-renders its
            readers (rule R01), and `RenderContext` carries exactly these related items.
        carried: ``{carried type: carrier type}``. ``{VARIANT: PRODUCT}`` means variants are
            delivered inside their product's operation (Shopify's ``productSet``): the product's
            `Operation` lists the changed variants in ``carried`` and the channel returns an
            `Outcome` for each. Requires ``(carrier, carried)`` in *reads*.
        reads_ids: The pairs of *reads* whose reader payload includes the source's *channel id*
            (Shopify: a product lists its collections' GIDs, ``(PRODUCT, CATEGORY)``). When a
            source gets a new channel id, its readers are rendered again.
        removals: The removal actions the channel supports (``DELETE``, ``ARCHIVE``). When the
            connector asks for one the channel lacks, the other is used and the status says so.
        test_surface: Whether ``mode=TEST`` sends anything (``False``: validation only, R11).

    .. versionadded:: 0.1.0
    """

    accepts: frozenset[ItemType] = field(default=frozenset(ItemType), converter=_c_types)
    reads: frozenset[tuple[ItemType, ItemType]] = field(default=frozenset(), converter=_c_pairs)
    carried: Mapping[ItemType, ItemType] = field(factory=dict)
    reads_ids: frozenset[tuple[ItemType, ItemType]] = field(default=frozenset(), converter=_c_pairs)
    removals: frozenset[ItemAction] = field(
        default=frozenset({ItemAction.DELETE, ItemAction.ARCHIVE}), converter=_c_actions
    )
    test_surface: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.reads_ids <= self.reads:
            msg = "every reads_ids pair must also be in reads"
            raise InvalidArgumentError(msg, field="Capabilities.reads_ids")
        for carried, carrier in self.carried.items():
            if (carrier, carried) not in self.reads:
                msg = f"carried {carried} -> {carrier} requires ({carrier}, {carried}) in reads"
                raise InvalidArgumentError(msg, field="Capabilities.carried")

    def reads_from(self, reader: ItemType, source: ItemType) -> bool:
        """Whether *reader* payloads include data of related *source* items."""
        return (reader, source) in self.reads


@frozen
class ConnectionInfo:
    """
    What `Channel.check_connection` learned; it goes into the event's configuration snapshot.

    Attributes:
        api_version: The API version the adapter pins, if the channel is versioned.
        served_version: The version the channel says it served (Shopify falls forward silently).
        deprecation: A deprecation warning to surface on the event, if any.
        endpoint: ``TEST`` or ``PRODUCTION``: where items will go.
        details: Other non-secret facts (shop domain, marketplace id, seller id).

    .. versionadded:: 0.1.0
    """

    api_version: str | None = None
    served_version: str | None = None
    deprecation: str | None = None
    endpoint: Endpoint = Endpoint.PRODUCTION
    details: Mapping[str, str] = field(factory=dict)


@frozen
class RenderContext:
    """
    Everything a `Channel.render` call may read besides the item itself.

    Built by the synchronizer per batch; it holds only *exportable* related items (filters,
    visibility and deletions already applied), as declared by `Capabilities.reads`.

    Attributes:
        params: The parameters of the event's configuration snapshot.
        related: Related items by ``(type, ref)``.
        children: For each ``(type, ref)``, the exportable child refs in catalog order
            (variants of a product, when products read variants).
        channel_ids: Channel ids already stored for related items of the types the channel
            declares in `Capabilities.reads_ids` (collection GIDs...).

    .. versionadded:: 0.1.0
    """

    params: ConnectorParams
    related: Mapping[ItemKey, Item] = field(factory=dict)
    children: Mapping[ItemKey, tuple[str, ...]] = field(factory=dict)
    channel_ids: Mapping[ItemKey, str] = field(factory=dict)

    def product_of(self, variant: Item) -> Item | None:
        """The variant's product, when variants read products (else ``None``)."""
        return self.related.get((ItemType.PRODUCT, variant.parents[0])) if variant.parents else None

    def variants_of(self, product: Item) -> tuple[Item, ...]:
        """The product's exportable variants in catalog order, when products read variants."""
        refs = self.children.get((ItemType.PRODUCT, product.ref), ())
        related = self.related
        return tuple(
            related[(ItemType.VARIANT, r)] for r in refs if (ItemType.VARIANT, r) in related
        )

    def categories_of(self, product: Item) -> tuple[Item, ...]:
        """The product's exportable categories, when products read categories."""
        related = self.related
        return tuple(
            related[(ItemType.CATEGORY, r)]
            for r in product.parents
            if (ItemType.CATEGORY, r) in related
        )

    def channel_id(self, item_type: ItemType, ref: str) -> str | None:
        """The stored channel id of a related item, if it was synchronized before."""
        return self.channel_ids.get((item_type, ref))

    def status(self, item: Item) -> ListingStatus:
        """
        The channel-neutral status to export *item* with (rule R10).

        Without status mapping everything is ``ACTIVE``; with it, visible -> active,
        draft -> draft, invisible -> archived.
        """
        if not self.params.map_status:
            return ListingStatus.ACTIVE
        return _STATUS_MAP[item.visibility]

    def value(self, item: Item, name: str, default: Any = None) -> Any:
        """
        The value of channel field *name* for *item*: the mapped PIM field, localised to the
        connector's language when the PIM value is a ``{language: value}`` mapping.
        """
        raw = item.fields.get(self.params.mapped(name), default)
        if isinstance(raw, Mapping) and _looks_localised(raw):
            return raw.get(self.params.language, default)
        return raw

    def translations(self, item: Item, name: str) -> Mapping[str, Any]:
        """All non-default-language values of channel field *name* (``{}`` if not localised)."""
        raw = item.fields.get(self.params.mapped(name))
        if isinstance(raw, Mapping) and _looks_localised(raw):
            return {k: val for k, val in raw.items() if k != self.params.language}
        return {}


_STATUS_MAP: Mapping[Visibility, ListingStatus] = {
    Visibility.VISIBLE: ListingStatus.ACTIVE,
    Visibility.DRAFT: ListingStatus.DRAFT,
    Visibility.INVISIBLE: ListingStatus.ARCHIVED,
}


def _looks_localised(value: Mapping[Any, Any]) -> bool:
    """
    Whether *value* is a ``{language: value}`` mapping: every key a BCP 47-style language tag
    (``en``, ``es``, ``pt-BR``, ``zh_Hant``, ``es-419``). A lower-case primary subtag is required,
    so option maps such as ``{"Size": "M", "Color": "Red"}`` are not mistaken for translations.
    """
    if not value:
        return False
    tags = _TAG_CACHE
    for key in value:
        known = tags.get(key)
        if known is None:
            known = isinstance(key, str) and _LANGUAGE_TAG.fullmatch(key) is not None
            if len(tags) < _TAG_CACHE_SIZE:
                tags[key] = known
        if not known:
            return False
    return True


_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:[-_](?:[A-Za-z]{2}|[A-Za-z]{4}|\d{3}))?")
# Field keys repeat across a catalog ("en", "es", "Size"...): remember the verdict per key.
_TAG_CACHE: dict[Any, bool] = {}
_TAG_CACHE_SIZE = 10_000


@frozen
class Operation:
    """
    One thing to do in the channel, handed to `Channel.push`.

    Attributes:
        item_type: The item type.
        ref: The PIM reference.
        action: ``CREATE`` (no channel id stored), ``UPDATE``, ``DELETE`` or ``ARCHIVE``.
            After a crash an item may be re-created: channels must upsert by a stable key.
        payload: The rendered payload (``None`` for ``DELETE``).
        item: The current item (``None`` when it was deleted from the PIM).
        channel_id: The channel id stored from an earlier push, if any.
        digest: The payload's hash (channels may use it as an idempotency key).
        memo: What the channel asked to remember after the last successful push of this item
            (`Outcome.memo`), e.g. variant and inventory-item ids, a content digest.
        carried: Operations delivered inside this one (see `Capabilities.carried`).

    .. versionadded:: 0.1.0
    """

    item_type: ItemType
    ref: str
    action: ItemAction
    payload: Payload | None = None
    item: Item | None = None
    channel_id: str | None = None
    digest: str | None = None
    memo: Mapping[str, str] = field(factory=dict)
    carried: tuple[Operation, ...] = ()

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.item_type, self.ref)


@frozen
class Outcome:
    """
    What the channel did with one operation (or one carried operation).

    Attributes:
        item_type: The item type.
        ref: The PIM reference.
        ok: Whether the channel accepted it.
        action: What was actually done (an upsert that found the item reports ``UPDATE``).
        channel_id: The item's channel id after the operation (``None`` after a deletion).
        channel_url: A link to the item in the channel.
        request_id: The channel's request id.
        endpoint: ``TEST`` or ``PRODUCTION``.
        errors: Why it failed (``CHANNEL`` or ``TRANSPORT`` errors), empty when ok.
        warnings: Non-fatal remarks (Amazon ``WARNING`` issues...).
        message: A note for a person.
        memo: Small string facts the channel wants back on the item's next `Operation`
            (stored in `SentState.memo`; never a secret).

    .. versionadded:: 0.1.0
    """

    item_type: ItemType
    ref: str
    ok: bool
    action: ItemAction | None = None
    channel_id: str | None = None
    channel_url: str | None = None
    request_id: str | None = None
    endpoint: Endpoint = Endpoint.PRODUCTION
    errors: tuple[ItemError, ...] = ()
    warnings: tuple[ItemError, ...] = ()
    message: str | None = None
    memo: Mapping[str, str] = field(factory=dict)

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.item_type, self.ref)


@runtime_checkable
class Channel(Protocol):
    """
    **Protocol:** one marketplace adapter.

    ``render`` and ``validate`` are pure functions of their arguments (no I/O, no clock), so the
    synchronizer can hash, plan and dry-run without touching the network. ``push`` is the only
    I/O; it paces itself, retries transient failures, and reports one `Outcome` per operation
    and per carried operation instead of raising for item-level failures.

    .. versionadded:: 0.1.0
    """

    name: str
    capabilities: Capabilities

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        """
        Check credentials and reachability cheaply before an event starts.

        Raises:
            ChannelAuthError: credentials were rejected.
            ChannelError: the channel could not be reached or answered garbage.
        """
        ...

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        """
        Return the payload that would be sent for *item* (what rule R06 hashes).

        Raises:
            InvalidItemError: the item cannot be rendered at all (the errors go on the item).
        """
        ...

    def validate(self, item: Item, payload: Payload, ctx: RenderContext) -> Sequence[ItemError]:
        """Return *every* local problem of a rendered payload at once (rule R13); empty if valid."""
        ...

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Send *operations*; return an `Outcome` for each operation and each carried one."""
        ...


# =================================================================================================
# Queue
# =================================================================================================


@frozen
class QueueEntry:
    """
    A pending change as the queue holds it (one per ``(connector, type, ref)``).

    Attributes:
        item_type: The item type.
        ref: The PIM reference.
        kind: The newest change kind.
        version: Bumped by every enqueue of the same key (coalescing).
        attempts: How many times it was leased.
        force: Enqueued by a force refresh: hashes are ignored and nothing is deleted.
        enqueued_at: When it first entered the queue.
        leased_until: The visibility deadline while leased, else ``None``.

    .. versionadded:: 0.1.0
    """

    item_type: ItemType
    ref: str
    kind: ChangeKind
    version: int
    attempts: int
    force: bool
    enqueued_at: datetime
    leased_until: datetime | None = None

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.item_type, self.ref)


@frozen
class Lease:
    """
    A leased queue entry: proof that *owner* may process it until *deadline*.

    .. versionadded:: 0.1.0
    """

    item_type: ItemType
    ref: str
    kind: ChangeKind
    version: int
    attempts: int
    force: bool
    owner: str
    deadline: datetime

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.item_type, self.ref)


@runtime_checkable
class QueueBackend(Protocol):
    """
    **Protocol:** the pending changes of every connector.

    Semantics every implementation guarantees (the conformance suite checks each):

    * **Coalescing:** at most one entry per ``(connector, type, ref)``; enqueueing an existing
      key bumps its ``version`` and the newest change wins (kind and force flag). An entry keeps
      its place in line when it is re-enqueued.
    * **Leases:** `lease` hands out up to *limit* visible entries, oldest first, marks them with
      the owner and a visibility deadline ``now + ttl`` and increments ``attempts``. An entry
      whose deadline passed is visible again (at-least-once delivery). Nothing holds a
      transaction open while the caller works.
    * **Fenced acks:** `ack` removes an entry only if it is still leased by the same owner, the
      lease has not expired, and its version equals the leased version. A newer version (enqueued
      while leased) survives and becomes visible at once; an expired or stolen lease acks nothing.
    * **Release:** `release` returns leased entries (same owner) to the line after *delay*.
    * **Counts:** `counts` reports entries per item type, leased ones included, and always equals
      a recount.
    * **Replace-all:** `replace_all` atomically swaps a connector's whole queue for new entries;
      readers see the old set or the new one, and acks of leases from the old set remove nothing.
    * **Time** comes from the backend's injected clock.

    .. versionadded:: 0.1.0
    """

    def enqueue(self, connector_id: str, changes: Iterable[Change]) -> int:
        """Add or coalesce *changes*; return how many were written. Streams large iterables."""
        ...

    def lease(self, connector_id: str, *, owner: str, limit: int, ttl: timedelta) -> list[Lease]:
        """Lease up to *limit* visible entries for *owner* until ``now + ttl``."""
        ...

    def ack(self, connector_id: str, leases: Sequence[Lease]) -> int:
        """Remove the entries of *leases* that are still validly held; return how many."""
        ...

    def release(
        self, connector_id: str, leases: Sequence[Lease], *, delay: timedelta = timedelta(0)
    ) -> int:
        """Make the entries of *leases* (same owner) visible again after *delay*."""
        ...

    def extend(self, connector_id: str, leases: Sequence[Lease], *, ttl: timedelta) -> int:
        """Push the deadline of validly held *leases* to ``now + ttl`` (a heartbeat)."""
        ...

    def counts(self, connector_id: str) -> Counts:
        """Entries per item type, leased ones included."""
        ...

    def replace_all(
        self, connector_id: str, changes: Iterable[Change], *, force: bool = True
    ) -> int:
        """Atomically replace the connector's queue with *changes*; return how many."""
        ...

    def entries(
        self,
        connector_id: str,
        *,
        item_type: ItemType | None = None,
        ref_contains: str | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[QueueEntry]:
        """Peek at pending entries in line order, filtered, without leasing them."""
        ...


# =================================================================================================
# State store
# =================================================================================================


@frozen
class Page(Generic[T]):
    """
    One page of a query result.

    .. versionadded:: 0.1.0
    """

    items: tuple[T, ...]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        """Whether another page follows."""
        return self.offset + len(self.items) < self.total

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@frozen
class SentState:
    """
    What catalogsync last delivered for an item to a connector's channel.

    Attributes:
        item_type: The item type.
        ref: The PIM reference.
        hash: The hash of the payload the channel accepted (rule R06), or ``None``.
        channel_id: The item's id in the channel.
        channel_url: A link to it.
        parents: The item's relations when it was sent (a deleted variant still knows its product).
        event_id: The event that sent it.
        updated_at: When it was recorded.
        memo: The channel's `Outcome.memo` from that push.

    .. versionadded:: 0.1.0
    """

    item_type: ItemType
    ref: str
    hash: str | None
    channel_id: str | None
    channel_url: str | None
    parents: tuple[str, ...]
    event_id: str
    updated_at: datetime
    memo: Mapping[str, str] = field(factory=dict)

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.item_type, self.ref)


@frozen
class ItemRecord:
    """
    One item's result within a batch commit.

    Attributes:
        status: The item's status in the event (upserted by ``(event, type, ref)``).
        state: The new sent state, or ``None`` to leave it unchanged.
        forget: Remove the sent state (the item was deleted from the channel).

    .. versionadded:: 0.1.0
    """

    status: ItemStatus
    state: SentState | None = None
    forget: bool = False


__c_itemquery_state_impl = v.optional_enum_converter(ItemState, "ItemQuery.state")


def _c_itemquery_state(value: ItemState | str | None) -> ItemState | None:
    return __c_itemquery_state_impl(value)


__c_itemquery_item_type_impl = v.optional_enum_converter(ItemType, "ItemQuery.item_type")


def _c_itemquery_item_type(value: ItemType | str | None) -> ItemType | None:
    return __c_itemquery_item_type_impl(value)


__c_itemquery_since_impl = v.optional_utc_datetime("ItemQuery.since")


def _c_itemquery_since(value: datetime | None) -> datetime | None:
    return __c_itemquery_since_impl(value)


__c_eventquery_status_impl = v.optional_enum_converter(EventStatus, "EventQuery.status")


def _c_eventquery_status(value: EventStatus | str | None) -> EventStatus | None:
    return __c_eventquery_status_impl(value)


__c_eventquery_since_impl = v.optional_utc_datetime("EventQuery.since")


def _c_eventquery_since(value: datetime | None) -> datetime | None:
    return __c_eventquery_since_impl(value)


__c_eventquery_until_impl = v.optional_utc_datetime("EventQuery.until")


def _c_eventquery_until(value: datetime | None) -> datetime | None:
    return __c_eventquery_until_impl(value)


__c_historyquery_since_impl = v.optional_utc_datetime("HistoryQuery.since")


def _c_historyquery_since(value: datetime | None) -> datetime | None:
    return __c_historyquery_since_impl(value)


__c_historyquery_until_impl = v.optional_utc_datetime("HistoryQuery.until")


def _c_historyquery_until(value: datetime | None) -> datetime | None:
    return __c_historyquery_until_impl(value)


__c_historyquery_state_impl = v.optional_enum_converter(ItemState, "HistoryQuery.state")


def _c_historyquery_state(value: ItemState | str | None) -> ItemState | None:
    return __c_historyquery_state_impl(value)


@frozen
class ItemQuery:
    """
    A filter over item statuses (the "item synchronization status" tab).

    Attributes:
        connector_id: Required.
        event_id: One event; ``None`` means every event of the connector.
        ref_contains: Substring of the reference (matched literally: ``%`` and ``_`` are text).
        state: ``PENDING``, ``ERROR`` or ``DONE``; ``None`` for all.
        item_type: One type; ``None`` for all.
        since: Only statuses recorded at or after this time.
        offset: Pagination offset.
        limit: Page size (25 by default).

    .. versionadded:: 0.1.0
    """

    connector_id: str = field(validator=v.non_empty_str)
    event_id: str | None = field(default=None, validator=v.optional_str)
    ref_contains: str | None = field(default=None, validator=v.optional_str)
    state: ItemState | None = field(default=None, converter=_c_itemquery_state)
    item_type: ItemType | None = field(default=None, converter=_c_itemquery_item_type)
    since: datetime | None = field(default=None, converter=_c_itemquery_since)
    offset: int = field(default=0, validator=v.non_negative_int)
    limit: int = field(default=25, validator=v.non_negative_int)


@frozen
class EventQuery:
    """
    A filter over events, newest first.

    .. versionadded:: 0.1.0
    """

    connector_id: str | None = field(default=None, validator=v.optional_str)
    status: EventStatus | None = field(default=None, converter=_c_eventquery_status)
    since: datetime | None = field(default=None, converter=_c_eventquery_since)
    until: datetime | None = field(default=None, converter=_c_eventquery_until)
    offset: int = field(default=0, validator=v.non_negative_int)
    limit: int = field(default=25, validator=v.non_negative_int)


@frozen
class HistoryQuery:
    """
    A filter over the sync history across connectors and platforms.

    Attributes:
        account: Store or account id (exact match).
        platform: Channel name (``"takealot"``).
        since: Start of the time range (inclusive).
        until: End of the time range (exclusive).
        state: ``ERROR`` for failures, ``DONE`` for successes, ``None`` for both.
        ref_contains: Substring of the PIM reference.
        offset: Pagination offset.
        limit: Page size.

    .. versionadded:: 0.1.0
    """

    account: str | None = field(default=None, validator=v.optional_str)
    platform: str | None = field(default=None, validator=v.optional_str)
    since: datetime | None = field(default=None, converter=_c_historyquery_since)
    until: datetime | None = field(default=None, converter=_c_historyquery_until)
    state: ItemState | None = field(default=None, converter=_c_historyquery_state)
    ref_contains: str | None = field(default=None, validator=v.optional_str)
    offset: int = field(default=0, validator=v.non_negative_int)
    limit: int = field(default=25, validator=v.non_negative_int)


@frozen
class HistoryRecord:
    """
    One line of the cross-connector sync history.

    .. versionadded:: 0.1.0
    """

    status: ItemStatus
    platform: str
    account: str


@frozen
class StatusCounts:
    """
    The overview of an event's item statuses: counts per state and type.

    .. versionadded:: 0.1.0
    """

    done: Counts = field(factory=Counts)
    error: Counts = field(factory=Counts)


@runtime_checkable
class StateStore(Protocol):
    """
    **Protocol:** connectors, events, iterations, item statuses and sent states.

    Guarantees every implementation gives (the conformance suite checks each):

    * `open_event` is atomic: at most one *active* (in progress or paused) event per connector.
    * `transition` is a compare-and-set on the event status.
    * `commit` writes a batch of item records and the iteration's count deltas atomically.
    * Queries use parameters only; ``ref_contains`` matches literally.
    * Every timestamp is stored and returned as aware UTC.

    .. versionadded:: 0.1.0
    """

    # connectors -----------------------------------------------------------------------------
    def save_connector(self, connector: Connector) -> None:
        """Insert or replace a connector (never starts a synchronization, rule R03)."""
        ...

    def get_connector(self, connector_id: str) -> Connector:
        """Return a connector. Raises `NotFoundError`."""
        ...

    def list_connectors(self) -> Sequence[Connector]:
        """Return every connector, by id."""
        ...

    # events ---------------------------------------------------------------------------------
    def open_event(self, event: SyncEvent) -> tuple[SyncEvent, bool]:
        """
        Insert *event* unless the connector already has an active event.

        Returns ``(the active event, whether it was created)``. Events with status ``ERROR``
        are inserted as they are (they are never active).
        """
        ...

    def get_event(self, event_id: str) -> SyncEvent:
        """Return an event with its iterations. Raises `NotFoundError`."""
        ...

    def active_event(self, connector_id: str) -> SyncEvent | None:
        """Return the connector's in-progress or paused event, if any."""
        ...

    def event_status(self, event_id: str) -> EventStatus:
        """
        Return an event's current status without loading it (workers call this per batch).

        Raises `NotFoundError`.
        """
        ...

    def events(self, query: EventQuery) -> Page[SyncEvent]:
        """Return events, newest first (iterations included)."""
        ...

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
        """
        Set the event's status if it is currently one of *expected*; return whether it was.

        With *finished*, ``finished_at`` is set to *at* (else cleared, for a resume).
        """
        ...

    def add_errors(self, event_id: str, errors: Sequence[GeneralError]) -> None:
        """Append general errors to an event."""
        ...

    def set_pending(self, event_id: str, pending: Counts) -> None:
        """Record the latest pending counts of an event (shown while it runs)."""
        ...

    # iterations and batches -------------------------------------------------------------------
    def start_iteration(self, event_id: str, *, worker: str, at: datetime) -> Iteration:
        """Open a new iteration of *event_id* numbered after the existing ones."""
        ...

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
        """Atomically upsert *records* and add the count deltas to *iteration*."""
        ...

    def finish_iteration(self, iteration: Iteration, *, at: datetime) -> None:
        """Close an iteration."""
        ...

    def sent_states(
        self, connector_id: str, item_type: ItemType, refs: Collection[str]
    ) -> Mapping[str, SentState]:
        """Return the sent states of *refs* (absent: never delivered or forgotten)."""
        ...

    def sent_children(
        self, connector_id: str, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, tuple[str, ...]]:
        """Return, per parent ref, the refs of delivered *child_type* items that name it."""
        ...

    # queries --------------------------------------------------------------------------------
    def item_statuses(self, query: ItemQuery) -> Page[ItemStatus]:
        """Return item statuses, most recent first."""
        ...

    def status_counts(self, event_id: str) -> StatusCounts:
        """Return the per-state, per-type overview of an event's statuses."""
        ...

    def failed_keys(self, event_id: str) -> Sequence[ItemKey]:
        """Return the ``(type, ref)`` of every item whose status in *event_id* is ``ERROR``."""
        ...

    def history(self, query: HistoryQuery) -> Page[HistoryRecord]:
        """Return item statuses across connectors, newest first, with platform and account."""
        ...
