"""TakealotEmulator on its own: the Seller API v2 rules it enforces, over plain HTTP."""

from __future__ import annotations

import pytest

from catalogsync import Secret
from catalogsync.testing import TakealotEmulator


KEY = "emulator-key-0123456789"
BARCODES = TakealotEmulator.make_barcodes(10)
A, B, C = BARCODES[:3]


@pytest.fixture
def emulator(clock):
    return TakealotEmulator(BARCODES, api_key=Secret(KEY), warehouses=(28676, 30001), clock=clock)


@pytest.fixture
def http(emulator):
    with emulator.client(headers={"Authorization": f"Key {KEY}"}) as client:
        yield client


def codes(response):
    return [e["code"] for e in response.json()["validation_errors"]]


def test_barcodes_are_valid_ean13():
    """make_barcodes yields distinct EAN-13s with correct check digits."""
    from catalogsync.channels.takealot import gtin_ok

    barcodes = TakealotEmulator.make_barcodes(50, start=7)
    assert len(set(barcodes)) == 50
    assert all(len(b) == 13 and b.startswith("600") and gtin_ok(b) for b in barcodes)


def test_rejects_a_bad_key(emulator):
    """Only `Authorization: Key <the key>` is let in; anything else is 401 {message}."""
    for headers in ({}, {"Authorization": KEY}, {"Authorization": "Key nope"}):
        with emulator.client(headers=headers) as client:
            response = client.get("/v2/offers/count")
        assert response.status_code == 401
        assert "message" in response.json()


def test_create_get_and_update(emulator, http):
    """An offer is created on a catalogue barcode, found by ID, BARCODE, SKU or ?identifier=, and updated."""
    created = http.post(
        f"/v2/offers/offer/{A}", json={"sku": "S/1", "selling_price": 50, "rrp": 60}
    )
    offer = created.json()["offer"]
    assert (created.status_code, codes(created)) == (200, [])
    assert offer["barcode"] == A
    for ident in (f"ID{offer['offer_id']}", str(offer["offer_id"]), f"BARCODE{A}"):
        assert http.get(f"/v2/offers/offer/{ident}").json()["sku"] == "S/1"
    assert http.get("/v2/offers/offer", params={"identifier": "SKUS/1"}).json()["barcode"] == A
    updated = http.patch(f"/v2/offers/offer/BARCODE{A}", json={"selling_price": 55})
    assert updated.json()["offer"]["selling_price"] == 55
    assert http.patch("/v2/offers/offer/BARCODE" + B, json={"rrp": 1}).status_code == 404
    assert http.get("/v2/offers/count").json() == {"count": 1}


def test_catalogue_and_duplicates(http):
    """Unknown barcodes are E2, a second offer on a barcode is E4, a taken SKU is E6 or E10."""
    unknown = TakealotEmulator.make_barcodes(1, start=5000)[0]
    assert codes(http.post(f"/v2/offers/offer/{unknown}", json={"sku": "X"})) == ["E2"]
    http.post(f"/v2/offers/offer/{A}", json={"sku": "SA"})
    assert codes(http.post(f"/v2/offers/offer/BARCODE{A}", json={"sku": "SZ"})) == ["E4"]
    assert codes(http.post(f"/v2/offers/offer/{B}", json={"sku": "SA"})) == ["E6"]
    http.post(f"/v2/offers/offer/{B}", json={"sku": "SB"})
    assert codes(http.patch(f"/v2/offers/offer/BARCODE{B}", json={"sku": "SA"})) == ["E10"]


def test_field_rules_and_all_or_nothing(emulator, http):
    """Price, RRP, SKU, leadtime and stock rules give their codes, and a refused write changes nothing."""
    http.post(f"/v2/offers/offer/{A}", json={"sku": "SA", "selling_price": 100, "rrp": 120})
    before = emulator.offer(A)
    response = http.patch(
        f"/v2/offers/offer/BARCODE{A}",
        json={
            "sku": "S" * 256,
            "selling_price": 10.5,
            "rrp": -1,
            "leadtime_days": -5,
            "leadtime_stock": [
                {"merchant_warehouse_id": 1, "quantity": 1},
                {"merchant_warehouse_id": 28676, "quantity": -2},
                {"merchant_warehouse_id": 30001, "quantity": "3"},
            ],
            "status_action": "Archive",
        },
    )
    assert codes(response) == [
        "E27",
        "E19",
        "E22",
        "E25",
        "INVALID_WAREHOUSE",
        "E30",
        "E15",
        "INVALID_STATUS_ACTION",
    ]
    assert emulator.offer(A) == before
    assert codes(http.patch(f"/v2/offers/offer/BARCODE{A}", json={"selling_price": 130})) == ["E20"]
    assert codes(http.patch(f"/v2/offers/offer/BARCODE{A}", json={"rrp": 90})) == ["E23"]
    stock = [{"merchant_warehouse_id": 28676, "quantity": 3}]
    assert codes(http.patch(f"/v2/offers/offer/BARCODE{A}", json={"leadtime_stock": stock})) == [
        "E18"
    ]


def test_status_rules(emulator, http):
    """Disable gives "Disabled by Seller"; Re-enable gives Buyable when priced and stocked."""
    http.post(f"/v2/offers/offer/{A}", json={"sku": "SA", "selling_price": 100})
    assert emulator.offers[A]["status"] == "Not Buyable"
    http.patch(f"/v2/offers/offer/BARCODE{A}", json={"status_action": "Disable"})
    assert emulator.offers[A]["status"] == "Disabled by Seller"
    http.patch(
        f"/v2/offers/offer/BARCODE{A}",
        json={
            "status_action": "Re-enable",
            "leadtime_days": 2,
            "leadtime_stock": [{"merchant_warehouse_id": 30001, "quantity": 4}],
        },
    )
    assert emulator.offers[A]["status"] == "Buyable"
    assert emulator.stock(A) == {28676: 0, 30001: 4}
    http.patch(f"/v2/offers/offer/BARCODE{A}", json={"leadtime_days": -1})
    assert emulator.stock(A) == {28676: 0, 30001: 0}
    assert emulator.offers[A]["leadtime_days"] is None


def test_disabled_by_takealot_refuses_changes(emulator, http):
    """An offer disabled by Takealot refuses every change with the field's code."""
    emulator.add_offer(A, sku="SA", selling_price=10)
    emulator.disable_by_takealot(A)
    response = http.patch(
        f"/v2/offers/offer/BARCODE{A}",
        json={
            "sku": "SZ",
            "selling_price": 1,
            "rrp": 2,
            "leadtime_days": 1,
            "leadtime_stock": [{"merchant_warehouse_id": 28676, "quantity": 1}],
            "status_action": "Re-enable",
        },
    )
    assert codes(response) == ["E13", "E21", "E24", "E14", "E17", "E12"]
    assert codes(http.patch(f"/v2/offers/offer/BARCODE{A}", json={"status_action": "Disable"})) == [
        "E11"
    ]


def test_bad_requests(http):
    """Malformed bodies and identifiers answer 400 {message}; unknown paths 404."""
    http.post(f"/v2/offers/offer/{A}", json={"sku": "SA"})
    assert http.patch(f"/v2/offers/offer/BARCODE{A}", content=b"{").status_code == 400
    assert http.patch(f"/v2/offers/offer/BARCODE{A}", json=[1]).status_code == 400
    assert http.patch(f"/v2/offers/offer/BARCODE{A}", json={"sku": 5}).status_code == 400
    assert http.get("/v2/offers/offer").status_code == 400
    assert http.get("/v2/sales/nothing").status_code == 404


def test_batch_lifecycle(emulator, http):
    """A batch is Submitted, then Processing, then Completed after N polls, with one result per offer."""
    emulator.batch_polls = 2
    submitted = http.post(
        "/v2/offers/batch",
        json=[
            {"barcode": A, "sku": "SA", "selling_price": 10},
            {"barcode": TakealotEmulator.make_barcodes(1, start=5000)[0], "sku": "SX"},
            {"sku": "SA", "selling_price": 12},
            {"sku": "NOPE"},
            {"offer_id": 1, "status_action": "Disable"},
            {"barcode": B, "sku": "SB", "status_action": "Disable"},
        ],
    ).json()
    batch_id = submitted["batch_id"]
    assert submitted["status"]["description"] == "Submitted"
    assert emulator.offers == {}  # nothing applied until processed
    first = http.get(f"/v2/offers/batch/{batch_id}").json()
    assert (first["status"]["description"], first["result"]) == ("Processing", [])
    done = http.get(f"/v2/offers/batch/{batch_id}").json()
    assert done["status"] == {"id": 3, "description": "Completed"}
    assert [[e["code"] for e in r["validation_errors"]] for r in done["result"]] == [
        [],
        ["E2"],
        [],
        ["E3"],
        ["E31"],
        [],
    ]
    assert done["result"][2]["offer"]["selling_price"] == 12  # identified by SKU
    assert emulator.offers[B]["status"] == "Disabled by Seller"
    assert http.get("/v2/offers/batch/404404").status_code == 404


def test_batch_identifier_mismatch_and_limits(emulator, http):
    """An offer id with another offer's barcode is E33; batches hold 1 to 10,000 offers."""
    emulator.batch_polls = 0
    offer = emulator.add_offer(A, sku="SA")
    result = http.post(
        "/v2/offers/batch", json=[{"offer_id": offer["offer_id"], "barcode": B, "rrp": 5}]
    ).json()
    assert result["status"]["description"] == "Completed"
    assert [e["code"] for e in result["result"][0]["validation_errors"]] == ["E33"]
    assert http.post("/v2/offers/batch", json=[]).status_code == 400
    too_many = http.post("/v2/offers/batch", json=[{"sku": "x"}] * 10_001)
    assert (too_many.status_code, "10000" in too_many.json()["message"]) == (400, True)


def test_rate_limit_window(clock):
    """Each endpoint class has its budget per window, told in x-RateLimit-* headers; beyond it, 429."""
    emulator = TakealotEmulator(BARCODES, api_key=KEY, rate_limit=3, window=10, clock=clock)
    start = int(clock.now().timestamp())
    with emulator.client(headers={"Authorization": f"Key {KEY}"}) as http:
        answers = [http.get("/v2/offers/count") for _ in range(4)]
        other_class = http.get(f"/v2/offers/offer/BARCODE{A}")
        clock.advance(10)
        after_reset = http.get("/v2/offers/count")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert int(answers[0].headers["x-RateLimit-Reset"]) == start + 10  # epoch seconds
    assert answers[0].headers["x-RateLimit-Limit"] == "3"
    assert other_class.headers["x-RateLimit-Remaining"] == "2"
    assert after_reset.status_code == 200
    assert emulator.throttled == 1


def test_rate_limit_off_sends_no_headers(http):
    """With rate limiting off (benchmarks), no rate-limit headers are sent."""
    response = http.get("/v2/offers/count")
    assert "x-RateLimit-Limit" not in response.headers
