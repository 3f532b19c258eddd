"""
A producer process for the load campaign: enqueues changes into a shared SQLite queue while an
event runs elsewhere.

    python _campaignproducer.py '{"db": ..., "products": N, "refs": [[type, ref], ...], "chunk": 7}'

It builds its `Synchronizer` (so enqueues expand dependents, reading the shared store), prints
``ready``, waits for a line on stdin, then enqueues the refs in chunks and prints how many queue
writes it made.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))

from _campaignchannels import make_catalog
from catalogsync import Change, SQLiteQueue, SQLiteStore, Synchronizer
from catalogsync.testing import MemoryChannel


def main() -> None:
    """Enqueue the refs of the spec in chunks, once told to go."""
    spec = json.loads(sys.argv[1])
    queue, store = SQLiteQueue(spec["db"]), SQLiteStore(spec["db"])
    sync = Synchronizer(
        spec["connector"],
        catalog=make_catalog("kv", spec["products"]),
        channel=MemoryChannel(),
        queue=queue,
        store=store,
    )
    print("ready", flush=True)
    sys.stdin.readline()
    refs = [Change(ref, kind) for kind, ref in spec["refs"]]
    written = 0
    chunk = spec.get("chunk", 7)
    for start in range(0, len(refs), chunk):
        written += sync.enqueue(refs[start : start + chunk])
        time.sleep(spec.get("pause", 0.002))
    print(json.dumps({"written": written, "changes": len(refs)}), flush=True)
    queue.close()
    store.close()


if __name__ == "__main__":
    main()
