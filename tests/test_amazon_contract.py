"""
Contract tests: every request the Amazon channel builds, and every answer of the Amazon emulator,
checked against the official Listings Items API model (Swagger 2.0) and the LWA token exchange.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote

import httpx
import jsonschema
import pytest

from catalogsync import (
    ConnectorParams,
    ErrorKind,
    InvalidArgumentError,
    Item,
    ItemAction,
    ItemType,
    Mode,
    Secret,
    Visibility,
)
from catalogsync.channels import RetryPolicy
from catalogsync.channels.amazon import (
    AmazonChannel,
    AmazonPacer,
    LwaCredentials,
    listings_feed,
    read_processing_report,
)
from catalogsync.testing import AmazonEmulator, ManualClock
from catalogsync.typing import Operation, RenderContext

from _support import contracts_dir, require


MODEL_FILE = "amazon/listingsItems_2021-08-01.json"


class SwaggerModel:
    """Matches requests and responses to the operations of a Swagger 2.0 model."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.routes = []
        for template, ops in spec["paths"].items():
            names = re.findall(r"\{(\w+)\}", template)
            pattern = "^" + re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(template)) + "$"
            for method, op in ops.items():
                if method != "parameters":
                    self.routes.append((method.upper(), re.compile(pattern), names, template, op))

    def _schema(self, schema: dict) -> dict:
        return {**schema, "definitions": self.spec["definitions"]}

    def operation(self, method: str, raw_path: str):
        for m, pattern, names, template, op in self.routes:
            match = pattern.match(raw_path)
            if m == method and match:
                return (
                    template,
                    op,
                    dict(zip(names, (unquote(g) for g in match.groups()), strict=True)),
                )
        return None

    def check_request(self, request: httpx.Request) -> list[str]:
        """Problems of *request* against the model (empty when it conforms)."""
        raw_path = request.url.raw_path.split(b"?")[0].decode()
        found = self.operation(request.method, raw_path)
        if found is None:
            return [f"no operation for {request.method} {raw_path}"]
        _template, op, path_params = found
        problems = []
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        declared = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        problems += [
            f"undeclared query parameter {name!r}" for name in query if name not in declared
        ]
        for param in op["parameters"]:
            where, name = param["in"], param["name"]
            if where == "path" and not path_params.get(name):
                problems.append(f"empty path parameter {name}")
            if where == "query":
                problems += self._check_query(param, query.get(name))
            if where == "body":
                problems += self._check_body(param, request)
        return problems

    def _check_query(self, param: dict, values: list[str] | None) -> list[str]:
        name = param["name"]
        if values is None:
            return [f"missing required query parameter {name!r}"] if param.get("required") else []
        if len(values) != 1:
            return [f"query parameter {name!r} repeated"]
        if param["type"] == "array":
            items = values[0].split(",")
            value: object = items
            if param.get("maxItems") is not None and len(items) > param["maxItems"]:
                return [f"{name!r} has {len(items)} items, max {param['maxItems']}"]
            enum = param["items"].get("enum")
            if enum:
                bad = [i for i in items if i not in enum]
                if bad:
                    return [f"{name!r} values {bad} not in {enum}"]
        else:
            value = values[0]
            if "enum" in param and value not in param["enum"]:
                return [f"{name!r}={value!r} not in {param['enum']}"]
        return [] if value else [f"empty query parameter {name!r}"]

    def _check_body(self, param: dict, request: httpx.Request) -> list[str]:
        if not request.content:
            return ["missing request body"] if param.get("required") else []
        if not request.headers.get("content-type", "").startswith("application/json"):
            return ["body sent without content-type application/json"]
        try:
            body = json.loads(request.content)
        except ValueError:
            return ["request body is not JSON"]
        validator = jsonschema.Draft4Validator(self._schema(param["schema"]))
        return [
            f"body: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(body)
        ]

    def check_response(self, request: httpx.Request, response: httpx.Response) -> list[str]:
        """Problems of *response* against the model's answer for *request*'s operation."""
        raw_path = request.url.raw_path.split(b"?")[0].decode()
        found = self.operation(request.method, raw_path)
        if found is None:
            return []  # the request itself is reported by check_request
        _template, op, _ = found
        declared = op["responses"].get(str(response.status_code))
        if declared is None:
            return [f"HTTP {response.status_code} is not declared for {op['operationId']}"]
        problems = []
        if not response.headers.get("x-amzn-requestid"):
            problems.append("no x-amzn-RequestId header")
        limit = response.headers.get("x-amzn-ratelimit-limit")
        if limit is not None:
            if "x-amzn-RateLimit-Limit" not in declared.get("headers", {}):
                problems.append(
                    f"x-amzn-RateLimit-Limit is not declared on HTTP {response.status_code}"
                )
            elif not re.fullmatch(r"\d+(\.\d+)?", limit):
                problems.append(f"x-amzn-RateLimit-Limit {limit!r} is not a rate")
        try:
            body = json.loads(response.content)
        except ValueError:
            return [*problems, "response body is not JSON"]
        validator = jsonschema.Draft4Validator(self._schema(declared["schema"]))
        problems += [
            f"answer: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(body)
        ]
        return problems


@pytest.fixture(scope="module")
def model() -> SwaggerModel:
    """The official Listings Items model."""
    path = contracts_dir() / MODEL_FILE
    require(path.exists(), f"the Amazon Listings Items model is missing at {path}")
    return SwaggerModel(json.loads(path.read_text()))


class Recorder:
    """An httpx handler that passes requests to the emulator and keeps every exchange."""

    def __init__(self, emulator: AmazonEmulator) -> None:
        self.emulator = emulator
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.emulator(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def listings(self) -> Iterator[tuple[httpx.Request, httpx.Response]]:
        return ((q, r) for q, r in self.exchanges if "/listings/" in q.url.path)


def channel(emu, recorder, clock, **kw):
    kw.setdefault("product_type", "SHIRT")
    return AmazonChannel(
        httpx.Client(transport=httpx.MockTransport(recorder)),
        seller_id=emu.seller_id,
        marketplace="US",
        credentials=LwaCredentials(
            emu.client_id,
            client_secret=Secret(emu.client_secret),
            refresh_token=Secret(emu.refresh_token),
        ),
        clock=clock,
        rng=random.Random(3),
        retry=RetryPolicy(attempts=4, initial=0.2, maximum=1.0),
        issue_locale="en_US",
        **kw,
    )


def scenario(emu: AmazonEmulator, recorder: Recorder, clock: ManualClock) -> None:
    """Drive every kind of request the channel makes through *recorder*."""
    mapping = {"item_name": "title"}
    p = ConnectorParams(field_mapping=mapping, overwrite_stock=True, map_status=True)
    ch = channel(emu, recorder, clock)
    ch.check_connection(p)
    product = Item(
        "P1",
        ItemType.PRODUCT,
        fields={"title": "Tee", "brand": "Acme", "sku": "TEE 1/é", "bullet_point": ["Soft"]},
    )
    red = Item(
        "V1",
        ItemType.VARIANT,
        parents=("P1",),
        fields={"sku": "TEE-R", "color": "Red", "price": 10, "quantity": 2},
    )
    solo = Item(
        "P2",
        ItemType.PRODUCT,
        fields={
            "title": "Mug",
            "price": "7.5",
            "quantity": 1,
            "images": ["https://img.example/m.jpg"],
            "barcode": "4006381333931",
        },
    )
    related = {i.key: i for i in (product, red, solo)}
    ctx = RenderContext(p, related=related, children={product.key: ("V1",)})
    ops = [
        Operation(i.type, i.ref, ItemAction.CREATE, payload=ch.render(i, ctx), digest=str(n))
        for n, i in enumerate((product, red, solo))
    ]
    created = {o.ref: o for o in ch.push(ops, p)}
    # offer-only PATCH, full PATCH without stock ownership, archive, delete
    cheaper = Item("P2", ItemType.PRODUCT, fields={**solo.fields, "price": 6})
    renamed = Item(
        "P2", ItemType.PRODUCT, fields={**solo.fields, "title": "Big mug", "images": None}
    )
    for item, params in ((cheaper, p), (renamed, ConnectorParams(field_mapping=mapping))):
        c = RenderContext(params, related={item.key: item})
        prev = created["P2"]
        op = Operation(
            item.type,
            item.ref,
            ItemAction.UPDATE,
            payload=ch.render(item, c),
            channel_id=prev.channel_id,
            memo=prev.memo,
            digest="x",
        )
        created["P2"] = ch.push([op], params)[0]
    ch.push(
        [
            Operation(
                ItemType.VARIANT,
                "V1",
                ItemAction.ARCHIVE,
                channel_id="TEE-R",
                memo=created["V1"].memo,
            )
        ],
        p,
    )
    ch.push(
        [
            Operation(
                ItemType.VARIANT,
                "V1",
                ItemAction.ARCHIVE,
                channel_id="TEE-R",
                memo=created["V1"].memo,
            )
        ],
        ConnectorParams(),
    )
    ch.push(
        [Operation(ItemType.PRODUCT, "P2", ItemAction.DELETE, channel_id=created["P2"].channel_id)],
        p,
    )
    # validation previews (VALID and INVALID), draft listings
    emu.add_issue(
        "TEE-R",
        code="90220",
        message="'size' is required but not supplied.",
        severity="ERROR",
        attribute="size",
    )
    preview = ConnectorParams(field_mapping=mapping, mode=Mode.TEST, map_status=True)
    draft = Item("P3", ItemType.PRODUCT, visibility=Visibility.DRAFT, fields={"title": "Draft"})
    c = RenderContext(
        preview, related=related | {draft.key: draft}, children={product.key: ("V1",)}
    )
    ch.push(
        [
            Operation(i.type, i.ref, ItemAction.CREATE, payload=ch.render(i, c))
            for i in (red, draft)
        ],
        preview,
    )
    # a 403 for an expired token, then throttling with retries
    emu.expire_tokens()
    c = RenderContext(p, related={solo.key: solo})
    ch.push([Operation(ItemType.PRODUCT, "P2", ItemAction.CREATE, payload=ch.render(solo, c))], p)
    emu.limits["putListingsItem"] = (1.0, 1.0)
    emu._buckets.clear()
    fast = channel(
        emu,
        recorder,
        clock,
        pacer=AmazonPacer(
            clock=clock, limits={"putListingsItem": (50.0, 50.0)}, follow_headers=False
        ),
        max_workers=1,
    )
    c = RenderContext(p, related={solo.key: solo})
    many = [
        Operation(
            ItemType.PRODUCT,
            f"P{n}",
            ItemAction.CREATE,
            payload={**fast.render(solo, c), "sku": f"MUG-{n}"},
        )
        for n in range(4)
    ]
    fast.push(many, p)
    # every includedData set of getListingsItem, a 404, a sandbox call and its refusal
    token = fast._tokens.token()
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    included = "summaries,attributes,issues,offers,fulfillmentAvailability,procurement,relationships,productTypes"
    for sku in ("MUG-1", "NOPE"):
        client.get(
            f"{emu.base_url}/listings/2021-08-01/items/{emu.seller_id}/{sku}",
            params={"marketplaceIds": "ATVPDKIKX0DER", "includedData": included},
            headers={"x-amz-access-token": token},
        )
    sandbox = channel(emu, recorder, clock, sandbox=True)
    sandbox.check_connection(p)
    sandbox.push(
        [
            Operation(
                ItemType.PRODUCT,
                "B",
                ItemAction.CREATE,
                payload={"sku": "BadSKU", "productType": "SHIRT", "attributes": {}},
            )
        ],
        p,
    )


@pytest.fixture(scope="module")
def exchanges():
    """Every listings request and answer of the scenario."""
    clock = ManualClock()
    emu = AmazonEmulator(clock=clock)
    recorder = Recorder(emu)
    scenario(emu, recorder, clock)
    return list(recorder.listings()), recorder.exchanges


def test_scenario_covers_every_operation_and_status(exchanges):
    """The scenario exercises every write, previews, 400/403/404/429 answers and the sandbox."""
    listings, _ = exchanges
    kinds = {(q.method, r.status_code) for q, r in listings}
    preview = [q for q, _ in listings if q.url.params.get("mode") == "VALIDATION_PREVIEW"]

    assert {
        ("GET", 404),
        ("GET", 200),
        ("PUT", 200),
        ("PATCH", 200),
        ("DELETE", 200),
        ("PUT", 429),
        ("PUT", 403),
        ("PUT", 400),
    } <= kinds
    assert preview
    assert any(q.url.host.startswith("sandbox.") for q, _ in listings)
    assert len(listings) > 20


def test_every_request_matches_the_model(model, exchanges):
    """Path template, method, query parameters and body of each request conform to the model."""
    listings, _ = exchanges
    problems = {f"{q.method} {q.url}": model.check_request(q) for q, _ in listings}

    assert {k: v for k, v in problems.items() if v} == {}


def test_every_answer_matches_the_model(model, exchanges):
    """Status, headers and body of each emulator answer conform to the model's responses."""
    listings, _ = exchanges
    problems = {
        f"{q.method} {q.url} -> {r.status_code}": model.check_response(q, r) for q, r in listings
    }

    assert {k: v for k, v in problems.items() if v} == {}


def test_token_exchanges_follow_lwa(exchanges):
    """Each token request is a form-encoded refresh_token grant; answers carry bearer tokens."""
    _, everything = exchanges
    tokens = [(q, r) for q, r in everything if q.url.path == "/auth/o2/token"]

    assert len(tokens) >= 2
    for request, response in tokens:
        form = parse_qs(request.content.decode())
        assert request.method == "POST"
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert set(form) == {"grant_type", "refresh_token", "client_id", "client_secret"}
        assert form["grant_type"] == ["refresh_token"]
        assert response.json()["token_type"] == "bearer"


@pytest.mark.parametrize(
    "case",
    [
        (
            "PUT",
            "/listings/2021-08-01/items/S1/TEE-1",
            {},
            {"productType": "SHIRT", "attributes": {}},
            "missing required query parameter 'marketplaceIds'",
        ),
        (
            "PUT",
            "/listings/2021-08-01/items/S1/TEE-1",
            {"marketplaceIds": "A,B"},
            {"productType": "SHIRT", "attributes": {}},
            "max 1",
        ),
        (
            "PUT",
            "/listings/2021-08-01/items/S1/TEE-1",
            {"marketplaceIds": "A"},
            {"productType": "SHIRT"},
            "'attributes' is a required property",
        ),
        (
            "PATCH",
            "/listings/2021-08-01/items/S1/TEE-1",
            {"marketplaceIds": "A"},
            {"productType": "SHIRT", "patches": [{"op": "move", "path": "/attributes/x"}]},
            "'move' is not one of",
        ),
        (
            "PATCH",
            "/listings/2021-08-01/items/S1/TEE-1",
            {"marketplaceIds": "A", "mode": "DRY_RUN"},
            {"productType": "SHIRT", "patches": []},
            "'mode'='DRY_RUN'",
        ),
        (
            "PUT",
            "/listings/2021-08-01/items/S1/TEE/1",
            {"marketplaceIds": "A"},
            {"productType": "SHIRT", "attributes": {}},
            "no operation for PUT",
        ),
        (
            "DELETE",
            "/listings/2021-08-01/items/S1/TEE-1",
            {"marketplaceIds": "A", "debug": "1"},
            None,
            "undeclared query parameter 'debug'",
        ),
    ],
)
def test_malformed_requests_fail_the_contract(model, case):
    """A deliberately malformed request is caught by the same checks."""
    method, path, query, body, expected = case
    request = httpx.Request(
        method, "https://sellingpartnerapi-na.amazon.com" + path, params=query, json=body
    )

    assert any(expected in p for p in model.check_request(request)), model.check_request(request)


def test_malformed_answer_fails_the_contract(model):
    """An answer missing a required field, or with an undeclared status, is caught."""
    request = httpx.Request(
        "PUT", "https://h/listings/2021-08-01/items/S1/TEE-1", params={"marketplaceIds": "A"}
    )
    no_status = httpx.Response(
        200, json={"sku": "TEE-1", "submissionId": "x"}, headers={"x-amzn-RequestId": "r"}
    )
    teapot = httpx.Response(418, json={"errors": []}, headers={"x-amzn-RequestId": "r"})

    assert any(
        "'status' is a required property" in p for p in model.check_response(request, no_status)
    )
    assert model.check_response(request, teapot) == ["HTTP 418 is not declared for putListingsItem"]


def sandbox_entries(model):
    path = model.spec["paths"]["/listings/2021-08-01/items/{sellerId}/{sku}"]
    for method in ("put", "patch", "delete"):
        for status, declared in path[method]["responses"].items():
            for entry in declared.get("x-amzn-api-sandbox", {}).get("static", []):
                yield method.upper(), int(status), entry


def test_emulator_sandbox_answers_are_the_models_static_mocks(model):
    """Each x-amzn-api-sandbox request of the model gets exactly the model's response."""
    clock = ManualClock()
    emu = AmazonEmulator(clock=clock, sandbox=True)
    token = (
        emu.client()
        .post(
            "https://api.amazon.com/auth/o2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": emu.refresh_token,
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
            },
        )
        .json()["access_token"]
    )
    checked = 0
    for method, status, entry in sandbox_entries(model):
        params = entry["request"]["parameters"]
        sku = params.get("sku", {}).get("value", "ANY-SKU")
        query = {
            "marketplaceIds": ",".join(
                params.get("marketplaceIds", {}).get("value", ["ATVPDKIKX0DER"])
            )
        }
        if "includedData" in params:
            query["includedData"] = ",".join(params["includedData"]["value"])
        if "mode" in params:
            query["mode"] = params["mode"]["value"]
        body = (
            None
            if method == "DELETE"
            else {"productType": "LUGGAGE", "attributes": {}}
            if method == "PUT"
            else {"productType": "LUGGAGE", "patches": [{"op": "delete", "path": "/attributes/x"}]}
        )
        response = emu.client().request(
            method,
            f"/listings/2021-08-01/items/{emu.seller_id}/{sku}",
            params=query,
            json=body,
            headers={"x-amz-access-token": token},
        )

        assert (method, sku, response.status_code) == (method, sku, status)
        assert response.json() == entry["response"]
        checked += 1

    assert checked == 10  # put, patch, delete: 200 and 400 mocks


# -- JSON_LISTINGS_FEED -----------------------------------------------------------------------


def feed_schema(name):
    path = contracts_dir() / "amazon" / name
    require(path.exists(), f"the Amazon listings feed schema is missing at {path}")
    return json.loads(path.read_text())


def test_listings_feed_matches_the_feed_schema():
    """A feed built from rendered listings and deletions validates against listings-feed-schema-v2."""
    clock = ManualClock()
    emu = AmazonEmulator(clock=clock)
    ch = channel(emu, Recorder(emu), clock)
    params = ConnectorParams(field_mapping={"item_name": "title"}, overwrite_stock=True)
    items = [
        Item(f"P{n}", ItemType.PRODUCT, fields={"title": f"Mug {n}", "price": 5 + n, "quantity": n})
        for n in range(3)
    ]
    payloads = [ch.render(i, RenderContext(params, related={i.key: i})) for i in items]
    schema = feed_schema("listings-feed-schema-v2.json")
    full = listings_feed(
        emu.seller_id,
        payloads,
        deletes=["OLD-1"],
        issue_locale="en_US",
        report_included_data=["issues"],
    )
    partial = listings_feed(emu.seller_id, payloads, operation="PARTIAL_UPDATE")

    for doc in (full, partial):
        assert list(jsonschema.Draft7Validator(schema).iter_errors(doc)) == []
    assert [m["operationType"] for m in full["messages"]] == [
        "UPDATE",
        "UPDATE",
        "UPDATE",
        "DELETE",
    ]
    assert [m["messageId"] for m in full["messages"]] == [1, 2, 3, 4]
    assert full["messages"][0]["attributes"] == payloads[0]["attributes"]


def test_listings_feed_limits():
    """A feed needs 1 to 25,000 messages and each SKU once."""
    with pytest.raises(InvalidArgumentError):
        listings_feed("S1")
    with pytest.raises(InvalidArgumentError, match="twice"):
        listings_feed("S1", deletes=["A", "A"])
    with pytest.raises(InvalidArgumentError, match="25000"):
        listings_feed("S1", deletes=[f"S{n}" for n in range(25_001)])
    with pytest.raises(InvalidArgumentError, match="operation"):
        listings_feed("S1", deletes=["A"], operation="PATCH")


def test_processing_report_maps_issues_by_sku():
    """The official example report: ERROR issues per SKU become CHANNEL errors with their attribute."""
    report = feed_schema("listings-feed-processing-report-schema-v2.example.json")
    assert (
        list(
            jsonschema.Draft7Validator(
                feed_schema("listings-feed-processing-report-schema-v2.json")
            ).iter_errors(report)
        )
        == []
    )
    issues = read_processing_report(report)

    assert sorted(issues) == ["My-SKU-B", "My-SKU-C"]
    errors, warnings = issues["My-SKU-C"]
    assert [(e.kind, e.code, e.field) for e in errors] == [
        (ErrorKind.CHANNEL, "99022", "purchasable_offer.our_price")
    ]
    assert warnings == ()
    assert len(issues["My-SKU-B"][0]) == 2
