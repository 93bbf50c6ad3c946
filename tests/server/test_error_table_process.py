"""Every row of the error table, over HTTP and gRPC sockets, from the real server
process (python -m tests.server.fault_server: lrukv-server with its KVService
wrapped so that each fault key raises the error of its row)."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Callable, Iterator

import grpc
import pytest

from lrukv_proto import (
    LEADER_HTTP_HEADER,
    LEADER_HTTP_METADATA,
    LEADER_RPC_HEADER,
    LEADER_RPC_METADATA,
)
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.harness import ServerProcess, start_server
from tests.server.faults import FAULTS, LEADER_HTTP, LEADER_RPC, SECRET, Fault
from tests.server.grpc_util import error_code, trailing

TIMEOUT = 10
FAULT_SERVER = [sys.executable, "-m", "tests.server.fault_server"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("faults"), command=FAULT_SERVER)
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def kv(server: ServerProcess) -> Iterator[kv_pb2_grpc.KVStub]:
    with grpc.insecure_channel(server.rpc_addr) as channel:
        yield kv_pb2_grpc.KVStub(channel)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_row_over_http(server: ServerProcess, fault: Fault, method: str) -> None:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request(method, f"/v1/{fault.key}?ttl=5", body=b"v" if method == "PUT" else None)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == fault.http_status
    assert body["error"]["code"] == fault.code
    assert SECRET not in body["error"]["message"]
    if fault.http_status == 307:
        assert response.getheader("Location") == f"http://{LEADER_HTTP}/v1/{fault.key}?ttl=5"
        assert response.getheader(LEADER_HTTP_HEADER) == LEADER_HTTP
        assert response.getheader(LEADER_RPC_HEADER) == LEADER_RPC


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
@pytest.mark.parametrize("method", ["Get", "Put", "Delete"])
def test_row_over_grpc(kv: kv_pb2_grpc.KVStub, fault: Fault, method: str) -> None:
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
    if fault.key == "fault-not-leader":
        metadata = trailing(error.value)
        assert metadata[LEADER_RPC_METADATA] == LEADER_RPC
        assert metadata[LEADER_HTTP_METADATA] == LEADER_HTTP


def test_internal_errors_are_logged_with_their_details(server: ServerProcess) -> None:
    # What the client is not told must be in the log for the operator.
    assert SECRET in server.stderr()
    assert server.alive() and server.worker_alive()
