"""W3C trace context from the caller's OpenTelemetry context, onto each request.

The SDK has no dependency on OpenTelemetry: when the application has imported
it (``opentelemetry-api``; ``pip install lrukv[tracing]``) and a span is current,
each request carries ``traceparent`` (and ``tracestate`` / ``baggage`` as the
application's propagators say): an HTTP header, or gRPC metadata. The server
(``lrukv-server -t``) then continues the caller's trace. Otherwise nothing is
added, at the cost of one dictionary lookup per request. The request layer
(``ClientCore.call_metadata``) adds these to every attempt of every call.
"""

from __future__ import annotations

import sys

__all__ = ["trace_headers"]

_NONE: dict[str, str] = {}


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
