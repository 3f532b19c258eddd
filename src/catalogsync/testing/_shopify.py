"""
An emulator of the Shopify Admin GraphQL API, for tests and demos.

Rule 1: it speaks the real wire format. Requests are GraphQL documents parsed with graphql-core;
given the official schema (an introspection JSON, never shipped with catalogsync) it validates
documents and variables like Shopify does, and reports deprecated use in
``X-Shopify-API-Deprecated-Reason``.

Rule 2: it keeps Shopify's semantics where the adapter depends on them: ``productSet`` replaces
list fields whole and upserts by id, handle or custom id; GIDs; unique handles and custom ids;
user errors with ``field`` paths and codes; statuses; manual collections; inventory levels per
location with ``changeFromQuantity`` and ``@idempotent`` keys; translations checked against
content digests; the cost bucket (both throttle forms); 401 for bad or expired tokens; the
client-credentials grant; version fall-forward.

Rule 3: its state is plain data you can assert on (`products`, `collections`, `inventory`,
`translations`) and it counts what it was asked (`calls`, `cost_spent`, `throttles`). Requests
find products and collections through indexes (by handle, metafield value, collection, inventory
item), so their cost does not grow with the shop; the requests keep them up to date, and a test
that changes the state by hand calls `ShopifyEmulator.reindex` afterwards.

Where Shopify's behaviour is not documented, the emulator picks the strict reading and says so
in the docstring of the method concerned.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from attrs import define, field

from .._clock import Clock, SystemClock
from ._graphql import GraphQLRequestError, Prepared, load_schema, prepare
from ._http import Emulator, Faults


__all__ = ["EmulatedCollection", "EmulatedProduct", "EmulatedVariant", "ShopifyEmulator"]

_GRAPHQL_PATH: Final = re.compile(r"^/admin/api/([^/]+)/graphql\.json$")
_TOKEN_PATH: Final = "/admin/oauth/access_token"  # noqa: S105 - a path, not a secret
_MAX_QUERY_COST: Final = 1000
_MAX_VARIANTS: Final = 2048
_MAX_OPTIONS: Final = 3
_MAX_TEXT: Final = 255
_MAX_QUANTITY: Final = 1_000_000_000
_REASONS: Final = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
_STATUSES: Final = frozenset({"ACTIVE", "ARCHIVED", "DRAFT", "UNLISTED"})
_THROTTLE_DOC: Final = "https://shopify.dev/api/usage/rate-limits"
_UNAUTHORIZED: Final = (
    "[API] Invalid API key or access token (unrecognized login or wrong password)"
)

_ROOTS: Final = {
    "query": {
        "shop",
        "location",
        "metafieldDefinitions",
        "productByIdentifier",
        "productByHandle",
        "product",
        "collectionByIdentifier",
        "collectionByHandle",
        "collection",
        "translatableResource",
    },
    "mutation": {
        "productSet",
        "productUpdate",
        "productDelete",
        "collectionCreate",
        "collectionUpdate",
        "collectionDelete",
        "inventorySetQuantities",
        "translationsRegister",
        "metafieldDefinitionCreate",
    },
}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[\W_]+", "-", text.lower()).strip("-") or "product"


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _option_values(variant: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(o.get("optionName") or o.get("name")): str(o.get("name"))
        for o in variant.get("optionValues") or ()
    }


_PRODUCT_SCALARS: Final = (
    ("descriptionHtml", "description_html"),
    ("vendor", "vendor"),
    ("productType", "product_type"),
    ("status", "status"),
)
_VARIANT_SCALARS: Final = (
    ("sku", "sku"),
    ("barcode", "barcode"),
    ("taxable", "taxable"),
    ("inventoryPolicy", "inventory_policy"),
)


def _set_variant_fields(variant: EmulatedVariant, data: Mapping[str, Any]) -> None:
    for key, attr in (("price", "price"), ("compareAtPrice", "compare_at_price")):
        if key in data:
            amount = _money(data[key])
            setattr(variant, attr, str(amount) if amount is not None else None)
    for key, attr in _VARIANT_SCALARS:
        if key in data:
            setattr(variant, attr, data[key])
    item = data.get("inventoryItem") or {}
    if "tracked" in item:
        variant.tracked = bool(item["tracked"])
    if "sku" in item:
        variant.sku = item["sku"]
    if data.get("file"):
        variant.file = data["file"].get("originalSource")


@define
class EmulatedVariant:
    """A variant as the emulator stores it."""

    id: str
    inventory_item_id: str
    options: dict[str, str]
    price: str = "0.00"
    compare_at_price: str | None = None
    sku: str | None = None
    barcode: str | None = None
    taxable: bool = True
    inventory_policy: str = "DENY"
    tracked: bool = False
    file: str | None = None


@define
class EmulatedProduct:
    """A product as the emulator stores it (list fields are what the last productSet sent)."""

    id: str
    handle: str
    title: str
    status: str = "ACTIVE"
    description_html: str | None = None
    vendor: str | None = None
    product_type: str | None = None
    tags: list[str] = field(factory=list)
    seo: dict[str, Any] = field(factory=dict)
    options: list[tuple[str, list[str]]] = field(factory=list)
    variants: list[EmulatedVariant] = field(factory=list)
    collections: list[str] = field(factory=list)
    metafields: dict[tuple[str, str], tuple[str, str]] = field(factory=dict)
    files: list[str] = field(factory=list)

    def variant(self, variant_id: str) -> EmulatedVariant | None:
        """The variant with *variant_id*, if it is on this product."""
        return next((v for v in self.variants if v.id == variant_id), None)


@define
class EmulatedCollection:
    """A manual collection."""

    id: str
    handle: str
    title: str
    description_html: str | None = None
    seo: dict[str, Any] = field(factory=dict)
    metafields: dict[tuple[str, str], tuple[str, str]] = field(factory=dict)
    image: str | None = None


class _Bucket:
    """Shopify's leaky bucket of cost points, on the emulator's clock."""

    def __init__(self, size: float, rate: float, clock: Clock) -> None:
        self.size = float(size)
        self.rate = float(rate)
        self.clock = clock
        self._available = float(size)
        self._stamp = clock.monotonic()

    def available(self) -> float:
        now = self.clock.monotonic()
        self._available = min(self.size, self._available + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._available

    def take(self, points: float) -> None:
        self._available = self.available() - points

    def give(self, points: float) -> None:
        self._available = min(self.size, self.available() + points)

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": round(self.available(), 3),
            "restoreRate": self.rate,
        }


class _UserErrors:
    """Collects ``userErrors`` entries."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: Sequence[Any] | None, message: str, code: str | None = None) -> None:
        entry: dict[str, Any] = {
            "field": [str(p) for p in path] if path is not None else None,
            "message": message,
        }
        if code is not None:
            entry["code"] = code
        self.items.append(entry)

    def __bool__(self) -> bool:
        return bool(self.items)


def _add(index: dict[Any, set[str]], key: Any, gid: str) -> None:
    index.setdefault(key, set()).add(gid)


def _discard(index: dict[Any, set[str]], key: Any, gid: str) -> None:
    found = index.get(key)
    if found is not None:
        found.discard(gid)
        if not found:
            del index[key]


class _Lookups:
    """
    One kind of resource (products or collections) by handle and by metafield value.

    Answers are GIDs. Where several resources match, the one added first wins, as a scan of the
    emulator's dict (insertion order) would find it. Only string handles are indexed: a lookup
    by anything else cannot match a string, and the callers scan for it (schema-less requests).
    """

    def __init__(self) -> None:
        self._order: dict[str, int] = {}
        self._next = itertools.count()
        self._handles: dict[str, set[str]] = {}
        self._values: dict[tuple[Any, Any, Any], set[str]] = {}
        self._held: dict[str, tuple[Any, list[tuple[Any, Any, Any]]]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def put(
        self, gid: str, handle: Any, metafields: Mapping[tuple[str, str], tuple[str, str]]
    ) -> None:
        """Index *gid* as it is now: when it is added, and after any change of it."""
        self._unindex(gid)
        self._order.setdefault(gid, next(self._next))
        values = [(ns, key, value) for (ns, key), (_type, value) in metafields.items()]
        self._held[gid] = (handle, values)
        if isinstance(handle, str):
            _add(self._handles, handle, gid)
        for value in values:
            _add(self._values, value, gid)

    def drop(self, gid: str) -> None:
        """Forget *gid* (it was deleted)."""
        self._unindex(gid)
        self._order.pop(gid, None)

    def _unindex(self, gid: str) -> None:
        held = self._held.pop(gid, None)
        if held is None:
            return
        handle, values = held
        if isinstance(handle, str):
            _discard(self._handles, handle, gid)
        for value in values:
            _discard(self._values, value, gid)

    def has_handle(self, handle: str) -> bool:
        return handle in self._handles

    def by_handle(self, handle: str, but: str | None = None) -> str | None:
        """The first resource other than *but* whose handle is *handle*."""
        return self._first(self._handles.get(handle), but)

    def by_value(self, namespace: Any, key: Any, value: str, but: str | None = None) -> str | None:
        """The first resource other than *but* whose metafield *namespace*.*key* holds *value*."""
        return self._first(self._values.get((namespace, key, value)), but)

    def ordered(self, gids: Iterable[str]) -> list[str]:
        """*gids* in the order they were added."""
        return sorted(gids, key=self._order.__getitem__)

    def _first(self, gids: set[str] | None, but: str | None) -> str | None:
        if not gids:
            return None
        return min((g for g in gids if g != but), key=self._order.__getitem__, default=None)


class _Index:
    """
    What the requests look up, kept in step with the emulator's state so that no request scans
    the shop: products and collections by handle and metafield value, the members of each
    collection, the inventory items of the products, and the translation keys of each resource.
    """

    def __init__(self) -> None:
        self.products = _Lookups()
        self.collections = _Lookups()
        #: Collection GID -> GIDs of the products in it.
        self.members: dict[str, set[str]] = {}
        #: Inventory item GID -> GID of the product whose variant it is.
        self.items: dict[str, str] = {}
        #: Resource GID -> its ``(locale, key)`` translations, in the order they were added.
        self.translated: dict[str, dict[tuple[str, str], None]] = {}
        self.translations = 0
        self._links: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    @classmethod
    def of(cls, emulator: ShopifyEmulator) -> _Index:
        """The index of *emulator*'s state, built from scratch."""
        index = cls()
        for collection in emulator.collections.values():
            index.put_collection(collection)
        for product in emulator.products.values():
            index.put_product(product)
        for key in emulator.translations:
            index.translate(key)
        return index

    def matches(self, emulator: ShopifyEmulator) -> bool:
        """Whether *emulator* holds what was indexed (nothing was added or removed by hand)."""
        return (
            len(self.products) == len(emulator.products)
            and len(self.collections) == len(emulator.collections)
            and self.translations == len(emulator.translations)
        )

    def put_product(self, product: EmulatedProduct) -> None:
        """Index *product* as it is now: when it is added, and after any change of it."""
        self._unlink(product.id)
        self.products.put(product.id, product.handle, product.metafields)
        collections = tuple(product.collections)
        items = tuple(v.inventory_item_id for v in product.variants)
        self._links[product.id] = (collections, items)
        for cid in collections:
            _add(self.members, cid, product.id)
        for item in items:
            self.items[item] = product.id

    def drop_product(self, product_id: str) -> None:
        self._unlink(product_id)
        self.products.drop(product_id)

    def _unlink(self, product_id: str) -> None:
        collections, items = self._links.pop(product_id, ((), ()))
        for cid in collections:
            _discard(self.members, cid, product_id)
        for item in items:
            if self.items.get(item) == product_id:
                del self.items[item]

    def put_collection(self, collection: EmulatedCollection) -> None:
        """Index *collection* as it is now: when it is added, and after any change of it."""
        self.collections.put(collection.id, collection.handle, collection.metafields)

    def members_of(self, collection_id: str) -> list[str]:
        """The products in a collection, in the order they were added to the shop."""
        return self.products.ordered(self.members.get(collection_id, ()))

    def translate(self, key: tuple[str, str, str]) -> None:
        """A translation was stored under *key* ``(resource, locale, key)``."""
        resource, locale, name = key
        keys = self.translated.setdefault(resource, {})
        if (locale, name) not in keys:
            keys[(locale, name)] = None
            self.translations += 1

    def untranslate(self, resource: str) -> list[tuple[str, str, str]]:
        """Forget the translations of *resource*; return their keys."""
        keys = self.translated.pop(resource, {})
        self.translations -= len(keys)
        return [(resource, locale, name) for locale, name in keys]


class ShopifyEmulator(Emulator):
    """
    The Shopify Admin GraphQL API, in-process or on a loopback port.

    Example:
        >>> emulator = ShopifyEmulator(access_tokens=["shpat_emulated"])
        >>> client = emulator.client()
        >>> response = client.post(
        ...     "/admin/api/2026-10/graphql.json",
        ...     json={"query": "{ shop { name } }"},
        ...     headers={"X-Shopify-Access-Token": "shpat_emulated"},
        ... )
        >>> response.json()["data"]
        {'shop': {'name': 'Emulated shop'}}

    Args:
        schema: An introspection JSON (``.json`` or ``.json.gz``) to validate documents and
            variables against, or ``{version: path}`` to validate each request against the
            schema of the version it is served.
        access_tokens: Static tokens that are accepted.
        client_credentials: ``{client_id: client_secret}`` accepted by the client-credentials
            grant.
        token_ttl: Lifetime in seconds of tokens issued by the grant.
        supported_versions: Versions served as asked; any other is served by the oldest of
            these (Shopify's fall-forward).
        deprecated_reason: A value for ``X-Shopify-API-Deprecated-Reason`` on every answer
            (deprecated use found by schema validation is reported too).
        bucket_size: ``maximumAvailable`` of the cost bucket.
        restore_rate: ``restoreRate`` in points per second.
        throttle_status: 200 (``THROTTLED`` in ``errors``) or 429.
        shop: The ``*.myshopify.com`` domain.
        locations: Location GIDs that exist.
        locales: Enabled shop locales; the first is the primary one.
        clock: The clock the bucket and token expiry run on.
        faults: Shared fault plan.
        latency: Seconds added to every answer.
        sleep: How latency is spent.

    .. versionadded:: 0.1.0
    """

    base_url = "https://emulated.myshopify.com"

    def __init__(
        self,
        *,
        schema: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
        access_tokens: Iterable[str] = ("shpat_emulated",),
        client_credentials: Mapping[str, str] | None = None,
        token_ttl: float = 86399.0,
        supported_versions: Iterable[str] = ("2026-01", "2026-04", "2026-07", "2026-10"),
        deprecated_reason: str | None = None,
        bucket_size: float = 1000.0,
        restore_rate: float = 100.0,
        throttle_status: int = 200,
        shop: str = "emulated.myshopify.com",
        locations: Iterable[str] = ("gid://shopify/Location/1",),
        locales: Sequence[str] = ("en", "es", "fr", "de"),
        clock: Clock | None = None,
        faults: Faults | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(faults=faults, latency=latency, sleep=sleep)
        if throttle_status not in (200, 429):
            msg = "throttle_status must be 200 or 429"
            raise ValueError(msg)
        if isinstance(schema, Mapping):
            self._schemas: dict[str | None, str] = {k: os.fspath(v) for k, v in schema.items()}
        elif schema is not None:
            self._schemas = {None: os.fspath(schema)}
        else:
            self._schemas = {}
        self.access_tokens = set(access_tokens)
        self.client_credentials = dict(client_credentials or {})
        self.token_ttl = float(token_ttl)
        self.supported_versions = sorted(set(supported_versions))
        self.deprecated_reason = deprecated_reason
        self.throttle_status = throttle_status
        self.shop = shop
        self.locations = list(locations)
        self.locales = list(locales)
        self.clock = clock or SystemClock()
        self.bucket = _Bucket(bucket_size, restore_rate, self.clock)
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._requests = itertools.count(1)
        self._issued: dict[str, float] = {}
        self._idempotency: dict[str, tuple[str, Any]] = {}
        #: Number of mutation answers to lose *after* applying them (a crash on the way back).
        self.lose_responses = 0

        #: Products by GID.
        self.products: dict[str, EmulatedProduct] = {}
        #: Collections by GID.
        self.collections: dict[str, EmulatedCollection] = {}
        #: ``available`` quantity by ``(inventory item GID, location GID)``; a key means stocked.
        self.inventory: dict[tuple[str, str], int] = {}
        #: ``(resource GID, locale, key) -> (value, digest of the source it translates)``.
        self.translations: dict[tuple[str, str, str], tuple[str, str]] = {}
        #: Metafield definitions by ``(owner type, namespace, key)``.
        self.definitions: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._index = _Index()

        #: Root fields executed, by name.
        self.calls: Counter[str] = Counter()
        #: Cost points charged (actual cost), requested, and throttled answers.
        self.cost_spent = 0.0
        self.cost_requested = 0.0
        self.throttles = 0
        #: API versions requested and served, in order.
        self.versions: list[tuple[str, str]] = []

    # -- conveniences for tests -----------------------------------------------------------------

    def product_by_ref(
        self, ref: str, namespace: str = "catalogsync", key: str = "ref"
    ) -> EmulatedProduct | None:
        """The product whose custom-id metafield holds *ref*."""
        if not ref:  # "" also finds a product without the metafield
            return next(
                (
                    p
                    for p in self.products.values()
                    if p.metafields.get((namespace, key), ("", ""))[1] == ref
                ),
                None,
            )
        with self._lock:
            found = self._indexed().products.by_value(namespace, key, ref)
            return None if found is None else self.products.get(found)

    def collection_by_ref(
        self, ref: str, namespace: str = "catalogsync", key: str = "ref"
    ) -> EmulatedCollection | None:
        """The collection whose custom-id metafield holds *ref*."""
        if not ref:  # "" also finds a collection without the metafield
            return next(
                (
                    c
                    for c in self.collections.values()
                    if c.metafields.get((namespace, key), ("", ""))[1] == ref
                ),
                None,
            )
        with self._lock:
            found = self._indexed().collections.by_value(namespace, key, ref)
            return None if found is None else self.collections.get(found)

    def quantity(self, inventory_item_id: str, location_id: str | None = None) -> int | None:
        """The ``available`` quantity of an item at a location (the first one by default)."""
        return self.inventory.get((inventory_item_id, location_id or self.locations[0]))

    def members(self, collection_id: str) -> list[str]:
        """The products in a collection (in the order they were added to the shop)."""
        with self._lock:
            return self._indexed().members_of(collection_id)

    def reindex(self) -> None:
        """
        Rebuild the indexes requests look products and collections up in.

        Requests keep them up to date, and products, collections or translations added to or
        removed from the dicts by hand are noticed; call this after changing a handle, a
        metafield, a product's collections or its variants by hand.
        """
        with self._lock:
            self._index = _Index.of(self)

    def _indexed(self) -> _Index:
        """The indexes, rebuilt first if entries were added or removed by hand."""
        with self._lock:
            if not self._index.matches(self):
                self._index = _Index.of(self)
            return self._index

    def revoke(self, token: str) -> None:
        """Make *token* invalid (the next request with it gets 401)."""
        with self._lock:
            self.access_tokens.discard(token)
            self._issued.pop(token, None)

    def delete_product(self, product_id: str) -> None:
        """Delete a product as a merchant would in the admin."""
        with self._lock:
            self._indexed()
            self.remove_product(product_id)

    # -- HTTP -----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Shopify would."""
        path = request.url.path
        if path == _TOKEN_PATH and request.method == "POST":
            return self._grant(request)
        match = _GRAPHQL_PATH.match(path)
        if not match or request.method != "POST":
            return httpx.Response(404, json={"errors": "Not Found"})
        with self._lock:
            if not self._authorized(request.headers.get("x-shopify-access-token")):
                return httpx.Response(
                    401,
                    json={"errors": _UNAUTHORIZED},
                    headers={"www-authenticate": 'Basic Realm="Shopify API Authentication"'},
                )
            asked = match.group(1)
            served = asked if asked in self.supported_versions else self.supported_versions[0]
            self.versions.append((asked, served))
            headers = {
                "x-request-id": f"emu-{next(self._requests):06d}",
                "x-shopify-api-version": served,
            }
            try:
                body = json.loads(request.content or b"{}")
            except ValueError:
                return httpx.Response(
                    400, json={"errors": "Invalid JSON in request body"}, headers=headers
                )
            try:
                prepared = prepare(
                    body, schema=self._schema(served), known_roots=_ROOTS.__getitem__
                )
            except GraphQLRequestError as exc:
                return httpx.Response(200, json={"errors": exc.errors}, headers=headers)
            reasons = list(prepared.deprecations)
            if self.deprecated_reason:
                reasons.append(self.deprecated_reason)
            if reasons:
                headers["x-shopify-api-deprecated-reason"] = ", ".join(reasons)
            return self._run(prepared, served, headers)

    def _schema(self, version: str) -> Any:
        path = self._schemas.get(version) or self._schemas.get(None)
        return load_schema(path) if path else None

    def _authorized(self, token: str | None) -> bool:
        if token is None:
            return False
        if token in self.access_tokens:
            return True
        expires = self._issued.get(token)
        return expires is not None and self.clock.monotonic() < expires

    def _grant(self, request: httpx.Request) -> httpx.Response:
        content_type = request.headers.get("content-type", "")
        raw = request.content.decode() if request.content else ""
        form: dict[str, Any] = json.loads(raw) if "json" in content_type else dict(parse_qsl(raw))
        client_id = form.get("client_id")
        ok = (
            form.get("grant_type") == "client_credentials"
            and isinstance(client_id, str)
            and self.client_credentials.get(client_id) == form.get("client_secret")
        )
        if not ok:
            return httpx.Response(
                400,
                json={
                    "error": "invalid_client",
                    "error_description": "Client authentication failed",
                },
            )
        with self._lock:
            token = f"shpca_{hashlib.sha256(os.urandom(16)).hexdigest()[:32]}"
            self._issued[token] = self.clock.monotonic() + self.token_ttl
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "scope": "write_products,write_inventory,write_translations",
                "expires_in": int(self.token_ttl),
            },
        )

    def _run(self, prepared: Prepared, served: str, headers: dict[str, str]) -> httpx.Response:
        requested = prepared.cost()
        if requested > _MAX_QUERY_COST:
            return httpx.Response(
                200,
                json={
                    "errors": [
                        {
                            "message": f"Query cost is {requested}, which exceeds the single query "
                            f"max cost limit ({_MAX_QUERY_COST}).",
                            "extensions": {
                                "code": "MAX_COST_EXCEEDED",
                                "cost": requested,
                                "maxCost": _MAX_QUERY_COST,
                            },
                        }
                    ],
                    "extensions": self._cost(requested, None),
                },
                headers=headers,
            )
        if self.bucket.available() < requested:
            self.throttles += 1
            return httpx.Response(
                self.throttle_status,
                json={
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {"code": "THROTTLED", "documentation": _THROTTLE_DOC},
                        }
                    ],
                    "extensions": self._cost(requested, None),
                },
                headers=headers,
            )
        self.bucket.take(requested)
        ctx = _Context(self, served)
        root = ctx.root(prepared.kind)
        if prepared.kind == "mutation":
            problem = ctx.idempotency(prepared)
            if problem is not None:
                self.bucket.give(requested)
                return httpx.Response(200, json={"errors": [problem]}, headers=headers)
        replay = ctx.replayed(prepared)
        if replay is not None:
            data, actual = replay, requested
        else:
            executed = prepared.execute(root)
            data, actual = executed.data, requested - executed.refund
            ctx.remember(prepared, data)
            for name, _ in executed.roots:
                self.calls[name] += 1
        self.bucket.give(requested - actual)
        self.cost_spent += actual
        self.cost_requested += requested
        if prepared.kind == "mutation" and self.lose_responses > 0:
            self.lose_responses -= 1
            raise httpx.ReadTimeout("emulated: the answer was lost after the mutation applied")
        return httpx.Response(
            200, json={"data": data, "extensions": self._cost(requested, actual)}, headers=headers
        )

    def _cost(self, requested: float, actual: float | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": self.bucket.status(),
            }
        }

    # -- state helpers --------------------------------------------------------------------------

    def new_gid(self, kind: str) -> str:
        """A fresh GID of *kind*."""
        return f"gid://shopify/{kind}/{next(self._ids)}"

    def remove_product(self, product_id: str) -> EmulatedProduct | None:
        """Delete a product with its inventory levels and translations; return it."""
        product = self.products.pop(product_id, None)
        if product is None:
            return None
        self._index.drop_product(product_id)
        for variant in product.variants:
            self.drop_inventory(variant.inventory_item_id)
        self.drop_translations(product_id)
        return product

    def drop_inventory(self, item_id: str) -> None:
        """
        Forget the inventory levels of an item (its variant is gone).

        Levels are only ever stocked at the emulator's `locations` (requests naming another are
        refused), so those are the keys to drop.
        """
        for location in self.locations:
            self.inventory.pop((item_id, location), None)

    def drop_translations(self, resource: str) -> None:
        """Forget the translations of a deleted resource."""
        for key in self._index.untranslate(resource):
            self.translations.pop(key, None)


_Resource = TypeVar("_Resource", EmulatedProduct, EmulatedCollection)


class _Context:
    """One request's view of the emulator: resolvers for the root fields."""

    def __init__(self, emulator: ShopifyEmulator, served: str) -> None:
        self.emu = emulator
        self.served = served
        self.index = emulator._indexed()  # noqa: SLF001

    def root(self, kind: str) -> dict[str, Any]:
        if kind == "query":
            return {
                "__typename": "QueryRoot",
                "shop": self.shop,
                "location": self.location,
                "metafieldDefinitions": self.metafield_definitions,
                "productByIdentifier": lambda identifier: self.product_view(
                    self.find_product(identifier)
                ),
                "productByHandle": lambda handle: self.product_view(
                    self.find_product({"handle": handle})
                ),
                "product": lambda id: self.product_view(self.emu.products.get(id)),  # noqa: A006
                "collectionByIdentifier": lambda identifier: self.collection_view(
                    self.find_collection(identifier)
                ),
                "collectionByHandle": lambda handle: self.collection_view(
                    self.find_collection({"handle": handle})
                ),
                "collection": lambda id: self.collection_view(self.emu.collections.get(id)),  # noqa: A006
                "translatableResource": self.translatable_resource,
            }
        return {
            "__typename": "Mutation",
            "productSet": self.product_set,
            "productUpdate": self.product_update,
            "productDelete": self.product_delete,
            "collectionCreate": self.collection_create,
            "collectionUpdate": self.collection_update,
            "collectionDelete": self.collection_delete,
            "inventorySetQuantities": self.inventory_set_quantities,
            "translationsRegister": self.translations_register,
            "metafieldDefinitionCreate": self.metafield_definition_create,
        }

    # -- idempotency ------------------------------------------------------------------------------

    def _idempotency_key(self, prepared: Prepared) -> str | None:
        for node in prepared.fields(prepared.operation.selection_set):
            args = prepared.directive(node, "idempotent")
            if args is not None:
                return str(args.get("key"))
        return None

    def idempotency(self, prepared: Prepared) -> dict[str, Any] | None:
        """
        Refuse inventory mutations without an ``@idempotent`` key from 2026-04.

        Shopify's changelog lists inventoryAdjustQuantities and others; the emulator also
        requires the key for inventorySetQuantities, the strict reading.
        """
        names = {n.name.value for n in prepared.fields(prepared.operation.selection_set)}
        if (
            "inventorySetQuantities" in names
            and self.served >= "2026-04"
            and self._idempotency_key(prepared) is None
        ):
            return {
                "message": "The @idempotent directive is required for inventorySetQuantities",
                "extensions": {"code": "BAD_REQUEST"},
            }
        return None

    def replayed(self, prepared: Prepared) -> Any:
        key = self._idempotency_key(prepared)
        if key is None:
            return None
        seen = self.emu._idempotency.get(key)  # noqa: SLF001
        if seen is None:
            return None
        fingerprint, data = seen
        if fingerprint != self._fingerprint(prepared):
            return {
                name: {
                    "userErrors": [
                        {
                            "field": None,
                            "message": "The idempotency key was used with other parameters",
                            "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        }
                    ]
                }
                for name in {
                    n.name.value for n in prepared.fields(prepared.operation.selection_set)
                }
            }
        return data

    def remember(self, prepared: Prepared, data: Any) -> None:
        key = self._idempotency_key(prepared)
        if key is not None:
            self.emu._idempotency[key] = (self._fingerprint(prepared), data)  # noqa: SLF001

    @staticmethod
    def _fingerprint(prepared: Prepared) -> str:
        return json.dumps(
            {k: v for k, v in prepared.variables.items() if k != "idempotencyKey"},
            sort_keys=True,
            default=str,
        )

    # -- views ----------------------------------------------------------------------------------

    def shop(self) -> dict[str, Any]:
        return {
            "__typename": "Shop",
            "id": "gid://shopify/Shop/1",
            "name": "Emulated shop",
            "myshopifyDomain": self.emu.shop,
            "currencyCode": "USD",
        }

    def location(self, **args: Any) -> dict[str, Any] | None:
        location = args.get("id") or self.emu.locations[0]
        if location not in self.emu.locations:
            return None
        return {
            "__typename": "Location",
            "id": location,
            "name": f"Location {location.rsplit('/', 1)[-1]}",
            "isActive": True,
        }

    @staticmethod
    def connection(
        items: Sequence[Any],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        start = int(after[1:]) + 1 if after and after.startswith("c") and after[1:].isdigit() else 0
        window = list(items[start:])
        if first is not None:
            window = window[:first]
        elif last is not None:
            window = window[-last:]
        end = start + len(window)
        return {
            "nodes": window,
            "edges": [{"node": n, "cursor": f"c{start + i}"} for i, n in enumerate(window)],
            "pageInfo": {
                "hasNextPage": end < len(items),
                "hasPreviousPage": start > 0,
                "startCursor": f"c{start}" if window else None,
                "endCursor": f"c{end - 1}" if window else None,
            },
        }

    def variant_view(
        self, variant: EmulatedVariant, product: EmulatedProduct, position: int
    ) -> dict[str, Any]:
        return {
            "__typename": "ProductVariant",
            "id": variant.id,
            "sku": variant.sku,
            "barcode": variant.barcode,
            "price": variant.price,
            "compareAtPrice": variant.compare_at_price,
            "position": position,
            "title": " / ".join(variant.options.values()),
            "selectedOptions": [{"name": n, "value": v} for n, v in variant.options.items()],
            "inventoryItem": {
                "__typename": "InventoryItem",
                "id": variant.inventory_item_id,
                "tracked": variant.tracked,
            },
            "product": lambda: self.product_view(product),
        }

    def product_view(self, product: EmulatedProduct | None) -> dict[str, Any] | None:
        if product is None:
            return None
        variants = [
            self.variant_view(v, product, i) for i, v in enumerate(product.variants, start=1)
        ]
        return {
            "__typename": "Product",
            "id": product.id,
            "handle": product.handle,
            "title": product.title,
            "status": product.status,
            "descriptionHtml": product.description_html or "",
            "vendor": product.vendor or "",
            "productType": product.product_type or "",
            "tags": list(product.tags),
            "variants": lambda **kw: self.connection(variants, **kw),
            "collections": lambda **kw: self.connection(
                [
                    self.collection_view(self.emu.collections[c])
                    for c in product.collections
                    if c in self.emu.collections
                ],
                **kw,
            ),
            "metafield": lambda namespace=None, key="": self._metafield(
                product.metafields, namespace, key
            ),
        }

    def collection_view(self, collection: EmulatedCollection | None) -> dict[str, Any] | None:
        if collection is None:
            return None
        return {
            "__typename": "Collection",
            "id": collection.id,
            "handle": collection.handle,
            "title": collection.title,
            "descriptionHtml": collection.description_html or "",
            "metafield": lambda namespace=None, key="": self._metafield(
                collection.metafields, namespace, key
            ),
        }

    @staticmethod
    def _metafield(
        fields: Mapping[tuple[str, str], tuple[str, str]], namespace: str | None, key: str
    ) -> Any:
        found = fields.get((namespace or "", key))
        if found is None:
            return None
        return {
            "__typename": "Metafield",
            "namespace": namespace,
            "key": key,
            "type": found[0],
            "value": found[1],
        }

    # -- lookups --------------------------------------------------------------------------------

    def _custom(self, owner: str, identifier: Mapping[str, Any]) -> tuple[str, str, str]:
        custom = identifier.get("customId") or {}
        return owner, str(custom.get("namespace") or "app"), str(custom.get("key"))

    def find_product(self, identifier: Mapping[str, Any]) -> EmulatedProduct | None:
        return self._find("PRODUCT", identifier, self.emu.products, self.index.products)

    def find_collection(self, identifier: Mapping[str, Any]) -> EmulatedCollection | None:
        return self._find("COLLECTION", identifier, self.emu.collections, self.index.collections)

    def _find(
        self,
        owner: str,
        identifier: Mapping[str, Any],
        resources: Mapping[str, _Resource],
        lookups: _Lookups,
    ) -> _Resource | None:
        if identifier.get("id"):
            return resources.get(identifier["id"])
        if identifier.get("handle"):
            handle = identifier["handle"]
            if not isinstance(handle, str):  # only without a schema: compare as Python does
                return next((r for r in resources.values() if r.handle == handle), None)
            found = lookups.by_handle(handle)
            return None if found is None else resources.get(found)
        if identifier.get("customId"):
            _, ns, key = self._custom(owner, identifier)
            value = identifier["customId"].get("value")
            if not isinstance(value, str):
                # Stored values are strings: only a missing value (None) matches, and it
                # matches the first resource without the metafield.
                return next(
                    (
                        r
                        for r in resources.values()
                        if r.metafields.get((ns, key), ("", None))[1] == value
                    ),
                    None,
                )
            found = lookups.by_value(ns, key, value)
            return None if found is None else resources.get(found)
        return None

    @staticmethod
    def _handle_taken(
        handle: Any,
        target: _Resource | None,
        resources: Mapping[str, _Resource],
        lookups: _Lookups,
    ) -> bool:
        """Whether a resource other than *target* has *handle*."""
        if not isinstance(handle, str):  # only without a schema: compare as Python does
            return any(r.handle == handle and r is not target for r in resources.values())
        return lookups.by_handle(handle, but=target.id if target else None) is not None

    # -- metafield definitions --------------------------------------------------------------------

    def metafield_definitions(self, **args: Any) -> dict[str, Any]:
        owner_type, namespace, key = args.get("ownerType"), args.get("namespace"), args.get("key")
        found = [
            {
                "__typename": "MetafieldDefinition",
                "id": d["id"],
                "namespace": ns,
                "key": k,
                "type": {"name": d["type"]},
                "capabilities": {"uniqueValues": {"enabled": d["unique"], "eligible": True}},
            }
            for (owner, ns, k), d in self.emu.definitions.items()
            if owner == owner_type
            and (namespace is None or ns == namespace)
            and (key is None or k == key)
        ]
        return self.connection(
            found, first=args.get("first"), after=args.get("after"), last=args.get("last")
        )

    def metafield_definition_create(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        errors = _UserErrors()
        owner = definition.get("ownerType")
        ns = definition.get("namespace") or "app"
        key = definition.get("key")
        if not key:
            errors.add(["definition", "key"], "Key can't be blank", "BLANK")
        if (owner, ns, key) in self.emu.definitions:
            errors.add(
                ["definition", "key"], "Key is in use for this namespace and owner type", "TAKEN"
            )
        if errors:
            return {"createdDefinition": None, "userErrors": errors.items}
        type_name = str(definition.get("type"))
        caps = definition.get("capabilities") or {}
        unique = type_name == "id" or bool((caps.get("uniqueValues") or {}).get("enabled"))
        created = {
            "id": self.emu.new_gid("MetafieldDefinition"),
            "type": type_name,
            "unique": unique,
        }
        self.emu.definitions[(str(owner), ns, str(key))] = created
        return {
            "createdDefinition": {"__typename": "MetafieldDefinition", "id": created["id"]},
            "userErrors": [],
        }

    def _unique(self, owner: str, ns: str, key: str) -> bool:
        definition = self.emu.definitions.get((owner, ns, key))
        return bool(definition and definition["unique"])

    def _metafields_input(
        self,
        value: Any,
        *,
        owner: tuple[str, str | None],
        errors: _UserErrors,
        path: Sequence[Any],
        others: _Lookups,
    ) -> dict[tuple[str, str], tuple[str, str]]:
        """Check a metafield list (unique values included) and return it keyed by namespace/key."""
        owner_type, owner_id = owner
        out: dict[tuple[str, str], tuple[str, str]] = {}
        for i, mf in enumerate(value or ()):
            ns, key, type_, val = (mf.get(k) for k in ("namespace", "key", "type", "value"))
            if not key or val is None:
                errors.add([*path, i], "Metafield needs a key and a value", "INVALID_METAFIELD")
                continue
            ns = ns or "app"
            definition = self.emu.definitions.get((owner_type, ns, key))
            type_ = type_ or (definition["type"] if definition else None)
            if not type_:
                errors.add([*path, i, "type"], "Type can't be blank", "INVALID_METAFIELD")
                continue
            if self._unique(owner_type, ns, key):
                # stored values are strings: another type never clashes
                clash = (
                    others.by_value(ns, key, val, but=owner_id) if isinstance(val, str) else None
                )
                if clash is not None:
                    errors.add(
                        [*path, i, "value"],
                        f"Value is already taken by {clash}",
                        "DUPLICATED_METAFIELD_VALUE",
                    )
                    continue
            out[(ns, key)] = (str(type_), str(val))
        return out

    # -- products -------------------------------------------------------------------------------

    def product_set(self, **args: Any) -> dict[str, Any]:
        """
        ``productSet``: upsert by identifier, list fields replaced whole.

        Variants without an id are matched to existing ones by their option values (the
        emulator's reading; Shopify's docs only promise that ids are honoured), so ids and
        inventory items survive a resend.
        """
        data: Mapping[str, Any] = args["input"]
        identifier: Mapping[str, Any] = args.get("identifier") or {}
        errors = _UserErrors()
        target, custom = self._set_target(identifier, errors)
        if errors:
            return {"product": None, "userErrors": errors.items}
        options = self._check_product(data, target, errors)
        self._check_variants(data, target, options, errors)
        metafields = None
        if "metafields" in data:
            metafields = self._metafields_input(
                data["metafields"],
                owner=("PRODUCT", target.id if target else None),
                errors=errors,
                path=["input", "metafields"],
                others=self.index.products,
            )
        if custom is not None:
            sent = (metafields or {}).get(custom[1:])
            if sent is not None and sent[1] != identifier["customId"].get("value"):
                errors.add(
                    ["input", "metafields"],
                    "The custom id metafield does not match the identifier",
                    "METAFIELD_MISMATCH",
                )
        if errors:
            return {"product": None, "userErrors": errors.items}
        product = self._apply_product(data, target, options, metafields)
        if custom is not None and target is None:
            value = str(identifier["customId"].get("value"))
            product.metafields.setdefault(custom[1:], ("id", value))
        self.index.put_product(product)
        return {
            "product": self.product_view(product),
            "productSetOperation": None,
            "userErrors": [],
        }

    def _set_target(
        self, identifier: Mapping[str, Any], errors: _UserErrors
    ) -> tuple[EmulatedProduct | None, tuple[str, str, str] | None]:
        if identifier.get("id"):
            target = self.emu.products.get(identifier["id"])
            if target is None:
                errors.add(["identifier", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST")
            return target, None
        if identifier.get("customId"):
            custom = self._custom("PRODUCT", identifier)
            if not self._unique(*custom):
                errors.add(
                    ["identifier", "customId"],
                    "The custom id has no unique metafield definition",
                    "INVALID_INPUT",
                )
            return self.find_product(identifier), custom
        if identifier.get("handle"):
            return self.find_product(identifier), None
        return None, None

    def _check_product(
        self, data: Mapping[str, Any], target: EmulatedProduct | None, errors: _UserErrors
    ) -> list[tuple[str, list[str]]]:
        title = data.get("title", target.title if target else None)
        if not isinstance(title, str) or not title.strip():
            errors.add(["input", "title"], "Title can't be blank", "MISSING_FIELD_REQUIRED")
        elif len(title) > _MAX_TEXT:
            errors.add(
                ["input", "title"],
                "Title is too long (maximum is 255 characters)",
                "INVALID_PRODUCT",
            )
        status = data.get("status") or "ACTIVE"
        if status not in _STATUSES:
            errors.add(["input", "status"], f"Status '{status}' is not valid", "INVALID_INPUT")
        options_in, variants_in = data.get("productOptions"), data.get("variants")
        if options_in is not None and len(options_in) > _MAX_OPTIONS:
            errors.add(
                ["input", "productOptions"], "Options over limit (maximum 3)", "OPTIONS_OVER_LIMIT"
            )
        if variants_in is not None and len(variants_in) > _MAX_VARIANTS:
            errors.add(
                ["input", "variants"],
                f"Variants over limit (maximum {_MAX_VARIANTS})",
                "VARIANTS_OVER_LIMIT",
            )
        if variants_in is not None and options_in is None and target is None:
            errors.add(
                ["input", "productOptions"],
                "productOptions are required with variants",
                "PRODUCT_OPTIONS_INPUT_MISSING",
            )
        if options_in is not None and variants_in is None:
            errors.add(
                ["input", "variants"],
                "variants are required with productOptions",
                "VARIANTS_INPUT_MISSING",
            )
        self._check_references(data, target, errors)
        if options_in is None:
            return list(target.options if target else [("Title", ["Default Title"])])
        options = [
            (str(o.get("name")), [str(v.get("name")) for v in o.get("values") or ()])
            for o in options_in
        ]
        names = [n for n, _ in options]
        if len(set(names)) != len(names):
            errors.add(
                ["input", "productOptions"], "Option names must be unique", "DUPLICATED_OPTION_NAME"
            )
        return options

    def _check_references(
        self, data: Mapping[str, Any], target: EmulatedProduct | None, errors: _UserErrors
    ) -> None:
        handle = data.get("handle")
        if handle is not None and self._handle_taken(
            handle, target, self.emu.products, self.index.products
        ):
            errors.add(
                ["input", "handle"], f"Handle '{handle}' already in use", "HANDLE_NOT_UNIQUE"
            )
        for i, f in enumerate(data.get("files") or ()):
            source = f.get("originalSource")
            if f.get("id") is None and (
                not isinstance(source, str) or urlsplit(source).scheme not in {"http", "https"}
            ):
                errors.add(
                    ["input", "files", i, "originalSource"],
                    "Original source must be an http(s) URL",
                    "INVALID_INPUT",
                )
        for i, cid in enumerate(data.get("collections") or ()):
            if cid not in self.emu.collections:
                errors.add(
                    ["input", "collections", i], f"Collection {cid} does not exist", "INVALID_INPUT"
                )

    def _check_variants(
        self,
        data: Mapping[str, Any],
        target: EmulatedProduct | None,
        options: Sequence[tuple[str, list[str]]],
        errors: _UserErrors,
    ) -> None:
        declared = dict(options)
        sources = {f.get("originalSource") for f in data.get("files") or ()}
        seen: set[tuple[tuple[str, str], ...]] = set()
        for i, variant in enumerate(data.get("variants") or ()):
            path = ["input", "variants", i]
            values = _option_values(variant)
            for name in declared:
                if name not in values:
                    errors.add(
                        [*path, "optionValues"],
                        f"Option '{name}' is missing a value",
                        "OPTION_VALUES_MISSING",
                    )
            for name, value in values.items():
                if name not in declared:
                    errors.add(
                        [*path, "optionValues"],
                        f"Option '{name}' does not exist",
                        "OPTION_DOES_NOT_EXIST",
                    )
                elif value not in declared[name]:
                    errors.add(
                        [*path, "optionValues"],
                        f"Option value '{value}' does not exist",
                        "OPTION_VALUE_DOES_NOT_EXIST",
                    )
            combo = tuple(sorted(values.items()))
            if combo in seen:
                errors.add(
                    [*path, "optionValues"],
                    f"The variant '{' / '.join(values.values())}' already exists",
                    "INVALID_VARIANT",
                )
            seen.add(combo)
            self._check_variant_fields(variant, path, target, sources, errors)

    def _check_variant_fields(
        self,
        variant: Mapping[str, Any],
        path: list[Any],
        target: EmulatedProduct | None,
        sources: set[Any],
        errors: _UserErrors,
    ) -> None:
        for key in ("price", "compareAtPrice"):
            if variant.get(key) is not None:
                amount = _money(variant[key])
                if amount is None or amount < 0:
                    errors.add([*path, key], f"{key} must be a positive decimal", "INVALID_VARIANT")
        if isinstance(variant.get("sku"), str) and len(variant["sku"]) > _MAX_TEXT:
            errors.add(
                [*path, "sku"], "SKU is too long (maximum is 255 characters)", "INVALID_VARIANT"
            )
        if variant.get("id") is not None and (
            target is None or target.variant(variant["id"]) is None
        ):
            errors.add(
                [*path, "id"], "Product variant does not exist", "PRODUCT_VARIANT_DOES_NOT_EXIST"
            )
        file = variant.get("file")
        if file and file.get("originalSource") not in sources:
            errors.add(
                [*path, "file"],
                "The variant's file must be one of the product's files",
                "INVALID_VARIANT",
            )
        for j, quantity in enumerate(variant.get("inventoryQuantities") or ()):
            if quantity.get("locationId") not in self.emu.locations:
                errors.add(
                    [*path, "inventoryQuantities", j, "locationId"],
                    "Location does not exist",
                    "INVALID_INPUT",
                )
            if quantity.get("name") not in {"available", "on_hand"}:
                errors.add(
                    [*path, "inventoryQuantities", j, "name"],
                    "Name must be available or on_hand",
                    "INVALID_INPUT",
                )

    def _apply_product(
        self,
        data: Mapping[str, Any],
        target: EmulatedProduct | None,
        options: list[tuple[str, list[str]]],
        metafields: dict[tuple[str, str], tuple[str, str]] | None,
    ) -> EmulatedProduct:
        emu = self.emu
        title = str(data.get("title", target.title if target else ""))
        product = target or EmulatedProduct(
            id=emu.new_gid("Product"),
            handle=data.get("handle") or self._free_handle(_slug(title), self.index.products),
            title=title,
        )
        product.title = title
        for key, attr in _PRODUCT_SCALARS:
            if key in data:
                setattr(product, attr, data[key])
        if "seo" in data:
            product.seo = dict(data["seo"] or {})
        if "tags" in data:
            product.tags = list(data["tags"] or ())
        product.options = options
        if data.get("collections") is not None:
            product.collections = list(dict.fromkeys(data["collections"]))
        if data.get("files") is not None:
            product.files = [
                str(f["originalSource"]) for f in data["files"] if f.get("originalSource")
            ]
        if metafields is not None:
            product.metafields = metafields
        if data.get("variants") is not None:
            product.variants = self._apply_variants(product, data["variants"], fresh=target is None)
        elif target is None:
            product.variants = [
                EmulatedVariant(
                    emu.new_gid("ProductVariant"),
                    emu.new_gid("InventoryItem"),
                    {"Title": "Default Title"},
                )
            ]
        emu.products[product.id] = product
        return product

    def _apply_variants(
        self, product: EmulatedProduct, variants_in: Sequence[Mapping[str, Any]], *, fresh: bool
    ) -> list[EmulatedVariant]:
        emu = self.emu
        unused = {} if fresh else {v.id: v for v in product.variants}
        result: list[EmulatedVariant] = []
        for data in variants_in:
            options = _option_values(data)
            if data.get("id"):
                variant = unused.pop(data["id"], None)
            else:
                variant = next((u for u in unused.values() if u.options == options), None)
                if variant is not None:
                    del unused[variant.id]
            is_new = variant is None
            if variant is None:
                variant = EmulatedVariant(
                    emu.new_gid("ProductVariant"), emu.new_gid("InventoryItem"), options
                )
            variant.options = options
            _set_variant_fields(variant, data)
            for quantity in data.get("inventoryQuantities") or ():
                key = (variant.inventory_item_id, quantity["locationId"])
                # New variants get stocked; existing ones only where they are stocked already.
                if is_new or key in emu.inventory:
                    emu.inventory[key] = int(quantity["quantity"])
            result.append(variant)
        for gone in unused.values():
            emu.drop_inventory(gone.inventory_item_id)
        return result

    @staticmethod
    def _free_handle(base: str, taken: _Lookups) -> str:
        if not taken.has_handle(base):
            return base
        return next(
            f"{base}-{n}" for n in itertools.count(1) if not taken.has_handle(f"{base}-{n}")
        )

    def product_update(self, **args: Any) -> dict[str, Any]:
        data = dict(args.get("product") or args.get("input") or {})
        identifier = args.get("identifier")
        target = (
            self.find_product(identifier)
            if identifier
            else self.emu.products.get(str(data.get("id")))
        )
        if target is None:
            return {
                "product": None,
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        status = data.get("status")
        if status is not None and status not in _STATUSES:
            return {
                "product": None,
                "userErrors": [{"field": ["status"], "message": "Status is not valid"}],
            }
        for key, attr in (
            ("title", "title"),
            ("status", "status"),
            ("descriptionHtml", "description_html"),
            ("vendor", "vendor"),
            ("productType", "product_type"),
        ):
            if key in data:
                setattr(target, attr, data[key])
        return {"product": self.product_view(target), "userErrors": []}

    def product_delete(self, **args: Any) -> dict[str, Any]:
        removed = self.emu.remove_product(str(args["input"].get("id")))
        if removed is None:
            return {
                "deletedProductId": None,
                "productDeleteOperation": None,
                "shop": self.shop(),
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        return {
            "deletedProductId": removed.id,
            "productDeleteOperation": None,
            "shop": self.shop(),
            "userErrors": [],
        }

    # -- collections ------------------------------------------------------------------------------

    def _collection_fields(
        self, data: Mapping[str, Any], target: EmulatedCollection | None, errors: _UserErrors
    ) -> dict[str, Any]:
        title = data.get("title", target.title if target else None)
        if not isinstance(title, str) or not title.strip():
            errors.add(["title"], "Title can't be blank")
        handle = data.get("handle")
        if handle is not None and self._handle_taken(
            handle, target, self.emu.collections, self.index.collections
        ):
            errors.add(["handle"], f"Handle '{handle}' has already been taken")
        metafields = None
        if "metafields" in data:
            metafields = self._metafields_input(
                data["metafields"],
                owner=("COLLECTION", target.id if target else None),
                errors=errors,
                path=["metafields"],
                others=self.index.collections,
            )
        return {"title": title, "handle": handle, "metafields": metafields}

    def _apply_collection(
        self, target: EmulatedCollection, data: Mapping[str, Any], checked: Mapping[str, Any]
    ) -> None:
        target.title = str(checked["title"])
        if checked["handle"] is not None:
            target.handle = checked["handle"]
        if "descriptionHtml" in data:
            target.description_html = data["descriptionHtml"]
        if "seo" in data:
            target.seo = dict(data["seo"] or {})
        if "image" in data:
            target.image = (data["image"] or {}).get("src")
        if checked["metafields"] is not None:
            target.metafields = checked["metafields"]

    def collection_create(self, **args: Any) -> dict[str, Any]:
        data = dict(args.get("collection") or args.get("input") or {})
        errors = _UserErrors()
        if data.get("ruleSet"):
            errors.add(["ruleSet"], "The emulator only makes manual collections")
        checked = self._collection_fields(data, None, errors)
        if errors:
            return {"collection": None, "userErrors": errors.items}
        new = EmulatedCollection(
            id=self.emu.new_gid("Collection"),
            handle=checked["handle"]
            or self._free_handle(_slug(str(checked["title"])), self.index.collections),
            title=str(checked["title"]),
        )
        self._apply_collection(new, data, checked)
        self.emu.collections[new.id] = new
        self.index.put_collection(new)
        for pid in data.get("products") or ():
            product = self.emu.products.get(pid)
            if product is not None and new.id not in product.collections:
                product.collections.append(new.id)
                self.index.put_product(product)
        return {"collection": self.collection_view(new), "userErrors": []}

    def collection_update(self, **args: Any) -> dict[str, Any]:
        data = dict(args.get("collection") or args.get("input") or {})
        target = self.emu.collections.get(str(data.get("id")))
        if target is None:
            return {
                "collection": None,
                "job": None,
                "userErrors": [{"field": ["id"], "message": "Collection does not exist"}],
            }
        errors = _UserErrors()
        checked = self._collection_fields(data, target, errors)
        if errors:
            return {"collection": None, "job": None, "userErrors": errors.items}
        self._apply_collection(target, data, checked)
        self.index.put_collection(target)
        return {"collection": self.collection_view(target), "job": None, "userErrors": []}

    def collection_delete(self, **args: Any) -> dict[str, Any]:
        cid = str(args["input"].get("id"))
        if self.emu.collections.pop(cid, None) is None:
            return {
                "deletedCollectionId": None,
                "shop": self.shop(),
                "userErrors": [{"field": ["id"], "message": "Collection does not exist"}],
            }
        self.index.collections.drop(cid)
        for pid in self.index.members_of(cid):
            product = self.emu.products.get(pid)
            if product is not None and cid in product.collections:
                product.collections.remove(cid)
                self.index.put_product(product)
        self.emu.drop_translations(cid)
        return {"deletedCollectionId": cid, "shop": self.shop(), "userErrors": []}

    # -- inventory ------------------------------------------------------------------------------

    def inventory_set_quantities(self, **args: Any) -> dict[str, Any]:
        """
        ``inventorySetQuantities``: absolute ``available`` quantities.

        From 2026-04 every quantity must carry ``changeFromQuantity`` (``null`` skips the
        compare); before, an absent one is accepted. Items not stocked at the location are
        refused with ``ITEM_NOT_STOCKED_AT_LOCATION`` where the version has that code, and
        stocked otherwise (the emulator's reading of its removal in 2026-10).
        """
        emu = self.emu
        errors = _UserErrors()
        data: Mapping[str, Any] = args["input"]
        name = data.get("name")
        if name not in {"available", "on_hand"}:
            errors.add(["input", "name"], "Name must be available or on_hand", "INVALID_NAME")
        if data.get("reason") not in _REASONS:
            errors.add(
                ["input", "reason"], "Reason is not a valid inventory reason", "INVALID_REASON"
            )
        items = self.index.items
        planned = [
            self._check_quantity(q, ["input", "quantities", i], items, errors)
            for i, q in enumerate(data.get("quantities") or ())
        ]
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors.items}
        for plan in planned:
            if plan is not None:
                emu.inventory[plan[0]] = plan[1]
        return {
            "inventoryAdjustmentGroup": {
                "__typename": "InventoryAdjustmentGroup",
                "id": emu.new_gid("InventoryAdjustmentGroup"),
                "reason": data.get("reason"),
            },
            "userErrors": [],
        }

    def _check_quantity(
        self, q: Mapping[str, Any], path: list[Any], items: Container[str], errors: _UserErrors
    ) -> tuple[tuple[str, str], int] | None:
        emu = self.emu
        item, location, quantity = q.get("inventoryItemId"), q.get("locationId"), q.get("quantity")
        if item not in items:
            errors.add(
                [*path, "inventoryItemId"],
                "The inventory item could not be found",
                "INVALID_INVENTORY_ITEM",
            )
            return None
        if location not in emu.locations:
            errors.add([*path, "locationId"], "The location could not be found", "INVALID_LOCATION")
            return None
        if not isinstance(quantity, int) or quantity > _MAX_QUANTITY:
            errors.add([*path, "quantity"], "The quantity is too high", "INVALID_QUANTITY_TOO_HIGH")
            return None
        if quantity < -_MAX_QUANTITY:
            errors.add([*path, "quantity"], "The quantity is too low", "INVALID_QUANTITY_TOO_LOW")
            return None
        key = (str(item), str(location))
        if "changeFromQuantity" not in q:
            if self.served >= "2026-04":
                errors.add(
                    [*path, "changeFromQuantity"],
                    "changeFromQuantity is required (null skips the check)",
                    "COMPARE_QUANTITY_REQUIRED",
                )
                return None
        elif q["changeFromQuantity"] is not None and q["changeFromQuantity"] != emu.inventory.get(
            key, 0
        ):
            errors.add(
                [*path, "changeFromQuantity"],
                "The quantity changed since it was read",
                "CHANGE_FROM_QUANTITY_STALE",
            )
            return None
        if key not in emu.inventory and self.served < "2026-10":
            errors.add(
                [*path, "locationId"],
                "The item is not stocked at the location",
                "ITEM_NOT_STOCKED_AT_LOCATION",
            )
            return None
        return key, quantity

    # -- translations ---------------------------------------------------------------------------

    def _content(self, resource: str) -> dict[str, str] | None:
        product = self.emu.products.get(resource)
        if product is not None:
            values = {
                "title": product.title,
                "body_html": product.description_html,
                "handle": product.handle,
                "product_type": product.product_type,
                "meta_title": product.seo.get("title"),
                "meta_description": product.seo.get("description"),
            }
        else:
            collection = self.emu.collections.get(resource)
            if collection is None:
                return None
            values = {
                "title": collection.title,
                "body_html": collection.description_html,
                "handle": collection.handle,
                "meta_title": collection.seo.get("title"),
                "meta_description": collection.seo.get("description"),
            }
        return {k: v for k, v in values.items() if isinstance(v, str) and v}

    def translatable_resource(self, **args: Any) -> dict[str, Any] | None:
        resource_id = str(args["resourceId"])
        content = self._content(resource_id)
        if content is None:
            return None
        primary = self.emu.locales[0]
        return {
            "__typename": "TranslatableResource",
            "resourceId": resource_id,
            "translatableContent": [
                {
                    "__typename": "TranslatableContent",
                    "key": k,
                    "value": v,
                    "digest": _digest(v),
                    "locale": primary,
                    "type": "STRING",
                }
                for k, v in content.items()
            ],
            "translations": lambda locale, **_: [
                {
                    "__typename": "Translation",
                    "key": k,
                    "locale": loc,
                    "value": val,
                    "outdated": d != _digest(content.get(k, "")),
                }
                for loc, k in self.index.translated.get(resource_id, {})
                if loc == locale
                for val, d in (self.emu.translations[(resource_id, loc, k)],)
            ],
        }

    def translations_register(self, **args: Any) -> dict[str, Any]:
        resource_id = str(args["resourceId"])
        translations: Sequence[Mapping[str, Any]] = args["translations"]
        content = self._content(resource_id)
        errors = _UserErrors()
        if content is None:
            errors.add(["resourceId"], "Resource does not exist", "RESOURCE_NOT_FOUND")
            return {"translations": None, "userErrors": errors.items}
        saved = []
        for i, t in enumerate(translations):
            path = ["translations", i]
            locale, key, value, digest = (
                t.get(k) for k in ("locale", "key", "value", "translatableContentDigest")
            )
            if locale not in self.emu.locales[1:]:
                errors.add(
                    [*path, "locale"],
                    f"Locale {locale} is not enabled for the shop",
                    "INVALID_LOCALE_FOR_SHOP",
                )
            elif key not in content:
                errors.add(
                    [*path, "key"],
                    f"Key {key} is not translatable for this resource",
                    "INVALID_KEY_FOR_MODEL",
                )
            elif digest != _digest(content[key]):
                errors.add(
                    [*path, "translatableContentDigest"],
                    "Translatable content hash is invalid",
                    "INVALID_TRANSLATABLE_CONTENT",
                )
            elif not isinstance(value, str) or not value.strip():
                errors.add([*path, "value"], "Value can't be blank", "BLANK")
            else:
                self.emu.translations[(resource_id, str(locale), str(key))] = (value, str(digest))
                self.index.translate((resource_id, str(locale), str(key)))
                saved.append(
                    {
                        "__typename": "Translation",
                        "key": key,
                        "locale": locale,
                        "value": value,
                        "outdated": False,
                    }
                )
        return {"translations": saved, "userErrors": errors.items}
