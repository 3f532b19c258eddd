"""Rendering PIM items as Amazon listings, and validating them locally (R10, R13)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from catalogsync import (
    ConnectorParams,
    ErrorKind,
    InvalidItemError,
    Item,
    ItemType,
    Secret,
    Visibility,
)
from catalogsync.channels.amazon import AmazonChannel, LwaCredentials
from catalogsync.testing import AmazonEmulator, ManualClock
from catalogsync.typing import RenderContext


SAMPLES = Path(__file__).parent / "samples" / "amazon"
US = "ATVPDKIKX0DER"
MAPPING = {"item_name": "title", "product_description": "description"}


def channel(**kw):
    emulator = AmazonEmulator(clock=ManualClock())
    kw.setdefault("product_type", "SHIRT")
    kw.setdefault("marketplace", "US")
    return AmazonChannel(
        emulator.client(),
        seller_id=emulator.seller_id,
        credentials=LwaCredentials(
            emulator.client_id,
            client_secret=Secret(emulator.client_secret),
            refresh_token=Secret(emulator.refresh_token),
        ),
        clock=ManualClock(),
        **kw,
    )


def params(**kw):
    kw.setdefault("field_mapping", MAPPING)
    return ConnectorParams(**kw)


def ctx_for(p, *items, variants=()):
    related = {i.key: i for i in items}
    children = {}
    for product in items:
        if product.type is ItemType.PRODUCT:
            children[product.key] = tuple(
                v.ref for v in items if v.type is ItemType.VARIANT and v.parents == (product.ref,)
            )
    return RenderContext(p, related=related, children=children)


def tee(**fields):
    base = {
        "title": {"en": "Trail tee", "es": "Camiseta"},
        "brand": "Acme",
        "price": "19.99",
        "sku": "TEE-1",
    }
    return Item("P1", ItemType.PRODUCT, fields=base | fields)


def text(value, tag="en_US"):
    return [{"value": value, "language_tag": tag, "marketplace_id": US}]


# -- standalone listings ----------------------------------------------------------------------


def test_standalone_listing_with_language_and_marketplace_tags():
    """A product without variants is a standalone listing; text carries language and marketplace."""
    item = tee(bullet_point=["Soft", "Light"], model_number="TT-1")
    payload = channel().render(item, ctx_for(params(), item))

    assert payload["sku"] == "TEE-1"
    assert payload["productType"] == "SHIRT"
    assert payload["requirements"] == "LISTING"
    attributes = payload["attributes"]
    assert attributes["item_name"] == text("Trail tee")
    assert attributes["bullet_point"] == text("Soft") + text("Light")
    assert attributes["model_number"] == [{"value": "TT-1", "marketplace_id": US}]
    assert attributes["condition_type"] == [{"value": "new_new", "marketplace_id": US}]
    assert attributes["purchasable_offer"] == [
        {
            "currency": "USD",
            "audience": "ALL",
            "our_price": [{"schedule": [{"value_with_tax": 19.99}]}],
            "marketplace_id": US,
        }
    ]
    assert "parentage_level" not in attributes
    assert "fulfillment_availability" not in attributes  # overwrite_stock is off


def test_connector_language_picks_the_localised_value_and_tag():
    """With language 'es' the Spanish title is sent, tagged es_US."""
    item = tee()
    payload = channel().render(item, ctx_for(params(language="es"), item))

    assert payload["attributes"]["item_name"] == text("Camiseta", "es_US")


def test_stock_is_sent_only_with_overwrite_stock():
    """fulfillment_availability appears only when the connector overwrites stock."""
    item = tee(quantity="7")
    payload = channel().render(item, ctx_for(params(overwrite_stock=True), item))

    assert payload["attributes"]["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 7, "marketplace_id": US}
    ]


@pytest.mark.parametrize(
    ("visibility", "overwrite_stock", "requirements", "offer", "quantity"),
    [
        (Visibility.VISIBLE, True, "LISTING", True, 5),
        (Visibility.DRAFT, True, "LISTING_PRODUCT_ONLY", False, None),
        (Visibility.INVISIBLE, True, "LISTING", True, 0),
        (Visibility.INVISIBLE, False, "LISTING_PRODUCT_ONLY", False, None),
    ],
)
def test_status_mapping_nearest_equivalents(
    visibility, overwrite_stock, requirements, offer, quantity
):
    """R10 on Amazon: active = offer, draft = product facts only, archived = unbuyable (qty 0 or no offer)."""
    item = Item(
        "P1",
        ItemType.PRODUCT,
        visibility=visibility,
        fields={"title": "Tee", "price": 5, "quantity": 5},
    )
    payload = channel().render(
        item, ctx_for(params(map_status=True, overwrite_stock=overwrite_stock), item)
    )
    attributes = payload["attributes"]

    assert payload["requirements"] == requirements
    assert ("purchasable_offer" in attributes) is offer
    got = attributes.get("fulfillment_availability", [{}])[0].get("quantity")
    assert got == quantity


def test_without_status_mapping_everything_is_active():
    """export_status=ALL without map_status exports invisible items as active listings."""
    item = Item(
        "P1", ItemType.PRODUCT, visibility=Visibility.INVISIBLE, fields={"title": "Tee", "price": 5}
    )
    payload = channel().render(item, ctx_for(params(), item))

    assert payload["requirements"] == "LISTING"
    assert "purchasable_offer" in payload["attributes"]


def test_numeric_sku_is_text_and_odd_skus_are_reported():
    """A whole-number SKU becomes text; a SKU of another type is reported, not replaced."""
    numeric = tee(sku=12345)
    odd = tee(sku=["A", "B"])
    ch = channel()

    assert ch.render(numeric, ctx_for(params(), numeric))["sku"] == "12345"
    payload = ch.render(odd, ctx_for(params(), odd))
    errors = ch.validate(odd, payload, ctx_for(params(), odd))
    assert [e.message for e in errors if e.code == "sku"] == ["the SKU must be text, got list"]


def test_images_barcode_asin_and_list_price():
    """Images become locators, the barcode an identifier with its type, the ASIN a suggestion."""
    item = tee(
        images=["https://img.example/a.jpg", "https://img.example/b.jpg"],
        barcode="4006381333931",
        asin="B07N4M94X4",
        list_price=25,
    )
    attributes = channel().render(item, ctx_for(params(), item))["attributes"]

    assert attributes["main_product_image_locator"] == [
        {"media_location": "https://img.example/a.jpg", "marketplace_id": US}
    ]
    assert attributes["other_product_image_locator_1"] == [
        {"media_location": "https://img.example/b.jpg", "marketplace_id": US}
    ]
    assert attributes["externally_assigned_product_identifier"] == [
        {"type": "ean", "value": "4006381333931", "marketplace_id": US}
    ]
    assert attributes["merchant_suggested_asin"] == [{"value": "B07N4M94X4", "marketplace_id": US}]
    assert attributes["list_price"] == [
        {"currency": "USD", "value_with_tax": 25.0, "marketplace_id": US}
    ]


def test_mapped_extra_attributes_and_raw_attributes():
    """A mapped Amazon attribute is sent; the raw 'attributes' field is merged as given."""
    p = params(field_mapping=MAPPING | {"care_instructions": "care"}, language="en")
    item = tee(
        care="Wash cold", attributes={"material": [{"value": "Cotton", "language_tag": "en_US"}]}
    )
    attributes = channel(text_attributes=["care_instructions"]).render(item, ctx_for(p, item))[
        "attributes"
    ]

    assert attributes["care_instructions"] == text("Wash cold")
    assert attributes["material"] == text("Cotton")


def test_yen_prices_are_whole_numbers():
    """Currencies without minor units render prices as integers."""
    item = tee(price="1500")
    attributes = channel(marketplace="JP").render(item, ctx_for(params(language="ja"), item))[
        "attributes"
    ]

    assert attributes["purchasable_offer"][0]["currency"] == "JPY"
    assert (
        attributes["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"] == 1500
    )
    assert attributes["brand"][0]["language_tag"] == "ja_JP"
    assert "item_name" not in attributes  # no Japanese title in the PIM: validation says so


def test_categories_cannot_be_rendered():
    """A category raises InvalidItemError: Amazon listings have no categories."""
    category = Item("C1", ItemType.CATEGORY, fields={"title": "Shirts"})

    with pytest.raises(InvalidItemError) as info:
        channel().render(category, ctx_for(params(), category))

    assert info.value.errors[0].code == "unsupported"


# -- variation families -----------------------------------------------------------------------


def family(theme=None):
    product = tee(**({"variation_theme": theme} if theme else {}))
    v1 = Item(
        "V1",
        ItemType.VARIANT,
        parents=("P1",),
        fields={"sku": "TEE-1-RED-M", "color": "Red", "size": "M", "price": 19.99},
    )
    v2 = Item(
        "V2",
        ItemType.VARIANT,
        parents=("P1",),
        fields={
            "sku": "TEE-1-BLUE-M",
            "color": "Blue",
            "size": "M",
            "price": 18,
            "title": "Blue tee",
        },
    )
    return product, v1, v2


def test_product_with_variants_is_a_parent_listing():
    """The parent has parentage 'parent', the derived theme, product facts only and no offer."""
    product, v1, v2 = family()
    payload = channel().render(product, ctx_for(params(), product, v1, v2))
    attributes = payload["attributes"]

    assert payload["requirements"] == "LISTING_PRODUCT_ONLY"
    assert attributes["parentage_level"] == [{"value": "parent", "marketplace_id": US}]
    assert attributes["variation_theme"] == [{"name": "SIZE/COLOR"}]
    assert "purchasable_offer" not in attributes
    assert "color" not in attributes


def test_variant_is_a_child_listing():
    """A child names its parent SKU, the theme and its values, inherits brand, and has its own offer."""
    product, v1, v2 = family()
    payload = channel().render(v1, ctx_for(params(), product, v1, v2))
    attributes = payload["attributes"]

    assert payload["sku"] == "TEE-1-RED-M"
    assert payload["productType"] == "SHIRT"
    assert attributes["parentage_level"] == [{"value": "child", "marketplace_id": US}]
    assert attributes["child_parent_sku_relationship"] == [
        {"child_relationship_type": "variation", "parent_sku": "TEE-1", "marketplace_id": US}
    ]
    assert attributes["variation_theme"] == [{"name": "SIZE/COLOR"}]
    assert attributes["color"] == text("Red")
    assert attributes["brand"] == text("Acme")
    assert attributes["item_name"] == text("Trail tee (M, Red)")
    assert (
        attributes["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"] == 19.99
    )


def test_explicit_theme_and_own_title_win():
    """The product's variation_theme is used as given; a variant's own title is kept."""
    product, v1, v2 = family(theme="color")
    ctx = ctx_for(params(), product, v1, v2)

    assert channel().render(product, ctx)["attributes"]["variation_theme"] == [{"name": "COLOR"}]
    assert channel().render(v2, ctx)["attributes"]["variation_theme"] == [{"name": "COLOR"}]
    assert channel().render(v2, ctx)["attributes"]["item_name"] == text("Blue tee")


def test_child_payload_reads_only_itself_and_its_product():
    """A child renders the same whether or not its siblings are in the context (hash stability)."""
    product, v1, v2 = family()
    alone = RenderContext(params(), related={product.key: product, v1.key: v1})

    assert channel().render(v1, alone) == channel().render(v1, ctx_for(params(), product, v1, v2))


def test_children_of_a_draft_product_are_not_buyable():
    """R10: a child takes the less visible of its own and its product's status (no offer under a draft)."""
    product, v1, v2 = family()
    draft = Item(product.ref, ItemType.PRODUCT, fields=product.fields, visibility=Visibility.DRAFT)
    hidden = Item(
        product.ref, ItemType.PRODUCT, fields=product.fields, visibility=Visibility.INVISIBLE
    )
    mapped = params(map_status=True, overwrite_stock=True)
    v1 = Item(v1.ref, ItemType.VARIANT, parents=v1.parents, fields=v1.fields | {"quantity": 3})
    under_draft = channel().render(v1, ctx_for(mapped, draft, v1, v2))
    under_hidden = channel().render(v1, ctx_for(mapped, hidden, v1, v2))
    under_visible = channel().render(v1, ctx_for(mapped, product, v1, v2))

    assert under_draft["requirements"] == "LISTING_PRODUCT_ONLY"
    assert "purchasable_offer" not in under_draft["attributes"]
    assert under_hidden["requirements"] == "LISTING"
    assert under_hidden["attributes"]["fulfillment_availability"][0]["quantity"] == 0
    assert under_visible["attributes"]["fulfillment_availability"][0]["quantity"] == 3


def test_mapping_reads_dotted_paths_into_nested_fields():
    """{"size": "option_values.Size"} reads a variant's option map; localised leaves are localised."""
    product = tee()
    variant = Item(
        "V1",
        ItemType.VARIANT,
        parents=("P1",),
        fields={
            "sku": "TEE-1-M",
            "price": 19,
            "option_values": {"Size": "M", "Color": {"en": "Red", "es": "Rojo"}},
        },
    )
    mapping = MAPPING | {"size": "option_values.Size", "color": "option_values.Color"}
    ctx = ctx_for(params(field_mapping=mapping, language="es"), product, variant)
    attributes = channel().render(variant, ctx)["attributes"]

    assert attributes["size"] == text("M", "es_US")
    assert attributes["color"] == text("Rojo", "es_US")
    assert channel().render(product, ctx)["attributes"]["variation_theme"] == [
        {"name": "SIZE/COLOR"}
    ]


def test_dotted_field_name_wins_over_the_path():
    """A PIM field literally named 'a.b' is read as is, and a path through a non-mapping is empty."""
    item = tee(**{"x.y": "Flat"}, plain="text")
    mapping = MAPPING | {"style": "x.y", "pattern": "plain.deeper"}
    attributes = channel().render(item, ctx_for(params(field_mapping=mapping), item))["attributes"]

    assert attributes["style"] == text("Flat")
    assert "pattern" not in attributes


def test_product_type_by_family():
    """product_types maps PIM families to product types; a variant uses its product's family."""
    product, v1, v2 = family()
    product = Item(product.ref, ItemType.PRODUCT, fields=product.fields, family="shoes")
    typed = Item(
        "P2", ItemType.PRODUCT, fields={"title": "Hat", "product_type": "HAT"}, family="shoes"
    )
    ch = channel(product_types={"shoes": "SHOES"})
    ctx = ctx_for(params(), product, v1, v2, typed)

    assert ch.render(product, ctx)["productType"] == "SHOES"
    assert ch.render(v1, ctx)["productType"] == "SHOES"
    assert ch.render(typed, ctx)["productType"] == "HAT"
    assert channel().render(v1, ctx)["productType"] == "SHIRT"


def test_weight_is_a_measure_with_a_unit():
    """item_weight is sent with its unit (kilograms unless weight_unit says otherwise)."""
    item = tee(weight=0.25)
    mapping = MAPPING | {"item_weight": "weight"}
    attributes = channel().render(item, ctx_for(params(field_mapping=mapping), item))["attributes"]
    pounds = tee(weight="2", unit="pounds")
    mapped = params(field_mapping=mapping | {"weight_unit": "unit"})
    in_pounds = channel().render(pounds, ctx_for(mapped, pounds))["attributes"]

    assert attributes["item_weight"] == [{"value": 0.25, "unit": "kilograms", "marketplace_id": US}]
    assert in_pounds["item_weight"] == [{"value": 2, "unit": "pounds", "marketplace_id": US}]


def test_weight_must_be_positive():
    """A zero, negative or non-numeric weight is a validation error on attributes.item_weight."""
    mapping = MAPPING | {"item_weight": "weight"}
    ch = channel()
    for bad in (0, -1, "heavy"):
        item = tee(weight=bad)
        ctx = ctx_for(params(field_mapping=mapping), item)
        errors = ch.validate(item, ch.render(item, ctx), ctx)

        assert codes(errors) == [("weight", "attributes.item_weight")]


# -- local validation (R13) -------------------------------------------------------------------


def codes(errors):
    return sorted((e.code, e.field) for e in errors)


def test_valid_listing_has_no_errors():
    """A complete standalone listing validates cleanly."""
    item = tee()
    ch = channel()
    ctx = ctx_for(params(), item)

    assert ch.validate(item, ch.render(item, ctx), ctx) == []


def test_every_problem_is_reported_at_once():
    """SKU, product type, title, price, quantity, barcode and image problems all come back together."""
    item = Item(
        "P1",
        ItemType.PRODUCT,
        fields={
            "sku": " " + "X" * 45,
            "product_type": "shirt",
            "price": "-3.999",
            "quantity": -2,
            "barcode": "4006381333932",
            "images": ["ftp://img.example/a.jpg"],
        },
    )
    ch = channel(product_type=None)
    ctx = ctx_for(params(overwrite_stock=True), item)
    errors = ch.validate(item, ch.render(item, ctx), ctx)

    assert all(e.kind is ErrorKind.VALIDATION for e in errors)
    assert codes(errors) == [
        ("barcode", "attributes.externally_assigned_product_identifier"),
        ("image", "attributes.main_product_image_locator"),
        ("price", "attributes.purchasable_offer"),
        ("price", "attributes.purchasable_offer"),
        ("product_type", "productType"),
        ("quantity", "attributes.fulfillment_availability"),
        ("required", "attributes.item_name"),
        ("sku", "sku"),
        ("sku", "sku"),
    ]


def test_missing_price_and_quantity_are_named():
    """A buyable listing needs a price; overwrite_stock needs a quantity."""
    item = Item("P1", ItemType.PRODUCT, fields={"title": "Tee"})
    ch = channel()
    ctx = ctx_for(params(overwrite_stock=True), item)
    errors = ch.validate(item, ch.render(item, ctx), ctx)

    assert codes(errors) == [
        ("required", "attributes.fulfillment_availability"),
        ("required", "attributes.purchasable_offer"),
    ]


def test_draft_needs_no_price():
    """A draft (product facts only) validates without a price."""
    item = Item("P1", ItemType.PRODUCT, visibility=Visibility.DRAFT, fields={"title": "Tee"})
    ch = channel()
    ctx = ctx_for(params(map_status=True), item)

    assert ch.validate(item, ch.render(item, ctx), ctx) == []


def test_child_without_exported_parent_is_invalid():
    """A variant whose product is not exported fails with 'missing_parent'."""
    _, v1, _ = family()
    ch = channel()
    ctx = RenderContext(params())
    errors = ch.validate(v1, ch.render(v1, ctx), ctx)

    assert ("missing_parent", "attributes.child_parent_sku_relationship") in codes(errors)


def test_family_problems_are_reported_on_the_parent():
    """The parent names variants missing a theme value, duplicate combinations and shared SKUs."""
    product = tee(variation_theme="SIZE/COLOR")
    a = Item(
        "A",
        ItemType.VARIANT,
        parents=("P1",),
        fields={"sku": "S-1", "color": "Red", "size": "M", "price": 1},
    )
    b = Item(
        "B",
        ItemType.VARIANT,
        parents=("P1",),
        fields={"sku": "S-2", "color": "Red", "size": "M", "price": 1},
    )
    c = Item(
        "C", ItemType.VARIANT, parents=("P1",), fields={"sku": "S-1", "color": "Red", "price": 1}
    )
    ch = channel()
    ctx = ctx_for(params(), product, a, b, c)
    errors = ch.validate(product, ch.render(product, ctx), ctx)

    assert codes(errors) == [
        ("sku_duplicate", "variants[C]"),
        ("variation_duplicate", "variants[B]"),
        ("variation_value", "variants[C]"),
    ]
    child_errors = ch.validate(c, ch.render(c, ctx), ctx)
    assert ("variation_value", "attributes.size") in codes(child_errors)


def test_variants_without_variation_attributes():
    """Variants that differ in nothing Amazon can show fail on the parent and on each child."""
    product = tee()
    v = Item("V", ItemType.VARIANT, parents=("P1",), fields={"sku": "S-1", "price": 1})
    ch = channel()
    ctx = ctx_for(params(), product, v)

    assert codes(ch.validate(product, ch.render(product, ctx), ctx)) == [
        ("variation_theme", "attributes.variation_theme")
    ]
    assert ("variation_theme", "attributes.variation_theme") in codes(
        ch.validate(v, ch.render(v, ctx), ctx)
    )


def test_raw_attributes_must_be_lists_of_objects():
    """A malformed raw attribute is reported with its name."""
    item = tee(attributes={"material": "Cotton"})
    ch = channel()
    ctx = ctx_for(params(), item)

    assert ("attribute_shape", "attributes.material") in codes(
        ch.validate(item, ch.render(item, ctx), ctx)
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"brand": Decimal("1.5")}, "attributes.brand[0].value"),
        ({"bullet_point": [{"a", "set"}]}, "attributes.bullet_point[0].value"),
        ({"attributes": {"material": [{"value": float("nan")}]}}, "attributes.material[0].value"),
    ],
)
def test_values_json_cannot_carry_are_reported_on_the_item(fields, field):
    """A Decimal, a set or a NaN the request body cannot carry is a validation error on its
    item, not an exception that fails every listing of the push.
    """
    item = tee(**fields)
    ch = channel()
    ctx = ctx_for(params(), item)

    assert ("attribute_value", field) in codes(ch.validate(item, ch.render(item, ctx), ctx))


# -- product type definition schemas ----------------------------------------------------------


def shirt_schema():
    return json.loads((SAMPLES / "product_types" / "SHIRT.json").read_text())


def test_schema_violations_map_to_attribute_paths():
    """With a product type schema every violation becomes an error at its attribute path."""
    item = tee(title="An extremely long title " * 4, price=20000, condition_type="refurbished")
    ch = channel(product_type_schemas={"SHIRT": shirt_schema()})
    ctx = ctx_for(params(), item)
    errors = ch.validate(item, ch.render(item, ctx), ctx)
    by_code = {(e.code, e.field) for e in errors}

    assert ("schema.maxUtf8ByteLength", "attributes.item_name[0].value") in by_code
    assert ("schema.enum", "attributes.condition_type[0].value") in by_code
    assert (
        "schema.maximum",
        "attributes.purchasable_offer[0].our_price[0].schedule[0].value_with_tax",
    ) in by_code
    assert all(e.message.startswith("SHIRT: ") for e in errors if e.code != "schema.required")


def test_schema_required_attributes_are_named():
    """A required attribute the mapping does not produce is named in the field path."""
    item = tee(brand=None)
    ch = channel(product_type_schemas={"SHIRT": shirt_schema()})
    ctx = ctx_for(params(), item)
    errors = ch.validate(item, ch.render(item, ctx), ctx)

    assert [(e.code, e.field, e.message) for e in errors] == [
        ("schema.required", "attributes.brand", "brand is required by product type SHIRT")
    ]


def test_parent_is_not_held_to_offer_requirements():
    """A parent validated with the LISTING schema is not asked for an offer or a condition."""
    product, v1, v2 = family()
    ch = channel(product_type_schemas={"SHIRT": shirt_schema()})
    ctx = ctx_for(params(), product, v1, v2)

    assert ch.validate(product, ch.render(product, ctx), ctx) == []


def test_requirements_specific_schema_is_preferred():
    """A 'TYPE:REQUIREMENTS' schema is used for that requirements set."""
    product, v1, v2 = family()
    strict = shirt_schema() | {"required": ["item_name", "bullet_point"]}
    ch = channel(
        product_type_schemas={"SHIRT": shirt_schema(), "SHIRT:LISTING_PRODUCT_ONLY": strict}
    )
    ctx = ctx_for(params(), product, v1, v2)

    assert [e.field for e in ch.validate(product, ch.render(product, ctx), ctx)] == [
        "attributes.bullet_point"
    ]


def test_unknown_product_type_skips_schema_validation():
    """Without a schema for the item's product type only local checks run."""
    item = tee(product_type="LUGGAGE")
    ch = channel(product_type_schemas={"SHIRT": shirt_schema()})
    ctx = ctx_for(params(), item)

    assert ch.validate(item, ch.render(item, ctx), ctx) == []


def test_jsonschema_is_imported_lazily():
    """Importing the channel does not import jsonschema (it is an optional extra)."""
    code = "import sys, catalogsync.channels.amazon; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"
