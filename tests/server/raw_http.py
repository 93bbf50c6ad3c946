"""Raw HTTP/1.1 over a socket, for the requests no client library would send:
bodies shorter than their Content-Length, broken chunking, trailer floods, a
client that vanishes mid-upload.

Against a server started with TLS (``server.scheme == "https"``) the same bytes
go inside TLS (:func:`connect`, :func:`http_connection`), so the hostile suites
run against a TLS server too. The client does not check the server's
certificate there: these suites are about what the server does with hostile
requests; the handshake's checks are tests/server/test_tls_server.py's.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import struct
import time
from dataclasses import dataclass

from tests.harness import ServerProcess

__all__ = ["RawResponse", "abandon", "access_status", "connect", "exchange", "http_connection"]

TIMEOUT = 10.0

UNVERIFIED_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
UNVERIFIED_TLS.check_hostname = False
UNVERIFIED_TLS.verify_mode = ssl.CERT_NONE


def connect(server: ServerProcess, timeout: float = TIMEOUT) -> socket.socket:
    """A connection to *server*'s HTTP port, inside TLS when it speaks https."""
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout)
    if server.scheme == "https":
        return UNVERIFIED_TLS.wrap_socket(sock, server_hostname="localhost")
    return sock


def http_connection(server: ServerProcess, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
    """An http.client connection to *server*, HTTPS when it speaks https."""
    if server.scheme == "https":
        return http.client.HTTPSConnection(
            server.http_addr, timeout=timeout, context=UNVERIFIED_TLS
        )
    return http.client.HTTPConnection(server.http_addr, timeout=timeout)


def _half_close(sock: socket.socket) -> None:
    """End our sending side (FIN). Inside TLS too, without dropping TLS for reading
    (SSLSocket.shutdown would)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def error(self) -> dict[str, str]:
        """The JSON error body ``{"error": {"code", "message"}}``; fails if it is not one."""
        assert self.headers.get("content-type") == "application/json", (self.headers, self.body)
        document = json.loads(self.body)
        assert set(document) == {"error"}, document
        assert set(document["error"]) == {"code", "message"}, document
        return dict(document["error"])


def _send(sock: socket.socket, data: bytes) -> None:
    # The server may answer and close before it has read everything (a 413, say);
    # the answer is what the test looks at, so a refused send is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def exchange(server: ServerProcess, request: bytes, *, half_close: bool = True) -> RawResponse:
    """Send *request* as raw bytes and read the first answer.

    ``half_close`` ends our sending side after the bytes, as a client does that
    has nothing more to send (so a body shorter than announced ends there,
    instead of the server waiting for the rest).
    """
    with connect(server) as sock:
        _send(sock, request)
        if half_close:
            _half_close(sock)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return RawResponse(response.status, headers, body)


def abandon(server: ServerProcess, request: bytes, *, reset: bool) -> None:
    """Send *request* and go away without reading an answer: close the socket
    (FIN), or with ``reset`` abort it (RST), like a client process that died."""
    sock = connect(server)
    try:
        _send(sock, request)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def access_status(
    server: ServerProcess, method: str, target: str, *, timeout: float = TIMEOUT
) -> int:
    """Wait for the access-log line of ``method target`` (the harness runs the
    server in development log mode, which logs every request once it is
    answered) and return the status it logged."""
    line = re.compile(rf'"{re.escape(method)} {re.escape(target)} HTTP/1\.1" (\d{{3}}) ')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = line.search(server.stderr())
        if found:
            return int(found.group(1))
        time.sleep(0.02)
    raise AssertionError(f"no access-log line for {method} {target}\n{server.output()}")
