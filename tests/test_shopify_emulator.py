"""The Shopify emulator on its own: wire format, validation, semantics, cost bucket, auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from catalogsync.channels.shopify import CustomId
from catalogsync.channels.shopify import _sansio as s
from catalogsync.testing import ManualClock, ShopifyEmulator

from _support import contracts_dir, require


TOKEN = "shpat_emulated"
LOCATION = "gid://shopify/Location/1"


def schema_path(version: str = "2026-10") -> str:
    path = contracts_dir() / "shopify" / f"admin_{version}.json.gz"
    require(path.exists(), f"the official Shopify schema {path} is not available")
    return str(path)


def gql(
    emu: ShopifyEmulator,
    request: s.GraphQLRequest | str,
    variables: dict[str, Any] | None = None,
    *,
    version: str = "2026-10",
    token: str = TOKEN,
) -> httpx.Response:
    """Post one GraphQL request to the emulator in-process."""
    if isinstance(request, str):
        body: dict[str, Any] = {"query": request, "variables": variables or {}}
    else:
        body = {
            "query": request.document,
            "variables": dict(request.variables),
            "operationName": request.operation,
        }
    with emu.client() as client:
        return client.post(
            f"/admin/api/{version}/graphql.json",
            json=body,
            headers={"X-Shopify-Access-Token": token},
        )


def definitions(emu: ShopifyEmulator) -> None:
    for owner in ("PRODUCT", "COLLECTION"):
        assert (
            gql(emu, s.definition_create(CustomId(), owner)).json()["data"][
                "metafieldDefinitionCreate"
            ]["userErrors"]
            == []
        )


def product_input(ref: str, *sizes: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": f"Shoe {ref}",
        "productOptions": [{"name": "Size", "values": [{"name": x} for x in sizes]}],
        "variants": [
            {"optionValues": [{"optionName": "Size", "name": x}], "price": "10.00"} for x in sizes
        ],
        "metafields": [CustomId().as_metafield(ref)],
        **extra,
    }


def set_product(emu: ShopifyEmulator, ref: str, *sizes: str, **extra: Any) -> dict[str, Any]:
    response = gql(
        emu,
        s.product_set(
            product_input(ref, *sizes, **extra), {"customId": CustomId().as_input(ref)}, first=10
        ),
    )
    return response.json()["data"]["productSet"]


@pytest.fixture
def emu(clock: ManualClock) -> ShopifyEmulator:
    emulator = ShopifyEmulator(schema=schema_path(), clock=clock)
    definitions(emulator)
    return emulator


def test_rejects_documents_the_schema_rejects(emu):
    """A misspelt field is answered 200 with GraphQL validation errors; nothing runs."""
    response = gql(emu, "query { shop { nmae } }")

    assert response.status_code == 200
    assert "nmae" in response.json()["errors"][0]["message"]
    assert emu.calls["shop"] == 0


def test_rejects_variables_the_schema_rejects(emu):
    """Variables are coerced like Shopify does: an unknown enum value is an error."""
    response = gql(
        emu,
        s.product_archive("gid://shopify/Product/1").document,
        {"product": {"id": "gid://shopify/Product/1", "status": "LIVE"}},
    )

    assert "LIVE" in response.json()["errors"][0]["message"]


def test_works_without_a_schema_and_rejects_unknown_roots(clock):
    """Without a schema the emulator still honours documents, and refuses unknown root fields."""
    emu = ShopifyEmulator(clock=clock)

    ok = gql(emu, "query Q { s: shop { name ... on Shop { myshopifyDomain } } }").json()
    bad = gql(emu, "query { shops { name } }").json()

    assert ok["data"] == {
        "s": {"name": "Emulated shop", "myshopifyDomain": "emulated.myshopify.com"}
    }
    assert bad["errors"][0]["message"] == "Field 'shops' doesn't exist on type 'QueryRoot'"


def test_bad_token_is_401(emu):
    """An unknown token gets Shopify's 401 body and authenticate header."""
    response = gql(emu, "{ shop { name } }", token="shpat_nope")

    assert response.status_code == 401
    assert response.json()["errors"].startswith("[API] Invalid API key")
    assert "Shopify API Authentication" in response.headers["www-authenticate"]


def test_client_credentials_grant_and_expiry(clock):
    """The grant issues tokens (form or JSON) that expire on the emulator's clock."""
    emu = ShopifyEmulator(clock=clock, client_credentials={"app": "secret"}, token_ttl=60)
    with emu.client() as client:
        form = client.post(
            "/admin/oauth/access_token",
            data={
                "grant_type": "client_credentials",
                "client_id": "app",
                "client_secret": "secret",
            },
        )
        as_json = client.post(
            "/admin/oauth/access_token",
            json={
                "grant_type": "client_credentials",
                "client_id": "app",
                "client_secret": "secret",
            },
        )
        wrong = client.post(
            "/admin/oauth/access_token",
            data={"grant_type": "client_credentials", "client_id": "app", "client_secret": "x"},
        )
    token = form.json()["access_token"]

    assert (form.status_code, as_json.status_code, wrong.status_code) == (200, 200, 400)
    assert wrong.json()["error"] == "invalid_client"
    assert gql(emu, "{ shop { name } }", token=token).status_code == 200
    clock.advance(61)
    assert gql(emu, "{ shop { name } }", token=token).status_code == 401


def test_versions_fall_forward(clock):
    """A version that is not served is answered by the oldest supported one, in the header."""
    emu = ShopifyEmulator(
        clock=clock, supported_versions=["2026-07", "2026-10"], deprecated_reason="Shop.products"
    )

    response = gql(emu, "{ shop { name } }", version="2025-10")

    assert response.headers["x-shopify-api-version"] == "2026-07"
    assert response.headers["x-shopify-api-deprecated-reason"] == "Shop.products"
    assert emu.versions == [("2025-10", "2026-07")]


@pytest.mark.parametrize("status", [200, 429])
def test_throttles_in_both_forms(clock, status):
    """Over the bucket, the answer is THROTTLED with the cost extension, as 200 or 429."""
    emu = ShopifyEmulator(clock=clock, bucket_size=20, restore_rate=5, throttle_status=status)
    emu.bucket.take(15)

    response = gql(emu, s.product_archive("gid://shopify/Product/1"))

    body = response.json()
    assert response.status_code == status
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    cost = body["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (12, None)
    assert cost["throttleStatus"] == {
        "maximumAvailable": 20.0,
        "currentlyAvailable": 5.0,
        "restoreRate": 5.0,
    }
    assert emu.throttles == 1
    assert s.classify(response).wait == pytest.approx((12 - 5) / 5)
    clock.advance(1.5)
    assert gql(emu, s.product_archive("gid://shopify/Product/1")).status_code == 200


def test_single_query_cost_cap(clock):
    """A query asking for more than 1,000 points is refused with MAX_COST_EXCEEDED."""
    emu = ShopifyEmulator(clock=clock)

    body = gql(emu, s.variants_page("gid://shopify/Product/1", first=400, after=None)).json()

    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["errors"][0]["message"].startswith("Query cost is 1204,")


def test_actual_cost_refunds_unfilled_connection_slots(emu):
    """The actual cost charges only the variants returned; the rest is refunded."""
    created = set_product(emu, "P1", "S", "M")
    spent = emu.cost_spent

    body = gql(emu, s.variants_page(created["product"]["id"], first=250, after=None)).json()

    assert body["extensions"]["cost"]["requestedQueryCost"] == 4 + 3 * 250
    assert body["extensions"]["cost"]["actualQueryCost"] == 4 + 3 * 2
    assert emu.cost_spent - spent == 10


def test_product_set_replaces_lists(emu):
    """ProductSet replaces variants, collections, metafields and tags whole; ids survive a resend."""
    c1 = gql(
        emu,
        s.collection_create(
            {"title": "A", "metafields": [CustomId().as_metafield("C1")]}, api_version="2026-10"
        ),
    ).json()["data"]["collectionCreate"]["collection"]["id"]
    c2 = gql(
        emu,
        s.collection_create(
            {"title": "B", "metafields": [CustomId().as_metafield("C2")]}, api_version="2026-10"
        ),
    ).json()["data"]["collectionCreate"]["collection"]["id"]
    first = set_product(emu, "P1", "S", "M", "L", collections=[c1, c2], tags=["x", "y"])
    product = emu.product_by_ref("P1")
    assert product is not None
    kept = product.variants[0].id

    second = set_product(emu, "P1", "S", "XL", collections=[c2], tags=["z"])

    assert second["userErrors"] == []
    assert second["product"]["id"] == first["product"]["id"]
    product = emu.product_by_ref("P1")
    assert product is not None
    assert [v.options["Size"] for v in product.variants] == ["S", "XL"]
    assert product.variants[0].id == kept
    assert product.collections == [c2]
    assert product.tags == ["z"]
    assert emu.members(c1) == []


def test_custom_ids_are_unique_and_must_match(emu):
    """Two products cannot share a custom id, and the input's custom id must match the identifier."""
    set_product(emu, "P1", "S")
    clash = gql(emu, s.product_set(product_input("P1", "S"), None, first=1)).json()["data"][
        "productSet"
    ]
    mismatch = gql(
        emu,
        s.product_set(product_input("P2", "S"), {"customId": CustomId().as_input("P3")}, first=1),
    ).json()["data"]["productSet"]

    assert clash["userErrors"][0]["code"] == "DUPLICATED_METAFIELD_VALUE"
    assert mismatch["userErrors"][0]["code"] == "METAFIELD_MISMATCH"
    assert len(emu.products) == 1


def test_product_set_user_errors(emu):
    """Shopify-style user errors come with field paths and codes, and nothing is applied."""
    bad = product_input("P1", "S", "S")
    bad["variants"][0]["price"] = "-1"
    bad["variants"].append({"optionValues": [{"optionName": "Colour", "name": "Red"}]})

    errors = gql(emu, s.product_set(bad, None, first=1)).json()["data"]["productSet"]["userErrors"]

    found = {(tuple(e["field"]), e["code"]) for e in errors}
    assert (("input", "variants", "0", "price"), "INVALID_VARIANT") in found
    assert (("input", "variants", "1", "optionValues"), "INVALID_VARIANT") in found
    assert (("input", "variants", "2", "optionValues"), "OPTION_VALUES_MISSING") in found
    assert (("input", "variants", "2", "optionValues"), "OPTION_DOES_NOT_EXIST") in found
    assert emu.products == {}


def _stock(emu: ShopifyEmulator) -> str:
    bad = product_input("P1", "S")
    bad["variants"][0]["inventoryQuantities"] = [
        {"locationId": LOCATION, "name": "available", "quantity": 5}
    ]
    set_product_response = gql(
        emu, s.product_set(bad, {"customId": CustomId().as_input("P1")}, first=1)
    ).json()
    return set_product_response["data"]["productSet"]["product"]["variants"]["nodes"][0][
        "inventoryItem"
    ]["id"]


def test_inventory_idempotency_keys(emu):
    """A replayed key is applied once; the same key with other quantities is refused."""
    item = _stock(emu)
    request = s.inventory_set([(item, LOCATION, 8)], idempotency_key="key-1")

    gql(emu, request)
    emu.inventory[(item, LOCATION)] = 2  # a sale happens
    replay = gql(emu, request).json()["data"]["inventorySetQuantities"]
    other = gql(emu, s.inventory_set([(item, LOCATION, 9)], idempotency_key="key-1")).json()[
        "data"
    ]["inventorySetQuantities"]

    assert replay["userErrors"] == []
    assert emu.quantity(item) == 2
    assert other["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


def test_inventory_compare_rules(emu):
    """ChangeFromQuantity is required from 2026-04; a stale value is refused; @idempotent is required."""
    item = _stock(emu)
    document = s.INVENTORY_SET
    base = {
        "name": "available",
        "reason": "correction",
        "quantities": [{"inventoryItemId": item, "locationId": LOCATION, "quantity": 1}],
    }

    missing = gql(emu, document, {"input": base, "idempotencyKey": "a"}).json()["data"][
        "inventorySetQuantities"
    ]
    stale_input = {**base, "quantities": [{**base["quantities"][0], "changeFromQuantity": 99}]}
    stale = gql(emu, document, {"input": stale_input, "idempotencyKey": "b"}).json()["data"][
        "inventorySetQuantities"
    ]
    no_key = gql(
        emu,
        "mutation M($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) { userErrors { code } } }",
        {"input": base},
    ).json()

    assert missing["userErrors"][0]["code"] == "COMPARE_QUANTITY_REQUIRED"
    assert stale["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert "@idempotent" in no_key["errors"][0]["message"]
    assert emu.quantity(item) == 5


def test_translations_need_current_digests(emu):
    """A translation quoting an old digest is refused; after a title change translations are outdated."""
    product_id = set_product(emu, "P1", "S")["product"]["id"]
    content = s.read_translatable(s.read_response(gql(emu, s.translatable_query(product_id))))
    assert content is not None
    digest = {c.key: c.digest for c in content}["title"]

    ok = gql(
        emu,
        s.translations_register(
            product_id,
            [
                {
                    "key": "title",
                    "locale": "es",
                    "value": "Zapato",
                    "translatableContentDigest": digest,
                }
            ],
        ),
    ).json()
    set_product(emu, "P1", "S", title="Renamed")
    stale = gql(
        emu,
        s.translations_register(
            product_id,
            [
                {
                    "key": "title",
                    "locale": "es",
                    "value": "Zapato",
                    "translatableContentDigest": digest,
                }
            ],
        ),
    ).json()
    outdated = gql(
        emu,
        'query Q($id: ID!) { translatableResource(resourceId: $id) { translations(locale: "es") { key outdated } } }',
        {"id": product_id},
    ).json()

    assert ok["data"]["translationsRegister"]["userErrors"] == []
    assert (
        stale["data"]["translationsRegister"]["userErrors"][0]["code"]
        == "INVALID_TRANSLATABLE_CONTENT"
    )
    assert outdated["data"]["translatableResource"]["translations"] == [
        {"key": "title", "outdated": True}
    ]


def test_deprecated_use_is_reported_in_the_header(clock):
    """Deprecated fields and arguments the document uses are listed in the deprecation header."""
    emu = ShopifyEmulator(schema=schema_path(), clock=clock)

    response = gql(emu, s.collection_create({"title": "A"}, api_version="2026-01"))

    assert response.headers["x-shopify-api-deprecated-reason"] == "Mutation.collectionCreate.input"
    assert response.json()["data"]["collectionCreate"]["userErrors"] == []


# -- the emulator's indexes: lookups follow every change ---------------------------------------


def _data(response: httpx.Response, root: str) -> Any:
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"][root]


def _product_id(emu: ShopifyEmulator, identifier: dict[str, Any]) -> str | None:
    found = _data(gql(emu, s.product_lookup(identifier, first=1)), "productByIdentifier")
    return None if found is None else str(found["id"])


def _collection_id(emu: ShopifyEmulator, identifier: dict[str, Any]) -> str | None:
    found = _data(gql(emu, s.collection_lookup(identifier)), "collectionByIdentifier")
    return None if found is None else str(found["id"])


def _create_collection(emu: ShopifyEmulator, **fields: Any) -> dict[str, Any]:
    created = _data(
        gql(emu, s.collection_create(fields, api_version="2026-10")), "collectionCreate"
    )
    assert created["userErrors"] == []
    return dict(created["collection"])


def _delete_product(emu: ShopifyEmulator, product_id: str) -> None:
    deleted = _data(gql(emu, s.product_delete(product_id)), "productDelete")
    assert deleted["deletedProductId"] == product_id


def _set_quantity(emu: ShopifyEmulator, item: str, key: str) -> list[dict[str, Any]]:
    answer = _data(
        gql(emu, s.inventory_set([(item, LOCATION, 3)], idempotency_key=key)),
        "inventorySetQuantities",
    )
    return list(answer["userErrors"])


def test_a_changed_custom_id_frees_the_old_value_and_takes_the_new(emu):
    """Lookups by custom id follow a product whose unique metafield value changed."""
    pid = set_product(emu, "P1", "S")["product"]["id"]
    changed = _data(
        gql(
            emu,
            s.product_set({"metafields": [CustomId().as_metafield("P9")]}, {"id": pid}, first=1),
        ),
        "productSet",
    )
    assert changed["userErrors"] == []

    assert _product_id(emu, {"customId": CustomId().as_input("P1")}) is None
    assert _product_id(emu, {"customId": CustomId().as_input("P9")}) == pid
    assert emu.product_by_ref("P1") is None
    again = set_product(emu, "P1", "S")
    assert again["userErrors"] == []
    assert again["product"]["id"] != pid
    clash = _data(gql(emu, s.product_set(product_input("P9", "S"), None, first=1)), "productSet")
    assert clash["userErrors"] == [
        {
            "field": ["input", "metafields", "0", "value"],
            "message": f"Value is already taken by {pid}",
            "code": "DUPLICATED_METAFIELD_VALUE",
        }
    ]
    assert len(emu.products) == 2


def test_a_deleted_product_frees_its_handle_custom_id_collections_and_items(emu):
    """After productDelete nothing finds the product, and its handle and custom id can be reused."""
    cid = _create_collection(emu, title="Shoes")["id"]
    first = set_product(emu, "P1", "S", handle="trail", collections=[cid])["product"]
    second = set_product(emu, "P2", "S", collections=[cid])["product"]
    item = first["variants"]["nodes"][0]["inventoryItem"]["id"]
    assert emu.members(cid) == [first["id"], second["id"]]

    _delete_product(emu, first["id"])

    assert emu.members(cid) == [second["id"]]
    assert _product_id(emu, {"handle": "trail"}) is None
    assert _product_id(emu, {"customId": CustomId().as_input("P1")}) is None
    assert _set_quantity(emu, item, "gone")[0]["code"] == "INVALID_INVENTORY_ITEM"
    third = set_product(emu, "P1", "S", handle="trail", collections=[cid])
    assert third["userErrors"] == []
    assert third["product"]["handle"] == "trail"
    assert _product_id(emu, {"handle": "trail"}) == third["product"]["id"]
    assert emu.members(cid) == [second["id"], third["product"]["id"]]


def test_a_renamed_collection_handle_moves_its_lookups(emu):
    """CollectionUpdate moves the handle: the old one is free, the new one is taken."""
    sale = _create_collection(emu, title="Sale")
    assert sale["handle"] == "sale"
    other = _create_collection(emu, title="Other")

    renamed = _data(
        gql(emu, s.collection_update(sale["id"], {"handle": "deals"}, api_version="2026-10")),
        "collectionUpdate",
    )
    assert renamed["userErrors"] == []

    assert _collection_id(emu, {"handle": "sale"}) is None
    assert _collection_id(emu, {"handle": "deals"}) == sale["id"]
    taken = _data(
        gql(emu, s.collection_update(other["id"], {"handle": "deals"}, api_version="2026-10")),
        "collectionUpdate",
    )
    assert taken["userErrors"] == [
        {"field": ["handle"], "message": "Handle 'deals' has already been taken"}
    ]
    assert _create_collection(emu, title="Sale")["handle"] == "sale"
    assert _create_collection(emu, title="Deals")["handle"] == "deals-1"


def test_a_collection_custom_id_follows_updates(emu):
    """A collection's unique metafield value, once changed, finds it and frees the old value."""
    old = _create_collection(emu, title="A", metafields=[CustomId().as_metafield("C1")])["id"]
    gql(
        emu,
        s.collection_update(
            old, {"metafields": [CustomId().as_metafield("C2")]}, api_version="2026-10"
        ),
    )

    assert _collection_id(emu, {"customId": CustomId().as_input("C1")}) is None
    assert _collection_id(emu, {"customId": CustomId().as_input("C2")}) == old
    new = _create_collection(emu, title="B", metafields=[CustomId().as_metafield("C1")])["id"]
    found = emu.collection_by_ref("C1")
    assert found is not None
    assert found.id == new
    clash = _data(
        gql(
            emu,
            s.collection_create(
                {"title": "C", "metafields": [CustomId().as_metafield("C2")]},
                api_version="2026-10",
            ),
        ),
        "collectionCreate",
    )
    assert clash["userErrors"][0]["message"] == f"Value is already taken by {old}"


def test_free_handles_are_found_again_after_deletions(emu):
    """Generated handles take the first free suffix, including ones freed by deletions."""
    ids = [set_product(emu, f"P{n}", "S", title="Shoe")["product"] for n in range(3)]
    assert [p["handle"] for p in ids] == ["shoe", "shoe-1", "shoe-2"]

    _delete_product(emu, ids[1]["id"])
    assert set_product(emu, "P3", "S", title="Shoe")["product"]["handle"] == "shoe-1"
    _delete_product(emu, ids[0]["id"])
    assert set_product(emu, "P4", "S", title="Shoe")["product"]["handle"] == "shoe"
    assert set_product(emu, "P5", "S", title="Shoe")["product"]["handle"] == "shoe-3"


def test_collection_members_keep_the_shop_order_and_follow_changes(emu):
    """Members are listed in the order the products were added to the shop, whatever happens."""
    p1, p2, p3 = (set_product(emu, f"P{n}", "S")["product"]["id"] for n in (1, 2, 3))
    created = _data(
        gql(  # the 2026-01 input still takes products
            emu,
            s.collection_create({"title": "Mixed", "products": [p3, p1]}, api_version="2026-01"),
        ),
        "collectionCreate",
    )
    cid = created["collection"]["id"]
    assert emu.members(cid) == [p1, p3]

    set_product(emu, "P2", "S", collections=[cid])
    assert emu.members(cid) == [p1, p2, p3]
    set_product(emu, "P1", "S", collections=[])
    assert emu.members(cid) == [p2, p3]

    deleted = _data(gql(emu, s.collection_delete(cid)), "collectionDelete")
    assert deleted["deletedCollectionId"] == cid
    assert emu.members(cid) == []
    assert [emu.products[p].collections for p in (p1, p2, p3)] == [[], [], []]


def test_replaced_variants_retire_their_inventory_items(emu):
    """An inventory item whose variant productSet dropped is unknown; the new variant's is known."""
    first = set_product(emu, "P1", "S")["product"]["variants"]["nodes"][0]["inventoryItem"]["id"]
    second = set_product(emu, "P1", "M")["product"]["variants"]["nodes"][0]["inventoryItem"]["id"]

    assert _set_quantity(emu, first, "old")[0]["code"] == "INVALID_INVENTORY_ITEM"
    assert _set_quantity(emu, second, "new") == []
    assert emu.quantity(second) == 3


def test_translations_go_with_their_resource(emu):
    """Deleting a product drops its translations and leaves the others' in their order."""
    products = [set_product(emu, f"P{n}", "S")["product"]["id"] for n in (1, 2)]
    for pid in (*products, products[1]):
        content = s.read_translatable(s.read_response(gql(emu, s.translatable_query(pid))))
        assert content is not None
        digests = {c.key: c.digest for c in content}
        answer = _data(
            gql(
                emu,
                s.translations_register(
                    pid,
                    [
                        {
                            "key": key,
                            "locale": "es",
                            "value": f"{key} {pid}",
                            "translatableContentDigest": str(digests[key]),
                        }
                        for key in ("handle", "title")
                    ],
                ),
            ),
            "translationsRegister",
        )
        assert answer["userErrors"] == []

    _delete_product(emu, products[0])

    assert {k[0] for k in emu.translations} == {products[1]}
    listed = _data(
        gql(
            emu,
            'query Q($id: ID!) { translatableResource(resourceId: $id) { translations(locale: "es") { key } } }',
            {"id": products[1]},
        ),
        "translatableResource",
    )
    assert listed["translations"] == [{"key": "handle"}, {"key": "title"}]


def test_state_changed_by_hand_is_reindexed(emu):
    """Entries added or removed by hand are noticed; other edits by hand need reindex()."""
    pid = set_product(emu, "P1", "S", handle="trail")["product"]["id"]
    product = emu.products.pop(pid)

    assert _product_id(emu, {"handle": "trail"}) is None
    stand_in = set_product(emu, "P2", "S", handle="trail")
    assert stand_in["userErrors"] == []
    _delete_product(emu, stand_in["product"]["id"])
    emu.products[pid] = product
    assert _product_id(emu, {"handle": "trail"}) == pid

    product.handle = "road"
    product.metafields[("catalogsync", "ref")] = ("id", "P7")
    emu.reindex()
    assert _product_id(emu, {"handle": "road"}) == pid
    assert _product_id(emu, {"handle": "trail"}) is None
    assert emu.product_by_ref("P7") is product
    assert emu.product_by_ref("P1") is None


def test_lookups_by_a_shared_value_find_the_oldest_product(emu):
    """A metafield value several products share finds the one added first, as a scan would."""
    colour = {"namespace": "custom", "key": "colour", "value": "red"}
    ids = [
        set_product(emu, f"P{n}", "S", metafields=[{**colour, "type": "single_line_text_field"}])[
            "product"
        ]["id"]
        for n in range(5)
    ]

    for n, pid in enumerate(ids):
        assert _product_id(emu, {"customId": colour}) == pid, n
        _delete_product(emu, pid)
    assert _product_id(emu, {"customId": colour}) is None


def test_requests_keep_the_indexes_without_rebuilding_them(emu):
    """Every request path updates the indexes itself (a rebuild is only for changes by hand)."""
    index = emu._index
    cid = _create_collection(emu, title="A", metafields=[CustomId().as_metafield("C1")])["id"]
    gql(emu, s.collection_update(cid, {"handle": "a2"}, api_version="2026-10"))
    first = set_product(emu, "P1", "S", collections=[cid])["product"]
    set_product(emu, "P2", "S", "M")
    set_product(emu, "P2", "M")
    content = s.read_translatable(s.read_response(gql(emu, s.translatable_query(first["id"]))))
    assert content is not None
    digest = {c.key: c.digest for c in content}["title"]
    gql(
        emu,
        s.translations_register(
            first["id"],
            [
                {
                    "key": "title",
                    "locale": "es",
                    "value": "x",
                    "translatableContentDigest": str(digest),
                }
            ],
        ),
    )
    _delete_product(emu, first["id"])
    gql(emu, s.collection_delete(cid))
    emu.delete_product(set_product(emu, "P3", "S")["product"]["id"])

    assert emu._index is index
    assert emu._index.matches(emu)
    assert emu.translations == {}
    assert [p.handle for p in emu.products.values()] == ["shoe-p2"]
