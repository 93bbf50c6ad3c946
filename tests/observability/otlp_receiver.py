"""A tiny OTLP/HTTP traces receiver on loopback, for tests and benchmarks.

It takes ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` (protobuf,
optionally gzip'd), answers 200 as a collector does, and keeps the spans.
``keep=False`` only counts the exports and their bytes without decoding them,
for load tests: the sender's export cost is real, the receiver's is tiny.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["ReceivedSpan", "Receiver", "otlp_receiver"]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids as hex, its name, the sender's service name."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service_name: str
    node_id: str  # the sender's lrukv.node.id
    attributes: dict[str, object]


class Receiver:
    """What the receiver has seen; ``endpoint`` is the URL to give ``-j``."""

    def __init__(self, port: int, *, keep: bool) -> None:
        self.endpoint = f"http://127.0.0.1:{port}/v1/traces"
        self.keep = keep
        self.spans: list[ReceivedSpan] = []
        self.span_count = 0  # decoded spans (keep=True only)
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def count(self, size: int) -> None:
        """An export taken without decoding it (``keep=False``)."""
        with self._lock:
            self.requests += 1
            self.bytes += size

    def take(self, request: ExportTraceServiceRequest) -> None:
        received: list[ReceivedSpan] = []
        count = 0
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = resource.get("service.name", "")
            node_id = resource.get("lrukv.node.id", "")
            for scope_spans in resource_spans.scope_spans:
                count += len(scope_spans.spans)
                if not self.keep:
                    continue
                for span in scope_spans.spans:
                    attributes: dict[str, object] = {}
                    for a in span.attributes:
                        kind = a.value.WhichOneof("value")
                        attributes[a.key] = getattr(a.value, kind) if kind else None
                    received.append(
                        ReceivedSpan(
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.name,
                            service,
                            node_id,
                            attributes,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.span_count += count
            self.spans.extend(received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            if receiver.keep:
                receiver.take(ExportTraceServiceRequest.FromString(body))
            else:
                receiver.count(len(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    return Handler


@contextmanager
def otlp_receiver(*, keep: bool = True) -> Iterator[Receiver]:
    """Run a receiver on a free loopback port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver(0, keep=keep)))
    receiver = Receiver(server.server_address[1], keep=keep)
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
