"""The Amazon channel against the Amazon emulator: writes, families, issues, auth, pacing, faults."""

from __future__ import annotations

import logging
import random
import threading

import httpx
import pytest

from catalogsync import (
    ChangeHasher,
    ChannelAuthError,
    ConnectorParams,
    Endpoint,
    ErrorKind,
    Item,
    ItemAction,
    ItemType,
    Mode,
    Secret,
    Visibility,
)
from catalogsync.channels import RetryPolicy
from catalogsync.channels.amazon import AmazonChannel, AmazonPacer, LwaCredentials
from catalogsync.testing import AmazonEmulator, FaultKind
from catalogsync.typing import Channel, Operation, RenderContext


MAPPING = {"item_name": "title"}
hasher = ChangeHasher()


def credentials(emu, secret=None, refresh=None, token_url=None):
    kw = {"token_url": token_url} if token_url else {}
    return LwaCredentials(
        emu.client_id,
        client_secret=Secret(secret or emu.client_secret),
        refresh_token=Secret(refresh or emu.refresh_token),
        **kw,
    )


def make(emu, clock, *, client=None, **kw):
    kw.setdefault("product_type", "SHIRT")
    kw.setdefault("retry", RetryPolicy(attempts=4, initial=0.5, maximum=4.0))
    kw.setdefault("credentials", credentials(emu))
    return AmazonChannel(
        client or emu.client(),
        seller_id=emu.seller_id,
        marketplace="US",
        clock=clock,
        rng=random.Random(7),
        **kw,
    )


@pytest.fixture
def amazon(clock):
    """An emulator on the test's manual clock."""
    return AmazonEmulator(clock=clock)


class Sync:
    """A stand-in for the synchronizer: renders, pushes, and remembers channel ids and memos."""

    def __init__(self, channel, params=None):
        self.channel = channel
        self.params = params or ConnectorParams(field_mapping=MAPPING)
        self.catalog: dict = {}
        self.state: dict = {}

    def put(self, *items):
        for item in items:
            self.catalog[item.key] = item

    def ctx(self):
        children = {}
        for _key, item in self.catalog.items():
            if item.type is ItemType.VARIANT:
                parent = (ItemType.PRODUCT, item.parents[0])
                children[parent] = (*children.get(parent, ()), item.ref)
        return RenderContext(self.params, related=dict(self.catalog), children=children)

    def operation(self, item, ctx=None):
        payload = self.channel.render(item, ctx or self.ctx())
        prev = self.state.get(item.key)
        return Operation(
            item.type,
            item.ref,
            ItemAction.UPDATE if prev else ItemAction.CREATE,
            payload=payload,
            item=item,
            channel_id=prev.channel_id if prev else None,
            digest=hasher.digest(payload),
            memo=prev.memo if prev else {},
        )

    def push(self, *items, params=None):
        self.put(*items)
        ctx = self.ctx()
        return self.send([self.operation(i, ctx) for i in items], params)

    def remove(self, item, action=ItemAction.DELETE, params=None):
        prev = self.state.get(item.key)
        op = Operation(
            item.type,
            item.ref,
            action,
            channel_id=prev.channel_id if prev else None,
            memo=prev.memo if prev else {},
        )
        return self.send([op], params)[0]

    def send(self, ops, params=None):
        outcomes = self.channel.push(ops, params or self.params)
        for outcome in outcomes:
            if outcome.ok and outcome.action is ItemAction.DELETE:
                self.state.pop(outcome.key, None)
            elif outcome.ok:
                self.state[outcome.key] = outcome
        return outcomes


def product(ref="P1", sku="TEE-1", **fields):
    base = {
        "title": "Trail tee",
        "brand": "Acme",
        "price": 19.99,
        "quantity": 4,
        "sku": sku,
        "bullet_point": ["Soft"],
    }
    return Item(ref, ItemType.PRODUCT, fields=base | fields)


def variant(ref, color, size="M", parent="P1", **fields):
    base = {
        "sku": f"TEE-1-{color.upper()}-{size}",
        "color": color,
        "size": size,
        "price": 21.5,
        "quantity": 2,
    }
    return Item(ref, ItemType.VARIANT, parents=(parent,), fields=base | fields)


def price_of(emu, sku):
    return emu.attribute(sku, "purchasable_offer", "our_price")[0]["schedule"][0]["value_with_tax"]


# -- the protocol -----------------------------------------------------------------------------


def test_is_a_channel_with_declared_capabilities(amazon, clock):
    """The adapter satisfies the Channel protocol and declares what Amazon takes."""
    ch = make(amazon, clock)
    caps = ch.capabilities

    assert isinstance(ch, Channel)
    assert caps.accepts == {ItemType.PRODUCT, ItemType.VARIANT}
    assert caps.reads == {
        (ItemType.VARIANT, ItemType.PRODUCT),
        (ItemType.PRODUCT, ItemType.VARIANT),
    }
    assert caps.carried == {}
    assert caps.removals == {ItemAction.DELETE, ItemAction.ARCHIVE}


def test_check_connection_reports_the_account(amazon, clock):
    """check_connection exchanges the token, reads a sentinel SKU and reports non-secret facts."""
    info = make(amazon, clock).check_connection(ConnectorParams())

    assert info.api_version == "2021-08-01"
    assert info.endpoint is Endpoint.PRODUCTION
    assert dict(info.details) == {
        "marketplace_id": "ATVPDKIKX0DER",
        "seller_id": amazon.seller_id,
        "host": "sellingpartnerapi-na.amazon.com",
        "region": "na",
        "test_surface": "none",
    }
    assert amazon.answers[-1][2] == 404


def test_check_connection_for_another_seller_is_an_auth_error(amazon, clock):
    """A seller that did not authorize the app is a ChannelAuthError naming the seller."""
    ch = AmazonChannel(
        amazon.client(),
        seller_id="A9OTHER",
        marketplace="US",
        credentials=credentials(amazon),
        clock=clock,
    )

    with pytest.raises(ChannelAuthError, match="A9OTHER") as info:
        ch.check_connection(ConnectorParams())

    assert info.value.request_id is not None


# -- writes -----------------------------------------------------------------------------------


def test_create_puts_the_listing(amazon, clock):
    """A new SKU is PUT whole; the outcome is ok, queued, with the SKU and Amazon's request id."""
    sync = Sync(make(amazon, clock))
    (outcome,) = sync.push(product())
    listing = amazon.listing("TEE-1")

    assert outcome.ok
    assert outcome.action is ItemAction.CREATE
    assert outcome.channel_id == "TEE-1"
    assert "ACCEPTED" in outcome.message
    assert "queued" in outcome.message
    assert outcome.request_id == amazon.answers[-1][3]
    assert listing["productType"] == "SHIRT"
    assert listing["attributes"]["item_name"][0]["value"] == "Trail tee"
    assert amazon.count("PUT") == 1


def test_price_change_is_an_offer_patch(amazon, clock):
    """Only the price changed: a PATCH of the offer; the rest of the listing is untouched."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    (outcome,) = sync.push(product(price=24.5))

    assert outcome.ok
    assert outcome.action is ItemAction.UPDATE
    assert "offer only" in outcome.message
    assert amazon.count("PATCH") == 1
    assert price_of(amazon, "TEE-1") == 24.5
    assert amazon.attribute("TEE-1", "bullet_point") == "Soft"


def test_content_change_with_stock_ownership_is_a_put(amazon, clock):
    """With overwrite_stock a content change is a full PUT including the quantity."""
    sync = Sync(make(amazon, clock), ConnectorParams(field_mapping=MAPPING, overwrite_stock=True))
    sync.push(product())
    sync.push(product(title="Trail tee v2", quantity=9))

    assert amazon.count("PUT") == 2
    assert amazon.attribute("TEE-1", "item_name") == "Trail tee v2"
    assert amazon.attribute("TEE-1", "fulfillment_availability", "quantity") == 9


def test_content_change_without_stock_ownership_keeps_amazon_stock(amazon, clock):
    """Without overwrite_stock a content change never wipes the quantity the seller keeps on Amazon."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    listing = amazon.listing("TEE-1")
    listing["attributes"]["fulfillment_availability"] = [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 31}
    ]
    sync.push(product(title="Trail tee v2", bullet_point=None))
    attributes = amazon.listing("TEE-1")["attributes"]

    assert amazon.count("PUT") == 1
    assert amazon.count("PATCH") == 1
    assert attributes["item_name"][0]["value"] == "Trail tee v2"
    assert "bullet_point" not in attributes
    assert attributes["fulfillment_availability"][0]["quantity"] == 31


def test_forced_resend_sends_everything(amazon, clock):
    """Re-sending an unchanged payload (force refresh) sends the full listing, not an empty patch."""
    sync = Sync(make(amazon, clock), ConnectorParams(field_mapping=MAPPING, overwrite_stock=True))
    sync.push(product())
    amazon.listing("TEE-1")["attributes"]["item_name"][0]["value"] = "edited on Amazon"
    (outcome,) = sync.push(product())

    assert outcome.ok
    assert amazon.count("PUT") == 2
    assert amazon.attribute("TEE-1", "item_name") == "Trail tee"


def test_delete_removes_the_listing(amazon, clock):
    """DELETE calls deleteListingsItem; the outcome forgets the channel id."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    outcome = sync.remove(product())

    assert outcome.ok
    assert outcome.action is ItemAction.DELETE
    assert outcome.channel_id is None
    assert outcome.request_id is not None
    assert amazon.listing("TEE-1") is None


def test_delete_of_a_never_listed_item_sends_nothing(amazon, clock):
    """Without a stored SKU there is nothing to delete, and no request is made."""
    outcome = Sync(make(amazon, clock)).remove(product())

    assert outcome.ok
    assert "nothing to delete" in outcome.message
    assert amazon.count("DELETE") == 0


def test_archive_with_stock_ownership_sets_quantity_zero(amazon, clock):
    """ARCHIVE with overwrite_stock keeps the listing and makes the quantity 0."""
    params = ConnectorParams(field_mapping=MAPPING, overwrite_stock=True)
    sync = Sync(make(amazon, clock), params)
    sync.push(product())
    outcome = sync.remove(product(), ItemAction.ARCHIVE)

    assert outcome.ok
    assert outcome.action is ItemAction.ARCHIVE
    assert outcome.memo["product_type"] == "SHIRT"
    assert amazon.attribute("TEE-1", "fulfillment_availability", "quantity") == 0
    assert amazon.listing("TEE-1") is not None


def test_archive_without_stock_ownership_removes_the_offer(amazon, clock):
    """ARCHIVE without overwrite_stock removes the offer and leaves the stock alone."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    amazon.listing("TEE-1")["attributes"]["fulfillment_availability"] = [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 5}
    ]
    sync.remove(product(), ItemAction.ARCHIVE)
    attributes = amazon.listing("TEE-1")["attributes"]

    assert "purchasable_offer" not in attributes
    assert attributes["fulfillment_availability"][0]["quantity"] == 5


def test_reactivating_an_archived_item_restores_the_offer(amazon, clock):
    """Invisible then visible again (map_status, no stock ownership): the price comes back."""
    params = ConnectorParams(field_mapping=MAPPING, map_status=True)
    sync = Sync(make(amazon, clock), params)
    sync.push(product())
    hidden = Item("P1", ItemType.PRODUCT, visibility=Visibility.INVISIBLE, fields=product().fields)
    sync.push(hidden)
    assert "purchasable_offer" not in amazon.listing("TEE-1")["attributes"]
    sync.push(product())

    assert price_of(amazon, "TEE-1") == 19.99


def test_changed_sku_is_sent_with_a_warning(amazon, clock):
    """A new SKU creates a new listing; the old one is named in a warning."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    (outcome,) = sync.push(product(sku="TEE-1B"))

    assert outcome.ok
    assert outcome.channel_id == "TEE-1B"
    assert [w.code for w in outcome.warnings] == ["sku_changed"]
    assert amazon.listing("TEE-1") is not None
    assert amazon.listing("TEE-1B") is not None


def test_category_operations_are_refused_without_a_request(amazon, clock):
    """A category operation fails with a clear error and sends nothing."""
    op = Operation(ItemType.CATEGORY, "C1", ItemAction.CREATE, payload={})
    (outcome,) = make(amazon, clock).push([op], ConnectorParams())

    assert not outcome.ok
    assert outcome.errors[0].code == "unsupported"
    assert amazon.requests == []


# -- variation families -----------------------------------------------------------------------


def test_variation_family_becomes_parent_and_children(amazon, clock):
    """A product with variants is a parent listing; each variant a child naming it."""
    sync = Sync(make(amazon, clock))
    sync.put(product(), variant("V1", "Red"), variant("V2", "Blue"))
    outcomes = sync.push(product(), variant("V1", "Red"), variant("V2", "Blue"))

    assert all(o.ok for o in outcomes)
    assert amazon.attribute("TEE-1", "parentage_level") == "parent"
    assert amazon.attribute("TEE-1", "variation_theme", "name") == "SIZE/COLOR"
    assert amazon.listing("TEE-1")["requirements"] == "LISTING_PRODUCT_ONLY"
    assert amazon.attribute("TEE-1-RED-M", "child_parent_sku_relationship", "parent_sku") == "TEE-1"
    assert amazon.attribute("TEE-1-BLUE-M", "color") == "Blue"
    assert amazon.orphans() == []


def test_new_variant_turns_a_standalone_listing_into_a_parent(amazon, clock):
    """A product re-rendered after gaining a variant becomes a parent (it reads its variants)."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    sync.put(variant("V1", "Red"))
    sync.push(product(), variant("V1", "Red"))

    assert amazon.attribute("TEE-1", "parentage_level") == "parent"
    assert "purchasable_offer" not in amazon.listing("TEE-1")["attributes"]
    assert amazon.orphans() == []


# -- issues, warnings, request ids ------------------------------------------------------------


def test_invalid_issues_become_channel_errors(amazon, clock):
    """INVALID: each ERROR issue is a CHANNEL error with code, severity and attribute; nothing saved."""
    amazon.add_issue(
        "TEE-1",
        code="8541",
        message="The brand is not approved.",
        severity="ERROR",
        attribute="brand",
    )
    (outcome,) = Sync(make(amazon, clock)).push(product())

    assert not outcome.ok
    assert [(e.kind, e.code, e.field, e.message) for e in outcome.errors] == [
        (ErrorKind.CHANNEL, "8541", "brand", "[ERROR] The brand is not approved.")
    ]
    assert outcome.request_id == amazon.answers[-1][3]
    assert amazon.listing("TEE-1") is None


def test_amazon_validation_of_an_unvalidated_payload(amazon, clock):
    """A listing without a title (sent without local validation) comes back with issue 90220."""
    ch = make(amazon, clock)
    payload = {
        "sku": "NO-TITLE",
        "productType": "SHIRT",
        "requirements": "LISTING",
        "attributes": {},
    }
    (outcome,) = ch.push(
        [Operation(ItemType.PRODUCT, "P9", ItemAction.CREATE, payload=payload)], ConnectorParams()
    )

    assert [(e.code, e.field) for e in outcome.errors] == [("90220", "item_name")]


def test_warnings_are_kept_on_success(amazon, clock):
    """WARNING issues on an accepted submission are returned as warnings."""
    amazon.add_issue(
        "TEE-1", code="99022", message="Bullet point may be truncated.", attribute="bullet_point"
    )
    (outcome,) = Sync(make(amazon, clock)).push(product())

    assert outcome.ok
    assert [(w.code, w.field) for w in outcome.warnings] == [("99022", "bullet_point")]


def test_every_answered_outcome_carries_its_request_id(amazon, clock):
    """Accepted, invalid, refused (400), throttled-out and failed-out outcomes all carry a request id."""
    faults = amazon.faults
    faults.add(FaultKind.STATUS, status=503, match="/DOWN-1")
    amazon.add_issue(
        "BAD-1", code="90000900", message="The attributes are invalid.", severity="ERROR"
    )
    ch = make(amazon, clock, retry=RetryPolicy(attempts=2, initial=0.1))
    ok = Sync(ch).operation(product(sku="OK-1"))
    bad = Sync(ch).operation(product("P2", sku="BAD-1"))
    down = Sync(ch).operation(product("P3", sku="DOWN-1"))
    refused = Operation(
        ItemType.PRODUCT,
        "P4",
        ItemAction.CREATE,
        payload={"sku": "X", "productType": "SHIRT", "attributes": []},
    )
    outcomes = ch.push([ok, bad, down, refused], ConnectorParams(field_mapping=MAPPING))
    answered = {rid for *_, rid in amazon.answers}

    assert [o.ok for o in outcomes] == [True, False, False, False]
    assert [e.kind for o in outcomes[1:] for e in o.errors[:1]] == [
        ErrorKind.CHANNEL,
        ErrorKind.TRANSPORT,
        ErrorKind.CHANNEL,
    ]
    assert all(o.request_id in answered for o in outcomes)
    assert outcomes[2].request_id in outcomes[2].errors[0].message
    assert amazon.count("PUT", "/X") == 1  # a 400 is final: not retried


# -- authentication ---------------------------------------------------------------------------


def test_token_is_cached_and_refreshed_before_expiry(amazon, clock):
    """One exchange serves many requests; shortly before expiry a new token is fetched."""
    sync = Sync(make(amazon, clock))
    sync.push(product(), product("P2", sku="TEE-2"))
    assert amazon.tokens_issued == 1
    clock.advance(3600 - 30)
    sync.push(product("P3", sku="TEE-3"))

    assert amazon.tokens_issued == 2
    assert sync.channel.token_exchanges == 2


def test_refused_token_is_replaced_once(amazon, clock):
    """A 403 for an expired token triggers one fresh exchange and a retry that succeeds."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    amazon.expire_tokens()
    (outcome,) = sync.push(product(price=5))

    assert outcome.ok
    assert amazon.tokens_issued == 2


def test_invalid_grant_fails_the_connection_check_clearly(amazon, clock):
    """A revoked refresh token is a ChannelAuthError that tells the user to re-authorize."""
    amazon.revoke()

    with pytest.raises(ChannelAuthError, match="invalid_grant") as info:
        make(amazon, clock).check_connection(ConnectorParams())

    assert "authorize the app again" in str(info.value)
    assert info.value.status_code == 400


def test_bad_credentials_stop_a_push_before_anything_is_sent(amazon, clock):
    """With a wrong client secret push raises ChannelAuthError and no listing request is made."""
    ch = make(amazon, clock, credentials=credentials(amazon, secret="wrong-client-secret"))

    with pytest.raises(ChannelAuthError, match="invalid_client"):
        Sync(ch).push(product())

    assert amazon.count(path_contains="/listings/") == 0


def test_revocation_during_a_run_fails_the_affected_items(amazon, clock):
    """If the grant is revoked mid-run, items needing a new token fail with TRANSPORT 'auth' errors."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    amazon.revoke()
    amazon.expire_tokens()
    (outcome,) = sync.push(product(price=3))

    assert not outcome.ok
    assert outcome.errors[0].kind is ErrorKind.TRANSPORT
    assert outcome.errors[0].code == "auth"
    assert outcome.request_id is not None  # the 403 that refused the old token


def test_secrets_never_reach_reprs_logs_or_errors(amazon, clock, caplog):
    """The client secret, refresh token and access tokens appear in no repr, log line or error."""
    caplog.set_level(logging.DEBUG)
    ch = make(amazon, clock)
    sync = Sync(ch)
    sync.push(product(), product("P2", sku="TEE-2", price=-1))
    amazon.expire_tokens()
    sync.push(product(price=3))
    amazon.revoke()
    amazon.expire_tokens()
    with pytest.raises(ChannelAuthError) as info:
        make(amazon, clock).check_connection(ConnectorParams())
    texts = [
        caplog.text,
        repr(ch),
        repr(ch._tokens),
        repr(credentials(amazon)),
        str(info.value),
        repr(info.value),
    ]
    texts += [repr(o) for o in sync.state.values()]

    assert "DEBUG" in caplog.text  # the adapter did log
    for text in texts:
        assert amazon.client_secret not in text
        assert amazon.refresh_token not in text
        assert "Atza|" not in text


def test_credentials_must_be_secrets():
    """Plain strings for the client secret or refresh token are refused."""
    with pytest.raises(TypeError, match="Secret"):
        LwaCredentials("id", client_secret="plain", refresh_token=Secret("Atzr|x"))


# -- SKU encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("sku", ["TEE 1", "TEE/1", "Tée-ü", "A+B%C#D?E", "x/../y"])
def test_awkward_skus_round_trip(amazon, clock, sku):
    """SKUs with spaces, slashes, unicode and reserved characters reach Amazon intact."""
    sync = Sync(make(amazon, clock))
    (created,) = sync.push(product(sku=sku))
    (patched,) = sync.push(product(sku=sku, price=7))
    deleted = sync.remove(product(sku=sku))

    assert created.ok
    assert patched.ok
    assert deleted.ok
    assert created.channel_id == sku
    assert [m for m, *_ in amazon.answers if m != "POST"] == ["PUT", "PATCH", "DELETE"]


# -- pacing -----------------------------------------------------------------------------------


def test_hundreds_of_skus_at_the_documented_rate_without_throttling(amazon, clock):
    """300 SKUs at 5 requests/second per operation: none throttled, rate close to the limit."""
    ch = make(amazon, clock, max_workers=4)
    sync = Sync(ch)
    items = [product(f"P{n}", sku=f"SKU-{n:04d}") for n in range(300)]
    start = clock.monotonic()
    outcomes = sync.push(*items)
    elapsed = clock.monotonic() - start
    rate = 300 / elapsed

    assert all(o.ok for o in outcomes)
    assert amazon.throttled() == 0
    assert 4.5 <= rate <= 5.2, rate
    assert ch.transport.stats["retries"] == 0


def test_throttles_are_retried_and_the_rate_header_followed(clock):
    """A stricter account limit: 429s are retried with backoff, and the reported rate is adopted."""
    emu = AmazonEmulator(clock=clock, rate_limits={"putListingsItem": (2.0, 2.0)})
    ch = make(emu, clock, max_workers=3)
    outcomes = Sync(ch).push(*[product(f"P{n}", sku=f"SKU-{n}") for n in range(40)])

    assert all(o.ok for o in outcomes)
    assert emu.throttled() > 0
    assert ch.pacer.bucket(emu.seller_id, "putListingsItem").rate == 2.0


def test_requests_run_concurrently_within_the_limits(clock):
    """Up to max_workers requests are in flight at once (here with 50 ms of real latency)."""
    emu = AmazonEmulator(clock=clock, latency=0.05)
    lock, live, peak = threading.Lock(), [0], [0]

    def gauge(request):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        try:
            return emu(request)
        finally:
            with lock:
                live[0] -= 1

    client = httpx.Client(transport=httpx.MockTransport(gauge))
    outcomes = Sync(make(emu, clock, client=client, max_workers=4)).push(
        *[product(f"P{n}", sku=f"S-{n}") for n in range(8)]
    )

    assert all(o.ok for o in outcomes)
    assert peak[0] == 4


def test_pacer_is_shared_per_seller_and_operation(clock):
    """Buckets are keyed by seller and operation; previews have their own, slower bucket."""
    pacer = AmazonPacer(clock=clock)

    assert pacer.bucket("S1", "putListingsItem") is pacer.bucket("S1", "putListingsItem")
    assert pacer.bucket("S1", "putListingsItem") is not pacer.bucket("S2", "putListingsItem")
    assert pacer.bucket("S1", "putListingsItem:VALIDATION_PREVIEW").rate == 1.0


def test_throttle_storm_fails_only_the_affected_items(clock):
    """When Amazon keeps answering 429, the items that ran out of attempts fail as TRANSPORT 'throttled'."""
    emu = AmazonEmulator(clock=clock, rate_limits={"putListingsItem": (0.01, 1.0)})
    ch = make(
        emu,
        clock,
        retry=RetryPolicy(attempts=2, initial=0.1, maximum=0.2),
        pacer=AmazonPacer(clock=clock, follow_headers=False),
    )
    outcomes = Sync(ch).push(product("P1", sku="S-1"), product("P2", sku="S-2"))

    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].errors[0].code == "throttled"
    assert outcomes[1].request_id is not None


# -- faults -----------------------------------------------------------------------------------


def test_faults_fail_only_the_affected_items(amazon, clock):
    """A SKU behind a dead path or a timeout fails as TRANSPORT; transient garbage is retried; others pass."""
    amazon.faults.add(FaultKind.STATUS, status=503, match="/DEAD-1")
    amazon.faults.add(FaultKind.TIMEOUT, match="/SLOW-1")
    amazon.faults.add(FaultKind.NON_JSON, count=1, match="/FLAKY-1")
    amazon.faults.add(FaultKind.TRUNCATE, count=1, match="/FLAKY-2")
    amazon.faults.add(FaultKind.RESET, count=1, match="/FLAKY-3")
    sync = Sync(make(amazon, clock, retry=RetryPolicy(attempts=3, initial=0.1)))
    skus = ["OK-1", "DEAD-1", "SLOW-1", "FLAKY-1", "FLAKY-2", "FLAKY-3", "OK-2"]
    outcomes = sync.push(*[product(f"P{n}", sku=s) for n, s in enumerate(skus)])
    by_sku = dict(zip(skus, outcomes, strict=True))

    assert {s for s, o in by_sku.items() if not o.ok} == {"DEAD-1", "SLOW-1"}
    assert by_sku["DEAD-1"].errors[0].kind is ErrorKind.TRANSPORT
    assert by_sku["DEAD-1"].errors[0].code == "unavailable"
    assert by_sku["DEAD-1"].request_id is not None
    assert by_sku["SLOW-1"].errors[0].code == "unavailable"
    assert by_sku["SLOW-1"].request_id is None
    assert "request id" in by_sku["SLOW-1"].errors[0].message
    assert amazon.listing("FLAKY-2") is not None


# -- test mode (R11) --------------------------------------------------------------------------


def test_validation_preview_persists_nothing(amazon, clock):
    """mode=TEST without a sandbox: VALIDATION_PREVIEW, VALID, the ASIN link, endpoint TEST, no memo."""
    sent = []
    client = amazon.client(event_hooks={"request": [sent.append]})
    params = ConnectorParams(field_mapping=MAPPING, mode=Mode.TEST)
    (outcome,) = Sync(make(amazon, clock, client=client), params).push(product())

    assert outcome.ok
    assert outcome.endpoint is Endpoint.TEST
    assert outcome.message.startswith("VALID")
    assert outcome.channel_url.startswith("https://www.amazon.com/dp/B0")
    assert outcome.memo == {}
    assert amazon.listings == {}
    assert sent[-1].url.params["mode"] == "VALIDATION_PREVIEW"


def test_validation_preview_reports_invalid_items(amazon, clock):
    """An item Amazon would refuse comes back INVALID in the preview, nothing saved."""
    amazon.add_issue(
        "TEE-1",
        code="90220",
        message="'brand' is required but not supplied.",
        severity="ERROR",
        attribute="brand",
    )
    params = ConnectorParams(field_mapping=MAPPING, mode=Mode.TEST)
    (outcome,) = Sync(make(amazon, clock), params).push(product())

    assert not outcome.ok
    assert outcome.endpoint is Endpoint.TEST
    assert outcome.errors[0].field == "brand"


def test_preview_paces_at_one_request_per_second(amazon, clock):
    """Validation previews use their own 1/s bucket and the emulator throttles none of them."""
    params = ConnectorParams(field_mapping=MAPPING, mode=Mode.TEST)
    start = clock.monotonic()
    outcomes = Sync(make(amazon, clock), params).push(
        *[product(f"P{n}", sku=f"S-{n}") for n in range(10)]
    )

    assert all(o.ok for o in outcomes)
    assert amazon.throttled() == 0
    assert clock.monotonic() - start >= 9.0


def test_deletions_are_not_sent_in_preview(amazon, clock):
    """VALIDATION_PREVIEW cannot preview a deletion: nothing is sent, the outcome says so."""
    sync = Sync(make(amazon, clock))
    sync.push(product())
    outcome = sync.remove(product(), params=ConnectorParams(mode=Mode.TEST))

    assert outcome.ok
    assert outcome.endpoint is Endpoint.TEST
    assert "not sent" in outcome.message
    assert amazon.listing("TEE-1") is not None


def test_sandbox_host_answers_static_mocks(clock):
    """sandbox=True sends to the sandbox host: ACCEPTED mocks, BadSKU refused, endpoint TEST."""
    emu = AmazonEmulator(clock=clock)
    ch = make(emu, clock, sandbox=True)
    info = ch.check_connection(ConnectorParams())
    outcomes = Sync(ch).push(product(), product("P2", sku="BadSKU"))

    assert ch.base_url == "https://sandbox.sellingpartnerapi-na.amazon.com"
    assert info.details["test_surface"] == "sandbox"
    assert info.endpoint is Endpoint.TEST
    assert outcomes[0].ok
    assert outcomes[0].endpoint is Endpoint.TEST
    assert [e.code for e in outcomes[1].errors] == ["BAD_REQUEST"]
    assert emu.listings == {}


# -- real sockets -----------------------------------------------------------------------------


def test_over_a_loopback_port(clock):
    """The same flow works over real HTTP against the emulator served on a loopback port."""
    emu = AmazonEmulator(clock=clock)
    with emu.serve() as url, httpx.Client(timeout=5) as client:
        ch = make(
            emu,
            clock,
            client=client,
            endpoint=url,
            credentials=credentials(emu, token_url=url + "/auth/o2/token"),
        )
        sync = Sync(ch)
        (created,) = sync.push(product(sku="LOOP 1/é"))
        (patched,) = sync.push(product(sku="LOOP 1/é", price=3))

    assert created.ok
    assert patched.ok
    assert price_of(emu, "LOOP 1/é") == 3


def test_unreachable_token_endpoint_fails_the_items_once(amazon, clock):
    """When LWA keeps failing, every item of the push fails as TRANSPORT, after one retry cycle."""
    amazon.faults.add(FaultKind.STATUS, status=503, match="/auth/o2/token")
    ch = make(amazon, clock, retry=RetryPolicy(attempts=3, initial=0.1))
    outcomes = Sync(ch).push(product(), product("P2", sku="TEE-2"))

    assert [(o.ok, o.errors[0].kind, o.errors[0].code) for o in outcomes] == [
        (False, ErrorKind.TRANSPORT, "unavailable")
    ] * 2
    assert amazon.count("POST", "/auth/o2/token") == 3
    assert amazon.count(path_contains="/listings/") == 0
