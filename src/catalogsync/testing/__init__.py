"""
Test helpers that ship with catalogsync: a manual clock, a channel with no network, channel
emulators, and conformance suites for your own backends and channels.

The conformance suites import pytest; everything else has no test-framework dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._amazon import AmazonEmulator
from ._clock import ManualClock
from ._http import Emulator, Fault, FaultKind, Faults
from ._memory_channel import MemoryChannel
from ._shopify import EmulatedCollection, EmulatedProduct, EmulatedVariant, ShopifyEmulator
from ._takealot import TakealotEmulator


if TYPE_CHECKING:
    from ._channel_conformance import ChannelConformance
    from ._conformance import QueueConformance, StoreConformance


__all__ = [
    "AmazonEmulator",
    "ChannelConformance",
    "EmulatedCollection",
    "EmulatedProduct",
    "EmulatedVariant",
    "Emulator",
    "Fault",
    "FaultKind",
    "Faults",
    "ManualClock",
    "MemoryChannel",
    "QueueConformance",
    "ShopifyEmulator",
    "StoreConformance",
    "TakealotEmulator",
]


def __getattr__(name: str) -> Any:
    # The conformance suites need pytest; import them only when asked for.
    if name in {"QueueConformance", "StoreConformance"}:
        from . import _conformance  # noqa: PLC0415

        return getattr(_conformance, name)
    if name == "ChannelConformance":
        from ._channel_conformance import ChannelConformance  # noqa: PLC0415

        return ChannelConformance
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
