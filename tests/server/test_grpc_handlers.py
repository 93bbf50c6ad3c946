"""The gRPC API in process: GrpcServer on a free loopback port, over a fake KVService."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from lrukv_proto import LEADER_HTTP_METADATA, LEADER_RPC_METADATA
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.api.grpc_server import KV_SERVICE_NAME, GrpcServer
from lrukv_server.service import Consistency
from tests.server.faults import (
    FAULTS,
    LEADER_HTTP,
    LEADER_RPC,
    MIDSTREAM_FAULT_KEY,
    SECRET,
    FakeService,
    Fault,
    FaultyService,
)
from tests.server.grpc_util import error_code, raw_call, trailing

LIMIT = 64 * 1024
TIMEOUT = 10


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def server(fake: FakeService) -> Iterator[GrpcServer]:
    grpc_server = GrpcServer(
        host="127.0.0.1", port=0, workers=4, max_value_bytes=LIMIT, max_key_bytes=1024
    )
    grpc_server.bind()
    grpc_server.start(FaultyService(fake))
    yield grpc_server
    grpc_server.begin_stop(0)
    grpc_server.wait_stopped(10)


@pytest.fixture
def channel(server: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as chan:
        yield chan


@pytest.fixture
def kv(channel: grpc.Channel) -> kv_pb2_grpc.KVStub:
    return kv_pb2_grpc.KVStub(channel)


def test_put_get_delete(kv: kv_pb2_grpc.KVStub, fake: FakeService) -> None:
    kv.Put(kv_pb2.PutRequest(key="key-a", value=b"\x00\xffbinary"), timeout=TIMEOUT)
    assert fake.data == {"key-a": b"\x00\xffbinary"}
    got = kv.Get(kv_pb2.GetRequest(key="key-a"), timeout=TIMEOUT)
    assert got.value == b"\x00\xffbinary"
    assert kv.Delete(kv_pb2.DeleteRequest(key="key-a"), timeout=TIMEOUT).existed is True
    assert kv.Delete(kv_pb2.DeleteRequest(key="key-a"), timeout=TIMEOUT).existed is False
    with pytest.raises(grpc.RpcError) as missing:
        kv.Get(kv_pb2.GetRequest(key="key-a"), timeout=TIMEOUT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(missing.value) == "key_not_found"


def test_ttl_is_passed_only_when_set(kv: kv_pb2_grpc.KVStub, fake: FakeService) -> None:
    kv.Put(kv_pb2.PutRequest(key="k", value=b"v", ttl_seconds=30), timeout=TIMEOUT)
    assert fake.last("put") == ("k", b"v", 30.0)
    kv.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=TIMEOUT)
    assert fake.last("put") == ("k", b"v", None)


@pytest.mark.parametrize(
    ("number", "level"),
    [
        (kv_pb2.CONSISTENCY_DEFAULT, Consistency.DEFAULT),
        (kv_pb2.CONSISTENCY_STALE, Consistency.STALE),
        (kv_pb2.CONSISTENCY_LINEARIZABLE, Consistency.LINEARIZABLE),
    ],
)
def test_consistency_levels_reach_the_service(
    kv: kv_pb2_grpc.KVStub,
    fake: FakeService,
    number: kv_pb2.Consistency.ValueType,
    level: Consistency,
) -> None:
    fake.data["k"] = b"v"
    kv.Get(kv_pb2.GetRequest(key="k", consistency=number), timeout=TIMEOUT)
    assert fake.last("get") == ("k", level)
    kv.GetKeys(kv_pb2.GetKeysRequest(consistency=number), timeout=TIMEOUT)
    assert fake.last("keys") == (level,)
    list(kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(consistency=number), timeout=TIMEOUT))
    assert fake.last("items") == (level,)


def test_unknown_consistency_number_is_invalid_argument(channel: grpc.Channel) -> None:
    # Field 2 (consistency) = 7: proto3 keeps unknown enum numbers, the server must refuse.
    get = raw_call(channel, "Get")
    with pytest.raises(grpc.RpcError) as error:
        get(b"\x0a\x01k\x10\x07", timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(error.value) == "invalid_request"
    assert "consistency" in (error.value.details() or "")


def test_keys_and_stream(kv: kv_pb2_grpc.KVStub, fake: FakeService) -> None:
    for i in range(100):
        fake.data[f"k{i}"] = bytes([i])
    keys = kv.GetKeys(kv_pb2.GetKeysRequest(), timeout=TIMEOUT).keys
    assert sorted(keys) == sorted(fake.data)
    streamed = {
        kv_pair.key: kv_pair.value
        for kv_pair in kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT)
    }
    assert streamed == fake.data


def test_servers(kv: kv_pb2_grpc.KVStub, fake: FakeService) -> None:
    servers = kv.GetServers(kv_pb2.GetServersRequest(), timeout=TIMEOUT).servers
    assert [(s.id, s.rpc_addr, s.http_addr, s.is_leader) for s in servers] == [
        (fake.node.id, fake.node.rpc_addr, fake.node.http_addr, True)
    ]


@pytest.mark.parametrize(
    ("method", "payload", "detail"),
    [
        ("Put", b"\x0a\x02\xff\xfe\x12\x01v", "UTF-8"),  # key is not UTF-8
        ("Get", b"\x0a\x02\xc3\x28", "UTF-8"),
        ("Delete", b"\x0a\x01\x80", "UTF-8"),
        ("Get", b"\x0a\x05ab", "Get"),  # truncated: says 5 bytes, has 2
        ("GetKeys", b"\xff\xff\xff", "GetKeys"),
        ("GetServers", b"\x0b", "GetServers"),  # a group start with no end
    ],
)
def test_malformed_protobuf_is_invalid_argument_not_internal(
    channel: grpc.Channel, fake: FakeService, method: str, payload: bytes, detail: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        raw_call(channel, method)(payload, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"malformed {method} request" in (error.value.details() or "")
    assert detail in (error.value.details() or "")
    assert error_code(error.value) == "invalid_request"
    assert fake.data == {}


def test_malformed_stream_request_is_invalid_argument(channel: grpc.Channel) -> None:
    stream = channel.unary_stream(
        "/lrukv.v1.KV/GetKeysValues",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.RpcError) as error:
        list(stream(b"\x0a\x05ab", timeout=TIMEOUT))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as error:
        raw_call(channel, "Nope")(b"", timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_server_keeps_serving_after_bad_requests(
    channel: grpc.Channel, kv: kv_pb2_grpc.KVStub
) -> None:
    for _ in range(20):
        with pytest.raises(grpc.RpcError):
            raw_call(channel, "Put")(b"\x0a\x02\xff\xfe", timeout=TIMEOUT)
    kv.Put(kv_pb2.PutRequest(key="still", value=b"fine"), timeout=TIMEOUT)
    assert kv.Get(kv_pb2.GetRequest(key="still"), timeout=TIMEOUT).value == b"fine"


def test_message_larger_than_the_value_limit_is_resource_exhausted(
    kv: kv_pb2_grpc.KVStub, fake: FakeService
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        kv.Put(kv_pb2.PutRequest(key="big", value=b"x" * (LIMIT * 2)), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "big" not in fake.data


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
@pytest.mark.parametrize("method", ["Get", "Put", "Delete"])
def test_every_error_table_row_over_grpc(kv: kv_pb2_grpc.KVStub, fault: Fault, method: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "Get": lambda: kv.Get(kv_pb2.GetRequest(key=fault.key), timeout=TIMEOUT),
        "Put": lambda: kv.Put(kv_pb2.PutRequest(key=fault.key, value=b"v"), timeout=TIMEOUT),
        "Delete": lambda: kv.Delete(kv_pb2.DeleteRequest(key=fault.key), timeout=TIMEOUT),
    }
    with pytest.raises(grpc.RpcError) as error:
        calls[method]()
    assert error.value.code().name == fault.grpc_code
    assert error_code(error.value) == fault.code
    assert SECRET not in (error.value.details() or "")
    metadata = trailing(error.value)
    if fault.key == "fault-not-leader":
        assert metadata[LEADER_RPC_METADATA] == LEADER_RPC
        assert metadata[LEADER_HTTP_METADATA] == LEADER_HTTP
    else:
        assert LEADER_RPC_METADATA not in metadata


def test_a_stream_that_breaks_ends_with_the_error_status(
    kv: kv_pb2_grpc.KVStub, fake: FakeService
) -> None:
    fake.data["first"] = b"1"
    fake.data[MIDSTREAM_FAULT_KEY] = b"2"
    fake.data["never"] = b"3"
    received = []
    with pytest.raises(grpc.RpcError) as error:
        for item in kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT):
            received.append(item.key)
    assert received == ["first", MIDSTREAM_FAULT_KEY]
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in (error.value.details() or "")


def test_health_service(server: GrpcServer, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", KV_SERVICE_NAME):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    server.set_serving(False)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {KV_SERVICE_NAME, "grpc.health.v1.Health"} <= services
    descriptor = database.FindFileContainingSymbol(KV_SERVICE_NAME)
    assert descriptor.package == "lrukv.v1"


def test_after_stop_calls_are_refused(server: GrpcServer, kv: kv_pb2_grpc.KVStub) -> None:
    server.begin_stop(0)
    assert server.wait_stopped(10)
    with pytest.raises(grpc.RpcError) as error:
        kv.Get(kv_pb2.GetRequest(key="k"), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_taken_port_is_a_clear_error(server: GrpcServer) -> None:
    other = GrpcServer(
        host="127.0.0.1", port=server.port, workers=1, max_value_bytes=LIMIT, max_key_bytes=1024
    )
    with pytest.raises(OSError, match=f"cannot listen for gRPC on 127.0.0.1:{server.port}"):
        other.bind()
    other.begin_stop(0)
