"""
Amazon Selling Partner API: the Listings Items API (2021-08-01) as a catalogsync channel.

`AmazonChannel` renders PIM items as listings (variation parents, children and standalone
listings), validates them locally (and against product type schemas when given), and pushes them
with ``putListingsItem`` / ``patchListingsItem`` / ``deleteListingsItem``, paced per seller and
operation, authenticated with Login with Amazon. `listings_feed` builds JSON_LISTINGS_FEED documents
for large batches. See docs/channels/amazon.md.
"""

from ._auth import LwaCredentials
from ._channel import AmazonChannel, AmazonPacer
from ._feed import MAX_FEED_MESSAGES, listings_feed, read_processing_report
from ._sansio import API_VERSION, MARKETPLACES, Marketplace, marketplace


__all__ = [
    "API_VERSION",
    "MARKETPLACES",
    "MAX_FEED_MESSAGES",
    "AmazonChannel",
    "AmazonPacer",
    "LwaCredentials",
    "Marketplace",
    "listings_feed",
    "marketplace",
    "read_processing_report",
]
