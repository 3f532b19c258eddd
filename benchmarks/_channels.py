"""
The three real channels on their in-process emulators, wired for `GeneratedCatalog`, and one
synchronization run through the real `Synchronizer` on SQLite.

Shared by the ``first-sync`` and ``pacing`` benchmarks. Each `Rig` holds a channel, its emulator,
the connector parameters (field mapping for the generated catalog's vocabulary, which is the
demo's: see ``catalogsync.channels.*._demo``) and an exit stack closing the HTTP client.

Limits are either off (``scale=None``: what the library itself costs) or the channel's documented
ones multiplied by *scale* (so a pacing run takes seconds instead of hours):

* Shopify: a cost bucket of 1,000 points restored at 100 points/s (a Standard-plan shop, as in
  the demo), both times the factor. Off: a bucket no run can empty.
* Amazon: the Listings Items API's 5 requests/s, burst 5, per operation, both times the factor;
  the channel's `AmazonPacer` is told the same limits (it also follows
  ``x-amzn-RateLimit-Limit``). Off: ``throttle=False`` and a rate no run reaches.
* Takealot: no published numbers; the emulator documentation's example of 100 requests per 60 s
  per endpoint class, scaled to a 1 s window with the budget scaled to the rate, and
  ``x-RateLimit-Reset`` in milliseconds (`_MillisecondResets`). Paced runs use single-offer
  requests (the batch endpoint would send one request per 100 items and leave nothing to pace).
  Off: no limit, the batch endpoint (batches complete on their first poll, polled at once).

The rig wraps the emulator's handler to measure the CPU time spent in it (`Rig.emulator_cpu`:
the emulator's cost, not the library's) and to trace every answer (`Rig.on_answer`).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalogsync import Connector, ConnectorParams, ItemState, Secret, Synchronizer, SyncOptions
from catalogsync.backends import SQLiteQueue, SQLiteStore
from catalogsync.channels.amazon import AmazonPacer
from catalogsync.channels.amazon import _demo as amazon_demo
from catalogsync.channels.shopify import ShopifyChannel, ShopifyStore, StaticToken
from catalogsync.channels.shopify import _demo as shopify_demo
from catalogsync.channels.takealot import TakealotChannel
from catalogsync.channels.takealot import _demo as takealot_demo
from catalogsync.testing import AmazonEmulator, MemoryChannel, ShopifyEmulator, TakealotEmulator

from ._catalog import GeneratedCatalog, ean13


CHANNELS = ("shopify", "amazon", "takealot")

# -- documented limits (unscaled) ---------------------------------------------------------------
SHOPIFY_BUCKET = 1000.0  #: points (the demo's Standard-plan shop)
SHOPIFY_RESTORE = 100.0  #: points per second
AMAZON_RATE = 5.0  #: requests per second per Listings Items operation
AMAZON_BURST = 5.0
AMAZON_OPERATIONS = (
    "getListingsItem",
    "putListingsItem",
    "patchListingsItem",
    "deleteListingsItem",
)
#: Takealot publishes no numbers: the emulator documentation's example, per endpoint class.
TAKEALOT_BUDGET = 100  #: requests per window
TAKEALOT_WINDOW = 60.0  #: seconds
#: Scaled runs use this window, with the budget scaled to it (see `_MillisecondResets`).
TAKEALOT_SCALED_WINDOW = 1.0
#: "Limits off" for Shopify: a bucket no run can empty.
_UNLIMITED_POINTS = 1e12
_UNLIMITED_RATE = 1e9  #: requests per second

# The GeneratedCatalog speaks the demo catalog's vocabulary: each channel's demo field mapping
# (and Amazon's family -> product type table) applies as it is.

_SHOPIFY_TOKEN = "shpat_catalogsync_bench"  # noqa: S105 - the emulator's made-up token
_SHOPIFY_LOCATION = "gid://shopify/Location/1"
_TAKEALOT_KEY = "catalogsync-bench-takealot-key"
_TAKEALOT_WAREHOUSE = 28676


@dataclass
class Rig:
    """A channel on its emulator, ready for a `Synchronizer`."""

    name: str
    channel: Any
    params: ConnectorParams
    emulator: Any
    stack: contextlib.ExitStack
    limits: dict[str, Any] = field(default_factory=dict)

    #: CPU seconds the emulator's handler took (its threads' CPU time, not the library's).
    emulator_cpu: float = 0.0
    emulator_calls: int = 0
    #: When set, called with ``(started, answered, request, response)`` after every answer:
    #: `time.monotonic` when the emulator's handler was entered and when it returned (the
    #: emulator counted the request in between).
    on_answer: Callable[[float, float, Any, Any], None] | None = None

    def __post_init__(self) -> None:
        if self.emulator is None:
            return
        inner = self.emulator.handle
        lock = threading.Lock()

        def handle(request: Any) -> Any:
            entered = time.monotonic()
            start = time.thread_time()
            try:
                response = inner(request)
            finally:
                spent = time.thread_time() - start
                with lock:
                    self.emulator_cpu += spent
                    self.emulator_calls += 1
            if self.on_answer is not None:
                self.on_answer(entered, time.monotonic(), request, response)
            return response

        self.emulator.handle = handle  # the emulator's dispatch calls self.handle

    def close(self) -> None:
        self.stack.close()


def takealot_catalogue(catalog: GeneratedCatalog) -> list[str]:
    """Every barcode *catalog*'s variants use (``ean13(n * 16 + v)``)."""
    return [
        ean13(n * 16 + v)
        for n in range(catalog.products)
        for v in range(1, catalog.variant_count(n) + 1)
    ]


def build(
    name: str,
    catalog: GeneratedCatalog,
    *,
    scale: float | None = None,
    latency: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    exact_resets: bool = True,
) -> Rig:
    """
    Channel *name* on its emulator. *scale* ``None``: limits off; else the documented limits
    times *scale*. *latency*: real seconds the emulator adds to every answer. *exact_resets*:
    Takealot's ``x-RateLimit-Reset`` in epoch milliseconds (see `_MillisecondResets`).
    """
    if name == "shopify":
        return _shopify(scale, latency, sleep)
    if name == "amazon":
        return _amazon(scale, latency, sleep)
    if name == "takealot":
        return _takealot(catalog, scale, latency, sleep, exact_resets=exact_resets)
    if name == "memory":
        return Rig(
            "memory",
            MemoryChannel(),
            ConnectorParams(language="en", map_status=True),
            None,
            contextlib.ExitStack(),
        )
    msg = f"unknown channel {name!r}"
    raise ValueError(msg)


def _shopify(scale: float | None, latency: float, sleep: Callable[[float], None]) -> Rig:
    if scale is None:
        bucket = restore = _UNLIMITED_POINTS
    else:
        bucket, restore = SHOPIFY_BUCKET * scale, SHOPIFY_RESTORE * scale
    emulator = ShopifyEmulator(
        access_tokens=[_SHOPIFY_TOKEN],
        bucket_size=bucket,
        restore_rate=restore,
        locations=[_SHOPIFY_LOCATION],
        locales=["en", "es", "fr", "de"],
        shop="catalogsync-bench.myshopify.com",
        latency=latency,
        sleep=sleep,
    )
    stack = contextlib.ExitStack()
    client = stack.enter_context(emulator.client())
    store = ShopifyStore(
        "catalogsync-bench",
        StaticToken(Secret(_SHOPIFY_TOKEN)),
        location_id=_SHOPIFY_LOCATION,
        base_url=emulator.base_url,
    )
    channel = ShopifyChannel(store, client=client)
    params = shopify_demo.demo_params()
    limits = {"bucket_size": bucket, "restore_rate": restore}
    return Rig("shopify", channel, params, emulator, stack, limits)


def _amazon(scale: float | None, latency: float, sleep: Callable[[float], None]) -> Rig:
    if scale is None:  # the emulator still reports its rate: make it one no run reaches
        rate_limits = dict.fromkeys(AMAZON_OPERATIONS, (_UNLIMITED_RATE, _UNLIMITED_RATE))
    else:
        rate_limits = dict.fromkeys(AMAZON_OPERATIONS, (AMAZON_RATE * scale, AMAZON_BURST * scale))
    # the channel is told the same limits (a seller configures what their account has)
    pacer = AmazonPacer(limits=rate_limits)
    emulator = AmazonEmulator(
        seller_id="A3BENCHSELLERZA",
        throttle=scale is not None,
        rate_limits=rate_limits,
        latency=latency,
        sleep=sleep,
    )
    stack = contextlib.ExitStack()
    client = stack.enter_context(emulator.client())
    channel = amazon_demo.demo_channel(emulator, client, pacer=pacer)
    params = amazon_demo.demo_params()
    limits = {} if scale is None else {"rate_limits": rate_limits}
    return Rig("amazon", channel, params, emulator, stack, limits)


class _MillisecondResets(TakealotEmulator):
    """
    `TakealotEmulator` sending ``x-RateLimit-Reset`` in epoch milliseconds (a format the channel
    reads) instead of whole epoch seconds.

    Scaling a budget down from minutes to a second-long window must scale the header's
    resolution with it: a whole-second reset rounds a window that opened mid-second up by as much
    as a second, which costs at most 1/61 of a 60 s window but half of a 1 s window.
    """

    def _meter(self, route: str) -> tuple[dict[str, str], bool]:
        headers, throttled = super()._meter(route)
        if headers:
            start, _ = self._windows[route]
            left = start + self.window - self.clock.monotonic()
            headers["x-RateLimit-Reset"] = str(round((self.clock.now().timestamp() + left) * 1000))
        return headers, throttled


def _takealot(
    catalog: GeneratedCatalog,
    scale: float | None,
    latency: float,
    sleep: Callable[[float], None],
    *,
    exact_resets: bool,
) -> Rig:
    budget, window = None, TAKEALOT_WINDOW
    if scale is not None:
        window = TAKEALOT_SCALED_WINDOW
        budget = round(TAKEALOT_BUDGET / TAKEALOT_WINDOW * scale * window)
    emulator = (_MillisecondResets if exact_resets else TakealotEmulator)(
        takealot_catalogue(catalog),
        api_key=_TAKEALOT_KEY,
        warehouses=(_TAKEALOT_WAREHOUSE,),
        rate_limit=budget,
        window=window,
        batch_polls=1,
        latency=latency,
        sleep=sleep,
    )
    stack = contextlib.ExitStack()
    client = stack.enter_context(emulator.client())
    channel = TakealotChannel(
        Secret(_TAKEALOT_KEY),
        client=client,
        warehouses=[_TAKEALOT_WAREHOUSE],
        default_leadtime_days=5,
        # limits off: whole batches through the batch endpoint, polled at once; paced: single
        # offers (a batch of 10,000 offers is one request, nothing to pace)
        batch_threshold=50 if scale is None else 1_000_000,
        poll_interval=0.001,
        max_poll_interval=0.01,
        batch_timeout=600.0,
    )
    params = takealot_demo.demo_params()
    limits = {"budget": budget, "window": window} if budget else {}
    return Rig("takealot", channel, params, emulator, stack, limits)


# -- one synchronization ------------------------------------------------------------------------


@dataclass
class SyncRun:
    """What `synchronize` measured."""

    items: int  #: items enqueued (after the channel's reads were added)
    seconds: float  #: wall time of the `Synchronizer.run` calls
    enqueue_seconds: float
    synchronized: int
    skipped: int
    unchanged: int
    failed: int
    errors: Counter[str]  #: item error codes (kind:code) of the failed items
    started: float  #: `time.monotonic` when the first run call started
    finished: float
    runs: int


def synchronize(
    rig: Rig,
    catalog: GeneratedCatalog,
    *,
    batch_size: int = 100,
    workdir: Path | None = None,
    on_start: Callable[[], None] | None = None,
) -> SyncRun:
    """
    Enqueue every item of *catalog* and `Synchronizer.run` until the event completes, on SQLite
    in a temporary file. Raises when a run ends otherwise or an item failed.
    """
    with contextlib.ExitStack() as stack:
        tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cs-bench-")))
        db = tmp / f"{rig.name}.db"
        queue = stack.enter_context(SQLiteQueue(db))
        store = stack.enter_context(SQLiteStore(db))
        connector = Connector(
            f"bench-{rig.name}",
            rig.channel.name,
            account=f"bench-{rig.name}",
            params=rig.params,
            credentials=f"bench:{rig.name}",
        )
        sync = Synchronizer(
            connector,
            catalog=catalog,
            channel=rig.channel,
            queue=queue,
            store=store,
            options=SyncOptions(batch_size=batch_size, iteration_size=max(1000, batch_size)),
        )
        t0 = time.perf_counter()
        items = sync.enqueue(catalog.changes())
        enqueue_seconds = time.perf_counter() - t0
        synchronized = skipped = unchanged = failed = runs = 0
        if on_start is not None:
            on_start()
        started = time.monotonic()
        while True:
            runs += 1
            result = sync.run()
            synchronized += result.synchronized.total
            skipped += result.skipped.total
            unchanged += result.unchanged.total
            failed += result.failed.total
            if result.reason == "completed":
                break
            if result.reason != "limit" or runs > 1000:
                msg = f"{rig.name}: synchronization ended {result.reason!r} after {runs} runs"
                raise RuntimeError(msg)
        finished = time.monotonic()
        errors: Counter[str] = Counter()
        if failed:
            page = sync.register.items(
                connector.id, event_id=result.event.id, state=ItemState.ERROR, limit=100_000
            )
            for status in page.items:
                for error in status.errors:
                    errors[f"{error.kind.value}:{error.code}"] += 1
            sample = [
                (s.ref, [(e.code, e.message[:120]) for e in s.errors]) for s in page.items[:3]
            ]
            msg = f"{rig.name}: {failed} items failed {dict(errors)}; e.g. {sample}"
            raise RuntimeError(msg)
        return SyncRun(
            items=items,
            seconds=finished - started,
            enqueue_seconds=enqueue_seconds,
            synchronized=synchronized,
            skipped=skipped,
            unchanged=unchanged,
            failed=failed,
            errors=errors,
            started=started,
            finished=finished,
            runs=runs,
        )


def check_delivered(name: str, catalog: GeneratedCatalog, result: SyncRun) -> None:
    """Every item delivered or skipped by design; raise otherwise."""
    total = len(catalog)
    done = result.synchronized + result.skipped
    if result.failed or done != total or result.unchanged:
        msg = (
            f"{name}: {total} items, {result.synchronized} synchronized, {result.skipped} "
            f"skipped, {result.unchanged} unchanged, {result.failed} failed"
        )
        raise RuntimeError(msg)
    # what each channel skips by design: the rest must have been delivered
    skipped = {"amazon": catalog.categories, "takealot": catalog.categories + catalog.products}
    if result.skipped != skipped.get(name, 0):
        msg = f"{name}: {result.skipped} items skipped, expected {skipped.get(name, 0)}"
        raise RuntimeError(msg)


def check_emulator(rig: Rig, catalog: GeneratedCatalog) -> None:
    """What the emulator holds matches the catalog (the channel's word is not enough)."""
    variants = len(catalog) - catalog.categories - catalog.products
    if rig.name == "shopify":
        held = {"products": len(rig.emulator.products)}
        want = {"products": catalog.products}
        held["variants"] = sum(len(p.variants) for p in rig.emulator.products.values())
        want["variants"] = variants
    elif rig.name == "amazon":
        held, want = (
            {"listings": len(rig.emulator.listings)},
            {"listings": catalog.products + variants},
        )
    elif rig.name == "takealot":
        held, want = {"offers": len(rig.emulator.offers)}, {"offers": variants}
    else:
        return
    if held != want:
        msg = f"{rig.name}: the emulator holds {held}, the catalog has {want}"
        raise RuntimeError(msg)
