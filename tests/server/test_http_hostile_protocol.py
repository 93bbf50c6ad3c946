"""Requests gunicorn refuses before the app sees them get the API's JSON error body.

A malformed request line, a flood of headers, an over-long request line or
header: gunicorn answers these itself, and used to answer in text/html. Each
must be ``{"error": {"code", "message"}}`` like every other error (docs/api.md),
and the server must keep serving.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from tests.harness import ServerProcess, start_server
from tests.server.raw_http import connect
from tests.tls_pki import tls_server_args

TIMEOUT = 20


@pytest.fixture(scope="module", params=["http", "https"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("protocol-errors")
    tls = tls_server_args(directory) if request.param == "https" else []
    process = start_server(directory, *tls)
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


def _exchange(server: ServerProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send *raw*, read the answer until the server closes; (status, headers, body)."""
    with connect(server, timeout=TIMEOUT) as sock:
        # The server may answer and close before it has read all of *raw*.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(raw)
        data = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data.extend(chunk)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


_MANY_HEADERS = b"".join(b"X-H%d: v\r\n" % i for i in range(200))

CASES = [
    ("malformed request line", b"GARBAGE\r\n\r\n", 400, "bad_request"),
    ("bad HTTP version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ("request line over 8190 bytes", b"GET /v1/" + b"k" * 9000 + b" HTTP/1.1\r\n\r\n", 414,
     "uri_too_long"),
    ("200 headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + _MANY_HEADERS + b"\r\n", 431,
     "request_header_fields_too_large"),
    ("one header over 8190 bytes", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
     431, "request_header_fields_too_large"),
    ("invalid header name", b"GET /healthz HTTP/1.1\r\nBad Name: v\r\n\r\n", 400, "bad_request"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gunicorn_refusals_have_the_json_error_body(
    server: ServerProcess, raw: bytes, status: int, code: str
) -> None:
    got_status, headers, body = _exchange(server, raw)
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert len(error["message"]) <= 300  # never an echo of a whole over-long line


def test_the_server_serves_after_the_refusals(server: ServerProcess) -> None:
    status, _, body = _exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200, body
    assert "Traceback" not in server.stderr()
