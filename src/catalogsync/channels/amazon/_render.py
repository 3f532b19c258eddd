"""
Rendering: a PIM item -> the listing Amazon should hold for one SKU (pure).

Rule 1: every value is read through the connector's field mapping (`RenderContext.value`), keyed
by the *channel field* names in the tables below; most are Amazon attribute names, a few are
conveniences for structured attributes (``price``, ``quantity``, ``images``, ``barcode``).

Rule 2: every attribute entry carries the marketplace id, and text entries the language tag,
the way Amazon's product type schemas expect:
``{"item_name": [{"value": "...", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}]}``.

Rule 3: variation families. A product with exportable variants becomes a *parent* listing
(``parentage_level=parent`` and a ``variation_theme``, product facts only: parents are never
buyable); each variant becomes a *child* (``parentage_level=child``,
``child_parent_sku_relationship`` naming the parent SKU, the theme, and its variation attribute
values); a product without variants is a standalone listing.

Rule 4 (R10, nearest equivalents; Amazon has no draft or archived listing state):

* ``ACTIVE``: the full listing with its offer (``requirements=LISTING``).
* ``DRAFT``: product facts only (``requirements=LISTING_PRODUCT_ONLY``, no offer): the listing
  exists but cannot be bought.
* ``ARCHIVED``: not buyable but kept: with ``overwrite_stock`` the offer stays and the
  merchant-fulfilled quantity is 0; without it (catalogsync must not touch stock) the offer is
  left out as for a draft. Either way reactivation restores it from the PIM.

The payload is ``{"sku", "productType", "requirements", "attributes"}``: exactly what a
``putListingsItem`` body needs, plus the SKU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from attrs import field, frozen

from ..._models import Item, ItemType, ListingStatus
from ...typing import RenderContext, _looks_localised
from ._sansio import CURRENCY_DIGITS, Marketplace, as_decimal, language_tag


__all__ = [
    "CHANNEL_FIELDS",
    "LANGUAGE_TAGGED",
    "VARIATION_ATTRIBUTES",
    "RenderSettings",
    "field_value",
    "render_item",
    "theme_axes",
]

#: Text attributes Amazon tags with a language.
LANGUAGE_TAGGED: Final = frozenset(
    {
        "item_name",
        "brand",
        "product_description",
        "bullet_point",
        "generic_keyword",
        "manufacturer",
        "model_name",
        "color",
        "size",
        "style",
        "material",
        "pattern",
        "flavor",
        "scent",
        "department",
        "item_type_name",
    }
)

#: Attributes that can define a variation (in the order a derived theme names them).
VARIATION_ATTRIBUTES: Final = (
    "size",
    "color",
    "style",
    "material",
    "pattern",
    "flavor",
    "scent",
    "item_package_quantity",
    "number_of_items",
)

#: Plain (untagged) attributes rendered when the item has a value.
PLAIN_ATTRIBUTES: Final = (
    "model_number",
    "part_number",
    "country_of_origin",
    "item_package_quantity",
    "number_of_items",
)

#: Channel fields that are not attributes, or feed structured attributes.
SPECIAL_FIELDS: Final = frozenset(
    {
        "sku",
        "product_type",
        "variation_theme",
        "condition_type",
        "price",
        "list_price",
        "currency",
        "quantity",
        "barcode",
        "barcode_type",
        "asin",
        "images",
        "attributes",
        "item_weight",
        "weight_unit",
    }
)

#: Every channel field name the renderer reads (documented in docs/channels/amazon.md).
CHANNEL_FIELDS: Final = frozenset(LANGUAGE_TAGGED | set(PLAIN_ATTRIBUTES) | SPECIAL_FIELDS)

_MAX_OTHER_IMAGES: Final = 8
_EMPTY: Final[tuple[Any, ...]] = (None, "", [], {})


@frozen
class RenderSettings:
    """
    The channel-level settings rendering needs (the rest comes from the connector params).

    Attributes:
        marketplace: The marketplace every attribute entry names.
        product_type: The product type of items whose PIM data names none.
        language_tag: Force a language tag instead of deriving it from the connector language.
        fulfillment_channel_code: ``DEFAULT`` (merchant-fulfilled) or an FBA code.
        condition_type: The condition of offers whose PIM data names none.
        text_attributes: More attribute names sent with a language tag.
        product_types: ``{PIM family: product type}`` for items whose PIM data names none.
    """

    marketplace: Marketplace
    product_type: str | None = None
    language_tag: str | None = None
    fulfillment_channel_code: str = "DEFAULT"
    condition_type: str = "new_new"
    text_attributes: frozenset[str] = field(default=frozenset())
    product_types: Mapping[str, str] = field(factory=dict, hash=False)


def _present(value: Any) -> bool:
    return not any(value is e or value == e for e in _EMPTY)


def field_value(item: Item, ctx: RenderContext, name: str) -> Any:
    """
    The value of channel field *name* for *item* (`RenderContext.value`), where the mapped PIM
    field may also be a dotted path into a nested field: ``{"size": "option_values.Size"}`` reads
    ``item.fields["option_values"]["Size"]`` (a field whose own name has a dot wins).
    """
    value = ctx.value(item, name)
    if value is not None:
        return value
    source = ctx.params.mapped(name)
    if "." not in source or source in item.fields:
        return None
    node: Any = item.fields
    for part in source.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if isinstance(node, Mapping) and _looks_localised(node):
        return node.get(ctx.params.language)
    return node


def _get(item: Item, ctx: RenderContext, name: str) -> Any:
    value = field_value(item, ctx, name)
    return value if _present(value) else None


def sku_of(item: Item, ctx: RenderContext) -> Any:
    """
    The item's seller SKU: the mapped ``sku`` field (a whole number becomes text), else its PIM
    reference. Any other value is kept as is for validation to report.
    """
    value = _get(item, ctx, "sku")
    if value is None:
        return item.ref
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def theme_axes(theme: str) -> tuple[str, ...]:
    """
    The attribute names of a variation theme: ``"SIZE/COLOR"`` -> ``("size", "color")``.

    Legacy names with a ``_NAME`` suffix (``SIZE_NAME``) map to the attribute (``size``).
    """
    axes = []
    for part in theme.split("/"):
        name = part.strip().lower()
        name = name.removesuffix("_name")
        if name:
            axes.append(name)
    return tuple(axes)


def derived_axes(variants: Sequence[Item], ctx: RenderContext) -> tuple[str, ...]:
    """The variation attributes any of *variants* has a value for, in theme order."""
    return tuple(
        a for a in VARIATION_ATTRIBUTES if any(_get(v, ctx, a) is not None for v in variants)
    )


def theme_of(product: Item, variants: Sequence[Item], ctx: RenderContext) -> str | None:
    """The product's explicit ``variation_theme``, else one derived from *variants*."""
    explicit = _get(product, ctx, "variation_theme")
    if isinstance(explicit, str):
        return explicit.strip().upper()
    axes = derived_axes(variants, ctx)
    return "/".join(a.upper() for a in axes) or None


class _Builder:
    """Accumulates the attributes of one listing."""

    def __init__(self, settings: RenderSettings, ctx: RenderContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.market = settings.marketplace.id
        self.tag = settings.language_tag or language_tag(ctx.params.language, settings.marketplace)
        self.tagged = LANGUAGE_TAGGED | settings.text_attributes
        self.attributes: dict[str, Any] = {}

    def entry(self, name: str, value: Any) -> dict[str, Any]:
        if name in self.tagged:
            return {"value": value, "language_tag": self.tag, "marketplace_id": self.market}
        return {"value": value, "marketplace_id": self.market}

    def put(self, name: str, value: Any) -> None:
        if value is None:
            return
        values = value if isinstance(value, (list, tuple)) else [value]
        entries = [self.entry(name, v) for v in values if _present(v)]
        if entries:
            self.attributes[name] = entries

    def put_market(self, name: str, entries: list[dict[str, Any]]) -> None:
        self.attributes[name] = [e | {"marketplace_id": self.market} for e in entries]


def _content(b: _Builder, item: Item, fallback: Item | None, skip: frozenset[str]) -> None:
    """Text, plain and mapped attributes; a variant falls back to its product for each one."""
    ctx = b.ctx

    def get(name: str) -> Any:
        value = _get(item, ctx, name)
        if value is None and fallback is not None and name not in VARIATION_ATTRIBUTES:
            value = _get(fallback, ctx, name)
        return value

    for name in sorted(LANGUAGE_TAGGED | b.settings.text_attributes):
        if name not in skip:
            b.put(name, get(name))
    for name in PLAIN_ATTRIBUTES:
        if name not in skip and name not in b.attributes:
            b.put(name, get(name))
    # Any other mapped Amazon attribute: the mapping names it, so the user wants it sent.
    for name in sorted(ctx.params.field_mapping):
        if name not in CHANNEL_FIELDS and name not in skip:
            b.put(name, get(name))
    _identifiers(b, get)


def _identifiers(b: _Builder, get: Callable[[str], Any]) -> None:
    """Images, a suggested ASIN, the barcode and the weight."""
    _images(b, get("images"))
    weight = get("item_weight")
    if weight is not None:
        unit = str(get("weight_unit") or "kilograms")
        b.put_market("item_weight", [{"value": _measure(weight), "unit": unit}])
    asin = get("asin")
    if isinstance(asin, str):
        b.put("merchant_suggested_asin", asin)
    barcode = get("barcode")
    if barcode is not None:
        kind = get("barcode_type") or _barcode_type(barcode)
        b.put_market(
            "externally_assigned_product_identifier",
            [{"type": str(kind).lower(), "value": str(barcode)}],
        )


def _measure(value: Any) -> Any:
    number = as_decimal(value)
    if number is None:
        return value  # validation reports it
    return int(number) if number == number.to_integral_value() else float(number)


def _barcode_type(barcode: Any) -> str:
    digits = str(barcode)
    return {12: "upc", 13: "ean", 14: "gtin", 8: "ean"}.get(len(digits), "ean")


def _images(b: _Builder, images: Any) -> None:
    if images is None:
        return
    urls = [images] if isinstance(images, str) else list(images) if isinstance(images, list) else []
    urls = [u for u in urls if _present(u)]
    if not urls:
        return
    b.put_market("main_product_image_locator", [{"media_location": urls[0]}])
    for n, url in enumerate(urls[1 : _MAX_OTHER_IMAGES + 1], start=1):
        b.put_market(f"other_product_image_locator_{n}", [{"media_location": url}])


def _number(value: Any, currency: str) -> Any:
    number = as_decimal(value)
    if number is None:
        return value  # validation reports it with the field name
    digits = CURRENCY_DIGITS.get(currency, 2)
    if number == number.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):
        return float(number) if digits else int(number)
    return float(number)  # too many decimals: keep them, validation says so


def _quantity(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _offer(b: _Builder, item: Item, fallback: Item | None, status: ListingStatus) -> None:
    ctx = b.ctx

    def get(name: str) -> Any:
        value = _get(item, ctx, name)
        if value is None and fallback is not None:
            value = _get(fallback, ctx, name)
        return value

    currency = str(get("currency") or b.settings.marketplace.currency)
    condition = get("condition_type") or b.settings.condition_type
    b.put("condition_type", condition)
    price = get("price")
    if price is not None:
        b.put_market(
            "purchasable_offer",
            [
                {
                    "currency": currency,
                    "audience": "ALL",
                    "our_price": [{"schedule": [{"value_with_tax": _number(price, currency)}]}],
                }
            ],
        )
    list_price = get("list_price")
    if list_price is not None:
        b.put_market(
            "list_price", [{"currency": currency, "value_with_tax": _number(list_price, currency)}]
        )
    if status is ListingStatus.ARCHIVED:
        quantity: Any = 0
    elif ctx.params.overwrite_stock:
        quantity = get("quantity")
    else:
        return
    entry: dict[str, Any] = {"fulfillment_channel_code": b.settings.fulfillment_channel_code}
    if quantity is not None:
        entry["quantity"] = _quantity(quantity)
    b.put_market("fulfillment_availability", [entry])


def _raw(b: _Builder, item: Item, fallback: Item | None) -> None:
    """Merge the raw ``attributes`` field: Amazon attributes given as-is (marketplace added)."""
    # Read the field itself: a mapping of short attribute names would look like a localised value.
    pim_field = b.ctx.params.mapped("attributes")
    for source in (fallback, item):
        raw = source.fields.get(pim_field) if source is not None else None
        if not isinstance(raw, Mapping):
            continue
        for name, entries in raw.items():
            if isinstance(entries, list):
                b.attributes[str(name)] = [
                    {"marketplace_id": b.market, **e} if isinstance(e, Mapping) else e
                    for e in entries
                ]
            else:
                b.attributes[str(name)] = entries  # validation says it must be a list


def render_item(item: Item, ctx: RenderContext, settings: RenderSettings) -> dict[str, Any]:
    """Render *item* as the listing of its SKU (see the module docstring for the rules)."""
    b = _Builder(settings, ctx)
    if item.type is ItemType.VARIANT:
        return _render_child(b, item, ctx, settings)
    variants = ctx.variants_of(item)
    product_type = product_type_of(item, None, ctx, settings)
    if variants:
        _content(b, item, None, frozenset(VARIATION_ATTRIBUTES))
        b.put("parentage_level", "parent")
        theme = theme_of(item, variants, ctx)
        if theme:
            b.attributes["variation_theme"] = [{"name": theme}]
        _raw(b, item, None)
        requirements = "LISTING_PRODUCT_ONLY"
    else:
        _content(b, item, None, frozenset())
        status = ctx.status(item)
        requirements = _requirements(status, ctx)
        if requirements == "LISTING":
            _offer(b, item, None, status)
        _raw(b, item, None)
    return {
        "sku": sku_of(item, ctx),
        "productType": product_type,
        "requirements": requirements,
        "attributes": b.attributes,
    }


def product_type_of(
    item: Item, product: Item | None, ctx: RenderContext, settings: RenderSettings
) -> Any:
    """
    The product type: the item's mapped ``product_type``, else its product's (a variant), else
    the one ``settings.product_types`` gives its PIM family (a variant: its product's family),
    else the channel default.
    """
    for source in (item, product):
        if source is not None and (own := _get(source, ctx, "product_type")) is not None:
            return own
    for source in (item, product):
        if source is not None and source.family and source.family in settings.product_types:
            return settings.product_types[source.family]
    return settings.product_type


def family_status(variant: Item, product: Item | None, ctx: RenderContext) -> ListingStatus:
    """
    A child's status: the less visible of its own and its product's (rule R10), so the children
    of a draft product are not buyable either, and those of an invisible one are archived.
    """
    own = ctx.status(variant)
    if product is None:
        return own
    statuses = {own, ctx.status(product)}
    for status in (ListingStatus.ARCHIVED, ListingStatus.DRAFT):
        if status in statuses:
            return status
    return ListingStatus.ACTIVE


def _requirements(status: ListingStatus, ctx: RenderContext) -> str:
    if status is ListingStatus.DRAFT:
        return "LISTING_PRODUCT_ONLY"
    if status is ListingStatus.ARCHIVED and not ctx.params.overwrite_stock:
        return "LISTING_PRODUCT_ONLY"
    return "LISTING"


def _render_child(
    b: _Builder, variant: Item, ctx: RenderContext, settings: RenderSettings
) -> dict[str, Any]:
    product = ctx.product_of(variant)
    _content(b, variant, product, frozenset({"item_name"}))
    axes = _child_axes(variant, product, ctx)
    title = _get(variant, ctx, "item_name")
    if title is None and product is not None:
        base = _get(product, ctx, "item_name")
        values = [str(_get(variant, ctx, a)) for a in axes if _get(variant, ctx, a) is not None]
        title = f"{base} ({', '.join(values)})" if base is not None and values else base
    b.put("item_name", title)
    b.put("parentage_level", "child")
    if product is not None:
        b.put_market(
            "child_parent_sku_relationship",
            [{"child_relationship_type": "variation", "parent_sku": sku_of(product, ctx)}],
        )
    if axes:
        b.attributes["variation_theme"] = [{"name": _child_theme(product, axes, ctx)}]
    status = family_status(variant, product, ctx)
    requirements = _requirements(status, ctx)
    if requirements == "LISTING":
        _offer(b, variant, product, status)
    _raw(b, variant, product)
    return {
        "sku": sku_of(variant, ctx),
        "productType": product_type_of(variant, product, ctx, settings),
        "requirements": requirements,
        "attributes": b.attributes,
    }


def _child_axes(variant: Item, product: Item | None, ctx: RenderContext) -> tuple[str, ...]:
    # The child reads only itself and its product (not its siblings), so its payload depends on
    # exactly what Capabilities.reads declares: an explicit theme, else its own attributes.
    if product is not None:
        explicit = _get(product, ctx, "variation_theme")
        if isinstance(explicit, str):
            return theme_axes(explicit)
    return derived_axes([variant], ctx)


def _child_theme(product: Item | None, axes: tuple[str, ...], ctx: RenderContext) -> str:
    if product is not None:
        explicit = _get(product, ctx, "variation_theme")
        if isinstance(explicit, str):
            return explicit.strip().upper()
    return "/".join(a.upper() for a in axes)
