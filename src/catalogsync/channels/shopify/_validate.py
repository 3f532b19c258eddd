"""
Local validation of rendered Shopify payloads (rule R13: every problem at once).

Rule 1: each check mirrors a limit Shopify enforces (documented, or visible in the schema's
user-error codes), so an item that passes here fails in Shopify only for reasons we cannot see
locally (a taken handle, a disabled locale, a missing scope).

Rule 2: field paths are relative to the payload's ``input``: ``variants[2].price``,
``files[0].originalSource``; a variant validated on its own reports ``price``.

Codes reuse Shopify's user-error codes where one fits (``OPTIONS_OVER_LIMIT``,
``VARIANTS_OVER_LIMIT``, ``DUPLICATED_OPTION_NAME``...), so a message reads the same whether we
caught it or Shopify did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit

from ..._models import ErrorKind, Item, ItemError, ItemType
from .._json import unencodable


__all__ = ["validate"]

MAX_TITLE: Final = 255
MAX_HANDLE: Final = 255
MAX_TEXT: Final = 255  # vendor, product type, SKU, barcode, option names and values, tags
MAX_OPTIONS: Final = 3
MAX_VARIANTS: Final = 2048
MAX_LIST: Final = 250  # Shopify caps input arrays at 250 entries
MAX_URL: Final = 2048
MAX_QUANTITY: Final = 1_000_000_000
STATUSES: Final = frozenset({"ACTIVE", "DRAFT", "ARCHIVED", "UNLISTED"})
POLICIES: Final = frozenset({"DENY", "CONTINUE"})


class _Errors:
    """Collects errors under a path prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.items: list[ItemError] = []

    def path(self, name: str) -> str:
        if not self.prefix:
            return name
        return f"{self.prefix}{name}" if name.startswith("[") else f"{self.prefix}.{name}"

    def add(self, name: str, code: str, message: str) -> None:
        self.items.append(
            ItemError(ErrorKind.VALIDATION, message, code=code, field=self.path(name) or None)
        )


def validate(item: Item, payload: Mapping[str, Any]) -> list[ItemError]:
    """Every problem of *payload* rendered for *item*."""
    if item.type is ItemType.VARIANT:
        errors = _Errors()
        _variant(payload, errors)
        _wire(payload, errors)
        return errors.items
    data = payload.get("input")
    if not isinstance(data, Mapping):
        return [ItemError(ErrorKind.VALIDATION, "the payload has no input", code="INVALID")]
    errors = _Errors()
    _title(data, errors)
    _text(data, "handle", errors, MAX_HANDLE)
    handle = data.get("handle")
    if isinstance(handle, str) and (
        not handle.strip() or any(c.isspace() or c in "/?#" for c in handle)
    ):
        errors.add(
            "handle",
            "INVALID",
            f"handle {handle!r} may not be blank or contain spaces, '/', '?' or '#'",
        )
    _metafields(data.get("metafields"), errors)
    _translations(payload.get("translations"), errors)
    if item.type is ItemType.CATEGORY:
        image = data.get("image")
        if isinstance(image, Mapping):
            _url(image.get("src"), "image.src", errors)
        _wire(data, errors)
        _wire(payload.get("translations"), errors, "translations")
        return errors.items
    _product(data, errors)
    _wire(data, errors)
    _wire(payload.get("translations"), errors, "translations")
    return errors.items


def _wire(data: Any, errors: _Errors, root: str = "") -> None:
    """
    Report the first value the JSON request body cannot carry (a Decimal, a set, bytes, NaN or
    an infinity, a non-text key): it would fail the whole request, and with it every operation
    sent alongside, instead of this item alone.
    """
    found = unencodable(data, root)
    if found is not None:
        path, problem = found
        errors.add(path, "INVALID", f"{path or 'the payload'}: {problem}")


def _title(data: Mapping[str, Any], errors: _Errors) -> None:
    title = data.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        errors.add("title", "BLANK", "title is required")
    else:
        _text(data, "title", errors, MAX_TITLE)


def _text(data: Mapping[str, Any], name: str, errors: _Errors, limit: int = MAX_TEXT) -> None:
    value = data.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        errors.add(name, "INVALID", f"{name} must be text, got {type(value).__name__}")
    elif len(value) > limit:
        errors.add(
            name, "TOO_LONG", f"{name} is {len(value)} characters long; the limit is {limit}"
        )


def _count(value: Any, name: str, errors: _Errors, limit: int, code: str = "TOO_MANY") -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(name, "INVALID", f"{name} must be a list")
        return []
    if len(value) > limit:
        errors.add(name, code, f"{name} has {len(value)} entries; the limit is {limit}")
    return value


def _url(value: Any, name: str, errors: _Errors) -> None:
    if not isinstance(value, str):
        errors.add(name, "INVALID_URL", f"{name} must be a URL, got {type(value).__name__}")
        return
    parts = urlsplit(value)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.netloc
        or any(c.isspace() for c in value)
        or len(value) > MAX_URL
    ):
        errors.add(name, "INVALID_URL", f"{name} {value[:200]!r} is not an absolute http(s) URL")


def _decimal(value: Any, name: str, errors: _Errors) -> Decimal | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else None
    try:
        number = Decimal(text) if text is not None else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        errors.add(name, "INVALID_PRICE", f"{name} {value!r} is not a decimal amount")
        return None
    if number < 0:
        errors.add(name, "INVALID_PRICE", f"{name} {value} is negative")
        return None
    return number


def _variant(fragment: Any, errors: _Errors) -> list[tuple[str, Any]]:
    if not isinstance(fragment, Mapping):
        errors.add("", "INVALID", "the variant is not an object")
        return []
    price = _decimal(fragment.get("price"), "price", errors)
    compare = _decimal(fragment.get("compareAtPrice"), "compareAtPrice", errors)
    if price is not None and compare is not None and compare < price:
        errors.add(
            "compareAtPrice", "INVALID_PRICE", f"compareAtPrice {compare} is below price {price}"
        )
    _text(fragment, "sku", errors)
    _text(fragment, "barcode", errors)
    policy = fragment.get("inventoryPolicy")
    if policy is not None and policy not in POLICIES:
        errors.add(
            "inventoryPolicy", "INVALID", f"inventoryPolicy {policy!r} is not DENY or CONTINUE"
        )
    taxable = fragment.get("taxable")
    if taxable is not None and not isinstance(taxable, bool):
        errors.add("taxable", "INVALID", "taxable must be true or false")
    file = fragment.get("file")
    if isinstance(file, Mapping):
        _url(file.get("originalSource"), "file.originalSource", errors)
    _quantities(fragment.get("inventoryQuantities"), errors)
    return _option_values(fragment.get("optionValues"), errors)


def _quantities(value: Any, errors: _Errors) -> None:
    for i, q in enumerate(value or ()):
        quantity = q.get("quantity") if isinstance(q, Mapping) else None
        name = f"inventoryQuantities[{i}].quantity"
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            errors.add(name, "INVALID_QUANTITY", f"stock {quantity!r} is not a whole number")
        elif abs(quantity) > MAX_QUANTITY:
            errors.add(name, "INVALID_QUANTITY", f"stock {quantity} is beyond ±{MAX_QUANTITY:,}")


def _option_values(value: Any, errors: _Errors) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for i, option in enumerate(value or ()):
        name = f"optionValues[{i}].name"
        option_value = option.get("name") if isinstance(option, Mapping) else None
        option_name = option.get("optionName") if isinstance(option, Mapping) else None
        if not isinstance(option_value, str) or not option_value.strip():
            errors.add(name, "BLANK", f"option {option_name!r} has no value")
        elif len(option_value) > MAX_TEXT:
            errors.add(name, "TOO_LONG", f"option value is longer than {MAX_TEXT} characters")
        pairs.append((str(option_name), option_value))
    return pairs


def _product(data: Mapping[str, Any], errors: _Errors) -> None:
    for name in ("vendor", "productType"):
        _text(data, name, errors)
    status = data.get("status")
    if status not in STATUSES:
        errors.add(
            "status", "INVALID_STATUS", f"status {status!r} is not one of {sorted(STATUSES)}"
        )
    tags = _count(data.get("tags"), "tags", errors, MAX_LIST)
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip() or "," in tag or len(tag) > MAX_TEXT:
            errors.add(
                f"tags[{i}]", "INVALID_TAG", f"tag {tag!r} must be 1-255 characters without commas"
            )
    _count(data.get("collections"), "collections", errors, MAX_LIST)
    for i, file in enumerate(_count(data.get("files"), "files", errors, MAX_LIST)):
        _url(
            file.get("originalSource") if isinstance(file, Mapping) else None,
            f"files[{i}].originalSource",
            errors,
        )
    names = _options(data.get("productOptions"), errors)
    variants = _count(data.get("variants"), "variants", errors, MAX_VARIANTS, "VARIANTS_OVER_LIMIT")
    if not variants:
        errors.add("variants", "VARIANTS_INPUT_MISSING", "a product needs at least one variant")
    seen: dict[tuple[Any, ...], int] = {}
    for i, fragment in enumerate(variants):
        scoped = _Errors(errors.path(f"variants[{i}]"))
        pairs = _variant(fragment, scoped)
        errors.items.extend(scoped.items)
        _coverage(pairs, names, i, errors)
        combo = tuple(sorted((n, v) for n, v in pairs if isinstance(v, str)))
        if combo in seen:
            shown = ", ".join(f"{n}={v}" for n, v in combo)
            errors.add(
                f"variants[{i}].optionValues",
                "DUPLICATED_OPTION_VALUE",
                f"variants[{i}] repeats the options of variants[{seen[combo]}] ({shown})",
            )
        else:
            seen[combo] = i


def _options(value: Any, errors: _Errors) -> list[str]:
    options = _count(value, "productOptions", errors, MAX_OPTIONS, "OPTIONS_OVER_LIMIT")
    names: list[str] = []
    for i, option in enumerate(options):
        name = option.get("name") if isinstance(option, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            errors.add(f"productOptions[{i}].name", "BLANK", "an option needs a name")
            continue
        if len(name) > MAX_TEXT:
            errors.add(
                f"productOptions[{i}].name",
                "TOO_LONG",
                f"option name is longer than {MAX_TEXT} characters",
            )
        if name in names:
            errors.add(
                f"productOptions[{i}].name",
                "DUPLICATED_OPTION_NAME",
                f"option {name!r} appears twice",
            )
        names.append(name)
    return names


def _coverage(
    pairs: Sequence[tuple[str, Any]], names: Sequence[str], index: int, errors: _Errors
) -> None:
    given = [n for n, _ in pairs]
    for name in names:
        if name not in given:
            errors.add(
                f"variants[{index}].optionValues",
                "OPTION_VALUES_MISSING",
                f"variants[{index}] has no value for option {name!r}",
            )
    for name in given:
        if name not in names:
            errors.add(
                f"variants[{index}].optionValues",
                "OPTION_DOES_NOT_EXIST",
                f"variants[{index}] names option {name!r}, which the product does not have",
            )
    if len(set(given)) != len(given):
        errors.add(
            f"variants[{index}].optionValues",
            "DUPLICATED_OPTION_NAME",
            f"variants[{index}] gives an option twice",
        )


def _metafields(value: Any, errors: _Errors) -> None:
    for i, field in enumerate(_count(value, "metafields", errors, MAX_LIST)):
        ok = isinstance(field, Mapping) and all(
            isinstance(field.get(k), str) and field.get(k)
            for k in ("namespace", "key", "type", "value")
        )
        if not ok:
            errors.add(
                f"metafields[{i}]",
                "INVALID_METAFIELD",
                "a metafield needs namespace, key, type and value as text",
            )


def _translations(value: Any, errors: _Errors) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        errors.add("translations", "INVALID", "translations must map locales to values")
        return
    for locale, keys in value.items():
        for key, text in (keys or {}).items():
            if isinstance(text, str) and len(text) > MAX_TITLE and key == "title":
                errors.add(
                    f"translations.{locale}.{key}",
                    "TOO_LONG",
                    f"the {locale} title is {len(text)} characters long; the limit is {MAX_TITLE}",
                )
