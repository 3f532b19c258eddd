"""Time-ordered identifiers for events, iterations and workers."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import datetime


__all__ = ["new_id", "worker_name"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = 0


def new_id(now: datetime) -> str:
    """
    Return a 26-character id that sorts by *now*: 48-bit milliseconds, then 80 random bits.

    Within one process, ids are strictly increasing even within the same millisecond (the
    random part is incremented, as monotonic ULIDs do), so events opened in a row list in order.
    """
    global _last  # noqa: PLW0603 - one monotonic sequence per process
    value = (int(now.timestamp() * 1000) << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
    with _lock:
        if value <= _last:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def worker_name() -> str:
    """Return ``host:pid:random``, unique per worker instance, for lease ownership."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
