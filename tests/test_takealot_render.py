"""Rendering items as Takealot offers and validating them locally (pure, no I/O)."""

from __future__ import annotations

import math
from decimal import Decimal

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
    Visibility,
)
from catalogsync.channels.takealot import TakealotChannel, gtin_ok, validate_offer
from catalogsync.channels.takealot._render import whole
from catalogsync.typing import RenderContext


BARCODE = "6009876543219"


def channel(**kw):
    kw.setdefault("warehouses", [28676])
    return TakealotChannel(Secret("render-key-0123456789"), client=httpx.Client(), **kw)


def product(ref="P1", visibility=Visibility.VISIBLE, **fields):
    fields.setdefault("barcode", BARCODE)
    fields.setdefault("selling_price", 1299)
    return Item(ref, ItemType.PRODUCT, visibility=visibility, fields=fields)


def codes(errors):
    return sorted(e.code for e in errors)


def test_renders_a_product_without_variants_as_an_offer():
    """A product with no variants is an offer: barcode, SKU (the ref), prices, leadtime, status."""
    payload = channel(default_leadtime_days=5).render(
        product(rrp=1499), RenderContext(ConnectorParams())
    )

    assert payload == {
        "barcode": BARCODE,
        "sku": "P1",
        "selling_price": 1299,
        "rrp": 1499,
        "leadtime_days": 5,
        "status_action": "Re-enable",
    }


def test_product_with_variants_is_skipped():
    """A product whose variants are exported renders a skip payload: its variants are the offers."""
    ctx = RenderContext(ConnectorParams(), children={(ItemType.PRODUCT, "P1"): ("V1", "V2")})

    payload = channel().render(product(), ctx)

    assert set(payload) == {"skip"}
    assert "P1 has variants" in payload["skip"]
    assert channel().validate(product(), payload, ctx) == []


def test_variant_falls_back_to_its_product():
    """A variant without price, RRP or leadtime takes its product's; its own values win."""
    parent = product(rrp=1999, leadtime_days=4)
    variant = Item(
        "V1", ItemType.VARIANT, parents=("P1",), fields={"barcode": "6000000000011", "rrp": 1500}
    )
    ctx = RenderContext(ConnectorParams(), related={(ItemType.PRODUCT, "P1"): parent})

    payload = channel().render(variant, ctx)

    assert (payload["sku"], payload["barcode"]) == ("V1", "6000000000011")
    assert (payload["selling_price"], payload["rrp"], payload["leadtime_days"]) == (1299, 1500, 4)


@pytest.mark.parametrize(
    ("map_status", "visibility", "action"),
    [
        (False, Visibility.VISIBLE, "Re-enable"),
        (False, Visibility.DRAFT, "Re-enable"),  # R10: without mapping everything is active
        (False, Visibility.INVISIBLE, "Re-enable"),
        (True, Visibility.VISIBLE, "Re-enable"),
        (True, Visibility.DRAFT, "Disable"),
        (True, Visibility.INVISIBLE, "Disable"),
    ],
)
def test_status_mapping(map_status, visibility, action):
    """R10/R15: active -> Re-enable; draft and archived -> Disable (only with map_status)."""
    ctx = RenderContext(ConnectorParams(map_status=map_status))
    assert channel().render(product(visibility=visibility), ctx)["status_action"] == action


def test_variant_of_a_draft_product_is_disabled():
    """With status mapping, a visible variant of a draft product is disabled too."""
    parent = product(visibility=Visibility.DRAFT)
    variant = Item("V1", ItemType.VARIANT, parents=("P1",), fields={"barcode": BARCODE})
    ctx = RenderContext(
        ConnectorParams(map_status=True), related={(ItemType.PRODUCT, "P1"): parent}
    )
    assert channel().render(variant, ctx)["status_action"] == "Disable"


def test_sku_from_a_mapped_field():
    """A mapped SKU field is used; when it is empty the SKU is missing (not the ref) and validation says so."""
    params = ConnectorParams(field_mapping={"sku": "supplier_code", "selling_price": "price_zar"})
    ctx = RenderContext(params)
    item = product(supplier_code=" SUP-9 ", price_zar="250")

    assert channel().render(item, ctx)["sku"] == "SUP-9"
    assert channel().render(item, ctx)["selling_price"] == 250
    empty = product(price_zar=250)
    payload = channel().render(empty, ctx)
    assert payload["sku"] is None
    (error,) = channel().validate(empty, payload, ctx)
    assert (error.code, error.field) == ("missing_sku", "sku")
    assert "'supplier_code'" in error.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (199, 199),
        (199.0, 199),
        (Decimal("199.00"), 199),
        ("199", 199),
        (" 199.0 ", 199),
        (199.5, 199.5),
        (Decimal("199.50"), Decimal("199.50")),
        ("199.99", "199.99"),
        ("R199", "R199"),
        (True, True),
        (None, None),
        (float("nan"), "nan"),
    ],
)
def test_whole_never_rounds(raw, expected):
    """Exact whole numbers become ints; anything else is kept for validation to reject."""
    result = whole(raw)
    if expected == "nan":
        assert math.isnan(result)  # NaN stays NaN for validation to reject
    else:
        assert result == expected
        assert type(result) is type(expected)


def test_stock_only_with_overwrite_stock():
    """Leadtime stock is rendered only when the connector overwrites stock."""
    item = product(stock=7)
    assert "leadtime_stock" not in channel().render(item, RenderContext(ConnectorParams()))
    payload = channel().render(item, RenderContext(ConnectorParams(overwrite_stock=True)))
    assert payload["leadtime_stock"] == [{"merchant_warehouse_id": 28676, "quantity": 7}]


def test_stock_per_warehouse():
    """Stock given per warehouse id is sent per warehouse, sorted; one number needs one warehouse."""
    ctx = RenderContext(ConnectorParams(overwrite_stock=True))
    two = channel(warehouses=[28676, 30001])
    payload = two.render(product(stock={"30001": 2, "28676": "5"}, leadtime_days=3), ctx)

    assert payload["leadtime_stock"] == [
        {"merchant_warehouse_id": 28676, "quantity": 5},
        {"merchant_warehouse_id": 30001, "quantity": 2},
    ]
    assert two.validate(product(), payload, ctx) == []
    ambiguous = two.render(product(stock=4, leadtime_days=3), ctx)
    assert codes(two.validate(product(), ambiguous, ctx)) == ["ambiguous_stock"]


def test_categories_are_not_rendered():
    """Takealot owns its categories: rendering one raises InvalidItemError."""
    with pytest.raises(InvalidItemError, match="categories are not pushed"):
        channel().render(Item("C1", ItemType.CATEGORY), RenderContext(ConnectorParams()))


def test_payload_hash_is_stable():
    """The same item renders the same hash whatever the PIM's field order (R06)."""
    ctx = RenderContext(ConnectorParams(overwrite_stock=True))
    a = channel().render(product(rrp=1500, stock=3, leadtime_days=2), ctx)
    b = channel().render(
        Item(
            "P1",
            ItemType.PRODUCT,
            fields={
                "leadtime_days": 2,
                "stock": 3,
                "rrp": 1500,
                "selling_price": 1299,
                "barcode": BARCODE,
            },
        ),
        ctx,
    )
    hasher = ChangeHasher()
    assert hasher.digest(a) == hasher.digest(b)


# -- validation -----------------------------------------------------------------------------------


def test_valid_offer_has_no_errors():
    """A complete offer passes."""
    payload = {
        "barcode": BARCODE,
        "sku": "S",
        "selling_price": 100,
        "rrp": 100,
        "leadtime_days": 3,
        "leadtime_stock": [{"merchant_warehouse_id": 28676, "quantity": 0}],
        "status_action": "Disable",
    }
    assert validate_offer(payload, warehouses=[28676]) == []


def test_reports_every_problem_at_once():
    """R13: one item with many problems gets all of them, each with its code and field."""
    payload = {
        "barcode": None,
        "sku": "X" * 256,
        "selling_price": 199.5,
        "rrp": -3,
        "leadtime_days": -2,
        "leadtime_stock": [
            {"merchant_warehouse_id": 999, "quantity": -1},
            {"merchant_warehouse_id": "cpt", "quantity": 2.5},
        ],
        "status_action": "Archive",
    }

    errors = validate_offer(payload, warehouses=[28676])

    assert all(e.kind is ErrorKind.VALIDATION for e in errors)
    assert [(e.code, e.field) for e in errors] == [
        ("E3", "barcode"),
        ("E27", "sku"),
        ("E19", "selling_price"),
        ("E22", "rrp"),
        ("invalid_leadtime_days", "leadtime_days"),
        ("invalid_warehouse", "leadtime_stock[0].merchant_warehouse_id"),
        ("E30", "leadtime_stock[0].quantity"),
        ("invalid_warehouse", "leadtime_stock[1].merchant_warehouse_id"),
        ("E15", "leadtime_stock[1].quantity"),
        ("invalid_status_action", "status_action"),
    ]


def test_fractional_price_is_rejected_not_rounded():
    """A price in cents is an error that says catalogsync never rounds."""
    (error,) = validate_offer({"barcode": BARCODE, "sku": "S", "selling_price": Decimal("99.99")})
    assert error.code == "E19"
    assert "never rounds" in error.message
    assert "99.99" in error.message


def test_price_above_rrp():
    """A selling price above the RRP is E20; equal is fine; RRP is optional."""
    base = {"barcode": BARCODE, "sku": "S"}
    (error,) = validate_offer({**base, "selling_price": 150, "rrp": 149})
    assert (error.code, error.field) == ("E20", "selling_price")
    assert error.message == "selling price 150 must be <= RRP 149"
    assert validate_offer({**base, "selling_price": 150, "rrp": 150}) == []
    assert validate_offer({**base, "selling_price": 150}) == []


def test_non_positive_and_missing_prices():
    """Prices must be present (selling price) and positive."""
    base = {"barcode": BARCODE, "sku": "S"}
    assert codes(validate_offer({**base, "selling_price": 0, "rrp": 0})) == ["E19", "E22"]
    assert codes(validate_offer(base)) == ["missing_selling_price"]
    assert codes(validate_offer({**base, "selling_price": True})) == ["E19"]


def test_barcodes_are_checked():
    """Barcodes must be GTINs with a correct check digit, unless the check is turned off."""
    base = {"sku": "S", "selling_price": 10}
    assert codes(validate_offer({**base, "barcode": "6009876543210"})) == ["invalid_barcode"]
    assert codes(validate_offer({**base, "barcode": "600 9876"})) == ["invalid_barcode"]
    assert codes(validate_offer({**base, "barcode": 6009876543219})) == ["invalid_barcode"]
    assert validate_offer({**base, "barcode": "TAL-0001"}, gtin_check=False) == []
    assert gtin_ok("6009876543219")
    assert gtin_ok("96385074")  # GTIN-8
    assert gtin_ok("036000291452")  # UPC-A
    assert not gtin_ok("60098765432a")


def test_sku_is_required_and_bounded():
    """An SKU is required text of at most 255 characters (E27)."""
    base = {"barcode": BARCODE, "selling_price": 10}
    assert validate_offer({**base, "sku": "X" * 255}) == []
    (error,) = validate_offer({**base, "sku": "X" * 256})
    assert (error.code, error.message) == ("E27", "SKU exceeds 255 characters (got 256)")
    assert codes(validate_offer({**base, "sku": ""})) == ["missing_sku"]
    assert codes(validate_offer({**base, "sku": 42})) == ["invalid_sku"]


def test_stock_needs_leadtime_and_known_warehouses():
    """Positive leadtime stock needs leadtime days (E18); warehouses must be configured, once each."""
    base = {"barcode": BARCODE, "sku": "S", "selling_price": 10}
    stock = [{"merchant_warehouse_id": 28676, "quantity": 4}]
    assert codes(
        validate_offer({**base, "leadtime_days": -1, "leadtime_stock": stock}, warehouses=[28676])
    ) == ["E18"]
    assert (
        validate_offer({**base, "leadtime_days": 2, "leadtime_stock": stock}, warehouses=[28676])
        == []
    )
    assert codes(validate_offer({**base, "leadtime_stock": stock}, warehouses=[])) == [
        "invalid_warehouse"
    ]
    twice = [*stock, {"merchant_warehouse_id": 28676, "quantity": 1}]
    assert codes(validate_offer({**base, "leadtime_stock": twice}, warehouses=[28676])) == [
        "invalid_warehouse"
    ]
    assert codes(validate_offer({**base, "leadtime_stock": "5"}, warehouses=[28676])) == [
        "invalid_stock"
    ]
