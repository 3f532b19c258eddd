"""
The Shopify channel: a thin shell around the sans-IO core.

Rule 1: every request goes through the shared `HttpTransport` (retries for 5xx, timeouts and
connection errors; throttles wait as the cost model says) and through the store's cost bucket,
which follows ``extensions.cost.throttleStatus`` of every response.

Rule 2: an upsert never creates a second product or collection. Products are ``productSet`` by
their stored GID, else by the custom-id metafield holding the PIM ref (or the handle when the
channel is configured without custom ids); collections are looked up the same way before one is
created. A retry after a crash therefore finds what the first attempt made.

Rule 3: item-level failures are `Outcome` values (``CHANNEL`` for user errors, ``TRANSPORT``
after retries); only `ChannelAuthError` escapes `ShopifyChannel.push`.

Rule 4: several operations are in flight at once (threads inside `push`), all drawing on the
same bucket, so the shop's restore rate is used without being exceeded.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import httpx
from attrs import field, frozen

from ..._clock import Clock, SystemClock
from ..._errors import (
    ChannelAuthError,
    ChannelError,
    ChannelProtocolError,
    ChannelUnavailableError,
    InvalidArgumentError,
)
from ..._models import (
    ConnectorParams,
    Endpoint,
    ErrorKind,
    Item,
    ItemAction,
    ItemError,
    ItemType,
    Mode,
)
from ..._secrets import Secret, get_logger
from ...typing import Capabilities, ConnectionInfo, Operation, Outcome, Payload, RenderContext
from .._transport import HttpTransport, RetryPolicy, TokenBucket, Verdict
from . import _render, _sansio, _validate
from ._auth import TokenProvider
from ._sansio import CustomId, GraphQLRequest, GraphQLResponse, ProductNode


__all__ = ["ShopifyChannel", "ShopifyMetrics", "ShopifyStore"]

_log = get_logger("catalogsync.channels.shopify")

T = TypeVar("T")

_DOMAIN_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_REMOVALS: Final = frozenset({ItemAction.DELETE, ItemAction.ARCHIVE})
#: The memo key of the variant Shopify gives a product that has no variants of its own.
DEFAULT_VARIANT: Final = "#default"
#: Starting bucket before the first response says better (Standard plan restore rate).
_INITIAL_RATE: Final = 100.0
_INITIAL_BURST: Final = 1000.0


def _domain(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(
            "ShopifyStore.domain must be a non-empty str", field="ShopifyStore.domain"
        )
    domain = value.strip().lower().removeprefix("https://").rstrip("/")
    if "." not in domain:
        domain = f"{domain}.myshopify.com"
    if not _DOMAIN_RE.match(domain):
        raise InvalidArgumentError(
            f"ShopifyStore.domain must be the store's permanent *.myshopify.com domain (or its "
            f"subdomain alone), got {value!r}",
            field="ShopifyStore.domain",
        )
    return domain


def _provider(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, TokenProvider):
        raise InvalidArgumentError(
            "ShopifyStore.token must be a token provider (StaticToken, ClientCredentials...)",
            field="ShopifyStore.token",
        )


@frozen
class ShopifyStore:
    """
    One Shopify store the channel writes to: its domain, how to get a token, where stock lives.

    Example:
        >>> from catalogsync import Secret
        >>> from catalogsync.channels.shopify import StaticToken
        >>> store = ShopifyStore("acme-eu", StaticToken(Secret("shpat_not_a_real_token")),
        ...                      location_id="gid://shopify/Location/1")
        >>> store.domain, store.url
        ('acme-eu.myshopify.com', 'https://acme-eu.myshopify.com')

    Attributes:
        domain: The permanent ``*.myshopify.com`` domain (the subdomain alone is accepted).
        token: Where access tokens come from (`StaticToken`, `ClientCredentials`).
        location_id: The location GID stock is overwritten at (needed for ``overwrite_stock``).
        base_url: Where requests go, when not ``https://{domain}`` (an emulator, a proxy).

    .. versionadded:: 0.1.0
    """

    domain: str = field(converter=_domain)
    token: TokenProvider = field(validator=_provider)
    location_id: str | None = field(default=None, kw_only=True)
    base_url: str | None = field(default=None, kw_only=True)

    @property
    def url(self) -> str:
        """The base URL requests go to."""
        return (self.base_url or f"https://{self.domain}").rstrip("/")


@frozen
class ShopifyMetrics:
    """
    What the channel spent so far: requests, throttles and cost points.

    Attributes:
        requests: HTTP requests sent (retries included).
        retries: Retries after 5xx, transport errors or throttles.
        throttled: Throttled answers (HTTP 200 + ``THROTTLED`` or HTTP 429).
        requested_cost: Sum of ``requestedQueryCost``.
        actual_cost: Sum of ``actualQueryCost`` (what the bucket was really charged).
        seconds: Time spent inside `ShopifyChannel.push` (on the channel's clock).

    .. versionadded:: 0.1.0
    """

    requests: int
    retries: int
    throttled: int
    requested_cost: float
    actual_cost: float
    seconds: float

    @property
    def cost_rate(self) -> float:
        """Cost points per second achieved while pushing (0 before any push)."""
        return self.actual_cost / self.seconds if self.seconds > 0 else 0.0


# Passed as keywords: Capabilities' ``converter=frozenset`` has a generic signature mypy cannot
# solve for literal arguments (typing.py is a shared file).
_CAPABILITIES: Final[dict[str, Any]] = {
    "reads": frozenset(
        {(ItemType.PRODUCT, ItemType.VARIANT), (ItemType.PRODUCT, ItemType.CATEGORY)}
    ),
    "carried": {ItemType.VARIANT: ItemType.PRODUCT},
    # A product's productSet lists its collections' GIDs: when a category gets its GID, the
    # products that name it must be rendered again (or they stay out of the collection).
    "reads_ids": frozenset({(ItemType.PRODUCT, ItemType.CATEGORY)}),
    "removals": frozenset({ItemAction.DELETE, ItemAction.ARCHIVE}),
}


class _Session:
    """Per-store state: the cost bucket, what the store told us, the definitions check."""

    def __init__(self, store: ShopifyStore, endpoint: Endpoint, clock: Clock) -> None:
        self.store = store
        self.endpoint = endpoint
        self.bucket = TokenBucket(rate=_INITIAL_RATE, burst=_INITIAL_BURST, clock=clock)
        self.lock = threading.Lock()
        self.inflight = 0.0
        self.served_version: str | None = None
        self.deprecations: set[str] = set()
        self.definitions_ok = False
        self.definitions_lock = threading.Lock()

    def done(self) -> bool:
        """Whether the custom-id definitions were checked."""
        return self.definitions_ok


class ShopifyChannel:
    """
    The Shopify Admin GraphQL channel: categories as manual collections, products with all their
    variants through ``productSet``, stock through ``inventorySetQuantities``, translations
    through ``translationsRegister``.

    Example:
        >>> import httpx
        >>> from catalogsync import Secret
        >>> from catalogsync.channels.shopify import StaticToken
        >>> store = ShopifyStore("acme", StaticToken(Secret("shpat_not_a_real_token")))
        >>> channel = ShopifyChannel(store, client=httpx.Client())
        >>> channel.name, channel.api_version
        ('shopify', '2026-10')

    Args:
        store: The production store.
        client: The injected `httpx.Client` (thread-safe; shared by the worker threads).
        test_store: A development store for ``mode=TEST`` (rule R11); same API, outcomes are
            flagged ``Endpoint.TEST``.
        api_version: The pinned Admin API version (``YYYY-MM``, from 2026-01).
        custom_id: The unique metafield holding the PIM ref (upsert key); ``None`` identifies
            products and collections by handle instead.
        ensure_definitions: Create the custom-id metafield definitions on the first push when
            they are missing.
        concurrency: Operations in flight at once within one push.
        retry: The transport's retry policy.
        clock: Time for pacing, backoff and token expiry.
        rng: Randomness for jitter and idempotency keys.

    .. versionadded:: 0.1.0
    """

    name = "shopify"
    capabilities = Capabilities(**_CAPABILITIES)

    def __init__(
        self,
        store: ShopifyStore,
        *,
        client: httpx.Client,
        test_store: ShopifyStore | None = None,
        api_version: str = _sansio.DEFAULT_API_VERSION,
        custom_id: CustomId | None = CustomId(),  # noqa: B008 - a frozen value
        ensure_definitions: bool = True,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(store, ShopifyStore):
            raise InvalidArgumentError("store must be a ShopifyStore", field="store")
        if test_store is not None and not isinstance(test_store, ShopifyStore):
            raise InvalidArgumentError("test_store must be a ShopifyStore", field="test_store")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError("concurrency must be an int >= 1", field="concurrency")
        self.api_version = _sansio.check_api_version(api_version)
        self.custom_id = custom_id
        self.ensure_definitions = ensure_definitions
        self.concurrency = concurrency
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - idempotency keys need uniqueness only
        self._rng_lock = threading.Lock()
        self.transport = HttpTransport(
            client, channel=self.name, retry=retry, clock=self.clock, rng=self._rng
        )
        self._sessions = {Mode.PRODUCTION: _Session(store, Endpoint.PRODUCTION, self.clock)}
        if test_store is not None:
            self._sessions[Mode.TEST] = _Session(test_store, Endpoint.TEST, self.clock)
        self._render_options = _render.RenderOptions(
            custom_id=custom_id,
            locations={
                Mode.PRODUCTION: store.location_id,
                Mode.TEST: test_store.location_id if test_store else None,
            },
        )
        self._stats_lock = threading.Lock()
        self._requested = 0.0
        self._actual = 0.0
        self._seconds = 0.0

    def __repr__(self) -> str:
        stores = ", ".join(f"{m.value}={s.store.domain}" for m, s in self._sessions.items())
        return f"ShopifyChannel({stores}, api_version={self.api_version!r})"

    # -- observability ------------------------------------------------------------------------

    @property
    def metrics(self) -> ShopifyMetrics:
        """Requests, throttles and cost points spent so far."""
        stats = self.transport.stats
        with self._stats_lock:
            return ShopifyMetrics(
                requests=stats["requests"],
                retries=stats["retries"],
                throttled=stats["throttled"],
                requested_cost=self._requested,
                actual_cost=self._actual,
                seconds=self._seconds,
            )

    def served_version(self, mode: Mode = Mode.PRODUCTION) -> str | None:
        """The API version the store last said it served, if it differed from the pinned one."""
        return self._session(mode).served_version

    # -- Channel protocol ---------------------------------------------------------------------

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        """Render *item* (see `catalogsync.channels.shopify` for the payload shapes)."""
        return _render.render(item, ctx, self._render_options)

    def validate(self, item: Item, payload: Payload, ctx: RenderContext) -> Sequence[ItemError]:
        """Every local problem of *payload* at once (rule R13)."""
        del ctx
        return _validate.validate(item, payload)

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        """
        Probe the store with a one-point ``shop`` query; compare the served API version.

        Raises:
            ChannelAuthError: the token was rejected.
            ChannelError: no store for the mode, the location is unknown, or the store is
                unreachable or answered garbage.
        """
        session = self._session(params.mode)
        store = session.store
        if params.overwrite_stock and store.location_id is None:
            raise ChannelError(
                f"overwrite_stock needs a location: set location_id on the ShopifyStore for "
                f"{store.domain}",
                channel=self.name,
            )
        response = self._call(session, _sansio.shop_query(store.location_id))
        if response.data is None and response.errors:
            detail = "; ".join(e.message for e in response.errors)
            raise ChannelError(
                f"Shopify refused the probe of {store.domain}: {detail}", channel=self.name
            )
        shop = _sansio.read_shop(response)
        if store.location_id is not None and shop.location_id is None:
            raise ChannelError(
                f"location {store.location_id} does not exist in {shop.domain}", channel=self.name
            )
        served = response.api_version
        notes = []
        if served and served != self.api_version:
            notes.append(
                f"Shopify served API version {served} instead of the pinned {self.api_version} "
                "(the pinned version is no longer accessible, so Shopify fell forward)"
            )
        if response.deprecated_reason:
            notes.append(f"Shopify reports deprecated API use: {response.deprecated_reason}")
        details = {"shop": shop.domain, "name": shop.name}
        if shop.location_id:
            details["location"] = shop.location_id
        return ConnectionInfo(
            api_version=self.api_version,
            served_version=served,
            deprecation="; ".join(notes) or None,
            endpoint=session.endpoint,
            details=details,
        )

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """
        Send *operations* with several in flight; return an `Outcome` per operation and per
        carried operation, in order.

        Raises:
            ChannelAuthError: the store rejected the credentials (nothing else escapes).
        """
        session = self._session(params.mode)
        started = self.clock.monotonic()
        try:
            blocked = self._definitions(session, operations)
            jobs = [_Job(self, session, op, blocked) for op in operations]
            if self.concurrency == 1 or len(jobs) <= 1:
                results = [job.run() for job in jobs]
            else:
                with ThreadPoolExecutor(
                    max_workers=min(self.concurrency, len(jobs)),
                    thread_name_prefix="catalogsync-shopify",
                ) as pool:
                    results = list(pool.map(_Job.run, jobs))
        finally:
            with self._stats_lock:
                self._seconds += self.clock.monotonic() - started
        return [outcome for result in results for outcome in result]

    # -- plumbing -----------------------------------------------------------------------------

    def _session(self, mode: Mode) -> _Session:
        session = self._sessions.get(mode)
        if session is None:
            raise ChannelError(
                "mode=TEST sends to a Shopify development store: pass "
                "test_store=ShopifyStore(...) to ShopifyChannel",
                channel=self.name,
            )
        return session

    def idempotency_key(self) -> str:
        """A fresh key for one logical mutation (reused by the transport's retries)."""
        with self._rng_lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _call(self, session: _Session, request: GraphQLRequest) -> GraphQLResponse:
        """Send one GraphQL request through the bucket and the transport; read the answer."""
        provider = session.store.token
        token = provider.access_token(self.transport, session.store.url)
        try:
            response = self._send(session, request, token)
        except ChannelAuthError as exc:
            if not provider.refreshable:
                raise self._auth_error(session, exc) from None
            # A refreshable token may have been revoked or expired early: fetch one more.
            provider.invalidate(token)
            token = provider.access_token(self.transport, session.store.url)
            try:
                response = self._send(session, request, token)
            except ChannelAuthError as again:
                raise self._auth_error(session, again) from None
        result = _sansio.read_response(response)
        self._observe(session, result)
        return result

    def _auth_error(self, session: _Session, exc: ChannelAuthError) -> ChannelAuthError:
        return ChannelAuthError(
            f"Shopify rejected the access token for {session.store.domain} (HTTP 401): "
            "check the app's token or client credentials and that the app is installed",
            channel=self.name,
            status_code=exc.status_code,
            request_id=exc.request_id,
        )

    def _send(self, session: _Session, request: GraphQLRequest, token: Secret) -> httpx.Response:
        held = [0.0]  # cost points this request holds in the bucket's in-flight tally

        def build() -> httpx.Request:
            return _sansio.to_http(
                request, base_url=session.store.url, api_version=self.api_version, token=token
            )

        def before() -> None:
            self._release(session, held)
            session.bucket.acquire(request.cost)
            with session.lock:
                session.inflight += request.cost
            held[0] = request.cost

        def classify(response: httpx.Response) -> Verdict:
            self._release(session, held)
            cost = _sansio.read_cost(_safe_json(response).get("extensions"))
            if cost is not None:
                with session.lock:
                    others = session.inflight
                # The store's view, minus what our other requests in flight will take.
                session.bucket.update(
                    rate=cost.restore_rate, burst=cost.maximum, available=cost.available - others
                )
            return _sansio.classify(response)

        try:
            return self.transport.send(build, classify=classify, before=before)
        finally:
            self._release(session, held)

    @staticmethod
    def _release(session: _Session, held: list[float]) -> None:
        if held[0]:
            with session.lock:
                session.inflight -= held[0]
            held[0] = 0.0

    def _observe(self, session: _Session, result: GraphQLResponse) -> None:
        if result.cost is not None:
            with self._stats_lock:
                self._requested += result.cost.requested or 0.0
                self._actual += result.cost.actual or 0.0
        served = result.api_version
        if served and served not in {self.api_version, session.served_version}:
            session.served_version = served
            _log.warning(
                "shopify %s served API version %s instead of the pinned %s",
                session.store.domain,
                served,
                self.api_version,
            )
        reason = result.deprecated_reason
        if reason and reason not in session.deprecations:
            session.deprecations.add(reason)
            _log.warning("shopify %s reports deprecated API use: %s", session.store.domain, reason)

    def _definitions(
        self, session: _Session, operations: Sequence[Operation]
    ) -> Mapping[ItemType, tuple[ItemError, ...]]:
        """Make sure the custom-id definitions exist; return errors blocking item types."""
        if self.custom_id is None or not self.ensure_definitions or session.definitions_ok:
            return {}
        if not any(
            op.action not in _REMOVALS and op.item_type is not ItemType.VARIANT for op in operations
        ):
            return {}
        with session.definitions_lock:
            if session.done():  # another thread may have finished meanwhile
                return {}
            try:
                return self._ensure_definitions(session)
            except (ChannelUnavailableError, ChannelProtocolError) as exc:
                error = (ItemError(ErrorKind.TRANSPORT, str(exc), code="DEFINITIONS"),)
                return {ItemType.PRODUCT: error, ItemType.CATEGORY: error}

    def _ensure_definitions(self, session: _Session) -> dict[ItemType, tuple[ItemError, ...]]:
        assert self.custom_id is not None  # noqa: S101 - checked by the caller
        custom = self.custom_id
        found = _sansio.read_definitions(self._call(session, _sansio.definitions_query(custom)))
        blocked: dict[ItemType, tuple[ItemError, ...]] = {}
        for owner, item_type in (("PRODUCT", ItemType.PRODUCT), ("COLLECTION", ItemType.CATEGORY)):
            info = found[owner]
            where = f"{custom.namespace}.{custom.key} on {owner}"
            if info is not None:
                if not info.unique:
                    blocked[item_type] = (
                        ItemError(
                            ErrorKind.CHANNEL,
                            f"the metafield definition {where} exists without unique values; "
                            "catalogsync needs a unique (type id) custom id to upsert safely",
                            code="CUSTOM_ID_NOT_UNIQUE",
                        ),
                    )
                continue
            response = self._call(session, _sansio.definition_create(custom, owner))
            errors = response.failure() or tuple(
                e.item_error()
                for e in _sansio.read_user_errors(response.payload("metafieldDefinitionCreate"))
                if e.code != "TAKEN"
            )
            if errors:
                blocked[item_type] = tuple(
                    ItemError(
                        ErrorKind.CHANNEL,
                        f"could not create the metafield definition {where}: {e.message}",
                        code=e.code,
                        field=e.field,
                    )
                    for e in errors
                )
        if not blocked:
            session.definitions_ok = True
        return blocked


def _safe_json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _combo(options: Iterable[Any]) -> frozenset[tuple[str, str]]:
    pairs = set()
    for option in options:
        if isinstance(option, Mapping):
            pairs.add((str(option.get("optionName")), str(option.get("name"))))
        else:
            pairs.add((str(option[0]), str(option[1])))
    return frozenset(pairs)


def _variant_memo(
    memo: Mapping[str, str],
) -> tuple[dict[str, tuple[str, str | None]], dict[str, str]]:
    """
    Read ``v:<ref> = "<variant GID> <inventory item GID> <stock sent>"`` entries.

    Returns the known ids by ref, and the stock last sent by ref (as text).
    """
    known: dict[str, tuple[str, str | None]] = {}
    stock: dict[str, str] = {}
    for key, value in memo.items():
        if key.startswith("v:") and value:
            parts = [*value.split(" "), "", ""]
            known[key[2:]] = (parts[0], parts[1] if parts[1] not in {"", "-"} else None)
            if parts[2]:
                stock[key[2:]] = parts[2]
    return known, stock


@frozen
class _Sent:
    """What one productSet attempt sent and learned."""

    response: GraphQLResponse
    node: ProductNode | None
    errors: tuple[_sansio.UserError, ...]
    stock: tuple[tuple[str, int], ...]


class _Job:
    """One operation (and its carried ones) worked through to outcomes."""

    def __init__(
        self,
        channel: ShopifyChannel,
        session: _Session,
        op: Operation,
        blocked: Mapping[ItemType, tuple[ItemError, ...]],
    ) -> None:
        self.channel = channel
        self.session = session
        self.op = op
        self.blocked = blocked
        self.domain = session.store.domain
        self.endpoint = session.endpoint
        self.request_id: str | None = None

    # -- helpers --------------------------------------------------------------------------------

    def call(self, request: GraphQLRequest) -> GraphQLResponse:
        """Send *request* for this job, remembering the latest request id."""
        response = self.channel._call(self.session, request)  # noqa: SLF001 - the job is the channel's
        if response.request_id:
            self.request_id = response.request_id
        return response

    def outcome(self, op: Operation, *, ok: bool, **kwargs: Any) -> Outcome:
        """An outcome for *op* on this job's endpoint, with the latest request id by default."""
        kwargs.setdefault("request_id", self.request_id)
        return Outcome(op.item_type, op.ref, ok, endpoint=self.endpoint, **kwargs)

    def failed(
        self,
        errors: Sequence[ItemError],
        *,
        carried_errors: Mapping[str, Sequence[ItemError]] | None = None,
    ) -> list[Outcome]:
        """The operation failed: every carried operation failed with it (own errors first)."""
        op = self.op
        out = [
            self.outcome(
                op, ok=False, action=op.action, channel_id=op.channel_id, errors=tuple(errors)
            )
        ]
        first = errors[0] if errors else None
        for c in op.carried:
            own = tuple((carried_errors or {}).get(c.ref, ()))
            if not own:
                note = f" ({first.message})" if first else ""
                own = (
                    ItemError(
                        first.kind if first else ErrorKind.CHANNEL,
                        f"not delivered: product {op.ref} was not accepted{note}",
                        code="PRODUCT_FAILED",
                    ),
                )
            out.append(
                self.outcome(c, ok=False, action=c.action, channel_id=c.channel_id, errors=own)
            )
        return out

    def guard(self, fn: Callable[[], T]) -> T | ItemError:
        """Run a step; turn transport and protocol failures into an error value."""
        try:
            return fn()
        except ChannelUnavailableError as exc:
            return ItemError(ErrorKind.TRANSPORT, str(exc), code=type(exc).__name__)
        except ChannelProtocolError as exc:
            return ItemError(ErrorKind.TRANSPORT, str(exc), code="PROTOCOL")

    def identifier(self, handle: Any) -> dict[str, Any] | None:
        """The upsert key: the custom id, else the handle (``None`` when there is neither)."""
        custom = self.channel.custom_id
        if custom is not None:
            return {"customId": custom.as_input(self.op.ref)}
        if isinstance(handle, str) and handle:
            return {"handle": handle}
        return None

    def first(self, count: int) -> int:
        """The variant page size for *count* variants within the bucket."""
        return _sansio.page_size(max(count, 1), max_cost=self.session.bucket.burst)

    # -- dispatch -------------------------------------------------------------------------------

    def run(self) -> list[Outcome]:
        """Work the operation to outcomes; transport trouble fails it, never raises."""
        result = self.guard(self._dispatch)
        if isinstance(result, ItemError):
            return self.failed([result])
        return result

    def _dispatch(self) -> list[Outcome]:
        op = self.op
        if op.item_type is ItemType.VARIANT:
            return [
                self.outcome(
                    op,
                    ok=False,
                    action=op.action,
                    errors=(
                        ItemError(
                            ErrorKind.CHANNEL,
                            "Shopify variants are delivered inside their product's operation",
                            code="NOT_CARRIED",
                        ),
                    ),
                )
            ]
        if op.action not in _REMOVALS and op.item_type in self.blocked:
            return self.failed(self.blocked[op.item_type])
        if op.item_type is ItemType.CATEGORY:
            return self._category_remove() if op.action in _REMOVALS else self._category_upsert()
        return self._product_remove() if op.action in _REMOVALS else _ProductUpsert(self).run()

    # -- lookups --------------------------------------------------------------------------------

    def lookup_product(self, identifier: Mapping[str, Any], count: int) -> ProductNode | None:
        """Find a product by *identifier* with all its variants."""
        first = self.first(count)
        response = self.call(_sansio.product_lookup(identifier, first=first))
        if response.errors and response.data is None:
            detail = "; ".join(e.message for e in response.errors)
            raise ChannelProtocolError(
                f"Shopify refused the product lookup: {detail}", channel="shopify"
            )
        node = _sansio.read_product((response.data or {}).get("productByIdentifier"))
        return self.complete(node, first) if node else None

    def complete(self, node: ProductNode, first: int) -> ProductNode:
        """Follow the variant pages of *node* until every variant is known."""
        variants = list(node.variants)
        page = node.page
        while page.has_next_page and page.end_cursor:
            response = self.call(_sansio.variants_page(node.id, first=first, after=page.end_cursor))
            more = _sansio.read_product((response.data or {}).get("product"))
            if more is None:
                break
            variants.extend(more.variants)
            page = more.page
        return ProductNode(node.id, node.handle, node.status, tuple(variants), page)

    def lookup_collection(self, handle: Any) -> str | None:
        """Find a collection's GID by the upsert key."""
        identifier = self.identifier(handle)
        if identifier is None:
            return None
        response = self.call(_sansio.collection_lookup(identifier))
        if response.errors and response.data is None:
            detail = "; ".join(e.message for e in response.errors)
            raise ChannelProtocolError(
                f"Shopify refused the collection lookup: {detail}", channel="shopify"
            )
        node = _sansio.read_collection((response.data or {}).get("collectionByIdentifier"))
        return node.id if node else None

    # -- translations ---------------------------------------------------------------------------

    def translate(
        self,
        resource: str,
        payload: Mapping[str, Any],
        sources: Mapping[str, Any],
        memo: dict[str, str],
        *,
        existed: bool,
    ) -> tuple[list[ItemError], list[ItemError]]:
        """
        Register the payload's translations unless they and their source texts are unchanged
        since the last success (remembered in *memo*); return ``(errors, warnings)``.
        """
        translations = payload.get("translations") or {}
        if not translations:
            return [], []
        digest = _digest([translations, sources])
        if existed and self.op.memo.get("translations") == digest:
            memo["translations"] = digest
            return [], []
        result = self.guard(lambda: self._register(resource, translations))
        if isinstance(result, ItemError):
            return [result], []
        errors, warnings = result
        if not errors:
            memo["translations"] = digest
        return errors, warnings

    def _register(
        self, resource: str, translations: Mapping[str, Mapping[str, str]]
    ) -> tuple[list[ItemError], list[ItemError]]:
        content = _sansio.read_translatable(self.call(_sansio.translatable_query(resource)))
        if content is None:
            missing = ItemError(
                ErrorKind.CHANNEL,
                f"{resource} is not translatable",
                code="RESOURCE_NOT_FOUND",
                field="translations",
            )
            return [missing], []
        digests = {c.key: c.digest for c in content if c.digest}
        entries: list[dict[str, str]] = []
        paths: list[str] = []
        warnings: list[ItemError] = []
        for locale, values in translations.items():
            for key, value in values.items():
                path = f"translations.{locale}.{key}"
                if key not in digests:
                    warnings.append(
                        ItemError(
                            ErrorKind.CHANNEL,
                            f"Shopify has no default-language {key} to translate; "
                            f"the {locale} text was not sent",
                            code="NOTHING_TO_TRANSLATE",
                            field=path,
                        )
                    )
                    continue
                entries.append(
                    {
                        "key": key,
                        "locale": locale,
                        "value": value,
                        "translatableContentDigest": str(digests[key]),
                    }
                )
                paths.append(path)
        errors: list[ItemError] = []
        for start in range(0, len(entries), _sansio.MAX_PAGE):
            chunk = entries[start : start + _sansio.MAX_PAGE]
            response = self.call(_sansio.translations_register(resource, chunk))
            if response.failure():
                errors.extend(response.failure())
                continue
            for e in _sansio.read_user_errors(response.payload("translationsRegister")):
                index = _index_after(e.field, "translations")
                inside = index is not None and start + index < len(paths)
                path = paths[start + index] if inside and index is not None else "translations"
                errors.append(
                    ItemError(ErrorKind.CHANNEL, e.message, code=e.code or "USER_ERROR", field=path)
                )
        return errors, warnings

    # -- products: removal ----------------------------------------------------------------------

    def _product_remove(self) -> list[Outcome]:
        op = self.op
        gid = op.channel_id
        if gid is None:
            identifier = self.identifier(op.memo.get("handle"))
            node = self.lookup_product(identifier, 1) if identifier else None
            gid = node.id if node else None
        if gid is None:
            return self._removed(None, "not found in Shopify: nothing to remove")
        if op.action is ItemAction.DELETE:
            response, root = self.call(_sansio.product_delete(gid)), "productDelete"
        else:
            response, root = self.call(_sansio.product_archive(gid)), "productUpdate"
        if response.failure():
            return self.failed(response.failure())
        errors = _sansio.read_user_errors(response.payload(root))
        if errors and not _sansio.is_not_found(errors):
            return self.failed([e.item_error() for e in errors])
        note = "not found in Shopify: nothing to remove" if errors else None
        return self._removed(None if op.action is ItemAction.DELETE else gid, note)

    def _removed(self, gid: str | None, message: str | None) -> list[Outcome]:
        op = self.op
        url = _sansio.admin_url(self.domain, gid) if gid else None
        out = [
            self.outcome(
                op, ok=True, action=op.action, channel_id=gid, channel_url=url, message=message
            )
        ]
        keep = op.action is ItemAction.ARCHIVE and gid is not None
        out.extend(
            self.outcome(
                c,
                ok=True,
                action=op.action,
                channel_id=c.channel_id if keep else None,
                message=f"with product {op.ref}",
            )
            for c in op.carried
        )
        return out

    # -- categories -----------------------------------------------------------------------------

    def _category_upsert(self) -> list[Outcome]:
        op = self.op
        payload = op.payload or {}
        data = dict(payload.get("input") or {})
        gid = op.channel_id or self.lookup_collection(data.get("handle"))
        existed = gid is not None
        written: _Written | None = None
        if gid is not None:
            written = self._collection_write(gid, data)
            if written.stale and op.channel_id:  # the stored id went stale: find it by key
                gid = self.lookup_collection(data.get("handle"))
                existed = gid is not None
                written = self._collection_write(gid, data) if gid else None
        if written is None:
            written = self._collection_write(None, data)
        if written.errors:
            return self.failed(written.errors)
        collection = written.collection
        if collection is None:
            error = ItemError(
                ErrorKind.CHANNEL, "Shopify returned no collection", code="NO_COLLECTION"
            )
            return self.failed([error])
        memo = {"handle": collection.handle or ""}
        sources = {k: data.get(k) for k in ("title", "descriptionHtml", "seo")}
        problems, warnings = self.translate(collection.id, payload, sources, memo, existed=existed)
        return [
            self.outcome(
                op,
                ok=not problems,
                action=ItemAction.UPDATE if existed else ItemAction.CREATE,
                channel_id=collection.id,
                channel_url=_sansio.collection_url(self.domain, collection.id),
                request_id=written.request_id,
                errors=tuple(problems),
                warnings=tuple(warnings),
                memo=memo,
            )
        ]

    def _collection_write(self, gid: str | None, data: Mapping[str, Any]) -> _Written:
        """Update collection *gid*, or create one when *gid* is ``None``."""
        version = self.channel.api_version
        if gid is None:
            request, root = _sansio.collection_create(data, api_version=version), "collectionCreate"
        else:
            request = _sansio.collection_update(gid, data, api_version=version)
            root = "collectionUpdate"
        response = self.call(request)
        if response.failure():
            return _Written(None, tuple(response.failure()), response.request_id)
        payload = response.payload(root)
        errors = _sansio.read_user_errors(payload)
        if errors:
            stale = gid is not None and _sansio.is_not_found(errors)
            return _Written(None, tuple(e.item_error() for e in errors), response.request_id, stale)
        node = _sansio.read_collection((payload or {}).get("collection"))
        return _Written(node, (), response.request_id)

    def _category_remove(self) -> list[Outcome]:
        op = self.op
        gid = op.channel_id or self.lookup_collection(op.memo.get("handle"))
        note = (
            "Shopify collections cannot be archived: the collection was deleted"
            if op.action is ItemAction.ARCHIVE
            else None
        )
        if gid is None:
            return [
                self.outcome(
                    op,
                    ok=True,
                    action=ItemAction.DELETE,
                    message="not found in Shopify: nothing to remove",
                )
            ]
        response = self.call(_sansio.collection_delete(gid))
        if response.failure():
            return self.failed(response.failure())
        errors = _sansio.read_user_errors(response.payload("collectionDelete"))
        if errors and not _sansio.is_not_found(errors):
            return self.failed([e.item_error() for e in errors])
        return [self.outcome(op, ok=True, action=ItemAction.DELETE, message=note)]


@frozen
class _Written:
    """The result of one collection create or update."""

    collection: _sansio.CollectionNode | None
    errors: tuple[ItemError, ...]
    request_id: str | None
    stale: bool = False


def _index_after(path: Sequence[str] | None, name: str) -> int | None:
    """The list index that follows *name* in a user error's field path."""
    parts = list(path or ())
    if parts[:1] == ["input"]:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == name and parts[1].isdigit():
        return int(parts[1])
    return None


class _ProductUpsert:
    """
    A product's upsert, step by step.

    1. Learn what Shopify has: stored GIDs (product memo, carried operations), else a lookup by
       the upsert key (after a crash the product may exist unbeknown to us).
    2. ``productSet`` with every variant, known variant ids included; stock of new variants
       rides along, stock of known ones is taken out for step 3. A stale stored id is retried
       once by the upsert key.
    3. ``inventorySetQuantities`` for the changed variants Shopify already had.
    4. Translations, when they or their sources changed since the last success.
    5. Outcomes: the product, and each carried variant (matched by option values).
    """

    def __init__(self, job: _Job) -> None:
        self.job = job
        op = job.op
        payload = op.payload or {}
        self.payload = payload
        self.data = dict(payload.get("input") or {})
        refs = list(payload.get("variants") or [])
        self.fragments: list[Mapping[str, Any]] = list(self.data.get("variants") or [])
        self.keys = [
            refs[i] if i < len(refs) else DEFAULT_VARIANT for i in range(len(self.fragments))
        ]
        self.combos = {
            _combo(f.get("optionValues") or ()): key
            for f, key in zip(self.fragments, self.keys, strict=True)
        }
        self.changed = {c.ref for c in op.carried if c.action not in _REMOVALS} | {DEFAULT_VARIANT}
        self.known, self.sent_stock = _variant_memo(op.memo)
        #: Stock rendered per variant key (what step 3 overwrites and the memo remembers).
        self.stock_of = {
            key: int(q["quantity"])
            for fragment, key in zip(self.fragments, self.keys, strict=True)
            for q in (fragment.get("inventoryQuantities") or ())[:1]
            if isinstance(q.get("quantity"), int)
        }
        for c in op.carried:
            if c.channel_id and c.action not in _REMOVALS:
                self.known[c.ref] = (c.channel_id, c.memo.get("inventory_item"))

    def run(self) -> list[Outcome]:
        job = self.job
        product_gid = job.op.channel_id
        if product_gid is None:
            identifier = job.identifier(self.data.get("handle"))
            node = job.lookup_product(identifier, len(self.fragments)) if identifier else None
            if node is not None:
                product_gid = node.id
                self.known.update(self.match(node))
        existed = product_gid is not None
        before = dict(self.known)
        sent = self.send(product_gid)
        stale = _sansio.is_stale_variant(sent.errors) or (
            product_gid is not None and _sansio.is_not_found(sent.errors)
        )
        if sent.node is None and stale:
            _log.info(
                "shopify %s: stale ids for product %s; upserting by key", job.domain, job.op.ref
            )
            self.known.clear()
            before.clear()
            existed = False
            sent = self.send(None)
        if sent.node is None:
            return self.rejected(sent)
        node = job.complete(sent.node, job.first(len(self.fragments)))
        now = self.match(node)
        problems, by_variant = self.stock(sent.stock, now)
        memo: dict[str, str] = {"handle": node.handle or ""}
        sources = {k: self.data.get(k) for k in ("title", "descriptionHtml", "productType", "seo")}
        errors, warnings = job.translate(node.id, self.payload, sources, memo, existed=existed)
        problems.extend(errors)
        failed = set(by_variant)
        for key, (variant_gid, item_gid) in now.items():
            # A failed stock write is left unremembered, so it is sent again next time.
            quantity = None if key in failed else self.stock_of.get(key)
            memo[f"v:{key}"] = (
                f"{variant_gid} {item_gid or '-'} {'' if quantity is None else quantity}".strip()
            )
        head = job.outcome(
            job.op,
            ok=not problems,
            action=ItemAction.UPDATE if existed else ItemAction.CREATE,
            channel_id=node.id,
            channel_url=_sansio.admin_url(job.domain, node.id),
            request_id=sent.response.request_id,
            errors=tuple(problems),
            warnings=tuple(warnings),
            memo=memo,
        )
        return [head, *self.carried(node, now, before, by_variant, sent.response.request_id)]

    def send(self, product_gid: str | None) -> _Sent:
        """Send one ``productSet``: ids of known variants in, their stock out (for step 3)."""
        variants = []
        stock: list[tuple[str, int]] = []
        for fragment, key in zip(self.fragments, self.keys, strict=True):
            variant = dict(fragment)
            ids = self.known.get(key)
            if ids:
                variant["id"] = ids[0]
                quantities = variant.pop("inventoryQuantities", None)
                # Changed variants, and any whose stock differs from what we last sent (should a
                # caller not carry every changed variant).
                remembered = self.sent_stock.get(key)
                if quantities and (
                    key in self.changed or remembered != str(self.stock_of.get(key))
                ):
                    stock.extend((key, int(q["quantity"])) for q in quantities)
            variants.append(variant)
        job = self.job
        identifier = {"id": product_gid} if product_gid else job.identifier(self.data.get("handle"))
        request = _sansio.product_set(
            {**self.data, "variants": variants}, identifier, first=job.first(len(variants))
        )
        response = job.call(request)
        node, errors = _sansio.read_product_set(response)
        return _Sent(response, node, errors, tuple(stock))

    def match(self, node: ProductNode) -> dict[str, tuple[str, str | None]]:
        """Shopify's variants by PIM ref, matched by option values (unique per product)."""
        out: dict[str, tuple[str, str | None]] = {}
        for variant in node.variants:
            key = self.combos.get(_combo(variant.options))
            if key is not None:
                out[key] = (variant.id, variant.inventory_item_id)
        return out

    def rejected(self, sent: _Sent) -> list[Outcome]:
        """Fail the product and every carried variant: ``productSet`` applied nothing."""
        if sent.response.failure():
            return self.job.failed(sent.response.failure())
        by_ref: dict[str, list[ItemError]] = {}
        for e in sent.errors:
            index = e.variant_index()
            if index is not None and index < len(self.keys):
                by_ref.setdefault(self.keys[index], []).append(
                    e.item_error(relative_to_variant=True)
                )
        errors = [e.item_error() for e in sent.errors] or [
            ItemError(
                ErrorKind.CHANNEL, "Shopify returned no product and no error", code="NO_PRODUCT"
            )
        ]
        return self.job.failed(errors, carried_errors=by_ref)

    def stock(
        self, stock: Sequence[tuple[str, int]], now: Mapping[str, tuple[str, str | None]]
    ) -> tuple[list[ItemError], dict[str, list[ItemError]]]:
        """Overwrite stock of known, changed variants; errors for the product and per variant."""
        job = self.job
        mode = Mode.TEST if job.endpoint is Endpoint.TEST else Mode.PRODUCTION
        location = job.channel._render_options.locations.get(mode)  # noqa: SLF001
        updates = [(key, now[key][1], qty) for key, qty in stock if key in now and now[key][1]]
        problems: list[ItemError] = []
        by_variant: dict[str, list[ItemError]] = {}
        if not updates or location is None:
            return problems, by_variant
        result = job.guard(lambda: self.set_stock(updates, location))
        failures = (
            [(key, result) for key, _, _ in updates] if isinstance(result, ItemError) else result
        )
        for key, error in failures:
            by_variant.setdefault(key, []).append(error)
            index = self.keys.index(key) if key in self.keys else None
            field = (
                f"variants[{index}].{error.field}"
                if index is not None and error.field
                else error.field
            )
            problems.append(ItemError(error.kind, error.message, code=error.code, field=field))
        return problems, by_variant

    def set_stock(
        self, updates: Sequence[tuple[str, str | None, int]], location: str
    ) -> list[tuple[str, ItemError]]:
        """Send ``inventorySetQuantities`` in chunks of 250; return ``(key, error)`` failures."""
        job = self.job
        failures: list[tuple[str, ItemError]] = []
        for start in range(0, len(updates), _sansio.MAX_PAGE):
            chunk = updates[start : start + _sansio.MAX_PAGE]
            request = _sansio.inventory_set(
                [(str(item), location, qty) for _, item, qty in chunk],
                idempotency_key=job.channel.idempotency_key(),
            )
            response = job.call(request)
            if response.failure():
                failures.extend((key, e) for key, _, _ in chunk for e in response.failure())
                continue
            for e in _sansio.read_user_errors(response.payload("inventorySetQuantities")):
                error = ItemError(
                    ErrorKind.CHANNEL,
                    e.message,
                    code=e.code or "USER_ERROR",
                    field="inventoryQuantities",
                )
                index = _index_after(e.field, "quantities")
                inside = index is not None and index < len(chunk)
                targets = (
                    [chunk[index][0]] if inside and index is not None else [k for k, _, _ in chunk]
                )
                failures.extend((key, error) for key in targets)
        return failures

    def carried(
        self,
        node: ProductNode,
        now: Mapping[str, tuple[str, str | None]],
        before: Mapping[str, tuple[str, str | None]],
        by_variant: Mapping[str, Sequence[ItemError]],
        request_id: str | None,
    ) -> list[Outcome]:
        """An outcome for each carried variant operation."""
        job = self.job
        present = {v.id for v in node.variants}
        out = []
        for c in job.op.carried:
            if c.action in _REMOVALS:
                old = c.channel_id or before.get(c.ref, (None, None))[0]
                still = old is not None and old in present
                out.append(
                    job.outcome(
                        c,
                        ok=not still,
                        action=ItemAction.DELETE,
                        request_id=request_id,
                        message=None
                        if c.action is ItemAction.DELETE
                        else "Shopify variants cannot be archived: removed from the product",
                        errors=(
                            ItemError(
                                ErrorKind.CHANNEL,
                                "the variant is still on the product",
                                code="NOT_REMOVED",
                            ),
                        )
                        if still
                        else (),
                    )
                )
                continue
            ids = now.get(c.ref)
            if ids is None:
                missing = ItemError(
                    ErrorKind.CHANNEL,
                    f"the variant is not on product {job.op.ref} in Shopify's answer "
                    "(is it exportable, with options of its own?)",
                    code="VARIANT_MISSING",
                )
                out.append(
                    job.outcome(
                        c, ok=False, action=c.action, request_id=request_id, errors=(missing,)
                    )
                )
                continue
            own = tuple(by_variant.get(c.ref, ()))
            out.append(
                job.outcome(
                    c,
                    ok=not own,
                    action=ItemAction.UPDATE if c.ref in before else ItemAction.CREATE,
                    channel_id=ids[0],
                    channel_url=_sansio.admin_url(job.domain, node.id, ids[0]),
                    request_id=request_id,
                    errors=own,
                    memo={"inventory_item": ids[1]} if ids[1] else {},
                )
            )
        return out
