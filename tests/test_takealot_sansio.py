"""The Takealot sans-IO core against recorded-style samples (tests/samples/takealot)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from catalogsync import ChannelProtocolError, ErrorKind, Secret
from catalogsync.channels import VerdictKind
from catalogsync.channels.takealot import _sansio as wire


SAMPLES = Path(__file__).parent / "samples" / "takealot"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = Secret("sansio-key-0123456789")
BASE = "https://seller-api.takealot.com"


def sample(name):
    data = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    content = json.dumps(data["body"]).encode()
    return httpx.Response(
        data["status"],
        headers=data["headers"],
        content=content,
        request=httpx.Request("GET", f"{BASE}/v2/offers/offer/ID1"),
    )


def test_every_sample_is_read():
    """Each recorded response shape has a reader that accepts it (no orphan samples)."""
    names = {p.stem for p in SAMPLES.glob("*.json")}
    readers = {
        "offer": lambda status, content: wire.read_offer_reply(status, content, write=False),
        "bad": wire.read_offer_reply,
        "forbidden": wire.read_offer_reply,
        "unauthorised": wire.read_offer_reply,
        "throttled": wire.read_offer_reply,
        "server": wire.read_offer_reply,
        "count": wire.read_count,
    }
    for name in names:
        response = sample(name)
        if name.startswith("batch") and response.status_code == 200:
            assert wire.read_batch(response.status_code, response.content).batch_id
        elif name.startswith("batch"):
            assert wire.read_offer_reply(response.status_code, response.content).message
        else:
            assert readers[name.split("_")[0]](response.status_code, response.content) is not None


def test_requests_use_the_key_header_and_identifier_prefixes():
    """Single-offer requests carry `Authorization: Key <key>` and prefixed identifiers in the path."""
    request = wire.update_offer_request(
        BASE, KEY, wire.identifier("BARCODE", "6009876543210"), {"selling_price": 99}
    )

    assert request.method == "PATCH"
    assert str(request.url) == f"{BASE}/v2/offers/offer/BARCODE6009876543210"
    assert request.headers["authorization"] == "Key sansio-key-0123456789"
    assert json.loads(request.content) == {"selling_price": 99}
    get = wire.get_offer_request(BASE, KEY, wire.identifier("ID", 123))
    assert (get.method, get.url.path) == ("GET", "/v2/offers/offer/ID123")


def test_special_characters_use_the_identifier_query():
    """Identifiers with ?, #, / or : go in `?identifier=` (URL-encoded), not in the path."""
    request = wire.update_offer_request(BASE, KEY, "SKUAB/12#3?x:y", {"rrp": 10})

    assert request.url.path == "/v2/offers/offer"
    assert request.url.params["identifier"] == "SKUAB/12#3?x:y"
    assert b"%2F" in request.url.raw_path
    create = wire.create_offer_request(BASE, KEY, "ABC 123", {"sku": "x"})
    assert (create.method, create.url.path, create.url.params["identifier"]) == (
        "POST",
        "/v2/offers/offer",
        "ABC 123",
    )


def test_identifier_kinds_are_checked():
    """Only the documented identifier prefixes (ID, BARCODE, SKU) can be built."""
    with pytest.raises(ValueError, match="unknown identifier kind"):
        wire.identifier("TSIN", "1")


def test_bodies_keep_only_the_fields_each_endpoint_takes():
    """Create bodies have no barcode or status_action; updates add status_action; batch items add the barcode."""
    payload = {
        "barcode": "6009876543210",
        "sku": "S1",
        "selling_price": 100,
        "rrp": None,
        "leadtime_days": 3,
        "leadtime_stock": [{"merchant_warehouse_id": 1, "quantity": 2}],
        "status_action": "Disable",
    }

    assert wire.create_body(payload) == {
        "sku": "S1",
        "selling_price": 100,
        "leadtime_days": 3,
        "leadtime_stock": [{"merchant_warehouse_id": 1, "quantity": 2}],
    }
    assert wire.update_body(payload)["status_action"] == "Disable"
    assert "barcode" not in wire.update_body(payload)
    assert wire.batch_item(payload)["barcode"] == "6009876543210"
    assert wire.disable_batch_item(offer_id=5) == {"offer_id": 5, "status_action": "Disable"}
    assert wire.disable_batch_item(barcode="1") == {"barcode": "1", "status_action": "Disable"}
    with pytest.raises(ValueError, match="offer id or barcode"):
        wire.disable_batch_item()


def test_batch_requests_respect_the_size_limit():
    """A batch holds 1 to 10,000 offers; its status URL quotes the batch id."""
    items = [{"barcode": str(n)} for n in range(wire.MAX_BATCH)]
    request = wire.submit_batch_request(BASE, KEY, items)

    assert (request.method, request.url.path) == ("POST", "/v2/offers/batch")
    assert len(json.loads(request.content)) == 10_000
    with pytest.raises(ValueError, match="1 to 10000"):
        wire.submit_batch_request(BASE, KEY, [*items, {"barcode": "x"}])
    with pytest.raises(ValueError, match="1 to 10000"):
        wire.submit_batch_request(BASE, KEY, [])
    status = wire.batch_status_request(BASE, KEY, "88/12")
    assert status.url.raw_path == b"/v2/offers/batch/88%2F12"
    assert wire.count_request(BASE, KEY).url.path == "/v2/offers/count"


def test_describe_never_shows_headers():
    """The person-readable form of a request shows method, path and body, not the key."""
    request = wire.update_offer_request(BASE, KEY, "BARCODE1", {"status_action": "Disable"})

    text = wire.describe(request)
    assert text.startswith("PATCH /v2/offers/offer/BARCODE1 {")
    assert "Disable" in text
    assert KEY.reveal() not in text


def test_routes_classify_endpoints():
    """Each endpoint class has its own rate budget: single offers, batch submit, batch status, account."""
    assert wire.route_of("PATCH", "/v2/offers/offer/BARCODE1") is wire.Route.OFFER
    assert wire.route_of("POST", "/v2/offers/batch") is wire.Route.BATCH
    assert wire.route_of("GET", "/v2/offers/batch/12") is wire.Route.BATCH_STATUS
    assert wire.route_of("GET", "/v2/offers/count") is wire.Route.ACCOUNT


def test_reads_offer_shapes():
    """A bare V2Offer, an update answer and a create answer all give the offer id, SKU and status."""
    for name in ("offer_get_200", "offer_update_200"):
        response = sample(name)
        reply = wire.read_offer_reply(
            response.status_code, response.content, write=name != "offer_get_200"
        )
        assert reply.ok
        assert reply.offer == wire.OfferView(
            offer_id=123456789,
            sku="TRAIL-42-BLK",
            barcode="6009876543210",
            status="Buyable",
            offer_url="https://www.takealot.com/trail-running-shoe-42-black/PLID71234567",
        )
        assert not reply.offer.disabled


def test_reads_validation_errors_as_channel_errors_with_fields():
    """validation_errors make the reply fail and become CHANNEL errors naming code and field."""
    response = sample("offer_update_validation_errors_200")
    reply = wire.read_offer_reply(response.status_code, response.content)

    assert not reply.ok
    assert reply.has("E20")
    errors = wire.reply_errors(reply, barcode="6009876543210")
    assert [(e.kind, e.code, e.field) for e in errors] == [
        (ErrorKind.CHANNEL, "E20", "selling_price"),
        (ErrorKind.CHANNEL, "E27", "sku"),
    ]
    assert errors[0].message == "Selling price must be \u2264 RRP (E20)"


def test_unknown_barcode_gets_a_clear_message():
    """E2 names the barcode and says Takealot's catalogue does not list it."""
    response = sample("offer_create_unknown_barcode_200")
    reply = wire.read_offer_reply(response.status_code, response.content)

    (error,) = wire.reply_errors(reply, barcode="6001234567890")
    assert error.message.startswith("barcode 6001234567890 is not in the Takealot catalogue (E2)")
    assert (error.kind, error.code, error.field) == (ErrorKind.CHANNEL, "E2", "barcode")
    exists = sample("offer_create_exists_200")
    assert wire.read_offer_reply(exists.status_code, exists.content).has("E4")


def test_reads_message_errors():
    """4xx and 5xx answers carry `{message}`; a 404 is recognised as "no such offer"."""
    for name, status in (
        ("offer_not_found_404", 404),
        ("bad_request_400", 400),
        ("forbidden_403", 403),
        ("server_error_500", 500),
    ):
        response = sample(name)
        reply = wire.read_offer_reply(response.status_code, response.content)
        assert (reply.status_code, reply.ok) == (status, False)
        assert reply.message
        assert reply.not_found is (status == 404)
    response = sample("bad_request_400")
    (error,) = wire.reply_errors(
        wire.read_offer_reply(response.status_code, response.content), barcode=None
    )
    assert error.message == "takealot refused the request (HTTP 400): Invalid request body"


def test_garbage_bodies_raise_protocol_errors():
    """Non-JSON, or JSON of the wrong shape, raises ChannelProtocolError instead of guessing."""
    with pytest.raises(ChannelProtocolError, match="not JSON"):
        wire.read_offer_reply(200, b"<html>502 Bad Gateway</html>")
    with pytest.raises(ChannelProtocolError, match="without an offer object"):
        wire.read_offer_reply(200, b"[1, 2]")
    with pytest.raises(ChannelProtocolError, match="not a list"):
        wire.read_offer_reply(200, b'{"offer": null, "validation_errors": "E2"}')
    with pytest.raises(ChannelProtocolError, match="neither an offer nor validation errors"):
        wire.read_offer_reply(200, b'{"errors": [{"message": "?"}]}')
    with pytest.raises(ChannelProtocolError, match="without a batch id"):
        wire.read_batch(200, b'{"status": {"id": 1}}')
    with pytest.raises(ChannelProtocolError, match="not a list"):
        wire.read_batch(200, b'{"batch_id": "1", "result": {"a": 1}}')
    with pytest.raises(ChannelProtocolError, match="offer count"):
        wire.read_count(200, b'{"total": 3}')


def test_reads_batch_states_and_results():
    """Submitted and Processing are pending; Completed carries one result per offer; Failed fails."""
    for name in ("batch_submitted_200", "batch_processing_200"):
        response = sample(name)
        view = wire.read_batch(response.status_code, response.content)
        assert (view.batch_id, view.state, view.results) == ("8812345", wire.BatchState.PENDING, ())
    response = sample("batch_completed_200")
    view = wire.read_batch(response.status_code, response.content)
    assert (view.state, view.status_id, view.description) == (wire.BatchState.DONE, 3, "Completed")
    assert [r.ok for r in view.results] == [True, False, False]
    assert view.results[0].offer.offer_id == 123456789
    assert view.results[1].offer is None
    assert view.results[1].has("E2")
    assert view.results[2].offer.sku == "TRAIL-43-BLK"
    response = sample("batch_failed_200")
    assert wire.read_batch(response.status_code, response.content).state is wire.BatchState.FAILED


def test_reads_the_offer_count():
    """GET /v2/offers/count answers `{count}`."""
    response = sample("count_200")
    assert wire.read_count(response.status_code, response.content) == 1342


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("1767268860", 60.0),  # epoch seconds
        ("1767268830000", 30.0),  # epoch milliseconds
        ("12.5", 12.5),  # seconds from now
        ("2026-01-01T12:00:45Z", 45.0),  # ISO 8601
        ("Thu, 01 Jan 2026 12:00:20 GMT", 20.0),  # HTTP date
        ("1767268000", 0.0),  # in the past: no wait
        ("soon", None),
        ("nan", None),
    ],
)
def test_rate_limit_reset_formats(reset, expected):
    """x-RateLimit-Reset is read as a moment (epoch, ISO, HTTP date) or as seconds from now."""
    rate = wire.read_rate_limit(
        {"X-RateLimit-Limit": "100", "x-ratelimit-remaining": "7", "x-RateLimit-Reset": reset}, NOW
    )
    assert (rate.limit, rate.remaining, rate.reset_in) == (100, 7, expected)


def test_rate_limit_absent():
    """Without rate-limit headers there is no budget to follow."""
    assert wire.read_rate_limit({"content-type": "application/json"}, NOW) is None
    assert wire.read_rate_limit({"x-RateLimit-Remaining": "3"}, NOW) == wire.RateLimit(
        None, 3, None
    )


def test_classify_statuses():
    """401/403 stop (auth), 429 throttles, 5xx retries, other answers are final."""
    assert wire.classify(sample("unauthorised_401"), NOW).kind is VerdictKind.AUTH
    assert wire.classify(sample("forbidden_403"), NOW).kind is VerdictKind.AUTH
    throttled = wire.classify(sample("throttled_429"), NOW)
    assert (throttled.kind, throttled.wait) == (VerdictKind.THROTTLED, 0.0)  # the pacer waits
    assert wire.classify(sample("server_error_500"), NOW).kind is VerdictKind.RETRY
    assert wire.classify(sample("offer_not_found_404"), NOW).kind is VerdictKind.OK
    assert wire.classify(sample("offer_update_200"), NOW).kind is VerdictKind.OK


def test_classify_429_without_reset_uses_retry_after():
    """A 429 without x-RateLimit-Reset falls back to Retry-After (or backoff)."""
    response = httpx.Response(429, headers={"retry-after": "3"}, json={"message": "slow down"})
    verdict = wire.classify(response, NOW)
    assert (verdict.kind, verdict.wait) == (VerdictKind.THROTTLED, 3.0)


def test_classify_retries_unreadable_success_bodies():
    """A 2xx with a truncated or HTML body is retried: every write is an idempotent upsert."""
    response = httpx.Response(200, content=b'{"offer": {"offer_id": 1', headers={})
    assert wire.classify(response, NOW).kind is VerdictKind.RETRY
