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
