"""
Local validation of a rendered listing (rule R13: every problem at once, nothing sent).

Two layers:

* `check_payload`: what catalogsync itself knows about Amazon listings: SKU rules, a product
  type, a title, a valid price and quantity for buyable listings, well-formed barcodes and image
  URLs, attribute shapes, and the variation family (a child needs its parent, its theme and its
  variation values; a parent needs a theme, and its variants must differ).
* `SchemaValidator`: when the caller supplies a product type definition's JSON Schema (from the
  Product Type Definitions API), the attributes are validated against it with ``jsonschema``
  (optional extra ``catalogsync[jsonschema]``). Amazon's schemas extend JSON Schema 2019-09 with
  their own meta-schema, whose URI does not resolve on the web: it is registered up front, so
  validation never fetches anything.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..._errors import InvalidArgumentError
from ..._models import ErrorKind, Item, ItemError, ItemType
from ...typing import RenderContext
from .._json import unencodable
from ._render import derived_axes, field_value, sku_of, theme_axes, theme_of
from ._sansio import CURRENCY_DIGITS, OFFER_ATTRIBUTES, as_decimal, sku_problems


__all__ = ["AMAZON_META_SCHEMA", "SchemaValidator", "check_payload"]

#: The ``$schema`` of Amazon product type definitions (not resolvable on the web).
AMAZON_META_SCHEMA: Final = (
    "https://schemas.amazon.com/selling-partners/definitions/product-types/meta-schema/v1"
)
_DRAFT_2019_09: Final = "https://json-schema.org/draft/2019-09/schema"

_PRODUCT_TYPE: Final = re.compile(r"^[A-Z0-9_]+$")
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_GS1_LENGTHS: Final = {"ean": (8, 13), "upc": (12,), "gtin": (8, 12, 13, 14)}
_NOT_REQUIRED_FOR_PRODUCT_ONLY: Final = OFFER_ATTRIBUTES | {"condition_type", "list_price"}


def _err(message: str, code: str, field: str | None) -> ItemError:
    return ItemError(ErrorKind.VALIDATION, message, code=code, field=field)


def _first_value(attributes: Mapping[str, Any], name: str, key: str = "value") -> Any:
    entries = attributes.get(name)
    if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
        return entries[0].get(key)
    return None


def _gs1_ok(digits: str) -> bool:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == int(digits[-1])


def check_payload(
    item: Item,
    payload: Mapping[str, Any],
    ctx: RenderContext,
) -> list[ItemError]:
    """Every local problem of a rendered listing, in a stable order."""
    errors: list[ItemError] = [_err(p, "sku", "sku") for p in sku_problems(payload.get("sku"))]
    product_type = payload.get("productType")
    if not isinstance(product_type, str) or not product_type:
        errors.append(
            _err(
                "no Amazon product type: map the channel field 'product_type' to a PIM field "
                "or give AmazonChannel(product_type=...)",
                "product_type",
                "productType",
            )
        )
    elif not _PRODUCT_TYPE.match(product_type):
        errors.append(
            _err(
                f"product type {product_type!r} is not an Amazon product type name "
                "(upper-case letters, digits and underscores, e.g. 'SHIRT')",
                "product_type",
                "productType",
            )
        )
    attributes = payload.get("attributes")
    if not isinstance(attributes, Mapping):
        errors.append(_err("attributes must be an object", "attribute_shape", "attributes"))
        return errors
    found = unencodable(attributes, "attributes")
    if found is not None:  # it would fail the request body, and the push with it
        path, problem = found
        errors.append(_err(f"{path}: {problem}", "attribute_value", path))
    for name, entries in attributes.items():
        if (
            not isinstance(entries, list)
            or not entries
            or not all(isinstance(e, Mapping) for e in entries)
        ):
            errors.append(
                _err(
                    f"attribute {name!r} must be a non-empty list of objects",
                    "attribute_shape",
                    f"attributes.{name}",
                )
            )
    if _first_value(attributes, "item_name") in (None, ""):
        errors.append(
            _err(
                "item_name (the title) is required: map it, e.g. field_mapping="
                "{'item_name': 'title'}",
                "required",
                "attributes.item_name",
            )
        )
    parentage = _first_value(attributes, "parentage_level")
    buyable = payload.get("requirements", "LISTING") == "LISTING" and parentage != "parent"
    if buyable:
        errors.extend(_check_offer(attributes, ctx))
    errors.extend(_check_quantity(attributes))
    errors.extend(_check_identifiers(attributes))
    errors.extend(_check_images(attributes))
    errors.extend(_check_weight(attributes))
    if item.type is ItemType.VARIANT:
        errors.extend(_check_child(item, attributes, ctx))
    elif parentage == "parent":
        errors.extend(_check_parent(item, ctx))
    return errors


def _check_price(entry: Mapping[str, Any], value: Any, field: str, what: str) -> list[ItemError]:
    errors = []
    currency = entry.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        errors.append(
            _err(f"{what} currency {currency!r} is not an ISO 4217 code", "currency", field)
        )
        currency = ""
    if (
        isinstance(value, bool)
        or as_decimal(value) is None
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        errors.append(_err(f"{what} {value!r} is not a number", "price", field))
        return errors
    number = as_decimal(value)
    assert number is not None  # noqa: S101 - checked just above
    if number <= 0:
        errors.append(_err(f"{what} must be greater than 0, got {value!r}", "price", field))
    digits = CURRENCY_DIGITS.get(currency, 2)
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        errors.append(
            _err(f"{what} {value!r} has more than {digits} decimals for {currency}", "price", field)
        )
    return errors


def _check_offer(attributes: Mapping[str, Any], ctx: RenderContext) -> list[ItemError]:
    errors: list[ItemError] = []
    field = "attributes.purchasable_offer"
    offers = attributes.get("purchasable_offer")
    if not offers:
        errors.append(
            _err(
                "a price is required for a buyable listing: map the channel field 'price' "
                "(or export the item as a draft)",
                "required",
                field,
            )
        )
    elif isinstance(offers, list):
        for offer in offers:
            if not isinstance(offer, Mapping):
                continue
            try:
                value = offer["our_price"][0]["schedule"][0]["value_with_tax"]
            except (KeyError, IndexError, TypeError):
                errors.append(_err("purchasable_offer has no our_price schedule", "price", field))
                continue
            errors.extend(_check_price(offer, value, field, "price"))
    for entry in attributes.get("list_price") or ():
        if isinstance(entry, Mapping):
            errors.extend(
                _check_price(
                    entry, entry.get("value_with_tax"), "attributes.list_price", "list price"
                )
            )
    if ctx.params.overwrite_stock and "fulfillment_availability" not in attributes:
        errors.append(
            _err(
                "overwrite_stock is on but the item has no quantity: map the channel field "
                "'quantity'",
                "required",
                "attributes.fulfillment_availability",
            )
        )
    return errors


def _check_quantity(attributes: Mapping[str, Any]) -> list[ItemError]:
    errors = []
    for entry in attributes.get("fulfillment_availability") or ():
        if not isinstance(entry, Mapping):
            continue
        quantity = entry.get("quantity")
        if "quantity" not in entry:
            errors.append(
                _err(
                    "overwrite_stock is on but the item has no quantity: map the channel "
                    "field 'quantity'",
                    "required",
                    "attributes.fulfillment_availability",
                )
            )
        elif isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            errors.append(
                _err(
                    f"quantity must be a whole number >= 0, got {quantity!r}",
                    "quantity",
                    "attributes.fulfillment_availability",
                )
            )
    return errors


def _check_identifiers(attributes: Mapping[str, Any]) -> list[ItemError]:
    errors = []
    field = "attributes.externally_assigned_product_identifier"
    for entry in attributes.get("externally_assigned_product_identifier") or ():
        if not isinstance(entry, Mapping):
            continue
        kind, value = str(entry.get("type", "")), str(entry.get("value", ""))
        lengths = _GS1_LENGTHS.get(kind)
        if lengths is None:
            continue  # isbn, asin... Amazon checks those
        if not value.isdigit() or len(value) not in lengths:
            errors.append(
                _err(
                    f"{kind.upper()} {value!r} must be {' or '.join(map(str, lengths))} digits",
                    "barcode",
                    field,
                )
            )
        elif not _gs1_ok(value):
            errors.append(
                _err(f"{kind.upper()} {value!r} has a wrong check digit", "barcode", field)
            )
    return errors


def _check_images(attributes: Mapping[str, Any]) -> list[ItemError]:
    errors = []
    for name, entries in attributes.items():
        if not (name == "main_product_image_locator" or name.startswith("other_product_image")):
            continue
        for entry in entries if isinstance(entries, list) else ():
            url = entry.get("media_location") if isinstance(entry, Mapping) else None
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                errors.append(
                    _err(f"image {url!r} is not an http(s) URL", "image", f"attributes.{name}")
                )
    return errors


def _check_weight(attributes: Mapping[str, Any]) -> list[ItemError]:
    errors = []
    for entry in attributes.get("item_weight") or ():
        value = entry.get("value") if isinstance(entry, Mapping) else None
        number = None if isinstance(value, bool) else as_decimal(value)
        if number is None or number <= 0:
            errors.append(
                _err(
                    f"item_weight must be a number > 0, got {value!r}",
                    "weight",
                    "attributes.item_weight",
                )
            )
    return errors


def _check_child(item: Item, attributes: Mapping[str, Any], ctx: RenderContext) -> list[ItemError]:
    errors = []
    product = ctx.product_of(item)
    parent_ref = item.parents[0] if item.parents else "?"
    if product is None:
        errors.append(
            _err(
                f"the variant's product {parent_ref!r} is not exported (filtered out, invisible "
                "or deleted): Amazon needs the parent listing of a child",
                "missing_parent",
                "attributes.child_parent_sku_relationship",
            )
        )
    theme = _first_value(attributes, "variation_theme", "name")
    if not isinstance(theme, str) or not theme:
        errors.append(
            _err(
                "the variant has no variation attribute (size, color, style...) and its product "
                "names no variation_theme",
                "variation_theme",
                "attributes.variation_theme",
            )
        )
        return errors
    errors.extend(
        _err(
            f"variation theme {theme} needs a {axis!r} value on every variant",
            "variation_value",
            f"attributes.{axis}",
        )
        for axis in theme_axes(theme)
        if axis not in attributes
    )
    return errors


def _check_parent(item: Item, ctx: RenderContext) -> list[ItemError]:
    errors = []
    variants = ctx.variants_of(item)
    theme = theme_of(item, variants, ctx)
    if not theme:
        return [
            _err(
                "the product has variants but none has a variation attribute (size, color...), "
                "and the product names no variation_theme",
                "variation_theme",
                "attributes.variation_theme",
            )
        ]
    axes = theme_axes(theme)
    seen: dict[tuple[str, ...], str] = {}
    for variant in variants:
        own = set(derived_axes([variant], ctx))
        missing = [a for a in axes if a not in own]
        if missing:
            errors.append(
                _err(
                    f"variant {variant.ref!r} has no {', '.join(missing)} value for theme {theme}",
                    "variation_value",
                    f"variants[{variant.ref}]",
                )
            )
            continue
        combo = tuple(str(field_value(variant, ctx, a)) for a in axes)
        if combo in seen:
            errors.append(
                _err(
                    f"variants {seen[combo]!r} and {variant.ref!r} have the same {theme} "
                    f"values {combo}: Amazon needs each child to differ",
                    "variation_duplicate",
                    f"variants[{variant.ref}]",
                )
            )
        seen.setdefault(combo, variant.ref)
    skus: dict[str, str] = {}
    for variant in (item, *variants):
        sku = str(sku_of(variant, ctx))
        if sku in skus:
            errors.append(
                _err(
                    f"{skus[sku]!r} and {variant.ref!r} share the SKU {sku!r}",
                    "sku_duplicate",
                    f"variants[{variant.ref}]",
                )
            )
        skus.setdefault(sku, variant.ref)
    return errors


# =================================================================================================
# Product type definition schemas
# =================================================================================================


def _json_path(parts: Sequence[Any]) -> str:
    out = "attributes"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class SchemaValidator:
    """
    Validate listing attributes against product type definition schemas.

    Args:
        schemas: ``{product type: schema}``; a key ``"SHIRT:LISTING_PRODUCT_ONLY"`` is used for
            that requirements set, else the plain product type key.
        meta_schemas: ``{URI: schema}`` to register besides Amazon's meta-schema (pass the real
            meta-schema here if you have it; a 2019-09 stand-in is registered otherwise).

    Raises:
        InvalidArgumentError: a schema is not a JSON object.
    """

    def __init__(
        self,
        schemas: Mapping[str, Mapping[str, Any]],
        meta_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        for key, schema in schemas.items():
            if not isinstance(schema, Mapping):
                raise InvalidArgumentError(
                    f"the schema of product type {key!r} must be a JSON object",
                    field="product_type_schemas",
                )
        self._schemas = dict(schemas)
        self._meta = dict(meta_schemas or {})
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __contains__(self, product_type: object) -> bool:
        return any(k == product_type or k.partition(":")[0] == product_type for k in self._schemas)

    def _validator(self, key: str) -> Any:
        with self._lock:
            found = self._validators.get(key)
            if found is None:
                found = self._validators[key] = _build(
                    self._schemas[key], self._meta, self._schemas
                )
            return found

    def errors(
        self, product_type: str, requirements: str, attributes: Mapping[str, Any]
    ) -> list[ItemError] | None:
        """The schema violations of *attributes*, or ``None`` when no schema is known."""
        key = f"{product_type}:{requirements}"
        generic = key not in self._schemas
        if generic:
            key = product_type
            if key not in self._schemas:
                return None
        validator = self._validator(key)
        lenient = generic and requirements == "LISTING_PRODUCT_ONLY"
        out: list[ItemError] = []
        for error in sorted(validator.iter_errors(dict(attributes)), key=_error_order):
            if error.validator == "required":
                missing = [
                    n
                    for n in error.validator_value
                    if isinstance(error.instance, Mapping) and n not in error.instance
                ]
                for name in missing:
                    if (
                        lenient
                        and not error.absolute_path
                        and name in _NOT_REQUIRED_FOR_PRODUCT_ONLY
                    ):
                        continue
                    where = _json_path([*error.absolute_path, name])
                    name_ = where.removeprefix("attributes.")
                    message = f"{name_} is required by product type {product_type}"
                    out.append(_err(message, "schema.required", where))
                continue
            out.append(
                _err(
                    f"{product_type}: {error.message}",
                    f"schema.{error.validator}",
                    _json_path(list(error.absolute_path)),
                )
            )
        return list(dict.fromkeys(out))


def _error_order(error: Any) -> tuple[str, str]:
    return (_json_path(list(error.absolute_path)), str(error.validator))


def _build(
    schema: Mapping[str, Any],
    meta: Mapping[str, Mapping[str, Any]],
    others: Mapping[str, Mapping[str, Any]],
) -> Any:
    try:
        import jsonschema  # noqa: PLC0415 - optional extra
        from referencing import Registry, Resource  # noqa: PLC0415
        from referencing.jsonschema import DRAFT201909  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise InvalidArgumentError(
            "validating against product type schemas needs jsonschema: "
            "pip install 'catalogsync[jsonschema]'",
            field="product_type_schemas",
        ) from exc

    stand_in = {
        "$schema": _DRAFT_2019_09,
        "$id": AMAZON_META_SCHEMA,
        "$recursiveAnchor": True,
        "allOf": [{"$ref": _DRAFT_2019_09}],
    }
    resources = [(AMAZON_META_SCHEMA, Resource.from_contents(stand_in, DRAFT201909))]
    resources.extend(
        (uri, Resource.from_contents(dict(body), DRAFT201909)) for uri, body in meta.items()
    )
    for body in others.values():
        uri = body.get("$id")
        if isinstance(uri, str) and uri:
            resources.append((uri, Resource.from_contents(dict(body), DRAFT201909)))
    registry: Any = Registry().with_resources(resources)

    def utf8_max(_v: Any, limit: Any, instance: Any, _s: Any) -> Any:
        if isinstance(instance, str) and len(instance.encode()) > limit:
            yield jsonschema.ValidationError(f"{instance!r} is longer than {limit} UTF-8 bytes")

    def utf8_min(_v: Any, limit: Any, instance: Any, _s: Any) -> Any:
        if isinstance(instance, str) and len(instance.encode()) < limit:
            yield jsonschema.ValidationError(f"{instance!r} is shorter than {limit} UTF-8 bytes")

    # Amazon's vocabulary adds byte-length limits; the rest of it (selectors, editable, hidden)
    # does not constrain values a seller submits.
    cls = jsonschema.validators.extend(
        jsonschema.Draft201909Validator,
        {"maxUtf8ByteLength": utf8_max, "minUtf8ByteLength": utf8_min},
    )
    return cls(dict(schema), registry=registry)
