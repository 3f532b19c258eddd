"""The Shopify sans-IO core against recorded-style responses in tests/samples/shopify."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from catalogsync import ChannelProtocolError, ErrorKind, InvalidArgumentError, Secret
from catalogsync.channels import VerdictKind
from catalogsync.channels.shopify import CustomId, make_converter
from catalogsync.channels.shopify import _sansio as s


SAMPLES = Path(__file__).parent / "samples" / "shopify"


def sample(case: str) -> httpx.Response:
    """Load ``samples/shopify/<case>/{<status>.json, body}`` as an httpx response."""
    folder = SAMPLES / case
    (headers_file,) = folder.glob("*.json")
    headers = json.loads(headers_file.read_text())
    request = httpx.Request("POST", "https://acme-eu.myshopify.com/admin/api/2026-10/graphql.json")
    return httpx.Response(
        int(headers_file.stem),
        headers=headers,
        content=(folder / "body").read_bytes(),
        request=request,
    )


class TestClassify:
    def test_success_is_final(self):
        """A normal 200 answer is handed to the caller."""
        assert s.classify(sample("product_set_created")).kind is VerdictKind.OK

    def test_user_errors_are_final(self):
        """User errors are answers, never retried."""
        assert s.classify(sample("product_set_user_errors")).kind is VerdictKind.OK

    def test_throttled_200_waits_by_the_cost_model(self):
        """HTTP 200 + THROTTLED waits (requested - available) / restoreRate."""
        verdict = s.classify(sample("throttled_200"))

        assert verdict.kind is VerdictKind.THROTTLED
        assert verdict.wait == pytest.approx((752 - 100) / 50)

    def test_throttled_429_prefers_the_cost_model_over_retry_after(self):
        """A 429 with a cost extension waits by the cost model, like a 200 + THROTTLED."""
        verdict = s.classify(sample("throttled_429"))

        assert verdict.kind is VerdictKind.THROTTLED
        assert verdict.wait == pytest.approx((300 - 60) / 80)

    def test_plain_429_falls_back_to_retry_after(self):
        """A 429 without a JSON body honours Retry-After (a float string)."""
        verdict = s.classify(sample("throttled_429_plain"))

        assert (verdict.kind, verdict.wait) == (VerdictKind.THROTTLED, 2.0)

    def test_throttle_without_hints_waits_one_second(self):
        """With neither cost nor Retry-After, the recommended one second is used."""
        response = httpx.Response(429, content=b"slow down")

        assert s.classify(response).wait == 1.0

    def test_401_is_auth(self):
        """401 means the token was rejected."""
        assert s.classify(sample("unauthorized")).kind is VerdictKind.AUTH

    def test_5xx_and_internal_errors_are_retried(self):
        """502 pages and 200 + INTERNAL_SERVER_ERROR are transient."""
        assert s.classify(sample("bad_gateway")).kind is VerdictKind.RETRY
        assert s.classify(sample("internal_error")).kind is VerdictKind.RETRY

    def test_max_cost_is_final(self):
        """An over-cost query is not retried: it would fail the same way."""
        assert s.classify(sample("max_cost_exceeded")).kind is VerdictKind.OK


class TestReadResponse:
    def test_headers_and_cost(self):
        """Request id, served version, deprecation reason and cost are read from the answer."""
        response = s.read_response(sample("shop_fell_forward"))

        assert response.request_id == "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
        assert response.api_version == "2026-04"
        assert response.deprecated_reason == (
            "Mutation.collectionCreate.input, Mutation.collectionUpdate.input"
        )
        assert response.cost == s.Cost(1, 1, 2000, 1999, 100)

    def test_top_level_errors_become_channel_errors(self):
        """ACCESS_DENIED (data null) is a CHANNEL failure with Shopify's code."""
        response = s.read_response(sample("access_denied"))

        (error,) = response.failure()
        assert (error.kind, error.code) == (ErrorKind.CHANNEL, "ACCESS_DENIED")
        assert "write_translations" in error.message

    def test_401_string_errors(self):
        """The REST-style ``errors`` string of a 401 is read as one error."""
        response = s.read_response(sample("unauthorized"))

        assert response.errors[0].message.startswith("[API] Invalid API key")

    def test_non_json_raises_protocol_error(self):
        """An HTML page where JSON was expected is a ChannelProtocolError."""
        with pytest.raises(ChannelProtocolError, match="not a JSON object"):
            s.read_response(sample("html_200"))

    def test_data_of_the_wrong_shape_raises(self):
        """``data`` that is not an object is garbage."""
        with pytest.raises(ChannelProtocolError):
            s.read_response(httpx.Response(200, json={"data": [1, 2]}))

    def test_malformed_cost_is_ignored(self):
        """A cost extension missing numbers is treated as absent, not as zero."""
        assert s.read_cost({"cost": {"throttleStatus": {"maximumAvailable": "x"}}}) is None
        assert s.read_cost(None) is None


class TestProducts:
    def test_product_set_created(self):
        """The product, its variants with options and inventory items are read."""
        product, errors = s.read_product_set(s.read_response(sample("product_set_created")))

        assert errors == ()
        assert product is not None
        assert (product.id, product.handle, product.status) == (
            "gid://shopify/Product/9876543210",
            "trail-shoe",
            "ACTIVE",
        )
        assert product.variants[1] == s.VariantNode(
            "gid://shopify/ProductVariant/112",
            (("Size", "43"), ("Color", "Red")),
            "gid://shopify/InventoryItem/212",
            "TS-43",
        )
        assert product.page.has_next_page is False

    def test_user_errors_keep_paths_and_codes(self):
        """User errors map to catalogsync paths, variants by index, codes kept."""
        product, errors = s.read_product_set(s.read_response(sample("product_set_user_errors")))

        assert product is None
        assert [e.path for e in errors] == ["title", "variants[1].price", None]
        assert [e.variant_index() for e in errors] == [None, 1, None]
        relative = errors[1].item_error(relative_to_variant=True)
        assert (relative.field, relative.code, relative.kind) == (
            "price",
            "INVALID_VARIANT",
            ErrorKind.CHANNEL,
        )
        assert errors[2].item_error().code == "GENERIC_ERROR"

    def test_garbage_user_errors_raise(self):
        """A string path or a missing message is rejected, not coerced."""
        with pytest.raises(ChannelProtocolError, match="user error"):
            s.read_product_set(s.read_response(sample("garbage_user_errors")))

    def test_lookup_pages_and_none(self):
        """A lookup reports more pages; a missing product is None."""
        node = s.read_product(
            s.read_response(sample("product_lookup_paged")).payload("productByIdentifier")
        )

        assert node is not None
        assert node.page == s.PageInfo(has_next_page=True, end_cursor="c0")
        none = s.read_response(sample("product_lookup_none"))
        assert s.read_product((none.data or {}).get("productByIdentifier")) is None

    def test_product_without_id_is_garbage(self):
        """A product object without an id cannot be used."""
        with pytest.raises(ChannelProtocolError):
            s.read_product({"handle": "x"})

    def test_delete_of_a_missing_product_reads_as_not_found(self):
        """ProductDelete's "does not exist" is recognised as an idempotent no-op."""
        response = s.read_response(sample("product_delete_missing"))

        errors = s.read_user_errors(response.payload("productDelete"))
        assert s.is_not_found(errors)
        assert not s.is_not_found([s.UserError("Title can't be blank", ("input", "title"))])
        referenced = s.UserError(
            "Collection gid://c/1 does not exist", ("input", "collections", "0")
        )
        assert not s.is_not_found([referenced])  # a missing reference is not a stale id
        assert s.is_not_found([s.UserError("x", ("identifier", "id"), "PRODUCT_DOES_NOT_EXIST")])

    def test_stale_variant(self):
        """An unknown variant id is recognised so the upsert can fall back to the key."""
        stale = s.UserError("x", ("input", "variants", "0", "id"), "PRODUCT_VARIANT_DOES_NOT_EXIST")

        assert s.is_stale_variant([stale])
        assert not s.is_stale_variant([s.UserError("x", None, "INVALID_VARIANT")])


class TestOtherReaders:
    def test_shop(self):
        """The probe yields the permanent domain and the configured location."""
        shop = s.read_shop(s.read_response(sample("shop_ok")))

        assert shop == s.ShopInfo(
            "Acme EU", "acme-eu.myshopify.com", "gid://shopify/Location/74538172661", True
        )

    def test_shop_missing_is_garbage(self):
        """A probe answer without the shop is a protocol error."""
        with pytest.raises(ChannelProtocolError):
            s.read_shop(s.read_response(httpx.Response(200, json={"data": {}})))

    def test_definitions(self):
        """Existing custom-id definitions are found; a type-id one counts as unique."""
        found = s.read_definitions(s.read_response(sample("definitions")))

        assert found["PRODUCT"] == s.DefinitionInfo(
            "gid://shopify/MetafieldDefinition/501", "id", True
        )
        assert found["COLLECTION"] is None
        loose = s.read_definitions(s.read_response(sample("definitions_not_unique")))
        assert loose["PRODUCT"] is not None
        assert loose["PRODUCT"].unique is False

    def test_inventory_user_errors(self):
        """Inventory errors keep the index of the quantity they are about."""
        response = s.read_response(sample("inventory_user_errors"))

        (error,) = s.read_user_errors(response.payload("inventorySetQuantities"))
        assert error.field == ("input", "quantities", "1", "quantity")
        assert error.code == "INVALID_QUANTITY_TOO_HIGH"

    def test_translatable_resource(self):
        """Translatable keys come with the digests translations must quote."""
        content = s.read_translatable(s.read_response(sample("translatable_resource")))

        assert content is not None
        assert [c.key for c in content] == ["title", "body_html", "handle"]
        assert content[0].digest.startswith("9e3a5b1f")

    def test_translation_errors(self):
        """TranslationsRegister errors point at the translation by index."""
        response = s.read_response(sample("translations_register_errors"))

        (error,) = s.read_user_errors(response.payload("translationsRegister"))
        assert error.path == "translations[1].locale"

    def test_token(self):
        """The grant's token is a Secret; its expiry is read in seconds."""
        answer = s.read_token(sample("access_token_ok"))

        assert answer.token.reveal() == "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"
        assert "shpca_" not in repr(answer)
        assert answer.expires_in == 86399

    def test_token_errors_are_short_and_safe(self):
        """A failed grant is explained by its OAuth error code only."""
        assert s.token_error(sample("access_token_invalid")) == "invalid_client"
        assert s.token_error(httpx.Response(500, content=b"<html>")) == "HTTP 500"
        with pytest.raises(ChannelProtocolError):
            s.read_token(httpx.Response(200, json={"scope": "x"}))


class TestRequests:
    def test_to_http_puts_the_token_in_a_header_only(self):
        """The token travels in X-Shopify-Access-Token and nowhere in the body or URL."""
        request = s.to_http(
            s.shop_query(None),
            base_url="https://acme.myshopify.com/",
            api_version="2026-10",
            token=Secret("shpat_header_only_0001"),
        )

        assert str(request.url) == "https://acme.myshopify.com/admin/api/2026-10/graphql.json"
        assert request.headers["x-shopify-access-token"] == "shpat_header_only_0001"
        assert b"shpat_" not in request.content
        body = json.loads(request.content)
        assert body["operationName"] == "CatalogsyncShop"
        assert body["variables"] == {"locationId": None, "withLocation": False}

    def test_inventory_sends_explicit_null_change_from(self):
        """Every quantity carries changeFromQuantity: null and the key rides as a variable."""
        request = s.inventory_set([("gid://i/1", "gid://l/1", 5)], idempotency_key="k-1")

        (quantity,) = request.variables["input"]["quantities"]
        assert "changeFromQuantity" in quantity
        assert quantity["changeFromQuantity"] is None
        assert request.variables["idempotencyKey"] == "k-1"
        assert "@idempotent(key: $idempotencyKey)" in request.document
        with pytest.raises(InvalidArgumentError):
            s.inventory_set([("i", "l", 1)] * 251, idempotency_key="k")

    def test_collection_documents_follow_the_pinned_version(self):
        """2026-10 uses ``collection:``; older pins keep ``input:``."""
        new = s.collection_create({"title": "Shoes"}, api_version="2026-10")
        old = s.collection_update("gid://c/1", {"title": "Shoes"}, api_version="2026-01")

        assert new.variables == {"collection": {"title": "Shoes"}}
        assert "CollectionCreateInput!" in new.document
        assert old.variables == {"input": {"title": "Shoes", "id": "gid://c/1"}}

    def test_page_size_respects_caps(self):
        """Variant pages hold at most 250 and keep productSet under the query or bucket cap."""
        assert s.page_size(3) == 3
        assert s.page_size(2048) == 250
        assert s.product_set({}, None, first=s.page_size(2048)).cost <= s.MAX_QUERY_COST
        small = s.page_size(2048, max_cost=100)
        assert s.product_set({}, None, first=small).cost <= 100
        assert s.page_size(0) == 1

    def test_token_request_is_form_encoded(self):
        """The client-credentials grant posts a form with the grant type."""
        request = s.token_request("https://acme.myshopify.com", "cid", Secret("client-secret-001"))

        assert request.url.path == "/admin/oauth/access_token"
        assert b"grant_type=client_credentials" in request.content

    def test_versions(self):
        """Stable YYYY-MM versions from 2026-01 are accepted, others refused with the field."""
        assert s.check_api_version("2027-01") == "2027-01"
        for bad in ("2025-10", "2026-13", "latest", 202610):
            with pytest.raises(InvalidArgumentError) as info:
                s.check_api_version(bad)  # type: ignore[arg-type]
            assert info.value.field == "api_version"

    def test_gids_and_urls(self):
        """GIDs build and split; admin links point at the product or variant."""
        assert s.gid("Product", 7) == "gid://shopify/Product/7"
        assert s.gid_number("gid://shopify/Product/7?x=1") == "7"
        assert s.admin_url(
            "a.myshopify.com", "gid://shopify/Product/7", "gid://shopify/ProductVariant/9"
        ) == ("https://a.myshopify.com/admin/products/7/variants/9")

    def test_custom_id(self):
        """Custom ids are checked and render as identifier and metafield."""
        custom = CustomId("pim", "sku_ref")

        assert custom.as_metafield("P1") == {
            "namespace": "pim",
            "key": "sku_ref",
            "type": "id",
            "value": "P1",
        }
        with pytest.raises(InvalidArgumentError):
            CustomId("a b", "ref")


def test_converter_is_configured_per_call():
    """make_converter builds an independent converter that reads camelCase page info."""
    first, second = make_converter(), make_converter()

    assert first is not second
    assert first.structure({"hasNextPage": False}, s.PageInfo) == s.PageInfo()


def test_field_path_notation():
    """Paths drop the leading argument name and index lists."""
    assert s.field_path(["input", "variants", "0", "optionValues", "1", "name"]) == (
        "variants[0].optionValues[1].name"
    )
    assert s.field_path(["identifier", "customId"]) == "identifier.customId"
    assert s.field_path(["input"]) == "input"
    assert s.field_path(None) is None


def test_cost_wait():
    """The wait is what the bucket lacks over the restore rate, else one second."""
    assert s.Cost(100, None, 1000, 40, 20).wait() == 3.0
    assert s.Cost(None, None, 1000, 40, 20).wait() == 1.0
    assert s.Cost(10, None, 1000, 40, 20).wait() == 1.0
