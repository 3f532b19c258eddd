"""
Every GraphQL request the Shopify adapter can build, checked against the official schemas.

Documents are chosen by the pinned version, and Shopify falls forward to newer versions
silently, so the rule is: a request built for pin P validates against the schema of P and of
every later version we have, and uses nothing P deprecates. With the 2026-01 and 2026-10
schemas that means the 2026-01 requests are checked against both, the 2026-10 ones against
2026-10.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from catalogsync import ConnectorParams, Item, ItemType, Mode
from catalogsync.channels.shopify import CustomId, _render
from catalogsync.channels.shopify import _sansio as s
from catalogsync.typing import RenderContext

from _support import contracts_dir, require


VERSIONS = ("2026-01", "2026-10")
GID_P = "gid://shopify/Product/1"
GID_C = "gid://shopify/Collection/2"
LOCATION = "gid://shopify/Location/3"
DEFAULT_ID = CustomId()


def schema(version: str) -> Any:
    """The official schema of *version* (cached across tests)."""
    path = contracts_dir() / "shopify" / f"admin_{version}.json.gz"
    require(path.exists(), f"the official Shopify schema {path} is not available")
    pytest.importorskip("graphql")
    from catalogsync.testing._graphql import load_schema

    return load_schema(str(path))


def rendered(custom_id: CustomId | None = DEFAULT_ID) -> tuple[dict[str, Any], dict[str, Any]]:
    """A product and a category rendered with every field the renderer knows, stock included."""
    params = ConnectorParams(overwrite_stock=True, language="en", map_status=True)
    product = Item(
        "P1",
        ItemType.PRODUCT,
        visibility="draft",
        fields={
            "title": {"en": "Trail shoe", "es": "Zapatilla"},
            "description": {"en": "<p>Light</p>", "es": "<p>Ligera</p>"},
            "vendor": "Acme",
            "product_type": "Shoes",
            "seo_title": "Trail shoe",
            "seo_description": "A light trail shoe",
            "images": [
                "https://cdn.example.com/a.jpg",
                {"url": "https://cdn.example.com/b.jpg", "alt": "side"},
            ],
            "metafields": [
                {"namespace": "specs", "key": "weight", "type": "number_integer", "value": "250"}
            ],
        },
        parents=("C1",),
        tags={"trail", "summer"},
    )
    variants = [
        Item(
            f"V{i}",
            ItemType.VARIANT,
            fields={
                "options": {"Size": size, "Color": "Red"},
                "price": "99.90",
                "compare_at_price": 120,
                "sku": f"TS-{size}",
                "barcode": "4006381333931",
                "stock": 5,
                "taxable": True,
                "inventory_policy": "deny",
                "image": "https://cdn.example.com/v.jpg",
            },
            parents=("P1",),
        )
        for i, size in enumerate(("42", "43"))
    ]
    category = Item(
        "C1",
        ItemType.CATEGORY,
        fields={
            "title": {"en": "Shoes", "es": "Zapatos"},
            "description": "<p>All</p>",
            "image": "https://cdn.example.com/c.jpg",
        },
    )
    ctx = RenderContext(
        params=params,
        related={**{v.key: v for v in variants}, category.key: category},
        children={product.key: tuple(v.ref for v in variants)},
        channel_ids={category.key: GID_C},
    )
    options = _render.RenderOptions(
        custom_id=custom_id, locations={Mode.PRODUCTION: LOCATION, Mode.TEST: None}
    )
    return _render.render(product, ctx, options), _render.render(category, ctx, options)


def requests(version: str) -> dict[str, s.GraphQLRequest]:
    """One request per operation and edge case, built by the adapter's own builders."""
    product, category = rendered()
    by_handle, _ = rendered(custom_id=None)
    data = product["input"]
    with_ids = {
        **data,
        "variants": [
            {**v, "id": f"gid://shopify/ProductVariant/{i}"} for i, v in enumerate(data["variants"])
        ],
    }
    without_stock = {
        **with_ids,
        "variants": [
            {k: x for k, x in v.items() if k != "inventoryQuantities"} for v in with_ids["variants"]
        ],
    }
    custom = CustomId()
    key = {"customId": custom.as_input("P1")}
    return {
        "shop": s.shop_query(None),
        "shop+location": s.shop_query(LOCATION),
        "definitions": s.definitions_query(custom),
        "definition-product": s.definition_create(custom, "PRODUCT"),
        "definition-collection": s.definition_create(custom, "COLLECTION"),
        "lookup-custom-id": s.product_lookup(key, first=2),
        "lookup-handle": s.product_lookup({"handle": "trail-shoe"}, first=250),
        "lookup-id": s.product_lookup({"id": GID_P}, first=1),
        "set-create-custom-id": s.product_set(data, key, first=2),
        "set-update-id": s.product_set(without_stock, {"id": GID_P}, first=2),
        "set-handle": s.product_set(
            by_handle["input"], {"handle": by_handle["input"]["handle"]}, first=2
        ),
        "set-no-identifier": s.product_set(
            {
                "title": "Bare",
                "productOptions": [{"name": "Title", "values": [{"name": "Default Title"}]}],
                "variants": [{"optionValues": [{"optionName": "Title", "name": "Default Title"}]}],
            },
            None,
            first=1,
        ),
        "set-max-page": s.product_set(data, key, first=s.page_size(2048)),
        "variants-first": s.variants_page(GID_P, first=250, after=None),
        "variants-after": s.variants_page(GID_P, first=250, after="c249"),
        "archive": s.product_archive(GID_P),
        "delete": s.product_delete(GID_P),
        "inventory": s.inventory_set(
            [
                ("gid://shopify/InventoryItem/1", LOCATION, 5),
                ("gid://shopify/InventoryItem/2", LOCATION, 0),
            ],
            idempotency_key="0f5e0c5a-8d2b-4b6e-9d0c-4f1f8c2d3e4a",
        ),
        "translatable": s.translatable_query(GID_P),
        "translations": s.translations_register(
            GID_P,
            [
                {
                    "key": "title",
                    "locale": "es",
                    "value": "Zapatilla",
                    "translatableContentDigest": "abc",
                }
            ],
        ),
        "collection-lookup-custom-id": s.collection_lookup({"customId": custom.as_input("C1")}),
        "collection-lookup-handle": s.collection_lookup({"handle": "shoes"}),
        "collection-create": s.collection_create(category["input"], api_version=version),
        "collection-update": s.collection_update(GID_C, category["input"], api_version=version),
        "collection-delete": s.collection_delete(GID_C),
    }


def problems(schema_: Any, request: s.GraphQLRequest) -> list[str]:
    """Validation errors of the document and coercion errors of the variables."""
    from graphql import OperationDefinitionNode, parse, validate
    from graphql.execution.values import get_variable_values

    document = parse(request.document)
    errors = [e.message for e in validate(schema_, document)]
    if errors:
        return errors
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert operation.name is not None
    assert operation.name.value == request.operation
    coerced = get_variable_values(schema_, operation.variable_definitions, dict(request.variables))
    return [e.message for e in coerced] if isinstance(coerced, list) else []


def deprecated(schema_: Any, request: s.GraphQLRequest) -> list[str]:
    """What the document uses that the schema deprecates."""
    from graphql import parse

    from catalogsync.testing._graphql import find_deprecations

    return find_deprecations(schema_, parse(request.document), request.variables)


CASES = [(pin, name) for pin in VERSIONS for name in requests(pin)]


@pytest.mark.contracts
@pytest.mark.parametrize(("pin", "name"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_request_validates_on_the_pin_and_every_later_schema(pin, name):
    """Each request validates (document and variables) on its pinned schema and newer ones."""
    request = requests(pin)[name]

    for version in VERSIONS:
        if version >= pin:
            assert problems(schema(version), request) == [], version


@pytest.mark.contracts
@pytest.mark.parametrize(("pin", "name"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_request_uses_nothing_its_pin_deprecates(pin, name):
    """No request uses a field, argument or value deprecated in the version it pins."""
    assert deprecated(schema(pin), requests(pin)[name]) == []


@pytest.mark.contracts
@pytest.mark.parametrize("name", sorted(requests("2026-01")))
def test_older_pin_requests_validate_on_both_schemas(name):
    """Requests for 2026-01 validate on 2026-01 and 2026-10 (fall-forward safety)."""
    request = requests("2026-01")[name]

    assert problems(schema("2026-01"), request) == []
    assert problems(schema("2026-10"), request) == []


@pytest.mark.contracts
def test_collection_v2_documents_really_need_2026_10():
    """The 2026-10 collection documents are rejected by 2026-01: the version switch matters."""
    request = requests("2026-10")["collection-create"]

    assert problems(schema("2026-01"), request)
    assert deprecated(schema("2026-10"), requests("2026-01")["collection-create"]) == [
        "Mutation.collectionCreate.input"
    ]


@pytest.mark.contracts
@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrong_field_fails_the_check(version):
    """The check is real: a misspelt field in a document is reported on both schemas."""
    broken = s.GraphQLRequest(
        "CatalogsyncProductSet",
        s.PRODUCT_SET.replace("handle\n      status", "handel\n      status"),
        requests(version)["set-create-custom-id"].variables,
    )

    assert broken.document != s.PRODUCT_SET
    assert any("handel" in p for p in problems(schema(version), broken))


@pytest.mark.contracts
@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_variables_fail_the_check(version):
    """Variables are checked too: a variant without optionValues and a bad status fail."""
    good = requests(version)["set-update-id"]
    bad = s.GraphQLRequest(
        good.operation,
        good.document,
        {
            **good.variables,
            "input": {**good.variables["input"], "status": "LIVE", "variants": [{"price": "1.00"}]},
        },
    )

    found = " ".join(problems(schema(version), bad))
    assert "optionValues" in found
    assert "LIVE" in found


def test_every_document_constant_is_covered():
    """Each GraphQL document in _sansio is exercised by at least one request above."""
    documents = {
        name: value
        for name, value in vars(s).items()
        if isinstance(value, str) and re.match(r"\s*(query|mutation)\s", value)
    }
    used = {r.document for pin in VERSIONS for r in requests(pin).values()}

    assert documents
    assert {n for n, d in documents.items() if d not in used} == set()


@pytest.mark.contracts
@pytest.mark.parametrize("name", sorted(requests("2026-10")))
def test_cost_estimates_match_the_emulated_cost_model(name):
    """The adapter's pacing estimate equals the requested cost by Shopify's model, under 1,000."""
    from catalogsync.testing._graphql import prepare

    request = requests("2026-10")[name]
    prepared = prepare(
        {
            "query": request.document,
            "variables": dict(request.variables),
            "operationName": request.operation,
        },
        schema=schema("2026-10"),
        known_roots=lambda _: set(),
    )

    assert prepared.cost() == request.cost
    assert request.cost <= s.MAX_QUERY_COST
