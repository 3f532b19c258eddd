"""
The demo's Shopify wiring: the channel on an in-process `catalogsync.testing.ShopifyEmulator`.

``python -m catalogsync demo`` (Shopify is the default channel) synchronizes the sample catalog
to an emulated store that behaves like a Standard-plan shop: a 1,000-point cost bucket refilled
at 100 points per second, stock at one location, English and Spanish enabled. Shopify's pacing
runs on a simulated clock, so the minutes of waiting a real store would impose take no time, and
the requests are exactly the ones a real store would get.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Final

from ..._models import ConnectorParams
from ..._secrets import Secret
from ...typing import Channel
from ._auth import StaticToken
from ._channel import ShopifyChannel, ShopifyStore


__all__ = ["FIELD_MAPPING", "demo_params", "demo_setup"]

#: Channel field -> demo catalog field. Products list their option names in ``options``;
#: variants give their values in ``option_values``. Every other field has the channel's name.
FIELD_MAPPING: Final = {"option_names": "options", "options": "option_values"}

_TOKEN: Final = "shpat_catalogsync_demo"  # noqa: S105 - the emulator's made-up token
_LOCATION: Final = "gid://shopify/Location/1"
_SHOP: Final = "catalogsync-demo"
#: A Standard-plan shop: restore rate 100 points/s (Shopify's published figure) and the
#: 1,000-point bucket of Shopify's documentation examples.
BUCKET_SIZE: Final = 1000.0
RESTORE_RATE: Final = 100.0


def demo_params() -> ConnectorParams:
    """The demo connector's parameters: mapped fields, stock overwritten, status mapped."""
    return ConnectorParams(
        language="en",
        map_status=True,
        overwrite_stock=True,
        field_mapping=FIELD_MAPPING,
    )


def demo_setup() -> tuple[Channel, ConnectorParams, contextlib.ExitStack]:
    """
    The Shopify channel on an in-process emulator, and the demo connector's parameters.

    Returns:
        The channel, the parameters (status mapping, stock overwritten at the emulated store's
        one location, English as the default language with Spanish translations, the demo
        catalog's field mapping), and an exit stack that closes the HTTP client.

    Raises:
        SystemExit: graphql-core (the ``testing`` extra) is not installed.
    """
    if importlib.util.find_spec("graphql") is None:  # pragma: no cover - CI has the extra
        msg = (
            "the Shopify demo runs an emulated store, which needs graphql-core: "
            "pip install 'catalogsync[testing]' (or use --channel memory)"
        )
        raise SystemExit(msg)
    from ...testing import ManualClock, ShopifyEmulator  # noqa: PLC0415 - optional extra

    clock = ManualClock()
    emulator = ShopifyEmulator(
        access_tokens=[_TOKEN],
        bucket_size=BUCKET_SIZE,
        restore_rate=RESTORE_RATE,
        locations=[_LOCATION],
        locales=["en", "es"],
        shop=f"{_SHOP}.myshopify.com",
        clock=clock,
    )
    stack = contextlib.ExitStack()
    client = stack.enter_context(emulator.client())
    store = ShopifyStore(
        _SHOP,
        StaticToken(Secret(_TOKEN)),
        location_id=_LOCATION,
        base_url=emulator.base_url,
    )
    channel = ShopifyChannel(store, client=client, clock=clock)
    return channel, demo_params(), stack
