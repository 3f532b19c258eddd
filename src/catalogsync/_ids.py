"""Time-ordered identifiers for events, iterations and workers."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import datetime


__all__ = ["new_id", "worker_name"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(now: datetime) -> str:
    """
    Return a 26-character id that sorts by *now* (48-bit milliseconds, then 80 random bits).

    Ids made in the same millisecond are unique but not ordered among themselves.
    """
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def worker_name() -> str:
    """Return ``host:pid:thread:random``, unique per worker instance, for lease ownership."""
    return (
        f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}:"
        f"{secrets.token_hex(3)}"
    )
