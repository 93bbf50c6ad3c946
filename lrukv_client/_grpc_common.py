"""What the blocking and the asyncio gRPC clients share: channel settings, TLS
credentials, and the one table from gRPC status codes to client errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from lrukv_client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    PermissionDenied,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unreachable,
    ValueTooLarge,
)
from lrukv_client.models import (
    ClusterMember,
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
    TLSConfig,
)
from lrukv_proto import ERROR_CODE_METADATA, LEADER_HTTP_METADATA, LEADER_RPC_METADATA
from lrukv_proto.v1 import kv_pb2

__all__ = [
    "ChannelOptions",
    "channel_credentials",
    "channel_options",
    "consistency_pb",
    "error_from_rpc",
    "error_from_status",
    "server_info",
    "store_stats",
    "ttl_of",
]

ChannelOptions = Sequence[tuple[str, Any]]

# keys() of a large store is one message; the 4 MiB default is too small.
_MAX_RECEIVE_BYTES = 256 * 1024 * 1024

_DEFAULT_OPTIONS: dict[str, Any] = {
    # gRPC's own reconnect backoff starts at 1 s and grows to 120 s; while it waits,
    # calls fail fast. Keep it short so the Retry policy, not the channel, decides
    # how long a client waits for a restarted node.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.max_receive_message_length": _MAX_RECEIVE_BYTES,
}

_CONSISTENCY_PB = {
    Consistency.DEFAULT: kv_pb2.CONSISTENCY_DEFAULT,
    Consistency.STALE: kv_pb2.CONSISTENCY_STALE,
    Consistency.LINEARIZABLE: kv_pb2.CONSISTENCY_LINEARIZABLE,
}


def consistency_pb(level: Consistency | str) -> kv_pb2.Consistency.ValueType:
    return _CONSISTENCY_PB[Consistency.parse(level)]


def channel_options(tls: TLSConfig | None, extra: ChannelOptions = ()) -> list[tuple[str, Any]]:
    """Our defaults, then the TLS name override, then the caller's ``extra`` (which win)."""
    options = dict(_DEFAULT_OPTIONS)
    if tls is not None and tls.server_name:
        options["grpc.ssl_target_name_override"] = tls.server_name
        options["grpc.default_authority"] = tls.server_name
    options.update(dict(extra))
    return list(options.items())


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    ca, key, cert = tls.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def server_info(server: kv_pb2.Server) -> ServerInfo:
    return ServerInfo(
        id=server.id,
        rpc_addr=server.rpc_addr,
        http_addr=server.http_addr,
        is_leader=server.is_leader,
    )


def cluster_member(member: kv_pb2.ClusterMember) -> ClusterMember:
    return ClusterMember(
        id=member.id,
        raft_addr=member.raft_addr,
        http_addr=member.http_addr,
        grpc_addr=member.grpc_addr,
        reachable=member.reachable,
    )


def cluster_status(response: kv_pb2.GetServersResponse) -> ClusterStatus:
    return ClusterStatus(
        node_id=response.node_id,
        role=response.role,
        term=response.term,
        commit_index=response.commit_index,
        applied_index=response.applied_index,
        leader=cluster_member(response.leader) if response.HasField("leader") else None,
        members=tuple(cluster_member(m) for m in response.members),
        digest=response.digest or None,
    )


def store_stats(response: kv_pb2.StatsResponse) -> StoreStats:
    return StoreStats(
        size=response.size,
        capacity=response.capacity,
        shards=response.shards,
        items_per_shard=response.items_per_shard,
        bytes=response.bytes,
        max_bytes=response.max_bytes if response.HasField("max_bytes") else None,
        max_key_bytes=response.max_key_bytes,
        max_value_bytes=(
            response.max_value_bytes if response.HasField("max_value_bytes") else None
        ),
        hits=response.hits,
        misses=response.misses,
        evictions=dict(response.evictions),
    )


def ttl_of(response: kv_pb2.TtlResponse) -> float | None:
    return response.ttl_seconds if response.HasField("ttl_seconds") else None


def error_from_status(
    code: grpc.StatusCode,
    details: str | None,
    metadata: Iterable[Any] | None,
    *,
    target: str,
    key: str | None = None,
) -> LrukvClientError:
    """Translate a failed call's status into the client's exception."""
    pairs = _text_metadata(metadata)
    error = _error_from_status(code, details, pairs, target=target, key=key)
    error.error_code = pairs.get(ERROR_CODE_METADATA)
    return error


def error_from_rpc(exc: grpc.RpcError, *, target: str, key: str | None = None) -> LrukvClientError:
    """Translate a failed call of either the blocking or the asyncio API. Both
    raise an RpcError that also has ``code()``, ``details()`` and
    ``trailing_metadata()``; anything else is an unknown failure."""
    code_of = getattr(exc, "code", None)
    if not callable(code_of):
        return error_from_status(grpc.StatusCode.UNKNOWN, str(exc), None, target=target, key=key)
    code: grpc.StatusCode = code_of()
    details: str | None = exc.details()
    metadata = exc.trailing_metadata()
    return error_from_status(code, details, metadata, target=target, key=key)


def _error_from_status(
    code: grpc.StatusCode,
    details: str | None,
    metadata: dict[str, str],
    *,
    target: str,
    key: str | None,
) -> LrukvClientError:
    message = f"{target}: {details or code.name}"
    if code == grpc.StatusCode.NOT_FOUND and key is not None:
        return KeyNotFound(key)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(message)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return _resource_exhausted(message, details, metadata, target=target)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return NotLeader(
            message,
            leader_rpc=metadata.get(LEADER_RPC_METADATA) or None,
            leader_http=metadata.get(LEADER_HTTP_METADATA) or None,
        )
    # CANCELLED here was not our doing (we never surface our own cancels): the
    # server cancels calls when it shuts down, which is the same as unavailable.
    if code == grpc.StatusCode.UNAVAILABLE and _no_connection(details):
        return Unreachable(message)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(message)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(message)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(message)
    return ServerError(f"{message} ({code.name})", code=code.name)


# What gRPC core says when the connection was refused or the name did not
# resolve: nothing listens there. Not a connect timeout (a busy or distant
# host), a server that answered UNAVAILABLE, or a connection that broke.
_NO_CONNECTION = (
    "connection refused",
    "errors resolving",
    "dns resolution failed",
    "domain name not found",
)


def _no_connection(details: str | None) -> bool:
    text = (details or "").lower()
    return any(marker in text for marker in _NO_CONNECTION)


# grpcio's own answer to a message over a limit, on either side of the call.
_TRANSPORT_LIMIT = re.compile(r"(Received|Sent) message larger than max \((\d+) vs\. (\d+)\)")


def _resource_exhausted(
    message: str, details: str | None, metadata: dict[str, str], *, target: str
) -> LrukvClientError:
    """RESOURCE_EXHAUSTED: the server's ``value_too_large`` or ``too_many_streams``,
    or a gRPC message limit that grpcio enforced before lrukv saw the message."""
    error_code = metadata.get(ERROR_CODE_METADATA)
    if error_code == "too_many_streams":
        return Unavailable(message)  # every stream slot is busy: retry later
    limit = _TRANSPORT_LIMIT.search(details or "") if error_code is None else None
    if limit is None:
        return ValueTooLarge(message)
    direction, size, most = limit.group(1), int(limit.group(2)), int(limit.group(3))
    if direction == "Sent":  # this client's own send limit (a channel option)
        return ValueTooLarge(
            f"{target}: value too large: the request is {size} bytes; this client sends "
            f"at most {most} (grpc.max_send_message_length in the channel options)"
        )
    if direction == "Received" and most == _MAX_RECEIVE_BYTES:
        # This client's own receive limit: an answer (keys() of a huge store) too big.
        return ServerError(
            f"{target}: the answer is {size} bytes; this client takes at most {most} "
            "(raise grpc.max_receive_message_length in the channel options, or use "
            "items() to stream a large store)",
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.name,
        )
    # The server's request limit: its value limit plus room for the key and framing
    # (more when the server takes oversized values to answer them itself).
    return ValueTooLarge(
        f"{target}: value too large: the request is {size} bytes and the server takes "
        f"gRPC requests of at most {most} bytes (its value limit, --max-value-bytes, is "
        "lower still)"
    )


def _text_metadata(metadata: Iterable[Any] | None) -> dict[str, str]:
    """The trailing metadata we read, as text. Entries are ``(key, value)`` pairs
    (plain tuples, or grpc's named ``_Metadatum`` tuples)."""
    wanted = (LEADER_RPC_METADATA, LEADER_HTTP_METADATA, ERROR_CODE_METADATA)
    found: dict[str, str] = {}
    for name, value in metadata or ():
        if name in wanted:
            found[name] = value.decode(errors="replace") if isinstance(value, bytes) else value
    return found
