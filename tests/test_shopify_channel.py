"""The Shopify channel against the Shopify emulator (validating with the official schema)."""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from catalogsync import (
    ChannelAuthError,
    ChannelError,
    ConnectorParams,
    Endpoint,
    ErrorKind,
    Item,
    ItemAction,
    ItemType,
    Mode,
    Secret,
)
from catalogsync.channels import RetryPolicy
from catalogsync.channels.shopify import (
    ClientCredentials,
    CustomId,
    ShopifyChannel,
    ShopifyStore,
    StaticToken,
)
from catalogsync.channels.shopify._channel import _Pacer
from catalogsync.channels.shopify._sansio import Cost
from catalogsync.testing import FaultKind, Faults, ManualClock, ShopifyEmulator
from catalogsync.typing import Operation, Outcome, RenderContext

from _support import contracts_dir, require


TOKEN = "shpat_emulated_token_0001"
LOCATION = "gid://shopify/Location/1"
P, V, C = ItemType.PRODUCT, ItemType.VARIANT, ItemType.CATEGORY


def schema_path(version: str = "2026-10") -> str:
    """The official schema the emulator validates every request against."""
    path = contracts_dir() / "shopify" / f"admin_{version}.json.gz"
    require(path.exists(), f"the official Shopify schema {path} is not available")
    return str(path)


def make(
    clock: ManualClock,
    *,
    token: Any = None,
    emulator: dict[str, Any] | None = None,
    **channel: Any,
) -> tuple[ShopifyEmulator, ShopifyChannel]:
    """An emulator and a channel wired to it in-process."""
    options = {
        "schema": schema_path(channel.get("api_version", "2026-10")),
        "clock": clock,
        "access_tokens": [TOKEN],
        **(emulator or {}),
    }
    emu = ShopifyEmulator(**options)
    store = ShopifyStore(
        "emulated", token or StaticToken(Secret(TOKEN)), location_id=LOCATION, base_url=emu.base_url
    )
    channel.setdefault("retry", RetryPolicy(attempts=6, initial=0.5, maximum=30.0))
    return emu, ShopifyChannel(
        store, client=emu.client(), clock=clock, rng=random.Random(7), **channel
    )


class Sync:
    """A small stand-in for the synchronizer: render, validate, push, remember ids and memos."""

    def __init__(self, channel: ShopifyChannel, params: ConnectorParams | None = None) -> None:
        self.channel = channel
        self.params = params or ConnectorParams(overwrite_stock=True)
        self.items: dict[tuple[ItemType, str], Item] = {}
        self.state: dict[tuple[ItemType, str], tuple[str | None, dict[str, str]]] = {}

    def put(self, *items: Item) -> None:
        for item in items:
            self.items[item.key] = item

    def drop(self, key: tuple[ItemType, str]) -> None:
        del self.items[key]

    def ctx(self) -> RenderContext:
        children: dict[tuple[ItemType, str], tuple[str, ...]] = {}
        for item in self.items.values():
            if item.type is V:
                children.setdefault((P, item.parents[0]), ())
                children[(P, item.parents[0])] += (item.ref,)
        return RenderContext(
            params=self.params,
            related=dict(self.items),
            children=children,
            channel_ids={k: cid for k, (cid, _) in self.state.items() if cid},
        )

    def payload(self, key: tuple[ItemType, str]) -> Any:
        item = self.items[key]
        payload = self.channel.render(item, self.ctx())
        assert self.channel.validate(item, payload, self.ctx()) == []
        return payload

    def op(
        self,
        key: tuple[ItemType, str],
        *,
        action: ItemAction | None = None,
        carried: Iterable[Operation] = (),
    ) -> Operation:
        channel_id, memo = self.state.get(key, (None, {}))
        item = self.items.get(key)
        if action is None:
            action = ItemAction.UPDATE if channel_id else ItemAction.CREATE
        payload = (
            self.payload(key)
            if item is not None and action in (ItemAction.CREATE, ItemAction.UPDATE)
            else None
        )
        return Operation(
            key[0],
            key[1],
            action,
            payload=payload,
            item=item,
            channel_id=channel_id,
            memo=memo,
            carried=tuple(carried),
        )

    def carried(
        self, product: str, *refs: str, action: ItemAction | None = None
    ) -> list[Operation]:
        return [self.op((V, r), action=action) for r in refs]

    def push(self, *ops: Operation) -> list[Outcome]:
        outcomes = list(self.channel.push(ops, self.params))
        for o in outcomes:
            if o.ok and o.action == ItemAction.DELETE:
                self.state.pop(o.key, None)
            elif o.ok:
                self.state[o.key] = (o.channel_id, dict(o.memo))
        return outcomes


def catalog(sync: Sync, *, variants: int = 3) -> None:
    """A category and a product with *variants* variants (sizes), English and Spanish."""
    sync.put(Item("C1", C, fields={"title": {"en": "Shoes", "es": "Zapatos"}}))
    sync.put(
        Item(
            "P1",
            P,
            fields={
                "title": {"en": "Trail shoe", "es": "Zapatilla"},
                "description": {"en": "<p>Light</p>", "es": "<p>Ligera</p>"},
                "vendor": "Acme",
            },
            parents=("C1",),
        )
    )
    for i in range(variants):
        sync.put(
            Item(
                f"V{i}",
                V,
                fields={
                    "options": {"Size": str(40 + i)},
                    "price": "99.90",
                    "sku": f"TS-{40 + i}",
                    "stock": 10 + i,
                },
                parents=("P1",),
            )
        )


def create_all(sync: Sync, variants: int = 3) -> list[Outcome]:
    """Push the category, then the product with every variant carried."""
    catalog(sync, variants=variants)
    (category,) = sync.push(sync.op((C, "C1")))
    assert category.ok, category
    refs = [f"V{i}" for i in range(variants)]
    return sync.push(sync.op((P, "P1"), carried=sync.carried("P1", *refs)))


# -------------------------------------------------------------------------------------------------
# create, update, remove
# -------------------------------------------------------------------------------------------------


def test_create_category_and_product_with_variants(clock):
    """A first push creates the collection, the product in it, its variants, stock and translations."""
    emu, channel = make(clock)
    sync = Sync(channel)

    outcomes = create_all(sync)

    assert [(o.item_type, o.ref, o.ok, o.action) for o in outcomes] == [
        (P, "P1", True, ItemAction.CREATE),
        (V, "V0", True, ItemAction.CREATE),
        (V, "V1", True, ItemAction.CREATE),
        (V, "V2", True, ItemAction.CREATE),
    ]
    product = emu.product_by_ref("P1")
    collection = emu.collection_by_ref("C1")
    assert product is not None
    assert collection is not None
    assert product.collections == [collection.id]
    assert [v.options for v in product.variants] == [{"Size": "40"}, {"Size": "41"}, {"Size": "42"}]
    assert [emu.quantity(v.inventory_item_id) for v in product.variants] == [10, 11, 12]
    assert emu.translations[(product.id, "es", "title")][0] == "Zapatilla"
    assert emu.translations[(collection.id, "es", "title")][0] == "Zapatos"
    head = outcomes[0]
    assert head.channel_id == product.id
    assert (
        head.channel_url
        == f"https://emulated.myshopify.com/admin/products/{product.id.rsplit('/', 1)[1]}"
    )
    assert head.request_id is not None
    assert head.request_id.startswith("emu-")
    assert head.endpoint is Endpoint.PRODUCTION
    assert (
        head.memo["v:V1"] == f"{product.variants[1].id} {product.variants[1].inventory_item_id} 11"
    )
    assert outcomes[2].channel_id == product.variants[1].id
    assert outcomes[2].memo == {"inventory_item": product.variants[1].inventory_item_id}
    assert emu.calls["inventorySetQuantities"] == 0  # new variants were stocked by productSet


def test_update_sends_changed_variants_and_keeps_ids(clock):
    """An update keeps product and variant GIDs, and overwrites stock of changed variants only."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    product = emu.product_by_ref("P1")
    assert product is not None
    before = [(v.id, v.inventory_item_id) for v in product.variants]

    sync.put(
        Item(
            "V1",
            V,
            fields={"options": {"Size": "41"}, "price": "79.00", "sku": "TS-41", "stock": 3},
            parents=("P1",),
        )
    )
    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V1")))

    assert [(o.ref, o.ok, o.action) for o in outcomes] == [
        ("P1", True, ItemAction.UPDATE),
        ("V1", True, ItemAction.UPDATE),
    ]
    product = emu.product_by_ref("P1")
    assert product is not None
    assert [(v.id, v.inventory_item_id) for v in product.variants] == before
    assert product.variants[1].price == "79.00"
    assert [emu.quantity(v.inventory_item_id) for v in product.variants] == [10, 3, 12]
    assert emu.calls["inventorySetQuantities"] == 1
    assert len(emu.products) == 1


def test_price_edit_leaves_stock_alone(clock):
    """A variant whose price changed but whose stock did not gets no inventory write."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    calls = emu.calls["inventorySetQuantities"]

    sync.put(
        Item(
            "V1",
            V,
            fields={"options": {"Size": "41"}, "price": "79.00", "sku": "TS-41", "stock": 11},
            parents=("P1",),
        )
    )
    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V1")))

    assert all(o.ok for o in outcomes)
    assert emu.calls["inventorySetQuantities"] == calls
    product = emu.product_by_ref("P1")
    assert product is not None
    assert (product.variants[1].price, emu.quantity(product.variants[1].inventory_item_id)) == (
        "79.00",
        11,
    )


def test_variant_removal_replaces_the_list(clock):
    """A variant removed in the PIM leaves the product's list; its stock record goes with it."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    product = emu.product_by_ref("P1")
    assert product is not None
    gone = product.variants[2]

    sync.drop((V, "V2"))
    removal = Operation(V, "V2", ItemAction.DELETE, channel_id=sync.state[(V, "V2")][0])
    outcomes = sync.push(sync.op((P, "P1"), carried=[removal]))

    assert [(o.ref, o.ok, o.action, o.channel_id) for o in outcomes[1:]] == [
        ("V2", True, ItemAction.DELETE, None)
    ]
    product = emu.product_by_ref("P1")
    assert product is not None
    assert [v.options["Size"] for v in product.variants] == ["40", "41"]
    assert emu.quantity(gone.inventory_item_id) is None


def test_new_variant_is_added_and_stocked(clock):
    """A variant added later is created in place and stocked at the configured location."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync, variants=2)

    sync.put(
        Item(
            "V9",
            V,
            fields={"options": {"Size": "45"}, "price": "99.90", "stock": 7},
            parents=("P1",),
        )
    )
    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V9")))

    assert [(o.ref, o.action) for o in outcomes] == [
        ("P1", ItemAction.UPDATE),
        ("V9", ItemAction.CREATE),
    ]
    product = emu.product_by_ref("P1")
    assert product is not None
    assert emu.quantity(product.variants[-1].inventory_item_id) == 7


def test_product_delete_and_archive(clock):
    """DELETE removes the product and its variants; ARCHIVE sets ARCHIVED and keeps them."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)

    archived = sync.push(
        sync.op(
            (P, "P1"), action=ItemAction.ARCHIVE, carried=[Operation(V, "V0", ItemAction.ARCHIVE)]
        )
    )
    product = emu.product_by_ref("P1")
    assert product is not None
    assert product.status == "ARCHIVED"
    assert [(o.ok, o.action) for o in archived] == [
        (True, ItemAction.ARCHIVE),
        (True, ItemAction.ARCHIVE),
    ]

    deleted = sync.push(
        sync.op(
            (P, "P1"), action=ItemAction.DELETE, carried=[Operation(V, "V0", ItemAction.DELETE)]
        )
    )
    assert [(o.ok, o.action, o.channel_id) for o in deleted] == [
        (True, ItemAction.DELETE, None)
    ] * 2
    assert emu.products == {}
    assert emu.inventory == {}


def test_removing_what_shopify_does_not_have_is_a_no_op(clock):
    """Deleting a product or collection that is not in Shopify succeeds and says so."""
    _emu, channel = make(clock)
    sync = Sync(channel)

    outcomes = sync.push(
        Operation(P, "PX", ItemAction.DELETE), Operation(C, "CX", ItemAction.ARCHIVE)
    )

    assert [(o.ok, o.action) for o in outcomes] == [
        (True, ItemAction.DELETE),
        (True, ItemAction.DELETE),
    ]
    assert all("nothing to remove" in (o.message or "") for o in outcomes)


def test_category_delete_and_archive_remove_the_collection(clock):
    """A category is deleted either way (collections cannot be archived), leaving its products."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    collection = emu.collection_by_ref("C1")
    assert collection is not None

    (outcome,) = sync.push(sync.op((C, "C1"), action=ItemAction.ARCHIVE))

    assert (outcome.ok, outcome.action) == (True, ItemAction.DELETE)
    assert "cannot be archived" in (outcome.message or "")
    assert emu.collections == {}
    product = emu.product_by_ref("P1")
    assert product is not None
    assert product.collections == []


def test_category_update_and_membership(clock):
    """A renamed category updates its collection; a product rendered after it joins it."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    sync.put(Item("C2", C, fields={"title": "Sale"}))
    sync.push(sync.op((C, "C2")))
    sync.put(Item("C1", C, fields={"title": {"en": "Running shoes", "es": "Zapatillas"}}))
    (renamed,) = sync.push(sync.op((C, "C1")))
    product_item = sync.items[(P, "P1")]
    sync.put(Item("P1", P, fields=dict(product_item.fields), parents=("C1", "C2")))

    sync.push(sync.op((P, "P1")))

    assert (renamed.ok, renamed.action) == (True, ItemAction.UPDATE)
    c1, c2 = emu.collection_by_ref("C1"), emu.collection_by_ref("C2")
    assert c1 is not None
    assert c2 is not None
    assert c1.title == "Running shoes"
    product = emu.product_by_ref("P1")
    assert product is not None
    assert product.collections == [c1.id, c2.id]


# -------------------------------------------------------------------------------------------------
# stock and translations
# -------------------------------------------------------------------------------------------------


def test_stock_is_left_alone_without_overwrite_stock(clock):
    """Without overwrite_stock nothing touches inventory."""
    emu, channel = make(clock)
    sync = Sync(channel, ConnectorParams(overwrite_stock=False))
    create_all(sync)

    assert emu.inventory == {}
    assert emu.calls["inventorySetQuantities"] == 0


def test_stock_change_is_sent_even_if_the_variant_is_not_carried(clock):
    """A known variant whose stock differs from the one last sent is overwritten (memo check)."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    sync.put(
        Item(
            "V2",
            V,
            fields={"options": {"Size": "42"}, "price": "99.90", "sku": "TS-42", "stock": 1},
            parents=("P1",),
        )
    )

    (outcome,) = sync.push(sync.op((P, "P1")))  # the caller forgot to carry V2

    product = emu.product_by_ref("P1")
    assert product is not None
    assert outcome.ok
    assert [emu.quantity(v.inventory_item_id) for v in product.variants] == [10, 11, 1]
    assert emu.calls["inventorySetQuantities"] == 1
    assert outcome.memo["v:V2"].endswith(" 1")


def test_stock_errors_land_on_their_variant(clock):
    """A refused quantity fails that variant (and the product), and is not remembered as sent."""
    emu, channel = make(clock)
    assert emu.calls["inventorySetQuantities"] == 0
    sync = Sync(channel)
    create_all(sync)
    ctx = sync.ctx()
    product = channel.render(sync.items[(P, "P1")], ctx)
    product["input"]["variants"][1]["inventoryQuantities"][0]["quantity"] = 2_000_000_000
    fragment = product["input"]["variants"][1]
    channel_id, memo = sync.state[(P, "P1")]
    carried = (
        Operation(
            V,
            "V1",
            ItemAction.UPDATE,
            payload=fragment,
            channel_id=sync.state[(V, "V1")][0],
            memo=sync.state[(V, "V1")][1],
        ),
    )
    op = Operation(
        P,
        "P1",
        ItemAction.UPDATE,
        payload=product,
        channel_id=channel_id,
        memo=memo,
        carried=carried,
    )

    head, variant = channel.push([op], sync.params)

    assert not head.ok
    assert [(e.code, e.field) for e in head.errors] == [
        ("INVALID_QUANTITY_TOO_HIGH", "variants[1].inventoryQuantities")
    ]
    assert [(e.kind, e.code, e.field) for e in variant.errors] == [
        (ErrorKind.CHANNEL, "INVALID_QUANTITY_TOO_HIGH", "inventoryQuantities")
    ]
    assert head.memo["v:V1"].count(" ") == 1  # ids kept, stock not remembered
    assert head.channel_id == channel_id
    assert emu.calls["inventorySetQuantities"] == 1


def test_stock_uses_change_from_null_and_idempotency_keys(clock):
    """Stock overwrites carry changeFromQuantity: null and an @idempotent key (required from 2026-04)."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    sent: list[dict[str, Any]] = []
    original = emu.handle

    def spy(request: httpx.Request) -> httpx.Response:
        body = request.read()
        if b"inventorySetQuantities" in body:
            import json

            sent.append(json.loads(body))
        return original(request)

    emu.handle = spy  # type: ignore[method-assign]
    sync.put(
        Item(
            "V0",
            V,
            fields={"options": {"Size": "40"}, "price": "99.90", "sku": "TS-40", "stock": 0},
            parents=("P1",),
        )
    )
    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0")))

    assert all(o.ok for o in outcomes)
    (body,) = sent
    assert body["variables"]["input"]["quantities"][0]["changeFromQuantity"] is None
    assert len(body["variables"]["idempotencyKey"]) == 36


def test_translations_skip_when_unchanged_and_follow_source_changes(clock):
    """Translations are registered once, skipped when unchanged, re-registered after an edit."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    registered = emu.calls["translationsRegister"]

    sync.put(
        Item(
            "V0",
            V,
            fields={"options": {"Size": "40"}, "price": "89.90", "sku": "TS-40", "stock": 10},
            parents=("P1",),
        )
    )
    sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0")))
    assert emu.calls["translationsRegister"] == registered

    fields = dict(sync.items[(P, "P1")].fields)
    fields["title"] = {"en": "Trail runner", "es": "Zapatilla de trail"}
    sync.put(Item("P1", P, fields=fields, parents=("C1",)))
    (outcome,) = sync.push(sync.op((P, "P1")))

    assert outcome.ok
    assert emu.calls["translationsRegister"] == registered + 1
    product = emu.product_by_ref("P1")
    assert product is not None
    assert emu.translations[(product.id, "es", "title")][0] == "Zapatilla de trail"


def test_translation_errors_and_warnings_are_reported(clock):
    """A disabled locale is a CHANNEL error on its field; a missing source text is a warning."""
    _emu, channel = make(clock)
    sync = Sync(channel)
    sync.put(
        Item(
            "P1",
            P,
            fields={"title": {"en": "Shoe", "it": "Scarpa"}, "product_type": {"es": "Calzado"}},
        )
    )

    (outcome,) = sync.push(sync.op((P, "P1")))

    assert not outcome.ok
    assert [(e.kind, e.code, e.field) for e in outcome.errors] == [
        (ErrorKind.CHANNEL, "INVALID_LOCALE_FOR_SHOP", "translations.it.title")
    ]
    assert [(w.code, w.field) for w in outcome.warnings] == [
        ("NOTHING_TO_TRANSLATE", "translations.es.product_type")
    ]
    assert outcome.channel_id is not None  # the product itself was set: a retry updates it


# -------------------------------------------------------------------------------------------------
# user errors and failures
# -------------------------------------------------------------------------------------------------


def test_user_errors_map_to_product_and_variant(clock):
    """A variant's user error lands on that variant (relative field) and on the product (full path)."""
    emu, channel = make(clock)
    sync = Sync(channel)
    catalog(sync)
    sync.put(Item("V1", V, fields={"options": {"Size": "41"}, "price": "-5"}, parents=("P1",)))
    op = Operation(
        P,
        "P1",
        ItemAction.CREATE,
        payload=channel.render(sync.items[(P, "P1")], sync.ctx()),
        carried=tuple(
            Operation(
                V, r, ItemAction.CREATE, payload=channel.render(sync.items[(V, r)], sync.ctx())
            )
            for r in ("V0", "V1")
        ),
    )

    outcomes = channel.push([op], sync.params)

    product, v0, v1 = outcomes
    assert not product.ok
    assert [(e.kind, e.code, e.field) for e in product.errors] == [
        (ErrorKind.CHANNEL, "INVALID_VARIANT", "variants[1].price")
    ]
    assert [(e.code, e.field) for e in v1.errors] == [("INVALID_VARIANT", "price")]
    assert not v0.ok
    assert v0.errors[0].code == "PRODUCT_FAILED"
    assert emu.products == {}


def test_handle_taken_is_a_channel_error(clock):
    """A handle another product uses is reported as Shopify's HANDLE_NOT_UNIQUE on ``handle``."""
    _emu, channel = make(clock)
    sync = Sync(channel)
    sync.put(
        Item("P1", P, fields={"title": "One", "handle": "same"}),
        Item("P2", P, fields={"title": "Two", "handle": "same"}),
    )

    first, second = sync.push(sync.op((P, "P1"))), sync.push(sync.op((P, "P2")))

    assert first[0].ok
    assert [(e.code, e.field) for e in second[0].errors] == [("HANDLE_NOT_UNIQUE", "handle")]


def test_transport_failures_become_item_errors(clock):
    """Persistent 503s and garbage answers fail the items with TRANSPORT errors; nothing raises."""
    faults = Faults(seed=1)
    _emu, channel = make(
        clock, emulator={"faults": faults}, retry=RetryPolicy(attempts=3, initial=0.1)
    )
    sync = Sync(channel)
    catalog(sync)
    faults.add(FaultKind.STATUS, status=503)

    outcomes = sync.push(sync.op((C, "C1")), sync.op((P, "P1"), carried=sync.carried("P1", "V0")))

    assert [(o.ref, o.ok) for o in outcomes] == [("C1", False), ("P1", False), ("V0", False)]
    assert {e.kind for o in outcomes for e in o.errors} == {ErrorKind.TRANSPORT}
    faults.clear()
    faults.add(FaultKind.NON_JSON)
    (garbage,) = sync.push(sync.op((C, "C1")))
    assert garbage.errors[0].kind is ErrorKind.TRANSPORT


def test_non_unique_custom_id_definition_blocks_upserts(clock):
    """A pre-existing custom-id definition without unique values blocks upserts with a clear error."""
    emu, channel = make(clock)
    emu.definitions[("PRODUCT", "catalogsync", "ref")] = {
        "id": "gid://shopify/MetafieldDefinition/9",
        "type": "single_line_text_field",
        "unique": False,
    }
    sync = Sync(channel)
    catalog(sync)

    product, category = sync.push(sync.op((P, "P1")), sync.op((C, "C1")))

    assert (product.ok, product.errors[0].code) == (False, "CUSTOM_ID_NOT_UNIQUE")
    assert category.ok
    assert emu.products == {}


# -------------------------------------------------------------------------------------------------
# idempotency
# -------------------------------------------------------------------------------------------------


def test_retry_after_a_crash_does_not_duplicate(clock):
    """Re-pushing a create whose result was never stored finds the product and collection by custom id."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    product = emu.product_by_ref("P1")
    assert product is not None
    ids = [v.id for v in product.variants]

    sync.state.clear()  # the crash: nothing was committed
    (category,) = sync.push(sync.op((C, "C1")))
    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0", "V1", "V2")))

    assert len(emu.products) == 1
    assert len(emu.collections) == 1
    assert (category.action, outcomes[0].action) == (ItemAction.UPDATE, ItemAction.UPDATE)
    assert [o.action for o in outcomes[1:]] == [ItemAction.UPDATE] * 3
    product = emu.product_by_ref("P1")
    assert product is not None
    assert [v.id for v in product.variants] == ids


def test_lost_answer_is_retried_without_duplicating(clock):
    """When productSet applies but its answer is lost, the transport's retry upserts the same product."""
    emu, channel = make(clock)
    sync = Sync(channel)
    catalog(sync)
    emu.lose_responses = 1

    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0", "V1", "V2")))

    assert all(o.ok for o in outcomes)
    assert len(emu.products) == 1
    assert channel.metrics.retries >= 1


def test_lost_collection_create_answer_is_not_an_error(clock):
    """A collectionCreate applied but unanswered: its retry finds the collection by custom id."""
    emu, channel = make(clock)
    sync = Sync(channel)
    catalog(sync)
    sync.push(sync.op((P, "P1")))  # the definitions exist now
    emu.lose_responses = 1

    (outcome,) = sync.push(sync.op((C, "C1")))

    assert (outcome.ok, outcome.action) == (True, ItemAction.CREATE), outcome.errors
    assert len(emu.collections) == 1
    assert outcome.channel_id in emu.collections
    assert emu.calls["collectionUpdate"] == 1  # the found collection is written once more


def test_stale_stored_ids_self_heal(clock):
    """A product deleted in the admin is re-created by custom id instead of failing forever."""
    emu, channel = make(clock)
    sync = Sync(channel)
    create_all(sync)
    product = emu.product_by_ref("P1")
    assert product is not None
    emu.delete_product(product.id)

    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0")))

    assert [(o.ok, o.action) for o in outcomes] == [
        (True, ItemAction.CREATE),
        (True, ItemAction.CREATE),
    ]
    assert len(emu.products) == 1


def test_handle_identity_without_custom_ids(clock):
    """With custom_id=None products upsert by handle; a crash-retry still does not duplicate."""
    emu, channel = make(clock, custom_id=None)
    sync = Sync(channel)
    sync.put(Item("P1", P, fields={"title": "Trail Shoe 2"}))

    sync.push(sync.op((P, "P1")))
    sync.state.clear()
    (again,) = sync.push(sync.op((P, "P1")))

    assert again.action is ItemAction.UPDATE
    assert [p.handle for p in emu.products.values()] == ["trail-shoe-2"]
    assert emu.definitions == {}


def test_custom_id_namespace_is_configurable(clock):
    """A custom namespace/key is used for the definitions and the metafields."""
    emu, channel = make(clock, custom_id=CustomId("pim", "code"))
    sync = Sync(channel)
    sync.put(Item("P1", P, fields={"title": "Shoe"}))

    sync.push(sync.op((P, "P1")))

    assert ("PRODUCT", "pim", "code") in emu.definitions
    assert emu.product_by_ref("P1", "pim", "code") is not None


# -------------------------------------------------------------------------------------------------
# pacing
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 429])
def test_low_restore_rate_finishes_without_failures(clock, status):
    """Throttled (200 + THROTTLED or 429) at 10 points/s, every item still succeeds near the limit."""
    emu, channel = make(
        clock,
        emulator={"bucket_size": 100, "restore_rate": 10, "throttle_status": status},
        concurrency=2,
    )
    sync = Sync(channel)
    ops = []
    for n in range(12):
        sync.put(Item(f"P{n}", P, fields={"title": f"Shoe {n}"}))
        for i in range(3):
            sync.put(
                Item(
                    f"P{n}V{i}",
                    V,
                    fields={"options": {"Size": str(i)}, "price": "1.00", "stock": i},
                    parents=(f"P{n}",),
                )
            )
    for n in range(12):
        ops.append(
            sync.op((P, f"P{n}"), carried=sync.carried(f"P{n}", *(f"P{n}V{i}" for i in range(3))))
        )
    emu.bucket.take(95)  # another app on the same shop spent the bucket: the client cannot know

    outcomes = sync.push(*ops)

    assert all(o.ok for o in outcomes)
    assert len(emu.products) == 12
    metrics = channel.metrics
    assert emu.throttles >= 1
    assert metrics.throttled == emu.throttles
    assert metrics.actual_cost == emu.cost_spent
    assert metrics.cost_rate == pytest.approx(emu.cost_spent / metrics.seconds)
    assert 0.7 * 10 <= metrics.cost_rate <= 10 * 1.05 + 100 / metrics.seconds


def test_concurrent_push_paces_a_shared_bucket():
    """Operations in flight share one bucket: however threads interleave, none is throttled."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for _ in range(3):
            clock = ManualClock()
            emu, channel = make(
                clock, emulator={"bucket_size": 200, "restore_rate": 20}, concurrency=4
            )
            sync = Sync(channel, ConnectorParams())
            for n in range(16):
                sync.put(Item(f"P{n}", P, fields={"title": f"Shoe {n}"}))

            outcomes = sync.push(*(sync.op((P, f"P{n}")) for n in range(16)))

            assert all(o.ok for o in outcomes)
            assert len(emu.products) == 16
            assert (emu.throttles, channel.metrics.throttled) == (0, 0)
            assert emu.cost_requested > 200  # more than the bucket held: pacing had to wait
            # one thread at a time sleeps for the shortfall: no oversleeping side by side
            assert 0 < clock.slept <= 1.1 * (emu.cost_requested - 200) / 20
    finally:
        sys.setswitchinterval(previous)


def test_pacing_keeps_a_rounding_margin(clock):
    """A request timed to the point Shopify reported (rounded) is not throttled by the rounding."""
    emu, channel = make(clock, emulator={"bucket_size": 100, "restore_rate": 33.3}, concurrency=1)
    sync = Sync(channel, ConnectorParams())
    for n in range(20):
        sync.put(Item(f"P{n}", P, fields={"title": f"Shoe {n}"}))

    outcomes = sync.push(*(sync.op((P, f"P{n}")) for n in range(20)))

    assert all(o.ok for o in outcomes)
    assert emu.cost_requested > 100
    assert emu.throttles == 0


def report(available: float, *, actual: float | None = 10, maximum: float = 100) -> Cost:
    """A cost report of Shopify's (restore rate 1 point/s)."""
    return Cost(requested=10, actual=actual, maximum=maximum, available=available, restore_rate=1)


def calibrated(clock: ManualClock, available: float = 90) -> _Pacer:
    """A pacer that has read one exact report (and kept its one-point rounding margin)."""
    pacer = _Pacer(clock)
    pacer.settle(pacer.take(10), report(available))
    assert pacer.bucket.available == available - 1
    return pacer


def test_a_report_nothing_overlapped_is_adopted_up_or_down(clock):
    """An answer no other request overlapped is exact: the estimate follows it either way."""
    pacer = calibrated(clock, 50)

    pacer.settle(pacer.take(10), report(95))
    up = pacer.bucket.available
    pacer.settle(pacer.take(10), report(20))

    assert (up, pacer.bucket.available) == (94, 19)


def test_out_of_order_answers_never_overstate_the_bucket(clock):
    """Answers read out of order: the estimate stays at or below what Shopify really holds."""
    pacer = calibrated(clock, 90)  # 89 after the margin
    a, b = pacer.take(10), pacer.take(10)
    # Shopify charged b, then a (80 left); a's answer is read first, then b's stale one (90).
    pacer.settle(a, report(80))
    after_a = pacer.bucket.available
    pacer.settle(b, report(90))

    assert after_a == 69  # 89 - 20: an overlapped report never raises the estimate
    assert pacer.bucket.available == 69
    assert pacer.bucket.available <= 80


def test_uncharged_points_come_back(clock):
    """What Shopify did not charge (unfilled connection slots, a refused query) is returned."""
    pacer = calibrated(clock, 90)
    a, b = pacer.take(30), pacer.take(10)
    pacer.settle(a, report(60, actual=12))  # overlapped by b: its own refund only
    pacer.settle(b, report(0, actual=None))  # refused (not charged): all of it comes back

    assert pacer.bucket.available == 89 - 40 + 18 + 10


def test_a_throttle_lowers_the_estimate_even_when_overlapped(clock):
    """Throttled although the estimate said go: another app spends, so the report counts."""
    pacer = calibrated(clock, 90)
    a, b = pacer.take(10), pacer.take(10)
    pacer.settle(a, report(5, actual=None), throttled=True)

    assert pacer.bucket.available == 5 - 10 - 1
    pacer.settle(b, report(5))
    assert pacer.bucket.available <= 5


def test_points_in_flight_never_exceed_the_bucket(clock):
    """A request that would put more than the bucket in flight waits for an answer, not time."""
    pacer = calibrated(clock, 100)  # 99 after the margin
    clock.advance(10)  # full again
    first = pacer.take(90)
    clock.advance(90)  # the estimate refills to 100, but 90 points are still on their way
    taken: list[Any] = []
    waiter = threading.Thread(target=lambda: taken.append(pacer.take(20)))
    waiter.start()
    waiter.join(0.2)

    assert taken == []
    assert clock.slept == 0
    pacer.settle(first, report(95, actual=90))
    waiter.join(5)
    assert len(taken) == 1
    assert clock.slept == 0


def test_requests_overlap_when_concurrent():
    """With concurrency, requests are really in flight together (real clock, emulated latency)."""
    emu = ShopifyEmulator(schema=schema_path(), access_tokens=[TOKEN], latency=0.05)
    active, peak = [0], [0]
    original = emu.handle

    def counting(request: httpx.Request) -> httpx.Response:
        return original(request)

    def dispatch(request: httpx.Request, *, in_process: bool) -> httpx.Response:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            return ShopifyEmulator._dispatch(emu, request, in_process=in_process)
        finally:
            active[0] -= 1

    emu._dispatch = dispatch  # type: ignore[method-assign]
    emu.handle = counting  # type: ignore[method-assign]
    store = ShopifyStore("emulated", StaticToken(Secret(TOKEN)), base_url=emu.base_url)
    channel = ShopifyChannel(store, client=emu.client(), concurrency=4)
    ops = [
        Operation(
            C,
            f"C{n}",
            ItemAction.CREATE,
            payload={"input": {"title": f"C{n}", "metafields": [CustomId().as_metafield(f"C{n}")]}},
        )
        for n in range(8)
    ]

    outcomes = channel.push(ops, ConnectorParams())

    assert all(o.ok for o in outcomes)
    assert peak[0] >= 2


# -------------------------------------------------------------------------------------------------
# connection, versions, auth, secrets, test mode
# -------------------------------------------------------------------------------------------------


def test_check_connection_reports_the_shop(clock):
    """The probe returns the pinned and served versions, the endpoint and the shop details."""
    emu, channel = make(clock)

    info = channel.check_connection(ConnectorParams(overwrite_stock=True))

    assert (info.api_version, info.served_version, info.deprecation) == ("2026-10", "2026-10", None)
    assert info.endpoint is Endpoint.PRODUCTION
    assert info.details == {
        "shop": "emulated.myshopify.com",
        "name": "Emulated shop",
        "location": LOCATION,
    }
    assert emu.calls["shop"] == 1


def test_check_connection_catches_configuration_errors(clock):
    """overwrite_stock without a location, an unknown location, or TEST without a dev store fail early."""
    emu = ShopifyEmulator(schema=schema_path(), clock=clock, access_tokens=[TOKEN])
    bare = ShopifyChannel(
        ShopifyStore("emulated", StaticToken(Secret(TOKEN)), base_url=emu.base_url),
        client=emu.client(),
        clock=clock,
    )
    wrong = ShopifyChannel(
        ShopifyStore(
            "emulated",
            StaticToken(Secret(TOKEN)),
            location_id="gid://shopify/Location/99",
            base_url=emu.base_url,
        ),
        client=emu.client(),
        clock=clock,
    )

    with pytest.raises(ChannelError, match="needs a location"):
        bare.check_connection(ConnectorParams(overwrite_stock=True))
    with pytest.raises(ChannelError, match="does not exist"):
        wrong.check_connection(ConnectorParams())
    with pytest.raises(ChannelError, match="development store"):
        bare.check_connection(ConnectorParams(mode="test"))


def test_version_fall_forward_is_reported(clock):
    """A pin Shopify no longer serves is answered by a newer version: reported, and still works."""
    emu, channel = make(
        clock,
        api_version="2026-01",
        emulator={"supported_versions": ["2026-10"], "schema": {"2026-10": schema_path("2026-10")}},
    )

    info = channel.check_connection(ConnectorParams())
    sync = Sync(channel)
    catalog(sync, variants=1)
    outcomes = sync.push(sync.op((C, "C1")), sync.op((P, "P1"), carried=sync.carried("P1", "V0")))

    assert (info.api_version, info.served_version) == ("2026-01", "2026-10")
    assert info.deprecation is not None
    assert "fell forward" in info.deprecation
    assert all(o.ok for o in outcomes)
    assert channel.served_version() == "2026-10"
    assert emu.versions[-1] == ("2026-01", "2026-10")


def test_deprecation_header_becomes_the_warning(clock):
    """X-Shopify-API-Deprecated-Reason is surfaced as the connection's deprecation warning."""
    _emu, channel = make(clock, emulator={"deprecated_reason": "Shop.products"})

    info = channel.check_connection(ConnectorParams())

    assert info.deprecation == "Shopify reports deprecated API use: Shop.products"


def test_old_pin_documents_trip_the_deprecation_header(clock):
    """Served 2026-10, a 2026-01 pin's collection documents are flagged as deprecated use."""
    _emu, channel = make(
        clock,
        api_version="2026-01",
        emulator={
            "schema": {"2026-01": schema_path("2026-01"), "2026-10": schema_path("2026-10")},
            "supported_versions": ["2026-10"],
        },
    )
    sync = Sync(channel)
    sync.put(Item("C1", C, fields={"title": "Shoes"}))

    with CaptureLogs("catalogsync.channels.shopify") as records:
        (outcome,) = sync.push(sync.op((C, "C1")))

    assert outcome.ok
    assert any("Mutation.collectionCreate.input" in r.getMessage() for r in records)


def test_rejected_token_raises_auth_error(clock):
    """A 401 raises ChannelAuthError from check_connection and push, with a clear, secret-free message."""
    _emu, channel = make(clock, token=StaticToken(Secret("shpat_wrong_token_0002")))
    sync = Sync(channel)
    sync.put(Item("C1", C, fields={"title": "Shoes"}))

    with pytest.raises(ChannelAuthError) as probe:
        channel.check_connection(ConnectorParams())
    with pytest.raises(ChannelAuthError):
        sync.push(sync.op((C, "C1")))

    message = str(probe.value)
    assert "rejected the access token for emulated.myshopify.com" in message
    assert "shpat_wrong_token_0002" not in message
    assert probe.value.status_code == 401


def test_client_credentials_refresh_before_expiry(clock):
    """Client-credentials tokens are fetched once, refreshed before expiry, and after a revocation."""
    provider = ClientCredentials("app-1", Secret("client-secret-value-01"), refresh_margin=300)
    emu, channel = make(
        clock,
        token=provider,
        emulator={
            "client_credentials": {"app-1": "client-secret-value-01"},
            "token_ttl": 3600,
            "access_tokens": [],
        },
    )

    channel.check_connection(ConnectorParams())
    clock.advance(3000)
    channel.check_connection(ConnectorParams())
    assert provider.fetches == 1
    clock.advance(400)  # inside the refresh margin
    channel.check_connection(ConnectorParams())
    assert provider.fetches == 2

    for token in list(emu._issued):
        emu.revoke(token)
    channel.check_connection(ConnectorParams())
    assert provider.fetches == 3


def test_bad_client_credentials_raise_auth_error(clock):
    """A wrong client secret raises ChannelAuthError naming the OAuth error, never the secret."""
    provider = ClientCredentials("app-1", Secret("wrong-client-secret-9"))
    _emu, channel = make(
        clock, token=provider, emulator={"client_credentials": {"app-1": "right-client-secret-1"}}
    )

    with pytest.raises(ChannelAuthError, match="invalid_client") as info:
        channel.check_connection(ConnectorParams())

    assert "wrong-client-secret-9" not in str(info.value)


def test_secrets_never_reach_logs_reprs_or_errors(clock, caplog):
    """Tokens and client secrets are absent from every log record, repr and error."""
    caplog.set_level(logging.DEBUG)
    secrets = ["shpat_emulated_token_0001", "client-secret-value-01", "shpat_wrong_token_0002"]
    provider = ClientCredentials("app-1", Secret("client-secret-value-01"))
    _emu, channel = make(
        clock, emulator={"client_credentials": {"app-1": "client-secret-value-01"}}
    )
    sync = Sync(channel)
    create_all(sync, variants=1)
    _, bad = make(clock, token=StaticToken(Secret("shpat_wrong_token_0002")))
    with pytest.raises(ChannelAuthError) as auth:
        bad.check_connection(ConnectorParams())
    _, cc = make(
        clock, token=provider, emulator={"client_credentials": {"app-1": "client-secret-value-01"}}
    )
    cc.check_connection(ConnectorParams())
    issued = [str(t) for t in [provider._token]]

    texts = [
        caplog.text,
        repr(channel),
        repr(bad),
        repr(cc),
        repr(provider),
        repr(channel._sessions[Mode.PRODUCTION].store),
        str(auth.value),
        repr(auth.value),
    ]
    texts += [repr(o) for o in sync.push(sync.op((P, "P1")))]
    for secret in secrets:
        assert all(secret not in t for t in texts), secret
    assert issued == ["********"]


def test_test_mode_goes_to_the_development_store(clock):
    """mode=TEST pushes to the configured development store and flags outcomes TEST."""
    prod = ShopifyEmulator(
        schema=schema_path(), clock=clock, access_tokens=[TOKEN], shop="acme.myshopify.com"
    )
    dev = ShopifyEmulator(
        schema=schema_path(),
        clock=clock,
        access_tokens=["shpat_dev_store_0003"],
        shop="acme-dev.myshopify.com",
    )
    client = httpx.Client(
        mounts={
            "all://acme.myshopify.com": httpx.MockTransport(prod),
            "all://acme-dev.myshopify.com": httpx.MockTransport(dev),
        }
    )
    channel = ShopifyChannel(
        ShopifyStore("acme", StaticToken(Secret(TOKEN))),
        test_store=ShopifyStore("acme-dev", StaticToken(Secret("shpat_dev_store_0003"))),
        client=client,
        clock=clock,
    )
    params = ConnectorParams(mode="test")

    info = channel.check_connection(params)
    (outcome,) = channel.push(
        [
            Operation(
                C,
                "C1",
                ItemAction.CREATE,
                payload={
                    "input": {"title": "Shoes", "metafields": [CustomId().as_metafield("C1")]}
                },
            )
        ],
        params,
    )

    assert info.endpoint is Endpoint.TEST
    assert info.details["shop"] == "acme-dev.myshopify.com"
    assert (outcome.ok, outcome.endpoint) == (True, Endpoint.TEST)
    assert outcome.channel_url is not None
    assert outcome.channel_url.startswith("https://acme-dev.myshopify.com/admin/collections/")
    assert len(dev.collections) == 1
    assert prod.collections == {}


def test_test_mode_products_join_collections_found_by_custom_id(clock):
    """A development store gets no stored collection ids: products find their collections."""
    emu = ShopifyEmulator(schema=schema_path(), clock=clock, access_tokens=[TOKEN])
    dev = ShopifyStore(
        "acme-dev", StaticToken(Secret(TOKEN)), location_id=LOCATION, base_url=emu.base_url
    )
    channel = ShopifyChannel(
        ShopifyStore("acme", StaticToken(Secret(TOKEN))),
        test_store=dev,
        client=emu.client(),
        clock=clock,
    )
    sync = Sync(channel, ConnectorParams(mode="test"))
    catalog(sync, variants=1)
    (category,) = sync.push(sync.op((C, "C1")))
    sync.state.clear()  # test runs store nothing: the product's payload names no collection
    assert sync.payload((P, "P1"))["input"]["collections"] == []

    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", "V0")))

    assert all(o.ok and o.endpoint is Endpoint.TEST for o in outcomes)
    product = emu.product_by_ref("P1")
    assert product is not None
    assert product.collections == [category.channel_id]


def test_push_without_a_test_store_raises(clock):
    """A TEST push without a development store is a configuration error, not item errors."""
    _emu, channel = make(clock)

    with pytest.raises(ChannelError, match="development store"):
        channel.push([Operation(C, "C1", ItemAction.DELETE)], ConnectorParams(mode="test"))


def test_over_a_real_loopback_port():
    """The channel works against the emulator over real sockets, too."""
    emu = ShopifyEmulator(schema=schema_path(), access_tokens=[TOKEN])
    with emu.serve() as url, httpx.Client(timeout=5) as client:
        channel = ShopifyChannel(
            ShopifyStore("emulated", StaticToken(Secret(TOKEN)), base_url=url), client=client
        )
        info = channel.check_connection(ConnectorParams())
        (outcome,) = channel.push(
            [
                Operation(
                    C,
                    "C1",
                    ItemAction.CREATE,
                    payload={
                        "input": {"title": "Shoes", "metafields": [CustomId().as_metafield("C1")]}
                    },
                )
            ],
            ConnectorParams(),
        )

    assert info.details["shop"] == "emulated.myshopify.com"
    assert outcome.ok


def test_many_variants_are_paged(clock):
    """A product with more variants than one page is mapped completely (pages follow productSet)."""
    emu, channel = make(clock, emulator={"bucket_size": 1000, "restore_rate": 1000})
    sync = Sync(channel, ConnectorParams())
    sync.put(Item("P1", P, fields={"title": "Big"}))
    refs = []
    for a in range(20):
        for b in range(15):
            ref = f"V{a}-{b}"
            refs.append(ref)
            sync.put(
                Item(
                    ref,
                    V,
                    fields={"options": {"A": str(a), "B": str(b)}, "price": "1.00"},
                    parents=("P1",),
                )
            )

    outcomes = sync.push(sync.op((P, "P1"), carried=sync.carried("P1", *refs)))

    assert all(o.ok for o in outcomes)
    assert len({o.channel_id for o in outcomes[1:]}) == 300
    assert emu.calls["product"] >= 1  # the variants page query


def test_channel_satisfies_the_protocol(clock):
    """ShopifyChannel is a catalogsync Channel with the capabilities the synchronizer relies on."""
    from catalogsync import Channel

    _emu, channel = make(clock)

    assert isinstance(channel, Channel)
    assert channel.capabilities.carried == {V: P}
    assert channel.capabilities.reads == {(P, V), (P, C)}
    assert channel.capabilities.reads_ids == {(P, C)}  # a product lists its collections' GIDs
    assert channel.capabilities.removals == {ItemAction.DELETE, ItemAction.ARCHIVE}


def test_standalone_variant_operations_are_refused(clock):
    """Variants travel inside their product; a standalone variant operation fails clearly."""
    _emu, channel = make(clock)

    (outcome,) = channel.push(
        [Operation(V, "V1", ItemAction.UPDATE, payload={})], ConnectorParams()
    )

    assert (outcome.ok, outcome.errors[0].code) == (False, "NOT_CARRIED")


class CaptureLogs:
    """Collect the records of a logger within a block."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append  # type: ignore[method-assign]

    def __enter__(self) -> list[logging.LogRecord]:
        self.logger.addHandler(self.handler)
        return self.records

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
