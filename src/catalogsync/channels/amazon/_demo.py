"""
The Amazon wiring of ``python -m catalogsync demo --channel amazon``.

An in-process `catalogsync.testing.AmazonEmulator` plays Login with Amazon and the Listings Items
API for one seller in the South Africa marketplace (``AE08WJ6YKNBMC``, EU region, ZAR). The demo
catalog's vocabulary is mapped onto Amazon attributes (`DEMO_FIELD_MAPPING`), its families onto
product types (`DEMO_PRODUCT_TYPES`), with ``overwrite_stock`` and ``map_status`` on.

Rates are Amazon's documented ones, on simulated time: the emulator and the channel share a
`catalogsync.testing.ManualClock`, the emulator enforces every per-operation bucket at the
documented rate and burst (5 requests per second for each write), and the channel's pacing sleeps
advance that clock instead of blocking. Every limit is checked exactly (a pacing bug would show up
as 429 answers), but no wall time is spent waiting: the default 300-product demo (about 1,450
SKUs, some five minutes of Amazon time) runs in a few seconds. The activity register keeps real
timestamps (the synchronizer runs on the system clock); the channel's ``clock`` tells how much
Amazon time passed.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from ..._models import ConnectorParams
from ..._secrets import Secret
from ...typing import Channel
from ._auth import LwaCredentials
from ._channel import AmazonChannel


if TYPE_CHECKING:
    import httpx

    from ...testing import AmazonEmulator


__all__ = ["DEMO_FIELD_MAPPING", "DEMO_PRODUCT_TYPES", "demo_channel", "demo_params", "demo_setup"]

#: Amazon channel field -> the demo catalog's field (see ``catalogsync._demo.sample_catalog``).
DEMO_FIELD_MAPPING: Final = {
    "item_name": "title",
    "product_description": "description",
    "brand": "vendor",
    "price": "price",
    "list_price": "compare_at_price",
    "sku": "sku",
    "barcode": "barcode",
    "images": "images",
    "size": "option_values.Size",
    "color": "option_values.Color",
    "quantity": "stock",
    "item_weight": "weight",
}

#: The demo catalog's families -> Amazon product types.
DEMO_PRODUCT_TYPES: Final = {
    "shoes": "SHOES",
    "socks": "SOCKS",
    "bags": "HANDBAG",
    "hats": "HAT",
    "jackets": "COAT",
    "accessories": "ACCESSORY",
}

_SELLER: Final = "A3DEMOSELLERZA"


def demo_params() -> ConnectorParams:
    """The demo connector's parameters: mapped fields, stock overwritten, status mapped."""
    return ConnectorParams(
        language="en",
        overwrite_stock=True,
        map_status=True,
        field_mapping=DEMO_FIELD_MAPPING,
    )


def demo_channel(emulator: AmazonEmulator, client: httpx.Client, **options: Any) -> AmazonChannel:
    """
    The demo's channel for *emulator*'s seller in the South Africa marketplace, with the demo's
    product types, talking through *client*; *options* go to `AmazonChannel` (a clock, a pacer).
    """
    return AmazonChannel(
        client,
        seller_id=emulator.seller_id,
        marketplace="ZA",
        credentials=LwaCredentials(
            emulator.client_id,
            client_secret=Secret(emulator.client_secret),
            refresh_token=Secret(emulator.refresh_token),
        ),
        product_type="ACCESSORY",
        product_types=DEMO_PRODUCT_TYPES,
        **options,
    )


def demo_setup() -> tuple[Channel, ConnectorParams, contextlib.ExitStack]:
    """
    The demo's Amazon channel on an in-process emulator, its connector parameters, and an exit
    stack that closes the HTTP client.
    """
    from ...testing import AmazonEmulator, ManualClock  # noqa: PLC0415 - the demo only

    amazon_time = ManualClock()
    emulator = AmazonEmulator(seller_id=_SELLER, clock=amazon_time)
    stack = contextlib.ExitStack()
    client = stack.enter_context(emulator.client())
    return demo_channel(emulator, client, clock=amazon_time), demo_params(), stack
