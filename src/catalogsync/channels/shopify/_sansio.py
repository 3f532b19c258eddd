"""
The Shopify Admin GraphQL wire format, without I/O.

Rule 1: every GraphQL document the adapter sends is a constant in this module, and every request
is built by a pure function returning a `GraphQLRequest`; every response is read by a pure
function. The contract tests validate each document and variables set against the official
schemas, and the unit tests feed the readers recorded-style responses from
``tests/samples/shopify``.

Rule 2: documents are chosen by the pinned API version, never by the served one. Shopify falls
forward silently, so a document built for version *P* must stay valid on every later version it
may be served by (the contract tests check that), and must not use what *P* deprecates.

Rule 3: costs are estimated with Shopify's published model (objects 1, scalars and enums 0,
connections 2 plus ``first`` times their node, mutations 10) so the client-side bucket can pace
before sending; the responses' ``throttleStatus`` then corrects the bucket.

Strategy: wire data is structured into small frozen attrs classes by one cattrs converter
(`make_converter`); anything that does not fit raises `ChannelProtocolError`, never a bare
`KeyError` from deep inside the adapter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import cattrs
import httpx
from attrs import field, frozen
from cattrs.gen import make_dict_structure_fn, override

from ..._errors import ChannelProtocolError, InvalidArgumentError
from ..._models import ErrorKind, ItemError
from ..._secrets import Secret
from .._transport import Verdict, VerdictKind, retry_after


__all__ = [
    "DEFAULT_API_VERSION",
    "MAX_QUERY_COST",
    "MIN_API_VERSION",
    "AccessToken",
    "CollectionNode",
    "Cost",
    "CustomId",
    "GraphQLError",
    "GraphQLRequest",
    "GraphQLResponse",
    "ProductNode",
    "ShopInfo",
    "TranslatableContent",
    "UserError",
    "VariantNode",
    "classify",
    "make_converter",
]

CHANNEL: Final = "shopify"

#: The oldest version whose schema this adapter was checked against.
MIN_API_VERSION: Final = "2026-01"
#: The version pinned when none is given (the newest official schema in the contract tests).
DEFAULT_API_VERSION: Final = "2026-10"
#: The first version whose ``collectionCreate``/``collectionUpdate`` take ``collection:``.
_COLLECTION_V2: Final = "2026-10"

#: Shopify refuses any single query whose *requested* cost exceeds this, whatever the plan.
MAX_QUERY_COST: Final = 1000
#: Input arrays are capped at 250 entries, and so are connection pages.
MAX_PAGE: Final = 250

_VERSION_RE: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def check_api_version(version: str) -> str:
    """
    Return *version* if it is a stable ``YYYY-MM`` version this adapter supports.

    There is no hard-coded list of releases: any well-formed version from `MIN_API_VERSION` on
    is accepted, and `check_connection` reports what Shopify actually served.
    """
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise InvalidArgumentError(
            f"api_version must look like '2026-10', got {version!r}", field="api_version"
        )
    if version < MIN_API_VERSION:
        raise InvalidArgumentError(
            f"api_version {version} is older than {MIN_API_VERSION}, the oldest version this "
            "adapter's documents were checked against",
            field="api_version",
        )
    return version


# =================================================================================================
# Identifiers
# =================================================================================================


@frozen
class CustomId:
    """
    The unique metafield that holds an item's PIM reference in Shopify (a "custom ID").

    Products are upserted by it (``productSet(identifier: {customId: ...})``) and collections are
    looked up by it before one is created, so a retry after a crash finds what the first attempt
    made instead of creating a duplicate. Its definitions (type ``id``, unique values) are created
    on the first push when missing.

    Example:
        >>> CustomId().as_input("P1")
        {'namespace': 'catalogsync', 'key': 'ref', 'value': 'P1'}

    .. versionadded:: 0.1.0
    """

    namespace: str = "catalogsync"
    key: str = "ref"

    def __attrs_post_init__(self) -> None:
        for name in ("namespace", "key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{2,64}", value):
                raise InvalidArgumentError(
                    f"CustomId.{name} must be 2-64 letters, digits, '_' or '-', got {value!r}",
                    field=f"CustomId.{name}",
                )

    def as_input(self, ref: str) -> dict[str, str]:
        """The ``UniqueMetafieldValueInput`` for *ref*."""
        return {"namespace": self.namespace, "key": self.key, "value": ref}

    def as_metafield(self, ref: str) -> dict[str, str]:
        """The ``MetafieldInput`` that stores *ref* on the product or collection."""
        return {"namespace": self.namespace, "key": self.key, "type": "id", "value": ref}


def gid(kind: str, number: int | str) -> str:
    """``gid("Product", 1)`` -> ``"gid://shopify/Product/1"``."""
    return f"gid://shopify/{kind}/{number}"


def gid_number(value: str) -> str:
    """The trailing number of a GID (``"gid://shopify/Product/12?x=1"`` -> ``"12"``)."""
    return value.rsplit("/", 1)[-1].split("?", 1)[0]


def admin_url(domain: str, product_gid: str, variant_gid: str | None = None) -> str:
    """A link to a product (or one of its variants) in the shop's admin."""
    url = f"https://{domain}/admin/products/{gid_number(product_gid)}"
    return f"{url}/variants/{gid_number(variant_gid)}" if variant_gid else url


def collection_url(domain: str, collection_gid: str) -> str:
    """A link to a collection in the shop's admin."""
    return f"https://{domain}/admin/collections/{gid_number(collection_gid)}"


# =================================================================================================
# Documents
# =================================================================================================

_VARIANT_FRAGMENT: Final = """
fragment CatalogsyncVariant on ProductVariant {
  id
  sku
  selectedOptions { name value }
  inventoryItem { id }
}"""
#: The cost of one variant node selected by ``CatalogsyncVariant``: itself, options, item.
_VARIANT_NODE_COST: Final = 3
_PAGE: Final = "nodes { ...CatalogsyncVariant } pageInfo { hasNextPage endCursor }"

SHOP_QUERY: Final = """
query CatalogsyncShop($locationId: ID, $withLocation: Boolean!) {
  shop { name myshopifyDomain }
  location(id: $locationId) @include(if: $withLocation) { id name isActive }
}"""

DEFINITIONS_QUERY: Final = """
query CatalogsyncDefinitions($namespace: String!, $key: String!) {
  product: metafieldDefinitions(ownerType: PRODUCT, namespace: $namespace, key: $key, first: 1) {
    nodes { id type { name } capabilities { uniqueValues { enabled } } }
  }
  collection: metafieldDefinitions(
    ownerType: COLLECTION, namespace: $namespace, key: $key, first: 1
  ) {
    nodes { id type { name } capabilities { uniqueValues { enabled } } }
  }
}"""

DEFINITION_CREATE: Final = """
mutation CatalogsyncDefinitionCreate($definition: MetafieldDefinitionInput!) {
  metafieldDefinitionCreate(definition: $definition) {
    createdDefinition { id }
    userErrors { field message code }
  }
}"""

PRODUCT_LOOKUP: Final = f"""
query CatalogsyncProductLookup($identifier: ProductIdentifierInput!, $first: Int!) {{
  productByIdentifier(identifier: $identifier) {{
    id
    handle
    variants(first: $first) {{ {_PAGE} }}
  }}
}}{_VARIANT_FRAGMENT}"""

PRODUCT_SET: Final = f"""
mutation CatalogsyncProductSet(
  $input: ProductSetInput!, $identifier: ProductSetIdentifiers, $first: Int!
) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{
      id
      handle
      status
      variants(first: $first) {{ {_PAGE} }}
    }}
    userErrors {{ field message code }}
  }}
}}{_VARIANT_FRAGMENT}"""

VARIANTS_PAGE: Final = f"""
query CatalogsyncVariants($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{
    id
    variants(first: $first, after: $after) {{ {_PAGE} }}
  }}
}}{_VARIANT_FRAGMENT}"""

PRODUCT_ARCHIVE: Final = """
mutation CatalogsyncProductArchive($product: ProductUpdateInput!) {
  productUpdate(product: $product) {
    product { id status }
    userErrors { field message }
  }
}"""

PRODUCT_DELETE: Final = """
mutation CatalogsyncProductDelete($input: ProductDeleteInput!) {
  productDelete(input: $input, synchronous: true) {
    deletedProductId
    userErrors { field message }
  }
}"""

INVENTORY_SET: Final = """
mutation CatalogsyncInventorySet($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}"""

TRANSLATABLE_QUERY: Final = """
query CatalogsyncTranslatable($resourceId: ID!) {
  translatableResource(resourceId: $resourceId) {
    resourceId
    translatableContent { key value digest locale }
  }
}"""

TRANSLATIONS_REGISTER: Final = """
mutation CatalogsyncTranslationsRegister($resourceId: ID!, $translations: [TranslationInput!]!) {
  translationsRegister(resourceId: $resourceId, translations: $translations) {
    translations { key locale }
    userErrors { field message code }
  }
}"""

COLLECTION_LOOKUP: Final = """
query CatalogsyncCollectionLookup($identifier: CollectionIdentifierInput!) {
  collectionByIdentifier(identifier: $identifier) { id handle }
}"""

# Before 2026-10 the collection mutations take `input: CollectionInput!`; 2026-10 deprecates it in
# favour of `collection:` with dedicated create/update inputs.
COLLECTION_CREATE_V1: Final = """
mutation CatalogsyncCollectionCreate($input: CollectionInput!) {
  collectionCreate(input: $input) {
    collection { id handle }
    userErrors { field message }
  }
}"""

COLLECTION_CREATE_V2: Final = """
mutation CatalogsyncCollectionCreate($collection: CollectionCreateInput!) {
  collectionCreate(collection: $collection) {
    collection { id handle }
    userErrors { field message }
  }
}"""

COLLECTION_UPDATE_V1: Final = """
mutation CatalogsyncCollectionUpdate($input: CollectionInput!) {
  collectionUpdate(input: $input) {
    collection { id handle }
    userErrors { field message }
  }
}"""

COLLECTION_UPDATE_V2: Final = """
mutation CatalogsyncCollectionUpdate($collection: CollectionUpdateInput!) {
  collectionUpdate(collection: $collection) {
    collection { id handle }
    userErrors { field message }
  }
}"""

COLLECTION_DELETE: Final = """
mutation CatalogsyncCollectionDelete($input: CollectionDeleteInput!) {
  collectionDelete(input: $input) {
    deletedCollectionId
    userErrors { field message }
  }
}"""


# =================================================================================================
# Requests
# =================================================================================================


@frozen
class GraphQLRequest:
    """
    One GraphQL call: document, variables and the cost the client bucket must hold before it.

    Attributes:
        operation: The operation name (also the key of the root field's payload readers).
        document: The GraphQL document.
        variables: JSON-ready variables.
        cost: Requested cost by Shopify's model, for client-side pacing.
    """

    operation: str
    document: str
    variables: Mapping[str, Any] = field(factory=dict)
    cost: int = 1

    def body(self) -> bytes:
        """The JSON body: ``{"query", "variables", "operationName"}``."""
        return json.dumps(
            {"query": self.document, "variables": self.variables, "operationName": self.operation},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


def graphql_url(base_url: str, api_version: str) -> str:
    """``https://{shop}.myshopify.com/admin/api/{version}/graphql.json``."""
    return f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"


def to_http(
    request: GraphQLRequest, *, base_url: str, api_version: str, token: Secret
) -> httpx.Request:
    """Turn *request* into an `httpx.Request` with the access token header."""
    return httpx.Request(
        "POST",
        graphql_url(base_url, api_version),
        content=request.body(),
        headers={
            "content-type": "application/json",
            "accept": "application/json",
            "x-shopify-access-token": token.reveal(),
        },
    )


def page_size(count: int, *, max_cost: float = MAX_QUERY_COST) -> int:
    """
    How many variants to select per page: enough for *count*, at most 250, and few enough that
    the largest variant-selecting request stays within *max_cost* (the single-query cap, or a
    smaller bucket).
    """
    budget = int(min(max_cost, MAX_QUERY_COST)) - _PRODUCT_SET_BASE
    fit = max(1, budget // _VARIANT_NODE_COST)
    return max(1, min(MAX_PAGE, count, fit))


# productSet: mutation 10 + product 1 + connection 2 + pageInfo 1 + userErrors 1.
_PRODUCT_SET_BASE: Final = 15


def shop_query(location_id: str | None) -> GraphQLRequest:
    """The credentials probe: shop name and domain, plus the configured location if any."""
    return GraphQLRequest(
        "CatalogsyncShop",
        SHOP_QUERY,
        {"locationId": location_id, "withLocation": location_id is not None},
        cost=2 if location_id else 1,
    )


def definitions_query(custom_id: CustomId) -> GraphQLRequest:
    """Look up the product and collection definitions of the custom-id metafield."""
    return GraphQLRequest(
        "CatalogsyncDefinitions",
        DEFINITIONS_QUERY,
        {"namespace": custom_id.namespace, "key": custom_id.key},
        cost=2 * (2 + 4),
    )


def definition_create(custom_id: CustomId, owner_type: str) -> GraphQLRequest:
    """Create the custom-id definition for *owner_type* (``PRODUCT`` or ``COLLECTION``)."""
    return GraphQLRequest(
        "CatalogsyncDefinitionCreate",
        DEFINITION_CREATE,
        {
            "definition": {
                "name": "catalogsync PIM reference",
                "namespace": custom_id.namespace,
                "key": custom_id.key,
                "type": "id",
                "ownerType": owner_type,
                "description": "The PIM reference catalogsync upserts this resource by.",
            }
        },
        cost=12,
    )


def product_lookup(identifier: Mapping[str, Any], *, first: int) -> GraphQLRequest:
    """Find a product (and its first variants) by id, handle or custom id."""
    return GraphQLRequest(
        "CatalogsyncProductLookup",
        PRODUCT_LOOKUP,
        {"identifier": dict(identifier), "first": first},
        cost=1 + 2 + first * _VARIANT_NODE_COST + 1,
    )


def product_set(
    product_input: Mapping[str, Any], identifier: Mapping[str, Any] | None, *, first: int
) -> GraphQLRequest:
    """The synchronous ``productSet`` upsert, selecting the first *first* variants back."""
    return GraphQLRequest(
        "CatalogsyncProductSet",
        PRODUCT_SET,
        {"input": product_input, "identifier": identifier, "first": first},
        cost=_PRODUCT_SET_BASE + first * _VARIANT_NODE_COST,
    )


def variants_page(product_gid: str, *, first: int, after: str | None) -> GraphQLRequest:
    """The next page of a product's variants."""
    return GraphQLRequest(
        "CatalogsyncVariants",
        VARIANTS_PAGE,
        {"id": product_gid, "first": first, "after": after},
        cost=1 + 2 + first * _VARIANT_NODE_COST + 1,
    )


def product_archive(product_gid: str) -> GraphQLRequest:
    """Set a product's status to ``ARCHIVED``."""
    return GraphQLRequest(
        "CatalogsyncProductArchive",
        PRODUCT_ARCHIVE,
        {"product": {"id": product_gid, "status": "ARCHIVED"}},
        cost=12,
    )


def product_delete(product_gid: str) -> GraphQLRequest:
    """Delete a product for good (variants, inventory items and unreferenced media go too)."""
    return GraphQLRequest(
        "CatalogsyncProductDelete", PRODUCT_DELETE, {"input": {"id": product_gid}}, cost=11
    )


#: The adjustment reason catalogsync records for stock overwrites.
INVENTORY_REASON: Final = "correction"
#: The reference document recorded on every adjustment group.
INVENTORY_REFERENCE: Final = "catalogsync://stock-overwrite"


def inventory_set(
    quantities: Sequence[tuple[str, str, int]], *, idempotency_key: str
) -> GraphQLRequest:
    """
    Overwrite ``available`` quantities: ``(inventory item GID, location GID, quantity)``.

    Each quantity carries ``changeFromQuantity: null`` (explicitly: from 2026-04 omitting it is
    an error; ``null`` means "overwrite without compare"), and the mutation carries an
    ``@idempotent`` key so a retried request is applied once. The caller makes one key per
    logical request and reuses it for the transport's retries.
    """
    if len(quantities) > MAX_PAGE:
        raise InvalidArgumentError(f"at most {MAX_PAGE} quantities per request", field="quantities")
    return GraphQLRequest(
        "CatalogsyncInventorySet",
        INVENTORY_SET,
        {
            "input": {
                "name": "available",
                "reason": INVENTORY_REASON,
                "referenceDocumentUri": INVENTORY_REFERENCE,
                "quantities": [
                    {
                        "inventoryItemId": item,
                        "locationId": location,
                        "quantity": quantity,
                        "changeFromQuantity": None,
                    }
                    for item, location, quantity in quantities
                ],
            },
            "idempotencyKey": idempotency_key,
        },
        cost=12,
    )


def translatable_query(resource_gid: str) -> GraphQLRequest:
    """The translatable content (keys and digests) of a product or collection."""
    return GraphQLRequest(
        "CatalogsyncTranslatable", TRANSLATABLE_QUERY, {"resourceId": resource_gid}, cost=2
    )


def translations_register(
    resource_gid: str, translations: Sequence[Mapping[str, str]]
) -> GraphQLRequest:
    """Register translations (``key``, ``locale``, ``value``, ``translatableContentDigest``)."""
    return GraphQLRequest(
        "CatalogsyncTranslationsRegister",
        TRANSLATIONS_REGISTER,
        {"resourceId": resource_gid, "translations": [dict(t) for t in translations]},
        cost=12,
    )


def collection_lookup(identifier: Mapping[str, Any]) -> GraphQLRequest:
    """Find a collection by id, handle or custom id."""
    return GraphQLRequest(
        "CatalogsyncCollectionLookup",
        COLLECTION_LOOKUP,
        {"identifier": dict(identifier)},
        cost=1,
    )


def collection_create(collection: Mapping[str, Any], *, api_version: str) -> GraphQLRequest:
    """Create a manual collection with the document the pinned version expects."""
    if api_version >= _COLLECTION_V2:
        return GraphQLRequest(
            "CatalogsyncCollectionCreate",
            COLLECTION_CREATE_V2,
            {"collection": dict(collection)},
            cost=12,
        )
    return GraphQLRequest(
        "CatalogsyncCollectionCreate", COLLECTION_CREATE_V1, {"input": dict(collection)}, cost=12
    )


def collection_update(
    collection_gid: str, collection: Mapping[str, Any], *, api_version: str
) -> GraphQLRequest:
    """Update a collection's fields with the document the pinned version expects."""
    value = {**collection, "id": collection_gid}
    if api_version >= _COLLECTION_V2:
        return GraphQLRequest(
            "CatalogsyncCollectionUpdate", COLLECTION_UPDATE_V2, {"collection": value}, cost=12
        )
    return GraphQLRequest(
        "CatalogsyncCollectionUpdate", COLLECTION_UPDATE_V1, {"input": value}, cost=12
    )


def collection_delete(collection_gid: str) -> GraphQLRequest:
    """Delete a collection (its products stay)."""
    return GraphQLRequest(
        "CatalogsyncCollectionDelete",
        COLLECTION_DELETE,
        {"input": {"id": collection_gid}},
        cost=11,
    )


def token_request(base_url: str, client_id: str, client_secret: Secret) -> httpx.Request:
    """The client-credentials grant: ``POST /admin/oauth/access_token`` (form-encoded)."""
    return httpx.Request(
        "POST",
        f"{base_url.rstrip('/')}/admin/oauth/access_token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret.reveal(),
        },
        headers={"accept": "application/json"},
    )


# =================================================================================================
# Responses
# =================================================================================================


@frozen
class Cost:
    """
    ``extensions.cost`` of a response: what the query asked for and the bucket after it.

    Attributes:
        requested: ``requestedQueryCost``.
        actual: ``actualQueryCost`` (``None`` when the query did not run, e.g. throttled).
        maximum: ``throttleStatus.maximumAvailable`` (the bucket size).
        available: ``throttleStatus.currentlyAvailable``.
        restore_rate: ``throttleStatus.restoreRate`` in points per second.
    """

    requested: float | None
    actual: float | None
    maximum: float
    available: float
    restore_rate: float

    def wait(self) -> float:
        """Seconds until the bucket holds the requested cost again (1 s when unknown)."""
        if self.requested is not None and self.restore_rate > 0:
            missing = self.requested - self.available
            if missing > 0:
                return missing / self.restore_rate
        return 1.0


@frozen
class GraphQLError:
    """One entry of a response's top-level ``errors``."""

    message: str
    code: str | None = None


@frozen
class UserError:
    """
    One entry of a mutation payload's ``userErrors``.

    Attributes:
        field: The path to the input field, e.g. ``("input", "variants", "2", "price")``.
        message: What Shopify said.
        code: The typed error code (absent on plain ``UserError``).
    """

    message: str
    field: tuple[str, ...] | None = None
    code: str | None = None

    @property
    def path(self) -> str | None:
        """The field path in catalogsync's notation: ``variants[2].price``."""
        return field_path(self.field)

    def variant_index(self) -> int | None:
        """The index into ``input.variants`` this error is about, if any."""
        parts = list(self.field or ())
        if parts[:1] == ["input"]:
            parts = parts[1:]
        if len(parts) >= 2 and parts[0] == "variants" and parts[1].isdigit():  # noqa: PLR2004
            return int(parts[1])
        return None

    def item_error(self, *, relative_to_variant: bool = False) -> ItemError:
        """This error as a ``CHANNEL`` `ItemError` (relative to its variant when asked)."""
        path = self.path
        if relative_to_variant and path is not None:
            path = re.sub(r"^variants\[\d+\]\.?", "", path) or None
        return ItemError(
            ErrorKind.CHANNEL, self.message, code=self.code or "USER_ERROR", field=path
        )


def field_path(parts: Sequence[str] | None) -> str | None:
    """
    ``["input", "variants", "2", "price"]`` -> ``"variants[2].price"``.

    The leading ``input`` (the mutation argument) is dropped; list indexes become ``[n]``.
    """
    if not parts:
        return None
    items = list(parts)
    if items[0] == "input" and len(items) > 1:
        items = items[1:]
    out = ""
    for part in items:
        if part.isdigit() and out:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@frozen
class GraphQLResponse:
    """
    A read GraphQL response.

    Attributes:
        status: The HTTP status.
        data: ``data`` (``None`` when absent).
        errors: Top-level ``errors``.
        cost: ``extensions.cost`` when present.
        request_id: ``X-Request-Id``.
        api_version: ``X-Shopify-API-Version`` (the version actually served).
        deprecated_reason: ``X-Shopify-API-Deprecated-Reason``.
    """

    status: int
    data: Mapping[str, Any] | None
    errors: tuple[GraphQLError, ...] = ()
    cost: Cost | None = None
    request_id: str | None = None
    api_version: str | None = None
    deprecated_reason: str | None = None

    def payload(self, root: str) -> Mapping[str, Any] | None:
        """``data[root]`` when it is an object."""
        value = (self.data or {}).get(root)
        return value if isinstance(value, Mapping) else None

    def failure(self) -> tuple[ItemError, ...]:
        """The top-level errors as ``CHANNEL`` item errors (empty when there are none)."""
        return tuple(
            ItemError(ErrorKind.CHANNEL, e.message, code=e.code or "GRAPHQL_ERROR")
            for e in self.errors
        )


@frozen
class VariantNode:
    """A variant as the adapter selects it (``CatalogsyncVariant``)."""

    id: str
    options: tuple[tuple[str, str], ...]
    inventory_item_id: str | None = None
    sku: str | None = None


@frozen
class PageInfo:
    """``pageInfo`` of a connection."""

    has_next_page: bool = False
    end_cursor: str | None = None


@frozen
class ProductNode:
    """A product as returned by ``productSet`` or ``productByIdentifier``."""

    id: str
    handle: str | None = None
    status: str | None = None
    variants: tuple[VariantNode, ...] = ()
    page: PageInfo = field(factory=PageInfo)


@frozen
class CollectionNode:
    """A collection's id and handle."""

    id: str
    handle: str | None = None


@frozen
class TranslatableContent:
    """One translatable key of a resource with the digest its translations must quote."""

    key: str
    value: str | None
    digest: str | None
    locale: str


@frozen
class ShopInfo:
    """What the credentials probe learned."""

    name: str
    domain: str
    location_id: str | None = None
    location_active: bool | None = None


@frozen
class DefinitionInfo:
    """An existing custom-id metafield definition."""

    id: str
    type: str | None
    unique: bool


@frozen
class AccessToken:
    """A token from the client-credentials grant (never printed: the token is a `Secret`)."""

    token: Secret
    expires_in: float | None = None
    scope: str | None = None


def _structure_variant(value: Any, _: Any) -> VariantNode:
    options = tuple((str(o["name"]), str(o["value"])) for o in value.get("selectedOptions") or ())
    item = value.get("inventoryItem") or {}
    return VariantNode(
        id=str(value["id"]),
        options=options,
        inventory_item_id=item.get("id"),
        sku=value.get("sku"),
    )


def _structure_user_error(value: Any, _: Any) -> UserError:
    # Strict: a string path or a missing message is garbage, not something to coerce.
    path = value.get("field")
    message = value.get("message")
    code = value.get("code")
    if not isinstance(message, str):
        msg = "userErrors[].message must be a string"
        raise TypeError(msg)
    if path is not None and (
        not isinstance(path, list) or not all(isinstance(p, str) for p in path)
    ):
        msg = "userErrors[].field must be a list of strings"
        raise TypeError(msg)
    return UserError(
        message, tuple(path) if path is not None else None, code if isinstance(code, str) else None
    )


def configure_converter(converter: cattrs.Converter) -> None:
    """
    Configure *converter* for Shopify's Admin GraphQL responses.

    * camelCase wire names map onto snake_case attributes (``hasNextPage`` -> ``has_next_page``,
      ``restoreRate`` -> ``restore_rate``);
    * a variant's ``selectedOptions`` become ``(name, value)`` pairs and ``inventoryItem.id``
      becomes ``inventory_item_id``;
    * ``field`` paths of user errors become tuples (``null`` stays ``None``); a path that is
      not a list of strings, or a missing message, is rejected rather than coerced.
    """
    converter.register_structure_hook(VariantNode, _structure_variant)
    converter.register_structure_hook(
        PageInfo,
        make_dict_structure_fn(
            PageInfo,
            converter,
            has_next_page=override(rename="hasNextPage"),
            end_cursor=override(rename="endCursor"),
        ),
    )
    converter.register_structure_hook(
        TranslatableContent, make_dict_structure_fn(TranslatableContent, converter)
    )
    converter.register_structure_hook(UserError, _structure_user_error)


def make_converter() -> cattrs.Converter:
    """
    Return a new converter configured by `configure_converter`.

    Example:
        >>> conv = make_converter()
        >>> conv.structure({"hasNextPage": True, "endCursor": "c1"}, PageInfo)
        PageInfo(has_next_page=True, end_cursor='c1')
    """
    converter = cattrs.Converter()
    configure_converter(converter)
    return converter


_converter = make_converter()


def _structure(value: Any, cls: type[Any], what: str) -> Any:
    try:
        return _converter.structure(value, cls)
    except Exception as exc:  # cattrs raises class-validation groups, KeyError, TypeError...
        raise ChannelProtocolError(
            f"Shopify returned an unreadable {what}", channel=CHANNEL
        ) from exc


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_cost(extensions: Any) -> Cost | None:
    """Read ``extensions.cost``; ``None`` when it is missing or malformed."""
    if not isinstance(extensions, Mapping):
        return None
    cost = extensions.get("cost")
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus")
    if not isinstance(status, Mapping):
        return None
    maximum = _number(status.get("maximumAvailable"))
    available = _number(status.get("currentlyAvailable"))
    rate = _number(status.get("restoreRate"))
    if maximum is None or available is None or rate is None:
        return None
    return Cost(
        requested=_number(cost.get("requestedQueryCost")),
        actual=_number(cost.get("actualQueryCost")),
        maximum=maximum,
        available=available,
        restore_rate=rate,
    )


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def read_response(response: httpx.Response) -> GraphQLResponse:
    """
    Read a GraphQL response (after the transport accepted it).

    Raises:
        ChannelProtocolError: the body is not a JSON object, or ``data``/``errors`` have the
            wrong shape.
    """
    body = _json(response)
    headers = response.headers
    if not isinstance(body, Mapping):
        raise ChannelProtocolError(
            f"Shopify answered HTTP {response.status_code} with a body that is not a JSON object",
            channel=CHANNEL,
            status_code=response.status_code,
            request_id=headers.get("x-request-id"),
        )
    data = body.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ChannelProtocolError("Shopify returned 'data' that is not an object", channel=CHANNEL)
    return GraphQLResponse(
        status=response.status_code,
        data=data,
        errors=_read_errors(body.get("errors")),
        cost=read_cost(body.get("extensions")),
        request_id=headers.get("x-request-id"),
        api_version=headers.get("x-shopify-api-version"),
        deprecated_reason=headers.get("x-shopify-api-deprecated-reason"),
    )


def _read_errors(errors: Any) -> tuple[GraphQLError, ...]:
    if errors is None:
        return ()
    if isinstance(errors, str):  # the REST-style shape of 401 and a few others
        return (GraphQLError(errors),)
    if not isinstance(errors, list):
        return (GraphQLError(str(errors)[:500]),)
    out = []
    for e in errors:
        if isinstance(e, Mapping):
            ext = e.get("extensions")
            code = ext.get("code") if isinstance(ext, Mapping) else None
            out.append(GraphQLError(str(e.get("message", "")), str(code) if code else None))
        else:
            out.append(GraphQLError(str(e)[:500]))
    return tuple(out)


def classify(response: httpx.Response) -> Verdict:
    """
    Classify a GraphQL response for the transport.

    * HTTP 401 -> ``AUTH``.
    * HTTP 429, or HTTP 200 whose errors carry ``THROTTLED`` -> ``THROTTLED``, waiting
      ``(requested - available) / restoreRate`` from the response's cost, else ``Retry-After``,
      else one second (Shopify's recommended backoff).
    * HTTP 5xx, or errors carrying ``INTERNAL_SERVER_ERROR`` -> ``RETRY``.
    * HTTP 200 whose body is not a JSON object (truncated, an HTML error page) -> ``RETRY``:
      a proxy or a dropped connection garbled it. Every write is an idempotent upsert, so the
      retry is safe even if the first attempt applied (as the other channels do).
    * Anything else is final (``OK``), including user errors and validation errors.
    """
    status = response.status_code
    if status == 401:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.AUTH, reason="HTTP 401")
    if status >= 500:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, retry_after(response), f"HTTP {status}")
    body = _json(response) if status in (200, 429) else None
    codes = _error_codes(body)
    if status == 429 or "THROTTLED" in codes:  # noqa: PLR2004 - HTTP status
        cost = read_cost(body.get("extensions")) if isinstance(body, Mapping) else None
        wait = cost.wait() if cost is not None else (retry_after(response) or 1.0)
        return Verdict(VerdictKind.THROTTLED, wait, f"throttled (HTTP {status})")
    if "INTERNAL_SERVER_ERROR" in codes:
        return Verdict(VerdictKind.RETRY, None, "INTERNAL_SERVER_ERROR")
    if status == 200 and not isinstance(body, Mapping):  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, None, "unreadable answer (HTTP 200, not a JSON object)")
    return Verdict.ok()


def _error_codes(body: Any) -> set[str]:
    if not isinstance(body, Mapping):
        return set()
    return {e.code for e in _read_errors(body.get("errors")) if e.code}


def read_shop(response: GraphQLResponse) -> ShopInfo:
    """Read the probe's shop (and location) or raise `ChannelProtocolError`."""
    shop = response.payload("shop")
    if shop is None or not isinstance(shop.get("myshopifyDomain"), str):
        raise ChannelProtocolError("Shopify's answer lacks shop.myshopifyDomain", channel=CHANNEL)
    location = response.payload("location")
    return ShopInfo(
        name=str(shop.get("name", "")),
        domain=str(shop["myshopifyDomain"]),
        location_id=str(location["id"]) if location and location.get("id") else None,
        location_active=bool(location.get("isActive")) if location else None,
    )


def read_definitions(response: GraphQLResponse) -> dict[str, DefinitionInfo | None]:
    """``{"PRODUCT": info or None, "COLLECTION": info or None}``."""
    out: dict[str, DefinitionInfo | None] = {}
    for alias, owner in (("product", "PRODUCT"), ("collection", "COLLECTION")):
        conn = response.payload(alias)
        nodes = conn.get("nodes") if conn else None
        if not isinstance(nodes, list):
            raise ChannelProtocolError(
                f"Shopify's answer lacks {alias} metafield definitions", channel=CHANNEL
            )
        if not nodes:
            out[owner] = None
            continue
        node = nodes[0]
        caps = node.get("capabilities") or {}
        unique = bool((caps.get("uniqueValues") or {}).get("enabled"))
        type_name = (node.get("type") or {}).get("name")
        out[owner] = DefinitionInfo(str(node["id"]), type_name, unique or type_name == "id")
    return out


def read_user_errors(payload: Mapping[str, Any] | None) -> tuple[UserError, ...]:
    """The ``userErrors`` of a mutation payload."""
    if payload is None:
        return ()
    errors = payload.get("userErrors") or []
    return tuple(_structure(e, UserError, "user error") for e in errors)


def read_product(value: Any) -> ProductNode | None:
    """A product object (``productSet.product``, ``productByIdentifier``, ``product``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), str):
        raise ChannelProtocolError("Shopify returned a product without an id", channel=CHANNEL)
    conn = value.get("variants") or {}
    variants = tuple(_structure(v, VariantNode, "variant") for v in (conn.get("nodes") or ()))
    page = _structure(conn.get("pageInfo") or {}, PageInfo, "page info")
    return ProductNode(
        id=value["id"],
        handle=value.get("handle"),
        status=value.get("status"),
        variants=variants,
        page=page,
    )


def read_product_set(response: GraphQLResponse) -> tuple[ProductNode | None, tuple[UserError, ...]]:
    """``(product or None, user errors)`` of ``productSet``."""
    payload = response.payload("productSet")
    return read_product(payload.get("product") if payload else None), read_user_errors(payload)


def read_collection(value: Any) -> CollectionNode | None:
    """A collection object, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), str):
        raise ChannelProtocolError("Shopify returned a collection without an id", channel=CHANNEL)
    return CollectionNode(value["id"], value.get("handle"))


def read_translatable(response: GraphQLResponse) -> tuple[TranslatableContent, ...] | None:
    """The translatable content of a resource (``None`` when the resource does not exist)."""
    resource = response.payload("translatableResource")
    if resource is None:
        return None
    return tuple(
        _structure(c, TranslatableContent, "translatable content")
        for c in resource.get("translatableContent") or ()
    )


def read_token(response: httpx.Response) -> AccessToken:
    """
    Read the client-credentials answer.

    Raises:
        ChannelProtocolError: no ``access_token`` in a 200 answer.
    """
    body = _json(response)
    token = body.get("access_token") if isinstance(body, Mapping) else None
    if not isinstance(token, str) or not token:
        raise ChannelProtocolError("Shopify's token answer has no access_token", channel=CHANNEL)
    expires = _number(body.get("expires_in")) if isinstance(body, Mapping) else None
    scope = body.get("scope") if isinstance(body, Mapping) else None
    return AccessToken(Secret(token), expires, scope if isinstance(scope, str) else None)


def token_error(response: httpx.Response) -> str:
    """A short, secret-free reason from a failed token answer (``invalid_client``...)."""
    body = _json(response)
    if isinstance(body, Mapping):
        code = body.get("error")
        if isinstance(code, str) and re.fullmatch(r"[a-z_]{1,64}", code):
            return code
    return f"HTTP {response.status_code}"


def is_not_found(errors: Sequence[UserError]) -> bool:
    """
    Whether *errors* say the addressed resource does not exist (a stale stored id).

    Typed codes decide where there are some; plain ``UserError`` messages count only when they
    are about the id or identifier itself, not about something the input refers to.
    """
    for e in errors:
        if e.code in {"NOT_FOUND", "PRODUCT_DOES_NOT_EXIST"}:
            return True
        parts = list(e.field or ())
        about_id = not parts or parts[0] in {"id", "identifier"} or parts == ["input", "id"]
        text = e.message.lower()
        if about_id and ("does not exist" in text or "not found" in text):
            return True
    return False


def is_stale_variant(errors: Sequence[UserError]) -> bool:
    """Whether *errors* say a variant id sent in ``productSet`` is unknown."""
    return any(e.code == "PRODUCT_VARIANT_DOES_NOT_EXIST" for e in errors)
