"""
Channel fault campaign: Shopify, Amazon and Takealot emulators misbehave; nothing is lost.

Each seed runs a real `Synchronizer` (SQLite backends, a `ManualClock`, so backoff and pacing
cost no real time) against an in-process emulator whose seeded `Faults` plan fires bursts of
throttling (429), 5xx answers, timeouts, connection resets, truncated and non-JSON bodies, wrong
content types and slow answers, on top of each emulator's own limits (Shopify's cost bucket,
Amazon's token buckets, Takealot's rate-limit window and its batch endpoint's per-offer
results). Expected:

* the event completes; every item has a final status;
* an item that is not deliberately invalid fails only with ``TRANSPORT`` errors, after retries;
* an item recorded ``DONE`` really is in the channel;
* after the faults clear, a retry of the failed items delivers the rest: the channel then
  equals the exportable catalog, with nothing created twice.

Targeted tests pin "the affected items only": a fault that hits one product's requests fails
that product (and what it carries), nothing else.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from _campaignchannels import (
    check_channel,
    connector_params,
    invalid_refs,
    lost,
    make_catalog,
    make_channel,
    make_emulator,
)
from catalogsync import (
    Change,
    Connector,
    ErrorKind,
    ItemAction,
    ItemState,
    ItemType,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import FaultKind, Faults, ManualClock

from _campaign import FIGURES, backend_spec, backends, close_backends, open_backends, size, timed


pytestmark = pytest.mark.campaign

KINDS = ("shopify", "amazon", "takealot")
SEEDS = size(12, 60)
PRODUCTS = size(30, 100)

#: The faults a burst is drawn from: (kind, keyword arguments of `Faults.add`).
MIX: list[tuple[FaultKind, dict[str, Any]]] = [
    (FaultKind.STATUS, {"status": 429}),
    (FaultKind.STATUS, {"status": 500}),
    (FaultKind.STATUS, {"status": 502}),
    (FaultKind.STATUS, {"status": 503}),
    (FaultKind.STATUS, {"status": 504}),
    (FaultKind.TIMEOUT, {}),
    (FaultKind.RESET, {}),
    (FaultKind.TRUNCATE, {}),
    (FaultKind.NON_JSON, {}),
    (FaultKind.WRONG_CONTENT_TYPE, {}),
    (FaultKind.LATENCY, {"delay": 20.0}),
]


class Rig:
    """An emulator, its channel and a synchronizer on one manual clock, in-process."""

    def __init__(self, tmp_path, kind: str, seed: int, backend: str = "sqlite", **emulator: Any):
        self.kind = kind
        self.clock = ManualClock()
        self.catalog = make_catalog(kind, PRODUCTS, seed)
        self.faults = Faults(seed=seed)
        if kind == "shopify":  # a real cost bucket on the shared clock: throttles happen
            emulator.setdefault("bucket_size", 400.0)
            emulator.setdefault("restore_rate", 50.0)
        if kind == "takealot":  # Takealot's rate-limit window, read from x-RateLimit-* headers
            emulator.setdefault("rate_limit", 20)
            emulator.setdefault("window", 10.0)
        self.emulator = make_emulator(
            kind,
            self.catalog,
            clock=self.clock,
            faults=self.faults,
            sleep=self.clock.sleep,
            **emulator,
        )
        self.client = self.emulator.client()
        self.channel = make_channel(
            kind, client=self.client, clock=self.clock, emulator=self.emulator, seed=seed
        )
        self.queue, self.store = open_backends(backend_spec(backend, tmp_path), clock=self.clock)
        self.sync = Synchronizer(
            Connector("faults", self.channel.name, params=connector_params(kind)),
            catalog=self.catalog,
            channel=self.channel,
            queue=self.queue,
            store=self.store,
            clock=self.clock,
            options=SyncOptions(batch_size=10, lease_ttl=24 * 3600, heartbeat=False),
        )

    def close(self) -> None:
        close_backends(self.queue, self.store)
        self.client.close()

    def enqueue_all(self) -> int:
        return self.sync.enqueue(Change(i.ref, t) for t in ItemType for i in self.catalog.items(t))

    def statuses(self, event_id: str) -> dict[tuple[str, str], Any]:
        page = self.sync.register.items("faults", event_id=event_id, limit=1_000_000)
        return {(s.type.value, s.ref): s for s in page}

    def held(self) -> set[tuple[str, str]]:
        """The catalog items the channel holds now (by the channel's own keys)."""
        emu, out = self.emulator, set()
        if self.kind == "shopify":
            with emu._lock:
                refs = {
                    p.metafields.get(("catalogsync", "ref"), ("", None))[1]
                    for p in emu.products.values()
                }
                skus = {v.sku for p in emu.products.values() for v in p.variants}
                cols = {
                    c.metafields.get(("catalogsync", "ref"), ("", None))[1]
                    for c in emu.collections.values()
                }
            out |= {("product", r) for r in refs} | {("category", r) for r in cols}
            out |= {
                ("variant", v.ref)
                for v in self.catalog.items(ItemType.VARIANT)
                if v.fields["sku"] in skus
            }
        elif self.kind == "takealot":
            with emu._lock:
                barcodes = set(emu.offers)
            out |= {
                ("variant", v.ref)
                for v in self.catalog.items(ItemType.VARIANT)
                if v.fields["barcode"] in barcodes
            }
        else:
            with emu._lock:
                skus = {sku for _market, sku in emu.listings}
            out |= {
                ("product", p.ref) for p in self.catalog.items(ItemType.PRODUCT) if p.ref in skus
            }
            out |= {
                ("variant", v.ref)
                for v in self.catalog.items(ItemType.VARIANT)
                if v.fields["sku"] in skus
            }
        return out


def burst(rig: Rig, rng: random.Random) -> None:
    """Add a seeded burst of 3 to 6 fault rules."""
    for kind, kwargs in rng.sample(MIX, rng.randint(3, 6)):
        rig.faults.add(kind, rate=rng.uniform(0.05, 0.3), count=rng.randint(3, 12), **kwargs)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(SEEDS))
def test_faults_fail_only_affected_items_and_a_rerun_delivers_the_rest(
    tmp_path, backend, kind, seed
):
    """Under seeded bursts of faults the event completes, failures are TRANSPORT errors on items
    that are not otherwise invalid, DONE items are really in the channel, and once the faults
    clear a retry makes the channel equal to the exportable catalog with nothing duplicated.
    """
    rng = random.Random(f"faults-{kind}-{seed}")
    rig = Rig(tmp_path, kind, seed, backend)
    started = time.monotonic()
    try:
        with timed("faults"):
            rig.enqueue_all()
            first = rig.sync.run(max_batches=1)  # the connection check passes, the event opens
            assert first.reason == "limit", first
            burst(rig, rng)
            result = rig.sync.run()
            fired = rig.faults.fired
            statuses = rig.statuses(result.event.id)
            held = rig.held()
            rig.faults.clear()
            failed = result.event.failed.total
            retried = rig.sync.retry(result.event.id) if failed else None
            final = rig.sync.run()
            after = rig.statuses(final.event.id)
            problems = check_channel(kind, rig.emulator, rig.catalog)
        stats = rig.channel.transport.stats
    finally:
        rig.close()

    bad = invalid_refs(kind, rig.catalog)
    transport = {
        k
        for k, s in statuses.items()
        if s.state is ItemState.ERROR and all(e.kind is ErrorKind.TRANSPORT for e in s.errors)
    }
    FIGURES.add(
        "faults",
        cases=1,
        **{f"{kind}_cases": 1},
        faults_injected=fired,
        requests=stats["requests"],
        retries=stats["retries"],
        throttled=stats["throttled"],
        items=len(rig.catalog),
        items_failed_transport=len(transport),
        items_lost=lost(problems),
        manual_seconds_slept=int(rig.clock.slept),
    )

    assert result.reason == "completed", result
    assert fired > 0, "the burst fired no fault"
    wanted = {(t.value, i.ref) for t in ItemType for i in rig.catalog.items(t)}
    assert first.event.id == result.event.id
    assert wanted <= statuses.keys(), "an item has no status"
    assert {s.state for s in statuses.values()} <= {ItemState.DONE, ItemState.ERROR}
    for key, status in statuses.items():
        if status.state is ItemState.ERROR and key not in bad:
            kinds = {e.kind for e in status.errors}
            assert kinds == {ErrorKind.TRANSPORT}, (key, status.errors)
    done = {
        k
        for k, s in statuses.items()
        if s.state is ItemState.DONE and s.action is not ItemAction.SKIP
    }
    assert done <= held, f"DONE but not in the channel: {sorted(done - held)[:5]}"
    assert (retried is not None) == (failed > 0)
    assert final.reason == "completed"
    assert problems == [], problems[:10]
    assert {k for k, s in after.items() if s.state is ItemState.ERROR} <= bad
    assert time.monotonic() - started < 60, "backoff must cost manual time, not real time"


# -- the affected items only -------------------------------------------------------------------


def failing_for(
    emulator: Any, needle: str, status: int = 503
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that answers *status* to every request mentioning *needle*, else the emulator."""

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        if needle in request.url.path or needle in request.content.decode("utf-8", "replace"):
            return httpx.Response(status, json={"errors": [{"message": "injected outage"}]})
        return emulator(request)

    return handler


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_on_one_product_fails_that_product_only(tmp_path, kind):
    """Requests about one product (and its variants) keep failing: those items end with
    TRANSPORT errors after retries, every other item is delivered, and a retry once the channel
    recovered delivers them too.
    """
    rig = Rig(tmp_path, kind, seed=3)
    target = "P0007"
    family = {("product", target)} | {
        ("variant", v.ref) for v in rig.catalog.items(ItemType.VARIANT) if v.parents[0] == target
    }
    if kind == "takealot":
        variant = rig.catalog.get(ItemType.VARIANT, [f"{target}-V1"])[f"{target}-V1"]
        needle = variant.fields["barcode"]
    else:
        needle = {"shopify": f'"{target}"', "amazon": f"/{target}"}[kind]
    outage = httpx.Client(
        transport=httpx.MockTransport(failing_for(rig.emulator, needle)),
        base_url=rig.emulator.base_url,
    )
    channel = make_channel(kind, client=outage, clock=rig.clock, emulator=rig.emulator)
    if kind == "takealot":
        channel.batch_threshold = 1000  # single-offer requests: one barcode per request
        family = {("variant", f"{target}-V1")}
    rig.sync.channel = channel
    try:
        rig.enqueue_all()
        result = rig.sync.run()
        statuses = rig.statuses(result.event.id)
        rig.sync.channel = rig.channel
        rig.sync.retry(result.event.id)
        final = rig.sync.run()
        problems = check_channel(kind, rig.emulator, rig.catalog)
    finally:
        outage.close()
        rig.close()

    bad = invalid_refs(kind, rig.catalog)
    failed = {k for k, s in statuses.items() if s.state is ItemState.ERROR} - bad
    assert result.reason == "completed"
    assert failed == family & statuses.keys()
    assert all({e.kind for e in statuses[k].errors} == {ErrorKind.TRANSPORT} for k in failed)
    assert final.reason == "completed"
    assert problems == []


def test_takealot_batch_with_rejected_offers_delivers_the_others(tmp_path):
    """A Takealot batch in which some offers are rejected (barcodes Takealot does not list,
    invalid prices) records CHANNEL or VALIDATION errors on those offers only; the rest of the
    same batch is delivered.
    """
    rig = Rig(tmp_path, "takealot", seed=5, rate_limit=None)
    try:
        rig.enqueue_all()
        result = rig.sync.run()
        statuses = rig.statuses(result.event.id)
        problems = check_channel("takealot", rig.emulator, rig.catalog)
        batches = rig.channel.batch_stats["batches"]
    finally:
        rig.close()

    bad = invalid_refs("takealot", rig.catalog)
    errors = {k for k, s in statuses.items() if s.state is ItemState.ERROR}
    kinds = {e.kind for k in errors for e in statuses[k].errors}
    assert result.reason == "completed"
    assert batches > 0, "the batch endpoint was used"
    assert errors == bad
    assert len(bad) >= 2
    assert kinds == {ErrorKind.CHANNEL, ErrorKind.VALIDATION}
    assert problems == []


def test_shopify_lost_collection_create_answer_adopts_the_collection(tmp_path):
    """A category whose collectionCreate applied but whose answer was lost ends DONE with the
    collection's id (or, at worst, with a TRANSPORT error), never a CHANNEL rejection.
    """
    rig = Rig(tmp_path, "shopify", seed=1, bucket_size=1_000_000.0, restore_rate=1_000_000.0)
    lost_once: list[str] = []

    def lose_first_create(request: httpx.Request) -> httpx.Response:
        response = rig.emulator(request)
        if b"collectionCreate" in request.content and not lost_once:
            lost_once.append(request.content.decode())
            raise httpx.ReadTimeout("the answer was lost after the mutation applied")
        return response

    client = httpx.Client(
        transport=httpx.MockTransport(lose_first_create), base_url=rig.emulator.base_url
    )
    rig.sync.channel = make_channel("shopify", client=client, clock=rig.clock)
    try:
        rig.enqueue_all()
        result = rig.sync.run()
        statuses = rig.statuses(result.event.id)
    finally:
        client.close()
        rig.close()

    kinds = {e.kind for s in statuses.values() for e in s.errors if s.type is ItemType.CATEGORY}
    assert lost_once, "a collectionCreate answer was lost"
    assert ErrorKind.CHANNEL not in kinds


@pytest.mark.parametrize("fault", [FaultKind.TRUNCATE, FaultKind.NON_JSON])
def test_shopify_retries_an_unreadable_answer(tmp_path, fault):
    """One garbled 200 answer (cut in half, or an HTML page) is retried like a 5xx: the item
    it concerned is delivered in the same event.
    """
    rig = Rig(tmp_path, "shopify", seed=2, bucket_size=1_000_000.0, restore_rate=1_000_000.0)
    try:
        rig.enqueue_all()
        assert rig.sync.run(max_batches=1).reason == "limit"
        rig.faults.add(fault, count=1, match="/graphql")
        result = rig.sync.run()
        statuses = rig.statuses(result.event.id)
    finally:
        rig.close()

    bad = invalid_refs("shopify", rig.catalog)
    assert rig.faults.fired == 1
    assert {k for k, s in statuses.items() if s.state is ItemState.ERROR} == bad
