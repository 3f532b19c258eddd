"""A channel that renders and validates like `MemoryChannel` but keeps nothing it is sent."""

from __future__ import annotations

from collections.abc import Sequence

from catalogsync import ConnectorParams, Endpoint, ItemAction
from catalogsync.testing import MemoryChannel
from catalogsync.typing import Operation, Outcome


class SinkChannel(MemoryChannel):
    """Accepts every operation and forgets it: memory measurements see only the library."""

    name = "memory"

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        self.pushes += 1
        out: list[Outcome] = []
        for op in operations:
            for o in (op, *op.carried):
                action = ItemAction.CREATE if o.action is ItemAction.UPDATE else o.action
                out.append(
                    Outcome(
                        o.item_type,
                        o.ref,
                        ok=True,
                        action=action,
                        channel_id=f"sink:{o.item_type.value}:{o.ref}",
                        request_id=f"sink-{self.pushes}",
                        endpoint=Endpoint.PRODUCTION,
                    )
                )
        return out
