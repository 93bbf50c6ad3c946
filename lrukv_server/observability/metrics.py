"""Prometheus metrics of one node (``-m``): request counters and latency
histograms for both transports, and scrape-time collectors for the store, the
transaction log and Raft (:mod:`lrukv_server.observability.collectors`).

The Agent builds one :class:`Metrics` per node; it owns a registry of its own
(not prometheus_client's global one), so several nodes can run in one process
(tests do). Wiring, all done by the Agent:

* :meth:`Metrics.grpc_interceptor` and :meth:`Metrics.wsgi_middleware` go into
  the TransportOptions; the middleware also answers ``GET /metrics`` on the HTTP
  port (so the Flask app has no route for it: without ``-m`` it is a 404);
* :meth:`watch_store`, :meth:`watch_txlog`, :meth:`watch_raft` register the
  collectors once those parts exist;
* :meth:`serve` starts the optional ``--metrics-port`` listener.

gunicorn runs exactly one worker process, and the store, the servers and this
registry all live in it, so prometheus_client's multiprocess mode is not needed.

Request metrics (docs/observability.md lists every series):

* ``lrukv_requests_total{transport, method, route, code}``
* ``lrukv_request_duration_seconds{transport, method, route}`` (histogram)

Labels come from small fixed sets, never from a key: HTTP ``route`` is ``key``
for ``/v1/<key>``, the utility's name for ``/v1/util/<name>`` and the path for
the few other routes (anything else is ``other``); gRPC ``route`` is the service
and ``method`` the RPC. Per-request cost: a dict lookup for pre-resolved label
children, one counter increment and one histogram observation (each takes
prometheus_client's own lock), no allocation beyond a small closure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from lrukv import ShardedMap, __version__
from lrukv_server.observability.collectors import (
    RaftCollector,
    StoreCollector,
    TxLogCollector,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from lrukv_server.observability.collectors import _CountedLog, _RaftSource

__all__ = ["LATENCY_BUCKETS", "Metrics", "http_route"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds: from 100 µs (an in-memory read) to 10 s (a write waiting on a slow log)."""

METRICS_PATH = "/metrics"

_HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"})
_UTILITIES = frozenset({"keys", "items", "servers", "cluster", "stats"})
_TOP_ROUTES = {
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/openapi.json": "openapi",
    METRICS_PATH: "metrics",
}


def http_route(path: str) -> str:
    """The route label of a raw request path (still percent-encoded): a small,
    fixed set of names, never a key.

    >>> [http_route(p) for p in ("/v1/a/b", "/v1/util/keys", "/v1/util/ttl/k", "/v1/util%2Fkeys")]
    ['key', 'util/keys', 'util/ttl', 'key']
    >>> [http_route(p) for p in ("/healthz", "/metrics", "/v1/util/nope", "/x")]
    ['healthz', 'metrics', 'util/other', 'other']
    """
    if path.startswith("/v1/"):
        if not path.startswith("/v1/util/"):
            return "key"
        name = path[len("/v1/util/") :]
        if name in _UTILITIES:
            return "util/" + name
        if name.startswith("ttl/"):
            return "util/ttl"
        return "util/other"
    return _TOP_ROUTES.get(path, "other")


def _raw_path(environ: WSGIEnvironment) -> str:
    """The path as sent (gunicorn's RAW_URI keeps ``%2F``), without the query."""
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
    return str(raw).split("?", 1)[0]


class Metrics:
    """The metrics of one node: a registry, request instrumentation and collectors.

    Thread-safe. ``node_id`` labels ``lrukv_build_info`` only (a scrape
    target's own labels tell nodes apart).
    """

    def __init__(self, node_id: str) -> None:
        # No ``*_created`` series: they double the series count and Prometheus
        # does not use them. (A process-wide switch; only lrukv's metrics live here.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # auto_describe off: it would run every collector (a store walk, a Raft
        # round trip) at registration only to check names.
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_Info(node_id))
        self.requests = Counter(
            "lrukv_requests",
            "Requests served, by transport, method, route and status code "
            "(HTTP status, or gRPC status name).",
            ["transport", "method", "route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lrukv_request_duration_seconds",
            "Time to serve a request, from its arrival to its response "
            "(a stream: to its last message).",
            ["transport", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Pre-resolved children: labels() takes a lock and hashes its arguments;
        # a plain dict read does not. Filled on first use (bounded label sets).
        self._counters: dict[tuple[str, str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str, str], Any] = {}
        self._servers: list[Any] = []

    # ------------------------------------------------------------ recording

    def _counter(self, transport: str, method: str, route: str, code: str) -> Any:
        key = (transport, method, route, code)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self.requests.labels(transport, method, route, code)
        return child

    def _histogram(self, transport: str, method: str, route: str) -> Any:
        key = (transport, method, route)
        child = self._histograms.get(key)
        if child is None:
            child = self._histograms[key] = self.latency.labels(transport, method, route)
        return child

    def observe(self, transport: str, method: str, route: str, code: str, seconds: float) -> None:
        """Count one request and its latency (the hooks call this)."""
        self._counter(transport, method, route, code).inc()
        self._histogram(transport, method, route).observe(seconds)

    # ------------------------------------------------------------ the hooks

    def wsgi_middleware(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap *app*: count and time every request, and answer ``/metrics``."""
        exposition = make_wsgi_app(self.registry)
        observe = self.observe
        clock = time.perf_counter

        def metrics_endpoint(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
            method = environ.get("REQUEST_METHOD")
            if method == "GET":
                return exposition(environ, start_response)
            if method == "HEAD":  # the same headers, no body
                exposition({**environ, "REQUEST_METHOD": "GET"}, start_response)
                return []
            start_response(
                "405 METHOD NOT ALLOWED",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain"), ("Content-Length", "0")],
            )
            return [b""]

        def instrumented(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
            started = clock()
            method = environ.get("REQUEST_METHOD", "")
            if method not in _HTTP_METHODS:
                method = "other"
            route = http_route(_raw_path(environ))
            status = "500"  # if the app raises before answering

            def capture(status_line: str, headers: Any, exc_info: Any = None) -> Any:
                nonlocal status
                status = status_line[:3]
                return start_response(status_line, headers, exc_info)

            inner = metrics_endpoint if route == "metrics" else app
            try:
                body = inner(environ, capture)
            except BaseException:
                observe("http", method, route, status, clock() - started)
                raise
            if route == "util/items":  # streamed: time it to the end of the stream
                return _TimedBody(
                    body, lambda: observe("http", method, route, status, clock() - started)
                )
            observe("http", method, route, status, clock() - started)
            return body

        return instrumented

    def grpc_interceptor(self) -> grpc.ServerInterceptor[Any, Any]:
        """A server interceptor counting and timing every RPC by its status code."""
        return _GrpcMetrics(self)

    # ------------------------------------------------------------ collectors

    def watch_store(self, store: ShardedMap) -> None:
        """Export the store's size, bytes, hits, misses and evictions at scrape time."""
        self.registry.register(StoreCollector(store))

    def watch_txlog(self, logged: _CountedLog, backend: str) -> None:
        """Export the transaction log's counters (``backend``: file or postgres)."""
        self.registry.register(TxLogCollector(logged, backend))

    def watch_raft(self, raft: _RaftSource, forwarded: Callable[[], int]) -> None:
        """Export the Raft node's role, term, indexes and counters."""
        self.registry.register(RaftCollector(raft, forwarded))

    # ------------------------------------------------------------ listener

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on a listener of its own at *host*:*port* (a
        daemon thread); return the port bound. :meth:`close` stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._servers.append((server, thread))
        return int(server.server_port)

    def close(self) -> None:
        """Stop the listeners started by :meth:`serve`. Idempotent."""
        servers, self._servers = self._servers, []
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class _TimedBody:
    """A WSGI body that calls *done* once, when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class _Info:
    """``lrukv_build_info{version, node_id} 1``."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "lrukv_build_info",
            "Always 1; labels: the lrukv version and the node id.",
            labels=["version", "node_id"],
        )
        family.add_metric([__version__, self._node_id], 1)
        yield family


class _GrpcMetrics(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps each method's handler once (cached by method) in a timer that
    reads the status the handler left on its context."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            # An unknown method: grpcio answers UNIMPLEMENTED. Not labelled by its
            # name, which any client can make up.
            self._metrics.observe("grpc", "unknown", "unknown", "UNIMPLEMENTED", 0.0)
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        with self._lock:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, full_method: str, handler: Any) -> grpc.RpcMethodHandler[Any, Any]:
        service, _, name = full_method.lstrip("/").rpartition("/")
        metrics = self._metrics
        clock = time.perf_counter

        def record(context: grpc.ServicerContext, started: float, failed: bool) -> None:
            code = context.code()  # type: ignore[attr-defined]
            code_name = code.name if code is not None else ("UNKNOWN" if failed else "OK")
            metrics.observe("grpc", name, service, code_name, clock() - started)

        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
                started = clock()
                try:
                    response = behavior(request, context)
                except BaseException:
                    record(context, started, True)
                    raise
                record(context, started, False)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        def streaming(behavior: Callable[[Any, Any], Iterator[Any]]) -> Callable[..., Any]:
            def timed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = clock()
                try:
                    yield from behavior(request, context)
                except GeneratorExit:  # the client went away mid-stream
                    metrics.observe("grpc", name, service, "CANCELLED", clock() - started)
                    raise
                except BaseException:
                    record(context, started, True)
                    raise
                record(context, started, False)

            return timed

        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                streaming(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:  # reflection's
            return grpc.stream_stream_rpc_method_handler(
                streaming(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        unwrapped: grpc.RpcMethodHandler[Any, Any] = handler  # client streams: none in lrukv
        return unwrapped
