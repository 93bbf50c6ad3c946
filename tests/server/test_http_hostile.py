"""Hostile request bodies against the real ``lrukv-server``, over raw sockets.

Short bodies, lying Content-Length, broken chunking, trailer floods, transfer
codings the server does not decode, over-limit bodies, clients that vanish
mid-upload. Each is the client's fault: it gets 400/411/413/501 with the JSON
error body (when the client is still there to read it), nothing is stored, the
log has no error line and no traceback, and the server keeps answering.

Idle and slow connections are in test_http_hostile_connections.py, requests
gunicorn refuses before the app (bad request lines, header floods) in
test_http_hostile_protocol.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.harness import ServerProcess, start_server
from tests.server.raw_http import abandon, access_status, exchange, http_connection
from tests.tls_pki import tls_server_args

LIMIT = 64 * 1024
TIMEOUT = 10


@pytest.fixture(scope="module", params=["http", "https"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("hostile")
    tls = tls_server_args(directory) if request.param == "https" else []
    process = start_server(directory, "--max-value-bytes", str(LIMIT), *tls)
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture
def quiet_log(server: ServerProcess) -> Iterator[None]:
    """The test must leave no error line and no traceback in the server's log,
    and the server must still store and serve a value afterwards."""
    start = len(server.stderr())
    yield
    assert server.alive() and server.worker_alive(), server.output()
    _stored(server, "after-hostile", b"still serving")
    new = server.stderr()[start:]
    assert "Traceback" not in new, new
    assert not re.search(r"^\S+ \S+ (ERROR|CRITICAL) ", new, re.MULTILINE), new


def _http(server: ServerProcess, method: str, target: str, body: bytes | None = None) -> int:
    conn = http_connection(server)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _stored(server: ServerProcess, key: str, value: bytes) -> None:
    assert _http(server, "PUT", f"/v1/{key}", value) == 201
    conn = http_connection(server)
    try:
        conn.request("GET", f"/v1/{key}")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, value)
    finally:
        conn.close()


def _absent(server: ServerProcess, key: str) -> None:
    assert _http(server, "GET", f"/v1/{key}") == 404, f"{key!r} was stored"


def _put_head(key: str, *headers: str) -> bytes:
    lines = [f"PUT /v1/{key} HTTP/1.1", "Host: lrukv", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


pytestmark = pytest.mark.usefixtures("quiet_log")

# ------------------------------------------------ bodies shorter than announced


def test_body_shorter_than_its_content_length_is_400(server: ServerProcess) -> None:
    # The probe's repro: 100 bytes announced, 10 sent, then the client half-closes.
    response = exchange(server, _put_head("short-cl", "Content-Length: 100") + b"0123456789")
    assert response.status == 400
    error = response.error()
    assert error["code"] == "invalid_request"
    assert "10 of the 100 bytes" in error["message"]
    _absent(server, "short-cl")


def test_empty_body_with_a_content_length_is_400(server: ServerProcess) -> None:
    response = exchange(server, _put_head("no-bytes", "Content-Length: 5"))
    assert (response.status, response.error()["code"]) == (400, "invalid_request")
    _absent(server, "no-bytes")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_that_dies_mid_upload_stores_nothing(server: ServerProcess, reset: bool) -> None:
    key = f"died-mid-upload-{'rst' if reset else 'fin'}"
    abandon(server, _put_head(key, "Content-Length: 1000") + b"x" * 300, reset=reset)
    if not (reset and server.scheme == "https"):
        # (Over TLS a reset can arrive before the server decrypted the bytes: the
        # kernel drops them, and the request is never seen, so never logged.)
        assert access_status(server, "PUT", f"/v1/{key}") == 400
    _absent(server, key)


def test_chunked_client_that_dies_mid_upload_stores_nothing(server: ServerProcess) -> None:
    abandon(
        server,
        _put_head("died-chunked", "Transfer-Encoding: chunked") + b"5\r\nhello\r\n3\r\nab",
        reset=False,
    )
    assert access_status(server, "PUT", "/v1/died-chunked") == 400
    _absent(server, "died-chunked")


def test_content_length_shorter_than_the_body_frames_the_value(server: ServerProcess) -> None:
    # The value is the first Content-Length bytes; the rest is the next request
    # on the connection, which is not HTTP, so gunicorn answers that with 400.
    request = _put_head("lying-cl", "Content-Length: 5") + b"helloEXTRA BYTES\r\n\r\n"
    assert exchange(server, request).status == 201
    conn = http_connection(server)
    try:
        conn.request("GET", "/v1/lying-cl")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


# ------------------------------------------------------------- broken chunking

CHUNKED = "Transfer-Encoding: chunked"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="bad-chunk-size"),
        pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", id="negative-chunk-size"),
        pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-chunk-size"),
        pytest.param(b"5;=x\r\nhello\r\n0\r\n\r\n", id="bad-chunk-extension"),
        pytest.param(b"5;a\rb\r\nhello\r\n0\r\n\r\n", id="bare-cr-in-extension"),
        pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="missing-crlf-after-data"),
        pytest.param(b"5\r\nhello", id="eof-after-data"),
        pytest.param(b"5\r\nhello\r\n", id="eof-before-last-chunk"),
        pytest.param(b"5\r\nhel", id="eof-inside-a-chunk"),
        pytest.param(b"5\r\nhello\r\n0\r\n", id="eof-before-trailer-end"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-A: 1\r\n", id="eof-inside-trailers"),
        pytest.param(b"5\r\nhello\r\n0\r\nX-A: 1\n\r\n\r\n", id="bare-lf-in-trailers"),
        pytest.param(b"5\r\nhello\r\n0\r\nnot a header\r\n\r\n", id="malformed-trailer"),
        pytest.param(b"5\r\nhello\r\n0\r\n" + b"X-T: v\r\n" * 5000 + b"\r\n", id="5000-trailers"),
        pytest.param(b"1" * 9000 + b"\r\n", id="chunk-size-line-flood"),
        pytest.param(b"FFFFFFFFFFFFFFFF\r\nhello", id="huge-chunk-size-then-eof"),
    ],
)
def test_malformed_chunked_body_is_400(server: ServerProcess, body: bytes) -> None:
    key = "bad-chunks"
    response = exchange(server, _put_head(key, CHUNKED) + body)
    assert response.status == 400, response
    assert response.error()["code"] == "invalid_request"
    _absent(server, key)


def test_a_well_formed_chunked_body_with_trailers_is_stored(server: ServerProcess) -> None:
    body = b"5;name=value\r\nhello\r\n6\r\n, you!\r\n0\r\nX-Checksum: 1\r\n\r\n"
    response = exchange(server, _put_head("good-chunks", CHUNKED, "Connection: close") + body)
    assert response.status == 201
    conn = http_connection(server)
    try:
        conn.request("GET", "/v1/good-chunks")
        assert conn.getresponse().read() == b"hello, you!"
    finally:
        conn.close()


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked", "compress, chunked"])
def test_transfer_codings_not_decoded_are_501(server: ServerProcess, coding: str) -> None:
    # gunicorn passes these through still encoded; storing the encoded bytes as
    # the value would be wrong, so they are refused (RFC 9112 6.1: 501).
    body = b"5\r\nhello\r\n0\r\n\r\n"
    response = exchange(server, _put_head("coded", f"Transfer-Encoding: {coding}") + body)
    assert response.status == 501
    error = response.error()
    assert error["code"] == "not_implemented"
    assert "chunked" in error["message"]
    _absent(server, "coded")


# ---------------------------------------------------------------- body framing


def test_put_with_no_length_at_all_is_411(server: ServerProcess) -> None:
    # `curl -X PUT URL` (the data forgotten) sends neither Content-Length nor a
    # chunked body; storing "" over the value would hide the mistake.
    response = exchange(server, _put_head("no-length"), half_close=False)
    assert response.status == 411
    assert response.error()["code"] == "length_required"
    _absent(server, "no-length")


def test_an_empty_value_is_a_value(server: ServerProcess) -> None:
    response = exchange(server, _put_head("empty", "Content-Length: 0"), half_close=False)
    assert response.status == 201
    conn = http_connection(server)
    try:
        conn.request("GET", "/v1/empty")
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"")
    finally:
        conn.close()


# ------------------------------------------------------------ over-limit bodies


def test_content_length_over_the_limit_is_413_unread(server: ServerProcess) -> None:
    request = _put_head("huge-cl", f"Content-Length: {100 * 1024 * 1024}") + b"0123456789"
    response = exchange(server, request, half_close=False)
    assert response.status == 413
    assert response.error()["code"] == "value_too_large"
    _absent(server, "huge-cl")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(80)), id="many"),
        pytest.param(b"%x\r\n" % (LIMIT + 1) + b"y" * (LIMIT + 1) + b"\r\n0\r\n\r\n", id="one"),
    ],
)
def test_chunked_body_over_the_limit_is_413(server: ServerProcess, body: bytes) -> None:
    response = exchange(server, _put_head("huge-chunked", CHUNKED) + body)
    assert response.status == 413
    assert response.error()["code"] == "value_too_large"
    _absent(server, "huge-chunked")


def test_value_at_the_limit_is_stored_both_ways(server: ServerProcess) -> None:
    _stored(server, "at-limit", b"z" * LIMIT)
    body = b"%x\r\n" % LIMIT + b"w" * LIMIT + b"\r\n0\r\n\r\n"
    response = exchange(server, _put_head("at-limit-chunked", CHUNKED) + body)
    assert response.status == 201
