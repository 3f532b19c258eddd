"""Public models: construction, validation errors naming the field, secrets, the converter."""

from __future__ import annotations

import logging
import pickle
from datetime import UTC, datetime, timedelta

import attrs
import pytest

import catalogsync
from catalogsync import (
    Change,
    ChangeKind,
    Connector,
    ConnectorParams,
    Counts,
    ErrorKind,
    ExportStatus,
    InvalidArgumentError,
    Item,
    ItemError,
    ItemState,
    ItemStatus,
    ItemType,
    MemoryCatalog,
    Secret,
    redact,
)
from catalogsync._convert import dumps, loads, make_converter


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("build", "field", "text"),
    [
        (lambda: Item(1, ItemType.PRODUCT), "Item.ref", "non-empty str"),
        (lambda: Item("", ItemType.PRODUCT), "Item.ref", "non-empty str"),
        (lambda: Item("P", "gadget"), "Item.type", "'category', 'product', 'variant'"),
        (lambda: Item("P", "product", visibility="hidden"), "Item.visibility", "'visible'"),
        (lambda: Item("P", "product", fields=["title"]), "Item.fields", "must be a mapping"),
        (lambda: Item("P", "product", fields={1: "x"}), "Item.fields", "keys must be str"),
        (lambda: Item("P", "product", parents="C1"), "Item.parents", "not a single str"),
        (lambda: Item("V", "variant"), "Item.parents", "exactly one product"),
        (lambda: Item("C", "category", parents=["A", "B"]), "Item.parents", "at most one"),
        (lambda: Item("P", "product", tags=[1]), "Item.tags", "non-empty str"),
        (
            lambda: Item("P", "product", updated_at=datetime(2026, 1, 1)),
            "Item.updated_at",
            "timezone-aware",
        ),
        (lambda: Change("P", "product", "modify"), "Change.kind", "'upsert', 'delete'"),
        (lambda: ConnectorParams(language=""), "ConnectorParams.language", "non-empty"),
        (
            lambda: ConnectorParams(disable_deletions="yes"),
            "ConnectorParams.disable_deletions",
            "must be bool",
        ),
        (
            lambda: ConnectorParams(export_status="visible"),
            "ConnectorParams.export_status",
            "'only_visible'",
        ),
        (
            lambda: ConnectorParams(field_mapping={"a": 1}),
            "ConnectorParams.field_mapping",
            "wrong type",
        ),
        (lambda: Connector("c", "shopify", schedule=-5), "Connector.schedule", "positive"),
        (
            lambda: Connector("c", "shopify", credentials=Secret("shpat_abcdef123")),
            "Connector.credentials",
            "reference",
        ),
        (lambda: Counts(product=-1), "Counts.product", ">= 0"),
        (lambda: Counts(product=True), "Counts.product", "must be int"),
        (lambda: ItemError("boom", "x"), "ItemError.kind", "'validation'"),
        (lambda: ItemStatus("e", "c", "r", "product", "ok", NOW), "ItemStatus.state", "'pending'"),
        (
            lambda: ItemStatus("e", "c", "r", "product", "done", NOW, errors=["x"]),
            "ItemStatus.errors",
            "ItemError",
        ),
    ],
)
def test_bad_input_names_the_field(build, field, text):
    """Wrong types and unknown enum values raise InvalidArgumentError naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        build()

    assert info.value.field == field
    assert text in str(info.value)
    assert isinstance(info.value, (TypeError, ValueError))
    assert isinstance(info.value, catalogsync.CatalogSyncError)


def test_enums_accept_values_and_members():
    """Enum fields take the member or its string value."""
    item = Item("V1", "variant", parents=["P1"], visibility="draft")

    assert item.type is ItemType.VARIANT
    assert item.key == (ItemType.VARIANT, "V1")
    assert Change("P1", ItemType.PRODUCT).kind is ChangeKind.UPSERT
    assert ConnectorParams(export_status=ExportStatus.ONLY_VISIBLE).export_status == "only_visible"


def test_models_are_frozen_values():
    """Models are immutable and compare by value."""
    a = Item("P1", "product", tags={"x"})

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.ref = "P2"  # type: ignore[misc]
    assert a == Item("P1", ItemType.PRODUCT, tags=frozenset({"x"}))
    assert attrs.evolve(a, ref="P2").ref == "P2"


def test_times_are_normalised_to_utc():
    """Aware datetimes in other offsets become UTC."""
    from datetime import timezone

    item = Item(
        "P", "product", updated_at=datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    )
    assert item.updated_at == NOW
    assert item.updated_at.tzinfo is UTC


def test_counts_arithmetic():
    """Counts index by type, add, and total."""
    c = Counts(category=1, product=2, variant=3) + Counts.of({ItemType.VARIANT: 4})

    assert c[ItemType.VARIANT] == 7
    assert c.total == 10
    assert dict(c) == {ItemType.CATEGORY: 1, ItemType.PRODUCT: 2, ItemType.VARIANT: 7}


def test_secret_never_shows():
    """A Secret masks itself in repr, str, format, f-strings and cannot be pickled."""
    s = Secret("shpat_live_token_1234567")

    assert "shpat" not in repr(s)
    assert "shpat" not in str(s)
    assert "shpat" not in f"{s} {s!r} {s:>30}"
    assert s.reveal() == "shpat_live_token_1234567"
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert redact("token=shpat_live_token_1234567;") == "token=********;"


def test_redacting_filter_scrubs_log_records(caplog):
    """Library loggers scrub known secrets from messages and arguments."""
    from catalogsync._secrets import get_logger

    s = Secret("amzn-refresh-Atzr|IwEB-secret")
    log = get_logger("catalogsync.test")
    with caplog.at_level(logging.DEBUG, logger="catalogsync.test"):
        log.warning("refresh failed for %s", "amzn-refresh-Atzr|IwEB-secret")
        log.warning("body: {'refresh_token': 'amzn-refresh-Atzr|IwEB-secret'}")

    assert s.reveal() not in caplog.text
    assert caplog.text.count("********") == 2


def test_converter_round_trips_models():
    """The storage converter round-trips connectors and statuses; secrets unstructure masked."""
    c = Connector(
        "shop", "shopify", account="acme", params=ConnectorParams(tags={"b", "a"}), schedule=90
    )
    status = ItemStatus(
        "E1",
        "shop",
        "P1",
        "product",
        ItemState.ERROR,
        NOW,
        errors=(ItemError(ErrorKind.CHANNEL, "bad", code="X", field="title"),),
    )
    conv = make_converter()

    assert loads(dumps(c), Connector) == c
    assert loads(dumps(status), ItemStatus) == status
    assert conv.unstructure(Secret("very-secret-value")) == "********"
    with pytest.raises(Exception, match="never structured"):
        conv.structure("x", Secret)


def test_memory_catalog_relations():
    """MemoryCatalog indexes children, re-indexes on update and scans in batches."""
    cat = MemoryCatalog(
        [
            Item("C1", "category"),
            Item("P1", "product", parents=["C1"]),
            Item("V1", "variant", parents=["P1"]),
            Item("V2", "variant", parents=["P1"]),
        ]
    )
    cat.put(Item("V2", "variant", parents=["P2"]))
    cat.remove(ItemType.VARIANT, "V1", "nope")

    assert cat.children(ItemType.VARIANT, ["P1", "P2"]) == {"P1": [], "P2": ["V2"]}
    assert cat.children(ItemType.PRODUCT, ["C1"]) == {"C1": ["P1"]}
    assert [len(b) for b in cat.scan(ItemType.VARIANT, batch_size=1)] == [1]
    assert (ItemType.PRODUCT, "P1") in cat
    assert len(cat) == 3
    with pytest.raises(InvalidArgumentError):
        cat.put({"ref": "x"})  # type: ignore[arg-type]


def test_localised_values_are_told_apart_from_option_maps():
    """{"en": .., "es": ..} is localised; {"Size": "M"} is a plain mapping kept whole."""
    from catalogsync.typing import RenderContext

    ctx = RenderContext(ConnectorParams(language="es"))
    item = Item(
        "V1",
        "variant",
        parents=["P1"],
        fields={
            "title": {"en": "Red", "es": "Rojo", "pt-BR": "Vermelho", "es-419": "Rojo"},
            "options": {"Size": "M", "Color": "Red"},
            "codes": {"xx": 1},
        },
    )
    assert ctx.value(item, "title") == "Rojo"
    assert ctx.translations(item, "title") == {"en": "Red", "pt-BR": "Vermelho", "es-419": "Rojo"}
    assert ctx.value(item, "options") == {"Size": "M", "Color": "Red"}
    assert ctx.translations(item, "options") == {}
