"""
Amazon SP-API, sans I/O: marketplaces and hosts, request builders, response interpreters, and the
choice of write operation for one item.

Rule 1: nothing here sends, sleeps or reads a clock. Builders take the access token and the
current time as arguments and return an `httpx.Request`; interpreters take an `httpx.Response`
and return values or raise typed errors. The shell in ``_channel.py`` does the I/O.

Rule 2: the wire shapes follow the official models (Listings Items API 2021-08-01, Login with
Amazon token exchange). ``tests/test_amazon_contract.py`` checks every request built here against
the Swagger model, so a field renamed here without the model agreeing fails the suite.

Rule 3: a SKU goes into the path percent-encoded as a single segment: spaces, ``/``, ``+``, ``%``,
``#``, ``?`` and non-ASCII characters are all escaped (an unescaped ``/`` is a classic 403).

Theory of operation for writes (`plan_write`):

* ``putListingsItem`` replaces the whole listing. It is used to create, and to update when the
  content changed and catalogsync also owns the stock (``overwrite_stock``) or the listing has no
  stock at all (a variation parent).
* ``patchListingsItem`` replaces top-level attributes. It is used when only the offer part (price,
  quantity) changed, and for content changes while catalogsync must not touch the stock: a PUT
  would drop the merchant-fulfilled quantity the seller keeps on Amazon, so every attribute is
  replaced one by one and attributes that disappeared are deleted, except the stock.
* The channel remembers, per item, a digest of the non-offer content and the attribute names it
  sent (`Outcome.memo`), so the next push can tell the two cases apart without reading Amazon.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx
from attrs import field, frozen

from ..._errors import ChannelAuthError, ChannelProtocolError, InvalidArgumentError
from ..._hashing import ChangeHasher
from ..._models import ErrorKind, ItemError
from ..._secrets import Secret, redact
from .._transport import Verdict, VerdictKind


__all__ = [
    "API_VERSION",
    "LWA_TOKEN_URL",
    "MARKETPLACES",
    "OFFER_ATTRIBUTES",
    "Issue",
    "Marketplace",
    "NoWrite",
    "Submission",
    "Target",
    "TokenGrant",
    "WritePlan",
    "classify",
    "content_digest",
    "delete_request",
    "get_request",
    "host",
    "issue_errors",
    "listing_path",
    "marketplace",
    "patch_request",
    "plan_archive",
    "plan_write",
    "put_request",
    "rate_limit",
    "read_errors",
    "read_submission",
    "read_token",
    "request_id",
    "token_request",
]

CHANNEL: Final = "amazon"
API_VERSION: Final = "2021-08-01"
LISTINGS_PREFIX: Final = f"/listings/{API_VERSION}/items"
LWA_TOKEN_URL: Final = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - a URL
PREVIEW: Final = "VALIDATION_PREVIEW"

GET: Final = "getListingsItem"
PUT: Final = "putListingsItem"
PATCH: Final = "patchListingsItem"
DELETE: Final = "deleteListingsItem"

#: Attributes that make up the offer (sales terms): a change to only these is sent as a PATCH.
OFFER_ATTRIBUTES: Final = frozenset({"purchasable_offer", "fulfillment_availability"})
#: Never deleted by a PATCH: the seller may manage it on Amazon when ``overwrite_stock`` is off.
STOCK_ATTRIBUTE: Final = "fulfillment_availability"

_hasher = ChangeHasher()


# =================================================================================================
# Marketplaces and hosts
# =================================================================================================


@frozen
class Marketplace:
    """
    An Amazon store: its id, the SP-API region that serves it, and its defaults.

    Attributes:
        id: The marketplace id (``"ATVPDKIKX0DER"``).
        country: ISO 3166 country code (``"US"``, ``"GB"``).
        region: The SP-API region: ``"na"``, ``"eu"`` or ``"fe"``.
        language_tag: The default language tag for text attributes (``"en_US"``).
        currency: The ISO 4217 currency of prices (``"USD"``).
        domain: The retail site (``"amazon.com"``), for product links.

    Example:
        >>> from catalogsync.channels.amazon import marketplace
        >>> us = marketplace("US")
        >>> us.id, us.region, us.currency
        ('ATVPDKIKX0DER', 'na', 'USD')

    .. versionadded:: 0.1.0
    """

    id: str
    country: str
    region: str = field()
    language_tag: str
    currency: str
    domain: str

    @region.validator
    def _check_region(self, _attribute: Any, value: str) -> None:
        if value not in _HOSTS:
            raise InvalidArgumentError(
                f"Marketplace.region must be one of {sorted(_HOSTS)}, got {value!r}",
                field="Marketplace.region",
            )


_HOSTS: Final = {
    "na": "sellingpartnerapi-na.amazon.com",
    "eu": "sellingpartnerapi-eu.amazon.com",
    "fe": "sellingpartnerapi-fe.amazon.com",
}

# Source: developer-docs.amazon.com/sp-api/docs/marketplace-ids and .../sp-api-endpoints.
MARKETPLACES: Final[Mapping[str, Marketplace]] = {
    m.id: m
    for m in (
        Marketplace("ATVPDKIKX0DER", "US", "na", "en_US", "USD", "amazon.com"),
        Marketplace("A2EUQ1WTGCTBG2", "CA", "na", "en_CA", "CAD", "amazon.ca"),
        Marketplace("A1AM78C64UM0Y8", "MX", "na", "es_MX", "MXN", "amazon.com.mx"),
        Marketplace("A2Q3Y263D00KWC", "BR", "na", "pt_BR", "BRL", "amazon.com.br"),
        Marketplace("A1F83G8C2ARO7P", "GB", "eu", "en_GB", "GBP", "amazon.co.uk"),
        Marketplace("A1PA6795UKMFR9", "DE", "eu", "de_DE", "EUR", "amazon.de"),
        Marketplace("A13V1IB3VIYZZH", "FR", "eu", "fr_FR", "EUR", "amazon.fr"),
        Marketplace("APJ6JRA9NG5V4", "IT", "eu", "it_IT", "EUR", "amazon.it"),
        Marketplace("A1RKKUPIHCS9HS", "ES", "eu", "es_ES", "EUR", "amazon.es"),
        Marketplace("A1805IZSGTT6HS", "NL", "eu", "nl_NL", "EUR", "amazon.nl"),
        Marketplace("AE08WJ6YKNBMC", "ZA", "eu", "en_ZA", "ZAR", "amazon.co.za"),
        Marketplace("A2VIGQ35RCS4UG", "AE", "eu", "en_AE", "AED", "amazon.ae"),
        Marketplace("A21TJRUUN4KGV", "IN", "eu", "en_IN", "INR", "amazon.in"),
        Marketplace("A1VC38T7YXB528", "JP", "fe", "ja_JP", "JPY", "amazon.co.jp"),
        Marketplace("A39IBJ37TRP1C6", "AU", "fe", "en_AU", "AUD", "amazon.com.au"),
    )
}

_BY_COUNTRY: Final = {m.country: m for m in MARKETPLACES.values()} | {
    "UK": MARKETPLACES["A1F83G8C2ARO7P"]
}

#: Digits after the decimal point a price may have, per currency (2 unless listed).
CURRENCY_DIGITS: Final = {"JPY": 0}


def marketplace(value: str | Marketplace) -> Marketplace:
    """
    Look up a marketplace by id (``"A1PA6795UKMFR9"``) or country code (``"DE"``, ``"UK"``).

    Pass a `Marketplace` you built yourself for a store missing from the table.

    Raises:
        InvalidArgumentError: the value is neither a known id nor a known country code.

    .. versionadded:: 0.1.0
    """
    if isinstance(value, Marketplace):
        return value
    if isinstance(value, str):
        found = MARKETPLACES.get(value) or _BY_COUNTRY.get(value.upper())
        if found is not None:
            return found
    raise InvalidArgumentError(
        f"unknown Amazon marketplace {value!r}: give a marketplace id or country code from "
        "catalogsync.channels.amazon.MARKETPLACES, or a Marketplace(...) of your own",
        field="marketplace",
    )


def host(region: str, *, sandbox: bool = False) -> str:
    """The SP-API base URL of *region* (``"na"``, ``"eu"``, ``"fe"``), or its sandbox."""
    name = _HOSTS[region]
    return f"https://sandbox.{name}" if sandbox else f"https://{name}"


def language_tag(language: str, market: Marketplace) -> str:
    """
    The Amazon language tag for a connector *language* in *market*.

    ``"en"`` in the US is ``"en_US"``; a language with a region (``"fr-CA"``) is used as given;
    any other bare language is paired with the marketplace's country (``"es"`` -> ``"es_US"``).
    """
    lang = language.replace("-", "_")
    if "_" in lang:
        base, _, region = lang.partition("_")
        return f"{base.lower()}_{region.upper()}"
    if lang.lower() == market.language_tag.partition("_")[0]:
        return market.language_tag
    return f"{lang.lower()}_{market.country}"


# =================================================================================================
# Requests
# =================================================================================================


@frozen
class Target:
    """
    Where listing requests go and who makes them (no secret here).

    Attributes:
        base_url: The SP-API host (``https://sellingpartnerapi-na.amazon.com``).
        seller_id: The selling partner id (merchant token).
        marketplace_id: The one marketplace each write addresses.
        issue_locale: Locale for issue messages (``"en_US"``), or ``None`` for Amazon's default.
        user_agent: The ``user-agent`` header Amazon asks for.
    """

    base_url: str
    seller_id: str
    marketplace_id: str
    issue_locale: str | None = None
    user_agent: str = "catalogsync (Language=Python)"


def listing_path(seller_id: str, sku: str) -> str:
    """The percent-encoded path of one listing (the SKU as one escaped path segment)."""
    return f"{LISTINGS_PREFIX}/{quote(seller_id, safe='')}/{quote(sku, safe='')}"


def amz_date(now: datetime) -> str:
    """The ``x-amz-date`` header value (ISO 8601 basic format, UTC)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _headers(target: Target, token: str, now: datetime, *, body: bool) -> dict[str, str]:
    headers = {
        "accept": "application/json",
        "user-agent": target.user_agent,
        "x-amz-access-token": token,
        "x-amz-date": amz_date(now),
    }
    if body:
        headers["content-type"] = "application/json"
    return headers


def _query(
    target: Target, *, preview: bool = False, included: Sequence[str] = ()
) -> dict[str, str]:
    params = {"marketplaceIds": target.marketplace_id}
    if included:
        params["includedData"] = ",".join(included)
    if preview:
        params["mode"] = PREVIEW
    if target.issue_locale:
        params["issueLocale"] = target.issue_locale
    return params


def _body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def get_request(
    target: Target,
    sku: str,
    *,
    token: str,
    now: datetime,
    included: Sequence[str] = ("summaries",),
) -> httpx.Request:
    """Build ``getListingsItem`` for *sku*."""
    return httpx.Request(
        "GET",
        target.base_url + listing_path(target.seller_id, sku),
        params=_query(target, included=included),
        headers=_headers(target, token, now, body=False),
    )


def put_request(
    target: Target,
    sku: str,
    body: Mapping[str, Any],
    *,
    token: str,
    now: datetime,
    preview: bool = False,
) -> httpx.Request:
    """
    Build ``putListingsItem`` (full create or replace) with a ``ListingsItemPutRequest`` body.

    With *preview*, ``mode=VALIDATION_PREVIEW`` asks Amazon to validate without saving, and the
    ASIN identifiers are requested too (only allowed in that mode).
    """
    included = ("identifiers", "issues") if preview else ("issues",)
    return httpx.Request(
        "PUT",
        target.base_url + listing_path(target.seller_id, sku),
        params=_query(target, preview=preview, included=included),
        headers=_headers(target, token, now, body=True),
        content=_body(body),
    )


def patch_request(
    target: Target,
    sku: str,
    body: Mapping[str, Any],
    *,
    token: str,
    now: datetime,
    preview: bool = False,
) -> httpx.Request:
    """Build ``patchListingsItem`` with a ``ListingsItemPatchRequest`` body (JSON Patch ops)."""
    included = ("identifiers", "issues") if preview else ("issues",)
    return httpx.Request(
        "PATCH",
        target.base_url + listing_path(target.seller_id, sku),
        params=_query(target, preview=preview, included=included),
        headers=_headers(target, token, now, body=True),
        content=_body(body),
    )


def delete_request(target: Target, sku: str, *, token: str, now: datetime) -> httpx.Request:
    """Build ``deleteListingsItem`` for *sku*."""
    return httpx.Request(
        "DELETE",
        target.base_url + listing_path(target.seller_id, sku),
        params=_query(target),
        headers=_headers(target, token, now, body=False),
    )


# =================================================================================================
# Login with Amazon
# =================================================================================================


@frozen
class TokenGrant:
    """
    An access token from the LWA token endpoint.

    Attributes:
        access_token: The token (``Atza|...``), masked everywhere but on the wire.
        expires_in: Seconds it stays valid (3600 per Amazon).
    """

    access_token: Secret
    expires_in: float


def token_request(
    token_url: str,
    *,
    client_id: str,
    client_secret: Secret,
    refresh_token: Secret,
    user_agent: str,
) -> httpx.Request:
    """Build the LWA refresh-token exchange (form-encoded ``POST /auth/o2/token``)."""
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.reveal(),
            "client_id": client_id,
            "client_secret": client_secret.reveal(),
        }
    )
    return httpx.Request(
        "POST",
        token_url,
        headers={
            "content-type": "application/x-www-form-urlencoded;charset=UTF-8",
            "accept": "application/json",
            "user-agent": user_agent,
        },
        content=form.encode(),
    )


_AUTH_HINTS: Final = {
    "invalid_grant": (
        "Amazon rejected the refresh token (invalid_grant): the seller revoked the "
        "authorization, or the token was never granted to this app. Have the seller authorize "
        "the app again and store the new refresh token."
    ),
    "invalid_client": (
        "Amazon rejected the app credentials (invalid_client): check the LWA client id and "
        "client secret of the app (they rotate; a rotated secret stops working)."
    ),
    "unauthorized_client": (
        "Amazon says this app may not use the refresh-token grant (unauthorized_client)."
    ),
}


def read_token(response: httpx.Response) -> TokenGrant:
    """
    Interpret the LWA token response.

    Raises:
        ChannelAuthError: the credentials were rejected (``invalid_grant``, ``invalid_client``).
        ChannelProtocolError: the answer was not a token.
    """
    data = _json(response)
    if response.status_code == 200 and isinstance(data, dict):  # noqa: PLR2004 - HTTP status
        token = data.get("access_token")
        expires = data.get("expires_in", 3600)
        if isinstance(token, str) and token and _is_number(expires):
            return TokenGrant(Secret(token), float(expires))
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code = data["error"]
        description = data.get("error_description")
        message = _AUTH_HINTS.get(code) or f"Amazon refused the token exchange ({code})"
        if isinstance(description, str) and description and code not in _AUTH_HINTS:
            message += f": {redact(description)}"
        raise ChannelAuthError(message, channel=CHANNEL, status_code=response.status_code)
    raise ChannelProtocolError(
        f"Login with Amazon answered HTTP {response.status_code} without an access token",
        channel=CHANNEL,
        status_code=response.status_code,
    )


# =================================================================================================
# Responses
# =================================================================================================


@frozen
class Issue:
    """
    One issue Amazon reported about a submission.

    Attributes:
        code: Amazon's issue code (``"90220"``).
        message: What is wrong.
        severity: ``ERROR``, ``WARNING`` or ``INFO``.
        attribute_names: The attributes concerned.
        categories: Issue categories (``MISSING_ATTRIBUTE``...).
    """

    code: str
    message: str
    severity: str
    attribute_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def as_error(self, kind: ErrorKind = ErrorKind.CHANNEL) -> ItemError:
        """This issue as an `ItemError`: the severity leads the message, attributes the field."""
        where = ", ".join(self.attribute_names) or None
        return ItemError(kind, f"[{self.severity}] {self.message}", code=self.code, field=where)


@frozen
class Submission:
    """
    What a listings write answered.

    Attributes:
        http_status: The HTTP status.
        request_id: ``x-amzn-RequestId`` (quote it to Amazon support).
        status: ``ACCEPTED``, ``INVALID`` or ``VALID``; ``None`` for an error answer.
        submission_id: Amazon's id of the submission.
        issues: Issues from a 200 answer.
        errors: ``ErrorList`` entries from a 4xx answer, as ``CHANNEL`` item errors.
        asin: The ASIN when identifiers were returned (validation preview).
    """

    http_status: int
    request_id: str | None
    status: str | None = None
    submission_id: str | None = None
    issues: tuple[Issue, ...] = ()
    errors: tuple[ItemError, ...] = ()
    asin: str | None = None

    @property
    def ok(self) -> bool:
        """Whether Amazon took the submission (``ACCEPTED``, or ``VALID`` in a preview)."""
        return self.status in {"ACCEPTED", "VALID"}


def request_id(response: httpx.Response) -> str | None:
    """The ``x-amzn-RequestId`` header, if any."""
    value = response.headers.get("x-amzn-requestid")
    return str(value) if value else None


def rate_limit(response: httpx.Response) -> float | None:
    """The ``x-amzn-RateLimit-Limit`` header as requests per second, if present and sane."""
    value = response.headers.get("x-amzn-ratelimit-limit")
    if value is None:
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def classify(response: httpx.Response) -> Verdict:
    """
    Classify a listings response for the transport.

    429 (``QuotaExceeded``: Amazon sends no ``Retry-After``) is a throttle, 5xx is transient, and a
    2xx answer that is not JSON is retried too (every write catalogsync makes is idempotent: full
    replace, attribute replace, delete). Everything else is final and read by `read_submission`.
    """
    status = response.status_code
    if status == 429:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.THROTTLED, None, "HTTP 429 QuotaExceeded")
    if status >= 500:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, None, f"HTTP {status}")
    if 200 <= status < 300 and not isinstance(_json(response), dict):  # noqa: PLR2004
        return Verdict(VerdictKind.RETRY, None, f"HTTP {status} with an unreadable body")
    return Verdict.ok()


def classify_token(response: httpx.Response) -> Verdict:
    """Classify an LWA token response: 429 throttle, 5xx transient, anything else final."""
    status = response.status_code
    if status == 429:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.THROTTLED, None, "HTTP 429")
    if status >= 500:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, None, f"HTTP {status}")
    return Verdict.ok()


def is_token_rejection(response: httpx.Response) -> bool:
    """Whether a 403 says the access token itself was refused (expired, revoked, malformed)."""
    if response.status_code != 403:  # noqa: PLR2004 - HTTP status
        return False
    return any(e.code == "Unauthorized" for e in read_errors(response))


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def read_errors(response: httpx.Response) -> tuple[ItemError, ...]:
    """The ``ErrorList`` of an error answer as ``CHANNEL`` item errors (details appended)."""
    data = _json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    out: list[ItemError] = []
    if isinstance(errors, list):
        for e in errors:
            if not isinstance(e, dict):
                continue
            code = e.get("code") if isinstance(e.get("code"), str) else None
            message = e.get("message") if isinstance(e.get("message"), str) else ""
            details = e.get("details")
            if isinstance(details, str) and details and details != message:
                message = f"{message} ({details})" if message else details
            text = f"HTTP {response.status_code}: {message or 'no message'}"
            out.append(ItemError(ErrorKind.CHANNEL, redact(text), code=code))
    if not out:
        out.append(
            ItemError(
                ErrorKind.CHANNEL,
                f"HTTP {response.status_code} from Amazon without a readable error list",
                code=f"HTTP {response.status_code}",
            )
        )
    return tuple(out)


def _issue(raw: Any) -> Issue | None:
    if not isinstance(raw, dict):
        return None
    code, message, severity = raw.get("code"), raw.get("message"), raw.get("severity")
    if not isinstance(message, str):
        return None
    return Issue(
        code=code if isinstance(code, str) else "",
        message=redact(message),
        severity=severity if isinstance(severity, str) else "ERROR",
        attribute_names=_strings(raw.get("attributeNames")),
        categories=_strings(raw.get("categories")),
    )


def read_submission(response: httpx.Response) -> Submission:
    """
    Interpret a ``ListingsItemSubmissionResponse`` (200) or an ``ErrorList`` (4xx).

    Raises:
        ChannelProtocolError: a 200 answer that is not a submission response.
    """
    rid = request_id(response)
    status = response.status_code
    if status != 200:  # noqa: PLR2004 - HTTP status
        return Submission(status, rid, errors=read_errors(response))
    data = _json(response)
    verdict = data.get("status") if isinstance(data, dict) else None
    if not isinstance(data, dict) or verdict not in {"ACCEPTED", "INVALID", "VALID"}:
        raise ChannelProtocolError(
            "Amazon answered HTTP 200 without a listings submission status",
            channel=CHANNEL,
            status_code=status,
            request_id=rid,
        )
    issues = tuple(i for i in map(_issue, data.get("issues") or ()) if i is not None)
    asin = None
    for ident in data.get("identifiers") or ():
        if isinstance(ident, dict) and isinstance(ident.get("asin"), str):
            asin = ident["asin"]
            break
    submission_id = data.get("submissionId")
    return Submission(
        status,
        rid,
        status=verdict,
        submission_id=submission_id if isinstance(submission_id, str) else None,
        issues=issues,
        asin=asin,
    )


def issue_errors(
    submission: Submission,
) -> tuple[tuple[ItemError, ...], tuple[ItemError, ...]]:
    """
    Split a submission's issues into ``(errors, warnings)``.

    For an ``INVALID`` submission the ``ERROR`` issues are errors; everything else (``WARNING``,
    ``INFO``, and issues on an accepted submission) is kept as a warning, never dropped.
    """
    errors: list[ItemError] = []
    warnings: list[ItemError] = []
    for issue in submission.issues:
        if submission.status == "INVALID" and issue.severity == "ERROR":
            errors.append(issue.as_error())
        else:
            warnings.append(issue.as_error())
    if submission.status == "INVALID" and not errors:
        errors.append(
            ItemError(
                ErrorKind.CHANNEL,
                "Amazon found the submission INVALID without naming an error issue",
                code="INVALID",
            )
        )
    return tuple(errors), tuple(warnings)


# =================================================================================================
# Choosing the write
# =================================================================================================


def content_digest(payload: Mapping[str, Any]) -> str:
    """A digest of everything in a rendered payload except the offer (price and stock)."""
    attributes = payload.get("attributes") or {}
    return _hasher.digest(
        {
            "productType": payload.get("productType"),
            "requirements": payload.get("requirements"),
            "attributes": {k: v for k, v in attributes.items() if k not in OFFER_ATTRIBUTES},
        }
    )


@frozen
class WritePlan:
    """
    The request one item needs (pure data; the shell sends it).

    Attributes:
        operation: ``putListingsItem``, ``patchListingsItem`` or ``deleteListingsItem``.
        sku: The listing's SKU.
        body: The request body (``None`` for a delete).
        reason: Why this operation was chosen, for the outcome message.
        memo: What to remember when Amazon takes it (`Outcome.memo`).
    """

    operation: str
    sku: str
    body: Mapping[str, Any] | None
    reason: str
    memo: Mapping[str, str] = field(factory=dict)


def memo_for(payload: Mapping[str, Any], *, digest: str | None, endpoint: str) -> dict[str, str]:
    """The memo a successful write of *payload* leaves behind (small strings only)."""
    attributes = payload.get("attributes") or {}
    return {
        "sku": str(payload.get("sku", "")),
        "product_type": str(payload.get("productType", "")),
        "requirements": str(payload.get("requirements", "")),
        "content": content_digest(payload),
        "attrs": ",".join(sorted(attributes)),
        "digest": digest or "",
        "endpoint": endpoint,
    }


def _patch_ops(
    attributes: Mapping[str, Any],
    names: Iterable[str],
    removed: Iterable[str],
    marketplace_id: str,
) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": f"/attributes/{name}", "value": attributes[name]}
        for name in sorted(names)
    ]
    ops.extend(
        {
            "op": "delete",
            "path": f"/attributes/{name}",
            "value": [{"marketplace_id": marketplace_id}],
        }
        for name in sorted(removed)
    )
    return ops


def plan_write(
    payload: Mapping[str, Any],
    *,
    memo: Mapping[str, str],
    digest: str | None,
    endpoint: str,
    overwrite_stock: bool,
    marketplace_id: str,
) -> WritePlan:
    """
    Choose PUT or PATCH for a rendered *payload* given what the last push remembered (*memo*).

    * Unknown listing (no memo for this SKU and endpoint) or a new product type: PUT.
    * Same content, only the offer changed: PATCH the offer attributes.
    * Content changed (or a forced re-send: *digest* equals the remembered one) of a listing
      with stock, while catalogsync does not own the stock: PATCH every attribute, delete the
      dropped ones (never the stock), so Amazon keeps the seller's quantity.
    * Otherwise: PUT.
    """
    sku = str(payload["sku"])
    attributes: Mapping[str, Any] = payload.get("attributes") or {}
    product_type = str(payload["productType"])
    after = memo_for(payload, digest=digest, endpoint=endpoint)
    known = (
        memo.get("sku") == sku
        and memo.get("endpoint") == endpoint
        and memo.get("product_type") == product_type
    )
    put = {
        "productType": product_type,
        "requirements": payload.get("requirements", "LISTING"),
        "attributes": dict(attributes),
    }
    if not known:
        return WritePlan(PUT, sku, put, "full listing (putListingsItem)", after)
    before = {n for n in memo.get("attrs", "").split(",") if n}
    forced = bool(digest) and digest == memo.get("digest")
    if memo.get("content") == after["content"] and not forced:
        names = [n for n in attributes if n in OFFER_ATTRIBUTES]
        removed = [n for n in before - set(attributes) if n in OFFER_ATTRIBUTES - {STOCK_ATTRIBUTE}]
        if names or removed:
            body = {
                "productType": product_type,
                "patches": _patch_ops(attributes, names, removed, marketplace_id),
            }
            return WritePlan(PATCH, sku, body, "offer only (patchListingsItem)", after)
    has_stock = (
        payload.get("requirements") != "LISTING_PRODUCT_ONLY" or "purchasable_offer" in before
    )
    if not overwrite_stock and has_stock:
        removed = [n for n in before - set(attributes) if n != STOCK_ATTRIBUTE]
        body = {
            "productType": product_type,
            "patches": _patch_ops(attributes, attributes, removed, marketplace_id),
        }
        reason = "every attribute but the stock (patchListingsItem, overwrite_stock is off)"
        return WritePlan(PATCH, sku, body, reason, after)
    return WritePlan(PUT, sku, put, "full listing (putListingsItem)", after)


@frozen
class NoWrite:
    """Nothing is sent for an item: *ok* says whether that is a success, *message* why."""

    ok: bool
    message: str


def plan_archive(
    *,
    sku: str,
    memo: Mapping[str, str],
    payload: Mapping[str, Any] | None,
    overwrite_stock: bool,
    marketplace_id: str,
    fulfillment_channel_code: str,
) -> WritePlan | NoWrite:
    """
    The PATCH that makes a listing unbuyable without deleting it (Amazon has no "archived").

    With ``overwrite_stock`` the merchant-fulfilled quantity becomes 0; without it the offer
    (price) is removed instead, so the seller's stock is left alone. Nothing is sent when the
    listing has no offer (a variation parent or a draft is never buyable) or when no product type
    is known (the PATCH body needs one).
    """
    product_type = (payload or {}).get("productType") or memo.get("product_type")
    if not product_type:
        return NoWrite(
            ok=False,
            message="cannot archive: no product type is known for this SKU (catalogsync never "
            "pushed it), and patchListingsItem needs one",
        )
    requirements = (payload or {}).get("requirements") or memo.get("requirements")
    if requirements == "LISTING_PRODUCT_ONLY":
        return NoWrite(
            ok=True,
            message="nothing to archive: the listing has no offer (a variation parent or a "
            "draft is never buyable)",
        )
    if overwrite_stock:
        value = [{"fulfillment_channel_code": fulfillment_channel_code, "quantity": 0}]
        patch = {"op": "replace", "path": f"/attributes/{STOCK_ATTRIBUTE}", "value": value}
        reason = "archived: quantity set to 0 (patchListingsItem)"
    else:
        patch = {
            "op": "delete",
            "path": "/attributes/purchasable_offer",
            "value": [{"marketplace_id": marketplace_id}],
        }
        reason = "archived: offer removed, stock untouched (patchListingsItem)"
    body = {"productType": str(product_type), "patches": [patch]}
    return WritePlan(PATCH, sku, body, reason, dict(memo) | {"digest": ""})


# =================================================================================================
# Values
# =================================================================================================

_SKU_MAX: Final = 40
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def sku_problems(sku: Any) -> list[str]:
    """What is wrong with a seller SKU (empty list when it is fine)."""
    if not isinstance(sku, str):
        return [f"the SKU must be text, got {type(sku).__name__}"]
    if not sku:
        return ["the SKU is missing"]
    problems = []
    if len(sku) > _SKU_MAX:
        problems.append(f"the SKU is {len(sku)} characters long; Amazon allows {_SKU_MAX}")
    if sku != sku.strip():
        problems.append("the SKU starts or ends with whitespace")
    if _CONTROL.search(sku):
        problems.append("the SKU contains control characters")
    return problems


def as_decimal(value: Any) -> Decimal | None:
    """A finite number from a PIM price (int, float, Decimal or numeric string), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None
