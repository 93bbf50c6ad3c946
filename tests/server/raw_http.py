"""Raw HTTP/1.1 over a socket, for the requests no client library would send:
bodies shorter than their Content-Length, broken chunking, trailer floods, a
client that vanishes mid-upload."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import time
from dataclasses import dataclass

from tests.harness import ServerProcess

__all__ = ["RawResponse", "abandon", "access_status", "exchange"]

TIMEOUT = 10.0


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
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT) as sock:
        _send(sock, request)
        if half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return RawResponse(response.status, headers, body)


def abandon(server: ServerProcess, request: bytes, *, reset: bool) -> None:
    """Send *request* and go away without reading an answer: close the socket
    (FIN), or with ``reset`` abort it (RST), like a client process that died."""
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT)
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
