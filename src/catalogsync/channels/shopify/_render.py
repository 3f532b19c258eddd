"""
Rendering catalog items into Shopify payloads (pure: no I/O, no clock).

Rule 1: a product's payload is what ``productSet`` needs to make Shopify match the PIM, complete:
every exportable variant, every option, every collection that already has a GID and the
custom-id metafield. productSet replaces list fields whole, so a partial list would delete.

Rule 2: a variant's payload is exactly the dict that appears in its product's ``variants`` list,
so a variant's hash changes exactly when what Shopify receives for it changes.

Rule 3: channel ids never enter a payload (they would change its hash after the first push);
the adapter adds variant ids at push time from what it remembered (`Outcome.memo`).

Payload shapes::

    product:  {"input": ProductSetInput, "variants": [variant refs, in input order],
               "translations": {locale: {translatable key: value}}}      # translations optional
    variant:  ProductVariantSetInput (stock, when overwritten, as "inventoryQuantities")
    category: {"input": collection fields, "translations": {...}}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from attrs import frozen

from ..._errors import InvalidItemError
from ..._models import ErrorKind, Item, ItemError, ItemType, ListingStatus, Mode
from ...typing import RenderContext
from ._sansio import CustomId


__all__ = ["RenderOptions", "render"]

#: catalogsync's channel-neutral statuses onto Shopify's ``ProductStatus`` (rule R10).
STATUS: Final[Mapping[ListingStatus, str]] = {
    ListingStatus.ACTIVE: "ACTIVE",
    ListingStatus.DRAFT: "DRAFT",
    ListingStatus.ARCHIVED: "ARCHIVED",
}

#: Channel field -> Shopify translatable content key, for products.
PRODUCT_TRANSLATABLE: Final[Mapping[str, str]] = {
    "title": "title",
    "description": "body_html",
    "product_type": "product_type",
    "seo_title": "meta_title",
    "seo_description": "meta_description",
}

#: Channel field -> Shopify translatable content key, for collections.
COLLECTION_TRANSLATABLE: Final[Mapping[str, str]] = {
    "title": "title",
    "description": "body_html",
    "seo_title": "meta_title",
    "seo_description": "meta_description",
}

#: The option Shopify gives products that have no options of their own.
DEFAULT_OPTION: Final = ("Title", "Default Title")


@frozen
class RenderOptions:
    """
    The channel configuration rendering depends on.

    Attributes:
        custom_id: The custom-id metafield holding the PIM ref, or ``None`` to identify products
            and collections by handle.
        locations: The location GID stock is overwritten at, per mode (``None``: not configured).
    """

    custom_id: CustomId | None
    locations: Mapping[Mode, str | None]


def render(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    """Render *item* for `catalogsync.channels.shopify.ShopifyChannel` (see module docstring)."""
    if item.type is ItemType.VARIANT:
        return render_variant(item, ctx, options)
    if item.type is ItemType.PRODUCT:
        return render_product(item, ctx, options)
    return render_category(item, ctx, options)


# -------------------------------------------------------------------------------------------------
# values
# -------------------------------------------------------------------------------------------------


def money(value: Any) -> Any:
    """
    A price as Shopify's ``Money`` scalar (a decimal string), when it is a number.

    Anything else is passed through unchanged for validation to report (a bad price is a
    validation error on the item, not a rendering failure).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return value


def slug(text: str) -> str:
    """A handle from a title: lower case, words joined by ``-``."""
    return re.sub(r"[\W_]+", "-", text.lower(), flags=re.UNICODE).strip("-")


def _pick(value: Any, language: str) -> Any:
    # A localised leaf value ({"en": "Red", "es": "Rojo"}) -> the connector's language.
    if isinstance(value, Mapping):
        return value.get(language)
    return value


def variant_options(item: Item, ctx: RenderContext) -> list[tuple[str, Any]]:
    """
    A variant's ``(option name, value)`` pairs, in the PIM's order.

    The PIM field (``options`` unless mapped) may be a mapping ``{"Size": "M"}`` or a list of
    ``{"name": ..., "value": ...}`` objects; values may be localised (``{"en": "Red"}``). The
    field is read raw, and taken as a localised option set only when the connector's language
    keys a mapping of option sets: an option named like a language (``{"fit": "slim"}``) would
    otherwise pass for a translation.
    """
    language = ctx.params.language
    raw = item.fields.get(ctx.params.mapped("options"))
    if (
        isinstance(raw, Mapping)
        and language in raw
        and all(isinstance(v, (Mapping, list)) for v in raw.values())
    ):
        raw = raw[language]  # the whole option set is localised
    pairs: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        pairs = [(str(k), _pick(v, language)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, Mapping) and "name" in entry:
                pairs.append(
                    (str(_pick(entry["name"], language)), _pick(entry.get("value"), language))
                )
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:  # noqa: PLR2004 - a pair
                pairs.append((str(_pick(entry[0], language)), _pick(entry[1], language)))
    return pairs


def _as_text(value: Any) -> Any:
    return (
        str(value)
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
        else value
    )


def _images(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    entries: Iterable[Any] = [value] if isinstance(value, (str, Mapping)) else value
    files = []
    for entry in entries:
        if isinstance(entry, Mapping):
            file: dict[str, Any] = {"originalSource": entry.get("url"), "contentType": "IMAGE"}
            if entry.get("alt"):
                file["alt"] = entry["alt"]
        else:
            file = {"originalSource": entry, "contentType": "IMAGE"}
        files.append(file)
    return files


def _location(ctx: RenderContext, options: RenderOptions) -> str:
    location = options.locations.get(ctx.params.mode)
    if location is None:
        raise InvalidItemError(
            [
                ItemError(
                    ErrorKind.VALIDATION,
                    f"overwrite_stock is on but no location is configured for mode "
                    f"{ctx.params.mode.value}: set location_id on the ShopifyStore",
                    code="NO_LOCATION",
                    field="inventoryQuantities",
                )
            ]
        )
    return location


def _translations(
    item: Item, ctx: RenderContext, keys: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, key in keys.items():
        for locale, value in ctx.translations(item, name).items():
            if isinstance(value, str) and value.strip():
                out.setdefault(locale, {})[key] = value
    return {locale: dict(sorted(v.items())) for locale, v in sorted(out.items())}


def _metafields(item: Item, ctx: RenderContext, custom_id: CustomId | None) -> list[Any]:
    fields: list[Any] = [custom_id.as_metafield(item.ref)] if custom_id else []
    extra = ctx.value(item, "metafields")
    if isinstance(extra, list):
        fields.extend(extra)
    return fields


def _seo(item: Item, ctx: RenderContext) -> dict[str, Any] | None:
    seo = {
        k: v
        for k, v in (
            ("title", ctx.value(item, "seo_title")),
            ("description", ctx.value(item, "seo_description")),
        )
        if v is not None
    }
    return seo or None


# -------------------------------------------------------------------------------------------------
# variants
# -------------------------------------------------------------------------------------------------


def render_variant(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    """A variant's ``ProductVariantSetInput`` (its fragment of the product's variant list)."""
    pairs = variant_options(item, ctx) or [DEFAULT_OPTION]
    fragment: dict[str, Any] = {
        "optionValues": [{"optionName": name, "name": _as_text(value)} for name, value in pairs]
    }
    for name, key, convert in _VARIANT_FIELDS:
        value = ctx.value(item, name)
        if value is not None:
            fragment[key] = convert(value)
    image = ctx.value(item, "image")
    files = _images(image) if image is not None else []
    if files:
        fragment["file"] = files[0]
    if ctx.params.overwrite_stock:
        stock = ctx.value(item, "stock")
        if stock is not None:
            fragment["inventoryItem"] = {"tracked": True}
            fragment["inventoryQuantities"] = [
                {"locationId": _location(ctx, options), "name": "available", "quantity": stock}
            ]
    return fragment


def _same(value: Any) -> Any:
    return value


def _policy(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


#: Channel field -> ``ProductVariantSetInput`` field, with the conversion applied.
_VARIANT_FIELDS: Final = (
    ("price", "price", money),
    ("compare_at_price", "compareAtPrice", money),
    ("sku", "sku", _as_text),
    ("barcode", "barcode", _as_text),
    ("taxable", "taxable", _same),
    ("inventory_policy", "inventoryPolicy", _policy),
)


def _default_variant(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    # A product without exportable variants still has one variant in Shopify: give it the
    # product's own price/sku/stock under the default option.
    fragment = render_variant(
        Item(
            f"{item.ref}#default",
            ItemType.VARIANT,
            fields={k: v for k, v in item.fields.items() if k != ctx.params.mapped("options")},
            parents=(item.ref,),
        ),
        ctx,
        options,
    )
    fragment["optionValues"] = [{"optionName": DEFAULT_OPTION[0], "name": DEFAULT_OPTION[1]}]
    fragment.pop("file", None)
    return fragment


def _option_names(
    product: Item, ctx: RenderContext, fragments: Sequence[Mapping[str, Any]]
) -> list[str]:
    declared = ctx.value(product, "option_names")
    if declared is None:
        declared = ctx.value(product, "options")  # a product's options: its option names
    names: list[str] = []
    if isinstance(declared, list):
        names = [str(_pick(n, ctx.params.language)) for n in declared]
    for fragment in fragments:
        for option in fragment.get("optionValues", ()):
            name = option.get("optionName")
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def _product_options(names: Sequence[str], fragments: Sequence[Mapping[str, Any]]) -> list[Any]:
    values: dict[str, list[Any]] = {name: [] for name in names}
    for fragment in fragments:
        for option in fragment.get("optionValues", ()):
            seen = values.get(option.get("optionName"))
            if seen is not None and option.get("name") not in seen:
                seen.append(option.get("name"))
    return [
        {"name": name, "position": i, "values": [{"name": v} for v in vals]}
        for i, (name, vals) in enumerate(values.items(), start=1)
    ]


# -------------------------------------------------------------------------------------------------
# products and categories
# -------------------------------------------------------------------------------------------------


def render_product(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    """A product's complete ``productSet`` input plus its variant refs and translations."""
    variants = ctx.variants_of(item)
    fragments = [render_variant(v, ctx, options) for v in variants]
    if not fragments:
        fragments = [_default_variant(item, ctx, options)]
    data = _common(item, ctx, options)
    for name, key in (("vendor", "vendor"), ("product_type", "productType")):
        value = ctx.value(item, name)
        if value is not None:
            data[key] = value
    tags = ctx.value(item, "tags")
    data["tags"] = list(tags) if isinstance(tags, (list, tuple)) else sorted(item.tags)
    data["status"] = STATUS[ctx.status(item)]
    data["productOptions"] = _product_options(_option_names(item, ctx, fragments), fragments)
    data["variants"] = fragments
    data["collections"] = [
        gid
        for category in ctx.categories_of(item)
        if (gid := ctx.channel_id(ItemType.CATEGORY, category.ref)) is not None
    ]
    data["metafields"] = _metafields(item, ctx, options.custom_id)
    data["files"] = _product_files(ctx.value(item, "images"), fragments)
    payload: dict[str, Any] = {"input": data, "variants": [v.ref for v in variants]}
    translations = _translations(item, ctx, PRODUCT_TRANSLATABLE)
    if translations:
        payload["translations"] = translations
    return payload


def _common(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    # Title, handle, description and SEO: shared by products and collections.
    data: dict[str, Any] = {}
    title = ctx.value(item, "title")
    if title is not None:
        data["title"] = title
    handle = ctx.value(item, "handle")
    if handle is None and options.custom_id is None and isinstance(title, str):
        handle = slug(title)
    if handle is not None:
        data["handle"] = handle
    description = ctx.value(item, "description")
    if description is not None:
        data["descriptionHtml"] = description
    seo = _seo(item, ctx)
    if seo:
        data["seo"] = seo
    return data


def _product_files(images: Any, fragments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # The product's images, then each variant image not already there (a variant's file must
    # be one of the product's files).
    files = _images(images)
    sources = {f.get("originalSource") for f in files}
    for fragment in fragments:
        file = fragment.get("file")
        if isinstance(file, Mapping) and file.get("originalSource") not in sources:
            files.append(dict(file))
            sources.add(file.get("originalSource"))
    return files


def render_category(item: Item, ctx: RenderContext, options: RenderOptions) -> dict[str, Any]:
    """A category as a manual collection's fields plus its translations."""
    data = _common(item, ctx, options)
    image = ctx.value(item, "image")
    if isinstance(image, str):
        data["image"] = {"src": image}
    data["metafields"] = _metafields(item, ctx, options.custom_id)
    payload: dict[str, Any] = {"input": data}
    translations = _translations(item, ctx, COLLECTION_TRANSLATABLE)
    if translations:
        payload["translations"] = translations
    return payload
