"""The real ``lrukv-server`` over sockets: the original curl shapes, both transports on
one store, limits and bad input, health and reflection.

One server for the module (its tests do not interfere: each uses its own keys).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.harness import ServerProcess, start_server
from tests.server.grpc_util import error_code, raw_call

LIMIT = 64 * 1024
TIMEOUT = 10
DOCS_OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("server"),
        "--max-value-bytes",
        str(LIMIT),
        "--items-per-shard",
        "1000",
    )
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.rpc_addr) as chan:
        yield chan


@pytest.fixture(scope="module")
def kv(channel: grpc.Channel) -> kv_pb2_grpc.KVStub:
    return kv_pb2_grpc.KVStub(channel)


def _http(
    server: ServerProcess,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _curl(*args: str) -> tuple[int, bytes]:
    """Run curl with the given arguments; return (HTTP status, body)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        [curl, "-s", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


# ------------------------------------------------------------------- curl


def test_the_original_curl_examples_work_as_written(server: ServerProcess) -> None:
    base = f"http://localhost:{server.http_port}"
    assert _curl("-X", "PUT", "-d", "Hello, key-value store!", f"{base}/v1/key-a") == (201, b"")
    assert _curl("-X", "GET", f"{base}/v1/key-a") == (200, b"Hello, key-value store!")
    status, body = _curl("-X", "GET", f"{base}/v1/util/keys")
    assert status == 200
    assert "key-a" in json.loads(body)["keys"]
    status, body = _curl("-X", "GET", "-H", "Accept: text/plain", f"{base}/v1/util/keys")
    assert status == 200
    assert "key-a" in body.decode().split(",")
    assert _curl("-X", "DELETE", f"{base}/v1/key-a") == (204, b"")
    status, body = _curl("-X", "GET", f"{base}/v1/key-a")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "key_not_found"


def test_curl_shows_the_content_type_of_a_value(server: ServerProcess) -> None:
    base = f"http://localhost:{server.http_port}"
    _curl("-X", "PUT", "--data-binary", "@-", f"{base}/v1/ctype")
    result = subprocess.run(
        ["curl", "-s", "-D", "-", "-o", "/dev/null", f"{base}/v1/ctype"],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert b"content-type: application/octet-stream" in result.stdout.lower()


def test_curl_upload_over_the_limit_is_413(server: ServerProcess, tmp_path: Path) -> None:
    # curl sends "Expect: 100-continue" for a large file; the answer is still a clean 413.
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (2 * LIMIT))
    base = f"http://localhost:{server.http_port}"
    status, body = _curl("-X", "PUT", "--data-binary", f"@{big}", f"{base}/v1/big-file")
    assert status == 413
    assert json.loads(body)["error"]["code"] == "value_too_large"
    assert _curl(f"{base}/v1/big-file")[0] == 404


# ------------------------------------------------------- one store, two APIs


def test_http_and_grpc_serve_one_store(server: ServerProcess, kv: kv_pb2_grpc.KVStub) -> None:
    binary = bytes(range(256))
    assert _http(server, "PUT", "/v1/shared-http", binary)[0] == 201
    assert kv.Get(kv_pb2.GetRequest(key="shared-http"), timeout=TIMEOUT).value == binary
    kv.Put(kv_pb2.PutRequest(key="shared/grpc", value=b"\x00from grpc"), timeout=TIMEOUT)
    status, _headers, body = _http(server, "GET", "/v1/shared%2Fgrpc")
    assert (status, body) == (200, b"\x00from grpc")
    streamed = {
        item.key: item.value
        for item in kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT)
    }
    assert streamed["shared-http"] == binary
    assert streamed["shared/grpc"] == b"\x00from grpc"
    assert kv.Delete(kv_pb2.DeleteRequest(key="shared-http"), timeout=TIMEOUT).existed
    assert _http(server, "GET", "/v1/shared-http")[0] == 404


def test_items_stream_over_http(server: ServerProcess) -> None:
    for i in range(300):
        _http(server, "PUT", f"/v1/item-{i}", f"value-{i}".encode())
    status, headers, body = _http(server, "GET", "/v1/util/items")
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson"
    items = [json.loads(line) for line in body.decode().splitlines()]
    keys = {item["key"] for item in items}
    assert {f"item-{i}" for i in range(300)} <= keys


def test_servers_report_the_real_addresses(server: ServerProcess, kv: kv_pb2_grpc.KVStub) -> None:
    servers = kv.GetServers(kv_pb2.GetServersRequest(), timeout=TIMEOUT).servers
    assert [(s.rpc_addr, s.http_addr, s.is_leader) for s in servers] == [
        (server.rpc_addr, server.http_addr, True)
    ]
    status, _, body = _http(server, "GET", "/v1/util/servers")
    assert status == 200
    assert json.loads(body)["servers"][0]["http_addr"] == server.http_addr


# ------------------------------------------------ errors from ordinary inputs


def _grpc_error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()  # type: ignore[operator]
    return error.value


def test_missing_key_is_404_and_not_found(server: ServerProcess, kv: kv_pb2_grpc.KVStub) -> None:
    status, _, body = _http(server, "GET", "/v1/never-written")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "key_not_found"
    error = _grpc_error(lambda: kv.Get(kv_pb2.GetRequest(key="never-written"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(error) == "key_not_found"


@pytest.mark.parametrize(
    ("http_target", "grpc_key"),
    [
        ("/v1/" + "k" * 1025, "k" * 1025),  # longer than the limit
        ("/v1/bad%01key", "bad\x01key"),  # control character
        ("/v1/bad%7Fkey", "bad\x7fkey"),  # DEL
        ("/v1/", ""),  # empty
    ],
)
def test_bad_keys_are_400_and_invalid_argument(
    server: ServerProcess, kv: kv_pb2_grpc.KVStub, http_target: str, grpc_key: str
) -> None:
    status, _, body = _http(server, "PUT", http_target, b"v")
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_key"
    error = _grpc_error(
        lambda: kv.Put(kv_pb2.PutRequest(key=grpc_key, value=b"v"), timeout=TIMEOUT)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(error) == "invalid_key"


def test_invalid_utf8_keys(server: ServerProcess, channel: grpc.Channel) -> None:
    status, _, body = _http(server, "PUT", "/v1/%C3%28", b"v")
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_key"
    # Over gRPC no client library sends it: a hand-made PutRequest with key bytes C3 28.
    error = _grpc_error(lambda: raw_call(channel, "Put")(b"\x0a\x02\xc3\x28", timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in (error.details() or "")


def test_value_over_the_limit_is_413_and_resource_exhausted(
    server: ServerProcess, kv: kv_pb2_grpc.KVStub
) -> None:
    assert _http(server, "PUT", "/v1/at-limit", b"x" * LIMIT)[0] == 201
    status, _, body = _http(server, "PUT", "/v1/over-limit", b"x" * (LIMIT + 1))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "value_too_large"
    kv.Put(kv_pb2.PutRequest(key="at-limit-rpc", value=b"x" * LIMIT), timeout=TIMEOUT)
    error = _grpc_error(
        lambda: kv.Put(kv_pb2.PutRequest(key="over", value=b"x" * (LIMIT + 1)), timeout=TIMEOUT)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_code(error) == "value_too_large"
    # Far beyond: refused by gRPC's message limit before it reaches the service.
    error = _grpc_error(
        lambda: kv.Put(kv_pb2.PutRequest(key="over", value=b"x" * (LIMIT * 4)), timeout=TIMEOUT)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _http(server, "GET", "/v1/over-limit")[0] == 404


def test_bad_ttl_and_consistency(server: ServerProcess, channel: grpc.Channel) -> None:
    kv = kv_pb2_grpc.KVStub(channel)
    status, _, body = _http(server, "PUT", "/v1/ttl?ttl=-5", b"v")
    assert (status, json.loads(body)["error"]["code"]) == (400, "invalid_ttl")
    status, _, body = _http(server, "GET", "/v1/ttl?consistency=eventual")
    assert (status, json.loads(body)["error"]["code"]) == (400, "invalid_request")
    error = _grpc_error(
        lambda: kv.Put(kv_pb2.PutRequest(key="ttl", value=b"v", ttl_seconds=-5), timeout=TIMEOUT)
    )
    assert (error.code(), error_code(error)) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_ttl")
    error = _grpc_error(lambda: raw_call(channel, "Get")(b"\x0a\x01k\x10\x07", timeout=TIMEOUT))
    assert (error.code(), error_code(error)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )


@pytest.mark.parametrize("ttl", ["-1", "0", "nan", "inf"])
def test_a_ttl_that_is_not_positive_says_so_on_both_transports(
    server: ServerProcess, kv: kv_pb2_grpc.KVStub, ttl: str
) -> None:
    expected = f"ttl must be a positive number of seconds, not {ttl}"
    status, body = _curl("-X", "PUT", "--data-binary", "v", f"{server.http_url}/v1/ttl?ttl={ttl}")
    error = json.loads(body)["error"]
    # HTTP takes the ttl as text, so its message also says which text it accepts
    assert (status, error["code"]) == (400, "invalid_ttl")
    assert error["message"].startswith("ttl must be a positive decimal number of seconds")
    assert error["message"].endswith(f"not {ttl!r}")
    rpc_error = _grpc_error(
        lambda: kv.Put(
            kv_pb2.PutRequest(key="ttl", value=b"v", ttl_seconds=float(ttl)), timeout=TIMEOUT
        )
    )
    assert (rpc_error.code(), error_code(rpc_error), rpc_error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_ttl",
        expected,
    )
    assert _http(server, "GET", "/v1/ttl")[0] == 404  # nothing was stored


# ------------------------------------------------- raw HTTP: bodies and paths


def _raw_http(server: ServerProcess, request: bytes, *, end_request: bool = False) -> bytes:
    """Send raw bytes, return everything the server answers until it closes.
    ``end_request`` closes our sending side after the bytes (an incomplete request
    then ends instead of waiting for more)."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        if end_request:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_oversized_body_is_refused_from_its_content_length_alone(server: ServerProcess) -> None:
    # Announce 100 MiB, send 10 bytes: the whole answer must come without the rest.
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"PUT /v1/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n0123456789"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "value_too_large"
    assert _http(server, "GET", "/v1/huge")[0] == 404


def test_oversized_chunked_body_is_cut_off(server: ServerProcess) -> None:
    chunk = b"x" * 32768
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    response = _raw_http(
        server,
        b"PUT /v1/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body,
    )
    assert response.startswith(b"HTTP/1.1 413 ")
    small = b"5\r\nhello\r\n0\r\n\r\n"
    response = _raw_http(
        server,
        b"PUT /v1/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + small,
    )
    assert response.startswith(b"HTTP/1.1 201 ")
    assert _http(server, "GET", "/v1/chunked")[2] == b"hello"


def test_encoded_slash_reaches_the_key_not_the_router(server: ServerProcess) -> None:
    assert _http(server, "PUT", "/v1/util%2Fkeys", b"a key, not the list")[0] == 201
    _status, _, body = _http(server, "GET", "/v1/util/keys")
    assert "util/keys" in json.loads(body)["keys"]
    assert _http(server, "GET", "/v1/util%2Fkeys")[2] == b"a key, not the list"


def test_dot_segments_are_refused(server: ServerProcess) -> None:
    # http.client sends the path as given; curl and browsers would have rewritten it.
    status, _, body = _http(server, "PUT", "/v1/a/../b", b"v")
    assert status == 400
    assert "percent-encode" in json.loads(body)["error"]["message"]
    assert _http(server, "PUT", "/v1/a/%2E%2E/b", b"v")[0] == 201


@pytest.mark.parametrize(
    ("method", "target", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/v1/util/nope", 404, "not_found"),
        ("POST", "/v1/k", 405, "method_not_allowed"),
        ("DELETE", "/v1/util/keys", 405, "method_not_allowed"),
        ("PUT", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_wrong_methods(
    server: ServerProcess, method: str, target: str, status: int, code: str
) -> None:
    got, headers, body = _http(server, method, target, b"v")
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code


def test_garbage_on_the_http_port_does_not_hurt_anyone(server: ServerProcess) -> None:
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET\r\n\r\n", b"\x00" * 64):
        response = _raw_http(server, garbage, end_request=True)
        assert not response or response.startswith(b"HTTP/1.1 400")
    assert _http(server, "PUT", "/v1/after-garbage", b"ok")[0] == 201
    assert _http(server, "GET", "/v1/after-garbage")[2] == b"ok"


# ----------------------------------------------------- health and reflection


def test_http_health_endpoints(server: ServerProcess) -> None:
    status, _, body = _http(server, "GET", "/healthz")
    assert status == 200
    assert json.loads(body)["live"] is True
    status, _, body = _http(server, "GET", "/readyz")
    assert status == 200
    assert json.loads(body)["checks"]["txlog"] == "off"


def test_served_openapi_is_the_docs_file(server: ServerProcess) -> None:
    status, _headers, body = _http(server, "GET", "/openapi.json")
    assert status == 200
    assert body == DOCS_OPENAPI.read_bytes()


def test_grpc_health_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "lrukv.v1.KV"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_reflection(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert {"lrukv.v1.KV", "grpc.health.v1.Health"} <= set(database.get_services())
    file = database.FindFileContainingSymbol("lrukv.v1.KV")
    assert "PutRequest" in {message.name for message in file.message_type}


def test_the_server_still_serves_after_all_this(
    server: ServerProcess, kv: kv_pb2_grpc.KVStub
) -> None:
    assert server.alive() and server.worker_alive()
    kv.Put(kv_pb2.PutRequest(key="last", value=b"word"), timeout=TIMEOUT)
    assert _http(server, "GET", "/v1/last")[2] == b"word"
    assert "Traceback" not in server.stderr()
