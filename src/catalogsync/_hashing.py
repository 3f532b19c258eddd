"""
Change detection by hash (rule R06): a canonical encoding of a rendered payload and its digest.

Theory of operation: the hash of an item is computed over the payload the channel *would be sent*
(after rendering and mapping), stored once the channel accepted it, and compared on the next run.
It must therefore be a pure function of the payload's JSON meaning, identical across processes,
machines, ``PYTHONHASHSEED`` values, Python versions and dict orderings.

Canonical encoding, scheme ``v1`` (the reference is `_Encoder`; docs/hashing.md has the table):

* UTF-8 JSON without whitespace; object keys sorted by code point; keys must be strings.
* ``None``/``True``/``False`` -> ``null``/``true``/``false``; ints in decimal, any size.
* Floats: the shortest decimal that round-trips; positional for ``1e-5 <= |x| < 1e16`` (integral
  values keep ``.0``), otherwise ``<mantissa>e<sign><exponent>`` without zero padding
  (``1e+16``, ``1.5e-7``). ``-0.0`` stays ``-0.0``. NaN and infinities encode as ``null``
  (JSON has no form for them; channel validators reject them before anything is sent).
* Strings: exactly as given (no Unicode normalisation: channels store what they are sent), with
  ``"`` ``\\`` and control characters escaped as JSON requires and nothing else escaped.
  Lone surrogates are rejected.
* `decimal.Decimal` -> a JSON *string* of its exact value in plain notation without trailing
  zeros (``Decimal("19.90")`` -> ``"19.9"``); non-finite -> ``null``.
* `datetime` (aware only) -> string, converted to UTC, ISO 8601 with ``Z``; `date` -> ISO string;
  naive `time` -> ISO string. `uuid.UUID` -> its hyphenated string. Enums -> their value.
* Lists and tuples -> arrays; other mappings -> objects.
* Rejected with `UnhashablePayloadError` naming the path: cycles, sets, bytes, naive datetimes,
  aware times, non-string keys, objects of any other type, nesting deeper than 256 levels.

The digest is SHA-256 over the encoding, truncated to 128 bits, written ``v1:<32 hex digits>``.
The prefix makes a future change of scheme detectable: `ChangeHasher.matches` compares a stored
hash with the scheme it was made with, and reports an unknown scheme instead of silently treating
every item as changed.

Fast path: when `orjson` is installed (``catalogsync[fast]``), it produces the same bytes about
ten times faster. The output is byte-identical by construction (the float rule above *is* orjson's),
checked once per process against the reference on a sentinel payload, and proven by property tests.
Anything orjson rejects falls back to the reference, which raises the typed, path-naming errors.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final

from ._errors import InvalidArgumentError, UnhashablePayloadError
from ._secrets import get_logger


__all__ = ["SCHEME", "ChangeHasher", "UnknownHashSchemeError"]

SCHEME: Final = "v1"
_PREFIX: Final = SCHEME + ":"
_DIGEST_HEX: Final = 32
MAX_DEPTH: Final = 256
# repr() switches to exponent notation below 1e-4, the canonical form (orjson's) below 1e-5.
_LAST_POSITIONAL_EXPONENT: Final = -5

_log = get_logger("catalogsync.hashing")

_escape = json.encoder.encode_basestring  # the C implementation when available


class UnknownHashSchemeError(UnhashablePayloadError):
    """
    A stored hash was made with a scheme this version of catalogsync does not know.

    .. versionadded:: 0.1.0
    """


class _PathError(Exception):
    """Internal: an encoding failure; frames prepend their path segment while it unwinds."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


def format_float(value: float) -> str:
    """Return the v1 canonical text of a finite float (see the module docstring)."""
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exp_text = text.split("e")
    exponent = int(exp_text)
    if exponent == _LAST_POSITIONAL_EXPONENT:
        negative = mantissa.startswith("-")
        digits = mantissa.lstrip("-").replace(".", "")
        return ("-" if negative else "") + "0.0000" + digits
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def format_decimal(value: Decimal) -> str | None:
    """Return the v1 canonical text of a Decimal (``None`` for NaN and infinities)."""
    if not value.is_finite():
        return None
    sign, digit_tuple, exp = value.as_tuple()
    number = int("".join(map(str, digit_tuple)) or "0")
    if number == 0:
        return "0"
    assert isinstance(exp, int)  # finite Decimals have an int exponent  # noqa: S101
    while number % 10 == 0:
        number //= 10
        exp += 1
    digits = str(number)
    if exp >= 0:
        text = digits + "0" * exp
    else:
        digits = digits.rjust(-exp + 1, "0")
        text = f"{digits[:exp]}.{digits[exp:]}"
    return ("-" if sign else "") + text


def format_temporal(value: date | time) -> str:
    """Return the v1 canonical text of a datetime, date or time, or raise `TypeError`."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            msg = "naive datetime (catalogsync hashes only timezone-aware datetimes)"
            raise TypeError(msg)
        try:
            text = value.astimezone(UTC).isoformat()
        except OverflowError:
            msg = "datetime outside the range representable in UTC"
            raise TypeError(msg) from None
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, time):
        if value.tzinfo is not None:
            msg = "timezone-aware time (its meaning depends on a date)"
            raise TypeError(msg)
        return value.isoformat()
    return value.isoformat()


class _Encoder:
    """The reference encoder: a small recursive walk appending text to a list."""

    __slots__ = ("active", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.active: set[int] = set()

    def encode(self, obj: Any, depth: int) -> None:  # noqa: C901, PLR0912 - one dispatch table
        parts = self.parts
        t = type(obj)
        if t is str:
            parts.append(_escape(obj))
        elif t is dict:
            self._mapping(obj, depth)
        elif t is list or t is tuple:
            self._sequence(obj, depth)
        elif obj is None:
            parts.append("null")
        elif obj is True:
            parts.append("true")
        elif obj is False:
            parts.append("false")
        elif t is int:
            parts.append(int.__repr__(obj))
        elif t is float:
            parts.append(format_float(obj) if math.isfinite(obj) else "null")
        elif isinstance(obj, enum.Enum):
            self.encode(obj.value, depth)
        elif isinstance(obj, str):
            parts.append(_escape(str.__str__(obj)))
        elif isinstance(obj, int):
            parts.append(int.__repr__(obj))
        elif isinstance(obj, float):
            parts.append(format_float(float(obj)) if math.isfinite(obj) else "null")
        elif isinstance(obj, Mapping):
            self._mapping(obj, depth)
        elif isinstance(obj, (list, tuple)):
            self._sequence(obj, depth)
        elif isinstance(obj, Decimal):
            text = format_decimal(obj)
            parts.append("null" if text is None else f'"{text}"')
        elif isinstance(obj, (date, time)):
            try:
                parts.append(_escape(format_temporal(obj)))
            except TypeError as exc:
                raise _PathError(f"unhashable {exc}") from None
        elif isinstance(obj, uuid.UUID):
            parts.append(f'"{obj}"')
        elif isinstance(obj, (set, frozenset)):
            msg = f"unhashable {t.__name__}: sets have no order; render a sorted list"
            raise _PathError(msg)
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            msg = f"unhashable {t.__name__}: payloads are JSON; render binary data as base64 text"
            raise _PathError(msg)
        else:
            msg = f"unhashable value of type {t.__module__}.{t.__qualname__}"
            raise _PathError(msg)

    def _enter(self, obj: Any, depth: int) -> None:
        if depth >= MAX_DEPTH:
            msg = f"payload nested deeper than {MAX_DEPTH} levels"
            raise _PathError(msg)
        if id(obj) in self.active:
            msg = "cycle: the payload contains itself"
            raise _PathError(msg)
        self.active.add(id(obj))

    def _mapping(self, obj: Mapping[Any, Any], depth: int) -> None:
        self._enter(obj, depth)
        for key in obj:
            if not isinstance(key, str):
                err = _PathError(f"object key {key!r:.40} is a {type(key).__name__}, not a str")
                err.segments.append(f"[{key!r:.40}]")
                raise err
        parts = self.parts
        parts.append("{")
        first = True
        for key, value in sorted(obj.items(), key=_first):
            if first:
                first = False
            else:
                parts.append(",")
            parts.append(_escape(key if type(key) is str else str.__str__(key)))
            parts.append(":")
            try:
                self.encode(value, depth + 1)
            except _PathError as err:
                err.segments.append(_segment(key))
                raise
        parts.append("}")
        self.active.discard(id(obj))

    def _sequence(self, obj: list[Any] | tuple[Any, ...], depth: int) -> None:
        self._enter(obj, depth)
        parts = self.parts
        parts.append("[")
        for index, value in enumerate(obj):
            if index:
                parts.append(",")
            try:
                self.encode(value, depth + 1)
            except _PathError as err:
                err.segments.append(f"[{index}]")
                raise
        parts.append("]")
        self.active.discard(id(obj))


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _segment(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def _path(err: _PathError) -> str:
    return "$" + "".join(reversed(err.segments))


def encode_reference(payload: Any) -> bytes:
    """
    Return the v1 canonical encoding of *payload* with the pure-Python reference encoder.

    Raises:
        UnhashablePayloadError: with the path of the first value that has no encoding.
    """
    encoder = _Encoder()
    try:
        encoder.encode(payload, 0)
    except _PathError as err:
        raise UnhashablePayloadError(err.message, path=_path(err)) from None
    except RecursionError:
        raise UnhashablePayloadError(
            "payload nested too deeply for this call stack", path="$"
        ) from None
    text = "".join(encoder.parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        path = _find_surrogate(payload, "$")
        raise UnhashablePayloadError(
            "invalid Unicode: a lone surrogate cannot be encoded as UTF-8", path=path or "$"
        ) from None


def _find_surrogate(obj: Any, path: str) -> str | None:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            found = _find_surrogate(key, f"{path}[{key!r:.40}]") or _find_surrogate(
                value, path + _segment(str(key))
            )
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            found = _find_surrogate(value, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(obj, enum.Enum):
        return _find_surrogate(obj.value, path)
    return None


# -- the orjson fast path -------------------------------------------------------------------------


def _orjson_default(obj: Any) -> Any:
    if isinstance(obj, (date, time)):
        return format_temporal(obj)  # raises TypeError for naive datetimes -> reference fallback
    if isinstance(obj, Decimal):
        return format_decimal(obj)
    if isinstance(obj, float):  # float subclasses
        return float(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, tuple):  # tuple subclasses such as named tuples
        return list(obj)
    raise TypeError(type(obj).__name__)


def _load_orjson() -> Any:
    try:
        import orjson  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return orjson


_SENTINEL: Final[dict[str, Any]] = {
    "z": [
        0.1,
        1.0,
        -0.0,
        1e16,
        1.5e-7,
        1e-5,
        2.5e-5,
        123456789.125,
        5e-324,
        1.7976931348623157e308,
    ],
    "a": 'quote " backslash \\ nl \n tab \t ctl \x01 del \x7f ls \u2028 é 漢 🎉',
    "m": {"b": True, "a": None, "é": False, "B": [1, -9223372036854775808, 18446744073709551615]},
    "d": Decimal("19.90"),
    "t": datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "u": date(2024, 1, 2),
    "n": float("nan"),
}


class ChangeHasher:
    """
    Canonical encoding and versioned digest of rendered payloads (rule R06).

    Example:
        >>> from catalogsync import ChangeHasher
        >>> hasher = ChangeHasher()
        >>> hasher.encode({"b": 1, "a": [1.0, "x"]})
        b'{"a":[1.0,"x"],"b":1}'
        >>> h = hasher.digest({"title": "Trail shoe", "price": "19.90"})
        >>> h
        'v1:af0d72f7d5d48cf1e3fc5f3e4c68c1ff'
        >>> hasher.matches(h, {"price": "19.90", "title": "Trail shoe"})
        True

    Args:
        fast: ``None`` (default) uses orjson when it is installed and agrees with the reference;
            ``True`` requires it; ``False`` always uses the pure-Python reference encoder.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_dumps", "_options", "fast")

    scheme: Final = SCHEME

    def __init__(self, *, fast: bool | None = None) -> None:
        if fast is not None and not isinstance(fast, bool):
            raise InvalidArgumentError("fast must be a bool or None", field="ChangeHasher.fast")
        self._dumps: Any = None
        self._options = 0
        orjson = _load_orjson() if fast is not False else None
        if fast is True and orjson is None:
            raise InvalidArgumentError(
                "ChangeHasher(fast=True) needs orjson: pip install 'catalogsync[fast]'",
                field="ChangeHasher.fast",
            )
        if orjson is not None:
            self._dumps = orjson.dumps
            self._options = (
                orjson.OPT_SORT_KEYS
                | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS
            )
            if not _self_check(self):
                if fast is True:
                    raise InvalidArgumentError(
                        f"this orjson ({orjson.__version__}) does not produce catalogsync's "
                        "canonical encoding; use fast=None or fast=False",
                        field="ChangeHasher.fast",
                    )
                _log.warning(
                    "orjson %s disagrees with the canonical encoding; using the reference encoder",
                    orjson.__version__,
                )
                self._dumps = None
        self.fast = self._dumps is not None

    def encode(self, payload: Any) -> bytes:
        """
        Return the canonical encoding of *payload* (scheme v1).

        Raises:
            UnhashablePayloadError: when a value has no canonical encoding; names its path.
        """
        dumps = self._dumps
        if dumps is not None:
            try:
                return dumps(payload, default=_orjson_default, option=self._options)  # type: ignore[no-any-return]
            except TypeError:  # orjson.JSONEncodeError subclasses TypeError
                pass
        return encode_reference(payload)

    def digest(self, payload: Any) -> str:
        """Return the versioned hash of *payload*: ``"v1:"`` followed by 32 hex digits."""
        return _PREFIX + hashlib.sha256(self.encode(payload)).hexdigest()[:_DIGEST_HEX]

    def digest_bytes(self, encoded: bytes) -> str:
        """Return the versioned hash of an already canonical encoding."""
        return _PREFIX + hashlib.sha256(encoded).hexdigest()[:_DIGEST_HEX]

    def matches(self, stored: str | None, payload_or_digest: Any) -> bool:
        """
        Whether the *stored* hash equals the hash of *payload_or_digest* under the stored scheme.

        *payload_or_digest* may be a payload or a digest string from `digest`.

        Raises:
            UnknownHashSchemeError: *stored* was made by a scheme this version does not know
                (the caller decides whether to resend; the synchronizer does, and says so).
        """
        if stored is None:
            return False
        scheme, sep, _ = stored.partition(":")
        if not sep or scheme != SCHEME:
            raise UnknownHashSchemeError(
                f"stored hash uses unknown scheme {scheme!r} (this catalogsync knows {SCHEME!r})",
                path="$",
            )
        if isinstance(payload_or_digest, str) and payload_or_digest.startswith(_PREFIX):
            return stored == payload_or_digest
        return stored == self.digest(payload_or_digest)

    def __repr__(self) -> str:
        return f"ChangeHasher(scheme={SCHEME!r}, fast={self.fast})"


def _self_check(hasher: ChangeHasher) -> bool:
    try:
        fast = hasher._dumps(_SENTINEL, default=_orjson_default, option=hasher._options)  # noqa: SLF001
    except TypeError:
        return False
    return bool(fast == encode_reference(_SENTINEL))
