"""
The demo: a realistic end-to-end story on the embedded defaults.

A bundled sample catalog (categories, a few hundred products with variants, a handful of
deliberately invalid items) is synchronized to a channel, edited, synchronized again
incrementally, and the activity register and the failed items are printed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._catalog import MemoryCatalog
from ._convert import make_converter
from ._models import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    Item,
    ItemState,
    ItemType,
    SyncEvent,
    Visibility,
)
from ._register import ActivityRegister
from ._sync import Synchronizer, SyncOptions
from .typing import Channel


__all__ = ["CHANNELS", "DemoResult", "run_demo", "sample_catalog"]

_CATEGORIES = [
    ("shoes", "Shoes", "Zapatos"),
    ("socks", "Socks", "Calcetines"),
    ("bags", "Bags", "Bolsos"),
    ("hats", "Hats", "Sombreros"),
    ("jackets", "Jackets", "Chaquetas"),
    ("accessories", "Accessories", "Accesorios"),
]
_ADJECTIVES = [
    ("Trail", "de montaña"),
    ("City", "urbano"),
    ("Classic", "clásico"),
    ("Light", "ligero"),
    ("Winter", "de invierno"),
    ("Travel", "de viaje"),
]
_SIZES = ["S", "M", "L", "XL", "40", "41", "42", "43"]
_COLORS = [("Red", "Rojo"), ("Blue", "Azul"), ("Black", "Negro"), ("Green", "Verde")]
# Every 60th product carries a deliberate problem, chosen by its position in the cycle.
_CYCLE = 60
_NO_TITLE, _NEGATIVE_PRICE, _BAD_IMAGE, _LONG_SKU, _DUPLICATE_OPTIONS = 11, 23, 37, 47, 53


def ean13(number: int) -> str:
    """A valid EAN-13 barcode for *number* (South African 600 prefix)."""
    body = f"600{number:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def sample_catalog(products: int = 300, *, seed: int = 7) -> MemoryCatalog:
    """
    Build the demo catalog: 6 categories and *products* products with 2-6 variants each.

    Fields use a plain PIM vocabulary: ``title`` and ``description`` (localised en/es),
    ``vendor``, ``price``, ``compare_at_price``, ``sku``, ``barcode``, ``images``, ``options``
    (a product's option names), ``option_values`` (a variant's), ``stock``, ``weight``.
    Every 60th product carries a deliberate problem (missing title, negative price,
    over-long SKU, duplicate option values, a bad image URL) to show item errors.

    Example:
        >>> catalog = sample_catalog(20)
        >>> len(catalog.items(ItemType.CATEGORY)), len(catalog.items(ItemType.PRODUCT))
        (6, 20)
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic sample data
    items: list[Item] = []
    for key, en, es in _CATEGORIES:
        items.append(
            Item(
                f"cat-{key}",
                ItemType.CATEGORY,
                fields={
                    "title": {"en": en, "es": es},
                    "description": {"en": f"All our {en.lower()}", "es": f"Todos los {es.lower()}"},
                },
            )
        )
    barcode = 1000
    for n in range(1, products + 1):
        category = _CATEGORIES[n % len(_CATEGORIES)]
        adj_en, adj_es = _ADJECTIVES[n % len(_ADJECTIVES)]
        title = {"en": f"{adj_en} {category[1][:-1]} {n}", "es": f"{category[2][:-1]} {adj_es} {n}"}
        price = round(rng.uniform(5, 250))
        ref = f"P{n:04d}"
        fields: dict[str, Any] = {
            "title": title,
            "description": {
                "en": f"<p>{title['en']}: durable, comfortable and made to last.</p>",
                "es": f"<p>{title['es']}: resistente, cómodo y duradero.</p>",
            },
            "vendor": "Acme Outdoor",
            "price": price,
            "compare_at_price": price + 20,
            "images": [f"https://cdn.example.com/products/{ref}/{i}.jpg" for i in range(1, 3)],
            "options": ["Size", "Color"],
            "weight": round(rng.uniform(0.1, 2.5), 2),
        }
        problem = n % _CYCLE
        if problem == _NO_TITLE:
            fields["title"] = {"en": "", "es": ""}
        elif problem == _NEGATIVE_PRICE:
            fields["price"] = -5
        elif problem == _BAD_IMAGE:
            fields["images"] = ["not a url"]
        visibility = Visibility.DRAFT if n % 25 == 0 else Visibility.VISIBLE
        items.append(
            Item(
                ref,
                ItemType.PRODUCT,
                fields=fields,
                parents=[f"cat-{category[0]}"],
                tags={"launch"} if n % 10 == 0 else set(),
                family=category[0],
                visibility=visibility,
            )
        )
        for v in range(rng.randint(2, 6)):
            barcode += 1
            color_en, color_es = _COLORS[v % len(_COLORS)]
            size = _SIZES[(n + v) % len(_SIZES)]
            vfields: dict[str, Any] = {
                "sku": f"{ref}-{size}-{color_en[:3].upper()}",
                "barcode": ean13(barcode),
                "price": price,
                "compare_at_price": price + 20,
                "option_values": {"Size": size, "Color": color_en},
                "color_name": {"en": color_en, "es": color_es},
                "stock": rng.randint(0, 40),
            }
            if problem == _LONG_SKU and v == 0:
                vfields["sku"] = "X" * 300
            if problem == _DUPLICATE_OPTIONS and v == 1:
                vfields["option_values"] = {"Size": _SIZES[n % len(_SIZES)], "Color": "Red"}
            items.append(Item(f"{ref}-V{v + 1}", ItemType.VARIANT, fields=vfields, parents=[ref]))
    return MemoryCatalog(items)


def all_changes(catalog: MemoryCatalog) -> Iterator[Change]:
    """A change for every item (categories first)."""
    for item_type in (ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT):
        for item in catalog.items(item_type):
            yield Change(item.ref, item.type)


def edit_catalog(catalog: MemoryCatalog) -> list[Change]:
    """The demo's edits between the two events; returns the changes a PIM would enqueue."""
    changes: list[Change] = []
    for n in (2, 3, 5, 8, 13, 21, 34, 55, 89, 144):
        ref = f"P{n:04d}-V1"
        found = catalog.get(ItemType.VARIANT, [ref]).get(ref)
        if found is not None:
            fields = dict(found.fields)
            fields["price"] = int(fields["price"]) + 3
            catalog.put(Item(ref, ItemType.VARIANT, fields=fields, parents=found.parents))
            changes.append(Change(ref, ItemType.VARIANT))
    hats = catalog.get(ItemType.CATEGORY, ["cat-hats"])["cat-hats"]
    catalog.put(
        Item(
            "cat-hats",
            ItemType.CATEGORY,
            fields={**hats.fields, "title": {"en": "Hats & Caps", "es": "Sombreros y gorras"}},
        )
    )
    changes.append(Change("cat-hats", ItemType.CATEGORY))
    catalog.remove(ItemType.PRODUCT, "P0004")
    for kind in ("P0004-V1", "P0004-V2", "P0004-V3", "P0004-V4", "P0004-V5", "P0004-V6"):
        catalog.remove(ItemType.VARIANT, kind)
    changes.append(Change("P0004", ItemType.PRODUCT, ChangeKind.DELETE))
    new = "P9001"
    catalog.put(
        Item(
            new,
            ItemType.PRODUCT,
            parents=["cat-shoes"],
            family="shoes",
            fields={
                "title": {"en": "Racing flat 9001", "es": "Zapatilla de carrera 9001"},
                "description": {"en": "<p>New in.</p>", "es": "<p>Novedad.</p>"},
                "vendor": "Acme Outdoor",
                "price": 120,
                "compare_at_price": 140,
                "images": ["https://cdn.example.com/products/P9001/1.jpg"],
                "options": ["Size", "Color"],
                "weight": 0.3,
            },
        ),
        *[
            Item(
                f"{new}-V{i}",
                ItemType.VARIANT,
                parents=[new],
                fields={
                    "sku": f"{new}-{s}",
                    "barcode": ean13(90000 + i),
                    "price": 120,
                    "compare_at_price": 140,
                    "option_values": {"Size": s, "Color": "Black"},
                    "color_name": {"en": "Black", "es": "Negro"},
                    "stock": 5,
                },
            )
            for i, s in enumerate(("40", "41", "42"), start=1)
        ],
    )
    changes.append(Change(new, ItemType.PRODUCT))
    changes.extend(Change(f"{new}-V{i}", ItemType.VARIANT) for i in (1, 2, 3))
    return changes


@dataclass
class DemoResult:
    """What the demo did, for printing and for tests."""

    db: Path
    channel: str
    events: list[SyncEvent]
    register: ActivityRegister
    connector_id: str
    extra: dict[str, Any]


#: What a channel's demo setup returns: the channel, the connector parameters to use with the
#: demo catalog (field mapping included), and an exit stack that closes what it opened.
DemoSetup = tuple[Channel, ConnectorParams, contextlib.ExitStack]

#: Channels the demo can use: name -> "module:function" returning a `DemoSetup`. Each channel
#: keeps its demo wiring (emulator, catalogue, field mapping) in its own ``_demo`` module.
CHANNELS: dict[str, str] = {
    "memory": "catalogsync._demo:memory_setup",
    "amazon": "catalogsync.channels.amazon._demo:demo_setup",
    "shopify": "catalogsync.channels.shopify._demo:demo_setup",
    "takealot": "catalogsync.channels.takealot._demo:demo_setup",
}
DEFAULT_CHANNEL = "shopify"


def memory_setup() -> DemoSetup:
    """The memory channel: no network, nothing to configure."""
    from .testing import MemoryChannel  # noqa: PLC0415

    return MemoryChannel(), ConnectorParams(language="en", map_status=True), contextlib.ExitStack()


def load_setup(name: str) -> Callable[[], DemoSetup]:
    """Import the demo setup function registered for channel *name*."""
    module_name, _, function = CHANNELS[name].partition(":")
    module = importlib.import_module(module_name)
    setup: Callable[[], DemoSetup] = getattr(module, function)
    return setup


def run_demo(
    *,
    channel: str = DEFAULT_CHANNEL,
    db: Path | None = None,
    products: int = 300,
    out: TextIO | None = None,
    as_json: bool = False,
) -> DemoResult:
    """Run the demo story; print the register (or one JSON document) to *out*."""
    from .backends import SQLiteQueue, SQLiteStore  # noqa: PLC0415 - the embedded default

    if channel not in CHANNELS:
        msg = f"unknown channel {channel!r}; choose from {', '.join(sorted(CHANNELS))}"
        raise SystemExit(msg)
    with contextlib.ExitStack() as stack:
        if db is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="catalogsync-demo-"))
            path = Path(tmp) / "catalogsync.db"
        else:
            path = Path(db)
        the_channel, params, resources = load_setup(channel)()
        stack.enter_context(resources)
        queue, store = SQLiteQueue(path), SQLiteStore(path)
        catalog = sample_catalog(products)
        connector = Connector(
            f"demo-{channel}",
            the_channel.name,
            account=f"demo-{channel}-store",
            params=params,
            credentials=f"demo:{channel}",
        )
        sync = Synchronizer(
            connector,
            catalog=catalog,
            channel=the_channel,
            queue=queue,
            store=store,
            options=SyncOptions(batch_size=100),
        )

        def say(text: str) -> None:
            if not as_json:
                print(text, file=out)

        say(f"catalogsync demo: {len(catalog)} items -> {channel} (state in {path})")
        sync.enqueue(all_changes(catalog))
        first = sync.run()
        say(
            f"\n1) first synchronization: {first.reason}, "
            f"{first.synchronized.total} synchronized, {first.failed.total} failed"
        )
        changes = edit_catalog(catalog)
        sync.enqueue(changes)
        second = sync.run()
        say(
            f"2) after {len(changes)} edits, incremental synchronization: {second.reason}, "
            f"{second.synchronized.total} synchronized, {second.unchanged.total} unchanged, "
            f"{second.failed.total} failed"
        )
        register = sync.register
        events = [e for e in (first.event, second.event) if e is not None]
        result = DemoResult(path, channel, events, register, connector.id, {})
        if as_json:
            print(json.dumps(demo_document(result), indent=2, ensure_ascii=False), file=out)
        else:
            for event in events:
                say("\n" + register.render(event.id, items=5))
            say(f"\nSync history today: {register.history(range='today').total} records")
        if db is None:
            result.db = Path("(temporary)")
        return result


def demo_document(result: DemoResult) -> dict[str, Any]:
    """The demo's outcome as one JSON-compatible document (events, counts, errors)."""
    conv = make_converter()
    events = []
    for event in result.events:
        failed = result.register.items(
            result.connector_id, event_id=event.id, state=ItemState.ERROR, limit=1000
        )
        events.append(
            {
                "id": event.id,
                "trigger": event.trigger.value,
                "status": event.status.value,
                "has_errors": event.has_errors,
                "started_at": event.started_at.isoformat(),
                "finished_at": event.finished_at.isoformat() if event.finished_at else None,
                "counts": {
                    "synchronized": event.synchronized.as_dict(),
                    "failed": event.failed.as_dict(),
                    "unchanged": event.unchanged.as_dict(),
                    "skipped": event.skipped.as_dict(),
                },
                "configuration": conv.unstructure(event.snapshot),
                "iterations": [conv.unstructure(i) for i in event.iterations],
                "errors": [conv.unstructure(e) for e in event.errors],
                "item_errors": [
                    {
                        "type": s.type.value,
                        "ref": s.ref,
                        "request_id": s.request_id,
                        "endpoint": s.endpoint.value if s.endpoint else None,
                        "errors": [conv.unstructure(e) for e in s.errors],
                    }
                    for s in failed
                ],
            }
        )
    return {"channel": result.channel, "connector": result.connector_id, "events": events}
