"""The gRPC wire of the request layer: each call as a proto message, and each
answer back into the client's models. No I/O (``Client`` and ``AsyncClient``
send what this builds); see ``lrukv_client._requests``."""

from __future__ import annotations

from collections.abc import Sequence

from lrukv_client._requests import (
    GRPC_STATUS,
    Call,
    Plan,
    PutEntry,
    error_for,
    single,
)
from lrukv_client.errors import LrukvClientError
from lrukv_client.models import (
    BatchResult,
    ClusterMember,
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
    check_key,
    check_ttl,
    to_bytes,
)
from lrukv_proto.v1 import kv_pb2

__all__ = ["GrpcWire", "consistency_pb", "pipeline_request", "pipeline_result"]

_CONSISTENCY_PB = {
    Consistency.DEFAULT: kv_pb2.CONSISTENCY_DEFAULT,
    Consistency.STALE: kv_pb2.CONSISTENCY_STALE,
    Consistency.LINEARIZABLE: kv_pb2.CONSISTENCY_LINEARIZABLE,
}

# Error.grpc_code (an int on the wire) -> the status name GRPC_STATUS is keyed by.
_GRPC_NAMES = {
    1: "CANCELLED",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}


def consistency_pb(level: Consistency | str) -> kv_pb2.Consistency.ValueType:
    return _CONSISTENCY_PB[Consistency.parse(level)]


def _ignore(answer: object, target: str) -> None:
    return None


class GrpcWire:
    """Builds every call of the gRPC API (``Call.method`` is the RPC's name)."""

    def put(self, key: str, value: bytes | str, ttl: float | None) -> Plan[None]:
        request = kv_pb2.PutRequest(key=check_key(key), value=to_bytes(value))
        ttl = check_ttl(ttl)
        if ttl is not None:
            request.ttl_seconds = ttl
        return single(Call("Put", request, _ignore, key=key, write=True))

    def get(self, key: str, level: Consistency) -> Plan[bytes]:
        request = kv_pb2.GetRequest(key=check_key(key), consistency=consistency_pb(level))
        return single(Call("Get", request, lambda r, t: r.value, key=key))

    def delete(self, key: str) -> Plan[bool]:
        request = kv_pb2.DeleteRequest(key=check_key(key))
        return single(Call("Delete", request, lambda r, t: r.existed, key=key, write=True))

    def keys(self, level: Consistency) -> Plan[list[str]]:
        request = kv_pb2.GetKeysRequest(consistency=consistency_pb(level))
        return single(Call("GetKeys", request, lambda r, t: list(r.keys)))

    def servers(self) -> Plan[list[ServerInfo]]:
        return single(
            Call(
                "GetServers",
                kv_pb2.GetServersRequest(),
                lambda r, t: [server_info(s) for s in r.servers],
            )
        )

    def cluster_status(self, digest: bool) -> Plan[ClusterStatus]:
        request = kv_pb2.GetServersRequest(digest=digest)
        return single(Call("GetServers", request, lambda r, t: cluster_status(r)))

    def add_member(self, raft_addr: str) -> Plan[None]:
        request = kv_pb2.AddMemberRequest(raft_addr=raft_addr)
        return single(Call("AddMember", request, _ignore))

    def remove_member(self, raft_addr: str) -> Plan[None]:
        request = kv_pb2.RemoveMemberRequest(raft_addr=raft_addr)
        return single(Call("RemoveMember", request, _ignore))

    def stats(self) -> Plan[StoreStats]:
        return single(Call("Stats", kv_pb2.StatsRequest(), lambda r, t: store_stats(r)))

    def ttl(self, key: str, level: Consistency) -> Plan[float | None]:
        request = kv_pb2.TtlRequest(key=check_key(key), consistency=consistency_pb(level))
        return single(Call("Ttl", request, lambda r, t: ttl_of(r), key=key))

    # -- batches: one Call per chunk (lrukv_client._requests.batch_plan splits) ------

    def get_many(self, keys: Sequence[str], level: Consistency) -> Call[list[BatchResult]]:
        request = kv_pb2.GetManyRequest(keys=keys, consistency=consistency_pb(level))
        return Call("GetMany", request, _get_many_results)

    def put_many(self, entries: Sequence[PutEntry], atomic: bool) -> Call[list[BatchResult]]:
        request = kv_pb2.PutManyRequest(
            entries=[
                kv_pb2.PutManyEntry(key=e.key, value=e.value, ttl_seconds=e.ttl) for e in entries
            ],
            atomic=atomic,
        )
        return Call("PutMany", request, _put_many_results, write=True)

    def delete_many(self, keys: Sequence[str], atomic: bool) -> Call[list[BatchResult]]:
        request = kv_pb2.DeleteManyRequest(keys=keys, atomic=atomic)
        return Call("DeleteMany", request, _delete_many_results, write=True)


def key_error(error: kv_pb2.Error, *, key: str, target: str) -> LrukvClientError:
    """A batch key's (or a pipeline request's) ``Error``, as the exception a single
    call would raise: by its wire code, else by its gRPC code."""
    fallback_name = _GRPC_NAMES.get(error.grpc_code, "UNKNOWN")
    return error_for(
        error.code or None,
        GRPC_STATUS.get(fallback_name),
        message=f"{target}: {error.message or error.code}",
        status=fallback_name,
        key=key,
    )


def _get_many_results(response: kv_pb2.GetManyResponse, target: str) -> list[BatchResult]:
    return [
        BatchResult("get", r.key, error=key_error(r.error, key=r.key, target=target))
        if r.HasField("error")
        else BatchResult("get", r.key, found=r.found, value=r.value if r.found else None)
        for r in response.results
    ]


def _put_many_results(response: kv_pb2.PutManyResponse, target: str) -> list[BatchResult]:
    return [
        BatchResult(
            "put",
            r.key,
            error=key_error(r.error, key=r.key, target=target) if r.HasField("error") else None,
        )
        for r in response.results
    ]


def _delete_many_results(response: kv_pb2.DeleteManyResponse, target: str) -> list[BatchResult]:
    return [
        BatchResult(
            "delete",
            r.key,
            existed=r.existed,
            error=key_error(r.error, key=r.key, target=target) if r.HasField("error") else None,
        )
        for r in response.results
    ]


# -- the pipeline stream ----------------------------------------------------------------


def pipeline_request(
    request_id: int,
    op: str,
    key: str,
    *,
    value: bytes | str | None = None,
    ttl: float | None = None,
    level: Consistency = Consistency.DEFAULT,
) -> kv_pb2.PipelineRequest:
    """One request of the Pipeline stream; raises ``InvalidArgument`` (nothing sent)
    for a key, value or TTL no server could take."""
    key = check_key(key)
    if op == "get":
        return kv_pb2.PipelineRequest(
            id=request_id, get=kv_pb2.GetRequest(key=key, consistency=consistency_pb(level))
        )
    if op == "put":
        put = kv_pb2.PutRequest(key=key, value=to_bytes(value if value is not None else b""))
        ttl = check_ttl(ttl)
        if ttl is not None:
            put.ttl_seconds = ttl
        return kv_pb2.PipelineRequest(id=request_id, put=put)
    return kv_pb2.PipelineRequest(id=request_id, delete=kv_pb2.DeleteRequest(key=key))


def pipeline_result(
    response: kv_pb2.PipelineResponse, op: str, key: str, target: str
) -> BatchResult:
    """The answer of one pipeline request (a get of an absent key: found False)."""
    if response.HasField("error"):
        error = key_error(response.error, key=key, target=target)
        if op == "get" and error.error_code == "key_not_found":
            return BatchResult(op, key)
        return BatchResult(op, key, error=error)
    if response.HasField("get"):
        return BatchResult(op, key, found=True, value=response.get.value)
    if response.HasField("delete"):
        return BatchResult(op, key, existed=response.delete.existed)
    return BatchResult(op, key)


# -- answers into models ----------------------------------------------------------------


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
