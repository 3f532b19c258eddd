"""
Takealot end to end: the real Synchronizer on SQLite, the Takealot adapter, the emulator.

The expected offers are computed from the catalog alone (`expected_offers`), with Takealot's
documented rules written out here, never with channel code, and compared with the emulator's
state after each event.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from catalogsync import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    Endpoint,
    ErrorKind,
    ExportStatus,
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
from catalogsync._demo import all_changes, ean13, edit_catalog, sample_catalog
from catalogsync.channels.takealot import TakealotChannel
from catalogsync.channels.takealot._demo import (
    DEMO_KEY,
    FIELD_MAPPING,
    LEADTIME_DAYS,
    RATE_LIMIT,
    WAREHOUSE,
    demo_catalogue,
    demo_params,
    demo_setup,
    unlisted,
)
from catalogsync.testing import ChannelConformance, ManualClock, TakealotEmulator


C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
KEY = "takealot-e2e-key-0123456789"
BUYABLE, NOT_BUYABLE, DISABLED = "Buyable", "Not Buyable", "Disabled by Seller"
MAX_SKU = 255  # Takealot: "SKU exceeds 255 characters" (E27)
#: The demo's Takealot catalogue for samples of up to a few hundred products (1,155 variants
#: for 300 products): a smaller span than the demo's own keeps each test fast.
CATALOGUE = demo_catalogue(span=2_000)
LISTED = frozenset(CATALOGUE)


# =================================================================================================
# the expectation: Takealot's rules, applied to the catalog by hand
# =================================================================================================


def number_of(barcode: str) -> int:
    """The number `ean13` made *barcode* from."""
    return int(barcode[3:12])


def deliverable(variant: Item, listed: frozenset[str] = LISTED) -> bool:
    """A demo variant Takealot takes: a listed barcode and a SKU of at most 255 characters."""
    return variant.fields["barcode"] in listed and len(variant.fields["sku"]) <= MAX_SKU


def variants_of(catalog: MemoryCatalog, product: Item) -> list[Item]:
    """The product's variants, in catalog order."""
    refs = catalog.children(V, [product.ref])[product.ref]
    found = catalog.get(V, refs)
    return [found[r] for r in refs]


def expected_offers(
    catalog: MemoryCatalog,
    *,
    listed: frozenset[str] = LISTED,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
    map_status: bool = True,
    only_visible: bool = False,
) -> dict[str, dict[str, Any]]:
    """
    The offers the catalog implies, by barcode.

    * one offer per variant with a listed barcode and a valid SKU (products with variants get
      none; the demo's products all have variants);
    * selling price <- price, RRP <- compare_at_price, leadtime days from the channel's default,
      stock in the one merchant warehouse;
    * R10 (status mapping on): a variant whose product or itself is not visible is disabled by
      the seller; otherwise Takealot makes it buyable when it has a price, leadtime days and
      leadtime stock, else not buyable;
    * with *only_visible* (``export_status=ONLY_VISIBLE``) only visible products are exported;
    * R15: an offer of *previous* whose item is gone keeps its last values and is disabled.
    """
    out: dict[str, dict[str, Any]] = {}
    for product in catalog.items(P):
        if only_visible and product.visibility is not Visibility.VISIBLE:
            continue
        variants = variants_of(catalog, product)
        assert variants, f"the demo's products all have variants ({product.ref} has none)"
        for variant in variants:
            if not deliverable(variant, listed) or (
                only_visible and variant.visibility is not Visibility.VISIBLE
            ):
                continue
            f = variant.fields
            enabled = not map_status or (
                product.visibility is Visibility.VISIBLE
                and variant.visibility is Visibility.VISIBLE
            )
            buyable = f["price"] > 0 and LEADTIME_DAYS > 0 and f["stock"] > 0
            out[f["barcode"]] = {
                "sku": f["sku"],
                "selling_price": f["price"],
                "rrp": f["compare_at_price"],
                "leadtime_days": LEADTIME_DAYS,
                "stock": {WAREHOUSE: f["stock"]},
                "status": (BUYABLE if buyable else NOT_BUYABLE) if enabled else DISABLED,
            }
    for barcode, offer in (previous or {}).items():
        if barcode not in out:
            out[barcode] = {**offer, "status": DISABLED}
    return out


def actual_offers(emulator: TakealotEmulator) -> dict[str, dict[str, Any]]:
    """The emulator's offers, in the shape of `expected_offers`."""
    out = {}
    for barcode in list(emulator.offers):
        offer = emulator.offer(barcode)
        assert offer is not None
        out[barcode] = {
            "sku": offer["sku"],
            "selling_price": offer["selling_price"],
            "rrp": offer["rrp"],
            "leadtime_days": offer["leadtime_days"],
            "stock": emulator.stock(barcode),
            "status": offer["status"],
        }
    return out


# =================================================================================================
# the environment
# =================================================================================================


@attrs.define
class Env:
    """A Synchronizer on SQLite, driving a TakealotChannel on a TakealotEmulator."""

    catalog: MemoryCatalog
    emulator: TakealotEmulator
    channel: TakealotChannel
    sync: Synchronizer
    queue: SQLiteQueue
    store: SQLiteStore

    def statuses(self, event_id: str | None = None, **kw: Any) -> list[Any]:
        """Every item status of an event (the latest by default)."""
        if event_id is not None:
            kw["event_id"] = event_id
        return list(self.sync.register.items(self.sync.connector_id, limit=100_000, **kw))

    def by_key(self, event_id: str | None = None) -> dict[tuple[ItemType, str], Any]:
        """The statuses of an event by (type, ref)."""
        return {s.key: s for s in self.statuses(event_id)}

    def full(self) -> Any:
        """Enqueue the whole catalog and run."""
        self.sync.enqueue(all_changes(self.catalog))
        return self.sync.run()

    def close(self) -> None:
        """Close the SQLite handles and the client."""
        self.queue.close()
        self.store.close()
        self.channel.transport.client.close()


def make_env(
    tmp_path: Path,
    clock: ManualClock,
    catalog: MemoryCatalog,
    *,
    params: ConnectorParams | None = None,
    catalogue: Iterable[str] = CATALOGUE,
    options: SyncOptions | None = None,
    rate_limit: int | None = 100,
    channel_kw: Mapping[str, Any] | None = None,
) -> Env:
    """The demo's configuration, on a manual clock and a SQLite file in *tmp_path*."""
    emulator = TakealotEmulator(
        catalogue,
        api_key=KEY,
        warehouses=(WAREHOUSE,),
        rate_limit=rate_limit,
        window=60.0,
        batch_polls=2,
        clock=clock,
    )
    channel = TakealotChannel(
        Secret(KEY),
        client=emulator.client(),
        warehouses=[WAREHOUSE],
        default_leadtime_days=LEADTIME_DAYS,
        clock=clock,
        rng=random.Random(7),
        **dict(channel_kw or {}),
    )
    path = tmp_path / "catalogsync.db"
    queue, store = SQLiteQueue(path, clock=clock), SQLiteStore(path, clock=clock)
    sync = Synchronizer(
        Connector("takealot-e2e", channel.name, account="seller-1", params=params or demo_params()),
        catalog=catalog,
        channel=channel,
        queue=queue,
        store=store,
        clock=clock,
        options=options or SyncOptions(batch_size=100, heartbeat=False),
    )
    return Env(catalog, emulator, channel, sync, queue, store)


@pytest.fixture
def env_factory(tmp_path, clock):
    """Build environments; close them at the end of the test."""
    made: list[Env] = []

    def factory(catalog: MemoryCatalog, **kw: Any) -> Env:
        home = tmp_path / f"env{len(made)}"
        home.mkdir()
        env = make_env(home, clock, catalog, **kw)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo story on 300 products: a full sync, the demo's edits, an incremental sync."""
    tmp = tmp_path_factory.mktemp("demo-run")
    clock = ManualClock()
    catalog = sample_catalog(300)
    env = make_env(tmp, clock, catalog)
    first = env.full()
    after_first = actual_offers(env.emulator)
    expected_first = expected_offers(catalog)
    first_statuses = env.by_key(first.event.id)
    changes = edit_catalog(catalog)
    env.sync.enqueue(changes)
    second = env.sync.run()
    yield {
        "env": env,
        "catalog": catalog,
        "original": sample_catalog(300),
        "first": first,
        "second": second,
        "after_first": after_first,
        "expected_first": expected_first,
        "first_statuses": first_statuses,
        "changes": changes,
    }
    env.close()


# =================================================================================================
# the demo story: full, then incremental
# =================================================================================================


def test_full_sync_leaves_the_offers_equal_to_the_catalog(demo_run):
    """After the first event the emulator holds exactly the offers the catalog implies."""
    first = demo_run["first"]

    assert first.reason == "completed"
    assert demo_run["after_first"] == demo_run["expected_first"]
    assert demo_run["env"].emulator.throttled == 0  # paced by the rate-limit headers
    assert len(demo_run["expected_first"]) > 1000
    statuses = {s["status"] for s in demo_run["expected_first"].values()}
    assert statuses == {BUYABLE, NOT_BUYABLE, DISABLED}  # the demo has drafts and empty stock


def test_incremental_sync_leaves_the_offers_equal_to_the_edited_catalog(demo_run):
    """After the demo's edits and an incremental event the offers match the edited catalog."""
    env, catalog = demo_run["env"], demo_run["catalog"]
    expected = expected_offers(catalog, previous=demo_run["expected_first"])

    assert demo_run["second"].reason == "completed"
    assert actual_offers(env.emulator) == expected
    # the demo's edits really show: new prices, the deleted product's offers disabled, a new offer
    assert expected != demo_run["expected_first"]
    p4 = [
        o
        for b, o in expected.items()
        if b in demo_run["expected_first"] and o["sku"].startswith("P0004-")
    ]
    assert p4
    assert all(o["status"] == DISABLED for o in p4)
    assert expected[ean13(90_001)]["sku"] == "P9001-40"


def test_unknown_barcodes_are_item_errors(demo_run):
    """A variant whose barcode Takealot does not list fails with E2 and a message naming it."""
    env, statuses = demo_run["env"], demo_run["first_statuses"]
    unknown = [v for v in demo_run["original"].items(V) if v.fields["barcode"] not in LISTED]

    assert 3 <= len(unknown) <= 10  # a handful
    for variant in unknown:
        status = statuses[variant.key]
        barcode = variant.fields["barcode"]
        assert status.state is ItemState.ERROR
        [error] = status.errors
        assert (error.kind, error.code, error.field) == (ErrorKind.CHANNEL, "E2", "barcode")
        assert f"barcode {barcode} is not in the Takealot catalogue" in error.message
        assert status.request_id  # the batch id, to quote to Takealot
        assert env.emulator.offer(barcode) is None


def test_products_with_variants_and_categories_are_skipped_with_a_reason(demo_run):
    """Categories and products with variants get DONE/SKIP statuses that say why."""
    catalog, statuses = demo_run["original"], demo_run["first_statuses"]

    for category in catalog.items(C):
        status = statuses[category.key]
        assert (status.state, status.action) == (ItemState.DONE, ItemAction.SKIP)
        assert status.message == "takealot does not take category items"
    for product in catalog.items(P):
        status = statuses[product.key]
        assert (status.state, status.action) == (ItemState.DONE, ItemAction.SKIP)
        assert status.message == (
            f"product {product.ref} has variants: Takealot offers are made for its variants, "
            "not for the product"
        )
    first = demo_run["first"]
    assert first.skipped.category == len(catalog.items(C))
    assert first.skipped.product == len(catalog.items(P))


def test_the_demo_counts_add_up(demo_run):
    """The first event synchronizes every deliverable variant and fails the others."""
    catalog, first = demo_run["original"], demo_run["first"]
    variants = catalog.items(V)
    good = [v for v in variants if deliverable(v)]
    # the edits of the second event changed the catalog, but not the first event's counts
    event = demo_run["env"].sync.register.event(first.event.id)

    assert (first.synchronized.variant, first.failed.variant) == (
        len(good),
        len(variants) - len(good),
    )
    assert event.synchronized.variant == len(good)
    assert event.failed.total == len(variants) - len(good)


def test_invalid_demo_items_fail_validation_and_are_never_sent(demo_run):
    """The demo's over-long SKUs are VALIDATION errors (E27); nothing is sent for them."""
    env, statuses = demo_run["env"], demo_run["first_statuses"]
    long_sku = [
        key for key, s in statuses.items() if key[0] is V and any(e.code == "E27" for e in s.errors)
    ]
    catalog = demo_run["original"]
    expected = [v.key for v in catalog.items(V) if len(v.fields["sku"]) > MAX_SKU]

    assert sorted(long_sku) == sorted(expected)
    assert len(expected) == 5  # every 60th product's first variant
    for key in expected:
        status = statuses[key]
        assert status.state is ItemState.ERROR
        assert [(e.kind, e.code, e.field) for e in status.errors] == [
            (ErrorKind.VALIDATION, "E27", "sku")
        ]
        barcode = catalog.get(V, [key[1]])[key[1]].fields["barcode"]
        assert env.emulator.offer(barcode) is None
        assert status.endpoint is None  # never went anywhere


def test_every_problem_of_an_item_is_reported_at_once(env_factory):
    """R13: a variant with five problems gets all five as VALIDATION errors and is not sent."""
    catalog = sample_catalog(6)
    catalog.put(
        Item(
            "P0001-BAD",
            V,
            parents=["P0001"],
            fields={
                "sku": "S" * 300,
                "barcode": "6001234567890",  # a wrong check digit
                "price": 99.5,
                "compare_at_price": 0,
                "stock": -3,
            },
        )
    )
    env = env_factory(catalog)
    result = env.full()
    status = env.by_key(result.event.id)[(V, "P0001-BAD")]

    assert status.state is ItemState.ERROR
    assert {e.kind for e in status.errors} == {ErrorKind.VALIDATION}
    assert sorted(e.code for e in status.errors) == sorted(
        ["invalid_barcode", "E27", "E19", "E22", "E30"]
    )
    assert not any("6001234567890" in path for _, path in env.emulator.requests)


def test_incremental_event_skips_unchanged_items(env_factory):
    """R06 via R01: a product edit that changes no offer re-renders its variants as unchanged."""
    catalog = sample_catalog(40)
    env = env_factory(catalog)
    env.full()
    before = len(env.emulator.requests)
    p20 = catalog.get(P, ["P0020"])["P0020"]
    catalog.put(attrs.evolve(p20, fields={**p20.fields, "vendor": "Acme Trail"}))
    env.sync.enqueue([Change("P0020", P)])
    result = env.sync.run()
    good = [v for v in variants_of(catalog, p20) if deliverable(v)]

    assert result.reason == "completed"
    assert result.unchanged.variant == len(good) > 0
    assert result.synchronized.total == 0
    assert result.unchanged.product == 1  # its skip payload is remembered, so it is unchanged too
    assert result.skipped.product == 0
    assert len(env.emulator.requests) == before + 1  # the connection check only
    event = env.sync.register.event(result.event.id)
    assert event.unchanged.variant == len(good)


def test_status_mapping_follows_product_visibility(env_factory):
    """R10: a product made draft or invisible disables its offers; made visible re-enables them."""
    catalog = sample_catalog(30)
    env = env_factory(catalog)
    env.full()
    first = expected_offers(catalog)
    for ref, visibility in (
        ("P0010", Visibility.DRAFT),
        ("P0011", Visibility.INVISIBLE),
        ("P0025", Visibility.VISIBLE),  # a draft in the sample
    ):
        item = catalog.get(P, [ref])[ref]
        catalog.put(attrs.evolve(item, visibility=visibility))
        env.sync.enqueue([Change(ref, P)])
    result = env.sync.run()
    expected = expected_offers(catalog)

    assert actual_offers(env.emulator) == expected
    for ref, status in (("P0010", DISABLED), ("P0011", DISABLED)):
        offers = [
            expected[v.fields["barcode"]]
            for v in variants_of(catalog, catalog.get(P, [ref])[ref])
            if deliverable(v)
        ]
        assert offers
        assert {o["status"] for o in offers} == {status}
    p25 = [v for v in variants_of(catalog, catalog.get(P, ["P0025"])["P0025"]) if deliverable(v)]
    assert {first[v.fields["barcode"]]["status"] for v in p25} == {DISABLED}
    assert {expected[v.fields["barcode"]]["status"] for v in p25} <= {BUYABLE, NOT_BUYABLE}
    assert result.synchronized.variant == sum(
        1
        for ref in ("P0010", "P0011", "P0025")
        for v in variants_of(catalog, catalog.get(P, [ref])[ref])
        if deliverable(v)
    )


def test_the_incremental_event_counts(demo_run):
    """The second event sends the edited, new and removed variants and fails the unlisted one."""
    catalog, second, first = demo_run["catalog"], demo_run["second"], demo_run["expected_first"]
    edited = [c.ref for c in demo_run["changes"] if c.type is V]
    sent = [catalog.get(V, [r])[r] for r in edited]
    removed = [o for o in first.values() if o["sku"].startswith("P0004-")]

    assert second.synchronized.variant == sum(deliverable(v) for v in sent) + len(removed)
    assert second.failed.variant == sum(not deliverable(v) for v in sent) == 1  # P9001-V3
    statuses = demo_run["env"].by_key(second.event.id)
    archived = [s for s in statuses.values() if s.action is ItemAction.ARCHIVE]
    assert len(archived) == len(removed)
    assert {s.message for s in archived} == {"takealot cannot delete; used archive instead"}
    assert statuses[(C, "cat-hats")].action is ItemAction.SKIP


def test_a_barcode_change_moves_the_offer(env_factory):
    """The memo kept in SQLite lets the adapter retire the old barcode's offer and make the new."""
    catalog = sample_catalog(6)
    spare = TakealotEmulator.make_barcodes(1, start=800_000)[0]
    env = env_factory(catalog, catalogue=[*CATALOGUE, spare])
    env.full()
    variant = catalog.get(V, ["P0001-V1"])["P0001-V1"]
    old = env.emulator.offer(variant.fields["barcode"])
    assert old is not None
    catalog.put(attrs.evolve(variant, fields={**variant.fields, "barcode": spare}))
    env.sync.enqueue([Change(variant.ref, V)])
    result = env.sync.run()
    status = env.by_key(result.event.id)[variant.key]
    retired, moved = env.emulator.offer(variant.fields["barcode"]), env.emulator.offer(spare)

    # the new barcode had no offer: Takealot made one
    assert (status.state, status.action) == (ItemState.DONE, ItemAction.CREATE)
    assert retired is not None
    assert moved is not None
    assert (retired["status"], retired["sku"]) == (
        DISABLED,
        f"{variant.fields['sku']}~{old['offer_id']}",
    )
    assert moved["sku"] == variant.fields["sku"]
    assert status.channel_id == str(moved["offer_id"])
    assert "the barcode changed" in (status.message or "")


# =================================================================================================
# TEST mode
# =================================================================================================


def test_test_mode_sends_nothing_and_records_test_statuses(env_factory):
    """R11: TEST mode validates only: no write reaches Takealot, statuses say endpoint=test."""
    catalog = sample_catalog(30)
    env = env_factory(catalog, params=attrs.evolve(demo_params(), mode=Mode.TEST))
    result = env.full()
    statuses = env.statuses(result.event.id, item_type=V)

    assert result.reason == "completed"
    assert env.emulator.requests == [("GET", "/v2/offers/count")]  # the connection check
    assert env.emulator.offers == {}
    done = [s for s in statuses if s.state is ItemState.DONE]
    assert len(done) == sum(len(v.fields["sku"]) <= MAX_SKU for v in catalog.items(V))
    assert {s.endpoint for s in done} == {Endpoint.TEST}
    assert all(
        s.message.startswith("validated only (Takealot has no test environment): would send POST ")
        for s in done
    )
    assert result.event.snapshot.details["test_mode"].startswith("validation only")
    # a test run stores no sent state: production then sends everything once
    env.sync.update_connector(params=demo_params())
    env.sync.enqueue(all_changes(catalog))
    assert env.sync.run().synchronized.variant == sum(deliverable(v) for v in catalog.items(V))
    assert actual_offers(env.emulator) == expected_offers(catalog)


# =================================================================================================
# batches
# =================================================================================================


def test_several_thousand_offers_go_through_batches(env_factory, clock):
    """Thousands of offers go through the batch endpoint; each offer's error lands on its item."""
    catalog = sample_catalog(1000)
    variants = catalog.items(V)
    catalogue = demo_catalogue(span=5_000) + TakealotEmulator.make_barcodes(3, start=800_000)
    listed = frozenset(catalogue)
    env = env_factory(
        catalog,
        catalogue=catalogue,
        options=SyncOptions(batch_size=5_000, heartbeat=False),
        channel_kw={"batch_size": 1_500},
    )
    # made outside catalogsync: an offer Takealot disabled, and one holding a variant's SKU
    locked, taken = variants[100], variants[200]
    env.emulator.add_offer(locked.fields["barcode"], sku="PORTAL-1", selling_price=10)
    env.emulator.disable_by_takealot(locked.fields["barcode"])
    env.emulator.add_offer(catalogue[-1], sku=taken.fields["sku"], selling_price=10)
    started = clock.monotonic()
    result = env.full()
    statuses = env.by_key(result.event.id)
    sendable = [v for v in variants if len(v.fields["sku"]) <= MAX_SKU]

    assert len(sendable) > 3000
    assert result.reason == "completed"
    assert env.channel.batch_stats["batches"] == math.ceil(len(sendable) / 1_500)
    assert env.emulator.count("POST", "/v2/offers/offer/") == 0  # no single-offer writes
    assert env.emulator.throttled == 0
    batch_ids = {s.request_id for k, s in statuses.items() if k[0] is V and s.endpoint}
    assert len(batch_ids) == env.channel.batch_stats["batches"]
    failed = {k[1]: s for k, s in statuses.items() if s.state is ItemState.ERROR}
    unknown = {v.ref for v in sendable if v.fields["barcode"] not in listed}
    long_sku = {v.ref for v in variants if len(v.fields["sku"]) > MAX_SKU}
    assert set(failed) == unknown | long_sku | {locked.ref, taken.ref}
    for ref in unknown:
        assert [e.code for e in failed[ref].errors] == ["E2"]
    assert {e.code for e in failed[locked.ref].errors} >= {"E13", "E21"}
    assert all(e.kind is ErrorKind.CHANNEL for e in failed[locked.ref].errors)
    assert [e.code for e in failed[taken.ref].errors] == ["E6"]
    # everything else is on Takealot as the catalog says
    expected = expected_offers(catalog, listed=listed)
    del expected[taken.fields["barcode"]]
    actual = actual_offers(env.emulator)
    del actual[catalogue[-1]], actual[locked.fields["barcode"]]
    del expected[locked.fields["barcode"]]
    assert actual == expected
    assert clock.monotonic() > started  # batches were polled on the (manual) clock


# =================================================================================================
# removals
# =================================================================================================


def _remove_product(catalog: MemoryCatalog, ref: str) -> list[Item]:
    product = catalog.get(P, [ref])[ref]
    variants = variants_of(catalog, product)
    catalog.remove(V, *[v.ref for v in variants])
    catalog.remove(P, ref)
    return variants


def test_removal_disables_the_offers(env_factory):
    """R15: a deleted product's offers, and a deleted variant's offer, are disabled, not deleted."""
    catalog = sample_catalog(30)
    env = env_factory(catalog)
    env.full()
    first = expected_offers(catalog)
    gone = _remove_product(catalog, "P0003")
    lone = variants_of(catalog, catalog.get(P, ["P0020"])["P0020"])[0]
    catalog.remove(V, lone.ref)
    env.sync.enqueue(
        [Change("P0003", P, ChangeKind.DELETE), Change(lone.ref, V, ChangeKind.DELETE)]
    )
    result = env.sync.run()
    statuses = env.by_key(result.event.id)

    assert actual_offers(env.emulator) == expected_offers(catalog, previous=first)
    for variant in [*gone, lone]:
        offer = env.emulator.offer(variant.fields["barcode"])
        if not deliverable(variant):
            assert offer is None
            continue
        assert offer is not None
        assert offer["status"] == DISABLED
        status = statuses[variant.key]
        assert (status.state, status.action) == (ItemState.DONE, ItemAction.ARCHIVE)
    assert result.synchronized.variant == sum(deliverable(v) for v in [*gone, lone])


def test_unexportable_product_disables_its_offers(env_factory):
    """R15: with export_status=ONLY_VISIBLE, a product made draft is removed: offers disabled."""
    catalog = sample_catalog(30)
    params = attrs.evolve(demo_params(), export_status=ExportStatus.ONLY_VISIBLE)
    env = env_factory(catalog, params=params)
    env.full()
    first = expected_offers(catalog, only_visible=True)
    assert actual_offers(env.emulator) == first
    p7 = catalog.get(P, ["P0007"])["P0007"]
    catalog.put(attrs.evolve(p7, visibility=Visibility.DRAFT))
    env.sync.enqueue([Change("P0007", P)])
    result = env.sync.run()
    offers = actual_offers(env.emulator)

    good = [v for v in variants_of(catalog, p7) if deliverable(v)]
    assert good
    assert result.synchronized.variant == len(good)
    for v in good:
        assert offers[v.fields["barcode"]] == {**first[v.fields["barcode"]], "status": DISABLED}
    assert offers == expected_offers(catalog, only_visible=True, previous=first)
    # visible again: exported again, the offers re-enabled
    catalog.put(p7)
    env.sync.enqueue([Change("P0007", P)])
    again = env.sync.run()
    assert again.synchronized.variant == len(good)
    assert actual_offers(env.emulator) == first


def test_disable_deletions_keeps_the_offers(env_factory):
    """R15: with disable_deletions a deleted product's offers stay as they were."""
    catalog = sample_catalog(30)
    env = env_factory(catalog, params=attrs.evolve(demo_params(), disable_deletions=True))
    env.full()
    before = actual_offers(env.emulator)
    gone = _remove_product(catalog, "P0003")
    env.sync.enqueue([Change("P0003", P, ChangeKind.DELETE)])
    result = env.sync.run()
    statuses = env.by_key(result.event.id)

    assert actual_offers(env.emulator) == before
    kept = [v for v in gone if deliverable(v)]
    assert kept
    for variant in kept:
        status = statuses[variant.key]
        assert (status.state, status.action) == (ItemState.DONE, ItemAction.SKIP)
        assert status.message == "deletions are disabled for this connector"
    assert result.synchronized.total == 0


# =================================================================================================
# regressions: skips are remembered (R06); a force refresh deactivates nothing, not even through
# a variant's product (R05)
# =================================================================================================


def test_an_unchanged_skipped_product_is_not_pushed_again(env_factory):
    """R06: a product whose skip payload did not change is counted unchanged, not pushed again."""
    catalog = sample_catalog(1)
    env = env_factory(catalog)
    env.full()
    pushed: list[Any] = []
    push = env.channel.push

    def recording(operations: Any, params: Any) -> Any:
        pushed.extend(op.key for op in operations)
        return push(operations, params)

    env.channel.push = recording  # type: ignore[method-assign]
    env.sync.enqueue([Change("P0001", P)])
    result = env.sync.run()

    assert pushed == []
    assert result.unchanged.product == 1


def test_force_refresh_does_not_deactivate_the_variants_of_an_archived_product(env_factory):
    """R05: a force refresh exports no deactivation, also not through a variant's product."""
    catalog = sample_catalog(3)
    env = env_factory(catalog)
    env.full()
    before = actual_offers(env.emulator)
    p1 = catalog.get(P, ["P0001"])["P0001"]
    catalog.put(attrs.evolve(p1, visibility=Visibility.INVISIBLE))
    event = env.sync.force_refresh()
    env.sync.run()

    assert env.by_key(event.id)[(P, "P0001")].message == (
        "a force refresh does not export deactivations"
    )
    assert actual_offers(env.emulator) == before


# =================================================================================================
# the channel conformance suite
# =================================================================================================


class TestTakealotConformance(ChannelConformance):
    """The Channel contract, held by TakealotChannel on the emulator with the demo's settings."""

    params = demo_params()

    @pytest.fixture
    def catalog(self):
        """A small demo catalog (its barcodes all listed: items the channel should deliver)."""
        return sample_catalog(12)

    @pytest.fixture
    def channel(self, catalog, conformance_clock):
        """TakealotChannel on an emulator listing every barcode of the catalog."""
        barcodes = [v.fields["barcode"] for v in catalog.items(V)]
        emulator = TakealotEmulator(barcodes, api_key=KEY, rate_limit=100, clock=conformance_clock)
        client = emulator.client()
        yield TakealotChannel(
            Secret(KEY),
            client=client,
            warehouses=[WAREHOUSE],
            default_leadtime_days=LEADTIME_DAYS,
            clock=conformance_clock,
            rng=random.Random(1),
        )
        client.close()

    @pytest.fixture
    def invalid_item(self):
        """A variant of P0001 with a fractional price, a negative stock and no barcode."""
        return Item(
            "P0001-V9",
            V,
            parents=["P0001"],
            fields={"sku": "P0001-V9", "price": 10.5, "compare_at_price": 20, "stock": -1},
        )

    @pytest.fixture
    def secrets(self):
        """The API key."""
        return [KEY]


# =================================================================================================
# the demo
# =================================================================================================


def test_demo_setup_is_rate_limited_and_configured():
    """The demo's emulator meters requests; the connector maps the demo vocabulary."""
    channel, params, stack = demo_setup()
    with stack:
        reply = channel.transport.client.get(
            "/v2/offers/count", headers={"Authorization": f"Key {DEMO_KEY}"}
        )
        info = channel.check_connection(params)

    assert reply.status_code == 200
    assert reply.headers["x-RateLimit-Limit"] == str(RATE_LIMIT)
    assert info.details["offers"] == "0"
    assert params.field_mapping == FIELD_MAPPING
    assert (params.field_mapping["selling_price"], params.field_mapping["rrp"]) == (
        "price",
        "compare_at_price",
    )
    assert (params.overwrite_stock, params.map_status) == (True, True)
    assert channel.warehouses == (WAREHOUSE,)
    assert channel.default_leadtime_days == LEADTIME_DAYS
    assert channel.transport.client.is_closed  # the exit stack closed it


def test_the_demo_catalogue_leaves_out_a_handful():
    """A deterministic handful of the demo's barcodes is not listed, whatever the sample size."""
    listed = frozenset(demo_catalogue())

    assert [n for n in range(1001, 1301) if unlisted(n)] == [1007, 1045, 1250]
    assert unlisted(90_003)
    assert not unlisted(90_001)
    assert not unlisted(90_002)
    assert ean13(1007) not in listed
    assert ean13(1008) in listed
    assert ean13(90_002) in listed


def test_demo_command_reports_unknown_barcodes(tmp_path, capsys):
    """`python -m catalogsync demo --channel takealot --json` exits 0 and reports E2 errors."""
    code = main(
        [
            "demo",
            "--channel",
            "takealot",
            "--products",
            "30",
            "--json",
            "--db",
            str(tmp_path / "demo.db"),
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    first, second = doc["events"]
    catalog = sample_catalog(30)
    unknown = {v.ref for v in catalog.items(V) if unlisted(number_of(v.fields["barcode"]))}

    assert code == 0
    assert doc["channel"] == "takealot"
    assert (first["status"], second["status"]) == ("completed", "completed")
    e2 = {e["ref"]: e for e in first["item_errors"] if e["errors"][0]["code"] == "E2"}
    assert set(e2) == unknown
    assert len(unknown) == 2
    for ref, entry in e2.items():
        barcode = catalog.get(V, [ref])[ref].fields["barcode"]
        assert entry["errors"][0]["message"].startswith(
            f"barcode {barcode} is not in the Takealot catalogue (E2)"
        )
        assert entry["endpoint"] == "production"
    assert [e["ref"] for e in second["item_errors"]] == ["P9001-V3"]
    assert first["configuration"]["params"]["field_mapping"] == FIELD_MAPPING
    assert first["configuration"]["details"]["api"] == "Takealot Seller API v2"
