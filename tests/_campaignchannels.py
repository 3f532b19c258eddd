"""
The channels the campaigns run against, with everything a campaign needs around each one.

For each channel kind (``kv``, ``shopify``, ``takealot``, ``amazon``):

* `make_catalog`: a deterministic catalog in that channel's vocabulary, with a few deliberately
  invalid items (so the campaigns prove that errors stay on their items);
* `make_emulator`: the emulator, counting *creations per key* so a duplicate made by a
  re-delivery is visible even when the emulator would otherwise hide it;
* `make_channel` / `connector_params`: the adapter wired to an emulator URL or client;
* `check_channel`: compares the emulator's final state with the exportable catalog, computed
  here from the catalog alone (not from catalogsync's statuses or hashes), and lists every
  difference and every duplicate;
* `tamper`: edits the channel behind catalogsync's back, so only a real force refresh repairs it.

Workers (``_campaignworker.py``) import this module too, so parent and worker build the same
catalog and channel from the same few parameters.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from catalogsync import ConnectorParams, Item, ItemType, MemoryCatalog, Secret
from catalogsync._demo import ean13, sample_catalog
from catalogsync.channels import RetryPolicy

from _kvchannel import KVChannel, KVEmulator


C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
KINDS = ("kv", "shopify", "takealot", "amazon")

SHOPIFY_TOKEN = "shpat_campaign_token_5f1e0c2a9b"
SHOPIFY_LOCATION = "gid://shopify/Location/1"
TAKEALOT_KEY = "takealot-campaign-key-77d0a1c3"
TAKEALOT_WAREHOUSE = 28676
LEADTIME_DAYS = 5
#: Barcode numbers ``BARCODE_BASE + n`` are listed in the Takealot emulator's catalogue, except
#: those `unlisted` names (their offers fail with E2, a CHANNEL error on that item only).
BARCODE_BASE = 1000


# =================================================================================================
# catalogs
# =================================================================================================


def make_catalog(kind: str, products: int, seed: int = 7) -> MemoryCatalog:
    """The campaign catalog of *kind* with *products* products (deterministic in *seed*)."""
    if kind == "kv":
        return sample_catalog(products, seed=seed)
    if kind == "shopify":
        return _shopify_catalog(products, seed)
    if kind in {"takealot", "amazon"}:
        return _offer_catalog(kind, products, seed)
    raise ValueError(kind)


def _invalid(n: int) -> bool:
    """Every 13th product is deliberately invalid (from the 5th on)."""
    return n % 13 == 5


def _shopify_catalog(products: int, seed: int) -> MemoryCatalog:
    rng = random.Random(seed)
    items = [
        Item(f"C{c}", C, fields={"title": f"Collection {c}", "description": f"<p>Range {c}</p>"})
        for c in range(1, 5)
    ]
    for n in range(1, products + 1):
        ref = f"P{n:04d}"
        title = "" if _invalid(n) else f"Campaign product {n}"
        items.append(
            Item(
                ref,
                P,
                fields={"title": title, "description": f"<p>Item {n}</p>", "vendor": "Acme"},
                parents=[f"C{1 + n % 4}"],
            )
        )
        for v in range(1, rng.randint(1, 4) + 1):
            items.append(
                Item(
                    f"{ref}-V{v}",
                    V,
                    fields={
                        "options": {"Size": str(38 + v)},
                        "price": f"{rng.randint(5, 90)}.90",
                        "sku": f"{ref}-{38 + v}",
                    },
                    parents=[ref],
                )
            )
    return MemoryCatalog(items)


def unlisted(number: int) -> bool:
    """Barcodes the Takealot emulator's catalogue leaves out (every 17th)."""
    return number % 17 == 3


def _offer_catalog(kind: str, products: int, seed: int) -> MemoryCatalog:
    """Products with 1-3 variants that carry barcodes, SKUs and prices (Takealot, Amazon)."""
    rng = random.Random(seed)
    items = [Item("C1", C, fields={"title": "Everything"})]
    number = 0
    for n in range(1, products + 1):
        ref = f"P{n:04d}"
        price = rng.randint(50, 900)
        fields: dict[str, Any] = {"title": f"Campaign product {n}", "brand": "Acme"}
        if kind == "amazon":
            fields["variation_theme"] = "SIZE"
        items.append(Item(ref, P, fields=fields, parents=["C1"]))
        for v in range(1, rng.randint(1, 3) + 1):
            number += 1
            vfields: dict[str, Any] = {
                "sku": f"{ref}-V{v}",
                "barcode": ean13(BARCODE_BASE + number),
                "price": -1 if _invalid(n) and v == 1 else price + v,
                "compare_at_price": price + 100,
                "stock": rng.randint(0, 30),
                "size": str(38 + v),
                "title": f"Campaign product {n} size {38 + v}",
            }
            items.append(Item(f"{ref}-V{v}", V, fields=vfields, parents=[ref]))
    return MemoryCatalog(items)


def invalid_refs(kind: str, catalog: MemoryCatalog) -> set[tuple[str, str]]:
    """The ``(type, ref)`` of the items that must end in ERROR (computed from the catalog)."""
    out: set[tuple[str, str]] = set()
    if kind == "kv":
        for item in catalog.items(P):
            title = item.fields.get("title")
            title = title.get("en") if isinstance(title, dict) else title
            price = item.fields.get("price")
            if not (isinstance(title, str) and title.strip()) or (
                isinstance(price, (int, float)) and price < 0
            ):
                out.add(("product", item.ref))
    elif kind == "shopify":
        bad = {i.ref for i in catalog.items(P) if not i.fields["title"]}
        out |= {("product", r) for r in bad}
        out |= {("variant", i.ref) for i in catalog.items(V) if i.parents[0] in bad}
    elif kind == "takealot":
        for item in catalog.items(V):
            number = int(item.fields["barcode"][3:12]) - BARCODE_BASE
            if item.fields["price"] < 0 or unlisted(number):
                out.add(("variant", item.ref))
    elif kind == "amazon":
        out |= {("variant", i.ref) for i in catalog.items(V) if i.fields["price"] < 0}
    return out


# =================================================================================================
# emulators
# =================================================================================================


def make_emulator(kind: str, catalog: MemoryCatalog | None = None, **kw: Any) -> Any:
    """The emulator of *kind*, counting creations per key in ``creates``."""
    if kind == "kv":
        return KVEmulator(**kw)
    if kind == "shopify":
        from catalogsync.testing import ShopifyEmulator

        class CountingShopify(ShopifyEmulator):
            """Counts the products and collections it creates."""

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.created: Counter[str] = Counter()

            def new_gid(self, kind: str) -> str:
                gid = super().new_gid(kind)
                self.created[kind] += 1
                return gid

        kw.setdefault("bucket_size", 1_000_000.0)  # the worker paces on its own clock
        kw.setdefault("restore_rate", 1_000_000.0)
        return CountingShopify(access_tokens=[SHOPIFY_TOKEN], locations=[SHOPIFY_LOCATION], **kw)
    if kind == "takealot":
        from catalogsync.testing import TakealotEmulator

        class CountingTakealot(TakealotEmulator):
            """Counts the offers it creates, per barcode."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.creates: Counter[str] = Counter()

            def _new_offer(self, barcode: str) -> dict[str, Any]:
                self.creates[barcode] += 1
                return super()._new_offer(barcode)

        assert catalog is not None
        numbers = range(1, len(catalog.items(V)) + 1)
        listed = [ean13(BARCODE_BASE + n) for n in numbers if not unlisted(n)]
        kw.setdefault("batch_polls", 1)
        return CountingTakealot(listed, api_key=TAKEALOT_KEY, warehouses=[TAKEALOT_WAREHOUSE], **kw)
    if kind == "amazon":
        from catalogsync.testing import AmazonEmulator

        return AmazonEmulator(**kw)
    raise ValueError(kind)


# =================================================================================================
# channels
# =================================================================================================


def connector_params(kind: str, **changes: Any) -> ConnectorParams:
    """The connector parameters the campaign catalog of *kind* needs."""
    base: dict[str, Any] = {}
    if kind == "takealot":
        base = {
            "field_mapping": {"selling_price": "price", "rrp": "compare_at_price"},
            "overwrite_stock": True,
        }
    elif kind == "amazon":
        base = {"field_mapping": {"item_name": "title", "list_price": "compare_at_price"}}
    return ConnectorParams(**(base | changes))


def make_channel(
    kind: str,
    *,
    url: str | None = None,
    client: httpx.Client | None = None,
    clock: Any = None,
    seed: int = 7,
    emulator: Any = None,
    on_response: Callable[[httpx.Response], None] | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Any:
    """
    The adapter of *kind*, talking to *url* (a served emulator) or through *client*.

    *on_response* is an httpx response hook (the crash worker kills itself in it); *options*
    go to the adapter's constructor.
    """
    hooks = {"response": [on_response]} if on_response is not None else {}
    retry = retry or RetryPolicy(attempts=4, initial=0.5, maximum=4.0)
    if kind == "kv":
        assert url is not None
        channel = KVChannel(url)
        if hooks:
            channel.http = httpx.Client(base_url=url, timeout=10, event_hooks=hooks)
        return channel
    if client is None:
        assert url is not None
        client = httpx.Client(base_url=url, timeout=10, event_hooks=hooks)
    if kind == "shopify":
        from catalogsync.channels.shopify import ShopifyChannel, ShopifyStore, StaticToken

        store = ShopifyStore(
            "emulated",
            StaticToken(Secret(SHOPIFY_TOKEN)),
            location_id=SHOPIFY_LOCATION,
            base_url=str(client.base_url).rstrip("/") or url,
        )
        return ShopifyChannel(
            store, client=client, clock=clock, rng=random.Random(seed), retry=retry, **options
        )
    if kind == "takealot":
        from catalogsync.channels.takealot import TakealotChannel

        return TakealotChannel(
            Secret(TAKEALOT_KEY),
            client=client,
            warehouses=[TAKEALOT_WAREHOUSE],
            default_leadtime_days=LEADTIME_DAYS,
            batch_threshold=4,
            poll_interval=0.5,
            clock=clock,
            rng=random.Random(seed),
            retry=retry,
            **options,
        )
    if kind == "amazon":
        from catalogsync.channels.amazon import AmazonChannel, LwaCredentials

        assert emulator is not None
        credentials = LwaCredentials(
            emulator.client_id,
            client_secret=Secret(emulator.client_secret),
            refresh_token=Secret(emulator.refresh_token),
        )
        return AmazonChannel(
            client,
            seller_id=emulator.seller_id,
            marketplace="US",
            product_type="SHIRT",
            credentials=credentials,
            clock=clock,
            rng=random.Random(seed),
            retry=retry,
            **options,
        )
    raise ValueError(kind)


def close_channel(channel: Any) -> None:
    """Close the httpx client a channel made by `make_channel` talks through."""
    http = getattr(channel, "http", None) or getattr(channel, "transport", None)
    client = getattr(http, "client", http)
    if isinstance(client, httpx.Client):
        client.close()


# =================================================================================================
# the channel against the exportable catalog
# =================================================================================================


def _text(value: Any) -> Any:
    """The English value of a localised ``{"en": .., "es": ..}`` field, else the value."""
    if isinstance(value, dict) and value and set(value) <= {"en", "es"}:
        return value.get("en")
    return value


def check_channel(kind: str, emulator: Any, catalog: MemoryCatalog) -> list[str]:
    """
    Every way the emulator's state differs from the exportable catalog, plus every duplicate
    creation; ``[]`` when the channel is exactly right. A lost item is reported as
    "... is missing from the channel" (`lost` counts those).
    """
    bad = invalid_refs(kind, catalog)
    return {
        "kv": _check_kv,
        "shopify": _check_shopify,
        "takealot": _check_takealot,
        "amazon": _check_amazon,
    }[kind](emulator, catalog, bad)


def _check_kv(emulator: KVEmulator, catalog: MemoryCatalog, bad: set[tuple[str, str]]) -> list[str]:
    problems = [f"{key} created {n} times" for key, n in emulator.creates.items() if n > 1]
    with emulator.lock:
        held = {key: dict(payload) for key, payload in emulator.items.items()}
    expected: dict[str, Item] = {}
    for item_type in (C, P, V):
        for item in catalog.items(item_type):
            if (item_type.value, item.ref) not in bad:
                expected[f"{item_type.value}/{item.ref}"] = item
    for key in sorted(held.keys() - expected.keys()):
        problems.append(f"{key} is in the channel but not exportable")
    for key in sorted(expected.keys() - held.keys()):
        problems.append(f"{key} is missing from the channel")
    for key in sorted(held.keys() & expected.keys()):
        item, payload = expected[key], held[key]
        fields = payload.get("fields") or {}
        want = {name: _text(value) for name, value in item.fields.items() if name != "stock"}
        if payload.get("ref") != item.ref or fields != want:
            problems.append(f"{key} holds {str(payload)[:120]}, not the catalog's values")
    return problems


def _check_shopify(emulator: Any, catalog: MemoryCatalog, bad: set[tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    with emulator._lock:
        products = list(emulator.products.values())
        collections = list(emulator.collections.values())
        created = dict(emulator.created)

    def ref_of(node: Any) -> str | None:
        return node.metafields.get(("catalogsync", "ref"), ("", None))[1]

    by_ref = Counter(ref_of(p) for p in products)
    problems += [f"product {r} exists {n} times" for r, n in by_ref.items() if n > 1]
    col_refs = Counter(ref_of(c) for c in collections)
    problems += [f"collection {r} exists {n} times" for r, n in col_refs.items() if n > 1]
    if created.get("Product", 0) != len(products):
        problems.append(f"{created.get('Product', 0)} products created, {len(products)} exist")
    if created.get("Collection", 0) != len(collections):
        problems.append(
            f"{created.get('Collection', 0)} collections created, {len(collections)} exist"
        )
    col_by_ref = {ref_of(c): c for c in collections}
    want_products = {i.ref: i for i in catalog.items(P) if ("product", i.ref) not in bad}
    used = {i.parents[0] for i in catalog.items(P)}
    want_cols = {i.ref: i for i in catalog.items(C) if i.ref in used}
    for ref in sorted(set(want_cols) - set(col_by_ref)):
        problems.append(f"collection {ref} is missing from the channel")
    for ref in sorted(set(col_by_ref) - set(want_cols)):
        problems.append(f"collection {ref} is in the channel but not exportable")
    for ref, item in want_cols.items():
        node = col_by_ref.get(ref)
        if node is not None and node.title != item.fields["title"]:
            problems.append(f"collection {ref} has title {node.title!r}")
    prod_by_ref = {ref_of(p): p for p in products}
    for ref in sorted(set(want_products) - set(prod_by_ref)):
        problems.append(f"product {ref} is missing from the channel")
    for ref in sorted(set(prod_by_ref) - set(want_products)):
        problems.append(f"product {ref} is in the channel but not exportable")
    variants: dict[str, list[Item]] = {}
    for v in catalog.items(V):
        variants.setdefault(v.parents[0], []).append(v)
    for ref, item in want_products.items():
        node = prod_by_ref.get(ref)
        if node is None:
            continue
        if node.title != item.fields["title"]:
            problems.append(f"product {ref} has title {node.title!r}")
        want = {(v.fields["sku"], v.fields["price"]) for v in variants.get(ref, [])}
        have = {(v.sku, v.price) for v in node.variants}
        if want != have:
            problems.append(f"product {ref} variants {sorted(have)} != {sorted(want)}")
        col = col_by_ref.get(item.parents[0])
        if col is not None and node.collections != [col.id]:
            problems.append(f"product {ref} is in {node.collections}, not {col.id}")
    return problems


def _check_takealot(emulator: Any, catalog: MemoryCatalog, bad: set[tuple[str, str]]) -> list[str]:
    problems = [f"offer {b} created {n} times" for b, n in emulator.creates.items() if n > 1]
    with emulator._lock:
        offers = {b: dict(o) for b, o in emulator.offers.items()}
    want = {v.fields["barcode"]: v for v in catalog.items(V) if ("variant", v.ref) not in bad}
    for barcode in sorted(want.keys() - offers.keys()):
        problems.append(f"offer {barcode} is missing from the channel")
    for barcode in sorted(offers.keys() - want.keys()):
        problems.append(f"offer {barcode} is in the channel but not exportable")
    for barcode, item in want.items():
        offer = offers.get(barcode)
        if offer is None:
            continue
        got = (offer["sku"], offer["selling_price"], offer["rrp"], offer["leadtime_days"])
        exp = (
            item.fields["sku"],
            item.fields["price"],
            item.fields["compare_at_price"],
            LEADTIME_DAYS,
        )
        stock = {
            s["merchant_warehouse"]["warehouse_id"]: s["quantity_available"]
            for s in offer["leadtime_stock"]
        }
        if got != exp or stock != {TAKEALOT_WAREHOUSE: item.fields["stock"]}:
            problems.append(f"offer {barcode} holds {got} {stock}, wanted {exp}")
    return problems


def _check_amazon(emulator: Any, catalog: MemoryCatalog, bad: set[tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    with emulator._lock:
        skus = Counter(sku for _market, sku in emulator.listings)
    problems += [f"listing {s} exists {n} times" for s, n in skus.items() if n > 1]
    want = {v.fields["sku"] for v in catalog.items(V) if ("variant", v.ref) not in bad}
    want |= {p.ref for p in catalog.items(P)}  # parents are listed under their ref as SKU
    have = set(skus)
    for sku in sorted(want - have):
        problems.append(f"listing {sku} is missing from the channel")
    for sku in sorted(have - want):
        problems.append(f"listing {sku} is in the channel but not exportable")
    return problems


def lost(problems: list[str]) -> int:
    """How many of *problems* are exportable items missing from the channel."""
    return sum(1 for p in problems if p.endswith("is missing from the channel"))


def duplicated(problems: list[str]) -> int:
    """How many of *problems* are items created more than once."""
    return sum(1 for p in problems if " times" in p or "created, " in p)


# =================================================================================================
# tampering (for force refresh)
# =================================================================================================


def tamper(kind: str, emulator: Any, rng: random.Random, count: int) -> list[str]:
    """Change or remove *count* items in the channel behind catalogsync's back; say which."""
    touched: list[str] = []
    if kind == "kv":
        with emulator.lock:
            keys = sorted(emulator.items)
            for key in rng.sample(keys, min(count, len(keys))):
                if rng.random() < 0.5:
                    del emulator.items[key]
                    emulator.creates.pop(key, None)  # its re-creation is a first creation
                else:
                    emulator.items[key] = {"ref": "tampered", "fields": {}}
                touched.append(key)
    elif kind == "takealot":
        with emulator._lock:
            barcodes = sorted(emulator.offers)
            for barcode in rng.sample(barcodes, min(count, len(barcodes))):
                emulator.offers[barcode]["selling_price"] = 1
                touched.append(barcode)
    elif kind == "shopify":
        with emulator._lock:
            products = sorted(emulator.products)
            for gid in rng.sample(products, min(count, len(products))):
                emulator.products[gid].title = "tampered"
                touched.append(gid)
    else:
        raise ValueError(kind)
    return touched
