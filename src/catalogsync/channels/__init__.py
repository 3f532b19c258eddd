"""
Channel adapters and the transport they share.

Each adapter lives in its own subpackage (``catalogsync.channels.shopify``, ``.amazon``,
``.takealot``) with pure request builders and response interpreters (``_sansio``) and a thin
I/O shell on an injected `httpx.Client`.
"""

from ._transport import HttpTransport, RetryPolicy, TokenBucket, Verdict, VerdictKind


__all__ = ["HttpTransport", "RetryPolicy", "TokenBucket", "Verdict", "VerdictKind"]
