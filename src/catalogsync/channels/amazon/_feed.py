"""
JSON_LISTINGS_FEED documents (Feeds API, schema ``listings-feed-schema-v2``), pure.

A feed carries up to 25,000 listings in one submission instead of one request per SKU; Amazon
processes it asynchronously and answers with a processing report. This module only builds the
document and reads the report: uploading (``createFeedDocument``, the presigned PUT,
``createFeed``) and polling are not part of catalogsync yet.

Rule: a message per SKU, numbered from 1 in the order given; the report's issues are mapped back
by SKU. ``UPDATE`` replaces the whole listing like ``putListingsItem``; ``PARTIAL_UPDATE``
changes only the attributes given (the stock-safe choice when ``overwrite_stock`` is off).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..._errors import InvalidArgumentError
from ..._models import ErrorKind, ItemError
from ._sansio import API_VERSION


__all__ = ["MAX_FEED_MESSAGES", "listings_feed", "read_processing_report"]

#: The most messages one JSON_LISTINGS_FEED may carry.
MAX_FEED_MESSAGES: Final = 25_000
_OPERATIONS: Final = frozenset({"UPDATE", "PARTIAL_UPDATE"})


def listings_feed(
    seller_id: str,
    payloads: Iterable[Mapping[str, Any]] = (),
    *,
    deletes: Iterable[str] = (),
    operation: str = "UPDATE",
    issue_locale: str | None = None,
    report_included_data: Iterable[str] = (),
) -> dict[str, Any]:
    """
    Build a JSON_LISTINGS_FEED document from rendered payloads and SKUs to delete.

    Args:
        seller_id: The selling partner id.
        payloads: Rendered listings (`AmazonChannel.render` output).
        deletes: SKUs to delete.
        operation: ``UPDATE`` (full replace) or ``PARTIAL_UPDATE`` (given attributes only).
        issue_locale: Locale of issue messages in the report.
        report_included_data: Listings data the report should include (``"issues"``...).

    Raises:
        InvalidArgumentError: no message, more than 25,000, a SKU twice, or a bad operation.

    Example:
        >>> doc = listings_feed("A1SELLER", deletes=["OLD-1"])
        >>> doc["messages"]
        [{'messageId': 1, 'sku': 'OLD-1', 'operationType': 'DELETE'}]

    .. versionadded:: 0.1.0
    """
    if operation not in _OPERATIONS:
        raise InvalidArgumentError(
            f"operation must be UPDATE or PARTIAL_UPDATE, got {operation!r}", field="operation"
        )
    messages: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(message: dict[str, Any]) -> None:
        sku = message["sku"]
        if sku in seen:
            raise InvalidArgumentError(f"SKU {sku!r} appears twice in one feed", field="payloads")
        seen.add(sku)
        messages.append({"messageId": len(messages) + 1, **message})

    for payload in payloads:
        message: dict[str, Any] = {
            "sku": str(payload["sku"]),
            "operationType": operation,
            "productType": payload["productType"],
            "attributes": dict(payload.get("attributes") or {}),
        }
        if operation == "UPDATE":
            message["requirements"] = payload.get("requirements") or "LISTING"
        add(message)
    for sku in deletes:
        add({"sku": sku, "operationType": "DELETE"})
    if not messages or len(messages) > MAX_FEED_MESSAGES:
        raise InvalidArgumentError(
            f"a listings feed carries 1 to {MAX_FEED_MESSAGES} messages, got {len(messages)}",
            field="payloads",
        )
    header: dict[str, Any] = {"sellerId": seller_id, "version": "2.0"}
    if issue_locale:
        header["issueLocale"] = issue_locale
    included = list(report_included_data)
    if included:
        header["report"] = {"includedData": included, "apiVersion": API_VERSION}
    return {"header": header, "messages": messages}


def read_processing_report(
    report: Mapping[str, Any],
) -> dict[str, tuple[tuple[ItemError, ...], tuple[ItemError, ...]]]:
    """
    Map a processing report's issues to ``{sku: (errors, warnings)}``.

    ``ERROR`` issues are ``CHANNEL`` errors, the rest warnings; ``attributeName`` becomes the
    field. Issues about the whole feed (no SKU) are returned under the key ``""``.

    .. versionadded:: 0.1.0
    """
    out: dict[str, tuple[list[ItemError], list[ItemError]]] = {}
    for issue in report.get("issues") or ():
        if not isinstance(issue, Mapping):
            continue
        sku = issue.get("sku") if isinstance(issue.get("sku"), str) else ""
        severity = str(issue.get("severity") or "ERROR")
        code = issue.get("code")
        field = issue.get("attributeName")
        error = ItemError(
            ErrorKind.CHANNEL,
            f"[{severity}] {issue.get('message', '')}",
            code=code if isinstance(code, str) else None,
            field=field if isinstance(field, str) else None,
        )
        errors, warnings = out.setdefault(str(sku), ([], []))
        (errors if severity == "ERROR" else warnings).append(error)
    return {sku: (tuple(e), tuple(w)) for sku, (e, w) in out.items()}
