"""`MemoryChannel`: a `Channel` that keeps what it received in memory, with knobs for failures."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .._clock import Clock, SystemClock
from .._errors import ChannelAuthError
from .._models import (
    ConnectorParams,
    Endpoint,
    ErrorKind,
    Item,
    ItemAction,
    ItemError,
    ItemKey,
    ItemType,
    Mode,
)
from ..typing import Capabilities, ConnectionInfo, Operation, Outcome, Payload, RenderContext


__all__ = ["MemoryChannel"]

_DEFAULT_CAPABILITIES = Capabilities(
    reads={(ItemType.PRODUCT, ItemType.VARIANT), (ItemType.PRODUCT, ItemType.CATEGORY)},
    reads_ids={(ItemType.PRODUCT, ItemType.CATEGORY)},
)


def _price_ok(price: Any) -> bool:
    """A finite number >= 0 (NaN and infinities hash as null and must never be sent)."""
    return (
        isinstance(price, (int, float))
        and not isinstance(price, bool)
        and math.isfinite(price)
        and price >= 0
    )


class MemoryChannel:
    """
    A `catalogsync.typing.Channel` with no network: it stores what it is sent.

    It renders a generic payload (title and other fields in the connector's language, status per
    rule R10, a product's variant refs and category ids), validates that products and categories
    have a title and that prices are non-negative numbers, and applies operations to `listings`.
    Upserts are idempotent by ``(type, ref)``, so a re-delivery never creates a second listing;
    `creates` counts real creations per key to prove it.

    Knobs for tests:

    * ``reject``: refs the channel rejects with a ``CHANNEL`` error (``{ref: message}``).
    * ``fail_transiently``: refs that fail with a ``TRANSPORT`` error the next *n* pushes.
    * ``latency``: seconds each `push` takes (real or on ``clock``).
    * ``auth_error``: `check_connection` (and `push`) fail as if the credentials were rejected.
    * ``deprecation`` / ``served_version``: what `check_connection` reports.
    * ``capabilities``: to act like a channel that carries variants or skips categories.
    * ``on_push``: a hook called with each batch before it is applied (to inject crashes).

    Example:
        >>> from catalogsync.testing import MemoryChannel
        >>> channel = MemoryChannel(reject={"P13": "SKU already exists"})
        >>> channel.name
        'memory'

    .. versionadded:: 0.1.0
    """

    name = "memory"

    def __init__(
        self,
        *,
        capabilities: Capabilities | None = None,
        reject: Mapping[str, str] | None = None,
        fail_transiently: Mapping[str, int] | None = None,
        latency: float = 0.0,
        clock: Clock | None = None,
        auth_error: bool = False,
        deprecation: str | None = None,
        api_version: str = "1",
        served_version: str | None = None,
        on_push: Callable[[Sequence[Operation]], None] | None = None,
    ) -> None:
        self.capabilities = capabilities or _DEFAULT_CAPABILITIES
        self.reject = dict(reject or {})
        self.fail_transiently = dict(fail_transiently or {})
        self.latency = latency
        self.clock = clock or SystemClock()
        self.auth_error = auth_error
        self.deprecation = deprecation
        self.api_version = api_version
        self.served_version = served_version
        self.on_push = on_push
        self._lock = threading.Lock()
        #: What the channel holds, by ``(type, ref)``: the last payload accepted, with its status.
        self.listings: dict[ItemKey, dict[str, Any]] = {}
        #: Channel ids handed out, by ``(type, ref)``.
        self.ids: dict[ItemKey, str] = {}
        #: How many times each key was really created (> 1 would be a duplicate).
        self.creates: dict[ItemKey, int] = {}
        #: Every operation received, in order: ``(action, type, ref)``.
        self.log: list[tuple[ItemAction, ItemType, str]] = []
        #: Number of `push` calls.
        self.pushes = 0

    # -- Channel --------------------------------------------------------------------------------

    def check_connection(self, params: ConnectorParams) -> ConnectionInfo:
        """Report the configured version and deprecation, or fail like a bad token."""
        if self.auth_error:
            raise ChannelAuthError("memory channel: invalid credentials", channel=self.name)
        endpoint = Endpoint.TEST if params.mode is Mode.TEST else Endpoint.PRODUCTION
        return ConnectionInfo(
            api_version=self.api_version,
            served_version=self.served_version or self.api_version,
            deprecation=self.deprecation,
            endpoint=endpoint,
            details={"channel": "memory"},
        )

    def render(self, item: Item, ctx: RenderContext) -> Payload:
        """A generic payload: mapped, localised fields; status; relations the channel reads."""
        fields: dict[str, Any] = {}
        translations: dict[str, Any] = {}
        for name in item.fields:
            if name == "stock" and not ctx.params.overwrite_stock:
                continue
            fields[name] = ctx.value(item, name)
            other = ctx.translations(item, name)
            if other:
                translations[name] = dict(other)
        payload: dict[str, Any] = {
            "type": item.type.value,
            "ref": item.ref,
            "status": ctx.status(item).value,
            "fields": fields,
        }
        if translations:
            payload["translations"] = translations
        if item.type is ItemType.PRODUCT:
            if self.capabilities.reads_from(ItemType.PRODUCT, ItemType.VARIANT):
                payload["variants"] = [self.render(v, ctx) for v in ctx.variants_of(item)]
            if self.capabilities.reads_from(ItemType.PRODUCT, ItemType.CATEGORY):
                payload["categories"] = [
                    {"id": ctx.channel_id(ItemType.CATEGORY, c.ref), "title": ctx.value(c, "title")}
                    for c in ctx.categories_of(item)
                ]
        elif item.type is ItemType.VARIANT and self.capabilities.reads_from(
            ItemType.VARIANT, ItemType.PRODUCT
        ):
            product = ctx.product_of(item)
            payload["product_title"] = None if product is None else ctx.value(product, "title")
        return payload

    def validate(self, item: Item, payload: Payload, ctx: RenderContext) -> Sequence[ItemError]:
        """Every problem at once: a title for categories and products, sane prices."""
        errors: list[ItemError] = []
        fields = payload.get("fields", {})
        if item.type is not ItemType.VARIANT:
            title = fields.get("title")
            if not isinstance(title, str) or not title.strip():
                errors.append(
                    ItemError(ErrorKind.VALIDATION, "title is required", "required", "title")
                )
            elif len(title) > 255:  # noqa: PLR2004 - the channel's limit
                errors.append(
                    ItemError(ErrorKind.VALIDATION, "title is longer than 255", "too_long", "title")
                )
        price = fields.get("price")
        if price is not None and not _price_ok(price):
            errors.append(
                ItemError(
                    ErrorKind.VALIDATION,
                    f"price must be a finite number >= 0, got {price!r:.40}",
                    "invalid",
                    "price",
                )
            )
        for index, variant in enumerate(payload.get("variants", ())):
            vprice = variant.get("fields", {}).get("price")
            if vprice is not None and not _price_ok(vprice):
                errors.append(
                    ItemError(
                        ErrorKind.VALIDATION,
                        f"price must be a finite number >= 0, got {vprice!r:.40}",
                        "invalid",
                        f"variants[{index}].fields.price",
                    )
                )
        return errors

    def push(self, operations: Sequence[Operation], params: ConnectorParams) -> Sequence[Outcome]:
        """Apply *operations*; honour the failure knobs; one outcome per (carried) operation."""
        if self.on_push is not None:
            self.on_push(operations)
        if self.latency:
            self.clock.sleep(self.latency)
        if self.auth_error:
            raise ChannelAuthError("memory channel: invalid credentials", channel=self.name)
        endpoint = Endpoint.TEST if params.mode is Mode.TEST else Endpoint.PRODUCTION
        outcomes: list[Outcome] = []
        with self._lock:
            self.pushes += 1
            for op in operations:
                outcomes.extend(self._apply(op, endpoint))
        return outcomes

    def _apply(self, op: Operation, endpoint: Endpoint) -> list[Outcome]:
        self.log.append((op.action, op.item_type, op.ref))
        for carried in op.carried:
            self.log.append((carried.action, carried.item_type, carried.ref))
        failure = self._failure(op)
        if failure is not None:
            return [
                Outcome(o.item_type, o.ref, ok=False, endpoint=endpoint, errors=(failure,))
                for o in (op, *op.carried)
            ]
        out = [self._write(op, endpoint)]
        out.extend(self._write(c, endpoint) for c in op.carried)
        return out

    def _failure(self, op: Operation) -> ItemError | None:
        for o in (op, *op.carried):
            remaining = self.fail_transiently.get(o.ref, 0)
            if remaining:
                self.fail_transiently[o.ref] = remaining - 1
                return ItemError(
                    ErrorKind.TRANSPORT, "memory channel: connection reset (injected)", "reset"
                )
            if o.ref in self.reject:
                return ItemError(ErrorKind.CHANNEL, self.reject[o.ref], "rejected")
        return None

    def _write(self, op: Operation, endpoint: Endpoint) -> Outcome:
        key = op.key
        request_id = f"mem-{self.pushes}-{len(self.log)}"
        if endpoint is Endpoint.TEST:  # a test surface: validate, store nothing
            return Outcome(
                op.item_type,
                op.ref,
                ok=True,
                action=op.action,
                endpoint=endpoint,
                request_id=request_id,
                message="test endpoint: nothing persisted",
            )
        if op.action is ItemAction.DELETE:
            self.listings.pop(key, None)
            self.ids.pop(key, None)
            return Outcome(
                op.item_type,
                op.ref,
                ok=True,
                action=ItemAction.DELETE,
                endpoint=endpoint,
                request_id=request_id,
            )
        action = op.action
        if key not in self.ids:
            self.ids[key] = f"mem:{op.item_type.value}:{op.ref}"
            self.creates[key] = self.creates.get(key, 0) + 1
            if action is ItemAction.UPDATE:
                action = ItemAction.CREATE
        elif action is ItemAction.CREATE:
            action = ItemAction.UPDATE  # upsert found it: a retry after a crash
        if op.action is ItemAction.ARCHIVE:
            listing = dict(self.listings.get(key, {}))
            listing["status"] = "archived"
            self.listings[key] = listing
        else:
            self.listings[key] = dict(op.payload or {})
        return Outcome(
            op.item_type,
            op.ref,
            ok=True,
            action=action,
            channel_id=self.ids[key],
            channel_url=f"memory://{op.item_type.value}/{op.ref}",
            request_id=request_id,
            endpoint=endpoint,
            memo={"pushes": str(self.pushes)},
        )

    # -- helpers for tests ----------------------------------------------------------------------

    def refs(self, item_type: ItemType, *, statuses: Collection[str] | None = None) -> set[str]:
        """Refs of listings of *item_type*, optionally only with one of *statuses*."""
        with self._lock:
            return {
                ref
                for (t, ref), listing in self.listings.items()
                if t is item_type and (statuses is None or listing.get("status") in statuses)
            }

    def duplicates(self) -> dict[ItemKey, int]:
        """Keys created more than once (should always be empty)."""
        with self._lock:
            return {k: n for k, n in self.creates.items() if n > 1}

    def __repr__(self) -> str:
        return f"MemoryChannel(listings={len(self.listings)})"
