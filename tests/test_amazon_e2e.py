"""
Amazon end to end: the demo catalog through the real Synchronizer, SQLite backends and the emulator.

The expected listings are computed here from the catalog's raw fields, with the rules stated in
docs/channels/amazon.md (variation families, R10 status mapping, the demo's field mapping), and
no channel code: what Amazon ends up holding must equal them.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from urllib.parse import unquote

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
    EventStatus,
    Item,
    ItemAction,
    ItemState,
    ItemType,
    MemoryCatalog,
    Mode,
    SQLiteQueue,
    SQLiteStore,
    Synchronizer,
    SyncOptions,
    Visibility,
)
from catalogsync.__main__ import main
from catalogsync._demo import all_changes, edit_catalog, sample_catalog
from catalogsync.channels import RetryPolicy
from catalogsync.channels.amazon._demo import demo_channel, demo_params
from catalogsync.testing import AmazonEmulator, ChannelConformance


C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
ZA = "AE08WJ6YKNBMC"
TAG = "en_ZA"
#: The demo's families and product types, restated (the expectation reads no channel code).
PRODUCT_TYPES = {
    "shoes": "SHOES",
    "socks": "SOCKS",
    "bags": "HANDBAG",
    "hats": "HAT",
    "jackets": "COAT",
    "accessories": "ACCESSORY",
}
PARAMS = demo_params()


# =================================================================================================
# The expectation: what Amazon should hold for a catalog, from its raw fields
# =================================================================================================


def text(value):
    return [{"value": value, "language_tag": TAG, "marketplace_id": ZA}]


def plain(value):
    return [{"value": value, "marketplace_id": ZA}]


def shared_facts(product):
    """What a parent and each of its children carry from the product."""
    f = product.fields
    images = f["images"]
    facts = {
        "brand": text(f["vendor"]),
        "item_name": text(f["title"]["en"]),
        "product_description": text(f["description"]["en"]),
        "main_product_image_locator": [{"media_location": images[0], "marketplace_id": ZA}],
        "item_weight": [{"value": f["weight"], "unit": "kilograms", "marketplace_id": ZA}],
    }
    for n, url in enumerate(images[1:9], start=1):
        facts[f"other_product_image_locator_{n}"] = [{"media_location": url, "marketplace_id": ZA}]
    return facts


def less_visible(*items):
    """R10 for a child: archived beats draft beats active."""
    levels = {i.visibility for i in items}
    for level in (Visibility.INVISIBLE, Visibility.DRAFT):
        if level in levels:
            return level
    return Visibility.VISIBLE


def child_listing(product, variant):
    f, options = variant.fields, variant.fields["option_values"]
    attributes = shared_facts(product) | {
        "item_name": text(
            f"{product.fields['title']['en']} ({options['Size']}, {options['Color']})"
        ),
        "size": text(options["Size"]),
        "color": text(options["Color"]),
        "parentage_level": plain("child"),
        "child_parent_sku_relationship": [
            {
                "child_relationship_type": "variation",
                "parent_sku": product.ref,
                "marketplace_id": ZA,
            }
        ],
        "variation_theme": [{"name": "SIZE/COLOR"}],
        "externally_assigned_product_identifier": [
            {"type": "ean", "value": f["barcode"], "marketplace_id": ZA}
        ],
    }
    status = less_visible(product, variant)
    requirements = "LISTING_PRODUCT_ONLY" if status is Visibility.DRAFT else "LISTING"
    if requirements == "LISTING":
        attributes |= {
            "condition_type": plain("new_new"),
            "purchasable_offer": [
                {
                    "currency": "ZAR",
                    "audience": "ALL",
                    "our_price": [{"schedule": [{"value_with_tax": f["price"]}]}],
                    "marketplace_id": ZA,
                }
            ],
            "list_price": [
                {"currency": "ZAR", "value_with_tax": f["compare_at_price"], "marketplace_id": ZA}
            ],
            "fulfillment_availability": [
                {
                    "fulfillment_channel_code": "DEFAULT",
                    "quantity": 0 if status is Visibility.INVISIBLE else f["stock"],
                    "marketplace_id": ZA,
                }
            ],
        }
    return {
        "productType": PRODUCT_TYPES[product.family],
        "requirements": requirements,
        "attributes": attributes,
    }


def parent_listing(product):
    return {
        "productType": PRODUCT_TYPES[product.family],
        "requirements": "LISTING_PRODUCT_ONLY",
        "attributes": shared_facts(product)
        | {"parentage_level": plain("parent"), "variation_theme": [{"name": "SIZE/COLOR"}]},
    }


def product_is_valid(product, variants):
    """The demo's deliberate product problems: no title, a bad image, repeated options."""
    f = product.fields
    combos = [tuple(sorted(v.fields["option_values"].items())) for v in variants]
    return (
        bool(f["title"]["en"])
        and all(u.startswith("https://") for u in f["images"])
        and len(set(combos)) == len(combos)
    )


def variant_is_valid(product, variant):
    """A child fails with its product's own problems (it inherits them) or an over-long SKU."""
    f = product.fields
    return (
        bool(f["title"]["en"])
        and all(u.startswith("https://") for u in f["images"])
        and len(variant.fields["sku"]) <= 40
    )


def expected_listings(catalog):
    """``{sku: listing}`` Amazon should hold for *catalog* under the demo connector."""
    out = {}
    for product in catalog.items(P):
        variants = [v for v in catalog.items(V) if v.parents[0] == product.ref]
        assert variants, "every demo product has variants"
        if product_is_valid(product, variants):
            out[product.ref] = parent_listing(product)
        for variant in variants:
            if variant_is_valid(product, variant):
                out[variant.fields["sku"]] = child_listing(product, variant)
    return out


def stock(listing):
    """The merchant-fulfilled quantity of a listing (``None`` without an offer)."""
    entries = listing["attributes"].get("fulfillment_availability") or [{}]
    return entries[0].get("quantity")


def held(amazon):
    """``{sku: listing}`` the emulator holds in the ZA marketplace."""
    return {
        sku: {k: listing[k] for k in ("productType", "requirements", "attributes")}
        for (market, sku), listing in amazon.listings.items()
        if market == ZA
    }


def orphaned(catalog):
    """Children that are valid on their own while their parent fails a family check."""
    expected = expected_listings(catalog)
    return sorted(
        sku
        for sku, listing in expected.items()
        if "child_parent_sku_relationship" in listing["attributes"]
        and listing["attributes"]["child_parent_sku_relationship"][0]["parent_sku"] not in expected
    )


# =================================================================================================
# Wiring
# =================================================================================================


def make_channel(amazon, clock, *, client=None, **kw):
    kw.setdefault("retry", RetryPolicy(attempts=4, initial=0.5, maximum=4.0))
    return demo_channel(amazon, client or amazon.client(), clock=clock, rng=random.Random(3), **kw)


def make_sync(tmp_path, clock, catalog, channel, params=PARAMS, connector="amazon-za"):
    path = tmp_path / "catalogsync.db"
    return Synchronizer(
        Connector(connector, "amazon", account="A1EMULATEDSELLER", params=params),
        catalog=catalog,
        channel=channel,
        queue=SQLiteQueue(path, clock=clock),
        store=SQLiteStore(path, clock=clock),
        clock=clock,
        options=SyncOptions(batch_size=100, heartbeat=False),
    )


@pytest.fixture
def amazon(clock):
    """The emulator on the test's manual clock, enforcing the documented rate limits."""
    return AmazonEmulator(clock=clock)


def statuses(sync, event_id, **kw):
    return sync.register.items(sync.connector_id, event_id=event_id, limit=100_000, **kw).items


def answered(amazon, since=0):
    """(method, sku) of the listings requests answered since answer number *since*."""
    return [
        (method, unquote(path.rsplit("/", 1)[1]))
        for method, path, _status, _rid in amazon.answers[since:]
        if path.startswith("/listings/")
    ]


def throttle_failures(sync, event):
    """
    Items of *event* that failed because Amazon kept answering 429.

    The channel paces to the documented buckets, so this stays empty. A single 429 can still
    happen: on a manual clock, a waiting thread's pacing sleep moves time while another thread's
    request is on its way, which looks to the emulator like network jitter; it is retried.
    """
    return [
        s
        for s in statuses(sync, event.id, state=ItemState.ERROR)
        if any(e.kind is ErrorKind.TRANSPORT and e.code == "throttled" for e in s.errors)
    ]


def sku_of(item):
    """The demo's SKU of an item: a variant's ``sku`` field, a product's reference."""
    return item.fields["sku"] if item.type is V else item.ref


def check_request_ids(sync, event, amazon, skus):
    """Every status recorded from an answer carries that answer's x-amzn-RequestId; others none."""
    by_rid = {
        rid: unquote(path.rsplit("/", 1)[1])
        for _method, path, _status, rid in amazon.answers
        if path.startswith("/listings/")
    }
    checked = 0
    for status in statuses(sync, event.id):
        if status.request_id is None:
            assert status.type is C or status.errors or "nothing to" in (status.message or "")
            continue
        assert by_rid[status.request_id] == skus[status.key], status
        checked += 1
    return checked


# =================================================================================================
# Full and incremental synchronization
# =================================================================================================


def test_full_then_incremental_sync_leaves_amazon_equal_to_the_catalog(tmp_path, clock, amazon):
    """Both events leave Amazon holding exactly the exportable, valid catalog, families included."""
    catalog = sample_catalog(150)
    hidden = catalog.get(P, ["P0007"])["P0007"]
    catalog.put(attrs.evolve(hidden, visibility=Visibility.INVISIBLE))
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    first = sync.run()
    expected = expected_listings(catalog)

    assert first.reason == "completed"
    assert held(amazon) == expected
    assert not throttle_failures(sync, first.event)
    # every R10 case is in there: active (P0026), draft (P0025) and archived (P0007) families
    kinds = {
        prefix: {
            (listing["requirements"], stock(listing) if prefix == "P0007-" else None)
            for sku, listing in expected.items()
            if sku.startswith(prefix)
        }
        for prefix in ("P0007-", "P0025-", "P0026-")
    }
    assert kinds == {
        "P0007-": {("LISTING", 0)},
        "P0025-": {("LISTING_PRODUCT_ONLY", None)},
        "P0026-": {("LISTING", None)},
    }
    # A known limit (docs/channels/amazon.md): a child cannot see its siblings, so the valid
    # children of a parent refused for repeated options are listed without their parent.
    assert amazon.orphans() == orphaned(catalog)
    assert {sku.split("-")[0] for sku in orphaned(catalog)} == {"P0053", "P0113"}

    before = {i.key: i for t in (P, V) for i in catalog.items(t)}
    mark = len(amazon.answers)
    changes = edit_catalog(catalog)
    sync.enqueue(changes)
    second = sync.run()

    assert second.reason == "completed"
    assert held(amazon) == expected_listings(catalog)
    repriced = {sku_of(before[c.key]) for c in changes if c.type is V and c.key in before}
    gone = {sku_of(i) for key, i in before.items() if key not in catalog}
    new = {sku_of(i) for t in (P, V) for i in catalog.items(t) if i.key not in before}
    sent = answered(amazon, mark)
    assert {sku for m, sku in sent if m == "PATCH"} == repriced
    assert {sku for m, sku in sent if m == "PUT"} == new
    assert {sku for m, sku in sent if m == "DELETE"} == gone
    assert len(sent) == len(repriced) + len(new) + len(gone) + 1  # and the connection check
    # The products of the repriced variants were re-rendered and found unchanged.
    assert second.unchanged.as_dict() == {"category": 0, "product": len(repriced), "variant": 0}
    assert second.synchronized.total == len(repriced) + len(new) + len(gone)
    skus = {key: sku_of(i) for key, i in before.items()} | {
        i.key: sku_of(i) for t in (P, V) for i in catalog.items(t)
    }
    assert check_request_ids(sync, first.event, amazon, skus) == first.synchronized.total
    assert check_request_ids(sync, second.event, amazon, skus) == second.synchronized.total


def test_categories_are_skipped_with_a_message(tmp_path, clock, amazon):
    """Amazon takes no categories: each gets a DONE/SKIP status saying why, and nothing is sent."""
    catalog = sample_catalog(8)
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    result = sync.run()
    cats = statuses(sync, result.event.id, item_type=C)

    assert {s.ref for s in cats} == {i.ref for i in catalog.items(C)}
    assert {(s.state, s.action) for s in cats} == {(ItemState.DONE, ItemAction.SKIP)}
    assert {s.message for s in cats} == {"amazon does not take category items"}
    assert result.skipped.category == len(cats)
    assert not any(sku.startswith("cat-") for _, sku in answered(amazon))


def test_hiding_a_product_archives_its_children_and_showing_it_restores_them(
    tmp_path, clock, amazon
):
    """R10 through the synchronizer: invisible -> quantity 0 by offer PATCH; visible -> restored."""
    catalog = sample_catalog(8)
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    sync.run()
    product = catalog.get(P, ["P0002"])["P0002"]
    stocks = {
        v.fields["sku"]: v.fields["stock"] for v in catalog.items(V) if v.parents[0] == "P0002"
    }
    children = set(stocks)

    for visibility in (Visibility.INVISIBLE, Visibility.VISIBLE):
        catalog.put(attrs.evolve(product, visibility=visibility))
        mark = len(amazon.answers)
        sync.enqueue([Change("P0002", P)])
        result = sync.run()

        assert held(amazon) == expected_listings(catalog)
        assert set(answered(amazon, mark)) == {("GET", "catalogsync-connection-check")} | {
            ("PATCH", sku) for sku in children
        }
        assert result.unchanged.as_dict() == {"category": 0, "product": 1, "variant": 0}
    assert {sku: stock(held(amazon)[sku]) for sku in children} == stocks  # from the PIM again


# =================================================================================================
# Deletions (R15)
# =================================================================================================


def delete_p0004(catalog):
    """Remove P0004 and its variants from the PIM; return the removed items and the change."""
    removed = [catalog.get(P, ["P0004"])["P0004"]]
    removed += [v for v in catalog.items(V) if v.parents[0] == "P0004"]
    for item in removed:
        catalog.remove(item.type, item.ref)
    return removed, Change("P0004", P, ChangeKind.DELETE)


@pytest.mark.parametrize(
    ("params", "action"),
    [
        (PARAMS, ItemAction.DELETE),
        (attrs.evolve(PARAMS, deletion=DeletionMode.ARCHIVE), ItemAction.ARCHIVE),
        (attrs.evolve(PARAMS, disable_deletions=True), ItemAction.SKIP),
    ],
    ids=["delete", "archive", "disabled"],
)
def test_deleted_products_are_deleted_archived_or_kept(tmp_path, clock, amazon, params, action):
    """A product deleted from the PIM is deleted, archived (quantity 0) or kept, per the params."""
    catalog = sample_catalog(8)
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock), params=params)
    sync.enqueue(all_changes(catalog))
    sync.run()
    listed = held(amazon)
    removed, change = delete_p0004(catalog)
    skus = {sku_of(i) for i in removed}
    sync.enqueue([change])
    result = sync.run()
    family = statuses(sync, result.event.id, ref="P0004")

    assert {s.ref for s in family} == {i.ref for i in removed}
    assert {(s.state, s.action) for s in family} == {(ItemState.DONE, action)}
    if action is ItemAction.DELETE:
        assert held(amazon) == {k: v for k, v in listed.items() if k not in skus}
    elif action is ItemAction.ARCHIVE:
        now = held(amazon)
        assert set(now) == set(listed)
        for sku in skus - {"P0004"}:
            entries = now[sku]["attributes"]["fulfillment_availability"]
            assert entries == [{"fulfillment_channel_code": "DEFAULT", "quantity": 0}]
        assert now["P0004"] == listed["P0004"]  # a parent has no offer to take away
    else:
        assert held(amazon) == listed
        assert {s.message for s in family} == {"deletions are disabled for this connector"}
        assert answered(amazon)[-1][0] == "GET"  # only the connection check was sent


# =================================================================================================
# Pacing: the documented 5 requests per second per operation
# =================================================================================================


def test_few_hundred_skus_at_the_documented_rate_without_throttling(tmp_path, clock):
    """Under 5 requests/s per operation, a few hundred SKUs sync with no 429 and near the limit."""
    # Access tokens that live 90 s: the run outlasts one, and the channel renews it in time.
    amazon = AmazonEmulator(clock=clock, token_ttl=90)
    catalog = sample_catalog(60)
    channel = make_channel(amazon, clock)
    sync = make_sync(tmp_path, clock, catalog, channel)
    sync.enqueue(all_changes(catalog))
    start = clock.monotonic()
    result = sync.run()
    elapsed = clock.monotonic() - start
    puts = sum(1 for method, _ in answered(amazon) if method == "PUT")
    failed = statuses(sync, result.event.id, state=ItemState.ERROR)
    achieved = puts / elapsed
    allowed = amazon.limits["putListingsItem"][0]
    print(
        f"amazon PUT rate: {achieved:.2f}/s of {allowed:g}/s allowed, {puts} PUTs in {elapsed:.1f} s"
    )

    assert result.reason == "completed"
    assert puts >= 250
    assert not throttle_failures(sync, result.event)
    assert not [e for s in failed for e in s.errors if e.kind is not ErrorKind.VALIDATION]
    assert amazon.throttled() <= puts // 100  # a rare 429 (see throttle_failures) is retried
    assert achieved / allowed >= 0.8
    assert achieved <= allowed + amazon.limits["putListingsItem"][1] / elapsed  # burst only
    assert channel.token_exchanges >= 2
    assert all(status != 403 for *_, status, _ in amazon.answers)  # never an expired token


# =================================================================================================
# Request ids, issues and warnings
# =================================================================================================


def test_issues_become_channel_errors_on_the_right_items_and_warnings_are_kept(
    tmp_path, clock, amazon
):
    """INVALID -> CHANNEL errors with Amazon's code and attributes; warnings stay on the status."""
    catalog = sample_catalog(6)
    refused = catalog.get(V, ["P0002-V1"])["P0002-V1"]
    warned = catalog.get(V, ["P0003-V2"])["P0003-V2"]
    amazon.add_issue(
        refused.fields["sku"],
        code="8560",
        message="The color value is not valid for this product type.",
        severity="ERROR",
        attribute="color",
        category="INVALID_ATTRIBUTE",
    )
    amazon.add_issue(
        warned.fields["sku"],
        code="18027",
        message="The main image is smaller than 1000 pixels.",
        severity="WARNING",
        attribute="main_product_image_locator",
    )
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    result = sync.run()
    errors = statuses(sync, result.event.id, state=ItemState.ERROR)
    [bad] = statuses(sync, result.event.id, ref="P0002-V1", item_type=V)
    [ok] = statuses(sync, result.event.id, ref="P0003-V2", item_type=V)

    assert [s.ref for s in errors] == ["P0002-V1"]
    assert [(e.kind, e.code, e.field) for e in bad.errors] == [(ErrorKind.CHANNEL, "8560", "color")]
    assert "color value is not valid" in bad.errors[0].message
    assert bad.request_id is not None
    assert bad.endpoint is Endpoint.PRODUCTION
    assert refused.fields["sku"] not in held(amazon)
    assert ok.state is ItemState.DONE
    assert [(w.code, w.field) for w in ok.warnings] == [("18027", "main_product_image_locator")]
    assert warned.fields["sku"] in held(amazon)
    skus = {i.key: sku_of(i) for t in (P, V) for i in catalog.items(t)}
    assert check_request_ids(sync, result.event, amazon, skus) == result.synchronized.total + 1


def test_refused_items_are_retried_without_a_force_refresh(tmp_path, clock, amazon):
    """R14: once Amazon's objection is gone, a RETRY event sends only the failed item."""
    catalog = sample_catalog(6)
    refused = catalog.get(V, ["P0002-V1"])["P0002-V1"]
    amazon.add_issue(refused.fields["sku"], code="8560", message="Bad colour.", severity="ERROR")
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    first = sync.run()
    amazon.clear_issues(refused.fields["sku"])  # the seller fixed it in Seller Central
    mark = len(amazon.answers)
    retry = sync.retry(first.event.id)
    result = sync.run()

    assert first.failed.total == 1
    assert result.reason == "completed"
    assert retry.retry_of == first.event.id
    assert [s.ref for s in statuses(sync, result.event.id) if s.type is V] == ["P0002-V1"]
    assert answered(amazon, mark) == [
        ("GET", "catalogsync-connection-check"),
        ("PUT", refused.fields["sku"]),
    ]
    assert held(amazon) == expected_listings(catalog)


def test_force_refresh_resends_everything_and_deletes_nothing(tmp_path, clock, amazon):
    """R05: every valid listing is sent again in full, the result is unchanged, nothing deleted."""
    catalog = sample_catalog(8)
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    sync.enqueue(all_changes(catalog))
    first = sync.run()
    listed = held(amazon)
    removed, _ = delete_p0004(catalog)  # deleted without telling catalogsync
    mark = len(amazon.answers)
    sync.force_refresh()
    result = sync.run()
    sent = Counter(method for method, _ in answered(amazon, mark))

    assert result.reason == "completed"
    assert held(amazon) == listed  # P0004 kept: a force refresh exports no deletions
    assert sent == {"PUT": first.synchronized.total - len(removed), "GET": 1}
    assert result.unchanged.total == 0


# =================================================================================================
# Test mode (R11)
# =================================================================================================


def test_validation_preview_persists_nothing(tmp_path, clock, amazon):
    """mode=TEST previews every write: Amazon keeps nothing, statuses say endpoint=test, no state."""
    catalog = sample_catalog(8)
    sent = []
    params = attrs.evolve(PARAMS, mode=Mode.TEST)
    channel = make_channel(amazon, clock, client=recording(amazon, sent))
    sync = make_sync(tmp_path, clock, catalog, channel, params=params)
    sync.enqueue(all_changes(catalog))
    start = clock.monotonic()
    result = sync.run()
    pushed = [s for s in statuses(sync, result.event.id) if s.type is not C]
    writes = [r for r in sent if r.method == "PUT"]

    assert result.reason == "completed"
    assert held(amazon) == {}
    assert {s.endpoint for s in pushed} == {Endpoint.TEST}
    assert {s.message.split(":")[0] for s in pushed if s.state is ItemState.DONE} == {"VALID"}
    assert writes
    assert all(r.url.params["mode"] == "VALIDATION_PREVIEW" for r in writes)
    assert result.event.snapshot.details["test_surface"] == "VALIDATION_PREVIEW"
    assert not throttle_failures(sync, result.event)
    assert clock.monotonic() - start >= len(writes) - 1  # previews are paced at 1 per second
    assert_nothing_remembered(sync, catalog)


def test_sandbox_host_persists_nothing(tmp_path, clock):
    """A sandbox channel sends to the sandbox host: static answers, endpoint=test, nothing kept."""
    amazon = AmazonEmulator(clock=clock)
    catalog = sample_catalog(4)
    sent = []
    channel = make_channel(amazon, clock, client=recording(amazon, sent), sandbox=True)
    sync = make_sync(tmp_path, clock, catalog, channel)
    sync.enqueue(all_changes(catalog))
    result = sync.run()
    pushed = [s for s in statuses(sync, result.event.id) if s.type is not C]

    assert result.reason == "completed"
    assert {r.url.host for r in sent if "/listings/" in r.url.path} == {
        "sandbox.sellingpartnerapi-eu.amazon.com"
    }
    assert held(amazon) == {}
    assert {(s.state, s.endpoint) for s in pushed} == {(ItemState.DONE, Endpoint.TEST)}
    assert all(s.request_id for s in pushed)
    assert_nothing_remembered(sync, catalog)


def recording(amazon, sent):
    """An in-process client to *amazon* that keeps every request in *sent*."""

    def handle(request):
        sent.append(request)
        return amazon(request)

    return httpx.Client(transport=httpx.MockTransport(handle))


def assert_nothing_remembered(sync, catalog):
    """No sent state: the next production event would create every item."""
    for item_type in (P, V):
        refs = [i.ref for i in catalog.items(item_type)]
        assert sync.store.sent_states(sync.connector_id, item_type, refs) == {}


# =================================================================================================
# Credentials
# =================================================================================================


def test_invalid_grant_at_the_start_is_an_event_error_with_nothing_sent(tmp_path, clock, amazon):
    """A revoked refresh token: the event is ERROR with a clear message, nothing sent or lost."""
    catalog = sample_catalog(4)
    amazon.revoke()
    sync = make_sync(tmp_path, clock, catalog, make_channel(amazon, clock))
    queued = sync.enqueue(all_changes(catalog))
    result = sync.run()
    [error] = result.event.errors

    assert result.reason == "error"
    assert result.event.status is EventStatus.ERROR
    assert error.code == "auth"
    assert "invalid_grant" in error.message
    assert "authoriz" in error.message
    assert amazon.refresh_token not in error.message
    assert answered(amazon) == []
    assert held(amazon) == {}
    assert sync.queue.counts(sync.connector_id).total == queued


# =================================================================================================
# The channel conformance suite
# =================================================================================================


class TestAmazonConformance(ChannelConformance):
    params = PARAMS

    @pytest.fixture
    def emulator(self, conformance_clock):
        """The emulator on the suite's clock."""
        return AmazonEmulator(clock=conformance_clock)

    @pytest.fixture
    def channel(self, emulator, conformance_clock):
        """The demo's Amazon channel on the emulator."""
        return make_channel(emulator, conformance_clock)

    @pytest.fixture
    def catalog(self):
        """A small demo catalog (its first deliberate problem is product 11)."""
        return sample_catalog(6)

    @pytest.fixture
    def invalid_item(self):
        """A standalone product without a title, price or stock."""
        return Item(
            "P0999", P, fields={"title": {"en": ""}, "vendor": "Acme"}, parents=["cat-shoes"]
        )

    @pytest.fixture
    def secrets(self, emulator):
        """The LWA client secret, the refresh token, and the access token prefix."""
        return [emulator.client_secret, emulator.refresh_token, "Atza|"]


# =================================================================================================
# The demo
# =================================================================================================


def test_demo_command_line_json(capsys, tmp_path):
    """The demo command line with --channel amazon --json exits 0 and tells the two-event story."""
    code = main(
        [
            "demo",
            "--channel",
            "amazon",
            "--products",
            "40",
            "--json",
            "--db",
            str(tmp_path / "d.db"),
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    first, second = doc["events"]

    assert code == 0
    assert doc["channel"] == "amazon"
    assert first["status"] == second["status"] == "completed"
    assert first["configuration"]["details"]["marketplace_id"] == ZA
    assert first["configuration"]["params"]["overwrite_stock"] is True
    assert {e["ref"] for e in first["item_errors"]} >= {"P0011", "P0037"}
    assert all(e["request_id"] is None for e in first["item_errors"])  # found locally
    assert first["counts"]["skipped"]["category"] == 6
    assert second["counts"]["unchanged"]["product"] > 0


# =================================================================================================
# Found in the Synchronizer (shared module; not fixed here)
# =================================================================================================


def test_a_push_longer_than_the_lease_on_the_injected_clock_is_sent_once(clock):
    """A single TEST-mode item whose push takes 180 s of clock time (lease 120 s) is sent once."""
    from catalogsync import MemoryQueue, MemoryStore
    from catalogsync.testing import MemoryChannel

    catalog = MemoryCatalog([Item("P1", P, fields={"title": "Shoe"})])
    channel = MemoryChannel(clock=clock, latency=180)
    sync = Synchronizer(
        Connector("slow", "memory", params=ConnectorParams(mode=Mode.TEST)),
        catalog=catalog,
        channel=channel,
        queue=MemoryQueue(clock=clock),
        store=MemoryStore(clock=clock),
        clock=clock,
        options=SyncOptions(lease_ttl=120),
    )
    sync.enqueue([Change("P1", P)])
    result = sync.run()

    assert len(channel.log) == 1
    assert (result.synchronized.total, result.failed.total) == (1, 0)
