"""
The one error hierarchy of catalogsync.

Every exception the library raises on purpose derives from `CatalogSyncError`, and where a builtin
fits it is a second base, so generic ``except ValueError`` clauses keep working::

    CatalogSyncError
    ├── InvalidArgumentError (TypeError, ValueError)  bad input to a public constructor or call
    ├── UnhashablePayloadError (ValueError)           a payload has no canonical encoding
    ├── InvalidItemError (ValueError)                 a channel cannot render an item at all
    ├── MissingDependencyError (ImportError)          an optional extra is not installed
    ├── NotFoundError (LookupError)                   unknown connector or event
    ├── ConflictError                                 the operation clashes with the current state
    ├── BackendError                                  the queue or state store failed
    │   └── SchemaVersionError                        the database schema is newer than this code
    └── ChannelError                                  a channel refused or could not be reached
        ├── ChannelAuthError                          credentials rejected (HTTP 401, invalid_grant)
        ├── ChannelUnavailableError                   5xx, timeouts, connection errors after retries
        │   └── RateLimitedError                      still throttled after retries
        └── ChannelProtocolError                      the channel answered with something unreadable

Item-level problems are *not* exceptions: they become `catalogsync.ItemError` values on the
item's status, so one bad record never stops an event (DESIGN §3, invariants).

Strategy: errors carry their context as keyword-only attributes (``field``, ``path``,
``status_code``, ``request_id``), never a credential, and their messages are safe to log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ._models import ItemError


__all__ = [
    "BackendError",
    "CatalogSyncError",
    "ChannelAuthError",
    "ChannelError",
    "ChannelProtocolError",
    "ChannelUnavailableError",
    "ConflictError",
    "InvalidArgumentError",
    "InvalidItemError",
    "MissingDependencyError",
    "NotFoundError",
    "RateLimitedError",
    "SchemaVersionError",
    "UnhashablePayloadError",
]


class CatalogSyncError(Exception):
    """
    Root of every error catalogsync raises on purpose.

    .. versionadded:: 0.1.0
    """


class InvalidArgumentError(CatalogSyncError, TypeError, ValueError):
    """
    A public constructor or call received a value of the wrong type or outside its domain.

    Attributes:
        field: The name of the offending argument or attribute (``"ConnectorParams.language"``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnhashablePayloadError(CatalogSyncError, ValueError):
    """
    A payload contains a value with no canonical encoding (a cycle, a set, bytes, a naive datetime,
    a non-string key, invalid Unicode...).

    Attributes:
        path: Where the value sits, as a JSONPath-like string (``"$.variants[2].price"``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{message} @ {path}")
        self.path = path


class InvalidItemError(CatalogSyncError, ValueError):
    """
    A channel cannot render an item at all; the synchronizer records ``errors`` on the item.

    Attributes:
        errors: Every problem found, as `catalogsync.ItemError` values.

    .. versionadded:: 0.1.0
    """

    def __init__(self, errors: Sequence[ItemError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(e.message for e in self.errors) or "invalid item")


class MissingDependencyError(CatalogSyncError, ImportError):
    """
    An optional dependency is not installed; the message names the extra to install
    (``pip install 'catalogsync[postgres]'``).

    .. versionadded:: 0.1.0
    """


class NotFoundError(CatalogSyncError, LookupError):
    """
    An unknown connector, event or item was asked for.

    .. versionadded:: 0.1.0
    """


class ConflictError(CatalogSyncError):
    """
    The operation clashes with the current state (for example, a retry while another event runs).

    .. versionadded:: 0.1.0
    """


class BackendError(CatalogSyncError):
    """
    A queue or state store operation failed.

    Attributes:
        retryable: Whether trying the same operation again may succeed (lost connection,
            lock timeout) as opposed to a permanent failure (schema mismatch, constraint).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SchemaVersionError(BackendError):
    """
    The database was migrated by a newer catalogsync than the one running.

    .. versionadded:: 0.1.0
    """


class ChannelError(CatalogSyncError):
    """
    A channel refused a request or could not be reached.

    Attributes:
        channel: The channel name (``"shopify"``).
        status_code: The HTTP status, when there was a response.
        request_id: The channel's own request id, when it sent one.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        channel: str,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.channel = channel
        self.status_code = status_code
        self.request_id = request_id


class ChannelAuthError(ChannelError):
    """
    The channel rejected the credentials (HTTP 401, LWA ``invalid_grant``).

    .. versionadded:: 0.1.0
    """


class ChannelUnavailableError(ChannelError):
    """
    The channel kept failing (5xx, timeouts, connection errors) after every retry.

    .. versionadded:: 0.1.0
    """


class RateLimitedError(ChannelUnavailableError):
    """
    The channel kept throttling after every retry.

    Attributes:
        retry_after: Seconds the channel asked to wait, when it said.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        channel: str,
        retry_after: float | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, channel=channel, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class ChannelProtocolError(ChannelError):
    """
    The channel answered with something catalogsync cannot read (non-JSON, truncated, wrong shape).

    .. versionadded:: 0.1.0
    """
