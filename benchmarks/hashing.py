"""
hash: the change hasher alone, against ``json.dumps(sort_keys=True)`` + ``hashlib.sha256``.

The payloads are what a channel really hashes: the generated catalog's products and variants
rendered by `catalogsync.testing.MemoryChannel` (products embed their variants). Both sides
digest the same payloads in a tight loop; the best of three passes counts.
"""

from __future__ import annotations

import hashlib
import json

from catalogsync import ChangeHasher, ConnectorParams
from catalogsync.testing import MemoryChannel
from catalogsync.typing import RenderContext

from ._catalog import GeneratedCatalog
from ._core import Context, Result, best_of


def payloads(count: int) -> list[dict]:
    products, variants, related, children = GeneratedCatalog(count).families()
    ctx = RenderContext(ConnectorParams(language="en"), related, children)
    channel = MemoryChannel()
    return [channel.render(item, ctx) for item in (*products, *variants)]


def run(ctx: Context) -> list[Result]:
    data = payloads(ctx.size(5_000, 1_000, 100))
    repeat = 3
    size = sum(len(json.dumps(p, ensure_ascii=False).encode()) for p in data)

    def reference() -> None:
        for p in data:
            hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()

    results = []
    ref = best_of(repeat, reference)
    for label, fast in (("fast (orjson)", True), ("pure Python", False)):
        try:
            hasher = ChangeHasher(fast=fast)
        except Exception as exc:  # orjson not installed: report the pure path only
            if fast:
                continue
            raise RuntimeError(str(exc)) from exc
        elapsed = best_of(repeat, lambda h=hasher: [h.digest(p) for p in data])
        rate = len(data) / elapsed
        results.append(
            Result(
                "hash",
                f"ChangeHasher.digest, {label}",
                rate,
                "payloads/s",
                reference=len(data) / ref,
                reference_name="json.dumps(sort_keys=True)+sha256, payloads/s",
                ratio=ref / elapsed,
                ratio_note="speed-up over the reference",
                target=">= 1x the reference" if fast else "",
                met=(ref / elapsed >= 1) if fast else None,
                details={
                    "payloads": len(data),
                    "mean_payload_bytes": round(size / len(data)),
                    "us_per_payload": round(elapsed / len(data) * 1e6, 2),
                    "reference_us_per_payload": round(ref / len(data) * 1e6, 2),
                    "MB_per_s": round(size / elapsed / 1e6, 1),
                },
            )
        )
    return results
