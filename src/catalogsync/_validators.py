"""
attrs converters and validators that fail with `InvalidArgumentError` naming the field.

attrs' own ``instance_of`` raises a plain `TypeError`; ours say which class and field, list the
allowed enum values, and derive from `CatalogSyncError` so callers can catch one root.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs

from ._clock import ensure_utc
from ._errors import InvalidArgumentError


E = TypeVar("E", bound=enum.Enum)


def _qual(inst: Any, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def enum_converter(cls: type[E], field: str) -> Callable[[Any], E]:
    """Accept a member of *cls* or its value; anything else names *field* and the allowed values."""
    by_value = {m.value: m for m in cls}

    def convert(value: Any) -> E:
        if isinstance(value, cls):
            return value
        try:
            return by_value[value]
        except (KeyError, TypeError):
            allowed = ", ".join(repr(v) for v in by_value)
            raise InvalidArgumentError(
                f"{field} must be one of {allowed}; got {value!r}", field=field
            ) from None

    return convert


def optional_enum_converter(cls: type[E], field: str) -> Callable[[Any], E | None]:
    """Like `enum_converter`, letting ``None`` through."""
    inner = enum_converter(cls, field)

    def convert(value: Any) -> E | None:
        return None if value is None else inner(value)

    return convert


def non_empty_str(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Validate that *value* is a non-empty `str`."""
    if not isinstance(value, str) or not value:
        field = _qual(inst, attribute)
        raise InvalidArgumentError(
            f"{field} must be a non-empty str, got {type(value).__name__} {value!r:.80}",
            field=field,
        )


def optional_str(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Validate that *value* is a `str` or ``None``."""
    if value is not None and not isinstance(value, str):
        field = _qual(inst, attribute)
        raise InvalidArgumentError(
            f"{field} must be a str or None, got {type(value).__name__}", field=field
        )


def instance_of(*types: type) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """Validate ``isinstance(value, types)`` (``bool`` is not accepted where ``int`` is asked)."""

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            field = _qual(inst, attribute)
            names = " or ".join(t.__name__ for t in types)
            raise InvalidArgumentError(
                f"{field} must be {names}, got {type(value).__name__} {value!r:.80}", field=field
            )

    return check


def non_negative_int(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Validate that *value* is an `int` >= 0."""
    instance_of(int)(inst, attribute, value)
    if value < 0:
        field = _qual(inst, attribute)
        raise InvalidArgumentError(f"{field} must be >= 0, got {value}", field=field)


def str_tuple(field: str) -> Callable[[Any], tuple[str, ...]]:
    """Convert an iterable of non-empty strings (not a bare string) to a tuple."""

    def convert(value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise InvalidArgumentError(
                f"{field} must be an iterable of str (not a single str), "
                f"got {type(value).__name__}",
                field=field,
            )
        out = tuple(value)
        for v in out:
            if not isinstance(v, str) or not v:
                raise InvalidArgumentError(
                    f"{field} must contain non-empty str values, got {v!r:.80}", field=field
                )
        return out

    return convert


def str_frozenset(field: str) -> Callable[[Any], frozenset[str]]:
    """Convert an iterable of non-empty strings (not a bare string) to a frozenset."""
    to_tuple = str_tuple(field)

    def convert(value: Any) -> frozenset[str]:
        if isinstance(value, frozenset) and all(isinstance(v, str) and v for v in value):
            return value
        return frozenset(to_tuple(value))

    return convert


def str_mapping(
    field: str, *, values: type | tuple[type, ...] | None = None
) -> Callable[[Any], Mapping[str, Any]]:
    """Convert a mapping with `str` keys (and optionally typed values) to a plain dict."""

    def convert(value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(
                f"{field} must be a mapping, got {type(value).__name__}", field=field
            )
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidArgumentError(
                    f"{field} keys must be str, got {type(k).__name__} {k!r:.80}", field=field
                )
            if values is not None and not isinstance(v, values):
                raise InvalidArgumentError(
                    f"{field}[{k!r}] has the wrong type {type(v).__name__}", field=field
                )
        return value if type(value) is dict else dict(value)

    return convert


def utc_datetime(field: str) -> Callable[[Any], datetime]:
    """Convert an aware `datetime` to UTC; reject naive ones and other types."""

    def convert(value: Any) -> datetime:
        return ensure_utc(value, field=field)

    return convert


def optional_utc_datetime(field: str) -> Callable[[Any], datetime | None]:
    """Like `utc_datetime`, letting ``None`` through."""

    def convert(value: Any) -> datetime | None:
        return None if value is None else ensure_utc(value, field=field)

    return convert


def optional_timedelta(field: str) -> Callable[[Any], timedelta | None]:
    """Accept ``None``, a positive `timedelta`, or a positive number of seconds."""

    def convert(value: Any) -> timedelta | None:
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = timedelta(seconds=value)
        if not isinstance(value, timedelta) or value <= timedelta(0):
            raise InvalidArgumentError(
                f"{field} must be a positive timedelta or number of seconds, got {value!r}",
                field=field,
            )
        return value

    return convert
