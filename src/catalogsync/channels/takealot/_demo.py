"""
The demo's Takealot wiring: `TakealotChannel` on an in-process `TakealotEmulator`.

``python -m catalogsync demo --channel takealot`` calls `demo_setup` (registered in
``catalogsync._demo.CHANNELS``). Nothing leaves the process: the channel's `httpx.Client` is
wired to the emulator with ``httpx.MockTransport``.

Rule 1: the emulator's catalogue is the set of barcodes the demo catalog numbers
(``catalogsync._demo.ean13``: ``1001`` upwards for `sample_catalog`'s variants, ``90001``
upwards for the product `edit_catalog` adds), *except* a deterministic handful (`unlisted`), so
the demo shows what a barcode Takealot does not list looks like: a ``CHANNEL`` item error
"barcode ... is not in the Takealot catalogue (E2)".

Rule 2: rate limits are on, as on Takealot, but generous (`RATE_LIMIT` requests per
`WINDOW` seconds per endpoint class), and batches complete on their first status poll, so the
default demo (300 products, about 1,200 offers) finishes in a second or two of real time.
"""

from __future__ import annotations

import contextlib
from typing import Final

from ..._demo import DemoSetup, ean13
from ..._models import ConnectorParams
from ..._secrets import Secret
from ...testing._takealot import TakealotEmulator
from ._channel import TakealotChannel


__all__ = [
    "CATALOGUE_SPAN",
    "DEMO_KEY",
    "FIELD_MAPPING",
    "LEADTIME_DAYS",
    "RATE_LIMIT",
    "WAREHOUSE",
    "WINDOW",
    "demo_catalogue",
    "demo_params",
    "demo_setup",
    "unlisted",
]

#: The demo's (fake) API key; the emulator accepts only this one.
DEMO_KEY: Final = "catalogsync-demo-takealot-key"
#: The seller's one merchant warehouse.
WAREHOUSE: Final = 28676
#: Leadtime days sent with every offer: the demo vocabulary has no leadtime field, and Takealot
#: refuses leadtime stock without leadtime days (E18).
LEADTIME_DAYS: Final = 5
#: Takealot field <- demo catalog field (see ``sample_catalog``'s docstring).
FIELD_MAPPING: Final = {
    "sku": "sku",
    "barcode": "barcode",
    "selling_price": "price",
    "rrp": "compare_at_price",
    "stock": "stock",
}
#: Barcode numbers ``1001 .. 1000 + CATALOGUE_SPAN`` are listed (enough for about 5,000 demo
#: products with their 2-6 variants each; larger samples see more unknown barcodes).
CATALOGUE_SPAN: Final = 20_000
#: The barcode numbers `edit_catalog` gives the variants of its new product.
_EDIT_NUMBERS: Final = (90_001, 90_002, 90_003)
_FIRST: Final = 1000
_EVERY: Final = 250
_ALSO: Final = frozenset({7, 45})

#: Requests per window per endpoint class (single offers, batch submission, batch status,
#: account reads), and the window in seconds.
RATE_LIMIT: Final = 200
WINDOW: Final = 1.0


def unlisted(number: int) -> bool:
    """
    Whether the demo's Takealot catalogue leaves out barcode ``ean13(number)``.

    The 7th and 45th barcode of the sample catalog, every 250th one, and the third variant of
    the product the demo's edits add (``90003``): a handful whatever the sample size.
    """
    if number >= _EDIT_NUMBERS[0]:
        return number == _EDIT_NUMBERS[-1]
    offset = number - _FIRST
    return offset in _ALSO or offset % _EVERY == 0


def demo_catalogue(span: int = CATALOGUE_SPAN) -> list[str]:
    """The barcodes the demo's Takealot catalogue lists (see `unlisted`)."""
    numbers = [*range(_FIRST + 1, _FIRST + span + 1), *_EDIT_NUMBERS]
    return [ean13(n) for n in numbers if not unlisted(n)]


def demo_params() -> ConnectorParams:
    """The demo connector's parameters: mapped fields, stock overwritten, status mapped."""
    return ConnectorParams(
        language="en",
        field_mapping=FIELD_MAPPING,
        overwrite_stock=True,
        map_status=True,
    )


def demo_setup() -> DemoSetup:
    """
    A `TakealotChannel` on an in-process `TakealotEmulator`, the demo's connector parameters,
    and an exit stack that closes the channel's client.

    The emulator runs on the real clock with rate limits on (`RATE_LIMIT` per `WINDOW` s);
    the channel polls batches every 20 ms (a real Takealot batch takes minutes: keep the
    defaults there).
    """
    stack = contextlib.ExitStack()
    emulator = TakealotEmulator(
        demo_catalogue(),
        api_key=DEMO_KEY,
        warehouses=(WAREHOUSE,),
        rate_limit=RATE_LIMIT,
        window=WINDOW,
        batch_polls=1,
    )
    client = stack.enter_context(emulator.client())
    channel = TakealotChannel(
        Secret(DEMO_KEY),
        client=client,
        warehouses=[WAREHOUSE],
        default_leadtime_days=LEADTIME_DAYS,
        poll_interval=0.02,
        max_poll_interval=0.1,
        batch_timeout=60.0,
    )
    return channel, demo_params(), stack
