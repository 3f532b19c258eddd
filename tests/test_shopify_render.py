"""Rendering (pure) and local validation (R13) of the Shopify channel."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from catalogsync import (
    ChangeHasher,
    ConnectorParams,
    ErrorKind,
    InvalidItemError,
    Item,
    ItemType,
    Secret,
)
from catalogsync.channels.shopify import ShopifyChannel, ShopifyStore, StaticToken
from catalogsync.typing import RenderContext


P, V, C = ItemType.PRODUCT, ItemType.VARIANT, ItemType.CATEGORY
LOCATION = "gid://shopify/Location/1"


def channel(**kwargs: Any) -> ShopifyChannel:
    """A channel that never sends anything (render and validate are pure)."""
    store = ShopifyStore("acme", StaticToken(Secret("shpat_render_only_01")), location_id=LOCATION)
    return ShopifyChannel(store, client=httpx.Client(), **kwargs)


def context(
    *items: Item, params: ConnectorParams | None = None, ids: dict[Any, str] | None = None
) -> RenderContext:
    """A render context holding *items* as related items (variants in the order given)."""
    children: dict[Any, tuple[str, ...]] = {}
    for item in items:
        if item.type is V:
            children[(P, item.parents[0])] = (*children.get((P, item.parents[0]), ()), item.ref)
    return RenderContext(
        params=params or ConnectorParams(),
        related={i.key: i for i in items},
        children=children,
        channel_ids=ids or {},
    )


def shoe(**fields: Any) -> Item:
    """A product with defaults that validate."""
    return Item(
        "P1", P, fields={"title": "Trail shoe", **fields}, parents=("C1", "C2"), tags={"b", "a"}
    )


def size(ref: str, value: str, **fields: Any) -> Item:
    """A variant with one option."""
    return Item(
        ref, V, fields={"options": {"Size": value}, "price": "10.00", **fields}, parents=("P1",)
    )


def codes(errors: Any) -> list[tuple[str | None, str | None]]:
    """``(code, field)`` of each error."""
    return [(e.code, e.field) for e in errors]


# -------------------------------------------------------------------------------------------------
# render
# -------------------------------------------------------------------------------------------------


def test_product_payload_is_complete():
    """A product carries every variant, option, collection with a GID, tags and the custom id."""
    variants = [size("V1", "S"), size("V2", "M")]
    ctx = context(
        *variants, Item("C1", C), Item("C2", C), ids={(C, "C1"): "gid://shopify/Collection/1"}
    )

    payload = channel().render(shoe(), ctx)

    data = payload["input"]
    assert payload["variants"] == ["V1", "V2"]
    assert data["title"] == "Trail shoe"
    assert data["status"] == "ACTIVE"
    assert data["tags"] == ["a", "b"]
    assert data["productOptions"] == [
        {"name": "Size", "position": 1, "values": [{"name": "S"}, {"name": "M"}]}
    ]
    assert data["collections"] == ["gid://shopify/Collection/1"]  # C2 has no GID yet: omitted
    assert data["metafields"] == [
        {"namespace": "catalogsync", "key": "ref", "type": "id", "value": "P1"}
    ]
    assert "translations" not in payload


def test_variant_payload_is_its_fragment_of_the_product():
    """A variant renders exactly the dict that appears in its product's variant list."""
    variants = [
        size(
            "V1",
            "S",
            sku="S-1",
            compare_at_price=12.5,
            image="https://cdn.example.com/v1.jpg",
            stock=4,
        )
    ]
    params = ConnectorParams(overwrite_stock=True)
    ctx = context(*variants, params=params)
    ch = channel()

    product = ch.render(shoe(), ctx)
    fragment = ch.render(variants[0], ctx)

    assert product["input"]["variants"] == [fragment]
    assert fragment == {
        "optionValues": [{"optionName": "Size", "name": "S"}],
        "price": "10.00",
        "compareAtPrice": "12.5",
        "sku": "S-1",
        "file": {"originalSource": "https://cdn.example.com/v1.jpg", "contentType": "IMAGE"},
        "inventoryItem": {"tracked": True},
        "inventoryQuantities": [{"locationId": LOCATION, "name": "available", "quantity": 4}],
    }
    assert product["input"]["files"] == [
        fragment["file"]
    ]  # a variant's file must be a product file


def test_stock_only_when_overwrite_stock():
    """Stock is rendered only with overwrite_stock; without a location it cannot be rendered."""
    variant = size("V1", "S", stock=4)

    assert "inventoryQuantities" not in channel().render(variant, context(variant))
    store = ShopifyStore("acme", StaticToken(Secret("shpat_render_only_01")))
    bare = ShopifyChannel(store, client=httpx.Client())
    with pytest.raises(InvalidItemError) as info:
        bare.render(variant, context(variant, params=ConnectorParams(overwrite_stock=True)))
    assert codes(info.value.errors) == [("NO_LOCATION", "inventoryQuantities")]


@pytest.mark.parametrize(
    ("map_status", "visibility", "status"),
    [
        (False, "draft", "ACTIVE"),
        (False, "invisible", "ACTIVE"),
        (True, "visible", "ACTIVE"),
        (True, "draft", "DRAFT"),
        (True, "invisible", "ARCHIVED"),
    ],
)
def test_status_mapping(map_status, visibility, status):
    """R10: without mapping everything is ACTIVE; with it visible/draft/invisible map to ACTIVE/DRAFT/ARCHIVED."""
    item = Item("P1", P, visibility=visibility, fields={"title": "x"})

    payload = channel().render(item, context(params=ConnectorParams(map_status=map_status)))

    assert payload["input"]["status"] == status


def test_language_mapping_and_translations():
    """The connector language gives default values (through the field mapping); others become translations."""
    item = Item(
        "P1",
        P,
        fields={
            "name": {"es": "Zapatilla", "en": "Trail shoe", "fr": "Chaussure"},
            "body": {"es": "<p>Ligera</p>", "en": "<p>Light</p>"},
        },
    )
    params = ConnectorParams(language="es", field_mapping={"title": "name", "description": "body"})

    payload = channel().render(item, context(params=params))

    assert payload["input"]["title"] == "Zapatilla"
    assert payload["input"]["descriptionHtml"] == "<p>Ligera</p>"
    assert payload["translations"] == {
        "en": {"body_html": "<p>Light</p>", "title": "Trail shoe"},
        "fr": {"title": "Chaussure"},
    }


def test_option_forms():
    """Options may be a mapping, a list of name/value objects, or localised; all render alike."""
    params = ConnectorParams(language="es")
    variants = [
        Item(
            "V1",
            V,
            fields={"options": {"Talla": "S", "Color": {"es": "Rojo", "en": "Red"}}},
            parents=("P1",),
        ),
        Item(
            "V2",
            V,
            fields={
                "options": [{"name": "Talla", "value": "M"}, {"name": "Color", "value": "Azul"}]
            },
            parents=("P1",),
        ),
        Item(
            "V3",
            V,
            fields={
                "options": {
                    "es": {"Talla": "L", "Color": "Rojo"},
                    "en": {"Size": "L", "Color": "Red"},
                }
            },
            parents=("P1",),
        ),
    ]

    payload = channel().render(shoe(), context(*variants, params=params))

    options = payload["input"]["productOptions"]
    assert [(o["name"], [v["name"] for v in o["values"]]) for o in options] == [
        ("Talla", ["S", "M", "L"]),
        ("Color", ["Rojo", "Azul"]),
    ]


def test_option_names_and_values_can_come_from_differently_named_fields():
    """A product's option_names and its variants' options can map to differently named fields."""
    params = ConnectorParams(field_mapping={"option_names": "options", "options": "option_values"})
    product = shoe(options=["Color", "Size"])
    variants = [
        Item(
            f"V{i}",
            V,
            fields={"option_values": {"Size": s, "Color": c}, "price": "10.00"},
            parents=("P1",),
        )
        for i, (s, c) in enumerate([("S", "Red"), ("M", "Blue")])
    ]
    ctx = context(product, *variants, params=params)

    payload = channel().render(product, ctx)

    options = payload["input"]["productOptions"]
    assert [(o["name"], [v["name"] for v in o["values"]]) for o in options] == [
        ("Color", ["Red", "Blue"]),  # the product's declared order
        ("Size", ["S", "M"]),
    ]
    assert payload["input"]["variants"][1]["optionValues"] == [
        {"optionName": "Size", "name": "M"},
        {"optionName": "Color", "name": "Blue"},
    ]
    assert channel().validate(product, payload, ctx) == []


def test_product_without_variants_gets_the_default_variant():
    """A product with no exportable variants sends Shopify's default variant with its own price."""
    payload = channel().render(shoe(price=25, sku="ONE"), context())

    assert payload["variants"] == []
    assert payload["input"]["productOptions"] == [
        {"name": "Title", "position": 1, "values": [{"name": "Default Title"}]}
    ]
    assert payload["input"]["variants"] == [
        {
            "optionValues": [{"optionName": "Title", "name": "Default Title"}],
            "price": "25",
            "sku": "ONE",
        }
    ]


def test_handle_identity_derives_handles():
    """Without custom ids, products and categories get a handle from their title."""
    ch = channel(custom_id=None)

    product = ch.render(Item("P1", P, fields={"title": "Trail Shoe — 2026!"}), context())
    category = ch.render(Item("C1", C, fields={"title": "Running Shoes"}), context())

    assert product["input"]["handle"] == "trail-shoe-2026"
    assert "metafields" not in category["input"] or category["input"]["metafields"] == []
    assert category["input"]["handle"] == "running-shoes"


def test_category_payload():
    """A category renders as collection fields with its custom id and translations."""
    item = Item(
        "C1",
        C,
        fields={
            "title": {"en": "Shoes", "de": "Schuhe"},
            "description": "<p>All</p>",
            "image": "https://cdn.example.com/c.jpg",
        },
    )

    payload = channel().render(item, context())

    assert payload == {
        "input": {
            "title": "Shoes",
            "descriptionHtml": "<p>All</p>",
            "image": {"src": "https://cdn.example.com/c.jpg"},
            "metafields": [{"namespace": "catalogsync", "key": "ref", "type": "id", "value": "C1"}],
        },
        "translations": {"de": {"title": "Schuhe"}},
    }


def test_render_is_pure_and_hash_stable():
    """Rendering twice (in any dict order) gives the same hash; channel ids never enter payloads."""
    variants = [size("V1", "S"), size("V2", "M")]
    ch = channel()
    first = ch.render(shoe(), context(*variants))
    second = ch.render(
        shoe(), context(*variants, ids={(V, "V1"): "gid://shopify/ProductVariant/9"})
    )

    hasher = ChangeHasher()
    assert hasher.digest(first) == hasher.digest(second)
    assert "gid://shopify/ProductVariant" not in repr(first)


# -------------------------------------------------------------------------------------------------
# validate (R13)
# -------------------------------------------------------------------------------------------------


def validate(item: Item, *related: Item, params: ConnectorParams | None = None) -> Any:
    ch = channel()
    ctx = context(*related, params=params)
    return ch.validate(item, ch.render(item, ctx), ctx)


def test_valid_product_has_no_errors():
    """A well-formed product validates clean."""
    assert validate(shoe(), size("V1", "S"), size("V2", "M")) == []


def test_every_problem_is_reported_at_once():
    """R13: one product with many problems reports all of them, each with its field path."""
    variants = [
        size("V0", "S", price="abc"),
        size("V1", "M", price="-1"),
        size("V2", "L", price="nan"),
        size("V3", "XL", price=float("inf")),
        size("V4", "XXL", price="10.00", compare_at_price="9.99"),
        size("V5", "S"),
        Item(
            "V6",
            V,
            fields={"options": {"Size": "3XL"}, "sku": "x" * 256, "image": "ftp://files/img.png"},
            parents=("P1",),
        ),
    ]
    item = shoe(
        title="", handle="has space" + "x" * 300, images=["not a url"], tags=["ok", "bad,tag"]
    )

    errors = validate(item, *variants)

    assert all(e.kind is ErrorKind.VALIDATION for e in errors)
    assert set(codes(errors)) >= {
        ("BLANK", "title"),
        ("TOO_LONG", "handle"),
        ("INVALID", "handle"),
        ("INVALID_URL", "files[0].originalSource"),
        ("INVALID_TAG", "tags[1]"),
        ("INVALID_PRICE", "variants[0].price"),
        ("INVALID_PRICE", "variants[1].price"),
        ("INVALID_PRICE", "variants[2].price"),
        ("INVALID_PRICE", "variants[3].price"),
        ("INVALID_PRICE", "variants[4].compareAtPrice"),
        ("DUPLICATED_OPTION_VALUE", "variants[5].optionValues"),
        ("TOO_LONG", "variants[6].sku"),
        ("INVALID_URL", "variants[6].file.originalSource"),
    }


def test_option_limits_and_coverage():
    """More than 3 options, a missing option value and an unknown option are reported."""
    four = Item(
        "V1", V, fields={"options": {"A": "1", "B": "1", "C": "1", "D": "1"}}, parents=("P1",)
    )
    partial = Item("V2", V, fields={"options": {"A": "2"}}, parents=("P1",))

    errors = codes(validate(shoe(options=["A", "B", "C", "D"]), four, partial))

    assert ("OPTIONS_OVER_LIMIT", "productOptions") in errors
    assert ("OPTION_VALUES_MISSING", "variants[1].optionValues") in errors
    stray = Item("V3", V, fields={"options": {"A": "1", "Z": "9"}}, parents=("P1",))
    ch = channel()
    payload = ch.render(shoe(options=["A"]), context(stray))
    payload["input"]["productOptions"] = payload["input"]["productOptions"][
        :1
    ]  # a hand-made payload
    assert ("OPTION_DOES_NOT_EXIST", "variants[0].optionValues") in codes(
        ch.validate(shoe(), payload, context(stray))
    )


def test_too_many_variants():
    """More than 2,048 variants is reported before anything is sent."""
    variants = [
        Item(f"V{i}", V, fields={"options": {"N": str(i)}}, parents=("P1",)) for i in range(2049)
    ]

    assert ("VARIANTS_OVER_LIMIT", "variants") in codes(validate(shoe(), *variants))


def test_long_title_invalid_status_and_stock():
    """Over-long titles, statuses Shopify lacks and non-integer stock are caught."""
    ch = channel()
    payload = ch.render(shoe(title="t" * 256), context())
    payload["input"]["status"] = "LIVE"
    payload["input"]["variants"][0]["inventoryQuantities"] = [
        {"locationId": LOCATION, "name": "available", "quantity": 1.5}
    ]

    errors = codes(ch.validate(shoe(), payload, context()))

    assert ("TOO_LONG", "title") in errors
    assert ("INVALID_STATUS", "status") in errors
    assert ("INVALID_QUANTITY", "variants[0].inventoryQuantities[0].quantity") in errors


def test_variant_alone_reports_relative_paths():
    """A variant validated on its own names its fields without the variants[i] prefix."""
    variant = size("V1", "S", price="-3", barcode="9" * 300, inventory_policy="sometimes")

    errors = codes(validate(variant, variant))

    assert errors == [
        ("INVALID_PRICE", "price"),
        ("TOO_LONG", "barcode"),
        ("INVALID", "inventoryPolicy"),
    ]


def test_category_validation():
    """A category needs a title; its image must be a URL."""
    item = Item("C1", C, fields={"image": "nope"})

    assert codes(validate(item)) == [("BLANK", "title"), ("INVALID_URL", "image.src")]


def test_non_payload_is_reported():
    """A payload without input is a validation error, not a crash."""
    item = shoe()

    assert codes(channel().validate(item, {}, context())) == [("INVALID", None)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"description": Decimal("1.5")}, "descriptionHtml"),
        ({"seo_title": {"a", "set"}}, "seo.title"),
        ({"description": float("nan")}, "descriptionHtml"),
    ],
)
def test_values_json_cannot_carry_are_reported(fields, field):
    """A value the JSON request cannot carry (Decimal, set, NaN) is a validation error on
    its item, instead of failing the request that carries every operation of the push.
    """
    errors = validate(shoe(**fields), size("V1", "S"))

    assert ("INVALID", field) in codes(errors)
