"""
The Takealot adapter: a thin I/O shell around the sans-IO core.

Rule 1: requests are built and responses read by ``_sansio``; this module decides *which*
requests to send, sends them through the shared `HttpTransport` (retries with backoff on 429,
5xx and transport errors), paces them with `RatePacer` from the ``x-RateLimit-*`` headers, and
turns every answer into one `Outcome` per operation. Item-level failures never raise; only
rejected credentials do (`ChannelAuthError`), because nothing else can succeed after that.

Rule 2: upserts are keyed by barcode, the stable key of an offer on Takealot, so re-delivering an
item after a crash updates the offer it created instead of making a second one:

* never sent (no channel id): ``POST /v2/offers/offer/{barcode}``; if Takealot says the offer
  already exists (E4), ``PATCH /v2/offers/offer/BARCODE{barcode}``;
* sent before: ``PATCH ...BARCODE{barcode}``; if no offer has that barcode (404), ``POST``.

A create cannot carry ``status_action``, so an offer that must be disabled is disabled by a
follow-up PATCH. When the barcode of an item changed (the memo remembers the last one sent), the
offer of the previous barcode is retired first: disabled, and its SKU suffixed with
``~<offer id>`` because SKUs are unique per seller; then the new barcode gets its offer.

Rule 3: more than ``batch_threshold`` operations go through ``POST /v2/offers/batch`` (chunks of
at most 10,000), polled on the injected clock until done or ``batch_timeout``; each result is
mapped back to its item by position, checked against the SKU.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Final

import attrs
import httpx
from attrs import frozen

from ..._clock import Clock, SystemClock
from ..._errors import (
    ChannelAuthError,
    ChannelError,
    ChannelProtocolError,
    InvalidArgumentError,
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
from ..._secrets import Secret, get_logger, redact
from ...typing import Capabilities, ConnectionInfo, Operation, Outcome, Payload, RenderContext
from .._transport import HttpTransport, RetryPolicy
from . import _sansio as wire
from ._pacer import RatePacer
from ._render import is_skip, render_offer
from ._validate import validate_offer


__all__ = ["TakealotChannel"]

_log = get_logger("catalogsync.channels.takealot")

_TEST_NOTE: Final = "validated only (Takealot has no test environment): would send"
_DELETE_NOTE: Final = "Takealot offers cannot be deleted: the offer was disabled instead"


@frozen
class _Work:
    """One operation on its way to Takealot: an upsert (payload) or a removal (identifier)."""

    index: int
    op: Operation
    payload: Payload | None = None
    ident: str | None = None
    offer_id: int | None = None
    barcode: str | None = None
    retired: bool = False  # the offer of the item's previous barcode was retired first

    @property
    def removal(self) -> bool:
        return self.payload is None


_Batch = tuple[wire.BatchView, list[_Work]]


class _BatchRefusedError(Exception):
    """Internal: the batch endpoint answered an error instead of a batch."""

    def __init__(self, reply: wire.OfferReply) -> None:
        super().__init__(reply.message or f"HTTP {reply.status_code}")
        self.reply = reply


def _positive(value: Any, name: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}", field=name)


_READS: Final[frozenset[tuple[ItemType, ItemType]]] = frozenset(
    {(ItemType.PRODUCT, ItemType.VARIANT), (ItemType.VARIANT, ItemType.PRODUCT)}
)


class TakealotChannel:
    """
    The Takealot Seller API v2 adapter: offers on barcodes of Takealot's own catalogue.

    Takealot owns its catalogue, so categories and product content are not pushed: an offer
    (SKU, selling price, RRP, leadtime days, leadtime stock per merchant warehouse, status) is
    attached to a barcode Takealot already lists. A product with variants is skipped (its
    variants are the offers); a removal disables the offer (offers cannot be deleted);
    ``mode=TEST`` validates locally and sends nothing (Takealot has no test environment).

    Args:
        api_key: The seller's API key (``Authorization: Key <api_key>``).
        client: The injected `httpx.Client`.
        base_url: The API root; by default the client's ``base_url`` if it has one, else
            ``https://seller-api.takealot.com``.
        warehouses: The seller's merchant warehouse ids; stock is sent only to these.
        default_leadtime_days: Leadtime days for items that have none (``None``: not sent).
        batch_threshold: More operations than this in one push use the batch endpoint.
        batch_size: Offers per batch (at most 10,000).
        poll_interval: Seconds before the first batch status poll (grows by half each time).
        max_poll_interval: Cap on the poll interval.
        batch_timeout: Seconds to wait for a batch before reporting its items as not delivered.
        max_in_flight: Single-offer requests sent concurrently while the rate budget allows.
        gtin_check: Validate barcodes as GTINs (check digit) before sending.
        retry: Retry policy for 429, 5xx and transport errors.
        clock: Pacing, backoff and batch polling sleep on it.
        rng: Randomness for backoff jitter.
        name: The channel name recorded on events.

    Example:
        >>> import httpx
        >>> from catalogsync import Secret
        >>> from catalogsync.channels.takealot import TakealotChannel
        >>> channel = TakealotChannel(Secret("my-takealot-key"), client=httpx.Client(),
        ...                           warehouses=[28676], default_leadtime_days=5)
        >>> channel.base_url
        'https://seller-api.takealot.com'
        >>> "my-takealot-key" in repr(channel)
        False
        >>> sorted(t.value for t in channel.capabilities.accepts)
        ['product', 'variant']

    .. versionadded:: 0.1.0
    """

    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        accepts=frozenset({ItemType.PRODUCT, ItemType.VARIANT}),
        reads=frozenset(_READS),
        removals=frozenset({ItemAction.ARCHIVE}),
        test_surface=False,
    )

    def __init__(
        self,
        api_key: Secret,
        *,
        client: httpx.Client,
        base_url: str | None = None,
        warehouses: Sequence[int] = (),
        default_leadtime_days: int | None = None,
        batch_threshold: int = 50,
        batch_size: int = wire.MAX_BATCH,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        batch_timeout: float = 1800.0,
        max_in_flight: int = 4,
        gtin_check: bool = True,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str = wire.CHANNEL,
    ) -> None:
        if not isinstance(api_key, Secret):
            raise InvalidArgumentError(
                "api_key must be a catalogsync.Secret (wrap the key: Secret(key))",
                field="TakealotChannel.api_key",
            )
        if isinstance(warehouses, (str, bytes)) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in warehouses
        ):
            raise InvalidArgumentError(
                "warehouses must be positive merchant warehouse ids (ints)",
                field="TakealotChannel.warehouses",
            )
        if default_leadtime_days is not None and (
            not isinstance(default_leadtime_days, int)
            or isinstance(default_leadtime_days, bool)
            or default_leadtime_days < -1
        ):
            raise InvalidArgumentError(
                "default_leadtime_days must be an int >= -1 or None",
                field="TakealotChannel.default_leadtime_days",
            )
        if not isinstance(batch_threshold, int) or batch_threshold < 0:
            raise InvalidArgumentError(
                "batch_threshold must be an int >= 0", field="TakealotChannel.batch_threshold"
            )
        if not isinstance(batch_size, int) or not 0 < batch_size <= wire.MAX_BATCH:
            raise InvalidArgumentError(
                f"batch_size must be an int from 1 to {wire.MAX_BATCH}",
                field="TakealotChannel.batch_size",
            )
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InvalidArgumentError(
                "max_in_flight must be an int >= 1", field="TakealotChannel.max_in_flight"
            )
        _positive(poll_interval, "TakealotChannel.poll_interval", allow_zero=True)
        _positive(max_poll_interval, "TakealotChannel.max_poll_interval", allow_zero=True)
        _positive(batch_timeout, "TakealotChannel.batch_timeout")
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name must be a non-empty str", field="TakealotChannel.name")
        self.name = name
        self.capabilities = self.CAPABILITIES
        self._key = api_key
        self.clock = clock or SystemClock()
        self.transport = HttpTransport(
            client, channel=wire.CHANNEL, retry=retry, clock=self.clock, rng=rng
        )
        client_base = str(client.base_url).rstrip("/")
        self.base_url = (base_url or client_base or wire.DEFAULT_BASE_URL).rstrip("/")
        self.warehouses = tuple(warehouses)
        self.default_leadtime_days = default_leadtime_days
        self.batch_threshold = batch_threshold
        self.batch_size = batch_size
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.batch_timeout = float(batch_timeout)
        self.max_in_flight = max_in_flight
        self.gtin_check = gtin_check
        self.pacer = RatePacer(self.clock)
        #: Batches submitted and status polls sent (for tests and benchmarks).
        self.batch_stats = {"batches": 0, "polls": 0}

    def __repr__(self) -> str:
        return (
            f"TakealotChannel(name={self.name!r}, base_url={self.base_url!r}, "
            f"warehouses={list(self.warehouses)})"
        )

    # -- Channel protocol ------------------------------------------------------------------------

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        """
        Check the API key with ``GET /v2/offers/count`` (read-only, also in ``TEST`` mode).

        Raises:
            ChannelAuthError: the key was rejected (401/403).
            ChannelError: Takealot could not be reached or answered garbage.
        """
        response = self._send(
            wire.Route.ACCOUNT, lambda: wire.count_request(self.base_url, self._key)
        )
        if response.status_code != 200:  # noqa: PLR2004 - HTTP
            reply = wire.read_offer_reply(response.status_code, response.content)
            raise ChannelError(
                f"takealot answered HTTP {response.status_code} to the connection check: "
                f"{redact(reply.message or 'no detail given')}",
                channel=wire.CHANNEL,
                status_code=response.status_code,
            )
        count = wire.read_count(response.status_code, response.content)
        test = params.mode is Mode.TEST
        details = {
            "api": "Takealot Seller API v2",
            "base_url": self.base_url,
            "offers": str(count),
            "merchant_warehouses": ",".join(str(w) for w in self.warehouses),
        }
        if test:
            details["test_mode"] = "validation only: Takealot has no test environment"
        return ConnectionInfo(
            api_version=wire.API_VERSION,
            endpoint=Endpoint.TEST if test else Endpoint.PRODUCTION,
            details=details,
        )

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        """Render *item* as an offer payload (see `render_offer`); pure."""
        return render_offer(
            item,
            ctx,
            warehouses=self.warehouses,
            default_leadtime_days=self.default_leadtime_days,
        )

    def validate(
        self,
        item: Item,
        payload: Payload,
        ctx: RenderContext,
    ) -> Sequence[ItemError]:
        """Return every local problem of *payload* at once (rule R13); pure."""
        return validate_offer(
            payload,
            warehouses=self.warehouses,
            field_mapping=ctx.params.field_mapping,
            gtin_check=self.gtin_check,
        )

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """
        Send *operations*; return one `Outcome` per operation, in order.

        Raises:
            ChannelAuthError: the API key was rejected; nothing more can be sent.
        """
        endpoint = Endpoint.TEST if params.mode is Mode.TEST else Endpoint.PRODUCTION
        outcomes: list[Outcome | None] = [None] * len(operations)
        works: list[_Work] = []
        for index, op in enumerate(operations):
            early, work = self._triage(index, op, params, endpoint)
            if early is not None:
                outcomes[index] = early
            elif work is not None:
                works.append(work)
        works = self._retire_moved(works, outcomes)
        if works:
            if len(works) > self.batch_threshold:
                done = self._push_batches(works)
            else:
                done = self._parallel([(w, self._bind_single(w)) for w in works])
            for work, outcome in done:
                outcomes[work.index] = outcome
        missing = [operations[i].ref for i, o in enumerate(outcomes) if o is None]
        if missing:  # a bug, never an item problem: say so loudly rather than drop items
            msg = f"takealot channel produced no outcome for {missing[:5]}"
            raise RuntimeError(msg)
        return [o for o in outcomes if o is not None]

    # -- triage ----------------------------------------------------------------------------------

    def _triage(
        self, index: int, op: Operation, params: ConnectorParams, endpoint: Endpoint
    ) -> tuple[Outcome | None, _Work | None]:
        def outcome(**kwargs: Any) -> Outcome:
            kwargs.setdefault("channel_id", op.channel_id)
            return Outcome(op.item_type, op.ref, endpoint=endpoint, **kwargs)

        if op.item_type is ItemType.CATEGORY:
            return outcome(
                ok=True,
                action=ItemAction.SKIP,
                message="Takealot owns its catalogue: categories are not pushed",
            ), None
        if op.action in {ItemAction.DELETE, ItemAction.ARCHIVE}:
            return self._triage_removal(index, op, params, endpoint, outcome)
        payload = op.payload
        if payload is None:
            error = ItemError(ErrorKind.VALIDATION, "nothing was rendered for this item")
            return outcome(ok=False, action=op.action, errors=(error,)), None
        if is_skip(payload):
            return outcome(ok=True, action=ItemAction.SKIP, message=str(payload["skip"])), None
        errors = validate_offer(
            payload,
            warehouses=self.warehouses,
            field_mapping=params.field_mapping,
            gtin_check=self.gtin_check,
        )
        if errors:
            return outcome(ok=False, action=op.action, errors=tuple(errors)), None
        barcode = str(payload["barcode"])
        if endpoint is Endpoint.TEST:
            if op.channel_id is None:
                request = wire.create_offer_request(
                    self.base_url, self._key, barcode, wire.create_body(payload)
                )
            else:
                request = wire.update_offer_request(
                    self.base_url,
                    self._key,
                    wire.identifier("BARCODE", barcode),
                    wire.update_body(payload),
                )
            return outcome(
                ok=True, action=op.action, message=f"{_TEST_NOTE} {wire.describe(request)}"
            ), None
        return None, _Work(index, op, payload=payload, barcode=barcode)

    def _triage_removal(
        self,
        index: int,
        op: Operation,
        params: ConnectorParams,
        endpoint: Endpoint,
        outcome: Callable[..., Outcome],
    ) -> tuple[Outcome | None, _Work | None]:
        offer_id = int(op.channel_id) if op.channel_id and op.channel_id.isdigit() else None
        barcode = op.memo.get("barcode")
        if not barcode and isinstance(op.payload, Mapping):
            barcode = op.payload.get("barcode")
        if not barcode and op.item is not None:
            raw = op.item.fields.get(params.mapped("barcode"))
            barcode = str(raw).strip() if isinstance(raw, (str, int)) and str(raw).strip() else None
        if offer_id is not None:
            ident = wire.identifier("ID", offer_id)
        elif barcode:
            ident = wire.identifier("BARCODE", str(barcode))
        else:
            return outcome(
                ok=True,
                action=ItemAction.SKIP,
                message="no Takealot offer is known for this item: nothing to disable",
            ), None
        if endpoint is Endpoint.TEST:
            request = wire.update_offer_request(
                self.base_url, self._key, ident, {"status_action": wire.DISABLE}
            )
            return outcome(
                ok=True,
                action=ItemAction.ARCHIVE,
                message=f"{_TEST_NOTE} {wire.describe(request)}",
            ), None
        return None, _Work(
            index, op, ident=ident, offer_id=offer_id, barcode=str(barcode) if barcode else None
        )

    # -- sending -------------------------------------------------------------------------------

    def _send(self, route: wire.Route, build: Callable[[], httpx.Request]) -> httpx.Response:
        ticket: list[int] = []  # the pacer ticket of the attempt awaiting its answer

        def before() -> None:
            if ticket:  # the previous attempt got no response (a transport error)
                self.pacer.release(route, ticket.pop())
            ticket.append(self.pacer.acquire(route))

        def classify(response: httpx.Response) -> Any:
            now = self.clock.now()
            if ticket:
                self.pacer.observe(
                    route,
                    ticket.pop(),
                    wire.read_rate_limit(response.headers, now),
                    throttled=response.status_code == 429,  # noqa: PLR2004 - HTTP
                )
            _log.debug(
                "takealot %s %s -> %d",
                response.request.method,
                response.request.url.path,
                response.status_code,
            )
            return wire.classify(response, now)

        try:
            return self.transport.send(build, classify=classify, before=before)
        finally:
            if ticket:
                self.pacer.release(route, ticket.pop())

    def _offer_call(self, build: Callable[[], httpx.Request]) -> wire.OfferReply:
        response = self._send(wire.Route.OFFER, build)
        return wire.read_offer_reply(response.status_code, response.content)

    def _create(self, barcode: str, payload: Payload) -> wire.OfferReply:
        body = wire.create_body(payload)
        return self._offer_call(
            lambda: wire.create_offer_request(self.base_url, self._key, barcode, body)
        )

    def _update(self, ident: str, body: dict[str, Any]) -> wire.OfferReply:
        return self._offer_call(
            lambda: wire.update_offer_request(self.base_url, self._key, ident, body)
        )

    def _parallel(
        self, calls: Sequence[tuple[_Work, Callable[[], Outcome]]]
    ) -> list[tuple[_Work, Outcome]]:
        """Run *calls* with up to ``max_in_flight`` threads; an auth error stops everything."""
        if len(calls) <= 1 or self.max_in_flight == 1:
            return [(work, self._guard(work, call)) for work, call in calls]
        with ThreadPoolExecutor(
            max_workers=min(self.max_in_flight, len(calls)), thread_name_prefix="takealot"
        ) as pool:
            futures = [(work, pool.submit(self._guard, work, call)) for work, call in calls]
            try:
                return [(work, future.result()) for work, future in futures]
            except ChannelAuthError:
                for _, future in futures:
                    future.cancel()
                raise

    def _guard(self, work: _Work, call: Callable[[], Outcome]) -> Outcome:
        try:
            return call()
        except ChannelAuthError:
            raise
        except ChannelError as exc:
            return self._undelivered(work, exc)

    def _undelivered(self, work: _Work, exc: ChannelError) -> Outcome:
        if isinstance(exc, RateLimitedError):
            code = "rate_limited"
        elif isinstance(exc, ChannelProtocolError):
            code = "bad_response"
        else:
            code = "unavailable"
        return Outcome(
            work.op.item_type,
            work.op.ref,
            ok=False,
            action=ItemAction.ARCHIVE if work.removal else work.op.action,
            channel_id=work.op.channel_id,
            errors=(ItemError(ErrorKind.TRANSPORT, redact(str(exc)), code=code),),
        )

    # -- single offers ---------------------------------------------------------------------------

    def _bind_single(self, work: _Work) -> Callable[[], Outcome]:
        if work.removal:
            return lambda: self._removal_outcome(
                work,
                self._update(work.ident or "", {"status_action": wire.DISABLE}),
                request_id=None,
            )
        return lambda: self._upsert_single(work)

    def _upsert_single(self, work: _Work) -> Outcome:
        op, payload, barcode = work.op, work.payload or {}, work.barcode or ""
        by_barcode = wire.identifier("BARCODE", barcode)
        if op.channel_id is None:
            reply, action = self._create(barcode, payload), ItemAction.CREATE
            if reply.has("E4"):  # it exists already: a re-delivery, or made in the Seller Portal
                reply, action = (
                    self._update(by_barcode, wire.update_body(payload)),
                    ItemAction.UPDATE,
                )
        else:
            reply, action = self._update(by_barcode, wire.update_body(payload)), ItemAction.UPDATE
            if reply.not_found:  # no offer on this barcode yet (a new barcode, or never created)
                reply, action = self._create(barcode, payload), ItemAction.CREATE
        return self._settle(work, reply, action, request_id=None)

    @staticmethod
    def _barcode_changed(work: _Work) -> bool:
        old = work.op.memo.get("barcode")
        channel_id = work.op.channel_id
        return bool(
            not work.removal and old and old != work.barcode and channel_id and channel_id.isdigit()
        )

    def _retire_moved(self, works: list[_Work], outcomes: list[Outcome | None]) -> list[_Work]:
        """Retire the old offers of items whose barcode changed; return the works to go on with."""
        moved = [w for w in works if self._barcode_changed(w)]
        if not moved:
            return works
        retired = {
            work.index: outcome
            for work, outcome in self._parallel([(w, self._bind_retire(w)) for w in moved])
        }
        for index, outcome in retired.items():
            if not outcome.ok:
                outcomes[index] = outcome
        return [
            attrs.evolve(w, retired=True) if w.index in retired else w
            for w in works
            if outcomes[w.index] is None
        ]

    def _bind_retire(self, work: _Work) -> Callable[[], Outcome]:
        return lambda: self._retire(work)

    def _retire(self, work: _Work) -> Outcome:
        """
        Disable the offer of the item's previous barcode and free its SKU for the new offer.

        SKUs are unique per seller on Takealot (E6/E10), so the old offer keeps the SKU with a
        ``~<offer id>`` suffix. An outcome that is ok means: go on with the upsert.
        """
        op, old_id = work.op, work.op.channel_id or ""
        sku = str((work.payload or {}).get("sku") or op.ref)
        suffix = f"~{old_id}"
        body = {"sku": sku[: wire.MAX_SKU - len(suffix)] + suffix, "status_action": wire.DISABLE}
        reply = self._update(wire.identifier("ID", old_id), body)
        if reply.ok or reply.not_found or reply.has("E31"):
            return Outcome(op.item_type, op.ref, ok=True, action=op.action)
        return Outcome(
            op.item_type,
            op.ref,
            ok=False,
            action=op.action,
            channel_id=op.channel_id,
            errors=tuple(
                ItemError(
                    ErrorKind.CHANNEL,
                    f"the barcode changed from {op.memo.get('barcode')} to {work.barcode}, but "
                    f"offer {old_id} of the previous barcode could not be retired: {e.message}",
                    code=e.code,
                    field="barcode",
                )
                for e in wire.reply_errors(reply, barcode=None)
            ),
        )

    def _settle(
        self, work: _Work, reply: wire.OfferReply, action: ItemAction, *, request_id: str | None
    ) -> Outcome:
        """Turn an upsert's reply into an outcome, after its follow-ups (disable, old barcode)."""
        op, payload, barcode = work.op, work.payload or {}, work.barcode or ""
        if not reply.ok:
            if reply.not_found and action is ItemAction.CREATE:
                errors: tuple[ItemError, ...] = (wire.not_in_catalogue(barcode),)
            else:
                errors = wire.reply_errors(reply, barcode=barcode)
            return Outcome(
                op.item_type,
                op.ref,
                ok=False,
                action=action,
                channel_id=op.channel_id,
                request_id=request_id,
                errors=errors,
            )
        offer = reply.offer or wire.OfferView()
        failures: list[ItemError] = []
        notes: list[str] = []
        if payload.get("status_action") == wire.DISABLE and not offer.disabled:
            # A create cannot carry status_action: disable the new offer now.
            ident = (
                wire.identifier("ID", offer.offer_id)
                if offer.offer_id is not None
                else wire.identifier("BARCODE", barcode)
            )
            follow = self._update(ident, {"status_action": wire.DISABLE})
            if follow.ok:
                offer = follow.offer or offer
            else:
                failures.extend(wire.reply_errors(follow, barcode=barcode))
        old = op.channel_id
        if work.retired:
            notes.append(
                f"the barcode changed: offer {old} of the previous barcode "
                f"{op.memo.get('barcode')} is disabled and its SKU freed"
            )
        elif old and old.isdigit() and offer.offer_id is not None and old != str(offer.offer_id):
            # The barcode changed but the previous one was not remembered: disable the old offer.
            follow = self._update(wire.identifier("ID", old), {"status_action": wire.DISABLE})
            if follow.ok or follow.not_found or follow.has("E31") or follow.has("E11"):
                notes.append(
                    f"the barcode changed: offer {old} of the previous barcode is disabled"
                )
            else:
                failures.extend(
                    ItemError(
                        ErrorKind.CHANNEL,
                        f"the barcode changed, but offer {old} of the previous barcode could not "
                        f"be disabled: {e.message}",
                        code=e.code,
                        field="barcode",
                    )
                    for e in wire.reply_errors(follow, barcode=None)
                )
        channel_id = str(offer.offer_id) if offer.offer_id is not None else op.channel_id
        return Outcome(
            op.item_type,
            op.ref,
            ok=not failures,
            action=action,
            channel_id=channel_id,
            channel_url=offer.offer_url,
            request_id=request_id,
            errors=tuple(failures),
            message="; ".join(notes) or None,
            memo={"barcode": barcode} if not failures else {},
        )

    def _removal_outcome(
        self, work: _Work, reply: wire.OfferReply, *, request_id: str | None
    ) -> Outcome:
        op = work.op
        note = _DELETE_NOTE if op.action is ItemAction.DELETE else None

        def outcome(**kwargs: Any) -> Outcome:
            return Outcome(
                op.item_type, op.ref, action=ItemAction.ARCHIVE, request_id=request_id, **kwargs
            )

        if reply.ok:
            offer = reply.offer or wire.OfferView()
            channel_id = str(offer.offer_id) if offer.offer_id is not None else op.channel_id
            return outcome(ok=True, channel_id=channel_id, message=note)
        if reply.not_found or reply.has("E31"):
            return outcome(ok=True, message="no such offer on Takealot: nothing to disable")
        if reply.has("E11"):
            return outcome(
                ok=True, channel_id=op.channel_id, message="the offer is disabled by Takealot"
            )
        return outcome(
            ok=False,
            channel_id=op.channel_id,
            errors=wire.reply_errors(reply, barcode=work.barcode),
        )

    # -- batches -------------------------------------------------------------------------------

    def _batch_entry(self, work: _Work) -> dict[str, Any]:
        if work.removal:
            return wire.disable_batch_item(offer_id=work.offer_id, barcode=work.barcode)
        return wire.batch_item(work.payload or {})

    def _submit(self, entries: list[dict[str, Any]]) -> wire.BatchView:
        response = self._send(
            wire.Route.BATCH, lambda: wire.submit_batch_request(self.base_url, self._key, entries)
        )
        if response.status_code != 200:  # noqa: PLR2004 - HTTP
            raise _BatchRefusedError(wire.read_offer_reply(response.status_code, response.content))
        self.batch_stats["batches"] += 1
        return wire.read_batch(response.status_code, response.content)

    def _poll(self, batch_id: str) -> wire.BatchView:
        response = self._send(
            wire.Route.BATCH_STATUS,
            lambda: wire.batch_status_request(self.base_url, self._key, batch_id),
        )
        self.batch_stats["polls"] += 1
        if response.status_code != 200:  # noqa: PLR2004 - HTTP
            reply = wire.read_offer_reply(response.status_code, response.content)
            return wire.BatchView(
                batch_id, wire.BatchState.FAILED, description=reply.message or "unknown batch"
            )
        return wire.read_batch(response.status_code, response.content)

    def _push_batches(self, works: list[_Work]) -> list[tuple[_Work, Outcome]]:
        done: list[tuple[_Work, Outcome]] = []
        submitted = []
        for start in range(0, len(works), self.batch_size):
            chunk = works[start : start + self.batch_size]
            try:
                view = self._submit([self._batch_entry(w) for w in chunk])
            except ChannelAuthError:
                raise
            except ChannelError as exc:
                done.extend((w, self._undelivered(w, exc)) for w in chunk)
                continue
            except _BatchRefusedError as refused:
                errors = wire.reply_errors(refused.reply, barcode=None)
                done.extend((w, self._failed(w, errors, request_id=None)) for w in chunk)
                continue
            _log.debug("takealot batch %s submitted with %d offers", view.batch_id, len(chunk))
            submitted.append((view, chunk))
        finished, running = self._wait(submitted)
        for view, chunk in running:
            error = ItemError(
                ErrorKind.TRANSPORT,
                f"takealot batch {view.batch_id} was still processing after "
                f"{self.batch_timeout:g} s; the offer will be sent again",
                code="batch_timeout",
            )
            done.extend((w, self._failed(w, (error,), request_id=view.batch_id)) for w in chunk)
        calls: list[tuple[_Work, Callable[[], Outcome]]] = []
        for view, chunk in finished:
            for work, result in self._match(view, chunk):
                call = self._bind_result(work, result, view.batch_id)
                if self._needs_follow_up(work, result):
                    calls.append((work, call))  # more requests: in parallel, paced
                else:
                    done.append((work, call()))  # no I/O left: settle here
        return done + self._parallel(calls)

    def _wait(self, submitted: list[_Batch]) -> tuple[list[_Batch], list[_Batch]]:
        """Poll pending batches on the clock until done or the timeout: (finished, running)."""
        finished = [b for b in submitted if b[0].state is not wire.BatchState.PENDING]
        running = [b for b in submitted if b[0].state is wire.BatchState.PENDING]
        deadline = self.clock.monotonic() + self.batch_timeout
        interval = self.poll_interval
        while running:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                break
            self.clock.sleep(min(interval, left))
            interval = min(interval * 1.5, self.max_poll_interval) or self.max_poll_interval
            still = []
            for view, chunk in running:
                try:
                    polled = self._poll(view.batch_id)
                except ChannelAuthError:
                    raise
                except ChannelError:
                    still.append((view, chunk))  # keep asking until the deadline
                    continue
                pending = polled.state is wire.BatchState.PENDING
                (still if pending else finished).append((polled, chunk))
            running = still
        return finished, running

    @staticmethod
    def _needs_follow_up(work: _Work, result: wire.OfferReply | ItemError) -> bool:
        """Whether settling an upsert's batch result sends more requests (see `_settle`)."""
        if work.removal or not isinstance(result, wire.OfferReply) or not result.ok:
            return False
        offer = result.offer or wire.OfferView()
        if (work.payload or {}).get("status_action") == wire.DISABLE and not offer.disabled:
            return True
        old = work.op.channel_id
        return bool(
            not work.retired
            and old
            and old.isdigit()
            and offer.offer_id is not None
            and old != str(offer.offer_id)
        )

    def _bind_result(
        self, work: _Work, result: wire.OfferReply | ItemError, batch_id: str
    ) -> Callable[[], Outcome]:
        if isinstance(result, ItemError):
            return lambda: self._failed(work, (result,), request_id=batch_id)
        if work.removal:
            return lambda: self._removal_outcome(work, result, request_id=batch_id)
        action = ItemAction.CREATE if work.op.channel_id is None else ItemAction.UPDATE
        return lambda: self._settle(work, result, action, request_id=batch_id)

    def _match(
        self, view: wire.BatchView, chunk: list[_Work]
    ) -> list[tuple[_Work, wire.OfferReply | ItemError]]:
        """Pair each submitted offer with its result: by position, checked against the SKU."""
        if view.state is wire.BatchState.FAILED:
            error = ItemError(
                ErrorKind.CHANNEL,
                f"takealot batch {view.batch_id} failed: {view.description or 'no detail given'}",
                code="batch_failed",
            )
            return [(w, error) for w in chunk]

        def sku(work: _Work) -> str | None:
            value = (work.payload or {}).get("sku")
            return str(value) if value is not None else None

        def same(work: _Work, result: wire.OfferReply) -> bool:
            # A refused write leaves the offer as it was, so its SKU may well differ (an offer
            # made in the Seller Portal, or locked by Takealot): only an accepted write must
            # show the SKU that was sent.
            if not result.ok or result.offer is None or result.offer.sku is None:
                return True
            return sku(work) is None or result.offer.sku == sku(work)

        results = view.results
        if len(results) == len(chunk) and all(
            same(w, r) for w, r in zip(chunk, results, strict=True)
        ):
            return list(zip(chunk, results, strict=True))
        by_sku = {r.offer.sku: r for r in results if r.offer is not None and r.offer.sku}
        missing = ItemError(
            ErrorKind.CHANNEL,
            f"takealot batch {view.batch_id} returned no result for this offer",
            code="batch_no_result",
        )
        return [(w, by_sku.get(sku(w) or "", missing)) for w in chunk]

    def _failed(
        self, work: _Work, errors: Sequence[ItemError], *, request_id: str | None
    ) -> Outcome:
        return Outcome(
            work.op.item_type,
            work.op.ref,
            ok=False,
            action=ItemAction.ARCHIVE if work.removal else work.op.action,
            channel_id=work.op.channel_id,
            request_id=request_id,
            errors=tuple(errors),
        )
