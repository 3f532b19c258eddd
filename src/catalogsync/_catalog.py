"""`MemoryCatalog`: a `CatalogSource` over dicts, for notebooks, tests and small catalogs."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from ._errors import InvalidArgumentError
from ._models import Item, ItemType


__all__ = ["MemoryCatalog"]


class MemoryCatalog:
    """
    A thread-safe, in-memory `catalogsync.typing.CatalogSource`.

    Items are kept in insertion order, which is the order `children` and `scan` return.

    Example:
        >>> from catalogsync import Item, ItemType, MemoryCatalog
        >>> catalog = MemoryCatalog([
        ...     Item("C1", ItemType.CATEGORY, fields={"title": "Shoes"}),
        ...     Item("P1", ItemType.PRODUCT, fields={"title": "Trail shoe"}, parents=["C1"]),
        ...     Item("V1", ItemType.VARIANT, fields={"sku": "TS-42"}, parents=["P1"]),
        ... ])
        >>> catalog.children(ItemType.VARIANT, ["P1"])
        {'P1': ['V1']}
        >>> sorted(catalog.get(ItemType.PRODUCT, ["P1", "P404"]))
        ['P1']

    .. versionadded:: 0.1.0
    """

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._lock = threading.RLock()
        self._items: dict[ItemType, dict[str, Item]] = {t: {} for t in ItemType}
        # child type -> parent ref -> ordered set of child refs
        self._children: dict[ItemType, dict[str, dict[str, None]]] = {t: {} for t in ItemType}
        self.put(*items)

    def put(self, *items: Item) -> None:
        """Insert or replace items (relations are re-indexed)."""
        with self._lock:
            for item in items:
                if not isinstance(item, Item):
                    raise InvalidArgumentError(
                        f"MemoryCatalog.put takes Item values, got {type(item).__name__}",
                        field="MemoryCatalog.put",
                    )
                old = self._items[item.type].get(item.ref)
                self._items[item.type][item.ref] = item
                if old is not None and old.parents == item.parents:
                    continue  # same relations: keep its place among its siblings
                if old is not None:
                    self._unindex(old)
                index = self._children[item.type]
                for parent in item.parents:
                    index.setdefault(parent, {})[item.ref] = None

    def remove(self, item_type: ItemType, *refs: str) -> None:
        """Remove items (missing refs are ignored)."""
        with self._lock:
            for ref in refs:
                old = self._items[ItemType(item_type)].pop(ref, None)
                if old is not None:
                    self._unindex(old)

    def _unindex(self, item: Item) -> None:
        index = self._children[item.type]
        for parent in item.parents:
            siblings = index.get(parent)
            if siblings is not None:
                siblings.pop(item.ref, None)
                if not siblings:
                    del index[parent]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(d) for d in self._items.values())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:  # noqa: PLR2004 - (type, ref)
            return False
        item_type, ref = key
        with self._lock:
            return ref in self._items.get(item_type, {})

    def items(self, item_type: ItemType) -> list[Item]:
        """Return every item of *item_type* in insertion order."""
        with self._lock:
            return list(self._items[ItemType(item_type)].values())

    # CatalogSource ---------------------------------------------------------------------------

    def get(self, item_type: ItemType, refs: Collection[str]) -> Mapping[str, Item]:
        """Return the items of *item_type* among *refs* (absent refs do not exist)."""
        with self._lock:
            store = self._items[item_type]
            return {ref: store[ref] for ref in refs if ref in store}

    def children(
        self, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, Sequence[str]]:
        """Return the refs of *child_type* items naming each parent, in insertion order."""
        with self._lock:
            index = self._children[child_type]
            return {p: list(index.get(p, ())) for p in parent_refs}

    def scan(self, item_type: ItemType, *, batch_size: int = 1000) -> Iterator[Sequence[Item]]:
        """Yield every item of *item_type* in batches of *batch_size* (a snapshot of the refs)."""
        with self._lock:
            refs = list(self._items[item_type])
        for start in range(0, len(refs), batch_size):
            found = self.get(item_type, refs[start : start + batch_size])
            batch = [found[r] for r in refs[start : start + batch_size] if r in found]
            if batch:
                yield batch

    def __repr__(self) -> str:
        with self._lock:
            counts = ", ".join(f"{t.value}={len(d)}" for t, d in self._items.items())
        return f"MemoryCatalog({counts})"
