"""
Amazon Selling Partner API: the Listings Items API (2021-08-01) as a catalogsync channel.

`AmazonChannel` renders PIM items as listings (variation parents, children and standalone
listings), validates them locally (and against product type schemas when given), and pushes them
with ``putListingsItem`` / ``patchListingsItem`` / ``deleteListingsItem``, paced per seller and
operation, authenticated with Login with Amazon. See docs/channels/amazon.md.
"""

from ._auth import LwaCredentials
from ._channel import AmazonChannel, AmazonPacer
from ._sansio import API_VERSION, MARKETPLACES, Marketplace, marketplace


__all__ = [
    "API_VERSION",
    "MARKETPLACES",
    "AmazonChannel",
    "AmazonPacer",
    "LwaCredentials",
    "Marketplace",
    "marketplace",
]
