"""
The Takealot Seller API v2, without I/O: request builders and response readers.

Rule 1: nothing here sends, sleeps or reads a clock. Builders return `httpx.Request` objects
(plain values until a transport sends them); readers take a status, headers and body bytes and
return frozen values or raise `ChannelProtocolError`. The adapter's shell (``_channel.py``) is the
only place that talks to the network, through the shared `HttpTransport`.

Rule 2: every wire fact of the Seller API v2 lives in this module, so the newer Marketplace API
(``X-API-Key``, ``/offers/by_barcode/{barcode}``, ``/offers/batch``, ``seller_warehouse_stock``)
can get a sibling module with the same function names and the shell can pick one.

Rule 3: the API key is revealed in exactly one place, `headers`, which builds the
``Authorization: Key <key>`` header for a request about to be sent.

The facts (Swagger 2.0 "Takealot Seller API" v2.0, host ``seller-api.takealot.com``):

* ``GET|PATCH /v2/offers/offer/{identifier}``; the identifier is prefixed ``ID``, ``BARCODE`` or
  ``SKU`` (offer id by default). ``GET|PATCH|POST /v2/offers/offer?identifier=`` is the same
  operation for identifiers with special characters (``?``, ``#``, ``/``, ``:``).
* ``POST /v2/offers/offer/{barcode}`` creates an offer on a barcode that already exists in
  Takealot's catalogue (no prefix needed). Its body has no ``status_action``.
* ``POST /v2/offers/batch`` takes at most 10,000 offers, each identified by ``offer_id``,
  ``barcode`` or ``sku`` (in that precedence); ``GET /v2/offers/batch/{batch_id}`` answers
  ``{batch_id, status{id, description}, result[{offer, validation_errors[{code, message}]}]}``.
* Single writes answer ``200 {offer, validation_errors[{code, message}]}``; errors answer
  ``{message}`` (400, 403, 404, 500). Every offer response carries ``x-RateLimit-Limit``,
  ``x-RateLimit-Remaining`` and ``x-RateLimit-Reset``.
* The status, batch-status ids and descriptions are not documented; `read_batch` recognises
  completion and failure by words in the description and tolerates unknown ids.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from attrs import frozen

from ..._errors import ChannelProtocolError
from ..._models import ErrorKind, ItemError
from ..._secrets import Secret
from .._transport import Verdict, VerdictKind, retry_after


__all__ = [
    "API_VERSION",
    "CHANNEL",
    "DEFAULT_BASE_URL",
    "DISABLE",
    "MAX_BATCH",
    "MAX_SKU",
    "REENABLE",
    "BatchState",
    "BatchView",
    "Issue",
    "OfferReply",
    "OfferView",
    "RateLimit",
    "Route",
    "batch_item",
    "batch_status_request",
    "classify",
    "count_request",
    "create_body",
    "create_offer_request",
    "describe",
    "disable_batch_item",
    "get_offer_request",
    "headers",
    "identifier",
    "issue_errors",
    "not_in_catalogue",
    "read_batch",
    "read_count",
    "read_offer_reply",
    "read_rate_limit",
    "reply_errors",
    "route_of",
    "submit_batch_request",
    "update_body",
    "update_offer_request",
]

CHANNEL: Final = "takealot"
API_VERSION: Final = "v2"
DEFAULT_BASE_URL: Final = "https://seller-api.takealot.com"
MAX_BATCH: Final = 10_000
MAX_SKU: Final = 255
DISABLE: Final = "Disable"
REENABLE: Final = "Re-enable"

#: Offer fields a create (POST) body may carry: the barcode is in the path, no status action.
CREATE_FIELDS: Final = ("sku", "selling_price", "rrp", "leadtime_days", "leadtime_stock")
#: Offer fields an update (PATCH) body may carry.
UPDATE_FIELDS: Final = (*CREATE_FIELDS, "status_action")
#: Offer fields a batch item may carry besides its identifier.
BATCH_FIELDS: Final = ("barcode", *UPDATE_FIELDS)

# Identifiers that can go into the path as they are; anything else uses ``?identifier=``.
_PATH_SAFE: Final = re.compile(r"[A-Za-z0-9._~-]+")


class Route(enum.Enum):
    """
    The endpoint classes, each with its own rate-limit budget ("limits vary by endpoint").

    .. versionadded:: 0.1.0
    """

    OFFER = "offer"  #: GET, PATCH and POST of one offer
    BATCH = "batch"  #: POST /v2/offers/batch
    BATCH_STATUS = "batch_status"  #: GET /v2/offers/batch/{batch_id}
    ACCOUNT = "account"  #: GET /v2/offers/count and other read-only calls


def route_of(method: str, path: str) -> Route:
    """The endpoint class of a request, from its method and path."""
    if path.startswith("/v2/offers/batch"):
        return Route.BATCH if method.upper() == "POST" else Route.BATCH_STATUS
    if path.startswith("/v2/offers/offer"):
        return Route.OFFER
    return Route.ACCOUNT


# =================================================================================================
# Requests
# =================================================================================================


def headers(api_key: Secret) -> dict[str, str]:
    """The request headers, with ``Authorization: Key <api_key>`` (the key's only reveal)."""
    return {"Authorization": f"Key {api_key.reveal()}", "Accept": "application/json"}


def identifier(kind: str, value: str | int) -> str:
    """An offer identifier: ``identifier("BARCODE", "600...")`` -> ``"BARCODE600..."``."""
    if kind not in {"ID", "BARCODE", "SKU"}:
        msg = f"unknown identifier kind {kind!r} (ID, BARCODE or SKU)"
        raise ValueError(msg)
    return f"{kind}{value}"


def _offer_url(base_url: str, ident: str) -> tuple[str, dict[str, str]]:
    base = base_url.rstrip("/")
    if _PATH_SAFE.fullmatch(ident):
        return f"{base}/v2/offers/offer/{ident}", {}
    return f"{base}/v2/offers/offer", {"identifier": ident}


def get_offer_request(base_url: str, api_key: Secret, ident: str) -> httpx.Request:
    """``GET /v2/offers/offer/{identifier}`` (or ``?identifier=`` for special characters)."""
    url, params = _offer_url(base_url, ident)
    return httpx.Request("GET", url, params=params, headers=headers(api_key))


def update_offer_request(
    base_url: str, api_key: Secret, ident: str, body: Mapping[str, Any]
) -> httpx.Request:
    """``PATCH /v2/offers/offer/{identifier}`` with a ``V2OfferSingleUpdate`` body."""
    url, params = _offer_url(base_url, ident)
    return httpx.Request("PATCH", url, params=params, json=dict(body), headers=headers(api_key))


def create_offer_request(
    base_url: str, api_key: Secret, barcode: str, body: Mapping[str, Any]
) -> httpx.Request:
    """``POST /v2/offers/offer/{barcode}`` with a ``V2OfferSingleCreate`` body."""
    url, params = _offer_url(base_url, barcode)
    return httpx.Request("POST", url, params=params, json=dict(body), headers=headers(api_key))


def submit_batch_request(
    base_url: str, api_key: Secret, items: Sequence[Mapping[str, Any]]
) -> httpx.Request:
    """``POST /v2/offers/batch`` with up to `MAX_BATCH` ``V2OfferBatchCreateUpdate`` items."""
    if not 0 < len(items) <= MAX_BATCH:
        msg = f"a batch holds 1 to {MAX_BATCH} offers, got {len(items)}"
        raise ValueError(msg)
    url = f"{base_url.rstrip('/')}/v2/offers/batch"
    return httpx.Request("POST", url, json=[dict(i) for i in items], headers=headers(api_key))


def batch_status_request(base_url: str, api_key: Secret, batch_id: str) -> httpx.Request:
    """``GET /v2/offers/batch/{batch_id}``."""
    url = f"{base_url.rstrip('/')}/v2/offers/batch/{quote(str(batch_id), safe='')}"
    return httpx.Request("GET", url, headers=headers(api_key))


def count_request(base_url: str, api_key: Secret) -> httpx.Request:
    """``GET /v2/offers/count``: the cheapest authenticated call (used to check a connection)."""
    return httpx.Request("GET", f"{base_url.rstrip('/')}/v2/offers/count", headers=headers(api_key))


def _pick(payload: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {n: payload[n] for n in names if n in payload and payload[n] is not None}


def create_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The POST body for a rendered offer payload (no barcode, no status action)."""
    return _pick(payload, CREATE_FIELDS)


def update_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body for a rendered offer payload."""
    return _pick(payload, UPDATE_FIELDS)


def batch_item(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The batch item for a rendered offer payload, identified by its barcode."""
    return _pick(payload, BATCH_FIELDS)


def disable_batch_item(
    *, offer_id: int | None = None, barcode: str | None = None
) -> dict[str, Any]:
    """A batch item that disables an offer, by offer id (preferred) or barcode."""
    if offer_id is not None:
        return {"offer_id": offer_id, "status_action": DISABLE}
    if barcode:
        return {"barcode": barcode, "status_action": DISABLE}
    msg = "disabling an offer needs its offer id or barcode"
    raise ValueError(msg)


def describe(request: httpx.Request) -> str:
    """``METHOD /path?query {json body}`` for a person (no headers: they hold the key)."""
    target = request.url.raw_path.decode("ascii")
    body = request.content.decode("utf-8") if request.content else ""
    return f"{request.method} {target} {body}".rstrip()


# =================================================================================================
# Responses
# =================================================================================================


@frozen
class Issue:
    """
    One entry of ``validation_errors``: a Takealot code (``"E2"``) and its message.

    .. versionadded:: 0.1.0
    """

    code: str | None
    message: str


@frozen
class OfferView:
    """
    The parts of a ``V2Offer`` catalogsync uses.

    .. versionadded:: 0.1.0
    """

    offer_id: int | None = None
    sku: str | None = None
    barcode: str | None = None
    status: str | None = None
    offer_url: str | None = None

    @property
    def disabled(self) -> bool:
        """Whether the offer is disabled (by the seller or by Takealot)."""
        return bool(self.status) and str(self.status).lower().startswith("disabled")


@frozen
class OfferReply:
    """
    What one offer write (or one batch result) said.

    Attributes:
        status_code: The HTTP status (200 for a batch result).
        offer: The offer after the write, when the channel returned one.
        issues: The ``validation_errors``.
        message: The ``{message}`` of an error response.

    .. versionadded:: 0.1.0
    """

    status_code: int
    offer: OfferView | None = None
    issues: tuple[Issue, ...] = ()
    message: str | None = None

    @property
    def ok(self) -> bool:
        """Accepted: a 2xx answer without validation errors."""
        return 200 <= self.status_code < 300 and not self.issues  # noqa: PLR2004 - HTTP

    @property
    def not_found(self) -> bool:
        """The identifier matched no offer (HTTP 404)."""
        return self.status_code == 404  # noqa: PLR2004 - HTTP

    def has(self, code: str) -> bool:
        """Whether a validation error with *code* was returned."""
        return any(i.code == code for i in self.issues)


class BatchState(enum.Enum):
    """
    Where a batch stands.

    .. versionadded:: 0.1.0
    """

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@frozen
class BatchView:
    """
    A ``V2OfferBatch``: its id, status and (once done) one result per submitted offer.

    .. versionadded:: 0.1.0
    """

    batch_id: str
    state: BatchState
    status_id: int | None = None
    description: str | None = None
    results: tuple[OfferReply, ...] = ()


@frozen
class RateLimit:
    """
    The ``x-RateLimit-*`` headers of one response.

    Attributes:
        limit: Requests allowed in the window.
        remaining: Requests left in the current window.
        reset_in: Seconds until the window resets (``None`` when not given or unreadable).

    .. versionadded:: 0.1.0
    """

    limit: int | None
    remaining: int | None
    reset_in: float | None


def _json(content: bytes, status_code: int) -> Any:
    try:
        return json.loads(content.decode("utf-8")) if content else None
    except (UnicodeDecodeError, ValueError):
        raise ChannelProtocolError(
            f"takealot answered HTTP {status_code} with a body that is not JSON",
            channel=CHANNEL,
            status_code=status_code,
        ) from None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _offer(value: Any) -> OfferView | None:
    if not isinstance(value, Mapping):
        return None
    return OfferView(
        offer_id=_int_or_none(value.get("offer_id")),
        sku=_str_or_none(value.get("sku")),
        barcode=_str_or_none(value.get("barcode")),
        status=_str_or_none(value.get("status")),
        offer_url=_str_or_none(value.get("offer_url")),
    )


def _issues(value: Any, status_code: int) -> tuple[Issue, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ChannelProtocolError(
            "takealot answered validation_errors that are not a list",
            channel=CHANNEL,
            status_code=status_code,
        )
    out = []
    for entry in value:
        if isinstance(entry, Mapping):
            out.append(Issue(_str_or_none(entry.get("code")), str(entry.get("message") or "")))
        else:
            out.append(Issue(None, str(entry)))
    return tuple(out)


def read_offer_reply(status_code: int, content: bytes, *, write: bool = True) -> OfferReply:
    """
    Read the answer to a single-offer PATCH or POST (or a GET, with ``write=False``).

    ``200 {offer, validation_errors}`` (a bare ``V2Offer`` for a GET) and ``4xx/5xx {message}``
    are understood; anything else raises `ChannelProtocolError`.
    """
    body = _json(content, status_code)
    if not 200 <= status_code < 300:  # noqa: PLR2004 - HTTP
        message = body.get("message") if isinstance(body, Mapping) else None
        issues = (
            _issues(body.get("validation_errors"), status_code) if isinstance(body, Mapping) else ()
        )
        return OfferReply(status_code, issues=issues, message=_str_or_none(message))
    if not isinstance(body, Mapping):
        raise ChannelProtocolError(
            f"takealot answered HTTP {status_code} without an offer object",
            channel=CHANNEL,
            status_code=status_code,
        )
    if "offer" in body or "validation_errors" in body:
        return OfferReply(
            status_code,
            offer=_offer(body.get("offer")),
            issues=_issues(body.get("validation_errors"), status_code),
        )
    if write:
        raise ChannelProtocolError(
            f"takealot answered a write with HTTP {status_code} but neither an offer nor "
            "validation errors",
            channel=CHANNEL,
            status_code=status_code,
        )
    return OfferReply(status_code, offer=_offer(body))


_DONE_WORDS: Final = ("complete", "success", "done", "finish", "processed")
_FAILED_WORDS: Final = ("fail", "error", "reject", "cancel")


def read_batch(status_code: int, content: bytes) -> BatchView:
    """
    Read a ``V2OfferBatch`` (the answer to a batch submission or status query).

    A batch is done when its status description says so ("Completed", "Success"...), failed
    when it says "Failed"/"Error"/"Rejected", and pending otherwise. A batch that returns a full
    result list is done whatever its description says.

    Raises:
        ChannelProtocolError: not a batch object (a ``{message}`` error included: the caller
            checks the status code first).
    """
    body = _json(content, status_code)
    if not isinstance(body, Mapping) or body.get("batch_id") in (None, ""):
        raise ChannelProtocolError(
            f"takealot answered HTTP {status_code} without a batch id",
            channel=CHANNEL,
            status_code=status_code,
        )
    status = body.get("status")
    status_id = _int_or_none(status.get("id")) if isinstance(status, Mapping) else None
    raw_description = status.get("description") if isinstance(status, Mapping) else status
    description = _str_or_none(raw_description)
    text = (description or "").lower()
    raw_results = body.get("result") or []
    if not isinstance(raw_results, list):
        raise ChannelProtocolError(
            "takealot answered a batch result that is not a list",
            channel=CHANNEL,
            status_code=status_code,
        )
    results = tuple(
        OfferReply(
            200,
            offer=_offer(r.get("offer")) if isinstance(r, Mapping) else None,
            issues=_issues(r.get("validation_errors"), status_code)
            if isinstance(r, Mapping)
            else (),
        )
        for r in raw_results
    )
    if any(w in text for w in _FAILED_WORDS):
        state = BatchState.FAILED
    elif any(w in text for w in _DONE_WORDS):
        state = BatchState.DONE
    else:
        state = BatchState.PENDING
    return BatchView(str(body["batch_id"]), state, status_id, description, results)


def read_count(status_code: int, content: bytes) -> int:
    """Read ``{"count": n}`` from ``GET /v2/offers/count``."""
    body = _json(content, status_code)
    count = _int_or_none(body.get("count")) if isinstance(body, Mapping) else None
    if count is None:
        raise ChannelProtocolError(
            f"takealot answered HTTP {status_code} without an offer count",
            channel=CHANNEL,
            status_code=status_code,
        )
    return count


_MAX_RESET: Final = 3600.0
_EPOCH_S: Final = 1e9  # numbers above this are epoch seconds, not a delay
_EPOCH_MS: Final = 1e11  # and above this, epoch milliseconds


def _reset_in(value: str, now: datetime) -> float | None:
    text = value.strip()
    moment: datetime | None = None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            return None
        if number > _EPOCH_MS:
            moment = datetime.fromtimestamp(number / 1000, UTC)
        elif number > _EPOCH_S:
            moment = datetime.fromtimestamp(number, UTC)
        else:
            return min(max(0.0, number), _MAX_RESET)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return min(max(0.0, (moment - now).total_seconds()), _MAX_RESET)


def read_rate_limit(response_headers: Mapping[str, str], now: datetime) -> RateLimit | None:
    """
    Read ``x-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (``None`` when absent).

    ``Reset`` is documented as "the time when the window resets" without a format: epoch seconds,
    epoch milliseconds, ISO 8601 and HTTP dates are read as a moment (relative to *now*), a small
    number as seconds from now. Header names are case-insensitive.
    """
    lowered = {k.lower(): v for k, v in response_headers.items()}
    limit = _int_or_none(lowered.get("x-ratelimit-limit"))
    remaining = _int_or_none(lowered.get("x-ratelimit-remaining"))
    reset = lowered.get("x-ratelimit-reset")
    if limit is None and remaining is None:
        return None
    return RateLimit(limit, remaining, _reset_in(reset, now) if reset else None)


def classify(response: httpx.Response, now: datetime) -> Verdict:
    """
    What a response means for the transport.

    * 401 and 403: the API key was rejected (Takealot answers 403 "Forbidden" for a bad key).
    * 429: throttled. With a readable ``x-RateLimit-Reset`` the wait is left to the pacer
      (``wait=0``: it already blocks until the reset), else ``Retry-After`` or backoff.
    * 5xx: transient, retried with backoff.
    * A 2xx whose body is not JSON (truncated, an HTML error page): retried, since every write
      catalogsync sends is an idempotent upsert.
    """
    status = response.status_code
    if status in {401, 403}:
        return Verdict(VerdictKind.AUTH, reason=f"HTTP {status}")
    if status == 429:  # noqa: PLR2004 - HTTP
        rate = read_rate_limit(response.headers, now)
        if rate is not None and rate.reset_in is not None:
            return Verdict(VerdictKind.THROTTLED, 0.0, "HTTP 429")
        return Verdict(VerdictKind.THROTTLED, retry_after(response), "HTTP 429")
    if status >= 500:  # noqa: PLR2004 - HTTP
        return Verdict(VerdictKind.RETRY, retry_after(response), f"HTTP {status}")
    if 200 <= status < 300 and response.content:  # noqa: PLR2004 - HTTP
        try:
            json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Verdict(VerdictKind.RETRY, reason=f"HTTP {status} with an unreadable body")
    return Verdict.ok()


# =================================================================================================
# Errors for items
# =================================================================================================

# The field each transcribed validation code is about (E1-E33).
_CODE_FIELDS: Final[Mapping[str, str]] = {
    "E2": "barcode",
    "E3": "barcode",
    "E4": "barcode",
    "E5": "barcode",
    "E6": "sku",
    "E8": "sku",
    "E10": "sku",
    "E11": "status_action",
    "E12": "status_action",
    "E13": "sku",
    "E14": "leadtime_days",
    "E15": "leadtime_stock",
    "E16": "leadtime_stock",
    "E17": "leadtime_stock",
    "E18": "leadtime_stock",
    "E19": "selling_price",
    "E20": "selling_price",
    "E21": "selling_price",
    "E22": "rrp",
    "E23": "rrp",
    "E24": "rrp",
    "E25": "leadtime_days",
    "E26": "leadtime_days",
    "E27": "sku",
    "E28": "leadtime_days",
    "E30": "leadtime_stock",
    "E31": "offer_id",
    "E33": "barcode",
}


def not_in_catalogue(barcode: str) -> ItemError:
    """The item error for a barcode Takealot's catalogue does not have (code ``E2``)."""
    return ItemError(
        ErrorKind.CHANNEL,
        f"barcode {barcode} is not in the Takealot catalogue (E2): Takealot owns its catalogue, "
        "so an offer can only be made for a barcode it already lists",
        code="E2",
        field="barcode",
    )


def issue_errors(issues: Iterable[Issue], *, barcode: str | None) -> tuple[ItemError, ...]:
    """Turn ``validation_errors`` into ``CHANNEL`` item errors, naming the field when known."""
    out = []
    for issue in issues:
        if issue.code == "E2" and barcode:
            out.append(not_in_catalogue(barcode))
            continue
        label = f" ({issue.code})" if issue.code else ""
        out.append(
            ItemError(
                ErrorKind.CHANNEL,
                f"{issue.message or 'rejected'}{label}",
                code=issue.code,
                field=_CODE_FIELDS.get(issue.code or ""),
            )
        )
    return tuple(out)


def reply_errors(reply: OfferReply, *, barcode: str | None) -> tuple[ItemError, ...]:
    """Every problem a failed reply reports, as ``CHANNEL`` item errors."""
    errors = issue_errors(reply.issues, barcode=barcode)
    if errors:
        return errors
    message = reply.message or "no detail given"
    return (
        ItemError(
            ErrorKind.CHANNEL,
            f"takealot refused the request (HTTP {reply.status_code}): {message}",
            code=f"HTTP {reply.status_code}",
        ),
    )
