"""
Local validation of a rendered Takealot offer payload (pure, rule R13: every problem at once).

Rule 1: checks mirror the Seller API's own rules so that an item fails here, before anything is
sent, for the same reasons Takealot would refuse it. Where Takealot has a code for the rule
(transcribed list E1-E33) the error carries it (``E20`` selling price above RRP, ``E27`` SKU too
long...); other checks have descriptive codes.

Rule 2: prices are whole rand. A fractional price is an error here, never rounded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeGuard

from ..._models import ErrorKind, ItemError
from ...typing import Payload
from ._render import is_skip
from ._sansio import DISABLE, MAX_SKU, REENABLE


__all__ = ["gtin_ok", "validate_offer"]

_GTIN_LENGTHS: Final = frozenset({8, 12, 13, 14})


def gtin_ok(barcode: str) -> bool:
    """Whether *barcode* is a GTIN-8/12/13/14 (EAN-13, ISBN-13, UPC...) with a valid check digit."""
    if not barcode.isascii() or not barcode.isdigit() or len(barcode) not in _GTIN_LENGTHS:
        return False
    digits = [int(c) for c in barcode]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _error(message: str, code: str, field: str) -> ItemError:
    return ItemError(ErrorKind.VALIDATION, message, code=code, field=field)


def _price(payload: Payload, name: str, code: str, *, required: bool) -> list[ItemError]:
    if name not in payload or payload[name] is None:
        if required:
            return [_error(f"{name} is required (whole rand)", f"missing_{name}", name)]
        return []
    value = payload[name]
    if not _is_int(value):
        return [
            _error(
                f"{name} must be a whole number of rand, got {value!r} "
                "(Takealot takes whole rand; catalogsync never rounds)",
                code,
                name,
            )
        ]
    if value <= 0:
        return [_error(f"{name} must be positive, got {value}", code, name)]
    return []


def _barcode(payload: Payload, *, gtin_check: bool) -> list[ItemError]:
    barcode = payload.get("barcode")
    if barcode is None or barcode == "":
        return [
            _error(
                "barcode is required: Takealot offers attach to a barcode in its catalogue",
                "E3",
                "barcode",
            )
        ]
    if not isinstance(barcode, str):
        return [
            _error(
                f"barcode must be text, got {type(barcode).__name__}", "invalid_barcode", "barcode"
            )
        ]
    if any(c.isspace() for c in barcode):
        return [_error(f"barcode {barcode!r} contains whitespace", "invalid_barcode", "barcode")]
    if gtin_check and not gtin_ok(barcode):
        return [
            _error(
                f"barcode {barcode!r} is not a valid GTIN (8, 12, 13 or 14 digits with a correct "
                "check digit)",
                "invalid_barcode",
                "barcode",
            )
        ]
    return []


def _sku(payload: Payload, field_mapping: Mapping[str, str]) -> list[ItemError]:
    sku = payload.get("sku")
    if sku is None or sku == "":
        where = (
            f" (mapped from PIM field {field_mapping['sku']!r})" if "sku" in field_mapping else ""
        )
        return [_error(f"sku is required{where}", "missing_sku", "sku")]
    if not isinstance(sku, str):
        return [_error(f"sku must be text, got {type(sku).__name__}", "invalid_sku", "sku")]
    if len(sku) > MAX_SKU:
        return [_error(f"SKU exceeds {MAX_SKU} characters (got {len(sku)})", "E27", "sku")]
    return []


def _leadtime(payload: Payload) -> list[ItemError]:
    if "leadtime_days" not in payload:
        return []
    days = payload["leadtime_days"]
    if not _is_int(days) or days < -1:
        return [
            _error(
                f"leadtime_days must be a whole number of days >= 0 (or -1 to remove it), "
                f"got {days!r}",
                "invalid_leadtime_days",
                "leadtime_days",
            )
        ]
    return []


def _stock_entry(n: int, entry: Any, warehouses: Sequence[int], seen: set[int]) -> list[ItemError]:
    where = f"leadtime_stock[{n}]"
    wid = entry.get("merchant_warehouse_id") if isinstance(entry, Mapping) else None
    qty = entry.get("quantity") if isinstance(entry, Mapping) else None
    configured = ", ".join(str(w) for w in warehouses) or "none"
    errors: list[ItemError] = []
    if wid is None:
        errors.append(
            _error(
                f"stock is a single number but {len(warehouses)} merchant warehouses are "
                f"configured ({configured}): give the stock as {{warehouse_id: quantity}}",
                "ambiguous_stock",
                f"{where}.merchant_warehouse_id",
            )
        )
    elif not _is_int(wid):
        errors.append(
            _error(
                f"merchant warehouse id {wid!r} is not a number",
                "invalid_warehouse",
                f"{where}.merchant_warehouse_id",
            )
        )
    elif wid not in warehouses:
        errors.append(
            _error(
                f"merchant warehouse {wid} is not configured for this channel "
                f"(configured: {configured})",
                "invalid_warehouse",
                f"{where}.merchant_warehouse_id",
            )
        )
    elif wid in seen:
        errors.append(
            _error(
                f"merchant warehouse {wid} is given twice",
                "invalid_warehouse",
                f"{where}.merchant_warehouse_id",
            )
        )
    else:
        seen.add(wid)
    if not _is_int(qty):
        errors.append(
            _error(
                f"stock quantity must be a whole number >= 0, got {qty!r}",
                "E15",
                f"{where}.quantity",
            )
        )
    elif qty < 0:
        errors.append(
            _error(f"cannot update stock to less than zero (got {qty})", "E30", f"{where}.quantity")
        )
    return errors


def _stock(payload: Payload, warehouses: Sequence[int]) -> list[ItemError]:
    if "leadtime_stock" not in payload:
        return []
    entries = payload["leadtime_stock"]
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return [_error("leadtime_stock must be a list", "invalid_stock", "leadtime_stock")]
    errors: list[ItemError] = []
    seen: set[int] = set()
    for n, entry in enumerate(entries):
        errors += _stock_entry(n, entry, warehouses, seen)
    days = payload.get("leadtime_days")
    has_stock = any(
        isinstance(e, Mapping) and _is_int(e.get("quantity")) and e["quantity"] > 0 for e in entries
    )
    if has_stock and _is_int(days) and days <= 0:
        errors.append(
            _error(
                f"leadtime stock needs leadtime days, but leadtime_days is {days}",
                "E18",
                "leadtime_stock",
            )
        )
    return errors


def validate_offer(
    payload: Payload,
    *,
    warehouses: Sequence[int] = (),
    field_mapping: Mapping[str, str] | None = None,
    gtin_check: bool = True,
) -> list[ItemError]:
    """
    Return every local problem of a rendered offer payload (empty when it may be sent).

    A skip payload is always valid. Checked: barcode present (and a valid GTIN when
    *gtin_check*), SKU present and at most 255 characters, ``selling_price`` present, whole and
    positive, ``rrp`` whole and positive when given and not below the selling price,
    ``leadtime_days`` a whole number >= -1, stock quantities whole and not negative in
    configured warehouses only, no leadtime stock without leadtime days.
    """
    if is_skip(payload):
        return []
    errors = [
        *_barcode(payload, gtin_check=gtin_check),
        *_sku(payload, field_mapping or {}),
        *_price(payload, "selling_price", "E19", required=True),
        *_price(payload, "rrp", "E22", required=False),
    ]
    price, rrp = payload.get("selling_price"), payload.get("rrp")
    if _is_int(price) and _is_int(rrp) and 0 < rrp < price:
        errors.append(_error(f"selling price {price} must be <= RRP {rrp}", "E20", "selling_price"))
    errors += _leadtime(payload)
    errors += _stock(payload, warehouses)
    if payload.get("status_action") not in {None, DISABLE, REENABLE}:
        errors.append(
            _error(
                f"status_action must be {DISABLE!r} or {REENABLE!r}, got "
                f"{payload.get('status_action')!r}",
                "invalid_status_action",
                "status_action",
            )
        )
    return errors
