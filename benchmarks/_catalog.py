"""
Deterministic generated catalogs: realistic products, built on demand, never held in memory.

`GeneratedCatalog` is a `catalogsync.typing.CatalogSource` whose items are pure functions of
their refs: ``C0007`` is a category, ``P0001234`` a product, ``P0001234-V3`` one of its
variants. Nothing is stored, so a catalog of a million items costs no memory and the memory
benchmark measures the library, not the fixture. Products have localised titles and
descriptions (en/es/fr/de), 2-6 images, option names and 3-10 variants (most have 3, so
100,000 products make about 440,000 items); a product's fields weigh 1-3 KB as JSON.

``revision`` and `touch` model edits: a touched product renders a different price, so
the change hasher sees a change.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from catalogsync import Change, Item, ItemType
from catalogsync._demo import ean13


LANGUAGES = ("en", "es", "fr", "de")
_NOUNS = {
    "en": ["Trail shoe", "Rain jacket", "Wool sock", "Canvas bag", "Sun hat", "Fleece"],
    "es": ["Zapatilla", "Chaqueta", "Calcetín", "Bolso", "Sombrero", "Forro polar"],
    "fr": ["Chaussure", "Veste", "Chaussette", "Sac", "Chapeau", "Polaire"],
    "de": ["Laufschuh", "Regenjacke", "Wollsocke", "Tasche", "Sonnenhut", "Fleecejacke"],
}
_SENTENCES = {
    "en": "Made from recycled materials, tested outdoors for a full season and built to last. ",
    "es": "Fabricado con materiales reciclados, probado durante una temporada y hecho para durar. ",
    "fr": "Fabriqué en matériaux recyclés, testé dehors toute une saison et conçu pour durer. ",
    "de": "Aus recycelten Materialien, eine ganze Saison draußen getestet und langlebig gebaut. ",
}
_SIZES = ("XS", "S", "M", "L", "XL", "XXL", "38", "40", "42", "44")
_COLORS = ("Black", "Red", "Blue", "Green", "Sand", "Grey")
_VARIANT_SHAPES = (3,) * 18 + (4, 10)  #: 90% of products have 3 variants, the rest 4-10


def _mix(n: int, salt: int = 0) -> int:
    """A cheap, stable integer hash (no `random`: items are built millions of times)."""
    x = (n * 0x9E3779B1 + salt * 0x85EBCA77) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    return x ^ (x >> 12)


class GeneratedCatalog:
    """
    *products* products in *categories* categories, each item built when asked for.

    Example:
        >>> catalog = GeneratedCatalog(1000)
        >>> len(catalog)  # categories + products + variants
        4404
    """

    def __init__(self, products: int, *, categories: int = 40, revision: int = 0) -> None:
        self.products = products
        self.categories = categories
        self.revision = revision
        self.touched: set[int] = set()

    # -- shape ----------------------------------------------------------------------------------

    def variant_count(self, n: int) -> int:
        shape = _VARIANT_SHAPES[_mix(n, 1) % len(_VARIANT_SHAPES)]
        return shape if shape == 3 else 4 + _mix(n, 2) % 7

    def __len__(self) -> int:
        return self.categories + sum(1 + self.variant_count(n) for n in range(self.products))

    def touch(self, numbers: Collection[int]) -> list[Change]:
        """Edit products *numbers* (their price moves); return the changes a PIM would enqueue."""
        self.touched.update(numbers)
        return [Change(f"P{n:07d}", ItemType.PRODUCT) for n in numbers]

    def changes(self) -> Iterator[Change]:
        """A change for every item: categories, then each product followed by its variants."""
        for c in range(self.categories):
            yield Change(f"C{c:04d}", ItemType.CATEGORY)
        for n in range(self.products):
            ref = f"P{n:07d}"
            yield Change(ref, ItemType.PRODUCT)
            for v in range(1, self.variant_count(n) + 1):
                yield Change(f"{ref}-V{v}", ItemType.VARIANT)

    def product_changes(self) -> Iterator[Change]:
        """A change for every product only (what a PIM sends after a bulk product edit)."""
        for n in range(self.products):
            yield Change(f"P{n:07d}", ItemType.PRODUCT)

    # -- items ----------------------------------------------------------------------------------

    def category(self, c: int) -> Item:
        return Item(
            f"C{c:04d}",
            ItemType.CATEGORY,
            fields={
                "title": {lang: f"{_NOUNS[lang][c % 6]}s {c}" for lang in LANGUAGES},
                "description": {lang: _SENTENCES[lang] for lang in LANGUAGES},
            },
        )

    def _price(self, n: int) -> int:
        return 5 + _mix(n, 3) % 245 + (1 if n in self.touched else 0) + self.revision

    def product(self, n: int) -> Item:
        ref = f"P{n:07d}"
        h = _mix(n, 4)
        price = self._price(n)
        sentences = 2 + h % 4
        title = {lang: f"{_NOUNS[lang][h % 6]} {ref}" for lang in LANGUAGES}
        return Item(
            ref,
            ItemType.PRODUCT,
            fields={
                "title": title,
                "description": {
                    lang: f"<p>{title[lang]}. {_SENTENCES[lang] * sentences}</p>"
                    for lang in LANGUAGES
                },
                "vendor": ("Acme Outdoor", "Northwind", "Contoso Gear")[h % 3],
                "price": price,
                "compare_at_price": price + 20,
                "images": [
                    f"https://cdn.example.com/products/{ref}/{i}.jpg" for i in range(1, 3 + h % 5)
                ],
                "options": ["Size", "Color"],
                "weight": round(0.1 + (h % 240) / 100, 2),
                "material": {"en": "Recycled polyester", "es": "Poliéster reciclado"},
            },
            parents=(f"C{n % self.categories:04d}",),
            tags={"launch"} if n % 10 == 0 else (),
            family=("shoes", "jackets", "socks", "bags", "hats", "accessories")[h % 6],
        )

    def variant(self, n: int, v: int) -> Item:
        ref = f"P{n:07d}"
        price = self._price(n)
        size = _SIZES[(n + v) % len(_SIZES)]
        color = _COLORS[(v + n // len(_SIZES)) % len(_COLORS)]
        return Item(
            f"{ref}-V{v}",
            ItemType.VARIANT,
            fields={
                "sku": f"{ref}-{v:02d}-{size}-{color[:3].upper()}",
                "barcode": ean13(n * 16 + v),
                "price": price,
                "compare_at_price": price + 20,
                "option_values": {"Size": size, "Color": color},
                "stock": _mix(n, v) % 50,
                "weight": round(0.1 + (_mix(n, 5) % 240) / 100, 2),
            },
            parents=(ref,),
        )

    def _build(self, item_type: ItemType, ref: str) -> Item | None:
        try:
            if item_type is ItemType.CATEGORY:
                c = int(ref[1:])
                return self.category(c) if ref[0] == "C" and c < self.categories else None
            if ref[0] != "P":
                return None
            if item_type is ItemType.PRODUCT:
                n = int(ref[1:])
                return self.product(n) if n < self.products else None
            head, _, tail = ref.partition("-V")
            n, v = int(head[1:]), int(tail)
        except (ValueError, IndexError):
            return None
        ok = n < self.products and 1 <= v <= self.variant_count(n)
        return self.variant(n, v) if ok else None

    def families(
        self,
    ) -> tuple[
        list[Item],
        list[Item],
        dict[tuple[ItemType, str], Item],
        dict[tuple[ItemType, str], tuple[str, ...]],
    ]:
        """
        Every product and variant, built once, with what a `RenderContext` needs to render
        products that embed their variants: ``(products, variants, variants by key, variant
        refs by product key)``.
        """
        products: list[Item] = []
        variants: list[Item] = []
        related: dict[tuple[ItemType, str], Item] = {}
        children: dict[tuple[ItemType, str], tuple[str, ...]] = {}
        for n in range(self.products):
            product = self.product(n)
            kids = [self.variant(n, v) for v in range(1, self.variant_count(n) + 1)]
            products.append(product)
            variants.extend(kids)
            related.update((k.key, k) for k in kids)
            children[product.key] = tuple(k.ref for k in kids)
        return products, variants, related, children

    # -- CatalogSource --------------------------------------------------------------------------

    def get(self, item_type: ItemType, refs: Collection[str]) -> Mapping[str, Item]:
        out = {}
        for ref in refs:
            item = self._build(item_type, ref)
            if item is not None:
                out[ref] = item
        return out

    def children(
        self, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, Sequence[str]]:
        out: dict[str, list[str]] = {}
        for parent in parent_refs:
            if child_type is ItemType.VARIANT and parent.startswith("P"):
                n = int(parent[1:])
                out[parent] = (
                    [f"{parent}-V{v}" for v in range(1, self.variant_count(n) + 1)]
                    if n < self.products
                    else []
                )
            elif child_type is ItemType.PRODUCT and parent.startswith("C"):
                c = int(parent[1:])
                out[parent] = [f"P{n:07d}" for n in range(c, self.products, self.categories)]
            else:
                out[parent] = []
        return out

    def scan(self, item_type: ItemType, *, batch_size: int = 1000) -> Iterator[Sequence[Item]]:
        batch: list[Item] = []
        for item in self._all(item_type):
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _all(self, item_type: ItemType) -> Iterator[Item]:
        if item_type is ItemType.CATEGORY:
            yield from (self.category(c) for c in range(self.categories))
        elif item_type is ItemType.PRODUCT:
            yield from (self.product(n) for n in range(self.products))
        else:
            for n in range(self.products):
                yield from (self.variant(n, v) for v in range(1, self.variant_count(n) + 1))

    def __repr__(self) -> str:
        return f"GeneratedCatalog(products={self.products}, categories={self.categories})"


def payload_size(item: Item) -> int:
    """Bytes of an item's fields as compact JSON (the 1-3 KB the issue asks of products)."""
    return len(json.dumps(item.fields, ensure_ascii=False, separators=(",", ":")).encode())


def _check() -> dict[str, Any]:  # pragma: no cover - a manual sanity check
    cat = GeneratedCatalog(1000)
    sizes = sorted(payload_size(cat.product(n)) for n in range(1000))
    return {"items": len(cat), "min": sizes[0], "median": sizes[500], "max": sizes[-1]}


if __name__ == "__main__":  # pragma: no cover
    print(_check())
