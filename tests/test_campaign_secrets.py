"""
Secrets campaign: every credential, planted in full runs against channels that echo it back,
is found nowhere it could leak.

Credentials: the Shopify access token (static) and client secret (client-credentials grant,
plus the tokens the grant issues), the Amazon LWA client secret and refresh token (plus the
access tokens LWA issues), the Takealot API key. Each channel runs a full event on SQLite with
DEBUG logging captured from every logger, through a wrapper that makes the emulator misbehave
in the worst way: some answers quote the request's headers and body (so the credentials) in
their error messages, some token exchanges fail with the secret in a 5xx body before they
succeed, and a run with wrong credentials is refused with an answer that quotes them.

Then every log record (formatted, tracebacks included), every exception message and repr, the
repr of every object involved, both log exports (JSON Lines and CSV) and the raw bytes of the
SQLite files are searched for each secret.
"""

from __future__ import annotations

import io
import logging
import random
import time
import traceback
from typing import Any

import httpx
import pytest

from _campaignchannels import make_catalog
from catalogsync import (
    Change,
    Connector,
    ConnectorParams,
    ItemState,
    ItemType,
    Secret,
    SQLiteQueue,
    SQLiteStore,
    Synchronizer,
    SyncOptions,
)
from catalogsync.channels import RetryPolicy
from catalogsync.channels.amazon import AmazonChannel, LwaCredentials
from catalogsync.channels.shopify import (
    ClientCredentials,
    ShopifyChannel,
    ShopifyStore,
    StaticToken,
)
from catalogsync.channels.takealot import TakealotChannel
from catalogsync.testing import AmazonEmulator, ManualClock, ShopifyEmulator, TakealotEmulator

from _campaign import FIGURES


pytestmark = pytest.mark.campaign

SHOPIFY_TOKEN = "shpat_secretcampaign_9c41e7b2d05f"
SHOPIFY_CLIENT_ID = "campaign-app-client-id"
SHOPIFY_CLIENT_SECRET = "shpss_secretcampaign_77aa3c1e0b9d"
LWA_CLIENT_SECRET = "amzn1.oa2-cs.v1.secretcampaign5e6f7a8b"
LWA_REFRESH_TOKEN = "Atzr|IwEBIsecretcampaign-refresh-31d4c2"
TAKEALOT_KEY = "takealot-secretcampaign-key-8e2f61a0"
PLANTED = {
    "Shopify access token": SHOPIFY_TOKEN,
    "Shopify client secret": SHOPIFY_CLIENT_SECRET,
    "Amazon LWA client secret": LWA_CLIENT_SECRET,
    "Amazon LWA refresh token": LWA_REFRESH_TOKEN,
    "Takealot API key": TAKEALOT_KEY,
}


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def capture():
    """DEBUG logging from every logger into a list, for the duration of the test."""
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def echoing(emulator: Any, needles: tuple[str, ...], *, token_path: str) -> Any:
    """
    The emulator, misbehaving: a request that mentions a needle is answered 400 with a body
    quoting its headers and body; the first token exchange fails 503 quoting its body.
    """
    state = {"token_failures": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        text = request.content.decode("utf-8", "replace")
        quoted = f"rejected {request.method} {request.url} {dict(request.headers)} body={text}"
        if request.url.path.endswith(token_path) and state["token_failures"] < 1:
            state["token_failures"] += 1
            return httpx.Response(503, json={"error": "unavailable", "error_description": quoted})
        if any(n in text or n in request.url.path for n in needles):
            body = {
                "message": quoted,
                "errors": [{"message": quoted, "code": "InvalidInput"}],
                "validation_errors": [{"code": "E99", "message": quoted}],
            }
            return httpx.Response(400, json=body)
        return emulator(request)

    return handler


def refusing(emulator: Any) -> Any:
    """Every request is refused 401 with a body that quotes the credentials it carried."""

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        quoted = f"bad credentials {dict(request.headers)} {request.content.decode()}"
        return httpx.Response(
            401,
            json={"error": "invalid_client", "error_description": quoted, "message": quoted},
        )

    return handler


# -- one channel per function: (channel, params, the emulator's own issued tokens) --------------


def shopify(clock, client_factory):
    emulator = ShopifyEmulator(
        access_tokens=[SHOPIFY_TOKEN],
        client_credentials={SHOPIFY_CLIENT_ID: SHOPIFY_CLIENT_SECRET},
        clock=clock,
    )
    channels = []
    for token in (
        StaticToken(Secret(SHOPIFY_TOKEN)),
        ClientCredentials(SHOPIFY_CLIENT_ID, Secret(SHOPIFY_CLIENT_SECRET)),
    ):
        client = client_factory(emulator, ('"P0003"',), "/oauth/access_token")
        store = ShopifyStore(
            "emulated", token, location_id="gid://shopify/Location/1", base_url=emulator.base_url
        )
        channels.append(
            ShopifyChannel(store, client=client, clock=clock, rng=random.Random(1), retry=RETRY)
        )
    return emulator, channels, ConnectorParams(overwrite_stock=True), lambda: list(emulator._issued)


def takealot(clock, client_factory):
    catalog = make_catalog("takealot", 8, 1)
    barcodes = [v.fields["barcode"] for v in catalog.items(ItemType.VARIANT)]
    emulator = TakealotEmulator(barcodes, api_key=TAKEALOT_KEY, clock=clock, batch_polls=0)
    client = client_factory(emulator, (barcodes[2],), "/never")
    channel = TakealotChannel(
        Secret(TAKEALOT_KEY),
        client=client,
        warehouses=[28676],
        default_leadtime_days=5,
        batch_threshold=1000,
        clock=clock,
        rng=random.Random(1),
        retry=RETRY,
    )
    params = ConnectorParams(
        field_mapping={"selling_price": "price", "rrp": "compare_at_price"}, overwrite_stock=True
    )
    return emulator, [channel], params, list


def amazon(clock, client_factory):
    emulator = AmazonEmulator(
        client_secret=LWA_CLIENT_SECRET, refresh_tokens=[LWA_REFRESH_TOKEN], clock=clock
    )
    client = client_factory(emulator, ("P0003-V1",), "/auth/o2/token")
    channel = AmazonChannel(
        client,
        seller_id=emulator.seller_id,
        marketplace="US",
        product_type="SHIRT",
        credentials=LwaCredentials(
            emulator.client_id,
            client_secret=Secret(LWA_CLIENT_SECRET),
            refresh_token=Secret(LWA_REFRESH_TOKEN),
        ),
        clock=clock,
        rng=random.Random(1),
        retry=RETRY,
    )
    params = ConnectorParams(field_mapping={"item_name": "title", "list_price": "compare_at_price"})
    return emulator, [channel], params, lambda: list(emulator._tokens)


RETRY = RetryPolicy(attempts=3, initial=0.5, maximum=2.0)
SETUPS = {"shopify": shopify, "takealot": takealot, "amazon": amazon}


def scan(texts: dict[str, str], raw: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    """Where each secret was found (``[]`` when nowhere)."""
    found = []
    for what, secret in secrets.items():
        for name, text in texts.items():
            if secret in text:
                at = text.index(secret)
                found.append(f"{what} in {name}: ...{text[max(0, at - 60) : at + 8]!r}")
        for name, data in raw.items():
            if secret.encode() in data:
                found.append(f"{what} in the bytes of {name}")
    return found


@pytest.mark.parametrize("kind", ["shopify", "takealot", "amazon"])
def test_no_secret_reaches_logs_errors_reprs_exports_or_the_database(kind, tmp_path, capture):
    """Full runs with every credential of the channel, a channel that echoes them in errors and
    token failures, and a run refused with its credentials quoted: no secret appears in any log
    record, exception, repr, export or byte of the SQLite files.
    """
    clock = ManualClock()
    vocabulary = "shopify" if kind == "shopify" else kind
    catalog = make_catalog(vocabulary, 8, 1)
    clients: list[httpx.Client] = []

    def client_factory(emulator, needles, token_path):
        client = httpx.Client(
            transport=httpx.MockTransport(echoing(emulator, needles, token_path=token_path)),
            base_url=emulator.base_url,
        )
        clients.append(client)
        return client

    _, channels, params, issued = SETUPS[kind](clock, client_factory)
    db = tmp_path / "secrets.db"
    texts: dict[str, str] = {}
    objects: list[Any] = [*channels, params]
    statuses_seen = 0
    started = time.monotonic()
    try:
        for n, channel in enumerate(channels):
            queue, store = SQLiteQueue(db, clock=clock), SQLiteStore(db, clock=clock)
            connector = Connector(
                f"{kind}-{n}", channel.name, params=params, credentials=f"vault:{kind}-{n}"
            )
            sync = Synchronizer(
                connector,
                catalog=catalog,
                channel=channel,
                queue=queue,
                store=store,
                clock=clock,
                options=SyncOptions(batch_size=5, heartbeat=False),
            )
            sync.enqueue(Change(i.ref, t) for t in ItemType for i in catalog.items(t))
            result = sync.run()
            assert result.reason == "completed", result
            statuses = list(sync.register.items(connector.id, event_id=result.event.id, limit=1000))
            assert any(
                s.state is ItemState.ERROR and "rejected" in str(s.errors) for s in statuses
            ), "the echoing answers became item errors"
            statuses_seen += len(statuses)
            for fmt in ("jsonl", "csv"):
                out = io.StringIO()
                sync.register.export(result.event.id, out, format=fmt)
                texts[f"{fmt} export of {connector.id}"] = out.getvalue()
            texts[f"register text of {connector.id}"] = sync.register.render(result.event.id)
            objects += [sync, result, result.event, *statuses, connector, queue, store]
            objects += [getattr(channel, "_sessions", None), getattr(channel, "_tokens", None)]
            queue.close()
            store.close()
        # the same credentials refused by a channel that quotes them in its 401 answer
        errors: list[BaseException] = []

        def refused_client(emulator, _needles, _token_path):
            client = httpx.Client(
                transport=httpx.MockTransport(refusing(emulator)), base_url=emulator.base_url
            )
            clients.append(client)
            return client

        _, refused_channels, _, _ = SETUPS[kind](clock, refused_client)
        for n, channel in enumerate(refused_channels):
            try:
                channel.check_connection(params)
            except Exception as exc:  # the refusal is the point
                errors.append(exc)
            queue, store = SQLiteQueue(db, clock=clock), SQLiteStore(db, clock=clock)
            sync = Synchronizer(
                Connector(f"{kind}-refused-{n}", channel.name, params=params),
                catalog=catalog,
                channel=channel,
                queue=queue,
                store=store,
                clock=clock,
            )
            sync.enqueue([Change("P0001", ItemType.PRODUCT)])
            refused_run = sync.run()
            assert refused_run.reason == "error", refused_run
            objects += [channel, refused_run.event, *refused_run.event.errors]
            texts[f"register text of refused run {n}"] = sync.register.render(refused_run.event.id)
            queue.close()
            store.close()
        assert errors, "the refused credentials raised"
    finally:
        for client in clients:
            client.close()

    FIGURES.took("secrets", time.monotonic() - started)
    for n, exc in enumerate(errors):
        texts[f"exception {n}"] = "".join(traceback.format_exception(exc)) + repr(exc)
    for n, obj in enumerate(objects):
        texts[f"repr {n} ({type(obj).__name__})"] = repr(obj) + str(obj)
    texts["log records"] = "\n".join(capture.lines)
    raw = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("secrets.db")}
    secrets = {k: v for k, v in PLANTED.items() if k.split()[0].lower() == kind}
    secrets |= {f"issued token {n}": t for n, t in enumerate(issued())}
    assert secrets
    assert capture.lines, "DEBUG logging was captured"
    found = scan(texts, raw, secrets)
    FIGURES.add(
        "secrets",
        **{f"{kind}_secrets_planted": len(secrets)},
        secrets_planted=len(secrets),
        places_scanned=len(texts) + len(raw),
        log_records_scanned=len(capture.lines),
        statuses_scanned=statuses_seen,
        bytes_scanned=sum(len(b) for b in raw.values()),
        leaks=len(found),
    )

    assert found == [], "\n".join(f[:200] for f in found)
