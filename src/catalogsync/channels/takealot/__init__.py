"""
Takealot (South Africa): offers on Takealot's own catalogue, through the Seller API v2.

`TakealotChannel` renders PIM products and variants as offers (SKU, whole-rand selling price and
RRP, leadtime days, leadtime stock per merchant warehouse, status), validates them locally, and
pushes them one by one or through the batch endpoint, paced by Takealot's rate-limit headers.
See ``docs/channels/takealot.md``.
"""

from ._channel import TakealotChannel
from ._render import FIELDS, render_offer
from ._sansio import API_VERSION, DEFAULT_BASE_URL, MAX_BATCH
from ._validate import gtin_ok, validate_offer


__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "FIELDS",
    "MAX_BATCH",
    "TakealotChannel",
    "gtin_ok",
    "render_offer",
    "validate_offer",
]
