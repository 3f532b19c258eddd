"""
The Shopify channel (Admin GraphQL API).

Categories become manual collections; products are upserted whole with ``productSet`` (every
variant, option and collection, because list fields are replaced); stock is overwritten with
``inventorySetQuantities`` when ``overwrite_stock`` is set; non-default languages go through
``translationsRegister``. Requests are paced by Shopify's cost model. See
``docs/channels/shopify.md``.
"""

from ._auth import ClientCredentials, StaticToken, TokenProvider
from ._channel import ShopifyChannel, ShopifyMetrics, ShopifyStore
from ._sansio import (
    DEFAULT_API_VERSION,
    MIN_API_VERSION,
    CustomId,
    configure_converter,
    make_converter,
)


__all__ = [
    "DEFAULT_API_VERSION",
    "MIN_API_VERSION",
    "ClientCredentials",
    "CustomId",
    "ShopifyChannel",
    "ShopifyMetrics",
    "ShopifyStore",
    "StaticToken",
    "TokenProvider",
    "configure_converter",
    "make_converter",
]
