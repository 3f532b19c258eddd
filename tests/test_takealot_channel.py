"""The Takealot adapter against TakealotEmulator: the real wire format, in-process and on a port."""

from __future__ import annotations

import logging
import math
import random
import time

import httpx
import pytest

from catalogsync import (
    ChannelAuthError,
    ConnectorParams,
    Endpoint,
    ErrorKind,
    InvalidArgumentError,
    Item,
    ItemAction,
    ItemType,
    Mode,
    Secret,
    Visibility,
)
from catalogsync.channels import RetryPolicy
from catalogsync.channels.takealot import TakealotChannel
from catalogsync.channels.takealot import _sansio as wire
from catalogsync.testing import FaultKind, TakealotEmulator
from catalogsync.typing import Channel, Operation, RenderContext


KEY = "takealot-test-key-0123456789"
CATALOGUE = TakealotEmulator.make_barcodes(3000)
UNKNOWN = TakealotEmulator.make_barcodes(5, start=900_000)  # valid GTINs Takealot does not list
WAREHOUSE = 28676


def make(emulator, clock, **kw):
    kw.setdefault("warehouses", [WAREHOUSE])
    kw.setdefault("retry", RetryPolicy(attempts=4, initial=0.5, maximum=4.0))
    return TakealotChannel(
        Secret(KEY), client=emulator.client(), clock=clock, rng=random.Random(7), **kw
    )


def offer_item(n, visibility=Visibility.VISIBLE, **fields):
    fields.setdefault("barcode", CATALOGUE[n])
    fields.setdefault("selling_price", 100 + n % 50)
    fields.setdefault("rrp", 200)
    fields.setdefault("leadtime_days", 3)
    return Item(f"P{n}", ItemType.PRODUCT, visibility=visibility, fields=fields)


class Harness:
    """Plays the synchronizer's part: renders, remembers channel ids and memos, pushes."""

    def __init__(self, channel, params=None):
        self.channel = channel
        self.params = params or ConnectorParams()
        self.state = {}

    def ops(self, items, **ctx_kw):
        ctx = RenderContext(self.params, **ctx_kw)
        out = []
        for item in items:
            channel_id, memo = self.state.get(item.key, (None, {}))
            action = ItemAction.UPDATE if channel_id else ItemAction.CREATE
            payload = self.channel.render(item, ctx)
            out.append(Operation(item.type, item.ref, action, payload, item, channel_id, memo=memo))
        return out

    def push(self, items, **ctx_kw):
        return self.apply(self.channel.push(self.ops(items, **ctx_kw), self.params))

    def apply(self, outcomes):
        for o in outcomes:
            if o.ok and o.channel_id:
                self.state[o.key] = (o.channel_id, dict(o.memo))
        return outcomes


@pytest.fixture
def emulator(clock):
    return TakealotEmulator(CATALOGUE[:100], api_key=KEY, clock=clock)


# -- declaration and connection ------------------------------------------------------------------


def test_declares_what_takealot_accepts(emulator, clock):
    """Products and variants only, archive-only removals, no test surface; it is a Channel."""
    channel = make(emulator, clock)
    caps = channel.capabilities

    assert isinstance(channel, Channel)
    assert caps.accepts == {ItemType.PRODUCT, ItemType.VARIANT}
    assert caps.removals == {ItemAction.ARCHIVE}
    assert caps.test_surface is False
    assert caps.reads_from(ItemType.PRODUCT, ItemType.VARIANT)
    assert caps.reads_from(ItemType.VARIANT, ItemType.PRODUCT)
    assert dict(caps.carried) == {}


def test_check_connection(emulator, clock):
    """A cheap authenticated read reports the API version, the endpoint and the offer count."""
    emulator.add_offer(CATALOGUE[0], sku="A", selling_price=10)
    channel = make(emulator, clock)

    info = channel.check_connection(ConnectorParams())
    test = channel.check_connection(ConnectorParams(mode=Mode.TEST))

    assert (info.api_version, info.endpoint) == ("v2", Endpoint.PRODUCTION)
    assert info.details["offers"] == "1"
    assert info.details["merchant_warehouses"] == "28676"
    assert test.endpoint is Endpoint.TEST
    assert "no test environment" in test.details["test_mode"]
    assert emulator.count("GET", "/v2/offers/count") == 2


def test_bad_key_raises_auth_error(clock):
    """A rejected key raises ChannelAuthError from check_connection and from push, once."""
    emulator = TakealotEmulator(CATALOGUE[:5], api_key="the-right-key-0000", clock=clock)
    channel = make(emulator, clock)

    with pytest.raises(ChannelAuthError) as info:
        channel.check_connection(ConnectorParams())
    assert info.value.status_code == 401
    with pytest.raises(ChannelAuthError):
        Harness(channel).push([offer_item(0), offer_item(1)])
    assert emulator.offers == {}
    assert emulator.count() <= 3  # no retries of a rejected key


def test_constructor_checks_its_arguments(emulator):
    """Bad configuration fails at once with the field named."""
    client = emulator.client()
    for kwargs, field in (
        ({"warehouses": ["28676"]}, "TakealotChannel.warehouses"),
        ({"batch_size": 10_001}, "TakealotChannel.batch_size"),
        ({"max_in_flight": 0}, "TakealotChannel.max_in_flight"),
        ({"batch_threshold": -1}, "TakealotChannel.batch_threshold"),
        ({"default_leadtime_days": -2}, "TakealotChannel.default_leadtime_days"),
        ({"batch_timeout": 0}, "TakealotChannel.batch_timeout"),
        ({"name": ""}, "TakealotChannel.name"),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            TakealotChannel(Secret(KEY), client=client, **kwargs)
        assert info.value.field == field
    with pytest.raises(InvalidArgumentError, match="Secret"):
        TakealotChannel(KEY, client=client)


# -- single offers ---------------------------------------------------------------------------------


def test_creates_then_updates_an_offer(emulator, clock):
    """A new item is POSTed on its barcode; the next push PATCHes it by barcode; no duplicate."""
    harness = Harness(make(emulator, clock))

    (created,) = harness.push([offer_item(0, selling_price=150, rrp=199)])
    offer = emulator.offer(CATALOGUE[0])
    assert created.ok
    assert (created.action, created.endpoint) == (ItemAction.CREATE, Endpoint.PRODUCTION)
    assert created.channel_id == str(offer["offer_id"])
    assert created.channel_url == offer["offer_url"]
    assert created.memo == {"barcode": CATALOGUE[0]}
    assert (offer["sku"], offer["selling_price"], offer["rrp"]) == ("P0", 150, 199)

    (updated,) = harness.push([offer_item(0, selling_price=120, rrp=199)])
    assert updated.ok
    assert (updated.action, updated.channel_id) == (ItemAction.UPDATE, created.channel_id)
    assert emulator.offers[CATALOGUE[0]]["selling_price"] == 120
    assert len(emulator.offers) == 1
    assert emulator.count("PATCH", f"/v2/offers/offer/BARCODE{CATALOGUE[0]}") == 1


def test_create_of_an_existing_offer_updates_it(emulator, clock):
    """An offer made in the Seller Portal (or by a push whose state was lost) is updated (E4 -> PATCH)."""
    existing = emulator.add_offer(CATALOGUE[1], sku="OLD", selling_price=90)
    (outcome,) = Harness(make(emulator, clock)).push([offer_item(1, selling_price=95)])

    assert outcome.ok
    assert (outcome.action, outcome.channel_id) == (ItemAction.UPDATE, str(existing["offer_id"]))
    assert emulator.offers[CATALOGUE[1]]["sku"] == "P1"
    assert len(emulator.offers) == 1


def test_update_of_a_missing_offer_creates_it(emulator, clock):
    """A stored channel id whose barcode has no offer (404) creates the offer."""
    harness = Harness(make(emulator, clock))
    harness.state[(ItemType.PRODUCT, "P2")] = ("999", {"barcode": CATALOGUE[2]})

    (outcome,) = harness.push([offer_item(2)])

    assert outcome.ok
    assert outcome.action is ItemAction.CREATE
    assert outcome.channel_id == str(emulator.offers[CATALOGUE[2]]["offer_id"])


def test_barcode_change_disables_the_old_offer(emulator, clock):
    """When an item's barcode changes, the new barcode gets the offer and the old offer is disabled."""
    harness = Harness(make(emulator, clock))
    (first,) = harness.push([offer_item(3)])
    (moved,) = harness.push([offer_item(3, barcode=CATALOGUE[4])])

    assert moved.ok
    assert moved.channel_id == str(emulator.offers[CATALOGUE[4]]["offer_id"])
    assert moved.channel_id != first.channel_id
    old = emulator.offers[CATALOGUE[3]]
    assert (old["status"], old["sku"]) == ("Disabled by Seller", f"P3~{first.channel_id}")
    assert emulator.offers[CATALOGUE[4]]["sku"] == "P3"  # SKUs are unique: the old one was freed
    assert "barcode changed" in moved.message
    assert moved.memo == {"barcode": CATALOGUE[4]}


def test_barcode_change_stops_when_the_old_offer_cannot_be_retired(emulator, clock):
    """If the previous barcode's offer cannot be retired, the item fails and nothing new is made."""
    harness = Harness(make(emulator, clock))
    harness.push([offer_item(3)])
    emulator.disable_by_takealot(CATALOGUE[3])

    (moved,) = harness.push([offer_item(3, barcode=CATALOGUE[4])])

    assert not moved.ok
    assert {e.code for e in moved.errors} == {"E13", "E11"}
    assert all("could not be retired" in e.message for e in moved.errors)
    assert CATALOGUE[4] not in emulator.offers


def test_disable_and_re_enable(emulator, clock):
    """With status mapping a draft is created disabled (create, then PATCH Disable); visible re-enables."""
    params = ConnectorParams(map_status=True, overwrite_stock=True)
    harness = Harness(make(emulator, clock), params)

    (draft,) = harness.push([offer_item(5, Visibility.DRAFT, stock=4)])
    assert draft.ok
    assert emulator.offers[CATALOGUE[5]]["status"] == "Disabled by Seller"
    assert emulator.count("POST") == 1
    assert emulator.count("PATCH") == 1

    (visible,) = harness.push([offer_item(5, Visibility.VISIBLE, stock=4)])
    assert visible.ok
    assert emulator.offers[CATALOGUE[5]]["status"] == "Buyable"

    (hidden,) = harness.push([offer_item(5, Visibility.INVISIBLE, stock=4)])
    assert hidden.ok
    assert emulator.offers[CATALOGUE[5]]["status"] == "Disabled by Seller"


def test_removal_disables_the_offer(emulator, clock):
    """ARCHIVE (and a DELETE, which Takealot cannot do) disable the offer by its id."""
    channel = make(emulator, clock)
    harness = Harness(channel)
    harness.push([offer_item(6), offer_item(7)])
    id6 = harness.state[(ItemType.PRODUCT, "P6")][0]
    id7 = harness.state[(ItemType.PRODUCT, "P7")][0]
    ops = [
        Operation(ItemType.PRODUCT, "P6", ItemAction.ARCHIVE, channel_id=id6),
        Operation(ItemType.PRODUCT, "P7", ItemAction.DELETE, channel_id=id7),
    ]

    archived, deleted = channel.push(ops, ConnectorParams())

    assert (archived.ok, archived.action, archived.channel_id) == (True, ItemAction.ARCHIVE, id6)
    assert (deleted.ok, deleted.action) == (True, ItemAction.ARCHIVE)
    assert "cannot be deleted" in deleted.message
    assert emulator.offers[CATALOGUE[6]]["status"] == "Disabled by Seller"
    assert emulator.offers[CATALOGUE[7]]["status"] == "Disabled by Seller"
    assert emulator.count("PATCH", f"/v2/offers/offer/ID{id6}") == 1


def test_removal_without_a_known_offer(emulator, clock):
    """A removal finds the offer by its remembered barcode; with nothing known it is skipped."""
    channel = make(emulator, clock)
    emulator.add_offer(CATALOGUE[8], sku="S8", selling_price=10)
    ops = [
        Operation(ItemType.VARIANT, "V8", ItemAction.ARCHIVE, memo={"barcode": CATALOGUE[8]}),
        Operation(ItemType.VARIANT, "V9", ItemAction.ARCHIVE),
        Operation(ItemType.VARIANT, "V10", ItemAction.ARCHIVE, channel_id="424242"),
    ]

    by_barcode, nothing, gone = channel.push(ops, ConnectorParams())

    assert by_barcode.ok
    assert emulator.offers[CATALOGUE[8]]["status"] == "Disabled by Seller"
    assert (nothing.ok, nothing.action) == (True, ItemAction.SKIP)
    assert "nothing to disable" in nothing.message
    assert (gone.ok, gone.action, gone.channel_id) == (True, ItemAction.ARCHIVE, None)


def test_stock_only_with_overwrite_stock(emulator, clock):
    """Leadtime stock reaches Takealot only when the connector overwrites stock."""
    harness = Harness(make(emulator, clock))
    harness.push([offer_item(10, stock=7)])
    assert emulator.stock(CATALOGUE[10]) == {WAREHOUSE: 0}

    harness.params = ConnectorParams(overwrite_stock=True)
    (outcome,) = harness.push([offer_item(10, stock=7)])
    assert outcome.ok
    assert emulator.stock(CATALOGUE[10]) == {WAREHOUSE: 7}
    assert emulator.offers[CATALOGUE[10]]["status"] == "Buyable"


def test_test_mode_sends_nothing(emulator, clock):
    """R11: mode=TEST validates locally, sends no request and says what it would have sent."""
    params = ConnectorParams(mode=Mode.TEST)
    harness = Harness(make(emulator, clock), params)
    harness.state[(ItemType.PRODUCT, "P12")] = ("77", {"barcode": CATALOGUE[12]})
    ops = [
        *harness.ops([offer_item(11), offer_item(12), offer_item(13, selling_price=9.5)]),
        Operation(ItemType.PRODUCT, "P14", ItemAction.ARCHIVE, channel_id="78"),
    ]

    create, update, invalid, archive = make(emulator, clock).push(ops, params)

    assert emulator.requests == []
    assert all(o.endpoint is Endpoint.TEST for o in (create, update, invalid, archive))
    prefix = "validated only (Takealot has no test environment): would send "
    assert create.ok
    assert create.message.startswith(f"{prefix}POST /v2/offers/offer/{CATALOGUE[11]} {{")
    assert update.message.startswith(f"{prefix}PATCH /v2/offers/offer/BARCODE{CATALOGUE[12]}")
    assert '"selling_price":112' in update.message.replace(" ", "")
    assert (invalid.ok, invalid.errors[0].code) == (False, "E19")
    assert archive.message == f'{prefix}PATCH /v2/offers/offer/ID78 {{"status_action":"Disable"}}'


def test_unknown_barcode_is_an_item_error(emulator, clock):
    """A barcode Takealot does not list fails that item with a clear E2 message; others go through."""
    (unknown, known) = Harness(make(emulator, clock)).push(
        [offer_item(20, barcode=UNKNOWN[0]), offer_item(21)]
    )

    assert not unknown.ok
    (error,) = unknown.errors
    assert (error.kind, error.code, error.field) == (ErrorKind.CHANNEL, "E2", "barcode")
    assert error.message.startswith(f"barcode {UNKNOWN[0]} is not in the Takealot catalogue (E2)")
    assert known.ok


def test_fractional_price_is_rejected_locally(emulator, clock):
    """A price with cents never reaches Takealot: it is a VALIDATION error, not rounded."""
    harness = Harness(make(emulator, clock))
    item = offer_item(22, selling_price=149.99)
    payload = harness.ops([item])[0].payload

    assert payload["selling_price"] == 149.99
    errors = harness.channel.validate(item, payload, RenderContext(harness.params))
    assert [(e.kind, e.code) for e in errors] == [(ErrorKind.VALIDATION, "E19")]
    (outcome,) = harness.push([item])
    assert (outcome.ok, outcome.errors) == (False, tuple(errors))
    assert emulator.requests == []


def test_channel_side_validation_errors(emulator, clock):
    """Rules only Takealot can check (a duplicate SKU, an offer disabled by Takealot) fail the item."""
    emulator.add_offer(CATALOGUE[31], sku="TAKEN", selling_price=10)
    emulator.add_offer(CATALOGUE[32], sku="LOCKED", selling_price=10)
    emulator.disable_by_takealot(CATALOGUE[32])
    harness = Harness(make(emulator, clock))

    dup, locked = harness.push([offer_item(30, sku="TAKEN"), offer_item(32, sku="LOCKED")])

    assert [(e.code, e.field) for e in dup.errors] == [("E6", "sku")]
    assert {e.code for e in locked.errors} >= {"E21", "E12"}
    assert all(e.kind is ErrorKind.CHANNEL for e in dup.errors + locked.errors)
    assert emulator.offers[CATALOGUE[32]]["selling_price"] == 10  # nothing applied


def test_skips_products_with_variants_and_categories(emulator, clock):
    """A product with variants and a category are recorded as skipped, never sent."""
    channel = make(emulator, clock)
    harness = Harness(channel)
    product_ops = harness.ops([offer_item(40)], children={(ItemType.PRODUCT, "P40"): ("V1",)})
    ops = [*product_ops, Operation(ItemType.CATEGORY, "C1", ItemAction.CREATE, payload={})]

    product, category = channel.push(ops, ConnectorParams())

    assert (product.ok, product.action) == (True, ItemAction.SKIP)
    assert "has variants" in product.message
    assert (category.ok, category.action) == (True, ItemAction.SKIP)
    assert emulator.requests == []


def test_variants_become_offers_with_product_data(emulator, clock):
    """Variants are offers of their own barcodes, priced from the product when they have no price."""
    parent = Item("P1", ItemType.PRODUCT, fields={"selling_price": 300, "rrp": 350})
    variants = [
        Item(f"V{n}", ItemType.VARIANT, parents=("P1",), fields={"barcode": CATALOGUE[50 + n]})
        for n in range(3)
    ]
    harness = Harness(make(emulator, clock, default_leadtime_days=2))

    outcomes = harness.push(variants, related={(ItemType.PRODUCT, "P1"): parent})

    assert all(o.ok for o in outcomes)
    assert [emulator.offers[CATALOGUE[50 + n]]["selling_price"] for n in range(3)] == [300] * 3
    assert emulator.offers[CATALOGUE[51]]["sku"] == "V1"


# -- transport: retries, faults, pacing ---------------------------------------------------------------


def test_429_and_5xx_are_retried(emulator, clock):
    """Injected 429s and 503s are retried with backoff on the clock; the items succeed."""
    emulator.faults.add(FaultKind.STATUS, status=503, count=2)
    emulator.faults.add(FaultKind.STATUS, status=429, count=1)
    channel = make(emulator, clock)

    outcomes = Harness(channel).push([offer_item(60), offer_item(61)])

    assert all(o.ok for o in outcomes)
    assert channel.transport.stats["retries"] == 3
    assert channel.transport.stats["throttled"] == 1
    assert clock.slept > 0


def test_faults_fail_only_the_affected_items(emulator, clock):
    """Persistent faults on some offers become TRANSPORT errors on those items only."""
    emulator.faults.add(FaultKind.STATUS, status=503, match=CATALOGUE[71])
    emulator.faults.add(FaultKind.RESET, match=CATALOGUE[72])
    emulator.faults.add(FaultKind.TIMEOUT, match=CATALOGUE[73])
    emulator.faults.add(FaultKind.TRUNCATE, count=1, match=CATALOGUE[74])  # once: retried
    channel = make(emulator, clock, max_in_flight=3)

    outcomes = Harness(channel).push([offer_item(n) for n in range(70, 76)])

    failed = {o.ref: o.errors for o in outcomes if not o.ok}
    assert set(failed) == {"P71", "P72", "P73"}
    for errors in failed.values():
        ((kind, code),) = [(e.kind, e.code) for e in errors]
        assert (kind, code) == (ErrorKind.TRANSPORT, "unavailable")
    assert "HTTP 503" in failed["P71"][0].message
    assert {CATALOGUE[n] for n in (70, 74, 75)} <= set(emulator.offers)


def test_a_garbled_answer_is_a_transport_error(emulator, clock):
    """JSON of the wrong shape for a write is reported as a bad response, never as success."""
    emulator.faults.add(FaultKind.STATUS, status=200, match=CATALOGUE[81])
    (garbled, fine) = Harness(make(emulator, clock)).push([offer_item(81), offer_item(82)])

    assert (garbled.ok, [(e.kind, e.code) for e in garbled.errors]) == (
        False,
        [(ErrorKind.TRANSPORT, "bad_response")],
    )
    assert fine.ok


def test_follows_the_rate_limit_headers(clock):
    """The pacer spends exactly the header budget: no 429, and the achieved rate is the budget."""
    emulator = TakealotEmulator(
        CATALOGUE[:100], api_key=KEY, clock=clock, limits={"offer": 10}, window=5
    )
    channel = make(emulator, clock, batch_threshold=1000, max_in_flight=1)
    start = clock.monotonic()

    outcomes = Harness(channel).push([offer_item(n) for n in range(60)])

    elapsed = clock.monotonic() - start
    assert all(o.ok for o in outcomes)
    assert emulator.throttled == 0
    assert channel.transport.stats["throttled"] == 0
    # 60 requests at 10 per 5 s need 6 windows: the last starts 25 s after the first.
    assert 25 <= elapsed < 25 + 5
    achieved = len(emulator.granted) / (elapsed + emulator.window)
    assert 0.8 * (10 / 5) <= achieved <= 10 / 5


def test_pacing_with_requests_in_flight(clock):
    """Several threads share one budget: still no 429 and every item succeeds."""
    emulator = TakealotEmulator(
        CATALOGUE[:100], api_key=KEY, clock=clock, limits={"offer": 8}, window=2
    )
    channel = make(emulator, clock, batch_threshold=1000, max_in_flight=4)

    start = clock.monotonic()

    outcomes = Harness(channel).push([offer_item(n) for n in range(40)])

    assert all(o.ok for o in outcomes)
    assert emulator.throttled == 0
    assert len(emulator.granted) == 40
    # 40 requests at 8 per 2 s need 5 windows: the last starts 8 s after the first.
    assert 8 <= clock.monotonic() - start <= 10


def test_several_requests_in_flight(emulator, clock):
    """Without a budget to respect, up to max_in_flight requests run at the same time."""
    emulator.latency = 0.02
    channel = make(emulator, clock, max_in_flight=4)

    outcomes = Harness(channel).push([offer_item(n) for n in range(16)])

    assert all(o.ok for o in outcomes)
    assert 2 <= emulator.peak_in_flight <= 4


def test_a_spent_budget_from_elsewhere_is_waited_out(clock):
    """Another tool used the key's budget: the 429 drains the pacer until the header's reset."""
    emulator = TakealotEmulator(
        CATALOGUE[:100], api_key=KEY, clock=clock, limits={"offer": 5}, window=30
    )
    with emulator.client(headers={"Authorization": f"Key {KEY}"}) as other:
        for _ in range(5):
            other.get("/v2/offers/offer/ID1")
    channel = make(emulator, clock)
    start = clock.monotonic()

    outcomes = Harness(channel).push([offer_item(n) for n in range(3)])

    assert all(o.ok for o in outcomes)
    assert emulator.throttled == 1
    assert 30 <= clock.monotonic() - start < 35


# -- batches -----------------------------------------------------------------------------------------


def test_several_thousand_offers_go_through_batches(clock):
    """3,000 offers use the batch endpoint; per-offer errors land on the right items."""
    emulator = TakealotEmulator(
        CATALOGUE,
        api_key=KEY,
        clock=clock,
        batch_polls=3,
        limits={"batch": 2, "batch_status": 4, "offer": 20},
        window=10,
    )
    existing = emulator.add_offer(CATALOGUE[2999], sku="KEEP", selling_price=10)
    emulator.add_offer(CATALOGUE[2000], sku="P2000", selling_price=10)
    emulator.disable_by_takealot(CATALOGUE[2000])
    channel = make(emulator, clock, batch_size=1000, poll_interval=2)
    harness = Harness(channel, ConnectorParams(map_status=True, overwrite_stock=True))
    items = [offer_item(n, stock=n % 5) for n in range(2999)]
    items[7] = offer_item(7, barcode=UNKNOWN[1])
    items[1500] = offer_item(1500, barcode=UNKNOWN[2])
    items[101] = offer_item(101, sku="P100")  # the SKU of item 100: E6
    items[42] = offer_item(42, Visibility.DRAFT)
    removal = Operation(
        ItemType.PRODUCT, "GONE", ItemAction.ARCHIVE, channel_id=str(existing["offer_id"])
    )
    started = time.perf_counter()

    outcomes = harness.apply(channel.push([*harness.ops(items), removal], harness.params))

    seconds = time.perf_counter() - started
    assert len(outcomes) == 3000
    assert [o.ref for o in outcomes] == [*(i.ref for i in items), "GONE"]
    failed = {o.ref: [e.code for e in o.errors] for o in outcomes if not o.ok}
    assert set(failed) == {"P7", "P1500", "P101", "P2000"}
    assert failed["P7"] == ["E2"]
    assert failed["P1500"] == ["E2"]
    assert failed["P101"] == ["E6"]
    assert "E21" in failed["P2000"]
    assert channel.batch_stats["batches"] == 3
    assert emulator.count("POST", "/v2/offers/batch") == 3
    assert emulator.count("POST", "/v2/offers/offer") == 0
    for outcome, item in zip(outcomes[:-1], items, strict=True):
        if outcome.ok:
            offer = emulator.offers[item.fields["barcode"]]
            assert outcome.channel_id == str(offer["offer_id"])
            assert offer["sku"] == item.ref
            assert outcome.request_id is not None
    assert emulator.offers[CATALOGUE[42]]["status"] == "Disabled by Seller"
    assert emulator.stock(CATALOGUE[3]) == {WAREHOUSE: 3}
    assert (outcomes[-1].ok, outcomes[-1].action) == (True, ItemAction.ARCHIVE)
    assert emulator.offers[CATALOGUE[2999]]["status"] == "Disabled by Seller"
    assert emulator.throttled == 0  # batch submissions and status polls were paced too
    assert channel.pacer.waited[wire.Route.BATCH] > 0
    assert seconds < 20


def test_batch_timeout_reports_undelivered_items(clock):
    """A batch still processing at the timeout leaves its items with TRANSPORT errors, not lost."""
    emulator = TakealotEmulator(CATALOGUE[:100], api_key=KEY, clock=clock, batch_polls=10_000)
    channel = make(emulator, clock, batch_threshold=2, poll_interval=5, batch_timeout=60)

    outcomes = Harness(channel).push([offer_item(n) for n in range(5)])

    assert not any(o.ok for o in outcomes)
    for outcome in outcomes:
        (error,) = outcome.errors
        assert (error.kind, error.code) == (ErrorKind.TRANSPORT, "batch_timeout")
        assert outcome.request_id == "9000001"
    assert 3 <= channel.batch_stats["polls"] <= 12


def test_batch_refused_or_lost(emulator, clock):
    """A refused submission fails its items as CHANNEL errors; a batch that vanished, likewise."""
    emulator.faults.add(FaultKind.STATUS, status=400, count=1, match="/v2/offers/batch")
    channel = make(emulator, clock, batch_threshold=1, poll_interval=1)

    refused = Harness(channel).push([offer_item(1), offer_item(2)])

    assert [e.code for o in refused for e in o.errors] == ["HTTP 400", "HTTP 400"]
    emulator.faults.add(FaultKind.STATUS, status=404, match="/v2/offers/batch/")
    lost = Harness(channel).push([offer_item(1), offer_item(2)])
    assert [e.code for o in lost for e in o.errors] == ["batch_failed", "batch_failed"]


def test_a_refused_batch_write_keeps_positional_matching(emulator, clock):
    """A refused update shows the offer's old SKU; the other results still match by position."""
    emulator.add_offer(CATALOGUE[1], sku="PORTAL-1", selling_price=10)
    emulator.disable_by_takealot(CATALOGUE[1])
    channel = make(emulator, clock, batch_threshold=1, poll_interval=1)
    unknown = offer_item(2, barcode=UNKNOWN[0])

    outcomes = Harness(channel).push([offer_item(0), offer_item(1), unknown, offer_item(3)])

    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert {e.code for e in outcomes[1].errors} >= {"E13", "E21"}
    assert [e.code for e in outcomes[2].errors] == ["E2"]
    assert emulator.offers[CATALOGUE[3]]["sku"] == "P3"


def test_batch_results_are_matched_by_sku_when_reordered(emulator, clock):
    """Results that come back in another order are matched by SKU; missing ones are errors."""
    channel = make(emulator, clock)
    works = [
        channel._triage(n, op, ConnectorParams(), Endpoint.PRODUCTION)[1]
        for n, op in enumerate(Harness(channel).ops([offer_item(1), offer_item(2), offer_item(3)]))
    ]
    view = wire.BatchView(
        "B1",
        wire.BatchState.DONE,
        results=(
            wire.OfferReply(200, offer=wire.OfferView(offer_id=3, sku="P3")),
            wire.OfferReply(200, offer=wire.OfferView(offer_id=1, sku="P1")),
        ),
    )

    matched = channel._match(view, works)

    assert [(w.op.ref, getattr(r, "offer", None)) for w, r in matched][:2] == [
        ("P1", wire.OfferView(offer_id=1, sku="P1")),
        ("P2", None),
    ]
    assert matched[1][1].code == "batch_no_result"
    assert matched[2][1].offer.offer_id == 3


# -- secrets and the real socket --------------------------------------------------------------------


def test_the_key_never_leaks(clock, caplog):
    """The API key appears in no repr, DEBUG log line, outcome or exception message."""
    caplog.set_level(logging.DEBUG, logger="catalogsync")
    emulator = TakealotEmulator(CATALOGUE[:20], api_key=KEY, clock=clock)
    emulator.faults.add(FaultKind.STATUS, status=503, match=CATALOGUE[1])
    channel = make(emulator, clock)

    outcomes = Harness(channel).push(
        [offer_item(0), offer_item(1), offer_item(2, barcode=UNKNOWN[0])]
    )
    wrong = make(TakealotEmulator(CATALOGUE[:2], api_key="another-key-999999", clock=clock), clock)
    with pytest.raises(ChannelAuthError) as info:
        wrong.check_connection(ConnectorParams())

    assert "PATCH" in caplog.text or "POST" in caplog.text  # the logs were written
    for text in (caplog.text, repr(channel), str(outcomes), str(info.value), repr(info.value)):
        assert KEY not in text
    assert KEY not in repr(channel.transport.client.headers)


def test_over_a_real_socket(clock):
    """The same flows work over a loopback HTTP port, including identifiers in `?identifier=`."""
    emulator = TakealotEmulator(["TAL/0001", CATALOGUE[0]], api_key=KEY, clock=clock)
    with emulator.serve() as url, httpx.Client(base_url=url, timeout=5) as client:
        channel = TakealotChannel(
            Secret(KEY), client=client, warehouses=[WAREHOUSE], gtin_check=False, clock=clock
        )
        harness = Harness(channel)
        first = harness.push(
            [offer_item(0, barcode="TAL/0001"), offer_item(1, barcode=CATALOGUE[0])]
        )
        second = harness.push([offer_item(0, barcode="TAL/0001", selling_price=111)])

    assert all(o.ok for o in first + second)
    assert (second[0].action, emulator.offers["TAL/0001"]["selling_price"]) == (
        ItemAction.UPDATE,
        111,
    )
    assert ("PATCH", "/v2/offers/offer") in emulator.requests
    assert math.isclose(clock.slept, 0.0)
