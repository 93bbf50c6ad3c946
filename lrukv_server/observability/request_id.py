"""Request ids: one id per HTTP request or gRPC call, in every log line about it.

An incoming ``X-Request-Id`` header (HTTP) or ``x-request-id`` metadata (gRPC)
is kept when it is sane (1-128 printable ASCII characters, no spaces), so an id
made by a client or a proxy follows the request; otherwise the server makes
one (16 hex digits). The id is

* in :data:`current` (a context variable) while the request is handled, so
  :class:`RequestIdFilter` adds it to every log record made meanwhile;
* returned to the client: the ``X-Request-Id`` response header, and the
  ``x-request-id`` initial metadata of a gRPC call (initial, so it arrives with
  errors too: the handlers set their own trailing metadata);
* in gunicorn's access log line (the log's format names the response header).

Always on, and cheap: a header lookup, a context variable and a header.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import grpc

from lrukv_server.observability.grpc_wrap import iterate_within, wrap_handler
from lrukv_server.transport import WSGIApplication

__all__ = [
    "GRPC_METADATA_KEY",
    "HTTP_HEADER",
    "RequestIdFilter",
    "RequestIdInterceptor",
    "current",
    "new_request_id",
    "request_id_middleware",
    "sane_request_id",
]

HTTP_HEADER = "X-Request-Id"
GRPC_METADATA_KEY = "x-request-id"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
_SANE = re.compile(r"[\x21-\x7e]{1,128}")

current: ContextVar[str | None] = ContextVar("lrukv_request_id", default=None)
"""The id of the request being handled on this thread, or None."""


def new_request_id() -> str:
    """A fresh id: 16 hex digits (64 random bits)."""
    return os.urandom(8).hex()


def sane_request_id(candidate: str | None) -> str:
    """*candidate* if it is a usable id (1-128 printable ASCII, no spaces), else a new one.

    >>> sane_request_id("abc-123")
    'abc-123'
    >>> len(sane_request_id("has space")), len(sane_request_id("x" * 129))
    (16, 16)
    """
    if candidate and _SANE.fullmatch(candidate):
        return candidate
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or None) to every record.

    Installed on the log handler, so records of every logger get it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get()
        return True


def request_id_middleware(app: WSGIApplication) -> WSGIApplication:
    """WSGI middleware: take or make the request's id, set :data:`current` while
    the app runs, and return the id in the ``X-Request-Id`` response header."""

    def with_request_id(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request_id = sane_request_id(environ.get(_ENVIRON_KEY))
        environ["lrukv.request_id"] = request_id

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append((HTTP_HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = current.set(request_id)
        try:
            return _BodyWithRequestId(app(environ, start), request_id)
        finally:
            current.reset(token)

    return with_request_id


class _BodyWithRequestId:
    """A response body that sets :data:`current` while it is produced, so the
    lines logged by a streamed body (NDJSON items) carry the request's id."""

    __slots__ = ("_body", "_request_id")

    def __init__(self, body: Iterable[bytes], request_id: str) -> None:
        self._body = body
        self._request_id = request_id

    def __iter__(self) -> Iterator[bytes]:
        # Set around each step, never across a yield: a body left unfinished must
        # not leave its id on the thread for whatever runs there next.
        return iterate_within(self._body, lambda: current.set(self._request_id), current.reset)  # type: ignore[arg-type]

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _incoming_id(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == GRPC_METADATA_KEY and isinstance(value, str):
            return value
    return None


class RequestIdInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """gRPC interceptor: take or make the call's id, set :data:`current` while
    the handler runs, and send it as ``x-request-id`` initial metadata."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        request_id = sane_request_id(_incoming_id(handler_call_details))
        # Set while the inner interceptors run too, so a tracing span started
        # there is tagged with the id.
        token = current.set(request_id)
        try:
            handler = continuation(handler_call_details)
        finally:
            current.reset(token)
        if handler is None:
            return None

        def around(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def with_request_id(request: Any, context: grpc.ServicerContext) -> Any:
                context.send_initial_metadata(((GRPC_METADATA_KEY, request_id),))
                token = current.set(request_id)
                try:
                    return behaviour(request, context)
                finally:
                    current.reset(token)

            return with_request_id

        def around_stream(
            behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
        ) -> Callable[..., Iterator[Any]]:
            def with_request_id(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                context.send_initial_metadata(((GRPC_METADATA_KEY, request_id),))
                return iterate_within(
                    behaviour(request, context),
                    lambda: current.set(request_id),
                    current.reset,  # type: ignore[arg-type]
                )

            return with_request_id

        return wrap_handler(handler, around, around_stream)
