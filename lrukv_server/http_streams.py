"""A cap on concurrent HTTP stream responses (``/v1/util/items``, ``/v1/util/keys``).

A client that asks for a stream and stops reading holds an HTTP thread until its
writes fail (the worker's send deadline, see http_worker). Without a cap, as many
stalled readers as threads would stop HTTP for everyone. With it, at most
``max_streams`` (half the threads) are in flight; one more is answered at once
with 503 ``unavailable`` and ``Retry-After: 1``, and the other threads stay free
for every other request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lrukv_server.api.status import message_of, status_of
from lrukv_server.errors import Unavailable

__all__ = ["STREAM_PATHS", "StreamLimit", "max_streams_for"]

STREAM_PATHS = frozenset({"/v1/util/items", "/v1/util/keys"})

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


class _Release:
    """The response body, giving its slot back once, when the server closes it."""

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class StreamLimit:
    """WSGI middleware: at most *max_streams* stream responses at once."""

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
        return _Release(body, self._slots.release)

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
