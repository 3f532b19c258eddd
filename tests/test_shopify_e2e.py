"""
Shopify end to end: the real Synchronizer on SQLite, the Shopify channel, the emulator validating
every request against the official 2026-10 schema.

What Shopify should hold is worked out here from the catalog alone (``expected_store``), never by
calling channel code, and compared with the emulator's state (``actual_store``).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from catalogsync import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    DeletionMode,
    Endpoint,
    ErrorKind,
    Item,
    ItemAction,
    ItemState,
    ItemType,
    MemoryCatalog,
    Mode,
    Secret,
    SQLiteQueue,
    SQLiteStore,
    Synchronizer,
    SyncOptions,
    Visibility,
)
from catalogsync.__main__ import main
from catalogsync._demo import all_changes, edit_catalog, sample_catalog
from catalogsync.channels.shopify import ShopifyChannel, ShopifyStore, StaticToken
from catalogsync.channels.shopify._demo import FIELD_MAPPING
from catalogsync.testing import ChannelConformance, ManualClock, ShopifyEmulator
from catalogsync.typing import Operation, Outcome

from _support import contracts_dir, require


C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
TOKEN = "shpat_e2e_token_7f3a9c"
DEV_TOKEN = "shpat_e2e_dev_token_51d0"
LOCATION = "gid://shopify/Location/1"
STATUS = {Visibility.VISIBLE: "ACTIVE", Visibility.DRAFT: "DRAFT", Visibility.INVISIBLE: "ARCHIVED"}
#: The demo connector's parameters: status mapping, stock, English with Spanish translations.
DEMO = ConnectorParams(
    language="en", map_status=True, overwrite_stock=True, field_mapping=FIELD_MAPPING
)
#: Leases outlive any batch: the manual clock jumps by minutes while the channel paces, faster
#: than the (real-time) heartbeat could extend them.
OPTIONS = SyncOptions(batch_size=50, lease_ttl=24 * 3600)


def schema_path() -> str:
    """The official 2026-10 Admin schema the emulator validates every request against."""
    path = contracts_dir() / "shopify" / "admin_2026-10.json.gz"
    require(path.exists(), f"the official Shopify schema {path} is not available")
    return str(path)


# -------------------------------------------------------------------------------------------------
# the world: emulator, channel, SQLite backends, synchronizer
# -------------------------------------------------------------------------------------------------


@dataclass
class World:
    """One emulated store and a synchronizer writing to it through SQLite backends."""

    emu: ShopifyEmulator
    channel: ShopifyChannel
    sync: Synchronizer
    queue: SQLiteQueue
    store: SQLiteStore
    catalog: MemoryCatalog
    clock: ManualClock
    dev: ShopifyEmulator | None = None

    def run(self, changes: Any = None) -> Any:
        """Enqueue *changes* (everything by default) and run the event to its end."""
        self.sync.enqueue(all_changes(self.catalog) if changes is None else changes)
        result = self.sync.run()
        assert result.reason == "completed", result
        return result

    def statuses(self, event_id: str, **query: Any) -> list[Any]:
        """Every status of an event (optionally filtered)."""
        return list(
            self.sync.register.items("e2e", event_id=event_id, limit=100_000, **query).items
        )


def emulator(clock: ManualClock, **options: Any) -> ShopifyEmulator:
    """An emulated shop with English and Spanish, validating with the official schema."""
    options.setdefault("access_tokens", [TOKEN])
    options.setdefault("shop", "acme-e2e.myshopify.com")
    return ShopifyEmulator(
        schema=schema_path(), locations=[LOCATION], locales=["en", "es"], clock=clock, **options
    )


def shopify_channel(
    clock: ManualClock, production: ShopifyEmulator, development: ShopifyEmulator | None = None
) -> ShopifyChannel:
    """The channel, its stores reached in-process through one client (routed by host)."""
    mounts = {"all://acme-e2e.myshopify.com": httpx.MockTransport(production)}
    test_store = None
    if development is not None:
        mounts["all://acme-e2e-dev.myshopify.com"] = httpx.MockTransport(development)
        test_store = ShopifyStore(
            "acme-e2e-dev", StaticToken(Secret(DEV_TOKEN)), location_id=LOCATION
        )
    return ShopifyChannel(
        ShopifyStore("acme-e2e", StaticToken(Secret(TOKEN)), location_id=LOCATION),
        client=httpx.Client(mounts=mounts),
        test_store=test_store,
        clock=clock,
        rng=random.Random(11),
    )


@contextlib.contextmanager
def world(
    tmp_path: Path,
    catalog: MemoryCatalog,
    *,
    params: ConnectorParams = DEMO,
    shop: dict[str, Any] | None = None,
    test_store: bool = False,
    channel: Any = None,
) -> Iterator[World]:
    """Build a world on a fresh manual clock; close its client and databases afterwards."""
    clock = ManualClock()
    emu = emulator(clock, **(shop or {}))
    dev = (
        emulator(clock, access_tokens=[DEV_TOKEN], shop="acme-e2e-dev.myshopify.com")
        if test_store
        else None
    )
    shopify = shopify_channel(clock, emu, dev)
    path = tmp_path / "catalogsync.db"
    with contextlib.ExitStack() as stack:
        stack.callback(shopify.transport.client.close)
        queue = stack.enter_context(SQLiteQueue(path, clock=clock))
        store = stack.enter_context(SQLiteStore(path, clock=clock))
        sync = Synchronizer(
            Connector("e2e", "shopify", account="acme-e2e.myshopify.com", params=params),
            catalog=catalog,
            channel=channel(shopify) if channel else shopify,
            queue=queue,
            store=store,
            clock=clock,
            options=OPTIONS,
        )
        yield World(emu, shopify, sync, queue, store, catalog, clock, dev)


# -------------------------------------------------------------------------------------------------
# what Shopify should hold, from the catalog alone
# -------------------------------------------------------------------------------------------------


def variants_of(catalog: MemoryCatalog, ref: str) -> list[Item]:
    """A product's variants in catalog order."""
    refs = catalog.children(V, [ref]).get(ref, [])
    found = catalog.get(V, refs)
    return [found[r] for r in refs]


def problems(product: Item, variants: Sequence[Item]) -> set[str]:
    """The fields Shopify refuses in a product (paths as the channel reports them)."""
    found = set()
    if not str(product.fields["title"]["en"]).strip():
        found.add("title")
    for i, url in enumerate(product.fields.get("images", ())):
        if not str(url).startswith(("http://", "https://")):
            found.add(f"files[{i}].originalSource")
    seen: set[tuple[tuple[str, str], ...]] = set()
    for i, variant in enumerate(variants):
        if len(variant.fields["sku"]) > 255:  # Shopify's limit
            found.add(f"variants[{i}].sku")
        if Decimal(str(variant.fields["price"])) < 0:
            found.add(f"variants[{i}].price")
        combo = tuple(sorted(variant.fields["option_values"].items()))
        if combo in seen:
            found.add(f"variants[{i}].optionValues")
        seen.add(combo)
    return found


def invalid_products(catalog: MemoryCatalog) -> dict[str, set[str]]:
    """Products Shopify would refuse, with their problems."""
    out = {}
    for product in catalog.items(P):
        found = problems(product, variants_of(catalog, product.ref))
        if found:
            out[product.ref] = found
    return out


def distinct(values: Iterator[str]) -> list[str]:
    """Values in first-seen order, once each."""
    return list(dict.fromkeys(values))


def expected_store(catalog: MemoryCatalog, *, map_status: bool = True) -> dict[str, Any]:
    """What the emulated store must hold for *catalog* (invalid products are absent)."""
    refused = invalid_products(catalog)
    products = {}
    for p in catalog.items(P):
        if p.ref in refused:
            continue
        variants = variants_of(catalog, p.ref)
        products[p.ref] = {
            "title": (p.fields["title"]["en"], p.fields["title"]["es"]),
            "description": (p.fields["description"]["en"], p.fields["description"]["es"]),
            "vendor": p.fields["vendor"],
            "status": STATUS[p.visibility] if map_status else "ACTIVE",
            "tags": sorted(p.tags),
            "options": [
                (name, distinct(v.fields["option_values"][name] for v in variants))
                for name in p.fields["options"]
            ],
            "variants": [
                (
                    v.fields["option_values"],
                    str(v.fields["price"]),
                    str(v.fields["compare_at_price"]),
                    v.fields["sku"],
                    v.fields["barcode"],
                    v.fields["stock"],
                )
                for v in variants
            ],
            "collections": sorted(p.parents),
            "files": list(p.fields["images"]),
        }
    named = {ref for p in catalog.items(P) for ref in p.parents}
    collections = {
        c.ref: {
            "title": (c.fields["title"]["en"], c.fields["title"]["es"]),
            "description": (c.fields["description"]["en"], c.fields["description"]["es"]),
        }
        for c in catalog.items(C)
        if c.ref in named
    }
    return {"products": products, "collections": collections}


def actual_store(emu: ShopifyEmulator) -> dict[str, Any]:
    """The emulated store's state in the shape of `expected_store`; duplicates fail."""

    def ref_of(metafields: dict[tuple[str, str], tuple[str, str]]) -> str:
        return metafields[("catalogsync", "ref")][1]

    def es(resource: str, key: str) -> str | None:
        found = emu.translations.get((resource, "es", key))
        return found[0] if found else None

    collections: dict[str, Any] = {}
    refs: dict[str, str] = {}
    for c in emu.collections.values():
        ref = ref_of(c.metafields)
        assert ref not in collections, f"two collections for {ref}"
        refs[c.id] = ref
        collections[ref] = {
            "title": (c.title, es(c.id, "title")),
            "description": (c.description_html, es(c.id, "body_html")),
        }
    products: dict[str, Any] = {}
    for p in emu.products.values():
        ref = ref_of(p.metafields)
        assert ref not in products, f"two products for {ref}"
        products[ref] = {
            "title": (p.title, es(p.id, "title")),
            "description": (p.description_html, es(p.id, "body_html")),
            "vendor": p.vendor,
            "status": p.status,
            "tags": sorted(p.tags),
            "options": [(name, list(values)) for name, values in p.options],
            "variants": [
                (
                    dict(v.options),
                    v.price,
                    v.compare_at_price,
                    v.sku,
                    v.barcode,
                    emu.quantity(v.inventory_item_id),
                )
                for v in p.variants
            ],
            "collections": sorted(refs[c] for c in p.collections),
            "files": list(p.files),
        }
    return {"products": products, "collections": collections}


def demo_catalog(products: int) -> MemoryCatalog:
    """The demo catalog, every 7th product invisible (R10), plus P8888 with every problem (R13)."""
    catalog = sample_catalog(products)
    for item in catalog.items(P):
        if int(item.ref[1:]) % 7 == 0 and item.visibility is Visibility.VISIBLE:
            catalog.put(attrs.evolve(item, visibility=Visibility.INVISIBLE))
    catalog.put(
        Item(
            "P8888",
            P,
            parents=["cat-bags"],
            fields={
                "title": {"en": " ", "es": "Bolso"},
                "description": {"en": "<p>Broken</p>", "es": "<p>Roto</p>"},
                "vendor": "Acme Outdoor",
                "images": ["https://cdn.example.com/ok.jpg", "ftp://cdn.example.com/no.jpg"],
                "options": ["Size", "Color"],
            },
        ),
        *[
            Item(
                f"P8888-V{i}",
                V,
                parents=["P8888"],
                fields={
                    "sku": sku,
                    "barcode": f"88880000000{i}",
                    "price": price,
                    "compare_at_price": 30,
                    "option_values": {"Size": "M", "Color": "Red"},
                    "stock": 1,
                },
            )
            for i, (sku, price) in enumerate([("B-1", 20), ("B" * 256, -5), ("B-3", 20)], 1)
        ],
    )
    return catalog


# -------------------------------------------------------------------------------------------------
# the demo catalog, full then incremental (one run shared by several tests)
# -------------------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """The two events of the demo story, and what the store and the catalog held around them."""

    world: World
    first: Any
    second: Any
    after_first: dict[str, Any]
    expected_first: dict[str, Any]
    refused_first: dict[str, set[str]]
    before_edits: MemoryCatalog
    edits: list[Change]
    calls_second: dict[str, int]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """150 demo products synchronized to the emulator, edited, synchronized again."""
    catalog = demo_catalog(150)
    with world(tmp_path_factory.mktemp("demo"), catalog) as w:
        expected_first = expected_store(catalog)
        refused_first = invalid_products(catalog)
        first = w.run()
        after_first = actual_store(w.emu)
        calls_first = dict(w.emu.calls)
        before_edits = MemoryCatalog([i for t in ItemType for i in catalog.items(t)])
        edits = edit_catalog(catalog)
        # the stock of one variant changes too: only that one may be overwritten
        variant = catalog.get(V, ["P0010-V2"])["P0010-V2"]
        catalog.put(attrs.evolve(variant, fields={**variant.fields, "stock": 99}))
        edits.append(Change("P0010-V2", V))
        second = w.run(edits)
        calls_second = {
            name: count - calls_first.get(name, 0)
            for name, count in w.emu.calls.items()
            if count != calls_first.get(name, 0)
        }
        yield DemoRun(
            w,
            first,
            second,
            after_first,
            expected_first,
            refused_first,
            before_edits,
            edits,
            calls_second,
        )


def test_full_sync_mirrors_the_catalog(demo_run):
    """A full sync leaves the store equal to the exportable catalog, every field compared."""
    expected = demo_run.expected_first

    assert demo_run.after_first == expected
    statuses = {p["status"] for p in expected["products"].values()}
    assert statuses == {"ACTIVE", "DRAFT", "ARCHIVED"}  # the catalog exercises all of R10
    assert demo_run.first.event.status.value == "completed"


def test_incremental_sync_mirrors_the_edited_catalog(demo_run):
    """After the demo's edits the incremental sync leaves the store equal to the catalog again."""
    w = demo_run.world

    assert actual_store(w.emu) == expected_store(w.catalog)
    assert "P0004" not in actual_store(w.emu)["products"]
    assert actual_store(w.emu)["collections"]["cat-hats"]["title"] == (
        "Hats & Caps",
        "Sombreros y gorras",
    )


def test_incremental_sync_sends_only_what_changed(demo_run):
    """The incremental event skips unchanged items and makes only the calls the edits need."""
    before, w = demo_run.before_edits, demo_run.world
    edited = {c.ref for c in demo_run.edits if c.type is V}  # new, repriced, restocked
    edited_products = {ref.split("-")[0] for ref in edited} - {"P9001"}
    gone = variants_of(before, "P0004")
    hats = {p.ref for p in w.catalog.items(P) if "cat-hats" in p.parents}
    result = demo_run.second

    assert result.synchronized.as_dict() == {
        "category": 1,  # cat-hats renamed
        "product": len(edited_products) + 2,  # the edited ones, P0004 deleted, P9001 created
        "variant": len(edited) + len(gone),  # P0004's variants went with it
    }
    assert result.failed.total == 0
    # R01 re-examined the renamed category's products; their payloads (collection ids) did
    # not change (R06)
    assert result.unchanged.product == len(hats - edited_products)
    assert demo_run.calls_second == {
        "shop": 1,
        "location": 1,
        "productByIdentifier": 1,  # P9001 is looked up before it is created
        "productSet": len(edited_products) + 1,
        "productDelete": 1,
        "collectionUpdate": 1,
        "translatableResource": 2,  # the renamed collection and the new product
        "translationsRegister": 2,
        "inventorySetQuantities": 1,  # only the variant whose stock changed
    }


def test_invalid_demo_items_fail_with_every_problem(demo_run):
    """Refused items fail locally, every problem named (R13); everything else is delivered."""
    w, first = demo_run.world, demo_run.first
    refused = demo_run.refused_first
    failed = {s.ref: s for s in w.statuses(first.event.id, state=ItemState.ERROR, item_type=P)}

    assert set(failed) == set(refused)
    assert {"P0011", "P0037", "P0047", "P0053", "P8888"} <= set(refused)
    for ref, status in failed.items():
        assert {e.kind for e in status.errors} == {ErrorKind.VALIDATION}
        assert {e.field for e in status.errors} >= refused[ref], ref
    assert {e.field for e in failed["P8888"].errors} == {
        "title",
        "files[1].originalSource",
        "variants[1].sku",
        "variants[1].price",
        "variants[1].optionValues",
        "variants[2].optionValues",
    }
    variants = {s.ref for s in w.statuses(first.event.id, state=ItemState.ERROR, item_type=V)}
    assert variants == {v.ref for ref in refused for v in variants_of(demo_run.before_edits, ref)}
    done = w.statuses(first.event.id, state=ItemState.DONE)
    items = sum(len(demo_run.before_edits.items(t)) for t in ItemType)
    assert len(done) == items - len(failed) - len(variants)
    assert first.event.status.value == "completed"


# -------------------------------------------------------------------------------------------------
# pacing at a low restore rate
# -------------------------------------------------------------------------------------------------


def test_low_restore_rate_sync_finishes_without_throttling_failures(tmp_path, record_property):
    """240 products at 10 points/s: nothing fails for throttling; the cost rate nears the limit."""
    catalog = sample_catalog(240)
    bucket, rate = 100.0, 10.0
    with world(tmp_path, catalog, shop={"bucket_size": bucket, "restore_rate": rate}) as w:
        started = w.clock.monotonic()
        result = w.run()
        elapsed = w.clock.monotonic() - started

        statuses = w.statuses(result.event.id, state=ItemState.ERROR)
        metrics = w.channel.metrics
        # beyond the bucket's first fill, points can only come from the restore rate
        achieved = (w.emu.cost_spent - bucket) / elapsed
        record_property("shopify_cost_rate_ratio", round(achieved / rate, 4))
        print(  # the benchmark issue tracks this line (pytest -s, or -rP)
            f"\nshopify pacing: {w.emu.cost_spent:.0f} points in {elapsed:.0f} s (simulated), "
            f"{achieved:.2f} points/s sustained at a restore rate of {rate:.0f} "
            f"(ratio {achieved / rate:.3f}); {metrics.requests} requests, "
            f"{metrics.throttled} throttled"
        )

    assert not [s for s in statuses if any(e.kind is not ErrorKind.VALIDATION for e in s.errors)]
    assert result.synchronized.product == 240 - len(invalid_products(catalog))
    assert (metrics.throttled, w.emu.throttles) == (0, 0)  # paced, never refused
    assert achieved / rate >= 0.8
    assert achieved <= rate * 1.01


# -------------------------------------------------------------------------------------------------
# crash safety, removals, deletions
# -------------------------------------------------------------------------------------------------


class Crash(BaseException):
    """A worker dies (not an Exception: nothing in the synchronizer catches it)."""


class Wrapped:
    """The Shopify channel seen through a wrapper whose push the tests below change."""

    def __init__(self, channel: ShopifyChannel) -> None:
        self.inner = channel
        self.name = channel.name
        self.capabilities = channel.capabilities

    def check_connection(self, params: ConnectorParams) -> Any:
        """Delegate."""
        return self.inner.check_connection(params)

    def render(self, item: Item, ctx: Any) -> Any:
        """Delegate."""
        return self.inner.render(item, ctx)

    def validate(self, item: Item, payload: Any, ctx: Any) -> Any:
        """Delegate."""
        return self.inner.validate(item, payload, ctx)

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Delegate."""
        return self.inner.push(operations, params)


class CrashAfterPush(Wrapped):
    """The worker dies right after its first push of products, before the commit."""

    crashes = 1

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Push, then die before the synchronizer could commit (once)."""
        outcomes = self.inner.push(operations, params)
        if self.crashes and any(o.item_type is P for o in operations):
            self.crashes -= 1
            raise Crash
        return outcomes


def test_lost_answers_and_redelivery_never_duplicate(tmp_path):
    """Lost answers, then a worker dying before its commit: nothing is created twice."""
    catalog = sample_catalog(20)
    with world(tmp_path, catalog) as w:
        w.run([Change("cat-shoes", C)])  # an earlier sync made the custom-id definitions
        w.emu.lose_responses = 8  # collections, products, translations: applied, answer lost
        crashing = Synchronizer(
            "e2e",
            catalog=catalog,
            channel=CrashAfterPush(w.channel),
            queue=w.queue,
            store=w.store,
            clock=w.clock,
            options=OPTIONS,
        )
        crashing.enqueue(all_changes(catalog))
        with pytest.raises(Crash):
            crashing.run()
        pushed_before_the_crash = len(w.emu.products)
        w.clock.advance(OPTIONS.lease_ttl.total_seconds() + 1)  # the dead worker's leases expire
        result = w.sync.run()  # another worker takes over the event

        assert result.reason == "completed"
        assert pushed_before_the_crash > 0
        assert w.emu.lose_responses == 0
        assert w.channel.transport.stats["transport_errors"] == 8  # each one seen, then retried
        assert result.failed.product == len(invalid_products(catalog))
        assert actual_store(w.emu) == expected_store(catalog)  # (it fails on any duplicate)
        assert len(w.emu.products) == 20 - len(invalid_products(catalog))
        assert len(w.emu.collections) == 6


def test_removed_variant_disappears_from_its_product(tmp_path):
    """A variant removed in the PIM is removed from its Shopify product (and its stock)."""
    catalog = sample_catalog(6)
    with world(tmp_path, catalog) as w:
        w.run()
        product = w.emu.product_by_ref("P0002")
        assert product is not None
        gone = variants_of(catalog, "P0002")[0]
        old = next(v for v in product.variants if v.sku == gone.fields["sku"])
        catalog.remove(V, gone.ref)

        result = w.run([Change(gone.ref, V, ChangeKind.DELETE)])

        product = w.emu.product_by_ref("P0002")
        assert product is not None
        assert gone.fields["sku"] not in [v.sku for v in product.variants]
        assert w.emu.quantity(old.inventory_item_id) is None
        [status] = w.statuses(result.event.id, ref=gone.ref)
        assert (status.state, status.action) == (ItemState.DONE, ItemAction.DELETE)
        assert actual_store(w.emu) == expected_store(catalog)


@pytest.mark.parametrize(
    ("params", "kept", "status"),
    [
        (DEMO, False, None),
        (attrs.evolve(DEMO, deletion=DeletionMode.ARCHIVE), True, "ARCHIVED"),
        (attrs.evolve(DEMO, disable_deletions=True), True, "ACTIVE"),
    ],
    ids=["delete", "archive", "deletions-disabled"],
)
def test_deleted_product_is_deleted_archived_or_kept(tmp_path, params, kept, status):
    """A product deleted in the PIM is deleted, archived, or kept with disable_deletions (R15)."""
    catalog = sample_catalog(6)
    with world(tmp_path, catalog, params=params) as w:
        w.run()
        gid = w.emu.product_by_ref("P0003").id
        catalog.remove(P, "P0003")
        catalog.remove(V, *catalog.children(V, ["P0003"])["P0003"])

        result = w.run([Change("P0003", P, ChangeKind.DELETE)])

        product = w.emu.products.get(gid)
        assert (product is not None) == kept
        if product is not None:
            assert product.status == status
        [record] = w.statuses(result.event.id, ref="P0003", item_type=P)
        assert record.state is ItemState.DONE
        assert (
            record.action
            is {
                "delete": ItemAction.DELETE,
                "archive": ItemAction.ARCHIVE,
                "deletions-disabled": ItemAction.SKIP,
            }["archive" if status == "ARCHIVED" else "deletions-disabled" if kept else "delete"]
        )


@pytest.mark.parametrize("map_status", [True, False])
def test_statuses_follow_r10(tmp_path, map_status):
    """Statuses map visible/draft/invisible to ACTIVE/DRAFT/ARCHIVED, or all ACTIVE (R10)."""
    catalog = sample_catalog(6)
    for ref, visibility in (("P0002", Visibility.DRAFT), ("P0003", Visibility.INVISIBLE)):
        catalog.put(attrs.evolve(catalog.get(P, [ref])[ref], visibility=visibility))
    with world(tmp_path, catalog, params=attrs.evolve(DEMO, map_status=map_status)) as w:
        w.run()

        assert actual_store(w.emu) == expected_store(catalog, map_status=map_status)


class HoldCategories(Wrapped):
    """Pushes of categories wait until the test lets them go."""

    def __init__(self, channel: ShopifyChannel) -> None:
        super().__init__(channel)
        self.pushing = threading.Event()
        self.release = threading.Event()

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Hold category pushes until released."""
        if any(o.item_type is C for o in operations):
            self.pushing.set()
            assert self.release.wait(10)
        return self.inner.push(operations, params)


def test_products_join_a_collection_created_while_they_were_sent(tmp_path):
    """A product sent while another worker created its collection is sent again, and joins it."""
    catalog = sample_catalog(1)
    with world(tmp_path, catalog) as w:
        held = HoldCategories(w.channel)
        one = Synchronizer(
            "e2e",
            catalog=catalog,
            channel=held,
            queue=w.queue,
            store=w.store,
            clock=w.clock,
            options=attrs.evolve(OPTIONS, batch_size=1),
        )
        path = tmp_path / "catalogsync.db"
        with SQLiteQueue(path, clock=w.clock) as queue, SQLiteStore(path, clock=w.clock) as store:
            other = Synchronizer(
                "e2e",
                catalog=catalog,
                channel=w.channel,
                queue=queue,
                store=store,
                clock=w.clock,
                options=OPTIONS,
            )
            one.enqueue(all_changes(catalog))
            results: list[Any] = []
            worker = threading.Thread(target=lambda: results.append(one.run()))
            worker.start()
            assert held.pushing.wait(10)  # worker one is creating the collection...
            meanwhile = other.run(wait=False)  # ...while the other sends the product
            product = w.emu.product_by_ref("P0001")
            assert product is not None
            assert product.collections == []
            held.release.set()
            worker.join(30)

        assert meanwhile.reason == "waiting"
        assert results[0].reason == "completed"
        assert actual_store(w.emu) == expected_store(catalog)


class SlowPush(Wrapped):
    """Every push takes 61 s, longer than the test's lease."""

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Push, then let the clock run past the lease."""
        outcomes = self.inner.push(operations, params)
        self.inner.clock.advance(61)
        return outcomes


def test_an_invalid_item_re_leased_in_the_same_event_is_counted_once(tmp_path):
    """An invalid item re-leased after its lease expired still counts as one failure."""
    catalog = sample_catalog(12)
    with world(tmp_path, catalog, channel=SlowPush) as w:
        w.sync.options = attrs.evolve(OPTIONS, lease_ttl=60, heartbeat=False)
        result = w.run()

    assert set(invalid_products(catalog)) == {"P0011"}
    assert result.event.failed.product == 1
    assert result.event.failed.variant == len(variants_of(catalog, "P0011"))


# -------------------------------------------------------------------------------------------------
# TEST mode (R11)
# -------------------------------------------------------------------------------------------------


def test_test_mode_goes_to_the_development_store(tmp_path):
    """mode=TEST goes to the development store, flags endpoint=test, and records no sent state."""
    catalog = sample_catalog(4)
    with world(tmp_path, catalog, params=attrs.evolve(DEMO, mode=Mode.TEST), test_store=True) as w:
        result = w.run()

        assert w.dev is not None
        assert w.emu.products == {}
        assert actual_store(w.dev) == expected_store(catalog)
        statuses = w.statuses(result.event.id)
        assert statuses
        assert {s.endpoint for s in statuses} == {Endpoint.TEST}
        assert result.event.snapshot.params.mode is Mode.TEST
        for item_type in ItemType:
            refs = [i.ref for i in catalog.items(item_type)]
            assert w.store.sent_states("e2e", item_type, refs) == {}


# -------------------------------------------------------------------------------------------------
# the conformance suite, the command line
# -------------------------------------------------------------------------------------------------


class TestShopifyConformance(ChannelConformance):
    """The channel conformance suite against ShopifyChannel on the emulator."""

    params = DEMO

    @pytest.fixture
    def channel(self) -> Iterator[ShopifyChannel]:
        """The Shopify channel on a schema-validating emulator."""
        clock = ManualClock()
        channel = shopify_channel(clock, emulator(clock))
        yield channel
        channel.transport.client.close()

    @pytest.fixture
    def catalog(self) -> MemoryCatalog:
        """Eight demo products (none of the deliberate problems) in six categories."""
        return sample_catalog(8)

    @pytest.fixture
    def invalid_item(self) -> Item:
        """A product without a title."""
        return Item(
            "P0099",
            P,
            parents=["cat-shoes"],
            fields={"title": {"en": "", "es": ""}, "vendor": "Acme", "price": 5},
        )

    @pytest.fixture
    def secrets(self) -> list[str]:
        """The access token."""
        return [TOKEN]


def test_demo_command_line_defaults_to_shopify(capsys):
    """The demo command line (--products 40 --json) runs on the Shopify emulator by default."""
    code = main(["demo", "--products", "40", "--json"])
    document = json.loads(capsys.readouterr().out)
    first, second = document["events"]
    catalog = sample_catalog(40)

    assert code == 0
    assert document["channel"] == "shopify"
    assert first["configuration"]["channel"] == "shopify"
    assert first["configuration"]["api_version"] == "2026-10"
    assert {e["ref"] for e in first["item_errors"] if e["type"] == "product"} == set(
        invalid_products(catalog)
    )
    errors = [e for item in first["item_errors"] for e in item["errors"]]
    assert {e["kind"] for e in errors} == {"validation"}
    assert first["configuration"]["details"]["shop"] == "catalogsync-demo.myshopify.com"
    assert second["status"] == "completed"
    assert not second["item_errors"]
