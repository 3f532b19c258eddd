"""
An Amazon SP-API emulator: Login with Amazon and the Listings Items API (2021-08-01).

It speaks the wire format of the official models (``tests/test_amazon_contract.py`` validates
every answer against the Swagger response schemas) and enforces what a sync client must cope
with:

* LWA refresh-token exchange: tokens expire (on the injected clock), a revoked or unknown
  refresh token is ``invalid_grant``, wrong app credentials are ``invalid_client``.
* Access tokens: a missing, unknown or expired ``x-amz-access-token`` is a 403 ``Unauthorized``.
* Token buckets per ``(seller, operation)`` with 429 ``QuotaExceeded`` and no ``Retry-After``,
  ``x-amzn-RateLimit-Limit`` on answers, and ``x-amzn-RequestId`` on every answer. Limits can be
  changed or switched off (benchmarks).
* Request validation: path (an unescaped ``/`` in a SKU is refused), one marketplace per write,
  ``includedData`` and ``mode`` values, body shapes (``productType`` and ``attributes`` or JSON
  Patch ``patches``; only top-level attributes can be patched).
* Listing validation with Amazon-shaped issues (``90220`` missing attribute, ``90000900``
  invalid attributes) and ``INVALID`` statuses; ``VALIDATION_PREVIEW`` never persists and answers
  ``VALID`` or ``INVALID``.
* The static sandbox (``sandbox=True``, or a host starting with ``sandbox.``): the request and
  response pairs of the model's ``x-amzn-api-sandbox`` entries (any write is ``ACCEPTED`` for
  SKU ``GM-ZDPI-9B4E``; ``VALIDATION_VALID`` / ``VALIDATION_INVALID`` previews; ``BadSKU`` is a
  400).

Issue codes the real API does not document are the emulator's own and say so in their message
(``NOT_FOUND`` for a PATCH of a missing SKU, ``PRODUCT_TYPE_MISMATCH``).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import httpx
from attrs import define

from .._clock import Clock, SystemClock
from ._http import Emulator, Faults


__all__ = ["AmazonEmulator"]

_LISTINGS: Final = "/listings/2021-08-01/items"
_PREVIEW: Final = "VALIDATION_PREVIEW"
_OPS: Final = {
    "GET": "getListingsItem",
    "PUT": "putListingsItem",
    "PATCH": "patchListingsItem",
    "DELETE": "deleteListingsItem",
}
_GET_INCLUDED: Final = frozenset(
    {
        "summaries",
        "attributes",
        "issues",
        "offers",
        "fulfillmentAvailability",
        "procurement",
        "relationships",
        "productTypes",
    }
)
_WRITE_INCLUDED: Final = frozenset({"identifiers", "issues"})
_REQUIREMENTS: Final = frozenset({"LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY"})
_PATCH_OPS: Final = frozenset({"add", "replace", "merge", "delete"})

#: Documented defaults, the stricter table (rate per second, burst).
DEFAULT_LIMITS: Final[Mapping[str, tuple[float, float]]] = {
    "getListingsItem": (5.0, 5.0),
    "putListingsItem": (5.0, 5.0),
    "patchListingsItem": (5.0, 5.0),
    "deleteListingsItem": (5.0, 5.0),
    "putListingsItem:VALIDATION_PREVIEW": (1.0, 1.0),
    "patchListingsItem:VALIDATION_PREVIEW": (1.0, 1.0),
}
#: The sandbox throttles every operation at 5 per second, burst 15.
SANDBOX_LIMIT: Final = (5.0, 15.0)

_SELECTORS: Final = ("marketplace_id", "language_tag", "fulfillment_channel_code")
_DENIED: Final = "Access to requested resource is denied."
_QUOTA: Final = "You exceeded your quota for the requested resource."

# -- the static sandbox (x-amzn-api-sandbox entries of listingsItems_2021-08-01.json) -------------

_SANDBOX_ACCEPTED: Final = {
    "sku": "GM-ZDPI-9B4E",
    "status": "ACCEPTED",
    "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003",
    "issues": [],
}
_SANDBOX_VALID: Final = {
    "sku": "VALIDATION_VALID",
    "status": "VALID",
    "submissionId": "1edc94ea-a3d7-210b-42bc-0ec72c1384762",
    "identifiers": [{"marketplaceId": "ATVPDKIKX0DER", "asin": "B07N4M94X4"}],
    "issues": [],
}
_SANDBOX_INVALID_PUT: Final = {
    "sku": "VALIDATION_INVALID",
    "status": "INVALID",
    "submissionId": "a1c562c2-1695-11ee-be56-0242ac120002",
    "identifiers": [],
    "issues": [
        {
            "code": "90220",
            "message": "'condition_type' is required but not supplied.",
            "severity": "ERROR",
            "attributeNames": ["condition_type"],
            "categories": ["MISSING_ATTRIBUTE"],
            "enforcements": {
                "actions": [{"action": "LISTING_SUPPRESSED"}],
                "exemption": {"status": "NOT_EXEMPT"},
            },
        },
        {
            "code": "90000900",
            "message": "The attributes are invalid.",
            "severity": "ERROR",
            "attributeNames": ["fake_attribute"],
            "categories": [],
        },
    ],
}
_SANDBOX_INVALID_PATCH: Final = {
    "sku": "VALIDATION_INVALID",
    "status": "INVALID",
    "submissionId": "a1c562c2-1695-11ee-be56-0242ac120002",
    "identifiers": [],
    "issues": [
        {
            "code": "90000900",
            "message": "The attributes are invalid.",
            "severity": "ERROR",
            "attributeNames": ["fake_attribute"],
            "categories": ["INVALID_ATTRIBUTE"],
            "enforcements": {
                "actions": [{"action": "ATTRIBUTE_SUPPRESSED"}],
                "exemption": {"status": "NOT_EXEMPT"},
            },
        }
    ],
}
_SANDBOX_BAD_SKU: Final = {
    "errors": [{"code": "BAD_REQUEST", "message": "Invalid input", "details": "Invalid input"}]
}
_SANDBOX_ITEM: Final = {
    "sku": "GM-ZDPI-9B4E",
    "summaries": [
        {
            "marketplaceId": "ATVPDKIKX0DER",
            "asin": "B071VG5N9D",
            "productType": "LUGGAGE",
            "conditionType": "new_new",
            "status": ["BUYABLE"],
            "itemName": "Hardside Carry-On Spinner Suitcase Luggage",
            "createdDate": "2021-02-01T00:00:00Z",
            "lastUpdatedDate": "2021-03-01T00:00:00Z",
            "mainImage": {
                "link": "https://www.example.com/luggage.png",
                "height": 500,
                "width": 500,
            },
        }
    ],
    "offers": [
        {
            "marketplaceId": "ATVPDKIKX0DER",
            "offerType": "B2C",
            "price": {"currencyCode": "USD", "amount": "100.00"},
            "audience": {"value": "ALL", "displayName": "Sell on Amazon"},
        }
    ],
    "fulfillmentAvailability": [{"fulfillmentChannelCode": "DEFAULT", "quantity": 100}],
}


@define
class _Call:
    """One listings request, parsed."""

    method: str
    sku: str
    market: str
    mode: str | None
    included: list[str]
    headers: dict[str, str]


class _Bucket:
    """A non-blocking token bucket: take one token or say no."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False


def _issue(
    code: str,
    message: str,
    attribute: str | None = None,
    *,
    severity: str = "ERROR",
    category: str | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {"code": code, "message": message, "severity": severity}
    if attribute is not None:
        issue["attributeNames"] = [attribute]
    issue["categories"] = [category] if category else []
    return issue


def _missing(name: str) -> dict[str, Any]:
    return _issue(
        "90220", f"'{name}' is required but not supplied.", name, category="MISSING_ATTRIBUTE"
    )


def _invalid(name: str, why: str, category: str = "INVALID_ATTRIBUTE") -> dict[str, Any]:
    return _issue("90000900", f"The attributes are invalid. {why}", name, category=category)


class AmazonEmulator(Emulator):
    """
    Login with Amazon plus the Listings Items API, in-process or on a loopback port.

    Args:
        seller_id: The only seller the app is authorized for (others get 403).
        client_id: The LWA client id the app must present.
        client_secret: Its client secret.
        refresh_tokens: Valid refresh tokens (`revoke` removes one).
        clock: Token expiry and rate limiting use it (a `ManualClock` in tests).
        token_ttl: Seconds an access token lives (3600 at Amazon).
        throttle: Enforce rate limits (switch off for benchmarks).
        rate_limits: Overrides, ``{operation: (rate, burst)}`` (see ``DEFAULT_LIMITS``).
        sandbox: Answer every request as the static sandbox does.
        faults: Fault plan (see `Faults`).
        latency: Seconds added to each answer.
        sleep: How latency is spent.

    Example:
        >>> from catalogsync.testing import AmazonEmulator, ManualClock
        >>> amazon = AmazonEmulator(clock=ManualClock())
        >>> client = amazon.client()
        >>> r = client.post("https://api.amazon.com/auth/o2/token", data={
        ...     "grant_type": "refresh_token", "refresh_token": amazon.refresh_token,
        ...     "client_id": amazon.client_id, "client_secret": amazon.client_secret})
        >>> r.json()["token_type"], r.json()["expires_in"]
        ('bearer', 3600)

    .. versionadded:: 0.1.0
    """

    base_url = "https://sellingpartnerapi-na.amazon.com"
    DEFAULT_LIMITS = DEFAULT_LIMITS

    def __init__(
        self,
        *,
        seller_id: str = "A1EMULATEDSELLER",
        client_id: str = "amzn1.application-oa2-client.emulator",
        client_secret: str = "emulator-lwa-client-secret",  # noqa: S107 - a fake
        refresh_tokens: Iterable[str] = ("Atzr|emulator-refresh-token",),
        clock: Clock | None = None,
        token_ttl: float = 3600.0,
        throttle: bool = True,
        rate_limits: Mapping[str, tuple[float, float]] | None = None,
        sandbox: bool = False,
        faults: Faults | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(faults=faults, latency=latency, sleep=sleep)
        self.seller_id = seller_id
        self.client_id = client_id
        self.client_secret = client_secret
        self._refresh = set(refresh_tokens)
        self.refresh_token = next(iter(self._refresh), "")
        self.clock = clock or SystemClock()
        self.token_ttl = token_ttl
        self.throttle = throttle
        self.limits = dict(DEFAULT_LIMITS) | dict(rate_limits or {})
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._tokens: dict[str, float] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._issues: dict[str, list[dict[str, Any]]] = {}
        #: ``(marketplace id, sku)`` -> ``{"productType", "requirements", "attributes",
        #: "createdDate", "lastUpdatedDate"}``: what Amazon holds.
        self.listings: dict[tuple[str, str], dict[str, Any]] = {}
        #: ``(method, path, status, request id)`` of every answer, in order.
        self.answers: list[tuple[str, str, int, str]] = []
        #: How many token exchanges succeeded.
        self.tokens_issued = 0

    # -- test helpers ---------------------------------------------------------------------------

    def listing(self, sku: str, marketplace_id: str | None = None) -> dict[str, Any] | None:
        """The listing of *sku* (in the only marketplace used, unless one is named)."""
        with self._lock:
            found = [
                v for (m, s), v in self.listings.items() if s == sku and marketplace_id in (None, m)
            ]
        return found[0] if len(found) == 1 else None

    def attribute(self, sku: str, name: str, key: str = "value") -> Any:
        """The first entry's *key* of attribute *name* of *sku*'s listing (``None`` if absent)."""
        listing = self.listing(sku)
        entries = (listing or {}).get("attributes", {}).get(name) or [{}]
        return entries[0].get(key)

    def orphans(self) -> list[str]:
        """SKUs of child listings whose parent SKU is not a parent listing in its marketplace."""
        with self._lock:
            out = []
            for (market, sku), listing in self.listings.items():
                rel = listing["attributes"].get("child_parent_sku_relationship") or [{}]
                parent = rel[0].get("parent_sku")
                if parent is None:
                    continue
                found = self.listings.get((market, parent))
                level = ((found or {}).get("attributes", {}).get("parentage_level") or [{}])[0]
                if level.get("value") != "parent":
                    out.append(sku)
            return sorted(out)

    def add_issue(
        self,
        sku: str,
        *,
        code: str,
        message: str,
        severity: str = "WARNING",
        attribute: str | None = None,
        category: str | None = None,
    ) -> None:
        """Make every write of *sku* report this issue (``ERROR`` makes it ``INVALID``)."""
        with self._lock:
            self._issues.setdefault(sku, []).append(
                _issue(code, message, attribute, severity=severity, category=category)
            )

    def clear_issues(self, sku: str | None = None) -> None:
        """Forget the issues added with `add_issue` (for *sku*, or all): the seller fixed them."""
        with self._lock:
            if sku is None:
                self._issues.clear()
            else:
                self._issues.pop(sku, None)

    def revoke(self, refresh_token: str | None = None) -> None:
        """Revoke a refresh token (the seller removed the authorization): next exchange fails."""
        with self._lock:
            self._refresh.discard(refresh_token or self.refresh_token)

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, float("-inf"))

    def throttled(self) -> int:
        """How many requests were answered 429."""
        with self._lock:
            return sum(1 for *_, status, _rid in self.answers if status == 429)  # noqa: PLR2004

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Amazon would."""
        rid = self._request_id()
        path = request.url.path
        if request.method == "POST" and path.endswith("/auth/o2/token"):
            response = self._token(request)
        elif path.startswith(_LISTINGS + "/"):
            response = self._listings(request)
        else:
            response = self._error(404, "NotFound", "Resource not found.")
        response.headers["x-amzn-RequestId"] = rid
        with self._lock:
            self.answers.append((request.method, path, response.status_code, rid))
        return response

    def _dispatch(self, request: httpx.Request, *, in_process: bool) -> httpx.Response:
        response = super()._dispatch(request, in_process=in_process)
        if "x-amzn-requestid" in response.headers:
            return response
        # An injected fault answered instead of `handle`: dress it as Amazon would (request id,
        # an ErrorList for error statuses) so clients and contract checks see the real shape.
        rid = self._request_id()
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP status
            code = "InternalFailure" if response.status_code == 500 else "ServiceUnavailable"  # noqa: PLR2004
            body = {
                "errors": [
                    {"code": code, "message": "We encountered an internal error. Please try again."}
                ]
            }
            response = self._json(response.status_code, body)
        response.headers["x-amzn-RequestId"] = rid
        with self._lock:
            self.answers.append((request.method, request.url.path, response.status_code, rid))
        return response

    def _request_id(self) -> str:
        n = next(self._ids)
        return f"{n:08x}-e3a1-4c0d-8e5a-{n:012x}"

    @staticmethod
    def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.Response(
            status,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )

    def _error(
        self, status: int, code: str, message: str, details: str | None = None
    ) -> httpx.Response:
        error: dict[str, str] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        return self._json(status, {"errors": [error]})

    # -- Login with Amazon ----------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return self._json(
                400, {"error": "unsupported_grant_type", "error_description": "grant_type"}
            )
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return self._json(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        with self._lock:
            if form.get("refresh_token") not in self._refresh:
                return self._json(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "The request has an invalid grant parameter : "
                        "refresh_token",
                    },
                )
            self.tokens_issued += 1
            token = (
                "Atza|emulated-"
                + hashlib.sha256(f"{self.tokens_issued}:{self.seller_id}".encode()).hexdigest()[:40]
            )
            self._tokens[token] = self.clock.monotonic() + self.token_ttl
        return self._json(
            200,
            {
                "access_token": token,
                "refresh_token": form["refresh_token"],
                "token_type": "bearer",
                "expires_in": int(self.token_ttl),
            },
        )

    # -- Listings Items -------------------------------------------------------------------------

    def _authorize(self, request: httpx.Request) -> httpx.Response | None:
        token = request.headers.get("x-amz-access-token")
        with self._lock:
            expiry = self._tokens.get(token or "")
        if expiry is None:
            return self._error(403, "Unauthorized", _DENIED, "")
        if self.clock.monotonic() >= expiry:
            return self._error(
                403, "Unauthorized", _DENIED, "The access token you provided has expired."
            )
        return None

    def _listings(self, request: httpx.Request) -> httpx.Response:
        routed = self._route(request)
        if isinstance(routed, httpx.Response):
            return routed
        call, sandbox, markets = routed
        if sandbox:
            return self._sandbox(call, markets)
        if call.method == "GET":
            return self._get(call)
        if call.method == "DELETE":
            with self._lock:
                self.listings.pop((call.market, call.sku), None)
            return self._json(200, self._submission(call.sku, "ACCEPTED", []), call.headers)
        try:
            body = json.loads(request.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._bad(call.headers, "The request body is not a JSON object.")
        if call.method == "PUT":
            return self._put(call, body)
        return self._patch(call, body)

    def _route(self, request: httpx.Request) -> httpx.Response | tuple[_Call, bool, list[str]]:
        """Authorize, match the path, throttle and check the query, in Amazon's order."""
        refused = self._authorize(request)
        if refused is not None:
            return refused
        raw = request.url.raw_path.split(b"?", 1)[0].decode()
        segments = [unquote(s) for s in raw[len(_LISTINGS) + 1 :].split("/")]
        operation = _OPS.get(request.method)
        if len(segments) != 2 or operation is None or not all(segments):  # noqa: PLR2004
            # What Amazon's gateway does with a path no operation matches (an unescaped "/").
            return self._error(403, "Unauthorized", _DENIED, "")
        seller, sku = segments
        if seller != self.seller_id:
            return self._error(403, "Unauthorized", _DENIED, "")
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        markets = [m for v in query.get("marketplaceIds", []) for m in v.split(",") if m]
        mode = query.get("mode", [None])[0]
        included = [i for v in query.get("includedData", []) for i in v.split(",") if i]
        sandbox = self.sandbox or request.url.host.startswith("sandbox.")
        if not self._take(seller, operation, mode, sandbox=sandbox):
            return self._error(429, "QuotaExceeded", _QUOTA, "")
        headers = {"x-amzn-RateLimit-Limit": self._limit_header(operation, mode, sandbox=sandbox)}
        problem = self._check_query(request.method, markets, mode, included)
        if problem is not None:
            return self._bad(headers, problem)
        return _Call(request.method, sku, markets[0], mode, included, headers), sandbox, markets

    @staticmethod
    def _check_query(
        method: str, markets: list[str], mode: str | None, included: list[str]
    ) -> str | None:
        allowed = _GET_INCLUDED if method == "GET" else _WRITE_INCLUDED
        bad = [i for i in included if i not in allowed]
        problems = [
            (not markets, "Missing required 'marketplaceIds'."),
            (
                len(markets) > 1 and method in {"PUT", "DELETE"},
                "Only one marketplace can be given in 'marketplaceIds' for this operation.",
            ),
            (
                mode is not None and (mode != _PREVIEW or method not in {"PUT", "PATCH"}),
                f"Invalid 'mode': {mode}.",
            ),
            (
                method == "DELETE" and bool(included),
                "'includedData' is not supported for this operation.",
            ),
            (bool(bad), f"Invalid 'includedData' values: {', '.join(bad)}."),
            (
                "identifiers" in included and mode != _PREVIEW,
                "'identifiers' can only be requested when 'mode' is VALIDATION_PREVIEW.",
            ),
        ]
        return next((message for failed, message in problems if failed), None)

    def _limit_key(self, operation: str, mode: str | None) -> str:
        return f"{operation}:{_PREVIEW}" if mode == _PREVIEW else operation

    def _rate(self, operation: str, mode: str | None, *, sandbox: bool) -> tuple[float, float]:
        if sandbox:
            return SANDBOX_LIMIT
        return self.limits.get(self._limit_key(operation, mode), (5.0, 5.0))

    def _limit_header(self, operation: str, mode: str | None, *, sandbox: bool) -> str:
        return f"{self._rate(operation, mode, sandbox=sandbox)[0]:g}"

    def _take(self, seller: str, operation: str, mode: str | None, *, sandbox: bool) -> bool:
        if not self.throttle:
            return True
        key = (seller, self._limit_key(operation, mode))
        now = self.clock.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                rate, burst = self._rate(operation, mode, sandbox=sandbox)
                bucket = self._buckets[key] = _Bucket(rate, burst, now)
            return bucket.take(now)

    def _bad(self, headers: Mapping[str, str], message: str) -> httpx.Response:
        return self._json(400, {"errors": [{"code": "InvalidInput", "message": message}]}, headers)

    def _submission(
        self,
        sku: str,
        status: str,
        issues: list[dict[str, Any]],
        identifiers: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sku": sku,
            "status": status,
            "submissionId": hashlib.sha256(f"{sku}:{next(self._ids)}".encode()).hexdigest()[:32],
            "issues": issues,
        }
        if identifiers is not None:
            body["identifiers"] = identifiers
        return body

    # -- the static sandbox ---------------------------------------------------------------------

    def _sandbox(self, call: _Call, markets: list[str]) -> httpx.Response:
        if call.sku == "BadSKU":
            return self._json(400, _SANDBOX_BAD_SKU, call.headers)
        if call.method == "GET":
            return self._json(200, _SANDBOX_ITEM, call.headers)
        matches_preview = (
            call.mode == _PREVIEW
            and markets == ["ATVPDKIKX0DER"]
            and call.included == ["identifiers", "issues"]
        )
        if call.method in {"PUT", "PATCH"} and matches_preview:
            if call.sku == "VALIDATION_VALID":
                return self._json(200, _SANDBOX_VALID, call.headers)
            if call.sku == "VALIDATION_INVALID":
                invalid = _SANDBOX_INVALID_PUT if call.method == "PUT" else _SANDBOX_INVALID_PATCH
                return self._json(200, invalid, call.headers)
        return self._json(200, _SANDBOX_ACCEPTED, call.headers)

    # -- the dynamic service --------------------------------------------------------------------

    def _get(self, call: _Call) -> httpx.Response:
        sku, market = call.sku, call.market
        included = call.included or ["summaries"]
        with self._lock:
            listing = copy.deepcopy(self.listings.get((market, sku)))
        if listing is None:
            message = f"SKU '{sku}' not found in marketplace {market}"
            return self._json(
                404, {"errors": [{"code": "NOT_FOUND", "message": message}]}, call.headers
            )
        attributes = listing["attributes"]
        item: dict[str, Any] = {"sku": sku}
        if "summaries" in included:
            summary: dict[str, Any] = {
                "marketplaceId": market,
                "asin": _asin(sku),
                "productType": listing["productType"],
                "status": _buyable(listing),
                "createdDate": listing["createdDate"],
                "lastUpdatedDate": listing["lastUpdatedDate"],
            }
            name = _first(attributes, "item_name")
            if isinstance(name, str):
                summary["itemName"] = name
            condition = _first(attributes, "condition_type")
            if isinstance(condition, str):
                summary["conditionType"] = condition
            item["summaries"] = [summary]
        if "attributes" in included:
            item["attributes"] = attributes
        if "issues" in included:
            item["issues"] = []
        if "offers" in included:
            item["offers"] = [
                {
                    "marketplaceId": market,
                    "offerType": "B2C",
                    "price": {"currencyCode": o.get("currency", ""), "amount": str(price)},
                }
                for o in attributes.get("purchasable_offer") or ()
                if (price := _price(o)) is not None
            ]
        if "fulfillmentAvailability" in included:
            item["fulfillmentAvailability"] = [
                {"fulfillmentChannelCode": f.get("fulfillment_channel_code", "DEFAULT")}
                | ({"quantity": f["quantity"]} if "quantity" in f else {})
                for f in attributes.get("fulfillment_availability") or ()
            ]
        if "productTypes" in included:
            item["productTypes"] = [
                {"marketplaceId": market, "productType": listing["productType"]}
            ]
        return self._json(200, item, call.headers)

    def _validate(
        self, market: str, requirements: str, attributes: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        for name, entries in attributes.items():
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                issues.append(_invalid(name, "Each attribute must be an array of objects."))
                continue
            others = {e.get("marketplace_id") for e in entries} - {None, market}
            if others:
                issues.append(_invalid(name, f"marketplace_id {min(others)} is not {market}."))
        if requirements != "LISTING_OFFER_ONLY" and not _first(attributes, "item_name"):
            issues.append(_missing("item_name"))
        if _first(attributes, "parentage_level") == "child" and not attributes.get(
            "child_parent_sku_relationship"
        ):
            issues.append(_missing("child_parent_sku_relationship"))
        return issues + _offer_issues(attributes)

    def _answer(
        self, call: _Call, issues: list[dict[str, Any]], store: Callable[[], None]
    ) -> httpx.Response:
        sku = call.sku
        with self._lock:
            issues = issues + copy.deepcopy(self._issues.get(sku, []))
        invalid = any(i["severity"] == "ERROR" for i in issues)
        if call.mode == _PREVIEW:
            identifiers = None
            if "identifiers" in call.included:
                identifiers = (
                    [] if invalid else [{"marketplaceId": call.market, "asin": _asin(sku)}]
                )
            body = self._submission(sku, "INVALID" if invalid else "VALID", issues, identifiers)
            return self._json(200, body, call.headers)
        if not invalid:
            store()
        status = "INVALID" if invalid else "ACCEPTED"
        return self._json(200, self._submission(sku, status, issues), call.headers)

    def _put(self, call: _Call, body: dict[str, Any]) -> httpx.Response:
        product_type = body.get("productType")
        attributes = body.get("attributes")
        requirements = body.get("requirements", "LISTING")
        if not isinstance(product_type, str) or not product_type:
            return self._bad(call.headers, "Missing required 'productType'.")
        if not isinstance(attributes, dict):
            return self._bad(call.headers, "Missing required 'attributes' object.")
        if requirements not in _REQUIREMENTS:
            return self._bad(call.headers, f"Invalid 'requirements': {requirements}.")
        issues = self._validate(call.market, requirements, attributes)

        def store() -> None:
            now = _now(self.clock)
            with self._lock:
                old = self.listings.get((call.market, call.sku))
                self.listings[(call.market, call.sku)] = {
                    "productType": product_type,
                    "requirements": requirements,
                    "attributes": copy.deepcopy(attributes),
                    "createdDate": old["createdDate"] if old else now,
                    "lastUpdatedDate": now,
                }

        return self._answer(call, issues, store)

    def _patch(self, call: _Call, body: dict[str, Any]) -> httpx.Response:
        product_type = body.get("productType")
        patches = body.get("patches")
        problem = _patch_problem(product_type, patches)
        if problem is not None:
            return self._bad(call.headers, problem)
        assert isinstance(patches, list)  # noqa: S101 - checked by _patch_problem
        with self._lock:
            current = copy.deepcopy(self.listings.get((call.market, call.sku)))
        if current is None:
            issue = _issue(
                "NOT_FOUND",
                f"No listing exists for SKU '{call.sku}'; create it with putListingsItem first "
                "(emulator code).",
            )
            return self._answer(call, [issue], lambda: None)
        if current["productType"] != product_type:
            issue = _issue(
                "PRODUCT_TYPE_MISMATCH",
                f"The product type {product_type} does not match the listing's "
                f"{current['productType']} (emulator code).",
            )
            return self._answer(call, [issue], lambda: None)
        attributes = current["attributes"]
        for patch in patches:
            _apply(attributes, patch)
        issues = self._validate(call.market, current["requirements"], attributes)

        def store() -> None:
            with self._lock:
                current["lastUpdatedDate"] = _now(self.clock)
                self.listings[(call.market, call.sku)] = current

        return self._answer(call, issues, store)


def _offer_issues(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    issues = []
    for offer in attributes.get("purchasable_offer") or ():
        price = _price(offer) if isinstance(offer, dict) else None
        if price is None or price <= 0:
            issues.append(
                _invalid(
                    "purchasable_offer", "The price must be a positive number.", "INVALID_PRICE"
                )
            )
    for stock in attributes.get("fulfillment_availability") or ():
        quantity = stock.get("quantity", 0) if isinstance(stock, dict) else None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            issues.append(
                _invalid("fulfillment_availability", "The quantity must be an integer >= 0.")
            )
    return issues


def _patch_problem(product_type: Any, patches: Any) -> str | None:
    """What is wrong with a ``ListingsItemPatchRequest`` body, if anything."""
    if not isinstance(product_type, str) or not product_type:
        return "Missing required 'productType'."
    if not isinstance(patches, list) or not patches:
        return "'patches' must be a non-empty array."
    for patch in patches:
        if not isinstance(patch, dict) or patch.get("op") not in _PATCH_OPS:
            return "Each patch needs an 'op' of add, replace, merge or delete."
        path = patch.get("path")
        if not isinstance(path, str) or not path.startswith("/attributes/"):
            return "Each patch needs a 'path' under /attributes/."
        name = path.removeprefix("/attributes/")
        if not name or "/" in name:
            return (
                "Only top-level listings item attributes can be patched. Patching nested "
                "attributes is not supported."
            )
        value = patch.get("value")
        if patch["op"] != "delete" and not isinstance(value, list):
            return "'value' must be an array for add, replace and merge."
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)
        ):
            return "'value' must be an array of objects."
    return None


def _apply(attributes: dict[str, Any], patch: Mapping[str, Any]) -> None:
    name = str(patch["path"]).removeprefix("/attributes/")
    op, value = patch["op"], patch.get("value")
    if op in {"add", "replace"}:
        attributes[name] = copy.deepcopy(value)
    elif op == "merge":
        merged = list(attributes.get(name) or [])
        for new in value or ():
            for i, old in enumerate(merged):
                if all(
                    old.get(k) == new.get(k)
                    for k in ("marketplace_id", "language_tag", "fulfillment_channel_code")
                    if k in new
                ):
                    merged[i] = {**old, **new}
                    break
            else:
                merged.append(copy.deepcopy(new))
        attributes[name] = merged
    elif value:
        kept = [
            e
            for e in attributes.get(name) or ()
            if not any(all(e.get(k, v) == v for k, v in sel.items()) for sel in value)
        ]
        if kept:
            attributes[name] = kept
        else:
            attributes.pop(name, None)
    else:
        attributes.pop(name, None)


def _first(attributes: Mapping[str, Any], name: str, key: str = "value") -> Any:
    entries = attributes.get(name)
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return entries[0].get(key)
    return None


def _price(offer: Mapping[str, Any]) -> float | None:
    try:
        value = offer["our_price"][0]["schedule"][0]["value_with_tax"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _buyable(listing: Mapping[str, Any]) -> list[str]:
    attributes = listing["attributes"]
    quantity = (attributes.get("fulfillment_availability") or [{}])[0].get("quantity", 0)
    has_offer = any(_price(o) for o in attributes.get("purchasable_offer") or ())
    buyable = has_offer and isinstance(quantity, int) and quantity > 0
    return ["BUYABLE", "DISCOVERABLE"] if buyable else ["DISCOVERABLE"]


def _asin(sku: str) -> str:
    return "B0" + hashlib.sha256(sku.encode()).hexdigest()[:8].upper()


def _now(clock: Clock) -> str:
    return clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
