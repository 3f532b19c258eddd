"""A channel over HTTP to a key-value emulator: channel state that outlives worker processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import httpx

from catalogsync import ConnectorParams, Endpoint, ErrorKind, ItemAction, ItemError
from catalogsync.testing import Emulator, MemoryChannel
from catalogsync.typing import ConnectionInfo, Operation, Outcome


class KVEmulator(Emulator):
    """
    Stores payloads by (type, ref); counts creations so a duplicate is visible.

    ``PUT /items/<type>/<ref>`` and ``DELETE /items/<type>/<ref>`` write one item;
    ``POST /batch`` takes ``[{"key": ..., "payload": ... or null}, ...]`` (null deletes) and
    answers one result per entry. ``writes`` counts item writes either way.
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.lock = threading.Lock()
        self.items: dict[str, dict] = {}
        self.creates: dict[str, int] = {}
        self.writes = 0

    def _put(self, key: str, payload: dict) -> dict:
        created = key not in self.items
        self.items[key] = payload
        self.writes += 1
        if created:
            self.creates[key] = self.creates.get(key, 0) + 1
        return {"id": f"kv:{key}", "created": created}

    def _delete(self, key: str) -> dict:
        self.items.pop(key, None)
        self.writes += 1
        return {"deleted": True}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"ok": True})
        if path == "/state":
            with self.lock:
                state = {"items": self.items, "creates": self.creates, "writes": self.writes}
                return httpx.Response(200, json=state)
        if path == "/batch" and request.method == "POST":
            entries = json.loads(request.content)
            with self.lock:
                results = [
                    self._delete(e["key"])
                    if e["payload"] is None
                    else self._put(e["key"], e["payload"])
                    for e in entries
                ]
            return httpx.Response(200, json=results)
        _, _, key = path.partition("/items/")
        with self.lock:
            if request.method == "PUT":
                return httpx.Response(200, json=self._put(key, json.loads(request.content)))
            if request.method == "DELETE":
                return httpx.Response(200, json=self._delete(key))
        return httpx.Response(404, json={"error": "no route"})


class KVChannel(MemoryChannel):
    """
    MemoryChannel's rendering and validation, but pushes over HTTP: one request per item, or
    one per batch with ``batch=True``.
    """

    name = "kv"

    def __init__(self, base_url: str, *, batch: bool = False, **kw):
        super().__init__(**kw)
        self.batch = batch
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        self.http.get("/health").raise_for_status()
        return ConnectionInfo(api_version="kv-1")

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        if self.batch:
            return self._push_batch(operations)
        out = []
        for op in operations:
            for o in (op, *op.carried):
                key = f"{o.item_type.value}/{o.ref}"
                try:
                    if o.action is ItemAction.DELETE:
                        self.http.delete(f"/items/{key}").raise_for_status()
                        out.append(
                            Outcome(
                                o.item_type,
                                o.ref,
                                ok=True,
                                action=o.action,
                                endpoint=Endpoint.PRODUCTION,
                            )
                        )
                        continue
                    body = self.http.put(f"/items/{key}", json=o.payload).raise_for_status().json()
                except httpx.HTTPError as exc:
                    err = ItemError(ErrorKind.TRANSPORT, str(exc), "http")
                    out.append(Outcome(o.item_type, o.ref, ok=False, errors=(err,)))
                    continue
                action = ItemAction.CREATE if body["created"] else ItemAction.UPDATE
                out.append(
                    Outcome(o.item_type, o.ref, ok=True, action=action, channel_id=body["id"])
                )
        return out

    def _push_batch(self, operations: Sequence[Operation]) -> Sequence[Outcome]:
        ops = [o for op in operations for o in (op, *op.carried)]
        entries = [
            {
                "key": f"{o.item_type.value}/{o.ref}",
                "payload": None if o.action is ItemAction.DELETE else o.payload,
            }
            for o in ops
        ]
        try:
            results = self.http.post("/batch", json=entries).raise_for_status().json()
        except httpx.HTTPError as exc:
            err = ItemError(ErrorKind.TRANSPORT, str(exc), "http")
            return [Outcome(o.item_type, o.ref, ok=False, errors=(err,)) for o in ops]
        out = []
        for o, body in zip(ops, results, strict=True):
            if o.action is ItemAction.DELETE:
                out.append(Outcome(o.item_type, o.ref, ok=True, action=o.action))
                continue
            action = ItemAction.CREATE if body["created"] else ItemAction.UPDATE
            out.append(Outcome(o.item_type, o.ref, ok=True, action=action, channel_id=body["id"]))
        return out
