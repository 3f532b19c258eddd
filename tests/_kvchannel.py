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
    """Stores payloads by (type, ref); counts creations so a duplicate is visible."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.lock = threading.Lock()
        self.items: dict[str, dict] = {}
        self.creates: dict[str, int] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"ok": True})
        if path == "/state":
            with self.lock:
                return httpx.Response(200, json={"items": self.items, "creates": self.creates})
        _, _, key = path.partition("/items/")
        with self.lock:
            if request.method == "PUT":
                created = key not in self.items
                self.items[key] = json.loads(request.content)
                if created:
                    self.creates[key] = self.creates.get(key, 0) + 1
                return httpx.Response(200, json={"id": f"kv:{key}", "created": created})
            if request.method == "DELETE":
                self.items.pop(key, None)
                return httpx.Response(200, json={"deleted": True})
        return httpx.Response(404, json={"error": "no route"})


class KVChannel(MemoryChannel):
    """MemoryChannel's rendering and validation, but pushes over HTTP, one request per item."""

    name = "kv"

    def __init__(self, base_url: str, **kw):
        super().__init__(**kw)
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        self.http.get("/health").raise_for_status()
        return ConnectionInfo(api_version="kv-1")

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
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
