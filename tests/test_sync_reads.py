"""How the synchronizer reads the catalog and the store: in batches, and only what it needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from catalogsync import (
    Change,
    Item,
    ItemType,
    MemoryCatalog,
    MemoryQueue,
    MemoryStore,
    Synchronizer,
)
from catalogsync.testing import ManualClock, MemoryChannel
from catalogsync.typing import Payload, RenderContext

from _syncenv import C, P, V, everything, make_sync


class RecordingCatalog(MemoryCatalog):
    """
    A memory catalog that records its reads: `get` calls (a PIM query each) and the refs they
    ask for, per item type, and the number of parents of each `children` call.
    """

    def __init__(self, items: list[Item]) -> None:
        super().__init__(items)
        self.gets: Counter[ItemType] = Counter()
        self.refs: Counter[ItemType] = Counter()
        self.children_calls: list[tuple[ItemType, int]] = []

    def get(self, item_type: ItemType, refs: Collection[str]) -> Mapping[str, Item]:
        self.gets[item_type] += 1
        self.refs[item_type] += len(refs)
        return super().get(item_type, refs)

    def children(self, child_type: ItemType, parent_refs: Collection[str]) -> Any:
        self.children_calls.append((child_type, len(parent_refs)))
        return super().children(child_type, parent_refs)


def catalog_of(products: int, variants: int) -> list[Item]:
    items = [Item("C1", C, fields={"title": "Shoes"})]
    for n in range(products):
        items.append(Item(f"P{n}", P, fields={"title": f"Shoe {n}", "price": 10}, parents=["C1"]))
        items.extend(
            Item(f"P{n}-V{v}", V, fields={"sku": f"S{n}-{v}", "price": 10}, parents=[f"P{n}"])
            for v in range(variants)
        )
    return items


def test_a_batch_of_variants_reads_its_products_in_one_catalog_call(backends, clock):
    queue, store = backends
    catalog = RecordingCatalog(catalog_of(products=60, variants=3))
    sync = make_sync(queue, store, clock, catalog)
    sync.enqueue(everything(catalog))
    first = sync.run()
    assert first.synchronized.total == 1 + 60 + 180
    catalog.gets.clear()
    # only the variants changed: each batch of 100 variants needs the products of its variants

    sync.enqueue(Change(i.ref, V) for i in catalog.items(V))
    second = sync.run()
    assert second.unchanged.total >= 180
    batches = second.batches
    # one product read per variant batch (plus the product phase's own), never one per product
    assert catalog.gets[P] <= 2 * batches, (catalog.gets, batches)
    assert catalog.gets[P] < 60


class IdSpy(MemoryChannel):
    """A memory channel that remembers which related channel ids a product's render saw."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[dict[str, str | None]] = []

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        if item.type is P:
            self.seen.append(
                {
                    "category": ctx.channel_id(C, "C1"),
                    "variant": ctx.channel_id(V, f"{item.ref}-V0"),
                }
            )
        return super().render(item, ctx)


def test_render_context_holds_the_ids_the_channel_declares_it_reads(tmp_path):

    clock = ManualClock()
    catalog = RecordingCatalog(catalog_of(products=2, variants=1))
    channel = IdSpy(clock=clock)  # reads (P, V) and (P, C); reads_ids only (P, C)
    sync = make_sync(MemoryQueue(clock=clock), MemoryStore(clock=clock), clock, catalog, channel)
    sync.enqueue(everything(catalog))
    sync.run()
    channel.seen.clear()

    sync.enqueue([Change("P0", P)])
    sync.run()
    assert channel.seen, "P0 was rendered again"
    # the category's id is there (declared in reads_ids); the variant's, though stored, is not
    assert channel.seen[-1] == {"category": "mem:category:C1", "variant": None}


def test_a_big_categorys_exportability_reads_a_few_products_not_all():
    from catalogsync import ConnectorParams
    from catalogsync._pipeline import Exportability, Loader

    catalog = RecordingCatalog(catalog_of(products=2000, variants=0))
    loader = Loader(catalog, MemoryStore(), "shop")
    exportable = Exportability(ConnectorParams(), loader)
    assert exportable(catalog.get(C, ["C1"])["C1"])
    assert catalog.refs[P] <= 8  # the first few products settle it


def test_a_category_whose_products_are_all_hidden_is_not_exported():
    from catalogsync import ConnectorParams, ExportStatus, Visibility
    from catalogsync._pipeline import Exportability, Loader

    visible_only = ConnectorParams(export_status=ExportStatus.ONLY_VISIBLE)

    items = catalog_of(products=700, variants=0)
    items = [
        Item(i.ref, i.type, fields=i.fields, parents=i.parents, visibility=Visibility.DRAFT)
        if i.type is P and i.ref != "P699"
        else i
        for i in items
    ]
    catalog = RecordingCatalog(items)
    exportable = Exportability(visible_only, Loader(catalog, MemoryStore(), "shop"))
    assert exportable(catalog.get(C, ["C1"])["C1"])  # the last product is visible
    hidden = RecordingCatalog([i for i in items if i.ref != "P699"])
    exportable = Exportability(visible_only, Loader(hidden, MemoryStore(), "shop"))
    assert not exportable(hidden.get(C, ["C1"])["C1"])
    assert hidden.refs[P] == 699  # every product looked at once, none twice


class RecordingQueue:
    """Delegates to a queue and records the size of every `enqueue` call."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.enqueued: list[int] = []

    def enqueue(self, connector_id: str, changes: Any, **kwargs: Any) -> Any:
        changes = list(changes)
        self.enqueued.append(len(changes))
        return self._queue.enqueue(connector_id, changes, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def enqueue_big_categories(
    queue: Any, store: Any, clock: ManualClock
) -> tuple[RecordingCatalog, RecordingQueue, Synchronizer]:
    """Two categories of 1,500 products each, the categories enqueued through a RecordingQueue."""
    items = [Item(f"C{c}", C, fields={"title": f"Cat {c}"}) for c in range(2)]
    items += [
        Item(f"P{n}", P, fields={"title": f"Shoe {n}", "price": 1}, parents=[f"C{n % 2}"])
        for n in range(3000)
    ]
    catalog = RecordingCatalog(items)
    recording = RecordingQueue(queue)
    sync = make_sync(recording, store, clock, catalog)
    sync.enqueue([Change(f"C{c}", C) for c in range(2)])
    return catalog, recording, sync


def product_listings(catalog: RecordingCatalog) -> list[int]:
    """The number of categories of each `children(PRODUCT, ...)` call."""
    return [n for t, n in catalog.children_calls if t is P]


def test_enqueueing_categories_queues_their_products_in_bounded_chunks(backends, clock):
    # A changed category is re-read by all its products (rule R01): in a big catalog that is
    # hundreds of thousands of readers, which must be listed one category at a time and queued
    # 1,000 at a time, never held all at once.
    queue, store = backends
    catalog, recording, _ = enqueue_big_categories(queue, store, clock)

    assert queue.counts("shop").product == 3000
    assert max(recording.enqueued) <= 1000, recording.enqueued
    product_lists = product_listings(catalog)
    assert product_lists
    assert max(product_lists) == 1, product_lists


def test_the_readers_of_new_category_ids_are_queued_in_bounded_chunks(backends, clock):
    # Products read their categories' channel ids: when categories get ids, their products are
    # queued again; as above, a bounded list at a time.
    catalog, recording, sync = enqueue_big_categories(*backends, clock)
    recording.enqueued.clear()
    catalog.children_calls.clear()
    result = sync.run()

    # every product was queued (as a reader of its new category) and synchronized
    assert result.synchronized[P] == 3000
    assert max(recording.enqueued) <= 1000, recording.enqueued
    assert sum(recording.enqueued) >= 3000  # the readers, queued before and after the push
    product_lists = product_listings(catalog)
    assert product_lists, "the categories' products were listed"
    assert max(product_lists) == 1, product_lists  # one category's products at a time
