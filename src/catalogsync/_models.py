"""
The public models (DESIGN §1): what is read from the PIM, what is configured, what is recorded.

Rule 1: these are values. They are frozen attrs classes with slots; change them with
`attrs.evolve`. Their constructors check types and enum values and fail with
`InvalidArgumentError` naming the field, so a bad value is caught where it was made.

Rule 2: nothing here holds a credential. A `Connector` names its credentials with a reference
string; the secret itself lives in a channel's token provider as a `catalogsync.Secret`.

Rule 3: items are keyed by ``(type, ref)``. PIMs number categories, products and variants in
separate sequences, so ``ref`` alone is not unique across types.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
from attrs import field, frozen

from . import _validators as v
from ._errors import InvalidArgumentError
from ._secrets import Secret


__all__ = [
    "Change",
    "ChangeKind",
    "ConfigSnapshot",
    "Connector",
    "ConnectorParams",
    "Counts",
    "DeletionMode",
    "Endpoint",
    "ErrorKind",
    "EventStatus",
    "ExportStatus",
    "GeneralError",
    "Item",
    "ItemAction",
    "ItemError",
    "ItemKey",
    "ItemState",
    "ItemStatus",
    "ItemType",
    "Iteration",
    "ListingStatus",
    "Mode",
    "SyncEvent",
    "Trigger",
    "Visibility",
]


class ItemType(enum.StrEnum):
    """
    The three kinds of catalog entries.

    .. versionadded:: 0.1.0
    """

    CATEGORY = "category"
    PRODUCT = "product"
    VARIANT = "variant"


#: ``(type, ref)``: the identity of an item within a connector.
ItemKey = tuple[ItemType, str]


class Visibility(enum.StrEnum):
    """
    An item's status in the PIM (mapped onto channel statuses by rule R10).

    .. versionadded:: 0.1.0
    """

    VISIBLE = "visible"
    DRAFT = "draft"
    INVISIBLE = "invisible"


class ChangeKind(enum.StrEnum):
    """
    What the caller says happened to an item. The catalog is re-read when the change is processed,
    so ``UPSERT`` of an item the catalog no longer has is handled as a deletion.

    .. versionadded:: 0.1.0
    """

    UPSERT = "upsert"
    DELETE = "delete"


class ExportStatus(enum.StrEnum):
    """
    Which items a connector exports: every item, or only visible ones.

    .. versionadded:: 0.1.0
    """

    ALL = "all"
    ONLY_VISIBLE = "only_visible"


class Mode(enum.StrEnum):
    """
    ``TEST`` sends to the channel's test surface (rule R11); ``PRODUCTION`` to the live one.

    .. versionadded:: 0.1.0
    """

    TEST = "test"
    PRODUCTION = "production"


class DeletionMode(enum.StrEnum):
    """
    How an item removed from the PIM is removed from the channel (rule R15).

    .. versionadded:: 0.1.0
    """

    DELETE = "delete"
    ARCHIVE = "archive"


class ListingStatus(enum.StrEnum):
    """
    The channel-neutral status an item is exported with (rule R10); each channel maps it to its
    nearest equivalent.

    .. versionadded:: 0.1.0
    """

    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"


class Trigger(enum.StrEnum):
    """
    Why an event was started.

    .. versionadded:: 0.1.0
    """

    INCREMENTAL = "incremental"
    FORCE_REFRESH = "force_refresh"
    RETRY = "retry"


class EventStatus(enum.StrEnum):
    """
    The status of a synchronization event (DESIGN §1).

    * ``IN_PROGRESS``: running; pending counts fall and iterations appear as it goes.
    * ``COMPLETED``: finished, even with errors (see `SyncEvent.has_errors`).
    * ``ERROR``: could not start (credentials, connection); nothing was sent.
    * ``PAUSED``: the connector was deactivated; reactivating it resumes the same event.

    .. versionadded:: 0.1.0
    """

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ERROR = "error"
    PAUSED = "paused"

    @property
    def active(self) -> bool:
        """Whether the event can still do work (in progress or paused)."""
        return self in (EventStatus.IN_PROGRESS, EventStatus.PAUSED)


class ItemState(enum.StrEnum):
    """
    Where one item stands within one event.

    .. versionadded:: 0.1.0
    """

    PENDING = "pending"
    ERROR = "error"
    DONE = "done"


class ItemAction(enum.StrEnum):
    """
    What was (or would be) done to an item in the channel. ``SKIP`` means the item was looked at
    and deliberately not sent (the status message says why).

    .. versionadded:: 0.1.0
    """

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ARCHIVE = "archive"
    SKIP = "skip"


class ErrorKind(enum.StrEnum):
    """
    Where an item error came from.

    * ``VALIDATION``: found locally before anything was sent (rule R13).
    * ``CHANNEL``: the channel rejected the item.
    * ``TRANSPORT``: the item could not be delivered (after retries).

    .. versionadded:: 0.1.0
    """

    VALIDATION = "validation"
    CHANNEL = "channel"
    TRANSPORT = "transport"


class Endpoint(enum.StrEnum):
    """
    Which channel surface an item went to (rule R11).

    .. versionadded:: 0.1.0
    """

    TEST = "test"
    PRODUCTION = "production"


__c_item_type_impl = v.enum_converter(ItemType, "Item.type")


def _c_item_type(value: ItemType | str) -> ItemType:
    return __c_item_type_impl(value)


__c_item_visibility_impl = v.enum_converter(Visibility, "Item.visibility")


def _c_item_visibility(value: Visibility | str) -> Visibility:
    return __c_item_visibility_impl(value)


__c_item_fields_impl = v.str_mapping("Item.fields")


def _c_item_fields(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return __c_item_fields_impl(value)


__c_item_tags_impl = v.str_frozenset("Item.tags")


def _c_item_tags(value: Iterable[str]) -> frozenset[str]:
    return __c_item_tags_impl(value)


__c_item_updated_at_impl = v.optional_utc_datetime("Item.updated_at")


def _c_item_updated_at(value: datetime | None) -> datetime | None:
    return __c_item_updated_at_impl(value)


__c_change_type_impl = v.enum_converter(ItemType, "Change.type")


def _c_change_type(value: ItemType | str) -> ItemType:
    return __c_change_type_impl(value)


__c_change_kind_impl = v.enum_converter(ChangeKind, "Change.kind")


def _c_change_kind(value: ChangeKind | str) -> ChangeKind:
    return __c_change_kind_impl(value)


__c_connectorparams_export_status_impl = v.enum_converter(
    ExportStatus, "ConnectorParams.export_status"
)


def _c_connectorparams_export_status(value: ExportStatus | str) -> ExportStatus:
    return __c_connectorparams_export_status_impl(value)


__c_connectorparams_tags_impl = v.str_frozenset("ConnectorParams.tags")


def _c_connectorparams_tags(value: Iterable[str]) -> frozenset[str]:
    return __c_connectorparams_tags_impl(value)


__c_connectorparams_families_impl = v.str_frozenset("ConnectorParams.families")


def _c_connectorparams_families(value: Iterable[str]) -> frozenset[str]:
    return __c_connectorparams_families_impl(value)


__c_connectorparams_refs_impl = v.str_frozenset("ConnectorParams.refs")


def _c_connectorparams_refs(value: Iterable[str]) -> frozenset[str]:
    return __c_connectorparams_refs_impl(value)


__c_connectorparams_mode_impl = v.enum_converter(Mode, "ConnectorParams.mode")


def _c_connectorparams_mode(value: Mode | str) -> Mode:
    return __c_connectorparams_mode_impl(value)


__c_connectorparams_deletion_impl = v.enum_converter(DeletionMode, "ConnectorParams.deletion")


def _c_connectorparams_deletion(value: DeletionMode | str) -> DeletionMode:
    return __c_connectorparams_deletion_impl(value)


__c_connector_schedule_impl = v.optional_timedelta("Connector.schedule")


def _c_connector_schedule(value: timedelta | float | None) -> timedelta | None:
    return __c_connector_schedule_impl(value)


__c_configsnapshot_details_impl = v.str_mapping("ConfigSnapshot.details", values=str)


def _c_configsnapshot_details(value: Mapping[str, str]) -> Mapping[str, str]:
    return __c_configsnapshot_details_impl(value)


__c_generalerror_at_impl = v.optional_utc_datetime("GeneralError.at")


def _c_generalerror_at(value: datetime | None) -> datetime | None:
    return __c_generalerror_at_impl(value)


__c_iteration_started_at_impl = v.utc_datetime("Iteration.started_at")


def _c_iteration_started_at(value: datetime) -> datetime:
    return __c_iteration_started_at_impl(value)


__c_iteration_finished_at_impl = v.optional_utc_datetime("Iteration.finished_at")


def _c_iteration_finished_at(value: datetime | None) -> datetime | None:
    return __c_iteration_finished_at_impl(value)


__c_syncevent_trigger_impl = v.enum_converter(Trigger, "SyncEvent.trigger")


def _c_syncevent_trigger(value: Trigger | str) -> Trigger:
    return __c_syncevent_trigger_impl(value)


__c_syncevent_status_impl = v.enum_converter(EventStatus, "SyncEvent.status")


def _c_syncevent_status(value: EventStatus | str) -> EventStatus:
    return __c_syncevent_status_impl(value)


__c_syncevent_started_at_impl = v.utc_datetime("SyncEvent.started_at")


def _c_syncevent_started_at(value: datetime) -> datetime:
    return __c_syncevent_started_at_impl(value)


__c_syncevent_finished_at_impl = v.optional_utc_datetime("SyncEvent.finished_at")


def _c_syncevent_finished_at(value: datetime | None) -> datetime | None:
    return __c_syncevent_finished_at_impl(value)


__c_itemerror_kind_impl = v.enum_converter(ErrorKind, "ItemError.kind")


def _c_itemerror_kind(value: ErrorKind | str) -> ErrorKind:
    return __c_itemerror_kind_impl(value)


__c_itemstatus_type_impl = v.enum_converter(ItemType, "ItemStatus.type")


def _c_itemstatus_type(value: ItemType | str) -> ItemType:
    return __c_itemstatus_type_impl(value)


__c_itemstatus_state_impl = v.enum_converter(ItemState, "ItemStatus.state")


def _c_itemstatus_state(value: ItemState | str) -> ItemState:
    return __c_itemstatus_state_impl(value)


__c_itemstatus_updated_at_impl = v.utc_datetime("ItemStatus.updated_at")


def _c_itemstatus_updated_at(value: datetime) -> datetime:
    return __c_itemstatus_updated_at_impl(value)


__c_itemstatus_action_impl = v.optional_enum_converter(ItemAction, "ItemStatus.action")


def _c_itemstatus_action(value: ItemAction | str | None) -> ItemAction | None:
    return __c_itemstatus_action_impl(value)


__c_itemstatus_endpoint_impl = v.optional_enum_converter(Endpoint, "ItemStatus.endpoint")


def _c_itemstatus_endpoint(value: Endpoint | str | None) -> Endpoint | None:
    return __c_itemstatus_endpoint_impl(value)


def _parents_converter(value: Iterable[str]) -> tuple[str, ...]:
    return v.str_tuple("Item.parents")(value)


@frozen(cache_hash=False)
class Item:
    """
    One catalog entry as read from the PIM.

    ``parents`` holds the item's relations, typed by the item's own type:

    * a ``CATEGORY``: its parent category (zero or one ref);
    * a ``PRODUCT``: the categories it belongs to (any number of refs);
    * a ``VARIANT``: its product (exactly one ref).

    ``fields`` is JSON-like. A field may be localised by giving a mapping of language codes to
    values: ``{"title": {"en": "Trail shoe", "es": "Zapatilla"}}``. Treat it as read-only.

    Example:
        >>> from catalogsync import Item, ItemType
        >>> shoe = Item("P1", ItemType.PRODUCT, fields={"title": {"en": "Trail shoe"}},
        ...             parents=("C1",), tags={"summer"})
        >>> shoe.key
        (<ItemType.PRODUCT: 'product'>, 'P1')

    .. versionadded:: 0.1.0
    """

    ref: str = field(validator=v.non_empty_str)
    type: ItemType = field(converter=_c_item_type)
    visibility: Visibility = field(
        default=Visibility.VISIBLE,
        converter=_c_item_visibility,
        kw_only=True,
    )
    fields: Mapping[str, Any] = field(factory=dict, converter=_c_item_fields, kw_only=True)
    parents: tuple[str, ...] = field(default=(), converter=_parents_converter, kw_only=True)
    tags: frozenset[str] = field(default=frozenset(), converter=_c_item_tags, kw_only=True)
    family: str | None = field(default=None, validator=v.optional_str, kw_only=True)
    updated_at: datetime | None = field(default=None, converter=_c_item_updated_at, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.type is ItemType.VARIANT and len(self.parents) != 1:
            raise InvalidArgumentError(
                f"Item.parents of variant {self.ref!r} must name exactly one product, "
                f"got {self.parents!r}",
                field="Item.parents",
            )
        if self.type is ItemType.CATEGORY and len(self.parents) > 1:
            raise InvalidArgumentError(
                f"Item.parents of category {self.ref!r} may name at most one parent category",
                field="Item.parents",
            )

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``, the item's identity within a connector."""
        return (self.type, self.ref)


@frozen
class Change:
    """
    "Something about this item changed": what callers enqueue.

    Example:
        >>> from catalogsync import Change, ChangeKind, ItemType
        >>> Change("V7", ItemType.VARIANT)
        Change(ref='V7', type=<ItemType.VARIANT: 'variant'>, kind=<ChangeKind.UPSERT: 'upsert'>)
        >>> Change("P1", "product", ChangeKind.DELETE).kind
        <ChangeKind.DELETE: 'delete'>

    .. versionadded:: 0.1.0
    """

    ref: str = field(validator=v.non_empty_str)
    type: ItemType = field(converter=_c_change_type)
    kind: ChangeKind = field(default=ChangeKind.UPSERT, converter=_c_change_kind)

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.type, self.ref)


def _mapping_converter(value: Mapping[str, str]) -> Mapping[str, str]:
    return v.str_mapping("ConnectorParams.field_mapping", values=str)(value)


@frozen
class ConnectorParams:
    """
    The applied parameters of a connector, frozen into every event's configuration snapshot.

    Attributes:
        disable_deletions: Never delete or archive in the channel (rule R15, R12).
        overwrite_stock: Send stock quantities (channels only touch stock when this is set).
        include_empty_categories: Export categories that have no exportable product.
        language: The PIM language whose values are the channel's default-locale values.
        export_status: ``ALL`` items or ``ONLY_VISIBLE`` ones.
        map_status: Map PIM visibility onto channel status (rule R10); otherwise all active.
        tags: When non-empty, only items carrying one of these tags are exported (variants follow
            their product).
        families: When non-empty, only products of these families are exported.
        refs: When non-empty, only these product/category refs are exported (rule R12).
        mode: ``TEST`` or ``PRODUCTION`` (rule R11).
        deletion: ``DELETE`` or ``ARCHIVE`` removed items, where the channel supports both.
        field_mapping: Channel field name -> PIM field name, for channels that map fields.

    Example:
        >>> from catalogsync import ConnectorParams, ExportStatus
        >>> p = ConnectorParams(export_status="only_visible", tags={"launch"})
        >>> p.export_status is ExportStatus.ONLY_VISIBLE
        True

    .. versionadded:: 0.1.0
    """

    disable_deletions: bool = field(default=False, validator=v.instance_of(bool))
    overwrite_stock: bool = field(default=False, validator=v.instance_of(bool))
    include_empty_categories: bool = field(default=False, validator=v.instance_of(bool))
    language: str = field(default="en", validator=v.non_empty_str)
    export_status: ExportStatus = field(
        default=ExportStatus.ALL,
        converter=_c_connectorparams_export_status,
    )
    map_status: bool = field(default=False, validator=v.instance_of(bool))
    tags: frozenset[str] = field(default=frozenset(), converter=_c_connectorparams_tags)
    families: frozenset[str] = field(default=frozenset(), converter=_c_connectorparams_families)
    refs: frozenset[str] = field(default=frozenset(), converter=_c_connectorparams_refs)
    mode: Mode = field(default=Mode.PRODUCTION, converter=_c_connectorparams_mode)
    deletion: DeletionMode = field(
        default=DeletionMode.DELETE,
        converter=_c_connectorparams_deletion,
    )
    field_mapping: Mapping[str, str] = field(factory=dict, converter=_mapping_converter)

    def mapped(self, name: str) -> str:
        """Return the PIM field that feeds channel field *name* (itself when not mapped)."""
        return self.field_mapping.get(name, name)


def _credentials_check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, Secret):
        raise InvalidArgumentError(
            "Connector.credentials is a reference (a name such as 'vault:shop-1'), never the "
            "secret: give the Secret to the channel's token provider instead",
            field="Connector.credentials",
        )
    v.optional_str(inst, attribute, value)


@frozen
class Connector:
    """
    One configured link from the PIM to one channel account.

    Editing a connector (saving a new version) never starts a synchronization (rule R03).

    Attributes:
        id: Stable identifier, chosen by the caller.
        channel: The channel name (``"shopify"``, ``"amazon"``, ``"takealot"``, or your own).
        account: The store or seller account id, shown in the sync history.
        params: The applied parameters.
        credentials: A *reference* to the credentials (for example ``"env:SHOPIFY_TOKEN"``),
            never the secret itself.
        active: Inactive connectors pause their running event after the current batch (R08).
        schedule: Interval between scheduled runs, or ``None``.

    Example:
        >>> from catalogsync import Connector, ConnectorParams
        >>> c = Connector("shop-eu", "shopify", account="acme-eu.myshopify.com",
        ...               params=ConnectorParams(language="es"), schedule=3600)
        >>> c.schedule
        datetime.timedelta(seconds=3600)

    .. versionadded:: 0.1.0
    """

    id: str = field(validator=v.non_empty_str)
    channel: str = field(validator=v.non_empty_str)
    account: str = field(default="", validator=v.instance_of(str), kw_only=True)
    params: ConnectorParams = field(
        factory=ConnectorParams, validator=v.instance_of(ConnectorParams), kw_only=True
    )
    credentials: str | None = field(default=None, validator=_credentials_check, kw_only=True)
    active: bool = field(default=True, validator=v.instance_of(bool), kw_only=True)
    schedule: timedelta | None = field(default=None, converter=_c_connector_schedule, kw_only=True)


@frozen
class ConfigSnapshot:
    """
    The configuration an event runs with, frozen when it starts (rules R07, R09).

    Attributes:
        params: The connector parameters at the start of the event.
        channel: The channel name.
        api_version: The API version the channel adapter pins (``"2026-10"``), if any.
        served_version: The version the channel actually served, if it said.
        deprecation: The channel's deprecation warning, if any.
        details: Other non-secret facts about the channel (shop domain, marketplace...).

    .. versionadded:: 0.1.0
    """

    params: ConnectorParams = field(validator=v.instance_of(ConnectorParams))
    channel: str = field(validator=v.non_empty_str)
    api_version: str | None = field(default=None, validator=v.optional_str)
    served_version: str | None = field(default=None, validator=v.optional_str)
    deprecation: str | None = field(default=None, validator=v.optional_str)
    details: Mapping[str, str] = field(factory=dict, converter=_c_configsnapshot_details)


@frozen
class GeneralError:
    """
    An event-level problem that is not about one item (could not connect, auth revoked...).

    .. versionadded:: 0.1.0
    """

    message: str = field(validator=v.instance_of(str))
    code: str | None = field(default=None, validator=v.optional_str)
    at: datetime | None = field(default=None, converter=_c_generalerror_at)


@frozen
class Counts:
    """
    A count per item type.

    Example:
        >>> from catalogsync import Counts, ItemType
        >>> c = Counts(product=3, variant=12)
        >>> c[ItemType.VARIANT], c.total
        (12, 15)
        >>> (c + Counts(category=1)).total
        16

    .. versionadded:: 0.1.0
    """

    category: int = field(default=0, validator=v.non_negative_int)
    product: int = field(default=0, validator=v.non_negative_int)
    variant: int = field(default=0, validator=v.non_negative_int)

    @classmethod
    def of(cls, mapping: Mapping[ItemType, int]) -> Counts:
        """Build from a mapping of item type to count (missing types count 0)."""
        return cls(
            category=mapping.get(ItemType.CATEGORY, 0),
            product=mapping.get(ItemType.PRODUCT, 0),
            variant=mapping.get(ItemType.VARIANT, 0),
        )

    def __getitem__(self, item_type: ItemType) -> int:
        return int(getattr(self, ItemType(item_type).value))

    def __iter__(self) -> Iterator[tuple[ItemType, int]]:
        yield ItemType.CATEGORY, self.category
        yield ItemType.PRODUCT, self.product
        yield ItemType.VARIANT, self.variant

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(
            category=self.category + other.category,
            product=self.product + other.product,
            variant=self.variant + other.variant,
        )

    @property
    def total(self) -> int:
        """The sum over all types."""
        return self.category + self.product + self.variant

    def as_dict(self) -> dict[str, int]:
        """``{"category": n, "product": n, "variant": n}``."""
        return {"category": self.category, "product": self.product, "variant": self.variant}


@frozen
class Iteration:
    """
    One chunk of work inside an event, done by one worker: when it ran and what it did.

    Counts grow while the iteration runs (``finished_at`` is ``None`` until it closes), so a
    running event's history is visible as it goes.

    .. versionadded:: 0.1.0
    """

    id: str = field(validator=v.non_empty_str)
    event_id: str = field(validator=v.non_empty_str)
    number: int = field(validator=v.non_negative_int)
    worker: str = field(validator=v.instance_of(str))
    started_at: datetime = field(converter=_c_iteration_started_at)
    finished_at: datetime | None = field(default=None, converter=_c_iteration_finished_at)
    synchronized: Counts = field(factory=Counts, validator=v.instance_of(Counts))
    failed: Counts = field(factory=Counts, validator=v.instance_of(Counts))
    unchanged: Counts = field(factory=Counts, validator=v.instance_of(Counts))
    skipped: Counts = field(factory=Counts, validator=v.instance_of(Counts))


def _c_general_errors(value: Iterable[GeneralError]) -> tuple[GeneralError, ...]:
    return tuple(value)


def _c_iterations(value: Iterable[Iteration]) -> tuple[Iteration, ...]:
    return tuple(value)


@frozen
class SyncEvent:
    """
    One synchronization run of a connector, as shown in the activity register.

    Attributes:
        id: Time-ordered unique id.
        connector_id: The connector it belongs to.
        trigger: ``INCREMENTAL``, ``FORCE_REFRESH`` or ``RETRY``.
        status: See `EventStatus`.
        started_at: When it was opened.
        finished_at: When it completed or failed, else ``None``.
        snapshot: The configuration it runs with.
        pending: Items still queued per type (live while it runs, 0 when completed).
        errors: General (non-item) errors.
        iterations: Its iterations, oldest first.
        retry_of: For a ``RETRY`` event, the event whose failed items it retries.
        superseded_by: Set when a force refresh replaced this event's remaining work.

    .. versionadded:: 0.1.0
    """

    id: str = field(validator=v.non_empty_str)
    connector_id: str = field(validator=v.non_empty_str)
    trigger: Trigger = field(converter=_c_syncevent_trigger)
    status: EventStatus = field(converter=_c_syncevent_status)
    started_at: datetime = field(converter=_c_syncevent_started_at)
    snapshot: ConfigSnapshot = field(validator=v.instance_of(ConfigSnapshot))
    finished_at: datetime | None = field(
        default=None, converter=_c_syncevent_finished_at, kw_only=True
    )
    pending: Counts = field(factory=Counts, validator=v.instance_of(Counts), kw_only=True)
    errors: tuple[GeneralError, ...] = field(default=(), converter=_c_general_errors, kw_only=True)
    iterations: tuple[Iteration, ...] = field(default=(), converter=_c_iterations, kw_only=True)
    retry_of: str | None = field(default=None, validator=v.optional_str, kw_only=True)
    superseded_by: str | None = field(default=None, validator=v.optional_str, kw_only=True)

    @property
    def synchronized(self) -> Counts:
        """Items synchronized over all iterations, per type."""
        return _sum(i.synchronized for i in self.iterations)

    @property
    def failed(self) -> Counts:
        """Items failed over all iterations, per type."""
        return _sum(i.failed for i in self.iterations)

    @property
    def unchanged(self) -> Counts:
        """Items skipped as unchanged (rule R06) over all iterations, per type."""
        return _sum(i.unchanged for i in self.iterations)

    @property
    def skipped(self) -> Counts:
        """Items deliberately not sent (filtered, not accepted by the channel...), per type."""
        return _sum(i.skipped for i in self.iterations)

    @property
    def has_errors(self) -> bool:
        """Whether general errors were recorded or any item failed."""
        return bool(self.errors) or self.failed.total > 0


def _sum(counts: Iterator[Counts] | Any) -> Counts:
    total = Counts()
    for c in counts:
        total = total + c
    return total


@frozen
class ItemError:
    """
    One problem with one item.

    Attributes:
        kind: ``VALIDATION`` (found locally), ``CHANNEL`` (rejected) or ``TRANSPORT``.
        message: What is wrong, for a person.
        code: The channel's or validator's error code (``"90220"``, ``"INVALID_VARIANT"``).
        field: Where, as a path (``"variants[2].price"``), when known.

    Example:
        >>> from catalogsync import ItemError, ErrorKind
        >>> e = ItemError(ErrorKind.VALIDATION, "title is required", code="required", field="title")
        >>> e.kind, e.field
        (<ErrorKind.VALIDATION: 'validation'>, 'title')

    .. versionadded:: 0.1.0
    """

    kind: ErrorKind = attrs.field(converter=_c_itemerror_kind)
    message: str = attrs.field(validator=v.instance_of(str))
    code: str | None = attrs.field(default=None, validator=v.optional_str)
    field: str | None = attrs.field(default=None, validator=v.optional_str)


def _item_errors(value: Iterable[ItemError], name: str) -> tuple[ItemError, ...]:
    out = tuple(value)
    for e in out:
        if not isinstance(e, ItemError):
            raise InvalidArgumentError(
                f"ItemStatus.{name} must contain ItemError values, got {type(e).__name__}",
                field=f"ItemStatus.{name}",
            )
    return out


def _c_status_errors(value: Iterable[ItemError]) -> tuple[ItemError, ...]:
    return _item_errors(value, "errors")


def _c_status_warnings(value: Iterable[ItemError]) -> tuple[ItemError, ...]:
    return _item_errors(value, "warnings")


@frozen
class ItemStatus:
    """
    What happened to one item in one event.

    Attributes:
        event_id: The event.
        connector_id: The connector.
        ref: The PIM reference.
        type: The item type.
        state: ``PENDING``, ``ERROR`` or ``DONE``.
        action: What was done (``CREATE``, ``UPDATE``, ``DELETE``, ``ARCHIVE``, ``SKIP``).
        errors: Why it failed, every problem at once (rule R13).
        warnings: Non-fatal remarks from validation or the channel.
        endpoint: ``TEST`` or ``PRODUCTION`` (rule R11).
        request_id: The channel's request id, to quote to its support (``x-amzn-RequestId``).
        channel_id: The item's id in the channel (Shopify GID, ASIN/SKU, offer id).
        channel_url: A link to the item in the channel, when there is one.
        message: A note for a person (why it was skipped, which product carried it...).
        updated_at: When this status was recorded.

    .. versionadded:: 0.1.0
    """

    event_id: str = field(validator=v.non_empty_str)
    connector_id: str = field(validator=v.non_empty_str)
    ref: str = field(validator=v.non_empty_str)
    type: ItemType = field(converter=_c_itemstatus_type)
    state: ItemState = field(converter=_c_itemstatus_state)
    updated_at: datetime = field(converter=_c_itemstatus_updated_at)
    action: ItemAction | None = field(
        default=None,
        converter=_c_itemstatus_action,
        kw_only=True,
    )
    errors: tuple[ItemError, ...] = field(default=(), converter=_c_status_errors, kw_only=True)
    warnings: tuple[ItemError, ...] = field(default=(), converter=_c_status_warnings, kw_only=True)
    endpoint: Endpoint | None = field(
        default=None,
        converter=_c_itemstatus_endpoint,
        kw_only=True,
    )
    request_id: str | None = field(default=None, validator=v.optional_str, kw_only=True)
    channel_id: str | None = field(default=None, validator=v.optional_str, kw_only=True)
    channel_url: str | None = field(default=None, validator=v.optional_str, kw_only=True)
    message: str | None = field(default=None, validator=v.optional_str, kw_only=True)

    @property
    def key(self) -> ItemKey:
        """``(type, ref)``."""
        return (self.type, self.ref)
