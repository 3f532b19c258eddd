"""
Secrets: values that must never reach a repr, a log record, an exception, a store or an export.

Rule 1: a credential lives in a `Secret` from the moment it enters the library. ``repr()``,
``str()``, ``format()``, pickling and the storage converter all see ``********``; only
`Secret.reveal` returns the value, and only the transport that puts it on the wire calls it.

Rule 2 (defence in depth): every `Secret` registers its value in a process-wide redaction set, and
`redact` scrubs any text that leaves the library through logs or exports. A channel that echoes a
token back in an error message is thereby scrubbed too.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Final, NoReturn


__all__ = ["MASK", "RedactingFilter", "Secret", "redact"]

MASK: Final = "********"

# Values shorter than this are not scrubbed from free text: masking every "a" would ruin logs,
# and a four-character secret is not one worth the name.
_MIN_REDACT_LEN: Final = 6

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _register(value: str) -> None:
    global _pattern  # noqa: PLW0603 - one registry per process is the point of rule 2
    if len(value) < _MIN_REDACT_LEN:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        # Longest first, so a secret that contains another is masked whole.
        alternatives = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def redact(text: str) -> str:
    """
    Replace every known secret value in *text* with ``********``.

    Example:
        >>> from catalogsync import Secret
        >>> token = Secret("shpat_0123456789")
        >>> redact("sent shpat_0123456789 to the shop")
        'sent ******** to the shop'

    .. versionadded:: 0.1.0
    """
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


class Secret:
    """
    A credential (token, client secret, API key) that masks itself everywhere but on the wire.

    Example:
        >>> s = Secret("super-secret-token")
        >>> s
        Secret('********')
        >>> f"{s}"
        '********'
        >>> s.reveal()
        'super-secret-token'

    Args:
        value: The secret text. Empty values are rejected.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            from ._errors import InvalidArgumentError  # noqa: PLC0415 - avoid an import cycle

            raise InvalidArgumentError("a Secret must be a non-empty str", field="Secret.value")
        self.__value = value
        _register(value)

    def reveal(self) -> str:
        """Return the secret value; call it only where the value goes on the wire."""
        return self.__value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self.__value == other.__value

    def __hash__(self) -> int:
        return hash(("Secret", self.__value))

    def __reduce__(self) -> NoReturn:
        msg = "Secret values cannot be pickled; pass a provider instead"
        raise TypeError(msg)


class RedactingFilter(logging.Filter):
    """
    A `logging.Filter` that scrubs known secret values from a record's message and arguments.

    catalogsync attaches one to each of its loggers; add it to your own handlers too when they
    format records that may quote channel responses.

    .. versionadded:: 0.1.0
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        record.msg = redact(str(record.msg))
        if record.args:
            record.args = _redact_args(record.args)
        return True


def _redact_args(args: Any) -> Any:
    if isinstance(args, dict):
        return {k: _redact_value(v) for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(_redact_value(a) for a in args)
    return _redact_value(args)


def _redact_value(value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def get_logger(name: str) -> logging.Logger:
    """Return the library logger *name* with the redacting filter attached once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
