"""
A worker process for the crash and many-worker tests: ``python _crashworker.py '<json config>'``.

Config keys:

* ``role``: ``"run"`` (one `Synchronizer.run`), ``"worker"`` (`Worker.run` until idle) or
  ``"produce"`` (enqueue ``changes`` while the connector's event runs).
* ``store`` / ``queue``: ``{"kind": "sqlite", "path": ...}``, ``{"kind": "postgres", "dsn": ...,
  "schema": ...}`` or (queue only) ``{"kind": "redis", "url": ..., "prefix": ...}``.
* ``url`` (the KV emulator; ``batch``: one request per batch), ``products`` (size of the demo catalog), ``connector``,
  ``options`` (`SyncOptions` keywords), optionally ``ready_file`` + ``go_file`` (touch the first,
  then wait for the second: the test starts every process at the same moment).

Prints one JSON line: what the process did (see `main`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).parent))

from catalogsync import Change, Connector, ItemType, Synchronizer, SyncOptions, Worker
from catalogsync._demo import sample_catalog

from _kvchannel import KVChannel


def _backend(spec: dict[str, Any], *, queue: bool) -> Any:
    kind = spec["kind"]
    if kind == "sqlite":
        from catalogsync import SQLiteQueue, SQLiteStore

        return (SQLiteQueue if queue else SQLiteStore)(spec["path"])
    if kind == "postgres":
        from catalogsync.backends.postgres import PostgresQueue, PostgresStore

        cls = PostgresQueue if queue else PostgresStore
        return cls(spec["dsn"], schema=spec["schema"], max_size=2)
    if kind == "redis" and queue:
        from catalogsync.backends.redis import RedisQueue

        return RedisQueue(spec["url"], prefix=spec["prefix"])
    raise ValueError(kind)


def _gate(config: dict[str, Any]) -> None:
    if "ready_file" not in config:
        return
    Path(config["ready_file"]).touch()
    go = Path(config["go_file"])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def _summary(result: Any) -> list[Any]:
    return [
        result.reason,
        result.event.id if result.event else None,
        result.batches,
        result.synchronized.total,
        result.failed.total,
        result.unchanged.total,
        result.skipped.total,
    ]


def _produce(sync: Synchronizer, config: dict[str, Any]) -> dict[str, Any]:
    """Wait for the event, then enqueue the changes in chunks; report what the queue showed."""
    deadline = time.monotonic() + 60
    event = sync.store.active_event(sync.connector_id)
    while event is None and time.monotonic() < deadline:
        time.sleep(0.005)
        event = sync.store.active_event(sync.connector_id)
    changes = [Change(ref, ItemType(t)) for t, ref in config["changes"]]
    written = 0
    pending = [sync.queue.counts(sync.connector_id).total]
    for i in range(0, len(changes), 100):
        written += sync.enqueue(changes[i : i + 100])
        pending.append(sync.queue.counts(sync.connector_id).total)
        time.sleep(0.01)
    after = sync.store.active_event(sync.connector_id)
    return {
        "written": written,
        "event": None if event is None else event.id,
        "event_after": None if after is None else after.id,
        "pending": pending,
    }


def main() -> None:
    """Run the role of the JSON config given as the only argument."""
    config = json.loads(sys.argv[1])
    options = {"batch_size": 7, "lease_ttl": 1.5, "poll_interval": 0.1, **config.get("options", {})}
    sync = Synchronizer(
        Connector(config.get("connector", "crash"), "kv"),
        catalog=sample_catalog(config["products"]),
        channel=KVChannel(config["url"], batch=config.get("batch", False)),
        queue=_backend(config["queue"], queue=True),
        store=_backend(config["store"], queue=False),
        options=SyncOptions(**options),
    )
    _gate(config)
    out: dict[str, Any] = {"pid": os.getpid(), "worker": sync.worker}
    role = config.get("role", "run")
    if role == "produce":
        out.update(_produce(sync, config))
    elif role == "worker":
        results: list[Any] = []
        out["reason"] = Worker(sync, on_result=results.append).run(until_idle=True)
        out["results"] = [_summary(r) for r in results]
    else:
        result = sync.run()
        out["reason"] = result.reason
        out["results"] = [_summary(result)]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
