"""A worker process for the crash tests: python _crashworker.py DB URL PRODUCTS."""

from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))

from _kvchannel import KVChannel
from catalogsync import Connector, SQLiteQueue, SQLiteStore, Synchronizer, SyncOptions
from catalogsync._demo import sample_catalog


def main() -> None:
    db, url, products = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sync = Synchronizer(
        Connector("crash", "kv"),
        catalog=sample_catalog(products),
        channel=KVChannel(url),
        queue=SQLiteQueue(db),
        store=SQLiteStore(db),
        options=SyncOptions(batch_size=7, lease_ttl=1.5, poll_interval=0.1),
    )
    result = sync.run()
    print(result.reason, result.event.id if result.event else "-", flush=True)


if __name__ == "__main__":
    main()
