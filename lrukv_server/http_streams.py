"""Bounds on HTTP stream responses (``/v1/util/items``, ``/v1/util/keys``).

A client that asks for a stream and stops reading holds an HTTP thread while the
server's write waits for it. Two bounds keep such clients from stalling others:

* a cap: at most ``max_streams`` (half the threads) streams are in flight; one
  more is answered at once with 503 ``unavailable`` and ``Retry-After: 1``, so
  the other threads stay free for every other request;
* a send deadline: a stream is written in pieces of at most ``PIECE_BYTES``, and
  a piece the client has not taken within ``SEND_TIMEOUT`` seconds ends the
  connection (a socket timeout; the worker closes it, see http_worker), freeing
  the thread and the slot. A reader slower than 256 KiB per 10 s is cut off too.

(The worker's SO_SNDTIMEO is a backstop for every response, but the kernel keeps
taking a little data while it probes a closed window, so alone it can take much
longer than its 10 s to give up on a stalled reader.)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lrukv_server.api.status import message_of, status_of
from lrukv_server.errors import Unavailable

__all__ = ["PIECE_BYTES", "SEND_TIMEOUT", "STREAM_PATHS", "StreamLimit", "max_streams_for"]

STREAM_PATHS = frozenset({"/v1/util/items", "/v1/util/keys"})
SEND_TIMEOUT = 10.0
PIECE_BYTES = 256 * 1024

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def max_streams_for(threads: int) -> int:
    """Half the HTTP threads (at least one): the rest always serve other requests.

    >>> [max_streams_for(n) for n in (1, 2, 8)]
    [1, 1, 4]
    """
    return max(1, threads // 2)


def _is_stream(environ: dict[str, Any]) -> bool:
    # The raw target, as the router sees it: /v1/util%2Fkeys is a key, not a stream.
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    return str(raw).split("?", 1)[0] in STREAM_PATHS


class _Stream:
    """The response body in pieces under a send deadline; gives its slot back
    once, when the server closes it."""

    def __init__(
        self, body: Iterable[bytes], release: Callable[[], None], sock: socket.socket | None
    ) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        if self._sock is not None:
            # Every sendall of a piece must finish within the timeout (gunicorn
            # writes each piece with one sendall).
            self._sock.settimeout(SEND_TIMEOUT)
        for chunk in self._body:
            if len(chunk) <= PIECE_BYTES:
                yield chunk
            else:
                for start in range(0, len(chunk), PIECE_BYTES):
                    yield chunk[start : start + PIECE_BYTES]

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.settimeout(None)
            release, self._release = self._release, None
            if release is not None:
                release()


class StreamLimit:
    """WSGI middleware: at most *max_streams* stream responses at once, each
    under the send deadline."""

    def __init__(self, app: WSGIApp, max_streams: int) -> None:
        self.app = app
        self.max_streams = max_streams
        self._slots = threading.BoundedSemaphore(max_streams)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not _is_stream(environ):
            return self.app(environ, start_response)
        if not self._slots.acquire(blocking=False):
            return self._busy(start_response)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._slots.release()
            raise
        sock = environ.get("gunicorn.socket")
        return _Stream(body, self._slots.release, sock if isinstance(sock, socket.socket) else None)

    def _busy(self, start_response: Callable[..., Any]) -> list[bytes]:
        exc = Unavailable(
            f"too many streams in progress (at most {self.max_streams} /v1/util/items or "
            "/v1/util/keys responses at once); retry later"
        )
        row = status_of(exc)
        body = (
            json.dumps({"error": {"code": row.code, "message": message_of(exc, row)}}) + "\n"
        ).encode()
        start_response(
            f"{row.http_status(exc)} Service Unavailable",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Retry-After", "1"),
            ],
        )
        return [body]
