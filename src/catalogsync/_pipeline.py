"""
The synchronizer's pure-ish building blocks: batch-scoped reads, exportability, render contexts,
and dependency expansion.

Rule 1: everything here reads (catalog, store) but never writes and never calls a channel's
``push``. The driver in `_sync.py` owns every write and the commit order.

Rule 2: bad data from the catalog never raises out of this module. A ref the catalog fails to
read, or returns as something other than a matching `Item`, becomes an `ItemError` recorded
against that key (`Loader.errors`), and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from functools import partial
from typing import Final

from ._models import (
    Change,
    ChangeKind,
    ConnectorParams,
    ErrorKind,
    ExportStatus,
    Item,
    ItemError,
    ItemKey,
    ItemType,
    Visibility,
)
from ._secrets import get_logger, redact
from .typing import Capabilities, CatalogSource, RenderContext, SentState, StateStore


__all__ = ["PARENT_TYPE", "Exportability", "Loader", "expand", "render_context"]

_log = get_logger("catalogsync.sync")

#: The type an item's ``parents`` refer to.
PARENT_TYPE: Final[Mapping[ItemType, ItemType]] = {
    ItemType.CATEGORY: ItemType.CATEGORY,
    ItemType.PRODUCT: ItemType.CATEGORY,
    ItemType.VARIANT: ItemType.PRODUCT,
}

_TYPE_ORDER: Final = {ItemType.CATEGORY: 0, ItemType.PRODUCT: 1, ItemType.VARIANT: 2}
_CHUNK: Final = 500


def type_order(key: ItemKey) -> int:
    """Categories before products before variants (a product names its categories' ids)."""
    return _TYPE_ORDER[key[0]]


class Loader:
    """
    Batch-scoped, memoised reads of the catalog and the sent states.

    Args:
        catalog: The PIM.
        store: The state store (sent states, stored children).
        connector_id: The connector whose sent states are read.
    """

    def __init__(self, catalog: CatalogSource, store: StateStore, connector_id: str) -> None:
        self.catalog = catalog
        self.store = store
        self.connector_id = connector_id
        self._items: dict[ItemKey, Item | None] = {}
        self._states: dict[ItemKey, SentState | None] = {}
        self._children: dict[tuple[ItemType, str], tuple[str, ...]] = {}
        self._stored_children: dict[tuple[ItemType, str], tuple[str, ...]] = {}
        #: Keys the catalog could not read, with the reason.
        self.errors: dict[ItemKey, ItemError] = {}

    # -- catalog ------------------------------------------------------------------------------

    def items(self, item_type: ItemType, refs: Iterable[str]) -> dict[str, Item]:
        """Current items among *refs* (absent ones do not exist or could not be read)."""
        wanted = [r for r in dict.fromkeys(refs) if (item_type, r) not in self._items]
        if wanted:
            self._fetch(item_type, wanted)
        out: dict[str, Item] = {}
        for ref in refs:
            item = self._items.get((item_type, ref))
            if item is not None:
                out[ref] = item
        return out

    def item(self, item_type: ItemType, ref: str) -> Item | None:
        """One item, or ``None``."""
        key = (item_type, ref)
        if key in self._items:
            return self._items[key]
        return self.items(item_type, [ref]).get(ref)

    def _fetch(self, item_type: ItemType, refs: list[str]) -> None:
        try:
            found = self.catalog.get(item_type, refs)
        except Exception as exc:  # noqa: BLE001 - a PIM failure must not lose the batch
            if len(refs) == 1:
                self._broken(item_type, refs[0], f"the catalog could not read it: {exc!r}")
                return
            _log.warning(
                "catalog.get(%s, %d refs) failed; retrying one by one", item_type, len(refs)
            )
            for ref in refs:
                self._fetch(item_type, [ref])
            return
        for ref in refs:
            value = found.get(ref) if isinstance(found, Mapping) else None
            if value is None:
                self._items[(item_type, ref)] = None
            elif not isinstance(value, Item) or value.type is not item_type or value.ref != ref:
                self._broken(
                    item_type,
                    ref,
                    f"the catalog returned {type(value).__name__} "
                    f"{getattr(value, 'type', '?')}/{getattr(value, 'ref', '?')!s:.60} "
                    "instead of this item",
                )
            else:
                self._items[(item_type, ref)] = value

    def _broken(self, item_type: ItemType, ref: str, message: str) -> None:
        self._items[(item_type, ref)] = None
        self.errors[(item_type, ref)] = ItemError(
            ErrorKind.VALIDATION, redact(message)[:1000], "catalog_read_failed"
        )

    def children(
        self, child_type: ItemType, parent_refs: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """Current child refs of *child_type* for each parent, in catalog order."""
        parents = list(dict.fromkeys(parent_refs))
        wanted = [p for p in parents if (child_type, p) not in self._children]
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            try:
                found = self.catalog.children(child_type, chunk)
            except Exception:  # noqa: BLE001 - treat as "no children known"
                _log.warning("catalog.children(%s) failed", child_type, exc_info=True)
                found = {}
            for parent in chunk:
                refs = found.get(parent, ()) if isinstance(found, Mapping) else ()
                self._children[(child_type, parent)] = tuple(
                    r for r in refs if isinstance(r, str) and r
                )
        return {p: self._children[(child_type, p)] for p in parents}

    # -- store --------------------------------------------------------------------------------

    def states(self, item_type: ItemType, refs: Iterable[str]) -> dict[str, SentState]:
        """Sent states among *refs*."""
        refs = list(dict.fromkeys(refs))
        wanted = [r for r in refs if (item_type, r) not in self._states]
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found = self.store.sent_states(self.connector_id, item_type, chunk)
            for ref in chunk:
                self._states[(item_type, ref)] = found.get(ref)
        out: dict[str, SentState] = {}
        for ref in refs:
            state = self._states.get((item_type, ref))
            if state is not None:
                out[ref] = state
        return out

    def state(self, item_type: ItemType, ref: str) -> SentState | None:
        """One sent state, or ``None``."""
        key = (item_type, ref)
        if key in self._states:
            return self._states[key]
        return self.states(item_type, [ref]).get(ref)

    def stored_children(
        self, child_type: ItemType, parent_refs: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """Delivered child refs of *child_type* that named each parent when they were sent."""
        parents = list(dict.fromkeys(parent_refs))
        wanted = [p for p in parents if (child_type, p) not in self._stored_children]
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            found = self.store.sent_children(self.connector_id, child_type, chunk)
            for parent in chunk:
                self._stored_children[(child_type, parent)] = tuple(found.get(parent, ()))
        return {p: self._stored_children[(child_type, p)] for p in parents}


class Exportability:
    """
    Whether an item is exported under a connector's parameters (rules R02, R07, R10, R12, R15).

    * ``export_status=ONLY_VISIBLE`` exports visible items only.
    * ``refs``/``tags``/``families`` filters apply to categories and products; a variant follows
      its product (it passes a filter when its product does, or when it matches itself).
    * A variant is exported only with its product.
    * Without ``include_empty_categories``, a category is exported only when at least one of its
      products is.
    """

    def __init__(self, params: ConnectorParams, loader: Loader) -> None:
        self.params = params
        self.loader = loader
        self._cache: dict[ItemKey, bool] = {}
        # The common case, no filter at all: only relations and visibility matter.
        self._unfiltered = not (params.refs or params.tags or params.families)
        self._all_visible = params.export_status is ExportStatus.ALL

    def _matches(self, item: Item) -> bool:
        p = self.params
        if p.refs and item.ref not in p.refs:
            return False
        if p.tags and not (item.tags & p.tags):
            return False
        return not (p.families and item.type is ItemType.PRODUCT and item.family not in p.families)

    def __call__(self, item: Item) -> bool:
        key = (item.type, item.ref)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._decide(item)
        return cached

    def _decide(self, item: Item) -> bool:
        if not self._all_visible and item.visibility is not Visibility.VISIBLE:
            return False
        if item.type is ItemType.VARIANT:
            product = self.loader.item(ItemType.PRODUCT, item.parents[0])
            if product is None or not self(product):
                return False
            return self._unfiltered or self._variant_matches(item, product)
        if not self._unfiltered and not self._matches(item):
            return False
        if item.type is ItemType.CATEGORY and not self.params.include_empty_categories:
            return self._has_exportable_product(item)
        return True

    def _variant_matches(self, variant: Item, product: Item) -> bool:
        p = self.params
        if p.refs and variant.ref not in p.refs and product.ref not in p.refs:
            return False
        if p.tags and not ((variant.tags | product.tags) & p.tags):
            return False
        return not (p.families and (variant.family or product.family) not in p.families)

    def _has_exportable_product(self, category: Item) -> bool:
        refs = self.loader.children(ItemType.PRODUCT, [category.ref])[category.ref]
        # Usually the first product settles it: read a few, then geometrically more, so a big
        # category costs a handful of catalog reads per batch, not all its products.
        start, size = 0, 8
        while start < len(refs):
            chunk = refs[start : start + size]
            products = self.loader.items(ItemType.PRODUCT, chunk)
            if any(self(p) for p in products.values()):
                return True
            start, size = start + size, min(size * 8, _CHUNK)
        return False


def render_context(
    params: ConnectorParams,
    capabilities: Capabilities,
    loader: Loader,
    exportable: Exportability,
    items: Collection[Item],
) -> RenderContext:
    """
    Build the `RenderContext` for *items*: the exportable related items the channel reads
    (`Capabilities.reads`), children lists, and the channel ids of related items.
    """
    related: dict[ItemKey, Item] = {}
    children: dict[ItemKey, tuple[str, ...]] = {}
    reads = capabilities.reads
    products = [i for i in items if i.type is ItemType.PRODUCT]
    variants = [i for i in items if i.type is ItemType.VARIANT]
    categories = [i for i in items if i.type is ItemType.CATEGORY]

    if products and (ItemType.PRODUCT, ItemType.VARIANT) in reads:
        kids = loader.children(ItemType.VARIANT, [p.ref for p in products])
        found = loader.items(ItemType.VARIANT, [r for refs in kids.values() for r in refs])
        for product in products:
            keep = tuple(
                r
                for r in kids[product.ref]
                if r in found and exportable(found[r]) and found[r].parents[0] == product.ref
            )
            children[(ItemType.PRODUCT, product.ref)] = keep
            for r in keep:
                related[(ItemType.VARIANT, r)] = found[r]
    if products and (ItemType.PRODUCT, ItemType.CATEGORY) in reads:
        found = loader.items(ItemType.CATEGORY, [c for p in products for c in p.parents])
        for category in found.values():
            if exportable(category):
                related[category.key] = category
    if variants and (ItemType.VARIANT, ItemType.PRODUCT) in reads:
        found = loader.items(ItemType.PRODUCT, [v.parents[0] for v in variants])
        for product in found.values():
            if exportable(product):
                related[product.key] = product
    if categories and (ItemType.CATEGORY, ItemType.CATEGORY) in reads:
        found = loader.items(ItemType.CATEGORY, [c.parents[0] for c in categories if c.parents])
        for parent in found.values():
            if exportable(parent):
                related[parent.key] = parent

    # Only the ids the channel declares it reads (`Capabilities.reads_ids`): looking up the sent
    # state of every related variant would cost a store read per variant for nothing.
    id_types = {source for _, source in capabilities.reads_ids}
    channel_ids: dict[ItemKey, str] = {}
    by_type: dict[ItemType, list[str]] = {}
    for item_type, ref in related:
        if item_type in id_types:
            by_type.setdefault(item_type, []).append(ref)
    for item_type, refs in by_type.items():
        for ref, state in loader.states(item_type, refs).items():
            if state.channel_id:
                channel_ids[(item_type, ref)] = state.channel_id
    return RenderContext(params, related, children, channel_ids)


def readers_of(
    pairs: Iterable[tuple[ItemType, ItemType]], loader: Loader, keys: Iterable[ItemKey]
) -> set[ItemKey]:
    """
    The items whose payload reads any of *keys* (rule R01), from the catalog's current relations
    and from the relations remembered when items were sent (a deleted or moved item's old family).
    """
    by_type: dict[ItemType, set[str]] = {}
    for item_type, ref in keys:
        by_type.setdefault(item_type, set()).add(ref)
    found: set[ItemKey] = set()
    for reader, source in pairs:
        refs = by_type.get(source)
        if not refs:
            continue
        if PARENT_TYPE[reader] is source:
            # readers name the changed items in their parents: products of a category, variants
            # of a product, subcategories of a category
            for kids in loader.children(reader, refs).values():
                found.update((reader, r) for r in kids)
            for kids in loader.stored_children(reader, refs).values():
                found.update((reader, r) for r in kids)
        elif PARENT_TYPE[source] is reader:
            # the changed items name their readers: the product of a variant, a category's
            # parent, the categories of a product
            current = loader.items(source, refs)
            for item in current.values():
                found.update((reader, p) for p in item.parents)
            for state in loader.states(source, refs).values():
                found.update((reader, p) for p in state.parents)
    return found


def reader_changes(
    pairs: Iterable[tuple[ItemType, ItemType]],
    keys: Iterable[ItemKey],
    new_loader: Callable[[], Loader],
    *,
    exclude: Container[ItemKey] = (),
    size: int = 1000,
) -> Iterator[list[Change]]:
    """
    Yield ``UPSERT`` changes for the readers of *keys* (`readers_of`), at most *size* per list,
    each ordered categories, products, variants, without holding them all at once.

    A category's readers are all its products (hundreds of thousands in a big catalog), so
    categories are expanded one at a time with a fresh `Loader` each; other keys, whose readers
    are a product's variants or an item's parents, *size* at a time. A reader of several keys
    may be yielded more than once; the queue coalesces it.
    """
    pairs = tuple(pairs)
    keys = list(keys)
    narrow = [k for k in keys if k[0] is not ItemType.CATEGORY]
    groups = [narrow[i : i + size] for i in range(0, len(narrow), size)]
    groups += [[k] for k in keys if k[0] is ItemType.CATEGORY]
    for group in groups:
        found = [k for k in readers_of(pairs, new_loader(), group) if k not in exclude]
        found.sort(key=type_order)
        for start in range(0, len(found), size):
            yield [Change(ref, t, ChangeKind.UPSERT) for t, ref in found[start : start + size]]


def expand(
    changes: Iterable[Change],
    capabilities: Capabilities,
    catalog: CatalogSource,
    store: StateStore,
    connector_id: str,
    *,
    chunk: int = 1000,
) -> Iterator[list[Change]]:
    """
    Yield *changes* in chunks, each extended with the readers of its items (as ``UPSERT``
    changes) and ordered categories, products, variants.

    The readers of a chunk's categories (their products) follow the chunk in lists of at most
    *chunk* changes (`reader_changes`), so memory stays flat however big the categories are.
    """
    new_loader = partial(Loader, catalog, store, connector_id)
    buffer: list[Change] = []
    for change in changes:
        buffer.append(change)
        if len(buffer) >= chunk:
            yield from _expand_chunk(buffer, capabilities, new_loader, chunk)
            buffer = []
    if buffer:
        yield from _expand_chunk(buffer, capabilities, new_loader, chunk)


def _expand_chunk(
    changes: list[Change],
    capabilities: Capabilities,
    new_loader: Callable[[], Loader],
    size: int,
) -> Iterator[list[Change]]:
    latest: dict[ItemKey, Change] = {}
    for change in changes:
        latest[change.key] = change  # the newest change of a key wins, as in the queue
    pairs = set(capabilities.reads)
    # A category is exported only while it has an exportable product (unless the connector
    # includes empty categories), so a product's change re-examines its categories too.
    pairs.add((ItemType.CATEGORY, ItemType.PRODUCT))
    # the chunk with the few readers of its products and variants (their parents and variants)
    narrow = [k for k in latest if k[0] is not ItemType.CATEGORY]
    derived = readers_of(pairs, new_loader(), narrow) - latest.keys()
    out = list(latest.values())
    out.extend(Change(ref, item_type, ChangeKind.UPSERT) for item_type, ref in derived)
    out.sort(key=lambda c: _TYPE_ORDER[c.type])
    yield out
    # then the many readers of its categories, a bounded list at a time
    wide = [k for k in latest if k[0] is ItemType.CATEGORY]
    yield from reader_changes(pairs, wide, new_loader, exclude=latest.keys(), size=size)
