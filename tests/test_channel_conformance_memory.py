"""The channel conformance suite against MemoryChannel, plain and carrying variants."""

import pytest

from catalogsync import Item
from catalogsync.testing import ChannelConformance, MemoryChannel
from catalogsync.typing import Capabilities

from _syncenv import C, P, V, shoe_catalog


class TestMemoryChannel(ChannelConformance):
    @pytest.fixture
    def channel(self):
        """A plain memory channel."""
        return MemoryChannel()

    @pytest.fixture
    def catalog(self):
        """The shoe catalog."""
        return shoe_catalog()

    @pytest.fixture
    def invalid_item(self):
        """A product without a title."""
        return Item("P99", P, fields={"title": ""}, parents=["C1"])

    @pytest.fixture
    def secrets(self):
        """The memory channel holds no credential; nothing may look like one."""
        return ["shpat_", "Atzr|"]


class TestCarryingMemoryChannel(TestMemoryChannel):
    @pytest.fixture
    def channel(self):
        """A memory channel that carries variants inside products, like Shopify."""
        return MemoryChannel(
            capabilities=Capabilities(reads={(P, V), (P, C)}, reads_ids={(P, C)}, carried={V: P})
        )


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -float("inf"), -1])
def test_memory_channel_rejects_a_price_that_is_not_a_finite_number(price):
    """NaN and infinities hash as null, so the validator must stop them: they are not prices."""
    from catalogsync import ConnectorParams
    from catalogsync.typing import RenderContext

    channel = MemoryChannel()
    item = Item("P1", P, fields={"title": "Shoe", "price": price})
    ctx = RenderContext(ConnectorParams())

    errors = channel.validate(item, channel.render(item, ctx), ctx)

    assert [(e.code, e.field) for e in errors] == [("invalid", "price")]
