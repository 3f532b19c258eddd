"""
Pacing: how much of a channel's allowed rate a real synchronization uses, without throttling.

Each channel runs on its emulator with its documented limits (scaled up by a factor so a run
takes seconds, not hours) and 20 ms of latency on every answer, on the real clock. A generated
catalog is synchronized through the real `Synchronizer` on SQLite; the emulator's own record of
what it granted (never the channel's opinion) gives the budget used:

* Shopify: cost points charged (``actualQueryCost`` of every answer) / (restore rate x elapsed +
  points in the bucket at the start). The bucket holds 10 s of restore, so the run is measured
  from the first answer that finds it nearly empty (< 5 %): the initial bucket would otherwise
  be most of a short run's allowance.
* Amazon: requests of the busiest Listings Items operation / (rate x elapsed + burst), elapsed
  from that operation's first request to its last.
* Takealot: single-offer requests / (budget per window x windows elapsed), over whole windows:
  from the opening of the first window to the opening of the last (whose requests are not
  counted), windows elapsed being that time / window length. The emulator opens a window at the
  first request after the previous one ended; the scaled window is 1 s, so ``x-RateLimit-Reset``
  is sent in epoch milliseconds: in whole seconds, the rounding up would cost up to a second per
  window (measured: 0.53 of the budget at 1 s windows; at Takealot's 60 s it is at most 1/61).

Throttled answers (429, Shopify's ``THROTTLED``) retried successfully are reported in the details
(``throttled_answers``); an item that failed, for throttling or anything else, raises.

Target: >= 0.95 and no item failed for throttling.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from ._catalog import GeneratedCatalog
from ._channels import (
    AMAZON_BURST,
    AMAZON_RATE,
    SHOPIFY_BUCKET,
    SHOPIFY_RESTORE,
    TAKEALOT_BUDGET,
    TAKEALOT_WINDOW,
    Rig,
    build,
    check_delivered,
    check_emulator,
    synchronize,
)
from ._core import Context, Result


LATENCY = 0.02  #: seconds on every answer
TARGET = 0.95
#: Scale factors of the documented limits: allowed rates well below what 20 ms of latency and
#: the channels' default concurrency (4) can carry (~170 requests/s), so the limit is the bound.
SCALE = {
    "shopify": 2.0,  # 200 points/s, bucket 2,000
    "amazon": 10.0,  # 50 requests/s, burst 50, per operation
    "takealot": 36.0,  # 100 per 60 s -> 60 per 1 s window
}
#: Measured once (limits off): what one product of `GeneratedCatalog` costs on each channel.
_SHOPIFY_POINTS_PER_PRODUCT = 53.0
_SHOPIFY_POINTS_PER_CATEGORY = 28.0  #: a collection and its translations
#: Categories of the generated catalogs (fewer than its default 40: they would be most of a short
#: Shopify run).
CATEGORIES = 10
_REQUESTS_PER_PRODUCT = {"amazon": 4.37, "takealot": 3.37}
#: Shopify's steady state starts at the first answer that leaves less than this of the bucket.
_EMPTY = 0.05
_MIN_STEADY = 0.5  #: seconds (and at least a quarter of the run)


def _products(channel: str, seconds: float) -> int:
    """Products for a run of about *seconds* at the scaled limit (the initial burst on top)."""
    scale = SCALE[channel]
    if channel == "shopify":  # the bucket is emptied first, then *seconds* of steady state
        points = (SHOPIFY_RESTORE * seconds + SHOPIFY_BUCKET) * scale
        points -= _SHOPIFY_POINTS_PER_CATEGORY * CATEGORIES
        return max(10, math.ceil(points / _SHOPIFY_POINTS_PER_PRODUCT))
    if channel == "amazon":
        requests = (AMAZON_RATE * seconds + AMAZON_BURST) * scale
    else:
        requests = TAKEALOT_BUDGET / TAKEALOT_WINDOW * scale * seconds
    return max(10, math.ceil(requests / _REQUESTS_PER_PRODUCT[channel]))


class _Trace:
    """What the emulator answered, with when (thread-safe appends)."""

    def __init__(self, rig: Rig, *, shopify: bool = False) -> None:
        #: ``(entered, answered, method, path, status, Shopify's cost extension)``
        self.answers: list[tuple[float, float, str, str, int, dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._shopify = shopify
        rig.on_answer = self.record

    def record(self, entered: float, answered: float, request: Any, response: Any) -> None:
        cost = None
        if self._shopify and response.status_code == 200:
            cost = (json.loads(response.content).get("extensions") or {}).get("cost")
        with self._lock:
            self.answers.append(
                (entered, answered, request.method, request.url.path, response.status_code, cost)
            )


def _run(rig: Rig, catalog: GeneratedCatalog, *, shopify: bool = False) -> tuple[Any, _Trace]:
    trace = _Trace(rig, shopify=shopify)
    try:
        result = synchronize(rig, catalog, batch_size=100)
        check_delivered(rig.name, catalog, result)
        check_emulator(rig, catalog)
    finally:
        rig.on_answer = None
        rig.close()
    return result, trace


def _common(result: Any, rig: Rig, catalog: GeneratedCatalog) -> dict[str, Any]:
    return {
        "products": catalog.products,
        "items": len(catalog),
        "synchronized": result.synchronized,
        "skipped": result.skipped,
        "failed": result.failed,
        "items_failed_throttled": sum(
            n for code, n in result.errors.items() if "throttl" in code or "rate" in code
        ),
        "run_seconds": round(result.seconds, 2),
        "latency_s": LATENCY,
        "scale": SCALE[rig.name],
    }


def _shopify(ctx: Context, seconds: float) -> Result:
    scale = SCALE["shopify"]
    catalog = GeneratedCatalog(_products("shopify", seconds), categories=CATEGORIES)
    rig = build("shopify", catalog, scale=scale, latency=LATENCY)
    size, rate = rig.limits["bucket_size"], rig.limits["restore_rate"]
    result, trace = _run(rig, catalog, shopify=True)
    emulator = rig.emulator
    # (entered, answered, cost) of every charged answer; the emulator charged in between, so
    # the allowance is taken from the earlier time to the later one (never understated)
    charged = [(t, u, c) for t, u, _m, _p, _s, c in trace.answers if c and c.get("actualQueryCost")]
    if not charged:
        raise RuntimeError("shopify: no cost was charged")
    start = next(
        (
            i
            for i, (_t, _u, c) in enumerate(charged)
            if c["throttleStatus"]["currentlyAvailable"] < _EMPTY * size
        ),
        None,
    )
    t_first, t_last = min(t for t, _u, _c in charged), max(u for _t, u, _c in charged)
    whole = sum(c["actualQueryCost"] for _t, _u, c in charged)
    if abs(whole - emulator.cost_spent) > 1e-6 * max(1.0, whole):
        raise RuntimeError(
            f"shopify: traced {whole} points, the emulator charged {emulator.cost_spent}"
        )
    whole_ratio = whole / (rate * (t_last - t_first) + size)
    details: dict[str, Any] = {
        **_common(result, rig, catalog),
        "bucket_size": size,
        "restore_rate_points_s": rate,
        "requests": rig.emulator_calls,
        "throttled_answers": emulator.throttles,
        "points_charged": whole,
        "whole_run_ratio": round(whole_ratio, 4),
        "whole_run_formula": "points / (restore_rate * (last - first answer) + bucket_size)",
    }
    steady = t_last - charged[start][0] if start is not None else 0.0
    if start is None or steady < max(_MIN_STEADY, 0.25 * (t_last - t_first)):
        # Never limited by the bucket: the channel could not send fast enough (a starved
        # machine?), so this run says nothing about pacing.
        msg = (
            f"shopify: the bucket was limiting for {steady:.1f} s of {t_last - t_first:.1f} s "
            f"({whole:g} points charged): the run measures no pacing"
        )
        raise RuntimeError(msg)
    t0, _u0, c0 = charged[start]
    available = float(c0["throttleStatus"]["currentlyAvailable"])
    used = sum(c["actualQueryCost"] for _t, _u, c in charged[start + 1 :])
    ratio = used / (rate * steady + available)
    details |= {
        "formula": (
            "points charged after t0 / (restore_rate * (last answer - t0) + points available "
            "at t0); t0 = first answer leaving < 5% of the bucket"
        ),
        "t0_after_s": round(t0 - t_first, 2),
        "steady_seconds": round(steady, 2),
        "available_at_t0": available,
        "points_after_t0": used,
    }
    ctx.log(
        f"   shopify: {catalog.products} products, {result.seconds:.1f} s, {ratio:.3f} of "
        f"{rate:g} points/s (steady {steady:.1f} s), {emulator.throttles} throttled"
    )
    return _result("shopify", "Shopify cost points / allowed", ratio, details)


def _amazon(ctx: Context, seconds: float) -> Result:
    scale = SCALE["amazon"]
    catalog = GeneratedCatalog(_products("amazon", seconds), categories=CATEGORIES)
    rig = build("amazon", catalog, scale=scale, latency=LATENCY)
    limits = rig.limits["rate_limits"]
    result, trace = _run(rig, catalog)
    operations = {
        "GET": "getListingsItem",
        "PUT": "putListingsItem",
        "PATCH": "patchListingsItem",
        "DELETE": "deleteListingsItem",
    }
    per_op: dict[str, list[tuple[float, float]]] = {}
    throttled = 0
    for entered, answered, method, path, status, _c in trace.answers:
        if "/listings/" not in path:
            continue
        if status == 429:
            throttled += 1
            continue
        per_op.setdefault(operations[method], []).append((entered, answered))
    figures = {}
    for op, times in per_op.items():
        rate, burst = limits[op]
        elapsed = max(u for _t, u in times) - min(t for t, _u in times)
        allowed = rate * elapsed + burst
        figures[op] = {
            "requests": len(times),
            "elapsed_s": round(elapsed, 3),
            "allowed": round(allowed, 1),
            "ratio": round(len(times) / allowed, 4),
        }
    busiest = max(per_op, key=lambda op: len(per_op[op]))
    ratio = figures[busiest]["ratio"]
    rate, burst = limits[busiest]
    details = {
        **_common(result, rig, catalog),
        "operation": busiest,
        "rate_per_s": rate,
        "burst": burst,
        "elapsed_s": figures[busiest]["elapsed_s"],
        "per_operation": figures,
        "throttled_answers": throttled,
        "formula": "requests of the operation / (rate * (last - first request) + burst)",
    }
    ctx.log(
        f"   amazon: {catalog.products} products, {result.seconds:.1f} s, {ratio:.3f} of "
        f"{rate:g} {busiest}/s, {throttled} throttled"
    )
    return _result("amazon", f"Amazon {busiest} requests / allowed", ratio, details)


def _takealot(ctx: Context, seconds: float) -> Result:
    scale = SCALE["takealot"]
    catalog = GeneratedCatalog(_products("takealot", seconds), categories=CATEGORIES)
    rig = build("takealot", catalog, scale=scale, latency=LATENCY)
    budget, window = rig.limits["budget"], rig.limits["window"]
    result, _trace = _run(rig, catalog)
    emulator = rig.emulator
    offers = [t for route, t in emulator.granted if route == "offer"]
    starts: list[float] = []  # the emulator's windows: one opens at the first request after
    for t in offers:  # the previous one ended
        if not starts or t >= starts[-1] + window:
            starts.append(t)
    details: dict[str, Any] = {
        **_common(result, rig, catalog),
        "budget_per_window": budget,
        "window_s": window,
        "offer_requests": len(offers),
        "windows": len(starts),
        "throttled_answers": emulator.throttled,
        "reset_header": (
            f"epoch milliseconds (the window is scaled from {TAKEALOT_WINDOW:g} s to {window:g} s)"
        ),
        "formula": (
            "offer requests before the last window / (budget * (last window's opening - first "
            "window's opening) / window)"
        ),
    }
    if len(starts) < 2:
        raise RuntimeError(f"takealot: the run opened {len(starts)} window(s); make it longer")
    used = sum(1 for t in offers if t < starts[-1])
    windows = (starts[-1] - starts[0]) / window
    ratio = used / (budget * windows)
    details |= {"windows_elapsed": round(windows, 3), "requests_counted": used}
    ctx.log(
        f"   takealot: {catalog.products} products, {result.seconds:.1f} s, {ratio:.3f} of "
        f"{budget}/{window:g} s, {emulator.throttled} throttled"
    )
    return _result("takealot", "Takealot offer requests / allowed budget", ratio, details)


def _result(channel: str, name: str, ratio: float, details: dict[str, Any]) -> Result:
    met = ratio >= TARGET and details["items_failed_throttled"] == 0 and details["failed"] == 0
    return Result(
        benchmark="pacing",
        name=name,
        value=round(ratio, 4),
        unit="of the allowed rate",
        reference=1.0,
        reference_name="the allowed rate",
        ratio=round(ratio, 4),
        ratio_note="achieved rate / allowed rate, by the emulator's count",
        target=f">= {TARGET} and no item failed for throttling",
        met=met,
        details={"channel": channel, **details},
    )


def run(ctx: Context) -> list[Result]:
    seconds = ctx.size(60, 8, 1.5)
    started = time.perf_counter()
    results = [_shopify(ctx, seconds), _amazon(ctx, seconds), _takealot(ctx, seconds)]
    ctx.log(f"   pacing: {time.perf_counter() - started:.1f} s")
    return results
