"""Hostile input on the gRPC port of the real server: only lrukv's answers come back,
and the server keeps serving.

* Every method of ``lrukv.v1.KV`` gets Hypothesis-made raw request bytes, sent
  with identity serializers so nothing on the client side tidies them up:
  random bytes, field soup (any field number and wire type, lying length
  prefixes, overlong varints, stray group tags), valid messages cut short, and
  valid messages with hostile contents (control characters, huge or unknown
  enum numbers, NaN TTLs, values over the limit). The answer is success or one
  of lrukv's codes with ``lrukv-error-code`` set: never UNKNOWN or INTERNAL from
  a Python exception. A normal Put/Get works after each batch.
* Messages over the server's request limit get RESOURCE_EXHAUSTED.
* Raw sockets send an HTTP/1 request, random bytes, and the HTTP/2 preface
  followed by junk frames: the server stays up and serves.

CI runs a small number of examples; ``HOSTILE_EXAMPLES=N`` runs N per method
(and per socket test) for the full-size run: see docs/api.md for its figures.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.api.grpc_server import max_request_bytes
from tests.harness import ServerProcess, start_server
from tests.server.grpc_util import error_code

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "60"))
VALUE_LIMIT = 4096
KEY_LIMIT = 1024
TIMEOUT = 10
LRUKV_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [
    "Put",
    "Get",
    "Delete",
    "GetKeys",
    "GetKeysValues",
    "GetServers",
    "GetMany",
    "PutMany",
    "DeleteMany",
    "Pipeline",
]
REQUEST_TYPES = {
    "Put": kv_pb2.PutRequest,
    "Get": kv_pb2.GetRequest,
    "Delete": kv_pb2.DeleteRequest,
    "GetKeys": kv_pb2.GetKeysRequest,
    "GetKeysValues": kv_pb2.GetKeysValuesRequest,
    "GetServers": kv_pb2.GetServersRequest,
    "GetMany": kv_pb2.GetManyRequest,
    "PutMany": kv_pb2.PutManyRequest,
    "DeleteMany": kv_pb2.DeleteManyRequest,
    "Pipeline": kv_pb2.PipelineRequest,
}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("hostile"),
        "--max-value-bytes",
        str(VALUE_LIMIT),
        "--max-key-bytes",
        str(KEY_LIMIT),
    )
    try:
        yield process
        # No handler met an exception it did not expect.
        assert "unexpected error in a gRPC handler" not in process.stderr()
        assert "Traceback" not in process.stderr()
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.rpc_addr) as chan:
        yield chan


def _still_serving(server: ServerProcess) -> None:
    assert server.alive(), server.output()
    with grpc.insecure_channel(server.rpc_addr) as chan:
        kv = kv_pb2_grpc.KVStub(chan)
        kv.Put(kv_pb2.PutRequest(key="canary", value=b"alive"), timeout=TIMEOUT)
        assert kv.Get(kv_pb2.GetRequest(key="canary"), timeout=TIMEOUT).value == b"alive"


def _send(channel: grpc.Channel, method: str, payload: bytes) -> None:
    """Send *payload* as the request of *method*; read the whole answer."""
    path = f"/lrukv.v1.KV/{method}"
    identity: Callable[[bytes], bytes] = lambda data: data  # noqa: E731
    if method == "GetKeysValues":
        stream = channel.unary_stream(
            path, request_serializer=identity, response_deserializer=identity
        )
        for _ in stream(payload, timeout=TIMEOUT):
            pass
    elif method == "Pipeline":  # the payload as one request of the stream, then another
        pipeline = channel.stream_stream(
            path, request_serializer=identity, response_deserializer=identity
        )
        for _ in pipeline(iter([payload, payload]), timeout=TIMEOUT):
            pass
    else:
        unary = channel.unary_unary(
            path, request_serializer=identity, response_deserializer=identity
        )
        unary(payload, timeout=TIMEOUT)


def _answer_is_lrukvs(channel: grpc.Channel, method: str, payload: bytes) -> None:
    try:
        _send(channel, method, payload)
    except grpc.RpcError as error:
        code = error.code()
        details = error.details()
        assert code in LRUKV_CODES, f"{method} {payload[:64]!r}: {code} {details}"
        assert error_code(error) is not None, f"{method} {payload[:64]!r}: {code} {details}"


# ------------------------------------------------------------------ protobuf soup


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def fields(draw: st.DrawFn) -> bytes:
    """One field of any number and wire type, its payload true or lying."""
    number = draw(st.one_of(st.integers(0, 6), st.integers(0, 2**29 + 8)))
    wire = draw(st.integers(0, 7))
    tag = varint(number << 3 | wire)
    if wire == 0:
        value = draw(st.integers(0, 2**70))  # past 64 bits: an overlong varint
        return tag + varint(value)
    if wire == 1:
        return tag + draw(st.binary(min_size=0, max_size=8))  # 8 bytes, or short
    if wire == 5:
        return tag + draw(st.binary(min_size=0, max_size=4))
    if wire == 2:
        data = draw(st.binary(max_size=64) | st.text(max_size=32).map(str.encode))
        claimed = len(data) + draw(st.sampled_from([0, 0, 0, 1, 7, -1, 2**31, 2**63]))
        return tag + varint(max(claimed, 0)) + data
    return tag + draw(st.binary(max_size=16))  # group start/end, or no such wire type


soup = st.lists(fields(), max_size=8).map(b"".join)

keys = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.text(alphabet="./\x00\x7f ", max_size=8),
    st.integers(KEY_LIMIT - 2, KEY_LIMIT + 2).map(lambda n: "k" * n),
)
consistencies = st.one_of(st.integers(0, 3), st.integers(-(2**31), 2**31 - 1))
ttls = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.001, 1e9))
values = st.one_of(
    st.binary(max_size=64),
    st.integers(VALUE_LIMIT - 1, VALUE_LIMIT + 1).map(lambda n: b"v" * n),
)


def hostile_messages(method: str) -> st.SearchStrategy[bytes]:
    """Well-formed messages of *method*'s request type with hostile contents."""
    if method == "Put":
        made: st.SearchStrategy[object] = st.builds(
            kv_pb2.PutRequest, key=keys, value=values, ttl_seconds=st.none() | ttls
        )
    elif method == "Get":
        made = st.builds(kv_pb2.GetRequest, key=keys, consistency=consistencies)
    elif method == "Delete":
        made = st.builds(kv_pb2.DeleteRequest, key=keys)
    elif method in ("GetKeys", "GetKeysValues"):
        made = st.builds(REQUEST_TYPES[method], consistency=consistencies)
    elif method == "GetMany":
        made = st.builds(
            kv_pb2.GetManyRequest, keys=st.lists(keys, max_size=8), consistency=consistencies
        )
    elif method == "PutMany":
        entry = st.builds(kv_pb2.PutManyEntry, key=keys, value=values, ttl_seconds=st.none() | ttls)
        made = st.builds(
            kv_pb2.PutManyRequest, entries=st.lists(entry, max_size=6), atomic=st.booleans()
        )
    elif method == "DeleteMany":
        made = st.builds(
            kv_pb2.DeleteManyRequest, keys=st.lists(keys, max_size=8), atomic=st.booleans()
        )
    elif method == "Pipeline":
        made = st.one_of(
            st.builds(
                kv_pb2.PipelineRequest,
                id=st.integers(0, 2**64 - 1),
                get=st.builds(kv_pb2.GetRequest, key=keys, consistency=consistencies),
            ),
            st.builds(
                kv_pb2.PipelineRequest,
                id=st.integers(0, 2**64 - 1),
                put=st.builds(
                    kv_pb2.PutRequest, key=keys, value=values, ttl_seconds=st.none() | ttls
                ),
            ),
            st.builds(
                kv_pb2.PipelineRequest,
                id=st.integers(0, 2**64 - 1),
                delete=st.builds(kv_pb2.DeleteRequest, key=keys),
            ),
            st.builds(kv_pb2.PipelineRequest, id=st.integers(0, 2**64 - 1)),
        )
    else:
        made = st.just(kv_pb2.GetServersRequest())
    return made.map(lambda message: message.SerializeToString())  # type: ignore[attr-defined]


@st.composite
def truncated(draw: st.DrawFn, whole: st.SearchStrategy[bytes]) -> bytes:
    data = draw(whole)
    return data[: draw(st.integers(0, max(len(data) - 1, 0)))]


def payloads(method: str) -> st.SearchStrategy[bytes]:
    messages = hostile_messages(method)
    return st.one_of(
        st.binary(max_size=256),
        soup,
        messages,
        truncated(messages),
        st.tuples(messages, soup).map(b"".join),  # valid, then junk
    )


@pytest.mark.parametrize("method", METHODS)
def test_hostile_requests_get_only_lrukvs_answers(
    server: ServerProcess, channel: grpc.Channel, method: str
) -> None:
    calls = 0

    @HOSTILE
    @given(payload=payloads(method))
    def batch(payload: bytes) -> None:
        nonlocal calls
        calls += 1
        _answer_is_lrukvs(channel, method, payload)

    batch()
    _still_serving(server)
    print(f"{method}: {calls} hostile calls answered by lrukv")  # shown with -s


@pytest.mark.parametrize("method", METHODS)
def test_a_request_over_the_message_limit_is_resource_exhausted(
    server: ServerProcess, channel: grpc.Channel, method: str
) -> None:
    payload = b"\x12" + varint(2**23) + b"v" * 2**23  # field 2, 8 MiB
    assert len(payload) > max_request_bytes(VALUE_LIMIT, KEY_LIMIT)
    with pytest.raises(grpc.RpcError) as error:
        _send(channel, method, payload)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(server)


# ------------------------------------------------------------------ raw sockets


def _raw(server: ServerProcess, data: bytes) -> None:
    """Send *data* on a fresh connection, read what comes back until the server
    closes (or a short wait passes), and go away."""
    with socket.create_connection(("127.0.0.1", server.rpc_port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(data)
            sock.settimeout(0.2)
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionError):
            pass  # the server may wait for more, or reset: both are fine


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


frames = st.builds(
    frame,
    kind=st.integers(0, 255) | st.sampled_from([0, 1, 3, 4, 6, 7, 8, 9]),
    flags=st.integers(0, 255),
    stream=st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 3]),
    payload=st.binary(max_size=64),
    length=st.none() | st.integers(0, 2**24 - 1),  # None: true; else usually a lie
)

HTTP1 = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /lrukv.v1.KV/Put HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"PRI * HTTP/2.0\r\n\r\n",  # a preface cut short
    b"\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", HTTP1)
def test_http1_on_the_grpc_port_leaves_it_serving(
    server: ServerProcess, request_bytes: bytes
) -> None:
    _raw(server, request_bytes)
    _still_serving(server)


def test_raw_garbage_on_the_grpc_port_leaves_it_serving(server: ServerProcess) -> None:
    connections = 0

    @HOSTILE
    @given(
        data=st.one_of(
            st.binary(min_size=1, max_size=512),
            st.lists(frames, min_size=1, max_size=6).map(lambda fs: PREFACE + b"".join(fs)),
            st.binary(max_size=512).map(lambda junk: PREFACE + junk),
        )
    )
    def batch(data: bytes) -> None:
        nonlocal connections
        connections += 1
        _raw(server, data)

    batch()
    _still_serving(server)
    print(f"{connections} connections of raw garbage")  # shown with -s
