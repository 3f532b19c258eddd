"""
An emulator of the Takealot Seller API v2 offer endpoints, speaking its wire format.

Rule 1: the emulator models the *server*; it shares no code with the adapter, so a wrong
assumption in one is caught by the other's tests.

What it enforces (documented facts, see ``docs/channels/takealot.md``):

* ``Authorization: Key <api_key>``; anything else answers 401 ``{message}``.
* A fixed catalogue of barcodes: offers can only be made for them (``E2`` otherwise), at most one
  offer per barcode (``E4``), SKUs unique per seller (``E6``/``E10``) and at most 255 characters
  (``E27``), whole non-negative prices (``E19``/``E22``), selling price <= RRP (``E20``/``E23``),
  stock whole and not negative (``E15``/``E30``) in known merchant warehouses, no leadtime stock
  without leadtime days (``E18``), offers "Disabled by Takealot" refuse changes
  (``E11``-``E14``, ``E17``, ``E21``, ``E24``), batch identifiers (``E3``, ``E31``, ``E33``).
  A request with a validation error changes nothing.
* ``POST /v2/offers/batch`` takes 1 to 10,000 offers; the batch completes after a configurable
  number of status polls.
* A budget of requests per window per endpoint class, with ``x-RateLimit-Limit``,
  ``x-RateLimit-Remaining`` and ``x-RateLimit-Reset`` (epoch seconds) headers and 429 beyond it;
  off by default (for benchmarks).

Assumptions where the sources are silent: validation failures of a single write answer 200 with
``validation_errors`` (the documented 200 shape); an unknown merchant warehouse is reported as
``INVALID_WAREHOUSE`` (no transcribed code); batch status descriptions are ``Submitted``,
``Processing`` and ``Completed``.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeGuard
from urllib.parse import unquote

import httpx

from .._clock import Clock, SystemClock
from .._secrets import Secret
from ._http import Emulator, Faults


__all__ = ["TakealotEmulator"]

MESSAGES: Final[Mapping[str, str]] = {
    "E2": "Failed to create offer. Barcode not found in catalogue",
    "E3": "Failed to create offer. No barcode provided",
    "E4": "Failed to create offer. Barcode already exists for account",
    "E6": "Failed to create SKU. SKU already exists",
    "E10": "Failed to update SKU. SKU already exists",
    "E11": 'Failed to disable. Offer has "Disabled by Takealot" status',
    "E12": 'Failed to enable. Offer has "Disabled by Takealot" status',
    "E13": "Failed to update SKU. Offer disabled by Takealot",
    "E14": "Failed to update leadtime. Offer disabled by Takealot",
    "E15": "My SoH must be whole number >= 0",
    "E17": "Failed to update My SoH. Offer disabled by Takealot",
    "E18": 'Failed to update My SoH. Leadtime days set to "None"',
    "E19": "Selling price must be whole number >= 0",
    "E20": "Selling price must be <= RRP",
    "E21": "Selling price cannot be updated. Offer disabled by Takealot",
    "E22": "RRP must be whole number >= 0",
    "E23": "RRP must be >= selling price",
    "E24": "RRP cannot be updated. Offer disabled by Takealot",
    "E25": "Minimum leadtime not permitted for account",
    "E26": "Maximum leadtime not permitted for account",
    "E27": "SKU exceeds 255 characters",
    "E30": "Cannot update stock to less than zero",
    "E31": "Offer ID does not match existing offer",
    "E33": "Barcode does not match given offer",
    "INVALID_WAREHOUSE": "Merchant warehouse not found for account",
    "INVALID_STATUS_ACTION": "status_action must be Disable or Re-enable",
}

ROUTES: Final = ("offer", "batch", "batch_status", "account")
BUYABLE: Final = "Buyable"
NOT_BUYABLE: Final = "Not Buyable"
BY_SELLER: Final = "Disabled by Seller"
BY_TAKEALOT: Final = "Disabled by Takealot"
MAX_BATCH: Final = 10_000
MAX_SKU: Final = 255


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _route(method: str, path: str) -> str:
    if path.startswith("/v2/offers/batch"):
        return "batch" if method == "POST" else "batch_status"
    if path.startswith("/v2/offers/offer"):
        return "offer"
    return "account"


class _BadRequestError(Exception):
    """Internal: answer 400 with this message."""


class TakealotEmulator(Emulator):
    """
    The Takealot Seller API v2 offer endpoints over a fixed catalogue, in-process or on a port.

    Args:
        catalogue: The barcodes Takealot's catalogue lists (offers can only be made for these),
            or a mapping of barcode to product title.
        api_key: The one valid API key.
        warehouses: The seller's merchant warehouse ids.
        rate_limit: Requests allowed per *window* per endpoint class (``None``: no limit and no
            rate-limit headers, for benchmarks).
        window: The rate-limit window in seconds.
        limits: Per endpoint class overrides of *rate_limit* (``"offer"``, ``"batch"``,
            ``"batch_status"``, ``"account"``).
        batch_polls: Status polls after which a batch completes (0: at submission).
        max_leadtime_days: The account's maximum leadtime (``E26`` above it), if any.
        clock: Rate-limit windows and ``x-RateLimit-Reset`` follow it (share the adapter's
            `ManualClock` in tests).
        faults: Injected faults (see `Faults`).
        latency: Real seconds added to every answer.
        sleep: How latency is spent.

    Example:
        >>> import httpx
        >>> emulator = TakealotEmulator(TakealotEmulator.make_barcodes(2), api_key="k-123456")
        >>> with emulator.client(headers={"Authorization": "Key k-123456"}) as client:
        ...     reply = client.post(f"/v2/offers/offer/{emulator.barcodes[0]}",
        ...                         json={"sku": "SKU-1", "selling_price": 100})
        >>> reply.json()["offer"]["status"], emulator.offers[emulator.barcodes[0]]["sku"]
        ('Not Buyable', 'SKU-1')

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        catalogue: Iterable[str] | Mapping[str, str],
        *,
        api_key: str | Secret = "takealot-emulator-key",
        warehouses: Iterable[int] = (28676,),
        rate_limit: int | None = None,
        window: float = 60.0,
        limits: Mapping[str, int] | None = None,
        batch_polls: int = 2,
        max_leadtime_days: int | None = None,
        clock: Clock | None = None,
        faults: Faults | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(faults=faults, latency=latency, sleep=sleep)
        titles = (
            dict(catalogue)
            if isinstance(catalogue, Mapping)
            else {b: f"Catalogue product {b}" for b in catalogue}
        )
        self._catalogue = {
            str(b): (title, 70_000_000 + n) for n, (b, title) in enumerate(titles.items())
        }
        #: The catalogue's barcodes, in the order given.
        self.barcodes: tuple[str, ...] = tuple(self._catalogue)
        self._key = api_key.reveal() if isinstance(api_key, Secret) else str(api_key)
        self.warehouses = tuple(warehouses)
        self._limits = dict.fromkeys(ROUTES, rate_limit) | dict(limits or {})
        self.window = float(window)
        self.batch_polls = batch_polls
        self.max_leadtime_days = max_leadtime_days
        self.clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._ids = itertools.count(120_000_001)
        self._batch_ids = itertools.count(9_000_001)
        #: Offers by barcode, as ``V2Offer`` objects (read them in assertions).
        self.offers: dict[str, dict[str, Any]] = {}
        self._by_id: dict[int, str] = {}
        self._by_sku: dict[str, str] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        #: Requests answered 429.
        self.throttled = 0
        #: ``(endpoint class, monotonic time)`` of every request let through the rate limit.
        self.granted: list[tuple[str, float]] = []
        #: The most requests handled at the same time (in-process).
        self.peak_in_flight = 0
        self._in_flight = 0

    # -- helpers for tests ----------------------------------------------------------------------

    @staticmethod
    def make_barcodes(count: int, *, start: int = 0, prefix: str = "600") -> list[str]:
        """*count* valid EAN-13 barcodes (South African ``600`` prefix by default)."""
        out = []
        for n in range(start, start + count):
            body = f"{prefix}{n:0{12 - len(prefix)}d}"
            total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
            out.append(f"{body}{(10 - total % 10) % 10}")
        return out

    def offer(self, barcode: str) -> dict[str, Any] | None:
        """A copy of the offer on *barcode*, or ``None``."""
        with self._lock:
            offer = self.offers.get(barcode)
            return json.loads(json.dumps(offer)) if offer is not None else None

    def stock(self, barcode: str) -> dict[int, int]:
        """The leadtime stock of the offer on *barcode*, by merchant warehouse id."""
        with self._lock:
            offer = self.offers.get(barcode) or {}
            return {
                s["merchant_warehouse"]["warehouse_id"]: s["quantity_available"]
                for s in offer.get("leadtime_stock", [])
            }

    def add_offer(self, barcode: str, **fields: Any) -> dict[str, Any]:
        """Create an offer directly (as if made in the Seller Portal); return it."""
        with self._lock:
            issues = self._apply(None, barcode, fields, status=False)
            if issues:
                msg = f"cannot add the offer: {issues}"
                raise ValueError(msg)
            return self.offers[barcode]

    def disable_by_takealot(self, barcode: str) -> None:
        """Give the offer on *barcode* the status "Disabled by Takealot"."""
        with self._lock:
            self.offers[barcode]["status"] = BY_TAKEALOT

    # -- front-end -------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return super().__call__(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the Seller API v2 would."""
        if request.headers.get("authorization") != f"Key {self._key}":
            return _answer(401, {"message": "Invalid or missing API key"})
        route = _route(request.method, request.url.path)
        with self._lock:
            headers, throttled = self._meter(route)
            if throttled:
                self.throttled += 1
                return _answer(429, {"message": "Too Many Requests"}, headers)
            try:
                status, body = self._dispatch_api(request)
            except _BadRequestError as exc:
                status, body = 400, {"message": str(exc)}
        return _answer(status, body, headers)

    def _meter(self, route: str) -> tuple[dict[str, str], bool]:
        limit = self._limits.get(route)
        now = self.clock.monotonic()
        if limit is None:
            self.granted.append((route, now))
            return {}, False
        start, used = self._windows.get(route, (now, 0))
        if now >= start + self.window:
            start, used = now, 0
        reset = math.ceil(self.clock.now().timestamp() + (start + self.window - now))
        throttled = used >= limit
        if not throttled:
            used += 1
            self.granted.append((route, now))
        self._windows[route] = (start, used)
        headers = {
            "x-RateLimit-Limit": str(limit),
            "x-RateLimit-Remaining": str(max(0, limit - used)),
            "x-RateLimit-Reset": str(reset),
        }
        return headers, throttled

    def _dispatch_api(self, request: httpx.Request) -> tuple[int, Any]:
        method, path = request.method, request.url.path
        if path == "/v2/offers/count" and method == "GET":
            return 200, {"count": len(self.offers)}
        if path == "/v2/offers/offer" or path.startswith("/v2/offers/offer/"):
            if path == "/v2/offers/offer":
                ident = request.url.params.get("identifier")
                if not ident:
                    raise _BadRequestError("identifier is required")
            else:
                ident = unquote(path.removeprefix("/v2/offers/offer/"))
            if method == "GET":
                offer = self._resolve(ident)
                return (200, offer) if offer is not None else (404, {"message": "Offer not found"})
            if method == "PATCH":
                return self._update(ident, _body(request, dict))
            if method == "POST":
                return self._create(ident, _body(request, dict))
        if path == "/v2/offers/batch" and method == "POST":
            return self._submit(_body(request, list))
        if path.startswith("/v2/offers/batch/") and method == "GET":
            return self._batch_status(unquote(path.removeprefix("/v2/offers/batch/")))
        return 404, {"message": "Not Found"}

    # -- offers ----------------------------------------------------------------------------------

    def _resolve(self, ident: str) -> dict[str, Any] | None:
        upper = ident.upper()
        if upper.startswith("BARCODE"):
            return self.offers.get(ident[len("BARCODE") :])
        if upper.startswith("SKU"):
            barcode = self._by_sku.get(ident[len("SKU") :])
            return self.offers.get(barcode) if barcode else None
        number = ident[2:] if upper.startswith("ID") else ident
        if number.isdigit():
            barcode = self._by_id.get(int(number))
            return self.offers.get(barcode) if barcode else None
        return None

    def _create(self, ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        barcode = ident[len("BARCODE") :] if ident.upper().startswith("BARCODE") else ident
        fields = {k: v for k, v in body.items() if k not in {"status_action", "barcode"}}
        issues = self._apply(None, barcode, fields, status=False)
        offer = self.offers.get(barcode) if not issues else None
        return 200, {"offer": offer, "validation_errors": issues}

    def _update(self, ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        offer = self._resolve(ident)
        if offer is None:
            return 404, {"message": "Offer not found"}
        fields = {k: v for k, v in body.items() if k != "barcode"}
        issues = self._apply(offer, offer["barcode"], fields, status=True)
        return 200, {"offer": offer, "validation_errors": issues}

    def _apply(  # noqa: C901, PLR0912 - one rule per documented code
        self,
        offer: dict[str, Any] | None,
        barcode: str,
        fields: Mapping[str, Any],
        *,
        status: bool,
    ) -> list[dict[str, str]]:
        """Check *fields* against every rule; apply them only when all pass (create if new)."""
        issues: list[str] = []
        if offer is None:
            if barcode not in self._catalogue:
                return _issues(["E2"])
            if barcode in self.offers:
                return _issues(["E4"])
        locked = offer is not None and offer["status"] == BY_TAKEALOT
        current = offer or {}
        if "sku" in fields:
            sku = fields["sku"]
            if not isinstance(sku, str) or not sku:
                raise _BadRequestError("sku must be a non-empty string")
            if locked:
                issues.append("E13")
            elif len(sku) > MAX_SKU:
                issues.append("E27")
            elif self._by_sku.get(sku, barcode) != barcode:
                issues.append("E6" if offer is None else "E10")
        prices_ok = True
        for name, bad, frozen in (("selling_price", "E19", "E21"), ("rrp", "E22", "E24")):
            if name in fields:
                value = fields[name]
                if locked:
                    issues.append(frozen)
                elif not _is_int(value) or value < 0:
                    issues.append(bad)
                    prices_ok = False
        price = fields.get("selling_price", current.get("selling_price"))
        rrp = fields.get("rrp", current.get("rrp"))
        if prices_ok and not locked and _is_int(price) and _is_int(rrp) and 0 < rrp < price:
            issues.append("E20" if "selling_price" in fields else "E23")
        days = current.get("leadtime_days")
        if "leadtime_days" in fields:
            value = fields["leadtime_days"]
            if locked:
                issues.append("E14")
            elif not _is_int(value) or value < -1:
                issues.append("E25")
            elif self.max_leadtime_days is not None and value > self.max_leadtime_days:
                issues.append("E26")
            else:
                days = None if value == -1 else value
        stock: dict[int, int] = {}
        if "leadtime_stock" in fields:
            entries = fields["leadtime_stock"]
            if not isinstance(entries, list):
                raise _BadRequestError("leadtime_stock must be a list")
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise _BadRequestError("leadtime_stock entries must be objects")
                wid, qty = entry.get("merchant_warehouse_id"), entry.get("quantity")
                if locked:
                    issues.append("E17")
                elif wid not in self.warehouses:
                    issues.append("INVALID_WAREHOUSE")
                elif not _is_int(qty):
                    issues.append("E15")
                elif qty < 0:
                    issues.append("E30")
                else:
                    stock[wid] = qty
            if any(q > 0 for q in stock.values()) and not (_is_int(days) and days > 0):
                issues.append("E18")
        action = fields.get("status_action") if status else None
        if action is not None:
            if action not in {"Disable", "Re-enable"}:
                issues.append("INVALID_STATUS_ACTION")
            elif locked:
                issues.append("E11" if action == "Disable" else "E12")
        if issues:
            return _issues(dict.fromkeys(issues))
        if offer is None:
            offer = self._new_offer(barcode)
        self._store(offer, fields, days, stock, action)
        return []

    def _new_offer(self, barcode: str) -> dict[str, Any]:
        title, tsin = self._catalogue[barcode]
        offer_id = next(self._ids)
        offer: dict[str, Any] = {
            "offer_id": offer_id,
            "tsin_id": tsin,
            "barcode": barcode,
            "sku": None,
            "product_label_number": f"MPTAL{offer_id}",
            "title": title,
            "selling_price": None,
            "rrp": None,
            "leadtime_days": None,
            "leadtime_stock": [
                {
                    "merchant_warehouse": {"warehouse_id": w, "name": f"Warehouse {w}"},
                    "quantity_available": 0,
                }
                for w in self.warehouses
            ],
            "status": NOT_BUYABLE,
            "offer_url": f"https://www.takealot.com/x/PLID{tsin}",
            "date_created": self.clock.now().isoformat(),
            "stock_at_takealot": [],
            "stock_at_takealot_total": 0,
        }
        self.offers[barcode] = offer
        self._by_id[offer_id] = barcode
        return offer

    def _store(
        self,
        offer: dict[str, Any],
        fields: Mapping[str, Any],
        days: int | None,
        stock: Mapping[int, int],
        action: str | None,
    ) -> None:
        if "sku" in fields:
            if offer["sku"] is not None:
                self._by_sku.pop(offer["sku"], None)
            offer["sku"] = fields["sku"]
            self._by_sku[fields["sku"]] = offer["barcode"]
        for name in ("selling_price", "rrp"):
            if name in fields:
                offer[name] = fields[name] or None
        offer["leadtime_days"] = days
        for entry in offer["leadtime_stock"]:
            wid = entry["merchant_warehouse"]["warehouse_id"]
            if days is None or days <= 0:
                entry["quantity_available"] = 0  # no leadtime, no leadtime stock
            elif wid in stock:
                entry["quantity_available"] = stock[wid]
        if action == "Disable":
            offer["status"] = BY_SELLER
        elif action == "Re-enable" or offer["status"] not in {BY_SELLER, BY_TAKEALOT}:
            offer["status"] = BUYABLE if self._buyable(offer) else NOT_BUYABLE

    @staticmethod
    def _buyable(offer: Mapping[str, Any]) -> bool:
        leadtime_stock = sum(s["quantity_available"] for s in offer["leadtime_stock"])
        has_stock = (offer["leadtime_days"] or 0) > 0 and leadtime_stock > 0
        return bool(offer["selling_price"]) and (has_stock or offer["stock_at_takealot_total"] > 0)

    # -- batches ---------------------------------------------------------------------------------

    def _submit(self, items: list[Any]) -> tuple[int, Any]:
        if not items:
            raise _BadRequestError("A batch needs at least one offer")
        if len(items) > MAX_BATCH:
            raise _BadRequestError(f"Batches are limited to {MAX_BATCH} offers")
        batch_id = str(next(self._batch_ids))
        batch: dict[str, Any] = {"items": items, "polls": 0, "result": None}
        self._batches[batch_id] = batch
        if self.batch_polls <= 0:
            self._process(batch)
        return 200, self._batch_view(batch_id, batch)

    def _batch_status(self, batch_id: str) -> tuple[int, Any]:
        batch = self._batches.get(batch_id)
        if batch is None:
            return 404, {"message": "Batch not found"}
        batch["polls"] += 1
        if batch["result"] is None and batch["polls"] >= self.batch_polls:
            self._process(batch)
        return 200, self._batch_view(batch_id, batch)

    def _batch_view(self, batch_id: str, batch: Mapping[str, Any]) -> dict[str, Any]:
        if batch["result"] is not None:
            status = {"id": 3, "description": "Completed"}
        elif batch["polls"]:
            status = {"id": 2, "description": "Processing"}
        else:
            status = {"id": 1, "description": "Submitted"}
        return {"batch_id": batch_id, "status": status, "result": batch["result"] or []}

    def _process(self, batch: dict[str, Any]) -> None:
        batch["result"] = [self._batch_one(item) for item in batch["items"]]

    def _batch_one(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, Mapping):
            return {"offer": None, "validation_errors": _issues(["E3"])}
        fields = {k: v for k, v in item.items() if k not in {"offer_id", "barcode"}}
        offer_id, barcode, sku = item.get("offer_id"), item.get("barcode"), item.get("sku")
        try:
            if offer_id is not None:
                offer = self._resolve(str(offer_id)) if _is_int(offer_id) else None
                if offer is None:
                    return {"offer": None, "validation_errors": _issues(["E31"])}
                if barcode is not None and str(barcode) != offer["barcode"]:
                    return {"offer": _summary(offer), "validation_errors": _issues(["E33"])}
            elif barcode is not None:
                offer = self.offers.get(str(barcode))
                if offer is None:
                    issues = self._apply(None, str(barcode), fields, status=True)
                    new = self.offers.get(str(barcode)) if not issues else None
                    return {"offer": _summary(new), "validation_errors": issues}
            elif isinstance(sku, str) and sku in self._by_sku:
                offer = self.offers[self._by_sku[sku]]
            else:
                return {"offer": None, "validation_errors": _issues(["E3"])}
            issues = self._apply(offer, offer["barcode"], fields, status=True)
        except _BadRequestError as exc:
            return {"offer": None, "validation_errors": [{"code": "", "message": str(exc)}]}
        return {"offer": _summary(offer), "validation_errors": issues}


def _summary(offer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # The result offer of a batch (V2OfferBatch.result[].offer) has these fields only.
    if offer is None:
        return None
    names = ("offer_id", "sku", "selling_price", "rrp", "leadtime_days", "leadtime_stock")
    return {n: offer[n] for n in names} | {
        "status": offer["status"],
        "stock_at_takealot": offer["stock_at_takealot"],
    }


def _issues(codes: Iterable[str]) -> list[dict[str, str]]:
    return [{"code": code, "message": MESSAGES[code]} for code in codes]


def _body(request: httpx.Request, kind: type) -> Any:
    try:
        body = json.loads(request.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _BadRequestError("The request body is not valid JSON") from None
    if not isinstance(body, kind):
        raise _BadRequestError(f"The request body must be a JSON {kind.__name__}")
    return body


def _answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=dict(headers or {}))
