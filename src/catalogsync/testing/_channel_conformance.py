"""
The `Channel` conformance suite: what the synchronizer relies on from any channel adapter.

Mix it into a test class and provide two fixtures:

* ``channel``: a ready channel (for a real adapter: on its emulator, with a `ManualClock`);
* ``catalog``: a `catalogsync.MemoryCatalog` of items the channel should accept and deliver.

Optionally ``invalid_item`` (an item the channel must reject locally, with its catalog already
containing whatever relations it needs) and ``secrets`` (strings that must never appear in the
channel's repr or errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from .._catalog import MemoryCatalog
from .._hashing import ChangeHasher
from .._models import Change, Connector, ConnectorParams, ItemState, ItemType
from .._sync import Synchronizer, SyncOptions
from ..backends import MemoryQueue, MemoryStore
from ..typing import Channel, ConnectionInfo, Operation, Outcome
from ._clock import ManualClock


__all__ = ["ChannelConformance"]


class _Recorder:
    """Wraps a channel's push to record operations and outcomes."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.calls: list[tuple[list[Operation], list[Outcome]]] = []
        original = channel.push

        def push(operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
            outcomes = list(original(operations, params))
            self.calls.append((list(operations), outcomes))
            return outcomes

        channel.push = push  # type: ignore[method-assign]

    @property
    def operations(self) -> int:
        return sum(len(ops) for ops, _ in self.calls)


def _optional(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip(f"no {name} fixture")


def _everything(catalog: MemoryCatalog) -> list[Change]:
    return [Change(i.ref, t) for t in ItemType for i in catalog.items(t)]


class ChannelConformance:
    """
    The contract every `Channel` honours (see ``catalogsync.typing.Channel``).

    .. versionadded:: 0.1.0
    """

    params: ConnectorParams = ConnectorParams()

    @pytest.fixture
    def conformance_clock(self) -> ManualClock:
        """The clock of the synchronizer the suite drives."""
        return ManualClock()

    def _sync(self, channel: Channel, catalog: MemoryCatalog, clock: ManualClock) -> Synchronizer:
        return Synchronizer(
            Connector("conformance", channel.name, params=self.params),
            catalog=catalog,
            channel=channel,
            queue=MemoryQueue(clock=clock),
            store=MemoryStore(clock=clock),
            clock=clock,
            options=SyncOptions(batch_size=50, heartbeat=False),
        )

    def test_protocol_and_capabilities(self, channel: Channel) -> None:
        """The channel satisfies the protocol and its capabilities are consistent."""
        assert isinstance(channel, Channel)
        assert isinstance(channel.name, str)
        assert channel.name
        caps = channel.capabilities
        assert caps.reads_ids <= caps.reads
        for carried, carrier in caps.carried.items():
            assert (carrier, carried) in caps.reads

    def test_check_connection(self, channel: Channel) -> None:
        """check_connection returns a ConnectionInfo with string details only."""
        info = channel.check_connection(self.params)
        assert isinstance(info, ConnectionInfo)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.details.items())

    def test_first_sync_gives_every_item_a_final_status(
        self, channel: Channel, catalog: MemoryCatalog, conformance_clock: ManualClock
    ) -> None:
        """Every accepted item ends DONE or ERROR; the channel answered for every operation."""
        recorder = _Recorder(channel)
        sync = self._sync(channel, catalog, conformance_clock)
        sync.enqueue(_everything(catalog))
        result = sync.run()

        assert result.reason == "completed"
        for operations, outcomes in recorder.calls:
            expected = {o.key for op in operations for o in (op, *op.carried)}
            assert {o.key for o in outcomes} == expected
        statuses = sync.register.items("conformance", limit=100_000)
        assert statuses.total > 0
        assert {s.state for s in statuses} <= {ItemState.DONE, ItemState.ERROR}
        delivered = {s.key for s in statuses if s.state is ItemState.DONE}
        accepted = {
            (t, i.ref)
            for t in ItemType
            if t in channel.capabilities.accepts
            for i in catalog.items(t)
        }
        assert delivered & accepted

    def test_unchanged_catalog_sends_nothing(
        self, channel: Channel, catalog: MemoryCatalog, conformance_clock: ManualClock
    ) -> None:
        """A second sync of an unchanged catalog makes no channel call (rule R06)."""
        sync = self._sync(channel, catalog, conformance_clock)
        sync.enqueue(_everything(catalog))
        sync.run()
        recorder = _Recorder(channel)
        sync.enqueue(_everything(catalog))
        result = sync.run()

        assert recorder.operations == 0
        assert result.synchronized.total == 0

    def test_render_is_pure_and_hashable(
        self, channel: Channel, catalog: MemoryCatalog, conformance_clock: ManualClock
    ) -> None:
        """Rendering the same item twice gives equal payloads with a canonical hash."""
        from .._pipeline import Exportability, Loader, render_context  # noqa: PLC0415

        store = MemoryStore(clock=conformance_clock)
        loader = Loader(catalog, store, "conformance")
        exportable = Exportability(self.params, loader)
        items = [i for t in ItemType if t in channel.capabilities.accepts for i in catalog.items(t)]
        ctx = render_context(self.params, channel.capabilities, loader, exportable, items)
        hasher = ChangeHasher()
        for item in items:
            if not exportable(item):
                continue
            first, second = channel.render(item, ctx), channel.render(item, ctx)
            assert first == second
            assert hasher.digest(first) == hasher.digest(second)

    def test_redelivery_is_idempotent(
        self, channel: Channel, catalog: MemoryCatalog, conformance_clock: ManualClock
    ) -> None:
        """Pushing the same operations twice (a crash before the commit) keeps the same ids."""
        recorder = _Recorder(channel)
        sync = self._sync(channel, catalog, conformance_clock)
        sync.enqueue(_everything(catalog))
        sync.run()
        for operations, outcomes in list(recorder.calls):
            ids = {o.key: o.channel_id for o in outcomes if o.ok}
            again = channel.push(operations, self.params)
            for outcome in again:
                if outcome.key in ids and ids[outcome.key] is not None:
                    assert outcome.ok, outcome
                    assert outcome.channel_id == ids[outcome.key]

    def test_invalid_item_is_rejected_locally(
        self,
        channel: Channel,
        catalog: MemoryCatalog,
        conformance_clock: ManualClock,
        request: pytest.FixtureRequest,
    ) -> None:
        """An invalid item gets VALIDATION errors and is never sent."""
        item: Any = _optional(request, "invalid_item")
        catalog.put(item)
        recorder = _Recorder(channel)
        sync = self._sync(channel, catalog, conformance_clock)
        sync.enqueue(_everything(catalog))
        sync.run()
        [status] = sync.register.items("conformance", ref=item.ref, item_type=item.type).items

        assert status.state is ItemState.ERROR
        assert status.errors
        assert all(e.kind.value == "validation" for e in status.errors)
        sent = {o.key for ops, _ in recorder.calls for op in ops for o in (op, *op.carried)}
        assert item.key not in sent

    def test_secrets_never_show(self, channel: Channel, request: pytest.FixtureRequest) -> None:
        """The channel's repr never contains a credential."""
        secrets: list[str] = _optional(request, "secrets")
        text = repr(channel) + str(vars(channel) if hasattr(channel, "__dict__") else "")
        for secret in secrets:
            assert secret not in repr(channel)
            assert secret not in text
