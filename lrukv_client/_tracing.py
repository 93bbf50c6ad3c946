"""W3C trace context from the caller's OpenTelemetry context, onto each request.

The SDK has no dependency on OpenTelemetry: when the application has imported
it (``opentelemetry-api``; ``pip install lrukv[tracing]``) and a span is current,
each request carries ``traceparent`` (and ``tracestate`` / ``baggage`` as the
application's propagators say): an HTTP header, or gRPC metadata. The server
(``lrukv-server -t``) then continues the caller's trace. Otherwise nothing is
added, at the cost of one dictionary lookup per request.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import grpc.aio

__all__ = [
    "TraceContextInterceptor",
    "aio_trace_interceptors",
    "otel_installed",
    "trace_headers",
    "with_trace_headers",
]

_NONE: dict[str, str] = {}


@functools.cache
def otel_installed() -> bool:
    """Whether ``opentelemetry-api`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.propagate") is not None
    except (ImportError, ValueError):
        return False


def trace_headers() -> dict[str, str]:
    """``{"traceparent": ...}`` for the current OpenTelemetry context, or ``{}``.

    Only when the application has imported OpenTelemetry: without it no span
    can be current, so the SDK does not import it either.
    """
    if "opentelemetry.context" not in sys.modules:
        return _NONE
    from opentelemetry import propagate  # noqa: PLC0415 (optional dependency)

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def with_trace_headers(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """*headers* plus :func:`trace_headers` (the same object when there are none)."""
    extra = trace_headers()
    if not extra:
        return headers
    return {**(headers or {}), **extra}


def _details_with_trace(details: Any) -> Any:
    extra = trace_headers()
    if not extra:
        return details
    metadata = [*(details.metadata or ()), *extra.items()]
    return details._replace(metadata=metadata)


class TraceContextInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds :func:`trace_headers` to each call's metadata (blocking channels)."""

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(_details_with_trace(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(_details_with_trace(client_call_details), request)


class _AioUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_details_with_trace(client_call_details), request)


class _AioUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_details_with_trace(client_call_details), request)


def aio_trace_interceptors() -> list[Any]:
    """Interceptors adding :func:`trace_headers` to each call's metadata (asyncio
    channels). Two objects: grpc.aio files an interceptor under one call kind only."""
    return [_AioUnaryUnary(), _AioUnaryStream()]
