"""OpenTelemetry tracing of a node (``-t``), exported over OTLP/HTTP (``-j``).

:class:`Tracing` owns one TracerProvider per Agent, made in the gunicorn worker
(after the fork: the batch processor's thread must live where spans are made)
and shut down, which flushes it, by the Agent at exit. Everything it hands out
wraps something that exists without it, so with ``-t`` off nothing is added:

====================  =========================================================
``wsgi_middleware``   a SERVER span per HTTP request, ``GET /v1/{key}``; the
                      parent comes from the W3C ``traceparent`` header
``grpc_interceptor``  a SERVER span per gRPC call, ``lrukv.v1.KV/Put``; the
                      parent comes from ``traceparent`` metadata
``wrap_service``      a span per store operation (``kv.put``, ``kv.get``...)
``wrap_sync``         ``txlog.sync``: the wait for the transaction log's
                      durability (the fsync / commit of the write)
``wrap_consensus``    ``raft.propose`` (``lrukv.raft.forwarded`` when this
                      node is a follower: PySyncObj forwards the entry to the
                      leader) and ``raft.read_barrier``
``wrap_state_machine``  ``raft.apply`` on the Raft thread, for entries this
                      node proposed (child of their ``raft.propose``)
====================  =========================================================

What is not in a span: keys and values. A key may carry user data (a user
name, an e-mail, a token) and traces go to another system with other access
rules, so spans name the route (``/v1/{key}``) and record the key's length
(``lrukv.key.length``, in characters) only.

Propagation: the SDK sends ``traceparent`` (HTTP header and gRPC metadata);
the server continues that trace. A follower's write crosses to the leader
inside PySyncObj's own connection, which carries no metadata, so the trace
does not continue on the leader: the follower's ``raft.propose`` span
(``lrukv.raft.forwarded=true``, ``lrukv.raft.leader``) covers the hop, and its
``raft.apply`` shows when the entry came back committed. Where the *client*
hops (a 307 redirect, a retry after NotLeader) it sends ``traceparent`` again,
so the leader's spans join the same trace.

Sampling: a request that arrives with a parent follows the parent's decision
(``ParentBased``); one without is traced with probability *ratio*
(``--trace-sample-ratio``). The root decision is a coin tossed before any span
object exists, rather than the SDK's ``TraceIdRatioBased``, which builds the span
first: that cost ~12 µs per request on this machine even for the requests it
drops, more than the whole budget of 1% sampling. (The trace id is random
either way, so the share traced is the same.)
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lrukv import __version__
from lrukv.errors import LrukvError
from lrukv_server.errors import InvalidRequest, NotLeader
from lrukv_server.observability import request_id
from lrukv_server.observability.grpc_wrap import iterate_within, wrap_handler
from lrukv_server.service.base import Consistency, KVService
from lrukv_server.transport import WSGIApplication

__all__ = [
    "DEFAULT_ENDPOINT",
    "SERVICE_NAME",
    "Tracing",
    "TracedService",
    "http_route",
    "otlp_endpoint",
]

log = logging.getLogger(__name__)

SERVICE_NAME = "lrukv-server"
JAEGER_COLLECTOR_DEFAULT = "http://jaeger:14268/api/traces"
"""The original server's ``-j`` default: a Jaeger collector (Thrift) URL."""
DEFAULT_ENDPOINT = "http://jaeger:4318/v1/traces"
"""Where ``-t`` exports without ``-j``: the original default, mapped to OTLP."""
_OTLP_HTTP_PORT = 4318
_OTLP_TRACES_PATH = "/v1/traces"
_JAEGER_COLLECTOR_PORT = 14268
_JAEGER_COLLECTOR_PATH = "/api/traces"
_EXPORT_TIMEOUT_SECONDS = 5.0  # per export; a dead collector must not stall shutdown long

T = TypeVar("T")
_propagator = TraceContextTextMapPropagator()


def otlp_endpoint(jaeger: str) -> tuple[str, bool]:
    """The OTLP/HTTP traces URL for a ``-j`` value, and whether it was mapped
    from a Jaeger collector URL.

    The rule: a URL on Jaeger's collector port 14268 or with its path
    ``/api/traces`` is a Jaeger collector URL (the original's exporter spoke
    Thrift to it); Jaeger ingests OTLP natively, so it becomes the same host on
    port 4318, path ``/v1/traces``. ``host:port`` means ``http://host:port``; a
    URL without a path gets ``/v1/traces``; any other URL is used as given.
    Empty means the original default.

    >>> otlp_endpoint("")
    ('http://jaeger:4318/v1/traces', True)
    >>> otlp_endpoint("http://collector:14268/api/traces")
    ('http://collector:4318/v1/traces', True)
    >>> otlp_endpoint("127.0.0.1:4318")
    ('http://127.0.0.1:4318/v1/traces', False)
    >>> otlp_endpoint("https://otel.example:443/custom/path")
    ('https://otel.example:443/custom/path', False)
    """
    text = jaeger.strip() or JAEGER_COLLECTOR_DEFAULT
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    path = parts.path.rstrip("/")
    if parts.port == _JAEGER_COLLECTOR_PORT or path == _JAEGER_COLLECTOR_PATH:
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{_OTLP_HTTP_PORT}"
        return urlunsplit((parts.scheme, netloc, _OTLP_TRACES_PATH, "", "")), True
    if not path:
        return urlunsplit((parts.scheme, parts.netloc, _OTLP_TRACES_PATH, "", "")), False
    return text, False


def http_route(path: str) -> str:
    """The route label of an HTTP request path: the key replaced by ``{key}``.

    >>> http_route("/v1/user@example.com"), http_route("/v1/util/keys")
    ('/v1/{key}', '/v1/util/keys')
    >>> http_route("/v1/util/ttl/secret"), http_route("/healthz"), http_route("/x/y")
    ('/v1/util/ttl/{key}', '/healthz', 'other')
    """
    if path.startswith("/v1/"):
        if path.startswith("/v1/util/"):
            if path.startswith("/v1/util/ttl/"):
                return "/v1/util/ttl/{key}"
            name = path[len("/v1/util/") :]
            return f"/v1/util/{name}" if name in _UTILITIES else "/v1/util/other"
        return "/v1/{key}"
    return path if path in _PLAIN_ROUTES else "other"


_UTILITIES = frozenset({"keys", "items", "servers", "cluster", "stats"})
_PLAIN_ROUTES = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})


def _metadata_getter(metadata: Any) -> dict[str, str]:
    return {key: value for key, value in metadata or () if isinstance(value, str)}


class Tracing:
    """The node's tracer and the wrappers that make its spans (module docstring).

    ``exporter`` replaces the OTLP exporter (tests pass an InMemorySpanExporter);
    ``endpoint`` is the ``-j`` value. Call :meth:`shutdown` once at exit: it
    exports what is buffered (bounded by the exporter's timeout).
    """

    def __init__(
        self,
        *,
        node_id: str,
        endpoint: str = "",
        sample_ratio: float = 1.0,
        exporter: SpanExporter | None = None,
    ) -> None:
        if exporter is None:
            url, mapped = otlp_endpoint(endpoint)
            if mapped:
                log.info(
                    "tracing: %s is a Jaeger collector URL; exporting OTLP/HTTP to %s instead "
                    "(Jaeger ingests OTLP natively)",
                    endpoint or JAEGER_COLLECTOR_DEFAULT,
                    url,
                )
            exporter = OTLPSpanExporter(endpoint=url, timeout=_EXPORT_TIMEOUT_SECONDS)
            self.endpoint = url
        else:
            self.endpoint = "(in-process exporter)"
        resource = Resource.create(
            {
                "service.name": SERVICE_NAME,
                "service.version": __version__,
                "service.instance.id": node_id,
                "lrukv.node.id": node_id,
            }
        )
        # Roots are sampled by sample_root() before a span is started (module docstring).
        self.provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("lrukv_server", __version__)
        self.sample_ratio = sample_ratio
        self.sample_root: Callable[[], bool] = (
            (lambda: True) if sample_ratio >= 1 else (lambda: random.random() < sample_ratio)
        )
        # Shared by wrap_consensus and wrap_state_machine: proposal -> its span.
        self._proposals = _Proposals()

    def shutdown(self) -> None:
        """Export the buffered spans and stop the export thread."""
        self.provider.shutdown()

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export what is buffered now; return whether it finished in time."""
        return self.provider.force_flush(timeout_millis)

    # ---------------------------------------------------------- transports

    def wsgi_middleware(self, app: WSGIApplication) -> WSGIApplication:
        """A WSGI middleware making one SERVER span per request (see the module
        docstring); the span ends when the response body is closed, so it
        covers a streamed body too."""
        tracer = self.tracer
        sample_root = self.sample_root

        def traced(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            traceparent = environ.get("HTTP_TRACEPARENT")
            if traceparent:
                parent = _propagator.extract({"traceparent": traceparent})
            elif sample_root():
                parent = None
            else:
                return app(environ, start_response)  # not sampled: unwrapped
            method = environ.get("REQUEST_METHOD", "")
            route = http_route(environ.get("PATH_INFO", ""))
            attributes = {"http.request.method": method, "http.route": route}
            rid = request_id.current.get()
            if rid is not None:
                attributes["lrukv.request_id"] = rid
            span = tracer.start_span(
                f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
            if not span.is_recording():
                # The caller did not sample it: nothing below makes a span either
                # (they all check), so the request runs unwrapped.
                return app(environ, start_response)

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                code = int(status[:3])
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                return start_response(status, headers, exc_info)

            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                body = app(environ, start)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
                raise
            finally:
                otel_context.detach(token)
            return _ClosingBody(body, span)

        return traced

    def grpc_interceptor(self) -> grpc.ServerInterceptor[Any, Any]:
        """A gRPC interceptor making one SERVER span per call."""
        return _TracingInterceptor(self.tracer, self.sample_root)

    # ------------------------------------------------------- inner layers

    def wrap_service(self, service: KVService) -> KVService:
        """*service* with a span around each store operation."""
        return TracedService(service, self.tracer)

    def wrap_sync(self, sync: Callable[[int], None]) -> Callable[[int], None]:
        """The transaction log's ``sync(seq)`` inside a ``txlog.sync`` span,
        made only when the calling request is traced (no root spans)."""
        tracer = self.tracer

        def traced_sync(seq: int) -> None:
            if not trace.get_current_span().is_recording():
                sync(seq)
                return
            with tracer.start_as_current_span("txlog.sync", attributes={"lrukv.txlog.seq": seq}):
                sync(seq)

        return traced_sync

    def wrap_consensus(self, raft: T) -> T:
        """*raft* (a ``Consensus``) with spans around proposals and read barriers."""
        return _TracedConsensus(raft, self.tracer, self._proposals)  # type: ignore[return-value]

    def wrap_state_machine(self, fsm: T) -> T:
        """*fsm* (a Raft ``StateMachine``) with a ``raft.apply`` span for each
        entry this node proposed from a traced request."""
        return _TracedStateMachine(fsm, self.tracer, self._proposals)  # type: ignore[return-value]


class _ClosingBody:
    """A WSGI response body that ends its span once it is sent: at its end, or
    when the server closes it (a client gone mid-stream), whichever comes first."""

    def __init__(self, body: Any, span: Span) -> None:
        self._body = body
        self._span = span
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        self._end()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end()


class _TracingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, tracer: Tracer, sample_root: Callable[[], bool]) -> None:
        self._tracer = tracer
        self._sample_root = sample_root

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full_method: str = handler_call_details.method
        service, _, method = full_method.lstrip("/").partition("/")
        metadata = handler_call_details.invocation_metadata
        carrier = _metadata_getter(metadata) if metadata else {}
        if "traceparent" in carrier:
            parent = _propagator.extract(carrier)
        elif self._sample_root():
            parent = None
        else:
            return handler  # not sampled: the call runs unwrapped
        # The span starts here, just before grpcio runs the handler on this thread.
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        rid = request_id.current.get()
        if rid is not None:
            attributes["lrukv.request_id"] = rid
        span = self._tracer.start_span(
            f"{service}/{method}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        if not span.is_recording():
            return handler  # the caller did not sample it: the call runs unwrapped
        span_context = trace.set_span_in_context(span)

        def around(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def traced(request: Any, context: grpc.ServicerContext) -> Any:
                token = otel_context.attach(span_context)
                try:
                    response = behaviour(request, context)
                except BaseException:
                    _end_rpc_span(span, context, failed=True)
                    raise
                finally:
                    otel_context.detach(token)
                _end_rpc_span(span, context, failed=False)
                return response

            return traced

        def around_stream(
            behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
        ) -> Callable[..., Iterator[Any]]:
            def traced(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    yield from iterate_within(
                        behaviour(request, context),
                        lambda: otel_context.attach(span_context),
                        otel_context.detach,  # type: ignore[arg-type]
                    )
                except BaseException:
                    _end_rpc_span(span, context, failed=True)
                    raise
                _end_rpc_span(span, context, failed=False)

            return traced

        return wrap_handler(handler, around, around_stream)


def _end_rpc_span(span: Span, context: grpc.ServicerContext, *, failed: bool) -> None:
    """Record the call's status code (what the handler aborted with) and end *span*."""
    code_of: Callable[[], Any] | None = getattr(context, "code", None)
    code = code_of() if code_of is not None else None
    if code is None:
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        # Server spans: only codes that blame the server are errors (OTel's rule).
        if code in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class TracedService:
    """A KVService whose operations each run in a span named ``kv.<method>``,
    a child of the request's span (none when the request is not sampled).

    Attributes: ``lrukv.key.length`` (never the key), ``lrukv.value.length``
    (of a put), ``lrukv.consistency``. An error sets the span's status only for the
    server's own failures (a missing key is an answer, not an error): the
    exception type is recorded as ``lrukv.error``.
    """

    def __init__(self, service: KVService, tracer: Tracer) -> None:
        self._service = service
        self._tracer = tracer

    def _traced(
        self,
        name: str,
        attributes: dict[str, Any],
        call: Callable[[], T],
    ) -> T:
        if not trace.get_current_span().is_recording():
            return call()  # the request is not sampled: no span below it either
        span = self._tracer.start_span(name, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = call()
        except Exception as exc:
            span.set_attribute("lrukv.error", type(exc).__name__)
            if not isinstance(exc, _CLIENT_ERRORS):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            span.end()
        return result

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        attributes = {"lrukv.key.length": len(key), "lrukv.value.length": len(value)}
        self._traced("kv.put", attributes, lambda: self._service.put(key, value, ttl=ttl))

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        attributes = {"lrukv.key.length": len(key), "lrukv.consistency": consistency.value}
        return self._traced(
            "kv.get", attributes, lambda: self._service.get(key, consistency=consistency)
        )

    def delete(self, key: str) -> bool:
        attributes = {"lrukv.key.length": len(key)}
        return self._traced("kv.delete", attributes, lambda: self._service.delete(key))

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        attributes = {"lrukv.consistency": consistency.value}
        return self._traced(
            "kv.keys", attributes, lambda: self._service.keys(consistency=consistency)
        )

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        attributes = {"lrukv.consistency": consistency.value}
        return self._traced(
            "kv.items", attributes, lambda: self._service.items(consistency=consistency)
        )

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        attributes = {"lrukv.key.length": len(key), "lrukv.consistency": consistency.value}
        return self._traced(
            "kv.ttl", attributes, lambda: self._service.ttl(key, consistency=consistency)
        )

    def __getattr__(self, name: str) -> Any:
        # servers, stats, health, cluster_status, membership, close: not traced.
        return getattr(self._service, name)


# The client's doing (a bad key, a missing key, too large a value, a redirect
# to the leader): an answer, not a failed span.
_CLIENT_ERRORS = (LrukvError, InvalidRequest, NotLeader)


class _Proposals:
    """Span contexts of the entries this node proposed and has not applied yet,
    keyed by the command bytes (their hash is cached, and a proposal's bytes
    carry its timestamp, so equal bytes are the same entry)."""

    def __init__(self) -> None:
        self._pending: dict[bytes, Span] = {}
        self._lock = threading.Lock()

    def add(self, command: bytes, span: Span) -> None:
        with self._lock:
            self._pending[command] = span

    def pop(self, command: bytes) -> Span | None:
        if not self._pending:  # the common case on a follower's Raft thread
            return None
        with self._lock:
            return self._pending.pop(command, None)

    def discard(self, command: bytes) -> None:
        with self._lock:
            self._pending.pop(command, None)


class _TracedConsensus:
    def __init__(self, raft: Any, tracer: Tracer, proposals: _Proposals) -> None:
        self._raft = raft
        self._tracer = tracer
        self._proposals = proposals

    def propose(self, command: bytes, timeout: float) -> Future[object]:
        if not trace.get_current_span().is_recording():
            return self._raft.propose(command, timeout)  # type: ignore[no-any-return]
        raft = self._raft
        forwarded = not raft.is_leader
        attributes: dict[str, Any] = {
            "lrukv.raft.forwarded": forwarded,
            "lrukv.command.length": len(command),
        }
        leader = raft.leader_addr
        if forwarded and leader:
            attributes["lrukv.raft.leader"] = leader
        span = self._tracer.start_span("raft.propose", attributes=attributes)
        self._proposals.add(command, span)
        future: Future[object] = raft.propose(command, timeout)

        def done(outcome: Future[object]) -> None:
            # On the Raft thread (or here, if already done): keep it short.
            self._proposals.discard(command)
            error = outcome.exception()
            if error is not None:
                span.set_attribute("lrukv.error", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

        future.add_done_callback(done)
        return future

    def read_barrier(self, timeout: float) -> Future[int]:
        if not trace.get_current_span().is_recording():
            return self._raft.read_barrier(timeout)  # type: ignore[no-any-return]
        span = self._tracer.start_span(
            "raft.read_barrier", attributes={"lrukv.raft.leader": self._raft.is_leader}
        )
        future: Future[int] = self._raft.read_barrier(timeout)

        def done(outcome: Future[int]) -> None:
            error = outcome.exception()
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

        future.add_done_callback(done)
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raft, name)


class _TracedStateMachine:
    def __init__(self, fsm: Any, tracer: Tracer, proposals: _Proposals) -> None:
        self._fsm = fsm
        self._tracer = tracer
        self._proposals = proposals

    def apply(self, command: bytes, index: int) -> object:
        proposal = self._proposals.pop(command)
        if proposal is None:
            return self._fsm.apply(command, index)
        parent = trace.set_span_in_context(proposal)
        with self._tracer.start_as_current_span(
            "raft.apply", context=parent, attributes={"lrukv.raft.index": index}
        ):
            return self._fsm.apply(command, index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fsm, name)
