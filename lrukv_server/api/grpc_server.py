"""The gRPC API: ``lrukv.v1.KV`` over a KVService, plus grpc.health.v1 and reflection.

Handlers know nothing but the KVService protocol and the error table
(:mod:`lrukv_server.api.status`): every exception becomes the table's status
code, with the table's ``lrukv-error-code`` and, for NotLeader, the leader's
addresses as trailing metadata.

Malformed requests: grpcio answers a request its deserializer cannot parse with
INTERNAL ("Exception deserializing request!"), which blames the server for a
client's bytes. Each method here gets a deserializer that never raises; it hands
the handler a :class:`Malformed` marker instead, and the handler answers
INVALID_ARGUMENT naming what was wrong (invalid UTF-8 in a string field, a
truncated message…).

Sizes: the server takes requests well over the value limit (see
:func:`max_request_bytes`) so that an oversized value reaches the Put handler
and gets lrukv's own answer, the same as over HTTP (RESOURCE_EXHAUSTED,
``value_too_large``, "value is N bytes; the limit is M"), rather than grpcio's
"Received message larger than max".

Streams: :mod:`lrukv_server.api.grpc_streams` caps how many ``GetKeysValues``
streams run at once and cancels one whose client stops taking messages, so
stalled clients cannot take the whole thread pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lrukv.errors import ValueTooLarge
from lrukv_proto import (
    ERROR_CODE_METADATA,
    LEADER_HTTP_METADATA,
    LEADER_RPC_METADATA,
)
from lrukv_proto.v1 import kv_pb2
from lrukv_server.api.batch_limits import BatchLimits
from lrukv_server.api.grpc_streams import StreamLimits
from lrukv_server.api.status import INTERNAL, message_of, status_of
from lrukv_server.errors import InvalidRequest, NotLeader
from lrukv_server.service.base import Consistency, KVService, MemberStatus
from lrukv_server.transport import TransportOptions

__all__ = [
    "DEFAULT_STREAM_SEND_TIMEOUT",
    "KV_SERVICE_NAME",
    "GrpcServer",
    "Malformed",
    "kv_method_handlers",
    "max_request_bytes",
]

log = logging.getLogger(__name__)

KV_SERVICE_NAME: str = kv_pb2.DESCRIPTOR.services_by_name["KV"].full_name

# Room for the key, the field tags and the optional TTL around the largest value.
_ENVELOPE_BYTES = 16 * 1024
# How far over the value limit a request may be and still reach the handler.
_MIN_OVERSIZE_BYTES = 4 * 1024 * 1024
_MAX_MESSAGE_BYTES = 2**31 - 1  # gRPC message lengths are signed 32-bit

DEFAULT_STREAM_SEND_TIMEOUT = 30.0


def max_request_bytes(max_value_bytes: int, max_key_bytes: int) -> int:
    """The largest request message the server takes: twice the value limit (at
    least the limit plus 4 MiB) plus the key and framing. A value up to there is
    refused by the handler with lrukv's message; grpcio refuses larger messages
    itself, and the SDK rewrites that answer (lrukv_client._grpc_common).

    >>> max_request_bytes(1 << 20, 1024)
    5260288
    >>> max_request_bytes(1 << 30, 1024) == 2**31 - 1
    True
    """
    oversize = max(max_value_bytes, _MIN_OVERSIZE_BYTES)
    return min(max_value_bytes + oversize + max_key_bytes + _ENVELOPE_BYTES, _MAX_MESSAGE_BYTES)


_CONSISTENCY: dict[int, Consistency] = {
    kv_pb2.CONSISTENCY_DEFAULT: Consistency.DEFAULT,
    kv_pb2.CONSISTENCY_STALE: Consistency.STALE,
    kv_pb2.CONSISTENCY_LINEARIZABLE: Consistency.LINEARIZABLE,
}

M = TypeVar("M", bound=Message)


class Malformed:
    """What a request deserializer returns for bytes that are not a valid message."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


def _parser(message_type: type[M]) -> Callable[[bytes], M | Malformed]:
    parse = message_type.FromString

    def deserialize(data: bytes) -> M | Malformed:
        try:
            return parse(data)
        except DecodeError as exc:
            return Malformed(str(exc) or "the request is not a valid protobuf message")

    return deserialize


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status the error table gives *exc*."""
    row = status_of(exc)
    if row is INTERNAL:
        log.error("unexpected error in a gRPC handler", exc_info=exc)
    metadata: list[tuple[str, str | bytes]] = [(ERROR_CODE_METADATA, row.code)]
    if isinstance(exc, NotLeader):
        if exc.leader_rpc:
            metadata.append((LEADER_RPC_METADATA, exc.leader_rpc))
        if exc.leader_http:
            metadata.append((LEADER_HTTP_METADATA, exc.leader_http))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(row.grpc_code, message_of(exc, row))


def _malformed(context: grpc.ServicerContext, method: str, request: Malformed) -> NoReturn:
    _abort(context, InvalidRequest(f"malformed {method} request: {request.detail}"))


def _consistency(number: int) -> Consistency:
    level = _CONSISTENCY.get(number)
    if level is None:
        raise InvalidRequest(f"unknown consistency level {number}; use 0, 1 or 2")
    return level


class _Handlers:
    """The KV methods. Each catches every exception, so nothing escapes as a
    bare grpcio INTERNAL with a traceback in the message."""

    def __init__(self, service: KVService, max_value_bytes: int, streams: StreamLimits) -> None:
        self._service = service
        self._max_value_bytes = max_value_bytes
        self._streams = streams

    def put(
        self, request: kv_pb2.PutRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.PutResponse:
        if isinstance(request, Malformed):
            _malformed(context, "Put", request)
        try:
            size = len(request.value)
            if size > self._max_value_bytes:
                # Checked here, as HTTP checks the body: the transport's limit.
                limit = self._max_value_bytes
                raise ValueTooLarge(
                    f"value is {size} bytes; the limit is {limit}", size=size, limit=limit
                )
            ttl = request.ttl_seconds if request.HasField("ttl_seconds") else None
            self._service.put(request.key, request.value, ttl=ttl)
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.PutResponse()

    def get(
        self, request: kv_pb2.GetRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.GetResponse:
        if isinstance(request, Malformed):
            _malformed(context, "Get", request)
        try:
            value = self._service.get(request.key, consistency=_consistency(request.consistency))
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.GetResponse(value=value)

    def delete(
        self, request: kv_pb2.DeleteRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.DeleteResponse:
        if isinstance(request, Malformed):
            _malformed(context, "Delete", request)
        try:
            existed = self._service.delete(request.key)
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.DeleteResponse(existed=existed)

    def get_keys(
        self, request: kv_pb2.GetKeysRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.GetKeysResponse:
        if isinstance(request, Malformed):
            _malformed(context, "GetKeys", request)
        try:
            keys = list(self._service.keys(consistency=_consistency(request.consistency)))
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.GetKeysResponse(keys=keys)

    def get_keys_values(
        self, request: kv_pb2.GetKeysValuesRequest | Malformed, context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.KeyValue]:
        if isinstance(request, Malformed):
            _malformed(context, "GetKeysValues", request)
        # The service's iterator holds no lock between items (KVService contract),
        # so a client that stops reading or goes away blocks no writer. When it
        # goes away grpcio cancels the call, wakes this thread if it waits for
        # flow control, and drops (and so closes) this generator. A client that
        # stays but stops reading is cancelled by the stream watchdog: the slot
        # is stamped while grpcio holds a message this generator handed it.
        try:
            slot = self._streams.acquire(context)
        except Exception as exc:
            _abort(context, exc)
        try:
            try:
                items = iter(self._service.items(consistency=_consistency(request.consistency)))
            except Exception as exc:
                _abort(context, exc)
            key_value = kv_pb2.KeyValue
            clock = time.monotonic
            while True:
                try:
                    key, value = next(items)
                except StopIteration:
                    return
                except Exception as exc:
                    _abort(context, exc)
                slot.sending_since = clock()
                yield key_value(key=key, value=value)
                slot.sending_since = None
        finally:
            slot.release()

    def get_servers(
        self, request: kv_pb2.GetServersRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.GetServersResponse:
        if isinstance(request, Malformed):
            _malformed(context, "GetServers", request)
        try:
            servers = self._service.servers()
            status = self._service.cluster_status(digest=request.digest)
        except Exception as exc:
            _abort(context, exc)
        response = kv_pb2.GetServersResponse(
            servers=[
                kv_pb2.Server(
                    id=s.id, rpc_addr=s.rpc_addr, http_addr=s.http_addr, is_leader=s.is_leader
                )
                for s in servers
            ],
            node_id=status.node_id,
            role=status.role,
            term=status.term,
            commit_index=status.commit_index,
            applied_index=status.applied_index,
            members=[_member(m) for m in status.members],
            digest=status.digest or "",
        )
        if status.leader is not None:
            response.leader.CopyFrom(_member(status.leader))
        return response

    def add_member(
        self, request: kv_pb2.AddMemberRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.AddMemberResponse:
        if isinstance(request, Malformed):
            _malformed(context, "AddMember", request)
        try:
            self._service.add_member(request.raft_addr)
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.AddMemberResponse()

    def remove_member(
        self, request: kv_pb2.RemoveMemberRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.RemoveMemberResponse:
        if isinstance(request, Malformed):
            _malformed(context, "RemoveMember", request)
        try:
            self._service.remove_member(request.raft_addr)
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.RemoveMemberResponse()

    def stats(
        self, request: kv_pb2.StatsRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.StatsResponse:
        if isinstance(request, Malformed):
            _malformed(context, "Stats", request)
        try:
            stats = self._service.stats()
        except Exception as exc:
            _abort(context, exc)
        response = kv_pb2.StatsResponse(
            size=stats.size,
            capacity=stats.capacity,
            shards=stats.shards,
            items_per_shard=stats.items_per_shard,
            bytes=stats.bytes,
            max_key_bytes=stats.max_key_bytes,
            hits=stats.hits,
            misses=stats.misses,
            evictions=dict(stats.evictions),
        )
        if stats.max_bytes is not None:
            response.max_bytes = stats.max_bytes
        if stats.max_value_bytes is not None:
            response.max_value_bytes = stats.max_value_bytes
        return response

    def ttl(
        self, request: kv_pb2.TtlRequest | Malformed, context: grpc.ServicerContext
    ) -> kv_pb2.TtlResponse:
        if isinstance(request, Malformed):
            _malformed(context, "Ttl", request)
        try:
            ttl = self._service.ttl(request.key, consistency=_consistency(request.consistency))
        except Exception as exc:
            _abort(context, exc)
        return kv_pb2.TtlResponse() if ttl is None else kv_pb2.TtlResponse(ttl_seconds=ttl)


def kv_method_handlers(
    service: KVService,
    *,
    max_value_bytes: int,
    streams: StreamLimits,
    batch_limits: BatchLimits | None = None,
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The ``lrukv.v1.KV`` method handlers over *service*: Put refuses values
    over *max_value_bytes*; GetKeysValues and Pipeline streams run within
    *streams*; batches are bounded by *batch_limits* (see grpc_batch)."""
    # Imported here: grpc_batch builds on this module's helpers.
    from lrukv_server.api.grpc_batch import batch_method_handlers  # noqa: PLC0415

    h = _Handlers(service, max_value_bytes, streams)
    unary = grpc.unary_unary_rpc_method_handler
    batches = batch_method_handlers(service, limits=batch_limits or BatchLimits(), streams=streams)
    return batches | {
        "Put": unary(
            h.put,
            request_deserializer=_parser(kv_pb2.PutRequest),
            response_serializer=kv_pb2.PutResponse.SerializeToString,
        ),
        "Get": unary(
            h.get,
            request_deserializer=_parser(kv_pb2.GetRequest),
            response_serializer=kv_pb2.GetResponse.SerializeToString,
        ),
        "Delete": unary(
            h.delete,
            request_deserializer=_parser(kv_pb2.DeleteRequest),
            response_serializer=kv_pb2.DeleteResponse.SerializeToString,
        ),
        "GetKeys": unary(
            h.get_keys,
            request_deserializer=_parser(kv_pb2.GetKeysRequest),
            response_serializer=kv_pb2.GetKeysResponse.SerializeToString,
        ),
        "GetKeysValues": grpc.unary_stream_rpc_method_handler(
            h.get_keys_values,
            request_deserializer=_parser(kv_pb2.GetKeysValuesRequest),
            response_serializer=kv_pb2.KeyValue.SerializeToString,
        ),
        "GetServers": unary(
            h.get_servers,
            request_deserializer=_parser(kv_pb2.GetServersRequest),
            response_serializer=kv_pb2.GetServersResponse.SerializeToString,
        ),
        "Stats": unary(
            h.stats,
            request_deserializer=_parser(kv_pb2.StatsRequest),
            response_serializer=kv_pb2.StatsResponse.SerializeToString,
        ),
        "Ttl": unary(
            h.ttl,
            request_deserializer=_parser(kv_pb2.TtlRequest),
            response_serializer=kv_pb2.TtlResponse.SerializeToString,
        ),
        "AddMember": unary(
            h.add_member,
            request_deserializer=_parser(kv_pb2.AddMemberRequest),
            response_serializer=kv_pb2.AddMemberResponse.SerializeToString,
        ),
        "RemoveMember": unary(
            h.remove_member,
            request_deserializer=_parser(kv_pb2.RemoveMemberRequest),
            response_serializer=kv_pb2.RemoveMemberResponse.SerializeToString,
        ),
    }


def _member(member: MemberStatus) -> kv_pb2.ClusterMember:
    return kv_pb2.ClusterMember(
        id=member.id,
        raft_addr=member.raft_addr,
        http_addr=member.http_addr,
        grpc_addr=member.grpc_addr,
        reachable=member.reachable,
    )


def format_addr(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 host.

    >>> format_addr("::1", 50051), format_addr("127.0.0.1", 80)
    ('[::1]:50051', '127.0.0.1:80')
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A grpcio server serving KV, health and reflection on one address.

    ``bind()`` takes the port (0 picks a free one; ``port`` then tells which) and
    raises OSError with a readable message when the address is taken;
    ``start(service)`` begins serving. ``begin_stop(grace)`` stops accepting calls
    at once and lets in-flight ones run for up to *grace* seconds;
    ``wait_stopped()`` waits for that.

    At most ``max_streams`` GetKeysValues streams run at once (0: half the
    workers, at least 1), and one whose client takes no message for
    ``stream_send_timeout`` seconds is cancelled (see grpc_streams).

    ``transport`` brings the interceptors (outermost first) and, with TLS, the
    credentials the port is bound with (see lrukv_server.transport).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        workers: int,
        max_value_bytes: int,
        max_key_bytes: int,
        max_streams: int = 0,
        stream_send_timeout: float = DEFAULT_STREAM_SEND_TIMEOUT,
        transport: TransportOptions | None = None,
        batch_limits: BatchLimits | None = None,
    ) -> None:
        self._host = host
        self.batch_limits = batch_limits or BatchLimits()
        self.transport = transport or TransportOptions()
        self._max_value_bytes = max_value_bytes
        self.streams = StreamLimits(
            max_streams=max_streams or max(1, workers // 2),
            send_timeout=stream_send_timeout,
            method="GetKeysValues or Pipeline",
        )
        self._requested_port = port
        self.port = port
        self._executor = futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="lrukv-grpc"
        )
        self._server = grpc.server(
            self._executor,
            interceptors=list(self.transport.grpc_interceptors),
            options=[
                # Never share the port with another process by accident (grpcio
                # enables SO_REUSEPORT by default, which would let a second server
                # start on the same port and take half the traffic).
                ("grpc.so_reuseport", 0),
                (
                    "grpc.max_receive_message_length",
                    max(
                        max_request_bytes(max_value_bytes, max_key_bytes),
                        # A batch a little over its limit still gets lrukv's answer.
                        min(self.batch_limits.max_bytes + (1 << 20), _MAX_MESSAGE_BYTES),
                    ),
                ),
                # GetKeys answers in one message; the client's limit decides.
                ("grpc.max_send_message_length", -1),
            ],
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (
                KV_SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        self._stopped: threading.Event | None = None
        self._stop_lock = threading.Lock()
        self._started = False

    @property
    def address(self) -> str:
        return format_addr(self._host, self.port)

    def bind(self) -> int:
        """Take the port; return it."""
        target = format_addr(self._host, self._requested_port)
        credentials = self.transport.grpc_credentials()
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(target)
            else:
                self.port = self._server.add_secure_port(target, credentials)
        except RuntimeError as exc:  # grpcio raises RuntimeError for a failed bind
            raise OSError(f"cannot listen for gRPC on {target}: {exc}") from None
        if self.port == 0:  # older grpcio returns 0 instead of raising
            raise OSError(f"cannot listen for gRPC on {target}: address in use or unavailable")
        return self.port

    def start(self, service: KVService) -> None:
        """Serve lrukv.v1.KV over *service*, and report SERVING."""
        handlers = kv_method_handlers(
            service,
            max_value_bytes=self._max_value_bytes,
            streams=self.streams,
            batch_limits=self.batch_limits,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(KV_SERVICE_NAME, handlers),)
        )
        # Registered handlers skip the generic lookup on every call (grpcio >= 1.62).
        register: Callable[[str, dict[str, Any]], None] | None = getattr(
            self._server, "add_registered_method_handlers", None
        )
        if register is not None:
            register(KV_SERVICE_NAME, handlers)
        with self._stop_lock:
            if self._stopped is not None:
                raise RuntimeError("the gRPC server was stopped before it started")
            self._server.start()
            self._started = True
        self.streams.start()
        self.set_serving(True)

    def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the whole server and for lrukv.v1.KV."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self._health.set("", status)
        self._health.set(KV_SERVICE_NAME, status)

    def begin_stop(self, grace: float) -> None:
        """Stop accepting calls now; in-flight calls have *grace* seconds. Idempotent
        (the first call's grace applies); safe from any thread."""
        with self._stop_lock:
            if self._stopped is None:
                self._health.enter_graceful_shutdown()
                if not self._started:
                    # grpcio releases a bound port only when a started server stops
                    # (not on stop() before start(), not when garbage-collected).
                    self._server.start()
                self._stopped = self._server.stop(grace)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped; return whether it did within *timeout*."""
        with self._stop_lock:
            stopped = self._stopped
        if stopped is None:
            return True
        done = stopped.wait(timeout)
        if done:
            self.streams.stop()
            self._executor.shutdown(wait=False)
        return done
