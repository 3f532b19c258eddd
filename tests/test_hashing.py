"""ChangeHasher: canonical encoding, golden vectors, stability, fast-path byte identity."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections import OrderedDict, namedtuple
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalogsync import ChangeHasher, ItemType, UnhashablePayloadError, UnknownHashSchemeError
from catalogsync._hashing import encode_reference, format_float


orjson = pytest.importorskip("orjson")

REFERENCE = ChangeHasher(fast=False)
FAST = ChangeHasher(fast=True)
GOLDEN = Path(__file__).parent / "samples" / "hash_golden.json"


def golden_payloads() -> dict[str, object]:
    """The payloads whose digests are frozen in tests/samples/hash_golden.json."""
    return {
        "empty": {},
        "scalars": {"n": None, "t": True, "f": False, "i": -42, "big": 2**80, "s": "x"},
        "floats": [0.1, 1.0, -0.0, 1e16, 1.5e-7, 1e-5, 123.456, 5e-324, float("nan"), float("inf")],
        "unicode": {"é": "café", "漢字": "🎉 \u2028 \x00 \x7f", "quote": '"\\'},
        "nested_order": {"b": {"z": 1, "a": [3, 2, 1]}, "a": [{"y": 1, "x": 2}]},
        "decimal_and_time": {
            "price": Decimal("19.90"),
            "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "day": date(2026, 1, 2),
            "clock": time(13, 30),
            "id": uuid.UUID(int=7),
            "type": ItemType.VARIANT,
        },
        "product": {
            "title": "Trail shoe",
            "descriptionHtml": "<p>Light & fast</p>",
            "status": "ACTIVE",
            "variants": [
                {
                    "sku": "TS-40",
                    "price": "19.99",
                    "optionValues": [{"optionName": "Size", "name": "40"}],
                },
                {
                    "sku": "TS-41",
                    "price": "19.99",
                    "optionValues": [{"optionName": "Size", "name": "41"}],
                },
            ],
        },
    }


def test_golden_vectors():
    """Fixed payloads hash to fixed digests, in both encoders (the scheme must never drift)."""
    expected = json.loads(GOLDEN.read_text())
    payloads = golden_payloads()

    assert set(expected) == set(payloads)
    for name, payload in payloads.items():
        assert expected[name] == REFERENCE.digest(payload), name
        assert expected[name] == FAST.digest(payload), name


def test_golden_vectors_in_other_processes():
    """Two interpreters with different PYTHONHASHSEED produce the golden digests."""
    script = (
        "import json, sys; sys.path.insert(0, 'tests');"
        "from test_hashing import golden_payloads, REFERENCE, FAST;"
        "print(json.dumps({k: [REFERENCE.digest(v), FAST.digest(v)] for k, v in golden_payloads().items()}))"
    )
    expected = json.loads(GOLDEN.read_text())
    root = Path(__file__).parent.parent
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(out.stdout)
        assert {k: [v, v] for k, v in expected.items()} == got, seed


def test_key_order_does_not_matter():
    """Dict insertion order never changes the hash."""
    a = {"a": 1, "b": {"c": 2, "d": 3}}
    b = OrderedDict([("b", OrderedDict([("d", 3), ("c", 2)])), ("a", 1)])

    assert REFERENCE.encode(a) == REFERENCE.encode(b) == b'{"a":1,"b":{"c":2,"d":3}}'


def test_list_order_matters():
    """Lists are ordered: a reordered variant list is a real change."""
    assert REFERENCE.digest([1, 2]) != REFERENCE.digest([2, 1])


def test_documented_encodings():
    """The encodings stated in the module docstring, one by one."""
    enc = REFERENCE.encode

    assert enc(Decimal("19.90")) == b'"19.9"'
    assert enc(Decimal("-0.000")) == b'"0"'
    assert enc(Decimal("1E+3")) == b'"1000"'
    assert enc(Decimal("0.00001")) == b'"0.00001"'
    assert (
        enc(Decimal("12345678901234567890.123456789012345678"))
        == b'"12345678901234567890.123456789012345678"'
    )
    assert enc(Decimal("NaN")) == b"null"
    assert enc(float("nan")) == enc(float("-inf")) == b"null"
    assert (
        enc(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
        == b'"2026-01-01T00:00:00Z"'
    )
    assert (
        enc(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=5))
        == b'"2026-01-01T00:00:00.000005Z"'
    )
    assert enc(date(2026, 2, 3)) == b'"2026-02-03"'
    assert enc(ItemType.PRODUCT) == b'"product"'
    assert enc(2**100) == str(2**100).encode()
    assert enc((1, "a")) == b'[1,"a"]'
    assert enc(MappingProxyType({"b": 1, "a": 2})) == b'{"a":2,"b":1}'
    assert enc("\u00e9") != enc("e\u0301")  # no Unicode normalisation


@pytest.mark.parametrize(
    ("value", "path", "text"),
    [
        ({"a": [1, {2, 3}]}, "$.a[1]", "sets have no order"),
        ({"a": {"b": b"raw"}}, "$.a.b", "base64"),
        ({"when": datetime(2026, 1, 1)}, "$.when", "naive datetime"),
        ({"t": time(1, tzinfo=UTC)}, "$.t", "timezone-aware time"),
        ({"v": [{"x": object()}]}, "$.v[0].x", "builtins.object"),
        ({1: "one"}, "$[1]", "not a str"),
        ({"bad key": {"s": "\ud800"}}, "$['bad key'].s", "lone surrogate"),
    ],
)
def test_unhashable_values_name_their_path(value, path, text):
    """Values with no canonical encoding raise a typed error naming the path, in both encoders."""
    for hasher in (REFERENCE, FAST):
        with pytest.raises(UnhashablePayloadError) as info:
            hasher.digest(value)
        assert info.value.path == path
        assert text in str(info.value)
        assert isinstance(info.value, ValueError)


def test_cycles_are_reported():
    """A payload that contains itself is an error, not an endless loop."""
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    for hasher in (REFERENCE, FAST):
        with pytest.raises(UnhashablePayloadError, match="cycle") as info:
            hasher.digest(cyclic)
        assert info.value.path == "$.a[0]"


def test_deep_nesting_is_bounded():
    """Nesting beyond orjson's limit falls back to the reference; beyond 256 levels it is an error."""
    deep: list = []
    for _ in range(255):
        deep = [deep]
    assert FAST.encode(deep) == REFERENCE.encode(deep) == b"[" * 256 + b"]" * 256
    deep = [deep]
    with pytest.raises(UnhashablePayloadError, match="deeper than 256"):
        FAST.digest(deep)


def test_matches_and_scheme_detection():
    """matches() compares under the stored scheme and reports unknown schemes."""
    h = REFERENCE.digest({"a": 1})

    assert h.startswith("v1:")
    assert len(h) == 3 + 32
    assert REFERENCE.matches(h, {"a": 1})
    assert REFERENCE.matches(h, h)
    assert not REFERENCE.matches(h, {"a": 2})
    assert not REFERENCE.matches(None, {"a": 1})
    with pytest.raises(UnknownHashSchemeError, match="unknown scheme 'v9'"):
        REFERENCE.matches("v9:abc", {"a": 1})
    with pytest.raises(UnknownHashSchemeError):
        REFERENCE.matches("deadbeef", {"a": 1})


def test_fast_flag_is_validated():
    """Fast must be a bool or None."""
    with pytest.raises(TypeError):
        ChangeHasher(fast="yes")  # type: ignore[arg-type]
    assert REFERENCE.fast is False
    assert FAST.fast is True


# -- byte identity of the fast path ---------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.datetimes(timezones=st.timezones()).filter(lambda d: d.utcoffset() is not None)
    | st.dates()
    | st.times()
    | st.uuids()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_fast_path_is_byte_identical(value):
    """Whatever the payload, orjson and the reference produce the same bytes or the same error."""
    try:
        expected = encode_reference(value)
    except UnhashablePayloadError as err:
        with pytest.raises(UnhashablePayloadError) as info:
            FAST.encode(value)
        assert info.value.path == err.path
        return
    assert FAST.encode(value) == expected


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_matches_orjson_and_round_trips(value):
    """The canonical float text is orjson's, parses back to the same float, and is shortest."""
    text = format_float(value)

    assert orjson.dumps(value).decode() == text
    assert float(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)


def test_subclasses_and_named_tuples():
    """Subclasses of str/int/float/dict and named tuples encode like their base types."""

    class S(str):
        pass

    class F(float):
        pass

    class D(dict):
        pass

    Pair = namedtuple("Pair", "a b")
    value = D({S("k"): [F(1.5), Pair(1, S("x")), True]})

    assert FAST.encode(value) == REFERENCE.encode(value) == b'{"k":[1.5,[1,"x"],true]}'
