"""
The Amazon channel: a thin I/O shell over ``_sansio``, ``_render`` and ``_validate``.

Rule 1: one SKU is one listing and one request; several requests are in flight at once (threads
inside `AmazonChannel.push`) as far as the token buckets allow.

Rule 2: pacing is per ``(seller, operation)``: a `TokenBucket` per pair, started from the
documented defaults (the stricter of Amazon's two published tables) and following the
``x-amzn-RateLimit-Limit`` header. Validation previews have their own, slower bucket. A 429
(``QuotaExceeded``, no ``Retry-After``) empties the bucket and is retried with jittered backoff by
the shared `HttpTransport`.

Rule 3: every outcome that got an answer carries Amazon's ``x-amzn-RequestId`` (sellers quote it
to Seller Support). Failures after retries become ``TRANSPORT`` errors on the affected items only.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx

from ..._clock import Clock, SystemClock
from ..._errors import (
    ChannelAuthError,
    ChannelError,
    ChannelProtocolError,
    ChannelUnavailableError,
    InvalidArgumentError,
    InvalidItemError,
    RateLimitedError,
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
from ..._secrets import get_logger
from ...typing import Capabilities, ConnectionInfo, Operation, Outcome, Payload, RenderContext
from .._transport import HttpTransport, RetryPolicy, TokenBucket, Verdict, VerdictKind
from ._auth import LwaCredentials, TokenCache
from ._render import RenderSettings, render_item
from ._sansio import (
    API_VERSION,
    DELETE,
    GET,
    PATCH,
    PREVIEW,
    PUT,
    Marketplace,
    NoWrite,
    Submission,
    Target,
    WritePlan,
    classify,
    delete_request,
    get_request,
    host,
    is_token_rejection,
    issue_errors,
    marketplace,
    patch_request,
    plan_archive,
    plan_write,
    put_request,
    rate_limit,
    read_errors,
    read_submission,
    request_id,
)
from ._validate import SchemaValidator, check_payload


__all__ = ["AmazonChannel", "AmazonPacer"]

_log = get_logger("catalogsync.channels.amazon")

#: The SKU read by `AmazonChannel.check_connection` (a 404 proves access as well as a 200).
SENTINEL_SKU: Final = "catalogsync-connection-check"
#: The shortest pacing sleep (seconds): small enough to be exact, large enough to move a clock.
_MIN_WAIT: Final = 1e-6


class AmazonPacer:
    """
    Token buckets per ``(seller, operation)`` for the Listings Items API.

    The defaults are the stricter of Amazon's published tables: 5 requests per second with a
    burst of 5 for each operation, and 1 per second for ``VALIDATION_PREVIEW`` writes. The rate
    then follows the ``x-amzn-RateLimit-Limit`` header of each answer. Share one pacer between
    channels of the same seller (several workers in one process) so they split the quota.

    Args:
        clock: Refill and waits use it.
        limits: Overrides, ``{operation: (rate, burst)}``; the operation of a preview write is
            ``"putListingsItem:VALIDATION_PREVIEW"``.
        follow_headers: Adopt the rate Amazon reports in ``x-amzn-RateLimit-Limit``.

    Example:
        >>> from catalogsync.testing import ManualClock
        >>> pacer = AmazonPacer(clock=ManualClock())
        >>> pacer.bucket("A1SELLER", "putListingsItem")
        TokenBucket(rate=5.0, burst=5.0)

    .. versionadded:: 0.1.0
    """

    DEFAULTS: Final[Mapping[str, tuple[float, float]]] = {
        GET: (5.0, 5.0),
        PUT: (5.0, 5.0),
        PATCH: (5.0, 5.0),
        DELETE: (5.0, 5.0),
        f"{PUT}:{PREVIEW}": (1.0, 1.0),
        f"{PATCH}:{PREVIEW}": (1.0, 1.0),
    }

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        limits: Mapping[str, tuple[float, float]] | None = None,
        follow_headers: bool = True,
    ) -> None:
        self.clock = clock or SystemClock()
        self._limits = dict(self.DEFAULTS) | dict(limits or {})
        self.follow_headers = follow_headers
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[TokenBucket, threading.Lock]] = {}

    def _entry(self, seller_id: str, operation: str) -> tuple[TokenBucket, threading.Lock]:
        key = (seller_id, operation)
        with self._lock:
            entry = self._buckets.get(key)
            if entry is None:
                rate, burst = self._limits.get(operation, (1.0, 1.0))
                entry = (TokenBucket(rate=rate, burst=burst, clock=self.clock), threading.Lock())
                self._buckets[key] = entry
            return entry

    def bucket(self, seller_id: str, operation: str) -> TokenBucket:
        """The bucket of ``(seller_id, operation)`` (created from the defaults on first use)."""
        return self._entry(seller_id, operation)[0]

    def acquire(self, seller_id: str, operation: str) -> float:
        """
        Wait for a token; return the seconds waited.

        Waiters queue on a lock so that only one of them sleeps at a time: they are served in
        turn instead of waking together, and on a manual clock time advances once per token.
        """
        bucket, turn = self._entry(seller_id, operation)
        with turn:
            # Wait here, with a floor on each sleep, until a whole token is there: the shared
            # bucket can compute a wait so small (float rounding after a refill) that a manual
            # clock does not move, and would spin. Then the take below is immediate.
            waited = 0.0
            while (short := 1.0 - bucket.available) > 0:
                wait = max(short / bucket.rate, _MIN_WAIT)
                self.clock.sleep(wait)
                waited += wait
            return waited + bucket.acquire()

    def observe(self, seller_id: str, operation: str, rate: float) -> None:
        """Adopt the rate Amazon reported for this seller and operation."""
        if self.follow_headers:
            self.bucket(seller_id, operation).update(rate=rate)

    def throttled(self, seller_id: str, operation: str) -> None:
        """Amazon answered 429: empty the bucket so every thread slows down."""
        bucket = self.bucket(seller_id, operation)
        bucket.drain(1.0 / bucket.rate)

    def __repr__(self) -> str:
        return f"AmazonPacer({len(self._buckets)} buckets)"


def _user_agent() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415 - only for the header

        ours = version("catalogsync")
    except Exception:  # noqa: BLE001 - any metadata problem: the header just omits it
        ours = "0"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"catalogsync/{ours} (Language=Python/{py}; Platform={sys.platform})"


_CAPABILITIES: Final = Capabilities(
    accepts={ItemType.PRODUCT, ItemType.VARIANT},
    reads={(ItemType.VARIANT, ItemType.PRODUCT), (ItemType.PRODUCT, ItemType.VARIANT)},
    removals={ItemAction.DELETE, ItemAction.ARCHIVE},
    test_surface=True,
)


class AmazonChannel:
    """
    Amazon Selling Partner API (Listings Items 2021-08-01) as a catalogsync `Channel`.

    One SKU is one listing: products with variants become variation parents, variants their
    children, other products standalone listings. Categories are not pushed (Amazon classifies
    by product type). Removals are ``DELETE`` (``deleteListingsItem``) or ``ARCHIVE`` (a PATCH
    that makes the listing unbuyable; see docs/channels/amazon.md).

    Args:
        client: The injected `httpx.Client` (catalogsync never builds one).
        seller_id: The selling partner id (merchant token).
        marketplace: A marketplace id, a country code (``"DE"``) or a `Marketplace`.
        credentials: The LWA credentials (client secret and refresh token as `Secret`).
        product_type: The product type of items whose PIM data names none.
        product_types: ``{PIM family: product type}``, for items whose PIM data names no
            product type (a variant uses its product's family); ``product_type`` is the default.
        product_type_schemas: ``{product type: JSON Schema}`` from the Product Type Definitions
            API; attributes are then validated locally against it (needs ``jsonschema``).
        meta_schemas: Extra ``{URI: schema}`` to register for those schemas.
        sandbox: Send to the SP-API sandbox host (static mock answers); outcomes say ``TEST``.
        endpoint: Override the SP-API base URL (an emulator on a loopback port).
        language_tag: Force the language tag of text attributes (default: derived from the
            connector language and the marketplace, e.g. ``en_US``).
        issue_locale: Locale of Amazon's issue messages (``"en_US"``).
        fulfillment_channel_code: ``DEFAULT`` (merchant-fulfilled) or an FBA code.
        condition_type: The condition of offers whose PIM data names none.
        text_attributes: More attribute names to send with a language tag.
        max_workers: Requests in flight at once within one push.
        pacer: Shared token buckets (one per channel when omitted).
        retry: The retry policy of the transport.
        clock: The clock for pacing, backoff and token expiry.
        rng: Randomness for backoff jitter.

    Example:
        >>> import httpx
        >>> from catalogsync import Secret
        >>> from catalogsync.channels.amazon import AmazonChannel, LwaCredentials
        >>> channel = AmazonChannel(
        ...     httpx.Client(),
        ...     seller_id="A1SELLER",
        ...     marketplace="US",
        ...     credentials=LwaCredentials(
        ...         "amzn1.application-oa2-client.abc",
        ...         client_secret=Secret("lwa-client-secret"),
        ...         refresh_token=Secret("Atzr|refresh-token"),
        ...     ),
        ...     product_type="SHIRT",
        ... )
        >>> channel.base_url
        'https://sellingpartnerapi-na.amazon.com'

    .. versionadded:: 0.1.0
    """

    name = "amazon"
    capabilities = _CAPABILITIES

    def __init__(
        self,
        client: httpx.Client,
        *,
        seller_id: str,
        marketplace: str | Marketplace,
        credentials: LwaCredentials,
        product_type: str | None = None,
        product_types: Mapping[str, str] | None = None,
        product_type_schemas: Mapping[str, Mapping[str, Any]] | None = None,
        meta_schemas: Mapping[str, Mapping[str, Any]] | None = None,
        sandbox: bool = False,
        endpoint: str | None = None,
        language_tag: str | None = None,
        issue_locale: str | None = None,
        fulfillment_channel_code: str = "DEFAULT",
        condition_type: str = "new_new",
        text_attributes: Sequence[str] = (),
        max_workers: int = 4,
        pacer: AmazonPacer | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(seller_id, str) or not seller_id:
            raise InvalidArgumentError("seller_id must be a non-empty str", field="seller_id")
        if not isinstance(credentials, LwaCredentials):
            raise InvalidArgumentError(
                "credentials must be LwaCredentials(client_id, client_secret=Secret(...), "
                "refresh_token=Secret(...))",
                field="credentials",
            )
        if not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidArgumentError("max_workers must be an int >= 1", field="max_workers")
        self.market = _marketplace(marketplace)
        self.seller_id = seller_id
        self.sandbox = bool(sandbox)
        self.base_url = (endpoint or host(self.market.region, sandbox=self.sandbox)).rstrip("/")
        self.max_workers = max_workers
        self.clock = clock or (pacer.clock if pacer is not None else SystemClock())
        self.pacer = pacer or AmazonPacer(clock=self.clock)
        self.settings = RenderSettings(
            marketplace=self.market,
            product_type=product_type,
            language_tag=language_tag,
            fulfillment_channel_code=fulfillment_channel_code,
            condition_type=condition_type,
            text_attributes=frozenset(str(a) for a in text_attributes),
            product_types={str(k): str(v) for k, v in (product_types or {}).items()},
        )
        self._schemas = (
            SchemaValidator(product_type_schemas, meta_schemas) if product_type_schemas else None
        )
        self._user_agent = _user_agent()
        self._target = Target(
            base_url=self.base_url,
            seller_id=seller_id,
            marketplace_id=self.market.id,
            issue_locale=issue_locale,
            user_agent=self._user_agent,
        )
        self.transport = HttpTransport(
            client, channel=self.name, retry=retry, clock=self.clock, rng=rng
        )
        self._tokens = TokenCache(
            credentials, self.transport, self.clock, user_agent=self._user_agent
        )

    def __repr__(self) -> str:
        return (
            f"AmazonChannel(seller_id={self.seller_id!r}, marketplace={self.market.id!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def token_exchanges(self) -> int:
        """How many LWA token exchanges this channel made."""
        return self._tokens.exchanges

    # -- Channel protocol -----------------------------------------------------------------------

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        """
        The listing of the item's SKU: ``{"sku", "productType", "requirements", "attributes"}``.

        Raises:
            InvalidItemError: the item is a category (Amazon listings have none).
        """
        if item.type is ItemType.CATEGORY:
            raise InvalidItemError([_no_categories()])
        return render_item(item, ctx, self.settings)

    def validate(self, item: Item, payload: Payload, ctx: RenderContext) -> Sequence[ItemError]:
        """Every local problem at once (R13), plus product type schema violations when known."""
        errors = check_payload(item, payload, ctx)
        product_type = payload.get("productType")
        attributes = payload.get("attributes")
        if (
            self._schemas is not None
            and isinstance(product_type, str)
            and isinstance(attributes, Mapping)
        ):
            requirements = str(payload.get("requirements") or "LISTING")
            errors.extend(self._schemas.errors(product_type, requirements, attributes) or ())
        return errors

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        """
        Exchange the refresh token and read a sentinel SKU (a 404 proves access too).

        Raises:
            ChannelAuthError: Amazon rejected the credentials or denied access to the seller.
            ChannelError: Amazon could not be reached or answered garbage.
        """
        endpoint = self._endpoint(params)
        response = self._send(
            GET,
            lambda token: get_request(
                self._target, SENTINEL_SKU, token=token, now=self.clock.now()
            ),
        )
        rid = request_id(response)
        if response.status_code == 403:  # noqa: PLR2004 - HTTP status
            detail = "; ".join(e.message for e in read_errors(response))
            raise ChannelAuthError(
                f"Amazon denied access to seller {self.seller_id} in marketplace "
                f"{self.market.id} ({detail}): check the seller id, the region, and that the "
                "seller authorized this app",
                channel=self.name,
                status_code=403,
                request_id=rid,
            )
        if response.status_code not in (200, 404):
            detail = "; ".join(e.message for e in read_errors(response))
            raise ChannelProtocolError(
                f"Amazon answered the connection check with {detail}",
                channel=self.name,
                status_code=response.status_code,
                request_id=rid,
            )
        surface = "sandbox" if self.sandbox else PREVIEW if params.mode is Mode.TEST else "none"
        return ConnectionInfo(
            api_version=API_VERSION,
            endpoint=endpoint,
            details={
                "marketplace_id": self.market.id,
                "seller_id": self.seller_id,
                "host": httpx.URL(self.base_url).host,
                "region": self.market.region,
                "test_surface": surface,
            },
        )

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """
        Send each operation as its own request; several at once within the rate limits.

        Raises:
            ChannelAuthError: the access token could not be obtained; nothing was sent.
        """
        flat: list[Operation] = []
        for op in operations:
            flat.append(op)
            flat.extend(op.carried)
        endpoint = self._endpoint(params)
        preview = params.mode is Mode.TEST and not self.sandbox
        outcomes: list[Outcome | None] = [None] * len(flat)
        work: list[tuple[int, Operation, WritePlan, tuple[ItemError, ...]]] = []
        for i, op in enumerate(flat):
            planned = self._plan(op, params, endpoint, preview=preview)
            if isinstance(planned, Outcome):
                outcomes[i] = planned
            else:
                work.append((i, op, *planned))
        if work:
            # Fail fast, before anything is sent: bad credentials raise ChannelAuthError; an
            # unreachable token endpoint fails every item that needed a request, once.
            try:
                self._tokens.token()
            except ChannelUnavailableError as exc:
                for i, op, plan, notes in work:
                    outcomes[i] = _undelivered(
                        op, plan, notes, endpoint, code="unavailable", exc=exc, rid=None
                    )
                return [o for o in outcomes if o is not None]

        def run(task: tuple[int, Operation, WritePlan, tuple[ItemError, ...]]) -> None:
            i, op, plan, notes = task
            outcomes[i] = self._execute(op, plan, notes, endpoint, preview=preview)

        workers = min(self.max_workers, len(work))
        if workers <= 1:
            for task in work:
                run(task)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="catalogsync-amazon") as pool:
                list(pool.map(run, work))
        return [o for o in outcomes if o is not None]

    # -- internals ------------------------------------------------------------------------------

    def _endpoint(self, params: ConnectorParams) -> Endpoint:
        return Endpoint.TEST if self.sandbox or params.mode is Mode.TEST else Endpoint.PRODUCTION

    def _plan(
        self, op: Operation, params: ConnectorParams, endpoint: Endpoint, *, preview: bool
    ) -> Outcome | tuple[WritePlan, tuple[ItemError, ...]]:
        def done(message: str, errors: Sequence[ItemError] = ()) -> Outcome:
            ok = not errors
            return Outcome(
                op.item_type,
                op.ref,
                ok,
                action=op.action,
                channel_id=op.channel_id if op.action is not ItemAction.DELETE else None,
                endpoint=endpoint,
                errors=tuple(errors),
                message=message,
                memo=dict(op.memo) if ok and op.action is ItemAction.ARCHIVE else {},
            )

        if op.item_type is ItemType.CATEGORY:
            return done("not sent", [_no_categories()])
        payload = op.payload
        sku = op.channel_id or op.memo.get("sku") or (str(payload["sku"]) if payload else None)
        if op.action in (ItemAction.DELETE, ItemAction.ARCHIVE):
            if not sku:
                return done(f"nothing to {op.action.value}: catalogsync never listed this item")
            removal = self._plan_removal(op, sku, params, preview=preview)
            if isinstance(removal, NoWrite):
                return done(
                    removal.message, [] if removal.ok else [_err(removal.message, "archive", None)]
                )
            return removal, ()
        if payload is None:
            return done("not sent", [_err("no payload to send", "payload", None)])
        plan = plan_write(
            payload,
            memo=op.memo,
            digest=op.digest,
            endpoint=endpoint.value,
            overwrite_stock=params.overwrite_stock,
            marketplace_id=self.market.id,
        )
        notes: tuple[ItemError, ...] = ()
        if op.channel_id and op.channel_id != plan.sku:
            notes = (
                ItemError(
                    ErrorKind.VALIDATION,
                    f"the SKU changed from {op.channel_id!r} to {plan.sku!r}: the listing "
                    f"{op.channel_id!r} stays on Amazon until you delete it",
                    code="sku_changed",
                    field="sku",
                ),
            )
        return plan, notes

    def _plan_removal(
        self, op: Operation, sku: str, params: ConnectorParams, *, preview: bool
    ) -> WritePlan | NoWrite:
        if op.action is ItemAction.ARCHIVE:
            return plan_archive(
                sku=sku,
                memo=op.memo,
                payload=op.payload,
                overwrite_stock=params.overwrite_stock,
                marketplace_id=self.market.id,
                fulfillment_channel_code=self.settings.fulfillment_channel_code,
            )
        if preview:
            return NoWrite(
                ok=True,
                message=f"not sent: VALIDATION_PREVIEW cannot preview deleting SKU {sku!r}",
            )
        return WritePlan(DELETE, sku, None, "deleted (deleteListingsItem)")

    def _send(
        self,
        operation: str,
        build: Callable[[str], httpx.Request],
        seen: list[str | None] | None = None,
    ) -> httpx.Response:
        """
        Send with pacing, one token refresh on refusal, rate-header tracking; the last request
        id seen goes into *seen* (kept even when the transport finally gives up).
        """
        seller = self.seller_id
        seen = seen if seen is not None else [None]
        tokens: list[str] = []
        refreshed: list[bool] = []

        def make() -> httpx.Request:
            token = self._tokens.token()
            tokens.append(token)
            return build(token)

        def verdict(response: httpx.Response) -> Verdict:
            seen[0] = request_id(response) or seen[0]
            rate = rate_limit(response)
            if rate is not None:
                self.pacer.observe(seller, operation, rate)
            if response.status_code == 429:  # noqa: PLR2004 - HTTP status
                self.pacer.throttled(seller, operation)
            if not refreshed and is_token_rejection(response):
                refreshed.append(True)
                self._tokens.invalidate(tokens[-1])  # expired or revoked: one fresh try
                return Verdict(VerdictKind.RETRY, 0.0, "access token refused")
            return classify(response)

        def pace() -> None:
            self.pacer.acquire(seller, operation)

        return self.transport.send(make, classify=verdict, before=pace)

    def _execute(
        self,
        op: Operation,
        plan: WritePlan,
        notes: tuple[ItemError, ...],
        endpoint: Endpoint,
        *,
        preview: bool,
    ) -> Outcome:
        key = (
            f"{plan.operation}:{PREVIEW}"
            if preview and plan.operation != DELETE
            else plan.operation
        )
        target, sku, body = self._target, plan.sku, plan.body or {}

        def build(token: str) -> httpx.Request:
            now = self.clock.now()
            if plan.operation == PUT:
                return put_request(target, sku, body, token=token, now=now, preview=preview)
            if plan.operation == PATCH:
                return patch_request(target, sku, body, token=token, now=now, preview=preview)
            return delete_request(target, sku, token=token, now=now)

        def failed(code: str, exc: ChannelError, rid: str | None) -> Outcome:
            return _undelivered(op, plan, notes, endpoint, code=code, exc=exc, rid=rid)

        seen: list[str | None] = [None]
        try:
            response = self._send(key, build, seen)
            submission = read_submission(response)
        except RateLimitedError as exc:
            return failed("throttled", exc, exc.request_id or seen[0])
        except ChannelAuthError as exc:
            return failed("auth", exc, exc.request_id or seen[0])
        except ChannelUnavailableError as exc:
            return failed("unavailable", exc, exc.request_id or seen[0])
        except ChannelProtocolError as exc:
            return failed("bad_response", exc, exc.request_id or seen[0])
        _log.debug(
            "amazon %s %r: HTTP %s %s (request id %s)",
            plan.operation,
            sku,
            submission.http_status,
            submission.status,
            submission.request_id,
        )
        return self._outcome(op, plan, notes, submission, endpoint, preview=preview)

    def _outcome(
        self,
        op: Operation,
        plan: WritePlan,
        notes: tuple[ItemError, ...],
        sub: Submission,
        endpoint: Endpoint,
        *,
        preview: bool,
    ) -> Outcome:
        deleting = plan.operation == DELETE
        common: dict[str, Any] = {
            "action": op.action,
            "request_id": sub.request_id,
            "endpoint": endpoint,
        }
        if deleting and sub.http_status == 404:  # noqa: PLR2004 - already gone is gone
            return Outcome(
                op.item_type,
                op.ref,
                ok=True,
                message=f"SKU {plan.sku!r} was already gone",
                **common,
            )
        if sub.status is None:
            return Outcome(
                op.item_type,
                op.ref,
                ok=False,
                channel_id=op.channel_id,
                errors=sub.errors,
                warnings=notes,
                message=f"Amazon refused {plan.operation} of SKU {plan.sku!r} "
                f"(HTTP {sub.http_status})",
                **common,
            )
        errors, warnings = issue_errors(sub)
        if not sub.ok:
            return Outcome(
                op.item_type,
                op.ref,
                ok=False,
                channel_id=op.channel_id,
                errors=errors,
                warnings=notes + warnings,
                message=f"Amazon found SKU {plan.sku!r} INVALID (submission {sub.submission_id})",
                **common,
            )
        if sub.status == "VALID":
            message = (
                f"VALID: Amazon validated it and saved nothing (VALIDATION_PREVIEW); {plan.reason}"
            )
        else:
            message = (
                f"ACCEPTED: queued by Amazon as submission {sub.submission_id}; the listing "
                f"changes within minutes and may still raise issues later; {plan.reason}"
            )
        url = f"https://www.{self.market.domain}/dp/{sub.asin}" if sub.asin else None
        return Outcome(
            op.item_type,
            op.ref,
            ok=True,
            channel_id=None if deleting else plan.sku,
            channel_url=url,
            warnings=notes + warnings,
            message=message,
            memo={} if deleting or preview else dict(plan.memo),
            **common,
        )


def _undelivered(
    op: Operation,
    plan: WritePlan,
    notes: tuple[ItemError, ...],
    endpoint: Endpoint,
    *,
    code: str,
    exc: ChannelError,
    rid: str | None,
) -> Outcome:
    """The outcome of an item whose request could not be delivered (after retries)."""
    where = f"Amazon request id {rid}" if rid else "no answer carried an Amazon request id"
    return Outcome(
        op.item_type,
        op.ref,
        ok=False,
        action=op.action,
        channel_id=op.channel_id,
        request_id=rid,
        endpoint=endpoint,
        errors=(ItemError(ErrorKind.TRANSPORT, f"{exc} ({where})", code=code),),
        warnings=notes,
        message=f"{plan.operation} of SKU {plan.sku!r} was not delivered",
    )


def _marketplace(value: str | Marketplace) -> Marketplace:
    return marketplace(value)


def _err(message: str, code: str, field: str | None) -> ItemError:
    return ItemError(ErrorKind.VALIDATION, message, code=code, field=field)


def _no_categories() -> ItemError:
    return _err(
        "Amazon listings have no categories: Amazon classifies items by product type",
        "unsupported",
        None,
    )
