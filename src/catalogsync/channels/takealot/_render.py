"""
Rendering a PIM item into a Takealot offer payload (pure).

Rule 1: the payload is the offer as it would be sent, in Seller API v2 field names
(``barcode``, ``sku``, ``selling_price``, ``rrp``, ``leadtime_days``, ``leadtime_stock``,
``status_action``); its hash is what rule R06 compares. A product that has variants renders a
*skip* payload ``{"skip": "<why>"}`` instead: its variants are the offers.

Rule 2: render never rounds and never rejects. Values that are exactly whole numbers become
``int`` (``199.0``, ``Decimal("199.00")``, ``"199"``); anything else (``199.5``, ``"abc"``) is
kept as it is so that `validate_offer` reports every problem at once (rule R13). Nothing is
ever rounded silently.

Rule 3: stock is rendered only when the connector's ``overwrite_stock`` is set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from ..._errors import InvalidItemError
from ..._models import ErrorKind, Item, ItemError, ItemType, ListingStatus
from ...typing import Payload, RenderContext
from ._sansio import DISABLE, REENABLE


__all__ = ["FIELDS", "SKIP", "is_skip", "render_offer", "whole"]

#: The channel field names a connector's ``field_mapping`` can map onto PIM fields.
FIELDS: Final = ("sku", "barcode", "selling_price", "rrp", "leadtime_days", "stock")
#: Fields a variant takes from its product when it has none of its own.
INHERITED: Final = ("selling_price", "rrp", "leadtime_days")
#: The key of a skip payload.
SKIP: Final = "skip"

_WHOLE_TEXT: Final = re.compile(r"\s*[+-]?\d+(?:\.0*)?\s*")


def is_skip(payload: Payload | None) -> bool:
    """Whether *payload* says "no offer for this item"."""
    return isinstance(payload, Mapping) and SKIP in payload


def whole(value: Any) -> Any:
    """
    Return *value* as an ``int`` when it is exactly a whole number, else unchanged.

    ``199``, ``199.0``, ``Decimal("199.00")`` and ``"199"`` become ``199``; ``199.5``,
    ``Decimal("199.50")``, ``"R199"``, ``True`` and ``None`` are returned as they are.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else value
    if isinstance(value, str) and _WHOLE_TEXT.fullmatch(value):
        return int(Decimal(value.strip()))
    return value


def _barcode(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _status_action(item: Item, ctx: RenderContext) -> str:
    # R10: ACTIVE -> Re-enable; DRAFT and ARCHIVED -> Disable. A variant's offer is disabled too
    # when its product is not active: on Takealot the offers *are* the product.
    statuses = [ctx.status(item)]
    if item.type is ItemType.VARIANT:
        product = ctx.product_of(item)
        if product is not None:
            statuses.append(ctx.status(product))
    return REENABLE if all(s is ListingStatus.ACTIVE for s in statuses) else DISABLE


def _warehouse_order(entry: Mapping[str, Any]) -> tuple[int, int, str]:
    wid = entry["merchant_warehouse_id"]
    if isinstance(wid, int) and not isinstance(wid, bool):
        return (0, wid, "")
    return (1, 0, repr(wid))


def _stock(raw: Any, warehouses: Sequence[int]) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        entries = [
            {"merchant_warehouse_id": whole(k), "quantity": whole(v)} for k, v in raw.items()
        ]
        return sorted(entries, key=_warehouse_order)
    if len(warehouses) == 1:
        return [{"merchant_warehouse_id": warehouses[0], "quantity": whole(raw)}]
    # Ambiguous (no or several warehouses configured): validate reports it.
    return [{"merchant_warehouse_id": None, "quantity": whole(raw)}]


def render_offer(
    item: Item,
    ctx: RenderContext,
    *,
    warehouses: Sequence[int] = (),
    default_leadtime_days: int | None = None,
) -> Payload:
    """
    Render *item* as a Seller API v2 offer payload.

    * A product with exportable variants renders ``{"skip": ...}``: its variants are the offers.
    * ``sku`` is the mapped ``sku`` field, else the PIM ref (``None`` when the mapped field is
      empty, which validation reports).
    * ``selling_price``, ``rrp`` and ``leadtime_days`` fall back to the product's values for a
      variant that has none; ``leadtime_days`` then falls back to *default_leadtime_days*.
    * ``leadtime_stock`` only with ``overwrite_stock``: the ``stock`` field is a number (with one
      warehouse configured) or ``{warehouse_id: quantity}``.
    * ``status_action``: ``Re-enable`` for an active item, ``Disable`` for a draft or archived
      one (rule R10).

    Raises:
        InvalidItemError: *item* is a category (Takealot owns its categories).
    """
    if item.type is ItemType.CATEGORY:
        raise InvalidItemError(
            [
                ItemError(
                    ErrorKind.VALIDATION,
                    "Takealot owns its catalogue: categories are not pushed",
                    code="unsupported_type",
                )
            ]
        )
    if item.type is ItemType.PRODUCT and ctx.children.get(item.key):
        return {
            SKIP: f"product {item.ref} has variants: Takealot offers are made for its variants, "
            "not for the product"
        }
    product = ctx.product_of(item) if item.type is ItemType.VARIANT else None

    def value(name: str) -> Any:
        own = ctx.value(item, name)
        if own is None and product is not None and name in INHERITED:
            return ctx.value(product, name)
        return own

    sku = value("sku")
    if sku is None and "sku" not in ctx.params.field_mapping:
        sku = item.ref
    payload: dict[str, Any] = {
        "barcode": _barcode(value("barcode")),
        "sku": sku.strip() if isinstance(sku, str) else sku,
        "selling_price": whole(value("selling_price")),
        "status_action": _status_action(item, ctx),
    }
    leadtime = whole(value("leadtime_days"))
    optional = {
        "rrp": whole(value("rrp")),
        "leadtime_days": default_leadtime_days if leadtime is None else leadtime,
        "leadtime_stock": (
            _stock(ctx.value(item, "stock"), warehouses) if ctx.params.overwrite_stock else None
        ),
    }
    payload.update((k, v) for k, v in optional.items() if v is not None)
    return payload
