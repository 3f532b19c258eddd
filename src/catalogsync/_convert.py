"""
The storage and export converter: catalogsync models <-> JSON-compatible data.

One configured `cattrs.Converter`, built by `make_converter`, serves the SQLite and PostgreSQL
stores, log exports and ``catalogsync demo --json``. Never the global converter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import cattrs

from ._models import Counts
from ._secrets import MASK, Secret


__all__ = ["configure_converter", "dumps", "loads", "make_converter"]


def configure_converter(converter: cattrs.Converter) -> None:
    """
    Configure *converter* for catalogsync's storage and export format.

    * datetimes are ISO 8601 strings in UTC (``2026-11-22T10:00:00+00:00``) and must be aware;
    * timedeltas are seconds as floats;
    * enums are their values (the enums are `enum.StrEnum`);
    * frozensets are sorted lists;
    * `Counts` is ``{"category": n, "product": n, "variant": n}``;
    * a `catalogsync.Secret` always unstructures to ``"********"`` and never structures back:
      models hold credential *references*, so a secret reaching the converter is a bug we mask.
    """
    converter.register_unstructure_hook(datetime, lambda d: d.astimezone(UTC).isoformat())
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(timedelta, lambda d: d.total_seconds())
    converter.register_structure_hook(timedelta, lambda s, _: timedelta(seconds=float(s)))
    converter.register_unstructure_hook_func(_is_frozenset, sorted)
    converter.register_unstructure_hook(Counts, lambda c: c.as_dict())
    converter.register_structure_hook(Counts, _structure_counts)
    converter.register_unstructure_hook(Secret, lambda _: MASK)
    converter.register_structure_hook(Secret, _refuse_secret)


def _is_frozenset(tp: Any) -> bool:
    return tp is frozenset or getattr(tp, "__origin__", None) is frozenset


def _structure_counts(value: Any, _: Any) -> Counts:
    return Counts(**{str(k): int(n) for k, n in value.items()})


def _structure_datetime(value: Any, _: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _refuse_secret(_value: Any, _type: Any) -> Secret:
    msg = "secrets are never structured from stored or exported data"
    raise TypeError(msg)


def make_converter() -> cattrs.Converter:
    """
    Return a new converter configured by `configure_converter`.

    Example:
        >>> from catalogsync import ConnectorParams
        >>> conv = make_converter()
        >>> data = conv.unstructure(ConnectorParams(tags={"b", "a"}))
        >>> data["tags"], data["export_status"]
        (['a', 'b'], 'all')
        >>> conv.structure(data, ConnectorParams) == ConnectorParams(tags={"a", "b"})
        True
    """
    converter = cattrs.Converter()
    configure_converter(converter)
    return converter


_default = make_converter()


def dumps(obj: Any, *, converter: cattrs.Converter | None = None) -> str:
    """Serialize a model (or plain data) to compact JSON with the storage converter."""
    return json.dumps(
        (converter or _default).unstructure(obj), separators=(",", ":"), ensure_ascii=False
    )


def loads(text: str | bytes, cls: type[Any], *, converter: cattrs.Converter | None = None) -> Any:
    """Deserialize JSON produced by `dumps` into *cls*."""
    return (converter or _default).structure(json.loads(text), cls)
