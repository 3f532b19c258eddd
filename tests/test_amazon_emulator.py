"""The Amazon emulator on its own: LWA, request checks, JSON Patch, previews, throttling."""

from __future__ import annotations

import pytest

from catalogsync.testing import AmazonEmulator, FaultKind


PATH = "/listings/2021-08-01/items/A1EMULATEDSELLER/{sku}"
US = {"marketplaceIds": "ATVPDKIKX0DER"}


@pytest.fixture
def emu(clock):
    """An emulator on a manual clock."""
    return AmazonEmulator(clock=clock)


def token(emu, **overrides):
    form = {
        "grant_type": "refresh_token",
        "refresh_token": emu.refresh_token,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
    } | overrides
    return emu.client().post("https://api.amazon.com/auth/o2/token", data=form)


def call(emu, method, sku, *, params=US, body=None, access=None):
    headers = {"x-amz-access-token": access or token(emu).json()["access_token"]}
    return emu.client().request(
        method, PATH.format(sku=sku), params=params, json=body, headers=headers
    )


LISTING = {
    "productType": "SHIRT",
    "requirements": "LISTING",
    "attributes": {
        "item_name": [{"value": "Tee", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
        "color": [{"value": "Red", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
    },
}


def test_tokens_expire_on_the_clock(emu, clock):
    """An access token works until its hour is up, then the answer is 403 'expired'."""
    access = token(emu).json()["access_token"]
    assert call(emu, "GET", "X", access=access).status_code == 404
    clock.advance(3600)
    refused = call(emu, "GET", "X", access=access)

    assert refused.status_code == 403
    assert refused.json()["errors"][0]["details"] == "The access token you provided has expired."


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "nope"}, 401, "invalid_client"),
        ({"refresh_token": "Atzr|unknown"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_refusals(emu, overrides, status, error):
    """Wrong app credentials, unknown refresh tokens and other grants are refused like LWA does."""
    response = token(emu, **overrides)

    assert (response.status_code, response.json()["error"]) == (status, error)


def test_missing_token_and_unescaped_slash_are_forbidden(emu):
    """No access token, or a path no operation matches (an unescaped '/'), is a 403."""
    no_token = emu.client().get(PATH.format(sku="X"), params=US)
    access = token(emu).json()["access_token"]
    slash = emu.client().get(
        PATH.format(sku="A/B"), params=US, headers={"x-amz-access-token": access}
    )

    assert no_token.status_code == slash.status_code == 403


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("PUT", {}, "marketplaceIds"),
        ("PUT", {"marketplaceIds": "ATVPDKIKX0DER,A2EUQ1WTGCTBG2"}, "Only one marketplace"),
        ("PUT", US | {"includedData": "identifiers"}, "VALIDATION_PREVIEW"),
        ("PUT", US | {"mode": "DRY_RUN"}, "Invalid 'mode'"),
        ("GET", US | {"includedData": "everything"}, "Invalid 'includedData'"),
    ],
)
def test_query_checks(emu, method, params, message):
    """Bad query parameters are 400 InvalidInput with a reason."""
    response = call(emu, method, "X", params=params, body=LISTING if method == "PUT" else None)

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"attributes": {}}, "productType"),
        ({"productType": "SHIRT"}, "attributes"),
        ({"productType": "SHIRT", "attributes": {}, "requirements": "ALL"}, "requirements"),
    ],
)
def test_put_body_checks(emu, body, message):
    """A PUT body without productType or attributes, or with unknown requirements, is a 400."""
    response = call(emu, "PUT", "X", body=body)

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def test_put_validates_and_stores(emu):
    """A listing without a title is INVALID (90220); a good one is ACCEPTED and stored."""
    bad = call(emu, "PUT", "BAD", body={"productType": "SHIRT", "attributes": {}}).json()
    good = call(emu, "PUT", "GOOD", body=LISTING).json()

    assert bad["status"] == "INVALID"
    assert bad["issues"][0]["code"] == "90220"
    assert emu.listing("BAD") is None
    assert good["status"] == "ACCEPTED"
    assert emu.listing("GOOD")["attributes"] == LISTING["attributes"]


def test_added_issues_apply_until_cleared(emu):
    """add_issue makes a SKU's writes INVALID; clear_issues (per SKU or all) lifts it."""
    for sku in ("A", "B"):
        emu.add_issue(sku, code="8560", message="Bad colour.", severity="ERROR")

    assert call(emu, "PUT", "A", body=LISTING).json()["status"] == "INVALID"
    emu.clear_issues("A")
    assert call(emu, "PUT", "A", body=LISTING).json()["status"] == "ACCEPTED"
    assert call(emu, "PUT", "B", body=LISTING).json()["status"] == "INVALID"
    emu.clear_issues()
    assert call(emu, "PUT", "B", body=LISTING).json()["status"] == "ACCEPTED"


def test_attribute_for_another_marketplace_is_invalid(emu):
    """An attribute entry naming another marketplace than the request's is an issue."""
    body = {
        "productType": "SHIRT",
        "attributes": LISTING["attributes"]
        | {"brand": [{"value": "A", "marketplace_id": "A1PA6795UKMFR9"}]},
    }
    response = call(emu, "PUT", "X", body=body).json()

    assert response["status"] == "INVALID"
    assert response["issues"][0]["attributeNames"] == ["brand"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"op": "replace", "path": "/attributes/color/0/value", "value": [{}]}, "top-level"),
        ({"op": "move", "path": "/attributes/color", "value": [{}]}, "'op'"),
        ({"op": "replace", "path": "/attributes/color"}, "'value'"),
        ({"op": "replace", "path": "/productType", "value": [{}]}, "/attributes/"),
    ],
)
def test_patch_checks(emu, patch, message):
    """Nested paths, unknown ops, missing values and paths outside attributes are refused."""
    call(emu, "PUT", "X", body=LISTING)
    response = call(emu, "PATCH", "X", body={"productType": "SHIRT", "patches": [patch]})

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def test_patch_operations(emu):
    """replace, merge (by marketplace and language) and delete (by selector) change the stored listing."""
    call(emu, "PUT", "X", body=LISTING)
    patches = [
        {
            "op": "replace",
            "path": "/attributes/item_name",
            "value": [{"value": "New", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
        },
        {
            "op": "merge",
            "path": "/attributes/color",
            "value": [
                {"value": "Blue", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}
            ],
        },
        {
            "op": "merge",
            "path": "/attributes/color",
            "value": [
                {"value": "Azul", "language_tag": "es_US", "marketplace_id": "ATVPDKIKX0DER"}
            ],
        },
        {
            "op": "add",
            "path": "/attributes/brand",
            "value": [{"value": "Acme", "marketplace_id": "ATVPDKIKX0DER"}],
        },
        {
            "op": "delete",
            "path": "/attributes/brand",
            "value": [{"marketplace_id": "ATVPDKIKX0DER"}],
        },
    ]
    response = call(emu, "PATCH", "X", body={"productType": "SHIRT", "patches": patches}).json()
    attributes = emu.listing("X")["attributes"]

    assert response["status"] == "ACCEPTED"
    assert attributes["item_name"][0]["value"] == "New"
    assert [c["value"] for c in attributes["color"]] == ["Blue", "Azul"]
    assert "brand" not in attributes


def test_patch_of_a_missing_listing_or_another_product_type(emu):
    """PATCH needs an existing listing of the same product type."""
    missing = call(
        emu,
        "PATCH",
        "NONE",
        body={"productType": "SHIRT", "patches": [{"op": "delete", "path": "/attributes/x"}]},
    ).json()
    call(emu, "PUT", "X", body=LISTING)
    other = call(
        emu,
        "PATCH",
        "X",
        body={"productType": "LUGGAGE", "patches": [{"op": "delete", "path": "/attributes/x"}]},
    ).json()

    assert (missing["status"], missing["issues"][0]["code"]) == ("INVALID", "NOT_FOUND")
    assert (other["status"], other["issues"][0]["code"]) == ("INVALID", "PRODUCT_TYPE_MISMATCH")


def test_preview_never_persists(emu):
    """VALIDATION_PREVIEW answers VALID with identifiers and stores nothing."""
    params = US | {"mode": "VALIDATION_PREVIEW", "includedData": "identifiers,issues"}
    response = call(emu, "PUT", "X", params=params, body=LISTING).json()

    assert response["status"] == "VALID"
    assert response["identifiers"][0]["asin"].startswith("B0")
    assert emu.listings == {}


def test_get_reads_back_the_listing(emu):
    """GET returns summaries, attributes, offers and availability of a stored listing."""
    body = {
        "productType": "SHIRT",
        "attributes": LISTING["attributes"]
        | {
            "purchasable_offer": [
                {
                    "currency": "USD",
                    "our_price": [{"schedule": [{"value_with_tax": 9.5}]}],
                    "marketplace_id": "ATVPDKIKX0DER",
                }
            ],
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 3}],
        },
    }
    call(emu, "PUT", "X", body=body)
    item = call(
        emu, "GET", "X", params=US | {"includedData": "summaries,offers,fulfillmentAvailability"}
    ).json()

    assert item["summaries"][0]["status"] == ["BUYABLE", "DISCOVERABLE"]
    assert item["summaries"][0]["itemName"] == "Tee"
    assert item["offers"][0]["price"] == {"currencyCode": "USD", "amount": "9.5"}
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 3}]


def test_throttling_per_operation_and_off_switch(clock):
    """Each operation has its own bucket; 429 QuotaExceeded past the burst; throttle=False disables it."""
    emu = AmazonEmulator(clock=clock)
    access = token(emu).json()["access_token"]
    answers = [call(emu, "PUT", f"S{n}", body=LISTING, access=access) for n in range(6)]
    get = call(emu, "GET", "S0", access=access)
    clock.advance(0.2)
    again = call(emu, "PUT", "S9", body=LISTING, access=access)
    free = AmazonEmulator(clock=clock, throttle=False)
    access = token(free).json()["access_token"]
    unlimited = [
        call(free, "PUT", f"S{n}", body=LISTING, access=access).status_code for n in range(20)
    ]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["errors"][0]["code"] == "QuotaExceeded"
    assert "retry-after" not in answers[-1].headers
    assert emu.throttled() == 1
    assert get.status_code == 200
    assert get.headers["x-amzn-RateLimit-Limit"] == "5"
    assert again.status_code == 200
    assert set(unlimited) == {200}


def test_orphans_are_reported(emu):
    """A child whose parent SKU is not a parent listing is listed by orphans()."""
    child = {
        "productType": "SHIRT",
        "attributes": LISTING["attributes"]
        | {
            "parentage_level": [{"value": "child", "marketplace_id": "ATVPDKIKX0DER"}],
            "child_parent_sku_relationship": [
                {
                    "child_relationship_type": "variation",
                    "parent_sku": "P",
                    "marketplace_id": "ATVPDKIKX0DER",
                }
            ],
        },
    }
    call(emu, "PUT", "C", body=child)

    assert emu.orphans() == ["C"]


def test_every_answer_has_a_request_id(emu):
    """Token answers, listings answers and injected faults all carry x-amzn-RequestId."""
    emu.faults.add(FaultKind.STATUS, status=500, count=1, match="/F")
    fault = call(emu, "GET", "F")
    ok = call(emu, "GET", "F")

    assert fault.status_code == 500
    assert fault.json()["errors"][0]["code"] == "InternalFailure"
    assert all(r.headers["x-amzn-RequestId"] for r in (fault, ok, token(emu)))
    assert len({rid for *_, rid in emu.answers}) == len(emu.answers)


def test_revoked_refresh_token(emu):
    """After revoke() the refresh token is invalid_grant."""
    emu.revoke()

    assert token(emu).json()["error"] == "invalid_grant"


def test_listing_lookup_by_marketplace(emu):
    """listing() finds a SKU in the only marketplace, or in the one named."""
    call(emu, "PUT", "X", body=LISTING)

    assert emu.listing("X", "ATVPDKIKX0DER") is not None
    assert emu.listing("X", "A1PA6795UKMFR9") is None
