"""
Bad-input campaign: hostile catalogs and hostile query strings, property-based (hypothesis).

Catalogs start from a campaign catalog in a channel's vocabulary (``_campaignchannels``) and are
then damaged: odd Unicode, control characters, lone surrogates, huge strings, deep nesting,
NaN and infinities, wrong types in fields, hostile refs, duplicate SKUs, variants whose product
does not exist, products naming a missing category, categories that are their own ancestor.
For the generic memory channel and the Shopify, Takealot and Amazon emulators:

* the event completes (nothing raises out of ``run``);
* every exportable item gets a final status; the others (a variant without a product, an empty
  category) are the documented silent skip of rule R02;
* an item fails only if it, or an item of its family (its product, its variants, a category it
  names), was damaged: the problem lands on the right item;
* the same catalog synchronized twice, and with every field mapping in reverse order, stores the
  same hashes; so does another process with another ``PYTHONHASHSEED``.

Hostile strings (quotes, ``%``, ``_``, backslashes, SQL fragments, NUL, emoji) used as refs and as
``ref_contains`` filters return the same results from the memory and SQLite backends as a Python
recount.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _campaignchannels import (
    connector_params,
    invalid_refs,
    make_catalog,
    make_channel,
    make_emulator,
)
from catalogsync import (
    Change,
    Connector,
    ErrorKind,
    Item,
    ItemState,
    ItemStatus,
    ItemType,
    MemoryCatalog,
    MemoryQueue,
    MemoryStore,
    SQLiteQueue,
    SQLiteStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import ManualClock, MemoryChannel
from catalogsync.typing import HistoryQuery, ItemQuery, ItemRecord

from _campaign import FIGURES, long_run, size, timed


pytestmark = pytest.mark.campaign

C, P, V = ItemType.CATEGORY, ItemType.PRODUCT, ItemType.VARIANT
HERE = Path(__file__).resolve().parent
EXAMPLES = size(60, 400)

# =================================================================================================
# strategies
# =================================================================================================

HOSTILE = ["'", '"', "%", "_", "\\", ";", "--", "/*", "*/", "\x00", " ", "\t", "\n", "é", "🧦"]
hostile_text = st.lists(
    st.sampled_from([*HOSTILE, "a", "b", "P", "1", "' OR 1=1 --", "%_%", "DROP TABLE x;"]),
    min_size=1,
    max_size=6,
).map("".join)
odd_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
surrogates = st.text(st.characters(categories=("Cs",)), min_size=1, max_size=3)
huge_text = st.tuples(st.sampled_from("x\x00é🧦"), st.integers(10_000, 120_000)).map(
    lambda cn: cn[0] * cn[1]
)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | floats
    | odd_text
    | hostile_text
    | surrogates
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(odd_text | hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _nested(depth: int, as_dict: bool) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


deep = st.tuples(st.integers(200, 700), st.booleans()).map(lambda d: _nested(*d))
wrong_types = st.sampled_from(
    [
        {1, 2},
        b"bytes",
        object(),
        Decimal("NaN"),
        Decimal("1e999"),
        {"nested": {3: "int key"}},
        ["a", {"b": float("nan")}],
        timedelta(days=1),
    ]
)
garbage = json_like | deep | huge_text | wrong_types | surrogates | floats


@st.composite
def damaged_catalogs(draw: st.DrawFn, kind: str) -> tuple[MemoryCatalog, set[tuple[str, str]]]:
    """A campaign catalog of *kind*, damaged; returns it with the keys that were damaged."""
    vocabulary = "kv" if kind == "memory" else kind
    base = make_catalog(vocabulary, draw(st.integers(1, 5)), draw(st.integers(0, 1000)))
    items = {i.key: i for t in (C, P, V) for i in base.items(t)}
    # the campaign catalogs carry a few deliberately invalid items of their own
    damaged = {(ItemType(t), r) for t, r in invalid_refs(vocabulary, base)}
    keys = sorted(items, key=lambda k: (k[0].value, k[1]))
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        item = items[key]
        fields = dict(item.fields)
        names = [*sorted(fields), "title", "price", "sku", "options", "extra"]
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
            fields[name] = draw(garbage)
        items[key] = Item(item.ref, item.type, fields=fields, parents=item.parents)
        damaged.add(key)
    relations = draw(st.sets(st.sampled_from(["orphan", "missing", "cycle", "self", "dupsku"])))
    cats = [k for k in keys if k[0] is C]
    if "orphan" in relations:  # a variant whose product does not exist
        donor = next((items[k] for k in keys if k[0] is V), None)
        fields = dict(donor.fields) if donor else {}
        fields["sku"] = "ORPHAN-SKU"
        items[(V, "ORPHAN")] = Item("ORPHAN", V, fields=fields, parents=["P-MISSING"])
    if "missing" in relations:  # a product naming a category that does not exist
        product = items[next(k for k in keys if k[0] is P)]
        items[product.key] = Item(
            product.ref, P, fields=product.fields, parents=[*product.parents, "C-MISSING"]
        )
    if "cycle" in relations and len(cats) >= 2:  # two categories, each the other's parent
        (a, b) = cats[:2]
        items[a] = Item(a[1], C, fields=items[a].fields, parents=[b[1]])
        items[b] = Item(b[1], C, fields=items[b].fields, parents=[a[1]])
    if "self" in relations:  # a category that is its own parent
        c = cats[-1]
        items[c] = Item(c[1], C, fields=items[c].fields, parents=[c[1]])
    variants = [k for k in keys if k[0] is V]
    if "dupsku" in relations and len(variants) >= 2:
        a, b = draw(st.lists(st.sampled_from(variants), min_size=2, max_size=2, unique=True))
        fields = dict(items[b].fields)
        fields["sku"] = items[a].fields.get("sku")
        items[b] = Item(b[1], V, fields=fields, parents=items[b].parents)
        damaged |= {a, b}
    for n, ref in enumerate(draw(st.lists(hostile_text | odd_text.filter(bool), max_size=2))):
        # a standalone product with a hostile ref (and a title that is fine)
        hostile = Item(ref, P, fields={"title": f"Odd ref {n}", "price": 1, "brand": "Acme"})
        if hostile.key not in items:
            items[hostile.key] = hostile
            damaged.add(hostile.key)
    catalog = MemoryCatalog(items.values())
    return catalog, {(t.value, r) for t, r in damaged}


def tainted(catalog: MemoryCatalog, damaged: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The items a damaged item may drag down: its whole family, and products naming it."""
    out = set(damaged)
    families: dict[str, set[tuple[str, str]]] = {}
    for product in catalog.items(P):
        families[product.ref] = {("product", product.ref)}
    for variant in catalog.items(V):
        families.setdefault(variant.parents[0], set()).add(("variant", variant.ref))
    for ref, family in families.items():
        if family & damaged:
            out |= family | {("product", ref)}
    bad_categories = {r for t, r in damaged if t == "category"}
    for product in catalog.items(P):
        if bad_categories & set(product.parents):
            out |= families[product.ref]
    return out


def exportable(kind: str, catalog: MemoryCatalog) -> set[tuple[str, str]]:
    """Items that get a status (independent of catalogsync's own Exportability)."""
    products = {p.ref for p in catalog.items(P)}
    named = {c for p in catalog.items(P) for c in p.parents}
    out = {("product", r) for r in products}
    out |= {("variant", v.ref) for v in catalog.items(V) if v.parents[0] in products}
    categories = catalog.items(C)
    if kind in {"takealot", "amazon"}:  # not taken: recorded as skipped, even a missing one
        out |= {("category", c.ref) for c in categories} | {("category", r) for r in named}
    else:
        out |= {("category", c.ref) for c in categories if c.ref in named}
    return out


# =================================================================================================
# one synchronization of a damaged catalog
# =================================================================================================


def synchronize(kind: str, catalog: MemoryCatalog, *, mapping_reversed: bool = False) -> Any:
    """Run one event of *catalog* to the end on memory backends; return what to check."""
    clock = ManualClock()
    if mapping_reversed:  # the same catalog with every field mapping built in reverse order
        catalog = MemoryCatalog(
            Item(
                i.ref,
                i.type,
                fields=_reverse(i.fields),
                parents=i.parents,
                visibility=i.visibility,
            )
            for t in (C, P, V)
            for i in catalog.items(t)
        )
    if kind == "memory":
        emulator, channel, client = None, MemoryChannel(clock=clock), None
    else:
        emulator = make_emulator(kind, catalog, clock=clock, sleep=clock.sleep)
        client = emulator.client()
        # one request at a time: the emulator then numbers its GIDs the same way every run, and
        # Shopify products embed their collections' GIDs (so their hashes depend on them)
        extra = {"concurrency": 1} if kind == "shopify" else {}
        channel = make_channel(kind, client=client, clock=clock, emulator=emulator, **extra)
    queue, store = MemoryQueue(clock=clock), MemoryStore(clock=clock)
    sync = Synchronizer(
        Connector("input", channel.name, params=connector_params(kind)),
        catalog=catalog,
        channel=channel,
        queue=queue,
        store=store,
        clock=clock,
        options=SyncOptions(batch_size=7, heartbeat=False),
    )
    try:
        sync.enqueue(Change(i.ref, t) for t in (C, P, V) for i in catalog.items(t))
        result = sync.run()
        statuses = sync.register.items("input", event_id=result.event.id, limit=100_000)
        hashes = {
            (t.value, ref): state.hash
            for t in (C, P, V)
            for ref, state in store.sent_states(
                "input", t, [i.ref for i in catalog.items(t)]
            ).items()
        }
    finally:
        if client is not None:
            client.close()
    return result, {(s.type.value, s.ref): s for s in statuses}, hashes


def _reverse(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse(v) for v in value]
    return value


@pytest.mark.parametrize("kind", ["memory", "shopify", "takealot", "amazon"])
def test_damaged_catalogs_fail_only_the_damaged_items_with_stable_hashes(kind):
    """Whatever the damage, the event completes, every exportable item gets a final status,
    errors land only on damaged items and their families, and the hashes are the same on a
    second run and with every mapping built in reverse order.
    """
    tried = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        derandomize=not long_run(),  # the normal suite is repeatable; --long explores
    )
    @given(damaged_catalogs(kind))
    def check(drawn: tuple[MemoryCatalog, set[tuple[str, str]]]) -> None:
        catalog, damaged = drawn
        result, statuses, hashes = synchronize(kind, catalog)
        tried.append((len(catalog), len(damaged)))
        assert result.reason == "completed", result
        wanted = exportable(kind, catalog)
        assert set(statuses) == wanted, "a status is missing, or a silent skip got one"
        assert {s.state for s in statuses.values()} <= {ItemState.DONE, ItemState.ERROR}
        failed = {k for k, s in statuses.items() if s.state is ItemState.ERROR}
        innocent = failed - tainted(catalog, damaged)
        assert not innocent, {k: statuses[k].errors for k in innocent}
        for key in failed:
            errors = statuses[key].errors
            assert errors, f"{key} failed without an ItemError"
            assert all(e.message for e in errors)
            assert {e.kind for e in errors} <= {ErrorKind.VALIDATION, ErrorKind.CHANNEL}, errors
        _, _, again = synchronize(kind, catalog)
        _, _, reversed_ = synchronize(kind, catalog, mapping_reversed=True)
        assert hashes == again == reversed_

    with timed("bad_input"):
        check()
    FIGURES.add(
        "bad_input",
        catalogs_tried=len(tried),
        items_tried=sum(n for n, _ in tried),
        items_damaged=sum(d for _, d in tried),
        **{f"{kind}_catalogs": len(tried)},
    )


HASH_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_campaign_input import fixed_hostile_catalog, synchronize
_, _, hashes = synchronize("memory", fixed_hostile_catalog())
print(json.dumps(sorted([list(k) + [v] for k, v in hashes.items()])))
"""


def fixed_hostile_catalog() -> MemoryCatalog:
    """A catalog with odd Unicode, floats, nested data and hostile refs (cross-process check)."""
    fields = {
        "title": {"en": "Ünïcödé \u202e title 🧦", "es": "título\x07"},
        "price": 1e-7,
        "weight": -0.0,
        "nested": {"z": [1, 2.5, None, True], "a": {"deep": ["x" * 300]}},
        "odd": "\x00\x1f' OR 1=1 --%_\\",
    }
    return MemoryCatalog(
        [
            Item("C'1", C, fields={"title": 'Cat "quoted"'}),
            Item("P%_1", P, fields=fields, parents=["C'1"]),
            Item("V\\1", V, fields={"price": 12.5, "sku": "S;1"}, parents=["P%_1"]),
        ]
    )


def test_hashes_are_the_same_in_another_process_with_another_hash_seed():
    """A hostile catalog hashes the same in another interpreter with another PYTHONHASHSEED."""
    _, _, here = synchronize("memory", fixed_hostile_catalog())
    out = {}
    for seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT, str(HERE)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        out[seed] = {(t, r): h for t, r, h in json.loads(proc.stdout)}

    assert len(here) == 3
    assert out["1"] == out["12345"] == here


# =================================================================================================
# hostile strings in queries
# =================================================================================================


@pytest.fixture(scope="module")
def sqlite_backends(tmp_path_factory):
    """One SQLite file for the whole module (each example uses its own connector)."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    queue, store = SQLiteQueue(path), SQLiteStore(path)
    yield queue, store
    queue.close()
    store.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_hostile_ref_filters_match_a_python_recount(backend, sqlite_backends):
    """Refs and ``ref_contains`` filters made of quotes, %, _, backslashes, SQL fragments, NUL and
    emoji: statuses, history and queue entries found equal a Python substring recount.
    """
    queries = []
    if backend == "memory":
        queue, store = MemoryQueue(), MemoryStore()
    else:
        queue, store = sqlite_backends

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not long_run())
    @given(
        refs=st.lists(hostile_text | odd_text.filter(bool), min_size=1, max_size=12, unique=True),
        needles=st.lists(hostile_text | odd_text, min_size=1, max_size=6),
        pick=st.data(),
    )
    def check(refs: list[str], needles: list[str], pick: st.DataObject) -> None:
        name = f"c-{uuid.uuid4().hex}"
        connector = Connector(name, "memory", account=name)
        store.save_connector(connector)
        event = _event(store, connector)
        iteration = store.start_iteration(event.id, worker="w", at=event.started_at)
        states = {r: pick.draw(st.sampled_from([ItemState.DONE, ItemState.ERROR])) for r in refs}
        records = [
            ItemRecord(ItemStatus(event.id, connector.id, r, P, s, event.started_at))
            for r, s in states.items()
        ]
        zero = event.pending
        store.commit(
            iteration, records, synchronized=zero, failed=zero, unchanged=zero, skipped=zero
        )
        queue.enqueue(connector.id, [Change(r, V) for r in refs])
        for needle in [*needles, *(r[1:3] for r in refs)]:
            expected = sorted(r for r in refs if not needle or needle in r)
            page = store.item_statuses(ItemQuery(connector.id, ref_contains=needle, limit=10_000))
            assert sorted(s.ref for s in page) == expected, needle
            assert page.total == len(expected)
            errors = sorted(r for r in expected if states[r] is ItemState.ERROR)
            page = store.item_statuses(
                ItemQuery(connector.id, ref_contains=needle, state=ItemState.ERROR, limit=10_000)
            )
            assert sorted(s.ref for s in page) == errors, needle
            history = store.history(HistoryQuery(account=name, ref_contains=needle, limit=10_000))
            assert sorted(h.status.ref for h in history) == expected, needle
            entries = queue.entries(connector.id, ref_contains=needle, limit=10_000)
            assert sorted(e.ref for e in entries) == expected, needle
            assert entries.total == len(expected)
            queries.append(needle)

    with timed("bad_input"):
        check()
    FIGURES.add("bad_input", hostile_queries=len(queries), **{f"{backend}_queries": len(queries)})


def _event(store: Any, connector: Connector) -> Any:
    from catalogsync import ConfigSnapshot, EventStatus, SyncEvent, Trigger

    clock = ManualClock()
    event = SyncEvent(
        uuid.uuid4().hex,
        connector.id,
        Trigger.INCREMENTAL,
        EventStatus.IN_PROGRESS,
        clock.now(),
        ConfigSnapshot(connector.params, "memory"),
    )
    opened, created = store.open_event(event)
    assert created
    return opened


@pytest.mark.parametrize("kind", ["memory", "shopify", "takealot", "amazon"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_never_reach_a_channel(kind, value):
    """A NaN or infinite price fails validation on its item (and the family that carries it)
    before anything is sent; the other items are delivered.
    """
    vocabulary = "kv" if kind == "memory" else kind
    base = make_catalog(vocabulary, 3, 11)
    variant = base.items(V)[0]
    catalog = MemoryCatalog(
        [
            *(i for t in (C, P) for i in base.items(t)),
            Item(
                variant.ref, V, fields={**variant.fields, "price": value}, parents=variant.parents
            ),
            *base.items(V)[1:],
        ]
    )
    result, statuses, hashes = synchronize(kind, catalog)

    family = tainted(catalog, {("variant", variant.ref)})
    failed = {k for k, s in statuses.items() if s.state is ItemState.ERROR}
    assert result.reason == "completed"
    assert ("variant", variant.ref) in failed
    assert failed <= family | {(t.value, r) for t, r in _invalid_keys(vocabulary, base)}
    assert ("variant", variant.ref) not in hashes, "a non-finite price was delivered"


def _invalid_keys(vocabulary: str, catalog: MemoryCatalog) -> set[tuple[ItemType, str]]:
    return {(ItemType(t), r) for t, r in invalid_refs(vocabulary, catalog)}
