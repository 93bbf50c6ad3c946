"""The HTTP API in process: the Flask app against a fake KVService (and, for key
validation, against LocalService over a real ShardedMap)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import lrukv
from lrukv_proto import LEADER_HTTP_HEADER, LEADER_RPC_HEADER
from lrukv_server.api.http_app import create_app, openapi_document
from lrukv_server.errors import NotLeader, Unavailable
from lrukv_server.fsm import StoreFSM
from lrukv_server.service import Consistency, Health
from lrukv_server.service.local import LocalService
from tests.server.faults import (
    FAULTS,
    LEADER_HTTP,
    LEADER_RPC,
    MIDSTREAM_FAULT_KEY,
    SECRET,
    FakeService,
    Fault,
    FaultyService,
)

DOCS_OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
LIMIT = 1024


class ListingFails(FakeService):
    """keys() and items() raise *error* when iteration starts (lazily, as a generator would)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        raise self.error

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        def lazily() -> Iterator[tuple[str, bytes]]:
            raise self.error
            yield  # pragma: no cover

        return lazily()


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def client(fake: FakeService) -> FlaskClient:
    return create_app(FaultyService(fake), max_value_bytes=LIMIT).test_client()


@pytest.fixture
def real_client() -> FlaskClient:
    store = lrukv.ShardedMap(max_value_bytes=LIMIT)
    service = LocalService(StoreFSM(store), node=FakeService().node)
    return create_app(service, max_value_bytes=LIMIT).test_client()


def _error(response: object) -> dict[str, str]:
    body = json.loads(response.data)  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return dict(body["error"])


# ------------------------------------------------------ the original curl shapes


def test_original_curl_shapes(client: FlaskClient, fake: FakeService) -> None:
    put = client.put("/v1/key-a", data=b"Hello, key-value store!")
    assert put.status_code == 201
    assert put.data == b""
    got = client.get("/v1/key-a")
    assert got.status_code == 200
    assert got.data == b"Hello, key-value store!"
    assert got.mimetype == "application/octet-stream"
    keys = client.get("/v1/util/keys")
    assert keys.status_code == 200
    assert keys.mimetype == "application/json"
    assert keys.get_json() == {"keys": ["key-a"]}
    deleted = client.delete("/v1/key-a")
    assert deleted.status_code == 204
    assert deleted.headers["X-Lrukv-Existed"] == "true"
    assert client.delete("/v1/key-a").headers["X-Lrukv-Existed"] == "false"
    missing = client.get("/v1/key-a")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "key_not_found"


def test_curl_d_form_content_type_is_ignored(client: FlaskClient, fake: FakeService) -> None:
    # curl -d sends application/x-www-form-urlencoded; the body is still the raw value.
    client.put("/v1/k", data=b"a=1&b=2", content_type="application/x-www-form-urlencoded")
    assert fake.data["k"] == b"a=1&b=2"


def test_keys_as_comma_joined_text_when_asked(client: FlaskClient) -> None:
    client.put("/v1/a", data=b"1")
    client.put("/v1/b", data=b"2")
    text = client.get("/v1/util/keys", headers={"Accept": "text/plain"})
    assert text.mimetype == "text/plain"
    assert sorted(text.data.decode().split(",")) == ["a", "b"]
    as_json = client.get("/v1/util/keys", headers={"Accept": "*/*"})
    assert as_json.mimetype == "application/json"


def test_binary_values_round_trip(client: FlaskClient) -> None:
    value = bytes(range(256)) * 3
    client.put("/v1/bin", data=value)
    assert client.get("/v1/bin").data == value


def test_head_of_a_value(client: FlaskClient) -> None:
    client.put("/v1/k", data=b"12345")
    head = client.head("/v1/k")
    assert head.status_code == 200
    assert head.data == b""


# ----------------------------------------------------------- query parameters


def test_ttl_and_consistency_reach_the_service(client: FlaskClient, fake: FakeService) -> None:
    client.put("/v1/k?ttl=30", data=b"v")
    assert fake.last("put") == ("k", b"v", 30.0)
    client.put("/v1/k", data=b"v")
    assert fake.last("put") == ("k", b"v", None)
    client.get("/v1/k?consistency=linearizable")
    assert fake.last("get") == ("k", Consistency.LINEARIZABLE)
    client.get("/v1/util/keys?consistency=STALE")
    assert fake.last("keys") == (Consistency.STALE,)
    client.get("/v1/util/items?consistency=stale")
    assert fake.last("items") == (Consistency.STALE,)


@pytest.mark.parametrize("target", ["/v1/k?consistency=eventual", "/v1/util/keys?consistency=x"])
def test_unknown_consistency_is_400(client: FlaskClient, target: str) -> None:
    response = client.get(target)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_request"
    assert "stale, default, linearizable" in error["message"]


@pytest.mark.parametrize(
    "ttl",
    [
        *("soon", "", "-1", "+1", "0", "0.0", "00", "nan", "inf", "1e3", "1E3", ".5", "5."),
        # Python's float() takes these; a TTL is a plain decimal, nothing else.
        *("1_0", "%20%201%20", "1%0A", "%EF%BC%91", "0x10"),
        "1" + "0" * 32,  # 33 characters: over the length bound
    ],
)
def test_ttl_that_is_not_a_positive_plain_decimal_is_400(
    real_client: FlaskClient, ttl: str
) -> None:
    response = real_client.put(f"/v1/k?ttl={ttl}", data=b"v")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_ttl"
    assert error["message"].startswith("ttl must be")  # says ttl, not the core's "expiry"
    assert real_client.get("/v1/k").status_code == 404


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("30", 30.0), ("0.5", 0.5), ("007", 7.0), ("0.001", 0.001), ("9" * 32, float("9" * 32))],
)
def test_plain_decimal_ttls_reach_the_service(
    client: FlaskClient, fake: FakeService, ttl: str, seconds: float
) -> None:
    assert client.put(f"/v1/k?ttl={ttl}", data=b"v").status_code == 201
    assert fake.last("put") == ("k", b"v", seconds)


# ------------------------------------------------------------------ key rules


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ("/v1/a/b", "a/b"),
        ("/v1/a%2Fb", "a/b"),
        ("/v1/util%2Fkeys", "util/keys"),
        ("/v1/util", "util"),
        ("/v1/utility/x", "utility/x"),
        ("/v1/%2E%2E", ".."),
        ("/v1/a/.../b", "a/.../b"),
        ("/v1/caf%C3%A9", "café"),
        ("/v1/a%20b+c", "a b+c"),
        ("/v1//lead", "/lead"),
        ("/v1/trail/", "trail/"),
        ("/v1/%25", "%"),
    ],
)
def test_key_is_the_percent_decoded_raw_path(
    client: FlaskClient, fake: FakeService, target: str, key: str
) -> None:
    assert client.put(target, data=b"v").status_code == 201
    assert fake.last("put")[0] == key
    assert client.get(target).data == b"v"


@pytest.mark.parametrize(
    "target",
    [
        "/v1/",  # empty
        "/v1/a/../b",  # dot segments: clients and proxies rewrite them
        "/v1/./a",
        "/v1/%FF%FE",  # not UTF-8
        "/v1/a%00b",  # NUL
        "/v1/a%0Ab",  # newline
        "/v1/a%7F",  # DEL
        "/v1/" + "k" * 1025,  # one byte over the limit
    ],
)
def test_bad_keys_are_400_and_the_store_is_unchanged(real_client: FlaskClient, target: str) -> None:
    response = real_client.put(target, data=b"v")
    assert response.status_code == 400, response.data
    assert _error(response)["code"] == "invalid_key"
    assert real_client.get(target).status_code == 400
    assert real_client.get("/v1/util/keys").get_json() == {"keys": []}


def test_longest_key_is_accepted(real_client: FlaskClient) -> None:
    key = "é" * 512  # 1024 UTF-8 bytes
    assert real_client.put("/v1/" + key, data=b"v").status_code == 201
    assert real_client.get("/v1/util/keys").get_json() == {"keys": [key]}


def test_unknown_utility_is_404(client: FlaskClient) -> None:
    response = client.get("/v1/util/nope")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_writing_to_a_utility_path_is_405(client: FlaskClient) -> None:
    response = client.put("/v1/util/keys", data=b"v")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


# ---------------------------------------------------- routes, methods, bodies


@pytest.mark.parametrize("target", ["/", "/v2/key", "/v1", "/metrics", "/healthz/x"])
def test_unknown_routes_are_404_json(client: FlaskClient, target: str) -> None:
    response = client.get(target)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert _error(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "target"), [("POST", "/v1/k"), ("PATCH", "/v1/k"), ("DELETE", "/healthz")]
)
def test_wrong_methods_are_405_json(client: FlaskClient, method: str, target: str) -> None:
    response = client.open(target, method=method, data=b"x")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"
    assert "Allow" in response.headers


class _Unreadable(io.BytesIO):
    """A body that fails the test if anything reads it."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body of an oversized request must not be read")

    def readline(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body of an oversized request must not be read")


def test_body_over_the_limit_is_413_without_reading_it(
    client: FlaskClient, fake: FakeService
) -> None:
    response = client.put(
        "/v1/big",
        input_stream=_Unreadable(),
        environ_overrides={"CONTENT_LENGTH": str(100 * 1024 * 1024)},
    )
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "value_too_large"
    assert str(LIMIT) in error["message"]
    assert "big" not in fake.data


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 201), (LIMIT + 1, 413), (10 * LIMIT, 413)])
def test_streamed_bodies_are_capped_at_the_limit(
    client: FlaskClient, fake: FakeService, size: int, status: int
) -> None:
    response = client.put(
        "/v1/chunked",
        input_stream=io.BytesIO(b"x" * size),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == status
    assert ("chunked" in fake.data) == (status == 201)


def test_value_at_the_limit_is_accepted(client: FlaskClient) -> None:
    assert client.put("/v1/k", data=b"x" * LIMIT).status_code == 201
    assert client.put("/v1/k", data=b"x" * (LIMIT + 1)).status_code == 413


# ------------------------------------------------------------------ streaming


def test_items_stream_ndjson_with_base64_values(client: FlaskClient) -> None:
    values = {"a": b"\x00\xff binary", "b": b"", "c/d": "é".encode()}
    for key, value in values.items():
        assert client.put(f"/v1/{key}", data=value, content_length=len(value)).status_code == 201
    response = client.get("/v1/util/items")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = response.data.decode().splitlines()
    got = {}
    for line in lines:
        item = json.loads(line)
        got[item["key"]] = base64.b64decode(item["value"], validate=True)
    assert got == values


def test_items_stream_with_many_items(client: FlaskClient) -> None:
    for i in range(1000):
        client.put(f"/v1/k{i}", data=str(i).encode())
    lines = client.get("/v1/util/items").data.decode().splitlines()
    assert len(lines) == 1000


def test_items_stream_that_breaks_ends_with_an_error_line(client: FlaskClient) -> None:
    client.put("/v1/first", data=b"1")
    client.put(f"/v1/{MIDSTREAM_FAULT_KEY}", data=b"2")
    client.put("/v1/never-sent", data=b"3")
    response = client.get("/v1/util/items")
    assert response.status_code == 200  # the status was sent before the failure
    lines = [json.loads(line) for line in response.data.decode().splitlines()]
    assert [line.get("key") for line in lines[:-1]] == ["first", MIDSTREAM_FAULT_KEY]
    assert lines[-1]["error"]["code"] == "internal"
    assert SECRET not in response.data.decode()


@pytest.mark.parametrize("target", ["/v1/util/items", "/v1/util/keys"])
def test_listing_errors_at_the_start_get_their_own_status(target: str) -> None:
    client = create_app(ListingFails(NotLeader(LEADER_RPC, None)), max_value_bytes=LIMIT)
    response = client.test_client().get(target)
    assert response.status_code == 503
    assert _error(response)["code"] == "not_leader"
    assert response.headers[LEADER_RPC_HEADER] == LEADER_RPC


def test_servers(client: FlaskClient, fake: FakeService) -> None:
    response = client.get("/v1/util/servers")
    assert response.get_json() == {
        "servers": [
            {
                "id": fake.node.id,
                "rpc_addr": fake.node.rpc_addr,
                "http_addr": fake.node.http_addr,
                "is_leader": True,
            }
        ]
    }


# ---------------------------------------------------------------- the table


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_every_error_table_row_over_http(client: FlaskClient, fault: Fault, method: str) -> None:
    response = client.open(f"/v1/{fault.key}?consistency=stale", method=method, data=b"v")
    assert response.status_code == fault.http_status
    error = _error(response)
    assert error["code"] == fault.code
    assert SECRET not in error["message"]
    if fault.http_status == 307:
        assert response.headers["Location"] == (
            f"http://{LEADER_HTTP}/v1/{fault.key}?consistency=stale"
        )
        assert response.headers[LEADER_HTTP_HEADER] == LEADER_HTTP
        assert response.headers[LEADER_RPC_HEADER] == LEADER_RPC
    if fault.http_status == 503:
        assert response.headers["Retry-After"] == "1"


# -------------------------------------------------------------------- health


def test_health_and_readiness(fake: FakeService) -> None:
    draining = [False]
    app: Flask = create_app(fake, max_value_bytes=LIMIT, is_draining=lambda: draining[0])
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    fake.health_value = Health(live=True, ready=False, checks={"txlog": "disk full"})
    assert client.get("/healthz").status_code == 200
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["checks"]["txlog"] == "disk full"
    fake.health_value = Health(live=True, ready=True)
    draining[0] = True
    assert client.get("/readyz").status_code == 503
    fake.health_value = Health(live=False, ready=False)
    assert client.get("/healthz").status_code == 503


def test_a_closed_service_answers_503(fake: FakeService) -> None:
    service = LocalService(StoreFSM(lrukv.ShardedMap()), node=fake.node)
    service.close()
    client = create_app(service, max_value_bytes=LIMIT).test_client()
    response = client.get("/v1/k")
    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert isinstance(Unavailable("x"), Exception)


# ------------------------------------------------------------------- OpenAPI


def test_served_openapi_is_the_docs_file(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.data == DOCS_OPENAPI.read_bytes() == openapi_document()


def test_openapi_documents_exactly_the_routes_served(client: FlaskClient) -> None:
    document = json.loads(openapi_document())
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/v1/{key}",
        "/v1/util/keys",
        "/v1/util/items",
        "/v1/util/servers",
        "/v1/util/stats",
        "/v1/util/cluster",
        "/v1/util/ttl/{key}",
        "/v1/util/batch",
        "/healthz",
        "/readyz",
        "/openapi.json",
    }
    for path, operations in document["paths"].items():
        target = path.replace("{key}", "some-key")
        for method in operations:
            if method == "parameters":
                continue
            response = client.open(target, method=method.upper(), data=b"v")
            keyed = path in ("/v1/{key}", "/v1/util/ttl/{key}")  # 404: the key is absent
            assert response.status_code != 404 or keyed, (path, method)
            assert response.status_code != 405, (path, method)
            assert str(response.status_code) in operations[method]["responses"] or (
                response.status_code in (404, 200) and keyed
            ), (path, method, response.status_code)
    codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    from lrukv_server.api.status import INTERNAL, TABLE

    assert {row.code for row in (*TABLE, INTERNAL)} <= set(codes["code"]["enum"])
