"""
catalogsync keeps sales channels in step with a PIM catalog.

It pushes only what changed, paces itself to each channel's rate limits, survives crashes without
losing or duplicating items, and keeps an activity register a person can read.
"""

from ._catalog import MemoryCatalog
from ._clock import Clock, SystemClock
from ._errors import (
    BackendError,
    CatalogSyncError,
    ChannelAuthError,
    ChannelError,
    ChannelProtocolError,
    ChannelUnavailableError,
    ConflictError,
    InvalidArgumentError,
    InvalidItemError,
    MissingDependencyError,
    NotFoundError,
    RateLimitedError,
    SchemaVersionError,
    UnhashablePayloadError,
)
from ._hashing import ChangeHasher, UnknownHashSchemeError
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
    ExportStatus,
    GeneralError,
    Item,
    ItemAction,
    ItemError,
    ItemState,
    ItemStatus,
    ItemType,
    Iteration,
    ListingStatus,
    Mode,
    SyncEvent,
    Trigger,
    Visibility,
)
from ._register import ActivityRegister, Overview
from ._secrets import RedactingFilter, Secret, redact
from ._sync import Plan, PlannedItem, Progress, RunResult, Synchronizer, SyncOptions
from ._worker import Worker
from .backends import MemoryQueue, MemoryStore, SQLiteQueue, SQLiteStore
from .typing import CatalogSource, Channel, QueueBackend, StateStore


__all__ = [
    "ActivityRegister",
    "BackendError",
    "CatalogSource",
    "CatalogSyncError",
    "Change",
    "ChangeHasher",
    "ChangeKind",
    "Channel",
    "ChannelAuthError",
    "ChannelError",
    "ChannelProtocolError",
    "ChannelUnavailableError",
    "Clock",
    "ConfigSnapshot",
    "ConflictError",
    "Connector",
    "ConnectorParams",
    "Counts",
    "DeletionMode",
    "Endpoint",
    "ErrorKind",
    "EventStatus",
    "ExportStatus",
    "GeneralError",
    "InvalidArgumentError",
    "InvalidItemError",
    "Item",
    "ItemAction",
    "ItemError",
    "ItemState",
    "ItemStatus",
    "ItemType",
    "Iteration",
    "ListingStatus",
    "MemoryCatalog",
    "MemoryQueue",
    "MemoryStore",
    "MissingDependencyError",
    "Mode",
    "NotFoundError",
    "Overview",
    "Plan",
    "PlannedItem",
    "Progress",
    "QueueBackend",
    "RateLimitedError",
    "RedactingFilter",
    "RunResult",
    "SQLiteQueue",
    "SQLiteStore",
    "SchemaVersionError",
    "Secret",
    "StateStore",
    "SyncEvent",
    "SyncOptions",
    "Synchronizer",
    "SystemClock",
    "Trigger",
    "UnhashablePayloadError",
    "UnknownHashSchemeError",
    "Visibility",
    "Worker",
    "redact",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - lazy, like stamina

        return version("catalogsync")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
