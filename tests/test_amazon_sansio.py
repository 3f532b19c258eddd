"""The Amazon channel's pure core: request builders, response interpreters, write planning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from catalogsync import (
    ChannelAuthError,
    ChannelProtocolError,
    ErrorKind,
    InvalidArgumentError,
    Secret,
)
from catalogsync.channels import VerdictKind
from catalogsync.channels.amazon import MARKETPLACES, Marketplace, marketplace
from catalogsync.channels.amazon import _sansio as s


SAMPLES = Path(__file__).parent / "samples" / "amazon"
NOW = datetime(2026, 3, 1, 9, 30, 5, tzinfo=UTC)
TARGET = s.Target(
    base_url="https://sellingpartnerapi-na.amazon.com",
    seller_id="A1SELLER",
    marketplace_id="ATVPDKIKX0DER",
    issue_locale="en_US",
    user_agent="catalogsync/test (Language=Python/3.11)",
)


def sample(case: str) -> httpx.Response:
    """Load a recorded-style answer: ``<case>/<status>.json`` (headers) and ``<case>/body``."""
    folder = SAMPLES / case
    (headers_file,) = folder.glob("*.json")
    headers = json.loads(headers_file.read_text())
    return httpx.Response(
        int(headers_file.stem), headers=headers, content=(folder / "body").read_bytes()
    )


# -- marketplaces and hosts -------------------------------------------------------------------


def test_marketplace_lookup_by_id_country_and_uk_alias():
    """Marketplaces are found by id, by ISO country code, and by Amazon's 'UK' spelling."""
    assert marketplace("A1PA6795UKMFR9").country == "DE"
    assert marketplace("de").id == "A1PA6795UKMFR9"
    assert marketplace("UK") is marketplace("GB")
    assert marketplace("ZA").region == "eu"


def test_unknown_marketplace_is_an_invalid_argument():
    """An unknown marketplace fails with InvalidArgumentError naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        marketplace("XX")

    assert info.value.field == "marketplace"


def test_custom_marketplace_must_name_a_known_region():
    """A hand-made Marketplace is accepted as is, but only in a real SP-API region."""
    custom = Marketplace("A2NODRKZP88ZB9", "SE", "eu", "sv_SE", "SEK", "amazon.se")

    assert marketplace(custom) is custom
    with pytest.raises(InvalidArgumentError):
        Marketplace("X", "XX", "moon", "en_XX", "XXX", "example.invalid")


def test_hosts_and_sandbox_hosts_per_region():
    """Each region has its production host and a sandbox host."""
    assert s.host("eu") == "https://sellingpartnerapi-eu.amazon.com"
    assert s.host("fe", sandbox=True) == "https://sandbox.sellingpartnerapi-fe.amazon.com"
    assert {m.region for m in MARKETPLACES.values()} == {"na", "eu", "fe"}


@pytest.mark.parametrize(
    ("language", "country", "expected"),
    [
        ("en", "US", "en_US"),
        ("es", "US", "es_US"),
        ("fr-CA", "CA", "fr_CA"),
        ("de", "DE", "de_DE"),
        ("en", "GB", "en_GB"),
    ],
)
def test_language_tags(language, country, expected):
    """The connector language becomes Amazon's language tag for the marketplace."""
    assert s.language_tag(language, marketplace(country)) == expected


# -- request builders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sku", "encoded"),
    [
        ("TEE-1", "TEE-1"),
        ("TEE 1", "TEE%201"),
        ("TEE/1", "TEE%2F1"),
        ("Tée+1", "T%C3%A9e%2B1"),
        ("50%#?", "50%25%23%3F"),
    ],
)
def test_sku_is_one_escaped_path_segment(sku, encoded):
    """Spaces, slashes, plus signs, percent, '#', '?' and non-ASCII are escaped in the path."""
    request = s.put_request(
        TARGET, sku, {"productType": "SHIRT", "attributes": {}}, token="t", now=NOW
    )

    assert (
        request.url.raw_path.split(b"?")[0].decode()
        == f"/listings/2021-08-01/items/A1SELLER/{encoded}"
    )


def test_put_request_shape():
    """A PUT carries the token, date and user agent headers, one marketplace, and the JSON body."""
    body = {"productType": "SHIRT", "requirements": "LISTING", "attributes": {"item_name": []}}
    request = s.put_request(TARGET, "TEE-1", body, token="Atza|abc", now=NOW)
    query = parse_qs(request.url.query.decode())

    assert request.method == "PUT"
    assert request.headers["x-amz-access-token"] == "Atza|abc"
    assert request.headers["x-amz-date"] == "20260301T093005Z"
    assert request.headers["user-agent"].startswith("catalogsync/")
    assert request.headers["content-type"] == "application/json"
    assert query == {
        "marketplaceIds": ["ATVPDKIKX0DER"],
        "includedData": ["issues"],
        "issueLocale": ["en_US"],
    }
    assert json.loads(request.content) == body


def test_preview_adds_mode_and_identifiers():
    """A validation preview asks for VALIDATION_PREVIEW and the ASIN identifiers."""
    request = s.patch_request(
        TARGET, "TEE-1", {"productType": "SHIRT", "patches": []}, token="t", now=NOW, preview=True
    )
    query = parse_qs(request.url.query.decode())

    assert query["mode"] == ["VALIDATION_PREVIEW"]
    assert query["includedData"] == ["identifiers,issues"]


def test_delete_and_get_requests_have_no_body():
    """DELETE and GET name the listing and the marketplace only."""
    delete = s.delete_request(TARGET, "TEE-1", token="t", now=NOW)
    get = s.get_request(TARGET, "TEE-1", token="t", now=NOW)

    assert (delete.method, delete.content) == ("DELETE", b"")
    assert parse_qs(get.url.query.decode())["includedData"] == ["summaries"]


def test_token_request_is_form_encoded_refresh_grant():
    """The LWA exchange is a form-encoded refresh_token grant with the app credentials."""
    request = s.token_request(
        s.LWA_TOKEN_URL,
        client_id="amzn1.application-oa2-client.x",
        client_secret=Secret("the-client-secret"),
        refresh_token=Secret("Atzr|the-refresh-token"),
        user_agent="ua",
    )
    form = parse_qs(request.content.decode())

    assert request.url == "https://api.amazon.com/auth/o2/token"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["Atzr|the-refresh-token"],
        "client_id": ["amzn1.application-oa2-client.x"],
        "client_secret": ["the-client-secret"],
    }
    assert "the-client-secret" not in repr(request)


# -- response interpreters --------------------------------------------------------------------


def test_accepted_submission():
    """ACCEPTED is ok, with the submission id and the request id."""
    sub = s.read_submission(sample("put_accepted"))

    assert sub.ok
    assert sub.status == "ACCEPTED"
    assert sub.submission_id == "f1dc2914-75dd-11ea-bc55-0242ac130003"
    assert sub.request_id == sample("put_accepted").headers["x-amzn-RequestId"]


def test_invalid_submission_maps_each_error_issue():
    """INVALID: each ERROR issue becomes a CHANNEL error with code, severity and attribute field."""
    sub = s.read_submission(sample("put_invalid"))
    errors, warnings = s.issue_errors(sub)

    assert not sub.ok
    assert [(e.kind, e.code, e.field) for e in errors] == [
        (ErrorKind.CHANNEL, "90220", "condition_type"),
        (ErrorKind.CHANNEL, "90000900", "fake_attribute"),
    ]
    assert errors[0].message == "[ERROR] 'condition_type' is required but not supplied."
    assert [w.code for w in warnings] == ["99022"]


def test_warnings_and_info_on_an_accepted_submission_are_kept():
    """WARNING and INFO issues of an accepted submission become warnings, never errors."""
    errors, warnings = s.issue_errors(s.read_submission(sample("put_accepted_warning")))

    assert errors == ()
    assert [(w.code, w.message.split("]")[0]) for w in warnings] == [
        ("99022", "[WARNING"),
        ("18386", "[INFO"),
    ]
    assert warnings[0].field == "bullet_point"


def test_preview_valid_carries_the_asin():
    """A VALID preview is ok and names the ASIN Amazon matched."""
    sub = s.read_submission(sample("preview_valid"))

    assert (sub.ok, sub.status, sub.asin) == (True, "VALID", "B07N4M94X4")


@pytest.mark.parametrize(
    ("case", "code", "text"),
    [
        ("bad_request", "BAD_REQUEST", "HTTP 400: Invalid input"),
        ("invalid_input", "InvalidInput", "HTTP 400: Missing required 'marketplaceIds'."),
        ("forbidden_expired", "Unauthorized", "The access token you provided has expired."),
    ],
)
def test_error_lists_become_channel_errors(case, code, text):
    """An ErrorList answer becomes CHANNEL errors with Amazon's code and message (details kept)."""
    sub = s.read_submission(sample(case))

    assert sub.status is None
    assert sub.errors[0].kind is ErrorKind.CHANNEL
    assert sub.errors[0].code == code
    assert text in sub.errors[0].message


def test_garbage_200_is_a_protocol_error():
    """A 200 that is not a submission raises ChannelProtocolError with the request id."""
    with pytest.raises(ChannelProtocolError) as info:
        s.read_submission(sample("put_no_status"))

    assert info.value.request_id == sample("put_no_status").headers["x-amzn-RequestId"]


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("quota_exceeded", VerdictKind.THROTTLED),
        ("service_unavailable", VerdictKind.RETRY),
        ("put_truncated", VerdictKind.RETRY),
        ("bad_request", VerdictKind.OK),
        ("forbidden_expired", VerdictKind.OK),
        ("put_accepted", VerdictKind.OK),
    ],
)
def test_classify(case, kind):
    """429 throttles (no Retry-After), 5xx and unreadable 2xx retry, the rest is final."""
    verdict = s.classify(sample(case))

    assert verdict.kind is kind
    assert verdict.wait is None


def test_token_rejection_is_recognised():
    """A 403 'Unauthorized' ErrorList says the access token was refused."""
    assert s.is_token_rejection(sample("forbidden_expired"))
    assert not s.is_token_rejection(sample("bad_request"))


def test_rate_limit_header():
    """x-amzn-RateLimit-Limit is read as requests per second; junk is ignored."""
    assert s.rate_limit(sample("put_accepted")) == 5.0
    assert s.rate_limit(sample("quota_exceeded")) is None
    assert s.rate_limit(httpx.Response(200, headers={"x-amzn-RateLimit-Limit": "nan"})) is None


def test_token_grant():
    """The token answer gives a masked access token and its lifetime."""
    grant = s.read_token(sample("lwa_token"))

    assert grant.expires_in == 3600
    assert grant.access_token.reveal() == "Atza|IwEBIA-recorded-style-access-token"
    assert "Atza" not in repr(grant)


@pytest.mark.parametrize(
    ("case", "words"),
    [("lwa_invalid_grant", "invalid_grant"), ("lwa_invalid_client", "invalid_client")],
)
def test_token_refusals_are_auth_errors_with_advice(case, words):
    """invalid_grant and invalid_client raise ChannelAuthError saying what to do."""
    with pytest.raises(ChannelAuthError) as info:
        s.read_token(sample(case))

    assert words in str(info.value)
    assert "authorize" in str(info.value) or "client secret" in str(info.value)


def test_token_answer_without_token_is_a_protocol_error():
    """A 200 without access_token is not taken for a token."""
    with pytest.raises(ChannelProtocolError):
        s.read_token(httpx.Response(200, json={"token_type": "bearer"}))


# -- write planning ---------------------------------------------------------------------------

MP = "ATVPDKIKX0DER"


def payload(
    *,
    price=10.0,
    title="Tee",
    quantity=None,
    bullets=True,
    product_type="SHIRT",
    requirements="LISTING",
):
    attributes = {
        "item_name": [{"value": title, "language_tag": "en_US", "marketplace_id": MP}],
        "purchasable_offer": [
            {
                "currency": "USD",
                "audience": "ALL",
                "our_price": [{"schedule": [{"value_with_tax": price}]}],
                "marketplace_id": MP,
            }
        ],
    }
    if bullets:
        attributes["bullet_point"] = [
            {"value": "Soft", "language_tag": "en_US", "marketplace_id": MP}
        ]
    if quantity is not None:
        attributes["fulfillment_availability"] = [
            {"fulfillment_channel_code": "DEFAULT", "quantity": quantity, "marketplace_id": MP}
        ]
    return {
        "sku": "TEE-1",
        "productType": product_type,
        "requirements": requirements,
        "attributes": attributes,
    }


def plan(current, before=None, *, digest="d2", overwrite_stock=False, endpoint="production"):
    memo = s.memo_for(before, digest="d1", endpoint="production") if before is not None else {}
    return s.plan_write(
        current,
        memo=memo,
        digest=digest,
        endpoint=endpoint,
        overwrite_stock=overwrite_stock,
        marketplace_id=MP,
    )


def test_unknown_listing_is_put_whole():
    """Without a memo the whole listing is PUT."""
    p = plan(payload())

    assert p.operation == "putListingsItem"
    assert p.body == {
        "productType": "SHIRT",
        "requirements": "LISTING",
        "attributes": payload()["attributes"],
    }
    assert p.memo["content"] == s.content_digest(payload())


def test_offer_only_change_is_patched():
    """Same content, new price: only the offer attributes are replaced by a PATCH."""
    p = plan(payload(price=12.5), before=payload(price=10.0))

    assert p.operation == "patchListingsItem"
    assert p.body["patches"] == [
        {
            "op": "replace",
            "path": "/attributes/purchasable_offer",
            "value": payload(price=12.5)["attributes"]["purchasable_offer"],
        }
    ]


def test_content_change_with_stock_ownership_is_put():
    """A content change is a PUT when catalogsync owns the stock."""
    p = plan(payload(title="New", quantity=3), before=payload(quantity=3), overwrite_stock=True)

    assert p.operation == "putListingsItem"


def test_content_change_without_stock_ownership_patches_everything_but_stock():
    """Without overwrite_stock a content change replaces each attribute and deletes dropped ones, never the stock."""
    before = payload(quantity=7)  # stock sent once, e.g. while overwrite_stock was on
    p = plan(payload(title="New", bullets=False), before=before)
    ops = {(x["op"], x["path"]) for x in p.body["patches"]}

    assert p.operation == "patchListingsItem"
    assert ops == {
        ("replace", "/attributes/item_name"),
        ("replace", "/attributes/purchasable_offer"),
        ("delete", "/attributes/bullet_point"),
    }


def test_forced_resend_sends_the_content_again():
    """A re-send of an unchanged payload (force refresh) sends the content, not just the offer."""
    before = payload()
    memo = s.memo_for(before, digest="same", endpoint="production")
    p = s.plan_write(
        payload(),
        memo=memo,
        digest="same",
        endpoint="production",
        overwrite_stock=True,
        marketplace_id=MP,
    )

    assert p.operation == "putListingsItem"


@pytest.mark.parametrize("change", ["product_type", "endpoint"])
def test_memo_of_another_product_type_or_endpoint_is_not_trusted(change):
    """A new product type, or a memo from the test endpoint, means a full PUT."""
    if change == "product_type":
        p = plan(payload(price=3, product_type="TSHIRT"), before=payload())
    else:
        p = plan(payload(price=3), before=payload(), endpoint="test")

    assert p.operation == "putListingsItem"


def test_parent_content_change_is_put():
    """A variation parent has no stock, so its content changes are PUT even without overwrite_stock."""
    parent = payload(requirements="LISTING_PRODUCT_ONLY")
    del parent["attributes"]["purchasable_offer"]
    changed = payload(title="Renamed", requirements="LISTING_PRODUCT_ONLY")
    del changed["attributes"]["purchasable_offer"]

    assert plan(changed, before=parent).operation == "putListingsItem"


def test_archive_with_stock_ownership_sets_quantity_zero():
    """ARCHIVE with overwrite_stock replaces the merchant quantity with 0."""
    memo = s.memo_for(payload(), digest="d", endpoint="production")
    p = s.plan_archive(
        sku="TEE-1",
        memo=memo,
        payload=None,
        overwrite_stock=True,
        marketplace_id=MP,
        fulfillment_channel_code="DEFAULT",
    )

    assert p.body == {
        "productType": "SHIRT",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 0}],
            }
        ],
    }


def test_archive_without_stock_ownership_removes_the_offer():
    """ARCHIVE without overwrite_stock deletes the offer and leaves the stock alone."""
    memo = s.memo_for(payload(), digest="d", endpoint="production")
    p = s.plan_archive(
        sku="TEE-1",
        memo=memo,
        payload=None,
        overwrite_stock=False,
        marketplace_id=MP,
        fulfillment_channel_code="DEFAULT",
    )

    assert p.body["patches"] == [
        {"op": "delete", "path": "/attributes/purchasable_offer", "value": [{"marketplace_id": MP}]}
    ]


def test_archive_needs_a_product_type_and_skips_parents():
    """Nothing is sent to archive a parent (never buyable); without a product type it fails."""
    parent_memo = s.memo_for(
        payload(requirements="LISTING_PRODUCT_ONLY"), digest="d", endpoint="production"
    )
    skip = s.plan_archive(
        sku="P",
        memo=parent_memo,
        payload=None,
        overwrite_stock=True,
        marketplace_id=MP,
        fulfillment_channel_code="DEFAULT",
    )
    unknown = s.plan_archive(
        sku="P",
        memo={},
        payload=None,
        overwrite_stock=True,
        marketplace_id=MP,
        fulfillment_channel_code="DEFAULT",
    )

    assert isinstance(skip, s.NoWrite)
    assert skip.ok
    assert isinstance(unknown, s.NoWrite)
    assert not unknown.ok


@pytest.mark.parametrize(
    ("sku", "problem"),
    [
        ("A" * 41, "41 characters"),
        (" TEE", "whitespace"),
        ("TEE\t1", "control"),
        ("", "missing"),
        (None, "must be text"),
    ],
)
def test_sku_rules(sku, problem):
    """SKUs are at most 40 characters, without edge whitespace or control characters."""
    assert problem in " ".join(s.sku_problems(sku))
    assert s.sku_problems("A" * 40) == []
